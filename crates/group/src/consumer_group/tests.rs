//! Behaviour tests of the consumer group core: one per rule, and a property test over random
//! join/leave/heartbeat/time sequences.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::records::Record;

const T: u128 = 0xA;
const U: u128 = 0xB;

fn topics() -> TopicsImage {
    let mut t = TopicsImage::new();
    t.insert("t", TopicId::from_u128(T), 6);
    t.insert("u", TopicId::from_u128(U), 3);
    t
}

fn tid(n: u128) -> TopicId {
    TopicId::from_u128(n)
}

/// A simulated KIP-848 client: it owns what its last assignment said, at once.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    instance_id: Option<String>,
    epoch: i32,
    owned: TopicPartitions,
    subscription: Vec<String>,
    assignor: Option<String>,
}

impl Client {
    fn new(id: &str, subscription: &[&str]) -> Client {
        Client {
            member_id: id.to_string(),
            instance_id: None,
            epoch: 0,
            owned: TopicPartitions::new(),
            subscription: subscription.iter().map(|s| s.to_string()).collect(),
            assignor: None,
        }
    }

    fn request(&self) -> ConsumerGroupHeartbeatRequest {
        let owned = self
            .owned
            .iter()
            .map(|(t, p)| HeartbeatTopicPartitions {
                topic_id: *t,
                partitions: p.iter().copied().collect(),
            })
            .collect();
        ConsumerGroupHeartbeatRequest {
            api_version: 1,
            group_id: "g".into(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance_id.clone(),
            rebalance_timeout_ms: if self.epoch == 0 { 30_000 } else { -1 },
            subscribed_topic_names: (self.epoch == 0).then(|| self.subscription.clone()),
            server_assignor: self.assignor.clone(),
            topic_partitions: Some(owned),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            ..ConsumerGroupHeartbeatRequest::default()
        }
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

/// The coordinator, the topics, and every record it asked to append, in order.
struct Harness {
    c: ConsumerGroupCoordinator,
    topics: TopicsImage,
    log: Vec<Record>,
    now: i64,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(ConsumerGroupConfig::default())
    }

    fn with(config: ConsumerGroupConfig) -> Harness {
        Harness {
            c: ConsumerGroupCoordinator::new(config),
            topics: topics(),
            log: Vec::new(),
            now: 1_000,
        }
    }

    fn raw(&mut self, req: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
        let r = self.c.heartbeat(req, &self.topics, self.now);
        if let Some(a) = r.append {
            assert_eq!(a.partition, self.c.partition_for(&req.group_id));
            self.log.extend(a.records);
        }
        r.response
    }

    fn hb(&mut self, client: &mut Client) -> ConsumerGroupHeartbeatResponse {
        let resp = self.raw(&client.request());
        if resp.error_code == codes::NONE {
            client.epoch = resp.member_epoch;
            if let Some(a) = &resp.assignment {
                client.owned = a
                    .iter()
                    .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                    .collect();
            }
        }
        resp
    }

    fn leave(&mut self, client: &mut Client, epoch: i32) -> ConsumerGroupHeartbeatResponse {
        let req = ConsumerGroupHeartbeatRequest {
            member_epoch: epoch,
            ..client.request()
        };
        let resp = self.raw(&req);
        client.owned.clear();
        client.epoch = 0;
        resp
    }

    fn tick(&mut self, advance: i64) {
        self.now += advance;
        for a in self.c.tick(self.now, &self.topics) {
            self.log.extend(a.records);
        }
    }

    fn group(&self) -> &ConsumerGroup {
        self.c.group("g").expect("the group exists")
    }

    /// Heartbeats every client until nothing changes (or a bound), then returns.
    fn settle(&mut self, clients: &mut [Client]) {
        for _ in 0..10 {
            for c in clients.iter_mut() {
                let resp = self.hb(c);
                assert_eq!(resp.error_code, codes::NONE, "{resp:?}");
            }
            assert_disjoint(clients);
        }
    }

    /// A fresh coordinator loaded from the log has the same groups.
    fn assert_replay_equals_live(&self) {
        let mut other = ConsumerGroupCoordinator::new(self.c.config().clone());
        let partition = self.c.partition_for("g");
        other
            .load_partition(partition, self.log.clone(), self.now)
            .expect("the log decodes");
        assert_eq!(other.group("g"), self.c.group("g"));
    }
}

fn assert_disjoint(clients: &[Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t:?}-{p} owned twice: {clients:?}");
            }
        }
    }
}

