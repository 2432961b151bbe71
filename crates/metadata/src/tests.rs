//! Controller decisions replayed through the delta: unit cases, and a property test that runs
//! random sequences of requests and broker failures and checks the cluster's invariants after
//! every step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use uuid::Uuid;

use crate::controller::{
    alter_broker_config, alter_group_config, alter_partition, alter_partition_avoiding,
    alter_partition_reassignment, alter_partition_reassignment_avoiding, alter_topic_config,
    create_partitions, create_partitions_on, create_topic, create_topic_with_assignments,
    delete_topic, elect_leader, elect_leader_avoiding, fence_broker, fence_broker_avoiding,
    register_broker, register_broker_avoiding, take_replicas_offline, unclean_election_enabled,
    unfence_broker, unfence_broker_avoiding, unregister_broker, AlterPartition, ControllerDefaults,
    CreateTopic, OfflineReplicas, RegisterBroker, UNCLEAN_LEADER_ELECTION_ENABLE,
};
use crate::*;

const DEFAULTS: ControllerDefaults = ControllerDefaults {
    unclean_leader_election_enable: false,
    min_insync_replicas: 1,
};

fn endpoint(id: BrokerId) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 19092u16.wrapping_add(id as u16),
        security_protocol: 0,
    }]
}

/// Applies records on top of `image` the way every broker will.
fn apply(image: &Arc<MetadataImage>, records: &[MetadataRecord]) -> Arc<MetadataImage> {
    let mut delta = MetadataDelta::new(image.clone());
    delta
        .replay_all(records)
        .unwrap_or_else(|e| panic!("controller records must replay: {e}\n{records:#?}"));
    let offset = image.provenance().offset + records.len() as i64;
    Arc::new(delta.apply(MetadataProvenance { offset, epoch: 1 }))
}

/// `n` brokers, registered and unfenced, with epochs 1..=n.
fn cluster(n: i32) -> Arc<MetadataImage> {
    let mut image = Arc::new(MetadataImage::empty());
    for id in 1..=n {
        let records = register_broker(
            &image,
            &RegisterBroker {
                log_dirs: Vec::new(),
                broker_id: id,
                incarnation_id: Uuid::from_u128(id as u128),
                broker_epoch: i64::from(id),
                endpoints: endpoint(id),
                rack: None,
                clean_shutdown: false,
            },
            &DEFAULTS,
        )
        .expect("register");
        image = apply(&image, &records);
        let records = unfence_broker(&image, id, &DEFAULTS).expect("unfence");
        image = apply(&image, &records);
    }
    image
}

fn create(
    image: &Arc<MetadataImage>,
    name: &str,
    id: u128,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    create_topic(
        image,
        &CreateTopic {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
            partitions,
            replication_factor: rf,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            placement_seed: id as u64,
        },
    )
}

/// `image` with topic "solo" (id 2): one partition, its only replica on broker 1.
fn with_solo(image: &Arc<MetadataImage>) -> Arc<MetadataImage> {
    let records = create_topic_with_assignments(
        image,
        &CreateTopic {
            name: "solo".into(),
            topic_id: Uuid::from_u128(2),
            partitions: 1,
            replication_factor: 1,
            configs: Vec::new(),
            placement_seed: 2,
        },
        &[vec![1]],
    )
    .expect("create");
    apply(image, &records)
}

fn partition(image: &MetadataImage, id: u128, p: i32) -> PartitionRegistration {
    image
        .topics()
        .partition(TopicIdPartition {
            topic_id: Uuid::from_u128(id),
            partition: p,
        })
        .cloned()
        .expect("partition exists")
}

#[test]
fn create_topic_places_leads_and_fills_the_isr() {
    let image = cluster(3);
    let records = create(&image, "orders", 7, 6, 3, &[("retention.ms", "1000")]).expect("create");
    assert!(matches!(records[0], MetadataRecord::Topic(_)));
    assert!(matches!(records[1], MetadataRecord::Config(_)));
    let image = apply(&image, &records);
    let topic = image.topics().topic_by_name("orders").expect("topic");
    assert_eq!(topic.partition_count(), 6);
    for (_, p) in topic.partitions() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(Some(p.leader), p.preferred_leader());
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    }
    for b in 1..=3 {
        assert_eq!(
            image.topics().leader_count(b),
            2,
            "6 leaders over 3 brokers"
        );
    }
    assert_eq!(
        image.configs().topic_config("orders", "retention.ms"),
        Some("1000")
    );

    let err = create(&image, "orders", 8, 1, 1, &[]).expect_err("exists");
    assert_eq!(err.code(), code::TOPIC_ALREADY_EXISTS);
    let err = create(&image, "wide", 9, 1, 4, &[]).expect_err("rf 4 on 3 brokers");
    assert_eq!(err.code(), code::INVALID_REPLICATION_FACTOR);
    let err = create(&image, "bad name", 10, 1, 1, &[]).expect_err("name");
    assert_eq!(err.code(), code::INVALID_TOPIC_EXCEPTION);
    let err = create(&image, "z", 11, 0, 1, &[]).expect_err("partitions");
    assert_eq!(err.code(), code::INVALID_PARTITIONS);
    let long = "x".repeat(40_000);
    let err = create(&image, "v", 13, 1, 1, &[("retention.ms", &long)]).expect_err("long");
    assert_eq!(err.code(), code::INVALID_CONFIG);
    let err = create(
        &image,
        "u",
        12,
        1,
        1,
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "maybe")],
    )
    .expect_err("config");
    assert_eq!(err.code(), code::INVALID_CONFIG);
}

#[test]
fn explicit_assignments_are_checked_and_fill_the_isr_with_unfenced_replicas() {
    let image = cluster(3);
    let req = CreateTopic {
        name: "manual".into(),
        topic_id: Uuid::from_u128(77),
        partitions: -1,
        replication_factor: -1,
        configs: vec![],
        placement_seed: 0,
    };
    let refused = |assignments: &[Vec<BrokerId>]| {
        create_topic_with_assignments(&image, &req, assignments).map_err(|e| e.code())
    };
    assert_eq!(refused(&[]), Err(code::INVALID_PARTITIONS));
    assert_eq!(
        refused(&[vec![1, 2], vec![3]]),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        refused(&[vec![1, 1]]),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        refused(&[vec![1, 9]]),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    let fenced = apply(&image, &fence_broker(&image, 3, &DEFAULTS).expect("fence"));
    assert_eq!(
        create_topic_with_assignments(&fenced, &req, &[vec![3]]).map_err(|e| e.code()),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    let records =
        create_topic_with_assignments(&fenced, &req, &[vec![3, 1], vec![2, 3]]).expect("create");
    let after = apply(&fenced, &records);
    let p0 = partition(&after, 77, 0);
    assert_eq!(
        (p0.replicas.clone(), p0.isr.clone(), p0.leader),
        (vec![3, 1], vec![1], 1)
    );
    let p1 = partition(&after, 77, 1);
    assert_eq!((p1.isr.clone(), p1.leader), (vec![2], 2));
}

#[test]
fn topic_configs_are_set_and_removed() {
    let image = cluster(1);
    let image = apply(&image, &create(&image, "c", 5, 1, 1, &[]).expect("create"));
    assert_eq!(
        alter_topic_config(&image, "missing", "retention.ms", Some("1")).map_err(|e| e.code()),
        Err(code::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        alter_topic_config(&image, "c", UNCLEAN_LEADER_ELECTION_ENABLE, Some("maybe"))
            .map_err(|e| e.code()),
        Err(code::INVALID_CONFIG)
    );
    let set =
        alter_topic_config(&image, "c", UNCLEAN_LEADER_ELECTION_ENABLE, Some("true")).expect("set");
    let image = apply(&image, &[set]);
    assert!(unclean_election_enabled(&image, "c", &DEFAULTS));
    let unset =
        alter_topic_config(&image, "c", UNCLEAN_LEADER_ELECTION_ENABLE, None).expect("unset");
    let image = apply(&image, &[unset]);
    assert!(!unclean_election_enabled(&image, "c", &DEFAULTS));
}

#[test]
fn dynamic_broker_configs_are_set_removed_and_kept_in_snapshots() {
    let image = cluster(1);
    let image = apply(&image, &create(&image, "c", 5, 1, 1, &[]).expect("create"));
    assert_eq!(
        alter_broker_config("", "num.partitions", Some("3")).map_err(|e| e.code()),
        Err(code::INVALID_CONFIG),
        "not dynamic"
    );
    assert_eq!(
        alter_broker_config("one", "log.retention.ms", Some("3")).map_err(|e| e.code()),
        Err(code::INVALID_CONFIG),
        "not a broker id"
    );
    let image = apply(
        &image,
        &[
            alter_broker_config("", "log.retention.ms", Some("1000")).expect("default"),
            alter_broker_config("1", "log.segment.bytes", Some("2048")).expect("broker 1"),
            alter_broker_config("", UNCLEAN_LEADER_ELECTION_ENABLE, Some("true")).expect("unclean"),
        ],
    );
    let configs = image.configs();
    assert_eq!(configs.broker_config("", "log.retention.ms"), Some("1000"));
    assert_eq!(
        configs.broker_config("1", "log.segment.bytes"),
        Some("2048")
    );
    assert_eq!(configs.broker_config("1", "log.retention.ms"), None);
    // The cluster-wide unclean election default applies to topics without an override.
    assert!(unclean_election_enabled(&image, "c", &DEFAULTS));
    // A snapshot keeps them.
    let mut rebuilt = MetadataDelta::new(Arc::new(MetadataImage::empty()));
    for r in image.to_records() {
        rebuilt.replay(&r).expect("replays");
    }
    assert_eq!(rebuilt.apply(image.provenance()).configs(), image.configs());
    let image = apply(
        &image,
        &[alter_broker_config("1", "log.segment.bytes", None).expect("remove")],
    );
    assert_eq!(
        image.configs().broker_resources().collect::<Vec<_>>(),
        vec![""]
    );
}

/// Group configs (Kafka's GROUP resources) are kept by group id whether or not the group
/// exists, removed one by one, and survive a snapshot.
#[test]
fn group_configs_are_set_removed_and_kept_in_snapshots() {
    let image = cluster(1);
    assert_eq!(
        alter_group_config("g", "nope.key", Some("1")).map_err(|e| e.code()),
        Err(code::INVALID_CONFIG),
        "not a group config"
    );
    assert_eq!(
        alter_group_config("", "share.auto.offset.reset", Some("earliest")).map_err(|e| e.code()),
        Err(code::INVALID_CONFIG),
        "no group id"
    );
    let image = apply(
        &image,
        &[
            alter_group_config("g", "share.auto.offset.reset", Some("earliest")).expect("set"),
            alter_group_config("g", "share.record.lock.duration.ms", Some("15000")).expect("set"),
            alter_group_config("h", "consumer.session.timeout.ms", Some("50000")).expect("set"),
        ],
    );
    let configs = image.configs();
    assert_eq!(
        configs.group_config("g", "share.auto.offset.reset"),
        Some("earliest")
    );
    assert_eq!(
        configs.group_configs("g").collect::<Vec<_>>(),
        vec![
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", "15000")
        ]
    );
    assert_eq!(configs.group_config("h", "share.auto.offset.reset"), None);
    assert_eq!(configs.topic_configs("g").count(), 0, "not a topic's");
    let rebuilt = apply(&Arc::new(MetadataImage::empty()), &image.to_records());
    assert_eq!(rebuilt.configs(), image.configs());
    let image = apply(
        &image,
        &[
            alter_group_config("h", "consumer.session.timeout.ms", None).expect("remove"),
            alter_group_config("g", "share.record.lock.duration.ms", None).expect("remove"),
        ],
    );
    assert_eq!(
        image.configs().group_resources().collect::<Vec<_>>(),
        vec!["g"]
    );
    assert_eq!(image.configs().group_configs("g").count(), 1);
    // A record naming no group does not replay.
    let mut delta = MetadataDelta::new(image.clone());
    assert!(delta
        .replay(&MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Group(String::new()),
            name: "share.auto.offset.reset".into(),
            value: Some("earliest".into()),
        }))
        .is_err());
}

/// Client metrics subscriptions (KIP-714) are CLIENT_METRICS config records: set, listed,
/// gone with their last key, kept in snapshots; the controller checks the names.
#[test]
fn client_metrics_subscriptions_are_set_removed_and_kept_in_snapshots() {
    use crate::controller::alter_client_metrics_config;
    let image = cluster(1);
    assert_eq!(
        alter_client_metrics_config("s", "nope", Some("1")).map_err(|e| e.code()),
        Err(code::INVALID_REQUEST),
        "not a subscription key"
    );
    assert_eq!(
        alter_client_metrics_config("", "interval.ms", Some("1000")).map_err(|e| e.code()),
        Err(code::INVALID_REQUEST),
        "no subscription name"
    );
    let image = apply(
        &image,
        &[
            alter_client_metrics_config("s1", "metrics", Some("a.,b.")).expect("set"),
            alter_client_metrics_config("s1", "interval.ms", Some("1000")).expect("set"),
            alter_client_metrics_config("s0", "match", Some("client_id=x")).expect("set"),
        ],
    );
    let configs = image.configs();
    assert_eq!(
        configs.client_metrics_resources().collect::<Vec<_>>(),
        vec!["s0", "s1"]
    );
    assert_eq!(
        configs.client_metrics_configs("s1").collect::<Vec<_>>(),
        vec![("interval.ms", "1000"), ("metrics", "a.,b.")]
    );
    assert_eq!(configs.group_configs("s1").count(), 0, "not a group's");
    let rebuilt = apply(&Arc::new(MetadataImage::empty()), &image.to_records());
    assert_eq!(rebuilt.configs(), image.configs());
    let image = apply(
        &image,
        &[alter_client_metrics_config("s0", "match", None).expect("remove")],
    );
    assert_eq!(
        image
            .configs()
            .client_metrics_resources()
            .collect::<Vec<_>>(),
        vec!["s1"]
    );
    let mut delta = MetadataDelta::new(image.clone());
    assert!(delta
        .replay(&MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::ClientMetrics(String::new()),
            name: "metrics".into(),
            value: Some("a.".into()),
        }))
        .is_err());
}

