//! The partition leader's client of the transaction coordinators (Kafka's
//! `AddPartitionsToTxnManager`, KIP-890 part 1): before a transactional produce may open a
//! producer's transaction on a partition, its leader asks the producer's coordinator whether
//! the partition is in the producer's ongoing transaction, with AddPartitionsToTxn v4+
//! `verify_only` entries. The coordinator is the leader of the transactional id's
//! `__transaction_state` partition in this broker's metadata image.
//!
//! ```text
//!  Produce handler ─► verify(id, pid, epoch, partitions)
//!        ├─ no leader for the id's __transaction_state partition ─► COORDINATOR_NOT_AVAILABLE
//!        ├─ this node leads it ─► TxnRuntime::verify_partitions (a local call)
//!        └─ another node ─► that node's sender queue ─► one AddPartitionsToTxn (v4+) carrying
//!                           every transaction queued meanwhile (at most one entry per
//!                           transactional id; a second waits for the next request)
//!                           ─► each transaction's partitions answered to its produce
//! ```
//!
//! With transactions version 2 (KIP-890 part 2, Produce v12+) the client sends no
//! AddPartitionsToTxn: the same path adds the partitions instead ([`AddPartitionsToTxnManager::add`]:
//! entries without `verify_only`, as Kafka's brokers send them in AddPartitionsToTxn v5).
//!
//! A connection failure answers NETWORK_EXCEPTION for every partition of the request; a
//! coordinator that does not serve AddPartitionsToTxn v4 means verification is not supported
//! there, and, as in Kafka, the produce goes on unverified. The produce handler maps the
//! answers to the codes a producer understands (`handlers::produce`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_client::{ClientConfig, Connection};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use gregor_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TransactionalId,
};
use gregor_txn::TopicPartition;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::config::BrokerConfig;
use crate::replica_manager::ReplicaManager;
use crate::txn_coordinator::{TxnRuntime, TRANSACTION_STATE_TOPIC};

/// One AddPartitionsToTxn exchange with a coordinator (Kafka's inter-broker
/// `request.timeout.ms` is 30 s; a produce waits on it, so it is kept shorter).
const VERIFY_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The first AddPartitionsToTxn version with `verify_only` and several transactions.
const FIRST_BATCHED_VERSION: i16 = 4;
/// The newest AddPartitionsToTxn version this client speaks.
const LAST_VERSION: i16 = 5;

/// Each partition's error code from the coordinator (0: it is in the transaction).
pub type Verified = Vec<(TopicPartition, i16)>;

/// A coordinator's answer: the code of each (transactional id, topic, partition).
type Answers = HashMap<(String, String, i32), i16>;

/// One transaction's verification waiting for its coordinator's sender.
struct QueuedVerification {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<TopicPartition>,
    /// Only ask (KIP-890 part 1); `false` adds the partitions (transactions version 2).
    verify_only: bool,
    reply: oneshot::Sender<Verified>,
}

/// The verifications of this broker's partition leaders, one sender per coordinator broker.
pub struct AddPartitionsToTxnManager {
    config: Arc<BrokerConfig>,
    /// The metadata image (who leads `__transaction_state`) and the brokers' endpoints.
    replicas: Arc<ReplicaManager>,
    /// This broker's own coordinator, asked directly when it is the one.
    txn: Arc<TxnRuntime>,
    /// Each coordinator broker's sender queue (started on first use).
    queues: Mutex<HashMap<i32, mpsc::UnboundedSender<QueuedVerification>>>,
}

impl std::fmt::Debug for AddPartitionsToTxnManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddPartitionsToTxnManager")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn all(partitions: &[TopicPartition], code: i16) -> Verified {
    partitions.iter().map(|tp| (tp.clone(), code)).collect()
}