#[test]
fn first_member_joins_and_gets_every_partition() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t", "u"]);
    let resp = h.hb(&mut a);
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(resp.member_id.as_deref(), Some("a"));
    assert_eq!(resp.member_epoch, 1);
    assert_eq!(resp.heartbeat_interval_ms, 5_000);
    assert_eq!(a.count(), 9);
    assert_eq!(h.group().state(), ConsumerGroupState::Stable);
    assert_eq!(h.group().group_epoch(), 1);
    assert_eq!(h.group().assignment_epoch(), 1);
    // A plain heartbeat changes nothing and carries no assignment.
    let resp = h.hb(&mut a);
    assert_eq!(resp.member_epoch, 1);
    assert_eq!(resp.assignment, None);
    assert!(h
        .c
        .heartbeat(&a.request(), &h.topics, h.now)
        .append
        .is_none());
    // A full request (after an error, the client sends every field) gets the assignment.
    let full = ConsumerGroupHeartbeatRequest {
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(a.subscription.clone()),
        ..a.request()
    };
    let resp = h.raw(&full);
    assert_eq!(resp.assignment.map(|a| a.len()), Some(2));
    h.assert_replay_equals_live();
}

#[test]
fn two_members_split_the_partitions() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    h.settle(&mut clients);
    assert_eq!(clients[0].count(), 3);
    assert_eq!(clients[1].count(), 3);
    assert_eq!(h.group().state(), ConsumerGroupState::Stable);
    assert_eq!(clients[0].epoch, 2);
    assert_eq!(clients[1].epoch, 2);
    h.assert_replay_equals_live();
}

#[test]
fn a_third_member_waits_for_revocations_before_it_gets_partitions() {
    let mut h = Harness::new();
    let mut ab = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    h.settle(&mut ab);
    let (mut a, mut b) = (ab[0].clone(), ab[1].clone());
    assert_eq!((a.count(), b.count()), (3, 3));
    let mut c = Client::new("c", &["t"]);
    // c joins: epoch 3, its target is 2 partitions that a and b still own.
    let resp = h.hb(&mut c);
    assert_eq!(resp.member_epoch, 3);
    assert_eq!(c.count(), 0);
    assert_eq!(
        h.group().member("c").map(|m| m.state),
        Some(MemberState::UnreleasedPartitions)
    );
    // a is asked to revoke one partition and stays at its epoch until it does.
    let resp = h.hb(&mut a);
    assert_eq!(resp.member_epoch, 2);
    assert_eq!(a.count(), 2);
    assert_eq!(
        h.group().member("a").map(|m| m.state),
        Some(MemberState::UnrevokedPartitions)
    );
    // c still gets nothing: the partition is pending revocation until a acknowledges.
    h.hb(&mut c);
    assert_disjoint(&[a.clone(), b.clone(), c.clone()]);
    // a acknowledges (it no longer reports the partition) and moves to epoch 3.
    let resp = h.hb(&mut a);
    assert_eq!(resp.member_epoch, 3);
    h.hb(&mut c);
    assert_eq!(c.count(), 1);
    h.hb(&mut b);
    h.hb(&mut b);
    h.hb(&mut c);
    assert_eq!((a.count(), b.count(), c.count()), (2, 2, 2));
    assert_disjoint(&[a, b, c]);
    assert_eq!(h.group().state(), ConsumerGroupState::Stable);
    h.assert_replay_equals_live();
}

#[test]
fn a_leaving_member_frees_its_partitions() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    h.settle(&mut clients);
    let epoch = h.group().group_epoch();
    let resp = h.leave(&mut clients[1], -1);
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(resp.member_epoch, -1);
    assert!(h.group().member("b").is_none());
    assert_eq!(h.group().group_epoch(), epoch + 1);
    let mut a = vec![clients[0].clone()];
    h.settle(&mut a);
    assert_eq!(a[0].count(), 6);
    h.assert_replay_equals_live();
}

#[test]
fn an_expired_session_fences_the_member() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    h.settle(&mut clients);
    assert_eq!(h.c.next_deadline(), Some(h.now + 45_000));
    // a keeps heartbeating; b goes silent.
    h.tick(30_000);
    h.hb(&mut clients[0]);
    h.tick(20_000);
    assert!(h.group().member("b").is_none());
    assert!(h.group().member("a").is_some());
    let mut a = vec![clients[0].clone()];
    h.settle(&mut a);
    assert_eq!(a[0].count(), 6);
    // b comes back: unknown, then it rejoins.
    let resp = h.hb(&mut clients[1]);
    assert_eq!(resp.error_code, codes::UNKNOWN_MEMBER_ID);
    h.assert_replay_equals_live();
}

