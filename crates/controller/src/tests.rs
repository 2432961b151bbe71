//! The controller runtime over a [`LocalMetadataLog`], on tokio's paused clock: brokers that
//! register, heartbeat, go silent and shut down; topics, ISR changes, elections and
//! reassignments; and the lifecycle manager against a live controller.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use gregor_metadata::controller::UNCLEAN_LEADER_ELECTION_ENABLE;
use gregor_metadata::{
    code, BrokerId, MetadataImage, PartitionRegistration, TopicIdPartition, NO_LEADER,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::protocol::*;
use crate::*;

struct Harness {
    log: LocalMetadataLog,
    controller: Arc<QuorumController>,
}

impl Harness {
    fn start(config: ControllerConfig) -> Harness {
        let log = LocalMetadataLog::new();
        let controller = Arc::new(QuorumController::activate(
            Arc::new(log.clone()),
            config,
            Arc::new(SystemClock::new()),
        ));
        Harness { log, controller }
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.log.current()
    }

    fn offset(&self) -> i64 {
        self.image().provenance().offset
    }

    async fn register(&self, id: BrokerId, incarnation: u128) -> RegisterBrokerResponse {
        self.register_after(id, incarnation, None).await
    }

    /// A registration that presents `previous_broker_epoch` (KIP-966: the epoch a clean
    /// shutdown left).
    async fn register_after(
        &self,
        id: BrokerId,
        incarnation: u128,
        previous_broker_epoch: Option<i64>,
    ) -> RegisterBrokerResponse {
        let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
            log_dirs: Vec::new(),
            broker_id: id,
            incarnation_id: Uuid::from_u128(incarnation),
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                security_protocol: 0,
            }],
            rack: None,
            previous_broker_epoch,
        });
        match self.controller.handle(request).await {
            ControllerResponse::RegisterBroker(r) => r,
            other => panic!("unexpected response {other:?}"),
        }
    }

    async fn heartbeat_at(
        &self,
        id: BrokerId,
        epoch: i64,
        offset: i64,
        want_shut_down: bool,
    ) -> BrokerHeartbeatResponse {
        let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            offline_log_dirs: Vec::new(),
            broker_id: id,
            broker_epoch: epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down,
            offline_replicas: Vec::new(),
            cordoned: None,
        });
        match self.controller.handle(request).await {
            ControllerResponse::BrokerHeartbeat(r) => r,
            other => panic!("unexpected response {other:?}"),
        }
    }

    /// A heartbeat from a broker that applied everything committed so far.
    async fn heartbeat(&self, id: BrokerId, epoch: i64) -> BrokerHeartbeatResponse {
        self.heartbeat_at(id, epoch, self.offset(), false).await
    }

    /// Registers brokers 1..=n and heartbeats them until unfenced; their epochs.
    async fn unfenced_brokers(&self, n: i32) -> Vec<i64> {
        let mut epochs = Vec::new();
        for id in 1..=n {
            let r = self.register(id, id as u128).await;
            assert_eq!(r.error_code, code::NONE, "{r:?}");
            epochs.push(r.broker_epoch);
        }
        for id in 1..=n {
            let r = self.heartbeat(id, epochs[id as usize - 1]).await;
            assert_eq!(r.error_code, code::NONE);
            assert!(!r.is_fenced && r.is_caught_up, "{r:?}");
        }
        epochs
    }

    /// Lets `ms` pass in 500 ms steps while `alive` brokers keep heartbeating.
    async fn run_for(&self, ms: u64, alive: &[(BrokerId, i64)]) {
        let mut left = ms;
        while left > 0 {
            let step = left.min(500);
            tokio::time::sleep(Duration::from_millis(step)).await;
            left -= step;
            for &(id, epoch) in alive {
                let r = self.heartbeat(id, epoch).await;
                assert_eq!(r.error_code, code::NONE, "broker {id}: {r:?}");
            }
        }
    }

    async fn create_topics(&self, topics: Vec<CreatableTopic>) -> Vec<CreatableTopicResult> {
        let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics,
            validate_only: false,
        });
        match self.controller.handle(request).await {
            ControllerResponse::CreateTopics(r) => r.topics,
            other => panic!("unexpected response {other:?}"),
        }
    }

    async fn create(&self, name: &str, partitions: i32, rf: i16) -> CreatableTopicResult {
        self.create_topics(vec![topic(name, partitions, rf)])
            .await
            .remove(0)
    }

    async fn create_assigned(
        &self,
        name: &str,
        assignments: &[&[BrokerId]],
        configs: &[(&str, &str)],
    ) -> Uuid {
        let t = CreatableTopic {
            assignments: assignments
                .iter()
                .zip(0..)
                .map(|(b, p)| CreatableReplicaAssignment {
                    partition_index: p,
                    broker_ids: b.to_vec(),
                })
                .collect(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..topic(name, -1, -1)
        };
        let r = self.create_topics(vec![t]).await.remove(0);
        assert_eq!(r.error_code, code::NONE, "{r:?}");
        r.topic_id
    }

    fn partition(&self, topic_id: Uuid, partition: i32) -> PartitionRegistration {
        self.image()
            .topics()
            .partition(TopicIdPartition {
                topic_id,
                partition,
            })
            .cloned()
            .expect("partition exists")
    }

    async fn alter_isr(
        &self,
        leader: BrokerId,
        broker_epoch: i64,
        topic_id: Uuid,
        p: &PartitionRegistration,
        new_isr: &[BrokerId],
    ) -> AlterPartitionResponse {
        let request = ControllerRequest::AlterPartition(AlterPartitionRequest {
            broker_id: leader,
            broker_epoch,
            partitions: vec![PartitionIsrChange {
                topic_id,
                partition: 0,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: new_isr.to_vec(),
                new_isr_broker_epochs: Vec::new(),
            }],
        });
        match self.controller.handle(request).await {
            ControllerResponse::AlterPartition(r) => r,
            other => panic!("unexpected response {other:?}"),
        }
    }
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: vec![],
        configs: vec![],
    }
}

fn quiet() -> ControllerConfig {
    ControllerConfig {
        auto_leader_rebalance_enable: false,
        ..ControllerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn brokers_register_unfence_and_topics_spread_over_them() {
    let h = Harness::start(quiet());
    // Registered but behind its own registration: fenced, not caught up.
    let epoch = h.register(1, 1).await.broker_epoch;
    let r = h.heartbeat_at(1, epoch, epoch - 1, false).await;
    assert!(r.is_fenced && !r.is_caught_up);
    let epochs = h.unfenced_brokers(3).await;
    assert_eq!(epochs[0], epoch, "a retried registration keeps its epoch");
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "epochs grow: {epochs:?}"
    );

    let created = h.create("spread", 3, 3).await;
    assert_eq!(created.error_code, code::NONE, "{created:?}");
    assert!(!created.topic_id.is_nil());
    let image = h.image();
    for b in 1..=3 {
        assert_eq!(
            image.topics().leader_count(b),
            1,
            "broker {b} leads one partition"
        );
    }
    for p in 0..3 {
        assert_eq!(h.partition(created.topic_id, p).isr.len(), 3);
    }

    let results = h
        .create_topics(vec![
            topic("too-wide", 1, 4),
            topic("spread", 1, 1),
            topic("bad/name", 1, 1),
            topic("no-partitions", 0, 1),
            topic("twice", 1, 1),
            topic("twice", 1, 1),
        ])
        .await;
    let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            code::INVALID_REPLICATION_FACTOR,
            code::TOPIC_ALREADY_EXISTS,
            code::INVALID_TOPIC_EXCEPTION,
            code::INVALID_PARTITIONS,
            code::INVALID_REQUEST,
            code::INVALID_REQUEST,
        ]
    );
    let huge = h
        .create_topics(vec![topic("a", 6_000, 1), topic("b", 6_000, 1)])
        .await;
    assert!(huge.iter().all(|r| r.error_code == code::POLICY_VIOLATION));
    assert!(h.image().topics().topic_by_name("a").is_none());
    // 9 999 partitions and a topic record, plus one more topic: over 10 000 records.
    let records = h
        .create_topics(vec![topic("c", 9_999, 1), topic("d", 1, 1)])
        .await;
    assert!(records
        .iter()
        .all(|r| r.error_code == code::POLICY_VIOLATION));
    let fits = h.create("e", 9_999, 1).await;
    assert_eq!(fits.error_code, code::NONE);
    assert_eq!(fits.num_partitions, 9_999);
}

#[tokio::test(start_paused = true)]
async fn a_second_process_with_a_live_broker_id_is_refused_until_the_session_expires() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    h.run_for(1_000, &[(1, epochs[0]), (2, epochs[1])]).await;
    let dup = h.register(1, 99).await;
    assert_eq!(dup.error_code, code::DUPLICATE_BROKER_REGISTRATION);
    assert_eq!(
        h.image().cluster().broker(1).map(|b| b.epoch),
        Some(epochs[0])
    );
    // Broker 1's first process dies; once its session is over the new one is accepted.
    h.run_for(3_500, &[(2, epochs[1])]).await;
    let again = h.register(1, 99).await;
    assert_eq!(again.error_code, code::NONE, "{again:?}");
    assert!(again.broker_epoch > epochs[0]);
    let old = h.heartbeat(1, epochs[0]).await;
    assert_eq!(old.error_code, code::STALE_BROKER_EPOCH);
    let new = h.heartbeat(1, again.broker_epoch).await;
    assert_eq!((new.error_code, new.is_fenced), (code::NONE, false));
}

/// Across controller failovers: a refusal names the refusing controller's sessions
/// (`sessions_id`), so the broker's wait starts again with each new controller; and a
/// registration that is fenced and never heard by the new controller has no session (as in
/// Kafka), so its restarted process is accepted at once.
#[tokio::test(start_paused = true)]
async fn a_new_controller_names_its_sessions_and_gives_none_to_a_fenced_silent_broker() {
    let first = Harness::start(quiet());
    let epochs = first.unfenced_brokers(2).await;
    first
        .run_for(1_000, &[(1, epochs[0]), (2, epochs[1])])
        .await;
    let dup = first.register(1, 99).await;
    assert_eq!(dup.error_code, code::DUPLICATE_BROKER_REGISTRATION);
    let log = first.log.clone();
    first.controller.deactivate();
    let second = Harness::over(&log, quiet());
    let again = second.register(1, 99).await;
    assert_eq!(again.error_code, code::DUPLICATE_BROKER_REGISTRATION);
    assert!(dup.sessions_id.is_some() && again.sessions_id.is_some());
    assert_ne!(dup.sessions_id, again.sessions_id);
    // Broker 1 goes silent and is fenced; a third controller never heard it.
    second.run_for(5_000, &[(2, epochs[1])]).await;
    assert!(second.image().cluster().broker(1).is_some_and(|b| b.fenced));
    second.controller.deactivate();
    let third = Harness::over(&log, quiet());
    let accepted = third.register(1, 99).await;
    assert_eq!(accepted.error_code, code::NONE, "{accepted:?}");
    // Broker 2, unfenced and not yet heard by the third controller, keeps its grace.
    let refused = third.register(2, 98).await;
    assert_eq!(refused.error_code, code::DUPLICATE_BROKER_REGISTRATION);
}