#[test]
fn fenced_brokers_get_no_new_replicas() {
    let image = cluster(3);
    let image = apply(&image, &fence_broker(&image, 2, &DEFAULTS).expect("fence"));
    let err = create(&image, "t", 1, 3, 3, &[]).expect_err("only 2 unfenced");
    assert_eq!(
        err,
        ControllerError::InvalidReplicationFactor {
            replication_factor: 3,
            usable_brokers: 2
        }
    );
    let image = apply(&image, &create(&image, "t", 1, 8, 2, &[]).expect("create"));
    let image = apply(
        &image,
        &create_partitions(&image, "t", 12, 5).expect("grow"),
    );
    for (_, p) in image.topics().all_partitions() {
        assert!(!p.is_replica(2), "{p:?}");
    }
    assert_eq!(
        create_partitions(&image, "t", 12, 5).map_err(|e| e.code()),
        Err(code::INVALID_PARTITIONS)
    );
}

/// CreatePartitions with explicit assignments: the new partitions land on exactly the
/// brokers named, and every malformed assignment is INVALID_REPLICA_ASSIGNMENT with nothing
/// created: a wrong count of lists, a wrong replication factor, a duplicate, an unknown broker.
#[test]
fn new_partitions_on_explicit_assignments() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 2, 2, &[]).expect("create"));
    let given = vec![vec![3, 1], vec![2, 3]];
    let records = create_partitions_on(&image, "t", 4, Some(&given), 7).expect("grow");
    let grown = apply(&image, &records);
    let t = grown.topics().topic_by_name("t").expect("topic");
    assert_eq!(t.partition_count(), 4);
    let p2 = t.partition(2).expect("p2");
    assert_eq!((p2.replicas.clone(), p2.leader), (vec![3, 1], 3));
    assert_eq!(t.partition(3).expect("p3").replicas, vec![2, 3]);
    let bad: [&[Vec<BrokerId>]; 4] = [
        &[vec![3, 1]],
        &[vec![3, 1], vec![2]],
        &[vec![3, 3], vec![2, 1]],
        &[vec![3, 1], vec![2, 9]],
    ];
    for b in bad {
        assert_eq!(
            create_partitions_on(&image, "t", 4, Some(b), 7).map_err(|e| e.code()),
            Err(code::INVALID_REPLICA_ASSIGNMENT),
            "{b:?}"
        );
    }
}

#[test]
fn fencing_the_leader_elects_from_the_isr_and_bumps_epochs() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    let led_by_1: Vec<TopicIdPartition> = image.topics().leaders_of(1).collect();
    assert_eq!(led_by_1.len(), 1);
    let before = image.topics().partition(led_by_1[0]).cloned().expect("p");

    let records = fence_broker(&image, 1, &DEFAULTS).expect("fence");
    assert!(matches!(records[0], MetadataRecord::FenceBroker(_)));
    // Broker 1 is in every ISR: one change per partition.
    assert_eq!(records.len(), 4);
    let image = apply(&image, &records);
    assert_eq!(image.topics().leader_count(1), 0);
    let after = image.topics().partition(led_by_1[0]).cloned().expect("p");
    let expected_leader = before.replicas.iter().copied().find(|&b| b != 1);
    assert_eq!(Some(after.leader), expected_leader, "next replica in order");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    for (_, p) in image.topics().all_partitions() {
        assert!(!p.is_in_isr(1));
    }
    // Fencing again is a no-op.
    assert_eq!(fence_broker(&image, 1, &DEFAULTS), Ok(vec![]));
    assert_eq!(
        fence_broker(&image, 9, &DEFAULTS).map_err(|e| e.code()),
        Err(code::BROKER_ID_NOT_REGISTERED)
    );
}

/// UnregisterBroker: a live leader leaves every ISR (new leaders elected) and its
/// registration is gone; a fenced one only loses its registration; an unknown id is
/// BROKER_ID_NOT_REGISTERED. The broker stays a replica (offline) of its partitions.
#[test]
fn unregistering_a_broker_takes_it_out_of_the_isrs_and_the_cluster() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    let records = unregister_broker(&image, 1, &DEFAULTS).expect("unregister");
    assert!(matches!(
        records.last(),
        Some(MetadataRecord::UnregisterBroker(r)) if r.broker_id == 1
    ));
    assert_eq!(
        records.len(),
        4,
        "one change per partition, then the record"
    );
    let image = apply(&image, &records);
    assert!(image.cluster().broker(1).is_none());
    assert_eq!(image.topics().leader_count(1), 0);
    for (_, p) in image.topics().all_partitions() {
        assert!(!p.is_in_isr(1));
        assert!(p.is_replica(1), "still a replica until reassigned");
        assert!(p.has_leader());
    }
    // A fenced broker: its ISR changes were made when it was fenced.
    let image = apply(&image, &fence_broker(&image, 2, &DEFAULTS).expect("fence"));
    let records = unregister_broker(&image, 2, &DEFAULTS).expect("unregister");
    assert_eq!(records.len(), 1);
    let image = apply(&image, &records);
    assert!(image.cluster().broker(2).is_none());
    assert_eq!(
        unregister_broker(&image, 9, &DEFAULTS).map_err(|e| e.code()),
        Err(code::BROKER_ID_NOT_REGISTERED)
    );
}

#[test]
fn last_isr_member_keeps_its_place_and_leads_again_when_back() {
    let image = cluster(2);
    let image = apply(&image, &create(&image, "t", 1, 1, 2, &[]).expect("create"));
    let p = partition(&image, 1, 0);
    let (leader, follower) = (p.replicas[0], p.replicas[1]);
    // The follower falls behind and leaves the ISR.
    let shrink = alter_partition(
        &image,
        &AlterPartition {
            tp: TopicIdPartition {
                topic_id: Uuid::from_u128(1),
                partition: 0,
            },
            leader_id: leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![leader],
            new_isr_broker_epochs: Vec::new(),
        },
        &DEFAULTS,
    )
    .expect("valid")
    .expect("a change");
    let image = apply(&image, &[shrink]);
    // Now the leader dies: the follower is not in the ISR, so no clean leader.
    let image = apply(
        &image,
        &fence_broker(&image, leader, &DEFAULTS).expect("fence"),
    );
    let p = partition(&image, 1, 0);
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![leader], "the ISR still says who has the data");
    assert_eq!(p.leader_epoch, 1);
    // Unfencing the lagging follower does not elect it.
    let image = apply(
        &image,
        &fence_broker(&image, follower, &DEFAULTS).expect("fence"),
    );
    let image = apply(
        &image,
        &unfence_broker(&image, follower, &DEFAULTS).expect("unfence"),
    );
    assert_eq!(partition(&image, 1, 0).leader, NO_LEADER);
    // The old leader comes back and leads in a new epoch.
    let image = apply(
        &image,
        &unfence_broker(&image, leader, &DEFAULTS).expect("unfence"),
    );
    let p = partition(&image, 1, 0);
    assert_eq!((p.leader, p.leader_epoch), (leader, 2));
}

#[test]
fn replicas_in_a_failed_directory_leave_their_isrs_and_are_never_elected() {
    let image = cluster(3);
    // Topic 1: three replicas; topic 2: one replica, on broker 1.
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    let image = with_solo(&image);
    let tp = |id: u128, p: i32| TopicIdPartition {
        topic_id: Uuid::from_u128(id),
        partition: p,
    };
    // Broker 1 leads partition `led` of "t" and follows `followed`; both are in its failed
    // directory, as is "solo"-0; its third partition of "t" is in a healthy one.
    let led = (0..3)
        .find(|&p| partition(&image, 1, p).leader == 1)
        .expect("broker 1 leads one");
    let followed = (0..3)
        .find(|&p| partition(&image, 1, p).leader != 1)
        .expect("broker 1 follows one");
    let healthy = (0..3)
        .find(|&p| p != led && p != followed)
        .expect("a third");
    let mut offline = OfflineReplicas::default();
    offline.set(1, [tp(1, led), tp(1, followed), tp(2, 0)].into());
    assert!(offline.contains(1, tp(1, led)) && !offline.contains(2, tp(1, led)));
    let records = take_replicas_offline(&image, 1, &offline, &DEFAULTS).expect("registered");
    assert_eq!(records.len(), 3, "{records:#?}");
    let image = apply(&image, &records);
    let p = partition(&image, 1, led);
    assert!(p.leader != 1 && p.leader != NO_LEADER, "{p:?}");
    assert!(!p.isr.contains(&1), "{p:?}");
    assert_eq!(p.replicas.len(), 3, "still a replica");
    assert!(!partition(&image, 1, followed).isr.contains(&1));
    let h = partition(&image, 1, healthy);
    assert!(
        h.isr.contains(&1),
        "the healthy directory's replica stays: {h:?}"
    );
    assert!(image.cluster().is_unfenced(1), "the broker goes on");
    // The last ISR member keeps its place, leaderless: nothing else holds the data.
    let solo = partition(&image, 2, 0);
    assert_eq!((solo.leader, solo.isr.clone()), (NO_LEADER, vec![1]));
    // Reported again (every heartbeat does): nothing more to do.
    assert_eq!(
        take_replicas_offline(&image, 1, &offline, &DEFAULTS).expect("registered"),
        Vec::new()
    );
    // No election picks an offline replica: not ElectLeaders, not unfencing it again.
    assert_eq!(
        elect_leader_avoiding(&image, tp(2, 0), Election::Online, &DEFAULTS, &offline)
            .map_err(|e| e.code()),
        Err(code::ELIGIBLE_LEADERS_NOT_AVAILABLE)
    );
    let fenced = apply(
        &image,
        &fence_broker_avoiding(&image, 1, &DEFAULTS, &offline).expect("fence"),
    );
    let back = apply(
        &fenced,
        &unfence_broker_avoiding(&fenced, 1, &DEFAULTS, &offline).expect("unfence"),
    );
    assert_eq!(partition(&back, 2, 0).leader, NO_LEADER);
    assert_eq!(
        partition(&back, 1, healthy).leader,
        partition(&fenced, 1, healthy).leader
    );
    // Without the report (the broker restarted with the directory readable), it leads again.
    let back = apply(
        &fenced,
        &unfence_broker(&fenced, 1, &DEFAULTS).expect("unfence"),
    );
    assert_eq!(partition(&back, 2, 0).leader, 1);
    // An unclean election, where allowed, picks another replica, never the offline one.
    let unclean = alter_topic_config(&image, "t", UNCLEAN_LEADER_ELECTION_ENABLE, Some("true"))
        .expect("config");
    let mut others_fenced = apply(&image, &[unclean]);
    for b in [2, 3] {
        let records = fence_broker_avoiding(&others_fenced, b, &DEFAULTS, &offline).expect("fence");
        others_fenced = apply(&others_fenced, &records);
    }
    for p in [led, followed] {
        assert_eq!(partition(&others_fenced, 1, p).leader, NO_LEADER);
        assert_eq!(
            elect_leader_avoiding(
                &others_fenced,
                tp(1, p),
                Election::Unclean,
                &DEFAULTS,
                &offline
            )
            .map_err(|e| e.code()),
            Err(code::ELIGIBLE_LEADERS_NOT_AVAILABLE)
        );
    }
    assert_eq!(
        take_replicas_offline(&image, 9, &offline, &DEFAULTS).map_err(|e| e.code()),
        Err(code::BROKER_ID_NOT_REGISTERED)
    );
}

