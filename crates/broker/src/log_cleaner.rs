//! The broker's log cleaner (Kafka's `LogCleaner` / `LogCleanerManager`): `log.cleaner.threads`
//! threads that compact the logs of `cleanup.policy=compact` topics.
//!
//! ```text
//!  cleaner thread (std thread; the work is blocking file I/O)
//!    loop: ReplicaManager::cleaner_candidates (each partition: Log::cleanable below its LSO)
//!          ─► choose: not being cleaned by another thread, and dirty ratio ≥
//!             min.cleanable.dirty.ratio or oldest dirty record older than max.compaction.lag.ms;
//!             the dirtiest first (Kafka's grabFilthiestCompactedLog)
//!          ─► gregor_storage::Cleaner::clean (the log lock only for a view and the swap)
//!          ─► cleaner-offset-checkpoint ─► next log, or sleep log.cleaner.backoff.ms
//! ```
//!
//! The threads run at nice 10 (background work: produce and fetch handling get the CPU first on
//! a busy machine). All threads share one [`Throttler`] (`log.cleaner.io.max.bytes.per.second`) and split
//! `log.cleaner.dedupe.buffer.size` between their offset maps. Leaders and followers clean
//! their own copies alike (offsets never change, so replicas stay consistent). Stopping sets a
//! flag that a clean in progress checks at each batch, then joins the threads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gregor_storage::{CleanOutcome, Cleaner, LogToClean, Throttler, TopicPartition};
use tracing::{debug, error, info};

use crate::config::CleanerSettings;
use crate::partition::{tp_name, Partition};
use crate::replica_manager::ReplicaManager;

/// A partition the cleaner could clean now.
#[derive(Debug)]
pub struct CleanCandidate {
    /// The partition (its log is what gets cleaned).
    pub partition: Arc<Partition>,
    /// What is cleanable, from the cleaner checkpoint on.
    pub to_clean: LogToClean,
    /// Its topic's `min.cleanable.dirty.ratio`.
    pub min_cleanable_ratio: f64,
    /// Its topic's `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
}

/// Kafka's `grabFilthiestCompactedLog` over `candidates` (those in `in_progress` skipped):
/// the index of the one to clean, `None` when none needs it. A log qualifies when its dirty
/// ratio reaches its `min.cleanable.dirty.ratio`, or when its oldest dirty record waited longer
/// than `max.compaction.lag.ms`; overdue logs go first, then the dirtiest.
/// Each candidate is `(partition, what is cleanable, min.cleanable.dirty.ratio,
/// max.compaction.lag.ms)`.
pub fn choose(
    candidates: &[(&TopicPartition, &LogToClean, f64, i64)],
    in_progress: &HashSet<TopicPartition>,
    now_ms: i64,
) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| !in_progress.contains(c.0))
        .filter_map(|(i, &(_, to_clean, min_ratio, max_lag_ms))| {
            let overdue = to_clean.compaction_overdue(now_ms, max_lag_ms);
            let ratio = to_clean.dirty_ratio();
            (overdue || ratio >= min_ratio).then_some((i, overdue, ratio))
        })
        .max_by(|a, b| {
            (a.1, a.2)
                .partial_cmp(&(b.1, b.2))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _, _)| i)
}

/// State the cleaner threads share.
#[derive(Debug)]
struct Shared {
    replicas: Arc<ReplicaManager>,
    settings: CleanerSettings,
    /// Partitions a thread is cleaning (never two threads on one log).
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Set at shutdown; cleans in progress check it at every batch.
    stop: Arc<AtomicBool>,
    /// Wakes sleeping threads at shutdown.
    wake: (Mutex<()>, Condvar),
    throttler: Arc<Throttler>,
}

/// The running cleaner threads.
#[derive(Debug)]
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl LogCleaner {
    /// Starts `log.cleaner.threads` threads (none when `log.cleaner.enable=false`).
    pub fn start(replicas: Arc<ReplicaManager>, settings: CleanerSettings) -> LogCleaner {
        let threads = if settings.enable { settings.threads } else { 0 };
        let shared = Arc::new(Shared {
            replicas,
            throttler: Arc::new(Throttler::new(settings.io_max_bytes_per_second)),
            settings,
            in_progress: Mutex::new(HashSet::new()),
            stop: Arc::new(AtomicBool::new(false)),
            wake: (Mutex::new(()), Condvar::new()),
        });
        let mut handles = Vec::new();
        for i in 0..threads {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("log-cleaner-{i}"))
                .spawn(move || run(&s, threads));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => error!(error = %e, "cannot start a log cleaner thread"),
            }
        }
        if threads > 0 {
            info!(threads, "log cleaner started");
        }
        LogCleaner {
            shared,
            threads: handles,
        }
    }

    /// Stops the threads (a clean in progress is abandoned at its next batch) and waits for
    /// them.
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _g = lock(&self.shared.wake.0);
            self.shared.wake.1.notify_all();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The nice value of the cleaner threads: compaction is background work, so on a busy