/// The broker of the controller's own process (a restarted single node) replaces its old
/// registration at once: that old incarnation was an earlier process of this node.
#[tokio::test(start_paused = true)]
async fn the_controllers_own_broker_re_registers_at_once() {
    let h = Harness::start(ControllerConfig {
        local_broker_id: Some(1),
        ..quiet()
    });
    let epochs = h.unfenced_brokers(2).await;
    h.run_for(1_000, &[(1, epochs[0]), (2, epochs[1])]).await;
    let again = h.register(1, 99).await;
    assert_eq!(again.error_code, code::NONE, "{again:?}");
    assert!(again.broker_epoch > epochs[0]);
    // Another broker id still may not be taken over while its session lives.
    let dup = h.register(2, 98).await;
    assert_eq!(dup.error_code, code::DUPLICATE_BROKER_REGISTRATION);
}

/// A newly active controller fences a broker it never hears from after the activation grace,
/// not after a whole session: a broker that died together with the old controller must not
/// add the session timeout to the failover. One that heartbeats within the grace stays.
#[tokio::test(start_paused = true)]
async fn a_new_controller_fences_a_silent_broker_after_the_activation_grace() {
    let first = Harness::start(quiet());
    let epochs = first.unfenced_brokers(2).await;
    first
        .run_for(1_000, &[(1, epochs[0]), (2, epochs[1])])
        .await;
    let log = first.log.clone();
    drop(first);
    let second = Harness {
        controller: Arc::new(QuorumController::activate(
            Arc::new(log.clone()),
            ControllerConfig {
                activation_grace_ms: 1_500,
                ..quiet()
            },
            Arc::new(SystemClock::new()),
        )),
        log,
    };
    // Broker 2 heartbeats the new controller; broker 1 died with the old one.
    second.run_for(1_000, &[(2, epochs[1])]).await;
    assert!(
        second.image().cluster().is_unfenced(1),
        "not before the grace"
    );
    second.run_for(1_000, &[(2, epochs[1])]).await;
    let image = second.image();
    assert!(
        !image.cluster().is_unfenced(1),
        "fenced after the grace, well before 3 s"
    );
    assert!(image.cluster().is_unfenced(2));
}

#[tokio::test(start_paused = true)]
async fn a_silent_broker_is_fenced_and_its_leaderships_move_to_the_isr() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(3).await;
    let id = h.create("t", 6, 3).await.topic_id;
    let before: Vec<PartitionRegistration> = (0..6).map(|p| h.partition(id, p)).collect();
    assert_eq!(h.image().topics().leader_count(1), 2);
    // Broker 1 stops heartbeating; 2 and 3 go on. Not fenced before its session ends.
    h.run_for(2_500, &[(2, epochs[1]), (3, epochs[2])]).await;
    assert!(h.image().cluster().is_unfenced(1));
    h.run_for(1_000, &[(2, epochs[1]), (3, epochs[2])]).await;
    let image = h.image();
    assert!(
        !image.cluster().is_unfenced(1),
        "fenced after the session timeout"
    );
    assert_eq!(image.topics().leader_count(1), 0);
    for (p, old) in before.iter().enumerate() {
        let now = h.partition(id, p as i32);
        assert!(!now.is_in_isr(1), "partition {p} ISR {:?}", now.isr);
        assert!(now.leader == 2 || now.leader == 3);
        if old.leader == 1 {
            assert_eq!(now.leader_epoch, old.leader_epoch + 1, "partition {p}");
        } else {
            assert_eq!(now.leader, old.leader);
        }
    }
}

/// A heartbeat of `id` that reports `offline` replicas of topic `topic_id` (their log
/// directory failed).
async fn heartbeat_offline(
    h: &Harness,
    id: BrokerId,
    epoch: i64,
    topic_id: Uuid,
    offline: &[i32],
) -> BrokerHeartbeatResponse {
    let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        offline_log_dirs: Vec::new(),
        broker_id: id,
        broker_epoch: epoch,
        current_metadata_offset: h.offset(),
        want_fence: false,
        want_shut_down: false,
        offline_replicas: offline
            .iter()
            .map(|&partition| OfflineReplica {
                topic_id,
                partition,
            })
            .collect(),
        cordoned: None,
    });
    match h.controller.handle(request).await {
        ControllerResponse::BrokerHeartbeat(r) => r,
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn replicas_a_heartbeat_reports_offline_leave_their_isrs_until_the_broker_restarts() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(3).await;
    // Broker 1 leads 0 and follows 1 (both on its failed disk), leads 2 (healthy).
    let id = h
        .create_assigned("t", &[&[1, 2, 3], &[2, 1, 3], &[1, 3, 2]], &[])
        .await;
    let solo = h.create_assigned("solo", &[&[1]], &[]).await;
    let r = heartbeat_offline(&h, 1, epochs[0], id, &[0, 1]).await;
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert!(
        !r.is_fenced,
        "the broker goes on serving its other directories"
    );
    let (p0, p1, p2) = (h.partition(id, 0), h.partition(id, 1), h.partition(id, 2));
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p2.leader, p2.isr.len()), (1, 3));
    // Reported again with every heartbeat: nothing more is written.
    let offset = h.offset();
    let r = heartbeat_offline(&h, 1, epochs[0], id, &[0, 1]).await;
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(h.offset(), offset);

    // Its replica of "solo" fails too: the last ISR member keeps its place, leaderless; a
    // preferred or unclean ElectLeaders does not bring it back while it is reported.
    let r = heartbeat_offline(&h, 1, epochs[0], solo, &[0]).await;
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    let s = h.partition(solo, 0);
    assert_eq!((s.leader, s.isr.clone()), (NO_LEADER, vec![1]));
    for election_type in [ElectionType::Preferred, ElectionType::Unclean] {
        let request = ControllerRequest::ElectLeaders(ElectLeadersRequest {
            election_type,
            partitions: Some(vec![TopicPartition {
                topic: "solo".into(),
                partition: 0,
            }]),
        });
        let ControllerResponse::ElectLeaders(r) = h.controller.handle(request).await else {
            panic!("unexpected response");
        };
        assert_ne!(r.results[0].error_code, code::NONE, "{r:?}");
        assert_eq!(h.partition(solo, 0).leader, NO_LEADER);
    }

    // The broker restarts with its disk readable: a new registration forgets the report, and
    // once caught up it leads "solo" again and can rejoin the other ISRs.
    // (It was killed: its session ends first.)
    h.run_for(3_500, &[(2, epochs[1]), (3, epochs[2])]).await;
    assert!(!h.image().cluster().is_unfenced(1));
    let r = h.register(1, 11).await;
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    let r = h.heartbeat(1, r.broker_epoch).await;
    assert!(!r.is_fenced, "{r:?}");
    let s = h.partition(solo, 0);
    assert_eq!((s.leader, s.isr.clone()), (1, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn a_broker_whose_heartbeat_says_cordoned_gets_no_new_replicas() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(3).await;
    let beat = |cordoned: Option<bool>| {
        ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            offline_log_dirs: Vec::new(),
            broker_id: 3,
            broker_epoch: epochs[2],
            current_metadata_offset: h.offset(),
            want_fence: false,
            want_shut_down: false,
            offline_replicas: Vec::new(),
            cordoned,
        })
    };
    let ControllerResponse::BrokerHeartbeat(r) = h.controller.handle(beat(Some(true))).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert!(h.image().cluster().is_cordoned(3));
    // Repeated: nothing written; absent (an older broker): left as it is.
    let offset = h.offset();
    h.controller.handle(beat(Some(true))).await;
    h.controller.handle(beat(None)).await;
    assert_eq!(h.offset(), offset);
    assert!(h.image().cluster().is_cordoned(3));
    let created = h.create("avoids-3", 6, 2).await;
    assert_eq!(created.error_code, code::NONE, "{created:?}");
    for p in 0..6 {
        assert!(!h.partition(created.topic_id, p).replicas.contains(&3));
    }
    let too_wide = h.create("too-wide", 1, 3).await;
    assert_eq!(too_wide.error_code, code::INVALID_REPLICATION_FACTOR);
    h.controller.handle(beat(Some(false))).await;
    assert!(!h.image().cluster().is_cordoned(3));
    let created = h.create("wide", 1, 3).await;
    assert_eq!(created.error_code, code::NONE, "{created:?}");
}

#[tokio::test(start_paused = true)]
async fn assigned_log_directories_and_a_failed_one_go_into_the_metadata() {
    let h = Harness::start(quiet());
    let (a, b) = (Uuid::from_u128(0xa0), Uuid::from_u128(0xb0));
    let mut epochs = Vec::new();
    for id in [2, 3] {
        let r = h.register(id, id as u128).await;
        epochs.push(r.broker_epoch);
        let r = h.heartbeat(id, r.broker_epoch).await;
        assert!(!r.is_fenced, "{r:?}");
    }
    // Broker 1 has two log directories.
    let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        log_dirs: vec![a, b],
        broker_id: 1,
        incarnation_id: Uuid::from_u128(11),
        endpoints: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9001,
            security_protocol: 0,
        }],
        rack: None,
        previous_broker_epoch: None,
    });
    let ControllerResponse::RegisterBroker(r) = h.controller.handle(request).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    let epoch1 = r.broker_epoch;
    let r = h.heartbeat(1, epoch1).await;
    assert!(!r.is_fenced, "{r:?}");
    assert_eq!(
        h.image().cluster().broker(1).expect("1").log_dirs,
        vec![a, b]
    );
    let t = h.create_assigned("t", &[&[1, 2]], &[]).await;
    let solo = h.create_assigned("solo", &[&[1]], &[]).await;
    let assign = |topic_id, directory| DirectoryAssignment {
        topic_id,
        partition: 0,
        directory,
    };
    let request = ControllerRequest::AssignReplicasToDirs(AssignReplicasToDirsRequest {
        broker_id: 1,
        broker_epoch: epoch1,
        assignments: vec![
            assign(t, b),
            assign(solo, b),
            assign(Uuid::from_u128(77), a),
        ],
    });
    let ControllerResponse::AssignReplicasToDirs(r) = h.controller.handle(request.clone()).await
    else {
        panic!("unexpected response");
    };
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(
        r.results,
        vec![code::NONE, code::NONE, code::UNKNOWN_TOPIC_ID]
    );
    assert_eq!(h.partition(t, 0).directory(1), Some(b));
    assert_eq!(h.partition(solo, 0).directory(1), Some(b));
    // An older epoch is refused as a whole.
    let stale = ControllerRequest::AssignReplicasToDirs(AssignReplicasToDirsRequest {
        broker_id: 1,
        broker_epoch: epoch1 - 1,
        assignments: vec![assign(t, a)],
    });
    let ControllerResponse::AssignReplicasToDirs(r) = h.controller.handle(stale).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.error_code, code::STALE_BROKER_EPOCH);
    // Directory b fails: its heartbeat says so; the registration keeps a, b's replicas leave.
    let leader_before = h.partition(t, 0).leader;
    let beat = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        offline_log_dirs: vec![b],
        broker_id: 1,
        broker_epoch: epoch1,
        current_metadata_offset: h.offset(),
        want_fence: false,
        want_shut_down: false,
        offline_replicas: Vec::new(),
        cordoned: None,
    });
    let ControllerResponse::BrokerHeartbeat(r) = h.controller.handle(beat.clone()).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert!(!r.is_fenced, "the broker goes on with its other directory");
    assert_eq!(h.image().cluster().broker(1).expect("1").log_dirs, vec![a]);
    let p = h.partition(t, 0);
    assert_eq!(
        (p.leader, p.isr.clone()),
        (2, vec![2]),
        "{p:?} (was led by {leader_before})"
    );
    let s = h.partition(solo, 0);
    assert_eq!((s.leader, s.isr.clone()), (NO_LEADER, vec![1]));
    // Repeated: nothing more is written.
    let offset = h.offset();
    h.controller.handle(beat).await;
    assert_eq!(h.offset(), offset);
}

