//! One partition replica's replication state machine: Kafka's `cluster.Partition` without the
//! log. The broker's partition owns one and feeds it; nothing here touches a file, socket,
//! task or clock.
//!
//! ```text
//!  metadata image ── become_leader / become_follower(LeaderAndIsr) ─┐
//!  produce handler ─ check_append, leader_append(new log end) ──────┤
//!  follower Fetch ── follower_fetch(replica, fetch offset, epochs) ─┼─► Partition ─► Vec<Output>
//!  timer ─────────── tick(now) at next_deadline(now) ───────────────┤    HighWatermarkAdvanced
//!  controller ────── alter_partition_response(proposal, answer) ────┘    AlterPartition(request)
//!                                                                        AssignEpochStartOffset
//!  purgatory ─────── produce_status(required offset, append epoch) ─► Pending | Complete(result)
//! ```
//!
//! As leader it tracks each follower ([`ReplicaState`]), advances the high watermark to the
//! smallest log end among the maximal ISR (`maybeIncrementLeaderHW`), proposes adding a
//! follower that reached the high watermark (`maybeExpandIsr`) and removing one that has not
//! been caught up for `replica.lag.time.max.ms` (`maybeShrinkIsr`), one AlterPartition at a
//! time, and applies the controller's answer (`handleAlterPartitionUpdate`/`Error`). As
//! follower it keeps its high watermark at the leader's, bounded by its own log end.
//!
//! Execute the outputs of a call in order. Every call takes `now_ms` from the caller's clock.

use std::collections::{BTreeMap, BTreeSet};

use crate::epoch::{end_offset_for, EpochEndOffset, EpochEntry};
use crate::error::{code, ReplicationError, StateError};
use crate::isr::{
    AlterPartitionRequest, AlterPartitionResponse, InflightAlter, IsrMember, IsrState, ProposalId,
};
use crate::replica::ReplicaState;
use crate::BrokerId;

/// Leader epoch before the first registration (Kafka's `LeaderAndIsr.INITIAL_LEADER_EPOCH` is
/// 0; -1 means "none yet").
pub const NO_EPOCH: i32 = -1;

/// Broker and topic configs the core needs, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`
    pub replica_lag_time_max_ms: i64,
    /// `min.insync.replicas` (topic config); capped at the replication factor as Kafka 3.7+
    /// does (`effectiveMinIsr`).
    pub min_insync_replicas: usize,
    /// How long an AlterPartition may go unanswered (or how long to wait after a retriable
    /// error) before it is sent again. Kafka's AlterPartitionManager retries on its own; here
    /// the retry is an output of [`Partition::tick`].
    pub alter_partition_retry_ms: i64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            alter_partition_retry_ms: 5_000,
        }
    }
}

/// The part of the metadata's partition registration the core needs (Kafka's
/// `PartitionRegistration` / `LeaderAndIsrPartitionState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

/// What the metadata image says about a broker, for ISR eligibility (Kafka's
/// `isReplicaIsrEligible`): a fenced broker, one in controlled shutdown, or one whose fetch
/// carried another broker epoch than its registration does not join the ISR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerStatus {
    pub broker_epoch: i64,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// The local log's offsets when the core is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

/// A follower's Fetch for this partition, as the leader received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica_id: BrokerId,
    /// The next offset it wants: its log end offset.
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    /// The leader epoch it believes current (`None`: not sent, old request versions).
    pub current_leader_epoch: Option<i32>,
    /// Its broker epoch (Fetch v15+ `ReplicaState.ReplicaEpoch`); `None` if not sent.
    pub broker_epoch: Option<i64>,
}

/// What the runtime must do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The high watermark moved forward: store it on the log and wake delayed produces and
    /// fetches waiting for it.
    HighWatermarkAdvanced { high_watermark: i64 },
    /// Send this AlterPartition to the controller; answer with
    /// [`Partition::alter_partition_response`].
    AlterPartition(AlterPartitionRequest),
    /// Record in the leader-epoch cache that `leader_epoch` starts at `start_offset` (a new
    /// leader epoch begins at the leader's log end, even before it has records).
    AssignEpochStartOffset {
        leader_epoch: i32,
        start_offset: i64,
    },
}

