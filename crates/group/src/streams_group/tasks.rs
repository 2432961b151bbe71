//! Tasks: a subtopology id and a partition number name one task (Kafka's `TaskId`); a member
//! holds active, standby and warm-up tasks (Kafka's `TasksTuple`).

use std::collections::{BTreeMap, BTreeSet};

/// Tasks of one role, by subtopology id, each with its partitions.
pub type TaskMap = BTreeMap<String, BTreeSet<i32>>;

/// A member's tasks in their three roles (Kafka's `TasksTuple`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tasks {
    pub active: TaskMap,
    pub standby: TaskMap,
    pub warmup: TaskMap,
}

impl Tasks {
    pub fn is_empty(&self) -> bool {
        self.active.values().all(BTreeSet::is_empty)
            && self.standby.values().all(BTreeSet::is_empty)
            && self.warmup.values().all(BTreeSet::is_empty)
    }
}

/// Adds `partition` of `subtopology` to `map`.
pub fn add_task(map: &mut TaskMap, subtopology: &str, partition: i32) {
    map.entry(subtopology.to_string())
        .or_default()
        .insert(partition);
}

/// True when `map` holds `partition` of `subtopology`.
pub fn has_task(map: &TaskMap, subtopology: &str, partition: i32) -> bool {
    map.get(subtopology)
        .is_some_and(|partitions| partitions.contains(&partition))
}

/// Drops subtopologies left with no partition.
pub fn prune(map: &mut TaskMap) {
    map.retain(|_, partitions| !partitions.is_empty());
}
