//! The broker's metrics, under the names Kafka's metrics take once a JMX-to-Prometheus exporter
//! has mapped them (the rules Strimzi ships in `kafka-metrics.yaml`: `kafka.server<type=
//! BrokerTopicMetrics, name=MessagesInPerSec, topic=T><>Count` becomes
//! `kafka_server_brokertopicmetrics_messagesin_total{topic="T"}`), so dashboards and alerts
//! written for Kafka read gregor's `/metrics` unchanged.
//!
//! Two kinds, kept apart:
//! - **Events** (records in, bytes out, requests and their time, ISR changes, flushes) are
//!   counted where they happen, through the `metrics` facade, into the process's Prometheus
//!   recorder ([`install`]). Hot paths hold their handles ([`TopicStats`], one per partition
//!   replica), so counting is an atomic add; with no recorder installed (no `http.listener`)
//!   every handle is a no-op.
//! - **State** (partition counts, under-replicated partitions, log sizes, the controller's
//!   view, the process) is read from the broker when `/metrics` is scraped ([`render`]), so a
//!   deleted partition disappears at once and nothing is kept up to date between scrapes.
//!
//! ```text
//! produce / fetch / replica fetcher ─► TopicStats (per topic + all topics) ─┐
//! connection (request name, version, total time) ─► request metrics ────────┼─► recorder
//! partition (ISR proposals, fsyncs) ────────────────────────────────────────┘      │
//!                                                       http_server GET /metrics ◄─┤ render
//!                          replica manager, image, quorum, /proc/self ─► gauges ───┘
//! ```

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram};
use metrics::{Counter, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use gregor_protocol::error::ErrorCode;

use crate::broker::Broker;

/// Quantiles of the time summaries: the percentiles Kafka's histograms export.
const QUANTILES: [f64; 6] = [0.5, 0.75, 0.95, 0.98, 0.99, 0.999];

// Kafka's `BrokerTopicMetrics` meters (per topic with a `topic` label, and for all topics).
const MESSAGES_IN: &str = "kafka_server_brokertopicmetrics_messagesin_total";
const BYTES_IN: &str = "kafka_server_brokertopicmetrics_bytesin_total";
const BYTES_OUT: &str = "kafka_server_brokertopicmetrics_bytesout_total";
const REPLICATION_BYTES_IN: &str = "kafka_server_brokertopicmetrics_replicationbytesin_total";
const REPLICATION_BYTES_OUT: &str = "kafka_server_brokertopicmetrics_replicationbytesout_total";
const TOTAL_PRODUCE: &str = "kafka_server_brokertopicmetrics_totalproducerequests_total";
const FAILED_PRODUCE: &str = "kafka_server_brokertopicmetrics_failedproducerequests_total";
const TOTAL_FETCH: &str = "kafka_server_brokertopicmetrics_totalfetchrequests_total";
const FAILED_FETCH: &str = "kafka_server_brokertopicmetrics_failedfetchrequests_total";
// Kafka's `RequestMetrics`, by request name (`FetchConsumer`/`FetchFollower` apart).
const REQUESTS: &str = "kafka_network_requestmetrics_requests_total";
const TOTAL_TIME: &str = "kafka_network_requestmetrics_totaltimems";
const ERRORS: &str = "kafka_network_requestmetrics_errors_total";
// Kafka's `ReplicaManager` ISR meters and `LogFlushStats` timer.
const ISR_SHRINKS: &str = "kafka_server_replicamanager_isrshrinks_total";
const ISR_EXPANDS: &str = "kafka_server_replicamanager_isrexpands_total";
const LOG_FLUSH: &str = "kafka_log_logflushstats_logflushrateandtimems";
// Kafka's `socket-server-metrics` per listener.
const CONNECTIONS: &str = "kafka_server_socket_server_metrics_connection_count";
const CONNECTIONS_CREATED: &str = "kafka_server_socket_server_metrics_connection_creation_total";
// ... and its SASL re-authentication (KIP-368) counts.
const REAUTHENTICATED: &str =
    "kafka_server_socket_server_metrics_successful_reauthentication_total";
const REAUTHENTICATION_FAILED: &str =
    "kafka_server_socket_server_metrics_failed_reauthentication_total";
const EXPIRED_KILLED: &str = "kafka_server_socket_server_metrics_expired_connections_killed_count";

/// The process's Prometheus recorder, installed once.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (the first call; later ones return the same
/// handle: brokers sharing a process, as in tests, share its counters). Call before partitions
/// open: handles taken before it count nothing.
pub fn install() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_quantiles(&QUANTILES) {
                Ok(b) => b,
                // Only an empty list is refused.
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows no events");
            }
            describe();
            handle
        })
        .clone()
}

/// The recorder, when [`install`] ran.
pub fn installed() -> Option<PrometheusHandle> {
    RECORDER.get().cloned()
}

/// HELP lines of the event metrics.
fn describe() {
    describe_counter!(
        ERRORS,
        "Error codes in responses, NONE included, by API and error (Kafka's ErrorsPerSec)."
    );
    describe_counter!(
        MESSAGES_IN,
        "Records appended by leaders (Kafka's MessagesInPerSec)."
    );
    describe_counter!(
        BYTES_IN,
        Unit::Bytes,
        "Record bytes appended from clients (BytesInPerSec)."
    );
    describe_counter!(
        BYTES_OUT,
        Unit::Bytes,
        "Record bytes sent to consumers (BytesOutPerSec)."
    );
    describe_counter!(
        REPLICATION_BYTES_IN,
        Unit::Bytes,
        "Record bytes appended from leaders as a follower (ReplicationBytesInPerSec)."
    );
    describe_counter!(
        REPLICATION_BYTES_OUT,
        Unit::Bytes,
        "Record bytes sent to followers (ReplicationBytesOutPerSec)."
    );
    describe_counter!(
        TOTAL_PRODUCE,
        "Partitions of produce requests handled as leader (TotalProduceRequestsPerSec)."
    );
    describe_counter!(
        FAILED_PRODUCE,
        "Partitions of produce requests refused by the log (FailedProduceRequestsPerSec)."
    );
    describe_counter!(
        TOTAL_FETCH,
        "Partitions of fetch requests read (TotalFetchRequestsPerSec)."
    );
    describe_counter!(
        FAILED_FETCH,
        "Partitions of fetch requests answered with an error (FailedFetchRequestsPerSec)."
    );
    describe_counter!(
        REQUESTS,
        "Requests answered, by name and version (RequestsPerSec)."
    );
    describe_histogram!(
        TOTAL_TIME,
        Unit::Milliseconds,
        "Time from a request's last byte read to its answer's last byte written (TotalTimeMs)."
    );
    describe_counter!(
        ISR_SHRINKS,
        "ISR shrinks proposed by this broker's leaders."
    );
    describe_counter!(
        ISR_EXPANDS,
        "ISR expansions proposed by this broker's leaders."
    );
    describe_histogram!(
        LOG_FLUSH,
        Unit::Milliseconds,
        "Time of each log fsync (LogFlushRateAndTimeMs)."
    );
    describe_gauge!(CONNECTIONS, "Open client connections, by listener.");
    describe_counter!(
        CONNECTIONS_CREATED,
        "Client connections accepted, by listener."
    );
    describe_counter!(
        REAUTHENTICATED,
        "SASL re-authentications that succeeded, by listener (KIP-368)."
    );
    describe_counter!(
        REAUTHENTICATION_FAILED,
        "SASL re-authentications that failed and closed their connection, by listener."
    );
    describe_counter!(
        EXPIRED_KILLED,
        "Connections closed because a request came after their SASL session expired."
    );
}

/// One set of `BrokerTopicMetrics` meters: a topic's, or all topics'.
#[derive(Debug, Clone)]
struct Meters {
    messages_in: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    replication_bytes_in: Counter,
    replication_bytes_out: Counter,
    total_produce: Counter,
    failed_produce: Counter,
    total_fetch: Counter,
    failed_fetch: Counter,
}

impl Meters {
    fn new(topic: Option<&str>) -> Meters {
        let c = |name: &'static str| match topic {
            Some(t) => counter!(name, "topic" => t.to_string()),
            None => counter!(name),
        };
        Meters {
            messages_in: c(MESSAGES_IN),
            bytes_in: c(BYTES_IN),
            bytes_out: c(BYTES_OUT),
            replication_bytes_in: c(REPLICATION_BYTES_IN),
            replication_bytes_out: c(REPLICATION_BYTES_OUT),
            total_produce: c(TOTAL_PRODUCE),
            failed_produce: c(FAILED_PRODUCE),
            total_fetch: c(TOTAL_FETCH),
            failed_fetch: c(FAILED_FETCH),
        }
    }
}

/// Produce errors Kafka's `appendToLocalLog` does not count as failed requests.
const EXPECTED_PRODUCE_ERRORS: [ErrorCode; 7] = [
    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::MESSAGE_TOO_LARGE,
    ErrorCode::RECORD_LIST_TOO_LARGE,
    ErrorCode::CORRUPT_MESSAGE,
    ErrorCode::KAFKA_STORAGE_ERROR,
    ErrorCode::UNKNOWN_TOPIC_ID,
];

