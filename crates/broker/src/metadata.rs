//! The single node's metadata, persisted: cluster id, and every topic's id, partition count,
//! replication factor and config overrides.
//!
//! Until the Raft controller lands this file is the source of truth for which topics exist. It
//! is rewritten atomically (temp file, fsync, rename, fsync dir) on every change, and written
//! before logs are created and before they are deleted, so a crash in between leaves either an
//! empty log that is recreated or an orphan directory that startup removes. (On a full disk a
//! deletion removes the logs first, to free the space the rewrite needs: see
//! `ReplicaManager::delete_topic`.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const METADATA_FILE: &str = "gregor-metadata.json";

/// One topic as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID), as Kafka's metadata gives it.
    pub id: uuid::Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic-level config overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The persisted metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetadataImage {
    /// Cluster id, generated at first start (Kafka's base64 UUID form).
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicRecord>,
}

/// Errors reading or writing the metadata file.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// I/O.
    #[error("metadata file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid JSON of the expected shape.
    #[error("metadata file {path} is corrupt: {reason}")]
    Corrupt {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl MetadataError {
    /// The file system is out of space (or quota): the file could not be rewritten, though
    /// freeing space would let it be.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, MetadataError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Kafka prints cluster ids as URL-safe base64 of a UUID without padding.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

impl MetadataImage {
    /// Loads the image from `dir`, or starts a fresh one if the file does not exist.
    pub fn load_or_init(dir: &Path) -> Result<MetadataImage, MetadataError> {
        let path = dir.join(METADATA_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let image = MetadataImage {
                    cluster_id: new_cluster_id(),
                    topics: BTreeMap::new(),
                };
                image.store(dir)?;
                Ok(image)
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes the image atomically.
    pub fn store(&self, dir: &Path) -> Result<(), MetadataError> {
        let path = dir.join(METADATA_FILE);
        let tmp: PathBuf = dir.join(format!("{METADATA_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| MetadataError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        });
        if let Err(e) = written {
            // A half-written copy would hold on to blocks a full disk needs back.
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut image = MetadataImage::load_or_init(dir.path()).expect("init");
        assert_eq!(image.cluster_id.len(), 22);
        image.topics.insert(
            "t".into(),
            TopicRecord {
                name: "t".into(),
                id: uuid::Uuid::new_v4(),
                partitions: 3,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
        );
        image.store(dir.path()).expect("store");
        let again = MetadataImage::load_or_init(dir.path()).expect("load");
        assert_eq!(again, image);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(METADATA_FILE), b"{not json").expect("write");
        assert!(matches!(
            MetadataImage::load_or_init(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
