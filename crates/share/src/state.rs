//! What the share-partition leader and the share coordinator exchange: the key of a
//! share-partition, its persisted state, and the group settings that shape it (KIP-932).

use uuid::Uuid;

/// One share-partition: a share group's view of one topic partition. The share coordinator
/// keys its state by it (`"<group>:<topic id>:<partition>"` in FindCoordinator key type 2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    /// The share group.
    pub group_id: String,
    /// The topic's id (share groups name topics by id on the wire).
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
}

impl ShareKey {
    /// The key as FindCoordinator key type 2 (SHARE) takes it: `group:topicId:partition`,
    /// the topic id in Kafka's base64 form.
    pub fn coordinator_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.group_id,
            kafka_uuid_string(self.topic_id),
            self.partition
        )
    }
}

/// Kafka's string form of a UUID (URL-safe base64 without padding, as `Uuid.toString()`).
pub fn kafka_uuid_string(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out
}

/// A record's delivery state, as persisted in state batches (Kafka's `RecordState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum DeliveryState {
    /// May be acquired by a consumer.
    Available = 0,
    /// Handed to a consumer, under an acquisition lock (never persisted as such: a reload
    /// makes it available again).
    Acquired = 1,
    /// Acknowledged (accepted) by a consumer: never delivered again.
    Acknowledged = 2,
    /// Rejected, past the delivery count limit, or skipped as a gap: never delivered again.
    Archived = 4,
}

impl DeliveryState {
    /// The state for a persisted code; `None` for an unknown one.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Available),
            1 => Some(Self::Acquired),
            2 => Some(Self::Acknowledged),
            4 => Some(Self::Archived),
            _ => None,
        }
    }

    /// The persisted code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// An acknowledgement type of ShareFetch / ShareAcknowledge (KIP-932).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum AcknowledgeType {
    /// Offsets that are not records (compacted away, or control records): archived.
    Gap = 0,
    /// Processed: the record is done.
    Accept = 1,
    /// Give the record back, to be delivered again (its delivery count stays).
    Release = 2,
    /// Unprocessable: archived, never delivered again.
    Reject = 3,
    /// Still being processed (KIP-1222, ShareFetch/ShareAcknowledge v2 with IsRenewAck): the
    /// record stays acquired by the member and its acquisition lock starts again.
    Renew = 4,
}

impl AcknowledgeType {
    /// The type for a wire code; `None` for an unknown one (INVALID_REQUEST).
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::Gap),
            1 => Some(Self::Accept),
            2 => Some(Self::Release),
            3 => Some(Self::Reject),
            4 => Some(Self::Renew),
            _ => None,
        }
    }
}

/// A run of offsets in one delivery state, as persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateBatch {
    /// First offset of the run.
    pub first_offset: i64,
    /// Last offset of the run, inclusive.
    pub last_offset: i64,
    /// Their state (persisted runs are Available, Acknowledged or Archived).
    pub delivery_state: DeliveryState,
    /// How many times they were delivered.
    pub delivery_count: i16,
}

impl StateBatch {
    /// The run `first..=last` in `state`, delivered `count` times.
    pub const fn new(first: i64, last: i64, state: DeliveryState, count: i16) -> StateBatch {
        StateBatch {
            first_offset: first,
            last_offset: last,
            delivery_state: state,
            delivery_count: count,
        }
    }
}

/// A share-partition's durable state: where it starts and what is decided past that.
/// Offsets below `start_offset` are done; at or above it, an offset in no batch is Available
/// with delivery count 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedState {
    /// Bumped when an administrator resets the share-partition (AlterShareGroupOffsets,
    /// DeleteShareGroupOffsets): a leader writing with an older one is fenced.
    pub state_epoch: i32,
    /// The share-partition start offset (SPSO); -1: not decided yet, the leader decides it
    /// from `share.auto.offset.reset` when it first loads the share-partition.
    pub start_offset: i64,
    /// The runs past `start_offset` that are not plain Available-with-count-0, in offset order.
    pub state_batches: Vec<StateBatch>,
}

