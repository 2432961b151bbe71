//! The streams group records of `__consumer_offsets` (KIP-1071), in Kafka 4.4's formats.
//!
//! As for the consumer group records, each key starts with an int16 that is the record type
//! and is written in the classic (non-flexible) encoding; each value starts with an int16
//! version (always 0) followed by the flexible encoding (compact strings and arrays, a
//! tagged-field section at the end of every struct, nested ones and array elements included).
//! A `None` value is a tombstone.
//!
//! ```text
//! key 17 StreamsGroupMetadataKey                 { group }         value { epoch, metadata hash,
//!        tagged: 0 validated topology epoch, 1 last assignment configs,
//!                2 stored description topology epoch, 3 failed description topology epoch }
//! key 19 StreamsGroupMemberMetadataKey           { group, member } value { instance, rack,
//!        client id/host, rebalance timeout, topology epoch, process id, endpoint, client tags }
//! key 20 StreamsGroupTargetAssignmentMetadataKey { group }         value { assignment epoch,
//!        tagged: 0 assignment timestamp }
//! key 21 StreamsGroupTargetAssignmentMemberKey   { group, member } value { active, standby,
//!        warm-up [subtopology, partitions] }
//! key 22 StreamsGroupCurrentMemberAssignmentKey  { group, member } value { epoch, previous
//!        epoch, state, active/standby/warm-up tasks and the same pending revocation, each
//!        [subtopology, partitions, tagged: 0 assignment epochs] }
//! key 23 StreamsGroupTopologyKey                 { group }         value { epoch, subtopologies }
//! ```
//!
//! Key 18 was StreamsGroupPartitionMetadata in earlier Kafka versions; Kafka 4.4 has no schema
//! for it any more (`CoordinatorRecordType.fromId(18)` fails "Unknown record id 18") and its
//! loader ignores records of unknown types. [`is_streams_group_key`] still says yes to it (it
//! is in the streams group range) and [`StreamsGroupRecord::decode`] refuses it with
//! [`DecodeError::UnsupportedVersion`] of version 18, which a loader should skip as Kafka does.
//!
//! Task lists are written in the order of Kafka's `StreamsCoordinatorRecordHelpers`:
//! subtopologies sorted by id, partitions ascending (a `BTreeMap` orders strings by bytes,
//! Java by UTF-16 units: the same for subtopology ids, which are numbers). Kafka writes
//! per-partition assignment epochs for active tasks only, which is what [`TaskEpochs`] holds;
//! standby and warm-up tasks are plain [`TaskMap`]s.
//!
//! Two schema defaults are not what their JSON suggests: `"default": null` on a nullable array
//! (`LastAssignmentConfigs`, `AssignmentEpochs`) is read by Kafka's generator as "no default",
//! so the default is the *empty* array: an empty array is not written, and a null one is
//! written as the tagged field holding a null array (`[tag, 1, 0]`). Kafka's helpers never
//! write nulls; read back here, null configs are empty and null epochs are missing ones.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, BytesMut};

use super::tasks::{TaskMap, Tasks};
use crate::error::DecodeError;
use crate::records::Record;
use gregor_share::wire::{
    put_compact_nullable_string, put_compact_string, put_string, put_uvarint, Reader,
};

const GROUP_METADATA_KEY: i16 = 17;
/// StreamsGroupPartitionMetadata: removed from Kafka, unknown to 4.4.
const REMOVED_PARTITION_METADATA_KEY: i16 = 18;
const MEMBER_METADATA_KEY: i16 = 19;
const TARGET_ASSIGNMENT_METADATA_KEY: i16 = 20;
const TARGET_ASSIGNMENT_MEMBER_KEY: i16 = 21;
const CURRENT_ASSIGNMENT_KEY: i16 = 22;
const TOPOLOGY_KEY: i16 = 23;
const VALUE_VERSION: i16 = 0;

/// True when `key` is one of the streams group record keys (types 17 to 23; 18 is a removed
/// type that [`StreamsGroupRecord::decode`] refuses).
pub fn is_streams_group_key(key: &[u8]) -> bool {
    key.len() >= 2
        && (GROUP_METADATA_KEY..=TOPOLOGY_KEY).contains(&i16::from_be_bytes([key[0], key[1]]))
}

/// Active tasks with the epoch at which each partition was assigned: subtopology id →
/// partition → assignment epoch (Kafka's `TasksTupleWithEpochs.activeTasksWithEpochs`).
pub type TaskEpochs = BTreeMap<String, BTreeMap<i32, i32>>;

/// The partitions of `epochs` without their epochs.
pub fn task_map(epochs: &TaskEpochs) -> TaskMap {
    epochs
        .iter()
        .map(|(id, partitions)| (id.clone(), partitions.keys().copied().collect()))
        .collect()
}

/// The group's epoch and state as stored (StreamsGroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub epoch: i32,
    /// The hash of the metadata of every topic the group uses.
    pub metadata_hash: i64,
    /// Tagged field 0 (default -1): the topology epoch whose topics were validated.
    pub validated_topology_epoch: i32,
    /// Tagged field 1: the assignment configs last used, written when not empty.
    pub last_assignment_configs: BTreeMap<String, String>,
    /// Tagged field 2 (default -1): the topology epoch the description plugin holds; -2 marks
    /// an interrupted plugin operation.
    pub stored_description_topology_epoch: i32,
    /// Tagged field 3 (default -1): the topology epoch whose description push the plugin
    /// rejected for good.
    pub failed_description_topology_epoch: i32,
}

impl Default for GroupMetadataValue {
    /// Kafka's defaults.
    fn default() -> GroupMetadataValue {
        GroupMetadataValue {
            epoch: 0,
            metadata_hash: 0,
            validated_topology_epoch: -1,
            last_assignment_configs: BTreeMap::new(),
            stored_description_topology_epoch: -1,
            failed_description_topology_epoch: -1,
        }
    }
}

/// A host and port for interactive queries (`Endpoint`; the port is a uint16).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// A member as stored (StreamsGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    /// Written sorted by key, as Kafka does.
    pub client_tags: BTreeMap<String, String>,
}

impl Default for MemberMetadataValue {
    /// Kafka's defaults (a rebalance timeout of -1).
    fn default() -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: -1,
            topology_epoch: 0,
            process_id: String::new(),
            user_endpoint: None,
            client_tags: BTreeMap::new(),
        }
    }
}

/// The target assignment's epoch (StreamsGroupTargetAssignmentMetadataValue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
    /// Tagged field 0 (default 0, KIP-1263): when the assignment was computed.
    pub assignment_timestamp: i64,
}

/// A member's target assignment (StreamsGroupTargetAssignmentMemberValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetAssignmentMemberValue {
    pub active_tasks: TaskMap,
    pub standby_tasks: TaskMap,
    pub warmup_tasks: TaskMap,
}

