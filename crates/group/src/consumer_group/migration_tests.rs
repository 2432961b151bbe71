//! Behaviour tests of KIP-848 online migration in the consumer core: a classic group upgraded
//! when a consumer-protocol member joins, classic members' JoinGroup/SyncGroup/Heartbeat
//! inside a consumer group, their timeouts, the downgrade when the last consumer-protocol
//! member leaves, `group.consumer.migration.policy`, and reloads from the records.
//! Classic members are simulated as Kafka's Java consumer behaves: JoinGroup with the
//! partitions it owns (cooperative) in its subscription, SyncGroup, then heartbeats until
//! REBALANCE_IN_PROGRESS sends it back to JoinGroup.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::*;
use crate::api::{
    ClassicGroupSnapshot, ClassicMemberSnapshot, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, MemberIdentity, Output, Protocol, RequestId, Response, SyncGroupRequest,
};
use crate::consumer_protocol::{decode_assignment, encode_assignment, encode_subscription_with};
use crate::error::code;
use crate::records::Record;

const T: u128 = 0xA;

fn topics() -> TopicsImage {
    let mut t = TopicsImage::new();
    t.insert("t", TopicId::from_u128(T), 6);
    t
}

/// A consumer-protocol client that owns what its last assignment said, at once.
#[derive(Debug, Clone)]
struct Kip848 {
    member_id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
}

/// A classic (JoinGroup/SyncGroup) client: its member id, generation and owned partitions.
#[derive(Debug, Clone)]
struct Classic {
    member_id: String,
    generation: i32,
    owned: BTreeSet<i32>,
    instance_id: Option<String>,
}

struct H {
    c: ConsumerGroupCoordinator,
    topics: TopicsImage,
    log: Vec<Record>,
    now: i64,
    next: u64,
}

impl H {
    fn new() -> H {
        H::with(ConsumerGroupConfig::default())
    }

    fn with(config: ConsumerGroupConfig) -> H {
        H {
            c: ConsumerGroupCoordinator::new(config),
            topics: topics(),
            log: Vec::new(),
            now: 1_000,
            next: 0,
        }
    }

    fn group(&self) -> &ConsumerGroup {
        self.c.group("g").expect("the consumer group exists")
    }

    /// Runs outputs: appends go to the log; returns the single response.
    fn run(&mut self, outs: Vec<Output>) -> Response {
        let mut resps = Vec::new();
        for o in outs {
            match o {
                Output::Append {
                    partition,
                    records,
                    then,
                    ..
                } => {
                    assert_eq!(partition, self.c.partition_for("g"));
                    self.log.extend(records);
                    resps.extend(then.into_iter().map(|(_, r)| r));
                }
                Output::Respond { response, .. } => resps.push(response),
            }
        }
        assert_eq!(resps.len(), 1, "{resps:?}");
        resps.remove(0)
    }

    fn hb(&mut self, k: &mut Kip848) -> ConsumerGroupHeartbeatResponse {
        let req = ConsumerGroupHeartbeatRequest {
            api_version: 1,
            group_id: "g".into(),
            member_id: k.member_id.clone(),
            member_epoch: k.epoch,
            rebalance_timeout_ms: if k.epoch == 0 { 30_000 } else { -1 },
            subscribed_topic_names: (k.epoch == 0).then(|| vec!["t".to_string()]),
            topic_partitions: Some(
                (!k.owned.is_empty())
                    .then(|| HeartbeatTopicPartitions {
                        topic_id: TopicId::from_u128(T),
                        partitions: k.owned.iter().copied().collect(),
                    })
                    .into_iter()
                    .collect(),
            ),
            client_id: "kip848".into(),
            client_host: "/127.0.0.1".into(),
            ..ConsumerGroupHeartbeatRequest::default()
        };
        let r = self.c.heartbeat(&req, &self.topics, self.now);
        if let Some(a) = r.append {
            self.log.extend(a.records);
        }
        let resp = r.response;
        if resp.error_code == codes::NONE && k.epoch >= 0 {
            k.epoch = resp.member_epoch;
            if let Some(a) = &resp.assignment {
                k.owned = a.iter().flat_map(|t| t.partitions.clone()).collect();
            }
        }
        resp
    }

