//! The ISR as the leader sees it: committed, or with one AlterPartition in flight (Kafka's
//! `PartitionState`: `CommittedPartitionState`, `PendingExpandIsr`, `PendingShrinkIsr`), and
//! the AlterPartition messages exchanged with the controller.
//!
//! While a change is in flight the leader acts on the *maximal* ISR (KIP-497): the committed
//! ISR plus a replica being added, and still including replicas being removed. Waiting for more
//! replicas is always safe, so the high watermark and acks=all use the maximal ISR, while
//! NOT_ENOUGH_REPLICAS before an append uses the committed one.

use std::collections::BTreeSet;

use crate::BrokerId;

/// Identifies one sending of an AlterPartition by a partition: a proposal's retry gets a new
/// id, so the answer to each copy is told apart (see [`crate::Partition::alter_partition_response`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

/// One ISR member in an AlterPartition request, with the broker epoch it fetched with (-1 if
/// unknown), so the controller can refuse a replica that restarted (Kafka's `BrokerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// AlterPartition for one partition, to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    /// This copy's id; echo it with the answer.
    pub proposal: ProposalId,
    /// The leader sending it (this broker).
    pub leader_id: BrokerId,
    pub leader_epoch: i32,
    /// The partition epoch the change applies to; the controller refuses any other.
    pub partition_epoch: i32,
    /// The whole proposed ISR, sorted by broker id.
    pub new_isr: Vec<IsrMember>,
}

impl AlterPartitionRequest {
    /// The proposed ISR's broker ids.
    pub fn isr_ids(&self) -> BTreeSet<BrokerId> {
        self.new_isr.iter().map(|m| m.broker_id).collect()
    }
}

/// The controller's answer for one partition of an AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterPartitionResponse {
    /// The partition's state after the request (changed, or already equal to the proposal).
    Accepted {
        leader_id: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
    /// A partition-level or request-level error code.
    Error(i16),
}

/// An AlterPartition the leader sent and has no answer for yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InflightAlter {
    /// The latest copy sent.
    pub request: AlterPartitionRequest,
    /// The id of the first copy; every copy's id lies between it and `request.proposal`.
    pub first: ProposalId,
    /// When it was (re)sent; it is sent again `alter_partition_retry_ms` later.
    pub sent_ms: i64,
}

/// Kafka's `PartitionState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrState {
    Committed {
        isr: BTreeSet<BrokerId>,
    },
    /// Adding `new_replica`; it already counts for the high watermark.
    PendingExpand {
        isr: BTreeSet<BrokerId>,
        new_replica: BrokerId,
        inflight: InflightAlter,
    },
    /// Removing `removed`; they still count for the high watermark until the controller
    /// commits the change.
    PendingShrink {
        isr: BTreeSet<BrokerId>,
        removed: BTreeSet<BrokerId>,
        inflight: InflightAlter,
    },
}

impl IsrState {
    /// The ISR the controller last committed (as far as this broker knows).
    pub fn isr(&self) -> &BTreeSet<BrokerId> {
        match self {
            IsrState::Committed { isr }
            | IsrState::PendingExpand { isr, .. }
            | IsrState::PendingShrink { isr, .. } => isr,
        }
    }

    /// The committed ISR plus a replica being added (KIP-497's maximal ISR).
    pub fn maximal_isr(&self) -> BTreeSet<BrokerId> {
        let mut isr = self.isr().clone();
        if let IsrState::PendingExpand { new_replica, .. } = self {
            isr.insert(*new_replica);
        }
        isr
    }

    /// Whether `id` is in the maximal ISR, without building it.
    pub fn in_maximal_isr(&self, id: BrokerId) -> bool {
        self.isr().contains(&id)
            || matches!(self, IsrState::PendingExpand { new_replica, .. } if *new_replica == id)
    }

    pub fn inflight(&self) -> Option<&InflightAlter> {
        match self {
            IsrState::Committed { .. } => None,
            IsrState::PendingExpand { inflight, .. } | IsrState::PendingShrink { inflight, .. } => {
                Some(inflight)
            }
        }
    }

    pub(crate) fn inflight_mut(&mut self) -> Option<&mut InflightAlter> {
        match self {
            IsrState::Committed { .. } => None,
            IsrState::PendingExpand { inflight, .. } | IsrState::PendingShrink { inflight, .. } => {
                Some(inflight)
            }
        }
    }

    pub fn is_inflight(&self) -> bool {
        self.inflight().is_some()
    }
}