#[test]
fn brokers_with_every_log_directory_cordoned_get_no_new_replicas() {
    use crate::controller::set_broker_cordoned;
    let image = cluster(3);
    let record = set_broker_cordoned(&image, 2, true)
        .expect("registered")
        .expect("a change");
    let image = apply(&image, &[record]);
    assert!(image.cluster().is_cordoned(2));
    assert_eq!(
        set_broker_cordoned(&image, 2, true).expect("registered"),
        None
    );
    assert_eq!(
        set_broker_cordoned(&image, 9, true).map_err(|e| e.code()),
        Err(code::BROKER_ID_NOT_REGISTERED)
    );
    // Placement leaves broker 2 out, and cannot reach three replicas without it.
    let image = apply(&image, &create(&image, "t", 1, 6, 2, &[]).expect("create"));
    for p in 0..6 {
        assert!(!partition(&image, 1, p).replicas.contains(&2));
    }
    let image = apply(
        &image,
        &create_partitions(&image, "t", 9, 7).expect("more partitions"),
    );
    for p in 0..9 {
        assert!(!partition(&image, 1, p).replicas.contains(&2));
    }
    assert_eq!(
        create(&image, "wide", 2, 1, 3, &[]).map_err(|e| e.code()),
        Err(code::INVALID_REPLICATION_FACTOR)
    );
    // Named explicitly it is refused too; existing replicas stay, and a reassignment may keep
    // one there but not add one.
    let explicit = create_topic_with_assignments(
        &image,
        &CreateTopic {
            name: "explicit".into(),
            topic_id: Uuid::from_u128(3),
            partitions: 1,
            replication_factor: 2,
            configs: Vec::new(),
            placement_seed: 3,
        },
        &[vec![1, 2]],
    );
    assert_eq!(
        explicit.map_err(|e| e.code()),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    let tp = TopicIdPartition {
        topic_id: Uuid::from_u128(1),
        partition: 0,
    };
    let replicas = partition(&image, 1, 0).replicas;
    assert_eq!(
        alter_partition_reassignment(&image, tp, Some(&[replicas[0], 2]), &DEFAULTS)
            .map_err(|e| e.code()),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    // Kept in snapshots; uncordoned, it takes replicas again.
    assert_eq!(
        &decode_snapshot(&encode_snapshot(&image)).expect("snapshot"),
        &*image
    );
    let record = set_broker_cordoned(&image, 2, false)
        .expect("registered")
        .expect("a change");
    let image = apply(&image, &[record]);
    let image = apply(
        &image,
        &create(&image, "wide", 2, 1, 3, &[]).expect("create"),
    );
    assert!(partition(&image, 2, 0).replicas.contains(&2));
    // A new registration (a restart) starts uncordoned until its heartbeat says otherwise.
    let image = apply(
        &image,
        &[set_broker_cordoned(&image, 3, true)
            .expect("registered")
            .expect("a change")],
    );
    let image = apply(
        &image,
        &register_broker(
            &image,
            &RegisterBroker {
                log_dirs: Vec::new(),
                broker_id: 3,
                incarnation_id: Uuid::from_u128(33),
                broker_epoch: 100,
                endpoints: endpoint(3),
                rack: None,
                clean_shutdown: true,
            },
            &DEFAULTS,
        )
        .expect("register"),
    );
    assert!(!image.cluster().is_cordoned(3));
    // Below metadata.version 4.3-IV0 cordoning has no effect (Kafka's).
    let old_version = apply(
        &image,
        &[MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: METADATA_VERSION_FEATURE.to_string(),
            feature_level: controller::CORDONED_LOG_DIRS_METADATA_VERSION - 1,
        })],
    );
    assert_eq!(
        set_broker_cordoned(&old_version, 3, true).expect("registered"),
        None
    );
}

#[test]
fn unclean_election_only_when_the_topic_or_default_allows_it() {
    let image = cluster(2);
    let image = apply(
        &image,
        &create(&image, "clean", 1, 1, 2, &[]).expect("create"),
    );
    let image = apply(
        &image,
        &create(
            &image,
            "dirty",
            2,
            1,
            2,
            &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
        )
        .expect("create"),
    );
    assert!(unclean_election_enabled(&image, "dirty", &DEFAULTS));
    assert!(!unclean_election_enabled(&image, "clean", &DEFAULTS));
    // Shrink both ISRs to their leader, then fence that leader.
    let mut image = image;
    for id in [1u128, 2] {
        let p = partition(&image, id, 0);
        let record = alter_partition(
            &image,
            &AlterPartition {
                tp: TopicIdPartition {
                    topic_id: Uuid::from_u128(id),
                    partition: 0,
                },
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: vec![p.leader],
                new_isr_broker_epochs: Vec::new(),
            },
            &DEFAULTS,
        )
        .expect("valid");
        // Round one's fencing may already have shrunk this ISR to its leader.
        image = apply(&image, &Vec::from_iter(record));
        assert_eq!(partition(&image, id, 0).isr, vec![p.leader]);
        let image_fenced = fence_broker(&image, p.leader, &DEFAULTS).expect("fence");
        // The unclean one is counted as such (Kafka's UncleanLeaderElectionsPerSec).
        assert_eq!(
            crate::unclean_elections(&image, &image_fenced),
            u64::from(id == 2),
            "topic {id}"
        );
        image = apply(&image, &image_fenced);
        let after = partition(&image, id, 0);
        if id == 1 {
            assert_eq!(after.leader, NO_LEADER);
        } else {
            let other = p.replicas.iter().copied().find(|&b| b != p.leader);
            assert_eq!(Some(after.leader), other);
            assert_eq!(after.isr, vec![after.leader]);
        }
        // Bring the fenced leader back for the next round.
        let back = unfence_broker(&image, p.leader, &DEFAULTS).expect("unfence");
        image = apply(&image, &back);
    }
    // With the cluster default on, the clean topic may go unclean too.
    let lenient = ControllerDefaults {
        unclean_leader_election_enable: true,
        min_insync_replicas: 1,
    };
    assert!(unclean_election_enabled(&image, "clean", &lenient));
}

#[test]
fn elect_leaders_answers_like_kafka() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 1, 3, &[]).expect("create"));
    let tp = TopicIdPartition {
        topic_id: Uuid::from_u128(1),
        partition: 0,
    };
    let preferred = partition(&image, 1, 0).leader;
    assert_eq!(
        elect_leader(&image, tp, Election::Preferred, &DEFAULTS).map_err(|e| e.code()),
        Err(code::ELECTION_NOT_NEEDED)
    );
    // The preferred leader is fenced and comes back: leadership stays away until asked.
    let image = apply(
        &image,
        &fence_broker(&image, preferred, &DEFAULTS).expect("fence"),
    );
    let image = apply(
        &image,
        &unfence_broker(&image, preferred, &DEFAULTS).expect("unfence"),
    );
    assert_ne!(partition(&image, 1, 0).leader, preferred);
    // Not in the ISR yet: not available.
    assert_eq!(
        elect_leader(&image, tp, Election::Preferred, &DEFAULTS).map_err(|e| e.code()),
        Err(code::PREFERRED_LEADER_NOT_AVAILABLE)
    );
    // It catches up and the leader adds it back.
    let p = partition(&image, 1, 0);
    let mut isr = p.isr.clone();
    isr.push(preferred);
    let expand = alter_partition(
        &image,
        &AlterPartition {
            tp,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
            new_isr_broker_epochs: Vec::new(),
        },
        &DEFAULTS,
    )
    .expect("valid")
    .expect("change");
    let image = apply(&image, &[expand]);
    let record =
        elect_leader(&image, tp, Election::Preferred, &DEFAULTS).expect("preferred election");
    let image = apply(&image, &[record]);
    let p = partition(&image, 1, 0);
    assert_eq!((p.leader, p.leader_epoch), (preferred, 2));
    assert_eq!(
        elect_leader(&image, tp, Election::Unclean, &DEFAULTS).map_err(|e| e.code()),
        Err(code::ELECTION_NOT_NEEDED)
    );
}

#[test]
fn alter_partition_checks_sender_epochs_and_members() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 1, 3, &[]).expect("create"));
    let tp = TopicIdPartition {
        topic_id: Uuid::from_u128(1),
        partition: 0,
    };
    let p = partition(&image, 1, 0);
    let follower = p.replicas[1];
    let req = |leader_id, leader_epoch, partition_epoch, new_isr: Vec<i32>| AlterPartition {
        tp,
        leader_id,
        leader_epoch,
        partition_epoch,
        new_isr,
        new_isr_broker_epochs: Vec::new(),
    };
    let code_of = |image: &MetadataImage, r: AlterPartition| {
        alter_partition(image, &r, &DEFAULTS)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(
        code_of(&image, req(follower, 0, 0, vec![follower])),
        Err(code::NOT_LEADER_OR_FOLLOWER)
    );
    assert_eq!(
        code_of(&image, req(p.leader, 1, 0, vec![p.leader])),
        Err(code::FENCED_LEADER_EPOCH)
    );
    assert_eq!(
        code_of(&image, req(p.leader, 0, 3, vec![p.leader])),
        Err(code::INVALID_UPDATE_VERSION)
    );
    assert_eq!(
        code_of(&image, req(p.leader, 0, 0, vec![follower])),
        Err(code::INVALID_REQUEST)
    );
    assert_eq!(
        code_of(&image, req(p.leader, 0, 0, vec![p.leader, 9])),
        Err(code::INVALID_REQUEST)
    );
    assert_eq!(
        alter_partition(&image, &req(p.leader, 0, 0, p.isr.clone()), &DEFAULTS),
        Ok(None),
        "no change, no record"
    );
    // A fenced broker cannot be added back.
    let shrink = alter_partition(&image, &req(p.leader, 0, 0, vec![p.leader]), &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[shrink]);
    let image = apply(
        &image,
        &fence_broker(&image, follower, &DEFAULTS).expect("fence"),
    );
    let p = partition(&image, 1, 0);
    assert_eq!(
        code_of(
            &image,
            req(
                p.leader,
                p.leader_epoch,
                p.partition_epoch,
                vec![p.leader, follower]
            )
        ),
        Err(code::INELIGIBLE_REPLICA)
    );
}

/// KIP-903: an ISR expansion names each member's broker epoch as the leader saw it; a member
/// registered since with another epoch (a restart, maybe on an empty disk) is refused, the
/// current epoch and an unknown one (-1) are accepted.
#[test]
fn alter_partition_refuses_a_member_whose_broker_epoch_changed() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    let p = partition(&image, 1, 0);
    let follower = p.replicas[1];
    let shrink = AlterPartition {
        tp: TopicIdPartition {
            topic_id: Uuid::from_u128(1),
            partition: 0,
        },
        leader_id: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: p.isr.iter().copied().filter(|&b| b != follower).collect(),
        new_isr_broker_epochs: Vec::new(),
    };
    let record = alter_partition(&image, &shrink, &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[record]);
    let p = partition(&image, 1, 0);
    let current = image.cluster().broker(follower).expect("registered").epoch;
    let expand = |epoch: i64| {
        let mut isr = p.isr.clone();
        isr.push(follower);
        let epochs = isr
            .iter()
            .map(|&b| if b == follower { epoch } else { -1 })
            .collect();
        AlterPartition {
            tp: shrink.tp,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
            new_isr_broker_epochs: epochs,
        }
    };
    assert_eq!(
        alter_partition(&image, &expand(current - 1), &DEFAULTS).map_err(|e| e.code()),
        Err(code::INELIGIBLE_REPLICA),
        "an older incarnation's epoch"
    );
    assert!(
        alter_partition(&image, &expand(-1), &DEFAULTS).is_ok(),
        "unknown: not checked"
    );
    assert!(
        alter_partition(&image, &expand(current), &DEFAULTS)
            .expect("the current epoch")
            .is_some(),
        "expanded"
    );
}

