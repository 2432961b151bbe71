//! The client's error type: transport failures, protocol violations by the peer, and Kafka error
//! codes returned by the broker, kept apart so callers can tell "retry" from "give up".

use gregor_protocol::error::ErrorCode;
use std::time::Duration;

/// Everything that can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Address dialled.
        addr: String,
        /// Underlying socket error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed (including the peer closing it).
    #[error("i/o error talking to {addr}: {source}")]
    Io {
        /// Broker address.
        addr: String,
        /// Underlying socket error.
        source: std::io::Error,
    },
    /// The operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A request could not be encoded (a field not valid at the negotiated version, ...).
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// The broker sent bytes that do not decode as the expected response.
    #[error("cannot decode response from {addr}: {message}")]
    Decode {
        /// Broker address.
        addr: String,
        /// What the decoder said.
        message: String,
    },
    /// The broker broke the protocol (wrong correlation id, oversized frame, ...).
    #[error("protocol error from {addr}: {message}")]
    Protocol {
        /// Broker address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// Neither side supports a common version of an API.
    #[error("broker {addr} does not support {api} at any version this client speaks")]
    UnsupportedApi {
        /// Broker address.
        addr: String,
        /// API name, e.g. `Produce`.
        api: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// The error code.
        code: ErrorCode,
        /// The broker's error message, if it sent one.
        message: Option<String>,
        /// What the code applies to (topic, partition, request).
        context: String,
    },
    /// The cluster metadata does not know a leader for a partition.
    #[error("no leader known for {topic}-{partition}")]
    NoLeader {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The caller asked for something impossible (bad partition, bad address, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A copy of another error's text (errors holding an `io::Error` cannot be cloned).
    #[error("{0}")]
    Other(String),
    /// A record batch could not be built or read.
    #[error("record batch error: {0}")]
    Records(String),
}

impl ClientError {
    /// Builds a [`ClientError::Kafka`] from a non-zero code, or returns `Ok(())` for code 0.
    pub fn check(code: i16, message: Option<&str>, context: impl FnOnce() -> String) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(ClientError::Kafka {
                code: ErrorCode(code),
                message: message.map(str::to_owned),
                context: context(),
            })
        }
    }

    /// A response from `addr` that has no result for `key` (`api` names the request).
    pub(crate) fn no_result(addr: &str, api: &str, key: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            addr: addr.to_owned(),
            message: format!("{api} response has no result for {key}"),
        }
    }

    /// The first of a response's results (the one asked for), or [`ClientError::no_result`].
    pub(crate) fn first_result<T>(results: Vec<T>, addr: &str, api: &str, key: &str) -> Result<T> {
        results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::no_result(addr, api, key))
    }

    /// The Kafka error code, when this is a broker-reported error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when refreshing metadata and trying again may succeed (leader moved, topic being
    /// created, connection dropped).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => matches!(
                *code,
                ErrorCode::NOT_LEADER_OR_FOLLOWER
                    | ErrorCode::LEADER_NOT_AVAILABLE
                    | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    | ErrorCode::REQUEST_TIMED_OUT
                    | ErrorCode::NOT_ENOUGH_REPLICAS
                    | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    | ErrorCode::FENCED_LEADER_EPOCH
                    | ErrorCode::UNKNOWN_LEADER_EPOCH
                    | ErrorCode::KAFKA_STORAGE_ERROR
                    | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
                    | ErrorCode::OFFSET_NOT_AVAILABLE
            ),
            ClientError::Io { .. } | ClientError::Connect { .. } | ClientError::NoLeader { .. } => {
                true
            }
            _ => false,
        }
    }
}

/// Result alias used throughout the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_result_or_a_protocol_error() {
        assert!(matches!(
            ClientError::first_result(vec![7, 8], "b:9092", "ShareGroupDescribe", "g"),
            Ok(7)
        ));
        match ClientError::first_result(Vec::<i32>::new(), "b:9092", "ShareGroupDescribe", "g") {
            Err(ClientError::Protocol { addr, message }) => {
                assert_eq!(addr, "b:9092");
                assert_eq!(message, "ShareGroupDescribe response has no result for g");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