/// Whether an acks=all produce appended up to `required_offset` may be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceStatus {
    /// The high watermark has not reached it yet: keep waiting (or time out).
    Pending,
    /// Answer now with this result.
    Complete(Result<(), ReplicationError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// No registration applied yet.
    None,
    Leader,
    Follower {
        leader: BrokerId,
    },
}

/// One partition's replication state on one broker.
#[derive(Debug, Clone)]
pub struct Partition {
    local_id: BrokerId,
    /// This broker's own epoch, sent with itself as an ISR member.
    local_broker_epoch: i64,
    config: ReplicationConfig,
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    isr_state: IsrState,
    /// The leader's view of every other replica; empty when not leader.
    followers: BTreeMap<BrokerId, ReplicaState>,
    /// Metadata image facts about brokers; a broker not listed is taken as eligible (the
    /// controller re-checks and answers INELIGIBLE_REPLICA).
    brokers: BTreeMap<BrokerId, BrokerStatus>,
    /// Where this broker's current leader epoch starts in its log; a follower joins the ISR
    /// only once it has reached it (Kafka's `leaderEpochStartOffsetOpt`).
    leader_epoch_start_offset: Option<i64>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    next_proposal: u64,
}

impl Partition {
    /// A replica with no role yet, over a log with these offsets.
    pub fn new(
        local_id: BrokerId,
        local_broker_epoch: i64,
        config: ReplicationConfig,
        log: LogOffsets,
    ) -> Result<Partition, StateError> {
        check_offsets(log)?;
        Ok(Partition {
            local_id,
            local_broker_epoch,
            config,
            role: Role::None,
            leader_epoch: NO_EPOCH,
            partition_epoch: NO_EPOCH,
            replicas: Vec::new(),
            isr_state: IsrState::Committed {
                isr: BTreeSet::new(),
            },
            followers: BTreeMap::new(),
            brokers: BTreeMap::new(),
            leader_epoch_start_offset: None,
            log_start_offset: log.log_start_offset,
            log_end_offset: log.log_end_offset,
            high_watermark: log.high_watermark,
            next_proposal: 0,
        })
    }

    // ---- reads ----

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader this replica follows, when it is a follower.
    /// This broker's id.
    pub fn local_id(&self) -> BrokerId {
        self.local_id
    }

