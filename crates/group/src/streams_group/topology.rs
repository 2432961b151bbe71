//! The group's topology configured against the cluster's topics (Kafka's
//! `InternalTopicManager.configureTopics`, `RepartitionTopics`, `CopartitionedTopicsEnforcer`,
//! `ChangelogTopics`): how many partitions each repartition and changelog topic needs, how
//! many tasks each subtopology has, and which internal topics are missing. Also the checks
//! Kafka makes on a heartbeat's topology before it reaches the group
//! ([`check_request_topology`]) and the hash of the topics' metadata ([`metadata_hash`]).
//!
//! [`configure_topics`] goes through Kafka's steps in Kafka's order, and the first that fails
//! decides the outcome:
//!
//! 1. a source topic that does not exist: status MISSING_SOURCE_TOPICS;
//! 2. repartition topics that cannot be sized (a loop, or one no subtopology writes):
//!    [`InvalidTopology`], which fails the heartbeat with STREAMS_INVALID_TOPOLOGY;
//! 3. copartition groups whose topics disagree: status INCORRECTLY_PARTITIONED_TOPICS (an
//!    all-repartition group with no count at all is an [`InvalidTopology`]);
//! 4. changelog topics sized after their subtopology (a subtopology without any source topic is
//!    an [`InvalidTopology`]);
//! 5. an existing internal topic with another partition count: INCORRECTLY_PARTITIONED_TOPICS;
//! 6. internal topics that do not exist: status MISSING_INTERNAL_TOPICS, with the subtopologies
//!    configured and the topics to create.
//!
//! A topic's partition count is the real one when the topic exists, else the one decided for
//! it so far in this run.
//!
//! Kafka keeps the subtopologies in a `HashMap` keyed by id and walks them in its iteration
//! order; where that order decides something (a repartition topic sized in one pass from the
//! counts known so far, or which of two errors is reported) this walks them in the same order
//! ([`java_hash_order`]), and likewise the topics of a copartition group. Topic lists in
//! messages are sorted where Kafka prints a hash order (missing internal topics).
//!
//! Where Kafka would throw an unexpected exception (`IllegalStateException`, an index out of
//! bounds: UNKNOWN_SERVER_ERROR with no message), this returns an [`InvalidTopology`] with a
//! message saying what is wrong; a topology the client built cannot get there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::api::{codes, status, Status, TopicToCreate};
use super::records::{Subtopology, TopicInfo, TopologyValue};

/// Kafka's internal topics, which a topology may not name (`Topic.isInternal`).
pub const KAFKA_INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// The longest valid topic name.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// How many topic names a status detail lists before "and N additional topics".
const SUMMARIZED_TOPICS: usize = 3;

/// A subtopology as configured against the topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredSubtopology {
    pub subtopology_id: String,
    /// Kafka's numberOfTasks: the largest partition count among its source and repartition
    /// source topics.
    pub num_tasks: i32,
    pub source_topics: BTreeSet<String>,
    /// Repartition source topics with the partition count decided for them (`partitions` set
    /// to that count; replication factor and configs as the client sent them), sorted by name.
    pub repartition_source_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: BTreeSet<String>,
    /// Changelog topics, each with `num_tasks` partitions (same convention), sorted by name.
    pub state_changelog_topics: Vec<TopicInfo>,
}

impl ConfiguredSubtopology {
    /// True when the subtopology keeps state: it has a changelog topic.
    pub fn is_stateful(&self) -> bool {
        !self.state_changelog_topics.is_empty()
    }
}

/// The outcome of configuring a topology (Kafka's `ConfiguredTopology`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredTopology {
    pub topology_epoch: i32,
    /// By subtopology id; `None` when source topics are missing or topics are incorrectly
    /// partitioned.
    pub subtopologies: Option<BTreeMap<String, ConfiguredSubtopology>>,
    /// Internal topics that do not exist yet, sorted by name (only with
    /// MISSING_INTERNAL_TOPICS).
    pub internal_topics_to_create: Vec<TopicToCreate>,
    /// The configuration status (MISSING_SOURCE_TOPICS, INCORRECTLY_PARTITIONED_TOPICS or
    /// MISSING_INTERNAL_TOPICS with Kafka's detail text); `None` when ready.
    pub status: Option<Status>,
}

impl ConfiguredTopology {
    /// True when every topic is there and rightly partitioned: only then are tasks assigned.
    pub fn is_ready(&self) -> bool {
        self.status.is_none()
    }
}

/// A topology Kafka refuses outright: STREAMS_INVALID_TOPOLOGY (130) with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTopology(pub String);

/// Why a heartbeat's topology is refused before it reaches the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyCheck {
    /// STREAMS_INVALID_TOPOLOGY (130) with this message.
    InvalidTopology(String),
    /// INVALID_REQUEST (42) with this message.
    InvalidRequest(String),
}

impl TopologyCheck {
    /// The error code of the heartbeat answer.
    pub fn error_code(&self) -> i16 {
        match self {
            TopologyCheck::InvalidTopology(_) => codes::STREAMS_INVALID_TOPOLOGY,
            TopologyCheck::InvalidRequest(_) => codes::INVALID_REQUEST,
        }
    }

    /// The error message of the heartbeat answer.
    pub fn message(&self) -> &str {
        match self {
            TopologyCheck::InvalidTopology(message) | TopologyCheck::InvalidRequest(message) => {
                message
            }
        }
    }
}

/// How configuring stops early: with a status (Kafka's `TopicConfigurationException`, the
/// heartbeat still succeeds) or with an error (STREAMS_INVALID_TOPOLOGY, it fails).
enum Stop {
    Status(i8, String),
    Invalid(InvalidTopology),
}

impl From<InvalidTopology> for Stop {
    fn from(e: InvalidTopology) -> Stop {
        Stop::Invalid(e)
    }
}

/// Where Kafka throws an unexpected exception (UNKNOWN_SERVER_ERROR, message dropped): an
/// [`InvalidTopology`] saying what is wrong instead.
fn unexpected(message: String) -> InvalidTopology {
    InvalidTopology(message)
}

