//! Transactional offset commits: pending offsets, completion by COMMIT/ABORT, Kafka's order
//! rule against plain commits, require_stable, loading with and without markers, and the
//! expiration and deletion rules around open transactions.

use crate::records::{group_record, GroupMetadataValue, MemberMetadataValue};
use crate::*;

const G: &str = "g";
const PID: i64 = 7000;

/// The coordinator plus its `__consumer_offsets` partition as a list of log entries.
struct T {
    c: GroupCoordinator,
    log: Vec<LogEntry>,
    next: u64,
    now: i64,
}

fn config() -> GroupConfig {
    GroupConfig {
        member_id_seed: 1,
        offsets_retention_ms: 1_000_000,
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    }
}

fn p() -> i32 {
    partition_for_group(G, 50)
}

impl T {
    fn new() -> T {
        T {
            c: GroupCoordinator::new(config()),
            log: Vec::new(),
            next: 0,
            now: 1_000,
        }
    }

    /// Writes the appends of `outs` to the log and returns the responses.
    fn run(&mut self, outs: Vec<Output>) -> Vec<Response> {
        let mut resps = Vec::new();
        for o in outs {
            match o {
                Output::Respond { response, .. } => resps.push(response),
                Output::Append {
                    records,
                    then,
                    transaction,
                    partition,
                } => {
                    assert_eq!(partition, p());
                    for record in records {
                        let offset = self.log.len() as i64;
                        self.log.push(LogEntry::Record {
                            offset,
                            transactional_producer: transaction.map(|t| t.producer_id),
                            record,
                        });
                    }
                    resps.extend(then.into_iter().map(|(_, r)| r));
                }
            }
        }
        resps
    }

    fn marker(&mut self, producer_id: i64, committed: bool) -> usize {
        let offset = self.log.len() as i64;
        self.log.push(LogEntry::Marker {
            offset,
            producer_id,
            committed,
        });
        self.c.complete_txn_offsets(p(), producer_id, committed)
    }

    fn txn_commit_as(
        &mut self,
        pid: i64,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
    ) -> (Vec<i16>, Vec<Output>) {
        self.next += 1;
        let req = TxnOffsetCommitRequest {
            transactional_id: "tx".into(),
            group_id: G.into(),
            producer_id: pid,
            producer_epoch: 3,
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            topics: offsets
                .iter()
                .map(|(t, p, o)| OffsetCommitTopic {
                    name: t.to_string(),
                    partitions: vec![OffsetCommitPartition {
                        partition_index: *p,
                        committed_offset: *o,
                        committed_leader_epoch: 1,
                        committed_metadata: Some("m".into()),
                    }],
                })
                .collect(),
        };
        let outs = self
            .c
            .commit_txn_offsets(RequestId(self.next), req, self.now);
        let codes = match outs.last() {
            Some(Output::Append { then, .. }) => codes(&then[0].1),
            Some(Output::Respond { response, .. }) => codes(response),
            None => panic!("no output"),
        };
        (codes, outs)
    }

    /// A standalone transactional commit, written to the log.
    fn txn_commit(&mut self, pid: i64, offsets: &[(&str, i32, i64)]) -> Vec<i16> {
        let (codes, outs) = self.txn_commit_as(pid, "", -1, offsets);
        self.run(outs);
        codes
    }

    fn commit(&mut self, offsets: &[(&str, i32, i64)]) {
        self.next += 1;
        let req = OffsetCommitRequest {
            group_id: G.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: offsets
                .iter()
                .map(|(t, p, o)| OffsetCommitTopic {
                    name: t.to_string(),
                    partitions: vec![OffsetCommitPartition {
                        partition_index: *p,
                        committed_offset: *o,
                        committed_leader_epoch: -1,
                        committed_metadata: None,
                    }],
                })
                .collect(),
        };
        let outs = self.c.commit_offsets(RequestId(self.next), req, self.now);
        let resps = self.run(outs);
        assert_eq!(resps[0].error_code(), code::NONE);
    }

