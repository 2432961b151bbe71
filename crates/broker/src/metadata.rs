//! The data directory's identity (`meta.properties`: cluster id and node id, Kafka's file) and
//! the topic list of earlier single-node versions (`gregor-metadata.json`), which the first
//! start of this version imports into the metadata log.
//!
//! ```text
//!  start ─► meta.properties ── absent ──► cluster id: cluster.id, else the old file's, else
//!              │ present                   one derived from the voters (every voter derives
//!              ▼                           the same), else a new random one (a lone node)
//!           node.id must match (a data dir belongs to one node)
//!
//!  gregor-metadata.json (old versions) ─► LegacyMetadata::records ─► proposed to the metadata
//!           log once, by a lone node whose log has no topics; then renamed *.migrated
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gregor_metadata::{ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, TopicRecord};
use gregor_protocol::kafka_uuid;
use serde::Deserialize;

/// The topic list of single-node versions, inside the data directory.
pub const LEGACY_METADATA_FILE: &str = "gregor-metadata.json";
/// What the legacy file becomes once imported.
pub const MIGRATED_SUFFIX: &str = ".migrated";
/// Kafka's `meta.properties`: this data directory's cluster and node.
pub const META_PROPERTIES: &str = "meta.properties";

/// One topic as single-node versions stored it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LegacyTopic {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor (always 1 on a single node).
    pub replication_factor: i16,
    /// Topic-level config overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The whole legacy file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LegacyMetadata {
    /// Cluster id.
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, LegacyTopic>,
}

/// Errors reading or writing these files.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not of the expected shape.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The data directory belongs to another node or cluster.
    #[error(
        "data directory {dir} belongs to node {stored_node} of cluster {stored_cluster}, \
         not to node {node} of cluster {cluster}"
    )]
    WrongDirectory {
        /// Data directory.
        dir: String,
        /// This node's id.
        node: i32,
        /// This node's cluster id.
        cluster: String,
        /// The node id in `meta.properties`.
        stored_node: i32,
        /// The cluster id in `meta.properties`.
        stored_cluster: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl LegacyMetadata {
    /// Reads the legacy file, if there is one.
    pub fn load(dir: &Path) -> Result<Option<LegacyMetadata>, MetadataError> {
        let path = dir.join(LEGACY_METADATA_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| MetadataError::Corrupt {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The metadata records that recreate these topics on `node`: each topic with its id, its
    /// partitions led by `node` in leader epoch 0 (the epoch in every batch it wrote), and
    /// its config overrides.
    pub fn records(&self, node: i32) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            }));
            for p in 0..t.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    directories: Vec::new(),
                    topic_id: t.id,
                    partition_id: p,
                    replicas: vec![node],
                    isr: vec![node],
                    leader: node,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![],
                }));
            }
            for (name, value) in &t.configs {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Topic(t.name.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        out
    }

    /// Renames the imported file out of the way (kept for the operator, never read again).
    pub fn retire(dir: &Path) -> Result<(), MetadataError> {
        let from = dir.join(LEGACY_METADATA_FILE);
        let to = dir.join(format!("{LEGACY_METADATA_FILE}{MIGRATED_SUFFIX}"));
        std::fs::rename(&from, &to).map_err(io_err(&from))?;
        sync_dir(dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), MetadataError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A new random cluster (or log directory) id, as Kafka's `Uuid.randomUuid()` draws one.
pub fn new_cluster_id() -> String {
    kafka_uuid::to_text(gregor_metadata::random_uuid())
}

/// The cluster id every voter of the same voter set derives alike (no formatting step needed
/// before a first start; `cluster.id` overrides it).
pub fn derived_cluster_id(voter_ids: &[i32]) -> String {
    let mut ids = voter_ids.to_vec();
    ids.sort_unstable();
    let text = format!(
        "gregor-cluster:{}",
        ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
    );
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let crc = crc32c::crc32c_append(i as u32, text.as_bytes());
        chunk.copy_from_slice(&crc.to_be_bytes());
    }
    kafka_uuid::to_text(uuid::Uuid::from_bytes(bytes))
}

/// `meta.properties`: which cluster and node a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Cluster id.
    pub cluster_id: String,
    /// Node id.
    pub node_id: i32,
    /// The directory's own id (Kafka's `directory.id`, a base64 UUID), which
    /// `kafka-metadata-quorum add-controller` reads to name the controller it adds. Given to a
    /// directory that has none at its next start.
    pub directory_id: Option<String>,
}