    fn leave_kip848(&mut self, k: &mut Kip848) {
        k.epoch = -1;
        let resp = self.hb(k);
        assert_eq!(resp.error_code, codes::NONE, "{resp:?}");
        k.owned.clear();
    }

    fn join_req(&self, m: &Classic) -> JoinGroupRequest {
        let owned: Vec<i32> = m.owned.iter().copied().collect();
        JoinGroupRequest {
            group_id: "g".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            member_id: m.member_id.clone(),
            group_instance_id: m.instance_id.clone(),
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "cooperative-sticky".into(),
                metadata: encode_subscription_with(1, &["t"], &[("t", &owned)]),
            }],
            client_id: "classic".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
        }
    }

    /// JoinGroup (with the MEMBER_ID_REQUIRED round trip for a new member): the code.
    fn join(&mut self, m: &mut Classic) -> i16 {
        self.next += 1;
        let req = self.join_req(m);
        let outs = self
            .c
            .classic_join(RequestId(self.next), &req, &self.topics, self.now);
        let Response::JoinGroup(resp) = self.run(outs) else {
            panic!("not a JoinGroup answer");
        };
        if resp.error_code == code::MEMBER_ID_REQUIRED {
            assert!(m.member_id.is_empty());
            m.member_id = resp.member_id;
            return self.join(m);
        }
        if resp.error_code == code::NONE {
            assert_eq!(resp.leader, "", "no leader in a consumer group");
            assert!(resp.members.is_empty());
            assert_eq!(resp.member_id, m.member_id);
            m.generation = resp.generation_id;
        }
        resp.error_code
    }

    /// SyncGroup: on success the member owns exactly what it was given.
    fn sync(&mut self, m: &mut Classic) -> i16 {
        let req = SyncGroupRequest {
            group_id: "g".into(),
            generation_id: m.generation,
            member_id: m.member_id.clone(),
            group_instance_id: m.instance_id.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("cooperative-sticky".into()),
            assignments: Vec::new(),
        };
        let resp = self.c.classic_sync(&req, &self.topics, self.now);
        if resp.error_code == code::NONE {
            let a = decode_assignment(&resp.assignment).expect("the assignment decodes");
            m.owned = a
                .into_iter()
                .filter(|(t, _)| t == "t")
                .flat_map(|(_, p)| p)
                .collect();
        }
        resp.error_code
    }

    fn heartbeat(&mut self, m: &Classic) -> i16 {
        let req = HeartbeatRequest {
            group_id: "g".into(),
            generation_id: m.generation,
            member_id: m.member_id.clone(),
            group_instance_id: m.instance_id.clone(),
        };
        self.c.classic_heartbeat(&req, self.now).error_code
    }

    fn leave_classic(&mut self, m: &Classic) -> Response {
        self.next += 1;
        let req = LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![MemberIdentity {
                member_id: m.member_id.clone(),
                group_instance_id: m.instance_id.clone(),
            }],
        };
        let outs = self
            .c
            .classic_leave(RequestId(self.next), &req, &self.topics);
        self.run(outs)
    }

    fn tick(&mut self, advance: i64) {
        self.now += advance;
        for a in self.c.tick(self.now, &self.topics) {
            self.log.extend(a.records);
        }
    }

    /// A fresh coordinator loaded from the log has the same groups (or none).
    fn assert_reload_equals_live(&self) {
        let mut other = ConsumerGroupCoordinator::new(self.c.config().clone());
        other
            .load_partition(self.c.partition_for("g"), self.log.clone(), self.now)
            .expect("the log decodes");
        assert_eq!(other.group("g"), self.c.group("g"));
    }

    /// A classic member as the Java client plays it: heartbeat; on REBALANCE_IN_PROGRESS
    /// join (owning what it owns, as a cooperative assignor does) and sync.
    fn classic_round(&mut self, m: &mut Classic) {
        let hb = self.heartbeat(m);
        if hb == code::REBALANCE_IN_PROGRESS {
            assert_eq!(self.join(m), code::NONE);
            let s = self.sync(m);
            assert!(
                s == code::NONE || s == code::REBALANCE_IN_PROGRESS,
                "sync answered {s}"
            );
        } else {
            assert_eq!(hb, code::NONE);
        }
    }
}