#[tokio::test(start_paused = true)]
async fn without_another_isr_member_a_partition_goes_offline_unless_unclean_is_allowed() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    let clean = h.create_assigned("clean", &[&[1, 2]], &[]).await;
    let unclean = h
        .create_assigned(
            "unclean",
            &[&[1, 2]],
            &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
        )
        .await;
    // The leader, 1, shrinks both ISRs to itself (2 fell behind).
    for topic_id in [clean, unclean] {
        let p = h.partition(topic_id, 0);
        let r = h.alter_isr(1, epochs[0], topic_id, &p, &[1]).await;
        assert_eq!(r.partitions[0].error_code, code::NONE, "{r:?}");
    }
    h.run_for(3_500, &[(2, epochs[1])]).await;
    let offline = h.partition(clean, 0);
    assert_eq!((offline.leader, offline.isr.clone()), (NO_LEADER, vec![1]));
    let elected = h.partition(unclean, 0);
    assert_eq!((elected.leader, elected.isr.clone()), (2, vec![2]));
    // An operator's unclean ElectLeaders brings the offline one back, on broker 2.
    let request = ControllerRequest::ElectLeaders(ElectLeadersRequest {
        election_type: ElectionType::Unclean,
        partitions: None,
    });
    let ControllerResponse::ElectLeaders(r) = h.controller.handle(request).await else {
        panic!("unexpected response");
    };
    assert_eq!(
        r.results,
        vec![PartitionResult {
            topic: "clean".into(),
            partition: 0,
            error_code: code::NONE,
            error_message: None,
        }]
    );
    let back = h.partition(clean, 0);
    assert_eq!((back.leader, back.isr.clone()), (2, vec![2]));
    assert_eq!(back.leader_epoch, offline.leader_epoch + 1);
}

#[tokio::test(start_paused = true)]
async fn controlled_shutdown_moves_leaderships_before_letting_the_broker_stop() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    h.create("t", 4, 2).await;
    assert_eq!(h.image().topics().leader_count(1), 2);
    let offset = h.offset();
    let first = h.heartbeat_at(1, epochs[0], offset, true).await;
    assert_eq!(first.error_code, code::NONE);
    assert!(first.is_fenced);
    assert!(!first.should_shut_down, "it has not applied the move yet");
    assert_eq!(h.image().topics().leader_count(1), 0);
    assert_eq!(h.image().topics().leader_count(2), 4);
    let second = h.heartbeat_at(1, epochs[0], h.offset(), true).await;
    assert!(second.should_shut_down);
    // A fenced broker is not fenced again for its silence afterwards.
    h.run_for(5_000, &[(2, epochs[1])]).await;
    assert_eq!(h.image().topics().leader_count(2), 4);
}

/// Found by the simulation: a broker whose session expired (a long pause) asks to shut down
/// with a metadata offset from before its fence, so its own image still has it leading. It
/// used to be let go at once; it must first apply its fence, as after a controlled shutdown.
#[tokio::test(start_paused = true)]
async fn a_broker_fenced_for_silence_stops_only_once_it_applied_its_fence() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    h.create("t", 2, 2).await;
    let before_fence = h.offset();
    assert_eq!(h.image().topics().leader_count(1), 1);
    h.run_for(3_500, &[(2, epochs[1])]).await;
    assert!(
        !h.image().cluster().is_unfenced(1),
        "fenced for its silence"
    );
    assert!(h.offset() > before_fence);
    let behind = h.heartbeat_at(1, epochs[0], before_fence, true).await;
    assert_eq!(behind.error_code, code::NONE);
    assert!(behind.is_fenced);
    assert!(
        !behind.should_shut_down,
        "its image @{before_fence} still has it leading"
    );
    let caught_up = h.heartbeat_at(1, epochs[0], h.offset(), true).await;
    assert!(caught_up.should_shut_down);
}

/// Found by the simulation (seed 3377): a fenced broker's shutdown request overtook an older
/// heartbeat of the same incarnation (sent before it timed out, delayed on its way). The
/// controller let the broker stop, then unfenced it on the late heartbeat: a stopped broker
/// unfenced, given leaderships until its session expired. A late heartbeat no longer
/// unfences a broker that asked to shut down.
#[tokio::test(start_paused = true)]
async fn a_late_heartbeat_does_not_unfence_a_broker_that_asked_to_shut_down() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    h.create("t", 2, 2).await;
    h.run_for(3_500, &[(2, epochs[1])]).await;
    assert!(
        !h.image().cluster().is_unfenced(1),
        "fenced for its silence"
    );
    let stop = h.heartbeat_at(1, epochs[0], h.offset(), true).await;
    assert!(stop.is_fenced && stop.should_shut_down, "{stop:?}");
    let late = h.heartbeat_at(1, epochs[0], h.offset(), false).await;
    assert_eq!(late.error_code, code::NONE);
    assert!(late.is_fenced, "{late:?}");
    assert!(!h.image().cluster().is_unfenced(1));
}

#[tokio::test(start_paused = true)]
async fn alter_partition_checks_epochs() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(3).await;
    let id = h.create_assigned("isr", &[&[1, 2, 3]], &[]).await;
    let p = h.partition(id, 0);
    let ok = h.alter_isr(1, epochs[0], id, &p, &[1, 2]).await;
    let result = &ok.partitions[0];
    assert_eq!(result.error_code, code::NONE);
    assert_eq!(result.isr, vec![1, 2]);
    assert_eq!(result.partition_epoch, p.partition_epoch + 1);
    assert_eq!(result.leader_epoch, p.leader_epoch);
    // The same request again, computed from the old partition epoch.
    let stale = h.alter_isr(1, epochs[0], id, &p, &[1]).await;
    assert_eq!(stale.partitions[0].error_code, code::INVALID_UPDATE_VERSION);
    let fenced = PartitionRegistration {
        leader_epoch: p.leader_epoch - 1,
        ..h.partition(id, 0)
    };
    let r = h.alter_isr(1, epochs[0], id, &fenced, &[1]).await;
    assert_eq!(r.partitions[0].error_code, code::FENCED_LEADER_EPOCH);
    let r = h
        .alter_isr(2, epochs[1], id, &h.partition(id, 0), &[2])
        .await;
    assert_eq!(r.partitions[0].error_code, code::NOT_LEADER_OR_FOLLOWER);
    let r = h
        .alter_isr(1, epochs[0] - 1, id, &h.partition(id, 0), &[1])
        .await;
    assert_eq!(r.error_code, code::STALE_BROKER_EPOCH);
    // Expanding back with the current epochs works.
    let r = h
        .alter_isr(1, epochs[0], id, &h.partition(id, 0), &[1, 2, 3])
        .await;
    assert_eq!(r.partitions[0].isr, vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_reassignment_adds_catches_up_and_completes() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(4).await;
    let id = h.create_assigned("moving", &[&[1, 2, 3]], &[]).await;
    let request =
        ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
            partitions: vec![
                ReassignablePartition {
                    topic: "moving".into(),
                    partition: 0,
                    replicas: Some(vec![2, 3, 4]),
                },
                ReassignablePartition {
                    topic: "missing".into(),
                    partition: 0,
                    replicas: Some(vec![1]),
                },
            ],
        });
    let ControllerResponse::AlterPartitionReassignments(r) = h.controller.handle(request).await
    else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![code::NONE, code::UNKNOWN_TOPIC_OR_PARTITION]);
    let list = ControllerRequest::ListPartitionReassignments(ListPartitionReassignmentsRequest {
        partitions: None,
    });
    let ControllerResponse::ListPartitionReassignments(listed) =
        h.controller.handle(list.clone()).await
    else {
        panic!("unexpected response");
    };
    assert_eq!(
        listed.reassignments,
        vec![OngoingReassignment {
            topic: "moving".into(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            adding_replicas: vec![4],
            removing_replicas: vec![1],
        }]
    );
    // Broker 4 catches up and the leader (1) adds it to the ISR: the reassignment completes,
    // and leadership leaves the removed broker.
    let p = h.partition(id, 0);
    let r = h
        .alter_isr(p.leader, epochs[0], id, &p, &[1, 2, 3, 4])
        .await;
    assert_eq!(r.partitions[0].error_code, code::NONE, "{r:?}");
    let done = h.partition(id, 0);
    assert_eq!(done.replicas, vec![2, 3, 4]);
    assert!(!done.is_reassigning());
    assert!(!done.is_in_isr(1) && done.leader != 1);
    let ControllerResponse::ListPartitionReassignments(listed) = h.controller.handle(list).await
    else {
        panic!("unexpected response");
    };
    assert!(listed.reassignments.is_empty());
}