/// The group's own `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` (its
/// GROUP configs) replace the broker's: the interval in each answer, the session deadline set
/// at each heartbeat. A change reaches live members at their next heartbeat, as in Kafka's
/// `GroupMetadataManager`; other groups keep the broker's values.
#[test]
fn a_groups_own_session_timeout_and_heartbeat_interval_apply_from_the_next_heartbeat() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t"]);
    let resp = h.hb(&mut a);
    assert_eq!(resp.heartbeat_interval_ms, 5_000);
    assert_eq!(h.c.next_deadline(), Some(h.now + 45_000));

    // Set on the live group: the deadline already set stays until the next heartbeat.
    h.c.set_group_overrides(
        "g",
        ConsumerGroupOverrides {
            session_timeout_ms: Some(20_000),
            heartbeat_interval_ms: Some(2_000),
        },
    );
    assert_eq!(h.c.session_timeout_ms("g"), 20_000);
    assert_eq!(h.c.heartbeat_interval_ms("g"), 2_000);
    assert_eq!(h.c.session_timeout_ms("other"), 45_000);
    assert_eq!(h.c.next_deadline(), Some(h.now + 45_000));
    h.tick(1_000);
    let resp = h.hb(&mut a);
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(resp.heartbeat_interval_ms, 2_000);
    assert_eq!(h.c.next_deadline(), Some(h.now + 20_000));

    // Silent for longer than the group's timeout but less than the broker's: fenced.
    h.tick(20_001);
    assert!(h.group().member("a").is_none());
    assert_eq!(h.hb(&mut a).error_code, codes::UNKNOWN_MEMBER_ID);

    // Removed: back to the broker's values at the next heartbeat.
    h.c.set_group_overrides("g", ConsumerGroupOverrides::default());
    let mut b = Client::new("b", &["t"]);
    let resp = h.hb(&mut b);
    assert_eq!(resp.heartbeat_interval_ms, 5_000);
    assert_eq!(h.c.next_deadline(), Some(h.now + 45_000));

    // Only one of the two set: the other is the broker's.
    h.c.set_group_overrides(
        "g",
        ConsumerGroupOverrides {
            session_timeout_ms: None,
            heartbeat_interval_ms: Some(3_000),
        },
    );
    assert_eq!(h.hb(&mut b).heartbeat_interval_ms, 3_000);
    assert_eq!(h.c.next_deadline(), Some(h.now + 45_000));
    h.assert_replay_equals_live();
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t"]);
    h.hb(&mut a);
    let mut b = Client::new("b", &["t"]);
    h.hb(&mut b);
    // a is asked to revoke but never acknowledges (it keeps reporting the partitions).
    let before = a.owned.clone();
    let resp = h.raw(&a.request());
    assert_eq!(resp.member_epoch, 1);
    assert_eq!(
        h.group().member("a").map(|m| m.state),
        Some(MemberState::UnrevokedPartitions)
    );
    assert_eq!(a.owned, before);
    h.tick(29_999);
    assert!(h.group().member("a").is_some());
    h.tick(1);
    assert!(h.group().member("a").is_none());
    h.assert_replay_equals_live();
}

#[test]
fn epochs_ahead_or_behind_are_fenced_but_a_lost_response_is_forgiven() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t"]);
    h.hb(&mut a);
    let mut b = Client::new("b", &["t"]);
    h.hb(&mut b);
    h.hb(&mut a);
    h.hb(&mut a);
    assert_eq!(a.epoch, 2);
    let ahead = ConsumerGroupHeartbeatRequest {
        member_epoch: 3,
        ..a.request()
    };
    assert_eq!(h.raw(&ahead).error_code, codes::FENCED_MEMBER_EPOCH);
    // The previous epoch with a subset of the assignment: the response was lost.
    let previous = ConsumerGroupHeartbeatRequest {
        member_epoch: 1,
        ..a.request()
    };
    let resp = h.raw(&previous);
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(resp.member_epoch, 2);
    // The previous epoch while owning partitions it no longer has: fenced.
    let mut stale = a.request();
    stale.member_epoch = 1;
    stale.topic_partitions = Some(vec![HeartbeatTopicPartitions {
        topic_id: tid(T),
        partitions: (0..6).collect(),
    }]);
    assert_eq!(h.raw(&stale).error_code, codes::FENCED_MEMBER_EPOCH);
    // Epoch 0 under the same id is a rejoin (Kafka 4.4): the member gets its partitions
    // back at its epoch.
    let rejoin = ConsumerGroupHeartbeatRequest {
        member_epoch: 0,
        rebalance_timeout_ms: 1,
        subscribed_topic_names: Some(vec!["t".into()]),
        topic_partitions: Some(vec![]),
        ..a.request()
    };
    let resp = h.raw(&rejoin);
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(resp.member_epoch, 2);
    assert_eq!(resp.assignment.map(|a| a[0].partitions.len()), Some(3));
}

