//! Rule-by-rule tests of [`Partition`], driven by a manual clock (`now` in milliseconds).
//! The seeded simulation is in `sim.rs`; the epoch arithmetic is tested in `epoch.rs`.

use std::collections::BTreeSet;

use crate::*;

const LAG: i64 = 10_000;
const RETRY: i64 = 1_000;
const EPOCH: i32 = 5;

fn cfg(min_isr: usize) -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: LAG,
        min_insync_replicas: min_isr,
        alter_partition_retry_ms: RETRY,
    }
}

fn reg(leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> LeaderAndIsr {
    LeaderAndIsr {
        leader: 1,
        leader_epoch,
        partition_epoch,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
    }
}

fn offsets(end: i64) -> LogOffsets {
    LogOffsets {
        log_start_offset: 0,
        high_watermark: 0,
        log_end_offset: end,
    }
}

/// Broker 1 leading epoch 5 (partition epoch 10) of replicas 1,2,3 with the given ISR, over a
/// log ending at `end`, at time 0.
fn leader_with(isr: &[i32], end: i64, min_isr: usize) -> (Partition, Vec<Output>) {
    let mut p = Partition::new(1, 100, cfg(min_isr), offsets(end)).expect("valid offsets");
    let out = p
        .become_leader(&reg(EPOCH, 10, isr), 0)
        .expect("fresh registration");
    (p, out)
}

fn leader(isr: &[i32]) -> Partition {
    leader_with(isr, 0, 2).0
}

fn fetch(id: i32, offset: i64) -> FollowerFetch {
    FollowerFetch {
        replica_id: id,
        fetch_offset: offset,
        log_start_offset: 0,
        current_leader_epoch: Some(EPOCH),
        broker_epoch: Some(1000 + id as i64),
    }
}

fn hw(out: &[Output]) -> Option<i64> {
    out.iter().rev().find_map(|o| match o {
        Output::HighWatermarkAdvanced { high_watermark } => Some(*high_watermark),
        _ => None,
    })
}

fn alters(out: &[Output]) -> Vec<AlterPartitionRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::AlterPartition(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn set(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

fn accepted(p: &Partition, isr: &[i32]) -> AlterPartitionResponse {
    AlterPartitionResponse::Accepted {
        leader_id: 1,
        leader_epoch: p.leader_epoch(),
        partition_epoch: p.partition_epoch() + 1,
        isr: isr.to_vec(),
    }
}

fn ok(r: Result<Vec<Output>, ReplicationError>) -> Vec<Output> {
    r.expect("fetch accepted")
}

// ---- becoming leader ----

#[test]
fn new_leader_epoch_starts_at_log_end_and_waits_for_unknown_followers() {
    let (p, out) = leader_with(&[1, 2, 3], 7, 2);
    assert_eq!(
        out,
        vec![Output::AssignEpochStartOffset {
            leader_epoch: EPOCH,
            start_offset: 7
        }]
    );
    assert_eq!(p.leader_epoch_start_offset(), Some(7));
    // Followers not heard from in this leadership hold the HW back.
    assert_eq!(p.high_watermark(), 0);
    assert_eq!(
        p.replica_state(2).map(|r| r.log_end_offset),
        Some(UNKNOWN_OFFSET)
    );
    // ISR members get the full lag time from now; others start at 0.
    let (p, _) = {
        let mut p = Partition::new(1, 100, cfg(1), offsets(0)).expect("offsets");
        let out = p.become_leader(&reg(EPOCH, 10, &[1, 2]), 500).expect("reg");
        (p, out)
    };
    assert_eq!(
        p.replica_state(2).map(|r| r.last_caught_up_time_ms),
        Some(Some(500))
    );
    assert_eq!(
        p.replica_state(3).map(|r| r.last_caught_up_time_ms),
        Some(None)
    );
}

#[test]
fn sole_isr_member_leader_moves_high_watermark_with_its_log_end() {
    let (mut p, out) = leader_with(&[1], 7, 1);
    assert_eq!(hw(&out), Some(7));
    let out = p.leader_append(9, 1).expect("leader");
    assert_eq!(hw(&out), Some(9));
    assert_eq!(p.high_watermark(), 9);
}

#[test]
fn stale_or_foreign_registrations_are_refused() {
    let mut p = leader(&[1, 2, 3]);
    assert!(matches!(
        p.become_leader(&reg(EPOCH - 1, 11, &[1, 2, 3]), 0),
        Err(StateError::StaleRegistration { .. })
    ));
    assert!(matches!(
        p.become_leader(&reg(EPOCH, 9, &[1, 2, 3]), 0),
        Err(StateError::StaleRegistration { .. })
    ));
    let mut other = reg(EPOCH + 1, 11, &[2, 3]);
    other.leader = 2;
    assert!(matches!(
        p.become_leader(&other, 0),
        Err(StateError::NotTheLeader { .. })
    ));
    assert!(matches!(
        p.become_follower(&reg(EPOCH + 1, 11, &[1])),
        Err(StateError::LeaderIsLocal { .. })
    ));
    let mut not_mine = reg(EPOCH + 1, 11, &[1]);
    not_mine.replicas = vec![2, 3];
    assert!(matches!(
        p.become_leader(&not_mine, 0),
        Err(StateError::NotAReplica { .. })
    ));
    assert!(Partition::new(
        1,
        0,
        cfg(1),
        LogOffsets {
            log_start_offset: 5,
            high_watermark: 3,
            log_end_offset: 9
        }
    )
    .is_err());
}

#[test]
fn re_election_keeps_follower_offsets_but_judges_them_afresh() {
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(2, 10), 100));
    ok(p.follower_fetch(&fetch(3, 4), 100));
    let out = p
        .become_leader(&reg(EPOCH + 1, 11, &[1, 2]), 2_000)
        .expect("newer epoch");
    assert!(out.contains(&Output::AssignEpochStartOffset {
        leader_epoch: EPOCH + 1,
        start_offset: 10
    }));
    let r2 = p.replica_state(2).expect("replica 2");
    assert_eq!(r2.log_end_offset, 10);
    assert_eq!(r2.last_caught_up_time_ms, Some(2_000));
    assert_eq!(r2.last_fetch_leader_log_end_offset, 10);
    let r3 = p.replica_state(3).expect("replica 3");
    assert_eq!(r3.log_end_offset, 4);
    assert_eq!(r3.last_caught_up_time_ms, None);
}

// ---- high watermark ----

#[test]
fn high_watermark_is_min_log_end_of_the_isr_and_never_moves_back() {
    let mut p = leader(&[1, 2, 3]);
    p.leader_append(10, 0).expect("leader");
    assert_eq!(hw(&ok(p.follower_fetch(&fetch(2, 6), 1))), None);
    assert_eq!(hw(&ok(p.follower_fetch(&fetch(3, 4), 1))), Some(4));
    assert_eq!(hw(&ok(p.follower_fetch(&fetch(3, 8), 2))), Some(6));
    assert_eq!(hw(&ok(p.follower_fetch(&fetch(2, 10), 3))), Some(8));
    // A follower reporting a lower log end (it truncated) does not pull the HW back.
    assert_eq!(hw(&ok(p.follower_fetch(&fetch(3, 5), 4))), None);
    assert_eq!(p.high_watermark(), 8);
}

#[test]
fn high_watermark_skips_lagging_replicas_outside_the_isr() {
    // Epoch 5 starts at 10, so replica 3 at 2 cannot join the ISR.
    let (mut p, _) = leader_with(&[1, 2], 10, 2);
    ok(p.follower_fetch(&fetch(3, 2), 1));
    assert!(!p.isr_state().is_inflight());
    let out = ok(p.follower_fetch(&fetch(2, 10), 1));
    assert_eq!(hw(&out), Some(10));
}

/// ISR {1, 2}; replica 3 caught up with the log end at t=2 but not in the ISR (its expansion
/// could not start while 2's was in flight); the log end is 30, 2 is at 30, 3 at 20.
fn caught_up_outside_the_isr() -> Partition {
    let (mut p, out) = leader_with(&[1], 10, 1);
    assert_eq!(hw(&out), Some(10));
    let expand = alters(&ok(p.follower_fetch(&fetch(2, 10), 1)))
        .pop()
        .expect("expand 2");
    p.leader_append(20, 2).expect("leader");
    assert!(alters(&ok(p.follower_fetch(&fetch(3, 20), 2))).is_empty());
    p.alter_partition_response(expand.proposal, &accepted(&p, &[1, 2]), 3);
    ok(p.follower_fetch(&fetch(2, 20), 3));
    assert_eq!(p.high_watermark(), 20);
    p.leader_append(30, 4).expect("leader");
    ok(p.follower_fetch(&fetch(2, 30), 4));
    p
}

#[test]
fn high_watermark_waits_for_a_caught_up_replica_about_to_join() {
    let mut p = caught_up_outside_the_isr();
    // 3 (caught up 2 ms ago) holds the HW at its log end, so it can reach the HW and join
    // although the log end keeps moving.
    assert_eq!(p.isr(), &set(&[1, 2]));
    assert_eq!(p.high_watermark(), 20);
    assert_eq!(p.next_deadline(4), Some(2 + LAG + 1));
    assert_eq!(hw(&p.tick(2 + LAG)), None);
    // Once its catch-up window is over it no longer holds the HW back.
    assert_eq!(hw(&p.tick(2 + LAG + 1)), Some(30));
}

#[test]
fn a_fenced_replica_does_not_hold_the_high_watermark() {
    let mut p = caught_up_outside_the_isr();
    let out = p.set_broker_status(
        3,
        Some(BrokerStatus {
            broker_epoch: 1003,
            fenced: true,
            in_controlled_shutdown: false,
        }),
        5,
    );
    assert_eq!(hw(&out), Some(30));
}

#[test]
fn high_watermark_needs_a_non_empty_isr() {
    let mut p = Partition::new(1, 0, cfg(1), offsets(5)).expect("offsets");
    p.become_leader(&reg(EPOCH, 10, &[]), 0).expect("reg");
    assert_eq!(hw(&p.leader_append(9, 0).expect("leader")), None);
    assert_eq!(p.high_watermark(), 0);
}

// ---- ISR expansion ----

#[test]
fn follower_reaching_the_high_watermark_is_proposed_for_the_isr() {
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(2, 10), 1));
    assert_eq!(p.high_watermark(), 10);
    assert!(alters(&ok(p.follower_fetch(&fetch(3, 9), 2))).is_empty());
    let out = ok(p.follower_fetch(&fetch(3, 10), 3));
    let req = alters(&out);
    assert_eq!(req.len(), 1);
    let req = &req[0];
    assert_eq!(
        (req.leader_id, req.leader_epoch, req.partition_epoch),
        (1, EPOCH, 10)
    );
    assert_eq!(
        req.new_isr,
        vec![
            IsrMember {
                broker_id: 1,
                broker_epoch: 100
            },
            IsrMember {
                broker_id: 2,
                broker_epoch: 1002
            },
            IsrMember {
                broker_id: 3,
                broker_epoch: 1003
            },
        ]
    );
    assert!(matches!(
        p.isr_state(),
        IsrState::PendingExpand { new_replica: 3, .. }
    ));
    assert_eq!(p.isr(), &set(&[1, 2]));
    assert_eq!(p.maximal_isr(), set(&[1, 2, 3]));
    // Committed by the controller.
    let resp = accepted(&p, &[1, 2, 3]);
    p.alter_partition_response(req.proposal, &resp, 4);
    assert_eq!(
        p.isr_state(),
        &IsrState::Committed {
            isr: set(&[1, 2, 3])
        }
    );
    assert_eq!(p.partition_epoch(), 11);
}