    pub fn leader(&self) -> Option<BrokerId> {
        match self.role {
            Role::Leader => Some(self.local_id),
            Role::Follower { leader } => Some(leader),
            Role::None => None,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    pub fn isr_state(&self) -> &IsrState {
        &self.isr_state
    }

    /// The committed ISR.
    pub fn isr(&self) -> &BTreeSet<BrokerId> {
        self.isr_state.isr()
    }

    pub fn maximal_isr(&self) -> BTreeSet<BrokerId> {
        self.isr_state.maximal_isr()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        self.leader_epoch_start_offset
    }

    /// Kafka's `lowWatermarkIfLeader`: the smallest log start offset among this replica and
    /// the followers on live (not fenced) brokers, a follower not heard from yet counting as
    /// [`UNKNOWN_OFFSET`]. DeleteRecords is complete once it reaches the requested offset.
    /// `None` when not leader.
    pub fn low_watermark(&self) -> Option<i64> {
        if !self.is_leader() {
            return None;
        }
        let mut low = self.log_start_offset;
        for id in self.replicas.iter().filter(|&&id| id != self.local_id) {
            if self.brokers.get(id).is_some_and(|b| b.fenced) {
                continue;
            }
            let start = self
                .followers
                .get(id)
                .map_or(crate::replica::UNKNOWN_OFFSET, |r| r.log_start_offset);
            low = low.min(start);
        }
        Some(low)
    }

    /// The leader's view of a follower.
    pub fn replica_state(&self, id: BrokerId) -> Option<&ReplicaState> {
        self.followers.get(&id)
    }

    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// The topic's `min.insync.replicas` changed (a topic or dynamic broker config). A lower
    /// value may let a leader's high watermark advance at once.
    pub fn set_min_insync_replicas(
        &mut self,
        min_insync_replicas: usize,
        now_ms: i64,
    ) -> Vec<Output> {
        self.config.min_insync_replicas = min_insync_replicas.max(1);
        let mut out = Vec::new();
        self.maybe_increment_high_watermark(now_ms, &mut out);
        out
    }

    /// `min.insync.replicas` capped at the replication factor (Kafka's `effectiveMinIsr`).
    pub fn effective_min_isr(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.replicas.len().max(1))
    }

    /// Whether this leader's committed ISR is smaller than the effective
    /// `min.insync.replicas` (Kafka's `isUnderMinIsr`); the high watermark does not advance
    /// meanwhile. Always false on a follower.
    pub fn is_under_min_isr(&self) -> bool {
        self.is_leader() && self.isr_state.isr().len() < self.effective_min_isr()
    }

    /// Kafka's `checkCurrentLeaderEpoch`, for any request that carries a leader epoch
    /// (Fetch, ListOffsets, OffsetForLeaderEpoch).
    pub fn check_leader_epoch(&self, request: Option<i32>) -> Result<(), ReplicationError> {
        match request {
            Some(request) if request < self.leader_epoch => {
                Err(ReplicationError::FencedLeaderEpoch {
                    request,
                    current: self.leader_epoch,
                })
            }
            Some(request) if request > self.leader_epoch => {
                Err(ReplicationError::UnknownLeaderEpoch {
                    request,
                    current: self.leader_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// When [`tick`](Self::tick) next has something to do after `now_ms`: a follower in the
    /// ISR running out of lag time, a replica no longer holding the high watermark back, or an
    /// unanswered AlterPartition to resend. `None` when only a new input can change anything.
    pub fn next_deadline(&self, now_ms: i64) -> Option<i64> {
        if !self.is_leader() {
            return None;
        }
        let lag = self.config.replica_lag_time_max_ms;
        let mut deadline: Option<i64> = None;
        let mut consider = |t: i64| {
            if t > now_ms {
                deadline = Some(deadline.map_or(t, |d: i64| d.min(t)));
            }
        };
        if let Some(inflight) = self.isr_state.inflight() {
            consider(
                inflight
                    .sent_ms
                    .saturating_add(self.config.alter_partition_retry_ms),
            );
        }
        for r in self.followers.values() {
            if let (true, Some(t)) = (
                r.log_end_offset != self.log_end_offset,
                r.last_caught_up_time_ms,
            ) {
                consider(t.saturating_add(lag).saturating_add(1));
            }
        }
        deadline
    }

    // ---- metadata ----

    /// Apply a registration that names this broker leader (Kafka's `makeLeader`). A new leader
    /// epoch starts at the log end ([`Output::AssignEpochStartOffset`]) and judges every
    /// follower afresh; the same leader epoch with a newer partition epoch is an ISR or
    /// replica change committed by the controller and replaces any proposal in flight.
    pub fn become_leader(
        &mut self,
        reg: &LeaderAndIsr,
        now_ms: i64,
    ) -> Result<Vec<Output>, StateError> {
        if reg.leader != self.local_id {
            return Err(StateError::NotTheLeader {
                leader: reg.leader,
                local: self.local_id,
            });
        }
        self.check_registration(reg)?;
        let mut out = Vec::new();
        let was_leader = self.is_leader();
        let new_epoch = reg.leader_epoch > self.leader_epoch || !was_leader;
        if !new_epoch && reg.partition_epoch == self.partition_epoch {
            // Nothing changed; keep a proposal in flight.
            return Ok(out);
        }
        self.apply_assignment(reg);
        if new_epoch {
            let start = self.log_end_offset;
            for (&id, r) in self.followers.iter_mut() {
                let in_isr = self.isr_state.isr().contains(&id);
                if was_leader {
                    r.reset_for_new_epoch(now_ms, start, in_isr);
                } else {
                    // Kafka: an ISR member counts as caught up now, so it has the full lag
                    // time to fetch; any other is not caught up, so it cannot hold the HW back.
                    *r = ReplicaState::unknown(in_isr.then_some(now_ms));
                }
            }
            self.leader_epoch_start_offset = Some(start);
            out.push(Output::AssignEpochStartOffset {
                leader_epoch: reg.leader_epoch,
                start_offset: start,
            });
        }
        self.role = Role::Leader;
        self.leader_epoch = reg.leader_epoch;
        self.partition_epoch = reg.partition_epoch;
        // The ISR may be down to the leader alone.
        self.maybe_increment_high_watermark(now_ms, &mut out);
        Ok(out)
    }

    /// Apply a registration that names another broker leader (Kafka's `makeFollower`). The
    /// follower state and any proposal in flight are dropped; delayed produces must now be
    /// answered NOT_LEADER_OR_FOLLOWER (see [`produce_status`](Self::produce_status)).
    pub fn become_follower(&mut self, reg: &LeaderAndIsr) -> Result<(), StateError> {
        if reg.leader == self.local_id {
            return Err(StateError::LeaderIsLocal {
                local: self.local_id,
            });
        }
        self.check_registration(reg)?;
        self.apply_assignment(reg);
        self.followers.clear();
        self.role = Role::Follower { leader: reg.leader };
        self.leader_epoch = reg.leader_epoch;
        self.partition_epoch = reg.partition_epoch;
        self.leader_epoch_start_offset = None;
        Ok(())
    }

    /// The metadata image's view of a broker changed (registered, fenced, shutting down).
    /// As leader this may let the high watermark advance: a replica that became ineligible no
    /// longer holds it back.
    pub fn set_broker_status(
        &mut self,
        id: BrokerId,
        status: Option<BrokerStatus>,
        now_ms: i64,
    ) -> Vec<Output> {
        match status {
            Some(s) => self.brokers.insert(id, s),
            None => self.brokers.remove(&id),
        };
        let mut out = Vec::new();
        self.maybe_increment_high_watermark(now_ms, &mut out);
        out
    }

    fn check_registration(&self, reg: &LeaderAndIsr) -> Result<(), StateError> {
        if reg.leader_epoch < self.leader_epoch
            || (reg.leader_epoch == self.leader_epoch && reg.partition_epoch < self.partition_epoch)
        {
            return Err(StateError::StaleRegistration {
                leader_epoch: reg.leader_epoch,
                partition_epoch: reg.partition_epoch,
                current_leader_epoch: self.leader_epoch,
                current_partition_epoch: self.partition_epoch,
            });
        }
        if !reg.replicas.contains(&self.local_id) {
            return Err(StateError::NotAReplica {
                local: self.local_id,
                replicas: reg.replicas.clone(),
            });
        }
        Ok(())
    }

    /// Replicas and committed ISR from a registration; follower state for every other replica
    /// (new ones start unknown, removed ones are forgotten).
    fn apply_assignment(&mut self, reg: &LeaderAndIsr) {
        self.replicas = reg.replicas.clone();
        self.isr_state = IsrState::Committed {
            isr: reg.isr.iter().copied().collect(),
        };
        let others: BTreeSet<BrokerId> = reg
            .replicas
            .iter()
            .chain(reg.isr.iter())
            .copied()
            .filter(|&id| id != self.local_id)
            .collect();
        self.followers.retain(|id, _| others.contains(id));
        for id in others {
            self.followers
                .entry(id)
                .or_insert_with(|| ReplicaState::unknown(None));
        }
    }

    // ---- produce path ----

    /// Whether a produce may be appended (Kafka's check in `appendRecordsToLeader`): this
    /// broker leads, and for acks=all (`required_acks == -1`) the committed ISR has at least
    /// the effective `min.insync.replicas`.
    pub fn check_append(&self, required_acks: i16) -> Result<(), ReplicationError> {
        if !self.is_leader() {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        let isr = self.isr_state.isr().len();
        let min_isr = self.effective_min_isr();
        if required_acks == -1 && isr < min_isr {
            return Err(ReplicationError::NotEnoughReplicas { isr, min_isr });
        }
        Ok(())
    }

    /// The leader appended: its log now ends at `log_end_offset`. With a single-member ISR the
    /// high watermark follows at once.
    pub fn leader_append(
        &mut self,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Result<Vec<Output>, StateError> {
        if !self.is_leader() {
            return Err(StateError::WrongRole { expected: "leader" });
        }
        if log_end_offset < self.log_end_offset {
            return Err(StateError::LogEndWentBackwards {
                new: log_end_offset,
                current: self.log_end_offset,
            });
        }
        self.log_end_offset = log_end_offset;
        let mut out = Vec::new();
        self.maybe_increment_high_watermark(now_ms, &mut out);
        Ok(out)
    }

    /// Kafka's `checkEnoughReplicasReachOffset` for a delayed acks=all produce whose records
    /// end before `required_offset` and were appended in `append_leader_epoch`. Done once the
    /// high watermark reaches it; then NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank
    /// below `min.insync.replicas` meanwhile. If leadership moved since the append the records
    /// may have been truncated, so the answer is NOT_LEADER_OR_FOLLOWER.
    pub fn produce_status(&self, required_offset: i64, append_leader_epoch: i32) -> ProduceStatus {
        if !self.is_leader() || self.leader_epoch != append_leader_epoch {
            return ProduceStatus::Complete(Err(ReplicationError::NotLeaderOrFollower));
        }
        if self.high_watermark < required_offset {
            return ProduceStatus::Pending;
        }
        let isr = self.isr_state.maximal_isr().len();
        let min_isr = self.effective_min_isr();
        if isr < min_isr {
            return ProduceStatus::Complete(Err(ReplicationError::NotEnoughReplicasAfterAppend {
                isr,
                min_isr,
            }));
        }
        ProduceStatus::Complete(Ok(()))
    }

    // ---- fetch path (leader) ----

    /// The leader's answer to OffsetForLeaderEpoch (Kafka's `lastOffsetForLeaderEpoch`): the
    /// requester's current leader epoch is checked, only the leader answers, and the end of
    /// `leader_epoch` is read from this log's leader-epoch cache `cache`
    /// ([`EpochEndOffset::UNDEFINED`] when it cannot be placed).
    pub fn offset_for_leader_epoch(
        &self,
        current_leader_epoch: Option<i32>,
        leader_epoch: i32,
        cache: &[EpochEntry],
    ) -> Result<EpochEndOffset, ReplicationError> {
        self.check_leader_epoch(current_leader_epoch)?;
        if !self.is_leader() {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        Ok(end_offset_for(cache, leader_epoch, self.log_end_offset))
    }

    /// A follower fetched (Kafka's `fetchRecords` checks, then `updateFollowerFetchState`).
    /// Call it for a fetch whose read found no diverging epoch
    /// ([`crate::epoch::diverging_epoch`]): a diverging follower's fetch offset is not its
    /// true position. The errors are the partition's error code in the Fetch response.
    pub fn follower_fetch(
        &mut self,
        fetch: &FollowerFetch,
        now_ms: i64,
    ) -> Result<Vec<Output>, ReplicationError> {
        self.check_leader_epoch(fetch.current_leader_epoch)?;
        if !self.is_leader() {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        if fetch.replica_id == self.local_id || !self.followers.contains_key(&fetch.replica_id) {
            return Err(ReplicationError::UnknownReplica {
                replica_id: fetch.replica_id,
                code: if fetch.current_leader_epoch.is_some() {
                    code::UNKNOWN_LEADER_EPOCH
                } else {
                    code::NOT_LEADER_OR_FOLLOWER
                },
            });
        }
        if fetch.fetch_offset < self.log_start_offset || fetch.fetch_offset > self.log_end_offset {
            return Err(ReplicationError::OffsetOutOfRange {
                offset: fetch.fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let leader_end = self.log_end_offset;
        let Some(replica) = self.followers.get_mut(&fetch.replica_id) else {
            return Err(ReplicationError::NotLeaderOrFollower);
        };
        if let (Some(request), Some(known)) = (fetch.broker_epoch, replica.broker_epoch) {
            if request < known {
                return Err(ReplicationError::StaleBrokerEpoch {
                    replica_id: fetch.replica_id,
                    request,
                    known,
                });
            }
        }
        let previous_end = replica.log_end_offset;
        replica.record_fetch(
            fetch.fetch_offset,
            fetch.log_start_offset,
            now_ms,
            leader_end,
            fetch.broker_epoch,
        );
        let moved = previous_end != fetch.fetch_offset;
        let mut out = Vec::new();
        self.maybe_expand_isr(fetch.replica_id, now_ms, &mut out);
        if moved {
            self.maybe_increment_high_watermark(now_ms, &mut out);
        }
        Ok(out)
    }

    // ---- timer ----

    /// Shrink the ISR of followers out of sync for longer than `replica.lag.time.max.ms`,
    /// resend an unanswered AlterPartition, and let the high watermark pass replicas whose
    /// catch-up window ran out.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.is_leader() {
            return out;
        }
        let retry = self.config.alter_partition_retry_ms;
        let next_id = ProposalId(self.next_proposal + 1);
        if let Some(inflight) = self.isr_state.inflight_mut() {
            if now_ms >= inflight.sent_ms.saturating_add(retry) {
                inflight.sent_ms = now_ms;
                inflight.request.proposal = next_id;
                self.next_proposal = next_id.0;
                out.push(Output::AlterPartition(inflight.request.clone()));
            }
        }
        self.maybe_shrink_isr(now_ms, &mut out);
        self.maybe_increment_high_watermark(now_ms, &mut out);
        out
    }

    // ---- controller answer ----

    /// The controller answered the AlterPartition copy `proposal` (Kafka's
    /// `handleAlterPartitionUpdate` / `handleAlterPartitionError`).
    ///
    /// * Accepted, for any copy of the proposal in flight, naming this broker leader in this
    ///   leader epoch, not older than the current partition epoch: the answer's ISR is the
    ///   controller's, and is committed.
    /// * OPERATION_NOT_ATTEMPTED / INELIGIBLE_REPLICA for the latest copy: the controller says
    ///   it did not apply it, so the state goes back to the committed ISR (and may be proposed
    ///   again).
    /// * FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, UNKNOWN_TOPIC_OR_PARTITION,
    ///   UNKNOWN_TOPIC_ID, INVALID_REQUEST, NEW_LEADER_ELECTED: this broker's state is behind;
    ///   the proposal stays pending until the metadata brings a new registration.
    /// * Anything else for the latest copy (NOT_CONTROLLER, a timeout, ...): sent again after
    ///   `alter_partition_retry_ms`.
    ///
    /// Answers to other proposals, and errors for an older copy, are ignored.
    ///
    /// Going back to the committed ISR is safe only if no copy can still be applied after the
    /// answer to the latest one, so the runtime must have the controller process the copies in
    /// the order they were sent (one ordered channel, as Kafka's AlterPartitionManager has):
    /// then "not attempted" for the latest copy means no copy was applied. An earlier copy's
    /// error says nothing about a later copy, which is why it is ignored.
    pub fn alter_partition_response(
        &mut self,
        proposal: ProposalId,
        response: &AlterPartitionResponse,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.is_leader() {
            return out;
        }
        let Some(inflight) = self.isr_state.inflight() else {
            return out;
        };
        if proposal < inflight.first || proposal > inflight.request.proposal {
            return out;
        }
        let latest = proposal == inflight.request.proposal;
        if !latest && matches!(response, AlterPartitionResponse::Error(_)) {
            return out;
        }
        match response {
            AlterPartitionResponse::Accepted {
                leader_id,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                if *leader_id != self.local_id
                    || *leader_epoch != self.leader_epoch
                    || *partition_epoch < self.partition_epoch
                {
                    return out;
                }
                self.isr_state = IsrState::Committed {
                    isr: isr.iter().copied().collect(),
                };
                self.partition_epoch = *partition_epoch;
                self.maybe_increment_high_watermark(now_ms, &mut out);
            }
            AlterPartitionResponse::Error(error) => match *error {
                code::OPERATION_NOT_ATTEMPTED | code::INELIGIBLE_REPLICA => {
                    let isr = self.isr_state.isr().clone();
                    self.isr_state = IsrState::Committed { isr };
                    // Removing a replica from the maximal ISR may free the HW.
                    self.maybe_increment_high_watermark(now_ms, &mut out);
                }
                code::FENCED_LEADER_EPOCH
                | code::INVALID_UPDATE_VERSION
                | code::UNKNOWN_TOPIC_OR_PARTITION
                | code::UNKNOWN_TOPIC_ID
                | code::INVALID_REQUEST
                | code::NEW_LEADER_ELECTED => {}
                _ => {
                    if let Some(inflight) = self.isr_state.inflight_mut() {
                        inflight.sent_ms = now_ms;
                    }
                }
            },
        }
        out
    }

    // ---- follower side ----

    /// As follower, records fetched from the leader were appended (the log now ends at
    /// `log_end_offset`) and the leader reported `leader_high_watermark`. The follower's high
    /// watermark is the leader's bounded by its own log end, and never moves back here.
    pub fn follower_append(
        &mut self,
        log_end_offset: i64,
        leader_high_watermark: i64,
    ) -> Result<Vec<Output>, StateError> {
        if !matches!(self.role, Role::Follower { .. }) {
            return Err(StateError::WrongRole {
                expected: "follower",
            });
        }
        if log_end_offset < self.log_end_offset {
            return Err(StateError::LogEndWentBackwards {
                new: log_end_offset,
                current: self.log_end_offset,
            });
        }
        self.log_end_offset = log_end_offset;
        let mut out = Vec::new();
        let hw = leader_high_watermark.min(log_end_offset);
        if hw > self.high_watermark {
            self.high_watermark = hw;
            out.push(Output::HighWatermarkAdvanced { high_watermark: hw });
        }
        Ok(out)
    }

    /// As follower, the log was truncated to `offset` (the divergence point from
    /// [`crate::epoch::truncation_offset`]); the high watermark cannot stay above the log end.
    /// A no-op when the log already ends at or before `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StateError> {
        if !matches!(self.role, Role::Follower { .. }) {
            return Err(StateError::WrongRole {
                expected: "follower",
            });
        }
        if offset < self.log_end_offset {
            let offset = offset.max(self.log_start_offset);
            self.log_end_offset = offset;
            self.high_watermark = self.high_watermark.min(offset);
        }
        Ok(())
    }

    /// The log start offset moved (retention, DeleteRecords, or a follower restarting its log
    /// at the leader's start). The log end and high watermark are raised to it if below.
    pub fn set_log_start_offset(&mut self, offset: i64) {
        self.log_start_offset = offset;
        self.log_end_offset = self.log_end_offset.max(offset);
        self.high_watermark = self.high_watermark.max(offset);
    }

    // ---- rules ----

    /// Kafka's `isReplicaIsrEligible`.
    fn is_eligible(&self, id: BrokerId) -> bool {
        let Some(status) = self.brokers.get(&id) else {
            return true;
        };
        let stored = self.followers.get(&id).and_then(|r| r.broker_epoch);
        !status.fenced
            && !status.in_controlled_shutdown
            && stored.is_none_or(|e| e == status.broker_epoch)
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest log end among the leader and the maximal
    /// ISR, also waiting for a replica that is caught up and eligible but not in the ISR yet
    /// (otherwise, under steady appends, the HW would run ahead of it and it could never reach
    /// the HW to join). Never moves back; needs a non-empty ISR.
    ///
    /// While the committed ISR is smaller than the effective `min.insync.replicas` the HW
    /// stays where it is (Kafka 3.7+, KAFKA-15583): a record is committed only once it is on
    /// at least that many replicas, so acks=0/1 records taken meanwhile stay invisible to
    /// consumers until the ISR grows back, and every replica that was in the ISR when it
    /// last had enough members holds all that was committed.
    fn maybe_increment_high_watermark(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if !self.is_leader() || self.isr_state.isr().is_empty() || self.is_under_min_isr() {
            return;
        }
        let leader_end = self.log_end_offset;
        let lag = self.config.replica_lag_time_max_ms;
        let mut new_hw = leader_end;
        for (&id, r) in &self.followers {
            if r.log_end_offset < new_hw
                && (self.isr_state.in_maximal_isr(id)
                    || (r.is_caught_up(leader_end, now_ms, lag) && self.is_eligible(id)))
            {
                new_hw = r.log_end_offset;
            }
        }
        if new_hw > self.high_watermark {
            self.high_watermark = new_hw;
            out.push(Output::HighWatermarkAdvanced {
                high_watermark: new_hw,
            });
        }
    }

    /// Kafka's `maybeExpandIsr`: a replica outside the ISR that reached the high watermark and
    /// the start of this leader epoch, and is eligible, is proposed for the ISR.
    fn maybe_expand_isr(&mut self, id: BrokerId, now_ms: i64, out: &mut Vec<Output>) {
        if self.isr_state.is_inflight()
            || self.isr_state.isr().contains(&id)
            || !self.replicas.contains(&id)
            || !self.is_eligible(id)
        {
            return;
        }
        let Some(r) = self.followers.get(&id) else {
            return;
        };
        let in_sync = r.log_end_offset >= self.high_watermark
            && self
                .leader_epoch_start_offset
                .is_some_and(|start| r.log_end_offset >= start);
        if !in_sync {
            return;
        }
        let mut new_isr = self.isr_state.isr().clone();
        new_isr.insert(id);
        // The leader is in sync with itself, even if a registration left it out.
        new_isr.insert(self.local_id);
        let inflight = self.propose(new_isr, now_ms, out);
        let isr = self.isr_state.isr().clone();
        self.isr_state = IsrState::PendingExpand {
            isr,
            new_replica: id,
            inflight,
        };
    }

    /// Kafka's `maybeShrinkIsr` / `getOutOfSyncReplicas`: ISR followers not caught up within
    /// `replica.lag.time.max.ms` are proposed for removal. The leader never removes itself.
    fn maybe_shrink_isr(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if self.isr_state.is_inflight() {
            return;
        }
        let leader_end = self.log_end_offset;
        let lag = self.config.replica_lag_time_max_ms;
        let removed: BTreeSet<BrokerId> = self
            .isr_state
            .isr()
            .iter()
            .copied()
            .filter(|&id| id != self.local_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|r| !r.is_caught_up(leader_end, now_ms, lag))
            })
            .collect();
        if removed.is_empty() {
            return;
        }
        let isr = self.isr_state.isr().clone();
        let new_isr: BTreeSet<BrokerId> = isr.difference(&removed).copied().collect();
        let inflight = self.propose(new_isr, now_ms, out);
        self.isr_state = IsrState::PendingShrink {
            isr,
            removed,
            inflight,
        };
    }

    fn propose(
        &mut self,
        new_isr: BTreeSet<BrokerId>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> InflightAlter {
        self.next_proposal += 1;
        let new_isr = new_isr
            .into_iter()
            .map(|broker_id| IsrMember {
                broker_id,
                broker_epoch: if broker_id == self.local_id {
                    self.local_broker_epoch
                } else {
                    self.followers
                        .get(&broker_id)
                        .and_then(|r| r.broker_epoch)
                        .unwrap_or(-1)
                },
            })
            .collect();
        let request = AlterPartitionRequest {
            proposal: ProposalId(self.next_proposal),
            leader_id: self.local_id,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        };
        out.push(Output::AlterPartition(request.clone()));
        InflightAlter {
            first: request.proposal,
            request,
            sent_ms: now_ms,
        }
    }
}

fn check_offsets(log: LogOffsets) -> Result<(), StateError> {
    if log.log_start_offset < 0
        || log.high_watermark < log.log_start_offset
        || log.log_end_offset < log.high_watermark
    {
        return Err(StateError::InvalidLogOffsets {
            log_start_offset: log.log_start_offset,
            high_watermark: log.high_watermark,
            log_end_offset: log.log_end_offset,
        });
    }
    Ok(())
}