/// Configures `topology` against the topics `partitions` knows (name → partition count,
/// `None`: no such topic).
///
/// `Ok` carries a status when the topology is not ready (missing source topics, incorrectly
/// partitioned topics, missing internal topics); `Err` is a topology Kafka refuses with
/// STREAMS_INVALID_TOPOLOGY, which fails the heartbeat without touching the group.
pub fn configure_topics(
    topology: &TopologyValue,
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<ConfiguredTopology, InvalidTopology> {
    // Kafka builds its map of subtopologies and the copartition groups' topic sets before it
    // checks anything else, so these failures come first.
    let subtopologies = hash_ordered_subtopologies(topology)?;
    let copartition_groups = copartition_groups(&subtopologies)?;
    let (configured, internal_topics_to_create, status) =
        match configure(topology, &subtopologies, &copartition_groups, partitions) {
            Ok((configured, to_create)) => {
                let status = (!to_create.is_empty()).then(|| Status {
                    code: status::MISSING_INTERNAL_TOPICS,
                    detail: format!(
                        "Internal topics are missing: {}",
                        summarize(to_create.iter().map(|t| t.name.as_str()))
                    ),
                });
                (Some(configured), to_create, status)
            }
            Err(Stop::Status(code, detail)) => (None, Vec::new(), Some(Status { code, detail })),
            Err(Stop::Invalid(e)) => return Err(e),
        };
    Ok(ConfiguredTopology {
        topology_epoch: topology.epoch,
        subtopologies: configured,
        internal_topics_to_create,
        status,
    })
}

/// Every topic the topology names that the group depends on: source, repartition source and
/// changelog topics (Kafka's `StreamsTopology.requiredTopics()`, for the metadata hash and the
/// metadata refresh). Repartition sink topics are not in it: Kafka leaves them out, and every
/// one that matters is some subtopology's repartition source. [`named_topics`] has them all.
pub fn required_topics(topology: &TopologyValue) -> BTreeSet<String> {
    topology
        .subtopologies
        .iter()
        .flat_map(|s| {
            s.source_topics
                .iter()
                .chain(s.repartition_source_topics.iter().map(|t| &t.name))
                .chain(s.state_changelog_topics.iter().map(|t| &t.name))
        })
        .cloned()
        .collect()
}

/// Every topic the topology names, repartition sinks included, each once, in the order first
/// named (per subtopology: sources, repartition sinks, repartition sources, changelogs). This
/// is the list Kafka's `KafkaApis` checks ([`check_topic_names`]) and authorizes (DESCRIBE on
/// each topic) before the coordinator sees the heartbeat.
pub fn named_topics(topology: &TopologyValue) -> Vec<&str> {
    let mut seen = HashSet::new();
    topology
        .subtopologies
        .iter()
        .flat_map(|s| {
            s.source_topics
                .iter()
                .chain(&s.repartition_sink_topics)
                .chain(s.repartition_source_topics.iter().map(|t| &t.name))
                .chain(s.state_changelog_topics.iter().map(|t| &t.name))
        })
        .map(String::as_str)
        .filter(|name| seen.insert(*name))
        .collect()
}

/// Kafka's topic name rule (`Topic.isValid`): 1 to 249 characters of `[a-zA-Z0-9._-]`, and
/// neither `.` nor `..`.
pub fn is_valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The request-level topology checks of Kafka, in Kafka's order:
///
/// 1. [`check_topic_names`] (`KafkaApis`): Kafka's internal topics, then invalid names (130);
/// 2. [`check_source_topic_regex`] (`GroupCoordinatorService`, "unsupported features"): a
///    source topic regex (42);
/// 3. [`check_changelog_partitions`] (`GroupCoordinatorService`, validity checks of a join): a
///    changelog topic with a partition count (130).
///
/// Kafka makes other checks between these (the DESCRIBE authorization of [`named_topics`]
/// after step 1; the other unsupported features before step 2; the other validity checks
/// around step 3, which it makes only when joining, the only time a topology may be sent). A
/// caller that must answer exactly as Kafka does runs the three steps separately.
pub fn check_request_topology(topology: &TopologyValue) -> Result<(), TopologyCheck> {
    check_topic_names(topology)?;
    check_source_topic_regex(topology)?;
    check_changelog_partitions(topology)
}

/// `KafkaApis`' checks of [`named_topics`]: Kafka's internal topics named, then invalid topic
/// names; both STREAMS_INVALID_TOPOLOGY, with the names joined by "," (no space).
pub fn check_topic_names(topology: &TopologyValue) -> Result<(), TopologyCheck> {
    let names = named_topics(topology);
    let internal: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| KAFKA_INTERNAL_TOPICS.contains(name))
        .collect();
    if !internal.is_empty() {
        return Err(TopologyCheck::InvalidTopology(format!(
            "Use of Kafka internal topics {} in a Kafka Streams topology is prohibited.",
            internal.join(",")
        )));
    }
    let invalid: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !is_valid_topic_name(name))
        .collect();
    if !invalid.is_empty() {
        return Err(TopologyCheck::InvalidTopology(format!(
            "Topic names {} are not valid topic names.",
            invalid.join(",")
        )));
    }
    Ok(())
}

/// Source topic regexes are not supported (Kafka 4.2 to 4.4): INVALID_REQUEST.
pub fn check_source_topic_regex(topology: &TopologyValue) -> Result<(), TopologyCheck> {
    if topology
        .subtopologies
        .iter()
        .any(|s| !s.source_topic_regex.is_empty())
    {
        return Err(TopologyCheck::InvalidRequest(
            "Regular expressions for source topics are not supported yet.".to_string(),
        ));
    }
    Ok(())
}

/// A changelog topic's partition count is the broker's to decide: the first changelog topic
/// with a count other than 0 is a STREAMS_INVALID_TOPOLOGY.
pub fn check_changelog_partitions(topology: &TopologyValue) -> Result<(), TopologyCheck> {
    let set = topology
        .subtopologies
        .iter()
        .flat_map(|s| &s.state_changelog_topics)
        .find(|t| t.partitions != 0);
    match set {
        Some(t) => Err(TopologyCheck::InvalidTopology(format!(
            "Changelog topic {} must have an undefined partition count, but it is set to {}.",
            t.name, t.partitions
        ))),
        None => Ok(()),
    }
}

/// The stand-in for Kafka's metadata hash of a streams group: a hash of the name and
/// partition count of each existing required topic, which changes when one appears,
/// disappears or changes its partition count. FNV-1a 64 over, for each topic in name order,
/// the name's length (u64, little endian), the name's bytes and the count (i32, little
/// endian); 0 when no topic exists, as in Kafka. `existing` may come in any order.
///
/// Kafka hashes (XXH3) the topic ids and racks too; this value is only compared with itself,
/// so it only matters that it is stable, unless `__consumer_offsets` is shared with Kafka.
pub fn metadata_hash(existing: &[(String, i32)]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    if existing.is_empty() {
        return 0;
    }
    let mut sorted: Vec<&(String, i32)> = existing.iter().collect();
    sorted.sort();
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, count) in sorted {
        feed(&(name.len() as u64).to_le_bytes());
        feed(name.as_bytes());
        feed(&count.to_le_bytes());
    }
    hash as i64
}

/// [`metadata_hash`] of the [`required_topics`] of `topology` that `partitions` knows.
pub fn topology_metadata_hash(
    topology: &TopologyValue,
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> i64 {
    let existing: Vec<(String, i32)> = required_topics(topology)
        .into_iter()
        .filter_map(|name| partitions(&name).map(|count| (name, count)))
        .collect();
    metadata_hash(&existing)
}

/// `names` for a status detail (Kafka's `summarizeTopics`): "<none>", or the first three
/// joined with ", " and, when there are more, " and N additional topics".
pub fn summarize<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return "<none>".to_string();
    }
    let mut summary = names[..names.len().min(SUMMARIZED_TOPICS)].join(", ");
    if names.len() > SUMMARIZED_TOPICS {
        summary.push_str(&format!(
            " and {} additional topics",
            names.len() - SUMMARIZED_TOPICS
        ));
    }
    summary
}

