//! What the leader knows about one follower: Kafka's `Replica` / `ReplicaState`.
//!
//! Updated from the follower's Fetch requests (its fetch offset is its log end) and reset when
//! this broker becomes leader. [`ReplicaState::is_caught_up`] is the lag rule behind ISR shrink,
//! and behind the high watermark waiting for a replica that is about to join the ISR.

/// Offset for a follower the leader has not heard from in this leadership (Kafka's
/// `UnifiedLog.UnknownOffset`): below every real offset, so it holds the high watermark back.
pub const UNKNOWN_OFFSET: i64 = -1;

/// The leader's view of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// The follower's log end offset: the fetch offset of its last Fetch.
    pub log_end_offset: i64,
    /// The follower's log start offset, as it reported it in its last Fetch.
    pub log_start_offset: i64,
    /// The leader's log end offset when the follower last fetched; a later fetch at or past it
    /// proves the follower was caught up at `last_fetch_time_ms`.
    pub last_fetch_leader_log_end_offset: i64,
    /// When the follower last fetched (`None`: not in this leadership).
    pub last_fetch_time_ms: Option<i64>,
    /// The last time the follower was known to have everything the leader had; ISR shrink
    /// removes it once this is more than `replica.lag.time.max.ms` ago. `None`: not known to
    /// have been caught up in this leadership (Kafka uses 0, which only works with a clock that
    /// does not start at 0).
    pub last_caught_up_time_ms: Option<i64>,
    /// The broker epoch the follower fetched with (`None`: not sent). Sent to the controller
    /// with the ISR so it can refuse a replica that restarted meanwhile (KIP-903).
    pub broker_epoch: Option<i64>,
}

impl ReplicaState {
    /// A follower not heard from yet; `caught_up_ms` is when it last counted as caught up (the
    /// time of becoming leader for an ISR member, `None` otherwise).
    pub(crate) fn unknown(caught_up_ms: Option<i64>) -> ReplicaState {
        ReplicaState {
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_fetch_leader_log_end_offset: UNKNOWN_OFFSET,
            last_fetch_time_ms: None,
            last_caught_up_time_ms: caught_up_ms,
            broker_epoch: None,
        }
    }

    /// Kafka's `ReplicaState.isCaughtUp`: the follower has the leader's whole log, or had it
    /// no more than `max_lag_ms` ago.
    pub fn is_caught_up(&self, leader_log_end_offset: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        self.log_end_offset == leader_log_end_offset
            || self
                .last_caught_up_time_ms
                .is_some_and(|t| now_ms.saturating_sub(t) <= max_lag_ms)
    }

    /// Kafka's `Replica.updateFetchStateOrThrow` (the epoch check is done by the caller).
    ///
    /// A fetch at the leader's current log end means caught up now; a fetch at or past the
    /// leader's log end of the previous fetch means caught up at the previous fetch's time. So
    /// a follower that keeps up with a busy leader stays in sync although the log end moves
    /// between its fetches.
    pub(crate) fn record_fetch(
        &mut self,
        fetch_offset: i64,
        log_start_offset: i64,
        now_ms: i64,
        leader_log_end_offset: i64,
        broker_epoch: Option<i64>,
    ) {
        let caught_up_at = if fetch_offset >= leader_log_end_offset {
            Some(now_ms)
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_fetch_time_ms
        } else {
            None
        };
        if caught_up_at > self.last_caught_up_time_ms {
            self.last_caught_up_time_ms = caught_up_at;
        }
        self.log_end_offset = fetch_offset;
        self.log_start_offset = log_start_offset;
        self.last_fetch_leader_log_end_offset = self
            .last_fetch_leader_log_end_offset
            .max(leader_log_end_offset);
        self.last_fetch_time_ms = Some(now_ms);
        if broker_epoch.is_some() {
            self.broker_epoch = broker_epoch;
        }
    }

    /// Kafka's `Replica.resetReplicaState` for a new leader epoch when this broker was already
    /// leader: the follower keeps its offsets but is judged afresh from `now_ms`.
    pub(crate) fn reset_for_new_epoch(
        &mut self,
        now_ms: i64,
        leader_log_end_offset: i64,
        in_isr: bool,
    ) {
        self.last_fetch_leader_log_end_offset = leader_log_end_offset;
        self.last_fetch_time_ms = Some(now_ms);
        self.last_caught_up_time_ms = in_isr.then_some(now_ms);
    }
}
