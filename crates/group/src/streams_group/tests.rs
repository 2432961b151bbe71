//! Behaviour tests of the streams group core: one per rule, with simulated Kafka Streams
//! members, and a property test that no task ever runs active on two processes.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::records::{Subtopology, TopicInfo, TopologyValue};
use super::*;
use crate::consumer_group::{OffsetCheck, TopicId, TopicsImage};
use crate::records::Record;

/// Topics "in" (4 partitions) and "side" (2 partitions).
fn topics() -> TopicsImage {
    let mut t = TopicsImage::new();
    t.insert("in", TopicId::from_u128(1), 4);
    t.insert("side", TopicId::from_u128(2), 2);
    t
}

/// One stateless subtopology "0" reading "in".
fn stateless() -> TopologyValue {
    TopologyValue {
        epoch: 0,
        subtopologies: vec![Subtopology {
            subtopology_id: "0".into(),
            source_topics: vec!["in".into()],
            ..Subtopology::default()
        }],
    }
}

/// "0" reads "in" and writes "app-rep"; "1" reads "app-rep" and keeps a store ("app-store-changelog").
fn with_internal_topics() -> TopologyValue {
    TopologyValue {
        epoch: 0,
        subtopologies: vec![
            Subtopology {
                subtopology_id: "0".into(),
                source_topics: vec!["in".into()],
                repartition_sink_topics: vec!["app-rep".into()],
                ..Subtopology::default()
            },
            Subtopology {
                subtopology_id: "1".into(),
                repartition_source_topics: vec![TopicInfo {
                    name: "app-rep".into(),
                    ..TopicInfo::default()
                }],
                state_changelog_topics: vec![TopicInfo {
                    name: "app-store-changelog".into(),
                    topic_configs: vec![("cleanup.policy".into(), "compact".into())],
                    ..TopicInfo::default()
                }],
                ..Subtopology::default()
            },
        ],
    }
}

fn config(delay_ms: i32) -> StreamsGroupConfig {
    StreamsGroupConfig {
        initial_rebalance_delay_ms: delay_ms,
        assignment_interval_ms: 0,
        ..StreamsGroupConfig::default()
    }
}

/// A simulated Kafka Streams member: it holds what its last answer said, at once.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    process_id: String,
    instance_id: Option<String>,
    epoch: i32,
    owned: Tasks,
    topology: TopologyValue,
    endpoint_epoch: i32,
}

impl Client {
    fn new(id: &str, process: &str, topology: TopologyValue) -> Client {
        Client {
            member_id: id.to_string(),
            process_id: process.to_string(),
            instance_id: None,
            epoch: 0,
            owned: Tasks::default(),
            topology,
            endpoint_epoch: 0,
        }
    }