#[test]
fn unknown_members_and_groups() {
    let mut h = Harness::new();
    let mut ghost = Client::new("ghost", &["t"]);
    ghost.epoch = 3;
    assert_eq!(h.hb(&mut ghost).error_code, codes::GROUP_ID_NOT_FOUND);
    let mut a = Client::new("a", &["t"]);
    h.hb(&mut a);
    assert_eq!(h.hb(&mut ghost).error_code, codes::UNKNOWN_MEMBER_ID);
    let leave = ConsumerGroupHeartbeatRequest {
        member_epoch: -1,
        ..ghost.request()
    };
    assert_eq!(h.raw(&leave).error_code, codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn invalid_first_heartbeats_are_refused_before_anything_changes() {
    let mut h = Harness::new();
    let base = Client::new("a", &["t"]).request();
    let cases: Vec<(ConsumerGroupHeartbeatRequest, i16, &str)> = vec![
        (
            ConsumerGroupHeartbeatRequest {
                member_id: String::new(),
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "MemberId can't be empty.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                group_id: String::new(),
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "GroupId can't be empty.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                instance_id: Some(String::new()),
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "InstanceId can't be empty.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                rack_id: Some(String::new()),
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "RackId can't be empty.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                rebalance_timeout_ms: -1,
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "RebalanceTimeoutMs must be provided in first request.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                topic_partitions: None,
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                subscribed_topic_names: None,
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                member_epoch: -2,
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "InstanceId can't be null.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                member_epoch: -3,
                ..base.clone()
            },
            codes::INVALID_REQUEST,
            "MemberEpoch is invalid.",
        ),
        (
            ConsumerGroupHeartbeatRequest {
                server_assignor: Some("sticky".into()),
                ..base.clone()
            },
            codes::UNSUPPORTED_ASSIGNOR,
            "ServerAssignor sticky is not supported. Supported assignors: uniform, range.",
        ),
    ];
    let bad_regex = h.raw(&ConsumerGroupHeartbeatRequest {
        subscribed_topic_regex: Some("t(".into()),
        ..base.clone()
    });
    assert_eq!(bad_regex.error_code, codes::INVALID_REGULAR_EXPRESSION);
    assert!(bad_regex.error_message.as_deref().is_some_and(
        |m| m.starts_with("SubscribedTopicRegex `t(` is not a valid regular expression")
    ));
    for (req, code, message) in cases {
        let resp = h.raw(&req);
        assert_eq!(resp.error_code, code, "{message}");
        assert_eq!(resp.error_message.as_deref(), Some(message));
    }
    assert!(h.c.group("g").is_none());
    assert!(h.log.is_empty());
}

#[test]
fn a_v0_join_without_member_id_gets_one() {
    let mut h = Harness::new();
    let req = ConsumerGroupHeartbeatRequest {
        api_version: 0,
        member_id: String::new(),
        ..Client::new("x", &["t"]).request()
    };
    let resp = h.raw(&req);
    assert_eq!(resp.error_code, codes::NONE);
    let id = resp.member_id.expect("a generated member id");
    assert_eq!(id.len(), 22);
    assert!(h.group().member(&id).is_some());
}

#[test]
fn the_group_size_is_bounded() {
    let mut h = Harness::with(ConsumerGroupConfig {
        max_size: 1,
        ..ConsumerGroupConfig::default()
    });
    let mut a = Client::new("a", &["t"]);
    h.hb(&mut a);
    let mut b = Client::new("b", &["t"]);
    assert_eq!(h.hb(&mut b).error_code, codes::GROUP_MAX_SIZE_REACHED);
    assert_eq!(h.hb(&mut a).error_code, codes::NONE);
    // A static member coming back under a new member id replaces itself.
    h.leave(&mut a, -1);
    let mut s = Client::new("s1", &["t"]);
    s.instance_id = Some("i".into());
    assert_eq!(h.hb(&mut s).error_code, codes::NONE);
    h.leave(&mut s, -2);
    let mut again = Client::new("s2", &["t"]);
    again.instance_id = Some("i".into());
    assert_eq!(h.hb(&mut again).error_code, codes::NONE);
}

#[test]
fn the_range_assignor_is_used_when_members_ask_for_it() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    for c in &mut clients {
        c.assignor = Some("range".into());
    }
    h.settle(&mut clients);
    let parts = |c: &Client| c.owned[&tid(T)].iter().copied().collect::<Vec<_>>();
    assert_eq!(parts(&clients[0]), vec![0, 1, 2]);
    assert_eq!(parts(&clients[1]), vec![3, 4, 5]);
    let d = h.c.describe(&["g".to_string()], &h.topics);
    assert_eq!(d[0].assignor_name, "range");
}

#[test]
fn new_partitions_bump_the_group_epoch() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"])];
    h.settle(&mut clients);
    let epoch = h.group().group_epoch();
    h.topics.insert("t", tid(T), 8);
    h.settle(&mut clients);
    assert_eq!(h.group().group_epoch(), epoch + 1);
    assert_eq!(clients[0].count(), 8);
    // A topic subscribed before it exists is assigned once it is created.
    let mut b = vec![Client::new("b", &["later"])];
    h.settle(&mut b);
    assert_eq!(b[0].count(), 0);
    h.topics.insert("later", TopicId::from_u128(0xC), 2);
    h.settle(&mut b);
    assert_eq!(b[0].count(), 2);
    h.assert_replay_equals_live();
}

