//! Unit tests of the coordinator's decisions on a manual clock, the record format, loading, and
//! a property test over random request sequences.

use std::collections::{BTreeSet, HashMap, HashSet};

use proptest::prelude::*;

use crate::*;

/// A manual clock: tests move time, nothing sleeps.
struct Clock(i64);

impl Clock {
    fn now(&self) -> i64 {
        self.0
    }
    fn advance(&mut self, ms: i64) {
        self.0 += ms;
    }
}

/// Producer ids 1000, 1001, ...
struct Ids(i64);

impl ProducerIdSource for Ids {
    fn next_producer_id(&mut self) -> Result<i64, i16> {
        self.0 += 1;
        Ok(self.0 - 1)
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn req(id: &str, timeout: i32, expected: Option<(i64, i16)>) -> InitProducerIdRequest {
    InitProducerIdRequest {
        transactional_id: id.to_string(),
        transaction_timeout_ms: timeout,
        expected: expected.map(|(producer_id, epoch)| ProducerIdAndEpoch { producer_id, epoch }),
    }
}

/// The coordinator, its clock and id source, with the broker's part simulated: every write
/// succeeds and is installed at once.
struct Harness {
    c: TransactionCoordinator,
    clock: Clock,
    ids: Ids,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            c: TransactionCoordinator::new(TxnConfig::default()),
            clock: Clock(1_000_000),
            ids: Ids(1000),
        }
    }

    fn apply(&mut self, d: &Decision) {
        if let Some(w) = &d.write {
            self.c
                .write_completed(w.clone())
                .expect("the coordinator only writes legal transitions");
        }
    }

    fn init(&mut self, id: &str, expected: Option<(i64, i16)>) -> Decision {
        let now = self.clock.now();
        let d = self
            .c
            .init_producer_id(&req(id, 60_000, expected), &mut self.ids, now);
        self.apply(&d);
        d
    }

    fn add(&mut self, id: &str, pid: i64, epoch: i16, parts: &[TopicPartition]) -> Decision {
        let now = self.clock.now();
        let d = self.c.add_partitions(id, pid, epoch, parts, now);
        self.apply(&d);
        d
    }

    fn end(&mut self, id: &str, pid: i64, epoch: i16, result: TransactionResult) -> Decision {
        let now = self.clock.now();
        let d = self.c.end_txn(id, pid, epoch, result, now);
        self.apply(&d);
        d
    }

    /// EndTxn v5+ (transactions version 2).
    fn end2(&mut self, id: &str, pid: i64, epoch: i16, result: TransactionResult) -> Decision {
        let now = self.clock.now();
        let d = self
            .c
            .end_txn_v2(id, pid, epoch, result, &mut self.ids, now);
        self.apply(&d);
        d
    }

    /// Writes the markers of `d` and installs the completion.
    fn complete(&mut self, d: &Decision) -> Decision {
        let markers = d.markers.as_ref().expect("a decision with markers");
        let now = self.clock.now();
        let done = self
            .c
            .markers_written(markers, now)
            .expect("the transaction is still waiting for these markers");
        self.apply(&done);
        done
    }

    fn state(&self, id: &str) -> TransactionState {
        self.c.get(id).expect("known id").state
    }

    /// Every transaction past its timeout is aborted (the timer's sweep).
    fn abort_timed_out(&mut self) -> Vec<Decision> {
        let now = self.clock.now();
        self.c.abort_timed_out(&mut self.ids, now)
    }

    /// A transactions-version-2 producer (one EndTxn v5 commit behind it) with an open
    /// transaction on `t-0` and `t-1`, at the epoch it went on with.
    fn ongoing_v2(&mut self, id: &str) -> (i64, i16) {
        let (pid, epoch) = self.ongoing(id);
        let d = self.end2(id, pid, epoch, TransactionResult::Commit);
        self.complete(&d);
        let epoch = d.producer_epoch;
        let d = self.add(id, pid, epoch, &[tp("t", 0), tp("t", 1)]);
        assert_eq!(d.error, code::NONE);
        (pid, epoch)
    }

    /// A producer with an open transaction on `t-0` and `t-1`.
    fn ongoing(&mut self, id: &str) -> (i64, i16) {
        let d = self.init(id, None);
        assert_eq!(d.error, code::NONE);
        let (pid, epoch) = (d.producer_id, d.producer_epoch);
        let d = self.add(id, pid, epoch, &[tp("t", 0), tp("t", 1)]);
        assert_eq!(d.error, code::NONE);
        (pid, epoch)
    }
}

// ---------------------------------------------------------------- the state table

#[test]
fn state_table_is_kafkas() {
    use TransactionState::*;
    let legal: HashSet<(TransactionState, TransactionState)> = [
        (Empty, Empty),
        (CompleteCommit, Empty),
        (CompleteAbort, Empty),
        (Ongoing, Ongoing),
        (Empty, Ongoing),
        (CompleteCommit, Ongoing),
        (CompleteAbort, Ongoing),
        (Ongoing, PrepareCommit),
        (Ongoing, PrepareAbort),
        (PrepareEpochFence, PrepareAbort),
        (PrepareCommit, CompleteCommit),
        (PrepareAbort, CompleteAbort),
        (Empty, Dead),
        (CompleteCommit, Dead),
        (CompleteAbort, Dead),
        (Ongoing, PrepareEpochFence),
        // Transactions v2: an abort with no transaction open.
        (Empty, PrepareAbort),
        (CompleteCommit, PrepareAbort),
        (CompleteAbort, PrepareAbort),
    ]
    .into_iter()
    .collect();
    for from in TransactionState::ALL {
        for to in TransactionState::ALL {
            assert_eq!(
                from.can_transition_to(to),
                legal.contains(&(from, to)),
                "{from:?} -> {to:?}"
            );
        }
    }
}

#[test]
fn state_ids_round_trip() {
    for s in TransactionState::ALL {
        assert_eq!(TransactionState::from_id(s.id()), Some(s));
    }
    assert_eq!(TransactionState::from_id(8), None);
    assert_eq!(
        TransactionState::PrepareEpochFence.name(),
        "PrepareEpochFence"
    );
}

#[test]
fn transition_refuses_what_the_table_forbids() {
    let m = TransactionMetadata::new("a", 1, 1000, 0);
    let err = m
        .transition(TransactionState::PrepareCommit, 5, |_| {})
        .expect_err("Empty -> PrepareCommit is illegal");
    assert_eq!(err.from, TransactionState::Empty);
    assert_eq!(err.to, TransactionState::PrepareCommit);
}

// ---------------------------------------------------------------- InitProducerId

#[test]
fn init_new_transactional_id_gets_a_new_producer_id_at_epoch_0() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    assert_eq!(
        (d.error, d.producer_id, d.producer_epoch),
        (code::NONE, 1000, 0)
    );
    let w = d.write.expect("persisted");
    assert_eq!(w.state, TransactionState::Empty);
    assert_eq!(w.txn_timeout_ms, 60_000);
    assert!(d.markers.is_none());
    let m = h.c.get("app").expect("cached");
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.pending_state),
        (1000, 0, None)
    );
}

#[test]
fn init_rejects_empty_id_and_bad_timeouts() {
    let mut h = Harness::new();
    let config = TxnConfig::default();
    for (id, timeout, error) in [
        ("", 1000, code::INVALID_REQUEST),
        ("a", 0, code::INVALID_TRANSACTION_TIMEOUT),
        ("a", -5, code::INVALID_TRANSACTION_TIMEOUT),
        (
            "a",
            config.max_timeout_ms + 1,
            code::INVALID_TRANSACTION_TIMEOUT,
        ),
    ] {
        let d = h.c.init_producer_id(&req(id, timeout, None), &mut h.ids, 0);
        assert_eq!(d.error, error);
        assert!(d.write.is_none());
    }
    assert!(
        h.c.get("a").is_none(),
        "nothing cached for a refused request"
    );
    assert_eq!(h.ids.0, 1000, "no producer id spent");
    let d =
        h.c.init_producer_id(&req("a", config.max_timeout_ms, None), &mut h.ids, 0);
    assert_eq!(d.error, code::NONE);
}

#[test]
fn init_again_bumps_the_epoch_and_fences_the_old_producer() {
    let mut h = Harness::new();
    let first = h.init("app", None);
    let second = h.init("app", None);
    assert_eq!(second.producer_id, first.producer_id);
    assert_eq!(second.producer_epoch, 1);
    let d = h.add(
        "app",
        first.producer_id,
        first.producer_epoch,
        &[tp("t", 0)],
    );
    assert_eq!(d.error, code::PRODUCER_FENCED);
    let d = h.add(
        "app",
        second.producer_id,
        second.producer_epoch,
        &[tp("t", 0)],
    );
    assert_eq!(d.error, code::NONE);
}

#[test]
fn init_while_ongoing_fences_the_zombie_and_aborts_its_transaction() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    h.clock.advance(10);
    let d = h.init("app", None);
    assert_eq!(d.error, code::CONCURRENT_TRANSACTIONS);
    let w = d.write.as_ref().expect("the abort is persisted");
    assert_eq!(w.state, TransactionState::PrepareAbort);
    assert_eq!(w.producer_epoch, epoch + 1, "aborted under a bumped epoch");
    let markers = d.markers.as_ref().expect("abort markers");
    assert_eq!(markers.result, TransactionResult::Abort);
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (pid, epoch + 1)
    );
    assert_eq!(markers.partitions, vec![tp("t", 0), tp("t", 1)]);
    // The zombie can neither commit nor add partitions.
    assert_eq!(
        h.end("app", pid, epoch, TransactionResult::Commit).error,
        code::PRODUCER_FENCED
    );
    // The new producer's retry waits for the markers.
    assert_eq!(h.init("app", None).error, code::CONCURRENT_TRANSACTIONS);
    h.complete(&d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
    let retry = h.init("app", None);
    assert_eq!(retry.error, code::NONE);
    assert_eq!((retry.producer_id, retry.producer_epoch), (pid, epoch + 2));
}