#[tokio::test(start_paused = true)]
async fn elections_configs_deletes_and_the_leader_rebalance() {
    let h = Harness::start(ControllerConfig {
        leader_imbalance_check_interval: Duration::from_secs(10),
        ..ControllerConfig::default()
    });
    let epochs = h.unfenced_brokers(2).await;
    let id = h.create_assigned("t", &[&[1, 2]], &[]).await;
    // Broker 1 is fenced for its silence; 2 leads and 1 leaves the ISR.
    h.run_for(3_500, &[(2, epochs[1])]).await;
    assert_eq!(h.partition(id, 0).leader, 2);
    let preferred = ControllerRequest::ElectLeaders(ElectLeadersRequest {
        election_type: ElectionType::Preferred,
        partitions: Some(vec![TopicPartition {
            topic: "t".into(),
            partition: 0,
        }]),
    });
    let ControllerResponse::ElectLeaders(r) = h.controller.handle(preferred.clone()).await else {
        panic!("unexpected response");
    };
    assert_eq!(
        r.results[0].error_code,
        code::PREFERRED_LEADER_NOT_AVAILABLE
    );
    // Broker 1 comes back (heartbeats again, caught up): unfenced, and the leader adds it to
    // the ISR. The periodic check then gives it its preferred leadership back.
    let back = h.heartbeat(1, epochs[0]).await;
    assert!(!back.is_fenced);
    let p = h.partition(id, 0);
    let r = h.alter_isr(2, epochs[1], id, &p, &[2, 1]).await;
    assert_eq!(r.partitions[0].error_code, code::NONE);
    assert_eq!(
        h.partition(id, 0).leader,
        2,
        "not before the periodic check"
    );
    h.run_for(10_000, &[(1, epochs[0]), (2, epochs[1])]).await;
    assert_eq!(
        h.partition(id, 0).leader,
        1,
        "rebalanced to the preferred replica"
    );
    let ControllerResponse::ElectLeaders(r) = h.controller.handle(preferred).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.results[0].error_code, code::ELECTION_NOT_NEEDED);

    let alter = ControllerRequest::AlterConfigs(AlterConfigsRequest {
        topics: vec![
            AlterConfigsTopic {
                topic: "t".into(),
                configs: vec![("retention.ms".into(), Some("1000".into()))],
            },
            AlterConfigsTopic {
                topic: "nope".into(),
                configs: vec![("retention.ms".into(), Some("1000".into()))],
            },
        ],
        validate_only: false,
        brokers: vec![
            AlterConfigsBroker {
                resource: String::new(),
                configs: vec![("log.retention.ms".into(), Some("5000".into()))],
            },
            AlterConfigsBroker {
                resource: "1".into(),
                configs: vec![("num.partitions".into(), Some("5".into()))],
            },
        ],
        groups: vec![
            AlterConfigsGroup {
                group: "g".into(),
                configs: vec![("share.auto.offset.reset".into(), Some("earliest".into()))],
            },
            AlterConfigsGroup {
                group: "g".into(),
                configs: vec![("nope.key".into(), Some("1".into()))],
            },
        ],
        client_metrics: vec![
            AlterConfigsClientMetrics {
                subscription: "sub1".into(),
                configs: vec![("interval.ms".into(), Some("60000".into()))],
            },
            AlterConfigsClientMetrics {
                subscription: "sub1".into(),
                configs: vec![("nope".into(), Some("1".into()))],
            },
            AlterConfigsClientMetrics {
                subscription: String::new(),
                configs: vec![("interval.ms".into(), Some("60000".into()))],
            },
        ],
    });
    let ControllerResponse::AlterConfigs(r) = h.controller.handle(alter).await else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![code::NONE, code::UNKNOWN_TOPIC_OR_PARTITION]);
    assert_eq!(
        h.image().configs().topic_config("t", "retention.ms"),
        Some("1000")
    );
    let codes: Vec<i16> = r.broker_results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![code::NONE, code::INVALID_CONFIG],
        "num.partitions is not dynamic"
    );
    assert_eq!(
        h.image().configs().broker_config("", "log.retention.ms"),
        Some("5000")
    );
    let codes: Vec<i16> = r.group_results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![code::NONE, code::INVALID_CONFIG],
        "unknown group key"
    );
    assert_eq!(
        h.image()
            .configs()
            .group_config("g", "share.auto.offset.reset"),
        Some("earliest")
    );
    let codes: Vec<i16> = r
        .client_metrics_results
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![code::NONE, code::INVALID_REQUEST, code::INVALID_REQUEST],
        "unknown subscription key, empty subscription name"
    );
    assert_eq!(
        h.image()
            .configs()
            .client_metrics_config("sub1", "interval.ms"),
        Some("60000")
    );

    let grow = ControllerRequest::CreatePartitions(CreatePartitionsRequest {
        topics: vec![
            CreatePartitionsTopic {
                name: "t".into(),
                count: 3,
                assignments: None,
            },
            CreatePartitionsTopic {
                name: "t".into(),
                count: 2,
                assignments: None,
            },
        ],
        validate_only: false,
    });
    let ControllerResponse::CreatePartitions(r) = h.controller.handle(grow).await else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![code::NONE, code::INVALID_PARTITIONS]);
    assert_eq!(
        h.image().topics().topic(id).map(|t| t.partition_count()),
        Some(3)
    );

    let delete = ControllerRequest::DeleteTopics(DeleteTopicsRequest {
        topics: vec![
            TopicRef::Id(id),
            TopicRef::Name("t".into()),
            TopicRef::Id(Uuid::from_u128(5)),
        ],
    });
    let ControllerResponse::DeleteTopics(r) = h.controller.handle(delete).await else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.topics.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            code::NONE,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            code::UNKNOWN_TOPIC_ID
        ]
    );
    assert_eq!(r.topics[0].name.as_deref(), Some("t"));
    assert!(h.image().topics().topic_by_name("t").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_controller_that_lost_the_leadership_answers_not_controller() {
    let h = Harness::start(quiet());
    h.unfenced_brokers(1).await;
    let garbage = h
        .controller
        .handle_bytes(bytes::Bytes::from_static(b"\x01nonsense"))
        .await;
    let decoded = ControllerResponse::decode(&garbage).expect("an error response");
    assert_eq!(decoded.error_code(), Some(code::INVALID_REQUEST));
    // Bytes in, bytes out.
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![topic("bytes", 1, 1)],
        validate_only: true,
    });
    let answer = h.controller.handle_bytes(request.encode()).await;
    let ControllerResponse::CreateTopics(r) =
        ControllerResponse::decode(&answer).expect("a response")
    else {
        panic!("unexpected response");
    };
    assert_eq!(r.topics[0].error_code, code::NONE);
    assert!(
        h.image().topics().topic_by_name("bytes").is_none(),
        "validate only"
    );

    h.log.set_leader(false);
    let r = h.create("late", 1, 1).await;
    assert_eq!(r.error_code, code::NOT_CONTROLLER);
    let next = h.controller.handle(request).await;
    assert_eq!(next.error_code(), Some(code::NOT_CONTROLLER));
    assert!(!h.controller.is_active());
}

#[tokio::test(start_paused = true)]
async fn a_deactivated_controller_answers_not_controller_while_still_held() {
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(1).await;
    // A request holds the controller (as one in flight would); the node loses the quorum.
    let held = h.controller.clone();
    h.log.set_leader(false);
    held.deactivate();
    let r = held
        .handle(ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            offline_log_dirs: Vec::new(),
            broker_id: 1,
            broker_epoch: epochs[0],
            current_metadata_offset: h.offset(),
            want_fence: false,
            want_shut_down: false,
            offline_replicas: Vec::new(),
            cordoned: None,
        }))
        .await;
    assert_eq!(r.error_code(), Some(code::NOT_CONTROLLER), "{r:?}");
    assert!(!held.is_active());
}

/// The broker's channel to a controller in the same process.
struct InProcess(Arc<QuorumController>);

impl ControllerChannel for InProcess {
    fn call(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
        let controller = self.0.clone();
        // Through bytes, as over the controller listener.
        async move {
            let answer = controller.handle_bytes(request.encode()).await;
            ControllerResponse::decode(&answer)
                .map_err(|e| ChannelError::Unreachable(e.to_string()))
        }
        .boxed()
    }
}

fn lifecycle(h: &Harness, id: BrokerId, offset: watch::Receiver<i64>) -> BrokerLifecycleManager {
    BrokerLifecycleManager::start(
        Arc::new(InProcess(h.controller.clone())),
        BrokerIdentity {
            log_dirs: Vec::new(),
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![],
            rack: None,
            previous_broker_epoch: None,
        },
        offset,
        LifecycleConfig::default(),
    )
}

/// The broker's applied offset following the log, as a broker replaying it would.
fn follow(log: &LocalMetadataLog) -> watch::Receiver<i64> {
    let mut image = log.image();
    let (tx, rx) = watch::channel(image.borrow().provenance().offset);
    tokio::spawn(async move {
        while image.changed().await.is_ok() {
            let offset = image.borrow_and_update().provenance().offset;
            if tx.send(offset).is_err() {
                return;
            }
        }
    });
    rx
}

async fn wait_for(manager: &BrokerLifecycleManager, state: BrokerState) {
    let mut rx = manager.state();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s == state))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "never reached {state:?}, at {:?}",
                *manager.state().borrow()
            )
        })
        .expect("manager alive");
}

#[tokio::test(start_paused = true)]
async fn the_lifecycle_manager_registers_catches_up_runs_and_shuts_down() {
    let h = Harness::start(quiet());
    // Broker 1 has applied nothing yet: it registers and stays fenced.
    let (offset, offset_rx) = watch::channel(-1i64);
    let one = lifecycle(&h, 1, offset_rx);
    assert_eq!(*one.state().borrow(), BrokerState::Starting);
    wait_for(&one, BrokerState::Recovering).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(*one.state().borrow(), BrokerState::Recovering);
    assert!(one.broker_epoch().is_some());
    assert!(!h.image().cluster().is_unfenced(1));
    // It catches up with the metadata log: unfenced.
    offset.send_replace(h.offset());
    wait_for(&one, BrokerState::Running).await;
    assert!(h.image().cluster().is_unfenced(1));

    let two = lifecycle(&h, 2, follow(&h.log));
    wait_for(&two, BrokerState::Running).await;
    // Broker 1 keeps up from now on.
    let mut image = h.log.image();
    tokio::spawn(async move {
        while image.changed().await.is_ok() {
            let at = image.borrow_and_update().provenance().offset;
            if offset.send(at).is_err() {
                return;
            }
        }
    });
    let r = h.create("t", 4, 2).await;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(h.image().topics().leader_count(1), 2);
    // Both stay unfenced for a long while.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(h.image().cluster().is_unfenced(1) && h.image().cluster().is_unfenced(2));

    assert!(one.controlled_shutdown().await);
    assert_eq!(*one.state().borrow(), BrokerState::ShuttingDown);
    let image = h.image();
    assert_eq!(image.topics().leader_count(1), 0);
    assert_eq!(image.topics().leader_count(2), 4);
    assert!(!image.cluster().is_unfenced(1));
    assert_eq!(*two.state().borrow(), BrokerState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_wants_to_stay_fenced_is_not_unfenced() {
    let h = Harness::start(quiet());
    let manager = lifecycle(&h, 1, follow(&h.log));
    manager.set_want_fence(true);
    wait_for(&manager, BrokerState::Recovering).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*manager.state().borrow(), BrokerState::Recovering);
    assert!(!h.image().cluster().is_unfenced(1));
    manager.set_want_fence(false);
    wait_for(&manager, BrokerState::Running).await;
    // And a running broker that asks to be fenced again is.
    manager.set_want_fence(true);
    wait_for(&manager, BrokerState::Recovering).await;
    assert!(!h.image().cluster().is_unfenced(1));
}

#[tokio::test(start_paused = true)]
async fn a_controlled_shutdown_without_a_controller_times_out() {
    let h = Harness::start(quiet());
    let manager = lifecycle(&h, 1, follow(&h.log));
    wait_for(&manager, BrokerState::Running).await;
    h.log.set_leader(false);
    assert!(!manager.controlled_shutdown().await);
    assert_eq!(*manager.state().borrow(), BrokerState::ShuttingDown);
}

#[tokio::test(start_paused = true)]
async fn a_reassignment_whose_replicas_joined_the_isr_elsewhere_is_completed() {
    let h = Harness::start(quiet());
    h.unfenced_brokers(3).await;
    let id = h.create_assigned("r", &[&[1, 2]], &[]).await;
    let request =
        ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
            partitions: vec![ReassignablePartition {
                topic: "r".into(),
                partition: 0,
                replicas: Some(vec![2, 3]),
            }],
        });
    h.controller.handle(request).await;
    assert!(h.partition(id, 0).is_reassigning());
    // A record that puts broker 3 in the ISR without completing (as a controller that failed
    // over between the two would leave it) is applied to the log directly.
    let change = gregor_metadata::PartitionChangeRecord {
        directories: None,
        topic_id: id,
        partition_id: 0,
        leader: None,
        isr: Some(vec![1, 2, 3]),
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
        eligible_leader_replicas: None,
        last_known_elr: None,
    };
    h.log
        .propose(vec![gregor_metadata::MetadataRecord::PartitionChange(
            change,
        )])
        .await
        .expect("applies");
    // The controller sees the new image and ends the reassignment.
    let mut image = h.log.image();
    tokio::time::timeout(
        Duration::from_secs(1),
        image.wait_for(|i| {
            i.topics()
                .partition(TopicIdPartition {
                    topic_id: id,
                    partition: 0,
                })
                .is_some_and(|p| !p.is_reassigning())
        }),
    )
    .await
    .expect("completed")
    .expect("log alive");
    let done = h.partition(id, 0);
    assert_eq!(
        (done.replicas.clone(), done.isr.clone()),
        (vec![2, 3], vec![2, 3])
    );
    assert_ne!(done.leader, 1);
}

