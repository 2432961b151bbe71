//! `LogLoader` (Kafka's `LogLoader`): turns a partition directory into the state a [`Log`]
//! starts from. Recovery lives here, not in [`Log`].
//!
//! ```text
//!  finish or roll back a log clean a crash interrupted (.cleaned / .swap / .deleted files)
//!        ▼
//!  list .log files ─► LogSegment::open each (indexes loaded, or marked for a rebuild)
//!        │            restore the corrupt ranges a previous recovery kept (corrupt-ranges)
//!        ▼
//!  unclean shutdown? ─ yes ─► recover the segment holding the recovery point and every later
//!        │                    one (LogSegment::recover: re-validate, rebuild indexes, cut a
//!        │                    torn tail, keep corruption); note the epochs their batches carry
//!        ▼
//!  rebuild missing/corrupt indexes of the other segments; drop empty non-last segments
//!        ▼
//!  clean start: cut a last batch that does not fit its file
//!        ▼
//!  leader-epoch cache: the leader-epoch-checkpoint file plus the epochs recovery saw, or,
//!  without a file (a directory written before epochs were kept), rebuilt from every batch
//!        ▼
//!  Log::from_loaded: log start / recovery point, finished segments queued for the next flush,
//!  epoch cache cut to [log start, log end)
//! ```
//!
//! Recovery's rules (see `LogSegment::recover`): after an unclean shutdown only the tail of
//! the last segment above the recovery point, with nothing valid behind it, is a torn write
//! and is cut; every other bad byte was fsynced, so it is kept, logged at ERROR and recorded in
//! `corrupt-ranges`. After a clean shutdown only the last batch is checked to fit its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gregor_replication::epoch::{self, EpochEntry};

use crate::leader_epoch::{LeaderEpochFileCache, LEADER_EPOCH_CHECKPOINT};
use crate::log::{list_segment_bases, load_corrupt_ranges, Log};
use crate::segment::{LogSegment, RecoverContext};
use crate::{io_err, LogConfig, StorageError};

/// How to load a log: what the manager knows from checkpoints and the shutdown marker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadOptions {
    pub(crate) recovery_point: i64,
    pub(crate) log_start_offset: Option<i64>,
    pub(crate) clean_shutdown: bool,
}

/// Loads one partition directory.
#[derive(Debug)]
pub(crate) struct LogLoader<'a> {
    dir: &'a Path,
    config: LogConfig,
    opts: LoadOptions,
}

/// What loading found: segments recovered and indexed, ready for [`Log::from_loaded`].
#[derive(Debug)]
pub(crate) struct LoadedLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) opts: LoadOptions,
    /// Segments by base offset; empty for a new log.
    pub(crate) segments: BTreeMap<i64, LogSegment>,
    /// Offset after the last batch kept; `None` when there are no segments.
    pub(crate) log_end_offset: Option<i64>,
    /// Segments whose indexes were rebuilt (in memory) outside the recovery scan.
    pub(crate) rebuilt: Vec<i64>,
    /// The directory holds a `corrupt-ranges` file.
    pub(crate) had_corrupt_ranges_file: bool,
    /// The cache as its file says (empty if there is none).
    pub(crate) epoch_cache: LeaderEpochFileCache,
    /// What the cache must hold for the data loaded, before it is cut to the log's range.
    pub(crate) epoch_entries: Vec<EpochEntry>,
}

