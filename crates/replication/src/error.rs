//! Kafka error codes the replication core answers with, and its two error types.
//!
//! [`ReplicationError`] is what a peer gets back (a client's produce, a follower's fetch): each
//! variant maps to the Kafka error code the broker copies into that partition's response.
//! [`StateError`] is a caller mistake or a stale input from the broker's own runtime (an old
//! registration, a log end that went backwards); it is logged, never sent on the wire.

/// Kafka error codes (`org.apache.kafka.common.protocol.Errors`) used by replication.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const STALE_BROKER_EPOCH: i16 = 77;
    pub const INVALID_UPDATE_VERSION: i16 = 95;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INELIGIBLE_REPLICA: i16 = 107;
    pub const NEW_LEADER_ELECTED: i16 = 108;
}

/// A partition-level error for a peer's request; [`ReplicationError::code`] is the wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("this broker is not the leader of the partition")]
    NotLeaderOrFollower,
    #[error("request leader epoch {request} is older than the current leader epoch {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    #[error("request leader epoch {request} is newer than the current leader epoch {current}")]
    UnknownLeaderEpoch { request: i32, current: i32 },
    #[error("replica {replica_id} is not one of the partition's replicas")]
    UnknownReplica {
        replica_id: i32,
        /// Kafka answers UNKNOWN_LEADER_EPOCH when the request carried a leader epoch (the
        /// replica may be a reassignment target the leader has not heard of yet), else
        /// NOT_LEADER_OR_FOLLOWER.
        code: i16,
    },
    #[error("replica {replica_id} fetched with broker epoch {request}, older than {known}")]
    StaleBrokerEpoch {
        replica_id: i32,
        request: i64,
        known: i64,
    },
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("the ISR has {isr} replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    #[error("appended, but the ISR has {isr} replicas, fewer than min.insync.replicas {min_isr}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_isr: usize },
}

impl ReplicationError {
    /// The Kafka error code to put in the partition's response.
    pub fn code(&self) -> i16 {
        match self {
            ReplicationError::NotLeaderOrFollower => code::NOT_LEADER_OR_FOLLOWER,
            ReplicationError::FencedLeaderEpoch { .. } => code::FENCED_LEADER_EPOCH,
            ReplicationError::UnknownLeaderEpoch { .. } => code::UNKNOWN_LEADER_EPOCH,
            ReplicationError::UnknownReplica { code, .. } => *code,
            // Kafka fences a stale follower fetch with NOT_LEADER_OR_FOLLOWER.
            ReplicationError::StaleBrokerEpoch { .. } => code::NOT_LEADER_OR_FOLLOWER,
            ReplicationError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
            ReplicationError::NotEnoughReplicas { .. } => code::NOT_ENOUGH_REPLICAS,
            ReplicationError::NotEnoughReplicasAfterAppend { .. } => {
                code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            }
        }
    }
}

/// An input the core refused because it contradicts its state; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("registration with leader epoch {leader_epoch} / partition epoch {partition_epoch} is older than the current {current_leader_epoch} / {current_partition_epoch}")]
    StaleRegistration {
        leader_epoch: i32,
        partition_epoch: i32,
        current_leader_epoch: i32,
        current_partition_epoch: i32,
    },
    #[error("registration names leader {leader}, not this broker {local}")]
    NotTheLeader { leader: i32, local: i32 },
    #[error("registration names this broker {local} as leader of a follower transition")]
    LeaderIsLocal { local: i32 },
    #[error("registration does not list this broker {local} among replicas {replicas:?}")]
    NotAReplica { local: i32, replicas: Vec<i32> },
    #[error("operation needs the {expected} role")]
    WrongRole { expected: &'static str },
    #[error("log end offset {new} is below the current {current}")]
    LogEndWentBackwards { new: i64, current: i64 },
    #[error("log offsets out of order: start {log_start_offset}, high watermark {high_watermark}, end {log_end_offset}")]
    InvalidLogOffsets {
        log_start_offset: i64,
        high_watermark: i64,
        log_end_offset: i64,
    },
}