fn classic(id: &str) -> Classic {
    Classic {
        member_id: id.to_string(),
        generation: -1,
        owned: BTreeSet::new(),
        instance_id: None,
    }
}

fn kip848(id: &str) -> Kip848 {
    Kip848 {
        member_id: id.to_string(),
        epoch: 0,
        owned: BTreeSet::new(),
    }
}

/// Every partition owned at most once between the members (`all`: and each exactly once).
fn assert_owned(classics: &[&Classic], kip848s: &[&Kip848], all: bool) {
    let mut seen = BTreeSet::new();
    let owned = classics
        .iter()
        .flat_map(|c| c.owned.iter())
        .chain(kip848s.iter().flat_map(|k| k.owned.iter()));
    for p in owned {
        assert!(
            seen.insert(*p),
            "partition {p} owned twice: {classics:?} {kip848s:?}"
        );
    }
    if all {
        assert_eq!(
            seen.len(),
            6,
            "not every partition owned: {classics:?} {kip848s:?}"
        );
    }
}

/// The classic group "g" at generation 5 of members a (t-0..2) and b (t-3..5), as the classic
/// core's `snapshot_for_upgrade` gives it.
fn classic_snapshot() -> ClassicGroupSnapshot {
    let member = |id: &str, owned: &[i32]| ClassicMemberSnapshot {
        member_id: id.to_string(),
        group_instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 300_000,
        protocols: vec![Protocol {
            name: "cooperative-sticky".into(),
            metadata: encode_subscription_with(1, &["t"], &[("t", owned)]),
        }],
        assignment: encode_assignment(1, &[("t".to_string(), owned.to_vec())]),
    };
    ClassicGroupSnapshot {
        group_id: "g".into(),
        generation_id: 5,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("cooperative-sticky".into()),
        members: vec![member("a", &[0, 1, 2]), member("b", &[3, 4, 5])],
    }
}

/// An upgraded group: a and b classic members at generation 5 with their partitions.
fn upgraded(h: &mut H) -> (Classic, Classic) {
    let snapshot = classic_snapshot();
    h.c.can_upgrade(&snapshot).expect("the upgrade is allowed");
    let append =
        h.c.convert_from_classic(&snapshot, &h.topics, h.now)
            .expect("the classic group converts");
    h.log.extend(append.records);
    let a = Classic {
        generation: 5,
        owned: [0, 1, 2].into(),
        ..classic("a")
    };
    let b = Classic {
        generation: 5,
        owned: [3, 4, 5].into(),
        ..classic("b")
    };
    (a, b)
}

