//! The share group core on a manual clock: join, leave, epochs, fencing, expiry, the
//! assignment as share-partitions get initialized, and replaying the records.

use std::collections::{BTreeMap, BTreeSet};

use gregor_share::ShareGroupSettings;

use super::*;
use crate::consumer_group::{HeartbeatTopicPartitions, TopicId, TopicPartitions, TopicsImage};
use crate::error::code;
use crate::records::Record;

const T1: u128 = 1;
const T2: u128 = 2;

fn t(n: u128) -> TopicId {
    TopicId::from_u128(n)
}

fn image(topics: &[(&str, u128, i32)]) -> TopicsImage {
    let mut img = TopicsImage::new();
    for (name, id, n) in topics {
        img.insert(name, t(*id), *n);
    }
    img
}

fn settings() -> ShareGroupSettings {
    ShareGroupSettings::default()
}

/// A coordinator and everything it appended, as the broker would keep it.
struct Harness {
    core: ShareGroupCoordinator,
    log: Vec<Record>,
    topics: TopicsImage,
    settings: ShareGroupSettings,
}

impl Harness {
    fn new(topics: TopicsImage) -> Harness {
        Harness {
            core: ShareGroupCoordinator::new(ShareGroupConfig::default()),
            log: Vec::new(),
            topics,
            settings: settings(),
        }
    }

    fn heartbeat(
        &mut self,
        member: &str,
        epoch: i32,
        subscription: Option<&[&str]>,
        now: i64,
    ) -> ShareHeartbeatResult {
        let req = ShareGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rack_id: None,
            subscribed_topic_names: subscription.map(|s| s.iter().map(|n| n.to_string()).collect()),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
        };
        let result = self.core.heartbeat(&req, &self.settings, &self.topics, now);
        if let Some(a) = &result.append {
            self.log.extend(a.records.iter().cloned());
        }
        result
    }

    /// Joins and completes the initialization it asks for (the persister answers at once).
    fn join(
        &mut self,
        member: &str,
        subscription: &[&str],
        now: i64,
    ) -> ShareGroupHeartbeatResponse {
        let result = self.heartbeat(member, 0, Some(subscription), now);
        if let Some(init) = result.initialize {
            self.complete(&init, true, now);
        }
        result.response
    }

    fn complete(&mut self, init: &InitializeRequest, ok: bool, now: i64) {
        if let Some(a) =
            self.core
                .initialize_completed(&init.group_id, &init.partitions, ok, &self.topics, now)
        {
            self.log.extend(a.records);
        }
    }

    fn group(&self) -> &ShareGroup {
        self.core.group("g").expect("group g")
    }

    fn member(&self, id: &str) -> &ShareGroupMember {
        self.group().member(id).expect("member")
    }
}

fn tp(pairs: &[(u128, &[i32])]) -> TopicPartitions {
    pairs
        .iter()
        .map(|(n, ps)| (t(*n), ps.iter().copied().collect()))
        .collect()
}

fn wire(pairs: &[(u128, &[i32])]) -> Vec<HeartbeatTopicPartitions> {
    pairs
        .iter()
        .map(|(n, ps)| HeartbeatTopicPartitions {
            topic_id: t(*n),
            partitions: ps.to_vec(),
        })
        .collect()
}

#[test]
fn invalid_requests_are_refused_as_kafka_refuses_them() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    let r = h.heartbeat("", 0, Some(&["a"]), 0).response;
    assert_eq!(r.error_code, coordinator::codes::INVALID_REQUEST);
    assert_eq!(r.error_message.as_deref(), Some("MemberId can't be empty."));
    let r = h.heartbeat("m", 0, None, 0).response;
    assert_eq!(
        r.error_message.as_deref(),
        Some("SubscribedTopicNames must be set in first request.")
    );
    let r = h.heartbeat("m", 0, Some(&[]), 0).response;
    assert_eq!(r.error_code, coordinator::codes::INVALID_REQUEST);
    let r = h.heartbeat("m", -2, None, 0).response;
    assert_eq!(r.error_message.as_deref(), Some("MemberEpoch is invalid."));
    // Nothing was written, no group created.
    assert!(h.log.is_empty());
    assert!(h.core.group("g").is_none());
}