#[test]
fn expansion_needs_the_start_of_the_leader_epoch_and_an_eligible_broker() {
    // Epoch 5 starts at 10; the HW (restored from the log) is 4.
    let mut p = Partition::new(
        1,
        100,
        cfg(1),
        LogOffsets {
            log_start_offset: 0,
            high_watermark: 4,
            log_end_offset: 10,
        },
    )
    .expect("offsets");
    p.become_leader(&reg(EPOCH, 10, &[1]), 0).expect("reg");
    assert!(alters(&ok(p.follower_fetch(&fetch(2, 8), 1))).is_empty());
    // Eligibility: fenced, shutting down, or another broker epoch than registered.
    for status in [
        BrokerStatus {
            broker_epoch: 1002,
            fenced: true,
            in_controlled_shutdown: false,
        },
        BrokerStatus {
            broker_epoch: 1002,
            fenced: false,
            in_controlled_shutdown: true,
        },
        BrokerStatus {
            broker_epoch: 999,
            fenced: false,
            in_controlled_shutdown: false,
        },
    ] {
        p.set_broker_status(2, Some(status), 2);
        assert!(alters(&ok(p.follower_fetch(&fetch(2, 10), 2))).is_empty());
    }
    p.set_broker_status(
        2,
        Some(BrokerStatus {
            broker_epoch: 1002,
            fenced: false,
            in_controlled_shutdown: false,
        }),
        3,
    );
    assert_eq!(alters(&ok(p.follower_fetch(&fetch(2, 10), 3))).len(), 1);
}