    fn request(&self) -> StreamsGroupHeartbeatRequest {
        let joining = self.epoch == 0;
        StreamsGroupHeartbeatRequest {
            api_version: 1,
            group_id: "app".into(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            endpoint_information_epoch: self.endpoint_epoch,
            instance_id: self.instance_id.clone(),
            rebalance_timeout_ms: if joining { 300_000 } else { -1 },
            topology: joining.then(|| self.topology.clone()),
            active_tasks: Some(self.owned.active.clone()),
            standby_tasks: Some(self.owned.standby.clone()),
            warmup_tasks: Some(self.owned.warmup.clone()),
            process_id: joining.then(|| self.process_id.clone()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..StreamsGroupHeartbeatRequest::default()
        }
    }

    /// One heartbeat; the client takes what the answer says.
    fn beat(&mut self, c: &mut StreamsGroupCoordinator, now: i64) -> StreamsHeartbeatResult {
        let result = c.heartbeat(&self.request(), &topics(), now);
        let r = &result.response;
        if r.error_code == 0 {
            self.epoch = r.member_epoch;
            self.endpoint_epoch = r.endpoint_information_epoch;
            if let (Some(a), Some(s), Some(w)) =
                (&r.active_tasks, &r.standby_tasks, &r.warmup_tasks)
            {
                self.owned = Tasks {
                    active: a.clone(),
                    standby: s.clone(),
                    warmup: w.clone(),
                };
            }
        }
        result
    }
}

fn count(tasks: &TaskMap) -> usize {
    tasks.values().map(BTreeSet::len).sum()
}

fn codes_of(r: &StreamsGroupHeartbeatResponse) -> Vec<i8> {
    r.status.iter().flatten().map(|s| s.code).collect()
}

#[test]
fn a_first_member_waits_out_the_initial_delay_then_gets_every_task() {
    let mut c = StreamsGroupCoordinator::new(config(3_000));
    let mut m = Client::new("m1", "p1", stateless());
    let r = m.beat(&mut c, 0).response;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.member_epoch, 1, "the initial target epoch");
    assert_eq!(r.active_tasks, Some(TaskMap::new()));
    assert_eq!(
        r.status.as_deref().map(|s| s[0].detail.as_str()),
        Some("Assignment delayed due to the configured initial rebalance delay.")
    );
    let g = c.group("app").expect("group");
    assert_eq!((g.group_epoch(), g.assignment_epoch()), (2, 1));
    assert_eq!(c.next_deadline(), Some(3_000));
    assert!(c.tick(2_999).is_empty());
    let appends = c.tick(3_000);
    assert_eq!(appends.len(), 1, "the delayed target assignment is written");
    assert_eq!(c.group("app").map(|g| g.assignment_epoch()), Some(2));
    let r = m.beat(&mut c, 3_100).response;
    assert_eq!(r.member_epoch, 2);
    assert_eq!(count(&m.owned.active), 4, "{r:?}");
    assert_eq!(codes_of(&r), Vec::<i8>::new());
    assert_eq!(
        c.group("app").map(|g| g.state()),
        Some(StreamsGroupState::Stable)
    );
}

#[test]
fn without_a_delay_the_first_member_gets_its_tasks_at_once() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut m = Client::new("m1", "p1", stateless());
    let r = m.beat(&mut c, 0).response;
    assert_eq!(r.member_epoch, 2);
    assert_eq!(count(&m.owned.active), 4);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(r.task_offset_interval_ms, 60_000);
    assert_eq!(r.acceptable_recovery_lag, 10_000);
    // A heartbeat with nothing new carries no task lists.
    let r = m.beat(&mut c, 100).response;
    assert_eq!(r.active_tasks, None);
    assert_eq!(r.member_epoch, 2);
}

/// Runs `clients` round-robin until nobody's answer changes anything, checking after every
/// heartbeat that no task is active on two processes.
fn settle(c: &mut StreamsGroupCoordinator, clients: &mut [Client], mut now: i64) -> i64 {
    for _ in 0..20 {
        let mut changed = false;
        for i in 0..clients.len() {
            let before = (clients[i].epoch, clients[i].owned.clone());
            let r = clients[i].beat(c, now).response;
            assert_eq!(r.error_code, 0, "{r:?}");
            changed |= before != (clients[i].epoch, clients[i].owned.clone());
            assert_no_task_twice(clients);
            now += 10;
        }
        if !changed {
            return now;
        }
    }
    panic!("did not settle: {clients:?}");
}

fn assert_no_task_twice(clients: &[Client]) {
    let mut seen: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for cl in clients {
        for (id, partitions) in &cl.owned.active {
            for p in partitions {
                if let Some(other) = seen.insert((id.clone(), *p), &cl.process_id) {
                    assert_eq!(
                        other, cl.process_id,
                        "task {id}-{p} active on two processes"
                    );
                }
            }
        }
    }
}

#[test]
fn a_second_member_gets_its_share_only_after_the_first_gave_it_up() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![Client::new("m1", "p1", stateless())];
    let now = settle(&mut c, &mut clients, 0);
    assert_eq!(count(&clients[0].owned.active), 4);
    clients.push(Client::new("m2", "p2", stateless()));
    // m2 joins: its target overlaps m1's tasks, so it gets nothing yet.
    let r = clients[1].beat(&mut c, now).response;
    assert_eq!(count(&clients[1].owned.active), 0, "{r:?}");
    assert_eq!(
        c.group("app").and_then(|g| g.member("m2")).map(|m| m.state),
        Some(MemberState::UnreleasedTasks)
    );
    // m1 is told to give up two tasks and stays at its epoch until it has.
    let epoch = clients[0].epoch;
    let r = clients[0].beat(&mut c, now + 1).response;
    assert_eq!(r.member_epoch, epoch);
    assert_eq!(count(&clients[0].owned.active), 2);
    settle(&mut c, &mut clients, now + 2);
    assert_eq!(count(&clients[0].owned.active), 2);
    assert_eq!(count(&clients[1].owned.active), 2);
    assert_eq!(
        c.group("app").map(|g| g.state()),
        Some(StreamsGroupState::Stable)
    );
}