#[test]
fn a_restarted_broker_fences_its_old_incarnation_first() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    let records = register_broker(
        &image,
        &RegisterBroker {
            log_dirs: Vec::new(),
            broker_id: 2,
            incarnation_id: Uuid::from_u128(222),
            broker_epoch: 10,
            endpoints: endpoint(2),
            rack: None,
            clean_shutdown: false,
        },
        &DEFAULTS,
    )
    .expect("re-register");
    assert!(matches!(records[0], MetadataRecord::FenceBroker(_)));
    assert!(matches!(
        records.last(),
        Some(MetadataRecord::RegisterBroker(_))
    ));
    let image = apply(&image, &records);
    let b = image.cluster().broker(2).expect("registered");
    assert!(b.fenced);
    assert_eq!((b.epoch, b.incarnation_id), (10, Uuid::from_u128(222)));
    assert_eq!(image.topics().leader_count(2), 0);
    // A retry of the same registration adds nothing; an older epoch is refused.
    let retry = RegisterBroker {
        log_dirs: Vec::new(),
        broker_id: 2,
        incarnation_id: Uuid::from_u128(222),
        broker_epoch: 11,
        endpoints: endpoint(2),
        rack: None,
        clean_shutdown: false,
    };
    assert_eq!(register_broker(&image, &retry, &DEFAULTS), Ok(vec![]));
    let stale = RegisterBroker {
        incarnation_id: Uuid::from_u128(333),
        broker_epoch: 9,
        ..retry
    };
    assert!(matches!(
        register_broker(&image, &stale, &DEFAULTS),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
}

#[test]
fn delete_topic_removes_partitions_configs_and_leaderships() {
    let image = cluster(2);
    let image = apply(
        &image,
        &create(&image, "t", 1, 4, 2, &[("cleanup.policy", "compact")]).expect("create"),
    );
    let image = apply(&image, &delete_topic(&image, "t").expect("delete"));
    assert!(image.topics().topic_by_name("t").is_none());
    assert_eq!(image.configs().topic_configs("t").count(), 0);
    assert_eq!(
        image.topics().leader_count(1) + image.topics().leader_count(2),
        0
    );
    assert_eq!(
        delete_topic(&image, "t").map_err(|e| e.code()),
        Err(code::UNKNOWN_TOPIC_OR_PARTITION)
    );
    // The name can be used again, with a new id.
    let image = apply(
        &image,
        &create(&image, "t", 2, 1, 1, &[]).expect("create again"),
    );
    assert_eq!(image.topics().topic_id("t"), Some(Uuid::from_u128(2)));
}

#[test]
fn reassignment_adds_catches_up_switches_and_removes() {
    let image = cluster(4);
    // Three replicas out of four brokers: find a seed whose placement leaves broker 4 out.
    let records = (0..64u128)
        .map(|seed| create(&image, "t", 1000 + seed, 1, 3, &[]).expect("create"))
        .find(|records| {
            records
                .iter()
                .any(|r| matches!(r, MetadataRecord::Partition(p) if !p.replicas.contains(&4)))
        })
        .expect("some seed leaves broker 4 out");
    let image = apply(&image, &records);
    let topic_id = image.topics().topic_id("t").expect("topic");
    let tp = TopicIdPartition {
        topic_id,
        partition: 0,
    };
    let before = image.topics().partition(tp).cloned().expect("p");
    let old_leader = before.leader;
    // Move the leader's replica to broker 4.
    let target: Vec<i32> = before
        .replicas
        .iter()
        .map(|&b| if b == old_leader { 4 } else { b })
        .collect();
    let start = alter_partition_reassignment(&image, tp, Some(&target), &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[start]);
    let p = image.topics().partition(tp).cloned().expect("p");
    assert!(p.is_reassigning());
    assert_eq!(p.adding_replicas, vec![4]);
    assert_eq!(p.removing_replicas, vec![old_leader]);
    assert_eq!(p.target_replicas(), target);
    let sorted = |mut v: Vec<i32>| {
        v.sort_unstable();
        v
    };
    assert_eq!(
        sorted(p.original_replicas()),
        sorted(before.replicas.clone())
    );
    assert_eq!(
        p.leader, old_leader,
        "the leader stays until the new replica caught up"
    );
    assert_eq!(image.topics().reassigning_partitions().count(), 1);
    // Broker 4 catches up; the leader adds it to the ISR, which completes the reassignment.
    let mut isr = p.isr.clone();
    isr.push(4);
    let expand = alter_partition(
        &image,
        &AlterPartition {
            tp,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
            new_isr_broker_epochs: Vec::new(),
        },
        &DEFAULTS,
    )
    .expect("valid")
    .expect("change");
    let image = apply(&image, &[expand]);
    let p = image.topics().partition(tp).cloned().expect("p");
    assert!(!p.is_reassigning());
    assert_eq!(p.replicas, target);
    assert!(!p.is_in_isr(old_leader) && p.is_in_isr(4));
    assert_eq!(p.leader, 4, "the first target replica in the ISR leads");
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert_eq!(image.topics().reassigning_partitions().count(), 0);
    // The same assignment again: nothing to do.
    assert_eq!(
        alter_partition_reassignment(&image, tp, Some(&target), &DEFAULTS),
        Ok(None)
    );
}

#[test]
fn reassignment_can_be_cancelled_and_is_checked() {
    let image = cluster(4);
    let image = apply(&image, &create(&image, "t", 1, 1, 2, &[]).expect("create"));
    let tp = TopicIdPartition {
        topic_id: Uuid::from_u128(1),
        partition: 0,
    };
    let before = partition(&image, 1, 0);
    let elsewhere: Vec<i32> = (1..=4).filter(|b| !before.is_replica(*b)).collect();
    let code_of = |image: &MetadataImage, target: Option<&[i32]>| {
        alter_partition_reassignment(image, tp, target, &DEFAULTS)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(
        code_of(&image, None),
        Err(code::NO_REASSIGNMENT_IN_PROGRESS)
    );
    assert_eq!(
        code_of(&image, Some(&[])),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        code_of(&image, Some(&[1, 1])),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        code_of(&image, Some(&[1, 9])),
        Err(code::BROKER_ID_NOT_REGISTERED)
    );
    let start = alter_partition_reassignment(&image, tp, Some(&elsewhere), &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[start]);
    assert_eq!(partition(&image, 1, 0).replicas.len(), 4);
    let cancel = alter_partition_reassignment(&image, tp, None, &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[cancel]);
    let after = partition(&image, 1, 0);
    assert!(!after.is_reassigning());
    assert_eq!((after.replicas, after.isr), (before.replicas, before.isr));
    assert_eq!(after.leader, before.leader);
    assert_eq!(after.partition_epoch, before.partition_epoch + 2);
}

/// A new target for a partition already reassigning starts from its current replicas (Kafka's
/// KRaft controller): a replica the first reassignment was adding, and the only one left in
/// the ISR, stays a replica and the leader until the new reassignment completes. Replay of the
/// controller simulation's seed 3871, where starting again from the original replicas dropped
/// it and elected a leader from outside the ISR.
#[test]
fn a_replaced_reassignment_keeps_the_replicas_that_hold_the_isr() {
    let image = cluster(4);
    let records = create_topic(
        &image,
        &CreateTopic {
            name: "t".into(),
            topic_id: Uuid::from_u128(1),
            partitions: 1,
            replication_factor: 2,
            configs: vec![("unclean.leader.election.enable".into(), "true".into())],
            placement_seed: 1,
        },
    )
    .expect("create");
    let image = apply(&image, &records);
    let tp = TopicIdPartition {
        topic_id: Uuid::from_u128(1),
        partition: 0,
    };
    let before = partition(&image, 1, 0);
    let moved: Vec<i32> = (1..=4).filter(|b| !before.is_replica(*b)).collect();
    let start = alter_partition_reassignment(&image, tp, Some(&moved), &DEFAULTS)
        .expect("valid")
        .expect("change");
    let image = apply(&image, &[start]);
    // The first new replica catches up; then both original replicas die: the adding replica
    // is the whole ISR, and leads.
    let p = partition(&image, 1, 0);
    let mut isr = p.isr.clone();
    isr.push(moved[0]);
    let expand = alter_partition(
        &image,
        &AlterPartition {
            tp,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr,
            new_isr_broker_epochs: Vec::new(),
        },
        &DEFAULTS,
    )
    .expect("valid")
    .expect("change");
    let mut image = apply(&image, &[expand]);
    for &b in &before.replicas {
        image = apply(&image, &fence_broker(&image, b, &DEFAULTS).expect("fence"));
    }
    let p = partition(&image, 1, 0);
    assert_eq!((p.isr.clone(), p.leader), (vec![moved[0]], moved[0]));
    assert!(p.is_reassigning());
    // Undoing it is refused: no original replica holds the data.
    assert_eq!(
        alter_partition_reassignment(&image, tp, None, &DEFAULTS).map_err(|e| e.code()),
        Err(code::INVALID_REPLICA_ASSIGNMENT)
    );
    // A new target without that replica: it is removed only once the new one completes.
    let target = vec![moved[1], before.replicas[0]];
    let replace = alter_partition_reassignment(&image, tp, Some(&target), &DEFAULTS)
        .expect("valid")
        .expect("change");
    assert_eq!(
        election::unclean_elections(&image, std::slice::from_ref(&replace)),
        0
    );
    let image = apply(&image, &[replace]);
    let p = partition(&image, 1, 0);
    assert_eq!((p.isr.clone(), p.leader), (vec![moved[0]], moved[0]));
    assert_eq!(p.target_replicas(), target);
    assert_eq!(p.adding_replicas, vec![moved[1]]);
    let mut removing = p.removing_replicas.clone();
    removing.sort_unstable();
    let mut expected = vec![moved[0], before.replicas[1]];
    expected.sort_unstable();
    assert_eq!(removing, expected);
    // The new replica catches up: the reassignment completes and it leads.
    let expand = alter_partition(
        &image,
        &AlterPartition {
            tp,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![moved[0], moved[1]],
            new_isr_broker_epochs: Vec::new(),
        },
        &DEFAULTS,
    )
    .expect("valid")
    .expect("change");
    let image = apply(&image, &[expand]);
    let p = partition(&image, 1, 0);
    assert!(!p.is_reassigning());
    assert_eq!(p.replicas, target);
    assert_eq!((p.isr.clone(), p.leader), (vec![moved[1]], moved[1]));
}

/// One step of the random scenario.
#[derive(Debug, Clone)]
enum Op {
    CreateTopic {
        partitions: i32,
        rf: i16,
        unclean: bool,
        seed: u64,
    },
    DeleteTopic(prop::sample::Index),
    Fence(BrokerId),
    Unfence(BrokerId),
    Restart(BrokerId),
    /// The leader of a partition drops its last follower from the ISR.
    Shrink(prop::sample::Index),
    /// The leader of a partition adds an unfenced replica back to the ISR.
    Expand(prop::sample::Index),
    PreferredElection(prop::sample::Index),
    AddPartitions(prop::sample::Index, i32, u64),
    /// Reassign a partition to a set of brokers (taken in the given order).
    Reassign(prop::sample::Index, Vec<BrokerId>),
    CancelReassignment(prop::sample::Index),
    /// A log directory of a broker fails: the replicas the mask picks among its partitions
    /// (in order) are reported offline, until its next restart.
    DirFails(BrokerId, u64),
    /// Every log directory of a broker is cordoned (KIP-1066), or none any more.
    Cordon(BrokerId, bool),
    /// KIP-858: a broker says which of its two log directories holds each of its replicas
    /// (the mask's bits, in order).
    AssignDirs(BrokerId, u64),
    /// KIP-858: one of a broker's two log directories fails; its heartbeat names it.
    DirIdFails(BrokerId, bool),
    /// A broker restarts with one of its two log directories missing.
    RestartWithoutDir(BrokerId, bool),
}

/// Log directory `second` (0 or 1) of broker `b`.
fn dir_id(b: BrokerId, second: bool) -> Uuid {
    Uuid::from_u128(0xd000 + (b as u128) * 2 + u128::from(second))
}

const BROKERS: i32 = 5;

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1..6i32, 1..5i16, any::<bool>(), any::<u64>()).prop_map(
            |(partitions, rf, unclean, seed)| Op::CreateTopic { partitions, rf, unclean, seed }
        ),
        1 => any::<prop::sample::Index>().prop_map(Op::DeleteTopic),
        3 => (1..=BROKERS).prop_map(Op::Fence),
        3 => (1..=BROKERS).prop_map(Op::Unfence),
        1 => (1..=BROKERS).prop_map(Op::Restart),
        3 => any::<prop::sample::Index>().prop_map(Op::Shrink),
        3 => any::<prop::sample::Index>().prop_map(Op::Expand),
        2 => any::<prop::sample::Index>().prop_map(Op::PreferredElection),
        1 => (any::<prop::sample::Index>(), 1..3i32, any::<u64>())
            .prop_map(|(i, n, seed)| Op::AddPartitions(i, n, seed)),
        2 => (any::<prop::sample::Index>(),
              proptest::sample::subsequence((1..=BROKERS).collect::<Vec<_>>(), 1..=3)
                  .prop_shuffle())
            .prop_map(|(i, target)| Op::Reassign(i, target)),
        1 => any::<prop::sample::Index>().prop_map(Op::CancelReassignment),
        1 => (1..=BROKERS, any::<u64>()).prop_map(|(b, mask)| Op::DirFails(b, mask)),
        1 => (1..=BROKERS, any::<bool>()).prop_map(|(b, on)| Op::Cordon(b, on)),
        2 => (1..=BROKERS, any::<u64>()).prop_map(|(b, mask)| Op::AssignDirs(b, mask)),
        1 => (1..=BROKERS, any::<bool>()).prop_map(|(b, d)| Op::DirIdFails(b, d)),
        1 => (1..=BROKERS, any::<bool>()).prop_map(|(b, d)| Op::RestartWithoutDir(b, d)),
    ]
}