impl PersistedState {
    /// The delivery-complete count the leader writes with this state (KIP-1226, Kafka's
    /// `SharePartition.deliveryCompleteCount`): the offsets at or past the start offset whose
    /// delivery is complete (Acknowledged or Archived). -1 while the start offset is not
    /// decided. DescribeShareGroupOffsets v1's lag is the high watermark minus the start
    /// offset minus this count.
    pub fn delivery_complete_count(&self) -> i32 {
        if self.start_offset < 0 {
            return -1;
        }
        let complete: i64 = self
            .state_batches
            .iter()
            .filter(|b| {
                matches!(
                    b.delivery_state,
                    DeliveryState::Acknowledged | DeliveryState::Archived
                )
            })
            .map(|b| {
                let first = b.first_offset.max(self.start_offset);
                b.last_offset.saturating_sub(first).saturating_add(1).max(0)
            })
            .fold(0i64, i64::saturating_add);
        i32::try_from(complete).unwrap_or(i32::MAX)
    }
}

/// What ReadShareGroupStateSummary (DescribeShareGroupOffsets) shows of a share-partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSummary {
    /// The state epoch.
    pub state_epoch: i32,
    /// The leader epoch of the last write (-1 before any).
    pub leader_epoch: i32,
    /// The share-partition start offset, or -1 when not decided yet.
    pub start_offset: i64,
    /// Offsets at or past the start offset whose delivery is complete, as the leader last
    /// wrote it (KIP-1226); -1 when not known (never written, or written by a v0 leader).
    pub delivery_complete_count: i32,
}

impl StateSummary {
    /// Whether a lag can be told: the start offset is decided and the leader wrote its
    /// delivery-complete count (Kafka's `shouldComputeSharePartitionLag`).
    pub fn has_lag(&self) -> bool {
        self.start_offset != -1 && self.delivery_complete_count != -1
    }

    /// The share-partition's lag (KIP-1226) against the partition's `high_watermark`: the
    /// records from the start offset up to the high watermark whose delivery is not complete
    /// (high watermark - start offset - delivery-complete count, as Kafka 4.4's
    /// `GroupCoordinatorService` computes it, not clamped). `None` when it cannot be told.
    pub fn lag(&self, high_watermark: i64) -> Option<i64> {
        self.has_lag().then(|| {
            high_watermark
                .saturating_sub(self.start_offset)
                .saturating_sub(i64::from(self.delivery_complete_count))
        })
    }
}

/// Why the persister did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    /// A newer leader wrote the share-partition (FENCED_LEADER_EPOCH): this leader must stop.
    #[error("fenced: a newer leader epoch wrote this share-partition")]
    FencedLeaderEpoch,
    /// An administrator reset the share-partition (FENCED_STATE_EPOCH): reload its state.
    #[error("fenced: the share-partition's state epoch changed")]
    FencedStateEpoch,
    /// The share-partition has no state (never initialized, or deleted).
    #[error("the share-partition has no state")]
    NotInitialized,
    /// The share coordinator cannot be reached or is loading: retry later.
    #[error("the share coordinator is not available: {0}")]
    Unavailable(String),
    /// Anything else, with Kafka's error code.
    #[error("share coordinator error {code}: {message}")]
    Other {
        /// Kafka error code.
        code: i16,
        /// What it said.
        message: String,
    },
}

/// A share group's settings: the group configs (`share.*`, set with kafka-configs
/// `--entity-type groups`) over the broker's `group.share.*` defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareGroupSettings {
    /// `share.auto.offset.reset`: where a new share-partition starts.
    pub auto_offset_reset: AutoOffsetReset,
    /// `share.isolation.level`: true for read_committed.
    pub read_committed: bool,
    /// `share.record.lock.duration.ms` (`group.share.record.lock.duration.ms`, 30 s).
    pub record_lock_duration_ms: u64,
    /// `share.session.timeout.ms` (`group.share.session.timeout.ms`, 45 s).
    pub session_timeout_ms: u64,
    /// `share.heartbeat.interval.ms` (`group.share.heartbeat.interval.ms`, 5 s).
    pub heartbeat_interval_ms: u64,
    /// `group.share.delivery.count.limit` (5): a record delivered this often is archived
    /// when released or when its lock times out.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks` (2000): records in flight per share-partition.
    pub partition_max_record_locks: usize,
    /// `group.share.max.size` (200): members per share group.
    pub max_size: usize,
}