#[test]
fn the_manual_clock_moves_only_when_told() {
    let clock = ManualClock::new(5);
    let shared = clock.clone();
    assert_eq!(shared.now_ms(), 5);
    clock.advance(10);
    assert_eq!(shared.now_ms(), 15);
    clock.set(100);
    assert_eq!(shared.now_ms(), 100);
}

/// A metadata log whose commits take as long as a test says (a slow quorum).
#[derive(Clone)]
struct SlowLog {
    inner: LocalMetadataLog,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl MetadataLog for SlowLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image()
    }

    fn propose(
        &self,
        records: Vec<gregor_metadata::MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        let delay = self.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
        let inner = self.inner.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            inner.propose(records).await
        }
        .boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_queued_behind_a_slow_commit_keep_their_sessions() {
    let inner = LocalMetadataLog::new();
    let slow = SlowLog {
        inner: inner.clone(),
        delay_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    let controller = Arc::new(QuorumController::activate(
        Arc::new(slow.clone()),
        quiet(),
        Arc::new(SystemClock::new()),
    ));
    let h = Harness {
        log: inner,
        controller: controller.clone(),
    };
    let epochs = h.unfenced_brokers(2).await;
    // One commit takes longer than a whole session; the brokers heartbeat all along, and
    // their heartbeats wait in the controller's queue.
    slow.delay_ms
        .store(5_000, std::sync::atomic::Ordering::SeqCst);
    let create = {
        let controller = controller.clone();
        tokio::spawn(async move {
            controller
                .handle(ControllerRequest::CreateTopics(CreateTopicsRequest {
                    topics: vec![topic("slow", 1, 2)],
                    validate_only: false,
                }))
                .await
        })
    };
    let mut beats = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (id, epoch) in [(1, epochs[0]), (2, epochs[1])] {
            let controller = controller.clone();
            let offset = h.offset();
            beats.push(tokio::spawn(async move {
                controller
                    .handle(ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                        offline_log_dirs: Vec::new(),
                        broker_id: id,
                        broker_epoch: epoch,
                        current_metadata_offset: offset,
                        want_fence: false,
                        want_shut_down: false,
                        offline_replicas: Vec::new(),
                        cordoned: None,
                    }))
                    .await
            }));
        }
    }
    slow.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let created = create.await.expect("create task");
    assert!(matches!(created, ControllerResponse::CreateTopics(_)));
    for beat in beats {
        beat.await.expect("heartbeat task");
    }
    // Not even briefly (a fenced broker's next heartbeat would unfence it again).
    let fences = h
        .log
        .records()
        .into_iter()
        .filter(|(_, r)| matches!(r, gregor_metadata::MetadataRecord::FenceBroker(_)))
        .count();
    assert_eq!(fences, 0, "no broker fenced for a slow commit");
}

/// A channel to whichever controller is active now (none while the quorum elects one).
struct Failover(std::sync::Mutex<Option<Arc<QuorumController>>>);

impl ControllerChannel for Arc<Failover> {
    fn call(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
        let active = self.0.lock().expect("not poisoned").clone();
        async move {
            match active {
                Some(controller) => Ok(controller.handle(request).await),
                None => Err(ChannelError::NoController),
            }
        }
        .boxed()
    }
}

#[tokio::test(start_paused = true)]
async fn brokers_survive_a_controller_failover_without_being_fenced() {
    let log = LocalMetadataLog::new();
    let activate = || {
        Arc::new(QuorumController::activate(
            Arc::new(log.clone()),
            quiet(),
            Arc::new(SystemClock::new()),
        ))
    };
    let channel = Arc::new(Failover(std::sync::Mutex::new(Some(activate()))));
    let managers: Vec<BrokerLifecycleManager> = (1..=2)
        .map(|id| {
            BrokerLifecycleManager::start(
                Arc::new(channel.clone()),
                BrokerIdentity {
                    log_dirs: Vec::new(),
                    broker_id: id,
                    incarnation_id: Uuid::new_v4(),
                    endpoints: vec![],
                    rack: None,
                    previous_broker_epoch: None,
                },
                follow(&log),
                LifecycleConfig::default(),
            )
        })
        .collect();
    for m in &managers {
        wait_for(m, BrokerState::Running).await;
    }
    // The active controller goes away; for 2 s there is none; then another node takes over
    // with the same log and no memory of the sessions.
    let old = channel.0.lock().expect("not poisoned").take();
    drop(old);
    tokio::time::sleep(Duration::from_secs(2)).await;
    *channel.0.lock().expect("not poisoned") = Some(activate());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let fences = log
        .records()
        .into_iter()
        .filter(|(_, r)| matches!(r, gregor_metadata::MetadataRecord::FenceBroker(_)))
        .count();
    assert_eq!(fences, 0);
    for m in &managers {
        assert_eq!(*m.state().borrow(), BrokerState::Running);
    }
    // A broker that dies now is fenced by the new controller.
    let mut managers = managers;
    drop(managers.pop());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!log.current().cluster().is_unfenced(2));
    assert!(log.current().cluster().is_unfenced(1));
}

/// A second live process with a broker id already registered (another data dir, a new
/// incarnation) is refused for longer than a session and gives up, naming the other
/// registration; the first keeps running. Once the first dies and its session is over, a new
/// process with that id is accepted: that is a normal restart.
#[tokio::test(start_paused = true)]
async fn a_duplicate_broker_gives_up_while_a_restart_after_the_session_is_accepted() {
    let h = Harness::start(quiet());
    let original = lifecycle(&h, 1, follow(&h.log));
    wait_for(&original, BrokerState::Running).await;
    let epoch = original.broker_epoch().expect("registered");

    let impostor = lifecycle(&h, 1, follow(&h.log));
    // Refused, but retried for two sessions first: it could be this node's own restart.
    tokio::time::sleep(Duration::from_millis(DEFAULT_BROKER_SESSION_TIMEOUT_MS)).await;
    assert_eq!(*impostor.state().borrow(), BrokerState::Starting);
    wait_for(&impostor, BrokerState::Refused).await;
    let reason = impostor.refusal().expect("a refusal message");
    assert!(
        reason.contains("broker 1") && reason.contains("session"),
        "{reason}"
    );
    assert_eq!(impostor.broker_epoch(), None);
    assert_eq!(*original.state().borrow(), BrokerState::Running);
    assert_eq!(h.image().cluster().broker(1).map(|b| b.epoch), Some(epoch));
    assert!(h.image().cluster().is_unfenced(1));
    drop(impostor);

    // The original dies; a restart within its session waits it out and is then accepted.
    drop(original);
    let restarted = lifecycle(&h, 1, follow(&h.log));
    wait_for(&restarted, BrokerState::Running).await;
    assert!(restarted.broker_epoch().expect("registered") > epoch);
    assert_eq!(restarted.refusal(), None);
}

#[tokio::test(start_paused = true)]
async fn producer_id_blocks_are_committed_and_distinct_across_controllers() {
    async fn allocate(
        h: &Harness,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> AllocateProducerIdsResponse {
        let request = ControllerRequest::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id,
            broker_epoch,
        });
        match h.controller.handle(request).await {
            ControllerResponse::AllocateProducerIds(r) => r,
            other => panic!("unexpected response {other:?}"),
        }
    }
    let h = Harness::start(quiet());
    let epochs = h.unfenced_brokers(2).await;
    let a = allocate(&h, 1, epochs[0]).await;
    let b = allocate(&h, 2, epochs[1]).await;
    assert_eq!((a.error_code, b.error_code), (code::NONE, code::NONE));
    assert_eq!(a.producer_id_len, 1000);
    assert_eq!(b.producer_id_start, a.producer_id_start + 1000);
    assert_eq!(h.image().next_producer_id(), b.producer_id_start + 1000);

    let stale = allocate(&h, 1, epochs[0] + 100).await;
    assert_eq!(stale.error_code, code::STALE_BROKER_EPOCH);
    assert_eq!(stale.producer_id_start, -1);

    // A new controller over the same log continues after the committed mark.
    let Harness { log, controller } = h;
    if let Ok(controller) = Arc::try_unwrap(controller) {
        controller.shutdown().await;
    }
    let next =
        QuorumController::activate(Arc::new(log.clone()), quiet(), Arc::new(SystemClock::new()));
    let request = ControllerRequest::AllocateProducerIds(AllocateProducerIdsRequest {
        broker_id: 2,
        broker_epoch: epochs[1],
    });
    match next.handle(request).await {
        ControllerResponse::AllocateProducerIds(r) => {
            assert_eq!(r.error_code, code::NONE, "{r:?}");
            assert_eq!(r.producer_id_start, b.producer_id_start + 1000);
        }
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn client_quotas_are_committed_per_entity() {
    use gregor_metadata::{ClientQuotaEntity, QuotaEntityName};
    let h = Harness::start(quiet());
    let client = |name: Option<&str>| vec![("client-id".to_string(), name.map(str::to_string))];
    let alter = |entries, validate_only| {
        ControllerRequest::AlterClientQuotas(AlterClientQuotasRequest {
            entries,
            validate_only,
        })
    };
    let entries = vec![
        ClientQuotaAlteration {
            entity: client(Some("a")),
            ops: vec![
                ("producer_byte_rate".into(), Some(1024.0)),
                ("consumer_byte_rate".into(), Some(2048.0)),
            ],
        },
        // One bad key refuses its whole entity, not the others.
        ClientQuotaAlteration {
            entity: client(None),
            ops: vec![
                ("consumer_byte_rate".into(), Some(10.0)),
                ("nonsense".into(), Some(1.0)),
            ],
        },
        // An address's quota does not go with a user (KIP-612's `ip` entity stands alone).
        ClientQuotaAlteration {
            entity: vec![
                ("ip".into(), Some("10.0.0.1".into())),
                ("user".into(), Some("u".into())),
            ],
            ops: vec![("connection_creation_rate".into(), Some(1.0))],
        },
        ClientQuotaAlteration {
            entity: vec![("user".into(), None), ("user".into(), Some("u".into()))],
            ops: vec![("producer_byte_rate".into(), Some(1.0))],
        },
    ];
    // Validating only commits nothing.
    let ControllerResponse::AlterClientQuotas(r) =
        h.controller.handle(alter(entries.clone(), true)).await
    else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    let want = vec![
        code::NONE,
        code::INVALID_REQUEST,
        code::INVALID_REQUEST,
        code::INVALID_REQUEST,
    ];
    assert_eq!(codes, want);
    assert!(h.image().client_quotas().is_empty());
    let ControllerResponse::AlterClientQuotas(r) = h.controller.handle(alter(entries, false)).await
    else {
        panic!("unexpected response");
    };
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, want);
    assert!(
        r.results[1]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("Invalid configuration key nonsense")),
        "{r:?}"
    );
    let a = ClientQuotaEntity {
        user: None,
        client_id: Some(QuotaEntityName::Named("a".into())),
        ip: None,
    };
    let image = h.image();
    assert_eq!(
        image.client_quotas().quota(&a, "producer_byte_rate"),
        Some(1024.0)
    );
    assert_eq!(
        image.client_quotas().entities().count(),
        1,
        "the refused entities left nothing"
    );
    // Removal.
    let remove = vec![ClientQuotaAlteration {
        entity: client(Some("a")),
        ops: vec![("producer_byte_rate".into(), None)],
    }];
    let ControllerResponse::AlterClientQuotas(r) = h.controller.handle(alter(remove, false)).await
    else {
        panic!("unexpected response");
    };
    assert_eq!(r.results[0].error_code, code::NONE);
    assert_eq!(
        h.image().client_quotas().quota(&a, "producer_byte_rate"),
        None
    );
    assert_eq!(
        h.image().client_quotas().quota(&a, "consumer_byte_rate"),
        Some(2048.0)
    );
}