#[test]
fn init_during_prepare_or_pending_write_is_concurrent_transactions() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let end = h.end("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(h.state("app"), TransactionState::PrepareCommit);
    assert_eq!(h.init("app", None).error, code::CONCURRENT_TRANSACTIONS);
    h.complete(&end);
    // A write in flight (not yet completed): everything else waits.
    let d =
        h.c.init_producer_id(&req("app", 1000, None), &mut h.ids, h.clock.now());
    assert_eq!(d.error, code::NONE);
    let again =
        h.c.init_producer_id(&req("app", 1000, None), &mut h.ids, h.clock.now());
    assert_eq!(again.error, code::CONCURRENT_TRANSACTIONS);
    assert_eq!(
        h.c.add_partitions("app", pid, epoch, &[tp("t", 0)], 0)
            .error,
        code::CONCURRENT_TRANSACTIONS
    );
    // The append fails: the id is usable again, at the old epoch.
    h.c.write_failed("app");
    assert_eq!(h.c.get("app").map(|m| m.producer_epoch), Some(epoch));
    assert_eq!(h.init("app", None).error, code::NONE);
}

#[test]
fn a_new_id_is_cached_while_its_first_write_is_in_flight() {
    let mut h = Harness::new();
    let d = h.c.init_producer_id(&req("app", 1000, None), &mut h.ids, 0);
    assert_eq!(d.error, code::NONE);
    let again = h.c.init_producer_id(&req("app", 1000, None), &mut h.ids, 0);
    assert_eq!(again.error, code::CONCURRENT_TRANSACTIONS);
    assert_eq!(h.ids.0, 1001, "one producer id for one transactional id");
    h.c.write_failed("app");
    // As in Kafka the id stays cached without an epoch; the retry gets epoch 0 of the same id.
    let retry = h.init("app", None);
    assert_eq!((retry.producer_id, retry.producer_epoch), (1000, 0));
}

#[test]
fn producer_id_source_errors_are_answered() {
    let mut failing = || -> Result<i64, i16> { Err(code::COORDINATOR_LOAD_IN_PROGRESS) };
    let mut c = TransactionCoordinator::new(TxnConfig::default());
    let d = c.init_producer_id(&req("app", 1000, None), &mut failing, 0);
    assert_eq!(d.error, code::COORDINATOR_LOAD_IN_PROGRESS);
    assert!(d.write.is_none());
    assert!(c.get("app").is_none());
}

/// Loads one Empty id at `epoch` into the harness.
fn load_at_epoch(h: &mut Harness, id: &str, pid: i64, epoch: i16, state: TransactionState) {
    load_at(h, id, pid, epoch, state, 0);
}

/// Loads one id at `epoch` whose last EndTxn was of `client_transaction_version`.
fn load_at(
    h: &mut Harness,
    id: &str,
    pid: i64,
    epoch: i16,
    state: TransactionState,
    client_transaction_version: i16,
) {
    let mut m = TransactionMetadata::new(id, pid, 60_000, 0);
    m.producer_epoch = epoch;
    m.state = state;
    m.client_transaction_version = client_transaction_version;
    if state == TransactionState::Ongoing {
        m.partitions.insert(tp("t", 0));
        m.txn_start_timestamp_ms = h.clock.now();
    }
    let (key, value) = record_for(&m);
    let partition = h.c.partition_for(id);
    h.c.load_partition(partition, [(key.as_slice(), value.as_deref())])
        .expect("valid records");
}

#[test]
fn epoch_exhaustion_rotates_the_producer_id() {
    let mut h = Harness::new();
    load_at_epoch(&mut h, "app", 7, i16::MAX - 2, TransactionState::Empty);
    let d = h.init("app", None);
    assert_eq!((d.producer_id, d.producer_epoch), (7, i16::MAX - 1));
    assert!(is_epoch_exhausted(d.producer_epoch));
    let d = h.init("app", None);
    assert_eq!(d.error, code::NONE);
    assert_eq!((d.producer_id, d.producer_epoch), (1000, 0));
    let m = h.c.get("app").expect("cached");
    assert_eq!(m.last_producer_id, 7);
    assert_eq!(m.last_producer_epoch, NO_PRODUCER_EPOCH);
}

/// On a cluster at transactions version 1 the fence aborts at 32767 under the old producer
/// id; the next InitProducerId rotates.
#[test]
fn fencing_at_an_exhausted_epoch_aborts_at_max_then_rotates() {
    let mut h = Harness::new();
    h.c.set_transaction_version(1);
    load_at_epoch(&mut h, "app", 7, i16::MAX - 1, TransactionState::Ongoing);
    let d = h.init("app", None);
    assert_eq!(d.error, code::CONCURRENT_TRANSACTIONS);
    assert_eq!(d.markers.as_ref().map(|m| m.producer_epoch), Some(i16::MAX));
    h.complete(&d);
    let d = h.init("app", None);
    assert_eq!(
        (d.error, d.producer_id, d.producer_epoch),
        (code::NONE, 1000, 0)
    );
}

#[test]
fn kip360_the_current_producer_may_bump_and_retry_the_bump() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let (pid, e0) = (d.producer_id, d.producer_epoch);
    let bumped = h.init("app", Some((pid, e0)));
    assert_eq!((bumped.error, bumped.producer_epoch), (code::NONE, e0 + 1));
    assert_eq!(h.c.get("app").map(|m| m.last_producer_epoch), Some(e0));
    // The answer was lost: the same request again gets the same epoch, not another bump.
    let retry = h.init("app", Some((pid, e0)));
    assert_eq!((retry.error, retry.producer_epoch), (code::NONE, e0 + 1));
    // The new epoch may bump again.
    let next = h.init("app", Some((pid, e0 + 1)));
    assert_eq!(next.producer_epoch, e0 + 2);
    // An older epoch is a zombie; an unknown producer id too.
    assert_eq!(h.init("app", Some((pid, e0))).error, code::PRODUCER_FENCED);
    assert_eq!(
        h.init("app", Some((pid + 5, 0))).error,
        code::PRODUCER_FENCED
    );
}

#[test]
fn kip360_retry_after_a_rotation_gets_the_same_new_producer_id() {
    let mut h = Harness::new();
    load_at_epoch(&mut h, "app", 7, i16::MAX - 1, TransactionState::Empty);
    let d = h.init("app", Some((7, i16::MAX - 1)));
    assert_eq!((d.producer_id, d.producer_epoch), (1000, 0));
    // The answer was lost; the producer retries with its old, exhausted id and epoch.
    let retry = h.init("app", Some((7, i16::MAX - 1)));
    assert_eq!(retry.error, code::NONE);
    assert_eq!((retry.producer_id, retry.producer_epoch), (1000, 0));
    assert_eq!(h.ids.0, 1001, "no second rotation");
}

/// A new producer's InitProducerId (no expected epoch) forgets the last epoch, as Kafka's
/// `prepareIncrementProducerEpoch` does: the producer it fences cannot pass its KIP-360 bump off
/// as a retry of an earlier one and be handed the new producer's epoch.
#[test]
fn a_new_producer_forgets_the_last_epoch_so_the_old_one_stays_fenced() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let (pid, epoch) = (d.producer_id, d.producer_epoch);
    // The producer's own bump, and its retry: the same answer.
    let own = h.init("app", Some((pid, epoch)));
    assert_eq!((own.error, own.producer_epoch), (code::NONE, epoch + 1));
    let retry = h.init("app", Some((pid, epoch)));
    assert_eq!((retry.error, retry.producer_epoch), (code::NONE, epoch + 1));
    // A new producer with the same transactional id.
    let new = h.init("app", None);
    assert_eq!((new.error, new.producer_epoch), (code::NONE, epoch + 2));
    assert_eq!(
        h.c.get("app").map(|m| m.last_producer_epoch),
        Some(NO_PRODUCER_EPOCH)
    );
    // The old producer, from either of its epochs, is fenced.
    for old in [epoch, epoch + 1] {
        let zombie = h.init("app", Some((pid, old)));
        assert_eq!(zombie.error, code::PRODUCER_FENCED, "from epoch {old}");
        assert!(zombie.write.is_none());
    }
    assert_eq!(h.c.get("app").map(|m| m.producer_epoch), Some(epoch + 2));
}

// ---------------------------------------------------------------- AddPartitionsToTxn / AddOffsetsToTxn

#[test]
fn add_partitions_opens_and_extends_the_transaction() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let (pid, epoch) = (d.producer_id, d.producer_epoch);
    let start = h.clock.now();
    let d = h.add("app", pid, epoch, &[tp("t", 0)]);
    assert_eq!(d.error, code::NONE);
    let w = d.write.expect("persisted");
    assert_eq!(w.state, TransactionState::Ongoing);
    assert_eq!(w.txn_start_timestamp_ms, start);
    h.clock.advance(100);
    // Already in the transaction: nothing to write.
    let d = h.add("app", pid, epoch, &[tp("t", 0)]);
    assert_eq!((d.error, d.write), (code::NONE, None));
    let d = h.add("app", pid, epoch, &[tp("t", 0), tp("u", 3)]);
    let w = d.write.expect("persisted");
    assert_eq!(w.txn_start_timestamp_ms, start, "the start does not move");
    assert_eq!(w.txn_last_update_timestamp_ms, start + 100);
    assert_eq!(w.partitions, BTreeSet::from([tp("t", 0), tp("u", 3)]));
}