impl From<Tasks> for TargetAssignmentMemberValue {
    fn from(t: Tasks) -> TargetAssignmentMemberValue {
        TargetAssignmentMemberValue {
            active_tasks: t.active,
            standby_tasks: t.standby,
            warmup_tasks: t.warmup,
        }
    }
}

impl From<TargetAssignmentMemberValue> for Tasks {
    fn from(v: TargetAssignmentMemberValue) -> Tasks {
        Tasks {
            active: v.active_tasks,
            standby: v.standby_tasks,
            warmup: v.warmup_tasks,
        }
    }
}

/// A member's current assignment (StreamsGroupCurrentMemberAssignmentValue).
///
/// Active tasks carry the epoch each partition was assigned at (the `AssignmentEpochs` tagged
/// field of their `TaskIds`). A record without them (written before Kafka had the field) or
/// with a list of another length reads, as Kafka replays it, with the member epoch for every
/// partition. Standby and warm-up tasks are written without epochs, and epochs read on them
/// are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// The member state's value (Kafka's `MemberState.value()`).
    pub state: i8,
    pub active_tasks: TaskEpochs,
    pub standby_tasks: TaskMap,
    pub warmup_tasks: TaskMap,
    pub active_tasks_pending_revocation: TaskEpochs,
    pub standby_tasks_pending_revocation: TaskMap,
    pub warmup_tasks_pending_revocation: TaskMap,
}

impl CurrentAssignmentValue {
    /// The assigned tasks, without the epochs.
    pub fn assigned_tasks(&self) -> Tasks {
        Tasks {
            active: task_map(&self.active_tasks),
            standby: self.standby_tasks.clone(),
            warmup: self.warmup_tasks.clone(),
        }
    }

    /// The tasks pending revocation, without the epochs.
    pub fn tasks_pending_revocation(&self) -> Tasks {
        Tasks {
            active: task_map(&self.active_tasks_pending_revocation),
            standby: self.standby_tasks_pending_revocation.clone(),
            warmup: self.warmup_tasks_pending_revocation.clone(),
        }
    }
}

/// A topic of a subtopology (`TopicInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicInfo {
    pub name: String,
    /// 0: no number enforced (always 0 for changelog topics).
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i16,
    /// (key, value) topic configs, in the order written.
    pub topic_configs: Vec<(String, String)>,
}

/// Source topics that must be copartitioned, by index into the subtopology's lists
/// (`CopartitionGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub source_topic_regex: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

/// One subtopology (`Subtopology`), its lists in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subtopology {
    pub subtopology_id: String,
    pub source_topics: Vec<String>,
    pub source_topic_regex: Vec<String>,
    pub state_changelog_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<TopicInfo>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

/// The group's topology (StreamsGroupTopologyValue). Kafka keeps the subtopologies in the
/// order of the heartbeat that brought them, and so does this.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologyValue {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

/// One streams group record, decoded. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsGroupRecord {
    GroupMetadata {
        group_id: String,
        value: Option<GroupMetadataValue>,
    },
    Topology {
        group_id: String,
        value: Option<TopologyValue>,
    },
    MemberMetadata {
        group_id: String,
        member_id: String,
        value: Option<MemberMetadataValue>,
    },
    TargetAssignmentMetadata {
        group_id: String,
        value: Option<TargetAssignmentMetadataValue>,
    },
    TargetAssignmentMember {
        group_id: String,
        member_id: String,
        value: Option<TargetAssignmentMemberValue>,
    },
    CurrentAssignment {
        group_id: String,
        member_id: String,
        value: Option<CurrentAssignmentValue>,
    },
}

impl StreamsGroupRecord {
    pub fn group_id(&self) -> &str {
        match self {
            StreamsGroupRecord::GroupMetadata { group_id, .. }
            | StreamsGroupRecord::Topology { group_id, .. }
            | StreamsGroupRecord::MemberMetadata { group_id, .. }
            | StreamsGroupRecord::TargetAssignmentMetadata { group_id, .. }
            | StreamsGroupRecord::TargetAssignmentMember { group_id, .. }
            | StreamsGroupRecord::CurrentAssignment { group_id, .. } => group_id,
        }
    }

    /// The key and value bytes Kafka writes for this record.
    pub fn encode(&self) -> Record {
        let mut key = BytesMut::new();
        let value = match self {
            StreamsGroupRecord::GroupMetadata { group_id, value } => {
                key.put_i16(GROUP_METADATA_KEY);
                put_string(&mut key, group_id);
                value.as_ref().map(|m| with_header(|v| m.write(v)))
            }
            StreamsGroupRecord::Topology { group_id, value } => {
                key.put_i16(TOPOLOGY_KEY);
                put_string(&mut key, group_id);
                value.as_ref().map(|t| with_header(|v| t.write(v)))
            }
            StreamsGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value,
            } => {
                key.put_i16(MEMBER_METADATA_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                value.as_ref().map(|m| with_header(|v| m.write(v)))
            }
            StreamsGroupRecord::TargetAssignmentMetadata { group_id, value } => {
                key.put_i16(TARGET_ASSIGNMENT_METADATA_KEY);
                put_string(&mut key, group_id);
                value.as_ref().map(|m| with_header(|v| m.write(v)))
            }
            StreamsGroupRecord::TargetAssignmentMember {
                group_id,
                member_id,
                value,
            } => {
                key.put_i16(TARGET_ASSIGNMENT_MEMBER_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                value.as_ref().map(|m| with_header(|v| m.write(v)))
            }
            StreamsGroupRecord::CurrentAssignment {
                group_id,
                member_id,
                value,
            } => {
                key.put_i16(CURRENT_ASSIGNMENT_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                value.as_ref().map(|c| with_header(|v| c.write(v)))
            }
        };
        Record {
            key: key.freeze(),
            value: value.map(BytesMut::freeze),
        }
    }

    /// Decodes a streams group record; fails on anything else, including the removed type 18
    /// and the other groups' keys.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StreamsGroupRecord, DecodeError> {
        let mut k = Reader::new(key);
        let kind = k.i16("key version")?;
        match kind {
            GROUP_METADATA_KEY
            | MEMBER_METADATA_KEY
            | TARGET_ASSIGNMENT_METADATA_KEY
            | TARGET_ASSIGNMENT_MEMBER_KEY
            | CURRENT_ASSIGNMENT_KEY
            | TOPOLOGY_KEY => {}
            REMOVED_PARTITION_METADATA_KEY => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "streams group record key (removed StreamsGroupPartitionMetadata)",
                    version: kind,
                })
            }
            version => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "streams group record key",
                    version,
                })
            }
        }
        let group_id = k.string("group id")?;
        let mut value = match value {
            Some(v) => {
                let mut r = Reader::new(v);
                let version = r.i16("value version")?;
                if version != VALUE_VERSION {
                    return Err(DecodeError::UnsupportedVersion {
                        what: "streams group record value",
                        version,
                    });
                }
                Some(r)
            }
            None => None,
        };
        let value = value.as_mut();
        Ok(match kind {
            GROUP_METADATA_KEY => StreamsGroupRecord::GroupMetadata {
                group_id,
                value: value.map(GroupMetadataValue::read).transpose()?,
            },
            MEMBER_METADATA_KEY => StreamsGroupRecord::MemberMetadata {
                group_id,
                member_id: k.string("member id")?,
                value: value.map(MemberMetadataValue::read).transpose()?,
            },
            TARGET_ASSIGNMENT_METADATA_KEY => StreamsGroupRecord::TargetAssignmentMetadata {
                group_id,
                value: value.map(TargetAssignmentMetadataValue::read).transpose()?,
            },
            TARGET_ASSIGNMENT_MEMBER_KEY => StreamsGroupRecord::TargetAssignmentMember {
                group_id,
                member_id: k.string("member id")?,
                value: value.map(TargetAssignmentMemberValue::read).transpose()?,
            },
            CURRENT_ASSIGNMENT_KEY => StreamsGroupRecord::CurrentAssignment {
                group_id,
                member_id: k.string("member id")?,
                value: value.map(CurrentAssignmentValue::read).transpose()?,
            },
            _ => StreamsGroupRecord::Topology {
                group_id,
                value: value.map(TopologyValue::read).transpose()?,
            },
        })
    }
}