/// A new cluster's `transaction.version` (and `share.version`, `group.version`,
/// `streams.version`) is finalized with the first registration (a `FeatureLevelRecord`); later
/// registrations find it in the image and keep it.
#[tokio::test(start_paused = true)]
async fn the_first_registration_finalizes_the_transaction_version() {
    let h = Harness::start(ControllerConfig {
        transaction_version: Some(2),
        share_version: Some(2),
        group_version: Some(1),
        streams_version: Some(1),
        metadata_version: Some(33),
        ..quiet()
    });
    let levels = |h: &Harness| {
        [
            "transaction.version",
            "share.version",
            "group.version",
            "streams.version",
            "metadata.version",
        ]
        .map(|name| h.image().feature_level(name))
    };
    assert_eq!(levels(&h), [None, None, None, None, None]);
    h.register(1, 1).await;
    let finalized = [Some(2), Some(2), Some(1), Some(1), Some(33)];
    assert_eq!(levels(&h), finalized);
    let records = h.image().provenance().offset;
    h.register(2, 2).await;
    assert_eq!(levels(&h), finalized);
    assert!(h.image().provenance().offset > records);

    // Eligible leader replicas: on a new cluster at its first registration, and never by a
    // later one (an existing cluster's brokers may run a gregor that cannot read them).
    for (registered_first, want) in [(false, Some(1)), (true, None)] {
        let h = Harness::start(quiet());
        if registered_first {
            h.register(1, 1).await;
        }
        h.controller.deactivate();
        let log = h.log.clone();
        let h = Harness::over(
            &log,
            ControllerConfig {
                eligible_leader_replicas_version: Some(1),
                ..quiet()
            },
        );
        h.register(2, 2).await;
        assert_eq!(
            h.image().feature_level("eligible.leader.replicas.version"),
            want,
            "registered first: {registered_first}"
        );
    }
}

/// UpdateFeatures: a refusal writes nothing, validate-only writes nothing, an accepted update
/// is committed; a feature disabled (level 0) stays so when the next broker registers.
#[tokio::test(start_paused = true)]
async fn feature_updates_are_committed_whole_and_a_disabled_feature_stays_disabled() {
    let h = Harness::start(ControllerConfig {
        node_id: 7,
        share_version: Some(2),
        ..quiet()
    });
    h.register(1, 1).await;
    let update = |updates: &[(&str, i16, i8)], validate_only| {
        ControllerRequest::UpdateFeatures(UpdateFeaturesRequest {
            updates: updates
                .iter()
                .map(|&(name, level, upgrade_type)| FeatureLevelUpdate {
                    name: name.to_string(),
                    level,
                    upgrade_type,
                })
                .collect(),
            validate_only,
        })
    };
    let answer = |r| match r {
        ControllerResponse::UpdateFeatures(r) => (r.error_code, r.error_message),
        other => panic!("unexpected {other:?}"),
    };
    // One unknown feature refuses the whole request.
    let refused = answer(
        h.controller
            .handle(update(&[("share.version", 1, 2), ("zzz", 1, 1)], false))
            .await,
    );
    assert_eq!(refused.0, code::INVALID_UPDATE_VERSION);
    assert_eq!(
        refused.1.as_deref(),
        Some("Invalid update version 1 for feature zzz. Local controller 7 does not support this feature.")
    );
    assert_eq!(h.image().feature_level("share.version"), Some(2));
    let checked = answer(
        h.controller
            .handle(update(&[("share.version", 0, 2)], true))
            .await,
    );
    assert_eq!(checked, (code::NONE, None));
    assert_eq!(h.image().feature_level("share.version"), Some(2));
    let done = answer(
        h.controller
            .handle(update(&[("share.version", 0, 2)], false))
            .await,
    );
    assert_eq!(done, (code::NONE, None));
    assert_eq!(h.image().feature_level("share.version"), None);
    h.register(2, 2).await;
    assert_eq!(h.image().feature_level("share.version"), None);
    assert!(h.image().feature_recorded("share.version"));
}

/// AlterUserScramCredentials (KIP-554): accepted users are committed together, each refused
/// one has Kafka's code, and the log holds the derived keys, not the salted password.
#[tokio::test(start_paused = true)]
async fn scram_credentials_are_committed_and_deleted() {
    use gregor_metadata::{ScramKeys, ScramMechanism};
    let h = Harness::start(quiet());
    let upsert = |name: &str, mechanism: i8, iterations: i32| ScramCredentialUpsertion {
        name: name.into(),
        mechanism,
        iterations,
        salt: vec![5; 16],
        salted_password: vec![7; 32],
    };
    let delete = |name: &str, mechanism: i8| ScramCredentialDeletion {
        name: name.into(),
        mechanism,
    };
    let alter = |deletions, upsertions| async {
        let request =
            ControllerRequest::AlterUserScramCredentials(AlterUserScramCredentialsRequest {
                deletions,
                upsertions,
            });
        match h.controller.handle(request).await {
            ControllerResponse::AlterUserScramCredentials(r) => r
                .results
                .into_iter()
                .map(|r| (r.name, r.error_code))
                .collect::<Vec<_>>(),
            other => panic!("unexpected response {other:?}"),
        }
    };
    let before = h.offset();
    let results = alter(
        vec![],
        vec![
            upsert("alice", 1, 8192),
            upsert("bob", 2, 100),
            upsert("carol", 2, 4096),
        ],
    )
    .await;
    assert_eq!(
        results,
        vec![
            ("alice".to_string(), code::NONE),
            ("bob".to_string(), code::UNACCEPTABLE_CREDENTIAL),
            ("carol".to_string(), code::NONE),
        ]
    );
    assert_eq!(h.offset(), before + 2, "a record per accepted user");
    let image = h.image();
    let alice = image.scram().credential("alice", 1).expect("alice");
    assert_eq!(
        alice.stored_key,
        ScramKeys::derive(ScramMechanism::Sha256, &[7; 32]).stored_key
    );
    assert_eq!(alice.iterations, 8192);
    assert_eq!(image.scram().credential("bob", 2), None);

    // Two mechanisms of one user in one request: Kafka refuses the user.
    let results = alter(
        vec![],
        vec![upsert("alice", 2, 4096), upsert("alice", 1, 4096)],
    )
    .await;
    assert_eq!(
        results,
        vec![("alice".to_string(), code::DUPLICATE_RESOURCE)]
    );
    assert_eq!(h.image().scram().credential_infos("alice"), vec![(1, 8192)]);

    // Delete, then delete again.
    let results = alter(vec![delete("alice", 1), delete("carol", 1)], vec![]).await;
    assert_eq!(
        results,
        vec![
            ("alice".to_string(), code::NONE),
            ("carol".to_string(), code::RESOURCE_NOT_FOUND),
        ]
    );
    assert_eq!(h.image().scram().users().collect::<Vec<_>>(), vec!["carol"]);
    let before = h.offset();
    let results = alter(vec![delete("alice", 1)], vec![upsert("x", 0, 4096)]).await;
    assert_eq!(
        results,
        vec![
            ("alice".to_string(), code::RESOURCE_NOT_FOUND),
            ("x".to_string(), code::UNSUPPORTED_SASL_MECHANISM),
        ]
    );
    assert_eq!(h.offset(), before, "nothing accepted, nothing proposed");
}

/// CreateAcls and DeleteAcls on the controller runtime: valid ACLs committed together (an
/// identical one adds no record), refused ones with INVALID_REQUEST, and DeleteAcls removes
/// every match in one proposal.
#[tokio::test(start_paused = true)]
async fn acls_are_committed_and_deleted() {
    use gregor_metadata::acl::*;
    let h = Harness::start(quiet());
    let acl = |name: &str, op: AclOperation| StandardAcl {
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission_type: AclPermissionType::Allow,
    };
    let create = |acls: Vec<StandardAcl>| {
        let request = ControllerRequest::CreateAcls(CreateAclsRequest {
            creations: acls.iter().map(AclEntry::from_acl).collect(),
        });
        async {
            match h.controller.handle(request).await {
                ControllerResponse::CreateAcls(r) => r
                    .results
                    .into_iter()
                    .map(|r| r.error_code)
                    .collect::<Vec<_>>(),
                other => panic!("unexpected response {other:?}"),
            }
        }
    };
    let before = h.offset();
    let codes = create(vec![
        acl("t", AclOperation::Read),
        acl("", AclOperation::Read),
        acl("t", AclOperation::Write),
    ])
    .await;
    assert_eq!(codes, vec![code::NONE, code::INVALID_REQUEST, code::NONE]);
    assert_eq!(h.offset(), before + 2, "a record per new ACL");
    assert_eq!(h.image().acls().len(), 2);
    assert_eq!(
        create(vec![acl("t", AclOperation::Read)]).await,
        vec![code::NONE]
    );
    assert_eq!(h.offset(), before + 2, "an identical ACL adds nothing");

    let filter = AclBindingFilter {
        resource_name: Some("t".into()),
        ..AclBindingFilter::any()
    };
    let request = ControllerRequest::DeleteAcls(DeleteAclsRequest {
        filters: vec![AclFilterEntry::from_filter(&filter)],
    });
    match h.controller.handle(request).await {
        ControllerResponse::DeleteAcls(r) => {
            assert_eq!(r.results.len(), 1);
            assert_eq!(r.results[0].error_code, code::NONE);
            assert_eq!(r.results[0].deleted.len(), 2);
        }
        other => panic!("unexpected response {other:?}"),
    }
    assert_eq!(h.offset(), before + 4);
    assert!(h.image().acls().is_empty());
}