#[test]
fn add_partitions_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.add("nobody", 1, 0, &[tp("t", 0)]).error,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(h.add("", 1, 0, &[tp("t", 0)]).error, code::INVALID_REQUEST);
    let (pid, epoch) = h.ongoing("app");
    assert_eq!(
        h.add("app", pid + 1, epoch, &[tp("t", 0)]).error,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.add("app", pid, epoch + 1, &[tp("t", 0)]).error,
        code::PRODUCER_FENCED
    );
    h.end("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(
        h.add("app", pid, epoch, &[tp("t", 9)]).error,
        code::CONCURRENT_TRANSACTIONS
    );
}

#[test]
fn add_partitions_after_a_completed_transaction_starts_a_new_one() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let end = h.end("app", pid, epoch, TransactionResult::Commit);
    h.complete(&end);
    h.clock.advance(500);
    let d = h.add("app", pid, epoch, &[tp("v", 0)]);
    let w = d.write.expect("persisted");
    assert_eq!(w.partitions, BTreeSet::from([tp("v", 0)]));
    assert_eq!(w.txn_start_timestamp_ms, h.clock.now());
}

#[test]
fn add_offsets_adds_the_groups_consumer_offsets_partition() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let now = h.clock.now();
    let d =
        h.c.add_offsets("app", d.producer_id, d.producer_epoch, "my-group", now);
    h.apply(&d);
    let expected = tp(
        CONSUMER_OFFSETS_TOPIC,
        crate::records::partition_for_group("my-group", 50),
    );
    assert!(h
        .c
        .get("app")
        .expect("cached")
        .partitions
        .contains(&expected));
    assert_eq!(
        h.c.add_offsets("app", d.producer_id, d.producer_epoch, "", now)
            .error,
        code::INVALID_REQUEST
    );
}

#[test]
fn verify_partitions_answers_per_partition() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let m = h.c.get("app");
    let answers = verify_partitions(m, "app", pid, epoch, &[tp("t", 0), tp("x", 0)]);
    assert_eq!(
        answers,
        vec![
            (tp("t", 0), code::NONE),
            (tp("x", 0), code::TRANSACTION_ABORTABLE)
        ]
    );
    let answers = verify_partitions(m, "app", pid, epoch - 1, &[tp("t", 0)]);
    assert_eq!(answers, vec![(tp("t", 0), code::PRODUCER_FENCED)]);
    let answers = verify_partitions(m, "app", pid + 1, epoch, &[tp("t", 0)]);
    assert_eq!(
        answers,
        vec![(tp("t", 0), code::INVALID_PRODUCER_ID_MAPPING)]
    );
    // While its markers are written, as Kafka: a retriable answer.
    let d = h.end("app", pid, epoch, TransactionResult::Commit);
    let m = h.c.get("app");
    let answers = verify_partitions(m, "app", pid, epoch, &[tp("t", 0), tp("x", 0)]);
    assert_eq!(
        answers,
        vec![
            (tp("t", 0), code::CONCURRENT_TRANSACTIONS),
            (tp("x", 0), code::CONCURRENT_TRANSACTIONS)
        ]
    );
    // Completed: no partition is in a transaction any more.
    h.complete(&d);
    let m = h.c.get("app");
    let answers = verify_partitions(m, "app", pid, epoch, &[tp("t", 0)]);
    assert_eq!(answers, vec![(tp("t", 0), code::TRANSACTION_ABORTABLE)]);
}

// ---------------------------------------------------------------- EndTxn

#[test]
fn commit_goes_through_prepare_commit_to_complete_commit() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(d.error, code::NONE);
    assert_eq!(
        d.write.as_ref().map(|w| w.state),
        Some(TransactionState::PrepareCommit)
    );
    let markers = d.markers.clone().expect("markers");
    assert_eq!(markers.result, TransactionResult::Commit);
    assert_eq!((markers.producer_id, markers.producer_epoch), (pid, epoch));
    assert_eq!(markers.partitions, vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(h.c.pending_markers(), vec![markers]);
    let done = h.complete(&d);
    let w = done.write.expect("persisted");
    assert_eq!(w.state, TransactionState::CompleteCommit);
    assert!(w.partitions.is_empty());
    assert!(h.c.pending_markers().is_empty());
}

#[test]
fn abort_goes_through_prepare_abort_to_complete_abort() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end("app", pid, epoch, TransactionResult::Abort);
    assert_eq!(h.state("app"), TransactionState::PrepareAbort);
    assert_eq!(
        d.markers.as_ref().map(|m| m.result),
        Some(TransactionResult::Abort)
    );
    h.complete(&d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
}

#[test]
fn end_txn_retries_are_idempotent() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end("app", pid, epoch, TransactionResult::Commit);
    // Retried while the markers are written: wait.
    let retry = h.end("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(
        (retry.error, retry.write),
        (code::CONCURRENT_TRANSACTIONS, None)
    );
    assert_eq!(
        h.end("app", pid, epoch, TransactionResult::Abort).error,
        code::INVALID_TXN_STATE
    );
    h.complete(&d);
    // Retried after completion: success, nothing written, no markers again.
    let retry = h.end("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(retry, Decision::reply(code::NONE));
    assert_eq!(
        h.end("app", pid, epoch, TransactionResult::Abort).error,
        code::INVALID_TXN_STATE
    );
}

// ---------------------------------------------------------------- EndTxn v5 (transactions v2)

#[test]
fn tv2_end_txn_bumps_the_epoch_and_the_markers_carry_it() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end2("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(d.error, code::NONE);
    assert_eq!((d.producer_id, d.producer_epoch), (pid, epoch + 1));
    let w = d.write.clone().expect("persisted");
    assert_eq!(w.state, TransactionState::PrepareCommit);
    assert_eq!(w.client_transaction_version, TRANSACTION_VERSION_2);
    assert_eq!(
        (w.producer_epoch, w.last_producer_epoch),
        (epoch + 1, epoch)
    );
    let markers = d.markers.clone().expect("markers");
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (pid, epoch + 1)
    );
    assert_eq!(markers.partitions, vec![tp("t", 0), tp("t", 1)]);
    let done = h.complete(&d);
    let w = done.write.expect("persisted");
    assert_eq!(w.state, TransactionState::CompleteCommit);
    assert_eq!((w.producer_id, w.producer_epoch), (pid, epoch + 1));
    // The next transaction runs at the new epoch; its abort bumps again.
    assert_eq!(
        h.add("app", pid, epoch, &[tp("t", 0)]).error,
        code::PRODUCER_FENCED
    );
    assert_eq!(
        h.add("app", pid, epoch + 1, &[tp("t", 0)]).error,
        code::NONE
    );
    let d = h.end2("app", pid, epoch + 1, TransactionResult::Abort);
    assert_eq!((d.error, d.producer_epoch), (code::NONE, epoch + 2));
    assert_eq!(
        d.markers.as_ref().map(|m| (m.producer_epoch, m.result)),
        Some((epoch + 2, TransactionResult::Abort))
    );
    h.complete(&d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
}

#[test]
fn tv2_epoch_overflow_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    load_at_epoch(&mut h, "app", 7, i16::MAX - 1, TransactionState::Ongoing);
    let d = h.end2("app", 7, i16::MAX - 1, TransactionResult::Commit);
    assert_eq!(d.error, code::NONE);
    // The client goes on with the new id; the markers fence the old one at the last epoch.
    assert_eq!((d.producer_id, d.producer_epoch), (1000, 0));
    assert_eq!(
        d.markers
            .as_ref()
            .map(|m| (m.producer_id, m.producer_epoch)),
        Some((7, i16::MAX))
    );
    let w = d.write.clone().expect("persisted");
    assert_eq!((w.producer_id, w.next_producer_id), (7, 1000));
    // Kept across a reload: the value's tagged fields.
    let (key, value) = record_for(&w);
    let (loaded, _) = load([(key.as_slice(), value.as_deref())]).expect("valid record");
    let m = &loaded["app"];
    assert_eq!(
        (m.next_producer_id, m.client_transaction_version),
        (1000, TRANSACTION_VERSION_2)
    );
    let done = h.complete(&d);
    let w = done.write.expect("persisted");
    assert_eq!(w.state, TransactionState::CompleteCommit);
    assert_eq!(
        (
            w.producer_id,
            w.producer_epoch,
            w.last_producer_id,
            w.next_producer_id
        ),
        (1000, 0, 7, NO_PRODUCER_ID)
    );
    // The answer was lost: the retry with the old id and its last epoch gets the same result.
    let retry = h.end2("app", 7, i16::MAX - 1, TransactionResult::Commit);
    assert_eq!(
        (retry.error, retry.producer_id, retry.producer_epoch),
        (code::NONE, 1000, 0)
    );
    assert!(retry.write.is_none() && retry.markers.is_none());
    assert_eq!(h.ids.0, 1001, "one new producer id only");
    // The new id works; the old one at any other epoch does not.
    assert_eq!(h.add("app", 1000, 0, &[tp("t", 0)]).error, code::NONE);
    assert_eq!(
        h.end2("app", 7, 3, TransactionResult::Commit).error,
        code::INVALID_PRODUCER_ID_MAPPING
    );
}

