//! The metadata image: the cluster's state after some prefix of the metadata log, immutable.
//!
//! ```text
//!  metadata log ─► MetadataDelta::replay(record)… ─► apply ─► Arc<MetadataImage> (swapped in)
//!                                                              │ handlers read it
//!                                                              ▼
//!                     ClusterImage (brokers)  TopicsImage (topics, partitions, leaders)
//!                     ConfigurationsImage (topic config overrides, dynamic broker configs,
//!                                          group configs)
//!                     ClientQuotasImage (client quotas by user / client id)
//!                     ScramImage (users' SCRAM credentials by mechanism)
//!                     DelegationTokenImage (delegation tokens by id)
//! ```
//!
//! Kafka's `MetadataImage`: each part sits behind its own `Arc`, and each topic behind another,
//! so the next image shares every part and every topic the delta did not touch, and a reader
//! holding an `Arc<MetadataImage>` sees one consistent state however long it keeps it. Only a
//! [`MetadataDelta`](crate::MetadataDelta) builds images; [`MetadataImage::to_records`] writes an
//! image back as records (a snapshot) that replay to an equal image.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::acl::AclsImage;
use crate::delegation_token::DelegationTokenImage;
use crate::records::{
    AccessControlEntryRecord, BrokerId, ClientQuotaEntity, ClientQuotaRecord, ConfigRecord,
    ConfigResource, Endpoint, FeatureLevelRecord, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord, TopicIdPartition, TopicRecord,
    UserScramCredentialRecord, NO_LEADER,
};

/// Where an image stands in the metadata log: the offset (Raft log index) and Raft term
/// (epoch) of the last record applied. `-1` before any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetadataProvenance {
    pub offset: i64,
    pub epoch: i32,
}

impl MetadataProvenance {
    /// Before the first record.
    pub const EMPTY: MetadataProvenance = MetadataProvenance {
        offset: -1,
        epoch: -1,
    };
}

impl Default for MetadataProvenance {
    fn default() -> MetadataProvenance {
        MetadataProvenance::EMPTY
    }
}

/// A registered broker as the image holds it (Kafka's `BrokerRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    pub incarnation_id: Uuid,
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// KIP-1066: every log directory of the broker is cordoned, so new replicas go elsewhere
    /// (the broker's heartbeats say so once it has caught up; a new registration starts false).
    pub cordoned: bool,
    /// KIP-858: the ids of the broker's online log directories, sorted; empty when unknown (a
    /// broker or a `metadata.version` without directory assignment), and then every directory
    /// counts as online.
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistration {
    /// The endpoint of the listener named `listener`.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }

    pub(crate) fn from_record(r: &RegisterBrokerRecord) -> BrokerRegistration {
        BrokerRegistration {
            id: r.broker_id,
            incarnation_id: r.incarnation_id,
            epoch: r.broker_epoch,
            endpoints: r.endpoints.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            cordoned: false,
            log_dirs: sorted_dirs(&r.log_dirs),
        }
    }

    /// Whether log directory `dir` of this broker is online (Kafka's `DirectoryId.isOnline`):
    /// one it registered and has not reported failed, or any when it named none.
    pub fn has_online_dir(&self, dir: Uuid) -> bool {
        self.log_dirs.is_empty() || self.log_dirs.binary_search(&dir).is_ok()
    }

    /// The directory a new replica on this broker is assigned to at once (Kafka's
    /// `defaultDir`): its only online directory; `None` (unassigned, the broker places it)
    /// when it has several or named none.
    pub fn default_dir(&self) -> Option<Uuid> {
        match self.log_dirs.as_slice() {
            [only] if !is_reserved_dir(*only) => Some(*only),
            _ => None,
        }
    }

    pub(crate) fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            endpoints: self.endpoints.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            log_dirs: self.log_dirs.clone(),
        }
    }
}

/// Kafka's `DirectoryId.LOST`: in a registration, what stands for "no directory online" (an
/// empty list means "not known": every directory counts as online).
pub const DIRECTORY_LOST: Uuid = Uuid::from_u128(2);