/// The replicas a reassignment starts from (its original replicas while one is going on).
fn reg_replicas(image: &MetadataImage, tp: TopicIdPartition) -> Vec<BrokerId> {
    image
        .topics()
        .partition(tp)
        .map(|p| p.original_replicas())
        .unwrap_or_default()
}

fn pick_partition(
    image: &MetadataImage,
    index: &prop::sample::Index,
) -> Option<(TopicIdPartition, PartitionRegistration)> {
    let all: Vec<_> = image.topics().all_partitions().collect();
    if all.is_empty() {
        return None;
    }
    let (tp, reg) = all[index.index(all.len())];
    Some((tp, reg.clone()))
}

/// The controller's records for one step; `None` when the step does not apply (and the
/// error, if any, was the right one).
fn records_for(
    image: &Arc<MetadataImage>,
    op: &Op,
    step: usize,
    incarnations: &mut BTreeMap<BrokerId, u128>,
    offline: &mut OfflineReplicas,
) -> Option<Vec<MetadataRecord>> {
    match op {
        Op::CreateTopic {
            partitions,
            rf,
            unclean,
            seed,
        } => {
            let mut configs = if *unclean {
                vec![(
                    UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
                    "true".to_string(),
                )]
            } else {
                vec![]
            };
            // A third of the topics keep an ELR below 2 (KIP-966, when it is on).
            if seed % 3 == 0 {
                configs.push(("min.insync.replicas".to_string(), "2".to_string()));
            }
            let result = create_topic(
                image,
                &CreateTopic {
                    name: format!("topic-{step}"),
                    topic_id: Uuid::from_u128(step as u128 + 1),
                    partitions: *partitions,
                    replication_factor: *rf,
                    configs,
                    placement_seed: *seed,
                },
            );
            let usable = image.cluster().placeable_broker_ids().len();
            match result {
                Ok(records) => {
                    assert!(*rf as usize <= usable);
                    Some(records)
                }
                Err(e) => {
                    assert!(*rf as usize > usable, "unexpected {e}");
                    assert_eq!(e.code(), code::INVALID_REPLICATION_FACTOR);
                    None
                }
            }
        }
        Op::DeleteTopic(index) => {
            let topics: Vec<_> = image.topics().topics().cloned().collect();
            if topics.is_empty() {
                return None;
            }
            let topic = &topics[index.index(topics.len())];
            Some(delete_topic(image, &topic.name).expect("existing topic"))
        }
        Op::Fence(b) => {
            Some(fence_broker_avoiding(image, *b, &DEFAULTS, offline).expect("registered"))
        }
        Op::Unfence(b) => {
            Some(unfence_broker_avoiding(image, *b, &DEFAULTS, offline).expect("registered"))
        }
        Op::Cordon(b, on) => Some(
            crate::controller::set_broker_cordoned(image, *b, *on)
                .expect("registered")
                .into_iter()
                .collect(),
        ),
        Op::DirFails(b, mask) => {
            let hosted: Vec<TopicIdPartition> = image
                .topics()
                .all_partitions()
                .filter(|(_, p)| p.is_replica(*b))
                .map(|(tp, _)| tp)
                .collect();
            let mut failed: BTreeSet<TopicIdPartition> = offline.of(*b).collect();
            failed.extend(
                hosted
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> (i % 64) & 1 == 1)
                    .map(|(_, tp)| *tp),
            );
            offline.set(*b, failed);
            Some(take_replicas_offline(image, *b, offline, &DEFAULTS).expect("registered"))
        }
        Op::AssignDirs(b, mask) => {
            let registration = image.cluster().broker(*b)?;
            let assignments: Vec<_> = image
                .topics()
                .all_partitions()
                .filter(|(_, p)| p.is_replica(*b))
                .enumerate()
                .map(|(i, (tp, _))| controller::ReplicaAssignment {
                    tp,
                    directory: dir_id(*b, mask >> (i % 64) & 1 == 1),
                })
                .collect();
            let (records, results) = controller::assign_replicas_to_dirs(
                image,
                *b,
                registration.epoch,
                &assignments,
                &DEFAULTS,
                offline,
            )
            .expect("registered");
            assert!(results.iter().all(Option::is_none), "{results:?}");
            Some(records)
        }
        Op::DirIdFails(b, second) => Some(
            controller::take_dirs_offline(image, *b, &[dir_id(*b, *second)], &DEFAULTS, offline)
                .expect("registered"),
        ),
        Op::Restart(b) | Op::RestartWithoutDir(b, _) => {
            let incarnation = incarnations.entry(*b).or_insert(0);
            *incarnation += 1;
            let epoch = image.cluster().broker(*b).map_or(0, |r| r.epoch) + 1;
            let log_dirs = match op {
                Op::RestartWithoutDir(_, second) => vec![dir_id(*b, !*second)],
                _ => vec![dir_id(*b, false), dir_id(*b, true)],
            };
            let records = register_broker_avoiding(
                image,
                &RegisterBroker {
                    log_dirs,
                    broker_id: *b,
                    incarnation_id: Uuid::from_u128((*b as u128) << 64 | *incarnation),
                    broker_epoch: epoch,
                    endpoints: endpoint(*b),
                    rack: None,
                    // Every other restart proves a clean stop (KIP-966).
                    clean_shutdown: step.is_multiple_of(2),
                },
                &DEFAULTS,
                offline,
            )
            .expect("newer epoch");
            // The new process opened its directories again.
            offline.forget(*b);
            Some(records)
        }
        Op::Shrink(index) | Op::Expand(index) => {
            let (tp, reg) = pick_partition(image, index)?;
            if !reg.has_leader() {
                return None;
            }
            let mut isr = reg.isr.clone();
            if matches!(op, Op::Shrink(_)) {
                let last = *isr.iter().rev().find(|&&b| b != reg.leader)?;
                isr.retain(|&b| b != last);
            } else {
                // A replica in a failed directory does not fetch: never caught up.
                let add = *reg.replicas.iter().find(|&&b| {
                    !isr.contains(&b)
                        && image.cluster().is_unfenced(b)
                        && !offline.is_offline(image, b, tp)
                })?;
                isr.push(add);
            }
            let record = alter_partition_avoiding(
                image,
                &AlterPartition {
                    tp,
                    leader_id: reg.leader,
                    leader_epoch: reg.leader_epoch,
                    partition_epoch: reg.partition_epoch,
                    new_isr: isr,
                    new_isr_broker_epochs: Vec::new(),
                },
                &DEFAULTS,
                offline,
            )
            .expect("a valid AlterPartition");
            Some(record.into_iter().collect())
        }
        Op::PreferredElection(index) => {
            let (tp, _) = pick_partition(image, index)?;
            elect_leader_avoiding(image, tp, Election::Preferred, &DEFAULTS, offline)
                .ok()
                .map(|r| vec![r])
        }
        Op::Reassign(index, target) => {
            let (tp, _) = pick_partition(image, index)?;
            let adds_cordoned = target
                .iter()
                .any(|&b| !reg_replicas(image, tp).contains(&b) && image.cluster().is_cordoned(b));
            match alter_partition_reassignment_avoiding(image, tp, Some(target), &DEFAULTS, offline)
            {
                Ok(record) => {
                    assert!(!adds_cordoned);
                    Some(record.into_iter().collect())
                }
                Err(e) => {
                    assert!(adds_cordoned, "unexpected {e}");
                    assert_eq!(e.code(), code::INVALID_REPLICA_ASSIGNMENT);
                    None
                }
            }
        }
        Op::CancelReassignment(index) => {
            let (tp, reg) = pick_partition(image, index)?;
            match alter_partition_reassignment_avoiding(image, tp, None, &DEFAULTS, offline) {
                Ok(record) => Some(record.into_iter().collect()),
                Err(e) => {
                    if reg.is_reassigning() {
                        assert_eq!(e.code(), code::INVALID_REPLICA_ASSIGNMENT);
                    } else {
                        assert_eq!(e.code(), code::NO_REASSIGNMENT_IN_PROGRESS);
                    }
                    None
                }
            }
        }
        Op::AddPartitions(index, n, seed) => {
            let topics: Vec<_> = image.topics().topics().cloned().collect();
            if topics.is_empty() {
                return None;
            }
            let topic = &topics[index.index(topics.len())];
            let total = topic.partition_count() as i32 + n;
            create_partitions(image, &topic.name, total, *seed).ok()
        }
    }
}

