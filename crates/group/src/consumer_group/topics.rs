//! What the consumer group core needs to know about topics: ids, names and partition counts.
//!
//! KIP-848 groups speak of partitions by topic id. The broker fills a [`TopicsView`] from its
//! metadata image (Kafka's `TopicsImage`) and passes it to every call that may compute an
//! assignment; the core never reads the image itself. [`TopicsImage`] is a small owned
//! implementation for tests and for brokers that prefer to copy.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A topic id (Kafka's `Uuid`), as its 16 big-endian bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// Kafka's `Uuid.ZERO_UUID`: no topic.
    pub const ZERO: TopicId = TopicId([0; 16]);

    pub fn from_u128(v: u128) -> TopicId {
        TopicId(v.to_be_bytes())
    }

    pub fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({:032x})", self.as_u128())
    }
}

/// Partitions by topic id: an assignment, a member's owned partitions, a target.
pub type TopicPartitions = BTreeMap<TopicId, BTreeSet<i32>>;

/// The topics of the cluster as the broker's metadata image has them.
pub trait TopicsView {
    /// The id of the topic named `name`, if it exists.
    fn topic_id(&self, name: &str) -> Option<TopicId>;
    /// The name of the topic with id `id`, if it exists.
    fn topic_name(&self, id: TopicId) -> Option<&str>;
    /// The partition count of the topic with id `id`, if it exists.
    fn partition_count(&self, id: TopicId) -> Option<i32>;
    /// Every topic name, for regex subscriptions (called only for groups that have one).
    fn topic_names(&self) -> Vec<String>;
}

/// One topic as a consumer group's subscription metadata stores it
/// (ConsumerGroupPartitionMetadataValue.TopicMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub id: TopicId,
    pub name: String,
    pub num_partitions: i32,
}

/// An owned [`TopicsView`]: name → (id, partition count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsImage {
    by_name: BTreeMap<String, (TopicId, i32)>,
    by_id: BTreeMap<TopicId, String>,
}

impl TopicsImage {
    pub fn new() -> TopicsImage {
        TopicsImage::default()
    }

    /// Adds or replaces a topic.
    pub fn insert(&mut self, name: &str, id: TopicId, partitions: i32) {
        if let Some((old_id, _)) = self.by_name.insert(name.to_string(), (id, partitions)) {
            self.by_id.remove(&old_id);
        }
        self.by_id.insert(id, name.to_string());
    }

    /// Removes a topic by name.
    pub fn remove(&mut self, name: &str) {
        if let Some((id, _)) = self.by_name.remove(name) {
            self.by_id.remove(&id);
        }
    }
}

impl TopicsView for TopicsImage {
    fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).map(|(id, _)| *id)
    }

    fn topic_name(&self, id: TopicId) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    fn partition_count(&self, id: TopicId) -> Option<i32> {
        let name = self.by_id.get(&id)?;
        self.by_name.get(name).map(|(_, n)| *n)
    }

    fn topic_names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}
