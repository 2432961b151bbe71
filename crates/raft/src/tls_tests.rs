//! The quorum's transport over TLS ([`QuorumTls`]): three voters elect a leader and commit
//! over it; a peer must show a certificate the truststore vouches for; a Kafka client is held
//! to `ssl.client.auth`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::network::{dial, Connection, Hello, TransportError};
use crate::tests::{addr, config, elect_commit_and_call, free_port, Trio};
use crate::{MetadataQuorum, QuorumStream, QuorumTls};

/// A CA and the certificates it signs (for 127.0.0.1, both usages, as a node's).
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A node's certificate chain and key.
    fn node(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("node key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("node params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed node certificate");
        (
            vec![cert.der().clone(), self.der()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a node shows (`shows`: signed by that CA; `None`: no certificate) and whom it trusts.
fn quorum_tls(trusted: &Ca, shows: Option<&Ca>, kafka_clients_need_certificate: bool) -> QuorumTls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der()).expect("trust the CA");
    let roots = Arc::new(roots);
    let (chain, key) = trusted.node("server");
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let client = match shows {
        Some(ca) => {
            let (chain, key) = ca.node("client");
            client
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => client.with_no_client_auth(),
    };
    QuorumTls::new(
        Arc::new(server),
        Arc::new(client),
        kafka_clients_need_certificate,
    )
}

fn hello(node_id: u64) -> Hello {
    Hello {
        cluster_id: "test-cluster".into(),
        node_id,
        voters: [1].into(),
    }
}

/// Answers every Kafka connection with its first request and whether it came over TLS.
struct KafkaEcho;

impl crate::KafkaConnectionHandler for KafkaEcho {
    fn serve(
        &self,
        mut stream: QuorumStream,
        _peer: std::net::SocketAddr,
        first: Bytes,
    ) -> BoxFuture<'static, ()> {
        use futures::FutureExt;
        async move {
            let mut reply = first.to_vec();
            reply.push(u8::from(stream.is_tls()));
            let _ = stream.write_all(&reply).await;
            let _ = stream.flush().await;
        }
        .boxed()
    }
}

/// Sends one Kafka-looking request (a 0 byte first) over `stream` and reads to the end.
async fn kafka_exchange(mut stream: QuorumStream) -> Vec<u8> {
    let request = [0u8, 18, 0, 3, 0, 0, 0, 7];
    stream
        .write_all(&(request.len() as u32).to_be_bytes())
        .await
        .expect("write");
    stream.write_all(&request).await.expect("write");
    stream.flush().await.expect("flush");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("answered or closed in time");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_and_commit_over_tls() {
    let ca = Ca::new("quorum CA");
    let tls = Arc::new(quorum_tls(&ca, Some(&ca), false));
    let trio = Trio::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut cfg = trio.cfg(id);
        cfg.tls = Some(Arc::clone(&tls));
        nodes.push(
            MetadataQuorum::start(cfg, Arc::new(crate::tests::Echo(id)))
                .await
                .expect("starts"),
        );
    }
    // Raft and a follower's controller request, both over TLS.
    elect_commit_and_call(&nodes, "over TLS").await;
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn a_peer_without_a_trusted_certificate_is_refused() {
    let ca = Ca::new("quorum CA");
    let rogue = Ca::new("rogue CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let mut cfg = config(1, dir.path(), port, &voters);
    cfg.tls = Some(Arc::new(quorum_tls(&ca, Some(&ca), false)));
    let q = MetadataQuorum::start(cfg, Arc::new(crate::tests::Echo(1)))
        .await
        .expect("starts");
    q.serve_kafka(Arc::new(KafkaEcho));
    let t = Duration::from_secs(5);
    // A trusted certificate: the handshake goes through.
    let good = quorum_tls(&ca, Some(&ca), false);
    Connection::connect(&addr(port), &hello(7), Some(1), t, Some(&good))
        .await
        .expect("a trusted peer shakes hands");
    // A certificate from a CA the node does not trust: TLS refuses it.
    let untrusted = quorum_tls(&ca, Some(&rogue), false);
    let r = Connection::connect(&addr(port), &hello(7), Some(1), t, Some(&untrusted)).await;
    assert!(
        matches!(&r, Err(TransportError::Tls { reason, .. }) if reason.contains("UnknownCA")
            || reason.contains("Certificate") || reason.contains("certificate")),
        "{:?}",
        r.err()
    );
    // No certificate at all: TLS lets it in, the quorum protocol refuses it by name.
    let anonymous = quorum_tls(&ca, None, false);
    let r = Connection::connect(&addr(port), &hello(7), Some(1), t, Some(&anonymous)).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("certificate")),
        "{:?}",
        r.err()
    );
    // Plain TCP to the TLS listener gets nowhere.
    let r = Connection::connect(
        &addr(port),
        &hello(7),
        Some(1),
        Duration::from_secs(2),
        None,
    )
    .await;
    assert!(r.is_err(), "plain TCP passed a TLS listener");
    // A node that does not trust this one's CA refuses it from its side.
    let distrustful = quorum_tls(&rogue, Some(&ca), false);
    let r = Connection::connect(&addr(port), &hello(7), Some(1), t, Some(&distrustful)).await;
    assert!(
        matches!(r, Err(TransportError::Tls { .. })),
        "{:?}",
        r.err()
    );
    // A Kafka client without a certificate is served (ssl.client.auth is not required).
    let stream = dial(&addr(port), Some(&anonymous)).await.expect("dial");
    let got = kafka_exchange(stream).await;
    assert_eq!(got.last(), Some(&1), "answered over TLS: {got:?}");
    q.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn kafka_clients_follow_ssl_client_auth() {
    let ca = Ca::new("quorum CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let mut cfg = config(1, dir.path(), port, &voters);
    cfg.tls = Some(Arc::new(quorum_tls(&ca, Some(&ca), true)));
    let q = MetadataQuorum::start(cfg, Arc::new(crate::tests::Echo(1)))
        .await
        .expect("starts");
    q.serve_kafka(Arc::new(KafkaEcho));
    let anonymous = quorum_tls(&ca, None, false);
    let stream = dial(&addr(port), Some(&anonymous)).await.expect("dial");
    assert!(
        kafka_exchange(stream).await.is_empty(),
        "ssl.client.auth=required: a client without a certificate is closed"
    );
    let certified = quorum_tls(&ca, Some(&ca), false);
    let stream = dial(&addr(port), Some(&certified)).await.expect("dial");
    let got = kafka_exchange(stream).await;
    assert_eq!(got.first(), Some(&0), "served: {got:?}");
    // The node's own connect_kafka dials with its certificate.
    let stream = q.connect_kafka(&addr(port)).await.expect("connect_kafka");
    assert!(stream.is_tls());
    assert!(!kafka_exchange(stream).await.is_empty());
    q.shutdown().await.expect("shutdown");
}