/// Invariants of every image, and of every step from `before` to `after`.
fn check(
    before: &MetadataImage,
    after: &MetadataImage,
    op: &Op,
    offline: &OfflineReplicas,
) -> Result<(), TestCaseError> {
    let cluster = after.cluster();
    let mut leaders: BTreeMap<BrokerId, BTreeSet<TopicIdPartition>> = BTreeMap::new();
    for (tp, p) in after.topics().all_partitions() {
        prop_assert_eq!(p.invalid_reason(), None);
        // A replica in a failed directory never leads, is in no ELR, and stays in the ISR only
        // as the last remembered member of a leaderless partition.
        prop_assert!(
            !p.has_leader() || !offline.is_offline(after, p.leader, tp),
            "{:?} led by an offline replica after {:?}",
            p,
            op
        );
        // KIP-858: one assigned to a directory its broker does not have online neither (it
        // may stay in an ELR until its broker reports it, never to be elected from there).
        for &b in &p.isr {
            if after.replica_dir_offline(b, tp) {
                prop_assert!(
                    p.isr == vec![b] && !p.has_leader(),
                    "{:?} keeps {} with its directory offline after {:?}",
                    p,
                    b,
                    op
                );
            }
        }
        for &b in p.isr.iter().chain(&p.elr) {
            if offline.contains(b, tp) {
                prop_assert!(
                    p.isr == vec![b] && !p.has_leader(),
                    "{:?} keeps offline {} after {:?}",
                    p,
                    b,
                    op
                );
            }
        }
        if p.has_leader() {
            prop_assert!(
                cluster.is_unfenced(p.leader),
                "{:?} led by a fenced broker",
                p
            );
            leaders.entry(p.leader).or_default().insert(tp);
        }
        // A fenced broker is only ever the last remembered ISR member of an offline partition
        // (with ELR, never: it is kept in the ELR instead).
        let elr_on = controller::elr_enabled(after);
        for &b in &p.isr {
            if !cluster.is_unfenced(b) {
                prop_assert!(
                    p.isr == vec![b] && !p.has_leader() && !elr_on,
                    "{:?} keeps fenced {}",
                    p,
                    b
                );
            }
        }
        if !elr_on {
            prop_assert!(p.elr.is_empty() && p.last_known_elr.is_empty(), "{:?}", p);
        }
        let topic = after
            .topics()
            .topic(tp.topic_id)
            .expect("partition's topic");
        let unclean = unclean_election_enabled(after, &topic.name, &DEFAULTS);
        match before.topics().partition(tp) {
            Some(old) => {
                prop_assert!(p.leader_epoch >= old.leader_epoch);
                prop_assert!(p.partition_epoch >= old.partition_epoch);
                if p.leader != old.leader {
                    prop_assert!(p.leader_epoch > old.leader_epoch, "{:?} -> {:?}", old, p);
                }
                // A change of directories alone bumps no epoch.
                let without_dirs = |r: &PartitionRegistration| PartitionRegistration {
                    directories: BTreeMap::new(),
                    ..r.clone()
                };
                if without_dirs(p) != without_dirs(old) {
                    prop_assert!(
                        p.partition_epoch > old.partition_epoch,
                        "{:?} -> {:?}",
                        old,
                        p
                    );
                }
                // An AlterPartition that completes a reassignment may elect a replica it
                // has just added to the ISR: clean, from the ISR the leader asked for.
                // Replicas in a failed directory hold nothing readable: as if gone.
                let readable = |v: &[BrokerId]| -> Vec<BrokerId> {
                    v.iter()
                        .copied()
                        .filter(|&b| !offline.contains(b, tp))
                        .collect()
                };
                let (old_isr, mut old_elr) = (readable(&old.isr), readable(&old.elr));
                // A broker back from an unclean shutdown leaves the ELR: it may have lost what
                // made it eligible (then the last known leader may lead, KIP-966).
                if let Op::Restart(b) | Op::RestartWithoutDir(b, _) = op {
                    if !p.elr.contains(b) && !p.isr.contains(b) {
                        old_elr.retain(|e| e != b);
                    }
                }
                let clean_pool: Vec<BrokerId> =
                    if matches!(op, Op::Expand(_)) && old.is_reassigning() {
                        p.isr.clone()
                    } else if old_isr.is_empty() && old_elr.is_empty() {
                        // KIP-966: an empty ISR with no ELR is led by its last known leader.
                        old.last_known_elr.clone()
                    } else {
                        // The ISR, or its ELR once the ISR empties (in this step too).
                        old_isr.iter().chain(&old_elr).copied().collect()
                    };
                // Below min ISR only (checked where the partition changed).
                if p != old && elr_on && !p.elr.is_empty() {
                    let min_isr =
                        controller::elr_min_isr(after, &topic.name, p, &DEFAULTS).expect("ELR on");
                    prop_assert!(p.isr.len() < min_isr, "{:?} -> {:?}", old, p);
                }
                if p.has_leader() && p.leader != old.leader && !unclean {
                    prop_assert!(
                        clean_pool.contains(&p.leader),
                        "unclean {:?} -> {:?}",
                        old,
                        p
                    );
                }
                if p.has_leader() && !clean_pool.contains(&p.leader) {
                    // Unclean: only when nobody from the old ISR could lead.
                    prop_assert!(unclean);
                    prop_assert!(!old
                        .isr
                        .iter()
                        .any(|&b| cluster.is_unfenced(b) && !offline.is_offline(after, b, tp)));
                    prop_assert_eq!(&p.isr, &vec![p.leader]);
                }
            }
            None => {
                // New partitions: replicas only on brokers that were unfenced and not
                // cordoned (KIP-1066).
                for &r in &p.replicas {
                    prop_assert!(before.cluster().is_unfenced(r), "{:?} after {:?}", p, op);
                    prop_assert!(!before.cluster().is_cordoned(r), "{:?} after {:?}", p, op);
                }
                prop_assert_eq!(&p.isr, &p.replicas);
            }
        }
    }
    let indexed: BTreeMap<BrokerId, BTreeSet<TopicIdPartition>> = after
        .topics()
        .leaders
        .iter()
        .map(|(b, set)| (*b, (**set).clone()))
        .collect();
    prop_assert_eq!(indexed, leaders, "leader index out of step");
    prop_assert_eq!(
        &decode_snapshot(&encode_snapshot(after)).expect("snapshot"),
        after
    );
    Ok(())
}

/// `local_changes` agrees with the difference between the two images, seen from `broker`.
fn check_local_changes(
    before: &MetadataImage,
    after: &MetadataImage,
    broker: BrokerId,
    changes: &LocalReplicaChanges,
) -> Result<(), TestCaseError> {
    for (tp, p) in after.topics().all_partitions() {
        let old = before.topics().partition(tp);
        // A change of directories alone is no local change.
        let changed = old.is_none_or(|o| {
            let mut o = o.clone();
            o.directories = p.directories.clone();
            o != *p
        });
        if changed && p.leader == broker {
            prop_assert_eq!(changes.leaders.get(&tp), Some(p));
        } else if changed && p.is_replica(broker) {
            prop_assert_eq!(changes.followers.get(&tp), Some(p));
        } else {
            prop_assert!(!changes.leaders.contains_key(&tp));
            prop_assert!(!changes.followers.contains_key(&tp));
        }
    }
    for (tp, old) in before.topics().all_partitions() {
        let gone = !after
            .topics()
            .partition(tp)
            .is_some_and(|p| p.is_replica(broker));
        prop_assert_eq!(
            changes.deletes.contains(&tp),
            old.is_replica(broker) && gone,
            "{:?} on {}",
            tp,
            broker
        );
    }
    for tp in changes.leaders.keys().chain(changes.followers.keys()) {
        prop_assert!(after.topics().partition(*tp).is_some());
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_controller_histories_keep_the_invariants(
        ops in proptest::collection::vec(op_strategy(), 1..60),
        elr in any::<bool>(),
    ) {
        let mut image = cluster(BROKERS);
        if elr {
            image = apply(&image, &[MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE.to_string(),
                feature_level: 1,
            })]);
        }
        let mut incarnations = BTreeMap::new();
        let mut offline = OfflineReplicas::default();
        let mut log: Vec<MetadataRecord> = image.to_records();
        for (step, op) in ops.iter().enumerate() {
            let Some(records) = records_for(&image, op, step, &mut incarnations, &mut offline) else {
                continue;
            };
            // Through the Raft log's encoding, as a follower would receive them.
            let decoded = decode_batch(&encode_batch(&records)).expect("decodes");
            prop_assert_eq!(&decoded, &records);
            let mut delta = MetadataDelta::new(image.clone());
            delta.replay_all(&decoded).expect("controller records replay");
            let local: Vec<LocalReplicaChanges> =
                (1..=BROKERS).map(|b| delta.local_changes(b)).collect();
            let next = Arc::new(delta.apply(MetadataProvenance {
                offset: image.provenance().offset + records.len() as i64,
                epoch: 1,
            }));
            check(&image, &next, op, &offline)?;
            for (b, changes) in (1..=BROKERS).zip(&local) {
                check_local_changes(&image, &next, b, changes)?;
            }
            log.extend(records);
            image = next;
        }
        // Replaying the whole log from scratch gives the same state.
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta.replay_all(&log).expect("the log replays");
        prop_assert_eq!(delta.apply(image.provenance()), (*image).clone());
    }
}

#[test]
fn producer_id_blocks_never_overlap_and_survive_a_snapshot() {
    use crate::controller::{allocate_producer_ids, ProducerIdsBlock};
    let mut image = cluster(2);
    assert_eq!(image.next_producer_id(), 0);
    let (block, record) = allocate_producer_ids(&image, 1, 1).expect("allocate");
    assert_eq!(
        block,
        ProducerIdsBlock {
            first_producer_id: 0,
            size: PRODUCER_ID_BLOCK_SIZE
        }
    );
    image = apply(&image, &[record]);
    let (block, record) = allocate_producer_ids(&image, 2, 2).expect("allocate");
    assert_eq!(block.first_producer_id, PRODUCER_ID_BLOCK_SIZE);
    image = apply(&image, &[record]);
    assert_eq!(image.next_producer_id(), 2 * PRODUCER_ID_BLOCK_SIZE);

    // A replayed (stale) record cannot move the mark back.
    let mut delta = MetadataDelta::new(image.clone());
    let err = delta
        .replay(&MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 1,
            next_producer_id: PRODUCER_ID_BLOCK_SIZE,
        }))
        .expect_err("stale block");
    assert!(matches!(err, ReplayError::StaleProducerIds { .. }));

    // A snapshot keeps the mark.
    let bytes = encode_snapshot(&image);
    let restored = decode_snapshot(&bytes).expect("snapshot");
    assert_eq!(restored.next_producer_id(), 2 * PRODUCER_ID_BLOCK_SIZE);
}

#[test]
fn producer_ids_only_for_registered_unfenced_brokers_with_their_epoch() {
    use crate::controller::allocate_producer_ids;
    let image = cluster(2);
    assert!(matches!(
        allocate_producer_ids(&image, 9, 1),
        Err(ControllerError::BrokerNotRegistered(9))
    ));
    let err = allocate_producer_ids(&image, 1, 7).expect_err("stale epoch");
    assert_eq!(err.code(), code::STALE_BROKER_EPOCH);
    let fenced = apply(&image, &fence_broker(&image, 2, &DEFAULTS).expect("fence"));
    let err = allocate_producer_ids(&fenced, 2, 2).expect_err("fenced");
    assert_eq!(err.code(), code::BROKER_NOT_AVAILABLE);
}

#[test]
fn client_quotas_are_set_removed_and_kept_in_snapshots() {
    use crate::controller::alter_client_quota;
    let image = cluster(1);
    let client = |c: &str| ClientQuotaEntity {
        user: None,
        client_id: Some(QuotaEntityName::Named(c.into())),
        ip: None,
    };
    let default_client = ClientQuotaEntity {
        user: None,
        client_id: Some(QuotaEntityName::Default),
        ip: None,
    };
    // Keys and values are checked before anything is proposed.
    for (key, value) in [
        ("producer_byte_rate", 0.0),
        ("producer_byte_rate", 1.5),
        ("producer_byte_rate", f64::NAN),
        ("request_percentage", -3.0),
        ("bytes_per_fortnight", 10.0),
    ] {
        assert_eq!(
            alter_client_quota(&client("a"), key, Some(value)).map_err(|e| e.code()),
            Err(code::INVALID_REQUEST),
            "{key}={value}"
        );
    }
    let image = apply(
        &image,
        &[
            alter_client_quota(&client("a"), "producer_byte_rate", Some(1024.0)).expect("set"),
            alter_client_quota(&client("a"), "consumer_byte_rate", Some(2048.0)).expect("set"),
            alter_client_quota(&default_client, "request_percentage", Some(12.5)).expect("set"),
        ],
    );
    let quotas = image.client_quotas();
    assert_eq!(
        quotas.quota(&client("a"), "producer_byte_rate"),
        Some(1024.0)
    );
    assert_eq!(
        quotas.quota(&default_client, "request_percentage"),
        Some(12.5)
    );
    assert_eq!(quotas.quota(&client("b"), "producer_byte_rate"), None);
    // A snapshot keeps them.
    let restored = decode_snapshot(&encode_snapshot(&image)).expect("snapshot");
    assert_eq!(restored.client_quotas(), image.client_quotas());
    assert!(!restored.is_empty());
    // Removing a key keeps the others; removing the last removes the entity; removing a key
    // that is not set is a no-op.
    let image = apply(
        &image,
        &[
            alter_client_quota(&client("a"), "producer_byte_rate", None).expect("remove"),
            alter_client_quota(&default_client, "request_percentage", None).expect("remove"),
            alter_client_quota(&client("z"), "producer_byte_rate", None).expect("remove"),
        ],
    );
    let quotas = image.client_quotas();
    assert_eq!(quotas.quota(&client("a"), "producer_byte_rate"), None);
    assert_eq!(
        quotas.quota(&client("a"), "consumer_byte_rate"),
        Some(2048.0)
    );
    assert_eq!(
        quotas
            .entities()
            .map(|(e, _)| e.clone())
            .collect::<Vec<_>>(),
        vec![client("a")]
    );
}

/// Kafka's `FeatureLevelRecord`: the image keeps each feature's latest level (level 0 takes it
/// out of the finalized ones, and is kept as a disabled feature), and a snapshot keeps them.
#[test]
fn feature_levels_are_replayed_and_kept_in_snapshots() {
    let level = |feature_level| {
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: TRANSACTION_VERSION_FEATURE.to_string(),
            feature_level,
        })
    };
    let empty = Arc::new(MetadataImage::empty());
    assert_eq!(empty.feature_level(TRANSACTION_VERSION_FEATURE), None);
    let image = apply(&empty, &[level(1), level(2)]);
    assert_eq!(image.feature_level(TRANSACTION_VERSION_FEATURE), Some(2));
    assert!(!image.is_empty());
    let restored = decode_snapshot(&encode_snapshot(&image)).expect("snapshot");
    assert_eq!(
        restored.finalized_features().collect::<Vec<_>>(),
        vec![(TRANSACTION_VERSION_FEATURE, 2)]
    );
    let image = apply(&image, &[level(0)]);
    assert_eq!(image.feature_level(TRANSACTION_VERSION_FEATURE), None);
    // Disabled, and kept so through a snapshot: not finalized, but recorded.
    let restored = decode_snapshot(&encode_snapshot(&image)).expect("snapshot");
    assert_eq!(restored.finalized_features().count(), 0);
    assert!(restored.feature_recorded(TRANSACTION_VERSION_FEATURE));
}