impl Default for ShareGroupSettings {
    fn default() -> Self {
        Self {
            auto_offset_reset: AutoOffsetReset::Latest,
            read_committed: false,
            record_lock_duration_ms: 30_000,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            max_size: 200,
        }
    }
}

/// `share.auto.offset.reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// `earliest`: the log start offset.
    Earliest,
    /// `latest` (the default): the high watermark.
    Latest,
    /// `by_duration:<ISO-8601 duration>`: the first offset whose timestamp is at or after
    /// now minus the duration (milliseconds here).
    ByDurationMs(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_written_as_kafka_writes_it() {
        // Kafka's Uuid.toString of 0x00...01 is "AAAAAAAAAAAAAAAAAAAAAQ".
        let id = Uuid::from_u128(1);
        assert_eq!(kafka_uuid_string(id), "AAAAAAAAAAAAAAAAAAAAAQ");
        let key = ShareKey {
            group_id: "g".into(),
            topic_id: id,
            partition: 3,
        };
        assert_eq!(key.coordinator_key(), "g:AAAAAAAAAAAAAAAAAAAAAQ:3");
    }

    fn batch(first: i64, last: i64, state: DeliveryState) -> StateBatch {
        StateBatch {
            first_offset: first,
            last_offset: last,
            delivery_state: state,
            delivery_count: 1,
        }
    }

    #[test]
    fn the_lag_is_the_high_watermark_less_the_start_and_the_completed() {
        let summary = |start, count| StateSummary {
            state_epoch: 0,
            leader_epoch: 0,
            start_offset: start,
            delivery_complete_count: count,
        };
        // 100 records from 40: 7 of them done, 53 to go.
        assert_eq!(summary(40, 7).lag(100), Some(53));
        assert_eq!(summary(100, 0).lag(100), Some(0));
        // Not known: no start offset yet, or no count written (a v0 leader).
        assert_eq!(summary(-1, 0).lag(100), None);
        assert_eq!(summary(40, -1).lag(100), None);
        assert!(!summary(-1, -1).has_lag());
        // Kafka does not clamp it (a high watermark behind the start, after a truncation).
        assert_eq!(summary(40, 0).lag(30), Some(-10));
    }

    #[test]
    fn the_delivery_complete_count_counts_acknowledged_and_archived_offsets_from_the_start() {
        let state = |start, batches| PersistedState {
            state_epoch: 0,
            start_offset: start,
            state_batches: batches,
        };
        assert_eq!(state(-1, vec![]).delivery_complete_count(), -1);
        assert_eq!(state(0, vec![]).delivery_complete_count(), 0);
        let batches = vec![
            batch(10, 14, DeliveryState::Acknowledged),
            batch(15, 15, DeliveryState::Available),
            batch(16, 19, DeliveryState::Archived),
            batch(20, 29, DeliveryState::Available),
            batch(30, 30, DeliveryState::Acknowledged),
        ];
        // 5 acknowledged, 4 archived, 1 acknowledged; the available ones are not complete.
        assert_eq!(state(10, batches.clone()).delivery_complete_count(), 10);
        // Offsets below the start offset are not counted (a batch across it is cut).
        assert_eq!(state(12, batches.clone()).delivery_complete_count(), 8);
        assert_eq!(state(31, batches).delivery_complete_count(), 0);
        // An unordered or inverted batch counts nothing.
        assert_eq!(
            state(0, vec![batch(5, 4, DeliveryState::Archived)]).delivery_complete_count(),
            0
        );
        // A count past i32 saturates.
        assert_eq!(
            state(0, vec![batch(0, i64::MAX - 1, DeliveryState::Archived)])
                .delivery_complete_count(),
            i32::MAX
        );
    }
}