/// After an EndTxn v5 that rotated the producer id, the last epoch kept is the one the client
/// sent (32766), as Kafka 4.4's `prepareComplete` leaves it: a client that lost the EndTxn
/// answer and falls back to InitProducerId from (old id, 32766) gets the new id at epoch 0, not
/// PRODUCER_FENCED, and no second bump.
#[test]
fn tv2_init_producer_id_after_a_lost_rotation_answer_gets_the_new_id() {
    let mut h = Harness::new();
    load_at_epoch(&mut h, "app", 7, i16::MAX - 1, TransactionState::Ongoing);
    let d = h.end2("app", 7, i16::MAX - 1, TransactionResult::Commit);
    let done = h.complete(&d);
    let w = done.write.expect("persisted");
    assert_eq!(
        (w.producer_id, w.producer_epoch, w.last_producer_epoch),
        (1000, 0, i16::MAX - 1)
    );
    let init = h.init("app", Some((7, i16::MAX - 1)));
    assert_eq!(
        (init.error, init.producer_id, init.producer_epoch),
        (code::NONE, 1000, 0)
    );
    assert_eq!(h.ids.0, 1001, "no second rotation");
    // The new id goes on from there.
    assert_eq!(h.add("app", 1000, 0, &[tp("t", 0)]).error, code::NONE);
}

#[test]
fn tv2_a_retried_end_txn_after_completion_gets_the_same_result() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end2("app", pid, epoch, TransactionResult::Commit);
    // Retried while the markers are written: wait.
    let pending = h.end2("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(
        (pending.error, pending.write),
        (code::CONCURRENT_TRANSACTIONS, None)
    );
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Abort).error,
        code::INVALID_TXN_STATE
    );
    h.complete(&d);
    let retry = h.end2("app", pid, epoch, TransactionResult::Commit);
    assert_eq!(
        (retry.error, retry.producer_id, retry.producer_epoch),
        (code::NONE, pid, epoch + 1)
    );
    assert!(retry.write.is_none() && retry.markers.is_none());
    // The other result from the old epoch is not a retry.
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Abort).error,
        code::INVALID_TXN_STATE
    );
    // Older still: fenced.
    assert_eq!(
        h.end2("app", pid, epoch - 1, TransactionResult::Commit)
            .error,
        code::PRODUCER_FENCED
    );
}

#[test]
fn tv2_abort_with_nothing_open_bumps_the_epoch_without_markers() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let (pid, epoch) = (d.producer_id, d.producer_epoch);
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Commit).error,
        code::INVALID_TXN_STATE
    );
    let d = h.end2("app", pid, epoch, TransactionResult::Abort);
    assert_eq!((d.error, d.producer_epoch), (code::NONE, epoch + 1));
    assert_eq!(h.state("app"), TransactionState::PrepareAbort);
    assert_eq!(d.markers.as_ref().map(|m| m.partitions.len()), Some(0));
    h.complete(&d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
    // After a commit, an abort from the current epoch is a new (empty) abort too.
    assert_eq!(
        h.add("app", pid, epoch + 1, &[tp("t", 0)]).error,
        code::NONE
    );
    let d = h.end2("app", pid, epoch + 1, TransactionResult::Commit);
    h.complete(&d);
    let d = h.end2("app", pid, epoch + 2, TransactionResult::Abort);
    assert_eq!((d.error, d.producer_epoch), (code::NONE, epoch + 3));
}

#[test]
fn tv2_adds_get_concurrent_transactions_while_markers_pend() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end2("app", pid, epoch, TransactionResult::Commit);
    // The partition leader adding the next transaction's partition (Produce v12+) waits.
    let add = h.add("app", pid, epoch + 1, &[tp("t", 0)]);
    assert_eq!(
        (add.error, add.write),
        (code::CONCURRENT_TRANSACTIONS, None)
    );
    assert_eq!(
        h.end2("app", pid, epoch + 1, TransactionResult::Commit)
            .error,
        code::PRODUCER_FENCED,
        "the bumped epoch cannot end a transaction before it completes"
    );
    h.complete(&d);
    let add = h.add("app", pid, epoch + 1, &[tp("t", 0)]);
    assert_eq!(add.error, code::NONE);
    assert_eq!(h.state("app"), TransactionState::Ongoing);
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Commit).error,
        code::PRODUCER_FENCED
    );
}

#[test]
fn tv1_end_txn_after_tv2_keeps_the_epoch() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end2("app", pid, epoch, TransactionResult::Commit);
    h.complete(&d);
    assert_eq!(
        h.add("app", pid, epoch + 1, &[tp("t", 0)]).error,
        code::NONE
    );
    let d = h.end("app", pid, epoch + 1, TransactionResult::Commit);
    assert_eq!(
        (d.error, d.producer_id, d.producer_epoch),
        (code::NONE, NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    );
    let w = d.write.clone().expect("persisted");
    assert_eq!(
        (w.producer_epoch, w.client_transaction_version),
        (epoch + 1, 0)
    );
    assert_eq!(
        d.markers.as_ref().map(|m| m.producer_epoch),
        Some(epoch + 1)
    );
    h.complete(&d);
    assert_eq!(h.c.get("app").map(|m| m.producer_epoch), Some(epoch + 1));
}

#[test]
fn end_txn_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.end("nobody", 1, 0, TransactionResult::Commit).error,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    let d = h.init("app", None);
    let (pid, epoch) = (d.producer_id, d.producer_epoch);
    // No transaction open.
    assert_eq!(
        h.end("app", pid, epoch, TransactionResult::Commit).error,
        code::INVALID_TXN_STATE
    );
    assert_eq!(
        h.end("app", pid, epoch + 1, TransactionResult::Commit)
            .error,
        code::PRODUCER_FENCED
    );
    assert_eq!(
        h.end("app", pid + 1, epoch, TransactionResult::Commit)
            .error,
        code::INVALID_PRODUCER_ID_MAPPING
    );
}

#[test]
fn producer_fenced_is_invalid_producer_epoch_for_old_versions() {
    let fenced = code::PRODUCER_FENCED;
    assert_eq!(
        error_for_version(TxnApi::EndTxn, 1, fenced),
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(error_for_version(TxnApi::EndTxn, 2, fenced), fenced);
    assert_eq!(error_for_version(TxnApi::EndTxn, 5, fenced), fenced);
    assert_eq!(
        error_for_version(TxnApi::AddPartitionsToTxn, 1, fenced),
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        error_for_version(TxnApi::AddOffsetsToTxn, 2, fenced),
        fenced
    );
    assert_eq!(
        error_for_version(TxnApi::InitProducerId, 3, fenced),
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(error_for_version(TxnApi::InitProducerId, 4, fenced), fenced);
    assert_eq!(
        error_for_version(TxnApi::EndTxn, 0, code::INVALID_TXN_STATE),
        code::INVALID_TXN_STATE
    );
}

// ---------------------------------------------------------------- timeouts

#[test]
fn the_timer_aborts_a_transaction_past_its_timeout_with_an_epoch_bump() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let start = h.clock.now();
    assert_eq!(h.c.next_deadline(), Some(start + 60_000));
    h.clock.advance(60_000);
    assert!(
        h.c.abort_timed_out(&mut h.ids, h.clock.now()).is_empty(),
        "not past it yet"
    );
    h.clock.advance(1);
    let aborts = h.c.abort_timed_out(&mut h.ids, h.clock.now());
    assert_eq!(aborts.len(), 1);
    let d = &aborts[0];
    let w = d.write.as_ref().expect("persisted");
    assert_eq!(w.state, TransactionState::PrepareAbort);
    assert_eq!(w.producer_epoch, epoch + 1);
    assert_eq!(
        d.markers.as_ref().map(|m| (m.result, m.producer_epoch)),
        Some((TransactionResult::Abort, epoch + 1))
    );
    // In flight: the timer does not abort twice.
    assert!(h.c.abort_timed_out(&mut h.ids, h.clock.now()).is_empty());
    h.apply(d);
    assert_eq!(h.c.next_deadline(), None);
    // The producer that let it time out is fenced.
    assert_eq!(
        h.end("app", pid, epoch, TransactionResult::Commit).error,
        code::PRODUCER_FENCED
    );
    h.complete(d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
}

/// Kafka 4.4 aborts a timed-out transactions-version-2 transaction with one epoch bump, as under
/// version 1 (Kafka 4.0.0 bumped twice; KAFKA-19367 took the second bump out). The producer
/// left at the old epoch is one behind, which EndTxn v5 reads as a retry: its abort is answered
/// NONE with the epoch to go on with, its commit INVALID_TXN_STATE.
#[test]
fn tv2_a_timed_out_transaction_is_aborted_with_one_bump_as_in_kafka() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing_v2("app");
    h.clock.advance(60_001);
    let aborts = h.abort_timed_out();
    assert_eq!(aborts.len(), 1);
    let d = &aborts[0];
    let w = d.write.as_ref().expect("persisted");
    assert_eq!(w.state, TransactionState::PrepareAbort);
    assert_eq!(
        (w.producer_id, w.producer_epoch, w.next_producer_id),
        (pid, epoch + 1, NO_PRODUCER_ID)
    );
    assert_eq!(w.client_transaction_version, TRANSACTION_VERSION_2);
    let markers = d.markers.as_ref().expect("markers");
    assert_eq!(
        (
            markers.producer_id,
            markers.producer_epoch,
            markers.result,
            markers.transaction_version
        ),
        (pid, epoch + 1, TransactionResult::Abort, 2)
    );
    h.apply(d);
    // While the markers are written: the old producer's abort waits, its commit is refused.
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Abort).error,
        code::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Commit).error,
        code::INVALID_TXN_STATE
    );
    h.complete(d);
    assert_eq!(h.state("app"), TransactionState::CompleteAbort);
    assert_eq!(
        h.end2("app", pid, epoch, TransactionResult::Commit).error,
        code::INVALID_TXN_STATE
    );
    let retry = h.end2("app", pid, epoch, TransactionResult::Abort);
    assert_eq!(
        (retry.error, retry.producer_id, retry.producer_epoch),
        (code::NONE, pid, epoch + 1)
    );
    assert!(retry.write.is_none() && retry.markers.is_none());
    // It goes on at the bumped epoch; no producer id was taken.
    assert_eq!(
        h.add("app", pid, epoch + 1, &[tp("t", 0)]).error,
        code::NONE
    );
    assert_eq!(h.ids.0, 1001);
}