/// Kafka's reserved directory ids (`DirectoryId.reserved`): the first 100, never a real
/// directory's.
pub fn is_reserved_dir(dir: Uuid) -> bool {
    dir.as_u128() < 100
}

/// Directory ids sorted and without repeats.
pub(crate) fn sorted_dirs(dirs: &[Uuid]) -> Vec<Uuid> {
    let mut dirs = dirs.to_vec();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

/// The registered brokers (Kafka's `ClusterImage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterImage {
    pub(crate) brokers: BTreeMap<BrokerId, BrokerRegistration>,
}

impl ClusterImage {
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// Registered and not fenced: may lead, follow and receive new replicas.
    pub fn is_unfenced(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The unfenced brokers' endpoints on `listener`, by id (what a Metadata response lists
    /// to a client that connected through that listener). Brokers without it are left out.
    pub fn live_endpoints<'a>(
        &'a self,
        listener: &'a str,
    ) -> impl Iterator<Item = (&'a BrokerRegistration, &'a Endpoint)> + 'a {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(move |b| b.endpoint(listener).map(|e| (b, e)))
    }

    /// The brokers that may receive new replicas, ascending.
    pub fn unfenced_broker_ids(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// The brokers new replicas may go to: unfenced, and not with every log directory
    /// cordoned (KIP-1066).
    pub fn placeable_broker_ids(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && !b.cordoned)
            .map(|b| b.id)
            .collect()
    }

    /// Whether `id` is registered with every log directory cordoned (KIP-1066).
    pub fn is_cordoned(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| b.cordoned)
    }
}

/// One partition's replicas, ISR, leader and epochs (Kafka's `PartitionRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// Assigned replicas in preference order: the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas: a subset of `replicas`, empty only when the partition has no leader
    /// and KIP-966's ELR keeps who may lead it (`eligible.leader.replicas.version` 1).
    pub isr: Vec<BrokerId>,
    /// [`NO_LEADER`] or a member of `isr`.
    pub leader: BrokerId,
    /// Bumped every time the leader is set; fences requests from older leaders.
    pub leader_epoch: i32,
    /// Bumped by every change; AlterPartition quotes it.
    pub partition_epoch: i32,
    /// During a reassignment, the replicas being added: they catch up as followers and
    /// cannot lead until they are in the ISR. Empty otherwise.
    pub adding_replicas: Vec<BrokerId>,
    /// During a reassignment, the replicas being removed once every added one is in the ISR.
    pub removing_replicas: Vec<BrokerId>,
    /// KIP-966's eligible leader replicas: replicas that left the ISR while it was below
    /// `min.insync.replicas`, so they hold every committed record (the high watermark does
    /// not move under min ISR); one may lead when the ISR is empty. Disjoint from the ISR.
    pub elr: Vec<BrokerId>,
    /// KIP-966: the last leader, kept once the ISR and the ELR are both empty, so it can lead
    /// again when it is back.
    pub last_known_elr: Vec<BrokerId>,
    /// KIP-858: which log directory of its broker holds each replica, for the replicas whose
    /// broker has said so (the others are unassigned). Only replicas are keys.
    pub directories: BTreeMap<BrokerId, Uuid>,
}

impl PartitionRegistration {
    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// The first assigned replica.
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    pub fn is_replica(&self, broker: BrokerId) -> bool {
        self.replicas.contains(&broker)
    }

    pub fn is_in_isr(&self, broker: BrokerId) -> bool {
        self.isr.contains(&broker)
    }