// ---- bootstrap records (kafka-storage format --add-scram) ------------------------------

fn scram_record(name: &str, key: u8) -> gregor_metadata::MetadataRecord {
    gregor_metadata::MetadataRecord::UserScramCredential(
        gregor_metadata::UserScramCredentialRecord {
            name: name.into(),
            mechanism: 2,
            salt: vec![key; 16],
            stored_key: vec![key; 64],
            server_key: vec![key.wrapping_add(1); 64],
            iterations: 4096,
        },
    )
}

fn bootstrapping(records: Vec<gregor_metadata::MetadataRecord>) -> ControllerConfig {
    ControllerConfig {
        bootstrap_records: records,
        ..quiet()
    }
}

impl Harness {
    /// A controller activated over an existing `log` (a new leader of the same quorum).
    fn over(log: &LocalMetadataLog, config: ControllerConfig) -> Harness {
        let controller = Arc::new(QuorumController::activate(
            Arc::new(log.clone()),
            config,
            Arc::new(SystemClock::new()),
        ));
        Harness {
            log: log.clone(),
            controller,
        }
    }
}

/// The stored key of `user`'s SCRAM-SHA-512 credential, which tells the records apart.
fn stored_key(image: &MetadataImage, user: &str) -> Option<u8> {
    image.scram().credential(user, 2).map(|c| c.stored_key[0])
}

/// A new log: the bootstrap records are its first batch, before the first registration.
/// Later controllers of the same log (this node again, or another voter, with the same
/// records or others) write nothing.
#[tokio::test(start_paused = true)]
async fn bootstrap_records_start_a_new_log_once() {
    let h = Harness::start(bootstrapping(vec![
        scram_record("broker", 1),
        scram_record("alice", 2),
    ]));
    h.register(1, 1).await;
    let records = h.log.records();
    assert!(
        matches!(&records[0].1, gregor_metadata::MetadataRecord::UserScramCredential(c) if c.name == "broker"),
        "{records:?}"
    );
    assert!(matches!(
        &records[2].1,
        gregor_metadata::MetadataRecord::RegisterBroker(_)
    ));
    assert_eq!(stored_key(&h.image(), "broker"), Some(1));
    assert_eq!(stored_key(&h.image(), "alice"), Some(2));

    // A failover to a controller given another password for alice and a new user.
    let log = h.log.clone();
    let Ok(old) = Arc::try_unwrap(h.controller) else {
        panic!("the harness holds the only reference");
    };
    old.shutdown().await;
    let before = log.records().len();
    let h = Harness::over(
        &log,
        bootstrapping(vec![scram_record("alice", 9), scram_record("carol", 9)]),
    );
    h.register(2, 2).await;
    assert_eq!(
        stored_key(&h.image(), "alice"),
        Some(2),
        "the first one stays"
    );
    assert_eq!(stored_key(&h.image(), "carol"), None);
    assert!(
        log.records()[before..]
            .iter()
            .all(|(_, r)| !matches!(r, gregor_metadata::MetadataRecord::UserScramCredential(_))),
        "no credential written again"
    );
}

/// A cluster whose log holds records already (made without bootstrap records, or by an
/// earlier gregor) gets none.
#[tokio::test(start_paused = true)]
async fn an_existing_log_gets_no_bootstrap_records() {
    let h = Harness::start(quiet());
    h.register(1, 1).await;
    let log = h.log.clone();
    drop(h);
    let h = Harness::over(&log, bootstrapping(vec![scram_record("alice", 2)]));
    h.register(2, 2).await;
    assert_eq!(stored_key(&h.image(), "alice"), None);
    assert!(h.image().scram().is_empty());
}

/// A metadata log whose published image lags the committed log until the next proposal
/// commits (a restarted Raft node applies its log once the new leader's commit is known).
struct LaggingLog {
    inner: LocalMetadataLog,
    image: watch::Sender<Arc<MetadataImage>>,
}

impl MetadataLog for LaggingLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn propose(
        &self,
        records: Vec<gregor_metadata::MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        let result = self
            .inner
            .propose(records)
            .now_or_never()
            .expect("the local log commits at once");
        self.image.send_replace(self.inner.current());
        futures::future::ready(result).boxed()
    }
}

/// The decision is taken on the whole committed log, not on an image that has not caught up
/// yet: a controller that sees an empty image over a log holding the bootstrap records (and
/// more) writes nothing.
#[tokio::test(start_paused = true)]
async fn the_bootstrap_decision_waits_for_the_committed_log() {
    let h = Harness::start(bootstrapping(vec![scram_record("alice", 2)]));
    h.register(1, 1).await;
    let log = h.log.clone();
    drop(h);
    let committed = log.records().len();
    let (image, _) = watch::channel(Arc::new(MetadataImage::empty()));
    let lagging = Arc::new(LaggingLog {
        inner: log.clone(),
        image,
    });
    let controller = QuorumController::activate(
        lagging.clone(),
        bootstrapping(vec![scram_record("alice", 9)]),
        Arc::new(SystemClock::new()),
    );
    // Any request is answered after the bootstrap decision.
    let ControllerResponse::ListPartitionReassignments(_) = controller
        .handle(ControllerRequest::ListPartitionReassignments(
            ListPartitionReassignmentsRequest { partitions: None },
        ))
        .await
    else {
        panic!("unexpected response");
    };
    assert_eq!(stored_key(&log.current(), "alice"), Some(2));
    assert_eq!(log.records().len(), committed, "nothing written");
}

/// A Raft-like metadata log whose proposals wait until the test commits them, in the order
/// they were appended. A proposal whose caller stopped waiting is committed all the same, as
/// Raft commits an appended entry whoever still awaits it.
#[derive(Clone)]
struct HeldLog {
    inner: LocalMetadataLog,
    appended: HeldQueue,
}

type HeldQueue = Arc<
    std::sync::Mutex<
        Vec<(
            Vec<gregor_metadata::MetadataRecord>,
            tokio::sync::oneshot::Sender<Result<u64, ProposeError>>,
        )>,
    >,
>;

impl HeldLog {
    fn appended(&self) -> usize {
        self.appended.lock().expect("not poisoned").len()
    }

    /// Commits every appended proposal, in order; how many there were.
    fn commit(&self) -> usize {
        let batches = std::mem::take(&mut *self.appended.lock().expect("not poisoned"));
        let n = batches.len();
        for (records, reply) in batches {
            let result = self
                .inner
                .propose(records)
                .now_or_never()
                .expect("the local log commits at once");
            let _ = reply.send(result);
        }
        n
    }
}

impl MetadataLog for HeldLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image()
    }

    fn propose(
        &self,
        records: Vec<gregor_metadata::MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        let (reply, committed) = tokio::sync::oneshot::channel();
        self.appended
            .lock()
            .expect("not poisoned")
            .push((records, reply));
        async move {
            committed
                .await
                .unwrap_or_else(|_| Err(ProposeError::Unavailable("log dropped".into())))
        }
        .boxed()
    }
}

/// The race that once wrote the bootstrap records twice. The node's first controller appends
/// its empty proposal; the node loses the quorum and wins it again before that commits, so its
/// activation loop deactivates the first controller (a request still holds it) and activates a
/// second one, which appends its own empty proposal. Both commit, both controllers would find
/// the image empty and both would write the records. A deactivated controller abandons its
/// proposal and proposes nothing more, so only the second one writes them.
#[tokio::test(start_paused = true)]
async fn a_deactivated_controller_does_not_bootstrap_beside_its_successor() {
    let log = HeldLog {
        inner: LocalMetadataLog::new(),
        appended: Arc::default(),
    };
    let settle = || tokio::time::sleep(Duration::from_millis(10));
    let first = QuorumController::activate(
        Arc::new(log.clone()),
        bootstrapping(vec![scram_record("alice", 1)]),
        Arc::new(SystemClock::new()),
    );
    settle().await;
    assert_eq!(log.appended(), 1, "the first controller's empty proposal");
    first.deactivate();
    let second = QuorumController::activate(
        Arc::new(log.clone()),
        bootstrapping(vec![scram_record("alice", 2)]),
        Arc::new(SystemClock::new()),
    );
    settle().await;
    assert_eq!(log.appended(), 2, "both empty proposals appended");
    // Commit until nothing more is proposed.
    for _ in 0..10 {
        log.commit();
        settle().await;
    }
    let ControllerResponse::ListPartitionReassignments(_) = second
        .handle(ControllerRequest::ListPartitionReassignments(
            ListPartitionReassignmentsRequest { partitions: None },
        ))
        .await
    else {
        panic!("unexpected response");
    };
    let written: Vec<_> = log
        .inner
        .records()
        .into_iter()
        .filter(|(_, r)| matches!(r, gregor_metadata::MetadataRecord::UserScramCredential(_)))
        .collect();
    assert_eq!(written.len(), 1, "the bootstrap records written once");
    assert_eq!(stored_key(&log.inner.current(), "alice"), Some(2));
    tokio::time::timeout(Duration::from_secs(1), first.stopped())
        .await
        .expect("a deactivated controller stops");
    assert!(!first.is_active());
}

/// A new controller acts only once its own term's first proposal has committed: over an image
/// that lags the committed log (a topic its predecessor created not applied yet), a CreateTopics
/// for the same name is refused as the whole log says, not answered by a second topic.
#[tokio::test(start_paused = true)]
async fn a_new_controller_catches_up_with_the_log_before_it_decides() {
    let h = Harness::start(quiet());
    h.unfenced_brokers(1).await;
    let first = h.create("orders", 1, 1).await;
    assert_eq!(first.error_code, code::NONE, "{first:?}");
    let log = h.log.clone();
    drop(h);
    // The next controller's node has applied nothing yet.
    let (image, _) = watch::channel(Arc::new(MetadataImage::empty()));
    let lagging = Arc::new(LaggingLog {
        inner: log.clone(),
        image,
    });
    let controller = QuorumController::activate(lagging, quiet(), Arc::new(SystemClock::new()));
    let ControllerResponse::CreateTopics(r) = controller
        .handle(ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics: vec![topic("orders", 1, 1)],
            validate_only: false,
        }))
        .await
    else {
        panic!("unexpected response");
    };
    assert_eq!(r.topics[0].error_code, code::TOPIC_ALREADY_EXISTS, "{r:?}");
    let topics = log.current();
    assert_eq!(
        topics.topics().topics().count(),
        1,
        "one topic named orders"
    );
}