/// InitProducerId from a new producer fences a transactions-version-2 transaction as under
/// version 1: aborted at epoch + 1, CONCURRENT_TRANSACTIONS, and the retry bumps to epoch + 2
/// (Kafka 4.4). The old producer is fenced.
#[test]
fn tv2_init_producer_id_fences_an_open_transaction_with_one_bump() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing_v2("app");
    let d = h.init("app", None);
    assert_eq!(d.error, code::CONCURRENT_TRANSACTIONS);
    assert_eq!(
        d.markers
            .as_ref()
            .map(|m| (m.producer_id, m.producer_epoch, m.transaction_version)),
        Some((pid, epoch + 1, 2))
    );
    h.complete(&d);
    let d = h.init("app", None);
    assert_eq!(
        (d.error, d.producer_id, d.producer_epoch),
        (code::NONE, pid, epoch + 2)
    );
    for result in [TransactionResult::Abort, TransactionResult::Commit] {
        assert_eq!(
            h.end2("app", pid, epoch, result).error,
            code::PRODUCER_FENCED
        );
    }
}

/// A transactions-version-2 transaction timing out at an exhausted epoch (32766) is aborted at
/// 32767 under its producer id and moves the producer to a new one, as EndTxn v5 does there
/// (Kafka 4.4, KAFKA-20090). The producer's late abort from 32766 is a retry of the rotation.
#[test]
fn tv2_a_timeout_at_an_exhausted_epoch_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    let v2 = TRANSACTION_VERSION_2;
    load_at(
        &mut h,
        "app",
        7,
        i16::MAX - 1,
        TransactionState::Ongoing,
        v2,
    );
    assert_eq!(
        h.c.get("app").map(|m| m.client_transaction_version),
        Some(v2)
    );
    h.clock.advance(60_001);
    assert_eq!(h.c.producer_ids_to_abort_timed_out(h.clock.now()), 1);
    let aborts = h.abort_timed_out();
    assert_eq!(aborts.len(), 1);
    let d = &aborts[0];
    let w = d.write.as_ref().expect("persisted");
    assert_eq!(
        (w.state, w.producer_id, w.producer_epoch, w.next_producer_id),
        (TransactionState::PrepareAbort, 7, i16::MAX, 1000)
    );
    assert_eq!(
        d.markers
            .as_ref()
            .map(|m| (m.producer_id, m.producer_epoch, m.transaction_version)),
        Some((7, i16::MAX, 2))
    );
    h.apply(d);
    assert_eq!(
        h.end2("app", 7, i16::MAX - 1, TransactionResult::Abort)
            .error,
        code::CONCURRENT_TRANSACTIONS
    );
    let done = h.complete(d);
    let w = done.write.expect("persisted");
    assert_eq!(
        (
            w.state,
            w.producer_id,
            w.producer_epoch,
            w.last_producer_id,
            w.next_producer_id
        ),
        (TransactionState::CompleteAbort, 1000, 0, 7, NO_PRODUCER_ID)
    );
    let retry = h.end2("app", 7, i16::MAX - 1, TransactionResult::Abort);
    assert_eq!(
        (retry.error, retry.producer_id, retry.producer_epoch),
        (code::NONE, 1000, 0)
    );
    assert!(retry.write.is_none());
    assert_eq!(
        h.end2("app", 7, i16::MAX - 1, TransactionResult::Commit)
            .error,
        code::INVALID_TXN_STATE
    );
    assert_eq!(h.add("app", 1000, 0, &[tp("t", 0)]).error, code::NONE);
    assert_eq!(h.ids.0, 1001, "one new producer id only");
}

/// InitProducerId fencing a transactions-version-2 transaction at an exhausted epoch: the abort
/// moves to a new producer id, and the retry bumps it (Kafka 4.4 answers the new id at epoch 1).
#[test]
fn tv2_init_producer_id_fencing_at_an_exhausted_epoch_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    let v2 = TRANSACTION_VERSION_2;
    load_at(
        &mut h,
        "app",
        7,
        i16::MAX - 1,
        TransactionState::Ongoing,
        v2,
    );
    let d = h.init("app", None);
    assert_eq!(d.error, code::CONCURRENT_TRANSACTIONS);
    assert_eq!(
        d.write
            .as_ref()
            .map(|w| (w.producer_epoch, w.next_producer_id)),
        Some((i16::MAX, 1000))
    );
    assert_eq!(
        d.markers
            .as_ref()
            .map(|m| (m.producer_id, m.producer_epoch)),
        Some((7, i16::MAX))
    );
    h.complete(&d);
    let d = h.init("app", None);
    assert_eq!(
        (d.error, d.producer_id, d.producer_epoch),
        (code::NONE, 1000, 1)
    );
    assert_eq!(h.ids.0, 1001, "one new producer id only");
}

/// A cluster at transactions version 1, an exhausted epoch: the timeout aborts at 32767 under
/// the same producer id and takes no new one; the next InitProducerId rotates.
#[test]
fn tv1_a_timeout_at_an_exhausted_epoch_keeps_the_producer_id() {
    let mut h = Harness::new();
    h.c.set_transaction_version(1);
    load_at_epoch(&mut h, "app", 7, i16::MAX - 1, TransactionState::Ongoing);
    h.clock.advance(60_001);
    assert_eq!(h.c.producer_ids_to_abort_timed_out(h.clock.now()), 0);
    let aborts = h.abort_timed_out();
    let d = &aborts[0];
    assert_eq!(
        d.write
            .as_ref()
            .map(|w| (w.producer_epoch, w.next_producer_id)),
        Some((i16::MAX, NO_PRODUCER_ID))
    );
    h.apply(d);
    let done = h.complete(d);
    assert_eq!(
        done.write
            .map(|w| (w.state, w.producer_id, w.producer_epoch)),
        Some((TransactionState::CompleteAbort, 7, i16::MAX))
    );
    assert_eq!(h.ids.0, 1000, "no producer id taken");
    let d = h.init("app", None);
    assert_eq!((d.producer_id, d.producer_epoch), (1000, 0));
}

/// Kafka aborts a fenced transaction under the cluster's transaction version, whatever the
/// client's ("since this is not from client, use server TV"). On a cluster at version 2, a
/// version-1 producer's transaction (its last EndTxn v4) that times out is aborted with
/// version-2 markers and the id records version 2; at an exhausted epoch the abort moves the
/// id to a new producer id, as for a version-2 producer. On a version-1 cluster the markers
/// stay version 0 (the case above).
#[test]
fn a_version_1_producer_is_fenced_under_the_cluster_s_version_2() {
    for (epoch, rotates) in [(3, false), (i16::MAX - 1, true)] {
        let mut h = Harness::new();
        h.c.set_transaction_version(TRANSACTION_VERSION_2);
        load_at(&mut h, "app", 7, epoch, TransactionState::Ongoing, 0);
        h.clock.advance(60_001);
        assert_eq!(
            h.c.producer_ids_to_abort_timed_out(h.clock.now()),
            usize::from(rotates),
            "epoch {epoch}"
        );
        let aborts = h.abort_timed_out();
        let d = &aborts[0];
        assert_eq!(
            d.markers
                .as_ref()
                .map(|m| (m.producer_id, m.producer_epoch, m.transaction_version)),
            Some((7, epoch + 1, 2)),
            "epoch {epoch}: version-2 markers under the old id, at the bumped epoch"
        );
        assert_eq!(
            d.write
                .as_ref()
                .map(|w| (w.client_transaction_version, w.next_producer_id)),
            Some((
                TRANSACTION_VERSION_2,
                if rotates { 1000 } else { NO_PRODUCER_ID }
            )),
            "epoch {epoch}"
        );
        h.apply(d);
        let done = h.complete(d);
        assert_eq!(
            done.write
                .map(|w| (w.state, w.producer_id, w.producer_epoch)),
            Some(if rotates {
                (TransactionState::CompleteAbort, 1000, 0)
            } else {
                (TransactionState::CompleteAbort, 7, epoch + 1)
            }),
            "epoch {epoch}"
        );
    }
    // The same producer on a version-1 cluster: version-0 markers, the version kept.
    let mut h = Harness::new();
    h.c.set_transaction_version(1);
    load_at(&mut h, "app", 7, 3, TransactionState::Ongoing, 0);
    h.clock.advance(60_001);
    let aborts = h.abort_timed_out();
    assert_eq!(
        aborts[0].markers.as_ref().map(|m| m.transaction_version),
        Some(0)
    );
}