/// The order in which a Java `HashMap` (or `HashSet`) of strings, filled one at a time from
/// `keys` by `put` with no capacity given (as `Collectors.toMap` and `toSet` do), iterates
/// them: by bucket (the key's `String.hashCode()`, spread with `h ^ (h >>> 16)`, masked by the
/// table size, which starts at 16 and doubles past a 0.75 load), and in a bucket by insertion.
/// Repeated keys count once. It ignores Java's tree bins, which only 9 keys in one bucket make.
pub fn java_hash_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    java_hash_order_sized(keys, 16)
}

/// [`java_hash_order`] for a map made with `new HashMap<>(initial_capacity)`: its table starts
/// at the power of two at or above the capacity (at least 1).
pub fn java_hash_order_sized<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    initial_capacity: usize,
) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    let mut keys: Vec<&str> = keys.into_iter().filter(|k| seen.insert(*k)).collect();
    let mut table = initial_capacity.max(1).next_power_of_two();
    // Java's threshold is `(int) (table * 0.75f)`.
    while keys.len() > table * 3 / 4 {
        table *= 2;
    }
    // A stable sort keeps the insertion order within a bucket.
    keys.sort_by_key(|k| {
        let h = java_string_hash(k) as u32;
        (h ^ (h >> 16)) as usize & (table - 1)
    });
    keys
}

/// Java's `String.hashCode()`: over the UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The subtopologies in the order Kafka walks its map of them; a repeated id is refused (Java's
/// `Collectors.toMap` throws on it).
fn hash_ordered_subtopologies(
    topology: &TopologyValue,
) -> Result<Vec<&Subtopology>, InvalidTopology> {
    let mut by_id: HashMap<&str, &Subtopology> = HashMap::new();
    for s in &topology.subtopologies {
        if by_id.insert(&s.subtopology_id, s).is_some() {
            return Err(unexpected(format!(
                "Duplicate subtopology id {} in the topology.",
                s.subtopology_id
            )));
        }
    }
    Ok(java_hash_order(
        topology
            .subtopologies
            .iter()
            .map(|s| s.subtopology_id.as_str()),
    )
    .into_iter()
    .filter_map(|id| by_id.get(id).copied())
    .collect())
}

/// Each subtopology's copartition groups as topic sets (in Java's `HashSet` order): the
/// indexes into its source topics, then those into its repartition source topics. Regex
/// indexes are ignored, as Kafka does.
fn copartition_groups<'a>(
    subtopologies: &[&'a Subtopology],
) -> Result<Vec<Vec<Vec<&'a str>>>, InvalidTopology> {
    let mut all = Vec::with_capacity(subtopologies.len());
    for s in subtopologies {
        let mut groups = Vec::with_capacity(s.copartition_groups.len());
        for group in &s.copartition_groups {
            let mut names = Vec::new();
            for &i in &group.source_topics {
                let name = usize::try_from(i)
                    .ok()
                    .and_then(|i| s.source_topics.get(i))
                    .ok_or_else(|| bad_index(s, "source topic", i, s.source_topics.len()))?;
                names.push(name.as_str());
            }
            for &i in &group.repartition_source_topics {
                let topic = usize::try_from(i)
                    .ok()
                    .and_then(|i| s.repartition_source_topics.get(i))
                    .ok_or_else(|| {
                        let len = s.repartition_source_topics.len();
                        bad_index(s, "repartition source topic", i, len)
                    })?;
                names.push(topic.name.as_str());
            }
            groups.push(java_hash_order(names));
        }
        all.push(groups);
    }
    Ok(all)
}

/// A copartition group index out of range (Kafka: an `IndexOutOfBoundsException`).
fn bad_index(s: &Subtopology, what: &str, index: i16, len: usize) -> InvalidTopology {
    unexpected(format!(
        "A copartition group of subtopology {} refers to {what} {index}, but the subtopology \
         has {len} of them.",
        s.subtopology_id
    ))
}