#[test]
fn an_upgrade_keeps_the_members_partitions_and_the_new_member_waits_for_revocations() {
    let mut h = H::new();
    let (mut a, mut b) = upgraded(&mut h);
    let g = h.group();
    assert_eq!(g.group_epoch(), 5);
    assert_eq!(g.assignment_epoch(), 5);
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    for (id, parts) in [("a", [0, 1, 2]), ("b", [3, 4, 5])] {
        let m = g.member(id).expect("converted");
        assert!(m.uses_classic_protocol());
        assert_eq!(m.member_epoch, 5);
        assert_eq!(m.state, MemberState::Stable);
        let want: BTreeSet<i32> = parts.into();
        assert_eq!(
            m.assigned_partitions.get(&TopicId::from_u128(T)),
            Some(&want)
        );
    }
    h.assert_reload_equals_live();
    // The converted members keep heartbeating at their generation.
    assert_eq!(h.heartbeat(&a), code::NONE);
    assert_eq!(h.heartbeat(&b), code::NONE);

    // A consumer-protocol member joins: the group epoch moves, it gets nothing yet.
    let mut c = kip848("c");
    let resp = h.hb(&mut c);
    assert_eq!(resp.error_code, codes::NONE, "{resp:?}");
    assert_eq!(h.group().group_epoch(), 6);
    assert!(c.owned.is_empty(), "c got partitions still owned: {c:?}");
    assert_owned(&[&a, &b], &[&c], true);

    // The classic members are told to rejoin, revoke first, and only then does c get the
    // partitions they released; never is a partition owned twice.
    for _ in 0..6 {
        h.classic_round(&mut a);
        assert_owned(&[&a, &b], &[&c], false);
        h.classic_round(&mut b);
        assert_owned(&[&a, &b], &[&c], false);
        let resp = h.hb(&mut c);
        assert_eq!(resp.error_code, codes::NONE, "{resp:?}");
        assert_owned(&[&a, &b], &[&c], false);
    }
    assert_owned(&[&a, &b], &[&c], true);
    assert_eq!((a.owned.len(), b.owned.len(), c.owned.len()), (2, 2, 2));
    assert_eq!(a.generation, 6, "generation = member epoch");
    assert_eq!(h.group().state(), ConsumerGroupState::Stable);
    h.assert_reload_equals_live();
}

#[test]
fn a_classic_member_joins_a_consumer_group_and_gets_partitions_only_once_released() {
    let mut h = H::new();
    let mut k = kip848("k");
    h.hb(&mut k);
    assert_eq!(k.owned.len(), 6);
    let epoch_before = h.group().group_epoch();

    let mut m = classic("");
    assert_eq!(h.join(&mut m), code::NONE);
    assert!(!m.member_id.is_empty(), "the coordinator named the member");
    let member = h.group().member(&m.member_id).expect("joined").clone();
    assert!(member.uses_classic_protocol());
    assert_eq!(h.group().group_epoch(), epoch_before + 1);
    assert_eq!(
        m.generation, member.member_epoch,
        "generation = member epoch"
    );
    // Every partition is still k's: the sync gives nothing, the heartbeat keeps it waiting.
    assert_eq!(h.sync(&mut m), code::NONE);
    assert!(m.owned.is_empty());
    assert_eq!(h.heartbeat(&m), code::NONE);
    // A stale generation is refused.
    let stale = Classic {
        generation: m.generation - 1,
        ..m.clone()
    };
    assert_eq!(h.heartbeat(&stale), code::ILLEGAL_GENERATION);
    assert_eq!(h.sync(&mut stale.clone()), code::ILLEGAL_GENERATION);

    // k is told to revoke half; until it says it did, the classic member waits.
    h.hb(&mut k);
    assert_eq!(k.owned.len(), 3);
    assert_eq!(h.heartbeat(&m), code::NONE);
    // k's next heartbeat releases them: the classic member is told to rejoin, gets them.
    h.hb(&mut k);
    assert_eq!(h.heartbeat(&m), code::REBALANCE_IN_PROGRESS);
    assert_eq!(h.join(&mut m), code::NONE);
    assert_eq!(h.sync(&mut m), code::NONE);
    assert_eq!(m.owned.len(), 3);
    assert_owned(&[&m], &[&k], true);
    assert_eq!(m.generation, h.group().group_epoch());
    assert_eq!(h.heartbeat(&m), code::NONE);
    h.assert_reload_equals_live();
}

