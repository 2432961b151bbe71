//! Scenario tests of the coordinator, driven by a manual clock (`now_ms`), plus a property
//! test over random join/sync/heartbeat/leave/tick sequences that checks group invariants.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use crate::consumer_protocol::encode_subscription;
use crate::*;

const G: &str = "g";

struct H {
    c: GroupCoordinator,
    now: i64,
    next: u64,
    /// Every record the coordinator asked to append, in order (our `__consumer_offsets`).
    log: Vec<Record>,
}

fn responses(outs: &[Output]) -> Vec<(RequestId, Response)> {
    let mut v = Vec::new();
    for o in outs {
        match o {
            Output::Respond { request, response } => v.push((*request, response.clone())),
            Output::Append { then, .. } => v.extend(then.iter().cloned()),
        }
    }
    v
}

impl H {
    fn new() -> H {
        H::with(GroupConfig {
            member_id_seed: 42,
            ..GroupConfig::default()
        })
    }

    fn with(cfg: GroupConfig) -> H {
        H {
            c: GroupCoordinator::new(cfg),
            now: 0,
            next: 0,
            log: Vec::new(),
        }
    }

    fn rid(&mut self) -> RequestId {
        self.next += 1;
        RequestId(self.next)
    }

    fn run(&mut self, outs: Vec<Output>) -> Vec<(RequestId, Response)> {
        for o in &outs {
            if let Output::Append {
                records, partition, ..
            } = o
            {
                assert_eq!(*partition, partition_for_group(G, 50));
                self.log.extend(records.iter().cloned());
            }
        }
        responses(&outs)
    }