/// No producer id to be had (the controller's blocks are unavailable): the abort writes nothing
/// and the next sweep tries again.
#[test]
fn a_tv2_timeout_without_a_producer_id_is_aborted_at_the_next_sweep() {
    let mut h = Harness::new();
    let v2 = TRANSACTION_VERSION_2;
    load_at(
        &mut h,
        "app",
        7,
        i16::MAX - 1,
        TransactionState::Ongoing,
        v2,
    );
    let deadline = h.c.next_deadline().expect("open");
    assert_eq!(h.c.producer_ids_to_abort_timed_out(deadline), 0);
    h.clock.advance(60_001);
    let mut none = || -> Result<i64, i16> { Err(code::COORDINATOR_LOAD_IN_PROGRESS) };
    assert!(h.c.abort_timed_out(&mut none, h.clock.now()).is_empty());
    let m = h.c.get("app").expect("cached");
    assert_eq!(
        (m.state, m.pending_state),
        (TransactionState::Ongoing, None)
    );
    let aborts = h.abort_timed_out();
    assert_eq!(
        aborts[0].write.as_ref().map(|w| w.next_producer_id),
        Some(1000)
    );
}

#[test]
fn the_timer_leaves_idle_and_deciding_transactions_alone() {
    let mut h = Harness::new();
    h.init("idle", None);
    let (pid, epoch) = h.ongoing("deciding");
    h.end("deciding", pid, epoch, TransactionResult::Commit);
    h.clock.advance(10 * 60_000);
    assert!(h.c.abort_timed_out(&mut h.ids, h.clock.now()).is_empty());
    assert_eq!(h.c.next_deadline(), None);
}

#[test]
fn completion_ignores_stale_markers() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d = h.end("app", pid, epoch, TransactionResult::Commit);
    let mut stale = d.markers.clone().expect("markers");
    stale.producer_epoch -= 1;
    assert!(h.c.markers_written(&stale, 0).is_none());
    let m = h.c.get("app").expect("cached").clone();
    assert!(complete_transaction(&m, pid + 1, epoch, 0).is_none());
    h.complete(&d);
    // Twice: the second finds CompleteCommit.
    assert!(h
        .c
        .markers_written(d.markers.as_ref().expect("m"), 0)
        .is_none());
}

/// On a transactions-version-2 cluster (Kafka 4.4's default) a fence keeps the fenced epoch as
/// the last one, whatever the producer's own version: after the timer's abort, the producer's
/// KIP-360 InitProducerId from its old epoch is a retry of that bump and is handed the bumped
/// epoch (librdkafka's way back after an abortable error), as Kafka answers it. On a version-1
/// cluster the fence forgets it and the producer is fenced.
#[test]
fn after_a_timeout_the_producer_s_own_bump_is_answered_by_the_cluster_s_version() {
    for (cluster_version, v2_producer) in [(2, false), (2, true), (1, false), (0, false)] {
        let mut h = Harness::new();
        h.c.set_transaction_version(cluster_version);
        let (pid, epoch) = if v2_producer {
            h.ongoing_v2("app")
        } else {
            h.ongoing("app")
        };
        h.clock.advance(60_001);
        let aborts = h.abort_timed_out();
        assert_eq!(aborts.len(), 1);
        h.apply(&aborts[0]);
        h.complete(&aborts[0]);
        assert_eq!(h.state("app"), TransactionState::CompleteAbort);
        let own = h.init("app", Some((pid, epoch)));
        let case = format!("cluster version {cluster_version}, v2 producer {v2_producer}");
        if cluster_version >= 2 {
            assert_eq!(
                (own.error, own.producer_id, own.producer_epoch),
                (code::NONE, pid, epoch + 1),
                "{case}"
            );
            // Asked again: the same answer.
            let again = h.init("app", Some((pid, epoch)));
            assert_eq!(
                (again.error, again.producer_epoch),
                (code::NONE, epoch + 1),
                "{case}"
            );
        } else {
            assert_eq!(own.error, code::PRODUCER_FENCED, "{case}");
        }
        // A new producer goes on from the bumped epoch either way, and fences the old one.
        let new = h.init("app", None);
        assert_eq!(
            (new.error, new.producer_epoch),
            (code::NONE, epoch + 2),
            "{case}"
        );
        let zombie = h.init("app", Some((pid, epoch)));
        assert_eq!(zombie.error, code::PRODUCER_FENCED, "{case}");
    }
}

/// InitProducerId from a new producer fencing an open transaction leaves the same last epoch as
/// the timer does (Kafka 4.4 on a version-2 cluster): the fenced producer's own bump in the
/// moment before the new producer's retry is answered with the bumped epoch, and the new
/// producer's retry then fences it for good.
#[test]
fn a_fenced_producer_s_own_bump_before_the_new_producer_s_retry() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let fence = h.init("app", None);
    assert_eq!(fence.error, code::CONCURRENT_TRANSACTIONS);
    h.complete(&fence);
    let own = h.init("app", Some((pid, epoch)));
    assert_eq!((own.error, own.producer_epoch), (code::NONE, epoch + 1));
    let new = h.init("app", None);
    assert_eq!((new.error, new.producer_epoch), (code::NONE, epoch + 2));
    let zombie = h.init("app", Some((pid, epoch)));
    assert_eq!(zombie.error, code::PRODUCER_FENCED);
}

// ---------------------------------------------------------------- expiration

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let mut h = Harness::new();
    h.init("idle", None);
    h.ongoing("busy");
    let expiration = h.c.config().transactional_id_expiration_ms;
    h.clock.advance(expiration - 1);
    assert!(h.c.expire(h.clock.now()).is_empty());
    h.clock.advance(1);
    let expired = h.c.expire(h.clock.now());
    assert_eq!(expired.len(), 1, "only the idle id: busy is Ongoing");
    let w = expired[0].write.clone().expect("tombstone");
    assert_eq!(
        (w.transactional_id.as_str(), w.state),
        ("idle", TransactionState::Dead)
    );
    assert_eq!(record_for(&w).1, None, "Dead is written as a tombstone");
    h.apply(&expired[0]);
    assert!(h.c.get("idle").is_none());
}

// ---------------------------------------------------------------- records

#[test]
fn partition_mapping_is_javas_hash_code() {
    assert_eq!(java_string_hash_code("hello"), 99_162_322);
    assert_eq!(java_string_hash_code(""), 0);
    assert_eq!(partition_for_transactional_id("hello", 50), 22);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs makes it 0.
    assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for_transactional_id("polygenelubricants", 50), 0);
    // Negative hash codes use abs, not a mask.
    let h = java_string_hash_code("transactional-producer-7");
    let expected = h.checked_abs().unwrap_or(0) % 50;
    assert_eq!(
        partition_for_transactional_id("transactional-producer-7", 50),
        expected
    );
    // Non-ASCII counts UTF-16 code units, as Java does.
    assert_eq!(java_string_hash_code("é"), 0xe9);
    assert_eq!(java_string_hash_code("😀"), 0xd83d * 31 + 0xde00);
}

fn sample_value() -> TransactionLogValue {
    TransactionLogValue {
        producer_id: 4242,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch: 3,
        txn_timeout_ms: 60_000,
        state: TransactionState::Ongoing,
        partitions: BTreeSet::from([tp("a", 0), tp("a", 2), tp("b", 1)]),
        last_update_timestamp_ms: 1_700_000_000_123,
        start_timestamp_ms: 1_700_000_000_000,
        client_transaction_version: 0,
    }
}

#[test]
fn key_encodes_as_kafka_does() {
    assert_eq!(encode_key("tx"), vec![0, 0, 0, 2, b't', b'x']);
    assert_eq!(decode_key(&encode_key("tx")), Ok(Some("tx".to_string())));
    assert_eq!(
        decode_key(&[0, 1, 0, 0]),
        Ok(None),
        "another key version is skipped"
    );
    assert!(decode_key(&[0, 0, 0, 5, b'a']).is_err());
}

#[test]
fn value_v0_has_kafkas_layout() {
    let mut v = sample_value();
    v.partitions = BTreeSet::from([tp("a", 2)]);
    let bytes = encode_value(&v, 0);
    let mut expected = Vec::new();
    expected.extend_from_slice(&0i16.to_be_bytes()); // version
    expected.extend_from_slice(&4242i64.to_be_bytes());
    expected.extend_from_slice(&3i16.to_be_bytes());
    expected.extend_from_slice(&60_000i32.to_be_bytes());
    expected.push(1); // Ongoing
    expected.extend_from_slice(&1i32.to_be_bytes()); // one topic
    expected.extend_from_slice(&[0, 1, b'a']);
    expected.extend_from_slice(&1i32.to_be_bytes());
    expected.extend_from_slice(&2i32.to_be_bytes());
    expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
    expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(decode_value(&bytes), Ok(v));
}

