//! Offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint`, `cleaner-offset-checkpoint`), in Kafka's text format so a Kafka engineer can read them:
//!
//! ```text
//! 0                 <- version
//! 2                 <- number of entries
//! orders 0 1234     <- topic partition offset
//! orders 1 99
//! ```
//!
//! Written atomically: a temporary file, fsync, rename over the old one, fsync the directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{io_err, StorageError, TopicPartition};

/// Recovery points: everything below is known to be on disk.
pub(crate) const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Log start offsets (moved by retention and DeleteRecords).
pub(crate) const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// High watermarks (Kafka's `ReplicaManager` writes this one).
pub(crate) const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Where each compacted log's dirty section starts (the log cleaner writes it after a clean).
pub(crate) const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

const VERSION: u32 = 0;

/// Reads a checkpoint file; an empty map when it does not exist.
pub(crate) fn read_checkpoint(path: &Path) -> Result<BTreeMap<TopicPartition, i64>, StorageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    parse(&text).map_err(|reason| StorageError::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_string(),
    })
}

fn parse(text: &str) -> Result<BTreeMap<TopicPartition, i64>, &'static str> {
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing version line")?;
    if version != VERSION {
        return Err("unsupported checkpoint version");
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing entry count")?;
    let mut out = BTreeMap::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed entry line");
        };
        let partition: i32 = partition.parse().map_err(|_| "bad partition number")?;
        let offset: i64 = offset.parse().map_err(|_| "bad offset")?;
        out.insert(
            TopicPartition {
                topic: topic.to_string(),
                partition,
            },
            offset,
        );
    }
    if out.len() != count {
        return Err("fewer entries than the count line says");
    }
    Ok(out)
}

/// Writes a checkpoint file atomically.
pub(crate) fn write_checkpoint(
    path: &Path,
    entries: &BTreeMap<TopicPartition, i64>,
) -> Result<(), StorageError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
    }
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so renames and new files in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition {
            topic: t.to_string(),
            partition: p,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read_checkpoint(&path).unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(tp("orders", 0), 1234);
        m.insert(tp("my-topic.v2", 17), 0);
        write_checkpoint(&path, &m).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("0\n2\n"), "{text}");
        assert!(text.contains("orders 0 1234\n"));
        assert_eq!(read_checkpoint(&path).unwrap(), m);
        write_checkpoint(&path, &BTreeMap::new()).unwrap();
        assert!(read_checkpoint(&path).unwrap().is_empty());
    }

    #[test]
    fn corrupt_files_are_rejected() {
        for bad in [
            "",
            "1\n0\n",
            "0\n2\na 0 1\n",
            "0\n1\na x 1\n",
            "0\n1\na 0\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
