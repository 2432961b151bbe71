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
            new_isr: request.new_isr.iter().map(|m| m.broker_id).collect(),
            // Each member's broker epoch from its fetches (KIP-903; -1 when it did not send one).
            new_isr_broker_epochs: request.new_isr.iter().map(|m| m.broker_epoch).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::partition::tests::{batch, one_partition, with_follower};
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use gregor_controller::protocol::{
        AlterPartitionResponse as ControllerAlterPartitionResponse, PartitionIsrResult,
    };
    use gregor_controller::ChannelError;
    use std::sync::Mutex;

    /// A controller that accepts every ISR change as proposed, in partition epoch + 1, and
    /// remembers the requests.
    #[derive(Default)]
    struct Accepting {
        seen: Mutex<Vec<AlterPartitionRequest>>,
        fail: bool,
    }

    impl ControllerChannel for Accepting {
        fn call(
            &self,
            request: ControllerRequest,
        ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
            let ControllerRequest::AlterPartition(r) = request else {
                panic!("only AlterPartition expected");
            };
            self.seen.lock().expect("lock").push(r.clone());
            let fail = self.fail;
            async move {
                if fail {
                    return Err(ChannelError::Timeout);
                }
                Ok(ControllerResponse::AlterPartition(
                    ControllerAlterPartitionResponse {
                        error_code: 0,
                        partitions: r
                            .partitions
                            .iter()
                            .map(|c| PartitionIsrResult {
                                topic_id: c.topic_id,
                                partition: c.partition,
                                error_code: 0,
                                leader_id: r.broker_id,
                                leader_epoch: c.leader_epoch,
                                isr: c.new_isr.clone(),
                                partition_epoch: c.partition_epoch + 1,
                            })
                            .collect(),
                    },
                ))
            }
            .boxed()
        }
    }

    /// A lagging follower's ISR shrink is sent to the controller once, wakes the sender, and
    /// the controller's answer commits the new ISR in the partition's core; a channel failure
    /// leaves the proposal to be sent again after the retry delay.
    #[tokio::test]
    async fn an_isr_shrink_is_sent_and_its_answer_committed() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, rm, topic) = one_partition(clock.clone(), 1);
        let part = Arc::clone(&topic.partitions[&0]);
        with_follower(&part, vec![1, 2]);
        part.append(&batch(1), &topic.settings).expect("append");
        clock.advance(30_001);
        rm.tick_replication();
        // The proposal woke the sender (the permit is stored).
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            rm.alter_partition_wanted(),
        )
        .await
        .expect("woken");

        let failing = Accepting {
            fail: true,
            ..Default::default()
        };
        send_pending(&rm, &failing).await;
        assert_eq!(part.isr(), vec![1, 2], "not committed without an answer");
        assert!(rm.take_pending_alter_partition().is_empty(), "sent once");
        clock.advance(5_001);
        rm.tick_replication();

        let controller = Accepting::default();
        send_pending(&rm, &controller).await;
        let seen = controller.seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1, "the retry is sent");
        assert_eq!(seen[0].broker_id, 1);
        assert_eq!(seen[0].partitions.len(), 1);
        let change = &seen[0].partitions[0];
        assert_eq!(
            (change.topic_id, change.partition, change.new_isr.clone()),
            (topic.id, 0, vec![1])
        );
        assert_eq!(part.isr(), vec![1], "the controller's ISR is committed");
        send_pending(&rm, &controller).await;
        assert_eq!(
            controller.seen.lock().expect("lock").len(),
            1,
            "nothing left"
        );
    }
}