#[test]
fn a_regex_subscribes_to_matching_topics_as_they_come() {
    let mut h = Harness::new();
    h.topics
        .insert("__consumer_offsets", TopicId::from_u128(0xF), 50);
    let mut a = Client::new("a", &[]);
    let join = ConsumerGroupHeartbeatRequest {
        subscribed_topic_regex: Some("t.*".into()),
        ..a.request()
    };
    let resp = h.raw(&join);
    assert_eq!(resp.error_code, codes::NONE);
    a.epoch = resp.member_epoch;
    let owned = |resp: &ConsumerGroupHeartbeatResponse| -> Vec<(TopicId, usize)> {
        resp.assignment
            .iter()
            .flatten()
            .map(|t| (t.topic_id, t.partitions.len()))
            .collect()
    };
    // Whole names only: "t" matches, "u" does not.
    assert_eq!(owned(&resp), vec![(tid(T), 6)]);
    // A new matching topic is picked up at the next heartbeat, with a new group epoch.
    h.topics.insert("t2", TopicId::from_u128(0xD), 2);
    let epoch = h.group().group_epoch();
    let resp = h.hb(&mut a);
    assert_eq!(h.group().group_epoch(), epoch + 1);
    assert_eq!(
        owned(&resp),
        vec![(tid(T), 6), (TopicId::from_u128(0xD), 2)]
    );
    // Internal topics never match, not even ".*".
    let mut b = Client::new("b", &[]);
    let resp = h.raw(&ConsumerGroupHeartbeatRequest {
        subscribed_topic_regex: Some(".*".into()),
        ..b.request()
    });
    b.epoch = resp.member_epoch;
    assert!(!h
        .group()
        .subscription_metadata()
        .contains_key("__consumer_offsets"));
    assert!(h.group().subscription_metadata().contains_key("u"));
    h.assert_replay_equals_live();
    // An empty regex drops the subscription.
    let resp = h.raw(&ConsumerGroupHeartbeatRequest {
        subscribed_topic_regex: Some(String::new()),
        ..b.request()
    });
    assert_eq!(resp.error_code, codes::NONE);
    assert_eq!(
        h.group()
            .member("b")
            .map(|m| m.subscribed_topic_regex.clone()),
        Some(None)
    );
    let d = h.c.describe(&["g".to_string()], &h.topics);
    let a_desc = d[0].members.iter().find(|m| m.member_id == "a");
    assert_eq!(
        a_desc.and_then(|m| m.subscribed_topic_regex.as_deref()),
        Some("t.*")
    );
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t"]);
    a.instance_id = Some("instance-a".into());
    let mut clients = vec![a, Client::new("b", &["t"])];
    h.settle(&mut clients);
    let owned_before = clients[0].owned.clone();
    let epoch = h.group().group_epoch();
    let resp = h.leave(&mut clients[0], -2);
    assert_eq!(resp.member_epoch, -2);
    // The static member is still there, at epoch -2, and keeps its partitions.
    assert_eq!(h.group().member("a").map(|m| m.member_epoch), Some(-2));
    assert_eq!(h.group().group_epoch(), epoch);
    // Another member may not take the instance id while it is held... but after a -2 leave
    // the same instance rejoins with a new member id and gets the same partitions back.
    let mut again = Client::new("a2", &["t"]);
    again.instance_id = Some("instance-a".into());
    let resp = h.hb(&mut again);
    assert_eq!(resp.error_code, codes::NONE);
    assert!(h.group().member("a").is_none());
    clients[0] = again;
    h.settle(&mut clients);
    assert_eq!(clients[0].owned, owned_before);
    // A second instance with the same id while the first is active: refused.
    let mut intruder = Client::new("z", &["t"]);
    intruder.instance_id = Some("instance-a".into());
    assert_eq!(
        h.hb(&mut intruder).error_code,
        codes::UNRELEASED_INSTANCE_ID
    );
    intruder.epoch = 1;
    assert_eq!(h.hb(&mut intruder).error_code, codes::FENCED_INSTANCE_ID);
    h.assert_replay_equals_live();
}

#[test]
fn a_static_member_that_stays_away_expires() {
    let mut h = Harness::new();
    let mut a = Client::new("a", &["t"]);
    a.instance_id = Some("i".into());
    let mut clients = vec![a];
    h.settle(&mut clients);
    h.leave(&mut clients[0], -2);
    h.tick(45_000);
    assert!(h.group().members().is_empty());
    assert_eq!(h.group().state(), ConsumerGroupState::Empty);
    h.assert_replay_equals_live();
}