#[test]
fn value_v1_has_kafkas_flexible_layout_and_tags() {
    let mut v = sample_value();
    v.partitions = BTreeSet::from([tp("a", 2)]);
    v.previous_producer_id = 17;
    let bytes = encode_value(&v, 1);
    let mut expected = Vec::new();
    expected.extend_from_slice(&1i16.to_be_bytes());
    expected.extend_from_slice(&4242i64.to_be_bytes());
    expected.extend_from_slice(&3i16.to_be_bytes());
    expected.extend_from_slice(&60_000i32.to_be_bytes());
    expected.push(1);
    expected.push(2); // compact array: 1 topic
    expected.extend_from_slice(&[2, b'a']); // compact string
    expected.push(2); // compact array: 1 partition
    expected.extend_from_slice(&2i32.to_be_bytes());
    expected.push(0); // topic's tagged fields
    expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
    expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    expected.extend_from_slice(&[1, 0, 8]); // one tag: 0, 8 bytes
    expected.extend_from_slice(&17i64.to_be_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(decode_value(&bytes), Ok(v));
}

#[test]
fn values_round_trip_in_both_versions() {
    let mut v = sample_value();
    assert_eq!(decode_value(&encode_value(&v, 0)), Ok(v.clone()));
    assert_eq!(decode_value(&encode_value(&v, 1)), Ok(v.clone()));
    v.previous_producer_id = 1;
    v.next_producer_id = 2;
    v.client_transaction_version = 2;
    assert_eq!(decode_value(&encode_value(&v, 1)), Ok(v.clone()));
    // Empty: the partitions are null.
    v.state = TransactionState::Empty;
    v.partitions.clear();
    let bytes = encode_value(&v, 0);
    assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
    assert_eq!(
        decode_value(&bytes).map(|d| d.partitions),
        Ok(BTreeSet::new())
    );
    let bytes = encode_value(&v, 1);
    assert_eq!(bytes[17], 0, "a null compact array");
    assert_eq!(
        decode_value(&bytes).map(|d| d.state),
        Ok(TransactionState::Empty)
    );
}

#[test]
fn bad_values_are_errors_not_panics() {
    let good = encode_value(&sample_value(), 0);
    for cut in 0..good.len() {
        assert!(decode_value(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_status = good.clone();
    bad_status[16] = 9;
    assert_eq!(
        decode_value(&bad_status),
        Err(DecodeError::UnknownStatus(9))
    );
    let mut bad_version = good.clone();
    bad_version[1] = 7;
    assert!(matches!(
        decode_value(&bad_version),
        Err(DecodeError::UnsupportedVersion { version: 7, .. })
    ));
}

// ---------------------------------------------------------------- loading

fn record(m: &TransactionMetadata) -> (Vec<u8>, Option<Vec<u8>>) {
    record_for(m)
}

#[test]
fn load_folds_records_and_tombstones() {
    let mut a = TransactionMetadata::new("a", 1, 1000, 0);
    a.producer_epoch = 0;
    let mut b = TransactionMetadata::new("b", 2, 1000, 0);
    b.producer_epoch = 4;
    let b_ongoing = b
        .transition(TransactionState::Ongoing, 5, |m| {
            m.partitions.insert(tp("t", 0));
            m.txn_start_timestamp_ms = 5;
        })
        .expect("legal");
    let b_commit = b_ongoing
        .transition(TransactionState::PrepareCommit, 6, |_| {})
        .expect("legal");
    let a_dead = a
        .transition(TransactionState::Dead, 9, |_| {})
        .expect("legal");
    let records = [
        record(&a),
        record(&b),
        record(&b_ongoing),
        record(&b_commit),
        record(&a_dead),
    ];
    let (txns, summary) =
        load(records.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))).expect("valid records");
    assert_eq!(
        summary,
        LoadSummary {
            records: 5,
            tombstones: 1,
            skipped: 0,
            transactions: 1
        }
    );
    assert!(!txns.contains_key("a"));
    let loaded = &txns["b"];
    assert_eq!(loaded, &b_commit);
}

#[test]
fn a_loaded_prepare_commit_has_its_markers_resent_and_completes() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    h.end("app", pid, epoch, TransactionResult::Commit);
    let persisted = h.c.get("app").expect("cached").clone();
    // A new coordinator (after a failover) replays the partition.
    let mut h2 = Harness::new();
    let (key, value) = record_for(&persisted);
    let partition = h2.c.partition_for("app");
    let summary =
        h2.c.load_partition(partition, [(key.as_slice(), value.as_deref())])
            .expect("valid");
    assert_eq!(summary.transactions, 1);
    let markers = h2.c.pending_markers();
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].result, TransactionResult::Commit);
    let done = h2.c.markers_written(&markers[0], 0).expect("completes");
    h2.apply(&done);
    assert_eq!(h2.state("app"), TransactionState::CompleteCommit);
    // Unloading forgets the partition's ids.
    h2.c.unload_partition(partition);
    assert!(h2.c.get("app").is_none());
}

#[test]
fn a_loaded_ongoing_transaction_still_times_out() {
    let mut h = Harness::new();
    load_at_epoch(&mut h, "app", 7, 2, TransactionState::Ongoing);
    h.clock.advance(60_001);
    let aborts = h.c.abort_timed_out(&mut h.ids, h.clock.now());
    assert_eq!(aborts.len(), 1);
    assert_eq!(
        aborts[0].markers.as_ref().map(|m| m.producer_epoch),
        Some(3)
    );
}

#[test]
fn write_completed_refuses_what_was_not_pending() {
    let mut h = Harness::new();
    let d = h.init("app", None);
    let w = d.write.expect("written");
    assert!(
        h.c.write_completed(w).is_err(),
        "already installed, nothing pending"
    );
}

// ---------------------------------------------------------------- properties

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = decode_value(&bytes);
        let _ = decode_key(&bytes);
    }

    #[test]
    fn values_round_trip(
        producer_id in any::<i64>(),
        previous in any::<i64>(),
        epoch in any::<i16>(),
        timeout in any::<i32>(),
        state in 0i8..8,
        parts in proptest::collection::btree_set(("[a-c]{1,3}", 0i32..4), 0..6),
        last in any::<i64>(),
        start in any::<i64>(),
        version in 0i16..2,
    ) {
        let state = TransactionState::from_id(state).expect("0..8");
        let partitions: BTreeSet<TopicPartition> =
            parts.into_iter().map(|(t, p)| tp(&t, p)).collect();
        let v = TransactionLogValue {
            producer_id,
            previous_producer_id: if version == 1 { previous } else { NO_PRODUCER_ID },
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: epoch,
            txn_timeout_ms: timeout,
            state,
            partitions,
            last_update_timestamp_ms: last,
            start_timestamp_ms: start,
            client_transaction_version: 0,
        };
        prop_assert_eq!(decode_value(&encode_value(&v, version)), Ok(v));
    }
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Op {
    /// InitProducerId by a fresh producer (`None`) or by the id's latest producer (KIP-360).
    Init {
        id: usize,
        with_expected: bool,
        lose_answer: bool,
    },
    /// AddPartitionsToTxn by the producer answered `client` answers before the id's latest
    /// (0: the latest; older ones are zombies).
    Add {
        id: usize,
        client: usize,
        partition: i32,
    },
    AddOffsets {
        id: usize,
        client: usize,
    },
    /// EndTxn: v0–v4 for "alpha", v5 (transactions version 2) for "beta" and "gamma".
    End {
        id: usize,
        client: usize,
        commit: bool,
    },
    /// Time passes and the timer runs.
    Tick {
        ms: i64,
    },
    /// The oldest outstanding markers are written.
    Markers,
    /// The next append fails.
    FailNextWrite,
    /// The expiration sweep, after a week has passed if `jump`.
    Expire {
        jump: bool,
    },
}

/// Which producer of an id acts: mostly the latest, sometimes an older one (a zombie).
fn client() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 1 => 1usize..4]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, any::<bool>(), prop::bool::weighted(0.2)).prop_map(
            |(id, with_expected, lose_answer)| Op::Init { id, with_expected, lose_answer }
        ),
        6 => (0usize..3, client(), 0i32..3)
            .prop_map(|(id, client, partition)| Op::Add { id, client, partition }),
        1 => (0usize..3, client()).prop_map(|(id, client)| Op::AddOffsets { id, client }),
        4 => (0usize..3, client(), any::<bool>())
            .prop_map(|(id, client, commit)| Op::End { id, client, commit }),
        2 => (0i64..12_000).prop_map(|ms| Op::Tick { ms }),
        4 => Just(Op::Markers),
        1 => Just(Op::FailNextWrite),
        1 => prop::bool::weighted(0.15).prop_map(|jump| Op::Expire { jump }),
    ]
}

const IDS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Whether `id`'s producers end their transactions with EndTxn v5 (a producer keeps to one).
fn speaks_v2(id: &str) -> bool {
    id != "alpha"
}

/// The broker's side of a random run: appends (that may fail), markers queued and written.
struct Sim {
    c: TransactionCoordinator,
    ids: Ids,
    now: i64,
    fail_next: bool,
    markers: Vec<TxnMarkers>,
    /// Producers answered per transactional id, oldest first.
    clients: HashMap<&'static str, Vec<(i64, i16)>>,
    /// Every (producer id, epoch) ever handed to a producer.
    granted: HashSet<(i64, i16)>,
    /// Which transactional id each producer id belongs to.
    owner: HashMap<i64, &'static str>,
}