impl<'a> LogLoader<'a> {
    pub(crate) fn new(dir: &'a Path, config: LogConfig, opts: LoadOptions) -> LogLoader<'a> {
        LogLoader { dir, config, opts }
    }

    /// Opens (creating if needed) the log directory and recovers it as the options say.
    pub(crate) fn load(self) -> Result<Log, StorageError> {
        let LogLoader { dir, config, opts } = self;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // A clean interrupted by a crash: finish or roll back its swap before listing.
        crate::cleaner::complete_interrupted_swaps(dir)?;
        let bases = list_segment_bases(dir)?;

        let mut segments = BTreeMap::new();
        let mut bad_indexes = Vec::new();
        for base in bases {
            let (seg, indexes_ok) = LogSegment::open(dir, base, &config)?;
            if !indexes_ok {
                bad_indexes.push(base);
            }
            segments.insert(base, seg);
        }

        let recorded = load_corrupt_ranges(dir)?;
        let had_corrupt_ranges_file = recorded.is_some();
        for (base, ranges) in recorded.unwrap_or_default() {
            if let Some(seg) = segments.get_mut(&base) {
                seg.restore_corrupt_ranges(ranges);
            }
        }

        let mut log_end_offset = None;
        let mut rescanned_from = None;
        // Epochs of the batches the recovery scan saw, in log order.
        let mut recovered_epochs: Vec<(i32, i64)> = Vec::new();
        let next_base_of = |segments: &BTreeMap<i64, LogSegment>, base: i64| {
            segments.range(base + 1..).next().map(|(&b, _)| b)
        };
        if !opts.clean_shutdown && !segments.is_empty() {
            // Kafka's `logSegments(recoveryPoint, MaxValue)`: the segment holding the recovery
            // point and every later one.
            let first = segments
                .range(..=opts.recovery_point)
                .next_back()
                .map(|(&b, _)| b)
                .or_else(|| segments.keys().next().copied())
                .unwrap_or(0);
            rescanned_from = Some(first);
            tracing::info!(
                dir = %dir.display(),
                recovery_point = opts.recovery_point,
                from_segment = first,
                "recovering log after unclean shutdown"
            );
            // Not the previous segment's last header: that one is not re-validated, and a
            // flipped offset in it would make every batch from here on look out of order.
            let mut min_offset = first;
            let bases: Vec<i64> = segments.range(first..).map(|(&b, _)| b).collect();
            for base in bases {
                let next_base = next_base_of(&segments, base);
                let Some(seg) = segments.get_mut(&base) else {
                    continue;
                };
                // A bad batch cuts only its own segment's tail (and only when it is a torn
                // write or bytes are missing): later segments hold data written after it,
                // possibly acknowledged, and stay.
                let ctx = RecoverContext {
                    recovery_point: opts.recovery_point,
                    next_base,
                };
                let result = seg.recover(min_offset, &config, ctx)?;
                recovered_epochs.extend_from_slice(&result.epoch_starts);
                if let Some(next) = result.next_offset {
                    min_offset = min_offset.max(next);
                }
                if next_base.is_none() {
                    log_end_offset = Some(result.next_offset.unwrap_or(base).max(base));
                }
            }
        }
        // Rebuild missing or corrupt indexes of segments that were not re-scanned above.
        let mut rebuilt = Vec::new();
        for base in bad_indexes {
            if rescanned_from.is_some_and(|f| base >= f) {
                continue;
            }
            let next_base = next_base_of(&segments, base);
            if let Some(seg) = segments.get_mut(&base) {
                tracing::info!(segment = %seg.log_path().display(), "rebuilding missing or corrupt index");
                // Below the recovery point (or after a clean shutdown): all of it was fsynced.
                let ctx = RecoverContext {
                    recovery_point: opts.recovery_point.max(next_base.unwrap_or(0)),
                    next_base,
                };
                seg.recover(base, &config, ctx)?;
                rebuilt.push(base);
            }
        }

        // Drop empty segments that are not the last (a crash right after a roll can leave one
        // behind a later truncation point); they hold nothing and would confuse lookups.
        let last_base = segments.keys().next_back().copied();
        let empties: Vec<i64> = segments
            .iter()
            .filter(|(&b, s)| s.is_empty() && Some(b) != last_base)
            .map(|(&b, _)| b)
            .collect();
        for b in empties {
            if let Some(seg) = segments.remove(&b) {
                seg.delete_files()?;
            }
        }

        if log_end_offset.is_none() {
            if let Some(last) = segments.values_mut().next_back() {
                // Clean start: the data is trusted, but the last batch must still fit the
                // file, or the log end would name records that cannot be read.
                let base = last.base_offset();
                log_end_offset = Some(last.truncate_partial_tail()?.unwrap_or(base));
            }
        }

        let (epoch_cache, epoch_entries) = load_epochs(dir, &segments, &recovered_epochs)?;

        Log::from_loaded(LoadedLog {
            dir: dir.to_path_buf(),
            config,
            opts,
            segments,
            log_end_offset,
            rebuilt,
            had_corrupt_ranges_file,
            epoch_cache,
            epoch_entries,
        })
    }
}

/// The leader-epoch cache for the loaded segments: its checkpoint file with the newer epochs
/// the recovery scan saw assigned on top (Kafka's `LogSegment.recover` does the same: a batch
/// appended after the file was last written still names its epoch), or, without a readable
/// file, rebuilt from the `partitionLeaderEpoch` of every batch.
fn load_epochs(
    dir: &Path,
    segments: &BTreeMap<i64, LogSegment>,
    recovered_epochs: &[(i32, i64)],
) -> Result<(LeaderEpochFileCache, Vec<EpochEntry>), StorageError> {
    let has_file = dir.join(LEADER_EPOCH_CHECKPOINT).exists();
    let opened = if has_file {
        match LeaderEpochFileCache::open(dir) {
            Ok(cache) => Some(cache),
            Err(e @ StorageError::Corrupt { .. }) => {
                // The batches say the same thing; rebuild from them rather than refuse to load.
                tracing::warn!(error = %e, "rebuilding a corrupt leader-epoch checkpoint from the log");
                let path = dir.join(LEADER_EPOCH_CHECKPOINT);
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    match opened {
        Some(cache) => {
            let mut entries = cache.epoch_entries().to_vec();
            for &(e, start) in recovered_epochs {
                // Kafka's `LogSegment.recover`: only an epoch newer than the latest is news; an
                // older one is already in the file, starting earlier.
                if epoch::latest_epoch(&entries).is_none_or(|latest| e > latest) {
                    epoch::assign(&mut entries, e, start);
                }
            }
            Ok((cache, entries))
        }
        None => {
            let cache = LeaderEpochFileCache::empty(dir);
            let mut entries = Vec::new();
            for seg in segments.values() {
                for (e, start) in seg.epoch_starts()? {
                    epoch::assign(&mut entries, e, start);
                }
            }
            if !entries.is_empty() {
                tracing::info!(
                    dir = %dir.display(),
                    epochs = entries.len(),
                    "rebuilt the leader-epoch cache from the log's batches"
                );
            }
            Ok((cache, entries))
        }
    }
}
