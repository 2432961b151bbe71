//! Hostile and malformed input over raw TCP. After each case the broker must still serve a fresh
//! connection (ApiVersions answers) and the records stored before are intact.
//!
//! Protocol violations (bad framing, undecodable requests) close the connection; problems with
//! one topic or partition come back as that entry's Kafka error code.

use std::time::Duration;

use bytes::BytesMut;
use gregor_e2e::raw::{code, simple_batch, Closed, RawConn};
use gregor_e2e::{unique_topic, Broker};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long the broker has to close a connection it must close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker with one single-partition topic holding three records.
struct Fixture {
    broker: Broker,
    topic: String,
    stored: Vec<(String, String)>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(&[])
    }

    fn with_config(sets: &[&str]) -> Fixture {
        let broker = Broker::start_with(sets);
        let topic = unique_topic("bad-input");
        let stored: Vec<(String, String)> = (0..3)
            .map(|i| (format!("key-{i}"), format!("value-{i}")))
            .collect();
        let mut conn = RawConn::connect(broker.addr());
        assert_eq!(conn.create_topic(&topic, 1), code::NONE, "CreateTopics");
        let recs: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            conn.produce(&topic, 0, simple_batch(&recs)),
            (code::NONE, 0),
            "first produce"
        );
        Fixture {
            broker,
            topic,
            stored,
        }
    }

    fn conn(&self) -> RawConn {
        RawConn::connect(self.broker.addr())
    }

    /// A fresh connection works and the stored records are unchanged.
    fn assert_healthy(&mut self) {
        assert!(self.broker.is_running(), "the broker died");
        let mut conn = self.conn();
        let versions = conn.api_versions();
        assert!(!versions.api_keys.is_empty(), "ApiVersions lists no APIs");
        assert_eq!(
            conn.log_end_offset(&self.topic, 0),
            self.stored.len() as i64,
            "log end offset changed"
        );
        let fetched = conn.fetch_records(&self.topic, 0, 0);
        let got: Vec<(i64, String, String)> = fetched
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        let want: Vec<(i64, String, String)> = self
            .stored
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "stored records");
    }
}

/// A request header (v1: api key, version, correlation id, client id) followed by `body`.
fn header_v1(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    let client = b"gregor-e2e";
    b.extend_from_slice(&(client.len() as i16).to_be_bytes());
    b.extend_from_slice(client);
    b
}

#[test]
fn negative_frame_size_closes_the_connection() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    conn.write_raw(&(-1i32).to_be_bytes()).expect("write");
    conn.expect_closed("frame size -1", CLOSE_TIMEOUT);
    f.assert_healthy();
}

#[test]
fn frame_over_socket_request_max_bytes_closes_the_connection() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    // Default socket.request.max.bytes is 100 MiB; only the size prefix is sent.
    let size: i32 = 100 * 1024 * 1024 + 1;
    conn.write_raw(&size.to_be_bytes()).expect("write");
    conn.expect_closed("frame of 100 MiB + 1", CLOSE_TIMEOUT);
    f.assert_healthy();
}

#[test]
fn unknown_api_key_closes_the_connection_or_errors() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    let mut body = header_v1(12_345, 0, 77);
    body.extend_from_slice(&[0, 0, 0, 0]);
    conn.send_frame(&body).expect("write");
    match conn.wait_closed(CLOSE_TIMEOUT) {
        Closed::Yes => {}
        Closed::Answered(_) => {
            // An answer is acceptable only if it is a well-formed response to this request.
            let mut conn = f.conn();
            conn.send_frame(&body).expect("write");
            let mut resp = conn.read_frame().expect("a response frame");
            let header = ResponseHeader::decode(&mut resp, 0).expect("response header");
            assert_eq!(
                header.correlation_id, 77,
                "correlation id of the error response"
            );
        }
        Closed::StillOpen => panic!("unknown API key: no answer and no close (a silent hang)"),
    }
    f.assert_healthy();
}

#[test]
fn unsupported_api_versions_version_gets_a_v0_answer() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    // ApiVersions v127 with a flexible (v2) header, as a future client would send it.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(127)
        .with_correlation_id(4242)
        .with_client_id(Some(StrBytes::from_static_str("gregor-e2e")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, 2).expect("encode header");
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-e2e"))
        .with_client_software_version(StrBytes::from_static_str("9.9"))
        .encode(&mut buf, 3)
        .expect("encode body");
    conn.send_frame(&buf).expect("write");
    let mut resp = conn
        .read_frame()
        .expect("ApiVersions must answer, not close");
    let header = ResponseHeader::decode(&mut resp, 0).expect("response header v0");
    assert_eq!(header.correlation_id, 4242, "correlation id");
    let body = ApiVersionsResponse::decode(&mut resp, 0).expect("ApiVersions v0 body");
    assert_eq!(body.error_code, code::UNSUPPORTED_VERSION, "error code");
    let own = body
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("the answer lists ApiVersions' own supported range");
    assert_eq!(own.min_version, 0, "ApiVersions min version");
    assert!(
        own.max_version >= 3,
        "ApiVersions max version {}",
        own.max_version
    );
    f.assert_healthy();
}