#[test]
fn one_alter_partition_at_a_time() {
    let mut p = leader(&[1]);
    ok(p.follower_fetch(&fetch(2, 0), 1));
    assert!(p.isr_state().is_inflight());
    assert!(alters(&ok(p.follower_fetch(&fetch(3, 0), 1))).is_empty());
    assert!(alters(&p.tick(2)).is_empty());
}

// ---- ISR shrink ----

#[test]
fn follower_is_removed_only_after_the_lag_time() {
    let mut p = leader(&[1, 2, 3]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(2, 10), 100));
    ok(p.follower_fetch(&fetch(3, 10), 100));
    p.leader_append(20, 200).expect("leader");
    // 3 keeps fetching at the log end; 2 stops.
    ok(p.follower_fetch(&fetch(3, 20), 300));
    assert_eq!(p.next_deadline(300), Some(100 + LAG + 1));
    assert!(alters(&p.tick(100 + LAG)).is_empty());
    let out = p.tick(100 + LAG + 1);
    let req = alters(&out);
    assert_eq!(req.len(), 1);
    assert_eq!(req[0].isr_ids(), set(&[1, 3]));
    assert!(
        matches!(p.isr_state(), IsrState::PendingShrink { removed, .. } if *removed == set(&[2]))
    );
    // Still counted for the HW until the controller commits the shrink.
    assert_eq!(p.high_watermark(), 10);
    assert_eq!(p.maximal_isr(), set(&[1, 2, 3]));
    let out = p.alter_partition_response(req[0].proposal, &accepted(&p, &[1, 3]), 100 + LAG + 2);
    assert_eq!(hw(&out), Some(20));
}