#[test]
fn a_member_that_leaves_is_fenced_and_the_rest_take_its_tasks() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![
        Client::new("m1", "p1", stateless()),
        Client::new("m2", "p2", stateless()),
    ];
    let now = settle(&mut c, &mut clients, 0);
    let epoch = c.group("app").map(|g| g.group_epoch()).unwrap_or(0);
    let mut leave = clients[1].request();
    leave.member_epoch = -1;
    let result = c.heartbeat(&leave, &topics(), now);
    assert_eq!(result.response.error_code, 0);
    assert_eq!(result.response.member_epoch, -1);
    assert_eq!(result.response.status, Some(Vec::new()));
    let append = result.append.expect("tombstones");
    assert_eq!(
        append.records.len(),
        4,
        "three tombstones and the epoch bump"
    );
    assert!(append.records[..3].iter().all(|r| r.value.is_none()));
    assert_eq!(c.group("app").map(|g| g.group_epoch()), Some(epoch + 1));
    clients.truncate(1);
    settle(&mut c, &mut clients, now + 1);
    assert_eq!(count(&clients[0].owned.active), 4);
}

#[test]
fn a_silent_member_is_fenced_when_its_session_ends() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![Client::new("m1", "p1", stateless())];
    settle(&mut c, &mut clients, 0);
    let deadline = c.next_deadline().expect("a session");
    assert!(deadline >= 45_000);
    let appends = c.tick(deadline);
    assert_eq!(appends.len(), 1);
    let g = c.group("app").expect("group");
    assert!(g.members().is_empty());
    assert_eq!(g.state(), StreamsGroupState::Empty);
    let r = clients[0].beat(&mut c, deadline + 1).response;
    assert_eq!(r.error_code, codes::UNKNOWN_MEMBER_ID);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Member m1 is not a member of group app.")
    );
}

#[test]
fn missing_source_topics_are_a_status_and_nothing_is_assigned() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut topology = stateless();
    topology.subtopologies[0].source_topics = vec!["nowhere".into()];
    let mut m = Client::new("m1", "p1", topology);
    let r = m.beat(&mut c, 0).response;
    assert_eq!(r.error_code, 0, "{r:?}");
    let status = r.status.unwrap_or_default();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].code, status::MISSING_SOURCE_TOPICS);
    assert_eq!(status[0].detail, "Source topics nowhere are missing.");
    assert_eq!(count(&m.owned.active), 0);
    assert_eq!(
        c.group("app").map(|g| g.state()),
        Some(StreamsGroupState::NotReady)
    );
}

#[test]
fn missing_internal_topics_go_back_to_the_broker_for_creation() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut m = Client::new("m1", "p1", with_internal_topics());
    let result = m.beat(&mut c, 0);
    let r = &result.response;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(codes_of(r), vec![status::MISSING_INTERNAL_TOPICS]);
    let mut names: Vec<&str> = result
        .create_topics
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, vec!["app-rep", "app-store-changelog"]);
    assert!(result.create_topics.iter().all(|t| t.partitions == 4));
    let changelog = result
        .create_topics
        .iter()
        .find(|t| t.name == "app-store-changelog")
        .expect("changelog");
    assert_eq!(
        changelog.configs,
        vec![("cleanup.policy".to_string(), "compact".to_string())]
    );
    // Once they exist, the next heartbeat configures the topology and assigns both
    // subtopologies' tasks.
    let mut with = topics();
    with.insert("app-rep", TopicId::from_u128(3), 4);
    with.insert("app-store-changelog", TopicId::from_u128(4), 4);
    let result = c.heartbeat(&m.request(), &with, 100);
    let r = result.response;
    assert_eq!(codes_of(&r), Vec::<i8>::new(), "{r:?}");
    assert!(result.create_topics.is_empty());
    assert_eq!(r.active_tasks.as_ref().map(count), Some(8));
}