impl MetaProperties {
    /// Reads the file, if there is one.
    pub fn load(dir: &Path) -> Result<Option<MetaProperties>, MetadataError> {
        let path = dir.join(META_PROPERTIES);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let corrupt = |reason: &str| MetadataError::Corrupt {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let props: BTreeMap<String, String> = crate::config::parse_properties(&text)
            .map_err(|e| corrupt(&e.to_string()))?
            .into_iter()
            .collect();
        let cluster_id = props
            .get("cluster.id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| corrupt("no cluster.id"))?
            .clone();
        let node_id = props
            .get("node.id")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("no valid node.id"))?;
        Ok(Some(MetaProperties {
            cluster_id,
            node_id,
            directory_id: props.get("directory.id").filter(|d| !d.is_empty()).cloned(),
        }))
    }

    /// Writes the file atomically.
    pub fn store(&self, dir: &Path) -> Result<(), MetadataError> {
        let path = dir.join(META_PROPERTIES);
        let tmp = dir.join(format!("{META_PROPERTIES}.tmp"));
        let mut text = format!(
            "#\n# written by gregor\nversion=1\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id
        );
        if let Some(d) = &self.directory_id {
            text.push_str(&format!("directory.id={d}\n"));
        }
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            })
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)
    }

    /// The identity of the data directory for this node: checks a stored one against
    /// `node_id` (and `cluster_id` if configured), or settles and stores a new one.
    pub fn settle(
        dir: &Path,
        node_id: i32,
        configured_cluster_id: Option<&str>,
        voter_ids: &[i32],
    ) -> Result<MetaProperties, MetadataError> {
        Self::settle_with_directory(dir, node_id, configured_cluster_id, voter_ids, None)
    }

    /// [`MetaProperties::settle`] for a directory whose id is given (Kafka's
    /// `--initial-controllers id@host:port:directoryId`): a new directory takes it, one
    /// without an id yet too, one with another id is refused.
    pub fn settle_with_directory(
        dir: &Path,
        node_id: i32,
        configured_cluster_id: Option<&str>,
        voter_ids: &[i32],
        directory_id: Option<&str>,
    ) -> Result<MetaProperties, MetadataError> {
        let new_directory_id = || Some(directory_id.map_or_else(new_cluster_id, str::to_string));
        let wrong = |stored: &MetaProperties, cluster: &str| MetadataError::WrongDirectory {
            dir: dir.display().to_string(),
            node: node_id,
            cluster: cluster.to_string(),
            stored_node: stored.node_id,
            stored_cluster: stored.cluster_id.clone(),
        };
        if let Some(stored) = MetaProperties::load(dir)? {
            if stored.node_id != node_id {
                return Err(wrong(&stored, &stored.cluster_id));
            }
            if let Some(c) = configured_cluster_id {
                if c != stored.cluster_id {
                    return Err(wrong(&stored, c));
                }
            }
            match (directory_id, stored.directory_id.as_deref()) {
                (_, None) => {
                    let with_id = MetaProperties {
                        directory_id: new_directory_id(),
                        ..stored
                    };
                    with_id.store(dir)?;
                    return Ok(with_id);
                }
                (Some(given), Some(existing)) if given != existing => {
                    return Err(MetadataError::Corrupt {
                        path: dir.join(META_PROPERTIES).display().to_string(),
                        reason: format!(
                            "its directory.id is {existing}, but --initial-controllers names \
                             this node's directory {given}"
                        ),
                    });
                }
                _ => return Ok(stored),
            }
        }
        let cluster_id = match configured_cluster_id {
            Some(c) => c.to_string(),
            None => match LegacyMetadata::load(dir)? {
                Some(legacy) => legacy.cluster_id,
                // Any configured voter set, one voter included: a broker-only node joining a
                // one-voter quorum derives the same id as that voter.
                None if !voter_ids.is_empty() => derived_cluster_id(voter_ids),
                None => new_cluster_id(),
            },
        };
        let props = MetaProperties {
            cluster_id,
            node_id,
            directory_id: new_directory_id(),
        };
        props.store(dir)?;
        Ok(props)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_FILE: &str = r#"{
  "cluster_id": "AAAAAAAAAAAAAAAAAAAAAA",
  "topics": {
    "orders": {
      "name": "orders",
      "id": "5d0f5c1e-1c2f-4d47-9a4c-2c9f0f6c3b7a",
      "partitions": 2,
      "replication_factor": 1,
      "configs": { "retention.ms": "1000" }
    }
  }
}"#;

    #[test]
    fn the_legacy_file_becomes_records_and_is_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(LegacyMetadata::load(dir.path()).expect("none"), None);
        std::fs::write(dir.path().join(LEGACY_METADATA_FILE), OLD_FILE).expect("write");
        let legacy = LegacyMetadata::load(dir.path())
            .expect("load")
            .expect("present");
        let records = legacy.records(1);
        assert_eq!(records.len(), 4, "topic, two partitions, one config");
        let image = {
            let mut delta = gregor_metadata::MetadataDelta::new(std::sync::Arc::new(
                gregor_metadata::MetadataImage::empty(),
            ));
            for r in &records {
                delta.replay(r).expect("replays");
            }
            delta.apply(gregor_metadata::MetadataProvenance::default())
        };
        let topic = image.topics().topic_by_name("orders").expect("topic");
        assert_eq!(topic.id.to_string(), "5d0f5c1e-1c2f-4d47-9a4c-2c9f0f6c3b7a");
        assert_eq!(topic.partition_count(), 2);
        let p = topic.partition(1).expect("partition 1");
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (1, 0, vec![1]));
        assert_eq!(
            image.configs().topic_config("orders", "retention.ms"),
            Some("1000")
        );
        LegacyMetadata::retire(dir.path()).expect("retire");
        assert_eq!(LegacyMetadata::load(dir.path()).expect("gone"), None);
        assert!(dir
            .path()
            .join(format!("{LEGACY_METADATA_FILE}{MIGRATED_SUFFIX}"))
            .exists());
    }

    #[test]
    fn meta_properties_bind_a_directory_to_one_node_and_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LEGACY_METADATA_FILE), OLD_FILE).expect("write");
        let props = MetaProperties::settle(dir.path(), 1, None, &[1]).expect("settle");
        assert_eq!(
            props.cluster_id, "AAAAAAAAAAAAAAAAAAAAAA",
            "the old file's id is kept"
        );
        assert_eq!(
            MetaProperties::settle(dir.path(), 1, None, &[1]).expect("again"),
            props
        );
        let e = MetaProperties::settle(dir.path(), 2, None, &[1]).expect_err("other node");
        assert!(e.to_string().contains("belongs to node 1"), "{e}");
        assert!(MetaProperties::settle(dir.path(), 1, Some("other"), &[1]).is_err());
        // Voters of one set derive one id; a lone new node gets a random one.
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let pa = MetaProperties::settle(a.path(), 1, None, &[3, 1, 2]).expect("a");
        let pb = MetaProperties::settle(b.path(), 2, None, &[1, 2, 3]).expect("b");
        assert_eq!(pa.cluster_id, pb.cluster_id);
        assert_eq!(pa.cluster_id.len(), 22);
        assert_ne!(derived_cluster_id(&[1, 2]), derived_cluster_id(&[1, 2, 3]));
        // One configured voter and a broker-only node joining it derive one id too.
        let (c, d) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let voter = MetaProperties::settle(c.path(), 1, None, &[1]).expect("voter");
        let learner = MetaProperties::settle(d.path(), 2, None, &[1]).expect("learner");
        assert_eq!(voter.cluster_id, learner.cluster_id);
        // A lone node with no voters configured (`gregor server`) gets a random id.
        let (e, f) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let one = MetaProperties::settle(e.path(), 1, None, &[]).expect("lone");
        let other = MetaProperties::settle(f.path(), 1, None, &[]).expect("lone");
        assert_ne!(one.cluster_id, other.cluster_id);
        // `--initial-controllers` with a directory id: a new directory takes it, and keeps it;
        // one with another id is refused.
        const DIR: &str = "AAAAAAAAAAAAAAAAAAAAAQ";
        let g = tempfile::tempdir().expect("tempdir");
        let given = MetaProperties::settle_with_directory(g.path(), 1, None, &[1], Some(DIR))
            .expect("given");
        assert_eq!(given.directory_id.as_deref(), Some(DIR));
        assert_eq!(
            MetaProperties::settle(g.path(), 1, None, &[1]).expect("again"),
            given
        );
        let e = MetaProperties::settle_with_directory(e.path(), 1, None, &[], Some(DIR))
            .expect_err("another directory id");
        assert!(e.to_string().contains("--initial-controllers"), "{e}");
    }
}