/// A value: its version, then what `write` puts.
fn with_header(write: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    write(&mut v);
    v
}

impl GroupMetadataValue {
    fn write(&self, v: &mut BytesMut) {
        v.put_i32(self.epoch);
        v.put_i64(self.metadata_hash);
        let mut tags = Vec::new();
        if self.validated_topology_epoch != -1 {
            tags.push((0, i32_field(self.validated_topology_epoch)));
        }
        if !self.last_assignment_configs.is_empty() {
            let mut f = BytesMut::new();
            put_key_values(&mut f, &self.last_assignment_configs);
            tags.push((1, f));
        }
        if self.stored_description_topology_epoch != -1 {
            tags.push((2, i32_field(self.stored_description_topology_epoch)));
        }
        if self.failed_description_topology_epoch != -1 {
            tags.push((3, i32_field(self.failed_description_topology_epoch)));
        }
        put_tagged_fields(v, &tags);
    }

    fn read(r: &mut Reader<'_>) -> Result<GroupMetadataValue, DecodeError> {
        let mut m = GroupMetadataValue {
            epoch: r.i32("group epoch")?,
            metadata_hash: r.i64("metadata hash")?,
            ..GroupMetadataValue::default()
        };
        read_tagged_fields(r, |tag, f| {
            match tag {
                0 => m.validated_topology_epoch = f.i32("validated topology epoch")?,
                // A null array (never written by Kafka) reads as empty.
                1 => m.last_assignment_configs = read_key_values(f, "last assignment configs")?,
                2 => m.stored_description_topology_epoch = f.i32("stored description epoch")?,
                3 => m.failed_description_topology_epoch = f.i32("failed description epoch")?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl MemberMetadataValue {
    fn write(&self, v: &mut BytesMut) {
        put_compact_nullable_string(v, self.instance_id.as_deref());
        put_compact_nullable_string(v, self.rack_id.as_deref());
        put_compact_string(v, &self.client_id);
        put_compact_string(v, &self.client_host);
        v.put_i32(self.rebalance_timeout_ms);
        v.put_i32(self.topology_epoch);
        put_compact_string(v, &self.process_id);
        match &self.user_endpoint {
            // A nullable struct: -1 for null, 1 then the struct.
            None => v.put_i8(-1),
            Some(e) => {
                v.put_i8(1);
                put_compact_string(v, &e.host);
                v.put_u16(e.port);
                put_uvarint(v, 0);
            }
        }
        put_key_values(v, &self.client_tags);
        put_uvarint(v, 0);
    }

    fn read(r: &mut Reader<'_>) -> Result<MemberMetadataValue, DecodeError> {
        let instance_id = r.compact_nullable_string("instance id")?;
        let rack_id = r.compact_nullable_string("rack id")?;
        let client_id = r.compact_string("client id")?;
        let client_host = r.compact_string("client host")?;
        let rebalance_timeout_ms = r.i32("rebalance timeout")?;
        let topology_epoch = r.i32("topology epoch")?;
        let process_id = r.compact_string("process id")?;
        let user_endpoint = if r.i8("user endpoint")? < 0 {
            None
        } else {
            let host = r.compact_string("endpoint host")?;
            // A uint16: the same two bytes.
            let port = r.i16("endpoint port")? as u16;
            r.skip_tagged_fields()?;
            Some(Endpoint { host, port })
        };
        let client_tags = read_key_values(r, "client tags")?;
        r.skip_tagged_fields()?;
        Ok(MemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            topology_epoch,
            process_id,
            user_endpoint,
            client_tags,
        })
    }
}

impl TargetAssignmentMetadataValue {
    fn write(&self, v: &mut BytesMut) {
        v.put_i32(self.assignment_epoch);
        let mut tags = Vec::new();
        if self.assignment_timestamp != 0 {
            let mut f = BytesMut::new();
            f.put_i64(self.assignment_timestamp);
            tags.push((0, f));
        }
        put_tagged_fields(v, &tags);
    }

    fn read(r: &mut Reader<'_>) -> Result<TargetAssignmentMetadataValue, DecodeError> {
        let mut m = TargetAssignmentMetadataValue {
            assignment_epoch: r.i32("assignment epoch")?,
            assignment_timestamp: 0,
        };
        read_tagged_fields(r, |tag, f| {
            if tag == 0 {
                m.assignment_timestamp = f.i64("assignment timestamp")?;
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl TargetAssignmentMemberValue {
    fn write(&self, v: &mut BytesMut) {
        put_task_map(v, &self.active_tasks);
        put_task_map(v, &self.standby_tasks);
        put_task_map(v, &self.warmup_tasks);
        put_uvarint(v, 0);
    }

    fn read(r: &mut Reader<'_>) -> Result<TargetAssignmentMemberValue, DecodeError> {
        // This schema's TaskIds has no tagged field: all are skipped.
        let mut read = |what| read_task_ids(r, what, false).map(to_task_map);
        let value = TargetAssignmentMemberValue {
            active_tasks: read("active tasks")?,
            standby_tasks: read("standby tasks")?,
            warmup_tasks: read("warm-up tasks")?,
        };
        r.skip_tagged_fields()?;
        Ok(value)
    }
}

impl CurrentAssignmentValue {
    fn write(&self, v: &mut BytesMut) {
        v.put_i32(self.member_epoch);
        v.put_i32(self.previous_member_epoch);
        v.put_i8(self.state);
        put_task_epochs(v, &self.active_tasks);
        put_task_map(v, &self.standby_tasks);
        put_task_map(v, &self.warmup_tasks);
        put_task_epochs(v, &self.active_tasks_pending_revocation);
        put_task_map(v, &self.standby_tasks_pending_revocation);
        put_task_map(v, &self.warmup_tasks_pending_revocation);
        put_uvarint(v, 0);
    }

    fn read(r: &mut Reader<'_>) -> Result<CurrentAssignmentValue, DecodeError> {
        let member_epoch = r.i32("member epoch")?;
        let previous_member_epoch = r.i32("previous member epoch")?;
        let state = r.i8("member state")?;
        let active_tasks = to_task_epochs(read_task_ids(r, "active tasks", true)?, member_epoch);
        let standby_tasks = to_task_map(read_task_ids(r, "standby tasks", true)?);
        let warmup_tasks = to_task_map(read_task_ids(r, "warm-up tasks", true)?);
        let active_tasks_pending_revocation = to_task_epochs(
            read_task_ids(r, "active tasks pending revocation", true)?,
            member_epoch,
        );
        let standby_tasks_pending_revocation =
            to_task_map(read_task_ids(r, "standby tasks pending revocation", true)?);
        let warmup_tasks_pending_revocation =
            to_task_map(read_task_ids(r, "warm-up tasks pending revocation", true)?);
        r.skip_tagged_fields()?;
        Ok(CurrentAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            active_tasks,
            standby_tasks,
            warmup_tasks,
            active_tasks_pending_revocation,
            standby_tasks_pending_revocation,
            warmup_tasks_pending_revocation,
        })
    }
}

impl TopologyValue {
    fn write(&self, v: &mut BytesMut) {
        v.put_i32(self.epoch);
        put_uvarint(v, self.subtopologies.len() + 1);
        for s in &self.subtopologies {
            put_compact_string(v, &s.subtopology_id);
            put_strings(v, &s.source_topics);
            put_strings(v, &s.source_topic_regex);
            put_topic_infos(v, &s.state_changelog_topics);
            put_strings(v, &s.repartition_sink_topics);
            put_topic_infos(v, &s.repartition_source_topics);
            put_uvarint(v, s.copartition_groups.len() + 1);
            for g in &s.copartition_groups {
                put_i16s(v, &g.source_topics);
                put_i16s(v, &g.source_topic_regex);
                put_i16s(v, &g.repartition_source_topics);
                put_uvarint(v, 0);
            }
            put_uvarint(v, 0);
        }
        put_uvarint(v, 0);
    }

    fn read(r: &mut Reader<'_>) -> Result<TopologyValue, DecodeError> {
        let epoch = r.i32("topology epoch")?;
        let n = r.compact_len("subtopologies")?;
        let mut subtopologies = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let subtopology_id = r.compact_string("subtopology id")?;
            let source_topics = read_strings(r, "source topics")?;
            let source_topic_regex = read_strings(r, "source topic regex")?;
            let state_changelog_topics = read_topic_infos(r, "state changelog topics")?;
            let repartition_sink_topics = read_strings(r, "repartition sink topics")?;
            let repartition_source_topics = read_topic_infos(r, "repartition source topics")?;
            let groups = r.compact_len("copartition groups")?;
            let mut copartition_groups = Vec::with_capacity(groups.min(1024));
            for _ in 0..groups {
                let group = CopartitionGroup {
                    source_topics: read_i16s(r, "copartition source topics")?,
                    source_topic_regex: read_i16s(r, "copartition source topic regex")?,
                    repartition_source_topics: read_i16s(r, "copartition repartition topics")?,
                };
                r.skip_tagged_fields()?;
                copartition_groups.push(group);
            }
            r.skip_tagged_fields()?;
            subtopologies.push(Subtopology {
                subtopology_id,
                source_topics,
                source_topic_regex,
                state_changelog_topics,
                repartition_sink_topics,
                repartition_source_topics,
                copartition_groups,
            });
        }
        r.skip_tagged_fields()?;
        Ok(TopologyValue {
            epoch,
            subtopologies,
        })
    }
}

/// An int32 as a tagged field's bytes.
fn i32_field(x: i32) -> BytesMut {
    let mut f = BytesMut::new();
    f.put_i32(x);
    f
}

/// A tagged-field section: the count, then each field's tag, size and bytes (tags ascending).
fn put_tagged_fields(b: &mut BytesMut, fields: &[(usize, BytesMut)]) {
    put_uvarint(b, fields.len());
    for (tag, bytes) in fields {
        put_uvarint(b, *tag);
        put_uvarint(b, bytes.len());
        b.put_slice(bytes);
    }
}

/// Reads a tagged-field section, handing each field's tag and bytes to `field` (which ignores
/// the tags it does not know).
fn read_tagged_fields(
    r: &mut Reader<'_>,
    mut field: impl FnMut(u64, &mut Reader<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let n = r.uvarint("tagged fields")?;
    for _ in 0..n {
        let tag = r.uvarint("tag")?;
        let size = r.uvarint("tagged field size")?;
        let size = usize::try_from(size).map_err(|_| DecodeError::Truncated("tagged field"))?;
        let raw = r.take(size, "tagged field")?;
        field(tag, &mut Reader::new(raw))?;
    }
    Ok(())
}

/// An array of (key, value) structs (`KeyValue`, `LastAssignmentConfig`), sorted by key.
fn put_key_values(b: &mut BytesMut, pairs: &BTreeMap<String, String>) {
    put_uvarint(b, pairs.len() + 1);
    for (key, value) in pairs {
        put_compact_string(b, key);
        put_compact_string(b, value);
        put_uvarint(b, 0);
    }
}

/// Reads an array of (key, value) structs; a later duplicate key wins.
fn read_key_values(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<BTreeMap<String, String>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut pairs = BTreeMap::new();
    for _ in 0..n {
        let key = r.compact_string("key")?;
        let value = r.compact_string("value")?;
        r.skip_tagged_fields()?;
        pairs.insert(key, value);
    }
    Ok(pairs)
}

fn put_strings(b: &mut BytesMut, strings: &[String]) {
    put_uvarint(b, strings.len() + 1);
    for s in strings {
        put_compact_string(b, s);
    }
}

fn read_strings(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.compact_string(what)?);
    }
    Ok(out)
}

fn put_i16s(b: &mut BytesMut, xs: &[i16]) {
    put_uvarint(b, xs.len() + 1);
    for x in xs {
        b.put_i16(*x);
    }
}

fn read_i16s(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<i16>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.i16(what)?);
    }
    Ok(out)
}

fn read_i32s(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<i32>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(r.i32(what)?);
    }
    Ok(out)
}

/// A compact nullable array of int32 (0 is null).
fn read_nullable_i32s(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<Vec<i32>>, DecodeError> {
    if r.remaining().first() == Some(&0) {
        r.uvarint(what)?;
        return Ok(None);
    }
    read_i32s(r, what).map(Some)
}

fn put_topic_infos(b: &mut BytesMut, topics: &[TopicInfo]) {
    put_uvarint(b, topics.len() + 1);
    for t in topics {
        put_compact_string(b, &t.name);
        b.put_i32(t.partitions);
        b.put_i16(t.replication_factor);
        put_uvarint(b, t.topic_configs.len() + 1);
        for (key, value) in &t.topic_configs {
            put_compact_string(b, key);
            put_compact_string(b, value);
            put_uvarint(b, 0);
        }
        put_uvarint(b, 0);
    }
}

fn read_topic_infos(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<TopicInfo>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let name = r.compact_string("topic name")?;
        let partitions = r.i32("topic partitions")?;
        let replication_factor = r.i16("replication factor")?;
        let configs = r.compact_len("topic configs")?;
        let mut topic_configs = Vec::with_capacity(configs.min(1024));
        for _ in 0..configs {
            let key = r.compact_string("topic config key")?;
            let value = r.compact_string("topic config value")?;
            r.skip_tagged_fields()?;
            topic_configs.push((key, value));
        }
        r.skip_tagged_fields()?;
        out.push(TopicInfo {
            name,
            partitions,
            replication_factor,
            topic_configs,
        });
    }
    Ok(out)
}

/// A `TaskIds` array without assignment epochs (target assignment; standby and warm-up tasks
/// of the current one, whose epochs Kafka leaves at the default, empty, so unwritten).
fn put_task_map(b: &mut BytesMut, tasks: &TaskMap) {
    put_uvarint(b, tasks.len() + 1);
    for (id, partitions) in tasks {
        put_compact_string(b, id);
        put_uvarint(b, partitions.len() + 1);
        for p in partitions {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

/// A `TaskIds` array with the assignment epochs (tag 0) in the partitions' order, as Kafka's
/// `toTaskIdsWithEpochs`; an empty list is the default, so not written.
fn put_task_epochs(b: &mut BytesMut, tasks: &TaskEpochs) {
    put_uvarint(b, tasks.len() + 1);
    for (id, partitions) in tasks {
        put_compact_string(b, id);
        put_uvarint(b, partitions.len() + 1);
        for p in partitions.keys() {
            b.put_i32(*p);
        }
        let mut tags = Vec::new();
        if !partitions.is_empty() {
            let mut f = BytesMut::new();
            put_uvarint(&mut f, partitions.len() + 1);
            for epoch in partitions.values() {
                f.put_i32(*epoch);
            }
            tags.push((0, f));
        }
        put_tagged_fields(b, &tags);
    }
}

/// One `TaskIds` element as written.
struct TaskIds {
    subtopology_id: String,
    partitions: Vec<i32>,
    /// `None` when absent or null.
    assignment_epochs: Option<Vec<i32>>,
}

/// Reads a `TaskIds` array; with `epochs`, tag 0 is the assignment epochs (the current
/// assignment's schema), otherwise every tag is unknown (the target assignment's).
fn read_task_ids(
    r: &mut Reader<'_>,
    what: &'static str,
    epochs: bool,
) -> Result<Vec<TaskIds>, DecodeError> {
    let n = r.compact_len(what)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let subtopology_id = r.compact_string("subtopology id")?;
        let partitions = read_i32s(r, "task partitions")?;
        let mut assignment_epochs = None;
        read_tagged_fields(r, |tag, f| {
            if epochs && tag == 0 {
                assignment_epochs = read_nullable_i32s(f, "assignment epochs")?;
            }
            Ok(())
        })?;
        out.push(TaskIds {
            subtopology_id,
            partitions,
            assignment_epochs,
        });
    }
    Ok(out)
}

/// Tasks by subtopology; as Kafka's replay, a later entry for a subtopology replaces an
/// earlier one.
fn to_task_map(tasks: Vec<TaskIds>) -> TaskMap {
    tasks
        .into_iter()
        .map(|t| {
            (
                t.subtopology_id,
                t.partitions.into_iter().collect::<BTreeSet<_>>(),
            )
        })
        .collect()
}

/// Active tasks with their epochs, as Kafka's `parseActiveTasksWithEpochs`: epochs missing,
/// null or not one per partition give every partition of the entry `default_epoch`.
fn to_task_epochs(tasks: Vec<TaskIds>, default_epoch: i32) -> TaskEpochs {
    tasks
        .into_iter()
        .map(|t| {
            let epochs = match t.assignment_epochs {
                Some(e) if e.len() == t.partitions.len() => {
                    t.partitions.into_iter().zip(e).collect()
                }
                _ => t
                    .partitions
                    .into_iter()
                    .map(|p| (p, default_epoch))
                    .collect(),
            };
            (t.subtopology_id, epochs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn round_trip(r: StreamsGroupRecord) {
        let enc = r.encode();
        assert!(is_streams_group_key(&enc.key));
        let dec = StreamsGroupRecord::decode(&enc.key, enc.value.as_deref());
        assert_eq!(dec, Ok(r));
    }

    fn tasks(pairs: &[(&str, &[i32])]) -> TaskMap {
        pairs
            .iter()
            .map(|(id, ps)| (id.to_string(), ps.iter().copied().collect()))
            .collect()
    }

    fn epochs(pairs: &[(&str, &[(i32, i32)])]) -> TaskEpochs {
        pairs
            .iter()
            .map(|(id, ps)| (id.to_string(), ps.iter().copied().collect()))
            .collect()
    }

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The sample values below are the ones the Java program that produced the layouts filled
    // Kafka's generated classes with.

    fn metadata_defaults() -> GroupMetadataValue {
        GroupMetadataValue {
            epoch: 5,
            metadata_hash: 0x0123_4567_89ab_cdef,
            ..GroupMetadataValue::default()
        }
    }

    fn metadata_tags() -> GroupMetadataValue {
        GroupMetadataValue {
            epoch: 5,
            metadata_hash: -2,
            validated_topology_epoch: 3,
            last_assignment_configs: configs(&[
                ("acceptable.recovery.lag", "10000"),
                ("num.standby.replicas", "1"),
            ]),
            stored_description_topology_epoch: -2,
            failed_description_topology_epoch: 2,
        }
    }

    fn member() -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: Some("i1".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            topology_epoch: 2,
            process_id: "p-1".into(),
            user_endpoint: Some(Endpoint {
                host: "localhost".into(),
                port: 65535,
            }),
            client_tags: configs(&[("az", "a"), ("rack", "r1")]),
        }
    }

    fn member_no_endpoint() -> MemberMetadataValue {
        MemberMetadataValue {
            rack_id: Some("r".into()),
            client_host: "h".into(),
            process_id: "p".into(),
            ..MemberMetadataValue::default()
        }
    }

    fn target_member() -> TargetAssignmentMemberValue {
        TargetAssignmentMemberValue {
            active_tasks: tasks(&[("0", &[0, 2]), ("1", &[1])]),
            standby_tasks: tasks(&[("0", &[1])]),
            warmup_tasks: TaskMap::new(),
        }
    }

    fn current() -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: 1,
            active_tasks: epochs(&[("0", &[(0, 3), (2, 5)])]),
            standby_tasks: tasks(&[("1", &[0])]),
            warmup_tasks: TaskMap::new(),
            active_tasks_pending_revocation: epochs(&[("1", &[(1, 4)])]),
            standby_tasks_pending_revocation: TaskMap::new(),
            warmup_tasks_pending_revocation: tasks(&[("0", &[3])]),
        }
    }

    fn topology() -> TopologyValue {
        TopologyValue {
            epoch: 2,
            subtopologies: vec![
                Subtopology {
                    subtopology_id: "0".into(),
                    source_topics: vec!["input".into()],
                    state_changelog_topics: vec![TopicInfo {
                        name: "app-store-changelog".into(),
                        partitions: 0,
                        replication_factor: 0,
                        topic_configs: vec![("cleanup.policy".into(), "compact".into())],
                    }],
                    repartition_sink_topics: vec!["app-repartition".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    subtopology_id: "1".into(),
                    source_topic_regex: vec!["in-.*".into()],
                    repartition_source_topics: vec![TopicInfo {
                        name: "app-repartition".into(),
                        partitions: 4,
                        replication_factor: 3,
                        topic_configs: vec![],
                    }],
                    copartition_groups: vec![CopartitionGroup {
                        source_topics: vec![0],
                        source_topic_regex: vec![],
                        repartition_source_topics: vec![0, 1],
                    }],
                    ..Subtopology::default()
                },
            ],
        }
    }

    fn g() -> String {
        "g".to_string()
    }

    fn m1() -> String {
        "m1".to_string()
    }

    #[test]
    fn every_record_round_trips() {
        for value in [
            Some(metadata_defaults()),
            Some(metadata_tags()),
            Some(GroupMetadataValue {
                validated_topology_epoch: 0,
                stored_description_topology_epoch: -2,
                ..GroupMetadataValue::default()
            }),
            None,
        ] {
            round_trip(StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value,
            });
        }
        for value in [Some(member()), Some(member_no_endpoint()), None] {
            round_trip(StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value,
            });
        }
        for value in [
            Some(TargetAssignmentMetadataValue {
                assignment_epoch: 7,
                assignment_timestamp: 0,
            }),
            Some(TargetAssignmentMetadataValue {
                assignment_epoch: 7,
                assignment_timestamp: 1_700_000_000_000,
            }),
            None,
        ] {
            round_trip(StreamsGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value,
            });
        }
        for value in [
            Some(target_member()),
            Some(TargetAssignmentMemberValue::default()),
            // An empty subtopology entry is kept.
            Some(TargetAssignmentMemberValue {
                warmup_tasks: tasks(&[("2", &[])]),
                ..TargetAssignmentMemberValue::default()
            }),
            None,
        ] {
            round_trip(StreamsGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: m1(),
                value,
            });
        }
        for value in [
            Some(current()),
            Some(CurrentAssignmentValue::default()),
            Some(CurrentAssignmentValue {
                active_tasks: epochs(&[("0", &[]), ("10", &[(7, -1)])]),
                ..CurrentAssignmentValue::default()
            }),
            None,
        ] {
            round_trip(StreamsGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: m1(),
                value,
            });
        }
        for value in [Some(topology()), Some(TopologyValue::default()), None] {
            round_trip(StreamsGroupRecord::Topology {
                group_id: g(),
                value,
            });
        }
    }

    #[test]
    fn group_id_and_task_helpers() {
        let r = StreamsGroupRecord::CurrentAssignment {
            group_id: "app".into(),
            member_id: m1(),
            value: None,
        };
        assert_eq!(r.group_id(), "app");
        let c = current();
        assert_eq!(
            c.assigned_tasks(),
            Tasks {
                active: tasks(&[("0", &[0, 2])]),
                standby: tasks(&[("1", &[0])]),
                warmup: TaskMap::new(),
            }
        );
        assert_eq!(
            c.tasks_pending_revocation(),
            Tasks {
                active: tasks(&[("1", &[1])]),
                standby: TaskMap::new(),
                warmup: tasks(&[("0", &[3])]),
            }
        );
        let t: Tasks = target_member().into();
        assert_eq!(TargetAssignmentMemberValue::from(t), target_member());
    }

    /// Encodes `record` and checks its key and value against the hex Kafka wrote.
    fn assert_layout(record: StreamsGroupRecord, key: &str, value: Option<&str>) {
        let enc = record.encode();
        assert_eq!(enc.key.to_vec(), unhex(key), "key of {record:?}");
        assert_eq!(
            enc.value.as_deref().map(<[u8]>::to_vec),
            value.map(unhex),
            "value of {record:?}"
        );
        // And Kafka's bytes decode to the record.
        assert_eq!(
            StreamsGroupRecord::decode(&unhex(key), value.map(unhex).as_deref()),
            Ok(record)
        );
    }

    /// Bytes written by Apache Kafka 4.4.0's own generated classes
    /// (`org.apache.kafka.coordinator.group.generated.StreamsGroup*Key/Value`, serialized by
    /// `GroupCoordinatorRecordSerde.serializeKey/serializeValue`: the key's record type then the
    /// key, the value's version then the value) for the same sample data: ours are the same.
    #[test]
    fn layouts_match_kafka_4_4() {
        // 17: tagged fields at their defaults are not written.
        assert_layout(
            StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(metadata_defaults()),
            },
            "0011000167",
            Some("0000000000050123456789abcdef00"),
        );
        // 17: tags 0-3 set, in tag order.
        assert_layout(
            StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(metadata_tags()),
            },
            "0011000167",
            Some(
                "000000000005fffffffffffffffe040004000000030138031861636365707461626c652e7265636f\
                 766572792e6c616706313030303000156e756d2e7374616e6462792e7265706c6963617302310002\
                 04fffffffe030400000002",
            ),
        );
        // 17: an empty LastAssignmentConfigs is the default (not null): not written.
        assert_layout(
            StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(GroupMetadataValue {
                    epoch: 1,
                    ..GroupMetadataValue::default()
                }),
            },
            "0011000167",
            Some("000000000001000000000000000000"),
        );
        assert_layout(
            StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: None,
            },
            "0011000167",
            None,
        );
        // 19: a nullable struct (1, then the endpoint; port 65535 as a uint16).
        assert_layout(
            StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value: Some(member()),
            },
            "001300016700026d31",
            Some(
                "00000369310002630b2f3132372e302e302e31000493e00000000204702d31010a6c6f63616c686f\
                 7374ffff000303617a026100057261636b0372310000",
            ),
        );
        // 19: no endpoint (-1), the default rebalance timeout (-1).
        assert_layout(
            StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value: Some(member_no_endpoint()),
            },
            "001300016700026d31",
            Some("0000000272010268ffffffff000000000270ff0100"),
        );
        assert_layout(
            StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value: None,
            },
            "001300016700026d31",
            None,
        );
        // 20: with and without the timestamp (tag 0).
        assert_layout(
            StreamsGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value: Some(TargetAssignmentMetadataValue {
                    assignment_epoch: 7,
                    assignment_timestamp: 0,
                }),
            },
            "0014000167",
            Some("00000000000700"),
        );
        assert_layout(
            StreamsGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value: Some(TargetAssignmentMetadataValue {
                    assignment_epoch: 7,
                    assignment_timestamp: 1_700_000_000_000,
                }),
            },
            "0014000167",
            Some("0000000000070100080000018bcfe56800"),
        );
        // 21
        assert_layout(
            StreamsGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: m1(),
                value: Some(target_member()),
            },
            "001500016700026d31",
            Some("00000302300300000000000000020002310200000001000202300200000001000100"),
        );
        // 22: epochs (tag 0 of TaskIds) on the active tasks only, as Kafka's helpers write.
        assert_layout(
            StreamsGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: m1(),
                value: Some(current()),
            },
            "001600016700026d31",
            Some(
                "00000000000500000004010202300300000000000000020100090300000003000000050202310200\
                 0000000001020231020000000101000502000000040102023002000000030000",
            ),
        );
        // 23
        assert_layout(
            StreamsGroupRecord::Topology {
                group_id: g(),
                value: Some(topology()),
            },
            "0017000167",
            Some(
                "0000000000020302300206696e7075740102146170702d73746f72652d6368616e67656c6f670000\
                 00000000020f636c65616e75702e706f6c69637908636f6d70616374000002106170702d72657061\
                 72746974696f6e0101000231010206696e2d2e2a010102106170702d7265706172746974696f6e00\
                 0000040003010002020000010300000001000000",
            ),
        );
        assert_layout(
            StreamsGroupRecord::Topology {
                group_id: g(),
                value: None,
            },
            "0017000167",
            None,
        );
    }

    /// Values Kafka 4.4.0's generated classes wrote that ours would not: read as Kafka replays
    /// them.
    #[test]
    fn kafka_4_4_values_we_do_not_write_decode() {
        let current_key = unhex("001600016700026d31");
        let expected = |standby: TaskMap| {
            Ok(StreamsGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: m1(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: 5,
                    previous_member_epoch: 4,
                    state: 0,
                    // No epochs: the member epoch for every partition.
                    active_tasks: epochs(&[("0", &[(0, 5), (2, 5)])]),
                    standby_tasks: standby,
                    ..CurrentAssignmentValue::default()
                }),
            })
        };
        // Active tasks without AssignmentEpochs (as written before the field existed).
        assert_eq!(
            StreamsGroupRecord::decode(
                &current_key,
                Some(&unhex(
                    "000000000005000000040002023003000000000000000200010101010100"
                ))
            ),
            expected(TaskMap::new())
        );
        // AssignmentEpochs explicitly null, on active and standby tasks: tag 0 holding 0x00.
        assert_eq!(
            StreamsGroupRecord::decode(
                &current_key,
                Some(&unhex(
                    "0000000000050000000400020230030000000000000002010001000202310200000000010001\
                     000101010100"
                ))
            ),
            expected(tasks(&[("1", &[0])]))
        );
        // LastAssignmentConfigs explicitly null: tag 1 holding 0x00, read as empty.
        assert_eq!(
            StreamsGroupRecord::decode(
                &unhex("0011000167"),
                Some(&unhex("000000000001000000000000000001010100"))
            ),
            Ok(StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(GroupMetadataValue {
                    epoch: 1,
                    ..GroupMetadataValue::default()
                }),
            })
        );
    }

    #[test]
    fn epochs_of_another_length_give_the_member_epoch() {
        // Active task "0" with partitions [1, 2] and a single epoch (9).
        let value =
            unhex("00000000000800000007010202300300000001000000020100050200000009010101010100");
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("001600016700026d31"), Some(&value)),
            Ok(StreamsGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: m1(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: 8,
                    previous_member_epoch: 7,
                    state: 1,
                    active_tasks: epochs(&[("0", &[(1, 8), (2, 8)])]),
                    ..CurrentAssignmentValue::default()
                }),
            })
        );
    }

    /// Hand-written values with tagged fields their schemas do not define (Kafka 4.4.0's
    /// generated classes read these same bytes to the same values).
    #[test]
    fn unknown_tagged_fields_are_skipped() {
        // Message level: unknown tags 4 and 9 between and after the known ones.
        let value = unhex(
            "000000000005fffffffffffffffe\
             04\
             000400000003\
             0402abcd\
             0304fffffffe\
             0900",
        );
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("0011000167"), Some(&value)),
            Ok(StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(GroupMetadataValue {
                    epoch: 5,
                    metadata_hash: -2,
                    validated_topology_epoch: 3,
                    failed_description_topology_epoch: -2,
                    ..GroupMetadataValue::default()
                }),
            })
        );
        // Nested: a target TaskIds with a tag 0 (unknown in that schema) and a tag 7, and the
        // message with a tag 1.
        let value = unhex(
            "0000\
             02 0230 020000000a 02 0002ffff 0701ee\
             01 01\
             01 0103aabbcc"
                .replace(' ', "")
                .as_str(),
        );
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("001500016700026d31"), Some(&value)),
            Ok(StreamsGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: m1(),
                value: Some(TargetAssignmentMemberValue {
                    active_tasks: tasks(&[("0", &[10])]),
                    ..TargetAssignmentMemberValue::default()
                }),
            })
        );
        // Nested: an endpoint and a client tag with unknown tags.
        let value = unhex(
            "0000 00 00 0201 0201 ffffffff 00000000 0201\
             01 0268 0050 01 0502 0000\
             02 0261 0262 01 0100\
             00"
            .replace(' ', "")
            .as_str(),
        );
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("001300016700026d31"), Some(&value)),
            Ok(StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value: Some(MemberMetadataValue {
                    client_id: "\u{1}".into(),
                    client_host: "\u{1}".into(),
                    process_id: "\u{1}".into(),
                    user_endpoint: Some(Endpoint {
                        host: "h".into(),
                        port: 80,
                    }),
                    client_tags: configs(&[("a", "b")]),
                    ..MemberMetadataValue::default()
                }),
            })
        );
        // Nested: a topic info, a topic config, a copartition group and a subtopology.
        let mut t = TopologyValue {
            epoch: 1,
            subtopologies: vec![Subtopology {
                subtopology_id: "s".into(),
                state_changelog_topics: vec![TopicInfo {
                    name: "t".into(),
                    topic_configs: vec![("k".into(), "v".into())],
                    ..TopicInfo::default()
                }],
                copartition_groups: vec![CopartitionGroup::default()],
                ..Subtopology::default()
            }],
        };
        let value = unhex(
            "0000 00000001 02\
             0273 01 01\
             02 0274 00000000 0000 02 026b 0276 01 0100 01 0201aa\
             01 01 02 010101 01 030100 01 0400\
             00"
            .replace(' ', "")
            .as_str(),
        );
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("0017000167"), Some(&value)),
            Ok(StreamsGroupRecord::Topology {
                group_id: g(),
                value: Some(t.clone()),
            })
        );
        t.subtopologies.clear();
        assert_eq!(
            StreamsGroupRecord::decode(&unhex("0017000167"), Some(&unhex("00000000000101010400"))),
            Ok(StreamsGroupRecord::Topology {
                group_id: g(),
                value: Some(t),
            })
        );
    }

    #[test]
    fn other_keys_are_refused() {
        for kind in [0i16, 1, 2, 3, 8, 10, 15, 16, 18, 24, -1, i16::MAX] {
            let mut key = kind.to_be_bytes().to_vec();
            key.extend_from_slice(&[0, 1, b'g', 0, 1, b'm']);
            assert_eq!(is_streams_group_key(&key), (17..=23).contains(&kind));
            assert!(
                matches!(
                    StreamsGroupRecord::decode(&key, Some(&[0, 0, 0, 0, 0, 1, 0])),
                    Err(DecodeError::UnsupportedVersion { version, .. }) if version == kind
                ),
                "key {kind}"
            );
        }
        assert!(!is_streams_group_key(&[0]));
        assert!(!is_streams_group_key(&[]));
        // A value version other than 0.
        assert!(matches!(
            StreamsGroupRecord::decode(&unhex("0014000167"), Some(&unhex("00010000000700"))),
            Err(DecodeError::UnsupportedVersion { version: 1, .. })
        ));
    }

    #[test]
    fn truncated_records_are_errors() {
        for r in [
            StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(metadata_tags()),
            },
            StreamsGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m1(),
                value: Some(member()),
            },
            StreamsGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: m1(),
                value: Some(current()),
            },
            StreamsGroupRecord::Topology {
                group_id: g(),
                value: Some(topology()),
            },
        ] {
            let enc = r.encode();
            let value = enc.value.expect("a value");
            for len in 0..value.len() {
                assert!(
                    StreamsGroupRecord::decode(&enc.key, Some(&value[..len])).is_err(),
                    "{len} bytes of {r:?}"
                );
            }
            for len in 0..enc.key.len() {
                assert!(StreamsGroupRecord::decode(&enc.key[..len], None).is_err());
            }
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40),
                                 value in proptest::option::of(
                                     proptest::collection::vec(any::<u8>(), 0..120))) {
            let _ = StreamsGroupRecord::decode(&key, value.as_deref());
        }

        #[test]
        fn decoding_never_panics_after_a_valid_header(
            kind in 17i16..=23,
            value in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut key = kind.to_be_bytes().to_vec();
            key.extend_from_slice(&[0, 1, b'g', 0, 1, b'm']);
            let mut v = vec![0, 0];
            v.extend_from_slice(&value);
            let _ = StreamsGroupRecord::decode(&key, Some(&v));
        }

        #[test]
        fn assignments_round_trip(
            active in proptest::collection::btree_map("[0-9]{1,3}",
                proptest::collection::btree_map(0i32..100, any::<i32>(), 0..4), 0..4),
            standby in proptest::collection::btree_map("[0-9]{1,3}",
                proptest::collection::btree_set(0i32..100, 0..4), 0..4),
            epoch in any::<i32>(), state in any::<i8>()) {
            let r = StreamsGroupRecord::CurrentAssignment {
                group_id: g(), member_id: m1(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: epoch, previous_member_epoch: epoch.wrapping_sub(1), state,
                    active_tasks: active.clone(), standby_tasks: standby.clone(),
                    warmup_tasks: standby.clone(), active_tasks_pending_revocation: active,
                    standby_tasks_pending_revocation: standby.clone(),
                    warmup_tasks_pending_revocation: standby.clone() }),
            };
            let enc = r.encode();
            prop_assert_eq!(StreamsGroupRecord::decode(&enc.key, enc.value.as_deref()), Ok(r));
            let t = StreamsGroupRecord::TargetAssignmentMember {
                group_id: g(), member_id: m1(),
                value: Some(TargetAssignmentMemberValue { active_tasks: standby.clone(),
                    standby_tasks: standby.clone(), warmup_tasks: standby }),
            };
            let enc = t.encode();
            prop_assert_eq!(StreamsGroupRecord::decode(&enc.key, enc.value.as_deref()), Ok(t));
        }

        #[test]
        fn metadata_round_trips(epoch in any::<i32>(), hash in any::<i64>(),
                                validated in any::<i32>(), stored in any::<i32>(),
                                failed in any::<i32>(),
                                cfg in proptest::collection::btree_map("[a-z.]{0,12}",
                                    "[a-z0-9]{0,6}", 0..4),
                                timestamp in any::<i64>()) {
            let r = StreamsGroupRecord::GroupMetadata {
                group_id: g(),
                value: Some(GroupMetadataValue { epoch, metadata_hash: hash,
                    validated_topology_epoch: validated, last_assignment_configs: cfg,
                    stored_description_topology_epoch: stored,
                    failed_description_topology_epoch: failed }),
            };
            let enc = r.encode();
            prop_assert_eq!(StreamsGroupRecord::decode(&enc.key, enc.value.as_deref()), Ok(r));
            let t = StreamsGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value: Some(TargetAssignmentMetadataValue { assignment_epoch: epoch,
                    assignment_timestamp: timestamp }),
            };
            let enc = t.encode();
            prop_assert_eq!(StreamsGroupRecord::decode(&enc.key, enc.value.as_deref()), Ok(t));
        }
    }
}