#[test]
fn heartbeats_that_break_the_rules_are_refused_with_kafkas_words() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let m = Client::new("m1", "p1", stateless());
    let refuse = |c: &mut StreamsGroupCoordinator, req: StreamsGroupHeartbeatRequest| {
        let r = c.heartbeat(&req, &topics(), 0).response;
        (r.error_code, r.error_message.unwrap_or_default())
    };
    let mut req = m.request();
    req.member_id = " ".into();
    assert_eq!(refuse(&mut c, req), (42, "MemberId can't be empty.".into()));
    let mut req = m.request();
    req.topology = None;
    assert_eq!(
        refuse(&mut c, req),
        (42, "Topology must be non-null when (re-)joining.".into())
    );
    let mut req = m.request();
    req.active_tasks = None;
    assert_eq!(
        refuse(&mut c, req),
        (42, "ActiveTasks must be empty when (re-)joining.".into())
    );
    let mut req = m.request();
    req.member_epoch = 3;
    assert_eq!(
        refuse(&mut c, req.clone()),
        (
            42,
            "Topology can only be provided when (re-)joining.".into()
        )
    );
    req.topology = None;
    assert_eq!(
        refuse(&mut c, req),
        (69, "Streams group app not found.".into())
    );
    let mut req = m.request();
    req.member_epoch = -1;
    req.topology = None;
    assert_eq!(refuse(&mut c, req), (69, "Group app not found.".into()));
    assert!(c.group("app").is_none(), "nothing was created");
    // A second member with another topology at the same epoch.
    let mut first = Client::new("m1", "p1", stateless());
    first.beat(&mut c, 0);
    let other = Client::new("m2", "p2", with_internal_topics());
    let epoch = c.group("app").map(|g| g.group_epoch());
    assert_eq!(
        refuse(&mut c, other.request()),
        (42, "Topology updates are not supported yet.".into())
    );
    assert_eq!(
        c.group("app").map(|g| g.group_epoch()),
        epoch,
        "the refusal changed nothing"
    );
    assert!(c.group("app").and_then(|g| g.member("m2")).is_none());
}

#[test]
fn a_member_epoch_from_the_future_or_the_past_is_fenced() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut m = Client::new("m1", "p1", stateless());
    m.beat(&mut c, 0);
    let mut req = m.request();
    req.member_epoch = m.epoch + 1;
    let r = c.heartbeat(&req, &topics(), 1).response;
    assert_eq!(r.error_code, codes::FENCED_MEMBER_EPOCH);
    let mut req = m.request();
    req.member_epoch = m.epoch - 1;
    req.active_tasks = Some(
        [("0".to_string(), BTreeSet::from([9]))]
            .into_iter()
            .collect(),
    );
    let r = c.heartbeat(&req, &topics(), 1).response;
    assert_eq!(r.error_code, codes::FENCED_MEMBER_EPOCH);
}

#[test]
fn the_records_rebuild_the_same_group() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = [
        Client::new("m1", "p1", with_internal_topics()),
        Client::new("m2", "p2", with_internal_topics()),
    ];
    let mut log: Vec<Record> = Vec::new();
    let mut with = topics();
    with.insert("app-rep", TopicId::from_u128(3), 4);
    with.insert("app-store-changelog", TopicId::from_u128(4), 4);
    for round in 0..6 {
        for cl in clients.iter_mut() {
            let result = c.heartbeat(&cl.request(), &with, round * 100);
            let r = &result.response;
            assert_eq!(r.error_code, 0, "{r:?}");
            cl.epoch = r.member_epoch;
            if let (Some(a), Some(s), Some(w)) =
                (&r.active_tasks, &r.standby_tasks, &r.warmup_tasks)
            {
                cl.owned = Tasks {
                    active: a.clone(),
                    standby: s.clone(),
                    warmup: w.clone(),
                };
            }
            if let Some(a) = result.append {
                log.extend(a.records);
            }
        }
    }
    let partition = c.partition_for("app");
    let mut loaded = StreamsGroupCoordinator::new(config(0));
    assert_eq!(loaded.load_partition(partition, log, 1_000), Ok(1));
    let (a, b) = (
        c.group("app").expect("live"),
        loaded.group("app").expect("loaded"),
    );
    assert_eq!(a.group_epoch(), b.group_epoch());
    assert_eq!(a.assignment_epoch(), b.assignment_epoch());
    assert_eq!(a.members(), b.members());
    assert_eq!(a.topology(), b.topology());
    for id in ["m1", "m2"] {
        assert_eq!(a.target_assignment(id), b.target_assignment(id));
    }
    assert_eq!(a.state(), b.state());
    // The loaded coordinator goes on serving the members.
    for cl in clients.iter_mut() {
        let r = loaded.heartbeat(&cl.request(), &with, 2_000).response;
        assert_eq!(r.error_code, 0, "{r:?}");
    }
}

