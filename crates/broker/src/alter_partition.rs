//! The AlterPartition sender (Kafka's `AlterPartitionManager`): the ISR changes that partition
//! leaders on this broker propose go to the active controller, and each answer goes back to
//! the partition that proposed it.
//!
//! ```text
//!  Partition core: ISR shrink (tick) / expand (follower fetch) ─► pending queue ─► notify
//!        ▲                                                                          │
//!        │ alter_partition_response(proposal, answer)                               ▼
//!        └──────────── one task: drain every queue ─► ControllerRequest::AlterPartition
//!                      (one request at a time, in the order proposed) ─► controller
//!  the committed ISR then comes back through the metadata image (apply_registration)
//! ```
//!
//! Requests are sent one at a time and each partition's proposals in the order they were made,
//! so the controller processes the copies of a proposal in the order they were sent, which the
//! core relies on when it reverts to the committed ISR. An unanswered or failed request is
//! answered to the core as a retriable error; the core proposes it again after
//! `alter_partition_retry_ms` (at its next tick).

use std::sync::Arc;

use gregor_controller::protocol::{AlterPartitionRequest, PartitionIsrChange};
use gregor_controller::{ControllerChannel, ControllerRequest, ControllerResponse};
use gregor_protocol::error::ErrorCode;
use gregor_replication::{AlterPartitionResponse, ProposalId};
use tracing::{debug, warn};

use crate::partition::{tp_name, Partition};
use crate::replica_manager::ReplicaManager;

/// Runs the sender until aborted: waits for proposals, sends them, hands back the answers.
pub async fn run_alter_partition_sender(
    replicas: Arc<ReplicaManager>,
    controller: Arc<dyn ControllerChannel>,
) {
    loop {
        replicas.alter_partition_wanted().await;
        send_pending(&replicas, controller.as_ref()).await;
    }
}

/// Sends every queued proposal in one AlterPartition and applies the answers.
pub async fn send_pending(replicas: &ReplicaManager, controller: &dyn ControllerChannel) {
    let pending = replicas.take_pending_alter_partition();
    if pending.is_empty() {
        return;
    }
    let node = replicas.config().node_id;
    let image = replicas.image();
    let broker_epoch = image.cluster().broker(node).map_or(-1, |b| b.epoch);
    let mut sent: Vec<(Arc<Partition>, ProposalId)> = Vec::new();
    let mut changes = Vec::new();
    for (tp, request) in pending {
        let Some((topic, part)) = replicas.partition(&tp.topic, tp.partition) else {
            debug!(partition = %tp_name(&tp), "AlterPartition for a partition no longer hosted");
            continue;
        };
        changes.push(PartitionIsrChange {
            topic_id: topic.id,
            partition: tp.partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: request.isr_ids().into_iter().collect(),
        });
        sent.push((part, request.proposal));
    }
    if changes.is_empty() {
        return;
    }
    let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
        broker_id: node,
        broker_epoch,
        partitions: changes,
    });
    let answers: Vec<AlterPartitionResponse> = match controller.call(request).await {
        Ok(ControllerResponse::AlterPartition(resp)) if resp.error_code != 0 => {
            warn!(error = %ErrorCode(resp.error_code), "AlterPartition refused");
            vec![AlterPartitionResponse::Error(resp.error_code); sent.len()]
        }
        Ok(ControllerResponse::AlterPartition(resp)) if resp.partitions.len() == sent.len() => resp
            .partitions
            .into_iter()
            .map(|p| {
                if p.error_code == 0 {
                    AlterPartitionResponse::Accepted {
                        leader_id: p.leader_id,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                        isr: p.isr,
                    }
                } else {
                    AlterPartitionResponse::Error(p.error_code)
                }
            })
            .collect(),
        Ok(ControllerResponse::Error(e)) => {
            debug!(error = %ErrorCode(e.error_code), message = %e.message, "AlterPartition not handled");
            vec![AlterPartitionResponse::Error(e.error_code); sent.len()]
        }
        Ok(other) => {
            warn!(answer = ?other, "unexpected answer to AlterPartition");
            vec![AlterPartitionResponse::Error(ErrorCode::UNKNOWN_SERVER_ERROR.code()); sent.len()]
        }
        Err(e) => {
            warn!(error = %e, "AlterPartition not sent; the partitions propose it again");
            vec![AlterPartitionResponse::Error(ErrorCode::REQUEST_TIMED_OUT.code()); sent.len()]
        }
    };
    for ((part, proposal), answer) in sent.into_iter().zip(answers) {
        debug!(partition = %tp_name(&part.tp), ?answer, "AlterPartition answered");
        part.alter_partition_response(proposal, &answer);
    }
}