    /// A reassignment is in progress (Kafka's ListPartitionReassignments lists it).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas before the reassignment in progress (all replicas if none), in the order
    /// of `replicas`, which puts the target first (as Kafka does; a cancelled reassignment
    /// can so come back with another preferred leader).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.adding_replicas.contains(b))
            .collect()
    }

    /// The replicas once the reassignment in progress completes (all replicas if none).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing_replicas.contains(b))
            .collect()
    }

    pub(crate) fn from_record(r: &PartitionRecord) -> PartitionRegistration {
        PartitionRegistration {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            adding_replicas: r.adding_replicas.clone(),
            removing_replicas: r.removing_replicas.clone(),
            elr: r.eligible_leader_replicas.clone(),
            last_known_elr: r.last_known_elr.clone(),
            directories: r
                .directories
                .iter()
                .filter(|d| r.replicas.contains(&d.broker))
                .map(|d| (d.broker, d.directory))
                .collect(),
        }
    }

    /// The log directory `broker`'s replica is assigned to, if any.
    pub fn directory(&self, broker: BrokerId) -> Option<Uuid> {
        self.directories.get(&broker).copied()
    }

    pub(crate) fn to_record(&self, tp: TopicIdPartition) -> PartitionRecord {
        PartitionRecord {
            topic_id: tp.topic_id,
            partition_id: tp.partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
            eligible_leader_replicas: self.elr.clone(),
            last_known_elr: self.last_known_elr.clone(),
            directories: self
                .directories
                .iter()
                .map(|(&broker, &directory)| crate::records::ReplicaDirectory { broker, directory })
                .collect(),
        }
    }

    /// This registration with `change` applied (Kafka's `PartitionRegistration.merge`): the
    /// partition epoch always goes up by one, the leader epoch when the change sets a leader.
    /// `None` when an epoch would overflow. The result is not validated here.
    pub(crate) fn merge(&self, change: &PartitionChangeRecord) -> Option<PartitionRegistration> {
        let (leader, leader_epoch) = match change.leader {
            Some(leader) => (leader, self.leader_epoch.checked_add(1)?),
            None => (self.leader, self.leader_epoch),
        };
        let replicas = change
            .replicas
            .clone()
            .unwrap_or_else(|| self.replicas.clone());
        let mut directories = self.directories.clone();
        for d in change.directories.iter().flatten() {
            directories.insert(d.broker, d.directory);
        }
        directories.retain(|b, _| replicas.contains(b));
        let partition_epoch = if change.only_directories() {
            self.partition_epoch
        } else {
            self.partition_epoch.checked_add(1)?
        };
        Some(PartitionRegistration {
            replicas,
            isr: change.isr.clone().unwrap_or_else(|| self.isr.clone()),
            leader,
            leader_epoch,
            partition_epoch,
            adding_replicas: change
                .adding_replicas
                .clone()
                .unwrap_or_else(|| self.adding_replicas.clone()),
            removing_replicas: change
                .removing_replicas
                .clone()
                .unwrap_or_else(|| self.removing_replicas.clone()),
            elr: change
                .eligible_leader_replicas
                .clone()
                .unwrap_or_else(|| self.elr.clone()),
            last_known_elr: change
                .last_known_elr
                .clone()
                .unwrap_or_else(|| self.last_known_elr.clone()),
            directories,
        })
    }

    /// What is wrong with this registration, if anything.
    pub(crate) fn invalid_reason(&self) -> Option<&'static str> {
        if self.replicas.is_empty() {
            return Some("no replicas");
        }
        if self.replicas.iter().any(|&r| r < 0) {
            return Some("negative replica id");
        }
        if has_duplicates(&self.replicas) {
            return Some("duplicate replica");
        }
        if self.isr.is_empty() && self.leader != NO_LEADER {
            return Some("empty ISR with a leader");
        }
        if has_duplicates(&self.isr) {
            return Some("duplicate ISR member");
        }
        if self.isr.iter().any(|b| !self.replicas.contains(b)) {
            return Some("ISR member that is not a replica");
        }
        if self.leader != NO_LEADER && !self.isr.contains(&self.leader) {
            return Some("leader outside the ISR");
        }
        let outside = |ids: &[BrokerId]| ids.iter().any(|b| !self.replicas.contains(b));
        if outside(&self.adding_replicas) || outside(&self.removing_replicas) {
            return Some("adding or removing replica that is not a replica");
        }
        if has_duplicates(&self.adding_replicas) || has_duplicates(&self.removing_replicas) {
            return Some("duplicate adding or removing replica");
        }
        if self
            .adding_replicas
            .iter()
            .any(|b| self.removing_replicas.contains(b))
        {
            return Some("replica both added and removed");
        }
        if self.target_replicas().is_empty() {
            return Some("every replica is being removed");
        }
        if self.leader_epoch < 0 || self.partition_epoch < 0 {
            return Some("negative epoch");
        }
        if has_duplicates(&self.elr) || has_duplicates(&self.last_known_elr) {
            return Some("duplicate ELR member");
        }
        if self.elr.iter().any(|b| self.isr.contains(b)) {
            return Some("ELR member in the ISR");
        }
        None
    }
}

