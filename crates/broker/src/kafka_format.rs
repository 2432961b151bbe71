//! A data directory formatted by Kafka's own `kafka-storage format` (Kafka 4.x's quickstart:
//! `kafka-storage.sh format --standalone -t ID -c server.properties`, then start the server).
//!
//! ```text
//! <log.dirs>/meta.properties               cluster.id, node.id, directory.id: gregor's own
//!                                            format, read as any meta.properties
//! <log.dirs>/__cluster_metadata-0/
//!   00000000000000000000-0000000000.checkpoint
//!                                            Kafka's bootstrap snapshot: control batches with
//!                                            KRaftVersionRecord and, for --standalone or
//!                                            --initial-controllers, a VotersRecord
//! ```
//!
//! gregor keeps its metadata log elsewhere (`__cluster_metadata/`); from Kafka's checkpoint it
//! takes only the VotersRecord: the initial voters a new cluster starts with, each with its
//! directory id and its first endpoint, as `--standalone` / `--initial-controllers` would give
//! them. Kafka's directory is removed as a stray log once the node runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;

use crate::config::Voter;

/// Where Kafka's format writes its bootstrap snapshot, under a log directory.
pub fn bootstrap_checkpoint(data_dir: &Path) -> PathBuf {
    data_dir
        .join("__cluster_metadata-0")
        .join("00000000000000000000-0000000000.checkpoint")
}

/// Initial voters, and the directory ids of those that have one.
pub type InitialVoters = (Vec<Voter>, BTreeMap<i32, String>);

/// Kafka's control record type of a VotersRecord (`ControlRecordType.KRAFT_VOTERS`).
const KRAFT_VOTERS: i16 = 6;

/// The initial voters Kafka's format wrote into `data_dir`, with their directory ids: `None`
/// when there is no checkpoint, or it names no voters (`--no-initial-controllers`); an error
/// for a checkpoint that cannot be read.
pub fn initial_voters(data_dir: &Path) -> Result<Option<InitialVoters>, String> {
    let path = bootstrap_checkpoint(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |what: String| format!("{} (Kafka's bootstrap checkpoint): {what}", path.display());
    let mut buf = Bytes::from(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| bad(e.to_string()))?;
    for record in sets.iter().flat_map(|s| s.records.iter()) {
        if !record.control {
            continue;
        }
        let Some(key) = record.key.as_ref().filter(|k| k.len() >= 4) else {
            continue;
        };
        if i16::from_be_bytes([key[2], key[3]]) != KRAFT_VOTERS {
            continue;
        }
        let mut value = record
            .value
            .clone()
            .ok_or_else(|| bad("a VotersRecord without a value".into()))?;
        let voters = kafka_protocol::messages::voters_record::VotersRecord::decode(&mut value, 0)
            .map_err(|e| bad(format!("a VotersRecord: {e}")))?;
        let mut list = Vec::new();
        let mut dirs = BTreeMap::new();
        for v in voters.voters {
            let id = v.voter_id.0;
            let endpoint = v
                .endpoints
                .first()
                .ok_or_else(|| bad(format!("voter {id} has no endpoint")))?;
            list.push(Voter {
                id,
                host: endpoint.host.to_string(),
                port: endpoint.port,
            });
            if !v.voter_directory_id.is_nil() {
                dirs.insert(
                    id,
                    gregor_protocol::kafka_uuid::to_text(v.voter_directory_id),
                );
            }
        }
        if list.is_empty() {
            return Ok(None);
        }
        return Ok(Some((list, dirs)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real format's output is read in `tests/e2e/tests/bootstrap_quorum.rs` (Kafka's own
    /// StorageTool); here: no checkpoint, and one that is not Kafka's.
    #[test]
    fn no_checkpoint_is_none_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(initial_voters(dir.path()), Ok(None));
        let path = bootstrap_checkpoint(dir.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"not a record batch at all").expect("write");
        let e = initial_voters(dir.path()).expect_err("damaged");
        assert!(e.contains("Kafka's bootstrap checkpoint"), "{e}");
        std::fs::write(&path, b"").expect("write");
        assert_eq!(initial_voters(dir.path()), Ok(None));
    }
}