#[test]
fn a_member_joins_gets_its_partitions_once_initialized() {
    let mut h = Harness::new(image(&[("a", T1, 3)]));
    let result = h.heartbeat("m1", 0, Some(&["a"]), 0);
    let r = &result.response;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.member_id.as_deref(), Some("m1"));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    // Nothing is initialized yet: an empty assignment, and the partitions to initialize.
    assert_eq!(r.assignment, Some(Vec::new()));
    let init = result.initialize.clone().expect("initialize");
    assert_eq!(init.partitions, tp(&[(T1, &[0, 1, 2])]));
    assert_eq!(init.state_epoch, 1);
    assert_eq!(
        h.group().state_metadata.initializing[&t(T1)].partitions,
        BTreeSet::from([0, 1, 2])
    );
    // A heartbeat meanwhile does not initialize them again.
    let again = h.heartbeat("m1", 1, None, 100);
    assert!(again.initialize.is_none());
    assert!(again.response.assignment.is_none());

    h.complete(&init, true, 200);
    assert!(h.group().state_metadata.initializing.is_empty());
    assert_eq!(
        h.group().state_metadata.initialized[&t(T1)].partitions,
        BTreeSet::from([0, 1, 2])
    );
    // The next heartbeat bumps the epoch and assigns them.
    let r = h.heartbeat("m1", 1, None, 300).response;
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1, 2])])));
    assert_eq!(h.group().state(), ShareGroupState::Stable);
    // Stable: nothing more to say.
    let r = h.heartbeat("m1", 2, None, 400);
    assert!(r.append.is_none());
    assert!(r.response.assignment.is_none());
    assert_eq!(r.response.member_epoch, 2);
}

#[test]
fn a_failed_initialization_is_tried_again_by_heartbeat_or_tick() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    let init = h
        .heartbeat("m1", 0, Some(&["a"]), 0)
        .initialize
        .expect("init");
    h.complete(&init, false, 10);
    assert!(h.group().state_metadata.initializing.is_empty());
    assert!(h.group().state_metadata.initialized.is_empty());
    // The tick retries after the backoff...
    assert_eq!(h.core.next_deadline(), Some(1_010));
    let tick = h.core.tick(1_010, &h.topics);
    assert_eq!(tick.initialize.len(), 1);
    assert_eq!(tick.initialize[0].partitions, tp(&[(T1, &[0, 1])]));
    h.complete(&tick.initialize[0].clone(), false, 1_020);
    // ...and so does the next heartbeat.
    let retry = h
        .heartbeat("m1", 1, None, 1_100)
        .initialize
        .expect("retried");
    h.complete(&retry, true, 1_200);
    let r = h.heartbeat("m1", 1, None, 1_300).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1])])));
}

#[test]
fn an_initialization_lost_in_flight_is_retried_after_the_interval() {
    let mut h = Harness::new(image(&[("a", T1, 1)]));
    assert!(h.heartbeat("m1", 0, Some(&["a"]), 0).initialize.is_some());
    // No answer ever comes (the coordinator moved): within the interval nothing new...
    assert!(h.heartbeat("m1", 1, None, 29_999).initialize.is_none());
    // ...after it, the partitions are initialized again.
    let again = h
        .heartbeat("m1", 1, None, 30_000)
        .initialize
        .expect("again");
    assert_eq!(again.partitions, tp(&[(T1, &[0])]));
}

#[test]
fn new_partitions_of_a_subscribed_topic_get_initialized_and_assigned() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    h.join("m1", &["a"], 0);
    let r = h.heartbeat("m1", 1, None, 10).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1])])));
    let epoch = r.member_epoch;
    // The topic grows to 4 partitions.
    h.topics.insert("a", t(T1), 4);
    let result = h.heartbeat("m1", epoch, None, 20);
    let init = result.initialize.clone().expect("new partitions");
    assert_eq!(init.partitions, tp(&[(T1, &[2, 3])]));
    h.complete(&init, true, 30);
    let r = h
        .heartbeat("m1", result.response.member_epoch, None, 40)
        .response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1, 2, 3])])));
}