#[test]
fn offset_commits_check_the_member_epoch() {
    let mut h = Harness::new();
    assert_eq!(
        h.c.validate_offset_commit("g", "a", 1, false, 9),
        OffsetCheck::NotConsumerGroup
    );
    let mut clients = vec![Client::new("a", &["t"])];
    h.settle(&mut clients);
    let epoch = clients[0].epoch;
    assert_eq!(
        h.c.validate_offset_commit("g", "a", epoch, false, 9),
        OffsetCheck::Accepted
    );
    let stale = h.c.validate_offset_commit("g", "a", epoch - 1, false, 9);
    assert!(matches!(
        stale,
        OffsetCheck::Rejected {
            error_code: codes::STALE_MEMBER_EPOCH,
            ..
        }
    ));
    assert!(matches!(
        h.c.validate_offset_commit("g", "a", epoch, false, 8),
        OffsetCheck::Rejected {
            error_code: codes::UNSUPPORTED_VERSION,
            ..
        }
    ));
    assert_eq!(
        h.c.validate_offset_commit("g", "a", epoch, true, 4),
        OffsetCheck::Accepted
    );
    assert_eq!(
        h.c.validate_offset_commit("g", "", -1, true, 4),
        OffsetCheck::Accepted
    );
    assert!(matches!(
        h.c.validate_offset_commit("g", "", -1, false, 9),
        OffsetCheck::Rejected {
            error_code: codes::UNKNOWN_MEMBER_ID,
            ..
        }
    ));
    // OffsetFetch: admin (no member) is fine; members must be at their epoch.
    assert_eq!(
        h.c.validate_offset_fetch("g", None, -1),
        OffsetCheck::Accepted
    );
    assert_eq!(
        h.c.validate_offset_fetch("g", Some("a"), epoch),
        OffsetCheck::Accepted
    );
    assert!(matches!(
        h.c.validate_offset_fetch("g", Some("a"), epoch + 1),
        OffsetCheck::Rejected {
            error_code: codes::STALE_MEMBER_EPOCH,
            ..
        }
    ));
    assert!(matches!(
        h.c.validate_offset_fetch("g", Some("nobody"), 1),
        OffsetCheck::Rejected {
            error_code: codes::UNKNOWN_MEMBER_ID,
            ..
        }
    ));
    // OffsetDelete: the group's topics are protected while it subscribes to them.
    assert_eq!(h.c.is_subscribed_to_topic("g", "t"), Some(true));
    assert_eq!(h.c.is_subscribed_to_topic("g", "u"), Some(false));
    assert_eq!(h.c.is_subscribed_to_topic("other", "t"), None);
    // Once the group is empty, an admin commit goes through.
    h.leave(&mut clients[0], -1);
    assert_eq!(
        h.c.validate_offset_commit("g", "", -1, false, 9),
        OffsetCheck::Accepted
    );
}

#[test]
fn describe_list_and_the_classic_view() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t", "u"])];
    h.settle(&mut clients);
    let d =
        h.c.describe(&["g".to_string(), "nope".to_string()], &h.topics);
    assert_eq!(d[0].error_code, codes::NONE);
    assert_eq!(d[0].group_state, "Stable");
    assert_eq!(d[0].assignor_name, "uniform");
    assert_eq!(d[0].group_epoch, 1);
    assert_eq!(d[0].assignment_epoch, 1);
    let m = &d[0].members[0];
    assert_eq!(m.member_id, "a");
    assert_eq!(m.client_host, "/127.0.0.1");
    assert_eq!(
        m.subscribed_topic_names,
        vec!["t".to_string(), "u".to_string()]
    );
    assert_eq!(m.assignment, m.target_assignment);
    assert_eq!(m.assignment[0].topic_name, "t");
    assert_eq!(m.assignment[0].partitions, (0..6).collect::<Vec<_>>());
    assert_eq!(d[1].error_code, codes::GROUP_ID_NOT_FOUND);
    assert_eq!(d[1].error_message.as_deref(), Some("Group nope not found."));

    let listed = h.c.list_groups(&[], &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_type, "consumer");
    assert_eq!(listed[0].protocol_type, "consumer");
    assert_eq!(listed[0].group_state, "Stable");
    assert!(h.c.list_groups(&["empty".into()], &[]).is_empty());
    assert!(h.c.list_groups(&[], &["classic".into()]).is_empty());
    assert_eq!(
        h.c.list_groups(&["STABLE".into()], &["Consumer".into()])
            .len(),
        1
    );

    let v6 = h.c.classic_describe("g", 6).expect("a consumer group");
    assert_eq!(v6.error_code, codes::GROUP_ID_NOT_FOUND);
    assert_eq!(
        v6.error_message.as_deref(),
        Some("Group g is not a classic group.")
    );
    assert_eq!(v6.group_state, "Dead");
    let v5 = h.c.classic_describe("g", 5).expect("a consumer group");
    assert_eq!(
        (v5.error_code, v5.group_state.as_str()),
        (codes::NONE, "Dead")
    );
    assert_eq!(h.c.classic_describe("other", 5), None);
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"])];
    h.settle(&mut clients);
    assert_eq!(h.c.delete_group("g"), Err(codes::NON_EMPTY_GROUP));
    assert_eq!(h.c.delete_group("nope"), Err(codes::GROUP_ID_NOT_FOUND));
    h.leave(&mut clients[0], -1);
    let append = h.c.delete_group("g").expect("an empty group");
    assert!(append.records.iter().all(|r| r.value.is_none()));
    h.log.extend(append.records);
    assert!(h.c.group("g").is_none());
    h.assert_replay_equals_live();
}

#[test]
fn load_skips_classic_records_and_unload_forgets() {
    let mut h = Harness::new();
    let mut clients = vec![Client::new("a", &["t"])];
    h.settle(&mut clients);
    let mut log = vec![crate::records::offset_record(
        "g",
        "t",
        0,
        Some(&crate::records::OffsetCommitValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        }),
    )];
    log.extend(h.log.clone());
    let partition = h.c.partition_for("g");
    let mut other = ConsumerGroupCoordinator::new(ConsumerGroupConfig::default());
    assert_eq!(other.load_partition(partition, log, 5_000), Ok(1));
    assert_eq!(other.group("g"), h.c.group("g"));
    // Sessions restart at load time.
    assert_eq!(other.next_deadline(), Some(5_000 + 45_000));
    other.unload_partition(partition);
    assert!(other.group("g").is_none());
    assert_eq!(other.next_deadline(), None);
    // A corrupt consumer group record fails the load.
    let bad = Record {
        key: bytes::Bytes::from_static(&[0, 3, 0, 1, b'g']),
        value: Some(bytes::Bytes::from_static(&[0, 0, 1])),
    };
    assert!(other.load_partition(partition, vec![bad], 0).is_err());
}