#[test]
fn truncated_metadata_request_closes_the_connection() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    // Metadata v4 header, then a topics array that claims 5 entries and ends there: the frame is
    // complete, the request inside it is not.
    let mut body = header_v1(ApiKey::Metadata as i16, 4, 5);
    body.extend_from_slice(&5i32.to_be_bytes());
    conn.send_frame(&body).expect("write");
    conn.expect_closed("truncated Metadata request", CLOSE_TIMEOUT);
    f.assert_healthy();
}

#[test]
fn bad_crc_batch_is_corrupt_message_and_not_stored() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    let mut batch = simple_batch(&[("k", "will be corrupted")]);
    let last = batch.len() - 1;
    batch[last] ^= 0xff; // a byte of the last record's value: CRC no longer matches
    let (err, _) = conn.produce(&f.topic, 0, batch);
    assert_eq!(err, code::CORRUPT_MESSAGE, "produce of a bad-CRC batch");
    // Same connection still usable: a partition error does not close it.
    assert_eq!(conn.log_end_offset(&f.topic, 0), 3, "log end offset");
    f.assert_healthy();
}

#[test]
fn invalid_topic_names_are_rejected() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    let long = "a".repeat(250);
    for name in ["bad/name", "..", ".", long.as_str(), "has space"] {
        assert_eq!(
            conn.create_topic(name, 1),
            code::INVALID_TOPIC_EXCEPTION,
            "CreateTopics {name:?}"
        );
    }
    // A legal name on the same connection still works.
    let ok = unique_topic("legal.name_with-chars");
    assert_eq!(conn.create_topic(&ok, 1), code::NONE, "CreateTopics {ok}");
    f.assert_healthy();
}

#[test]
fn batch_over_message_max_bytes_is_message_too_large() {
    let mut f = Fixture::with_config(&["message.max.bytes=1000"]);
    let mut conn = f.conn();
    let big = "x".repeat(2000);
    let (err, _) = conn.produce(&f.topic, 0, simple_batch(&[("k", big.as_str())]));
    assert_eq!(err, code::MESSAGE_TOO_LARGE, "produce of a 2 KB batch");
    assert_eq!(conn.log_end_offset(&f.topic, 0), 3, "log end offset");
    f.assert_healthy();
}

#[test]
fn produce_v2_is_unsupported_version() {
    let mut f = Fixture::new();
    let mut conn = f.conn();
    // Produce v2: acks, timeout, [topic, [partition, records]] (v3 adds transactional_id).
    let mut body = header_v1(ApiKey::Produce as i16, 2, 99);
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(f.topic.len() as i16).to_be_bytes());
    body.extend_from_slice(f.topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    let batch = simple_batch(&[("k", "v2 record")]);
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(&batch);
    conn.send_frame(&body).expect("write");
    let mut resp = conn
        .read_frame()
        .expect("Produce v2 must be answered with UNSUPPORTED_VERSION, not a close");
    let header = ResponseHeader::decode(&mut resp, 0).expect("response header");
    assert_eq!(header.correlation_id, 99, "correlation id");
    // The v2 response has the same layout as v3.
    let produce = ProduceResponse::decode(&mut resp, 3).expect("Produce v2 response body");
    let p = produce
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .expect("the partition is in the response");
    assert_eq!(p.error_code, code::UNSUPPORTED_VERSION, "partition error");
    f.assert_healthy();
}

/// A second `gregor server` on a data directory in use stops at once with a message naming the
/// directory, before it touches anything, and the first broker keeps serving.
#[test]
fn a_second_process_on_the_same_data_dir_is_refused() {
    let broker = Broker::start();
    let mut cmd = std::process::Command::new(gregor_e2e::broker::gregor_bin());
    cmd.arg("server")
        .arg("--data-dir")
        .arg(broker.data_dir())
        .arg("--listen")
        .arg("127.0.0.1:0");
    let out = gregor_e2e::run_command(cmd, None, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the second process must not start: {stderr}"
    );
    assert!(
        stderr.contains("in use by another process"),
        "the refusal names the reason: {stderr}"
    );
    let mut conn = RawConn::connect(broker.addr());
    let topic = unique_topic("still-serving");
    assert_eq!(conn.create_topic(&topic, 1), code::NONE);
}