/// machine the request path gets the CPU first (on Linux the nice value is per thread).
const CLEANER_NICE: i32 = 10;

/// One cleaner thread: clean the filthiest log, or sleep `log.cleaner.backoff.ms`.
fn run(shared: &Shared, threads: usize) {
    if let Err(e) = rustix::process::setpriority_process(None, CLEANER_NICE) {
        debug!(error = %e, "cannot lower the log cleaner thread's priority");
    }
    let share = shared.settings.dedupe_buffer_size / threads.max(1) as u64;
    let mut cleaner =
        Cleaner::new(share, Arc::clone(&shared.throttler)).with_stop(Arc::clone(&shared.stop));
    while !shared.stop.load(Ordering::Relaxed) {
        if !clean_filthiest(shared, &mut cleaner) {
            let guard = lock(&shared.wake.0);
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let backoff = Duration::from_millis(shared.settings.backoff_ms.max(1));
            let _ = shared.wake.1.wait_timeout(guard, backoff);
        }
    }
}

/// Cleans one log if one needs it; returns whether it did.
fn clean_filthiest(shared: &Shared, cleaner: &mut Cleaner) -> bool {
    let now = shared.replicas.clock().now_ms();
    let candidates = shared.replicas.cleaner_candidates();
    let chosen = {
        let mut busy = lock(&shared.in_progress);
        let view: Vec<_> = candidates
            .iter()
            .map(|c| {
                (
                    &c.partition.tp,
                    &c.to_clean,
                    c.min_cleanable_ratio,
                    c.max_compaction_lag_ms,
                )
            })
            .collect();
        let Some(i) = choose(&view, &busy, now) else {
            return false;
        };
        busy.insert(candidates[i].partition.tp.clone());
        i
    };
    let c = &candidates[chosen];
    let tp = c.partition.tp.clone();
    info!(
        partition = %tp_name(&tp),
        dirty_ratio = c.to_clean.dirty_ratio(),
        dirty_bytes = c.to_clean.cleanable_bytes,
        "compacting log"
    );
    let started = std::time::Instant::now();
    let result = cleaner.clean(c.partition.log_handle(), &c.to_clean, now);
    let elapsed = started.elapsed();
    let cleaned = match result {
        Ok(CleanOutcome::Cleaned(stats)) => {
            shared
                .replicas
                .update_cleaner_checkpoint(&tp, stats.end_offset);
            // Kafka's cleaner reports the same rate: dirty bytes mapped per second of the clean.
            let dirty_mb_per_s =
                stats.map_bytes_read as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9);
            info!(
                partition = %tp_name(&tp),
                end_offset = stats.end_offset,
                bytes_before = stats.bytes_read,
                bytes_after = stats.bytes_written,
                dirty_bytes = stats.map_bytes_read,
                records_kept = stats.records_kept,
                records_read = stats.records_read,
                elapsed_ms = elapsed.as_millis() as u64,
                dirty_mb_per_s = format_args!("{dirty_mb_per_s:.1}"),
                "log compacted"
            );
            true
        }
        Ok(CleanOutcome::Abandoned(why)) => {
            debug!(partition = %tp_name(&tp), why, "clean abandoned");
            false
        }
        Err(e) => {
            error!(partition = %tp_name(&tp), error = %e, "log clean failed");
            false
        }
    };
    lock(&shared.in_progress).remove(&tp);
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn dirty(clean: u64, dirty: u64, first_ts: Option<i64>) -> LogToClean {
        LogToClean {
            first_dirty_offset: 0,
            cleanable_end_offset: 10,
            clean_bytes: clean,
            cleanable_bytes: dirty,
            first_dirty_timestamp: first_ts,
        }
    }

    #[test]
    fn the_dirtiest_log_above_its_ratio_is_chosen() {
        let (a, b, c) = (tp(0), tp(1), tp(2));
        let (la, lb, lc) = (dirty(60, 40, None), dirty(20, 80, None), dirty(0, 10, None));
        let none = HashSet::new();
        // a: 0.4 < 0.5; b: 0.8; c: 1.0 but its ratio threshold is not reached (1.0 < 1.01).
        let cands = [
            (&a, &la, 0.5, i64::MAX),
            (&b, &lb, 0.5, i64::MAX),
            (&c, &lc, 1.01, i64::MAX),
        ];
        assert_eq!(choose(&cands, &none, 0), Some(1));
        // b is being cleaned by another thread; a is below its ratio: nothing.
        let busy: HashSet<_> = [b.clone()].into_iter().collect();
        assert_eq!(choose(&cands, &busy, 0), None);
        // A lower threshold makes a eligible.
        let cands2 = [(&a, &la, 0.3, i64::MAX), (&b, &lb, 0.5, i64::MAX)];
        assert_eq!(choose(&cands2, &busy, 0), Some(0));
    }

    /// `(offset, key, value)` of every record a consumer reads from the partition's start.
    fn consumed(p: &Partition) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
        use crate::partition::FetchIsolation;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let read = p
                .fetch_read(offset, 1 << 20, true, FetchIsolation::HighWatermark)
                .expect("read");
            let Some(slice) = read.info.slice else {
                return out;
            };
            let raw = slice.read_to_vec().expect("bytes");
            for b in gregor_protocol::batch::batches(&raw) {
                offset = b.expect("batch").next_offset();
            }
            let mut buf = bytes::Bytes::from(raw);
            let sets =
                gregor_protocol::records::RecordBatchDecoder::decode_all(&mut buf).expect("decode");
            for r in sets.into_iter().flat_map(|s| s.records) {
                let key = r.key.map(|k| k.to_vec()).unwrap_or_default();
                out.push((r.offset, key, r.value.map(|v| v.to_vec())));
            }
        }
    }

    #[tokio::test]
    async fn the_broker_compacts_a_compacted_topic_and_checkpoints_it() {
        use gregor_protocol::batch::encode_simple_batch;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), "400".to_string());
        let topic = b.replicas.create_topic("c", 1, 1, configs).expect("create");
        b.replicas
            .create_topic("plain", 1, 1, Default::default())
            .expect("create");
        let p = topic.partition(0).expect("partition").clone();
        for round in 0..20 {
            for key in ["a", "b", "c"] {
                let value = format!("{key}{round}");
                let batch =
                    encode_simple_batch(1, &[(Some(key.as_bytes()), Some(value.as_bytes()))]);
                p.append_to_leader(&batch, &topic.settings, 1)
                    .expect("append");
            }
        }
        let before = consumed(&p);
        // Only the compacted topic is a candidate; nothing of it is clean yet.
        let candidates = b.replicas.cleaner_candidates();
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].partition.tp.topic, "c");
        assert!((candidates[0].to_clean.dirty_ratio() - 1.0).abs() < 1e-9);
        let shared = Shared {
            replicas: Arc::clone(&b.replicas),
            settings: CleanerSettings::default(),
            in_progress: Mutex::new(HashSet::new()),
            stop: Arc::new(AtomicBool::new(false)),
            wake: (Mutex::new(()), Condvar::new()),
            throttler: Arc::new(Throttler::new(f64::MAX)),
        };
        let mut cleaner = Cleaner::new(1 << 20, Arc::clone(&shared.throttler));
        assert!(clean_filthiest(&shared, &mut cleaner), "cleaned");
        let after = consumed(&p);
        assert!(
            after.len() < before.len() / 3,
            "{} of {}",
            after.len(),
            before.len()
        );
        for (key, latest) in [("a", "a19"), ("b", "b19"), ("c", "c19")] {
            let last = after
                .iter()
                .rev()
                .find(|r| r.1 == key.as_bytes())
                .expect("key");
            assert_eq!(last.2.as_deref(), Some(latest.as_bytes()));
            assert!(before.contains(last), "offset kept");
        }
        let checkpoint = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint"))
            .expect("checkpoint");
        assert!(checkpoint.contains("c 0 "), "{checkpoint}");
        // Clean now: the remaining dirty bytes are only the active segment's.
        assert!(
            !clean_filthiest(&shared, &mut cleaner),
            "nothing left to clean"
        );
        assert!(shared.in_progress.lock().expect("lock").is_empty());
    }

    #[test]
    fn an_overdue_log_is_cleaned_whatever_its_ratio() {
        let (a, b) = (tp(0), tp(1));
        let la = dirty(99, 1, Some(1_000));
        let lb = dirty(10, 90, Some(50_000));
        let none = HashSet::new();
        let cands = [(&a, &la, 0.5, 10_000), (&b, &lb, 0.5, i64::MAX)];
        // At 5 000 nothing waited 10 s: b, the dirtiest.
        assert_eq!(choose(&cands, &none, 5_000), Some(1));
        // At 20 000 a's first dirty record waited 19 s > max.compaction.lag.ms: a first.
        assert_eq!(choose(&cands, &none, 20_000), Some(0));
        // Without a known timestamp a log is never overdue.
        let lc = dirty(99, 1, None);
        let cands = [(&a, &lc, 0.5, 10_000)];
        assert_eq!(choose(&cands, &none, 1 << 40), None);
    }
}