    /// (committed offset, error code) of one partition.
    fn fetch(&self, topic: &str, partition: i32, require_stable: bool) -> (i64, i16) {
        let resp = self.c.fetch_offsets(&OffsetFetchRequest {
            group_id: G.into(),
            topics: Some(vec![TopicPartitions {
                name: topic.into(),
                partitions: vec![partition],
            }]),
            require_stable,
        });
        let p = &resp.topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    }

    /// A fresh coordinator that loads this one's log.
    fn reload(&self) -> (T, LoadSummary) {
        let mut fresh = T::new();
        fresh.log = self.log.clone();
        fresh.now = self.now;
        let summary = fresh
            .c
            .load_partition_entries(p(), self.log.clone(), self.now)
            .expect("log decodes");
        (fresh, summary)
    }
}

fn codes(r: &Response) -> Vec<i16> {
    match r {
        Response::TxnOffsetCommit(r) | Response::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        other => vec![other.error_code()],
    }
}

#[test]
fn txn_offsets_are_one_transactional_append_and_pending_until_commit() {
    let mut t = T::new();
    let (codes, outs) = t.txn_commit_as(PID, "", -1, &[("a", 0, 10), ("a", 1, 11)]);
    assert_eq!(codes, vec![code::NONE, code::NONE]);
    match &outs[..] {
        [Output::Append {
            records,
            transaction,
            ..
        }] => {
            assert_eq!(records.len(), 2);
            assert_eq!(
                *transaction,
                Some(TxnProducer {
                    producer_id: PID,
                    producer_epoch: 3
                })
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    t.run(outs);
    // A standalone group was created for it.
    assert_eq!(t.c.group_state(G), Some(GroupState::Empty));
    // Not committed yet: a plain fetch sees nothing, a stable fetch is told to retry.
    assert_eq!(t.fetch("a", 0, false), (-1, code::NONE));
    assert_eq!(t.fetch("a", 0, true), (-1, code::UNSTABLE_OFFSET_COMMIT));
    assert_eq!(t.fetch("a", 2, true), (-1, code::NONE));
    assert!(t.c.has_pending_txn_offsets(p(), PID));
    // Another partition's marker, or another producer's, decides nothing.
    assert_eq!(t.c.complete_txn_offsets(p() + 1, PID, true), 0);
    assert_eq!(t.marker(PID + 1, true), 0);
    assert_eq!(t.fetch("a", 0, false), (-1, code::NONE));

    assert_eq!(t.marker(PID, true), 2);
    assert_eq!(t.fetch("a", 0, true), (10, code::NONE));
    assert_eq!(t.fetch("a", 1, false), (11, code::NONE));
    assert!(!t.c.has_pending_txn_offsets(p(), PID));
}

#[test]
fn abort_drops_the_pending_offsets() {
    let mut t = T::new();
    t.commit(&[("a", 0, 5)]);
    assert_eq!(t.txn_commit(PID, &[("a", 0, 10), ("b", 0, 1)]), vec![0, 0]);
    assert_eq!(t.fetch("a", 0, false), (5, code::NONE));
    assert_eq!(t.marker(PID, false), 2);
    assert_eq!(t.fetch("a", 0, true), (5, code::NONE));
    assert_eq!(t.fetch("b", 0, true), (-1, code::NONE));
}

/// Kafka's rule: when a transaction commits, its offset replaces the committed one only if its
/// record is later in the log.
#[test]
fn the_later_record_wins_between_plain_and_transactional_commits() {
    let mut t = T::new();
    // Plain commit after the transactional one: the plain one stays.
    t.txn_commit(PID, &[("a", 0, 10)]);
    t.commit(&[("a", 0, 7)]);
    assert_eq!(t.fetch("a", 0, false), (7, code::NONE));
    assert_eq!(t.fetch("a", 0, true), (-1, code::UNSTABLE_OFFSET_COMMIT));
    t.marker(PID, true);
    assert_eq!(t.fetch("a", 0, true), (7, code::NONE));
    // Plain commit before the transactional one: the transaction's wins at COMMIT.
    t.commit(&[("a", 1, 7)]);
    t.txn_commit(PID, &[("a", 1, 10)]);
    t.marker(PID, true);
    assert_eq!(t.fetch("a", 1, false), (10, code::NONE));
    // Replaying the same log decides the same way.
    let (fresh, summary) = t.reload();
    assert_eq!(summary.pending_txn_offsets, 0);
    assert_eq!(fresh.fetch("a", 0, true), (7, code::NONE));
    assert_eq!(fresh.fetch("a", 1, true), (10, code::NONE));
}

#[test]
fn member_and_generation_are_checked_like_offset_commit() {
    let mut t = T::new();
    // Unknown group with a generation: ILLEGAL_GENERATION, and no group is created.
    let (codes, _) = t.txn_commit_as(PID, "m1", 5, &[("a", 0, 1)]);
    assert_eq!(codes, vec![code::ILLEGAL_GENERATION]);
    assert_eq!(t.c.group_state(G), None);
    // A Stable group with member m1 in generation 5 (loaded from its metadata record).
    let value = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 5,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp_ms: 0,
        members: vec![MemberMetadataValue {
            member_id: "m1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms: 60_000,
            session_timeout_ms: 10_000,
            subscription: Default::default(),
            assignment: Default::default(),
        }],
    };
    t.c.load_partition(p(), vec![group_record(G, Some(&value))], t.now)
        .expect("loads");
    assert_eq!(t.c.group_state(G), Some(GroupState::Stable));
    let (codes, _) = t.txn_commit_as(PID, "m2", 5, &[("a", 0, 1)]);
    assert_eq!(codes, vec![code::UNKNOWN_MEMBER_ID]);
    let (codes, _) = t.txn_commit_as(PID, "m1", 4, &[("a", 0, 1)]);
    assert_eq!(codes, vec![code::ILLEGAL_GENERATION]);
    let (codes, outs) = t.txn_commit_as(PID, "m1", 5, &[("a", 0, 1)]);
    assert_eq!(codes, vec![code::NONE]);
    t.run(outs);
    // Older versions carry no member: accepted even in a group with members (unlike
    // OffsetCommit).
    let (codes, outs) = t.txn_commit_as(PID + 1, "", -1, &[("a", 1, 1)]);
    assert_eq!(codes, vec![code::NONE]);
    t.run(outs);
    // Too much metadata fails that partition only.
    t.next += 1;
    let req = TxnOffsetCommitRequest {
        transactional_id: "tx".into(),
        group_id: G.into(),
        producer_id: PID,
        producer_epoch: 3,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![OffsetCommitTopic {
            name: "a".into(),
            partitions: vec![OffsetCommitPartition {
                partition_index: 0,
                committed_offset: 1,
                committed_leader_epoch: -1,
                committed_metadata: Some("x".repeat(5000)),
            }],
        }],
    };
    let outs = t.c.commit_txn_offsets(RequestId(t.next), req, t.now);
    assert_eq!(
        codes_of(&outs),
        vec![code::OFFSET_METADATA_TOO_LARGE],
        "answered at once, nothing appended"
    );
}

fn codes_of(outs: &[Output]) -> Vec<i16> {
    match outs {
        [Output::Respond { response, .. }] => codes(response),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn loading_applies_markers_and_keeps_open_transactions_pending() {
    let mut t = T::new();
    t.commit(&[("a", 0, 1), ("a", 1, 1), ("a", 2, 1), ("a", 3, 1)]);
    t.txn_commit(1, &[("a", 0, 10)]);
    t.txn_commit(2, &[("a", 1, 20)]);
    t.txn_commit(3, &[("a", 2, 30)]);
    t.txn_commit(4, &[("a", 3, 40)]);
    t.marker(1, true);
    t.marker(2, false);
    // Producer 4: a plain commit lands after its records, then it commits.
    t.commit(&[("a", 3, 4)]);
    t.marker(4, true);
    // Producer 3 has no marker yet.
    let (mut fresh, summary) = t.reload();
    assert_eq!(summary.groups, 1);
    assert_eq!(summary.offsets, 4);
    assert_eq!(summary.pending_txn_offsets, 1);
    assert_eq!(fresh.fetch("a", 0, true), (10, code::NONE));
    assert_eq!(fresh.fetch("a", 1, true), (1, code::NONE));
    assert_eq!(fresh.fetch("a", 2, false), (1, code::NONE));
    assert_eq!(
        fresh.fetch("a", 2, true),
        (-1, code::UNSTABLE_OFFSET_COMMIT)
    );
    assert_eq!(fresh.fetch("a", 3, true), (4, code::NONE));
    // The marker arrives after the load.
    assert_eq!(fresh.marker(3, true), 1);
    assert_eq!(fresh.fetch("a", 2, true), (30, code::NONE));
    // New writes come after everything loaded: a later plain commit still wins over an older
    // transactional record, and a new transactional one over the loaded commits.
    fresh.txn_commit(5, &[("a", 0, 50)]);
    fresh.marker(5, true);
    assert_eq!(fresh.fetch("a", 0, true), (50, code::NONE));
    // And that log replays to the same state.
    let (again, summary) = fresh.reload();
    assert_eq!(summary.pending_txn_offsets, 0);
    for (p, o) in [(0, 50), (1, 1), (2, 30), (3, 4)] {
        assert_eq!(again.fetch("a", p, true), (o, code::NONE));
    }
}

/// A transaction's offsets in a group with no metadata record recreate a standalone group on
/// load, pending.
#[test]
fn a_group_with_only_pending_offsets_loads_as_a_standalone_group() {
    let mut t = T::new();
    t.txn_commit(PID, &[("a", 0, 10)]);
    let (mut fresh, summary) = t.reload();
    assert_eq!(
        (summary.groups, summary.offsets, summary.pending_txn_offsets),
        (1, 0, 1)
    );
    assert_eq!(fresh.c.group_state(G), Some(GroupState::Empty));
    assert_eq!(
        fresh.fetch("a", 0, true),
        (-1, code::UNSTABLE_OFFSET_COMMIT)
    );
    fresh.marker(PID, false);
    assert_eq!(fresh.fetch("a", 0, true), (-1, code::NONE));
}

/// Fetching every partition lists committed ones only; with require_stable those with an open
/// transaction are UNSTABLE_OFFSET_COMMIT (Kafka's `fetchAllOffsets`).
#[test]
fn fetch_all_with_require_stable() {
    let mut t = T::new();
    t.commit(&[("a", 0, 1), ("a", 1, 2)]);
    t.txn_commit(PID, &[("a", 1, 20), ("b", 0, 5)]);
    let all = |stable| {
        t.c.fetch_offsets(&OffsetFetchRequest {
            group_id: G.into(),
            topics: None,
            require_stable: stable,
        })
    };
    let r = all(true);
    assert_eq!(r.topics.len(), 1, "b has only a pending offset: not listed");
    let parts: Vec<(i32, i64, i16)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect();
    assert_eq!(
        parts,
        vec![(0, 1, code::NONE), (1, -1, code::UNSTABLE_OFFSET_COMMIT)]
    );
    assert_eq!(all(false).topics[0].partitions[1].committed_offset, 2);
}

/// Offsets retention neither expires an offset with a pending transactional one nor removes a
/// group with an open transaction (Kafka's `cleanupExpiredOffsets`).
#[test]
fn open_transactions_hold_off_expiration() {
    let mut t = T::new();
    t.commit(&[("a", 0, 1), ("a", 1, 1)]);
    t.txn_commit(PID, &[("a", 0, 10), ("b", 0, 3)]);
    // Well past the retention.
    t.now = 5_000_000;
    let outs = t.c.tick(t.now);
    t.run(outs);
    assert_eq!(t.c.group_state(G), Some(GroupState::Empty));
    assert_eq!(t.fetch("a", 1, false), (-1, code::NONE), "a-1 expired");
    assert_eq!(t.fetch("a", 0, false), (1, code::NONE), "a-0 kept: pending");
    // After the abort nothing holds the group any more.
    t.marker(PID, false);
    t.now += 2_000;
    let outs = t.c.tick(t.now);
    t.run(outs);
    assert_eq!(t.c.group_state(G), None);

    // A group with only an open transaction is kept too.
    let mut t = T::new();
    t.txn_commit(PID, &[("a", 0, 10)]);
    t.now = 5_000_000;
    let outs = t.c.tick(t.now);
    t.run(outs);
    assert_eq!(t.c.group_state(G), Some(GroupState::Empty));
    t.marker(PID, true);
    assert_eq!(t.fetch("a", 0, true), (10, code::NONE));
}

/// OffsetDelete and DeleteGroups delete pending offsets too, with tombstones that replay the
/// same way (Kafka's `deleteAllOffsets`).
#[test]
fn deleting_offsets_or_the_group_drops_pending_ones() {
    let mut t = T::new();
    t.txn_commit(PID, &[("a", 0, 10), ("b", 0, 3)]);
    t.next += 1;
    let outs = t.c.delete_offsets(
        RequestId(t.next),
        OffsetDeleteRequest {
            group_id: G.into(),
            topics: vec![TopicPartitions {
                name: "a".into(),
                partitions: vec![0],
            }],
        },
        t.now,
    );
    t.run(outs);
    assert_eq!(t.fetch("a", 0, true), (-1, code::NONE));
    assert_eq!(t.fetch("b", 0, true), (-1, code::UNSTABLE_OFFSET_COMMIT));
    let (fresh, _) = t.reload();
    assert_eq!(fresh.fetch("a", 0, true), (-1, code::NONE));
    assert_eq!(
        fresh.fetch("b", 0, true),
        (-1, code::UNSTABLE_OFFSET_COMMIT)
    );

    t.next += 1;
    let outs =
        t.c.delete_groups(RequestId(t.next), &[G.to_string()], t.now);
    let resps = t.run(outs);
    assert_eq!(resps.last().map(Response::error_code), Some(code::NONE));
    assert_eq!(t.c.group_state(G), None);
    // The COMMIT that follows finds nothing to commit.
    assert_eq!(t.marker(PID, true), 0);
    let (fresh, summary) = t.reload();
    assert_eq!(summary.groups, 0);
    assert_eq!(fresh.fetch("b", 0, true), (-1, code::NONE));
}

/// A transactional batch the broker could not write leaves no pending offsets behind, so the
/// COMMIT marker cannot commit offsets the log does not have; a newer pending offset of the
/// same partition stays.
#[test]
fn a_failed_append_takes_its_pending_offsets_back() {
    let mut t = T::new();
    let (_, lost) = t.txn_commit_as(PID, "", -1, &[("a", 0, 10), ("a", 1, 11)]);
    let (_, newer) = t.txn_commit_as(PID, "", -1, &[("a", 1, 12)]);
    t.run(newer);
    let Some(Output::Append { records, .. }) = lost.into_iter().next() else {
        panic!("an append")
    };
    t.c.txn_append_failed(PID, &records);
    assert_eq!(t.fetch("a", 0, true), (-1, code::NONE));
    assert_eq!(t.fetch("a", 1, true), (-1, code::UNSTABLE_OFFSET_COMMIT));
    t.marker(PID, true);
    assert_eq!(t.fetch("a", 0, true), (-1, code::NONE));
    assert_eq!(t.fetch("a", 1, true), (12, code::NONE));
}

#[derive(Debug, Clone)]
enum Op {
    Commit(i32, i64),
    TxnCommit(i64, i32, i64),
    Marker(i64, bool),
    Delete(i32),
    Reload,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3i32, 0..100i64).prop_map(|(p, o)| Op::Commit(p, o)),
        4 => (1..4i64, 0..3i32, 0..100i64).prop_map(|(pid, p, o)| Op::TxnCommit(pid, p, o)),
        3 => (1..4i64, proptest::bool::ANY).prop_map(|(pid, c)| Op::Marker(pid, c)),
        1 => (0..3i32).prop_map(Op::Delete),
        1 => Just(Op::Reload),
    ]
}

proptest::proptest! {
    /// Whatever mix of plain commits, transactional commits, markers and deletions, replaying
    /// the log gives the state the live coordinator has (committed offsets, and which
    /// partitions are unstable), also when the replayed coordinator carries on.
    #[test]
    fn replaying_the_log_gives_the_live_state(ops in proptest::collection::vec(op(), 1..40)) {
        let mut t = T::new();
        for op in ops {
            match op {
                Op::Commit(p, o) => t.commit(&[("a", p, o)]),
                Op::TxnCommit(pid, p, o) => {
                    t.txn_commit(pid, &[("a", p, o)]);
                }
                Op::Marker(pid, c) => {
                    t.marker(pid, c);
                }
                Op::Delete(p) => {
                    t.next += 1;
                    let outs = t.c.delete_offsets(
                        RequestId(t.next),
                        OffsetDeleteRequest {
                            group_id: G.into(),
                            topics: vec![TopicPartitions {
                                name: "a".into(),
                                partitions: vec![p],
                            }],
                        },
                        t.now,
                    );
                    t.run(outs);
                }
                Op::Reload => t = t.reload().0,
            }
            let (fresh, _) = t.reload();
            for p in 0..3 {
                for stable in [false, true] {
                    proptest::prop_assert_eq!(t.fetch("a", p, stable), fresh.fetch("a", p, stable));
                }
            }
        }
    }
}

/// A deleted topic's pending transactional offsets get tombstones too (Kafka 4.4's
/// `onTopicsDeleted` walks the pending offsets as well): the COMMIT that follows does not
/// bring them back, a replay agrees, and the open transaction still holds the group until its
/// marker.
#[test]
fn a_deleted_topic_s_pending_offsets_are_tombstoned_too() {
    let mut t = T::new();
    t.commit(&[("gone", 0, 1)]);
    t.txn_commit(PID, &[("gone", 0, 10), ("gone", 1, 11)]);
    let deleted: std::collections::BTreeSet<String> = ["gone".to_string()].into();
    let outs = t.c.on_topics_deleted(&deleted);
    match &outs[..] {
        [Output::Append {
            records,
            transaction: None,
            ..
        }] => assert_eq!(records.len(), 2, "one tombstone per partition"),
        other => panic!("unexpected {other:?}"),
    }
    t.run(outs);
    assert_eq!(t.fetch("gone", 0, true), (-1, code::NONE));
    assert_eq!(t.fetch("gone", 1, true), (-1, code::NONE));
    // The open transaction keeps the group past the expiration check.
    t.now += 5_000;
    let outs = t.c.tick(t.now);
    t.run(outs);
    assert_eq!(t.c.group_state(G), Some(GroupState::Empty));
    let (fresh, summary) = t.reload();
    assert_eq!(summary.offsets, 0);
    assert_eq!(fresh.fetch("gone", 1, false), (-1, code::NONE));
    assert_eq!(t.marker(PID, true), 0);
    assert_eq!(t.fetch("gone", 1, false), (-1, code::NONE));
    t.now += 5_000;
    let outs = t.c.tick(t.now);
    t.run(outs);
    assert_eq!(t.c.group_state(G), None);
}