#[test]
fn members_split_partitions_and_share_them_when_more_numerous() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    h.join("m1", &["a"], 0);
    h.join("m2", &["a"], 0);
    h.join("m3", &["a"], 0);
    // Let everyone catch up with the latest epoch.
    for _ in 0..2 {
        for m in ["m1", "m2", "m3"] {
            let e = h.member(m).member_epoch;
            h.heartbeat(m, e, None, 10);
        }
    }
    let g = h.group();
    assert!(g
        .members
        .values()
        .all(|m| m.member_epoch == g.assignment_epoch));
    // 3 members, 2 partitions: each partition shared by 2, every member has one or two.
    let mut sharing: BTreeMap<i32, usize> = BTreeMap::new();
    for m in g.members.values() {
        let ps = &m.assigned_partitions[&t(T1)];
        assert!(!ps.is_empty());
        for p in ps {
            *sharing.entry(*p).or_default() += 1;
        }
    }
    assert_eq!(sharing, BTreeMap::from([(0, 2), (1, 2)]));
}

#[test]
fn a_member_leaving_bumps_the_epoch_and_the_others_take_over() {
    let mut h = Harness::new(image(&[("a", T1, 4)]));
    h.join("m1", &["a"], 0);
    h.join("m2", &["a"], 0);
    for m in ["m1", "m2", "m1", "m2"] {
        let e = h.member(m).member_epoch;
        h.heartbeat(m, e, None, 10);
    }
    assert_eq!(h.member("m1").assigned_partitions[&t(T1)].len(), 2);
    let epoch_before = h.group().group_epoch;
    let r = h.heartbeat("m2", -1, None, 20);
    assert_eq!(r.response.error_code, code::NONE);
    assert_eq!(r.response.member_epoch, -1);
    assert_eq!(r.response.member_id.as_deref(), Some("m2"));
    assert_eq!(r.append.as_ref().map(|a| a.records.len()), Some(4));
    assert_eq!(h.group().group_epoch, epoch_before + 1);
    assert!(h.group().member("m2").is_none());
    let e = h.member("m1").member_epoch;
    let r = h.heartbeat("m1", e, None, 30).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1, 2, 3])])));
    // Leaving again: the member is unknown.
    let r = h.heartbeat("m2", -1, None, 40).response;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    // The last one leaves: the group is Empty, not gone.
    let e = h.member("m1").member_epoch;
    h.heartbeat("m1", -1, None, 50);
    let _ = e;
    assert_eq!(h.group().state(), ShareGroupState::Empty);
}

#[test]
fn epochs_are_checked_and_unknown_members_refused() {
    let mut h = Harness::new(image(&[("a", T1, 1)]));
    h.join("m1", &["a"], 0);
    let r = h.heartbeat("m1", 1, None, 10).response;
    let epoch = r.member_epoch;
    assert_eq!(epoch, 2);
    // Ahead: fenced.
    let r = h.heartbeat("m1", epoch + 1, None, 20).response;
    assert_eq!(r.error_code, coordinator::codes::FENCED_MEMBER_EPOCH);
    // The previous epoch (a lost response): accepted.
    let r = h.heartbeat("m1", epoch - 1, None, 30).response;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.member_epoch, epoch);
    // Another member joins: m1 moves to the next epoch; older than its previous: fenced.
    h.join("m2", &["a"], 35);
    let r = h.heartbeat("m1", epoch, None, 36).response;
    assert_eq!(r.member_epoch, epoch + 1);
    let r = h.heartbeat("m1", epoch - 1, None, 40).response;
    assert_eq!(r.error_code, coordinator::codes::FENCED_MEMBER_EPOCH);
    assert!(r
        .error_message
        .is_some_and(|m| m.contains("does not match the previous member epoch")));
    // Epoch 0 rejoins.
    let r = h.heartbeat("m1", 0, Some(&["a"]), 50).response;
    assert_eq!(r.error_code, code::NONE);
    assert!(r.assignment.is_some());
    // Unknown member, unknown group.
    let r = h.heartbeat("nobody", 3, None, 60).response;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    let mut other = Harness::new(image(&[("a", T1, 1)]));
    let r = other.heartbeat("m", 1, None, 0).response;
    assert_eq!(r.error_code, code::GROUP_ID_NOT_FOUND);
    let r = other.heartbeat("m", -1, None, 0).response;
    assert_eq!(r.error_code, code::GROUP_ID_NOT_FOUND);
}

#[test]
fn the_group_size_is_capped_by_the_settings() {
    let mut h = Harness::new(image(&[("a", T1, 1)]));
    h.settings.max_size = 2;
    h.join("m1", &["a"], 0);
    h.join("m2", &["a"], 0);
    let r = h.heartbeat("m3", 0, Some(&["a"]), 0).response;
    assert_eq!(r.error_code, code::GROUP_MAX_SIZE_REACHED);
    assert_eq!(
        r.error_message.as_deref(),
        Some("The share group has reached its maximum capacity of 2 members.")
    );
    // Members already in keep going.
    let e = h.member("m2").member_epoch;
    assert_eq!(
        h.heartbeat("m2", e, None, 1).response.error_code,
        code::NONE
    );
}