#[test]
fn describe_list_and_delete() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![Client::new("m1", "p1", stateless())];
    let now = settle(&mut c, &mut clients, 0);
    let d = c.describe(&["app".to_string(), "nope".to_string()]);
    assert_eq!(d[0].group_state, "Stable");
    assert_eq!(d[0].members.len(), 1);
    assert_eq!(count(&d[0].members[0].assignment.active), 4);
    assert_eq!(d[0].assignor_name.as_deref(), Some("sticky"));
    let topology = d[0].topology.as_ref().expect("topology");
    assert_eq!(
        topology.subtopologies[0].source_topics,
        vec!["in".to_string()]
    );
    assert_eq!(d[1].error_code, codes::GROUP_ID_NOT_FOUND);
    assert_eq!(d[1].error_message.as_deref(), Some("Group nope not found."));
    assert_eq!(c.list_groups(&[], &[]).len(), 1);
    assert_eq!(
        c.list_groups(&["STABLE ".into()], &["Streams".into()])
            .len(),
        1
    );
    assert_eq!(c.list_groups(&[], &["consumer".into()]).len(), 0);
    assert_eq!(c.delete_group("app").err(), Some(68), "not empty");
    let mut leave = clients[0].request();
    leave.member_epoch = -1;
    c.heartbeat(&leave, &topics(), now);
    let append = c.delete_group("app").expect("deleted");
    assert!(append.records.iter().all(|r| r.value.is_none()));
    assert!(c.group("app").is_none());
}

#[test]
fn offset_commits_are_checked_against_the_member_and_its_tasks() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![Client::new("m1", "p1", stateless())];
    settle(&mut c, &mut clients, 0);
    let epoch = clients[0].epoch;
    let commit = |c: &StreamsGroupCoordinator, member: &str, epoch: i32, version: i16| {
        c.validate_offset_commit("app", member, epoch, false, version, &[("in".into(), 0)])
    };
    assert_eq!(commit(&c, "m1", epoch, 9), OffsetCheck::Accepted);
    assert!(matches!(
        commit(&c, "m1", epoch, 8),
        OffsetCheck::Rejected { error_code: 35, .. }
    ));
    assert!(matches!(
        commit(&c, "m9", epoch, 9),
        OffsetCheck::Rejected { error_code: 25, .. }
    ));
    assert!(matches!(
        commit(&c, "m1", epoch + 1, 9),
        OffsetCheck::Rejected {
            error_code: 113,
            ..
        }
    ));
    assert_eq!(
        c.validate_offset_commit("other", "m1", 1, false, 9, &[]),
        OffsetCheck::NotConsumerGroup
    );
    assert_eq!(
        c.validate_offset_fetch("app", Some("m1"), epoch),
        OffsetCheck::Accepted
    );
    assert_eq!(
        c.validate_offset_fetch("app", None, -1),
        OffsetCheck::Accepted
    );
    assert_eq!(c.is_subscribed_to_topic("app", "in"), Some(true));
    assert_eq!(c.is_subscribed_to_topic("app", "side"), Some(false));
}

#[test]
fn a_static_member_that_leaves_for_now_comes_back_to_its_tasks() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut m = Client::new("m1", "p1", stateless());
    m.instance_id = Some("i1".into());
    settle(&mut c, std::slice::from_mut(&mut m), 0);
    let tasks = m.owned.clone();
    let group_epoch = c.group("app").map(|g| g.group_epoch());
    let mut leave = m.request();
    leave.member_epoch = -2;
    let r = c.heartbeat(&leave, &topics(), 100).response;
    assert_eq!((r.error_code, r.member_epoch), (0, -2));
    assert_eq!(
        c.group("app").map(|g| g.group_epoch()),
        group_epoch,
        "no bump"
    );
    // It comes back under a new member id, with the same instance id and process.
    let mut back = Client::new("m1-new", "p1", stateless());
    back.instance_id = Some("i1".into());
    let r = back.beat(&mut c, 200).response;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(back.owned, tasks);
    let g = c.group("app").expect("group");
    assert!(g.member("m1").is_none());
    assert_eq!(
        g.group_epoch(),
        group_epoch.unwrap_or(0),
        "nothing that matters changed"
    );
    // The old member id is fenced.
    let r = m.beat(&mut c, 300).response;
    assert_eq!(r.error_code, codes::FENCED_INSTANCE_ID);
    // Another process with the same instance id while it is in use.
    let mut thief = Client::new("m3", "p3", stateless());
    thief.instance_id = Some("i1".into());
    let r = thief.beat(&mut c, 400).response;
    assert_eq!(r.error_code, codes::UNRELEASED_INSTANCE_ID);
}

