//! One group's in-memory metadata (Kafka's `GroupMetadata` and `MemberMetadata`).
//!
//! Plain data plus the small queries the coordinator's state machine needs (protocol
//! selection, member validation, "have all members joined"). The transitions themselves live in
//! [`coordinator`](crate::coordinator) and [`offsets`](crate::offsets).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::api::{JoinGroupMember, Protocol, RequestId};
use crate::consumer_protocol::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use crate::error::code;
use crate::records::{GroupMetadataValue, MemberMetadataValue, OffsetCommitValue};
use crate::state::GroupState;

/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: a brand-new member parked in JoinGroup is
/// dropped after this long even though parked members otherwise never expire, so a client that
/// vanished during a long rebalance does not hold it up forever.
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The generation `assignment` was given in (-1: none yet). Used by invariant checks.
    pub assignment_generation: i32,
    /// A parked JoinGroup, answered when the join phase completes.
    pub awaiting_join: Option<RequestId>,
    /// A parked SyncGroup, answered when the leader's assignment is stored.
    pub awaiting_sync: Option<RequestId>,
    /// When the session expires unless a heartbeat (or commit, join, sync) comes first.
    pub heartbeat_deadline_ms: i64,
    /// Added in the current rebalance; see [`NEW_MEMBER_JOIN_TIMEOUT_MS`].
    pub is_new: bool,
}

impl Member {
    /// Same protocols with the same metadata, in the same order (Kafka's `matches`).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Kafka's `hasSatisfiedHeartbeat` negated: parked members don't expire (they are waiting
    /// on us), except new ones parked in a join for longer than the new-member timeout.
    pub fn session_expired(&self, now_ms: i64) -> bool {
        if self.is_new {
            return self.heartbeat_deadline_ms <= now_ms;
        }
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            return false;
        }
        self.heartbeat_deadline_ms <= now_ms
    }

    pub fn expiry_deadline(&self) -> Option<i64> {
        if !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some()) {
            None
        } else {
            Some(self.heartbeat_deadline_ms)
        }
    }
}

/// The purgatory entry of a join phase (Kafka's `DelayedJoin` / `InitialDelayedJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelayedJoin {
    pub deadline_ms: i64,
    /// `Some(remaining)` for the initial delay of an Empty group: it completes only on expiry,
    /// and each expiry with new members extends it, up to the rebalance timeout in total.
    pub initial_remaining_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub group_id: String,
    pub state: GroupState,
    /// When the group entered `state` (None for groups loaded without it).
    pub state_timestamp_ms: Option<i64>,
    pub generation_id: i32,
    /// Set by the first member; `None` for offsets-only (standalone) groups.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// In join order: the leader falls back to the oldest member.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and their expiry deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// group.instance.id → current member id.
    pub static_members: BTreeMap<String, String>,
    /// Members that have not sent SyncGroup since the join phase completed.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline_ms: Option<i64>,
    pub delayed_join: Option<DelayedJoin>,
    /// A member joined during the initial delay, so the delay is extended once more.
    pub new_member_added: bool,
    /// Topics of the consumer subscriptions of this generation; `None` = unknown.
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Offsets written by TxnOffsetCommit whose transaction has not ended, per producer id
    /// (Kafka's `pendingTransactionalOffsetCommits`): invisible to OffsetFetch until the
    /// producer's COMMIT marker makes them committed; an ABORT marker drops them.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
}

/// A committed (or pending transactional) offset and where its record sits in
/// `__consumer_offsets` (Kafka's `OffsetAndMetadata.recordOffset`): when a transaction
/// commits, its offset replaces the committed one only if its record is later in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub value: OffsetCommitValue,
    /// The record's offset when loaded from the log; for a record this coordinator wrote, a
    /// position above everything loaded before, in write order (see
    /// [`GroupCoordinator::next_record_position`](crate::GroupCoordinator)).
    pub record_position: i64,
}

