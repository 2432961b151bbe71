//! The metadata delta: records replayed in log order on top of an image, giving the next image.
//!
//! Kafka's `MetadataDelta`. Every broker (and the controller) runs the same committed records
//! through a delta and [`apply`](MetadataDelta::apply)s it, so all of them compute the same
//! image, epochs included. A record that does not fit (a change to an unknown partition, a
//! topic name taken twice, a stale broker epoch) is a [`ReplayError`] and leaves the delta as it
//! was, so the controller can replay the records it is about to propose to check them.
//!
//! [`MetadataDelta::local_changes`] tells one broker what the delta means for its replicas
//! (become leader, become follower, stop and delete), which is what the replica manager acts on.
//!
//! The delta copies a part of the image (cluster, topics, configs) or a topic the first time a
//! record touches it and shares everything else with the image it started from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::acl::AclsImage;
use crate::delegation_token::DelegationTokenImage;
use crate::error::ReplayError;
use crate::image::{
    BrokerRegistration, ClientQuotasImage, ClusterImage, ConfigurationsImage, MetadataImage,
    MetadataProvenance, PartitionRegistration, ScramCredential, ScramImage, TopicImage,
    TopicsImage,
};
use crate::records::{
    AccessControlEntryRecord, BrokerId, ClientQuotaRecord, ConfigRecord, ConfigResource,
    MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
    RemoveUserScramCredentialRecord, TopicIdPartition, TopicRecord, UserScramCredentialRecord,
    NO_LEADER,
};
use crate::scram::ScramMechanism;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why `name` cannot be a topic name (Kafka's `Topic.validate`), or `None` if it can.
pub fn topic_name_invalid_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Some("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    None
}

/// Records applied on top of an image, not yet an image.
#[derive(Debug, Clone)]
pub struct MetadataDelta {
    base: Arc<MetadataImage>,
    cluster: Arc<ClusterImage>,
    topics: Arc<TopicsImage>,
    configs: Arc<ConfigurationsImage>,
    client_quotas: Arc<ClientQuotasImage>,
    scram: Arc<ScramImage>,
    acls: Arc<AclsImage>,
    delegation_tokens: Arc<DelegationTokenImage>,
    /// Partitions created or changed by this delta (whether or not their topic survives it).
    changed_partitions: BTreeSet<TopicIdPartition>,
    /// Topics of the base image that this delta removed.
    removed_topics: BTreeSet<Uuid>,
    next_producer_id: i64,
    features: Arc<BTreeMap<String, i16>>,
    records: usize,
}

impl MetadataDelta {
    /// An empty delta on top of `base`.
    pub fn new(base: Arc<MetadataImage>) -> MetadataDelta {
        MetadataDelta {
            cluster: base.cluster.clone(),
            topics: base.topics.clone(),
            configs: base.configs.clone(),
            client_quotas: base.client_quotas.clone(),
            scram: base.scram.clone(),
            acls: base.acls.clone(),
            delegation_tokens: base.delegation_tokens.clone(),
            next_producer_id: base.next_producer_id,
            features: base.features.clone(),
            base,
            changed_partitions: BTreeSet::new(),
            removed_topics: BTreeSet::new(),
            records: 0,
        }
    }

    /// The image the delta started from.
    pub fn base(&self) -> &Arc<MetadataImage> {
        &self.base
    }

    /// How many records were replayed.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// The brokers as of the last replayed record.
    pub fn cluster(&self) -> &ClusterImage {
        &self.cluster
    }

    /// The topics as of the last replayed record.
    pub fn topics(&self) -> &TopicsImage {
        &self.topics
    }

    /// The configs as of the last replayed record.
    pub fn configs(&self) -> &ConfigurationsImage {
        &self.configs
    }

    /// The client quotas as of the last replayed record.
    pub fn client_quotas(&self) -> &ClientQuotasImage {
        &self.client_quotas
    }

    /// Users' SCRAM credentials as of the last replayed record.
    pub fn scram(&self) -> &ScramImage {
        &self.scram
    }

    /// The ACLs as of the last replayed record.
    pub fn acls(&self) -> &AclsImage {
        &self.acls
    }

    /// The first producer id not yet handed out, as of the last replayed record.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Replays one record. On error nothing changed.
    pub fn replay(&mut self, record: &MetadataRecord) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::RegisterBroker(r) => self.register_broker(r)?,
            MetadataRecord::UnregisterBroker(r) => {
                self.check_broker_epoch(r.broker_id, r.broker_epoch)?;
                Arc::make_mut(&mut self.cluster)
                    .brokers
                    .remove(&r.broker_id);
            }
            MetadataRecord::FenceBroker(r) => {
                self.check_broker_epoch(r.broker_id, r.broker_epoch)?;
                self.set_fenced(r.broker_id, true);
            }
            MetadataRecord::UnfenceBroker(r) => {
                self.check_broker_epoch(r.broker_id, r.broker_epoch)?;
                self.set_fenced(r.broker_id, false);
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                self.check_broker_epoch(r.broker_id, r.broker_epoch)?;
                if let Some(b) = Arc::make_mut(&mut self.cluster)
                    .brokers
                    .get_mut(&r.broker_id)
                {
                    b.cordoned = r.cordoned;
                    if let Some(dirs) = &r.log_dirs {
                        b.log_dirs = crate::image::sorted_dirs(dirs);
                    }
                }
            }
            MetadataRecord::Topic(r) => self.create_topic(r)?,
            MetadataRecord::Partition(r) => self.create_partition(r)?,
            MetadataRecord::PartitionChange(r) => self.change_partition(r)?,
            MetadataRecord::Config(r) => self.set_config(r)?,
            MetadataRecord::ClientQuota(r) => self.set_client_quota(r)?,
            MetadataRecord::UserScramCredential(r) => self.set_scram_credential(r)?,
            MetadataRecord::RemoveUserScramCredential(r) => self.remove_scram_credential(r)?,
            MetadataRecord::AccessControlEntry(r) => self.add_acl(r)?,
            MetadataRecord::RemoveAccessControlEntry(r) => {
                if !self.acls.contains_id(&r.id) {
                    return Err(ReplayError::UnknownAcl(r.id));
                }
                Arc::make_mut(&mut self.acls).remove(&r.id);
            }
            MetadataRecord::DelegationToken(r) => {
                // Kafka's `DelegationTokenControlManager.replay`: the record is the token's
                // whole information, new or replacing the one of its id.
                if r.token_id.is_empty() {
                    return Err(ReplayError::InvalidDelegationToken("empty token id"));
                }
                if r.owner.is_empty() {
                    return Err(ReplayError::InvalidDelegationToken("empty owner"));
                }
                Arc::make_mut(&mut self.delegation_tokens)
                    .tokens
                    .insert(r.token_id.clone(), r.clone());
            }
            MetadataRecord::RemoveDelegationToken(r) => {
                if self.delegation_tokens.get(&r.token_id).is_none() {
                    return Err(ReplayError::UnknownDelegationToken(r.token_id.clone()));
                }
                Arc::make_mut(&mut self.delegation_tokens)
                    .tokens
                    .remove(&r.token_id);
            }
            MetadataRecord::RemoveTopic(r) => self.remove_topic(r.topic_id)?,
            MetadataRecord::ProducerIds(r) => {
                // The mark only moves up: a block handed out is never handed out again.
                if r.next_producer_id <= self.next_producer_id {
                    return Err(ReplayError::StaleProducerIds {
                        record: r.next_producer_id,
                        current: self.next_producer_id,
                    });
                }
                self.next_producer_id = r.next_producer_id;
            }
            MetadataRecord::FeatureLevel(r) => {
                // Level 0 takes the feature out of the finalized ones, and stays as a
                // record that the feature was set (`MetadataImage::feature_recorded`).
                Arc::make_mut(&mut self.features).insert(r.name.clone(), r.feature_level);
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Replays records in order, stopping at the first that does not fit (the ones before it
    /// stay replayed).
    pub fn replay_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<(), ReplayError> {
        records.into_iter().try_for_each(|r| self.replay(r))
    }

    /// The image after every replayed record, which ends at `provenance`.
    pub fn apply(self, provenance: MetadataProvenance) -> MetadataImage {
        MetadataImage {
            provenance,
            cluster: self.cluster,
            topics: self.topics,
            configs: self.configs,
            client_quotas: self.client_quotas,
            scram: self.scram,
            acls: self.acls,
            delegation_tokens: self.delegation_tokens,
            next_producer_id: self.next_producer_id,
            features: self.features,
        }
    }

    /// Kafka's `AclControlManager.replay`: an ACL with a new id and a valid shape (an ACL the
    /// controller would not have created is refused, so a hand-made log cannot plant one).
    fn add_acl(&mut self, r: &AccessControlEntryRecord) -> Result<(), ReplayError> {
        if r.id.is_nil() || self.acls.contains_id(&r.id) {
            return Err(ReplayError::DuplicateAcl(r.id));
        }
        crate::acl::validate_new_acl(&r.acl).map_err(ReplayError::InvalidAcl)?;
        Arc::make_mut(&mut self.acls).insert(r.id, r.acl.clone());
        Ok(())
    }

    fn register_broker(&mut self, r: &RegisterBrokerRecord) -> Result<(), ReplayError> {
        if r.broker_id < 0 {
            return Err(ReplayError::InvalidBrokerId(r.broker_id));
        }
        if let Some(current) = self.cluster.brokers.get(&r.broker_id) {
            // A re-registration (a restarted process) must come with a newer epoch, or
            // fence records quoting the old one would hit the new process.
            if r.broker_epoch <= current.epoch {
                return Err(ReplayError::StaleBrokerEpoch {
                    broker_id: r.broker_id,
                    record_epoch: r.broker_epoch,
                    current_epoch: current.epoch,
                });
            }
        }
        Arc::make_mut(&mut self.cluster)
            .brokers
            .insert(r.broker_id, BrokerRegistration::from_record(r));
        Ok(())
    }

    fn check_broker_epoch(&self, broker_id: BrokerId, epoch: i64) -> Result<(), ReplayError> {
        let current = self
            .cluster
            .brokers
            .get(&broker_id)
            .ok_or(ReplayError::UnknownBroker(broker_id))?;
        if current.epoch != epoch {
            return Err(ReplayError::StaleBrokerEpoch {
                broker_id,
                record_epoch: epoch,
                current_epoch: current.epoch,
            });
        }
        Ok(())
    }

    fn set_fenced(&mut self, broker_id: BrokerId, fenced: bool) {
        if let Some(b) = Arc::make_mut(&mut self.cluster).brokers.get_mut(&broker_id) {
            b.fenced = fenced;
        }
    }

    fn create_topic(&mut self, r: &TopicRecord) -> Result<(), ReplayError> {
        if let Some(reason) = topic_name_invalid_reason(&r.name) {
            return Err(ReplayError::InvalidTopicName {
                name: r.name.clone(),
                reason,
            });
        }
        if r.topic_id.is_nil() {
            return Err(ReplayError::InvalidTopicId);
        }
        if self.topics.by_name.contains_key(&r.name) {
            return Err(ReplayError::DuplicateTopicName(r.name.clone()));
        }
        if self.topics.by_id.contains_key(&r.topic_id) {
            return Err(ReplayError::DuplicateTopicId(r.topic_id));
        }
        let topics = Arc::make_mut(&mut self.topics);
        topics.by_name.insert(r.name.clone(), r.topic_id);
        topics.by_id.insert(
            r.topic_id,
            Arc::new(TopicImage {
                name: r.name.clone(),
                id: r.topic_id,
                partitions: BTreeMap::new(),
            }),
        );
        Ok(())
    }

    fn create_partition(&mut self, r: &PartitionRecord) -> Result<(), ReplayError> {
        let tp = TopicIdPartition {
            topic_id: r.topic_id,
            partition: r.partition_id,
        };
        let topic = self
            .topics
            .by_id
            .get(&r.topic_id)
            .ok_or(ReplayError::UnknownTopicId(r.topic_id))?;
        if r.partition_id < 0 {
            return Err(ReplayError::InvalidPartition {
                partition: tp,
                reason: "negative partition id",
            });
        }
        if topic.partitions.contains_key(&r.partition_id) {
            return Err(ReplayError::DuplicatePartition(tp));
        }
        let reg = PartitionRegistration::from_record(r);
        if let Some(reason) = reg.invalid_reason() {
            return Err(ReplayError::InvalidPartition {
                partition: tp,
                reason,
            });
        }
        self.put_partition(tp, NO_LEADER, reg);
        Ok(())
    }

    fn change_partition(&mut self, r: &PartitionChangeRecord) -> Result<(), ReplayError> {
        let tp = TopicIdPartition {
            topic_id: r.topic_id,
            partition: r.partition_id,
        };
        let current = self
            .topics
            .partition(tp)
            .ok_or(ReplayError::UnknownPartition(tp))?;
        let next = current.merge(r).ok_or(ReplayError::InvalidPartition {
            partition: tp,
            reason: "epoch overflow",
        })?;
        if let Some(reason) = next.invalid_reason() {
            return Err(ReplayError::InvalidPartition {
                partition: tp,
                reason,
            });
        }
        let old_leader = current.leader;
        if r.only_directories() {
            // Where a replica's files are changes nothing a broker serves: no local change.
            let topics = Arc::make_mut(&mut self.topics);
            if let Some(topic) = topics.by_id.get_mut(&tp.topic_id) {
                Arc::make_mut(topic).partitions.insert(tp.partition, next);
            }
            return Ok(());
        }
        self.put_partition(tp, old_leader, next);
        Ok(())
    }

    /// Stores a validated registration and moves the leader index from `old_leader`.
    fn put_partition(
        &mut self,
        tp: TopicIdPartition,
        old_leader: BrokerId,
        reg: PartitionRegistration,
    ) {
        let new_leader = reg.leader;
        let topics = Arc::make_mut(&mut self.topics);
        if let Some(topic) = topics.by_id.get_mut(&tp.topic_id) {
            Arc::make_mut(topic).partitions.insert(tp.partition, reg);
        }
        if old_leader != new_leader {
            unindex_leader(topics, old_leader, tp);
            if new_leader != NO_LEADER {
                Arc::make_mut(topics.leaders.entry(new_leader).or_default()).insert(tp);
            }
        }
        self.changed_partitions.insert(tp);
    }

    fn set_config(&mut self, r: &ConfigRecord) -> Result<(), ReplayError> {
        if r.name.is_empty() {
            return Err(ReplayError::InvalidConfigName);
        }
        let (maps, key) = match &r.resource {
            ConfigResource::Topic(topic) => {
                if !self.topics.by_name.contains_key(topic) {
                    return Err(ReplayError::UnknownTopicName(topic.clone()));
                }
                (&mut Arc::make_mut(&mut self.configs).topics, topic)
            }
            ConfigResource::Broker(name) => (&mut Arc::make_mut(&mut self.configs).brokers, name),
            ConfigResource::Group(group) => {
                if group.is_empty() {
                    return Err(ReplayError::EmptyGroupId);
                }
                (&mut Arc::make_mut(&mut self.configs).groups, group)
            }
            ConfigResource::ClientMetrics(name) => {
                if name.is_empty() {
                    return Err(ReplayError::EmptyClientMetricsName);
                }
                (&mut Arc::make_mut(&mut self.configs).client_metrics, name)
            }
        };
        match &r.value {
            Some(value) => {
                Arc::make_mut(maps.entry(key.clone()).or_default())
                    .insert(r.name.clone(), value.clone());
            }
            None => {
                if let Some(map) = maps.get_mut(key) {
                    Arc::make_mut(map).remove(&r.name);
                    if map.is_empty() {
                        maps.remove(key);
                    }
                }
            }
        }
        Ok(())
    }

    fn set_client_quota(&mut self, r: &ClientQuotaRecord) -> Result<(), ReplayError> {
        if r.key.is_empty() {
            return Err(ReplayError::InvalidClientQuota("empty key"));
        }
        if r.entity.user.is_none() && r.entity.client_id.is_none() && r.entity.ip.is_none() {
            return Err(ReplayError::InvalidClientQuota("empty entity"));
        }
        if !r.value.is_finite() || r.value < 0.0 {
            return Err(ReplayError::InvalidClientQuota(
                "not a finite, non-negative value",
            ));
        }
        let entities = &mut Arc::make_mut(&mut self.client_quotas).entities;
        if r.remove {
            if let Some(map) = entities.get_mut(&r.entity) {
                Arc::make_mut(map).remove(&r.key);
                if map.is_empty() {
                    entities.remove(&r.entity);
                }
            }
        } else {
            Arc::make_mut(entities.entry(r.entity.clone()).or_default())
                .insert(r.key.clone(), r.value);
        }
        Ok(())
    }

    /// Kafka's `ScramControlManager.replay`: sets (or replaces) one user's credential for one
    /// mechanism. The keys must be as long as the mechanism's hash.
    fn set_scram_credential(&mut self, r: &UserScramCredentialRecord) -> Result<(), ReplayError> {
        if r.name.is_empty() {
            return Err(ReplayError::InvalidScramCredential("empty user name"));
        }
        let mechanism = ScramMechanism::from_type(r.mechanism)
            .ok_or(ReplayError::InvalidScramCredential("unknown mechanism"))?;
        if r.stored_key.len() != mechanism.key_len() || r.server_key.len() != mechanism.key_len() {
            return Err(ReplayError::InvalidScramCredential(
                "key length is not the mechanism's hash length",
            ));
        }
        if r.iterations <= 0 {
            return Err(ReplayError::InvalidScramCredential("iterations"));
        }
        Arc::make_mut(&mut self.scram)
            .users
            .entry(r.name.clone())
            .or_default()
            .insert(r.mechanism, ScramCredential::from_record(r));
        Ok(())
    }

    /// Deletes one user's credential for one mechanism; it must exist (as in Kafka, whose
    /// controller refuses to delete one that does not).
    fn remove_scram_credential(
        &mut self,
        r: &RemoveUserScramCredentialRecord,
    ) -> Result<(), ReplayError> {
        if self.scram.credential(&r.name, r.mechanism).is_none() {
            return Err(ReplayError::UnknownScramCredential {
                name: r.name.clone(),
                mechanism: r.mechanism,
            });
        }
        let users = &mut Arc::make_mut(&mut self.scram).users;
        if let Some(credentials) = users.get_mut(&r.name) {
            credentials.remove(&r.mechanism);
            if credentials.is_empty() {
                users.remove(&r.name);
            }
        }
        Ok(())
    }

    fn remove_topic(&mut self, topic_id: Uuid) -> Result<(), ReplayError> {
        let topics = Arc::make_mut(&mut self.topics);
        let topic = topics
            .by_id
            .remove(&topic_id)
            .ok_or(ReplayError::UnknownTopicId(topic_id))?;
        topics.by_name.remove(&topic.name);
        for (partition, reg) in &topic.partitions {
            unindex_leader(
                topics,
                reg.leader,
                TopicIdPartition {
                    topic_id,
                    partition: *partition,
                },
            );
        }
        if self.configs.topics.contains_key(&topic.name) {
            Arc::make_mut(&mut self.configs).topics.remove(&topic.name);
        }
        if self.base.topics.by_id.contains_key(&topic_id) {
            self.removed_topics.insert(topic_id);
        }
        Ok(())
    }

    /// What this delta means for the replicas on `broker` (Kafka's `TopicsDelta.localChanges`).
    pub fn local_changes(&self, broker: BrokerId) -> LocalReplicaChanges {
        let mut changes = LocalReplicaChanges::default();
        for tp in &self.changed_partitions {
            let was_replica = self
                .base
                .topics
                .partition(*tp)
                .is_some_and(|p| p.is_replica(broker));
            match self.topics.partition(*tp) {
                Some(reg) if reg.leader == broker => {
                    changes.leaders.insert(*tp, reg.clone());
                }
                Some(reg) if reg.is_replica(broker) => {
                    changes.followers.insert(*tp, reg.clone());
                }
                // Reassigned away, or created and deleted again (then it never was here).
                _ if was_replica => {
                    changes.deletes.insert(*tp);
                }
                _ => {}
            }
        }
        for topic_id in &self.removed_topics {
            if let Some(topic) = self.base.topics.by_id.get(topic_id) {
                for (partition, reg) in &topic.partitions {
                    if reg.is_replica(broker) {
                        changes.deletes.insert(TopicIdPartition {
                            topic_id: *topic_id,
                            partition: *partition,
                        });
                    }
                }
            }
        }
        changes
    }
}

fn unindex_leader(topics: &mut TopicsImage, leader: BrokerId, tp: TopicIdPartition) {
    if leader == NO_LEADER {
        return;
    }
    if let Some(set) = topics.leaders.get_mut(&leader) {
        Arc::make_mut(set).remove(&tp);
        if set.is_empty() {
            topics.leaders.remove(&leader);
        }
    }
}

/// The replica changes one broker must make for a delta (Kafka's `LocalReplicaChanges`): the
/// registrations carry the new leader epoch and ISR to become leader or follower with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalReplicaChanges {
    /// Partitions this broker now leads (newly, or in a new epoch or with a new ISR).
    pub leaders: BTreeMap<TopicIdPartition, PartitionRegistration>,
    /// Partitions this broker follows (newly, or under a new leader or epoch).
    pub followers: BTreeMap<TopicIdPartition, PartitionRegistration>,
    /// Partitions this broker held and must stop and delete (topic deleted or reassigned away).
    pub deletes: BTreeSet<TopicIdPartition>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{
        Endpoint, FenceBrokerRecord, RemoveTopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord,
    };

    pub(crate) fn register(id: BrokerId, epoch: i64, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            log_dirs: Vec::new(),
            broker_id: id,
            incarnation_id: Uuid::from_u128(1000 + u128::from(id.unsigned_abs())),
            broker_epoch: epoch,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092u16.wrapping_add(id as u16),
                security_protocol: 0,
            }],
            rack: None,
            fenced,
        })
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
        })
    }

    fn partition(id: u128, p: i32, replicas: &[i32], isr: &[i32], leader: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            directories: Vec::new(),
            topic_id: Uuid::from_u128(id),
            partition_id: p,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
        })
    }

    fn change(id: u128, p: i32, leader: Option<i32>, isr: Option<&[i32]>) -> MetadataRecord {
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            directories: None,
            topic_id: Uuid::from_u128(id),
            partition_id: p,
            leader,
            isr: isr.map(<[i32]>::to_vec),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        })
    }

    fn tp(id: u128, p: i32) -> TopicIdPartition {
        TopicIdPartition {
            topic_id: Uuid::from_u128(id),
            partition: p,
        }
    }

    fn at(offset: i64) -> MetadataProvenance {
        MetadataProvenance { offset, epoch: 1 }
    }

    fn build(records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta.replay_all(records).expect("valid records");
        delta.apply(at(records.len() as i64 - 1))
    }

    fn three_brokers_one_topic() -> MetadataImage {
        build(&[
            register(1, 10, false),
            register(2, 11, false),
            register(3, 12, false),
            topic("orders", 7),
            partition(7, 0, &[1, 2, 3], &[1, 2, 3], 1),
            partition(7, 1, &[2, 3, 1], &[2, 3, 1], 2),
        ])
    }

    #[test]
    fn image_lookups() {
        let image = three_brokers_one_topic();
        let topics = image.topics();
        let t = topics.topic_by_name("orders").expect("topic");
        assert_eq!(t.id, Uuid::from_u128(7));
        assert_eq!(topics.topic_id("orders"), Some(Uuid::from_u128(7)));
        assert_eq!(t.partition_count(), 2);
        assert_eq!(topics.partition(tp(7, 1)).map(|p| p.leader), Some(2));
        assert_eq!(topics.leaders_of(1).collect::<Vec<_>>(), vec![tp(7, 0)]);
        assert_eq!(topics.leader_count(3), 0);
        let live: Vec<(BrokerId, u16)> = image
            .cluster()
            .live_endpoints("PLAINTEXT")
            .map(|(b, e)| (b.id, e.port))
            .collect();
        assert_eq!(live, vec![(1, 9093), (2, 9094), (3, 9095)]);
        assert_eq!(image.cluster().live_endpoints("INTERNAL").count(), 0);
        let b2 = image.cluster().broker(2).expect("broker");
        assert_eq!(b2.endpoint("PLAINTEXT").map(|e| e.port), Some(9094));
        assert!(image.cluster().is_unfenced(2));
        assert!(!image.cluster().is_unfenced(4));
        assert_eq!(image.provenance().offset, 5);
    }

    #[test]
    fn partition_change_bumps_epochs_like_kafka() {
        let base = Arc::new(three_brokers_one_topic());
        let mut delta = MetadataDelta::new(base.clone());
        // ISR shrink only: partition epoch, not leader epoch.
        delta
            .replay(&change(7, 0, None, Some(&[1, 2])))
            .expect("shrink");
        // New leader: both.
        delta.replay(&change(7, 0, Some(2), None)).expect("elect");
        let image = delta.apply(at(7));
        let p = image.topics().partition(tp(7, 0)).expect("partition");
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
        assert_eq!(p.isr, vec![1, 2]);
        assert_eq!(image.topics().leaders_of(2).count(), 2);
        assert_eq!(image.topics().leader_count(1), 0);
        // The base image is untouched, and the unchanged cluster part is shared.
        assert_eq!(base.topics().partition(tp(7, 0)).map(|p| p.leader), Some(1));
        assert!(Arc::ptr_eq(&base.cluster, &image.cluster));
    }

    #[test]
    fn invalid_sequences_are_errors_and_change_nothing() {
        let base = Arc::new(three_brokers_one_topic());
        type Expect = fn(&ReplayError) -> bool;
        let cases: Vec<(MetadataRecord, Expect)> = vec![
            (change(7, 9, Some(1), None), |e| {
                matches!(e, ReplayError::UnknownPartition(_))
            }),
            (change(8, 0, Some(1), None), |e| {
                matches!(e, ReplayError::UnknownPartition(_))
            }),
            (change(7, 0, None, Some(&[])), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (change(7, 0, None, Some(&[2, 3])), |e| {
                // The leader (1) would be outside the ISR.
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (change(7, 0, Some(4), None), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (change(7, 0, None, Some(&[1, 1])), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (topic("orders", 8), |e| {
                matches!(e, ReplayError::DuplicateTopicName(_))
            }),
            (topic("other", 7), |e| {
                matches!(e, ReplayError::DuplicateTopicId(_))
            }),
            (topic("bad/name", 9), |e| {
                matches!(e, ReplayError::InvalidTopicName { .. })
            }),
            (topic("nil", 0), |e| {
                matches!(e, ReplayError::InvalidTopicId)
            }),
            (partition(7, 0, &[1], &[1], 1), |e| {
                matches!(e, ReplayError::DuplicatePartition(_))
            }),
            (partition(9, 0, &[1], &[1], 1), |e| {
                matches!(e, ReplayError::UnknownTopicId(_))
            }),
            (partition(7, 2, &[1, 2], &[3], 3), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (partition(7, 2, &[1, 1], &[1], 1), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (partition(7, 2, &[], &[], NO_LEADER), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (partition(7, -1, &[1], &[1], 1), |e| {
                matches!(e, ReplayError::InvalidPartition { .. })
            }),
            (
                MetadataRecord::FenceBroker(FenceBrokerRecord {
                    broker_id: 1,
                    broker_epoch: 9,
                }),
                |e| matches!(e, ReplayError::StaleBrokerEpoch { .. }),
            ),
            (
                MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                    broker_id: 5,
                    broker_epoch: 9,
                }),
                |e| matches!(e, ReplayError::UnknownBroker(5)),
            ),
            (register(2, 11, false), |e| {
                matches!(e, ReplayError::StaleBrokerEpoch { .. })
            }),
            (register(-3, 1, false), |e| {
                matches!(e, ReplayError::InvalidBrokerId(-3))
            }),
            (
                MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: Uuid::from_u128(8),
                }),
                |e| matches!(e, ReplayError::UnknownTopicId(_)),
            ),
            (
                MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Topic("nope".into()),
                    name: "retention.ms".into(),
                    value: Some("1".into()),
                }),
                |e| matches!(e, ReplayError::UnknownTopicName(_)),
            ),
        ];
        for (record, expected) in cases {
            let mut delta = MetadataDelta::new(base.clone());
            let err = delta.replay(&record).expect_err("invalid record");
            assert!(expected(&err), "{record:?} gave {err:?}");
            assert_eq!(delta.record_count(), 0);
            assert_eq!(delta.apply(base.provenance()), *base, "{record:?}");
        }
    }

    #[test]
    fn epoch_overflow_is_an_error() {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta.replay(&topic("t", 1)).expect("topic");
        delta
            .replay(&MetadataRecord::Partition(PartitionRecord {
                directories: Vec::new(),
                topic_id: Uuid::from_u128(1),
                partition_id: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: i32::MAX,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            }))
            .expect("partition");
        assert!(matches!(
            delta.replay(&change(1, 0, Some(1), None)),
            Err(ReplayError::InvalidPartition { .. })
        ));
    }

    #[test]
    fn brokers_register_fence_unfence_reregister_unregister() {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta.replay(&register(1, 5, true)).expect("register");
        assert!(!delta.cluster().is_unfenced(1));
        delta
            .replay(&MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                broker_id: 1,
                broker_epoch: 5,
            }))
            .expect("unfence");
        assert!(delta.cluster().is_unfenced(1));
        // A restarted process registers again with a new epoch; the old epoch is stale.
        delta.replay(&register(1, 8, true)).expect("re-register");
        assert!(delta
            .replay(&MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                broker_id: 1,
                broker_epoch: 5,
            }))
            .is_err());
        delta
            .replay(&MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: 1,
                broker_epoch: 8,
            }))
            .expect("unregister");
        assert!(delta.cluster().broker(1).is_none());
    }

    #[test]
    fn configs_set_remove_and_go_with_the_topic() {
        let base = Arc::new(three_brokers_one_topic());
        let set = |value: Option<&str>| {
            MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Topic("orders".into()),
                name: "retention.ms".into(),
                value: value.map(str::to_string),
            })
        };
        let mut delta = MetadataDelta::new(base.clone());
        delta.replay(&set(Some("1000"))).expect("set");
        assert_eq!(
            delta.configs().topic_config("orders", "retention.ms"),
            Some("1000")
        );
        delta.replay(&set(None)).expect("remove");
        assert_eq!(delta.configs().topic_config("orders", "retention.ms"), None);
        delta.replay(&set(Some("5"))).expect("set again");
        delta
            .replay(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: Uuid::from_u128(7),
            }))
            .expect("remove topic");
        let image = delta.apply(at(9));
        assert_eq!(image.configs().topic_configs("orders").count(), 0);
        assert!(image.topics().topic_by_name("orders").is_none());
        assert_eq!(image.topics().leader_count(1), 0);
        assert_eq!(image.topics().leader_count(2), 0);
    }

    #[test]
    fn snapshot_records_rebuild_the_same_image() {
        let base = Arc::new(three_brokers_one_topic());
        let mut delta = MetadataDelta::new(base);
        delta
            .replay(&MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Topic("orders".into()),
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
            }))
            .expect("config");
        delta
            .replay(&change(7, 1, Some(3), Some(&[3, 1])))
            .expect("change");
        delta
            .replay(&MetadataRecord::FenceBroker(FenceBrokerRecord {
                broker_id: 2,
                broker_epoch: 11,
            }))
            .expect("fence");
        let image = delta.apply(at(42));
        let rebuilt = {
            let mut d = MetadataDelta::new(Arc::new(MetadataImage::empty()));
            d.replay_all(&image.to_records()).expect("snapshot replays");
            d.apply(image.provenance())
        };
        assert_eq!(rebuilt, image);
    }

    fn scram(name: &str, mechanism: i8, iterations: i32) -> MetadataRecord {
        let key_len = if mechanism == 2 { 64 } else { 32 };
        MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: name.into(),
            mechanism,
            salt: vec![mechanism.unsigned_abs(); 8],
            stored_key: vec![1; key_len],
            server_key: vec![2; key_len],
            iterations,
        })
    }

    fn remove_scram(name: &str, mechanism: i8) -> MetadataRecord {
        MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: name.into(),
            mechanism,
        })
    }

    /// Kafka's `ScramControlManager.replay`: a credential per user and mechanism, replaced by a
    /// later record, removed by a remove record; a user with none left is not listed.
    #[test]
    fn scram_credentials_set_replace_remove_and_survive_a_snapshot() {
        let base = Arc::new(three_brokers_one_topic());
        let mut delta = MetadataDelta::new(base.clone());
        delta
            .replay_all(&[
                scram("alice", 1, 8192),
                scram("alice", 2, 4096),
                scram("bob", 1, 4096),
                scram("bob", 1, 16384),
            ])
            .expect("credentials");
        assert_eq!(delta.scram().credential_infos("bob"), vec![(1, 16384)]);
        let image = delta.apply(at(50));
        let scram_image = image.scram();
        assert_eq!(
            scram_image.users().collect::<Vec<_>>(),
            vec!["alice", "bob"]
        );
        assert_eq!(
            scram_image.credential_infos("alice"),
            vec![(1, 8192), (2, 4096)]
        );
        let credential = scram_image.credential("alice", 2).expect("SHA-512");
        assert_eq!(credential.salt, vec![2; 8]);
        assert_eq!(credential.stored_key.len(), 64);
        assert_eq!(scram_image.credential("carol", 1), None);
        assert!(scram_image.credential_infos("carol").is_empty());
        assert!(base.scram().is_empty(), "the base image is untouched");

        // A snapshot writes them back.
        let rebuilt = {
            let mut d = MetadataDelta::new(Arc::new(MetadataImage::empty()));
            d.replay_all(&image.to_records()).expect("snapshot replays");
            d.apply(image.provenance())
        };
        assert_eq!(rebuilt, image);
        assert_eq!(rebuilt.scram(), image.scram());

        // Removing one mechanism keeps the other; removing the last drops the user.
        let image = Arc::new(image);
        let mut delta = MetadataDelta::new(image.clone());
        delta
            .replay_all(&[remove_scram("alice", 2), remove_scram("bob", 1)])
            .expect("removals");
        let after = delta.apply(at(52));
        assert_eq!(after.scram().users().collect::<Vec<_>>(), vec!["alice"]);
        assert_eq!(after.scram().credential_infos("alice"), vec![(1, 8192)]);
        assert!(!after.is_empty());

        // Records that do not fit change nothing.
        let mut short_key = scram("x", 1, 4096);
        if let MetadataRecord::UserScramCredential(r) = &mut short_key {
            r.stored_key.pop();
        }
        let cases: Vec<(MetadataRecord, ReplayError)> = vec![
            (
                remove_scram("alice", 2),
                ReplayError::UnknownScramCredential {
                    name: "alice".into(),
                    mechanism: 2,
                },
            ),
            (
                remove_scram("nobody", 1),
                ReplayError::UnknownScramCredential {
                    name: "nobody".into(),
                    mechanism: 1,
                },
            ),
            (
                scram("", 1, 4096),
                ReplayError::InvalidScramCredential("empty user name"),
            ),
            (
                scram("x", 3, 4096),
                ReplayError::InvalidScramCredential("unknown mechanism"),
            ),
            (
                scram("x", 1, 0),
                ReplayError::InvalidScramCredential("iterations"),
            ),
            (
                short_key,
                ReplayError::InvalidScramCredential(
                    "key length is not the mechanism's hash length",
                ),
            ),
        ];
        let after = Arc::new(after);
        for (record, want) in cases {
            let mut delta = MetadataDelta::new(after.clone());
            assert_eq!(delta.replay(&record), Err(want), "{record:?}");
            assert_eq!(delta.apply(after.provenance()), *after);
        }
    }

    #[test]
    fn local_changes_say_lead_follow_delete() {
        let base = Arc::new(three_brokers_one_topic());
        let mut delta = MetadataDelta::new(base.clone());
        delta
            .replay(&change(7, 0, Some(2), Some(&[2, 3])))
            .expect("move leader");
        delta.replay(&topic("new", 9)).expect("topic");
        delta
            .replay(&partition(9, 0, &[3], &[3], 3))
            .expect("partition");
        delta
            .replay(&MetadataRecord::PartitionChange(PartitionChangeRecord {
                directories: None,
                topic_id: Uuid::from_u128(7),
                partition_id: 1,
                leader: None,
                isr: Some(vec![2, 3]),
                replicas: Some(vec![2, 3]),
                adding_replicas: None,
                removing_replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            }))
            .expect("reassign away from 1");
        let one = delta.local_changes(1);
        assert!(one.leaders.is_empty());
        assert_eq!(
            one.followers.keys().copied().collect::<Vec<_>>(),
            vec![tp(7, 0)]
        );
        assert_eq!(
            one.deletes.iter().copied().collect::<Vec<_>>(),
            vec![tp(7, 1)]
        );
        let two = delta.local_changes(2);
        assert_eq!(
            two.leaders.keys().copied().collect::<Vec<_>>(),
            vec![tp(7, 0), tp(7, 1)]
        );
        assert_eq!(two.leaders[&tp(7, 0)].leader_epoch, 1);
        let three = delta.local_changes(3);
        assert_eq!(
            three.leaders.keys().copied().collect::<Vec<_>>(),
            vec![tp(9, 0)]
        );

        let mut delta = MetadataDelta::new(base);
        delta
            .replay(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: Uuid::from_u128(7),
            }))
            .expect("remove");
        assert_eq!(delta.local_changes(3).deletes.len(), 2);
        assert_eq!(delta.local_changes(4), LocalReplicaChanges::default());
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert_eq!(topic_name_invalid_reason("a.b_c-D9"), None);
        assert!(topic_name_invalid_reason("").is_some());
        assert!(topic_name_invalid_reason("..").is_some());
        assert!(topic_name_invalid_reason("a b").is_some());
        assert!(topic_name_invalid_reason(&"x".repeat(250)).is_some());
        assert_eq!(topic_name_invalid_reason(&"x".repeat(249)), None);
    }
}