fn upsertion(name: &str, mechanism: i8, iterations: i32) -> controller::ScramCredentialUpsertion {
    controller::ScramCredentialUpsertion {
        name: name.into(),
        mechanism,
        iterations,
        salt: b"salt-of-".iter().chain(name.as_bytes()).copied().collect(),
        salted_password: vec![mechanism.unsigned_abs(); 32],
    }
}

fn deletion(name: &str, mechanism: i8) -> controller::ScramCredentialDeletion {
    controller::ScramCredentialDeletion {
        name: name.into(),
        mechanism,
    }
}

/// The codes (and Kafka's messages) of an alteration, by user.
fn scram_outcomes(alteration: &controller::ScramAlteration) -> Vec<(String, i16, String)> {
    alteration
        .results
        .iter()
        .map(|(user, outcome)| match outcome {
            Ok(()) => (user.clone(), code::NONE, String::new()),
            Err(e) => (user.clone(), e.code(), e.to_string()),
        })
        .collect()
}

/// Kafka's `ScramControlManager.alterCredentials`: the stored and server keys come from the
/// salted password (which goes no further), the records replay, and a deletion removes.
#[test]
fn scram_credentials_are_derived_committed_and_deleted() {
    use crate::controller::alter_user_scram_credentials;
    let image = cluster(1);
    let alteration = alter_user_scram_credentials(
        &image,
        &[],
        &[upsertion("alice", 1, 8192), upsertion("bob", 2, 4096)],
    );
    assert_eq!(
        scram_outcomes(&alteration),
        vec![
            ("alice".into(), code::NONE, String::new()),
            ("bob".into(), code::NONE, String::new()),
        ]
    );
    let image = apply(&image, &alteration.records);
    let alice = image.scram().credential("alice", 1).expect("alice");
    let keys = ScramKeys::derive(ScramMechanism::Sha256, &[1; 32]);
    assert_eq!(alice.stored_key, keys.stored_key);
    assert_eq!(alice.server_key, keys.server_key);
    assert_eq!(alice.salt, b"salt-of-alice".to_vec());
    assert_eq!(alice.iterations, 8192);
    assert_eq!(image.scram().credential_infos("bob"), vec![(2, 4096)]);
    // Nothing in the records is the salted password.
    for record in &alteration.records {
        let MetadataRecord::UserScramCredential(r) = record else {
            panic!("{record:?}");
        };
        assert_ne!(r.stored_key, vec![r.mechanism.unsigned_abs(); 32]);
        assert_ne!(r.server_key, vec![r.mechanism.unsigned_abs(); 32]);
    }
    // Upserting again replaces; deleting removes.
    let alteration = alter_user_scram_credentials(
        &image,
        &[deletion("bob", 2)],
        &[upsertion("alice", 1, 4096)],
    );
    assert!(alteration.results.iter().all(|(_, r)| r.is_ok()));
    let image = apply(&image, &alteration.records);
    assert_eq!(image.scram().users().collect::<Vec<_>>(), vec!["alice"]);
    assert_eq!(image.scram().credential_infos("alice"), vec![(1, 4096)]);
    let restored = decode_snapshot(&encode_snapshot(&image)).expect("snapshot");
    assert_eq!(restored.scram(), image.scram());
}

/// Kafka's validation and error codes, user by user: a refused user does not stop the others,
/// and proposes nothing.
#[test]
fn scram_alterations_are_refused_as_kafka_refuses_them() {
    use crate::controller::alter_user_scram_credentials;
    let image = cluster(1);
    let image = apply(
        &image,
        &alter_user_scram_credentials(
            &image,
            &[],
            &[upsertion("carol", 1, 4096), upsertion("dave", 1, 4096)],
        )
        .records,
    );
    let alteration = alter_user_scram_credentials(
        &image,
        &[
            deletion("ghost", 1),
            deletion("carol", 2),
            deletion("", 1),
            deletion("zed", 0),
            deletion("dave", 1),
            deletion("dave", 1),
            deletion("carol", 1),
        ],
        &[
            upsertion("low", 1, 4095),
            upsertion("high", 2, 16385),
            upsertion("unknown", 3, 4096),
            upsertion("edge-low", 1, 4096),
            upsertion("edge-high", 2, 16384),
            // Kafka allows one alteration per user and request, whatever the mechanism.
            upsertion("twice", 1, 4096),
            upsertion("twice", 2, 4096),
            // A user already refused keeps its first error.
            upsertion("ghost", 1, 4096),
        ],
    );
    let duplicate = "A user credential cannot be altered twice in the same request";
    let missing = "Attempt to delete a user credential that does not exist";
    let want: Vec<(String, i16, String)> = [
        ("ghost", code::RESOURCE_NOT_FOUND, missing),
        // carol's deletion of SHA-512 (which she lacks) then of SHA-256: refused, first error.
        ("carol", code::RESOURCE_NOT_FOUND, missing),
        (
            "",
            code::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty",
        ),
        (
            "zed",
            code::UNSUPPORTED_SASL_MECHANISM,
            "Unknown SCRAM mechanism",
        ),
        ("dave", code::DUPLICATE_RESOURCE, duplicate),
        ("low", code::UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
        ("high", code::UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
        (
            "unknown",
            code::UNSUPPORTED_SASL_MECHANISM,
            "Unknown SCRAM mechanism",
        ),
        ("edge-low", code::NONE, ""),
        ("edge-high", code::NONE, ""),
        ("twice", code::DUPLICATE_RESOURCE, duplicate),
    ]
    .into_iter()
    .map(|(u, c, m)| (u.to_string(), c, m.to_string()))
    .collect();
    assert_eq!(scram_outcomes(&alteration), want);
    assert_eq!(code::UNSUPPORTED_SASL_MECHANISM, 33);
    assert_eq!(code::RESOURCE_NOT_FOUND, 91);
    assert_eq!(code::DUPLICATE_RESOURCE, 92);
    assert_eq!(code::UNACCEPTABLE_CREDENTIAL, 93);
    // Only the two accepted users have records, and they replay.
    assert_eq!(alteration.records.len(), 2);
    let after = apply(&image, &alteration.records);
    assert_eq!(
        after.scram().users().collect::<Vec<_>>(),
        vec!["carol", "dave", "edge-high", "edge-low"]
    );
    // An empty salted password never reaches the key derivation.
    let mut empty = upsertion("e", 1, 4096);
    empty.salted_password.clear();
    let alteration = alter_user_scram_credentials(&image, &[], &[empty]);
    assert_eq!(
        alteration.results[0].1.as_ref().map_err(|e| e.code()),
        Err(code::UNACCEPTABLE_CREDENTIAL)
    );
    assert!(alteration.records.is_empty());
    // The salted password stays out of logs.
    let shown = format!("{:?}", upsertion("alice", 1, 4096));
    assert!(
        shown.contains("alice") && !shown.contains("[1, 1"),
        "{shown}"
    );
}

/// Kafka's AclControlManagerTest: CreateAcls validates each ACL, skips one that already
/// exists, and DeleteAcls removes every match once; the ACLs replay, survive a snapshot and
/// are removed by id.
#[test]
fn acls_are_created_deleted_and_kept_in_snapshots() {
    use crate::controller::{create_acls, delete_acls};
    let acl = |name: &str, pattern: PatternType, op: AclOperation| StandardAcl {
        resource_type: ResourceType::Topic,
        resource_name: name.to_string(),
        pattern_type: pattern,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission_type: AclPermissionType::Allow,
    };
    let mut next = 0u128;
    let mut new_id = || {
        next += 1;
        Uuid::from_u128(next)
    };
    let image = Arc::new(MetadataImage::empty());
    let read = acl("orders", PatternType::Literal, AclOperation::Read);
    let write = acl("ord", PatternType::Prefixed, AclOperation::Write);
    let invalid = acl("", PatternType::Literal, AclOperation::Read);
    let created = create_acls(
        &image,
        &[read.clone(), write.clone(), invalid, read.clone()],
        &mut new_id,
    );
    assert_eq!(created.records.len(), 2, "the repeat adds no record");
    assert!(created.results[0].is_ok() && created.results[1].is_ok() && created.results[3].is_ok());
    let refused = created.results[2].clone().expect_err("empty name");
    assert_eq!(refused.code(), code::INVALID_REQUEST);
    assert_eq!(refused.to_string(), "Resource name should not be empty");
    let image = apply(&image, &created.records);
    assert_eq!(image.acls().len(), 2);

    let again = create_acls(&image, std::slice::from_ref(&read), &mut new_id);
    assert!(again.records.is_empty() && again.results == vec![Ok(())]);

    let rebuilt = apply(&Arc::new(MetadataImage::empty()), &image.to_records());
    assert_eq!(rebuilt.acls(), image.acls());

    let match_orders = AclBindingFilter {
        resource_type: ResourceType::Topic,
        resource_name: Some("orders".into()),
        pattern_type: PatternType::Match,
        ..AclBindingFilter::any()
    };
    let unknown = AclBindingFilter {
        permission_type: AclPermissionType::Unknown,
        ..AclBindingFilter::any()
    };
    let deleted = delete_acls(&image, &[match_orders, unknown, AclBindingFilter::any()]);
    assert_eq!(deleted.records.len(), 2, "each ACL removed once");
    assert_eq!(deleted.results[0].as_ref().map(Vec::len), Ok(2));
    assert_eq!(
        deleted.results[1].as_ref().map_err(|e| e.code()),
        Err(code::INVALID_REQUEST)
    );
    assert_eq!(deleted.results[2].as_ref().map(Vec::len), Ok(2));
    let image = apply(&image, &deleted.records);
    assert!(image.acls().is_empty());

    let mut delta = MetadataDelta::new(image);
    assert_eq!(
        delta.replay(&deleted.records[0]),
        Err(ReplayError::UnknownAcl(Uuid::from_u128(1)))
    );
}

/// KIP-966's follow-ups: a lower `min.insync.replicas` (the topic's, or the cluster default it
/// follows) forgets the ELR of a led partition and keeps a leaderless one's; turning ELR off
/// forgets every ELR and gives an empty ISR its ELR (or last known leader) back as its ISR.
#[test]
fn min_isr_changes_and_elr_off_clear_the_elr() {
    let mut image = cluster(3);
    image = apply(
        &image,
        &[MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE.to_string(),
            feature_level: 1,
        })],
    );
    image = apply(
        &image,
        &create(&image, "led", 1, 1, 3, &[("min.insync.replicas", "2")]).expect("create"),
    );
    image = apply(
        &image,
        &create(&image, "dark", 2, 1, 3, &[]).expect("create"),
    );
    // "led": its leader alone in the ISR, the other two eligible. "dark" (the cluster
    // default, 1): leaderless, one eligible, another the last known leader.
    let set = |image: &Arc<MetadataImage>,
               id: u128,
               isr: Vec<i32>,
               leader: i32,
               elr: Vec<i32>,
               last: Vec<i32>| {
        apply(
            image,
            &[MetadataRecord::PartitionChange(PartitionChangeRecord {
                directories: None,
                topic_id: Uuid::from_u128(id),
                partition_id: 0,
                leader: Some(leader),
                isr: Some(isr),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                eligible_leader_replicas: Some(elr),
                last_known_elr: Some(last),
            })],
        )
    };
    let led = partition(&image, 1, 0);
    let others: Vec<i32> = led
        .replicas
        .iter()
        .copied()
        .filter(|&b| b != led.leader)
        .collect();
    image = set(
        &image,
        1,
        vec![led.leader],
        led.leader,
        others.clone(),
        vec![],
    );
    let dark = partition(&image, 2, 0);
    image = set(
        &image,
        2,
        vec![],
        NO_LEADER,
        vec![dark.replicas[1]],
        vec![dark.replicas[0]],
    );

    // Nothing to do for other configs.
    let other = alter_topic_config(&image, "led", "retention.ms", Some("1000")).expect("ok");
    assert!(controller::elr_follow_ups(&image, &[other]).is_empty());
    // The topic's own min ISR: "led" forgets its ELR.
    let lowered = alter_topic_config(&image, "led", "min.insync.replicas", Some("1")).expect("ok");
    let ups = controller::elr_follow_ups(&image, std::slice::from_ref(&lowered));
    assert_eq!(ups.len(), 1, "{ups:?}");
    let after = apply(&image, &[vec![lowered], ups].concat());
    assert!(partition(&after, 1, 0).elr.is_empty());
    // The cluster default: "dark" follows it but has no leader, so keeps its ELR.
    let default = alter_broker_config("", "min.insync.replicas", Some("2")).expect("ok");
    assert!(controller::elr_follow_ups(&image, &[default]).is_empty());

    // ELR off: every ELR goes; "dark" takes its ELR back as its ISR.
    let off = MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE.to_string(),
        feature_level: 0,
    });
    let ups = controller::elr_follow_ups(&image, std::slice::from_ref(&off));
    assert_eq!(ups.len(), 2, "{ups:?}");
    let after = apply(&image, &[vec![off], ups].concat());
    let led_after = partition(&after, 1, 0);
    assert_eq!((led_after.isr, led_after.elr), (vec![led.leader], vec![]));
    let dark_after = partition(&after, 2, 0);
    assert_eq!(
        (
            dark_after.isr,
            dark_after.elr,
            dark_after.last_known_elr,
            dark_after.leader
        ),
        (vec![dark.replicas[1]], vec![], vec![], NO_LEADER)
    );
}