fn has_duplicates(ids: &[BrokerId]) -> bool {
    let mut seen = BTreeSet::new();
    ids.iter().any(|id| !seen.insert(*id))
}

/// One topic and its partitions (Kafka's `TopicImage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub(crate) partitions: BTreeMap<i32, PartitionRegistration>,
}

impl TopicImage {
    pub fn partition(&self, partition: i32) -> Option<&PartitionRegistration> {
        self.partitions.get(&partition)
    }

    /// Partitions by id, ascending.
    pub fn partitions(&self) -> impl Iterator<Item = (i32, &PartitionRegistration)> {
        self.partitions.iter().map(|(id, p)| (*id, p))
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

/// Every topic, by id and by name, with each broker's leaderships (Kafka's `TopicsImage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsImage {
    pub(crate) by_id: BTreeMap<Uuid, Arc<TopicImage>>,
    pub(crate) by_name: BTreeMap<String, Uuid>,
    /// The partitions each broker leads. Kept by the delta as partitions change, so a lookup
    /// costs nothing and a change copies only the sets of the brokers involved.
    pub(crate) leaders: BTreeMap<BrokerId, Arc<BTreeSet<TopicIdPartition>>>,
}

impl TopicsImage {
    pub fn topic(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.by_id.get(&id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    pub fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.by_name.get(name).copied()
    }

    /// Topics by id.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.by_id.values()
    }

    pub fn partition(&self, tp: TopicIdPartition) -> Option<&PartitionRegistration> {
        self.by_id.get(&tp.topic_id)?.partitions.get(&tp.partition)
    }

    /// The partitions `broker` leads, in (topic id, partition) order.
    pub fn leaders_of(&self, broker: BrokerId) -> impl Iterator<Item = TopicIdPartition> + '_ {
        self.leaders
            .get(&broker)
            .into_iter()
            .flat_map(|set| set.iter().copied())
    }

    /// How many partitions `broker` leads.
    pub fn leader_count(&self, broker: BrokerId) -> usize {
        self.leaders.get(&broker).map_or(0, |set| set.len())
    }

    /// The partitions with a reassignment in progress.
    pub fn reassigning_partitions(
        &self,
    ) -> impl Iterator<Item = (TopicIdPartition, &PartitionRegistration)> + '_ {
        self.all_partitions().filter(|(_, p)| p.is_reassigning())
    }

    /// Every partition with its registration, in (topic id, partition) order.
    pub fn all_partitions(
        &self,
    ) -> impl Iterator<Item = (TopicIdPartition, &PartitionRegistration)> + '_ {
        self.by_id.iter().flat_map(|(topic_id, topic)| {
            topic.partitions.iter().map(move |(p, reg)| {
                (
                    TopicIdPartition {
                        topic_id: *topic_id,
                        partition: *p,
                    },
                    reg,
                )
            })
        })
    }
}