    fn join_req(
        &self,
        member_id: &str,
        instance: Option<&str>,
        topics: &[&str],
    ) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: G.into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 60_000,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: encode_subscription(topics),
            }],
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
        }
    }

    /// Sends a JoinGroup; returns (request id, all responses of the call).
    fn join(&mut self, req: JoinGroupRequest) -> (RequestId, Vec<(RequestId, Response)>) {
        let r = self.rid();
        let outs = self.c.join_group(r, req, self.now);
        (r, self.run(outs))
    }

    fn tick(&mut self, now: i64) -> Vec<(RequestId, Response)> {
        self.now = now;
        let outs = self.c.tick(now);
        self.run(outs)
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> (RequestId, Vec<(RequestId, Response)>) {
        let r = self.rid();
        let req = SyncGroupRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        let outs = self.c.sync_group(r, req, self.now);
        (r, self.run(outs))
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> i16 {
        let req = HeartbeatRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
        };
        self.c.heartbeat(&req, self.now).error_code
    }

    fn leave(&mut self, members: &[&str]) -> Vec<(RequestId, Response)> {
        let r = self.rid();
        let req = LeaveGroupRequest {
            group_id: G.into(),
            members: members
                .iter()
                .map(|m| MemberIdentity {
                    member_id: m.to_string(),
                    group_instance_id: None,
                })
                .collect(),
        };
        let outs = self.c.leave_group(r, req, self.now);
        self.run(outs)
    }

    fn commit(&mut self, member_id: &str, generation: i32, parts: &[(&str, i32, i64)]) -> Vec<i16> {
        let r = self.rid();
        let req = OffsetCommitRequest {
            group_id: G.into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            topics: parts
                .iter()
                .map(|(t, p, o)| OffsetCommitTopic {
                    name: t.to_string(),
                    partitions: vec![OffsetCommitPartition {
                        partition_index: *p,
                        committed_offset: *o,
                        committed_leader_epoch: 1,
                        committed_metadata: Some("meta".into()),
                    }],
                })
                .collect(),
        };
        let outs = self.c.commit_offsets(r, req, self.now);
        let resps = self.run(outs);
        match &resps[..] {
            [(id, Response::OffsetCommit(resp))] if *id == r => resp
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn fetch(&self, topic: &str, partition: i32) -> i64 {
        let resp = self.c.fetch_offsets(&OffsetFetchRequest {
            group_id: G.into(),
            topics: Some(vec![TopicPartitions {
                name: topic.into(),
                partitions: vec![partition],
            }]),
            require_stable: false,
        });
        resp.topics[0].partitions[0].committed_offset
    }

    /// MEMBER_ID_REQUIRED round trip; returns the new id and the parked join's request id.
    fn join_new(&mut self, topics: &[&str]) -> (String, RequestId) {
        let (r, resps) = self.join(self.join_req("", None, topics));
        let resp = join_of(&resps, r);
        assert_eq!(resp.error_code, code::MEMBER_ID_REQUIRED);
        let id = resp.member_id;
        let (r2, resps) = self.join(self.join_req(&id, None, topics));
        assert!(resps.iter().all(|(x, _)| *x != r2), "parked");
        (id, r2)
    }

    /// Two members through join and sync: returns (leader, follower, generation).
    fn stable_two(&mut self) -> (String, String, i32) {
        let (a, ra) = self.join_new(&["t1"]);
        self.now += 100;
        let (b, rb) = self.join_new(&["t2"]);
        let resps = self.tick(6_000);
        let ja = join_of(&resps, ra);
        let jb = join_of(&resps, rb);
        assert_eq!(ja.generation_id, jb.generation_id);
        let g = ja.generation_id;
        let (_, resps) = self.sync(
            &a,
            g,
            vec![(a.clone(), Bytes::from("A")), (b.clone(), Bytes::from("B"))],
        );
        assert_eq!(sync_of(&resps).assignment, Bytes::from("A"));
        let (_, resps) = self.sync(&b, g, vec![]);
        assert_eq!(sync_of(&resps).assignment, Bytes::from("B"));
        assert_eq!(self.c.group_state(G), Some(GroupState::Stable));
        (a, b, g)
    }
}

fn join_of(resps: &[(RequestId, Response)], r: RequestId) -> JoinGroupResponse {
    resps
        .iter()
        .find_map(|(id, resp)| match resp {
            Response::JoinGroup(j) if *id == r => Some(j.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join response for {r:?} in {resps:?}"))
}

fn sync_of(resps: &[(RequestId, Response)]) -> SyncGroupResponse {
    resps
        .iter()
        .find_map(|(_, resp)| match resp {
            Response::SyncGroup(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync response in {resps:?}"))
}

#[test]
fn two_members_join_sync_heartbeat() {
    let mut h = H::new();
    let (a, ra) = h.join_new(&["t1"]);
    h.now = 100;
    let (b, rb) = h.join_new(&["t2"]);
    // Initial delay (3 s) was extended once because b joined during it.
    assert!(h.tick(3_000).is_empty());
    let resps = h.tick(6_000);
    let ja = join_of(&resps, ra);
    let jb = join_of(&resps, rb);
    assert_eq!(ja.error_code, code::NONE);
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader, a);
    assert_eq!(jb.leader, a);
    assert_eq!(ja.protocol_name.as_deref(), Some("range"));
    let ids: Vec<_> = ja.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(ids, vec![a.clone(), b.clone()]);
    assert_eq!(ja.members[1].metadata, encode_subscription(&["t2"]));
    assert!(jb.members.is_empty());
    assert_eq!(h.c.group_state(G), Some(GroupState::CompletingRebalance));

    // Follower syncs first and is parked until the leader's assignment arrives.
    let (rbs, resps) = h.sync(&b, 1, vec![]);
    assert!(resps.is_empty());
    let (ras, resps) = h.sync(
        &a,
        1,
        vec![(a.clone(), "A".into()), (b.clone(), "B".into())],
    );
    assert_eq!(resps.len(), 2);
    for (id, resp) in &resps {
        let Response::SyncGroup(s) = resp else {
            panic!()
        };
        assert_eq!(s.error_code, code::NONE);
        let want = if *id == ras { "A" } else { "B" };
        assert!(*id == ras || *id == rbs);
        assert_eq!(s.assignment, Bytes::from(want));
    }
    assert_eq!(h.c.group_state(G), Some(GroupState::Stable));
    // The leader's sync persisted the group.
    let last = h.log.last().expect("group record");
    assert_eq!(
        RecordKey::decode(&last.key),
        Ok(RecordKey::Group { group: G.into() })
    );
    assert_eq!(h.heartbeat(&a, 1), code::NONE);
    assert_eq!(h.heartbeat(&b, 1), code::NONE);
    let d = h.c.describe_groups(&[G.into()]);
    assert_eq!(d[0].group_state, "Stable");
    assert_eq!(d[0].protocol_data, "range");
    assert_eq!(d[0].members[1].member_assignment, Bytes::from("B"));
    let l = h.c.list_groups(&["stable".into()]);
    assert_eq!(l.len(), 1);
    assert!(h.c.list_groups(&["Empty".into()]).is_empty());
}

#[test]
fn member_id_required_round_trip_and_pending_expiry() {
    let mut h = H::new();
    let (r, resps) = h.join(h.join_req("", None, &["t"]));
    let resp = join_of(&resps, r);
    assert_eq!(resp.error_code, code::MEMBER_ID_REQUIRED);
    assert!(resp.member_id.starts_with("client-"));
    assert_eq!(resp.member_id.len(), "client-".len() + 36);
    // Ids are unique and deterministic for a seed.
    let (r2, resps) = h.join(h.join_req("", None, &["t"]));
    let other = join_of(&resps, r2).member_id;
    assert_ne!(other, resp.member_id);
    let mut h2 = H::new();
    let (r3, resps) = h2.join(h2.join_req("", None, &["t"]));
    assert_eq!(join_of(&resps, r3).member_id, resp.member_id);

    // The first one never comes back: the initial delay still completes on its own, and the
    // pending id expires after its session timeout.
    let (ra, _) = h.join(h.join_req(&other, None, &["t"]));
    assert_eq!(h.c.next_deadline(), Some(3_000));
    let resps = h.tick(3_000);
    assert_eq!(join_of(&resps, ra).error_code, code::NONE);
    assert_eq!(h.c.groups[G].pending_members.len(), 1);
    assert_eq!(h.c.next_deadline(), Some(10_000));
    h.tick(10_000);
    assert!(h.c.groups[G].pending_members.is_empty());
    // The expired id is now unknown.
    let (r, resps) = h.join(h.join_req(&resp.member_id, None, &["t"]));
    assert_eq!(join_of(&resps, r).error_code, code::UNKNOWN_MEMBER_ID);
    // An unknown member id on a known group.
    let (r, resps) = h.join(h.join_req("nobody", None, &["t"]));
    assert_eq!(join_of(&resps, r).error_code, code::UNKNOWN_MEMBER_ID);
}

#[test]
fn initial_rebalance_delay_is_capped_by_rebalance_timeout() {
    let mut h = H::new();
    let mut req = h.join_req("", None, &["t"]);
    req.require_known_member_id = false;
    req.rebalance_timeout_ms = 5_000;
    let (ra, resps) = h.join(req.clone());
    assert!(resps.is_empty());
    assert!(h.tick(2_999).is_empty());
    h.now = 1_000;
    let (rb, _) = h.join(req);
    // Extended by min(3000, 5000 - 3000) = 2000.
    assert!(h.tick(3_000).is_empty());
    assert!(h.tick(4_999).is_empty());
    let resps = h.tick(5_000);
    assert_eq!(join_of(&resps, ra).generation_id, 1);
    assert_eq!(join_of(&resps, rb).generation_id, 1);
}

#[test]
fn single_member_completes_after_initial_delay() {
    let mut h = H::new();
    let (_, ra) = h.join_new(&["t"]);
    assert!(h.tick(2_999).is_empty());
    let resps = h.tick(3_000);
    let j = join_of(&resps, ra);
    assert_eq!((j.error_code, j.generation_id), (code::NONE, 1));
    assert_eq!(j.members.len(), 1);
}

#[test]
fn session_timeout_removes_member_and_rebalances() {
    let mut h = H::new();
    let (a, b, g) = h.stable_two();
    // a keeps heartbeating, b goes silent.
    for t in [13_000, 19_000] {
        h.now = t;
        assert_eq!(h.heartbeat(&a, g), code::NONE);
    }
    let deadline = h.c.next_deadline().expect("b's session");
    assert!(deadline <= 16_000 + 1, "deadline {deadline}");
    h.tick(deadline);
    assert!(!h.c.groups[G].has(&b));
    assert_eq!(h.c.group_state(G), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&a, g), code::REBALANCE_IN_PROGRESS);
    let (ra, resps) = h.join(h.join_req(&a, None, &["t1"]));
    let j = join_of(&resps, ra);
    assert_eq!(j.generation_id, g + 1);
    assert_eq!(j.leader, a);
    assert_eq!(j.members.len(), 1);
    assert_eq!(h.heartbeat(&b, g), code::UNKNOWN_MEMBER_ID);
}

#[test]
fn batch_leave_then_survivor_rejoins() {
    let mut h = H::new();
    let (a, b, g) = h.stable_two();
    let resps = h.leave(&[&b, "ghost"]);
    let Response::LeaveGroup(l) = &resps[0].1 else {
        panic!()
    };
    assert_eq!(l.error_code, code::NONE);
    assert_eq!(l.members[0].error_code, code::NONE);
    assert_eq!(l.members[1].error_code, code::UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat(&a, g), code::REBALANCE_IN_PROGRESS);
    let (ra, resps) = h.join(h.join_req(&a, None, &["t1"]));
    let j = join_of(&resps, ra);
    assert_eq!((j.generation_id, j.leader.as_str()), (g + 1, a.as_str()));
    assert_eq!(j.members.len(), 1);
    let (_, resps) = h.sync(&a, g + 1, vec![(a.clone(), "all".into())]);
    assert_eq!(sync_of(&resps).assignment, Bytes::from("all"));
    // The last member leaving empties the group, and that is persisted.
    h.leave(&[&a]);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    let last = h.log.last().expect("record");
    let v = GroupMetadataValue::decode(last.value.as_deref().expect("value")).expect("decodes");
    assert!(v.members.is_empty());
    assert_eq!(v.generation, g + 2);
}

#[test]
fn static_member_rejoin_fences_old_id_without_rebalance() {
    let mut h = H::new();
    let (ra, _) = h.join(h.join_req("", Some("inst-a"), &["t"]));
    let (rb, _) = h.join(h.join_req("", Some("inst-b"), &["t"]));
    let resps = h.tick(6_000);
    let ja = join_of(&resps, ra);
    let jb = join_of(&resps, rb);
    let (a, b, g) = (ja.member_id, jb.member_id, ja.generation_id);
    h.sync(
        &a,
        g,
        vec![(a.clone(), "A".into()), (b.clone(), "B".into())],
    );
    h.sync(&b, g, vec![]);
    assert_eq!(h.c.group_state(G), Some(GroupState::Stable));

    // b restarts: same instance id, no member id.
    let (rb2, resps) = h.join(h.join_req("", Some("inst-b"), &["t"]));
    let jb2 = join_of(&resps, rb2);
    assert_eq!(jb2.error_code, code::NONE);
    assert_ne!(jb2.member_id, b);
    assert_eq!(jb2.generation_id, g, "no rebalance");
    assert_eq!(h.c.group_state(G), Some(GroupState::Stable));
    let b2 = jb2.member_id;
    let hb = |h: &mut H, m: &str| {
        h.c.heartbeat(
            &HeartbeatRequest {
                group_id: G.into(),
                generation_id: g,
                member_id: m.into(),
                group_instance_id: Some("inst-b".into()),
            },
            h.now,
        )
        .error_code
    };
    assert_eq!(hb(&mut h, &b), code::FENCED_INSTANCE_ID);
    assert_eq!(hb(&mut h, &b2), code::NONE);
    let (_, resps) = h.sync(&b2, g, vec![]);
    assert_eq!(sync_of(&resps).assignment, Bytes::from("B"));
    assert_eq!(h.heartbeat(&a, g), code::NONE);
}

#[test]
fn stale_generation_and_unknown_member() {
    let mut h = H::new();
    let (a, _b, g) = h.stable_two();
    assert_eq!(h.heartbeat(&a, g - 1), code::ILLEGAL_GENERATION);
    let (_, resps) = h.sync(&a, g + 5, vec![]);
    assert_eq!(sync_of(&resps).error_code, code::ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("nobody", g), code::UNKNOWN_MEMBER_ID);
    let (_, resps) = h.sync("nobody", g, vec![]);
    assert_eq!(sync_of(&resps).error_code, code::UNKNOWN_MEMBER_ID);
    let mut other = h.join_req(&a, None, &["t1"]);
    other.protocol_type = "connect".into();
    let (r, resps) = h.join(other);
    assert_eq!(
        join_of(&resps, r).error_code,
        code::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut bad = h.join_req("", None, &["t1"]);
    bad.session_timeout_ms = 1_000;
    let (r, resps) = h.join(bad);
    assert_eq!(join_of(&resps, r).error_code, code::INVALID_SESSION_TIMEOUT);
    // Heartbeat and join against a group that does not exist.
    let req = HeartbeatRequest {
        group_id: "none".into(),
        generation_id: 1,
        member_id: "x".into(),
        group_instance_id: None,
    };
    assert_eq!(h.c.heartbeat(&req, 0).error_code, code::UNKNOWN_MEMBER_ID);
}

#[test]
fn rebalance_in_progress_on_heartbeat_and_sync() {
    let mut h = H::new();
    let (a, b, g) = h.stable_two();
    let (_c, _rc) = h.join_new(&["t3"]);
    assert_eq!(h.c.group_state(G), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat(&a, g), code::REBALANCE_IN_PROGRESS);
    let (_, resps) = h.sync(&b, g, vec![]);
    assert_eq!(sync_of(&resps).error_code, code::REBALANCE_IN_PROGRESS);
    // Commits in PreparingRebalance still go through (Kafka relies on the heartbeat).
    assert_eq!(h.commit(&a, g, &[("t1", 0, 5)]), vec![code::NONE]);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut h = H::new();
    let (a, b, g) = h.stable_two();
    h.now = 7_000;
    let (c, rc) = h.join_new(&["t3"]);
    let (ra, resps) = h.join(h.join_req(&a, None, &["t1"]));
    assert!(resps.is_empty());
    // b keeps heartbeating (told to rejoin) but never does.
    for now in (12_000..67_000).step_by(5_000) {
        h.now = now;
        assert_eq!(h.heartbeat(&b, g), code::REBALANCE_IN_PROGRESS);
        assert!(h.tick(now).is_empty());
    }
    assert_eq!(h.c.next_deadline(), Some(67_000));
    let resps = h.tick(67_000);
    let ja = join_of(&resps, ra);
    let jc = join_of(&resps, rc);
    assert_eq!(ja.generation_id, g + 1);
    assert_eq!(jc.leader, a);
    let members: BTreeSet<_> = ja.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(members, BTreeSet::from([a.clone(), c.clone()]));
    assert_eq!(h.heartbeat(&b, g + 1), code::UNKNOWN_MEMBER_ID);
}

#[test]
fn sync_timeout_removes_members_that_never_sync() {
    let mut h = H::new();
    let (a, ra) = h.join_new(&["t1"]);
    let (b, _rb) = h.join_new(&["t2"]);
    let resps = h.tick(6_000);
    let g = join_of(&resps, ra).generation_id;
    h.sync(
        &a,
        g,
        vec![(a.clone(), "A".into()), (b.clone(), "B".into())],
    );
    // b got its join response and heartbeats, but never syncs.
    for now in (10_000..66_000).step_by(5_000) {
        h.now = now;
        assert_eq!(h.heartbeat(&a, g), code::NONE);
        assert_eq!(h.heartbeat(&b, g), code::NONE);
        h.tick(now);
    }
    assert!(h.c.groups[G].has(&b));
    h.tick(66_000);
    assert!(!h.c.groups[G].has(&b));
    assert_eq!(h.heartbeat(&a, g), code::REBALANCE_IN_PROGRESS);
}

#[test]
fn offsets_commit_fetch_and_validation() {
    let mut h = H::new();
    // Standalone commit creates an offsets-only group.
    assert_eq!(h.commit("", -1, &[("t", 0, 10)]), vec![code::NONE]);
    assert_eq!(h.fetch("t", 0), 10);
    assert_eq!(h.fetch("t", 1), -1);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    assert_eq!(h.c.list_groups(&[])[0].protocol_type, "");
    // Unknown group with a real generation: rejected.
    let r = h.rid();
    let outs = h.c.commit_offsets(
        r,
        OffsetCommitRequest {
            group_id: "other".into(),
            generation_id: 3,
            member_id: "m".into(),
            group_instance_id: None,
            topics: vec![OffsetCommitTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitPartition {
                    partition_index: 0,
                    committed_offset: 1,
                    committed_leader_epoch: -1,
                    committed_metadata: None,
                }],
            }],
        },
        0,
    );
    assert_eq!(responses(&outs)[0].1.error_code(), code::ILLEGAL_GENERATION);

    let (a, _b, g) = h.stable_two();
    assert_eq!(h.commit(&a, g, &[("t", 0, 20), ("t", 1, 21)]), vec![0, 0]);
    assert_eq!(h.fetch("t", 0), 20);
    // Standalone commits are refused while the group has members.
    assert_eq!(
        h.commit("", -1, &[("t", 0, 1)]),
        vec![code::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        h.commit(&a, g + 1, &[("t", 0, 1)]),
        vec![code::ILLEGAL_GENERATION]
    );
    assert_eq!(
        h.commit("ghost", g, &[("t", 0, 1)]),
        vec![code::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(h.fetch("t", 0), 20);

    // Metadata too large fails that partition only.
    let r = h.rid();
    let mk = |p: i32, meta: String| OffsetCommitPartition {
        partition_index: p,
        committed_offset: 99,
        committed_leader_epoch: 2,
        committed_metadata: Some(meta),
    };
    let req = OffsetCommitRequest {
        group_id: G.into(),
        generation_id: g,
        member_id: a.clone(),
        group_instance_id: None,
        topics: vec![OffsetCommitTopic {
            name: "t".into(),
            partitions: vec![mk(0, "x".repeat(4097)), mk(1, "x".repeat(4096))],
        }],
    };
    let outs = h.c.commit_offsets(r, req, h.now);
    let Response::OffsetCommit(resp) = &responses(&outs)[0].1 else {
        panic!()
    };
    let codes: Vec<i16> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![code::OFFSET_METADATA_TOO_LARGE, code::NONE]);
    h.run(outs);
    assert_eq!(h.fetch("t", 0), 20);
    assert_eq!(h.fetch("t", 1), 99);

    // Fetch everything.
    let all = h.c.fetch_offsets(&OffsetFetchRequest {
        group_id: G.into(),
        topics: None,
        require_stable: false,
    });
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions.len(), 2);
    assert_eq!(all.topics[0].partitions[1].committed_leader_epoch, 2);
}

#[test]
fn commit_during_completing_rebalance_is_rebalance_in_progress() {
    let mut h = H::new();
    let (a, ra) = h.join_new(&["t"]);
    let resps = h.tick(3_000);
    let g = join_of(&resps, ra).generation_id;
    assert_eq!(
        h.commit(&a, g, &[("t", 0, 1)]),
        vec![code::REBALANCE_IN_PROGRESS]
    );
}

/// Offsets the broker says to keep (a KIP-848 consumer group subscribed to their topic) do
/// not expire; the others of the same group do.
#[test]
fn offsets_kept_by_the_broker_do_not_expire() {
    let mut h = H::with(GroupConfig {
        offsets_retention_ms: 1_000_000,
        offsets_retention_check_interval_ms: 1_000,
        member_id_seed: 1,
        ..GroupConfig::default()
    });
    assert_eq!(h.commit("", -1, &[("t", 0, 10), ("u", 0, 20)]), vec![0, 0]);
    h.now = 2_000_000;
    let outs = h.c.tick_keeping(2_000_000, &|g, t| g == G && t == "t");
    h.run(outs);
    assert_eq!(h.fetch("t", 0), 10, "kept");
    assert_eq!(h.fetch("u", 0), -1, "expired");
    assert!(
        h.c.group_state(G).is_some(),
        "the group keeps its kept offsets"
    );
}

#[test]
fn offsets_expire_after_retention() {
    let mut h = H::with(GroupConfig {
        offsets_retention_ms: 1_000_000,
        offsets_retention_check_interval_ms: 1_000,
        member_id_seed: 1,
        ..GroupConfig::default()
    });
    assert_eq!(h.commit("", -1, &[("t", 0, 10)]), vec![0]);
    h.tick(999_999);
    assert_eq!(h.fetch("t", 0), 10);
    h.tick(1_000_999);
    assert_eq!(h.fetch("t", 0), -1);
    assert_eq!(
        h.c.group_state(G),
        None,
        "empty group without offsets is removed"
    );
    let n = h.log.len();
    assert!(h.log[n - 2].value.is_none() && h.log[n - 1].value.is_none());

    // A consumer group: offsets count from when the group became Empty.
    let (a, ra) = h.join_new(&["t"]);
    let resps = h.tick(1_004_000);
    let g = join_of(&resps, ra).generation_id;
    h.sync(&a, g, vec![(a.clone(), "A".into())]);
    assert_eq!(h.commit(&a, g, &[("t", 0, 7)]), vec![0]);
    h.tick(3_000_000);
    assert_eq!(
        h.fetch("t", 0),
        7,
        "subscribed topic of a Stable group never expires"
    );
    h.leave(&[&a]);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    h.tick(3_999_000);
    assert_eq!(h.fetch("t", 0), 7);
    h.tick(4_001_000);
    assert_eq!(h.fetch("t", 0), -1);
}

#[test]
fn delete_groups_and_offsets() {
    let mut h = H::new();
    let (a, b, g) = h.stable_two();
    assert_eq!(
        h.commit(&a, g, &[("t1", 0, 1), ("other", 0, 2)]),
        vec![0, 0]
    );
    // OffsetDelete on a live consumer group: only unsubscribed topics.
    let r = h.rid();
    let outs = h.c.delete_offsets(
        r,
        OffsetDeleteRequest {
            group_id: G.into(),
            topics: vec![
                TopicPartitions {
                    name: "t1".into(),
                    partitions: vec![0],
                },
                TopicPartitions {
                    name: "other".into(),
                    partitions: vec![0],
                },
            ],
        },
        h.now,
    );
    let resps = h.run(outs);
    let Response::OffsetDelete(d) = &resps[0].1 else {
        panic!()
    };
    assert_eq!(
        d.topics[0].partitions[0].error_code,
        code::GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(d.topics[1].partitions[0].error_code, code::NONE);
    assert_eq!(h.fetch("other", 0), -1);
    assert_eq!(h.fetch("t1", 0), 1);

    let r = h.rid();
    let outs = h.c.delete_groups(r, &[G.into(), "missing".into()], h.now);
    let Response::DeleteGroups(d) = &h.run(outs)[0].1 else {
        panic!()
    };
    assert_eq!(d.results[0].error_code, code::NON_EMPTY_GROUP);
    assert_eq!(d.results[1].error_code, code::GROUP_ID_NOT_FOUND);

    h.leave(&[&a, &b]);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    let r = h.rid();
    let outs = h.c.delete_groups(r, &[G.into()], h.now);
    assert!(matches!(&outs[0], Output::Append { records, .. } if records.len() == 2));
    let Response::DeleteGroups(d) = &h.run(outs)[0].1 else {
        panic!()
    };
    assert_eq!(d.results[0].error_code, code::NONE);
    assert_eq!(h.c.group_state(G), None);
    assert_eq!(h.fetch("t1", 0), -1);
    assert_eq!(h.c.describe_groups(&[G.into()])[0].group_state, "Dead");
}

#[test]
fn replaying_the_log_restores_offsets_and_group() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, &[("gone", 0, 3)]), vec![0]);
    let r = h.rid();
    let outs = h.c.delete_offsets(
        r,
        OffsetDeleteRequest {
            group_id: G.into(),
            topics: vec![TopicPartitions {
                name: "gone".into(),
                partitions: vec![0],
            }],
        },
        h.now,
    );
    h.run(outs);
    let (a, b, g) = h.stable_two();
    assert_eq!(h.commit(&a, g, &[("t1", 0, 11), ("t2", 3, 12)]), vec![0, 0]);
    assert_eq!(h.commit(&a, g, &[("t1", 0, 13)]), vec![0]);

    let mut fresh = H::new();
    fresh.now = 50_000;
    let summary = fresh
        .c
        .load_partition(partition_for_group(G, 50), h.log.clone(), 50_000)
        .expect("log decodes");
    assert_eq!(summary.groups, 1);
    assert_eq!(summary.offsets, 2);
    assert_eq!(fresh.fetch("t1", 0), 13);
    assert_eq!(fresh.fetch("t2", 3), 12);
    assert_eq!(fresh.fetch("gone", 0), -1);
    assert_eq!(fresh.c.group_state(G), Some(GroupState::Stable));
    assert_eq!(fresh.heartbeat(&a, g), code::NONE);
    let (_, resps) = fresh.sync(&b, g, vec![]);
    assert_eq!(sync_of(&resps).assignment, Bytes::from("B"));
    let d = &fresh.c.describe_groups(&[G.into()])[0];
    assert_eq!(d.members.len(), 2);
    // Members that do not come back expire after their session timeout.
    fresh.now = 55_000;
    assert_eq!(fresh.heartbeat(&a, g), code::NONE);
    fresh.tick(60_000);
    assert!(!fresh.c.groups[G].has(&b));
    assert_eq!(fresh.c.group_state(G), Some(GroupState::PreparingRebalance));
    fresh.tick(65_000);
    assert_eq!(fresh.c.group_state(G), Some(GroupState::Empty));

    // Unloading answers nothing here (nothing parked) and drops the group.
    assert!(fresh
        .c
        .unload_partition(partition_for_group(G, 50))
        .is_empty());
    assert_eq!(fresh.c.group_state(G), None);

    // A corrupt record is an error, not a panic, and changes nothing.
    let bad = vec![Record {
        key: Bytes::from_static(&[0, 1, 0]),
        value: None,
    }];
    assert!(fresh.c.load_partition(0, bad, 0).is_err());
}

/// A consumer group that joined and left without committing is Empty with no offsets. After a
/// restart (replay into a fresh coordinator) it is still listed as Empty, as in Kafka, until the
/// first expiration check, one `offsets.retention.check.interval.ms` after the load.
#[test]
fn empty_group_without_offsets_survives_a_restart_until_the_expiration_check() {
    let cfg = GroupConfig {
        offsets_retention_ms: 1_000_000,
        offsets_retention_check_interval_ms: 600_000,
        member_id_seed: 7,
        ..GroupConfig::default()
    };
    let mut h = H::with(cfg.clone());
    let (a, ra) = h.join_new(&["t"]);
    let resps = h.tick(6_000);
    let g = join_of(&resps, ra).generation_id;
    h.sync(&a, g, vec![(a.clone(), "A".into())]);
    h.leave(&[&a]);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));

    let mut fresh = H::with(cfg);
    let load_at = 50_000;
    fresh
        .c
        .load_partition(partition_for_group(G, 50), h.log.clone(), load_at)
        .expect("log decodes");
    assert_eq!(fresh.c.group_state(G), Some(GroupState::Empty));
    // The broker ticks as soon as it starts: nothing may expire yet.
    assert_eq!(fresh.c.next_deadline(), Some(load_at + 600_000));
    fresh.tick(load_at);
    fresh.tick(load_at + 599_999);
    let listed = fresh.c.list_groups(&[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].group_id.as_str(), listed[0].group_state.as_str()),
        (G, "Empty")
    );
    assert_eq!(listed[0].protocol_type, "consumer");
    assert_eq!(fresh.c.describe_groups(&[G.into()])[0].group_state, "Empty");
    assert!(fresh.log.is_empty(), "no tombstone written at load");

    // The expiration check removes it (no offsets to keep it) and writes its tombstone.
    fresh.tick(load_at + 600_000);
    assert_eq!(fresh.c.group_state(G), None);
    assert!(fresh.c.list_groups(&[]).is_empty());
    assert_eq!(fresh.log.len(), 1);
    assert!(fresh.log[0].value.is_none());
}

// ---- property test --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(Op::Join),
        3 => (0..3usize).prop_map(Op::Sync),
        3 => (0..3usize).prop_map(Op::Heartbeat),
        1 => (0..3usize).prop_map(Op::Leave),
        2 => prop_oneof![(0..4_000i64), (0..70_000i64)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Default)]