/// Registers broker `id` anew (a new incarnation, epoch `epoch`) with log directories `dirs`,
/// and unfences it.
fn register_with_dirs(
    image: &Arc<MetadataImage>,
    id: BrokerId,
    epoch: i64,
    dirs: &[Uuid],
) -> Arc<MetadataImage> {
    let records = register_broker(
        image,
        &RegisterBroker {
            log_dirs: dirs.to_vec(),
            broker_id: id,
            incarnation_id: Uuid::from_u128(epoch as u128 * 100 + id as u128),
            broker_epoch: epoch,
            endpoints: endpoint(id),
            rack: None,
            clean_shutdown: true,
        },
        &DEFAULTS,
    )
    .expect("register");
    let image = apply(image, &records);
    let records = unfence_broker(&image, id, &DEFAULTS).expect("unfence");
    apply(&image, &records)
}

#[test]
fn log_directories_are_assigned_and_a_failed_one_is_remembered() {
    use crate::controller::{assign_replicas_to_dirs, take_dirs_offline, ReplicaAssignment};
    let (a, b, c) = (
        Uuid::from_u128(0xa0),
        Uuid::from_u128(0xb0),
        Uuid::from_u128(0xc0),
    );
    let mut image = Arc::new(MetadataImage::empty());
    image = register_with_dirs(&image, 1, 1, &[b, a]);
    image = register_with_dirs(&image, 2, 2, &[c]);
    image = register_with_dirs(&image, 3, 3, &[]);
    assert_eq!(image.cluster().broker(1).expect("1").log_dirs, vec![a, b]);
    let image = apply(&image, &create(&image, "t", 1, 3, 3, &[]).expect("create"));
    // A broker with one directory has its new replicas there at once; the others place them.
    for p in 0..3 {
        let reg = partition(&image, 1, p);
        assert_eq!(reg.directories, BTreeMap::from([(2, c)]), "{reg:?}");
    }
    let tp = |id: u128, p: i32| TopicIdPartition {
        topic_id: Uuid::from_u128(id),
        partition: p,
    };
    let assign = |tp, directory| ReplicaAssignment { tp, directory };
    let none = OfflineReplicas::default();
    let (records, results) = assign_replicas_to_dirs(
        &image,
        1,
        1,
        &[
            assign(tp(1, 0), a),
            assign(tp(1, 1), b),
            assign(tp(1, 2), b),
            assign(tp(9, 0), a),
            assign(tp(1, 7), a),
        ],
        &DEFAULTS,
        &none,
    )
    .expect("assign");
    assert_eq!(records.len(), 3, "{records:#?}");
    let codes: Vec<i16> = results
        .iter()
        .map(|r| r.as_ref().map_or(0, ControllerError::code))
        .collect();
    assert_eq!(
        codes,
        vec![
            0,
            0,
            0,
            code::UNKNOWN_TOPIC_ID,
            code::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    let mut delta = MetadataDelta::new(image.clone());
    delta.replay_all(&records).expect("replay");
    for broker in 1..=3 {
        assert_eq!(
            delta.local_changes(broker),
            LocalReplicaChanges::default(),
            "a directory is no replica change"
        );
    }
    let before = image.clone();
    let image = apply(&image, &records);
    for p in 0..3 {
        let (old, new) = (partition(&before, 1, p), partition(&image, 1, p));
        assert_eq!(
            (old.partition_epoch, old.leader_epoch),
            (new.partition_epoch, new.leader_epoch),
            "no epoch moves"
        );
        assert_eq!(new.directory(1), Some(if p == 0 { a } else { b }));
    }
    // The same again writes nothing; a stale epoch, or a broker that holds no replica, fails.
    let (again, _) =
        assign_replicas_to_dirs(&image, 1, 1, &[assign(tp(1, 0), a)], &DEFAULTS, &none)
            .expect("assign");
    assert!(again.is_empty());
    assert_eq!(
        assign_replicas_to_dirs(&image, 1, 7, &[assign(tp(1, 0), a)], &DEFAULTS, &none)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err(code::STALE_BROKER_EPOCH)
    );
    let image = with_solo(&image);
    let (_, results) =
        assign_replicas_to_dirs(&image, 2, 2, &[assign(tp(2, 0), c)], &DEFAULTS, &none)
            .expect("assign");
    assert_eq!(
        results[0].as_ref().map(ControllerError::code),
        Some(code::NOT_LEADER_OR_FOLLOWER)
    );
    let (records, _) =
        assign_replicas_to_dirs(&image, 1, 1, &[assign(tp(2, 0), b)], &DEFAULTS, &none)
            .expect("assign");
    let image = apply(&image, &records);

    // Directory b fails: the registration keeps a only, and b's replicas leave their ISRs.
    let records = take_dirs_offline(&image, 1, &[b], &DEFAULTS, &none).expect("offline");
    assert!(
        matches!(&records[0], MetadataRecord::BrokerRegistrationChange(r) if r.log_dirs == Some(vec![a])),
        "{records:#?}"
    );
    let image = apply(&image, &records);
    for p in [1, 2] {
        let reg = partition(&image, 1, p);
        assert!(!reg.isr.contains(&1) && reg.leader != 1, "{reg:?}");
        assert!(image.replica_dir_offline(1, tp(1, p)));
    }
    assert!(partition(&image, 1, 0).isr.contains(&1));
    assert!(!image.replica_dir_offline(1, tp(1, 0)));
    let solo = partition(&image, 2, 0);
    assert_eq!((solo.leader, solo.isr.clone()), (NO_LEADER, vec![1]));
    assert!(take_dirs_offline(&image, 1, &[b], &DEFAULTS, &none)
        .expect("again")
        .is_empty());
    // A snapshot keeps the directories and the registration's online ones.
    let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
    delta.replay_all(&image.to_records()).expect("snapshot");
    let restored = delta.apply(image.provenance());
    assert_eq!(restored.topics(), image.topics());
    assert_eq!(restored.cluster(), image.cluster());
    // No controller elects the offline replica, whatever it knows in memory: not an
    // election, not an unfence.
    assert_eq!(
        elect_leader(&image, tp(2, 0), Election::Online, &DEFAULTS).map_err(|e| e.code()),
        Err(code::ELIGIBLE_LEADERS_NOT_AVAILABLE)
    );
    // The broker restarts with b still missing: still offline. With b back, it leads again.
    let without_b = register_with_dirs(&image, 1, 10, &[a]);
    assert_eq!(partition(&without_b, 2, 0).leader, NO_LEADER);
    let with_b = register_with_dirs(&image, 1, 10, &[a, b]);
    assert_eq!(partition(&with_b, 2, 0).leader, 1);
    assert!(!with_b.replica_dir_offline(1, tp(2, 0)));
}

#[test]
fn directories_need_metadata_version_3_7_iv2() {
    use crate::controller::{assign_replicas_to_dirs, ReplicaAssignment};
    let a = Uuid::from_u128(0xa0);
    let mut image = Arc::new(MetadataImage::empty());
    image = apply(
        &image,
        &[MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: METADATA_VERSION_FEATURE.into(),
            feature_level: 16,
        })],
    );
    image = register_with_dirs(&image, 1, 1, &[a]);
    assert!(image.cluster().broker(1).expect("1").log_dirs.is_empty());
    let image = apply(&image, &create(&image, "t", 1, 1, 1, &[]).expect("create"));
    assert!(partition(&image, 1, 0).directories.is_empty());
    let assignment = ReplicaAssignment {
        tp: TopicIdPartition {
            topic_id: Uuid::from_u128(1),
            partition: 0,
        },
        directory: a,
    };
    assert_eq!(
        assign_replicas_to_dirs(
            &image,
            1,
            1,
            &[assignment],
            &DEFAULTS,
            &OfflineReplicas::default()
        )
        .map(|_| ())
        .map_err(|e| e.code()),
        Err(code::UNSUPPORTED_VERSION)
    );
}

/// KIP-612's `ip` quotas: an address (or the default) alone, `connection_creation_rate` only,
/// a whole positive INT; refused otherwise with Kafka's messages. Kept in snapshots.
#[test]
fn ip_quotas_take_a_connection_creation_rate_for_an_address() {
    use crate::controller::alter_client_quota;
    let image = cluster(1);
    let ip = |name: Option<&str>| ClientQuotaEntity {
        user: None,
        client_id: None,
        ip: Some(QuotaEntityName::from_option(name)),
    };
    let refused = |entity: &ClientQuotaEntity, key: &str, value: f64| {
        let e = alter_client_quota(entity, key, Some(value)).expect_err("refused");
        assert_eq!(e.code(), code::INVALID_REQUEST);
        e.to_string()
    };
    let with_user = ClientQuotaEntity {
        user: Some(QuotaEntityName::Named("u".into())),
        ..ip(Some("10.0.0.1"))
    };
    assert!(refused(&with_user, "connection_creation_rate", 5.0)
        .contains("IP entity shouldnot be combined with User or ClientId"));
    assert!(
        refused(&ip(Some("not an address")), "connection_creation_rate", 5.0)
            .contains("not an address is not a valid IP or resolvable host.")
    );
    // A host name (which the broker taking the request resolved) is taken as written.
    for host in ["localhost", "broker-1.example.com"] {
        alter_client_quota(&ip(Some(host)), "connection_creation_rate", Some(5.0))
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    for bad in ["-leading.example", "under_score", "a..b"] {
        assert!(refused(&ip(Some(bad)), "connection_creation_rate", 5.0)
            .contains("is not a valid IP or resolvable host."));
    }
    assert!(refused(&ip(Some("10.0.0.1")), "producer_byte_rate", 5.0)
        .contains("Invalid configuration key producer_byte_rate"));
    assert!(refused(&ip(None), "connection_creation_rate", 0.0)
        .contains("Quota connection_creation_rate must be greater than 0"));
    assert!(refused(&ip(None), "connection_creation_rate", 2.5)
        .contains("connection_creation_rate cannot be a fractional value."));
    assert!(refused(&ip(None), "connection_creation_rate", 3e9)
        .contains("Proposed value for connection_creation_rate is too large for an INT."));
    let user_rate = ClientQuotaEntity {
        user: Some(QuotaEntityName::Named("u".into())),
        client_id: None,
        ip: None,
    };
    assert_eq!(
        alter_client_quota(&user_rate, "connection_creation_rate", Some(1.0)).map_err(|e| e.code()),
        Err(code::INVALID_REQUEST),
        "not a user quota"
    );
    let image = apply(
        &image,
        &[
            alter_client_quota(&ip(Some("10.0.0.1")), "connection_creation_rate", Some(5.0))
                .expect("set"),
            alter_client_quota(&ip(Some("::1")), "connection_creation_rate", Some(7.0))
                .expect("set"),
            alter_client_quota(&ip(None), "connection_creation_rate", Some(100.0)).expect("set"),
        ],
    );
    let quotas = image.client_quotas();
    assert_eq!(
        quotas.quota(&ip(Some("10.0.0.1")), "connection_creation_rate"),
        Some(5.0)
    );
    assert_eq!(
        quotas.quota(&ip(None), "connection_creation_rate"),
        Some(100.0)
    );
    let restored = decode_snapshot(&encode_snapshot(&image)).expect("snapshot");
    assert_eq!(restored.client_quotas(), image.client_quotas());
    let image = apply(
        &image,
        &[alter_client_quota(&ip(Some("::1")), "connection_creation_rate", None).expect("remove")],
    );
    assert_eq!(
        image
            .client_quotas()
            .quota(&ip(Some("::1")), "connection_creation_rate"),
        None
    );
}