#[test]
fn an_expired_session_removes_the_member() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    h.settings.session_timeout_ms = 1_000;
    h.join("m1", &["a"], 0);
    h.join("m2", &["a"], 500);
    assert_eq!(h.core.next_deadline(), Some(1_000));
    let epoch = h.group().group_epoch;
    assert!(h.core.tick(999, &h.topics).appends.is_empty());
    let tick = h.core.tick(1_000, &h.topics);
    assert_eq!(tick.appends.len(), 1);
    assert_eq!(tick.appends[0].partition, h.core.partition_for("g"));
    h.log.extend(tick.appends[0].records.iter().cloned());
    assert!(h.group().member("m1").is_none());
    assert!(h.group().member("m2").is_some());
    assert_eq!(h.group().group_epoch, epoch + 1);
    // A heartbeat keeps m2 alive past its first deadline.
    let e = h.member("m2").member_epoch;
    h.heartbeat("m2", e, None, 1_400);
    assert!(h.core.tick(1_500, &h.topics).appends.is_empty());
    assert_eq!(h.core.next_deadline(), Some(2_400));
}

#[test]
fn changing_the_subscription_bumps_the_epoch_and_reassigns() {
    let mut h = Harness::new(image(&[("a", T1, 1), ("b", T2, 2)]));
    h.join("m1", &["a"], 0);
    let r = h.heartbeat("m1", 1, None, 1).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0])])));
    let epoch = h.group().group_epoch;
    let result = h.heartbeat("m1", r.member_epoch, Some(&["b"]), 2);
    assert_eq!(h.group().group_epoch, epoch + 1);
    // Topic a's partition is no longer assigned; b is not initialized yet.
    assert_eq!(result.response.assignment, Some(Vec::new()));
    let init = result.initialize.clone().expect("b");
    assert_eq!(init.partitions, tp(&[(T2, &[0, 1])]));
    h.complete(&init, true, 3);
    let r = h
        .heartbeat("m1", result.response.member_epoch, None, 4)
        .response;
    assert_eq!(r.assignment, Some(wire(&[(T2, &[0, 1])])));
}

#[test]
fn the_records_replay_into_the_same_groups_on_another_coordinator() {
    let mut h = Harness::new(image(&[("a", T1, 3), ("b", T2, 1)]));
    h.join("m1", &["a"], 0);
    h.join("m2", &["a", "b"], 0);
    for m in ["m1", "m2", "m1", "m2"] {
        let e = h.member(m).member_epoch;
        h.heartbeat(m, e, None, 10);
    }
    // One more member joined and left; one partition initializing.
    h.join("m3", &["a"], 20);
    h.heartbeat("m3", -1, None, 30);
    h.topics.insert("b", t(T2), 2);
    let e = h.member("m2").member_epoch;
    let pending = h.heartbeat("m2", e, None, 40).initialize.expect("b-1");
    assert_eq!(pending.partitions, tp(&[(T2, &[1])]));

    let mut loaded = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let partition = h.core.partition_for("g");
    let n = loaded
        .load_partition(partition, h.log.clone(), 1_000, &|_| settings())
        .expect("loads");
    assert_eq!(n, 1);
    // The initializations' start times are not persisted (as in Kafka): the loaded ones are
    // 0, so a coordinator that takes over starts them again at once.
    let mut live = h.group().clone();
    for t in live
        .state_metadata
        .initializing
        .values_mut()
        .chain(live.state_metadata.initialized.values_mut())
    {
        t.timestamp_ms = 0;
    }
    assert_eq!(loaded.group("g"), Some(&live));
    // Sessions start again at the load.
    assert_eq!(loaded.next_deadline(), Some(1_000 + 45_000));
    // Records of another partition are not this partition's groups.
    let mut other = ShareGroupCoordinator::new(ShareGroupConfig::default());
    assert_eq!(
        other
            .load_partition(partition + 1, h.log.clone(), 0, &|_| settings())
            .expect("loads"),
        0
    );
    // A corrupt record fails the load and changes nothing.
    let mut corrupt = h.log.clone();
    corrupt.push(Record {
        key: bytes::Bytes::from_static(&[0, 11, 0, 1, b'g']),
        value: Some(bytes::Bytes::from_static(&[0, 0, 1])),
    });
    assert!(loaded
        .load_partition(partition, corrupt, 0, &|_| settings())
        .is_err());
    assert_eq!(loaded.group("g"), Some(&live));
}