/// Fetch errors Kafka's `readFromLog` does not count as failed requests.
const EXPECTED_FETCH_ERRORS: [ErrorCode; 9] = [
    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::UNKNOWN_LEADER_EPOCH,
    ErrorCode::FENCED_LEADER_EPOCH,
    ErrorCode(9), // REPLICA_NOT_AVAILABLE
    ErrorCode::KAFKA_STORAGE_ERROR,
    ErrorCode::OFFSET_OUT_OF_RANGE,
    ErrorCode::INCONSISTENT_TOPIC_ID,
    ErrorCode::UNKNOWN_TOPIC_ID,
];

/// A topic's meters and the all-topics ones, held by each partition replica so the produce
/// and fetch paths count with atomic adds (Kafka's `BrokerTopicStats`).
#[derive(Debug, Clone)]
pub struct TopicStats {
    topic: Meters,
    all: Meters,
}

impl TopicStats {
    /// The meters of `topic` (registered with the recorder, when there is one).
    pub fn new(topic: &str) -> TopicStats {
        TopicStats {
            topic: Meters::new(Some(topic)),
            all: Meters::new(None),
        }
    }

    fn both(&self, f: impl Fn(&Meters)) {
        f(&self.topic);
        f(&self.all);
    }

    /// A client's records appended as leader: `messages` records in `bytes` bytes (a
    /// duplicate of an idempotent producer counts as a request, not as records).
    pub fn produced(&self, bytes: u64, messages: u64) {
        self.both(|m| {
            m.total_produce.increment(1);
            m.bytes_in.increment(bytes);
            m.messages_in.increment(messages);
        });
    }

    /// A client's produce to this partition refused by the log with `code`. As in Kafka, the
    /// expected refusals (not the leader, too large, corrupt, a storage error) count only as
    /// requests; the rest (invalid records, sequence and epoch errors) also as failed.
    pub fn produce_failed(&self, code: ErrorCode) {
        let expected = EXPECTED_PRODUCE_ERRORS.contains(&code);
        self.refused(expected, |m| &m.total_produce, |m| &m.failed_produce);
    }

    /// A fetch read `bytes` of records from this partition, for a consumer or a follower.
    pub fn fetched(&self, bytes: u64, follower: bool) {
        self.both(|m| {
            m.total_fetch.increment(1);
            if follower {
                m.replication_bytes_out.increment(bytes);
            } else {
                m.bytes_out.increment(bytes);
            }
        });
    }

    /// A fetch of this partition answered with `code`. As in Kafka, the expected answers (not
    /// the leader, a fenced or unknown epoch, an offset out of range, a storage error) count
    /// only as requests; the rest also as failed.
    pub fn fetch_failed(&self, code: ErrorCode) {
        let expected = EXPECTED_FETCH_ERRORS.contains(&code);
        self.refused(expected, |m| &m.total_fetch, |m| &m.failed_fetch);
    }

    /// A refused request: always a request, a failed one unless `expected`.
    fn refused(
        &self,
        expected: bool,
        total: impl Fn(&Meters) -> &Counter,
        failed: impl Fn(&Meters) -> &Counter,
    ) {
        self.both(|m| {
            total(m).increment(1);
            if !expected {
                failed(m).increment(1);
            }
        });
    }

    /// Records appended from the leader as a follower.
    pub fn replicated(&self, bytes: u64) {
        self.both(|m| m.replication_bytes_in.increment(bytes));
    }
}

/// Kafka's name of a request in `RequestMetrics` (`request="Produce"`), from the API key.
pub(crate) fn request_name(key: i16) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=i16::from(u8::MAX))
            .map(|k| match gregor_protocol::messages::ApiKey::try_from(k) {
                // Leaked once per API key: the labels of every request of that key.
                Ok(api) => &*Box::leak(format!("{api:?}").into_boxed_str()),
                Err(_) => "Unknown",
            })
            .collect()
    });
    usize::try_from(key)
        .ok()
        .and_then(|k| names.get(k).copied())
        .unwrap_or("Unknown")
}

/// The `version` label.
fn version_label(version: i16) -> &'static str {
    const VERSIONS: [&str; 32] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
    ];
    usize::try_from(version)
        .ok()
        .and_then(|v| VERSIONS.get(v).copied())
        .unwrap_or("other")
}

/// Which request a count and a time belong to: an API, or a fetch by a consumer or by a
/// follower (Kafka's RequestMetrics names them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestKind(u16);

/// API keys 0..=254 (Kafka's run to about 90), 255 for any other, then the two fetches.
const REQUEST_KINDS: usize = 258;

impl RequestKind {
    pub(crate) const FETCH_CONSUMER: RequestKind = RequestKind(256);
    pub(crate) const FETCH_FOLLOWER: RequestKind = RequestKind(257);

    /// A request of API `key`.
    pub(crate) fn api(key: i16) -> RequestKind {
        RequestKind(u16::try_from(key).ok().filter(|k| *k < 255).unwrap_or(255))
    }

    /// Kafka's name for it in RequestMetrics (`request="Produce"`).
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            256 => "FetchConsumer",
            257 => "FetchFollower",
            k => i16::try_from(k).map_or("Unknown", request_name),
        }
    }
}

/// A request kind's metric handles, taken once: a request then counts with atomic operations
/// and no registry lookup.
struct RequestHandles {
    time: OnceLock<metrics::Histogram>,
    /// By version 0..=31, then any other.
    counts: [OnceLock<Counter>; 33],
}

/// A request answered: its kind, version, and the time from its last byte read to its answer
/// written. Nothing without a recorder.
pub(crate) fn request_done(kind: RequestKind, version: i16, elapsed: Duration) {
    static HANDLES: OnceLock<Vec<RequestHandles>> = OnceLock::new();
    if RECORDER.get().is_none() {
        return;
    }
    let handles = HANDLES.get_or_init(|| {
        (0..REQUEST_KINDS)
            .map(|_| RequestHandles {
                time: OnceLock::new(),
                counts: std::array::from_fn(|_| OnceLock::new()),
            })
            .collect()
    });
    let Some(h) = handles.get(usize::from(kind.0)) else {
        return;
    };
    let v = usize::try_from(version)
        .ok()
        .filter(|v| *v < 32)
        .unwrap_or(32);
    h.counts[v]
        .get_or_init(
            || counter!(REQUESTS, "request" => kind.name(), "version" => version_label(version)),
        )
        .increment(1);
    h.time
        .get_or_init(|| histogram!(TOTAL_TIME, "request" => kind.name()))
        .record(elapsed.as_secs_f64() * 1000.0);
}