/// Steps 1 to 6 of the module doc: the configured subtopologies and the internal topics to
/// create, or where it stopped.
fn configure(
    topology: &TopologyValue,
    subtopologies: &[&Subtopology],
    copartition_groups: &[Vec<Vec<&str>>],
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<(BTreeMap<String, ConfiguredSubtopology>, Vec<TopicToCreate>), Stop> {
    check_missing_sources(subtopologies, partitions)?;
    let decided = decide_partition_counts(subtopologies, copartition_groups, partitions)?;
    let count = |topic: &str| partitions(topic).or_else(|| decided.get(topic).copied());
    let mut configured = BTreeMap::new();
    for s in subtopologies {
        let c = configure_subtopology(s, &count, &decided)?;
        configured.insert(s.subtopology_id.clone(), c);
    }
    let to_create = missing_internal_topics(topology, &configured, partitions)?;
    Ok((configured, to_create))
}

/// Source topics that do not exist: MISSING_SOURCE_TOPICS, sorted.
fn check_missing_sources(
    subtopologies: &[&Subtopology],
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<(), Stop> {
    let missing: BTreeSet<&str> = subtopologies
        .iter()
        .flat_map(|s| &s.source_topics)
        .map(String::as_str)
        .filter(|topic| partitions(topic).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Stop::Status(
        status::MISSING_SOURCE_TOPICS,
        format!("Source topics {} are missing.", summarize(missing)),
    ))
}

/// The partition counts of the internal topics (Kafka's `decidePartitionCounts`): the
/// repartition topics, corrected by the copartition groups, then the changelog topics.
fn decide_partition_counts(
    subtopologies: &[&Subtopology],
    copartition_groups: &[Vec<Vec<&str>>],
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<HashMap<String, i32>, Stop> {
    let mut decided = repartition_counts(subtopologies, partitions)?;
    enforce_copartitioning(subtopologies, copartition_groups, partitions, &mut decided)?;
    let changelogs = {
        let count = |topic: &str| partitions(topic).or_else(|| decided.get(topic).copied());
        changelog_counts(subtopologies, &count)?
    };
    decided.extend(changelogs);
    Ok(decided)
}

/// Kafka's `RepartitionTopics.setup`. A repartition topic has the count the topology fixes for
/// it, else the largest count among the sources (external, or repartition topics already
/// sized) of the subtopology that writes it, found by passes over the subtopologies until
/// nothing is left or a pass makes no progress. The existing topic's own count plays no part.
fn repartition_counts(
    subtopologies: &[&Subtopology],
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<HashMap<String, i32>, InvalidTopology> {
    let mut counts: HashMap<String, i32> = HashMap::new();
    for s in subtopologies {
        for t in &s.repartition_source_topics {
            if t.partitions != 0 {
                counts.insert(t.name.clone(), t.partitions);
            }
        }
    }
    loop {
        let mut needed = false;
        let mut progress = false;
        for s in subtopologies {
            for sink in &s.repartition_sink_topics {
                if counts.contains_key(sink) {
                    continue;
                }
                let count = s
                    .repartition_source_topics
                    .iter()
                    .filter_map(|t| counts.get(&t.name).copied())
                    .chain(s.source_topics.iter().filter_map(|t| partitions(t)))
                    .max();
                match count {
                    Some(count) => {
                        counts.insert(sink.clone(), count);
                        progress = true;
                    }
                    None => needed = true,
                }
            }
        }
        if needed && !progress {
            return Err(InvalidTopology(
                "Failed to compute number of partitions for all repartition topics. There may \
                 be loops in the topology that cannot be resolved."
                    .to_string(),
            ));
        }
        if !needed {
            break;
        }
    }
    let never_written = subtopologies
        .iter()
        .flat_map(|s| &s.repartition_source_topics)
        .any(|t| !counts.contains_key(&t.name));
    if never_written {
        return Err(InvalidTopology(
            "Failed to compute number of partitions for all repartition topics, because a \
             repartition source topic is never used as a sink topic."
                .to_string(),
        ));
    }
    Ok(counts)
}

/// Kafka's `enforceCopartitioning`: every copartition group, subtopology by subtopology, its
/// repartition topics' counts overwriting the decided ones.
fn enforce_copartitioning(
    subtopologies: &[&Subtopology],
    copartition_groups: &[Vec<Vec<&str>>],
    partitions: &dyn Fn(&str) -> Option<i32>,
    decided: &mut HashMap<String, i32>,
) -> Result<(), Stop> {
    // Topology-wide, as in Kafka.
    let repartition = subtopologies
        .iter()
        .flat_map(|s| &s.repartition_source_topics);
    let fixed: BTreeSet<&str> = repartition
        .clone()
        .filter(|t| t.partitions != 0)
        .map(|t| t.name.as_str())
        .collect();
    let flexible: BTreeSet<&str> = repartition
        .filter(|t| t.partitions == 0)
        .map(|t| t.name.as_str())
        .collect();
    for group in copartition_groups.iter().flatten() {
        let enforced = {
            let count = |topic: &str| partitions(topic).or_else(|| decided.get(topic).copied());
            enforce(group, &fixed, &flexible, &count)?
        };
        decided.extend(enforced);
    }
    Ok(())
}

/// Kafka's `CopartitionedTopicsEnforcer.enforce` on one group (its topics in Java's `HashSet`
/// order): the count every repartition topic of the group gets.
///
/// - Only repartition topics in the group: if the topology fixes the count of any repartition
///   topic (anywhere: Kafka looks at all of them, not the group's), all fixed ones must agree
///   and give the count; else the group's largest count does.
/// - Otherwise the other (external) topics must all have the same count, which is the count.
///
/// A repartition topic with a fixed count other than the chosen one is an error.
fn enforce(
    group: &[&str],
    fixed: &BTreeSet<&str>,
    flexible: &BTreeSet<&str>,
    count: &dyn Fn(&str) -> Option<i32>,
) -> Result<Vec<(String, i32)>, Stop> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    // Kafka: IllegalStateException; every topic here has a count by now.
    let count_of = |topic: &str| {
        count(topic).ok_or_else(|| {
            unexpected(format!(
                "Number of partitions is not set for topic: {topic}"
            ))
        })
    };
    let is_repartition = |topic: &&str| fixed.contains(topic) || flexible.contains(topic);
    let mut repartition: Vec<(&str, i32)> = Vec::new();
    for topic in java_hash_order(group.iter().copied().filter(is_repartition)) {
        repartition.push((topic, count_of(topic)?));
    }
    let mut external: BTreeMap<&str, i32> = BTreeMap::new();
    for topic in group.iter().copied().filter(|t| !is_repartition(t)) {
        external.insert(topic, count_of(topic)?);
    }
    let not_copartitioned = |counts: String| {
        Stop::Status(
            status::INCORRECTLY_PARTITIONED_TOPICS,
            format!("Following topics do not have the same number of partitions: [{counts}]"),
        )
    };
    let n = if external.is_empty() {
        if let Some(first) = fixed.first() {
            // Which fixed topic is "first" (a HashSet's) does not matter: all must agree.
            let n = count_of(first)?;
            for topic in fixed {
                if count_of(topic)? != n {
                    let sorted: BTreeMap<&str, i32> = repartition.iter().copied().collect();
                    return Err(not_copartitioned(java_map(&sorted)));
                }
            }
            n
        } else {
            let n = repartition.iter().map(|(_, c)| *c).fold(0, i32::max);
            if n == 0 {
                let names: Vec<&str> = repartition.iter().map(|(t, _)| *t).collect();
                return Err(InvalidTopology(format!(
                    "All topics in the copartition group had undefined partition number: [{}]",
                    names.join(", ")
                ))
                .into());
            }
            n
        }
    } else {
        let mut counts = external.values().copied();
        let first = counts.next().unwrap_or_default();
        if counts.any(|c| c != first) {
            return Err(not_copartitioned(java_map(&external)));
        }
        first
    };
    let mut enforced = Vec::with_capacity(repartition.len());
    for (topic, c) in repartition {
        enforced.push((topic.to_string(), n));
        if fixed.contains(topic) && c != n {
            return Err(Stop::Status(
                status::INCORRECTLY_PARTITIONED_TOPICS,
                format!(
                    "Number of partitions [{c}] of repartition topic [{topic}] doesn't match \
                     number of partitions [{n}] of the source topic."
                ),
            ));
        }
    }
    Ok(enforced)
}

/// A sorted map as Java prints it: `{a=1, b=2}`.
fn java_map(map: &BTreeMap<&str, i32>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// The source topics of `s`: external, then repartition.
fn all_sources(s: &Subtopology) -> impl Iterator<Item = &str> {
    s.source_topics
        .iter()
        .map(String::as_str)
        .chain(s.repartition_source_topics.iter().map(|t| t.name.as_str()))
}

/// Kafka's `ChangelogTopics.setup`: each changelog topic gets the largest count among its
/// subtopology's source and repartition source topics.
fn changelog_counts(
    subtopologies: &[&Subtopology],
    count: &dyn Fn(&str) -> Option<i32>,
) -> Result<HashMap<String, i32>, InvalidTopology> {
    let mut counts = HashMap::new();
    for s in subtopologies {
        let mut max: Option<i32> = None;
        for topic in all_sources(s) {
            // Kafka: IllegalStateException; sources exist and repartition topics are sized.
            let n = count(topic).ok_or_else(|| {
                unexpected(format!("No partition count for source topic {topic}"))
            })?;
            max = Some(max.map_or(n, |m| m.max(n)));
        }
        let Some(max) = max else {
            return Err(InvalidTopology(format!(
                "No source topics found for subtopology {}",
                s.subtopology_id
            )));
        };
        for t in &s.state_changelog_topics {
            counts.insert(t.name.clone(), max);
        }
    }
    Ok(counts)
}

/// Kafka's `fromPersistedSubtopology`: the number of tasks and the internal topics with their
/// counts.
fn configure_subtopology(
    s: &Subtopology,
    count: &dyn Fn(&str) -> Option<i32>,
    decided: &HashMap<String, i32>,
) -> Result<ConfiguredSubtopology, InvalidTopology> {
    let mut num_tasks: Option<i32> = None;
    for topic in all_sources(s) {
        // Kafka: IllegalStateException; unreachable after the changelog step.
        let n = count(topic).ok_or_else(|| {
            unexpected(format!(
                "Number of partitions must be set for topic {topic}"
            ))
        })?;
        num_tasks = Some(num_tasks.map_or(n, |m| m.max(n)));
    }
    let num_tasks = num_tasks.ok_or_else(|| {
        unexpected(format!(
            "Subtopology {} does not contain any source topics",
            s.subtopology_id
        ))
    })?;
    Ok(ConfiguredSubtopology {
        subtopology_id: s.subtopology_id.clone(),
        num_tasks,
        source_topics: s.source_topics.iter().cloned().collect(),
        repartition_source_topics: internal_topics(s, &s.repartition_source_topics, decided)?,
        repartition_sink_topics: s.repartition_sink_topics.iter().cloned().collect(),
        state_changelog_topics: internal_topics(s, &s.state_changelog_topics, decided)?,
    })
}

/// Kafka's `fromPersistedTopicInfo` on each of `topics`, sorted by name: the count the
/// topology gives, else the decided one. Kafka collects the topics and each one's configs
/// into maps that throw on a repeated key (IllegalStateException).
fn internal_topics(
    s: &Subtopology,
    topics: &[TopicInfo],
    decided: &HashMap<String, i32>,
) -> Result<Vec<TopicInfo>, InvalidTopology> {
    let mut configured: BTreeMap<&str, TopicInfo> = BTreeMap::new();
    for t in topics {
        let partitions = if t.partitions != 0 {
            t.partitions
        } else {
            decided.get(&t.name).copied().ok_or_else(|| {
                unexpected(format!(
                    "Number of partitions must be set for topic {}",
                    t.name
                ))
            })?
        };
        let mut keys = HashSet::new();
        if let Some((key, _)) = t.topic_configs.iter().find(|(k, _)| !keys.insert(k)) {
            return Err(unexpected(format!(
                "Duplicate config {key} for topic {} in subtopology {}.",
                t.name, s.subtopology_id
            )));
        }
        let info = TopicInfo {
            partitions,
            ..t.clone()
        };
        if configured.insert(t.name.as_str(), info).is_some() {
            return Err(unexpected(format!(
                "Duplicate internal topic {} in subtopology {}.",
                t.name, s.subtopology_id
            )));
        }
    }
    Ok(configured.into_values().collect())
}

/// Kafka's `missingInternalTopics`: every internal topic (later subtopologies by id, and a
/// subtopology's changelog topics, overwriting an earlier topic of the same name), less those
/// that exist; an existing one with another count is INCORRECTLY_PARTITIONED_TOPICS (the
/// first by name).
fn missing_internal_topics(
    topology: &TopologyValue,
    configured: &BTreeMap<String, ConfiguredSubtopology>,
    partitions: &dyn Fn(&str) -> Option<i32>,
) -> Result<Vec<TopicToCreate>, Stop> {
    let mut to_create: BTreeMap<String, TopicToCreate> = BTreeMap::new();
    for s in configured.values() {
        for t in s
            .repartition_source_topics
            .iter()
            .chain(&s.state_changelog_topics)
        {
            let topic = TopicToCreate {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: if t.replication_factor != 0 {
                    t.replication_factor
                } else {
                    -1
                },
                configs: t.topic_configs.clone(),
            };
            to_create.insert(t.name.clone(), topic);
        }
    }
    for topic in required_topics(topology) {
        let Some(found) = partitions(&topic) else {
            continue;
        };
        if let Some(expected) = to_create.remove(&topic) {
            if found != expected.partitions {
                return Err(Stop::Status(
                    status::INCORRECTLY_PARTITIONED_TOPICS,
                    format!(
                        "Existing topic {topic} has different number of partitions: expected \
                         {}, found {found}",
                        expected.partitions
                    ),
                ));
            }
        }
    }
    Ok(to_create.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::super::records::CopartitionGroup;
    use super::*;

    fn info(name: &str) -> TopicInfo {
        TopicInfo {
            name: name.to_string(),
            ..TopicInfo::default()
        }
    }

    fn fixed(name: &str, partitions: i32) -> TopicInfo {
        TopicInfo {
            partitions,
            ..info(name)
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// A subtopology reading `sources`, with no internal topics.
    fn sub(id: &str, sources: &[&str]) -> Subtopology {
        Subtopology {
            subtopology_id: id.to_string(),
            source_topics: strings(sources),
            ..Subtopology::default()
        }
    }

    fn topology(subtopologies: Vec<Subtopology>) -> TopologyValue {
        TopologyValue {
            epoch: 7,
            subtopologies,
        }
    }

    /// The topics that exist, with their partition counts.
    fn cluster(topics: &[(&str, i32)]) -> impl Fn(&str) -> Option<i32> {
        let topics: HashMap<String, i32> =
            topics.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        move |name| topics.get(name).copied()
    }

    fn configure(t: &TopologyValue, topics: &[(&str, i32)]) -> ConfiguredTopology {
        configure_topics(t, &cluster(topics)).expect("a valid topology")
    }

    fn invalid(t: &TopologyValue, topics: &[(&str, i32)]) -> String {
        configure_topics(t, &cluster(topics))
            .expect_err("an invalid topology")
            .0
    }

    fn status_of(c: &ConfiguredTopology) -> (i8, &str) {
        let s = c.status.as_ref().expect("a status");
        (s.code, s.detail.as_str())
    }

    fn subtopology<'a>(c: &'a ConfiguredTopology, id: &str) -> &'a ConfiguredSubtopology {
        &c.subtopologies.as_ref().expect("configured subtopologies")[id]
    }

    /// Subtopology 0 reads `in` and writes `rep`; subtopology 1 reads `rep`.
    fn two_step(rep: TopicInfo) -> TopologyValue {
        topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["rep"]),
                ..sub("0", &["in"])
            },
            Subtopology {
                repartition_source_topics: vec![rep],
                ..sub("1", &[])
            },
        ])
    }

    #[test]
    fn a_stateless_subtopology_over_an_existing_source_is_ready() {
        let c = configure(&topology(vec![sub("0", &["in"])]), &[("in", 3)]);
        assert!(c.is_ready());
        assert_eq!(c.topology_epoch, 7);
        assert!(c.internal_topics_to_create.is_empty());
        let s = subtopology(&c, "0");
        assert_eq!(s.num_tasks, 3);
        assert_eq!(s.source_topics, BTreeSet::from(["in".to_string()]));
        assert!(!s.is_stateful());
    }

    #[test]
    fn a_missing_source_topic_gives_missing_source_topics() {
        let c = configure(&topology(vec![sub("0", &["in"])]), &[]);
        assert!(!c.is_ready());
        assert_eq!(
            status_of(&c),
            (
                status::MISSING_SOURCE_TOPICS,
                "Source topics in are missing."
            )
        );
        assert_eq!(c.subtopologies, None);
        assert!(c.internal_topics_to_create.is_empty());
    }

    #[test]
    fn missing_source_topics_are_sorted_and_summarized_beyond_three() {
        let t = topology(vec![
            sub("0", &["e", "c", "ok"]),
            sub("1", &["a", "d", "b"]),
        ]);
        let c = configure(&t, &[("ok", 1)]);
        assert_eq!(
            status_of(&c),
            (
                status::MISSING_SOURCE_TOPICS,
                "Source topics a, b, c and 2 additional topics are missing."
            )
        );
    }

    #[test]
    fn missing_sources_come_before_an_invalid_topology() {
        let t = topology(vec![Subtopology {
            repartition_source_topics: vec![info("never-written")],
            ..sub("0", &["in"])
        }]);
        let c = configure(&t, &[]);
        assert_eq!(status_of(&c).0, status::MISSING_SOURCE_TOPICS);
    }

    #[test]
    fn a_repartition_topic_is_sized_from_the_subtopology_that_writes_it() {
        let c = configure(&two_step(info("rep")), &[("in", 4)]);
        assert_eq!(subtopology(&c, "1").num_tasks, 4);
        assert_eq!(
            subtopology(&c, "1").repartition_source_topics[0].partitions,
            4
        );
        assert_eq!(c.internal_topics_to_create[0].partitions, 4);
    }

    #[test]
    fn a_repartition_count_fixed_by_the_topology_is_kept() {
        let c = configure(&two_step(fixed("rep", 2)), &[("in", 4)]);
        assert_eq!(subtopology(&c, "1").num_tasks, 2);
        assert_eq!(c.internal_topics_to_create[0].partitions, 2);
    }

    #[test]
    fn repartition_topics_are_sized_through_a_chain_of_subtopologies() {
        // 2 reads r1 (written by 1) and writes r2, read by 0; 1 reads `in` (5 partitions).
        let t = topology(vec![
            Subtopology {
                repartition_source_topics: vec![info("r2")],
                ..sub("0", &[])
            },
            Subtopology {
                repartition_sink_topics: strings(&["r1"]),
                ..sub("1", &["in"])
            },
            Subtopology {
                repartition_source_topics: vec![info("r1")],
                repartition_sink_topics: strings(&["r2"]),
                ..sub("2", &[])
            },
        ]);
        let c = configure(&t, &[("in", 5)]);
        assert_eq!(subtopology(&c, "0").num_tasks, 5);
        assert_eq!(subtopology(&c, "2").num_tasks, 5);
    }

    #[test]
    fn a_repartition_loop_is_an_invalid_topology() {
        let t = topology(vec![
            Subtopology {
                repartition_source_topics: vec![info("b")],
                repartition_sink_topics: strings(&["a"]),
                ..sub("0", &[])
            },
            Subtopology {
                repartition_source_topics: vec![info("a")],
                repartition_sink_topics: strings(&["b"]),
                ..sub("1", &[])
            },
        ]);
        assert_eq!(
            invalid(&t, &[]),
            "Failed to compute number of partitions for all repartition topics. There may be \
             loops in the topology that cannot be resolved."
        );
    }

    #[test]
    fn a_repartition_source_never_written_is_an_invalid_topology() {
        let t = topology(vec![Subtopology {
            repartition_source_topics: vec![info("orphan")],
            ..sub("0", &["in"])
        }]);
        assert_eq!(
            invalid(&t, &[("in", 1)]),
            "Failed to compute number of partitions for all repartition topics, because a \
             repartition source topic is never used as a sink topic."
        );
    }

    #[test]
    fn a_subtopology_without_sources_is_an_invalid_topology() {
        let t = topology(vec![sub("0", &["in"]), sub("1", &[])]);
        assert_eq!(
            invalid(&t, &[("in", 1)]),
            "No source topics found for subtopology 1"
        );
    }

    #[test]
    fn copartitioned_sources_with_different_counts_are_incorrectly_partitioned() {
        let t = topology(vec![Subtopology {
            copartition_groups: vec![CopartitionGroup {
                source_topics: vec![0, 1, 2],
                ..CopartitionGroup::default()
            }],
            ..sub("0", &["left", "right", "middle"])
        }]);
        let c = configure(&t, &[("left", 3), ("right", 6), ("middle", 3)]);
        assert_eq!(
            status_of(&c),
            (
                status::INCORRECTLY_PARTITIONED_TOPICS,
                "Following topics do not have the same number of partitions: \
                 [{left=3, middle=3, right=6}]"
            )
        );
        assert_eq!(c.subtopologies, None);
        assert!(c.internal_topics_to_create.is_empty());
    }

    /// Subtopology 0 reads `wide` (6 partitions) and writes `rep`; subtopology 1 joins `rep`
    /// with `narrow` (3 partitions) and keeps state.
    fn join(rep: TopicInfo) -> TopologyValue {
        topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["rep"]),
                ..sub("0", &["wide"])
            },
            Subtopology {
                repartition_source_topics: vec![rep],
                state_changelog_topics: vec![info("store-changelog")],
                copartition_groups: vec![CopartitionGroup {
                    source_topics: vec![0],
                    repartition_source_topics: vec![0],
                    ..CopartitionGroup::default()
                }],
                ..sub("1", &["narrow"])
            },
        ])
    }

    #[test]
    fn a_copartitioned_repartition_topic_takes_the_source_topics_count() {
        let c = configure(&join(info("rep")), &[("wide", 6), ("narrow", 3)]);
        let joined = subtopology(&c, "1");
        assert_eq!(joined.repartition_source_topics[0].partitions, 3);
        assert_eq!(joined.num_tasks, 3);
        assert_eq!(joined.state_changelog_topics[0].partitions, 3);
    }

    #[test]
    fn a_fixed_repartition_count_that_breaks_copartitioning_is_incorrectly_partitioned() {
        let c = configure(&join(fixed("rep", 2)), &[("wide", 6), ("narrow", 3)]);
        assert_eq!(
            status_of(&c),
            (
                status::INCORRECTLY_PARTITIONED_TOPICS,
                "Number of partitions [2] of repartition topic [rep] doesn't match number of \
                 partitions [3] of the source topic."
            )
        );
    }

    #[test]
    fn a_group_of_repartition_topics_only_takes_their_largest_count() {
        // 0 writes r4 from a 4-partition topic, 1 writes r2 from a 2-partition one; 2 joins.
        let t = topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["r4"]),
                ..sub("0", &["four"])
            },
            Subtopology {
                repartition_sink_topics: strings(&["r2"]),
                ..sub("1", &["two"])
            },
            Subtopology {
                repartition_source_topics: vec![info("r4"), info("r2")],
                copartition_groups: vec![CopartitionGroup {
                    repartition_source_topics: vec![0, 1],
                    ..CopartitionGroup::default()
                }],
                ..sub("2", &[])
            },
        ]);
        let c = configure(&t, &[("four", 4), ("two", 2)]);
        let joined = subtopology(&c, "2");
        assert_eq!(joined.num_tasks, 4);
        assert!(joined
            .repartition_source_topics
            .iter()
            .all(|t| t.partitions == 4));
    }

    #[test]
    fn fixed_repartition_topics_that_disagree_are_incorrectly_partitioned() {
        let t = topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["a", "b"]),
                ..sub("0", &["in"])
            },
            Subtopology {
                repartition_source_topics: vec![fixed("a", 2), fixed("b", 3)],
                copartition_groups: vec![CopartitionGroup {
                    repartition_source_topics: vec![0, 1],
                    ..CopartitionGroup::default()
                }],
                ..sub("1", &[])
            },
        ]);
        let c = configure(&t, &[("in", 1)]);
        assert_eq!(
            status_of(&c),
            (
                status::INCORRECTLY_PARTITIONED_TOPICS,
                "Following topics do not have the same number of partitions: [{a=2, b=3}]"
            )
        );
    }

    #[test]
    fn a_copartition_index_out_of_range_is_refused() {
        let t = topology(vec![Subtopology {
            copartition_groups: vec![CopartitionGroup {
                source_topics: vec![0, 1],
                ..CopartitionGroup::default()
            }],
            ..sub("0", &["in"])
        }]);
        assert_eq!(
            invalid(&t, &[]),
            "A copartition group of subtopology 0 refers to source topic 1, but the \
             subtopology has 1 of them."
        );
    }

    #[test]
    fn a_changelog_topic_gets_as_many_partitions_as_the_subtopology_has_tasks() {
        let t = topology(vec![Subtopology {
            state_changelog_topics: vec![info("store-changelog")],
            ..sub("0", &["small", "big"])
        }]);
        let c = configure(&t, &[("small", 2), ("big", 5), ("store-changelog", 5)]);
        assert!(c.is_ready());
        let s = subtopology(&c, "0");
        assert_eq!(s.num_tasks, 5);
        assert!(s.is_stateful());
        assert_eq!(s.state_changelog_topics, vec![fixed("store-changelog", 5)]);
    }

    #[test]
    fn the_number_of_tasks_counts_repartition_sources_too() {
        let t = topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["rep"]),
                ..sub("0", &["wide"])
            },
            Subtopology {
                repartition_source_topics: vec![info("rep")],
                ..sub("1", &["narrow"])
            },
        ]);
        let c = configure(&t, &[("wide", 8), ("narrow", 2), ("rep", 8)]);
        assert!(c.is_ready());
        assert_eq!(subtopology(&c, "1").num_tasks, 8);
    }

    #[test]
    fn missing_internal_topics_are_listed_for_creation_with_the_subtopologies() {
        let t = topology(vec![
            Subtopology {
                repartition_sink_topics: strings(&["rep"]),
                ..sub("0", &["in"])
            },
            Subtopology {
                repartition_source_topics: vec![TopicInfo {
                    replication_factor: 3,
                    topic_configs: vec![("cleanup.policy".into(), "delete".into())],
                    ..info("rep")
                }],
                state_changelog_topics: vec![TopicInfo {
                    topic_configs: vec![
                        ("segment.bytes".into(), "1024".into()),
                        ("cleanup.policy".into(), "compact".into()),
                    ],
                    ..info("changelog")
                }],
                ..sub("1", &[])
            },
        ]);
        let c = configure(&t, &[("in", 2)]);
        assert!(!c.is_ready());
        assert_eq!(
            status_of(&c),
            (
                status::MISSING_INTERNAL_TOPICS,
                "Internal topics are missing: changelog, rep"
            )
        );
        assert_eq!(
            c.internal_topics_to_create,
            vec![
                TopicToCreate {
                    name: "changelog".into(),
                    partitions: 2,
                    replication_factor: -1,
                    configs: vec![
                        ("segment.bytes".into(), "1024".into()),
                        ("cleanup.policy".into(), "compact".into()),
                    ],
                },
                TopicToCreate {
                    name: "rep".into(),
                    partitions: 2,
                    replication_factor: 3,
                    configs: vec![("cleanup.policy".into(), "delete".into())],
                },
            ]
        );
        assert_eq!(subtopology(&c, "1").num_tasks, 2);
        assert_eq!(subtopology(&c, "0").num_tasks, 2);
    }

    #[test]
    fn only_the_internal_topics_that_do_not_exist_are_created() {
        let t = topology(vec![Subtopology {
            state_changelog_topics: ["a", "b", "c", "d", "e"].map(info).to_vec(),
            ..sub("0", &["in"])
        }]);
        let c = configure(&t, &[("in", 1), ("c", 1)]);
        assert_eq!(
            status_of(&c),
            (
                status::MISSING_INTERNAL_TOPICS,
                "Internal topics are missing: a, b, d and 1 additional topics"
            )
        );
        let names: Vec<&str> = c
            .internal_topics_to_create
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "d", "e"]);
    }

    #[test]
    fn an_existing_internal_topic_with_another_count_is_incorrectly_partitioned() {
        let t = topology(vec![Subtopology {
            state_changelog_topics: vec![info("store-changelog")],
            ..sub("0", &["in"])
        }]);
        let c = configure(&t, &[("in", 4), ("store-changelog", 2)]);
        assert_eq!(
            status_of(&c),
            (
                status::INCORRECTLY_PARTITIONED_TOPICS,
                "Existing topic store-changelog has different number of partitions: expected \
                 4, found 2"
            )
        );
        assert_eq!(c.subtopologies, None);
        assert!(c.internal_topics_to_create.is_empty());
    }

    #[test]
    fn an_existing_repartition_topic_counts_for_the_tasks_but_must_match() {
        // The repartition topic is sized 4 from `in`, but exists with 6 partitions.
        let c = configure(&two_step(info("rep")), &[("in", 4), ("rep", 6)]);
        assert_eq!(
            status_of(&c).1,
            "Existing topic rep has different number of partitions: expected 4, found 6"
        );
    }

    #[test]
    fn everything_existing_is_ready() {
        let t = join(info("rep"));
        let c = configure(
            &t,
            &[
                ("wide", 6),
                ("narrow", 3),
                ("rep", 3),
                ("store-changelog", 3),
            ],
        );
        assert!(c.is_ready());
        assert_eq!(c.status, None);
        assert!(c.internal_topics_to_create.is_empty());
        let configured = c.subtopologies.as_ref().expect("configured");
        assert_eq!(configured.keys().collect::<Vec<_>>(), ["0", "1"]);
        assert_eq!(configured["0"].num_tasks, 6);
        assert_eq!(
            configured["0"].repartition_sink_topics,
            BTreeSet::from(["rep".to_string()])
        );
        assert_eq!(configured["1"].num_tasks, 3);
    }

    #[test]
    fn a_duplicate_subtopology_id_is_refused() {
        let t = topology(vec![sub("0", &["a"]), sub("0", &["b"])]);
        assert_eq!(
            invalid(&t, &[("a", 1), ("b", 1)]),
            "Duplicate subtopology id 0 in the topology."
        );
    }

    #[test]
    fn required_topics_are_the_sources_repartition_sources_and_changelogs() {
        let t = join(info("rep"));
        assert_eq!(
            required_topics(&t),
            BTreeSet::from(["narrow", "rep", "store-changelog", "wide"].map(String::from))
        );
    }

    #[test]
    fn named_topics_include_the_sinks_in_the_order_first_named() {
        let t = join(info("rep"));
        assert_eq!(
            named_topics(&t),
            ["wide", "rep", "narrow", "store-changelog"]
        );
    }

    #[test]
    fn kafka_internal_topics_are_refused_first() {
        let t = topology(vec![Subtopology {
            repartition_sink_topics: strings(&["__transaction_state"]),
            repartition_source_topics: vec![info("__share_group_state")],
            ..sub("0", &["__consumer_offsets", "bad name"])
        }]);
        let refused = check_request_topology(&t).expect_err("refused");
        assert_eq!(refused.error_code(), codes::STREAMS_INVALID_TOPOLOGY);
        assert_eq!(
            refused.message(),
            "Use of Kafka internal topics __consumer_offsets,__transaction_state,\
             __share_group_state in a Kafka Streams topology is prohibited."
        );
    }

    #[test]
    fn invalid_topic_names_are_refused() {
        let t = topology(vec![Subtopology {
            repartition_sink_topics: strings(&["b?"]),
            state_changelog_topics: vec![info("d/")],
            source_topic_regex: strings(&["x.*"]),
            ..sub("0", &["a ", "fine", ".."])
        }]);
        assert_eq!(
            check_request_topology(&t),
            Err(TopologyCheck::InvalidTopology(
                "Topic names a ,..,b?,d/ are not valid topic names.".to_string()
            ))
        );
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(is_valid_topic_name("a.b_c-D9"));
        assert!(is_valid_topic_name(&"x".repeat(249)));
        assert!(!is_valid_topic_name(&"x".repeat(250)));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("."));
        assert!(!is_valid_topic_name(".."));
        assert!(!is_valid_topic_name("é"));
    }

    #[test]
    fn a_source_topic_regex_is_an_invalid_request() {
        let t = topology(vec![Subtopology {
            source_topic_regex: strings(&["in-.*"]),
            state_changelog_topics: vec![fixed("c", 3)],
            ..sub("0", &[])
        }]);
        let refused = check_request_topology(&t).expect_err("refused");
        assert_eq!(refused.error_code(), codes::INVALID_REQUEST);
        assert_eq!(
            refused.message(),
            "Regular expressions for source topics are not supported yet."
        );
    }

    #[test]
    fn a_changelog_topic_with_a_partition_count_is_an_invalid_topology() {
        let t = topology(vec![
            sub("0", &["in"]),
            Subtopology {
                state_changelog_topics: vec![
                    info("ok"),
                    fixed("store-changelog", 3),
                    fixed("z", 1),
                ],
                ..sub("1", &["in"])
            },
        ]);
        assert_eq!(
            check_request_topology(&t),
            Err(TopologyCheck::InvalidTopology(
                "Changelog topic store-changelog must have an undefined partition count, but \
                 it is set to 3."
                    .to_string()
            ))
        );
    }

    #[test]
    fn a_well_formed_topology_passes_the_request_checks() {
        assert_eq!(check_request_topology(&join(info("rep"))), Ok(()));
    }

    #[test]
    fn the_metadata_hash_changes_with_a_partition_count() {
        let before = metadata_hash(&[("a".into(), 3), ("b".into(), 1)]);
        let after = metadata_hash(&[("a".into(), 4), ("b".into(), 1)]);
        assert_ne!(before, after);
    }

    #[test]
    fn the_metadata_hash_changes_when_a_topic_appears() {
        let before = metadata_hash(&[("a".into(), 3)]);
        let after = metadata_hash(&[("a".into(), 3), ("b".into(), 1)]);
        assert_ne!(before, after);
        assert_ne!(before, metadata_hash(&[]));
    }

    #[test]
    fn the_metadata_hash_is_stable_and_ignores_the_order_given() {
        let one = metadata_hash(&[("a".into(), 3), ("b".into(), 1)]);
        let two = metadata_hash(&[("b".into(), 1), ("a".into(), 3)]);
        assert_eq!(one, two);
        assert_eq!(metadata_hash(&[]), 0);
        // Names and counts do not run into each other.
        assert_ne!(
            metadata_hash(&[("ab".into(), 1)]),
            metadata_hash(&[("a".into(), 1), ("b".into(), 1)])
        );
    }

    #[test]
    fn the_topology_metadata_hash_covers_the_existing_required_topics() {
        let t = join(info("rep"));
        let none = topology_metadata_hash(&t, &cluster(&[]));
        let some = topology_metadata_hash(&t, &cluster(&[("wide", 6), ("unrelated", 1)]));
        assert_eq!(none, 0);
        assert_eq!(some, metadata_hash(&[("wide".into(), 6)]));
        let more = topology_metadata_hash(&t, &cluster(&[("wide", 6), ("rep", 3)]));
        assert_ne!(some, more);
    }

    #[test]
    fn topics_are_summarized_as_kafka_does() {
        assert_eq!(summarize([]), "<none>");
        assert_eq!(summarize(["a"]), "a");
        assert_eq!(summarize(["a", "b", "c"]), "a, b, c");
        assert_eq!(
            summarize(["a", "b", "c", "d"]),
            "a, b, c and 1 additional topics"
        );
    }

    #[test]
    fn java_hash_order_is_a_java_hash_maps_iteration_order() {
        // "0".."9" hash to 48..57 (buckets 0..9), "10" to 1567 (bucket 15), "11" to 1568
        // (bucket 0, after "0").
        let ids: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let order = java_hash_order(ids.iter().map(String::as_str));
        assert_eq!(
            order,
            ["0", "11", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
        );
        // Past 12 keys the table has 32 buckets: "11" and "12" go to buckets 0 and 1, "0".."9"
        // to 16..25 and "10" to 31.
        let ids: Vec<String> = (0..13).map(|i| i.to_string()).collect();
        let order = java_hash_order(ids.iter().map(String::as_str));
        assert_eq!(
            order,
            ["11", "12", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
        );
        assert_eq!(java_hash_order(["b", "a", "b"]), ["a", "b"]);
    }
}