#[test]
fn an_empty_group_is_deleted_with_tombstones_and_its_state_first() {
    let mut h = Harness::new(image(&[("a", T1, 2), ("b", T2, 1)]));
    h.join("m1", &["a", "b"], 0);
    let e = h.member("m1").member_epoch;
    h.heartbeat("m1", e, None, 1);
    assert_eq!(h.core.check_empty("g"), Err(code::NON_EMPTY_GROUP));
    assert_eq!(h.core.delete_group("g").err(), Some(code::NON_EMPTY_GROUP));
    let e = h.member("m1").member_epoch;
    h.heartbeat("m1", -1, None, 2);
    let _ = e;
    assert_eq!(h.core.check_empty("g"), Ok(()));
    let state = h
        .core
        .state_partitions("g", None, &h.topics)
        .expect("share group");
    let all: Vec<(TopicId, BTreeSet<i32>)> = state
        .iter()
        .map(|s| (s.topic_id, s.partitions.clone()))
        .collect();
    assert_eq!(
        all,
        vec![
            (t(T1), BTreeSet::from([0, 1])),
            (t(T2), BTreeSet::from([0]))
        ]
    );
    let ids: BTreeSet<TopicId> = state.iter().map(|s| s.topic_id).collect();
    let a = h.core.begin_state_deletion("g", &ids).expect("record");
    h.log.extend(a.records);
    assert_eq!(h.group().state_metadata.deleting.len(), 2);
    assert!(h.group().state_metadata.initialized.is_empty());
    // Still listed for deletion (a retry after a failed delete finds them).
    assert_eq!(
        h.core
            .state_partitions("g", None, &h.topics)
            .map(|s| s.len()),
        Some(2)
    );
    let a = h.core.delete_group("g").expect("deleted");
    h.log.extend(a.records);
    assert!(h.core.group("g").is_none());
    assert_eq!(
        h.core.delete_group("g").err(),
        Some(code::GROUP_ID_NOT_FOUND)
    );
    // The log replays to nothing.
    let mut loaded = ShareGroupCoordinator::new(ShareGroupConfig::default());
    let n = loaded
        .load_partition(h.core.partition_for("g"), h.log.clone(), 0, &|_| settings())
        .expect("loads");
    assert_eq!(n, 0);
}

#[test]
fn deleting_offsets_of_a_topic_forgets_its_state_until_initialized_again() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    h.join("m1", &["a"], 0);
    let e = h.member("m1").member_epoch;
    h.heartbeat("m1", -1, None, 1);
    let _ = e;
    let ids = BTreeSet::from([t(T1)]);
    h.core.begin_state_deletion("g", &ids);
    h.core.complete_state_deletion("g", &ids);
    assert!(h.group().state_metadata.is_empty());
    // A member subscribing again initializes it again.
    let r = h.heartbeat("m2", 0, Some(&["a"]), 10);
    assert_eq!(
        r.initialize.map(|i| i.partitions),
        Some(tp(&[(T1, &[0, 1])]))
    );
}

#[test]
fn altering_offsets_records_the_partitions_initializing() {
    let mut h = Harness::new(image(&[("a", T1, 3)]));
    h.join("m1", &["a"], 0);
    h.heartbeat("m1", -1, None, 1);
    let wanted = BTreeMap::from([(t(T1), ("a".to_string(), BTreeSet::from([1, 2])))]);
    let a = h.core.begin_alter("g", &wanted, 5).expect("record");
    assert_eq!(a.records.len(), 1);
    assert_eq!(
        h.group().state_metadata.initializing[&t(T1)].partitions,
        BTreeSet::from([1, 2])
    );
    h.core
        .initialize_completed("g", &tp(&[(T1, &[1, 2])]), true, &h.topics, 6);
    assert!(h.group().state_metadata.initializing.is_empty());
    assert_eq!(
        h.group().state_metadata.initialized[&t(T1)].partitions,
        BTreeSet::from([0, 1, 2])
    );
}