/// Kafka's `Errors` names, by code from -1 (UNKNOWN_SERVER_ERROR) to 136: the `error` label
/// of ErrorsPerSec.
const ERROR_NAMES: [&str; 138] = [
    "UNKNOWN_SERVER_ERROR",
    "NONE",
    "OFFSET_OUT_OF_RANGE",
    "CORRUPT_MESSAGE",
    "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_FETCH_SIZE",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_OR_FOLLOWER",
    "REQUEST_TIMED_OUT",
    "BROKER_NOT_AVAILABLE",
    "REPLICA_NOT_AVAILABLE",
    "MESSAGE_TOO_LARGE",
    "STALE_CONTROLLER_EPOCH",
    "OFFSET_METADATA_TOO_LARGE",
    "NETWORK_EXCEPTION",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
    "INVALID_TOPIC_EXCEPTION",
    "RECORD_LIST_TOO_LARGE",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "INVALID_REQUIRED_ACKS",
    "ILLEGAL_GENERATION",
    "INCONSISTENT_GROUP_PROTOCOL",
    "INVALID_GROUP_ID",
    "UNKNOWN_MEMBER_ID",
    "INVALID_SESSION_TIMEOUT",
    "REBALANCE_IN_PROGRESS",
    "INVALID_COMMIT_OFFSET_SIZE",
    "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "INVALID_TIMESTAMP",
    "UNSUPPORTED_SASL_MECHANISM",
    "ILLEGAL_SASL_STATE",
    "UNSUPPORTED_VERSION",
    "TOPIC_ALREADY_EXISTS",
    "INVALID_PARTITIONS",
    "INVALID_REPLICATION_FACTOR",
    "INVALID_REPLICA_ASSIGNMENT",
    "INVALID_CONFIG",
    "NOT_CONTROLLER",
    "INVALID_REQUEST",
    "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    "POLICY_VIOLATION",
    "OUT_OF_ORDER_SEQUENCE_NUMBER",
    "DUPLICATE_SEQUENCE_NUMBER",
    "INVALID_PRODUCER_EPOCH",
    "INVALID_TXN_STATE",
    "INVALID_PRODUCER_ID_MAPPING",
    "INVALID_TRANSACTION_TIMEOUT",
    "CONCURRENT_TRANSACTIONS",
    "TRANSACTION_COORDINATOR_FENCED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "SECURITY_DISABLED",
    "OPERATION_NOT_ATTEMPTED",
    "KAFKA_STORAGE_ERROR",
    "LOG_DIR_NOT_FOUND",
    "SASL_AUTHENTICATION_FAILED",
    "UNKNOWN_PRODUCER_ID",
    "REASSIGNMENT_IN_PROGRESS",
    "DELEGATION_TOKEN_AUTH_DISABLED",
    "DELEGATION_TOKEN_NOT_FOUND",
    "DELEGATION_TOKEN_OWNER_MISMATCH",
    "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED",
    "DELEGATION_TOKEN_EXPIRED",
    "INVALID_PRINCIPAL_TYPE",
    "NON_EMPTY_GROUP",
    "GROUP_ID_NOT_FOUND",
    "FETCH_SESSION_ID_NOT_FOUND",
    "INVALID_FETCH_SESSION_EPOCH",
    "LISTENER_NOT_FOUND",
    "TOPIC_DELETION_DISABLED",
    "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH",
    "UNSUPPORTED_COMPRESSION_TYPE",
    "STALE_BROKER_EPOCH",
    "OFFSET_NOT_AVAILABLE",
    "MEMBER_ID_REQUIRED",
    "PREFERRED_LEADER_NOT_AVAILABLE",
    "GROUP_MAX_SIZE_REACHED",
    "FENCED_INSTANCE_ID",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    "ELECTION_NOT_NEEDED",
    "NO_REASSIGNMENT_IN_PROGRESS",
    "GROUP_SUBSCRIBED_TO_TOPIC",
    "INVALID_RECORD",
    "UNSTABLE_OFFSET_COMMIT",
    "THROTTLING_QUOTA_EXCEEDED",
    "PRODUCER_FENCED",
    "RESOURCE_NOT_FOUND",
    "DUPLICATE_RESOURCE",
    "UNACCEPTABLE_CREDENTIAL",
    "INCONSISTENT_VOTER_SET",
    "INVALID_UPDATE_VERSION",
    "FEATURE_UPDATE_FAILED",
    "PRINCIPAL_DESERIALIZATION_FAILURE",
    "SNAPSHOT_NOT_FOUND",
    "POSITION_OUT_OF_RANGE",
    "UNKNOWN_TOPIC_ID",
    "DUPLICATE_BROKER_REGISTRATION",
    "BROKER_ID_NOT_REGISTERED",
    "INCONSISTENT_TOPIC_ID",
    "INCONSISTENT_CLUSTER_ID",
    "TRANSACTIONAL_ID_NOT_FOUND",
    "FETCH_SESSION_TOPIC_ID_ERROR",
    "INELIGIBLE_REPLICA",
    "NEW_LEADER_ELECTED",
    "OFFSET_MOVED_TO_TIERED_STORAGE",
    "FENCED_MEMBER_EPOCH",
    "UNRELEASED_INSTANCE_ID",
    "UNSUPPORTED_ASSIGNOR",
    "STALE_MEMBER_EPOCH",
    "MISMATCHED_ENDPOINT_TYPE",
    "UNSUPPORTED_ENDPOINT_TYPE",
    "UNKNOWN_CONTROLLER_ID",
    "UNKNOWN_SUBSCRIPTION_ID",
    "TELEMETRY_TOO_LARGE",
    "INVALID_REGISTRATION",
    "TRANSACTION_ABORTABLE",
    "INVALID_RECORD_STATE",
    "SHARE_SESSION_NOT_FOUND",
    "INVALID_SHARE_SESSION_EPOCH",
    "FENCED_STATE_EPOCH",
    "INVALID_VOTER_KEY",
    "DUPLICATE_VOTER",
    "VOTER_NOT_FOUND",
    "INVALID_REGULAR_EXPRESSION",
    "REBOOTSTRAP_REQUIRED",
    "STREAMS_INVALID_TOPOLOGY",
    "STREAMS_INVALID_TOPOLOGY_EPOCH",
    "STREAMS_TOPOLOGY_FENCED",
    "SHARE_SESSION_LIMIT_REACHED",
    "GROUP_DELETION_FAILED",
    "STREAMS_TOPOLOGY_DESCRIPTION_UPDATE_FAILED",
    "CONTROLLER_ID_NOT_REGISTERED",
];

/// Kafka's name of an error code; a code Kafka does not define is UNKNOWN_SERVER_ERROR, as
/// `Errors.forCode` reads it.
fn error_name(code: i16) -> &'static str {
    usize::try_from(i32::from(code) + 1)
        .ok()
        .and_then(|i| ERROR_NAMES.get(i).copied())
        .unwrap_or("UNKNOWN_SERVER_ERROR")
}

/// The error codes a response carries, each where Kafka's `AbstractResponse.errorCounts`
/// counts it (per partition, per resource, or the top-level code), for ErrorsPerSec.
/// Implemented for every response type the broker encodes through `request::encode`.
pub(crate) trait ErrorCounts {
    /// The response's API key.
    const API_KEY: i16;

    /// Calls `each` once per counted error code (NONE included) of this response at `version`.
    fn error_codes(&self, version: i16, each: &mut dyn FnMut(i16));
}

/// Implements [`ErrorCounts`] for response types: `Type => |response, version, each| body`.
macro_rules! error_counts {
    ($($ty:ident => |$r:ident, $v:ident, $f:ident| $body:expr;)*) => {
        $(
            impl ErrorCounts for gregor_protocol::messages::$ty {
                const API_KEY: i16 = <<gregor_protocol::messages::$ty as ResponseOf>::Request
                    as gregor_protocol::protocol::Request>::KEY;
                fn error_codes(&self, version: i16, each: &mut dyn FnMut(i16)) {
                    let ($r, $v, $f) = (self, version, each);
                    let _ = $v;
                    $body
                }
            }
        )*

        /// [`response_errors`] for a response known only as `Any` (what `request::encode`
        /// holds): the listed types in order, the first (Produce) at the cost of one type
        /// comparison; any other type counts nothing.
        pub(crate) fn response_errors_any(response: &dyn std::any::Any, version: i16) {
            if RECORDER.get().is_none() {
                return;
            }
            $(
                if let Some(r) = response.downcast_ref::<gregor_protocol::messages::$ty>() {
                    return response_errors(r, version);
                }
            )*
        }
    };
}

/// The request type of a response type (kafka-protocol links them the other way).
pub(crate) trait ResponseOf {
    type Request: gregor_protocol::protocol::Request;
}

macro_rules! response_of {
    ($($req:ident => $resp:ident),* $(,)?) => {
        $(impl ResponseOf for gregor_protocol::messages::$resp {
            type Request = gregor_protocol::messages::$req;
        })*
    };
}

response_of! {
    ApiVersionsRequest => ApiVersionsResponse,
    SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticateRequest => SaslAuthenticateResponse,
    ProduceRequest => ProduceResponse,
    FetchRequest => FetchResponse,
    MetadataRequest => MetadataResponse,
    ListOffsetsRequest => ListOffsetsResponse,
    OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse,
    CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopicsRequest => DeleteTopicsResponse,
    CreatePartitionsRequest => CreatePartitionsResponse,
    DeleteRecordsRequest => DeleteRecordsResponse,
    DescribeConfigsRequest => DescribeConfigsResponse,
    AlterConfigsRequest => AlterConfigsResponse,
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    FindCoordinatorRequest => FindCoordinatorResponse,
    JoinGroupRequest => JoinGroupResponse,
    SyncGroupRequest => SyncGroupResponse,
    HeartbeatRequest => HeartbeatResponse,
    LeaveGroupRequest => LeaveGroupResponse,
    OffsetCommitRequest => OffsetCommitResponse,
    OffsetFetchRequest => OffsetFetchResponse,
    OffsetDeleteRequest => OffsetDeleteResponse,
    ListGroupsRequest => ListGroupsResponse,
    DescribeGroupsRequest => DescribeGroupsResponse,
    DeleteGroupsRequest => DeleteGroupsResponse,
    ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse,
    InitProducerIdRequest => InitProducerIdResponse,
    AddPartitionsToTxnRequest => AddPartitionsToTxnResponse,
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse,
    EndTxnRequest => EndTxnResponse,
    TxnOffsetCommitRequest => TxnOffsetCommitResponse,
    WriteTxnMarkersRequest => WriteTxnMarkersResponse,
    DescribeProducersRequest => DescribeProducersResponse,
    DescribeTransactionsRequest => DescribeTransactionsResponse,
    ListTransactionsRequest => ListTransactionsResponse,
    DescribeClusterRequest => DescribeClusterResponse,
    DescribeTopicPartitionsRequest => DescribeTopicPartitionsResponse,
    DescribeLogDirsRequest => DescribeLogDirsResponse,
    DescribeQuorumRequest => DescribeQuorumResponse,
    UpdateFeaturesRequest => UpdateFeaturesResponse,
    UnregisterBrokerRequest => UnregisterBrokerResponse,
    ElectLeadersRequest => ElectLeadersResponse,
    AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
    DescribeAclsRequest => DescribeAclsResponse,
    CreateAclsRequest => CreateAclsResponse,
    DeleteAclsRequest => DeleteAclsResponse,
    DescribeClientQuotasRequest => DescribeClientQuotasResponse,
    AlterClientQuotasRequest => AlterClientQuotasResponse,
    DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
}