/// Topic config overrides by topic name, and dynamic broker configs by broker resource name
/// (Kafka's `ConfigurationsImage`). Only what was set explicitly: defaults come from the
/// broker's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationsImage {
    pub(crate) topics: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// `""`: the cluster-wide default of every broker; `"<id>"`: one broker's.
    pub(crate) brokers: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// Group configs (Kafka's `GROUP` config resources), by group id.
    pub(crate) groups: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// Client metrics subscriptions (Kafka's `CLIENT_METRICS` config resources), by name.
    pub(crate) client_metrics: BTreeMap<String, Arc<BTreeMap<String, String>>>,
}

impl ConfigurationsImage {
    /// The overrides of `topic` (empty if none).
    pub fn topic_configs(&self, topic: &str) -> impl Iterator<Item = (&str, &str)> {
        self.topics
            .get(topic)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn topic_config(&self, topic: &str, name: &str) -> Option<&str> {
        self.topics.get(topic)?.get(name).map(String::as_str)
    }

    /// The dynamic configs of a broker resource: `""` for the cluster-wide default, the
    /// broker's id for its own (empty if none).
    pub fn broker_configs(&self, resource: &str) -> impl Iterator<Item = (&str, &str)> {
        self.brokers
            .get(resource)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn broker_config(&self, resource: &str, name: &str) -> Option<&str> {
        self.brokers.get(resource)?.get(name).map(String::as_str)
    }

    /// Every broker resource with dynamic configs.
    pub fn broker_resources(&self) -> impl Iterator<Item = &str> {
        self.brokers.keys().map(String::as_str)
    }

    /// The configs set on group `group` (empty if none).
    pub fn group_configs(&self, group: &str) -> impl Iterator<Item = (&str, &str)> {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn group_config(&self, group: &str, name: &str) -> Option<&str> {
        self.groups.get(group)?.get(name).map(String::as_str)
    }

    /// Every group with configs set, in id order.
    pub fn group_resources(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The configs of client metrics subscription `name` (empty if it does not exist).
    pub fn client_metrics_configs(&self, name: &str) -> impl Iterator<Item = (&str, &str)> {
        self.client_metrics
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn client_metrics_config(&self, name: &str, key: &str) -> Option<&str> {
        self.client_metrics.get(name)?.get(key).map(String::as_str)
    }

    /// Every client metrics subscription (one with a config set), in name order.
    pub fn client_metrics_resources(&self) -> impl Iterator<Item = &str> {
        self.client_metrics.keys().map(String::as_str)
    }
}

/// Client quotas by entity (Kafka's `ClientQuotasImage`): what was set explicitly, each key
/// with its value. Values are finite and not negative (replay refuses others).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientQuotasImage {
    pub(crate) entities: BTreeMap<ClientQuotaEntity, Arc<BTreeMap<String, f64>>>,
}

impl Eq for ClientQuotasImage {}

impl ClientQuotasImage {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The quotas of exactly this entity (`None` if it has none).
    pub fn entity(&self, entity: &ClientQuotaEntity) -> Option<&BTreeMap<String, f64>> {
        self.entities.get(entity).map(|m| &**m)
    }

    /// One quota of exactly this entity.
    pub fn quota(&self, entity: &ClientQuotaEntity, key: &str) -> Option<f64> {
        self.entities.get(entity)?.get(key).copied()
    }

    /// Every entity with quotas, in entity order.
    pub fn entities(&self) -> impl Iterator<Item = (&ClientQuotaEntity, &BTreeMap<String, f64>)> {
        self.entities.iter().map(|(e, m)| (e, &**m))
    }
}

/// One user's SCRAM credential for one mechanism, as the image holds it (Kafka's
/// `ScramCredentialData`): what a server needs to check a client's proof (RFC 5802). `Debug`
/// hides the salt and keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &"[hidden]")
            .field("stored_key", &"[hidden]")
            .field("server_key", &"[hidden]")
            .field("iterations", &self.iterations)
            .finish()
    }
}

impl ScramCredential {
    pub(crate) fn from_record(r: &UserScramCredentialRecord) -> ScramCredential {
        ScramCredential {
            salt: r.salt.clone(),
            stored_key: r.stored_key.clone(),
            server_key: r.server_key.clone(),
            iterations: r.iterations,
        }
    }

    pub(crate) fn to_record(&self, name: &str, mechanism: i8) -> UserScramCredentialRecord {
        UserScramCredentialRecord {
            name: name.to_string(),
            mechanism,
            salt: self.salt.clone(),
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
            iterations: self.iterations,
        }
    }
}

/// Users' SCRAM credentials (Kafka's `ScramImage`, KIP-554): per user, at most one credential
/// per mechanism (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512). A user without any is not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramImage {
    pub(crate) users: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
}

impl ScramImage {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// `user`'s credential for `mechanism` (Kafka's type byte), if it has one.
    pub fn credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    /// Every user with at least one credential, by name.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// What DescribeUserScramCredentials shows of `user`: each mechanism it has a credential
    /// for, with its iterations, by mechanism (empty if none). Never the salt or keys.
    pub fn credential_infos(&self, user: &str) -> Vec<(i8, i32)> {
        self.users
            .get(user)
            .into_iter()
            .flat_map(|m| m.iter().map(|(mechanism, c)| (*mechanism, c.iterations)))
            .collect()
    }
}

/// The whole cluster state at one point of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub(crate) provenance: MetadataProvenance,
    pub(crate) cluster: Arc<ClusterImage>,
    pub(crate) topics: Arc<TopicsImage>,
    pub(crate) configs: Arc<ConfigurationsImage>,
    pub(crate) client_quotas: Arc<ClientQuotasImage>,
    pub(crate) scram: Arc<ScramImage>,
    pub(crate) acls: Arc<AclsImage>,
    /// Delegation tokens (KIP-48, KIP-900).
    pub(crate) delegation_tokens: Arc<DelegationTokenImage>,
    /// The first producer id no broker has been given (Kafka's `ProducerIdsImage`): the next
    /// block starts here. 0 before any block.
    pub(crate) next_producer_id: i64,
    /// Cluster features (Kafka's `FeaturesImage`): name → level, from `FeatureLevelRecord`s.
    /// The ones above level 0 are finalized, and ApiVersions advertises them; a level 0 is a
    /// feature disabled (Kafka removes it; gregor keeps that it was set, see
    /// [`MetadataImage::feature_recorded`]).
    pub(crate) features: Arc<BTreeMap<String, i16>>,
}