/// One step of a random scenario.
#[derive(Debug, Clone)]
enum Op {
    Heartbeat(usize),
    Leave(usize),
    /// A static member leaves for now (epoch -2) and restarts under a new member id.
    StaticLeave(usize),
    /// Forget everything and come back (a crash without leaving).
    Restart(usize),
    Advance(i64),
    /// Topic "t" gets one more partition.
    GrowTopic,
    /// Topic "u" is deleted, or created again under a new id when it is gone.
    ToggleTopic,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4usize).prop_map(Op::Heartbeat),
        1 => (0..4usize).prop_map(Op::Leave),
        1 => (0..4usize).prop_map(Op::StaticLeave),
        1 => (0..4usize).prop_map(Op::Restart),
        1 => (0..20_000i64).prop_map(Op::Advance),
        1 => Just(Op::GrowTopic),
        1 => Just(Op::ToggleTopic),
    ]
}

/// The client lost its membership: it drops its partitions and joins again under a new id.
fn rejoin(client: &mut Client, generation: &mut u32) {
    *generation += 1;
    let base = client
        .member_id
        .split('-')
        .next()
        .unwrap_or("m")
        .to_string();
    client.member_id = format!("{base}-{generation}");
    client.owned.clear();
    client.epoch = 0;
}

/// Heartbeats `client` and reacts to errors as a KIP-848 client does.
fn step(h: &mut Harness, client: &mut Client, generation: &mut u32) -> Result<(), TestCaseError> {
    let resp = h.hb(client);
    match resp.error_code {
        codes::NONE => {}
        codes::UNKNOWN_MEMBER_ID
        | codes::FENCED_MEMBER_EPOCH
        | codes::GROUP_ID_NOT_FOUND
        | codes::FENCED_INSTANCE_ID => rejoin(client, generation),
        // The previous instance still holds the instance id: retry later.
        codes::UNRELEASED_INSTANCE_ID => prop_assert_eq!(client.epoch, 0),
        other => prop_assert!(false, "unexpected error {}: {:?}", other, resp),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random joins, heartbeats, leaves, static leaves, crashes and clock jumps: no partition
    /// is ever owned by two live clients, the coordinator never records a partition for two
    /// members, and once every client heartbeats for a while the group is stable with every
    /// subscribed partition assigned exactly once. The log replays to the same group.
    #[test]
    fn partitions_are_never_owned_twice_and_the_group_converges(
        ops in proptest::collection::vec(op(), 1..60),
        subs in proptest::collection::vec(0..3usize, 4),
        range in any::<bool>(),
        statics in any::<bool>(),
    ) {
        let mut h = Harness::new();
        let names = [vec!["t"], vec!["u"], vec!["t", "u"]];
        let mut generation = [0u32; 4];
        let mut u_generation = 0u128;
        let mut clients: Vec<Client> = (0..4)
            .map(|i| {
                let mut c = Client::new(&format!("m{i}-0"), &names[subs[i]]);
                if range { c.assignor = Some("range".into()); }
                if statics && i < 2 { c.instance_id = Some(format!("instance-{i}")); }
                c
            })
            .collect();
        for op in ops {
            match op {
                Op::Heartbeat(i) => step(&mut h, &mut clients[i], &mut generation[i])?,
                Op::Leave(i) => {
                    if clients[i].epoch != 0 {
                        h.leave(&mut clients[i], -1);
                    }
                }
                Op::StaticLeave(i) => {
                    if clients[i].epoch != 0 && clients[i].instance_id.is_some() {
                        // Refused only when the session already expired.
                        let resp = h.leave(&mut clients[i], -2);
                        prop_assert!(
                            [codes::NONE, codes::UNKNOWN_MEMBER_ID].contains(&resp.error_code),
                            "{:?}",
                            resp
                        );
                        rejoin(&mut clients[i], &mut generation[i]);
                    }
                }
                Op::Restart(i) => rejoin(&mut clients[i], &mut generation[i]),
                Op::Advance(ms) => h.tick(ms),
                Op::GrowTopic => {
                    let n = h.topics.partition_count(tid(T)).unwrap_or(6);
                    h.topics.insert("t", tid(T), n + 1);
                }
                Op::ToggleTopic => match h.topics.topic_id("u") {
                    Some(_) => h.topics.remove("u"),
                    None => {
                        u_generation += 1;
                        h.topics.insert("u", TopicId::from_u128(U + 0x100 * u_generation), 3);
                    }
                },
            }
            // A member whose session expired still believes it owns its partitions until
            // its next heartbeat is refused: only members the group knows must be disjoint.
            let live: Vec<Client> = clients
                .iter()
                .filter(|c| h.c.group("g").is_some_and(|g| g.member(&c.member_id).is_some()))
                .cloned()
                .collect();
            assert_disjoint(&live);
            if let Some(g) = h.c.group("g") {
                let mut seen = BTreeSet::new();
                for m in g.members().values() {
                    for (t, ps) in m.assigned_partitions.iter().chain(m.partitions_pending_revocation.iter()) {
                        for p in ps {
                            prop_assert!(seen.insert((*t, *p)), "{:?}-{} held by two members", t, p);
                        }
                    }
                }
            }
        }
        // Let the dust settle: every client heartbeats every 20 s, so members nobody drives
        // any more expire, and the others converge.
        for _ in 0..12 {
            h.now += 20_000;
            for (i, c) in clients.iter_mut().enumerate() {
                step(&mut h, c, &mut generation[i])?;
            }
            for a in h.c.tick(h.now, &h.topics) {
                h.log.extend(a.records);
            }
        }
        for (i, c) in clients.iter_mut().enumerate() {
            step(&mut h, c, &mut generation[i])?;
        }
        assert_disjoint(&clients);
        let g = h.group();
        prop_assert_eq!(g.state(), ConsumerGroupState::Stable);
        prop_assert_eq!(g.members().len(), 4);
        let mut expected: BTreeMap<TopicId, usize> = BTreeMap::new();
        for c in &clients {
            for n in &c.subscription {
                // A deleted topic is assigned to nobody.
                let Some(id) = h.topics.topic_id(n) else { continue };
                expected.insert(id, h.topics.partition_count(id).unwrap_or(0) as usize);
            }
        }
        let mut owned: BTreeMap<TopicId, usize> = BTreeMap::new();
        for c in &clients {
            for (t, ps) in &c.owned {
                *owned.entry(*t).or_default() += ps.len();
            }
        }
        prop_assert_eq!(owned, expected);
        h.assert_replay_equals_live();
    }
}

fn arbitrary_request() -> impl Strategy<Value = ConsumerGroupHeartbeatRequest> {
    let owned = proptest::option::of(proptest::collection::vec(
        (
            prop_oneof![Just(tid(T)), Just(tid(U)), Just(tid(0x77))],
            proptest::collection::vec(-1i32..8, 0..4),
        )
            .prop_map(|(topic_id, partitions)| HeartbeatTopicPartitions {
                topic_id,
                partitions,
            }),
        0..3,
    ));
    let names = proptest::option::of(proptest::collection::vec(
        prop_oneof![
            Just("t".to_string()),
            Just("u".to_string()),
            Just("gone".to_string())
        ],
        0..3,
    ));
    (
        (0i16..2, 0..4usize, -3i32..6),
        proptest::option::of(prop_oneof![Just("i0".to_string()), Just("i1".to_string())]),
        prop_oneof![Just(-1), Just(10_000)],
        names,
        proptest::option::of(prop_oneof![
            Just("t.*".to_string()),
            Just(String::new()),
            Just("(".to_string())
        ]),
        proptest::option::of(prop_oneof![
            Just("range".to_string()),
            Just("uniform".to_string())
        ]),
        owned,
    )
        .prop_map(
            |(
                (api_version, m, member_epoch),
                instance_id,
                rebalance_timeout_ms,
                names,
                regex,
                assignor,
                owned,
            )| {
                ConsumerGroupHeartbeatRequest {
                    api_version,
                    group_id: "g".into(),
                    member_id: ["", "a", "b", "c"][m].to_string(),
                    member_epoch,
                    instance_id,
                    rack_id: None,
                    rebalance_timeout_ms,
                    subscribed_topic_names: names,
                    subscribed_topic_regex: regex,
                    server_assignor: assignor,
                    topic_partitions: owned,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever a client sends, in whatever order, with clock jumps in between: no panic,
    /// no partition recorded for two members, the derived ownership index agrees with the
    /// members, and the log replays to the live state.
    #[test]
    fn arbitrary_heartbeats_keep_the_group_consistent(
        steps in proptest::collection::vec((arbitrary_request(), 0i64..30_000), 1..40),
    ) {
        let mut h = Harness::new();
        for (req, advance) in steps {
            let _ = h.raw(&req);
            h.tick(advance);
            if let Some(g) = h.c.group("g") {
                let mut owners = BTreeMap::new();
                for m in g.members().values() {
                    for (t, ps) in m.assigned_partitions.iter().chain(m.partitions_pending_revocation.iter()) {
                        for p in ps {
                            prop_assert!(owners.insert((*t, *p), m.member_id.clone()).is_none());
                        }
                    }
                }
                for ((t, p), m) in &owners {
                    prop_assert_eq!(g.partition_owner(*t, *p), Some(m.as_str()));
                }
                prop_assert_eq!(g.partition_owners.len(), owners.len());
            }
        }
        h.assert_replay_equals_live();
    }
}
