//! Fetch from the closest replica (KIP-392): which replica a consumer should read a partition
//! from. A consumer names its rack in Fetch (v11+, `rack_id`, the client's `client.rack`); the
//! partition's leader, when `replica.selector.class` names a selector, picks a replica and
//! answers with its id in `preferred_read_replica` and no records. The consumer then fetches
//! from that replica, which serves it up to its own high watermark, until the replica errs or
//! the consumer's lease on it runs out (librdkafka: 5 minutes), when it goes back to the leader.
//!
//! The two selectors Kafka ships are served, by their Java class names:
//! - `org.apache.kafka.common.replica.LeaderSelector`: always the leader (no redirection);
//! - `org.apache.kafka.common.replica.RackAwareReplicaSelector`: a replica in the client's
//!   rack, the leader if it is there, else the most caught-up one there; the leader when the
//!   client names no rack or no replica is in its rack.
//!
//! The candidates are Kafka's (`ReplicaManager.findPreferredReadReplica`): the leader, and the
//! followers in the ISR whose log holds the fetch offset (their log start at or below it, their
//! log end at or above it), on a registered broker. This module is the choice alone, free of
//! I/O; the fetch handler gathers the views.

/// A selector `replica.selector.class` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// Kafka's `LeaderSelector`.
    Leader,
    /// Kafka's `RackAwareReplicaSelector`.
    RackAware,
}

/// Kafka's class name of [`ReplicaSelector::Leader`].
pub const LEADER_SELECTOR: &str = "org.apache.kafka.common.replica.LeaderSelector";
/// Kafka's class name of [`ReplicaSelector::RackAware`].
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// One replica as the selector sees it (Kafka's `ReplicaView`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub broker_id: i32,
    /// The broker's `broker.rack`, from its registration.
    pub rack: Option<String>,
    pub log_end_offset: i64,
    /// How long ago the replica last had everything the leader had (0 for the leader).
    pub time_since_caught_up_ms: i64,
}

impl ReplicaSelector {
    /// The selector a class name stands for: `Ok(None)` for an empty value (no selector:
    /// consumers read from leaders), an error for a class gregor does not have.
    pub fn parse(class: &str) -> Result<Option<ReplicaSelector>, String> {
        match class.trim() {
            "" => Ok(None),
            LEADER_SELECTOR => Ok(Some(ReplicaSelector::Leader)),
            RACK_AWARE_SELECTOR => Ok(Some(ReplicaSelector::RackAware)),
            other => Err(format!(
                "{other} is not a selector gregor has (it has {LEADER_SELECTOR} and {RACK_AWARE_SELECTOR})"
            )),
        }
    }

    /// Kafka's class name of this selector.
    pub fn class_name(self) -> &'static str {
        match self {
            ReplicaSelector::Leader => LEADER_SELECTOR,
            ReplicaSelector::RackAware => RACK_AWARE_SELECTOR,
        }
    }

    /// The replica a client in `client_rack` should fetch from: a broker id, the leader's
    /// included (which the fetch answers as no preference). `followers` are the candidates
    /// besides the leader.
    pub fn select(self, client_rack: &str, leader: &ReplicaView, followers: &[ReplicaView]) -> i32 {
        match self {
            ReplicaSelector::Leader => leader.broker_id,
            ReplicaSelector::RackAware => {
                if client_rack.is_empty() || leader.rack.as_deref() == Some(client_rack) {
                    return leader.broker_id;
                }
                // The most caught-up replica in the client's rack: the highest log end, then
                // the most recently caught up; the lowest id among equals, so the choice does
                // not move from one fetch to the next.
                followers
                    .iter()
                    .filter(|r| r.rack.as_deref() == Some(client_rack))
                    .max_by(|a, b| {
                        a.log_end_offset
                            .cmp(&b.log_end_offset)
                            .then(b.time_since_caught_up_ms.cmp(&a.time_since_caught_up_ms))
                            .then(b.broker_id.cmp(&a.broker_id))
                    })
                    .map_or(leader.broker_id, |r| r.broker_id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(broker_id: i32, rack: &str, log_end_offset: i64, since: i64) -> ReplicaView {
        ReplicaView {
            broker_id,
            rack: (!rack.is_empty()).then(|| rack.to_string()),
            log_end_offset,
            time_since_caught_up_ms: since,
        }
    }

    #[test]
    fn rack_aware_prefers_the_leader_in_the_client_s_rack_then_the_most_caught_up_there() {
        let s = ReplicaSelector::RackAware;
        let leader = view(1, "a", 100, 0);
        let followers = [
            view(2, "b", 90, 10),
            view(3, "b", 100, 50),
            view(4, "b", 100, 20),
            view(5, "c", 100, 0),
        ];
        // The leader's own rack, no rack, or a rack without replicas: the leader.
        assert_eq!(s.select("a", &leader, &followers), 1);
        assert_eq!(s.select("", &leader, &followers), 1);
        assert_eq!(s.select("z", &leader, &followers), 1);
        // In rack b: the highest log end (3 and 4), then the most recently caught up (4).
        assert_eq!(s.select("b", &leader, &followers), 4);
        assert_eq!(s.select("c", &leader, &followers), 5);
        // Equal in everything: the lowest id, every time.
        let twins = [view(7, "b", 100, 5), view(6, "b", 100, 5)];
        assert_eq!(s.select("b", &leader, &twins), 6);
        // A leader without a rack is never in the client's.
        assert_eq!(
            s.select("b", &view(1, "", 100, 0), &[view(2, "b", 100, 0)]),
            2
        );
    }

    #[test]
    fn the_leader_selector_always_answers_the_leader() {
        let leader = view(1, "a", 100, 0);
        assert_eq!(
            ReplicaSelector::Leader.select("b", &leader, &[view(2, "b", 100, 0)]),
            1
        );
    }

    #[test]
    fn class_names_parse_to_the_selectors_and_back() {
        for s in [ReplicaSelector::Leader, ReplicaSelector::RackAware] {
            assert_eq!(ReplicaSelector::parse(s.class_name()), Ok(Some(s)));
        }
        assert_eq!(ReplicaSelector::parse(""), Ok(None));
        let err = ReplicaSelector::parse("com.example.MySelector").expect_err("unknown class");
        assert!(err.contains("com.example.MySelector"), "{err}");
    }
}