impl MetadataImage {
    /// The image before the first record.
    pub fn empty() -> MetadataImage {
        MetadataImage::default()
    }

    /// The last record this image includes ([`MetadataProvenance::EMPTY`] for the empty image).
    pub fn provenance(&self) -> MetadataProvenance {
        self.provenance
    }

    pub fn is_empty(&self) -> bool {
        self.cluster.brokers.is_empty()
            && self.topics.by_id.is_empty()
            && self.configs.topics.is_empty()
            && self.configs.brokers.is_empty()
            && self.client_quotas.is_empty()
            && self.scram.is_empty()
            && self.acls.is_empty()
            && self.delegation_tokens.is_empty()
            && self.next_producer_id == 0
            && self.features.is_empty()
    }

    /// The finalized level of feature `name`, if the cluster has one (level 0 is none).
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied().filter(|&l| l > 0)
    }

    /// Whether the log has set feature `name` at all, level 0 (disabled) included: a
    /// controller finalizes a new cluster's default level only for a feature never set, so
    /// one an operator disabled stays so.
    pub fn feature_recorded(&self, name: &str) -> bool {
        self.features.contains_key(name)
    }

    /// Every finalized feature and its level, by name.
    pub fn finalized_features(&self) -> impl Iterator<Item = (&str, i16)> {
        self.features
            .iter()
            .filter(|(_, l)| **l > 0)
            .map(|(n, l)| (n.as_str(), *l))
    }

    /// The first producer id not yet handed out in a block (0 before any).
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    pub fn cluster(&self) -> &ClusterImage {
        &self.cluster
    }

    /// KIP-858: whether `broker`'s replica of `tp` is assigned to a log directory the broker
    /// does not have online (it failed, or was missing when the broker registered). Such a
    /// replica may not lead or join an ISR.
    pub fn replica_dir_offline(&self, broker: BrokerId, tp: TopicIdPartition) -> bool {
        let Some(dir) = self.topics.partition(tp).and_then(|p| p.directory(broker)) else {
            return false;
        };
        self.cluster
            .broker(broker)
            .is_some_and(|b| !b.has_online_dir(dir))
    }

    pub fn topics(&self) -> &TopicsImage {
        &self.topics
    }

    pub fn configs(&self) -> &ConfigurationsImage {
        &self.configs
    }

    /// The client quotas. An `Arc` so a reader can tell cheaply whether they changed.
    pub fn client_quotas(&self) -> &Arc<ClientQuotasImage> {
        &self.client_quotas
    }

    /// Users' SCRAM credentials. An `Arc` so a reader can tell cheaply whether they changed.
    pub fn scram(&self) -> &Arc<ScramImage> {
        &self.scram
    }

    /// The delegation tokens. An `Arc` so a reader can tell cheaply whether they changed.
    pub fn delegation_tokens(&self) -> &Arc<DelegationTokenImage> {
        &self.delegation_tokens
    }

    /// The ACLs. An `Arc` so a reader can tell cheaply whether they changed.
    pub fn acls(&self) -> &Arc<AclsImage> {
        &self.acls
    }

    /// The records that rebuild this image from the empty one, in an order replay accepts:
    /// brokers, dynamic broker configs, group configs, client metrics subscriptions, client quotas, SCRAM credentials, ACLs, then each topic
    /// followed by its configs and partitions. A snapshot holds these
    /// (see [`snapshot`](crate::snapshot)).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for broker in self.cluster.brokers.values() {
            records.push(MetadataRecord::RegisterBroker(broker.to_record()));
            if broker.cordoned {
                records.push(MetadataRecord::BrokerRegistrationChange(
                    crate::records::BrokerRegistrationChangeRecord {
                        broker_id: broker.id,
                        broker_epoch: broker.epoch,
                        cordoned: true,
                        log_dirs: None,
                    },
                ));
            }
        }
        for (resource, configs) in &self.configs.brokers {
            for (name, value) in configs.iter() {
                records.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Broker(resource.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for (group, configs) in &self.configs.groups {
            for (name, value) in configs.iter() {
                records.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Group(group.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for (subscription, configs) in &self.configs.client_metrics {
            for (name, value) in configs.iter() {
                records.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::ClientMetrics(subscription.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for (entity, quotas) in &self.client_quotas.entities {
            for (key, value) in quotas.iter() {
                records.push(MetadataRecord::ClientQuota(ClientQuotaRecord {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: *value,
                    remove: false,
                }));
            }
        }
        for (user, credentials) in &self.scram.users {
            for (mechanism, credential) in credentials {
                records.push(MetadataRecord::UserScramCredential(
                    credential.to_record(user, *mechanism),
                ));
            }
        }
        for (id, acl) in self.acls.iter() {
            records.push(MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id: *id,
                    acl: acl.clone(),
                },
            ));
        }
        for token in self.delegation_tokens.tokens() {
            records.push(MetadataRecord::DelegationToken(token.clone()));
        }
        for topic in self.topics.by_id.values() {
            records.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id,
            }));
            for (name, value) in self.configs.topic_configs(&topic.name) {
                records.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Topic(topic.name.clone()),
                    name: name.to_string(),
                    value: Some(value.to_string()),
                }));
            }
            for (partition, reg) in &topic.partitions {
                records.push(MetadataRecord::Partition(reg.to_record(TopicIdPartition {
                    topic_id: topic.id,
                    partition: *partition,
                })));
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        for (name, level) in self.features.iter() {
            records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.clone(),
                feature_level: *level,
            }));
        }
        records
    }
}