error_counts! {
    ProduceResponse => |r, v, f| {
        for t in &r.responses {
            for p in &t.partition_responses {
                f(p.error_code);
            }
        }
    };
    ApiVersionsResponse => |r, v, f| f(r.error_code);
    SaslHandshakeResponse => |r, v, f| f(r.error_code);
    SaslAuthenticateResponse => |r, v, f| f(r.error_code);
    FetchResponse => |r, v, f| {
        f(r.error_code);
        for t in &r.responses {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    MetadataResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
            f(t.error_code);
        }
    };
    ListOffsetsResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    OffsetForLeaderEpochResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    CreateTopicsResponse => |r, v, f| r.topics.iter().for_each(|t| f(t.error_code));
    DeleteTopicsResponse => |r, v, f| r.responses.iter().for_each(|t| f(t.error_code));
    CreatePartitionsResponse => |r, v, f| r.results.iter().for_each(|t| f(t.error_code));
    DeleteRecordsResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    DescribeConfigsResponse => |r, v, f| r.results.iter().for_each(|x| f(x.error_code));
    AlterConfigsResponse => |r, v, f| r.responses.iter().for_each(|x| f(x.error_code));
    IncrementalAlterConfigsResponse => |r, v, f| r.responses.iter().for_each(|x| f(x.error_code));
    FindCoordinatorResponse => |r, v, f| {
        if r.coordinators.is_empty() {
            f(r.error_code);
        }
        r.coordinators.iter().for_each(|c| f(c.error_code));
    };
    JoinGroupResponse => |r, v, f| f(r.error_code);
    SyncGroupResponse => |r, v, f| f(r.error_code);
    HeartbeatResponse => |r, v, f| f(r.error_code);
    LeaveGroupResponse => |r, v, f| {
        f(r.error_code);
        r.members.iter().for_each(|m| f(m.error_code));
    };
    OffsetCommitResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    OffsetFetchResponse => |r, v, f| {
        if v >= 8 {
            for g in &r.groups {
                f(g.error_code);
                for t in &g.topics {
                    for p in &t.partitions {
                        f(p.error_code);
                    }
                }
            }
        } else {
            if v >= 2 {
                f(r.error_code);
            }
            for t in &r.topics {
                for p in &t.partitions {
                    f(p.error_code);
                }
            }
        }
    };
    OffsetDeleteResponse => |r, v, f| {
        f(r.error_code);
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    ListGroupsResponse => |r, v, f| f(r.error_code);
    DescribeGroupsResponse => |r, v, f| r.groups.iter().for_each(|g| f(g.error_code));
    DeleteGroupsResponse => |r, v, f| r.results.iter().for_each(|g| f(g.error_code));
    ConsumerGroupHeartbeatResponse => |r, v, f| f(r.error_code);
    ConsumerGroupDescribeResponse => |r, v, f| r.groups.iter().for_each(|g| f(g.error_code));
    InitProducerIdResponse => |r, v, f| f(r.error_code);
    AddPartitionsToTxnResponse => |r, v, f| {
        if r.results_by_topic_v3_and_below.is_empty() {
            f(r.error_code);
        }
        for t in &r.results_by_topic_v3_and_below {
            t.results_by_partition.iter().for_each(|p| f(p.partition_error_code));
        }
        for x in &r.results_by_transaction {
            for t in &x.topic_results {
                t.results_by_partition.iter().for_each(|p| f(p.partition_error_code));
            }
        }
    };
    AddOffsetsToTxnResponse => |r, v, f| f(r.error_code);
    EndTxnResponse => |r, v, f| f(r.error_code);
    TxnOffsetCommitResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    WriteTxnMarkersResponse => |r, v, f| {
        for m in &r.markers {
            for t in &m.topics {
                for p in &t.partitions {
                    f(p.error_code);
                }
            }
        }
    };
    DescribeProducersResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    DescribeTransactionsResponse => |r, v, f| {
        r.transaction_states.iter().for_each(|s| f(s.error_code))
    };
    ListTransactionsResponse => |r, v, f| f(r.error_code);
    DescribeClusterResponse => |r, v, f| f(r.error_code);
    DescribeTopicPartitionsResponse => |r, v, f| {
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
            f(t.error_code);
        }
    };
    DescribeLogDirsResponse => |r, v, f| {
        f(r.error_code);
        r.results.iter().for_each(|d| f(d.error_code));
    };
    DescribeQuorumResponse => |r, v, f| {
        f(r.error_code);
        for t in &r.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    };
    UpdateFeaturesResponse => |r, v, f| f(r.error_code);
    UnregisterBrokerResponse => |r, v, f| f(r.error_code);
    ElectLeadersResponse => |r, v, f| {
        f(r.error_code);
        for e in &r.replica_election_results {
            e.partition_result.iter().for_each(|p| f(p.error_code));
        }
    };
    AlterPartitionReassignmentsResponse => |r, v, f| {
        f(r.error_code);
        for t in &r.responses {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    };
    ListPartitionReassignmentsResponse => |r, v, f| f(r.error_code);
    DescribeAclsResponse => |r, v, f| f(r.error_code);
    CreateAclsResponse => |r, v, f| r.results.iter().for_each(|x| f(x.error_code));
    DeleteAclsResponse => |r, v, f| r.filter_results.iter().for_each(|x| f(x.error_code));
    DescribeClientQuotasResponse => |r, v, f| f(r.error_code);
    AlterClientQuotasResponse => |r, v, f| r.entries.iter().for_each(|x| f(x.error_code));
    DescribeUserScramCredentialsResponse => |r, v, f| {
        r.results.iter().for_each(|x| f(x.error_code))
    };
    AlterUserScramCredentialsResponse => |r, v, f| r.results.iter().for_each(|x| f(x.error_code));
}

/// One API's ErrorsPerSec handles by error code (index code + 1), taken on first use.
type ErrorHandles = [OnceLock<Counter>; ERROR_NAMES.len()];

/// Counts a response's error codes under ErrorsPerSec (`request` is the API's name: a fetch
/// is `Fetch` here, as Kafka's `updateErrorMetrics` names it). Nothing without a recorder.
pub(crate) fn response_errors<R: ErrorCounts>(response: &R, version: i16) {
    if RECORDER.get().is_none() {
        return;
    }
    response.error_codes(version, &mut |code| count_error(R::API_KEY, code));
}

/// One error code in a response of API `key`: an atomic add once its handle is taken.
pub(crate) fn count_error(key: i16, code: i16) {
    static HANDLES: OnceLock<Vec<OnceLock<Box<ErrorHandles>>>> = OnceLock::new();
    if RECORDER.get().is_none() {
        return;
    }
    let handles = HANDLES.get_or_init(|| (0..=u8::MAX).map(|_| OnceLock::new()).collect());
    let Some(api) = usize::try_from(key).ok().and_then(|k| handles.get(k)) else {
        return;
    };
    let api = api.get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
    // A code Kafka does not define counts as UNKNOWN_SERVER_ERROR (index 0).
    let index = usize::try_from(i32::from(code) + 1)
        .ok()
        .filter(|i| *i < ERROR_NAMES.len())
        .unwrap_or(0);
    api[index]
        .get_or_init(
            || counter!(ERRORS, "request" => request_name(key), "error" => error_name(code)),
        )
        .increment(1);
}

/// An ISR change a leader proposed: a shrink or an expansion.
pub(crate) fn isr_change(shrink: bool) {
    if shrink {
        counter!(ISR_SHRINKS).increment(1);
    } else {
        counter!(ISR_EXPANDS).increment(1);
    }
}

/// The tokio runtime's idle fraction over the last sampling interval, as `f64` bits
/// (`u64::MAX`: not sampled yet).
static RUNTIME_IDLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);
/// The last sample: when, and the workers' total busy time then.
static RUNTIME_SAMPLE: std::sync::Mutex<Option<(std::time::Instant, Duration)>> =
    std::sync::Mutex::new(None);