/// Delegation tokens (KIP-48) on the controller runtime: created with a committed record and
/// its HMAC, renewed and expired by owner or renewer only, refused with Kafka's codes, and
/// removed by the expiry check once expired.
#[tokio::test(start_paused = true)]
async fn delegation_tokens_are_created_renewed_expired_and_swept() {
    use gregor_metadata::DelegationTokenConfig;
    let h = Harness::start(ControllerConfig {
        delegation_tokens: DelegationTokenConfig {
            secret_key: Some("secret".into()),
            expiry_check_interval_ms: 1_000,
            ..Default::default()
        },
        ..quiet()
    });
    let create = |owner: &str, renewers: Vec<String>, max_lifetime_ms: i64| {
        ControllerRequest::CreateDelegationToken(CreateDelegationTokenRequest {
            owner: owner.into(),
            requester: owner.into(),
            renewers,
            max_lifetime_ms,
        })
    };
    let created = match h
        .controller
        .handle(create("User:alice", vec!["User:bob".into()], -1))
        .await
    {
        ControllerResponse::CreateDelegationToken(r) => r,
        other => panic!("unexpected response {other:?}"),
    };
    assert_eq!(created.error_code, 0);
    assert_eq!(
        created.hmac,
        gregor_metadata::token_hmac("secret", &created.token_id)
    );
    let token = h
        .image()
        .delegation_tokens()
        .get(&created.token_id)
        .cloned()
        .expect("committed");
    assert_eq!(token.owner, "User:alice");
    assert_eq!(token.renewers, vec!["User:bob".to_string()]);
    assert_eq!(token.expiration_timestamp_ms, created.expiry_timestamp_ms);

    let expiry = |request| async {
        match h.controller.handle(request).await {
            ControllerResponse::DelegationTokenExpiry(r) => (r.error_code, r.expiry_timestamp_ms),
            other => panic!("unexpected response {other:?}"),
        }
    };
    let renew = |principal: &str, hmac: Vec<u8>| {
        ControllerRequest::RenewDelegationToken(RenewDelegationTokenRequest {
            hmac,
            principal: principal.into(),
            renew_period_ms: 60_000,
        })
    };
    let (code, new_expiry) = expiry(renew("User:bob", created.hmac.clone())).await;
    assert_eq!(code, 0);
    assert!(
        new_expiry < created.expiry_timestamp_ms,
        "a shorter renewal period"
    );
    assert_eq!(
        h.image()
            .delegation_tokens()
            .get(&created.token_id)
            .map(|t| t.expiration_timestamp_ms),
        Some(new_expiry)
    );
    assert_eq!(
        expiry(renew("User:carol", created.hmac.clone())).await.0,
        63
    );
    assert_eq!(expiry(renew("User:bob", vec![1, 2, 3])).await.0, 62);

    // Invalid renewer types are refused; a second token expires at once when asked.
    let refused = match h
        .controller
        .handle(create("User:alice", vec!["Group:g".into()], -1))
        .await
    {
        ControllerResponse::CreateDelegationToken(r) => r.error_code,
        other => panic!("unexpected response {other:?}"),
    };
    assert_eq!(refused, 67);
    let expire = |hmac: Vec<u8>, period: i64| {
        ControllerRequest::ExpireDelegationToken(ExpireDelegationTokenRequest {
            hmac,
            principal: "User:alice".into(),
            expiry_time_period_ms: period,
        })
    };
    assert_eq!(expiry(expire(created.hmac.clone(), -1)).await, (0, -1));
    assert!(h.image().delegation_tokens().is_empty());
    assert_eq!(expiry(expire(created.hmac.clone(), -1)).await.0, 62);

    // A token whose expiry is moved to now is removed by the next expiry check.
    let second = match h.controller.handle(create("User:alice", vec![], -1)).await {
        ControllerResponse::CreateDelegationToken(r) => r,
        other => panic!("unexpected response {other:?}"),
    };
    assert_eq!(expiry(expire(second.hmac.clone(), 0)).await.0, 0);
    assert!(!h.image().delegation_tokens().is_empty());
    // The wall clock moves on by itself; the check runs on tokio's (paused) clock.
    std::thread::sleep(std::time::Duration::from_millis(5));
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        if h.image().delegation_tokens().is_empty() {
            break;
        }
    }
    assert!(
        h.image().delegation_tokens().is_empty(),
        "the expiry check removed it"
    );
}

/// Without `delegation.token.secret.key` every token request is DELEGATION_TOKEN_AUTH_DISABLED.
#[tokio::test(start_paused = true)]
async fn delegation_tokens_need_the_secret_key() {
    let h = Harness::start(quiet());
    let r = h
        .controller
        .handle(ControllerRequest::CreateDelegationToken(
            CreateDelegationTokenRequest {
                owner: "User:alice".into(),
                requester: "User:alice".into(),
                renewers: vec![],
                max_lifetime_ms: -1,
            },
        ))
        .await;
    assert!(
        matches!(r, ControllerResponse::CreateDelegationToken(ref c) if c.error_code == 61),
        "{r:?}"
    );
    let r = h
        .controller
        .handle(ControllerRequest::RenewDelegationToken(
            RenewDelegationTokenRequest {
                hmac: vec![1],
                principal: "User:alice".into(),
                renew_period_ms: -1,
            },
        ))
        .await;
    assert!(
        matches!(r, ControllerResponse::DelegationTokenExpiry(ref c) if c.error_code == 61),
        "{r:?}"
    );
}

/// (leader, ISR, ELR, last known ELR).
fn elr_state(p: &PartitionRegistration) -> (BrokerId, Vec<BrokerId>, Vec<BrokerId>, Vec<BrokerId>) {
    (
        p.leader,
        p.isr.clone(),
        p.elr.clone(),
        p.last_known_elr.clone(),
    )
}

/// KIP-966 through the controller: with `eligible.leader.replicas.version` 1 and
/// `min.insync.replicas` 2, replicas that leave an ISR below 2 stay eligible; when the last
/// ISR member's session runs out the ISR is empty and the partition waits for them; one that
/// comes back from a clean stop (its registration presents the epoch it had) leads, one that
/// crashed (no epoch) leaves the ELR; with the ELR empty the last known leader leads when it is
/// back. A lower `min.insync.replicas` forgets the ELR of a led partition.
#[tokio::test(start_paused = true)]
async fn eligible_leader_replicas_keep_who_may_lead_an_empty_isr() {
    let h = Harness::start(ControllerConfig {
        eligible_leader_replicas_version: Some(1),
        ..quiet()
    });
    let epochs = h.unfenced_brokers(3).await;
    assert_eq!(
        h.image().feature_level("eligible.leader.replicas.version"),
        Some(1)
    );
    let t = h
        .create_assigned("elr", &[&[1, 2, 3]], &[("min.insync.replicas", "2")])
        .await;
    // The leader shrinks the ISR to 2 = min ISR (nothing eligible), then to itself.
    let p = h.partition(t, 0);
    let r = h.alter_isr(1, epochs[0], t, &p, &[1, 2]).await;
    assert_eq!(r.partitions[0].error_code, code::NONE, "{r:?}");
    assert!(h.partition(t, 0).elr.is_empty());
    let p = h.partition(t, 0);
    let r = h.alter_isr(1, epochs[0], t, &p, &[1]).await;
    assert_eq!(r.partitions[0].error_code, code::NONE, "{r:?}");
    let p = h.partition(t, 0);
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]));

    // 1 and 2 go silent (3 keeps its session). 1 is fenced first: the ISR empties and 2,
    // eligible and not fenced yet, leads; then 2 is: the ISR empties again, 1 and 2 are
    // eligible, 2 was the last leader; 3 is no candidate.
    h.run_for(3_500, &[(3, epochs[2])]).await;
    let p = h.partition(t, 0);
    assert_eq!(elr_state(&p), (NO_LEADER, vec![], vec![1, 2], vec![2]));

    // 2 comes back from a clean stop: it is unfenced once caught up and leads.
    let r = h.register_after(2, 22, Some(epochs[1])).await;
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    assert_eq!(
        h.partition(t, 0).elr,
        vec![1, 2],
        "a clean restart stays eligible"
    );
    let hb = h.heartbeat(2, r.broker_epoch).await;
    assert!(!hb.is_fenced, "{hb:?}");
    let p = h.partition(t, 0);
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (2, vec![2], vec![1])
    );
    assert!(p.last_known_elr.is_empty());

    // Another partition, led by 3 alone (1 is fenced when it is created, so never in its
    // ISR): 3 goes silent and is the ELR and the last known leader; it crashed, so its
    // restart (no epoch) takes it out of the ELR, and as the last known leader it leads once
    // it is back.
    let u = h
        .create_assigned("elr-2", &[&[3, 1]], &[("min.insync.replicas", "2")])
        .await;
    assert_eq!(h.partition(u, 0).isr, vec![3]);
    let two = h.image().cluster().broker(2).map_or(-1, |b| b.epoch);
    h.run_for(3_500, &[(2, two)]).await;
    let p = h.partition(u, 0);
    assert_eq!(elr_state(&p), (NO_LEADER, vec![], vec![3], vec![3]));
    let r3 = h.register_after(3, 33, None).await;
    assert_eq!(r3.error_code, code::NONE, "{r3:?}");
    let p = h.partition(u, 0);
    assert_eq!(
        (p.elr.clone(), p.last_known_elr.clone()),
        (vec![], vec![3]),
        "an unclean restart leaves the ELR"
    );
    assert_eq!(p.leader, NO_LEADER, "fenced until caught up");
    let hb = h.heartbeat(3, r3.broker_epoch).await;
    assert!(!hb.is_fenced, "{hb:?}");
    let p = h.partition(u, 0);
    assert_eq!(elr_state(&p), (3, vec![3], vec![], vec![]));

    // min.insync.replicas lowered on "elr", which has a leader and an ELR: the ELR is
    // forgotten (a lower min ISR lets the leader commit what 1 does not have).
    assert_eq!(h.partition(t, 0).elr, vec![1]);
    let request = ControllerRequest::AlterConfigs(AlterConfigsRequest {
        topics: vec![AlterConfigsTopic {
            topic: "elr".into(),
            configs: vec![("min.insync.replicas".into(), Some("1".into()))],
        }],
        validate_only: false,
        brokers: vec![],
        groups: vec![],
        client_metrics: vec![],
    });
    let ControllerResponse::AlterConfigs(r) = h.controller.handle(request).await else {
        panic!("unexpected response");
    };
    assert_eq!(r.results[0].error_code, code::NONE, "{r:?}");
    assert!(h.partition(t, 0).elr.is_empty());
}