#[test]
fn a_follower_keeping_up_with_a_busy_leader_stays_in_sync() {
    let mut p = leader(&[1, 2]);
    let mut end = 0;
    // Every fetch reaches the log end of the previous fetch but never the current one.
    for t in (0..10 * LAG).step_by(1_000) {
        let previous = end;
        end += 10;
        p.leader_append(end, t).expect("leader");
        ok(p.follower_fetch(&fetch(2, previous), t));
        assert!(alters(&p.tick(t)).is_empty(), "removed at {t}");
    }
    assert_eq!(p.isr(), &set(&[1, 2]));
}

#[test]
fn an_idle_follower_at_the_log_end_is_never_removed() {
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(2, 10), 1));
    assert_eq!(p.next_deadline(1), None);
    assert!(alters(&p.tick(100 * LAG)).is_empty());
}

#[test]
fn a_silent_isr_member_after_election_is_removed_after_the_lag_time() {
    let mut p = leader(&[1, 2]);
    p.leader_append(3, 0).expect("leader");
    assert!(alters(&p.tick(LAG)).is_empty());
    assert_eq!(alters(&p.tick(LAG + 1))[0].isr_ids(), set(&[1]));
}

// ---- AlterPartition answers ----

fn pending_shrink() -> (Partition, AlterPartitionRequest) {
    let mut p = leader(&[1, 2, 3]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(3, 10), 0));
    let req = alters(&p.tick(LAG + 1)).pop().expect("shrink proposed");
    (p, req)
}

#[test]
fn unanswered_alter_partition_is_resent_as_a_new_copy() {
    let (mut p, req) = pending_shrink();
    assert_eq!(p.next_deadline(LAG + 1), Some(LAG + 1 + RETRY));
    assert!(alters(&p.tick(LAG + RETRY)).is_empty());
    let copy = alters(&p.tick(LAG + 1 + RETRY)).pop().expect("resent");
    assert_ne!(copy.proposal, req.proposal);
    assert_eq!(
        AlterPartitionRequest {
            proposal: req.proposal,
            ..copy.clone()
        },
        req
    );
    // A retriable error for the latest copy: sent again one retry interval after the error.
    let t = LAG + 1 + RETRY + 10;
    p.alter_partition_response(
        copy.proposal,
        &AlterPartitionResponse::Error(code::NOT_CONTROLLER),
        t,
    );
    assert!(alters(&p.tick(t + RETRY - 1)).is_empty());
    let third = alters(&p.tick(t + RETRY)).pop().expect("resent again");
    // An error for an older copy says nothing about the later ones: ignored.
    let before = p.isr_state().clone();
    for old in [req.proposal, copy.proposal] {
        p.alter_partition_response(
            old,
            &AlterPartitionResponse::Error(code::OPERATION_NOT_ATTEMPTED),
            t + RETRY,
        );
        assert_eq!(p.isr_state(), &before);
    }
    // But any copy's acceptance is the controller's state, and commits.
    p.alter_partition_response(req.proposal, &accepted(&p, &[1, 3]), t + RETRY);
    assert_eq!(p.isr_state(), &IsrState::Committed { isr: set(&[1, 3]) });
    // The later copy's answer then finds nothing in flight.
    p.alter_partition_response(
        third.proposal,
        &AlterPartitionResponse::Error(code::OPERATION_NOT_ATTEMPTED),
        t + RETRY,
    );
    assert_eq!(p.isr(), &set(&[1, 3]));
}

