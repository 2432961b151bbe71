//! Kafka's snapshot triggers, beside gregor's count of entries (openraft's `LogsSinceLast`,
//! `metadata.log.max.snapshot.interval.records`): a snapshot is taken once the log since the
//! last one holds `metadata.log.max.record.bytes.between.snapshots` bytes, or once
//! `metadata.log.max.snapshot.interval.ms` has passed since the last one with entries applied
//! after it (0: no time trigger), as Kafka's `SnapshotGenerator` does. A snapshot lets the log
//! before it go (the node keeps none of it), which bounds the metadata log on disk and what a
//! restart replays.

use std::time::Duration;

use tokio::time::Instant;

use crate::log_store::LogStore;
use crate::types::Raft;

/// How often the log is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A snapshot asked for and not yet seen is not asked for again before this.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether a snapshot is due: `bytes` of log since the last one, which is `age` old, with
/// entries applied after it (`behind`).
pub(crate) fn due(
    bytes: u64,
    age: Duration,
    behind: bool,
    max_bytes: u64,
    max_interval: Option<Duration>,
) -> bool {
    behind && (bytes >= max_bytes || max_interval.is_some_and(|i| age >= i))
}

/// Runs until the quorum stops (its task is aborted with the others).
pub(crate) async fn run(raft: Raft, log: LogStore, max_bytes: u64, max_interval: Option<Duration>) {
    let mut metrics = raft.metrics();
    let mut last = metrics.borrow().snapshot.map(|l| l.index);
    let mut since = Instant::now();
    let mut asked: Option<Instant> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (snapshot, applied) = {
            let m = metrics.borrow_and_update();
            (m.snapshot.map(|l| l.index), m.last_applied.map(|l| l.index))
        };
        if snapshot != last {
            last = snapshot;
            since = Instant::now();
            asked = None;
        }
        let Some(applied) = applied else { continue };
        if asked.is_some_and(|t| t.elapsed() < PATIENCE) {
            continue;
        }
        let behind = snapshot.is_none_or(|s| s < applied);
        let bytes = if behind {
            log.bytes_between(snapshot, applied)
        } else {
            0
        };
        if due(bytes, since.elapsed(), behind, max_bytes, max_interval) {
            tracing::debug!(bytes, applied, "metadata snapshot due");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            asked = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_by_bytes_or_by_age_once_entries_follow_the_last() {
        let hour = Some(Duration::from_secs(3600));
        assert!(!due(10, Duration::from_secs(1), true, 100, hour));
        assert!(due(100, Duration::from_secs(1), true, 100, hour));
        assert!(due(1, Duration::from_secs(3600), true, 100, hour));
        assert!(
            !due(1, Duration::from_secs(7200), true, 100, None),
            "no time trigger"
        );
        assert!(
            !due(1000, Duration::from_secs(7200), false, 100, hour),
            "nothing new"
        );
    }
}