impl Sim {
    fn run(&mut self, d: Decision) -> Result<i16, TestCaseError> {
        prop_assert_ne!(
            d.error,
            code::UNKNOWN_SERVER_ERROR,
            "an illegal transition was asked for"
        );
        let Some(w) = d.write.clone() else {
            return Ok(d.error);
        };
        if std::mem::take(&mut self.fail_next) {
            self.c.write_failed(&w.transactional_id);
            return Ok(code::NOT_COORDINATOR);
        }
        let before = self.c.get(&w.transactional_id).map(|m| m.state);
        let installed = self.c.write_completed(w.clone());
        prop_assert!(
            installed.is_ok(),
            "{:?} -> {:?}: {:?}",
            before,
            w.state,
            installed
        );
        if let Some(m) = d.markers {
            self.markers.push(m);
        }
        Ok(d.error)
    }

    /// `answer` goes to a producer of `id`: never twice as new, never to two ids, never
    /// `i16::MAX` (an epoch no bump can leave: the next EndTxn v5 would be fenced).
    fn grant(&mut self, id: &'static str, answer: (i64, i16)) -> Result<(), TestCaseError> {
        prop_assert!(self.granted.insert(answer), "{:?} handed out twice", answer);
        prop_assert!(answer.1 < i16::MAX, "{:?} handed out", answer);
        let owner = *self.owner.entry(answer.0).or_insert(id);
        prop_assert_eq!(owner, id, "producer id {} shared", answer.0);
        self.clients.entry(id).or_default().push(answer);
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for m in self.c.transactions() {
            prop_assert!(m.producer_epoch >= NO_PRODUCER_EPOCH);
            match m.state {
                // Transactions version 2 may abort with nothing open: no partitions.
                TransactionState::PrepareAbort
                    if m.client_transaction_version >= TRANSACTION_VERSION_2 =>
                {
                    prop_assert!(m.txn_start_timestamp_ms >= 0);
                }
                TransactionState::Ongoing
                | TransactionState::PrepareCommit
                | TransactionState::PrepareAbort => {
                    prop_assert!(!m.partitions.is_empty(), "{:?}", m);
                    prop_assert!(m.txn_start_timestamp_ms >= 0);
                }
                TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort => {
                    prop_assert!(m.partitions.is_empty(), "{:?}", m)
                }
                TransactionState::Dead | TransactionState::PrepareEpochFence => {
                    prop_assert!(false, "{:?} is never installed", m.state)
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_requests_stay_legal_and_never_share_a_producer_epoch(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mut sim = Sim {
            c: TransactionCoordinator::new(TxnConfig::default()),
            ids: Ids(1000),
            now: 0,
            fail_next: false,
            markers: Vec::new(),
            clients: HashMap::new(),
            granted: HashSet::new(),
            owner: HashMap::new(),
        };
        // "gamma" starts close to epoch exhaustion so runs rotate producer ids; its last
        // EndTxn was v5.
        let mut gamma = TransactionMetadata::new("gamma", 1, 30_000, 0);
        gamma.producer_epoch = i16::MAX - 4;
        gamma.client_transaction_version = TRANSACTION_VERSION_2;
        let (k, v) = record_for(&gamma);
        let p = sim.c.partition_for("gamma");
        sim.c.load_partition(p, [(k.as_slice(), v.as_deref())]).expect("valid");
        sim.owner.insert(1, "gamma");
        for op in ops {
            match op {
                Op::Init { id, with_expected, lose_answer } => {
                    let id = IDS[id];
                    let expected = if with_expected {
                        sim.clients.get(id).and_then(|c| c.last().copied())
                    } else {
                        None
                    };
                    let request = InitProducerIdRequest {
                        transactional_id: id.to_string(),
                        transaction_timeout_ms: 30_000,
                        expected: expected.map(|(producer_id, epoch)| ProducerIdAndEpoch { producer_id, epoch }),
                    };
                    let d = sim.c.init_producer_id(&request, &mut sim.ids, sim.now);
                    let answer = (d.producer_id, d.producer_epoch);
                    let error = sim.run(d)?;
                    if error == code::NONE && !lose_answer {
                        sim.grant(id, answer)?;
                    }
                }
                Op::Add { id, client, partition } => {
                    let id = IDS[id];
                    let Some(&(pid, epoch)) = sim.clients.get(id).and_then(|c| c.iter().rev().nth(client)) else { continue };
                    let d = sim.c.add_partitions(id, pid, epoch, &[tp("t", partition)], sim.now);
                    let live = sim.c.get(id).map(|m| (m.producer_id, m.producer_epoch));
                    let error = sim.run(d)?;
                    if error == code::NONE {
                        prop_assert_eq!(live, Some((pid, epoch)), "a fenced producer added partitions");
                    }
                }
                Op::AddOffsets { id, client } => {
                    let id = IDS[id];
                    let Some(&(pid, epoch)) = sim.clients.get(id).and_then(|c| c.iter().rev().nth(client)) else { continue };
                    let d = sim.c.add_offsets(id, pid, epoch, "group", sim.now);
                    sim.run(d)?;
                }
                Op::End { id, client, commit } => {
                    let id = IDS[id];
                    let Some(&(pid, epoch)) = sim.clients.get(id).and_then(|c| c.iter().rev().nth(client)) else { continue };
                    let result = if commit { TransactionResult::Commit } else { TransactionResult::Abort };
                    let live = sim.c.get(id).map(|m| (m.producer_id, m.producer_epoch));
                    if !speaks_v2(id) {
                        let d = sim.c.end_txn(id, pid, epoch, result, sim.now);
                        let error = sim.run(d)?;
                        if error == code::NONE {
                            prop_assert_eq!(live, Some((pid, epoch)), "a fenced producer ended a transaction");
                        }
                    } else {
                        let d = sim.c.end_txn_v2(id, pid, epoch, result, &mut sim.ids, sim.now);
                        let decided = d.write.is_some();
                        let answer = (d.producer_id, d.producer_epoch);
                        let error = sim.run(d)?;
                        if error == code::NONE {
                            if decided {
                                prop_assert_eq!(live, Some((pid, epoch)), "a fenced producer ended a transaction");
                                sim.grant(id, answer)?;
                            } else {
                                // A retry: answered the id and epoch the id has now, which a
                                // timeout's abort may not have handed out yet.
                                let now = sim.c.get(id).map(|m| (m.producer_id, m.producer_epoch));
                                prop_assert_eq!(Some(answer), now, "a retry answered another epoch");
                                if !sim.granted.contains(&answer) {
                                    sim.grant(id, answer)?;
                                }
                            }
                        }
                    }
                }
                Op::Tick { ms } => {
                    sim.now += ms;
                    let mut all_written = true;
                    for d in sim.c.abort_timed_out(&mut sim.ids, sim.now) {
                        all_written &= sim.run(d)? == code::NONE;
                    }
                    if all_written {
                        prop_assert!(sim.c.next_deadline().is_none_or(|t| t >= sim.now));
                    }
                }
                Op::Markers => {
                    if sim.markers.is_empty() { continue }
                    let m = sim.markers.remove(0);
                    if let Some(d) = sim.c.markers_written(&m, sim.now) {
                        let error = sim.run(d)?;
                        if error != code::NONE {
                            sim.markers.push(m); // the completion append failed: retry later
                        }
                    }
                }
                Op::FailNextWrite => sim.fail_next = true,
                Op::Expire { jump } => {
                    if jump {
                        sim.now += 7 * 24 * 3_600_000;
                    }
                    for d in sim.c.expire(sim.now) {
                        sim.run(d)?;
                    }
                }
            }
            sim.check()?;
        }
    }
}

#[test]
fn a_failed_fence_is_retried_from_the_old_epoch() {
    let mut h = Harness::new();
    let (pid, epoch) = h.ongoing("app");
    let d =
        h.c.init_producer_id(&req("app", 60_000, None), &mut h.ids, h.clock.now());
    assert_eq!(d.error, code::CONCURRENT_TRANSACTIONS);
    h.c.write_failed("app");
    let m = h.c.get("app").expect("cached");
    assert_eq!(
        (m.state, m.producer_epoch),
        (TransactionState::Ongoing, epoch)
    );
    // Until the fence is written the old producer may still commit: nothing was decided.
    let d = h.init("app", None);
    assert_eq!(
        d.markers.as_ref().map(|m| m.producer_epoch),
        Some(epoch + 1)
    );
    h.complete(&d);
    let d = h.init("app", None);
    assert_eq!((d.producer_id, d.producer_epoch), (pid, epoch + 2));
}

#[test]
fn the_pure_functions_need_no_coordinator() {
    let config = TxnConfig::default();
    assert_eq!(config.max_timeout_ms, 900_000);
    assert_eq!(config.state_log_partitions, 50);
    let mut next = 41;
    let mut ids = || -> Result<i64, i16> {
        next += 1;
        Ok(next)
    };
    let d = init_producer_id(None, &req("x", 1000, None), &config, &mut ids, 7);
    let m = d.write.expect("a new id is written");
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.state),
        (42, 0, TransactionState::Empty)
    );
    let d = add_partitions(Some(&m), "x", 42, 0, &[tp("t", 0)], 8);
    let m = d.write.expect("Ongoing is written");
    let d = end_txn(Some(&m), "x", 42, 0, TransactionResult::Abort, 9);
    let m = d.write.expect("PrepareAbort is written");
    let d = complete_transaction(&m, 42, 0, 10).expect("completes");
    assert_eq!(
        d.write.map(|m| m.state),
        Some(TransactionState::CompleteAbort)
    );
    assert!(
        abort_timed_out(&m, &TxnConfig::default(), &mut ids, i64::MAX).is_none(),
        "only Ongoing times out"
    );
    assert!(
        expire(&m, &config, i64::MAX).is_none(),
        "a deciding id never expires"
    );
}