#[test]
fn operation_not_attempted_and_ineligible_replica_revert_to_the_committed_isr() {
    for error in [code::OPERATION_NOT_ATTEMPTED, code::INELIGIBLE_REPLICA] {
        let (mut p, req) = pending_shrink();
        p.alter_partition_response(req.proposal, &AlterPartitionResponse::Error(error), LAG + 2);
        assert_eq!(
            p.isr_state(),
            &IsrState::Committed {
                isr: set(&[1, 2, 3])
            }
        );
        // Not in flight any more: the next tick proposes again, with a new id.
        let again = alters(&p.tick(LAG + 3)).pop().expect("proposed again");
        assert_ne!(again.proposal, req.proposal);
    }
}

#[test]
fn errors_meaning_stale_metadata_keep_the_proposal_pending() {
    for error in [
        code::FENCED_LEADER_EPOCH,
        code::INVALID_UPDATE_VERSION,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        code::UNKNOWN_TOPIC_ID,
        code::INVALID_REQUEST,
        code::NEW_LEADER_ELECTED,
    ] {
        let (mut p, req) = pending_shrink();
        let before = p.isr_state().clone();
        p.alter_partition_response(req.proposal, &AlterPartitionResponse::Error(error), LAG + 2);
        assert_eq!(p.isr_state(), &before, "error {error}");
    }
}

#[test]
fn answers_to_other_proposals_or_epochs_are_ignored() {
    let (mut p, req) = pending_shrink();
    let before = p.isr_state().clone();
    p.alter_partition_response(
        ProposalId(req.proposal.0 + 7),
        &accepted(&p, &[1, 3]),
        LAG + 2,
    );
    assert_eq!(p.isr_state(), &before);
    let wrong_epoch = AlterPartitionResponse::Accepted {
        leader_id: 1,
        leader_epoch: EPOCH + 1,
        partition_epoch: 11,
        isr: vec![1, 3],
    };
    p.alter_partition_response(req.proposal, &wrong_epoch, LAG + 2);
    assert_eq!(p.isr_state(), &before);
    let other_leader = AlterPartitionResponse::Accepted {
        leader_id: 2,
        leader_epoch: EPOCH,
        partition_epoch: 11,
        isr: vec![2, 3],
    };
    p.alter_partition_response(req.proposal, &other_leader, LAG + 2);
    assert_eq!(p.isr_state(), &before);
    let older = AlterPartitionResponse::Accepted {
        leader_id: 1,
        leader_epoch: EPOCH,
        partition_epoch: 9,
        isr: vec![1, 3],
    };
    p.alter_partition_response(req.proposal, &older, LAG + 2);
    assert_eq!(p.isr_state(), &before);
}

#[test]
fn a_committed_change_from_the_metadata_replaces_the_pending_proposal() {
    let (mut p, req) = pending_shrink();
    // Same registration again: nothing changes, the proposal stays.
    p.become_leader(&reg(EPOCH, 10, &[1, 2, 3]), LAG + 2)
        .expect("same");
    assert!(p.isr_state().is_inflight());
    let out = p
        .become_leader(&reg(EPOCH, 11, &[1, 3]), LAG + 2)
        .expect("newer");
    assert_eq!(p.isr_state(), &IsrState::Committed { isr: set(&[1, 3]) });
    assert_eq!(hw(&out), Some(10));
    // No new epoch start for an ISR change.
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::AssignEpochStartOffset { .. })));
    // The late answer to the replaced proposal is ignored.
    p.alter_partition_response(req.proposal, &accepted(&p, &[1]), LAG + 3);
    assert_eq!(p.isr(), &set(&[1, 3]));
}