#[test]
fn altering_offsets_of_an_unknown_group_creates_it_empty() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    assert!(h.core.begin_alter("g", &BTreeMap::new(), 0).is_none());
    assert!(h.core.group("g").is_none());
    let wanted = BTreeMap::from([(t(T1), ("a".to_string(), BTreeSet::from([0])))]);
    let a = h.core.begin_alter("g", &wanted, 5).expect("record");
    h.log.extend(a.records);
    assert_eq!(h.group().state(), ShareGroupState::Empty);
    assert_eq!(h.group().group_epoch, 0);
    if let Some(a) = h
        .core
        .initialize_completed("g", &tp(&[(T1, &[0])]), true, &h.topics, 6)
    {
        h.log.extend(a.records);
    }
    let mut loaded = ShareGroupCoordinator::new(ShareGroupConfig::default());
    loaded
        .load_partition(h.core.partition_for("g"), h.log.clone(), 0, &|_| settings())
        .expect("loads");
    let group = loaded.group("g").expect("the group");
    assert_eq!(
        group.state_metadata.initialized[&t(T1)].partitions,
        BTreeSet::from([0])
    );
}

#[test]
fn describe_and_list_show_share_groups() {
    let mut h = Harness::new(image(&[("a", T1, 2)]));
    h.join("m1", &["a"], 0);
    let e = h.member("m1").member_epoch;
    h.heartbeat("m1", e, None, 1);
    let d = h
        .core
        .describe(&["g".to_string(), "nope".to_string()], &h.topics);
    assert_eq!(d[0].error_code, code::NONE);
    assert_eq!(d[0].group_state, "Stable");
    assert_eq!(d[0].assignor_name, "simple");
    assert_eq!(d[0].group_epoch, h.group().group_epoch);
    assert_eq!(d[0].members.len(), 1);
    assert_eq!(d[0].members[0].client_host, "/127.0.0.1");
    assert_eq!(
        d[0].members[0].subscribed_topic_names,
        vec!["a".to_string()]
    );
    assert_eq!(d[0].members[0].assignment[0].topic_name, "a");
    assert_eq!(d[0].members[0].assignment[0].partitions, vec![0, 1]);
    assert_eq!(d[1].error_code, code::GROUP_ID_NOT_FOUND);
    assert_eq!(d[1].error_message.as_deref(), Some("Group nope not found."));

    let listed = h.core.list_groups(&[], &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_type, "share");
    assert_eq!(listed[0].protocol_type, "share");
    assert!(h.core.list_groups(&[], &["consumer".into()]).is_empty());
    assert_eq!(h.core.list_groups(&[], &["Share".into()]).len(), 1);
    assert!(h.core.list_groups(&["empty".into()], &[]).is_empty());
    assert_eq!(h.core.list_groups(&["STABLE".into()], &[]).len(), 1);

    let c = h.core.classic_describe("g", 6).expect("share group");
    assert_eq!(c.error_code, code::GROUP_ID_NOT_FOUND);
    assert_eq!(c.group_state, "Dead");
    assert_eq!(
        h.core.classic_describe("g", 5).map(|c| c.error_code),
        Some(code::NONE)
    );
    assert!(h.core.classic_describe("nope", 6).is_none());
}

#[test]
fn deleted_topics_are_forgotten_and_their_partitions_unassigned() {
    let mut h = Harness::new(image(&[("a", T1, 2), ("b", T2, 1)]));
    h.join("m1", &["a", "b"], 0);
    let e = h.member("m1").member_epoch;
    let r = h.heartbeat("m1", e, None, 1).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1]), (T2, &[0])])));
    h.topics.remove("b");
    let appends = h.core.forget_topics(&BTreeSet::from([t(T2)]));
    assert_eq!(appends.len(), 1);
    assert!(!h.group().state_metadata.initialized.contains_key(&t(T2)));
    assert!(h.core.forget_topics(&BTreeSet::from([t(T2)])).is_empty());
    // The next heartbeat: a new epoch without the deleted topic.
    let r = h.heartbeat("m1", r.member_epoch, None, 2).response;
    assert_eq!(r.assignment, Some(wire(&[(T1, &[0, 1])])));
}

#[test]
fn unloading_drops_groups_and_timers() {
    let mut h = Harness::new(image(&[("a", T1, 1)]));
    h.join("m1", &["a"], 0);
    assert!(h.core.next_deadline().is_some());
    h.core.unload_partition(h.core.partition_for("g"));
    assert!(h.core.group("g").is_none());
    assert_eq!(h.core.next_deadline(), None);
}