impl Group {
    pub fn new(group_id: String, now_ms: i64) -> Group {
        Group {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            pending_members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            delayed_join: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        debug_assert!(
            state.valid_previous_states().contains(&self.state),
            "illegal group transition {} -> {}",
            self.state,
            state
        );
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    pub fn has(&self, member_id: &str) -> bool {
        self.member(member_id).is_some()
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.push(member);
    }

    /// Removes a member; the leadership passes to the oldest remaining member.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let idx = self.members.iter().position(|m| m.member_id == member_id)?;
        let member = self.members.remove(idx);
        self.pending_sync.remove(member_id);
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty type and protocol list;
    /// otherwise the type must match and one protocol must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty && self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|p| candidates.contains(&p.name))
    }

    /// Protocols supported by every member.
    pub fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut iter = self.members.iter();
        let Some(first) = iter.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|p| p.name.clone()).collect();
        for m in iter {
            set.retain(|name| m.protocols.iter().any(|p| &p.name == name));
        }
        set
    }

    /// Each member votes for its most preferred candidate; the most votes wins. Ties go to the
    /// candidate the oldest member prefers most (Kafka leaves ties to hash order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some(p) = m.protocols.iter().find(|p| candidates.contains(&p.name)) {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let max = votes.values().copied().max()?;
        let first = self.members.first()?;
        first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| votes.get(name) == Some(&max))
            .map(str::to_string)
    }

    /// Kafka's `hasAllMembersJoined`: every member parked in JoinGroup and no member id
    /// handed out with MEMBER_ID_REQUIRED still outstanding.
    pub fn has_all_members_joined(&self) -> bool {
        self.members.iter().all(|m| m.awaiting_join.is_some()) && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout of the members: how long a join phase may take.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Kafka's `validateCurrentMember`: with an instance id, it must map to `member_id`
    /// (else FENCED_INSTANCE_ID, or UNKNOWN_MEMBER_ID if the instance is unknown); and the
    /// member must exist.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current == member_id => {}
                Some(_) => return Err(code::FENCED_INSTANCE_ID),
                None => return Err(code::UNKNOWN_MEMBER_ID),
            }
        }
        if self.has(member_id) {
            Ok(())
        } else {
            Err(code::UNKNOWN_MEMBER_ID)
        }
    }

    /// Every member's metadata for the chosen protocol: the leader's JoinGroup payload.
    pub fn current_member_metadata(&self) -> Vec<JoinGroupMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinGroupMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    pub fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let metadatas: Vec<Bytes> = self.members.iter().map(|m| m.metadata(protocol)).collect();
        subscribed_topics(metadatas.iter().map(|b| &b[..]))
    }

    /// Unknown subscriptions count as subscribed (the safe answer).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => true,
        }
    }

    pub fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// The GroupMetadataValue that persists this group's membership and assignments.
    pub fn metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .iter()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol.as_deref().unwrap_or_default()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Every request parked in this group, for when the group is unloaded.
    pub fn parked_requests(&mut self) -> Vec<(RequestId, bool)> {
        let mut out = Vec::new();
        for m in &mut self.members {
            if let Some(r) = m.awaiting_join.take() {
                out.push((r, true));
            }
            if let Some(r) = m.awaiting_sync.take() {
                out.push((r, false));
            }
        }
        out
    }

    /// The earliest time `tick` has work for this group.
    /// Kafka's `hasOffsets`: committed offsets or offsets of an open transaction.
    pub fn has_offsets(&self) -> bool {
        !self.offsets.is_empty() || !self.pending_txn_offsets.is_empty()
    }

    /// Whether an open transaction has written an offset for this partition.
    pub fn has_pending_txn_offset(&self, tp: &(String, i32)) -> bool {
        self.pending_txn_offsets
            .values()
            .any(|o| o.contains_key(tp))
    }

    /// Drops the pending transactional offsets of `tp` (its offset was deleted). A producer
    /// left without any stays listed until its marker, as in Kafka (`openTransactionsByGroup`):
    /// the group is not expired under an open transaction.
    pub fn remove_pending_txn_offset(&mut self, tp: &(String, i32)) {
        for offsets in self.pending_txn_offsets.values_mut() {
            offsets.remove(tp);
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        let members = self.members.iter().filter_map(Member::expiry_deadline);
        let pending = self.pending_members.values().copied();
        let join = self.delayed_join.map(|d| d.deadline_ms);
        let sync = self
            .sync_deadline_ms
            .filter(|_| !self.pending_sync.is_empty());
        members.chain(pending).chain(join).chain(sync).min()
    }
}