impl AddPartitionsToTxnManager {
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        txn: Arc<TxnRuntime>,
    ) -> AddPartitionsToTxnManager {
        AddPartitionsToTxnManager {
            config,
            replicas,
            txn,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// The leader of `transactional_id`'s `__transaction_state` partition, if it has one.
    pub fn coordinator_of(&self, transactional_id: &str) -> Option<i32> {
        let partition = self.txn.partition_for(transactional_id);
        let image = self.replicas.image();
        image
            .topics()
            .topic_by_name(TRANSACTION_STATE_TOPIC)
            .and_then(|t| t.partition(partition))
            .map(|p| p.leader)
            .filter(|&leader| leader >= 0)
    }

    /// Kafka's `addOrVerifyTransaction` with `verify_only`: whether each partition is in the
    /// ongoing transaction of `producer_id` at `producer_epoch`, as its coordinator answers.
    pub async fn verify(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Verified {
        self.add_or_verify(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            true,
        )
        .await
    }

    /// Kafka's `addOrVerifyTransaction` for transactions version 2 (Produce v12+): the
    /// coordinator adds each partition to the producer's transaction (opening it if needed);
    /// CONCURRENT_TRANSACTIONS while the previous transaction's markers are written.
    pub async fn add(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Verified {
        self.add_or_verify(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            false,
        )
        .await
    }

    /// [`add`](Self::add), asked again every `add.partitions.to.txn.retry.backoff.ms` while
    /// the coordinator answers CONCURRENT_TRANSACTIONS (the previous transaction's markers
    /// are still being written), for at most `add.partitions.to.txn.retry.backoff.max.ms` and
    /// within `timeout` (the request's). Kafka's `ReplicaManager` retries the same way instead
    /// of failing the produce (or the TxnOffsetCommit).
    pub async fn add_retrying(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        timeout: Duration,
    ) -> Verified {
        let backoff = Duration::from_millis(self.config.txn.add_partitions_retry_backoff_ms);
        let limit =
            Duration::from_millis(self.config.txn.add_partitions_retry_backoff_max_ms).min(timeout);
        let started = tokio::time::Instant::now();
        loop {
            let answers = self
                .add(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions.clone(),
                )
                .await;
            let concurrent = answers
                .iter()
                .any(|(_, c)| *c == ErrorCode::CONCURRENT_TRANSACTIONS.code());
            if !concurrent || started.elapsed() + backoff > limit {
                return answers;
            }
            tokio::time::sleep(backoff).await;
        }
    }

    async fn add_or_verify(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        verify_only: bool,
    ) -> Verified {
        let Some(coordinator) = self.coordinator_of(transactional_id) else {
            return all(&partitions, ErrorCode::COORDINATOR_NOT_AVAILABLE.code());
        };
        if coordinator == self.config.node_id {
            if verify_only {
                return self.txn.verify_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                );
            }
            let code = self
                .txn
                .add_partitions(transactional_id, producer_id, producer_epoch, &partitions)
                .await;
            return all(&partitions, code);
        }
        let (reply, answer) = oneshot::channel();
        let queued = QueuedVerification {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
            verify_only,
            reply,
        };
        if self.queue(coordinator).send(queued).is_err() {
            return all(&partitions, ErrorCode::NETWORK_EXCEPTION.code());
        }
        answer
            .await
            .unwrap_or_else(|_| all(&partitions, ErrorCode::NETWORK_EXCEPTION.code()))
    }

    /// The sender queue of `broker` (its task started on first use, again if it stopped).
    fn queue(self: &Arc<Self>, broker: i32) -> mpsc::UnboundedSender<QueuedVerification> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queues.get(&broker).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        queues.insert(broker, tx.clone());
        tokio::spawn(Arc::clone(self).run_sender(broker, rx));
        tx
    }

    /// One coordinator's sender (Kafka's `AddPartitionsToTxnManager` send thread, per node):
    /// one connection, one AddPartitionsToTxn at a time carrying every verification queued
    /// meanwhile, at most one per transactional id (the response is keyed by it).
    async fn run_sender(
        self: Arc<Self>,
        broker: i32,
        mut queue: mpsc::UnboundedReceiver<QueuedVerification>,
    ) {
        let mut conn: Option<Connection> = None;
        let mut carried: Vec<QueuedVerification> = Vec::new();
        loop {
            if carried.is_empty() {
                match queue.recv().await {
                    Some(first) => carried.push(first),
                    None => return,
                }
            }
            while let Ok(more) = queue.try_recv() {
                carried.push(more);
            }
            let mut ids = HashSet::new();
            let (batch, later): (Vec<_>, Vec<_>) = carried
                .drain(..)
                .partition(|q| ids.insert(q.transactional_id.clone()));
            carried = later;
            let answers = self.exchange(broker, &mut conn, &batch).await;
            for q in batch {
                let verified = match &answers {
                    Ok(Some(by_id)) => q
                        .partitions
                        .iter()
                        .map(|tp| {
                            let code = by_id
                                .get(&(q.transactional_id.clone(), tp.topic.clone(), tp.partition))
                                .copied()
                                .unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR.code());
                            (tp.clone(), code)
                        })
                        .collect(),
                    // Verification is not supported there: go on unverified, as Kafka does.
                    Ok(None) if q.verify_only => all(&q.partitions, ErrorCode::NONE.code()),
                    // An add cannot be skipped: the transaction would miss the partition.
                    Ok(None) => all(&q.partitions, ErrorCode::UNSUPPORTED_VERSION.code()),
                    Err(code) => all(&q.partitions, *code),
                };
                let _ = q.reply.send(verified);
            }
        }
    }

    /// Sends one AddPartitionsToTxn with `batch`'s transactions to `broker` (dialling it first
    /// if needed): each (transactional id, topic, partition)'s code, `None` when the broker does
    /// not serve verification, `Err` with the code of every partition when the exchange failed.
    async fn exchange(
        &self,
        broker: i32,
        conn: &mut Option<Connection>,
        batch: &[QueuedVerification],
    ) -> Result<Option<Answers>, i16> {
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            *conn = None;
            let Some(addr) =
                crate::replica_fetcher::leader_address(&self.replicas, &self.config, broker)
            else {
                debug!(broker, "transaction coordinator without a known endpoint");
                return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE.code());
            };
            let config = ClientConfig {
                client_id: format!("gregor-txn-verification-{}", self.config.node_id),
                connect_timeout: Duration::from_secs(5),
                request_timeout: VERIFY_REQUEST_TIMEOUT,
                max_response_bytes: 16 << 20,
                security: self.config.inter_broker_security.clone(),
                ..ClientConfig::default()
            };
            match Connection::connect(&addr, &config).await {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    debug!(broker, error = %e, "cannot reach the transaction coordinator");
                    return Err(ErrorCode::NETWORK_EXCEPTION.code());
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            return Err(ErrorCode::NETWORK_EXCEPTION.code());
        };
        let version = match c.version_at_most(ApiKey::AddPartitionsToTxn, LAST_VERSION) {
            Ok(v) if v >= FIRST_BATCHED_VERSION => v,
            _ => {
                warn!(broker, "the transaction coordinator does not serve AddPartitionsToTxn v4; transactional produces go unverified");
                return Ok(None);
            }
        };
        let request = AddPartitionsToTxnRequest::default().with_transactions(
            batch
                .iter()
                .map(|q| {
                    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
                    for tp in &q.partitions {
                        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                            Some(t) => t.partitions.push(tp.partition),
                            None => topics.push(
                                AddPartitionsToTxnTopic::default()
                                    .with_name(crate::handlers::topic_name(&tp.topic))
                                    .with_partitions(vec![tp.partition]),
                            ),
                        }
                    }
                    AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(TransactionalId(crate::handlers::str_bytes(
                            q.transactional_id.clone(),
                        )))
                        .with_producer_id(ProducerId(q.producer_id))
                        .with_producer_epoch(q.producer_epoch)
                        .with_verify_only(q.verify_only)
                        .with_topics(topics)
                })
                .collect(),
        );
        let response: AddPartitionsToTxnResponse = match c.send_at(&request, version).await {
            Ok(r) => r,
            Err(e) => {
                debug!(broker, error = %e, "AddPartitionsToTxn to the transaction coordinator failed");
                if c.is_broken() {
                    *conn = None;
                }
                return Err(ErrorCode::NETWORK_EXCEPTION.code());
            }
        };
        if response.error_code != 0 {
            // Kafka hides CLUSTER_AUTHORIZATION_FAILED from the producer: the partition was
            // simply not verified.
            return Err(
                if response.error_code == ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code() {
                    ErrorCode::INVALID_TXN_STATE.code()
                } else {
                    response.error_code
                },
            );
        }
        let mut answered = HashMap::new();
        for t in &response.results_by_transaction {
            for topic in &t.topic_results {
                for p in &topic.results_by_partition {
                    answered.insert(
                        (
                            t.transactional_id.0.to_string(),
                            topic.name.0.to_string(),
                            p.partition_index,
                        ),
                        p.partition_error_code,
                    );
                }
            }
        }
        Ok(Some(answered))
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use gregor_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };

    use gregor_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::config::Voter;

    /// What a fake coordinator received: per AddPartitionsToTxn, its transactions'
    /// `(transactional id, verify_only)`.
    type Requests = Arc<Mutex<Vec<Vec<(String, bool)>>>>;

    /// A fake transaction coordinator: ApiVersions (AddPartitionsToTxn v0–v5), and
    /// AddPartitionsToTxn answered NONE for topic `in`'s partitions and INVALID_TXN_STATE for
    /// the others, each after 50 ms.
    async fn fake_coordinator() -> (u16, Requests) {
        let seen: Requests = Arc::default();
        let s = Arc::clone(&seen);
        let port = crate::fake_node::start(
            vec![(ApiKey::AddPartitionsToTxn, 0, 5)],
            move |api, version, mut b| {
                let seen = Arc::clone(&s);
                async move {
                    if api != ApiKey::AddPartitionsToTxn {
                        return None;
                    }
                    let mut out = BytesMut::new();
                    let req = AddPartitionsToTxnRequest::decode(&mut b, version).expect("decode");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    seen.lock().expect("lock").push(
                        req.transactions
                            .iter()
                            .map(|t| (t.transactional_id.0.to_string(), t.verify_only))
                            .collect(),
                    );
                    let results = req
                        .transactions
                        .iter()
                        .map(|t| {
                            AddPartitionsToTxnResult::default()
                                .with_transactional_id(t.transactional_id.clone())
                                .with_topic_results(
                                    t.topics
                                        .iter()
                                        .map(|topic| {
                                            let code = if topic.name.0.as_str() == "in" {
                                                0
                                            } else {
                                                ErrorCode::INVALID_TXN_STATE.code()
                                            };
                                            AddPartitionsToTxnTopicResult::default()
                                        .with_name(topic.name.clone())
                                        .with_results_by_partition(
                                            topic
                                                .partitions
                                                .iter()
                                                .map(|&p| {
                                                    AddPartitionsToTxnPartitionResult::default()
                                                        .with_partition_index(p)
                                                        .with_partition_error_code(code)
                                                })
                                                .collect(),
                                        )
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    AddPartitionsToTxnResponse::default()
                        .with_results_by_transaction(results)
                        .encode(&mut out, version)
                        .expect("encode");
                    Some(out)
                }
            },
        )
        .await;
        (port, seen)
    }

    /// A broker whose peers `2` and `3` are at `ports` (through `peer.address.overrides`).
    fn broker(dir: &tempfile::TempDir, ports: &[(i32, u16)]) -> Arc<crate::broker::Broker> {
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        config.cluster.peer_address_overrides = ports
            .iter()
            .map(|&(id, port)| Voter {
                id,
                host: "127.0.0.1".into(),
                port,
            })
            .collect();
        crate::broker::test_broker(config)
    }

    fn ask(
        m: &Arc<AddPartitionsToTxnManager>,
        coordinator: i32,
        id: &str,
        topic: &str,
    ) -> oneshot::Receiver<Verified> {
        let (reply, answer) = oneshot::channel();
        m.queue(coordinator)
            .send(QueuedVerification {
                transactional_id: id.into(),
                producer_id: 7,
                producer_epoch: 0,
                partitions: vec![TopicPartition::new(topic.to_string(), 0)],
                verify_only: true,
                reply,
            })
            .expect("queued");
        answer
    }

    /// Verifications queued while a request is out go together in the next one, each
    /// transactional id at most once per request, all `verify_only`; each gets its own answer.
    #[tokio::test]
    async fn verifications_are_batched_per_coordinator_one_entry_per_id() {
        let (port, seen) = fake_coordinator().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(&dir, &[(2, port)]);
        let m = &b.txn_verification;
        let a1 = ask(m, 2, "a", "in");
        let b1 = ask(m, 2, "b", "out");
        let a2 = ask(m, 2, "a", "in");
        assert_eq!(a1.await.expect("answer")[0].1, 0);
        assert_eq!(
            b1.await.expect("answer")[0].1,
            ErrorCode::INVALID_TXN_STATE.code()
        );
        assert_eq!(a2.await.expect("answer")[0].1, 0);
        let requests = seen.lock().expect("lock").clone();
        assert_eq!(
            requests,
            vec![
                vec![("a".to_string(), true), ("b".to_string(), true)],
                vec![("a".to_string(), true)],
            ]
        );
    }

    /// A coordinator nobody listens at: NETWORK_EXCEPTION for its partitions (the produce
    /// then answers NOT_ENOUGH_REPLICAS); one without an endpoint: COORDINATOR_NOT_AVAILABLE.
    #[tokio::test]
    async fn an_unreachable_coordinator_is_a_network_exception() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(&dir, &[(3, closed)]);
        let m = &b.txn_verification;
        assert_eq!(
            ask(m, 3, "a", "in").await.expect("answer")[0].1,
            ErrorCode::NETWORK_EXCEPTION.code()
        );
        assert_eq!(
            ask(m, 9, "a", "in").await.expect("answer")[0].1,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
    }
}