#[test]
fn a_sync_after_the_group_moved_on_answers_rebalance_in_progress() {
    let mut h = H::new();
    let (mut a, b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    // a's generation is behind the group epoch.
    assert_eq!(h.sync(&mut a), code::REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat(&b), code::REBALANCE_IN_PROGRESS);
    // A JoinGroup with another protocol type is refused, the member stays.
    let mut req = h.join_req(&a);
    req.protocol_type = "connect".into();
    let outs = h.c.classic_join(RequestId(99), &req, &h.topics, h.now);
    let Response::JoinGroup(resp) = h.run(outs) else {
        panic!("not a JoinGroup answer");
    };
    assert_eq!(resp.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    assert!(h.group().member("a").is_some());
}

#[test]
fn a_silent_classic_member_is_fenced_after_its_session_timeout() {
    let mut h = H::new();
    let (a, b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    // b and c keep heartbeating; a stays silent past its 45 s session.
    for _ in 0..5 {
        h.tick(10_000);
        h.heartbeat(&b);
        h.hb(&mut c);
    }
    assert!(h.group().member("a").is_none(), "a was fenced");
    assert!(h.group().member("b").is_some());
    assert_eq!(h.heartbeat(&a), code::UNKNOWN_MEMBER_ID);
    h.assert_reload_equals_live();
}

#[test]
fn a_classic_member_that_does_not_rejoin_in_its_rebalance_timeout_is_fenced() {
    let mut h = H::new();
    let (a, b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    // a heartbeats (so its session lives) but never rejoins after REBALANCE_IN_PROGRESS.
    assert_eq!(h.heartbeat(&a), code::REBALANCE_IN_PROGRESS);
    let mut b = b;
    for _ in 0..32 {
        h.tick(10_000);
        h.heartbeat(&a);
        h.classic_round(&mut b);
        h.hb(&mut c);
    }
    assert!(
        h.group().member("a").is_none(),
        "a was fenced by its join timeout"
    );
    assert!(h.group().member("b").is_some());
}

#[test]
fn the_last_consumer_protocol_member_leaving_downgrades_the_group() {
    let mut h = H::new();
    let (mut a, mut b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    for _ in 0..6 {
        h.classic_round(&mut a);
        h.classic_round(&mut b);
        h.hb(&mut c);
    }
    assert_eq!(c.owned.len(), 2);
    let epoch = h.group().group_epoch();
    assert!(h.c.take_downgrades().is_empty());
    h.leave_kip848(&mut c);
    assert!(h.c.group("g").is_none(), "the consumer group is gone");
    let downgrades = h.c.take_downgrades();
    assert_eq!(downgrades.len(), 1);
    let d = &downgrades[0];
    assert_eq!(d.group_id, "g");
    assert_eq!(d.generation_id, epoch + 1);
    assert_eq!(d.protocol_name.as_deref(), Some("cooperative-sticky"));
    let mut owned = BTreeSet::new();
    for m in &d.members {
        let decoded = decode_assignment(&m.assignment).expect("decodes");
        let mine: BTreeSet<i32> = decoded.into_iter().flat_map(|(_, p)| p).collect();
        let was = if m.member_id == "a" {
            &a.owned
        } else {
            &b.owned
        };
        assert_eq!(&mine, was, "{} keeps what it owns", m.member_id);
        owned.extend(mine);
        assert_eq!(m.session_timeout_ms, 45_000);
    }
    assert_eq!(
        owned.len(),
        4,
        "c's two partitions are free for the rebalance"
    );
    // The records carry every tombstone: a reload has no consumer group either.
    h.assert_reload_equals_live();
}

#[test]
fn the_last_classic_member_leaving_leaves_a_consumer_group() {
    let mut h = H::new();
    let (a, b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    let Response::LeaveGroup(resp) = h.leave_classic(&a) else {
        panic!("not a LeaveGroup answer");
    };
    assert_eq!(resp.members[0].error_code, code::NONE);
    h.leave_classic(&b);
    assert!(h.c.take_downgrades().is_empty());
    let g = h.group();
    assert_eq!(g.members().len(), 1);
    assert!(!g.member("c").expect("c stays").uses_classic_protocol());
    // An unknown member's leave is answered per member.
    let Response::LeaveGroup(resp) = h.leave_classic(&a) else {
        panic!("not a LeaveGroup answer");
    };
    assert_eq!(resp.members[0].error_code, code::UNKNOWN_MEMBER_ID);
    h.assert_reload_equals_live();
}

#[test]
fn the_migration_policy_decides_both_directions() {
    for (policy, upgrade, downgrade) in [
        (MigrationPolicy::Disabled, false, false),
        (MigrationPolicy::Downgrade, false, true),
        (MigrationPolicy::Upgrade, true, false),
        (MigrationPolicy::Bidirectional, true, true),
    ] {
        assert_eq!(MigrationPolicy::parse(policy.name()), Some(policy));
        let mut h = H::with(ConsumerGroupConfig {
            migration_policy: policy,
            ..ConsumerGroupConfig::default()
        });
        assert_eq!(
            h.c.can_upgrade(&classic_snapshot()).is_ok(),
            upgrade,
            "{policy:?}"
        );
        // A consumer group with a classic member (joined into it, which every policy
        // allows), then the consumer-protocol member leaves.
        let mut k = kip848("k");
        h.hb(&mut k);
        let mut m = classic("");
        assert_eq!(h.join(&mut m), code::NONE, "{policy:?}");
        h.leave_kip848(&mut k);
        let downgraded = !h.c.take_downgrades().is_empty();
        assert_eq!(downgraded, downgrade, "{policy:?}");
        assert_eq!(h.c.group("g").is_none(), downgrade, "{policy:?}");
        h.assert_reload_equals_live();
    }
    assert_eq!(MigrationPolicy::parse("sideways"), None);
}

#[test]
fn an_upgrade_is_refused_for_other_protocol_types_and_oversized_groups() {
    let h = H::with(ConsumerGroupConfig {
        max_size: 1,
        ..ConsumerGroupConfig::default()
    });
    assert!(h.c.can_upgrade(&classic_snapshot()).is_err());
    let h = H::new();
    let mut connect = classic_snapshot();
    connect.protocol_type = Some("connect".into());
    assert!(h.c.can_upgrade(&connect).is_err());
    // A member whose subscription does not decode: nothing changes.
    let mut h = H::new();
    let mut bad = classic_snapshot();
    bad.members[0].protocols[0].metadata = Bytes::from_static(b"\x00");
    assert!(h.c.convert_from_classic(&bad, &h.topics, h.now).is_err());
    assert!(h.c.group("g").is_none());
}

#[test]
fn a_mixed_group_survives_a_reload_with_its_classic_members() {
    let mut h = H::new();
    let (mut a, mut b) = upgraded(&mut h);
    let mut c = kip848("c");
    h.hb(&mut c);
    h.classic_round(&mut a);
    h.assert_reload_equals_live();
    let mut other = ConsumerGroupCoordinator::new(h.c.config().clone());
    other
        .load_partition(h.c.partition_for("g"), h.log.clone(), h.now)
        .expect("the log decodes");
    let m = other
        .group("g")
        .and_then(|g| g.member("a"))
        .expect("a reloaded");
    let meta = m.classic.as_ref().expect("still a classic member");
    assert_eq!(meta.session_timeout_ms, 45_000);
    assert_eq!(meta.supported_protocols[0].0, "cooperative-sticky");
    // The reloaded core keeps serving the classic members.
    h.c = other;
    for _ in 0..6 {
        h.classic_round(&mut a);
        h.classic_round(&mut b);
        h.hb(&mut c);
        assert_owned(&[&a, &b], &[&c], false);
    }
    assert_owned(&[&a, &b], &[&c], true);
}