#[test]
fn a_requested_shutdown_reaches_every_member() {
    let mut c = StreamsGroupCoordinator::new(config(0));
    let mut clients = vec![
        Client::new("m1", "p1", stateless()),
        Client::new("m2", "p2", stateless()),
    ];
    let now = settle(&mut c, &mut clients, 0);
    let mut req = clients[0].request();
    req.shutdown_application = true;
    let r = c.heartbeat(&req, &topics(), now).response;
    assert_eq!(codes_of(&r), vec![status::SHUTDOWN_APPLICATION]);
    let r = clients[1].beat(&mut c, now + 1).response;
    assert_eq!(codes_of(&r), vec![status::SHUTDOWN_APPLICATION]);
    assert_eq!(
        r.status.as_ref().map(|s| s[0].detail.clone()),
        Some("Streams group member m1 encountered a fatal error and requested a shutdown for the entire application.".to_string())
    );
}

#[test]
fn standby_replicas_go_to_other_processes() {
    let mut c = StreamsGroupCoordinator::new(StreamsGroupConfig {
        num_standby_replicas: 1,
        ..config(0)
    });
    let mut with = topics();
    with.insert("app-rep", TopicId::from_u128(3), 4);
    with.insert("app-store-changelog", TopicId::from_u128(4), 4);
    let mut clients = vec![
        Client::new("m1", "p1", with_internal_topics()),
        Client::new("m2", "p2", with_internal_topics()),
    ];
    for round in 0..8 {
        for cl in clients.iter_mut() {
            let r = c.heartbeat(&cl.request(), &with, round * 10).response;
            assert_eq!(r.error_code, 0, "{r:?}");
            cl.epoch = r.member_epoch;
            if let (Some(a), Some(s), Some(w)) =
                (&r.active_tasks, &r.standby_tasks, &r.warmup_tasks)
            {
                cl.owned = Tasks {
                    active: a.clone(),
                    standby: s.clone(),
                    warmup: w.clone(),
                };
            }
        }
    }
    let standbys: usize = clients.iter().map(|c| count(&c.owned.standby)).sum();
    assert_eq!(
        standbys, 4,
        "one standby per task of the stateful subtopology"
    );
    for cl in &clients {
        for (id, partitions) in &cl.owned.standby {
            assert_eq!(id, "1", "only the stateful subtopology has standbys");
            for p in partitions {
                assert!(
                    !tasks::has_task(&cl.owned.active, id, *p),
                    "standby beside its active"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random joins, leaves, heartbeats and silences: no task is ever active on two
    /// processes, and once everyone heartbeats again every task is active exactly once.
    #[test]
    fn no_task_is_ever_active_twice(steps in proptest::collection::vec((0usize..4, 0u8..4), 1..60)) {
        let mut c = StreamsGroupCoordinator::new(config(0));
        let mut clients: Vec<Option<Client>> = (0..4).map(|_| None).collect();
        let mut now = 0;
        for (who, what) in steps {
            now += 50;
            match (what, &mut clients[who]) {
                (0, slot @ None) => {
                    *slot = Some(Client::new(&format!("m{who}"), &format!("p{who}"), stateless()));
                }
                (1, slot @ Some(_)) => {
                    if let Some(cl) = slot.as_ref() {
                        let mut leave = cl.request();
                        leave.member_epoch = -1;
                        c.heartbeat(&leave, &topics(), now);
                    }
                    *slot = None;
                }
                _ => {}
            }
            if let Some(cl) = clients[who].as_mut() {
                let r = cl.beat(&mut c, now).response;
                if r.error_code != 0 {
                    clients[who] = None;
                }
            }
            let live: Vec<Client> = clients.iter().flatten().cloned().collect();
            assert_no_task_twice(&live);
        }
        let mut live: Vec<Client> = clients.into_iter().flatten().collect();
        if !live.is_empty() {
            settle(&mut c, &mut live, now + 1);
            let total: usize = live.iter().map(|cl| count(&cl.owned.active)).sum();
            prop_assert_eq!(total, 4);
        }
    }
}