struct Client {
    member_id: String,
    generation: i32,
    /// Member ids from the last join response if this client was the leader.
    leader_of: Vec<String>,
}

fn check_invariants(c: &GroupCoordinator, last_generation: &mut i32) {
    let Some(g) = c.groups.get(G) else {
        // Gone: an Empty group with no offsets left is deleted by the offsets retention check
        // (Kafka's `cleanupGroupMetadata`), and the next join creates it anew at generation 0.
        *last_generation = 0;
        return;
    };
    assert!(
        g.generation_id >= *last_generation,
        "generation went backwards"
    );
    *last_generation = g.generation_id;
    if g.members.is_empty() {
        assert_ne!(g.state, GroupState::Stable);
        assert_ne!(g.state, GroupState::CompletingRebalance);
    } else {
        let leader = g
            .leader_id
            .as_deref()
            .expect("a group with members has a leader");
        assert!(g.has(leader), "leader is a member");
        assert_ne!(g.state, GroupState::Empty);
    }
    let ids: BTreeSet<_> = g.members.iter().map(|m| &m.member_id).collect();
    assert_eq!(ids.len(), g.members.len(), "member ids unique");
    for m in &g.members {
        if m.awaiting_join.is_some() {
            assert_eq!(g.state, GroupState::PreparingRebalance);
        }
        if m.awaiting_sync.is_some() {
            assert_eq!(g.state, GroupState::CompletingRebalance);
        }
        if g.state == GroupState::Stable {
            assert_eq!(
                m.assignment_generation, g.generation_id,
                "stable member assigned"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_sequences_keep_group_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = H::new();
        let mut clients = vec![Client::default(); 3];
        let mut answered: BTreeSet<RequestId> = BTreeSet::new();
        let mut last_generation = 0;
        let mut learn = |clients: &mut Vec<Client>, resps: &[(RequestId, Response)],
                         joins: &[(usize, RequestId)]| {
            for (id, resp) in resps {
                assert!(answered.insert(*id), "request {id:?} answered twice");
                if let Response::JoinGroup(j) = resp {
                    if let Some((i, _)) = joins.iter().find(|(_, r)| r == id) {
                        let c = &mut clients[*i];
                        if j.error_code == code::MEMBER_ID_REQUIRED || j.error_code == code::NONE {
                            c.member_id = j.member_id.clone();
                        }
                        if j.error_code == code::NONE {
                            c.generation = j.generation_id;
                            c.leader_of = j.members.iter().map(|m| m.member_id.clone()).collect();
                        }
                        if j.error_code == code::UNKNOWN_MEMBER_ID {
                            c.member_id.clear();
                        }
                    }
                }
            }
        };
        let mut joins: Vec<(usize, RequestId)> = Vec::new();
        for op in ops {
            let resps = match op.clone() {
                Op::Join(i) => {
                    let req = h.join_req(&clients[i].member_id, None, &["t"]);
                    let (r, resps) = h.join(req);
                    joins.push((i, r));
                    resps
                }
                Op::Sync(i) => {
                    let c = clients[i].clone();
                    let assignments = c
                        .leader_of
                        .iter()
                        .map(|m| (m.clone(), Bytes::from(m.clone())))
                        .collect();
                    h.sync(&c.member_id, c.generation, assignments).1
                }
                Op::Heartbeat(i) => {
                    let code = h.heartbeat(&clients[i].member_id.clone(), clients[i].generation);
                    if code == code::UNKNOWN_MEMBER_ID {
                        clients[i].member_id.clear();
                    }
                    Vec::new()
                }
                Op::Leave(i) => {
                    let id = clients[i].member_id.clone();
                    clients[i] = Client::default();
                    if id.is_empty() { Vec::new() } else { h.leave(&[&id]) }
                }
                Op::Advance(ms) => {
                    let now = h.now + ms;
                    h.tick(now)
                }
            };
            learn(&mut clients, &resps, &joins);
            check_invariants(&h.c, &mut last_generation);
            if matches!(op, Op::Advance(_)) {
                // A tick leaves nothing overdue.
                let due = h.c.next_deadline();
                prop_assert!(due.is_none_or(|d| d > h.now), "overdue {due:?} at {}", h.now);
            }
        }
        // Everything parked is answered eventually if time runs on long enough.
        for step in 1..=20 {
            let now = h.now + step * 400_000;
            let resps = h.tick(now);
            learn(&mut clients, &resps, &joins);
            check_invariants(&h.c, &mut last_generation);
        }
        if let Some(g) = h.c.groups.get(G) {
            prop_assert!(g.members.iter().all(|m| m.awaiting_join.is_none()));
        }
    }
}

#[test]
fn committed_offsets_list_every_group_s_commits_with_its_members() {
    let mut h = H::new();
    assert!(h.c.committed_offsets().is_empty());
    assert_eq!(
        h.commit("", -1, &[("t", 1, 7), ("t", 0, 10), ("u", 0, 20)]),
        vec![0, 0, 0]
    );
    assert_eq!(
        h.c.committed_offsets(),
        vec![GroupOffsets {
            group_id: G.to_string(),
            members: 0,
            offsets: vec![("t".into(), 0, 10), ("t".into(), 1, 7), ("u".into(), 0, 20)],
        }]
    );
    let (_, _, generation) = h.stable_two();
    assert!(generation > 0);
    let listed = h.c.committed_offsets();
    assert_eq!(listed[0].members, 2);
}

fn deleted(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Kafka 4.4's `onTopicsDeleted`: a deleted topic's offsets (every partition) get tombstones,
/// the group's other offsets and its membership stay, and a replay of the log agrees.
#[test]
fn a_deleted_topic_s_offsets_are_tombstoned_and_stay_deleted_after_a_replay() {
    let mut h = H::with(GroupConfig {
        offsets_retention_check_interval_ms: 1_000,
        member_id_seed: 3,
        ..GroupConfig::default()
    });
    let (a, _b, g) = h.stable_two();
    assert_eq!(
        h.commit(&a, g, &[("t1", 0, 5), ("gone", 0, 6), ("gone", 2, 7)]),
        vec![0, 0, 0]
    );
    let outs =
        h.c.on_topics_deleted(&deleted(&["gone", "never-committed"]));
    let [Output::Append { records, then, .. }] = &outs[..] else {
        panic!("one append expected: {outs:?}")
    };
    assert!(then.is_empty());
    let keys: Vec<RecordKey> = records
        .iter()
        .map(|r| RecordKey::decode(&r.key).expect("key"))
        .collect();
    assert_eq!(
        keys,
        vec![
            RecordKey::Offset {
                group: G.into(),
                topic: "gone".into(),
                partition: 0
            },
            RecordKey::Offset {
                group: G.into(),
                topic: "gone".into(),
                partition: 2
            },
        ]
    );
    assert!(records.iter().all(|r| r.value.is_none()));
    h.run(outs);
    assert_eq!((h.fetch("gone", 0), h.fetch("gone", 2)), (-1, -1));
    assert_eq!(h.fetch("t1", 0), 5);
    assert_eq!(h.c.group_state(G), Some(GroupState::Stable));
    // Nothing left to delete: no append at all.
    assert!(h.c.on_topics_deleted(&deleted(&["gone"])).is_empty());
    // A Stable group keeps living without the offsets.
    h.tick(h.now + 5_000);
    assert_eq!(h.heartbeat(&a, g), code::NONE);

    let mut fresh = H::new();
    let summary = fresh
        .c
        .load_partition(partition_for_group(G, 50), h.log.clone(), h.now)
        .expect("log decodes");
    assert_eq!(summary.offsets, 1);
    assert_eq!((fresh.fetch("gone", 0), fresh.fetch("t1", 0)), (-1, 5));
}

/// An offsets-only group whose every offset was on the deleted topic is still listed (Empty,
/// no offsets) until the next expiration check removes it with a group tombstone, as Kafka's
/// `cleanupGroupMetadata` does; a group with members is never removed that way.
#[test]
fn an_empty_group_left_without_offsets_goes_at_the_next_expiration_check() {
    let mut h = H::with(GroupConfig {
        offsets_retention_check_interval_ms: 1_000,
        member_id_seed: 4,
        ..GroupConfig::default()
    });
    assert_eq!(
        h.commit("", -1, &[("gone", 0, 3), ("gone", 1, 4)]),
        vec![0, 0]
    );
    h.tick(100);
    let outs = h.c.on_topics_deleted(&deleted(&["gone"]));
    h.run(outs);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    assert_eq!(h.c.list_groups(&[]).len(), 1);
    let all = h.c.fetch_offsets(&OffsetFetchRequest {
        group_id: G.into(),
        topics: None,
        require_stable: false,
    });
    assert!(all.topics.is_empty(), "{all:?}");
    assert_eq!(h.c.next_deadline(), Some(1_100));
    h.tick(1_099);
    assert_eq!(h.c.group_state(G), Some(GroupState::Empty));
    let before = h.log.len();
    h.tick(1_100);
    assert_eq!(h.c.group_state(G), None);
    assert_eq!(h.log.len(), before + 1);
    assert_eq!(
        RecordKey::decode(&h.log[before].key).expect("key"),
        RecordKey::Group { group: G.into() }
    );
    assert!(h.log[before].value.is_none());
    // After a replay the group is gone too.
    let mut fresh = H::new();
    let summary = fresh
        .c
        .load_partition(partition_for_group(G, 50), h.log.clone(), h.now)
        .expect("log decodes");
    assert_eq!((summary.groups, summary.offsets), (0, 0));
}