/// Samples the current tokio runtime's busy time (call it every few seconds, from a task on
/// that runtime): the idle fraction between two samples is what `/metrics` reports for Kafka's
/// request-handler and network-processor idle percentages, which are one pool here.
pub(crate) fn sample_runtime() {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let m = handle.metrics();
    let workers = m.num_workers();
    let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
    let now = std::time::Instant::now();
    let Ok(mut last) = RUNTIME_SAMPLE.lock() else {
        return;
    };
    if let Some((at, busy_then)) = *last {
        let wall = now.duration_since(at).as_secs_f64() * workers as f64;
        if wall > 0.0 {
            let used = busy.saturating_sub(busy_then).as_secs_f64();
            let idle = (1.0 - used / wall).clamp(0.0, 1.0);
            RUNTIME_IDLE.store(idle.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }
    *last = Some((now, busy));
}

/// One log fsync and how long it took.
pub(crate) fn log_flushed(elapsed: Duration) {
    histogram!(LOG_FLUSH).record(elapsed.as_secs_f64() * 1000.0);
}

/// A client connection opened on `listener`; closing it is dropping the guard.
pub(crate) fn connection_opened(listener: &str) -> ConnectionGuard {
    let gauge = metrics::gauge!(CONNECTIONS, "listener" => listener.to_string());
    gauge.increment(1.0);
    counter!(CONNECTIONS_CREATED, "listener" => listener.to_string()).increment(1);
    ConnectionGuard(gauge)
}

/// A SASL re-authentication on `listener` ended, well or not (Kafka's
/// successful-/failed-reauthentication-total).
pub(crate) fn reauthentication(listener: &str, succeeded: bool) {
    let name = if succeeded {
        REAUTHENTICATED
    } else {
        REAUTHENTICATION_FAILED
    };
    counter!(name, "listener" => listener.to_string()).increment(1);
}

/// A connection on `listener` closed because its SASL session expired
/// (expired-connections-killed-count).
pub(crate) fn expired_connection_killed(listener: &str) {
    counter!(EXPIRED_KILLED, "listener" => listener.to_string()).increment(1);
}

/// Counts an open connection until dropped.
pub(crate) struct ConnectionGuard(metrics::Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What `/metrics` reads its gauges from: this node's broker (once it serves) and its metadata
/// quorum.
#[derive(Debug, Default)]
pub struct Source {
    /// The broker, set once it serves clients.
    pub broker: OnceLock<Arc<Broker>>,
    /// The metadata quorum (a controller-only node has no broker).
    pub quorum: OnceLock<Arc<gregor_raft::MetadataQuorum>>,
    /// This node's id.
    pub node_id: i32,
    /// Whether this node runs a controller (`process.roles`).
    pub controller: bool,
    /// Whether this node runs a broker (`process.roles`).
    pub broker_role: bool,
    /// The console's last overview and when it was gathered: requests within a second of it
    /// share it, and one overview is gathered at a time, however many browsers poll.
    pub overview: tokio::sync::Mutex<Option<(std::time::Instant, Arc<String>)>>,
    /// The metadata quorum's counters at the last sample, and the rates between the last two.
    pub raft_window: std::sync::Mutex<RaftWindow>,
    /// The client that asks other leaders for their partitions' end offsets (consumer lag),
    /// kept between scrapes; dropped after an error and connected again at the next scrape.
    pub lag_client: tokio::sync::Mutex<Option<gregor_client::Consumer>>,
}

/// Kafka's raft-metrics rates and average commit latency, over the interval between the last
/// two samples of the quorum's counters ([`sample_raft`], every 5 s).
#[derive(Debug, Default)]
pub struct RaftWindow {
    /// When, and `(applied records, proposed records, commits, commit µs)` then.
    last: Option<(std::time::Instant, [u64; 4])>,
    /// `(append records/s, fetch records/s, average commit ms or NaN)`.
    rates: Option<(f64, f64, f64)>,
}

/// Samples the quorum's counters into `source.raft_window`.
pub(crate) fn sample_raft(source: &Source) {
    let Some(quorum) = source.quorum.get() else {
        return;
    };
    let c = quorum.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let now_totals = [
        load(&c.applied_records),
        load(&c.proposed_records),
        load(&c.commits),
        load(&c.commit_micros),
    ];
    let now = std::time::Instant::now();
    let Ok(mut w) = source.raft_window.lock() else {
        return;
    };
    if let Some((at, then)) = w.last {
        let secs = now.duration_since(at).as_secs_f64();
        if secs > 0.0 {
            let d = |i: usize| now_totals[i].saturating_sub(then[i]) as f64;
            let commit_ms = if d(2) > 0.0 {
                d(3) / d(2) / 1000.0
            } else {
                f64::NAN
            };
            // Records a follower applied from the leader: all applied but its own proposals.
            let fetched = (d(0) - d(1)).max(0.0);
            w.rates = Some((d(1) / secs, fetched / secs, commit_ms));
        }
    }
    w.last = Some((now, now_totals));
}

/// How long a scrape waits for other leaders' end offsets before it reports the lag it has.
const LAG_TIMEOUT: Duration = Duration::from_secs(3);

/// The consumer lag of the groups this broker coordinates: each group is reported once in
/// the cluster, by its coordinator (kafka_exporter's `kafka_consumergroup_*` names).
struct Lag {
    groups: Vec<gregor_group::GroupOffsets>,
    /// Log end offsets (high watermarks) of the partitions the groups committed to.
    ends: std::collections::BTreeMap<(String, i32), i64>,
}

/// Gathers [`Lag`]: committed offsets from the coordinator, end offsets from the local
/// leaders, and through gregor-client from the others (within [`LAG_TIMEOUT`]; a partition
/// whose end offset is not known then has no lag series).
async fn consumer_lag(source: &Source, broker: &Arc<Broker>) -> Lag {
    let mut groups = broker.groups.core().committed_offsets();
    // Offsets of a deleted topic are no lag (the coordinator keeps them; Kafka deletes them).
    let image = broker.replicas.image();
    for g in &mut groups {
        g.offsets
            .retain(|(t, _, _)| image.topics().topic_by_name(t).is_some());
    }
    groups.retain(|g| !g.offsets.is_empty());
    {
        let consumer = broker.groups.consumer();
        for g in &mut groups {
            if let Some(cg) = consumer.group(&g.group_id) {
                g.members = cg.members().len();
            }
        }
    }
    let mut ends = std::collections::BTreeMap::new();
    let mut remote: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for (topic, partition, _) in groups.iter().flat_map(|g| &g.offsets) {
        if ends.contains_key(&(topic.clone(), *partition)) {
            continue;
        }
        match broker.replicas.partition(topic, *partition) {
            Some((_, part)) if part.is_leader() => {
                ends.insert((topic.clone(), *partition), part.high_watermark());
            }
            _ => {
                let ps = remote.entry(topic.clone()).or_default();
                if !ps.contains(partition) {
                    ps.push(*partition);
                }
            }
        }
    }
    if !remote.is_empty() {
        let ask = async {
            let mut client = source.lag_client.lock().await;
            if client.is_none() {
                let listener = broker.config.inter_broker_listener_name();
                let (host, port) = broker.advertised_on(&listener).clone();
                let config = gregor_client::ClientConfig {
                    client_id: format!("gregor-metrics-{}", broker.config.node_id),
                    connect_timeout: LAG_TIMEOUT,
                    request_timeout: LAG_TIMEOUT,
                    security: broker.config.inter_broker_security.clone(),
                    ..gregor_client::ClientConfig::default()
                };
                match gregor_client::Consumer::connect(
                    &format!("{host}:{port}"),
                    &config,
                    gregor_client::ConsumerConfig::default(),
                )
                .await
                {
                    Ok(c) => *client = Some(c),
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics: cannot ask the leaders for end offsets");
                        return;
                    }
                }
            }
            let Some(c) = client.as_mut() else { return };
            let mut failed = false;
            for (topic, partitions) in &remote {
                // A topic deleted since the group committed to it fails alone.
                match c
                    .list_offsets(topic, partitions, gregor_client::OffsetSpec::Latest)
                    .await
                {
                    Ok(found) => {
                        for (p, end) in found {
                            ends.insert((topic.clone(), p), end);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(topic = %topic, error = %e, "metrics: no end offsets");
                        failed = true;
                    }
                }
            }
            if failed {
                // Connected again at the next scrape, in case the connection is what failed.
                *client = None;
            }
        };
        let _ = tokio::time::timeout(LAG_TIMEOUT, ask).await;
    }
    Lag { groups, ends }
}

/// kafka_exporter's consumer-group series.
fn lag_gauges(g: &mut Gauges<'_>, lag: &Lag) {
    g.family(
        "kafka_consumergroup_members",
        "Members of a group this broker coordinates.",
    );
    for grp in &lag.groups {
        g.value(&[("consumergroup", &grp.group_id)], grp.members);
    }
    g.family(
        "kafka_consumergroup_current_offset",
        "A group's committed offset of a partition.",
    );
    for grp in &lag.groups {
        for (t, p, o) in &grp.offsets {
            g.group_partition(&grp.group_id, t, *p, o);
        }
    }
    g.family(
        "kafka_consumergroup_lag",
        "A partition's end offset minus the group's committed offset (at least 0).",
    );
    let mut sums: std::collections::BTreeMap<(&str, &str), (i64, i64)> = Default::default();
    for grp in &lag.groups {
        for (t, p, o) in &grp.offsets {
            let sum = sums.entry((grp.group_id.as_str(), t.as_str())).or_default();
            sum.0 += o;
            if let Some(end) = lag.ends.get(&(t.clone(), *p)) {
                let l = (end - o).max(0);
                sum.1 += l;
                g.group_partition(&grp.group_id, t, *p, l);
            }
        }
    }
    g.family(
        "kafka_consumergroup_current_offset_sum",
        "The sum of a group's committed offsets of a topic.",
    );
    for ((grp, t), (offsets, _)) in &sums {
        g.value(&[("consumergroup", grp), ("topic", t)], offsets);
    }
    g.family(
        "kafka_consumergroup_lag_sum",
        "The sum of a group's lag on a topic's partitions whose end offset is known.",
    );
    for ((grp, t), (_, l)) in &sums {
        g.value(&[("consumergroup", grp), ("topic", t)], l);
    }
}

/// The whole `/metrics` page: the recorder's events, then the gauges read now.
pub async fn render(handle: &PrometheusHandle, source: &Source) -> String {
    let mut out = handle.render();
    if let Some(broker) = source.broker.get() {
        // A deleted topic's counters leave the page with it, as Kafka removes its meters (the
        // recorder cannot unregister them, so they are left out here).
        let image = broker.replicas.image();
        out = without_deleted_topics(&out, |t| image.topics().topic_by_name(t).is_some());
    }
    let lag = match source.broker.get() {
        Some(broker) => Some(consumer_lag(source, broker).await),
        None => None,
    };
    let mut g = Gauges::new(&mut out);
    if let Some(broker) = source.broker.get() {
        broker_gauges(&mut g, broker);
        if let Some(lag) = &lag {
            lag_gauges(&mut g, lag);
        }
    } else if source.broker_role {
        g.family(
            "kafka_server_kafkaserver_brokerstate",
            "Broker state: 0 starting, 3 running (KafkaServer BrokerState).",
        );
        g.value(&[], 0);
    }
    if let Some(quorum) = source.quorum.get() {
        raft_gauges(&mut g, quorum);
        let rates = source.raft_window.lock().ok().and_then(|w| w.rates);
        if let Some((append, fetch, commit_ms)) = rates {
            for (name, help, v) in [
                (
                    "kafka_server_raftmetrics_append_records_rate",
                    "Metadata records this node appended as leader per second, over the last 5 s.",
                    append,
                ),
                (
                    "kafka_server_raftmetrics_fetch_records_rate",
                    "Metadata records this node took from the leader per second, over the last 5 s.",
                    fetch,
                ),
                (
                    "kafka_server_raftmetrics_commit_latency_avg",
                    "Average ms from a proposal to its commit over the last 5 s (NaN: none).",
                    commit_ms,
                ),
            ] {
                g.family(name, help);
                g.value(&[], Float(v));
            }
        }
        if source.controller {
            controller_gauges(&mut g, quorum, source.node_id);
        }
    }
    let idle = RUNTIME_IDLE.load(std::sync::atomic::Ordering::Relaxed);
    if idle != u64::MAX {
        let idle = f64::from_bits(idle);
        for (name, help) in [
            (
                "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
                "Idle fraction (0-1) of the runtime's worker threads over the last 5 s: gregor \
                 handles requests and network I/O on one pool, so this equals the network \
                 processors' figure.",
            ),
            (
                "kafka_network_socketserver_networkprocessoravgidle_percent",
                "Idle fraction (0-1) of the runtime's worker threads over the last 5 s (the \
                 same pool as the request handlers').",
            ),
        ] {
            g.family(name, help);
            g.value(&[], idle);
        }
    }
    process_gauges(&mut g);
    out
}

/// `page` without the samples labelled with a topic that `exists` says is gone.
fn without_deleted_topics(page: &str, exists: impl Fn(&str) -> bool) -> String {
    const LABEL: &str = "topic=\"";
    let mut out = String::with_capacity(page.len());
    for line in page.split_inclusive('\n') {
        let deleted = !line.starts_with('#')
            && line.find(LABEL).is_some_and(|at| {
                let rest = &line[at + LABEL.len()..];
                // Topic names are [a-zA-Z0-9._-]: no escapes to undo.
                rest.find('"').is_some_and(|end| !exists(&rest[..end]))
            });
        if !deleted {
            out.push_str(line);
        }
    }
    out
}

/// Writes gauge families in Prometheus' text format.
struct Gauges<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Gauges<'a> {
    fn new(out: &'a mut String) -> Gauges<'a> {
        Gauges { out, name: "" }
    }

    /// Starts a family: its HELP and TYPE lines.
    fn family(&mut self, name: &'static str, help: &str) {
        self.family_typed(name, "gauge", help);
    }

    fn family_typed(&mut self, name: &'static str, kind: &str, help: &str) {
        self.name = name;
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family for a group's partition (kafka_exporter's labels).
    fn group_partition(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        v: impl std::fmt::Display,
    ) {
        let p = partition.to_string();
        self.value(
            &[
                ("consumergroup", group),
                ("topic", topic),
                ("partition", &p),
            ],
            v,
        );
    }

    /// One sample of the current family.
    fn value(&mut self, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label(self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// A float sample as the text format writes it (`NaN`, `+Inf`, `-Inf` spelled out).
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_nan() {
            f.write_str("NaN")
        } else if self.0.is_infinite() {
            f.write_str(if self.0 > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// What one partition replica reports, read once per scrape.
struct PartitionGauges {
    topic: String,
    partition: String,
    leader: bool,
    replicas: usize,
    isr: usize,
    min_isr: usize,
    offline: bool,
    log: Option<crate::partition::LogStats>,
    lso_lag: i64,
    high_watermark: i64,
}

/// Kafka's `ReplicaManager`, `Partition` and `Log` gauges, and the broker state.
fn broker_gauges(g: &mut Gauges<'_>, broker: &Broker) {
    let mut parts = Vec::new();
    for topic in broker.replicas.topics() {
        let min_isr = usize::try_from(topic.settings.min_insync_replicas.max(1)).unwrap_or(1);
        for (p, part) in &topic.partitions {
            let leader = part.is_leader();
            let lso_lag = if leader {
                let hw = part.high_watermark();
                part.last_stable_offset().map_or(0, |lso| (hw - lso).max(0))
            } else {
                0
            };
            parts.push(PartitionGauges {
                topic: topic.name.clone(),
                partition: p.to_string(),
                leader,
                replicas: part.replicas().len(),
                isr: part.isr().len(),
                min_isr,
                offline: part.is_offline(),
                log: part.log_stats(),
                lso_lag,
                high_watermark: part.high_watermark(),
            });
        }
    }
    let leaders = || parts.iter().filter(|p| p.leader);
    let under_replicated = |p: &PartitionGauges| p.isr < p.replicas;
    let under_min_isr = |p: &PartitionGauges| p.isr < p.min_isr;
    let at_min_isr = |p: &PartitionGauges| p.isr == p.min_isr;

    g.family(
        "kafka_server_kafkaserver_brokerstate",
        "Broker state: 0 starting, 3 running (KafkaServer BrokerState).",
    );
    g.value(&[], 3);
    let offline = parts.iter().filter(|p| p.offline).count();
    let counts: [(&'static str, &str, usize); 7] = [
        (
            "kafka_log_logmanager_offlinelogdirectorycount",
            "1 when a storage error took replicas in the data directory offline.",
            usize::from(offline > 0),
        ),
        (
            "kafka_server_replicamanager_partitioncount",
            "Partition replicas on this broker.",
            parts.len(),
        ),
        (
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads.",
            leaders().count(),
        ),
        (
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replicas.",
            leaders().filter(|p| under_replicated(p)).count(),
        ),
        (
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is below min.insync.replicas.",
            leaders().filter(|p| under_min_isr(p)).count(),
        ),
        (
            "kafka_server_replicamanager_atminisrpartitioncount",
            "Partitions led here whose ISR is exactly min.insync.replicas.",
            leaders().filter(|p| at_min_isr(p)).count(),
        ),
        (
            "kafka_server_replicamanager_offlinereplicacount",
            "Partition replicas here taken offline by a storage error.",
            offline,
        ),
    ];
    for (name, help, n) in counts {
        g.family(name, help);
        g.value(&[], n);
    }

    // Kafka's `kafka.cluster:type=Partition` gauges: the leader's values, 0 on followers.
    type PartitionValue = fn(&PartitionGauges) -> i64;
    let per_leader: [(&'static str, &str, PartitionValue); 6] = [
        (
            "kafka_cluster_partition_underreplicated",
            "1 when the partition's ISR is smaller than its replicas (0 on followers).",
            |p| i64::from(p.isr < p.replicas),
        ),
        (
            "kafka_cluster_partition_underminisr",
            "1 when the partition's ISR is below min.insync.replicas (0 on followers).",
            |p| i64::from(p.isr < p.min_isr),
        ),
        (
            "kafka_cluster_partition_atminisr",
            "1 when the partition's ISR is exactly min.insync.replicas (0 on followers).",
            |p| i64::from(p.isr == p.min_isr),
        ),
        (
            "kafka_cluster_partition_insyncreplicascount",
            "The partition's ISR size (0 on followers).",
            |p| i64::try_from(p.isr).unwrap_or(i64::MAX),
        ),
        (
            "kafka_cluster_partition_replicascount",
            "The partition's replicas (0 on followers).",
            |p| i64::try_from(p.replicas).unwrap_or(i64::MAX),
        ),
        (
            "kafka_cluster_partition_laststableoffsetlag",
            "High watermark minus last stable offset: records held back by open transactions.",
            |p| p.lso_lag,
        ),
    ];
    for (name, help, f) in per_leader {
        g.family(name, help);
        for p in &parts {
            let v = if p.leader { f(p) } else { 0 };
            g.value(&[("topic", &p.topic), ("partition", &p.partition)], v);
        }
    }

    // Kafka's `DelayedOperationPurgatory` sizes.
    let purgatory = broker.replicas.purgatory();
    g.family(
        "kafka_server_delayedoperationpurgatory_purgatorysize",
        "Requests waiting in the purgatory: acks=all produces, long-poll fetches.",
    );
    g.value(
        &[("delayedOperation", "Produce")],
        purgatory.delayed_produces(),
    );
    g.value(
        &[("delayedOperation", "Fetch")],
        purgatory.delayed_fetches(),
    );
    // Kafka's `FetchSessionCache` metrics (KIP-227).
    let sessions = &broker.fetch_sessions;
    let session_gauges: [(&'static str, &str, u64); 3] = [
        (
            "kafka_server_fetchsessioncache_numincrementalfetchsessions",
            "Incremental fetch sessions kept.",
            sessions.len() as u64,
        ),
        (
            "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached",
            "Partitions in the incremental fetch sessions kept.",
            sessions.partitions_cached() as u64,
        ),
        (
            "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_count",
            "Incremental fetch sessions evicted to make room for new ones, since the start.",
            sessions.evictions(),
        ),
    ];
    for (name, help, n) in session_gauges {
        g.family(name, help);
        g.value(&[], n);
    }
    group_gauges(g, broker);

    // kafka_exporter's partition offsets, from each partition's leader (so once a cluster).
    g.family(
        "kafka_topic_partition_current_offset",
        "A partition's high watermark: the offset its next readable record takes (leader only).",
    );
    for p in leaders() {
        g.value(
            &[("topic", &p.topic), ("partition", &p.partition)],
            p.high_watermark,
        );
    }
    g.family(
        "kafka_topic_partition_oldest_offset",
        "A partition's log start offset (leader only).",
    );
    for p in leaders() {
        if let Some(log) = &p.log {
            g.value(
                &[("topic", &p.topic), ("partition", &p.partition)],
                log.log_start_offset,
            );
        }
    }

    // Kafka's `kafka.log:type=Log` gauges, for every replica here.
    type LogValue = fn(&crate::partition::LogStats) -> i64;
    let per_log: [(&'static str, &str, LogValue); 4] = [
        (
            "kafka_log_log_size",
            "Bytes of the partition's log segments.",
            |l| i64::try_from(l.size_bytes).unwrap_or(i64::MAX),
        ),
        (
            "kafka_log_log_numlogsegments",
            "Segments of the partition's log.",
            |l| i64::try_from(l.segments).unwrap_or(i64::MAX),
        ),
        (
            "kafka_log_log_logstartoffset",
            "The log's first offset.",
            |l| l.log_start_offset,
        ),
        (
            "kafka_log_log_logendoffset",
            "The offset the log's next record takes.",
            |l| l.log_end_offset,
        ),
    ];
    for (name, help, f) in per_log {
        g.family(name, help);
        for p in &parts {
            if let Some(log) = &p.log {
                g.value(&[("topic", &p.topic), ("partition", &p.partition)], f(log));
            }
        }
    }
}

/// Kafka 4's `group-coordinator-metrics`: the groups this broker coordinates, by protocol and
/// by state.
fn group_gauges(g: &mut Gauges<'_>, broker: &Broker) {
    let (classic, consumer) = {
        let core = broker.groups.core();
        let consumer = broker.groups.consumer();
        let classic: Vec<String> = core
            .list_groups(&[])
            .into_iter()
            .filter(|l| !consumer.contains_group(&l.group_id))
            .map(|l| l.group_state)
            .collect();
        let consumers: Vec<String> = consumer
            .list_groups(&[], &[])
            .into_iter()
            .map(|l| l.group_state)
            .collect();
        (classic, consumers)
    };
    g.family(
        "kafka_server_group_coordinator_metrics_group_count",
        "Groups this broker coordinates, by protocol.",
    );
    g.value(&[("protocol", "classic")], classic.len());
    g.value(&[("protocol", "consumer")], consumer.len());
    for (name, states) in [
        (
            "kafka_server_group_coordinator_metrics_classic_group_count",
            &classic,
        ),
        (
            "kafka_server_group_coordinator_metrics_consumer_group_count",
            &consumer,
        ),
    ] {
        let mut by_state: std::collections::BTreeMap<String, usize> = Default::default();
        for s in states {
            *by_state.entry(snake_case(s)).or_default() += 1;
        }
        g.family(name, "Groups this broker coordinates, by state.");
        for (state, n) in by_state {
            g.value(&[("state", &state)], n);
        }
    }
}

/// A group state as Kafka's metrics tag it: `PreparingRebalance` → `preparing_rebalance`.
fn snake_case(state: &str) -> String {
    let mut out = String::with_capacity(state.len() + 4);
    for (i, c) in state.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Kafka's `raft-metrics` of the metadata quorum, as this node sees it.
fn raft_gauges(g: &mut Gauges<'_>, quorum: &gregor_raft::MetadataQuorum) {
    let state = quorum.state();
    let leader = state
        .leader
        .and_then(|id| i64::try_from(id).ok())
        .unwrap_or(-1);
    let end = |index: Option<u64>| index.map_or(0, |i| i.saturating_add(1));
    g.family(
        "kafka_server_raftmetrics_current_state",
        "This node's role in the metadata quorum (1 for the current one).",
    );
    // A node outside the voters is Kafka's "observer" (openraft's learner).
    let role = match state.role {
        "learner" => "observer",
        other => other,
    };
    g.value(&[("current_state", role)], 1);
    let vote = quorum
        .voted_for()
        .and_then(|id| i64::try_from(id).ok())
        .unwrap_or(-1);
    let values: [(&'static str, &str, i64); 5] = [
        (
            "kafka_server_raftmetrics_current_vote",
            "The node this node voted for in the current epoch (-1: none).",
            vote,
        ),
        (
            "kafka_server_raftmetrics_current_leader",
            "The metadata quorum's leader as this node knows it (-1: none).",
            leader,
        ),
        (
            "kafka_server_raftmetrics_current_epoch",
            "The metadata quorum's current epoch (Raft term).",
            i64::try_from(state.term).unwrap_or(i64::MAX),
        ),
        (
            "kafka_server_raftmetrics_log_end_offset",
            "The end of this node's copy of the metadata log.",
            i64::try_from(end(state.last_log_index)).unwrap_or(i64::MAX),
        ),
        (
            "kafka_server_raftmetrics_high_watermark",
            "The end of the metadata log this node has applied (committed entries).",
            i64::try_from(end(state.last_applied)).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, v) in values {
        g.family(name, help);
        g.value(&[], v);
    }
}

/// Kafka's `KafkaController` gauges, from this controller's metadata image.
fn controller_gauges(g: &mut Gauges<'_>, quorum: &gregor_raft::MetadataQuorum, node_id: i32) {
    let active = quorum
        .leader()
        .and_then(|id| i32::try_from(id).ok())
        .is_some_and(|id| id == node_id);
    let image = quorum.image().borrow().clone();
    let (mut topics, mut partitions, mut offline, mut imbalance) = (0usize, 0usize, 0usize, 0usize);
    for topic in image.topics().topics() {
        topics += 1;
        for (_, p) in topic.partitions() {
            partitions += 1;
            if p.leader == gregor_metadata::NO_LEADER {
                offline += 1;
            }
            if p.preferred_leader().is_some_and(|pref| pref != p.leader) {
                imbalance += 1;
            }
        }
    }
    let brokers: Vec<_> = image.cluster().brokers().collect();
    let fenced = brokers.iter().filter(|b| b.fenced).count();
    let values: [(&'static str, &str, usize); 7] = [
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller.",
            usize::from(active),
        ),
        (
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster.",
            topics,
        ),
        (
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster.",
            partitions,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader.",
            offline,
        ),
        (
            "kafka_controller_kafkacontroller_preferredreplicaimbalancecount",
            "Partitions not led by their preferred replica.",
            imbalance,
        ),
        (
            "kafka_controller_kafkacontroller_activebrokercount",
            "Registered, unfenced brokers.",
            brokers.len() - fenced,
        ),
        (
            "kafka_controller_kafkacontroller_fencedbrokercount",
            "Registered, fenced brokers.",
            fenced,
        ),
    ];
    for (name, help, n) in values {
        g.family(name, help);
        g.value(&[], n);
    }
}

/// The usual `process_*` metrics of Prometheus clients, from `/proc/self` (Linux).
fn process_gauges(g: &mut Gauges<'_>) {
    let Some(stat) = ProcessStat::read() else {
        return;
    };
    g.family_typed(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
    );
    g.value(&[], stat.cpu_seconds);
    g.family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
    );
    g.value(&[], stat.resident_bytes);
    g.family(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    g.value(&[], stat.start_time_seconds);
    if let Some((read, write)) = disk_io() {
        g.family(
            "kafka_server_kafkaserver_linux_disk_read_bytes",
            "Bytes this process read from storage (/proc/self/io read_bytes).",
        );
        g.value(&[], read);
        g.family(
            "kafka_server_kafkaserver_linux_disk_write_bytes",
            "Bytes this process wrote to storage (/proc/self/io write_bytes).",
        );
        g.value(&[], write);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        g.family("process_open_fds", "Open file descriptors.");
        g.value(&[], fds.count());
    }
    if let Some(max) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        g.family("process_max_fds", "Maximum open file descriptors.");
        g.value(&[], max);
    }
}

/// `read_bytes` and `write_bytes` of `/proc/self/io`: what reached the storage layer, as
/// Kafka's `LinuxIoMetricsCollector` reads them.
fn disk_io() -> Option<(u64, u64)> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("read_bytes:")?, field("write_bytes:")?))
}

/// The fields of `/proc/self/stat` the process metrics need.
struct ProcessStat {
    cpu_seconds: f64,
    resident_bytes: u64,
    start_time_seconds: f64,
}

impl ProcessStat {
    fn read() -> Option<ProcessStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field n is at index n - 3.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let (utime, stime) = (field(14)?, field(15)?);
        let start_ticks = field(22)?;
        let rss_pages = field(24)?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        Some(ProcessStat {
            cpu_seconds: (utime + stime) as f64 / ticks,
            resident_bytes: rss_pages.saturating_mul(rustix::param::page_size() as u64),
            start_time_seconds: boot_time as f64 + start_ticks as f64 / ticks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::ApiKey;

    /// ErrorsPerSec's `error` label: Kafka's `Errors` names; a code Kafka does not define
    /// reads as UNKNOWN_SERVER_ERROR, as `Errors.forCode` reads it.
    #[test]
    fn error_names_are_kafka_s() {
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(100), "UNKNOWN_TOPIC_ID");
        assert_eq!(error_name(136), "CONTROLLER_ID_NOT_REGISTERED");
        assert_eq!(error_name(137), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(-2), "UNKNOWN_SERVER_ERROR");
    }

    /// Where each response's codes are counted, as Kafka's `errorCounts` does: OffsetFetch by
    /// group from v8 (the top-level code from v2 before), FindCoordinator by coordinator from
    /// v4, LeaveGroup's top-level code and each member's.
    #[test]
    fn responses_count_their_codes_where_kafka_does() {
        use gregor_protocol::messages::find_coordinator_response::Coordinator;
        use gregor_protocol::messages::leave_group_response::MemberResponse;
        use gregor_protocol::messages::offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
        };
        use gregor_protocol::messages::{
            FindCoordinatorResponse, LeaveGroupResponse, OffsetFetchResponse,
        };
        fn codes<R: ErrorCounts>(r: &R, version: i16) -> Vec<i16> {
            let mut out = Vec::new();
            r.error_codes(version, &mut |c| out.push(c));
            out
        }
        let old = OffsetFetchResponse::default()
            .with_error_code(16)
            .with_topics(vec![OffsetFetchResponseTopic::default().with_partitions(
                vec![
                    OffsetFetchResponsePartition::default(),
                    OffsetFetchResponsePartition::default().with_error_code(3),
                ],
            )]);
        assert_eq!(codes(&old, 1), vec![0, 3]);
        assert_eq!(codes(&old, 7), vec![16, 0, 3]);
        let new = OffsetFetchResponse::default()
            .with_groups(vec![OffsetFetchResponseGroup::default().with_error_code(69)]);
        assert_eq!(codes(&new, 8), vec![69]);
        let one = FindCoordinatorResponse::default().with_error_code(15);
        assert_eq!(codes(&one, 3), vec![15]);
        let batch = FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default(),
            Coordinator::default().with_error_code(15),
        ]);
        assert_eq!(codes(&batch, 4), vec![0, 15]);
        let leave = LeaveGroupResponse::default()
            .with_members(vec![MemberResponse::default().with_error_code(25)]);
        assert_eq!(codes(&leave, 3), vec![0, 25]);
        assert_eq!(
            <OffsetFetchResponse as ErrorCounts>::API_KEY,
            ApiKey::OffsetFetch as i16
        );
    }

    #[test]
    fn request_names_are_kafka_s() {
        assert_eq!(request_name(0), "Produce");
        assert_eq!(request_name(1), "Fetch");
        assert_eq!(request_name(18), "ApiVersions");
        assert_eq!(request_name(22), "InitProducerId");
        assert_eq!(request_name(-1), "Unknown");
        assert_eq!(request_name(999), "Unknown");
        assert_eq!(version_label(13), "13");
        assert_eq!(RequestKind::api(0).name(), "Produce");
        assert_eq!(RequestKind::FETCH_CONSUMER.name(), "FetchConsumer");
        assert_eq!(RequestKind::FETCH_FOLLOWER.name(), "FetchFollower");
        assert_eq!(RequestKind::api(-3).name(), "Unknown");
        assert_eq!(RequestKind::api(300).name(), "Unknown");
        assert_eq!(version_label(-1), "other");
    }

    #[test]
    fn group_states_are_tagged_as_kafka_tags_them() {
        assert_eq!(snake_case("PreparingRebalance"), "preparing_rebalance");
        assert_eq!(snake_case("Stable"), "stable");
        assert_eq!(snake_case("Empty"), "empty");
    }

    #[test]
    fn a_deleted_topic_s_samples_leave_the_page() {
        let page = "# HELP m help\n# TYPE m counter\nm 3\nm{topic=\"kept\"} 1\n\
                    m{topic=\"gone\"} 2\nn{request=\"Produce\",topic=\"gone\"} 4\n\n";
        assert_eq!(
            without_deleted_topics(page, |t| t == "kept"),
            "# HELP m help\n# TYPE m counter\nm 3\nm{topic=\"kept\"} 1\n\n"
        );
    }

    #[test]
    fn floats_are_written_as_the_text_format_spells_them() {
        assert_eq!(Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Float(0.25).to_string(), "0.25");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        let mut g = Gauges::new(&mut out);
        g.family("x", "help");
        g.value(&[("topic", "a\"b\\c\nd")], 1);
        assert_eq!(
            out,
            "# HELP x help\n# TYPE x gauge\nx{topic=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    /// A produce and a consumer fetch through the handlers, then the page: the topic's
    /// meters count the records and bytes, and the log gauges read its partitions.
    #[tokio::test]
    async fn the_page_counts_a_topic_s_records_and_reads_its_logs() {
        use bytes::Bytes;
        use gregor_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use gregor_protocol::messages::{
            ApiKey, BrokerId, FetchRequest, ProduceRequest, TopicName,
        };

        let handle = install();
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let topic = "stats-unit-topic";
        b.replicas
            .create_topic(topic, 2, 1, Default::default())
            .expect("create");
        let records = |n: usize| {
            let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'v'; 10 + i]).collect();
            let simple: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
            gregor_protocol::batch::encode_simple_batch(1, &simple)
        };
        let (p0, p1) = (records(3), records(2));
        let sent = (p0.len() + p1.len()) as u64;
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(crate::handlers::topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(p0))),
                    PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(Bytes::from(p1))),
                ])]);
        let ctx = crate::request::RequestContext::for_test(ApiKey::Produce, 9);
        assert!(matches!(
            crate::handlers::produce::handle(&b, ctx, req),
            Ok(crate::request::Reply::Ready(_))
        ));
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(crate::handlers::str_bytes(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let ctx = crate::request::RequestContext::for_test(ApiKey::Fetch, 11);
        match crate::handlers::fetch::handle(&b, ctx, fetch) {
            crate::request::Reply::PendingChunks(f) => {
                f.await.expect("fetch answered");
            }
            _ => panic!("a fetch answers with chunks"),
        }

        let source = Source {
            node_id: 1,
            broker_role: true,
            ..Source::default()
        };
        let _ = source.broker.set(Arc::clone(&b));
        let page = render(&handle, &source).await;
        let value = |prefix: &str| -> f64 {
            page.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{prefix} is not on the page:\n{page}"))
        };
        let t = format!("{{topic=\"{topic}\"}}");
        assert_eq!(value(&format!("{MESSAGES_IN}{t}")), 5.0);
        assert_eq!(value(&format!("{BYTES_IN}{t}")), sent as f64);
        assert_eq!(value(&format!("{TOTAL_PRODUCE}{t}")), 2.0);
        assert_eq!(value(&format!("{FAILED_PRODUCE}{t}")), 0.0);
        assert!(value(&format!("{BYTES_OUT}{t}")) > 0.0);
        assert_eq!(value(&format!("{TOTAL_FETCH}{t}")), 1.0);
        assert_eq!(value(&format!("{REPLICATION_BYTES_OUT}{t}")), 0.0);
        let part = |p: i32| format!("{{topic=\"{topic}\",partition=\"{p}\"}}");
        assert_eq!(
            value(&format!("kafka_log_log_logendoffset{}", part(0))),
            3.0
        );
        assert_eq!(
            value(&format!("kafka_log_log_logendoffset{}", part(1))),
            2.0
        );
        assert_eq!(
            value(&format!("kafka_log_log_logstartoffset{}", part(0))),
            0.0
        );
        assert_eq!(
            value(&format!("kafka_log_log_numlogsegments{}", part(0))),
            1.0
        );
        assert!(value(&format!("kafka_log_log_size{}", part(0))) > 0.0);
        assert_eq!(
            value(&format!(
                "kafka_cluster_partition_underreplicated{}",
                part(1)
            )),
            0.0
        );
        assert_eq!(
            value(&format!(
                "kafka_cluster_partition_insyncreplicascount{}",
                part(1)
            )),
            1.0
        );
        assert_eq!(value("kafka_server_kafkaserver_brokerstate "), 3.0);
        assert!(value("kafka_server_replicamanager_leadercount ") >= 2.0);
        assert_eq!(
            value("kafka_server_replicamanager_underreplicatedpartitions "),
            0.0
        );
        assert!(page.contains("# TYPE kafka_server_group_coordinator_metrics_group_count gauge"));
        assert!(page.contains(
            "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Fetch\"}"
        ));
        assert_eq!(
            value("kafka_server_fetchsessioncache_numincrementalfetchsessions "),
            0.0
        );
        assert_eq!(
            value("kafka_server_fetchsessioncache_incrementalfetchsessionevictions_count "),
            0.0
        );
    }

    /// Kafka counts an expected refusal (not the leader, too large, corrupt) as a request,
    /// not as a failed one; an invalid record or a sequence error as both.
    #[tokio::test]
    async fn expected_refusals_are_not_failures() {
        let handle = install();
        let stats = TopicStats::new("stats-unit-refusals");
        stats.produce_failed(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        stats.produce_failed(ErrorCode::MESSAGE_TOO_LARGE);
        stats.produce_failed(ErrorCode::INVALID_RECORD);
        stats.produce_failed(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
        stats.fetch_failed(ErrorCode::OFFSET_OUT_OF_RANGE);
        stats.fetch_failed(ErrorCode::FENCED_LEADER_EPOCH);
        stats.fetch_failed(ErrorCode::UNKNOWN_SERVER_ERROR);
        let page = render(&handle, &Source::default()).await;
        let value = |name: &str| -> f64 {
            let prefix = format!("{name}{{topic=\"stats-unit-refusals\"}} ");
            page.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{prefix} is not on the page"))
        };
        assert_eq!(value(TOTAL_PRODUCE), 4.0);
        assert_eq!(value(FAILED_PRODUCE), 2.0);
        assert_eq!(value(TOTAL_FETCH), 3.0);
        assert_eq!(value(FAILED_FETCH), 1.0);
    }

    #[test]
    fn the_process_reads_itself() {
        let stat = ProcessStat::read().expect("Linux /proc");
        assert!(stat.resident_bytes > 0);
        assert!(stat.start_time_seconds > 1.6e9);
        assert!(stat.cpu_seconds >= 0.0);
    }
}