// ---- fetch errors ----

#[test]
fn follower_fetch_errors_carry_kafkas_codes() {
    let mut p = leader(&[1, 2, 3]);
    p.leader_append(10, 0).expect("leader");
    let mut f = fetch(2, 5);
    f.current_leader_epoch = Some(EPOCH - 1);
    assert_eq!(
        p.follower_fetch(&f, 0).map(|_| ()).map_err(|e| e.code()),
        Err(code::FENCED_LEADER_EPOCH)
    );
    f.current_leader_epoch = Some(EPOCH + 1);
    assert_eq!(
        p.follower_fetch(&f, 0).map(|_| ()).map_err(|e| e.code()),
        Err(code::UNKNOWN_LEADER_EPOCH)
    );
    let mut stranger = fetch(9, 5);
    assert_eq!(
        p.follower_fetch(&stranger, 0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::UNKNOWN_LEADER_EPOCH)
    );
    stranger.current_leader_epoch = None;
    assert_eq!(
        p.follower_fetch(&stranger, 0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
    assert_eq!(
        p.follower_fetch(&fetch(2, 11), 0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::OFFSET_OUT_OF_RANGE)
    );
    ok(p.follower_fetch(&fetch(2, 5), 0));
    let mut restarted_before = fetch(2, 6);
    restarted_before.broker_epoch = Some(1);
    assert_eq!(
        p.follower_fetch(&restarted_before, 0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
    // Nothing recorded by refused fetches.
    assert_eq!(p.replica_state(2).map(|r| r.log_end_offset), Some(5));
    let mut follower = Partition::new(1, 0, cfg(1), offsets(0)).expect("offsets");
    let mut r = reg(EPOCH, 10, &[1, 2]);
    r.leader = 2;
    follower.become_follower(&r).expect("follower");
    assert_eq!(
        follower
            .follower_fetch(&fetch(3, 0), 0)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
    assert_eq!(follower.check_leader_epoch(Some(EPOCH)), Ok(()));
}

// ---- acks=all ----

#[test]
fn acks_all_needs_min_insync_replicas_before_append() {
    let p = leader(&[1]);
    assert_eq!(
        p.check_append(-1).map_err(|e| e.code()),
        Err(code::NOT_ENOUGH_REPLICAS)
    );
    assert_eq!(p.check_append(1), Ok(()));
    assert_eq!(p.check_append(0), Ok(()));
    assert_eq!(leader(&[1, 2]).check_append(-1), Ok(()));
    // min.insync.replicas above the replication factor is capped at it.
    let mut rf1 = Partition::new(1, 0, cfg(2), offsets(0)).expect("offsets");
    let mut r = reg(EPOCH, 10, &[1]);
    r.replicas = vec![1];
    rf1.become_leader(&r, 0).expect("reg");
    assert_eq!(rf1.check_append(-1), Ok(()));
    let mut follower = Partition::new(1, 0, cfg(1), offsets(0)).expect("offsets");
    let mut r = reg(EPOCH, 10, &[1, 2]);
    r.leader = 2;
    follower.become_follower(&r).expect("follower");
    assert_eq!(
        follower.check_append(1).map_err(|e| e.code()),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
}

#[test]
fn delayed_produce_completes_when_the_high_watermark_passes_it() {
    let mut p = leader(&[1, 2, 3]);
    p.leader_append(10, 0).expect("leader");
    assert_eq!(p.produce_status(10, EPOCH), ProduceStatus::Pending);
    ok(p.follower_fetch(&fetch(2, 10), 1));
    assert_eq!(p.produce_status(10, EPOCH), ProduceStatus::Pending);
    ok(p.follower_fetch(&fetch(3, 10), 1));
    assert_eq!(p.produce_status(10, EPOCH), ProduceStatus::Complete(Ok(())));
    // Appended in another epoch: the records may be gone.
    assert_eq!(
        p.produce_status(10, EPOCH - 1),
        ProduceStatus::Complete(Err(ReplicationError::NotLeaderOrFollower))
    );
}

#[test]
fn delayed_produce_after_the_isr_shrank_below_min_isr_waits_for_the_isr() {
    // Kafka 3.7+ (KAFKA-15583): under min.insync.replicas the high watermark stays, so the
    // records are not committed by the shrink; the produce waits (until its timeout).
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    assert_eq!(p.check_append(-1), Ok(()));
    let req = alters(&p.tick(LAG + 1)).pop().expect("shrink");
    assert_eq!(p.produce_status(10, EPOCH), ProduceStatus::Pending);
    let out = p.alter_partition_response(req.proposal, &accepted(&p, &[1]), LAG + 2);
    assert_eq!(hw(&out), None);
    assert_eq!(p.high_watermark(), 0);
    assert!(p.is_under_min_isr());
    assert_eq!(p.produce_status(10, EPOCH), ProduceStatus::Pending);
}

#[test]
fn delayed_produce_committed_before_the_isr_shrank_fails_after_append() {
    // The records reached the high watermark while the ISR was large enough, but by the
    // time the produce is looked at again the ISR is below min.insync.replicas.
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    ok(p.follower_fetch(&fetch(2, 10), 1));
    assert_eq!(p.high_watermark(), 10);
    p.leader_append(20, 2).expect("leader");
    let req = alters(&p.tick(LAG + 2)).pop().expect("shrink");
    p.alter_partition_response(req.proposal, &accepted(&p, &[1]), LAG + 3);
    assert_eq!(
        p.produce_status(10, EPOCH).clone(),
        ProduceStatus::Complete(Err(ReplicationError::NotEnoughReplicasAfterAppend {
            isr: 1,
            min_isr: 2
        }))
    );
}

#[test]
fn the_high_watermark_stays_while_the_isr_is_below_min_isr() {
    // Replicas 1,2,3, min.insync.replicas 2, the ISR down to the leader.
    let (mut p, out) = leader_with(&[1], 0, 2);
    assert_eq!(hw(&out), None);
    assert!(p.is_under_min_isr());
    // acks=all is refused before the append; acks=1 is taken but not committed.
    assert_eq!(
        p.check_append(-1).map_err(|e| e.code()),
        Err(code::NOT_ENOUGH_REPLICAS)
    );
    assert_eq!(p.check_append(1), Ok(()));
    let out = p.leader_append(10, 1).expect("leader");
    assert_eq!(hw(&out), None);
    assert_eq!(p.high_watermark(), 0);
    // Follower 2 catches up and joins: the ISR is back at min.insync.replicas and the records
    // are committed.
    let out = ok(p.follower_fetch(&fetch(2, 10), 2));
    assert_eq!(hw(&out), None, "not committed before the ISR grows");
    let req = alters(&out).pop().expect("expand");
    assert_eq!(req.isr_ids(), set(&[1, 2]));
    let out = p.alter_partition_response(req.proposal, &accepted(&p, &[1, 2]), 3);
    assert_eq!(hw(&out), Some(10));
    assert!(!p.is_under_min_isr());
    // Lowering min.insync.replicas frees the high watermark at once.
    let (mut p, _) = leader_with(&[1], 0, 2);
    p.leader_append(5, 1).expect("leader");
    assert_eq!(p.high_watermark(), 0);
    let out = p.set_min_insync_replicas(1, 2);
    assert_eq!(hw(&out), Some(5));
    // A follower is never under min ISR, whatever its ISR.
    let mut f = Partition::new(2, 100, cfg(3), offsets(0)).expect("offsets");
    f.become_follower(&reg(EPOCH, 10, &[1])).expect("follower");
    assert!(!f.is_under_min_isr());
}

#[test]
fn delayed_produce_after_losing_leadership_fails_not_leader() {
    let mut p = leader(&[1, 2]);
    p.leader_append(10, 0).expect("leader");
    let mut r = reg(EPOCH + 1, 11, &[2]);
    r.leader = 2;
    p.become_follower(&r).expect("follower");
    assert_eq!(
        p.produce_status(10, EPOCH).clone(),
        ProduceStatus::Complete(Err(ReplicationError::NotLeaderOrFollower))
    );
    assert_eq!(p.leader(), Some(2));
    assert!(p.replica_state(2).is_none());
    assert_eq!(p.next_deadline(0), None);
    assert!(p.tick(100 * LAG).is_empty());
}

// ---- follower side ----

#[test]
fn follower_high_watermark_is_the_leaders_bounded_by_its_log_end() {
    let mut p = Partition::new(2, 0, cfg(1), offsets(0)).expect("offsets");
    assert!(p.follower_append(1, 1).is_err());
    let mut r = reg(EPOCH, 10, &[1, 2]);
    r.replicas = vec![1, 2];
    p.become_follower(&r).expect("follower");
    assert!(p.leader_append(1, 0).is_err());
    assert_eq!(hw(&p.follower_append(5, 8).expect("follower")), Some(5));
    assert_eq!(hw(&p.follower_append(9, 7).expect("follower")), Some(7));
    assert_eq!(hw(&p.follower_append(9, 6).expect("follower")), None);
    assert_eq!(p.high_watermark(), 7);
    assert!(p.follower_append(8, 9).is_err());
    p.truncate_to(6).expect("follower");
    assert_eq!((p.log_end_offset(), p.high_watermark()), (6, 6));
    p.truncate_to(8).expect("no-op past the end");
    assert_eq!(p.log_end_offset(), 6);
    p.set_log_start_offset(20);
    assert_eq!(
        (p.log_start_offset(), p.log_end_offset(), p.high_watermark()),
        (20, 20, 20)
    );
}

#[test]
fn offset_for_leader_epoch_is_answered_by_the_current_leader_only() {
    use crate::epoch::{EpochEndOffset, EpochEntry};
    let (mut p, _) = leader_with(&[1, 2], 12, 1);
    let cache = [
        EpochEntry {
            epoch: 3,
            start_offset: 0,
        },
        EpochEntry {
            epoch: EPOCH,
            start_offset: 12,
        },
    ];
    p.leader_append(15, 0).expect("leader");
    assert_eq!(
        p.offset_for_leader_epoch(Some(EPOCH), 3, &cache),
        Ok(EpochEndOffset {
            leader_epoch: 3,
            end_offset: 12
        })
    );
    assert_eq!(
        p.offset_for_leader_epoch(None, EPOCH, &cache),
        Ok(EpochEndOffset {
            leader_epoch: EPOCH,
            end_offset: 15
        })
    );
    assert_eq!(
        p.offset_for_leader_epoch(Some(EPOCH - 1), 3, &cache)
            .map_err(|e| e.code()),
        Err(code::FENCED_LEADER_EPOCH)
    );
    assert_eq!(
        p.offset_for_leader_epoch(Some(EPOCH + 1), 3, &cache)
            .map_err(|e| e.code()),
        Err(code::UNKNOWN_LEADER_EPOCH)
    );
    let mut r = reg(EPOCH + 1, 11, &[2]);
    r.leader = 2;
    p.become_follower(&r).expect("follower");
    assert_eq!(
        p.offset_for_leader_epoch(Some(EPOCH + 1), 3, &cache)
            .map_err(|e| e.code()),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
}

/// The low watermark (DeleteRecords' completion point) is the smallest log start among the
/// leader and its live followers; a follower not heard from counts as unknown, a fenced one
/// not at all; a follower is not asked.
#[test]
fn low_watermark_is_the_smallest_log_start_of_live_replicas() {
    let mut p = leader_with(&[1, 2, 3], 10, 2).0;
    p.set_log_start_offset(6);
    assert_eq!(p.low_watermark(), Some(-1), "followers not heard from yet");
    let mut f2 = fetch(2, 10);
    f2.log_start_offset = 6;
    ok(p.follower_fetch(&f2, 1));
    let mut f3 = fetch(3, 10);
    f3.log_start_offset = 4;
    ok(p.follower_fetch(&f3, 1));
    assert_eq!(p.low_watermark(), Some(4));
    f3.log_start_offset = 6;
    ok(p.follower_fetch(&f3, 2));
    assert_eq!(p.low_watermark(), Some(6));
    p.set_log_start_offset(8);
    assert_eq!(p.low_watermark(), Some(6), "followers have not moved yet");
    let fenced = BrokerStatus {
        broker_epoch: 1003,
        fenced: true,
        in_controlled_shutdown: false,
    };
    p.set_broker_status(3, Some(fenced), 3);
    f2.log_start_offset = 8;
    ok(p.follower_fetch(&f2, 3));
    assert_eq!(
        p.low_watermark(),
        Some(8),
        "a fenced broker's replica is not waited for"
    );

    let mut follower = Partition::new(2, 100, cfg(2), offsets(10)).expect("valid offsets");
    let mut r = reg(EPOCH, 10, &[1, 2, 3]);
    r.leader = 1;
    follower.become_follower(&r).expect("follower");
    assert_eq!(follower.low_watermark(), None);
}
