//! Whole-node tests: real TCP on 127.0.0.1, temp directories, short Raft timeouts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use gregor_metadata::{MetadataImage, MetadataRecord, TopicRecord};
use tokio::time::Instant;
use uuid::Uuid;

use crate::network::{Connection, Hello, TransportError};
use crate::{ControllerRpcHandler, MetadataQuorum, ProposeError, QuorumConfig, QuorumError};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Answers `"<this node> <- <sender>: <payload>"`.
pub(crate) struct Echo(pub(crate) u64);

impl ControllerRpcHandler for Echo {
    fn handle(&self, from: u64, payload: Bytes) -> BoxFuture<'static, Bytes> {
        let me = self.0;
        Box::pin(async move {
            Bytes::from(format!(
                "{me} <- {from}: {}",
                String::from_utf8_lossy(&payload)
            ))
        })
    }
}

/// The e2e harness's port picker: ports below the kernel's ephemeral range, so that a voter
/// restarted on its port never finds it taken by another test's outgoing connection.
#[path = "../../../tests/e2e/src/ports.rs"]
mod ports;

pub(crate) fn free_port() -> u16 {
    ports::reserve().port()
}

pub(crate) fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

pub(crate) fn config(
    id: u64,
    dir: &Path,
    port: u16,
    voters: &BTreeMap<u64, String>,
) -> QuorumConfig {
    let mut cfg = QuorumConfig::new(
        id,
        "test-cluster",
        dir,
        addr(port).parse().expect("socket address"),
        addr(port),
        voters.clone(),
    );
    cfg.heartbeat_ms = 50;
    cfg.election_timeout_min_ms = 150;
    cfg.election_timeout_max_ms = 300;
    cfg
}

async fn start(cfg: QuorumConfig) -> MetadataQuorum {
    let id = cfg.node_id;
    MetadataQuorum::start(cfg, Arc::new(Echo(id)))
        .await
        .expect("quorum starts")
}

/// Three voters (ids 1–3): their directories, ports and voter set.
pub(crate) struct Trio {
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    voters: BTreeMap<u64, String>,
}

impl Trio {
    pub(crate) fn new() -> Trio {
        let dirs = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = (0..3).map(|i| (i as u64 + 1, addr(ports[i]))).collect();
        Trio {
            dirs,
            ports,
            voters,
        }
    }

    /// Node `id`'s config.
    pub(crate) fn cfg(&self, id: u64) -> QuorumConfig {
        let i = (id - 1) as usize;
        config(id, self.dirs[i].path(), self.ports[i], &self.voters)
    }

    /// Node `id`'s quorum directory.
    fn dir(&self, id: u64) -> &std::path::Path {
        self.dirs[(id - 1) as usize].path()
    }

    /// The config of a learner (node `id`) of these voters, in `dir` on `port`.
    fn learner_cfg(&self, id: u64, dir: &std::path::Path, port: u16) -> QuorumConfig {
        config(id, dir, port, &self.voters)
    }

    /// Starts the three nodes, in id order.
    async fn start_all(&self) -> Vec<MetadataQuorum> {
        let mut nodes = Vec::new();
        for id in 1..=3 {
            nodes.push(start(self.cfg(id)).await);
        }
        nodes
    }
}

pub(crate) fn topic(i: u128) -> Vec<MetadataRecord> {
    vec![MetadataRecord::Topic(TopicRecord {
        name: format!("t{i}"),
        topic_id: Uuid::from_u128(i + 1),
    })]
}

pub(crate) fn topic_count(image: &MetadataImage) -> usize {
    image.topics().topics().count()
}

fn image_of(q: &MetadataQuorum) -> Arc<MetadataImage> {
    q.image().borrow().clone()
}

pub(crate) async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node names the same leader, which is one of them and says it leads.
pub(crate) async fn wait_leader(nodes: &[&MetadataQuorum]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leaders: Vec<Option<u64>> = nodes.iter().map(|n| n.state().leader).collect();
        if let Some(Some(l)) = leaders.first() {
            let agreed = leaders.iter().all(|x| *x == Some(*l));
            let leads = nodes
                .iter()
                .any(|n| n.node_id() == *l && n.state().role == "leader");
            if agreed && leads {
                return *l;
            }
        }
        assert!(Instant::now() < deadline, "no leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three started voters (`nodes`, ids 1 to 3) elect a leader; it commits a topic that every
/// node applies, and a follower's controller request reaches it ([`Echo`] answers). `how` says
/// over what, for a failure. Returns the leader's id.
pub(crate) async fn elect_commit_and_call(nodes: &[MetadataQuorum], how: &str) -> u64 {
    let refs: Vec<&MetadataQuorum> = nodes.iter().collect();
    let leader = wait_leader(&refs).await;
    by_id(nodes, leader)
        .propose(topic(1))
        .await
        .unwrap_or_else(|e| panic!("not committed {how}: {e:?}"));
    wait_for(
        "every node applies the topic",
        Duration::from_secs(5),
        || nodes.iter().all(|n| topic_count(&n.image().borrow()) == 1),
    )
    .await;
    let follower = nodes
        .iter()
        .find(|n| n.node_id() != leader)
        .expect("a follower");
    let reply = follower
        .call_controller(Bytes::from_static(b"hi"), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("a controller request {how} not answered: {e:?}"));
    assert_eq!(
        reply,
        format!("{leader} <- {}: hi", follower.node_id()).as_bytes()
    );
    leader
}

fn by_id(nodes: &[MetadataQuorum], id: u64) -> &MetadataQuorum {
    nodes
        .iter()
        .find(|n| n.node_id() == id)
        .expect("node with that id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_proposes_restarts_and_snapshots() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);

    let q = start(config(1, dir.path(), port, &voters)).await;
    assert_eq!(wait_leader(&[&q]).await, 1);
    let mut last = 0;
    for i in 0..5 {
        let index = q.propose(topic(i)).await.expect("propose");
        assert!(index > last);
        last = index;
        // Resolved after the local apply: the image already has it.
        assert_eq!(topic_count(&image_of(&q)), i as usize + 1);
    }
    assert_eq!(image_of(&q).provenance().offset, last as i64);
    // A batch that does not replay (a second topic named t0) is committed but skipped.
    match q.propose(topic(0)).await {
        Err(ProposeError::Rejected { index, .. }) => assert!(index > last),
        other => panic!("expected a rejected batch, got {other:?}"),
    }
    assert_eq!(topic_count(&image_of(&q)), 5);
    let before = image_of(&q);
    q.shutdown().await.expect("shutdown");

    // Torn tail: garbage after the last entry is cut on open.
    {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("log"))
            .expect("log file");
        log.write_all(b"\x00\x00\x01\x00garbage").expect("write");
    }

    // Restart: the committed log is replayed into the same image, and the one voter elects
    // itself without waiting out an election timeout.
    let started = Instant::now();
    let q = start(config(1, dir.path(), port, &voters)).await;
    assert_eq!(wait_leader(&[&q]).await, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_for("the replayed image", Duration::from_secs(5), || {
        *image_of(&q) == *before
    })
    .await;
    q.propose(topic(5)).await.expect("propose after restart");
    q.shutdown().await.expect("shutdown");

    // Snapshots every 10 entries: after 20 more there is one, and the log before it is gone.
    let mut cfg = config(1, dir.path(), port, &voters);
    cfg.snapshot_every = 10;
    let q = start(cfg.clone()).await;
    wait_leader(&[&q]).await;
    for i in 6..26 {
        q.propose(topic(i)).await.expect("propose");
    }
    wait_for(
        "a snapshot and a purged log",
        Duration::from_secs(5),
        || {
            let purged = crate::log_store::LogStore::first_index_on_disk(dir.path());
            dir.path().join("snapshot").exists() && purged.is_some_and(|first| first > 10)
        },
    )
    .await;
    let before = image_of(&q);
    assert_eq!(topic_count(&before), 26);
    q.shutdown().await.expect("shutdown");

    let q = start(cfg).await;
    wait_leader(&[&q]).await;
    wait_for(
        "the image from snapshot + log tail",
        Duration::from_secs(5),
        || *image_of(&q) == *before,
    )
    .await;
    q.shutdown().await.expect("shutdown");
}

/// Kafka's snapshot triggers: by the bytes of log since the last snapshot
/// (`metadata.log.max.record.bytes.between.snapshots`) and by its age
/// (`metadata.log.max.snapshot.interval.ms`); with neither due, the log is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_by_bytes_and_by_age() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let on_disk = || crate::log_store::LogStore::first_index_on_disk(dir.path());
    let mut cfg = config(1, dir.path(), port, &voters);
    cfg.snapshot_every = 1_000_000;
    cfg.snapshot_max_interval = None;

    // By bytes: 2,000 bytes of log, a few dozen small entries.
    cfg.snapshot_max_bytes = 2000;
    let q = start(cfg.clone()).await;
    wait_leader(&[&q]).await;
    let mut last = 0;
    for i in 0..30 {
        last = q.propose(topic(i)).await.expect("propose");
    }
    wait_for("a snapshot by bytes", Duration::from_secs(10), || {
        dir.path().join("snapshot").exists() && on_disk().is_none_or(|first| first > 10)
    })
    .await;
    q.shutdown().await.expect("shutdown");

    // Neither due: the entries stay in the log.
    cfg.snapshot_max_bytes = u64::MAX;
    let q = start(cfg.clone()).await;
    wait_leader(&[&q]).await;
    for i in 30..35 {
        last = q.propose(topic(i)).await.expect("propose");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = on_disk();
    assert!(
        kept.is_some_and(|first| first <= last),
        "no snapshot due, the log kept: first entry on disk {kept:?}, last {last}"
    );
    q.shutdown().await.expect("shutdown");

    // By age: a second after the last snapshot, with entries after it.
    cfg.snapshot_max_interval = Some(Duration::from_secs(1));
    let q = start(cfg).await;
    wait_leader(&[&q]).await;
    wait_for("a snapshot by age", Duration::from_secs(10), || {
        on_disk().is_none_or(|first| first > last)
    })
    .await;
    assert_eq!(topic_count(&image_of(&q)), 35);
    q.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_fail_over_and_catch_up() {
    init_tracing();
    let trio = Trio::new();
    let voters = &trio.voters;
    let mut nodes = trio.start_all().await;
    let all: Vec<&MetadataQuorum> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    for i in 0..3 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("propose");
    }
    wait_for(
        "every image to have 3 topics",
        Duration::from_secs(5),
        || nodes.iter().all(|n| topic_count(&image_of(n)) == 3),
    )
    .await;
    // A batch that does not replay is skipped by every node alike.
    assert!(matches!(
        by_id(&nodes, leader).propose(topic(1)).await,
        Err(ProposeError::Rejected { .. })
    ));
    let applied = by_id(&nodes, leader).state().last_log_index;
    wait_for(
        "every node to apply the whole log",
        Duration::from_secs(5),
        || nodes.iter().all(|n| n.state().last_applied == applied),
    )
    .await;
    let want = image_of(by_id(&nodes, leader));
    assert_eq!(topic_count(&want), 3);
    assert!(nodes.iter().all(|n| *image_of(n) == *want));
    let follower = nodes
        .iter()
        .find(|n| n.node_id() != leader)
        .expect("a follower");
    assert_eq!(
        follower.propose(topic(9)).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );
    let reply = follower
        .call_controller(Bytes::from_static(b"hello"), Duration::from_secs(5))
        .await
        .expect("controller call");
    assert_eq!(
        reply,
        format!("{leader} <- {}: hello", follower.node_id()).as_bytes()
    );
    let state = by_id(&nodes, leader).state();
    assert_eq!(&state.voters, voters);
    assert!(state.learners.is_empty());
    wait_for(
        "followers to match the leader's log",
        Duration::from_secs(5),
        || {
            let s = by_id(&nodes, leader).state();
            s.replication.len() == 2 && s.replication.keys().all(|id| s.lag(*id) == Some(0))
        },
    )
    .await;

    // The leader goes away: another one is elected and proposals continue.
    let old = leader;
    let pos = nodes
        .iter()
        .position(|n| n.node_id() == old)
        .expect("leader");
    let old_node = nodes.remove(pos);
    let failed_at = Instant::now();
    old_node.shutdown().await.expect("shutdown");
    let rest: Vec<&MetadataQuorum> = nodes.iter().collect();
    let leader = wait_leader(&rest).await;
    assert_ne!(leader, old);
    assert!(failed_at.elapsed() < Duration::from_secs(5));
    by_id(&nodes, leader)
        .propose(topic(3))
        .await
        .expect("propose on the new leader");
    let follower = nodes
        .iter()
        .find(|n| n.node_id() != leader)
        .expect("a follower");
    let reply = follower
        .call_controller(Bytes::from_static(b"again"), Duration::from_secs(5))
        .await
        .expect("controller call after the leader change");
    assert_eq!(
        reply,
        format!("{leader} <- {}: again", follower.node_id()).as_bytes()
    );

    // The old leader comes back and catches up to the same image.
    nodes.push(start(trio.cfg(old)).await);
    let want = image_of(by_id(&nodes, leader));
    assert_eq!(topic_count(&want), 4);
    wait_for("the old leader to catch up", Duration::from_secs(5), || {
        nodes.iter().all(|n| *image_of(n) == *want)
    })
    .await;
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// A voter restarted on an empty data dir (a replaced disk) has lost the log the leader knew
/// it held. The leader must take that in its stride: search the follower's log again from the
/// start and send it everything (openraft's `loosen-follower-log-revert`; without it the
/// leader's Raft core panics on the reverted progress), keep committing with the other voter
/// meanwhile, and the wiped voter ends with the same image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_restarted_on_an_empty_data_dir_catches_up_without_harming_the_leader() {
    init_tracing();
    let trio = Trio::new();
    let dirs = &trio.dirs;
    let mut nodes = trio.start_all().await;
    let all: Vec<&MetadataQuorum> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    for i in 0..5 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("propose");
    }
    wait_for(
        "followers to match the leader's log",
        Duration::from_secs(5),
        || {
            let s = by_id(&nodes, leader).state();
            s.replication.len() == 2 && s.replication.keys().all(|id| s.lag(*id) == Some(0))
        },
    )
    .await;

    let wiped = nodes
        .iter()
        .map(MetadataQuorum::node_id)
        .find(|id| *id != leader)
        .expect("a follower");
    let pos = nodes
        .iter()
        .position(|n| n.node_id() == wiped)
        .expect("follower");
    nodes.remove(pos).shutdown().await.expect("shutdown");
    let i = (wiped - 1) as usize;
    wipe(dirs[i].path());
    nodes.push(start(trio.cfg(wiped)).await);
    for i in 5..8 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("the leader keeps committing");
    }
    let want = image_of(by_id(&nodes, leader));
    assert_eq!(topic_count(&want), 8);
    wait_for(
        "the wiped voter to catch up",
        Duration::from_secs(10),
        || nodes.iter().all(|n| *image_of(n) == *want),
    )
    .await;
    by_id(&nodes, leader)
        .propose(topic(8))
        .await
        .expect("the leader is still healthy");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// Empties a node's directory (a replaced disk).
fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("wipe");
        } else {
            std::fs::remove_file(&path).expect("wipe");
        }
    }
}

/// The double fault Raft cannot survive on its own: records committed by the leader and one
/// follower W; W's disk is wiped and the leader dies; the other follower F, which missed those
/// records, asks W for its vote. A wiped voter's vote gate refuses until it has caught up with
/// a leader, so F cannot win with a log missing committed records: no leader until the old
/// leader returns, and then nothing committed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_voter_does_not_elect_a_leader_missing_committed_records() {
    init_tracing();
    let trio = Trio::new();
    let dirs = &trio.dirs;
    let cfg = |id: u64| trio.cfg(id);
    let mut nodes = trio.start_all().await;
    let all: Vec<&MetadataQuorum> = nodes.iter().collect();
    let leader = wait_leader(&all).await;
    for i in 0..3 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("propose");
    }
    wait_for(
        "every image to have 3 topics",
        Duration::from_secs(5),
        || nodes.iter().all(|n| topic_count(&image_of(n)) == 3),
    )
    .await;
    let mut followers = nodes
        .iter()
        .map(MetadataQuorum::node_id)
        .filter(|&id| id != leader);
    let (f, w) = (
        followers.next().expect("a follower"),
        followers.next().expect("another"),
    );

    // F stops; the leader and W commit three more topics.
    let take = |nodes: &mut Vec<MetadataQuorum>, id: u64| {
        let pos = nodes.iter().position(|n| n.node_id() == id).expect("node");
        nodes.remove(pos)
    };
    take(&mut nodes, f).shutdown().await.expect("shutdown");
    for i in 3..6 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("committed by the leader and W");
    }
    // W loses its disk, the leader dies.
    take(&mut nodes, w).shutdown().await.expect("shutdown");
    take(&mut nodes, leader).shutdown().await.expect("shutdown");
    wipe(dirs[(w - 1) as usize].path());

    // F and the wiped W: F must not win (it lacks topics 3..6), so no leader at all.
    nodes.push(start(cfg(f)).await);
    nodes.push(start(cfg(w)).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in &nodes {
        assert_ne!(
            n.state().role,
            "leader",
            "node {} leads without the committed records (F = {f}, wiped W = {w})",
            n.node_id()
        );
    }

    // The old leader returns: it wins (F votes for its longer log), W catches up and
    // opens its gate, and all six topics are there everywhere.
    nodes.push(start(cfg(leader)).await);
    let all: Vec<&MetadataQuorum> = nodes.iter().collect();
    let new_leader = wait_leader(&all).await;
    by_id(&nodes, new_leader)
        .propose(topic(6))
        .await
        .expect("propose after the return");
    wait_for(
        "every image to have 7 topics",
        Duration::from_secs(10),
        || nodes.iter().all(|n| topic_count(&image_of(n)) == 7),
    )
    .await;
    assert!(
        !dirs[(w - 1) as usize]
            .path()
            .join(crate::vote_gate::VOTE_GATE_MARKER)
            .exists(),
        "W caught up and votes again"
    );
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_follows_and_restarts() {
    init_tracing();
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let voters: BTreeMap<u64, String> = (0..3).map(|i| (i as u64 + 1, addr(ports[i]))).collect();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start(config(i as u64 + 1, dirs[i].path(), ports[i], &voters)).await);
    }
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    by_id(&nodes, leader)
        .propose(topic(0))
        .await
        .expect("propose");

    let learner = start(config(4, dirs[3].path(), ports[3], &voters)).await;
    wait_for(
        "the learner in the membership",
        Duration::from_secs(5),
        || by_id(&nodes, leader).state().learners == BTreeMap::from([(4, addr(ports[3]))]),
    )
    .await;
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("propose");
    wait_for("the learner's image", Duration::from_secs(5), || {
        topic_count(&image_of(&learner)) == 2
    })
    .await;
    let state = learner.state();
    assert_eq!(state.role, "learner");
    assert_eq!(state.voters, voters);
    assert_eq!(state.leader, Some(leader));
    assert_eq!(
        learner.propose(topic(9)).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );
    // The learner can reach the controller like any node.
    let reply = learner
        .call_controller(Bytes::from_static(b"hi"), Duration::from_secs(5))
        .await
        .expect("controller call");
    assert_eq!(reply, format!("{leader} <- 4: hi").as_bytes());

    // Restart: it is already a learner and keeps following.
    learner.shutdown().await.expect("shutdown");
    by_id(&nodes, leader)
        .propose(topic(2))
        .await
        .expect("propose");
    let learner = start(config(4, dirs[3].path(), ports[3], &voters)).await;
    wait_for(
        "the restarted learner's image",
        Duration::from_secs(5),
        || topic_count(&image_of(&learner)) == 3,
    )
    .await;
    assert_eq!(learner.state().role, "learner");

    // Without the voters the learner does not stand for election: it stays a learner.
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let state = learner.state();
    assert_eq!(state.role, "learner");
    assert_ne!(state.leader, Some(4));
    learner.shutdown().await.expect("shutdown");
}

/// A new cluster: every voter starts without a log, gate closed. The first leader never hears
/// from another leader; winning opens its gate (its marker goes), and the followers' open at
/// their first append. Then the first leader gone, the other two elect a leader, also with
/// the first leader back (before the fix its gate stayed closed: had it lost the leadership to
/// a voter whose appends it never got, and that voter died, nobody could be elected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_leader_of_a_new_cluster_opens_its_vote_gate() {
    init_tracing();
    let trio = Trio::new();
    let mut nodes = trio.start_all().await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    by_id(&nodes, leader)
        .propose(topic(0))
        .await
        .expect("propose");
    let marker = |id: u64| {
        trio.dir(id)
            .join(crate::vote_gate::VOTE_GATE_MARKER)
            .exists()
    };
    wait_for("every voter's gate open", Duration::from_secs(5), || {
        (1..=3).all(|id| !marker(id))
    })
    .await;
    // The first leader stops: the other two elect one of them.
    let i = nodes
        .iter()
        .position(|n| n.node_id() == leader)
        .expect("the leader");
    let first = nodes.remove(i);
    first.shutdown().await.expect("shutdown");
    let next = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    assert_ne!(next, leader);
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// A learner the leader removes (an unregistered broker) drops out of the membership; a voter
/// is not removed; still running, the learner asks to join again within REJOIN_INTERVAL, is a
/// learner again and gets the records written meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_learner_that_still_runs_joins_again() {
    init_tracing();
    let trio = Trio::new();
    let nodes = trio.start_all().await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let learner_dir = tempfile::tempdir().expect("tempdir");
    let learner = start(trio.learner_cfg(4, learner_dir.path(), free_port())).await;
    let learners = |nodes: &[MetadataQuorum]| by_id(nodes, leader).state().learners;
    by_id(&nodes, leader)
        .propose(topic(0))
        .await
        .expect("propose");
    wait_for("the learner follows", Duration::from_secs(5), || {
        learners(&nodes).contains_key(&4) && topic_count(&image_of(&learner)) == 1
    })
    .await;
    // Past the learner's first joins: it now asks only every REJOIN_INTERVAL.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other_voter = (1..=3).find(|&v| v != leader).expect("another voter");
    assert_eq!(
        by_id(&nodes, leader).remove_learner(other_voter).await,
        Ok(false),
        "a voter is not removed"
    );
    assert_eq!(
        by_id(&nodes, other_voter).remove_learner(4).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );
    assert_eq!(by_id(&nodes, leader).remove_learner(4).await, Ok(true));
    assert!(!learners(&nodes).contains_key(&4), "removed");
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("propose");
    wait_for(
        "the learner joins again and follows",
        crate::quorum::REJOIN_INTERVAL + Duration::from_secs(5),
        || learners(&nodes).contains_key(&4) && topic_count(&image_of(&learner)) == 2,
    )
    .await;
    assert_eq!(learner.state().role, "learner");
    learner.shutdown().await.expect("shutdown");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// Kafka's leader forgets an observer after five minutes without a fetch; gregor's removes a
/// learner that has not answered for its observer session timeout (2 s here), and only then:
/// a running learner stays, a stopped one goes, and it joins again when restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_that_stops_answering_is_removed_and_joins_again_when_back() {
    init_tracing();
    let timeout = Duration::from_secs(2);
    let trio = Trio::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut cfg = trio.cfg(id);
        cfg.observer_session_timeout = timeout;
        nodes.push(start(cfg).await);
    }
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let learner_dir = tempfile::tempdir().expect("tempdir");
    let learner_port = free_port();
    let learner = start(trio.learner_cfg(4, learner_dir.path(), learner_port)).await;
    let state = |nodes: &[MetadataQuorum]| by_id(nodes, leader).state();
    by_id(&nodes, leader)
        .propose(topic(0))
        .await
        .expect("propose");
    wait_for("the learner follows", Duration::from_secs(5), || {
        state(&nodes).learners.contains_key(&4) && topic_count(&image_of(&learner)) == 1
    })
    .await;

    // Running, it answers every heartbeat: past the timeout it is still there, last heard
    // from within a heartbeat or two.
    tokio::time::sleep(timeout * 2).await;
    let s = state(&nodes);
    assert!(s.learners.contains_key(&4), "a running learner stays");
    let age = crate::contacts::wall_ms() - s.last_answer_ms[&4];
    assert!((0..1_000).contains(&age), "last answer {age} ms ago");

    // Stopped: gone within the timeout and a sweep tick or two.
    learner.shutdown().await.expect("shutdown");
    wait_for(
        "the stopped learner is removed",
        timeout + Duration::from_secs(5),
        || !state(&nodes).learners.contains_key(&4),
    )
    .await;
    let silent = crate::contacts::wall_ms() - state(&nodes).last_answer_ms[&4];
    assert!(
        silent >= timeout.as_millis() as i64,
        "removed after {silent} ms of silence"
    );

    // Back: it joins again and follows.
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("propose");
    let learner = start(trio.learner_cfg(4, learner_dir.path(), learner_port)).await;
    wait_for(
        "the learner joins again and follows",
        crate::quorum::REJOIN_INTERVAL + Duration::from_secs(5),
        || state(&nodes).learners.contains_key(&4) && topic_count(&image_of(&learner)) == 2,
    )
    .await;
    learner.shutdown().await.expect("shutdown");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_voters_and_a_locked_directory_refuse_to_start() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let q = start(config(1, dir.path(), port, &voters)).await;
    wait_leader(&[&q]).await;
    q.propose(topic(0)).await.expect("propose");

    // Same directory, second quorum: the lock says no.
    let other_port = free_port();
    match MetadataQuorum::start(
        config(
            1,
            dir.path(),
            other_port,
            &BTreeMap::from([(1, addr(other_port))]),
        ),
        Arc::new(Echo(1)),
    )
    .await
    {
        Err(QuorumError::Locked(path)) => assert!(path.ends_with("lock")),
        other => panic!("expected a lock error, got {other:?}"),
    }
    q.shutdown().await.expect("shutdown");

    // The log says voters {1}; the config says {1, 2}.
    let more = BTreeMap::from([(1, addr(port)), (2, addr(free_port()))]);
    match MetadataQuorum::start(config(1, dir.path(), port, &more), Arc::new(Echo(1))).await {
        Err(e @ QuorumError::VoterMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("{1, 2}") && msg.contains("{1}"), "{msg}");
        }
        other => panic!("expected a voter mismatch, got {other:?}"),
    }
    // The directory belongs to node 1 of "test-cluster".
    let mut wrong_cluster = config(1, dir.path(), port, &voters);
    wrong_cluster.cluster_id = "another".into();
    match MetadataQuorum::start(wrong_cluster, Arc::new(Echo(1))).await {
        Err(e @ QuorumError::WrongDirectory { .. }) => {
            assert!(e.to_string().contains("\"another\""), "{e}")
        }
        other => panic!("expected a wrong-directory error, got {other:?}"),
    }
    let two = BTreeMap::from([(2, addr(port))]);
    assert!(matches!(
        MetadataQuorum::start(config(2, dir.path(), port, &two), Arc::new(Echo(2))).await,
        Err(QuorumError::WrongDirectory { stored_node: 1, .. })
    ));
    // The failed starts released the lock: the right config still starts.
    let q = start(config(1, dir.path(), port, &voters)).await;
    wait_leader(&[&q]).await;
    assert_eq!(topic_count(&image_of(&q)), 1);
    q.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refuses_another_cluster_a_stolen_node_id_and_other_voters() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let q = start(config(1, dir.path(), port, &voters)).await;
    let t = Duration::from_secs(2);
    let other_cluster = Hello {
        cluster_id: "other".into(),
        node_id: 7,
        voters: [1].into(),
    };
    let r = Connection::connect(&addr(port), &other_cluster, None, t, None).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("cluster id mismatch")),
        "{:?}",
        r.err()
    );
    let same_id = Hello {
        cluster_id: "test-cluster".into(),
        node_id: 1,
        voters: [1].into(),
    };
    let r = Connection::connect(&addr(port), &same_id, None, t, None).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("own id")),
        "{:?}",
        r.err()
    );
    let other_voters = Hello {
        cluster_id: "test-cluster".into(),
        node_id: 7,
        voters: [1, 2].into(),
    };
    let r = Connection::connect(&addr(port), &other_voters, None, t, None).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. }) if reason.contains("voter set mismatch")),
        "{:?}",
        r.err()
    );
    // Other voters and so (derived from them) another cluster id: the voters are named.
    let other_voters_and_cluster = Hello {
        cluster_id: "derived-from-other-voters".into(),
        node_id: 7,
        voters: [1, 2].into(),
    };
    let r = Connection::connect(&addr(port), &other_voters_and_cluster, None, t, None).await;
    assert!(
        matches!(&r, Err(TransportError::Refused { reason, .. })
            if reason.contains("voter set mismatch") && reason.contains("{1}") && reason.contains("{1, 2}")),
        "{:?}",
        r.err()
    );
    let good = Hello {
        cluster_id: "test-cluster".into(),
        node_id: 7,
        voters: [1].into(),
    };
    assert!(Connection::connect(&addr(port), &good, Some(1), t, None)
        .await
        .is_ok());
    let r = Connection::connect(&addr(port), &good, Some(2), t, None).await;
    assert!(matches!(
        r,
        Err(TransportError::WrongPeer { actual: 1, .. })
    ));
    q.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_voter_gets_the_snapshot() {
    init_tracing();
    let trio = Trio::new();
    let cfg = |i: usize| {
        let mut c = trio.cfg(i as u64 + 1);
        c.snapshot_every = 5;
        c
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start(cfg(i)).await);
    }
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let pos = nodes
        .iter()
        .position(|n| n.node_id() != leader)
        .expect("a follower");
    let lagging = nodes.remove(pos);
    let lagging_id = lagging.node_id();
    lagging.shutdown().await.expect("shutdown");
    for i in 0..20 {
        by_id(&nodes, leader)
            .propose(topic(i))
            .await
            .expect("propose");
    }
    let leader_dir = trio.dirs[(leader - 1) as usize].path();
    wait_for(
        "the leader to purge its log",
        Duration::from_secs(5),
        || {
            crate::log_store::LogStore::first_index_on_disk(leader_dir)
                .is_none_or(|first| first > 5)
        },
    )
    .await;
    let want = image_of(by_id(&nodes, leader));
    nodes.push(start(cfg((lagging_id - 1) as usize)).await);
    wait_for(
        "the lagging voter to install the snapshot",
        Duration::from_secs(5),
        || *image_of(by_id(&nodes, lagging_id)) == *want,
    )
    .await;
    assert!(trio.dirs[(lagging_id - 1) as usize]
        .path()
        .join("snapshot")
        .exists());
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// `gregor server` with no cluster flags: one voter on a port picked at bind time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_on_port_zero_leads_and_serves_itself() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let voters = BTreeMap::from([(1, "127.0.0.1:0".to_string())]);
    let q = start(config(1, dir.path(), 0, &voters)).await;
    assert_ne!(q.local_addr().port(), 0);
    let mut leadership = q.leadership();
    tokio::time::timeout(
        Duration::from_secs(2),
        leadership.wait_for(|l| *l == Some(1)),
    )
    .await
    .expect("leader within 2 s")
    .expect("leadership channel open");
    assert_eq!(q.leader(), Some(1));
    q.propose(topic(0)).await.expect("propose");
    let reply = q
        .call_controller(Bytes::from_static(b"self"), Duration::from_secs(1))
        .await
        .expect("local controller call");
    assert_eq!(reply, "1 <- 1: self".as_bytes());
    let state = q.state();
    assert_eq!((state.role, state.leader), ("leader", Some(1)));
    // Metrics trail the apply a little; the image does not.
    wait_for("metrics to show the apply", Duration::from_secs(2), || {
        let s = q.state();
        s.last_applied.is_some() && s.last_applied == s.last_log_index
    })
    .await;
    q.shutdown().await.expect("shutdown");
}

/// Answers every Kafka connection with its first request, reversed, then closes it.
struct KafkaMirror;

impl crate::KafkaConnectionHandler for KafkaMirror {
    fn serve(
        &self,
        mut stream: crate::QuorumStream,
        _peer: std::net::SocketAddr,
        first: Bytes,
    ) -> BoxFuture<'static, ()> {
        use futures::FutureExt;
        use tokio::io::AsyncWriteExt;
        async move {
            let mut reply: Vec<u8> = first.to_vec();
            reply.reverse();
            let _ = stream.write_all(&reply).await;
        }
        .boxed()
    }
}

/// A connection that opens with a Kafka request (a 0 byte after the length) goes to the
/// Kafka handler once one is set, and is closed before; quorum connections are unaffected.
#[tokio::test]
async fn kafka_requests_on_the_controller_listener_go_to_the_kafka_handler() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let voters = BTreeMap::from([(1, addr(port))]);
    let q = start(config(1, dir.path(), port, &voters)).await;
    // ApiVersions v3, correlation id 7: the api key's high byte is 0.
    let request = [0u8, 18, 0, 3, 0, 0, 0, 7];
    let exchange = |port: u16| async move {
        let mut s = tokio::net::TcpStream::connect(addr(port))
            .await
            .expect("connect");
        s.write_all(&(request.len() as u32).to_be_bytes())
            .await
            .expect("write");
        s.write_all(&request).await.expect("write");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .expect("answered or closed in time")
            .expect("read");
        got
    };
    assert!(exchange(port).await.is_empty(), "no handler: closed");
    assert!(q.serve_kafka(Arc::new(KafkaMirror)));
    assert!(!q.serve_kafka(Arc::new(KafkaMirror)), "set once");
    let mut mirrored = request.to_vec();
    mirrored.reverse();
    assert_eq!(exchange(port).await, mirrored);
    // The quorum's own connections still shake hands.
    let hello = Hello {
        cluster_id: "test-cluster".into(),
        node_id: 7,
        voters: [1].into(),
    };
    assert!(
        Connection::connect(&addr(port), &hello, Some(1), Duration::from_secs(2), None)
            .await
            .is_ok()
    );
    q.shutdown().await.expect("shutdown");
}

/// The e2e harness's link proxy: one direction of one link between two voters, which a test
/// can cut and heal.
#[path = "../../../tests/e2e/src/fault_proxy.rs"]
#[allow(dead_code)]
mod fault_proxy;

/// A voter cut off from the others for many election timeouts, then reconnected, does not
/// unseat the leader: its pre-votes fail while the others hear from the leader, so it never
/// raises its term, and the leader's appends reach it again as before (without pre-vote it
/// would come back with a higher term and force an election).
/// Three voters whose every link goes through a [`fault_proxy::LinkProxy`] (`links[(i, j)]`:
/// how node i reaches node j), each config tuned by `tune`.
struct LinkedTrio {
    _dirs: Vec<tempfile::TempDir>,
    links: BTreeMap<(u64, u64), fault_proxy::LinkProxy>,
    nodes: Vec<MetadataQuorum>,
}

impl LinkedTrio {
    async fn start(tune: impl Fn(&mut QuorumConfig)) -> LinkedTrio {
        use fault_proxy::LinkProxy;
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut links = BTreeMap::new();
        for i in 1..=3u64 {
            for j in 1..=3u64 {
                if i != j {
                    let upstream = addr(ports[(j - 1) as usize])
                        .parse()
                        .expect("socket address");
                    links.insert((i, j), LinkProxy::start(upstream));
                }
            }
        }
        let mut nodes = Vec::new();
        for i in 1..=3u64 {
            let voters: BTreeMap<u64, String> = (1..=3u64)
                .map(|j| {
                    let a = if i == j {
                        addr(ports[(j - 1) as usize])
                    } else {
                        links[&(i, j)].addr().to_string()
                    };
                    (j, a)
                })
                .collect();
            let mut cfg = config(
                i,
                dirs[(i - 1) as usize].path(),
                ports[(i - 1) as usize],
                &voters,
            );
            tune(&mut cfg);
            nodes.push(start(cfg).await);
        }
        LinkedTrio {
            _dirs: dirs,
            links,
            nodes,
        }
    }

    /// Sets every link to and from `node`.
    fn set_links_of(&self, node: u64, mode: fault_proxy::LinkMode) {
        for ((i, j), link) in &self.links {
            if *i == node || *j == node {
                link.set(mode);
            }
        }
    }
}

/// A voter cut off from the others for many election timeouts, then reconnected, does not
/// unseat the leader: its pre-votes fail while the others hear from the leader, so it never
/// raises its term, and the leader's appends reach it again as before (without pre-vote it
/// would come back with a higher term and force an election).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_cut_off_and_reconnected_does_not_unseat_the_leader() {
    use fault_proxy::LinkMode;
    init_tracing();
    let trio = LinkedTrio::start(|_| {}).await;
    let nodes = &trio.nodes;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let term = by_id(nodes, leader).state().term;
    let cut = (1..=3u64).find(|&i| i != leader).expect("a follower");
    let set = |mode: LinkMode| trio.set_links_of(cut, mode);
    set(LinkMode::Blackhole);
    // Election timeouts are 150-300 ms here: a dozen of them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        by_id(nodes, cut).state().term,
        term,
        "the cut-off voter raised its term"
    );
    set(LinkMode::Pass);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = by_id(nodes, cut).state();
        if s.leader == Some(leader) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reconnected voter follows {:?}",
            s.leader
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in nodes {
        let s = n.state();
        assert_eq!(
            (s.leader, s.term),
            (Some(leader), term),
            "node {} after the reconnection",
            s.node_id
        );
    }
    for n in trio.nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// The leader cut off (its links black holes: a pre-vote to it is never answered), the two
/// voters left elect one of them and keep it. A pre-vote round used to wait out the silent
/// voter, so a voter whose round began just before the other won stood on grants given before
/// that win and deposed the new leader, whose log it lagged; the two could go on like that
/// term after term (found by a CI failure of `controller_tls_reload`: no controller for 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_voters_left_beside_a_cut_off_leader_keep_the_one_they_elect() {
    use fault_proxy::LinkMode;
    init_tracing();
    for round in 0..4 {
        // The server's proportions (see the test below).
        let trio = LinkedTrio::start(|cfg| {
            cfg.heartbeat_ms = 100;
            cfg.election_timeout_min_ms = 400;
            cfg.election_timeout_max_ms = 500;
        })
        .await;
        let nodes = &trio.nodes;
        let old = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
        trio.set_links_of(old, LinkMode::Blackhole);
        let others: Vec<&MetadataQuorum> = nodes.iter().filter(|n| n.node_id() != old).collect();
        let new = wait_leader(&others).await;
        let term = by_id(nodes, new).state().term;
        // Ten election timeouts: the new leadership holds.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let s = by_id(nodes, new).state();
            assert_eq!(
                (s.role, s.term),
                ("leader", term),
                "round {round}: node {new} lost the leadership it won in term {term}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for n in trio.nodes {
            n.shutdown().await.expect("shutdown");
        }
    }
}

/// The two voters left when the leader goes elect one of them promptly, every time: each
/// grants the other's pre-vote once the lease has run out since it last heard from the dead
/// leader, whatever its own attempts (an earlier version restarted the grant clock at its own
/// attempts, and two survivors could refuse each other for as long as a test waited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_voters_left_elect_a_leader_promptly_every_time() {
    init_tracing();
    for round in 0..5 {
        let trio = Trio::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            // The server's proportions: a narrow random span (min = 4/5 of max), the heartbeat
            // a fifth of the election timeout.
            let mut cfg = trio.cfg(id);
            cfg.heartbeat_ms = 100;
            cfg.election_timeout_min_ms = 400;
            cfg.election_timeout_max_ms = 500;
            nodes.push(start(cfg).await);
        }
        let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
        let pos = nodes
            .iter()
            .position(|n| n.node_id() == leader)
            .expect("the leader");
        nodes.remove(pos).shutdown().await.expect("shutdown");
        let gone = Instant::now();
        let deadline = gone + Duration::from_secs(4);
        loop {
            let states: Vec<_> = nodes.iter().map(|n| n.state()).collect();
            if let Some(s) = states.iter().find(|s| s.role == "leader") {
                assert_ne!(s.node_id, leader);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no new leader 4 s after the old one went: {:?}",
                states
                    .iter()
                    .map(|s| (s.node_id, s.role, s.term))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for n in nodes {
            n.shutdown().await.expect("shutdown");
        }
    }
}

fn kraft_version(level: i16) -> Vec<MetadataRecord> {
    vec![MetadataRecord::FeatureLevel(
        gregor_metadata::FeatureLevelRecord {
            name: "kraft.version".into(),
            feature_level: level,
        },
    )]
}

fn voter_ids(q: &MetadataQuorum) -> Vec<u64> {
    q.state().voters.keys().copied().collect()
}

/// KIP-853 on three configured voters and a fourth node that joined as a learner: no change
/// at kraft.version 0; at 1 the learner becomes a voter, the leader removes itself and the
/// others elect a new one, the quorum of {the two others, 4} commits with one original voter
/// down, and restarts keep the log's voters over the configured ones (the removed voter
/// follows as a learner, the added one votes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_are_added_and_removed_at_kraft_version_1() {
    use crate::VoterChangeError;
    init_tracing();
    let trio = Trio::new();
    let mut nodes = trio.start_all().await;
    let first = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let dir4 = tempfile::tempdir().expect("tempdir");
    let port4 = free_port();
    const DIR4: &str = "AAAAAAAAAAAAAAAAAAAABA";
    let cfg4 = || {
        let mut cfg = trio.learner_cfg(4, dir4.path(), port4);
        cfg.directory_id = Some(DIR4.into());
        cfg
    };
    nodes.push(start(cfg4()).await);
    wait_for("4 joins as a learner", Duration::from_secs(5), || {
        by_id(&nodes, first).state().learners.contains_key(&4)
    })
    .await;
    // Its JOIN told its directory id.
    assert_eq!(
        by_id(&nodes, first).state().directory_ids,
        BTreeMap::from([(4, DIR4.to_string())])
    );
    let t = Duration::from_secs(10);

    // kraft.version 0: the configured voters, for good.
    assert_eq!(
        by_id(&nodes, first)
            .add_voter(4, &addr(port4), None, t)
            .await,
        Err(VoterChangeError::Unsupported {
            verb: "adding",
            level: 0
        })
    );
    by_id(&nodes, first)
        .propose(kraft_version(1))
        .await
        .expect("kraft.version 1");
    assert_eq!(by_id(&nodes, first).kraft_version(), 1);
    let follower = (1..=3).find(|&id| id != first).expect("a follower");
    assert!(matches!(
        by_id(&nodes, follower).add_voter(4, &addr(port4), None, t).await,
        Err(VoterChangeError::NotLeader { leader: Some(l) }) if l == first
    ));
    assert!(matches!(
        by_id(&nodes, first).add_voter(follower, "x:1", None, t).await,
        Err(VoterChangeError::Duplicate { id, .. }) if id == follower
    ));
    assert!(matches!(
        by_id(&nodes, first).remove_voter(4, None, t).await,
        Err(VoterChangeError::NotFound { id: 4, .. })
    ));

    // Another directory under id 4 is another replica.
    assert!(matches!(
        by_id(&nodes, first)
            .add_voter(4, &addr(port4), Some("AAAAAAAAAAAAAAAAAAAACA"), t)
            .await,
        Err(VoterChangeError::Invalid(_))
    ));
    by_id(&nodes, first)
        .add_voter(4, &addr(port4), Some(DIR4), t)
        .await
        .expect("4 added");
    wait_for("every node sees voters 1-4", Duration::from_secs(5), || {
        nodes.iter().all(|n| voter_ids(n) == vec![1, 2, 3, 4])
    })
    .await;
    wait_for("4 follows as a voter", Duration::from_secs(5), || {
        by_id(&nodes, 4).state().role == "follower"
    })
    .await;

    assert!(matches!(
        by_id(&nodes, first)
            .remove_voter(4, Some("AAAAAAAAAAAAAAAAAAAACA"), t)
            .await,
        Err(VoterChangeError::NotFound { id: 4, .. })
    ));

    // The leader removes itself; the other three elect a leader among them.
    by_id(&nodes, first)
        .remove_voter(first, None, t)
        .await
        .expect("the leader removed");
    let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&id| id != first).collect();
    let second = {
        let refs: Vec<&MetadataQuorum> = rest.iter().map(|&id| by_id(&nodes, id)).collect();
        wait_leader(&refs).await
    };
    assert_ne!(second, first);
    assert_eq!(voter_ids(by_id(&nodes, second)), rest);
    by_id(&nodes, second)
        .propose(topic(1))
        .await
        .expect("committed by the new voters");
    wait_for(
        "the removed voter still follows",
        Duration::from_secs(5),
        || topic_count(&image_of(by_id(&nodes, first))) == 1,
    )
    .await;
    assert_eq!(by_id(&nodes, first).state().role, "learner");

    // One original voter down: {the other original, 4} are two of three.
    let down = *rest
        .iter()
        .find(|&&id| id != 4 && id != second)
        .unwrap_or(&second);
    let i = nodes
        .iter()
        .position(|n| n.node_id() == down)
        .expect("node");
    nodes.remove(i).shutdown().await.expect("shutdown");
    let alive: Vec<u64> = rest.iter().copied().filter(|&id| id != down).collect();
    let third = {
        let refs: Vec<&MetadataQuorum> = alive.iter().map(|&id| by_id(&nodes, id)).collect();
        wait_leader(&refs).await
    };
    by_id(&nodes, third)
        .propose(topic(2))
        .await
        .expect("committed with 4's vote");

    // Restarts: the configured voters are still 1-3, the log's win.
    for id in [first, 4] {
        let i = nodes.iter().position(|n| n.node_id() == id).expect("node");
        nodes.remove(i).shutdown().await.expect("shutdown");
        let cfg = if id == 4 { cfg4() } else { trio.cfg(id) };
        nodes.push(start(cfg).await);
    }
    nodes.push(start(trio.cfg(down)).await);
    let refs: Vec<&MetadataQuorum> = rest.iter().map(|&id| by_id(&nodes, id)).collect();
    let leader = wait_leader(&refs).await;
    by_id(&nodes, leader)
        .propose(topic(3))
        .await
        .expect("committed after the restarts");
    wait_for("every node applies it", Duration::from_secs(5), || {
        nodes.iter().all(|n| topic_count(&image_of(n)) == 3)
    })
    .await;
    assert_eq!(by_id(&nodes, first).state().role, "learner");
    assert!(nodes.iter().all(|n| voter_ids(n) == rest));
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// A voter change whose request gave up half way (openraft's joint consensus is driven by its
/// caller: the joint membership appended, the final one never proposed) must not leave the
/// quorum joint for good: the leader completes it. Here the joint membership cannot commit
/// while two of the three voters are down, so the request times out; once they are back the
/// change completes, and the voters can be changed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_change_abandoned_half_way_is_completed() {
    use crate::VoterChangeError;
    init_tracing();
    let trio = Trio::new();
    let mut nodes = trio.start_all().await;
    let first = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let dir4 = tempfile::tempdir().expect("tempdir");
    let port4 = free_port();
    nodes.push(start(trio.learner_cfg(4, dir4.path(), port4)).await);
    wait_for("4 joins as a learner", Duration::from_secs(5), || {
        by_id(&nodes, first).state().learners.contains_key(&4)
    })
    .await;
    by_id(&nodes, first)
        .propose(kraft_version(1))
        .await
        .expect("kraft.version 1");
    wait_for("4 has caught up", Duration::from_secs(5), || {
        by_id(&nodes, 4)
            .image()
            .borrow()
            .feature_level("kraft.version")
            == Some(1)
    })
    .await;
    let others: Vec<u64> = (1..=3).filter(|&id| id != first).collect();
    for &id in &others {
        let i = nodes.iter().position(|n| n.node_id() == id).expect("node");
        nodes.remove(i).shutdown().await.expect("shutdown");
    }
    let refused = by_id(&nodes, first)
        .add_voter(4, &addr(port4), None, Duration::from_secs(1))
        .await;
    assert!(
        matches!(refused, Err(VoterChangeError::TimedOut(_))),
        "{refused:?}"
    );
    assert!(by_id(&nodes, first).membership_is_joint());
    for &id in &others {
        nodes.push(start(trio.cfg(id)).await);
    }
    wait_for(
        "the change completed everywhere",
        Duration::from_secs(10),
        || {
            nodes
                .iter()
                .all(|n| !n.membership_is_joint() && voter_ids(n) == vec![1, 2, 3, 4])
        },
    )
    .await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    by_id(&nodes, leader)
        .remove_voter(4, None, Duration::from_secs(10))
        .await
        .expect("4 removed again");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// A node that moved (restarted from the same data directory with another advertised
/// address, as a container on a new IP) is followed at its new address: a learner at once, a
/// voter added at run time too (Kafka's UpdateRaftVoter), and the log reaches it there. Another
/// directory under the same id at a new address does not take the node's place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_moved_is_followed_at_its_new_address() {
    init_tracing();
    let trio = Trio::new();
    let mut nodes = trio.start_all().await;
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    const DIR4: &str = "AAAAAAAAAAAAAAAAAAAABA";
    let dir4 = tempfile::tempdir().expect("tempdir");
    let cfg4 = |port: u16, directory: &str| {
        let mut cfg = trio.learner_cfg(4, dir4.path(), port);
        cfg.directory_id = Some(directory.into());
        cfg
    };
    let first_port = free_port();
    let learner = start(cfg4(first_port, DIR4)).await;
    let recorded = |nodes: &[MetadataQuorum]| {
        let s = by_id(nodes, leader).state();
        s.learners.get(&4).or(s.voters.get(&4)).cloned()
    };
    wait_for(
        "4 joins at its first address",
        Duration::from_secs(5),
        || recorded(&nodes) == Some(addr(first_port)),
    )
    .await;

    // The learner moves.
    learner.shutdown().await.expect("shutdown");
    let second_port = free_port();
    nodes.push(start(cfg4(second_port, DIR4)).await);
    wait_for(
        "the learner recorded at its new address",
        Duration::from_secs(10),
        || recorded(&nodes) == Some(addr(second_port)),
    )
    .await;
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("propose");
    wait_for("the moved learner applies", Duration::from_secs(5), || {
        topic_count(&image_of(by_id(&nodes, 4))) == 1
    })
    .await;

    // Made a voter, it moves again: the voters follow it there, and it votes from there.
    let t = Duration::from_secs(10);
    by_id(&nodes, leader)
        .propose(kraft_version(1))
        .await
        .expect("kraft.version 1");
    by_id(&nodes, leader)
        .add_voter(4, &addr(second_port), Some(DIR4), t)
        .await
        .expect("4 added");
    let moved = nodes.pop().expect("node 4");
    moved.shutdown().await.expect("shutdown");
    let third_port = free_port();
    nodes.push(start(cfg4(third_port, DIR4)).await);
    wait_for(
        "the voter recorded at its new address",
        Duration::from_secs(10),
        || by_id(&nodes, leader).state().voters.get(&4) == Some(&addr(third_port)),
    )
    .await;
    by_id(&nodes, leader)
        .propose(topic(2))
        .await
        .expect("propose");
    wait_for("the moved voter applies", Duration::from_secs(5), || {
        topic_count(&image_of(by_id(&nodes, 4))) == 2
    })
    .await;
    wait_for(
        "every node records the new address",
        Duration::from_secs(5),
        || {
            nodes
                .iter()
                .all(|n| n.state().voters.get(&4) == Some(&addr(third_port)))
        },
    )
    .await;

    // Another directory under id 4, elsewhere, is not taken for it.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let mut other = trio.learner_cfg(4, other_dir.path(), free_port());
    other.directory_id = Some("AAAAAAAAAAAAAAAAAAAACA".into());
    let impostor = start(other).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        by_id(&nodes, leader).state().voters.get(&4),
        Some(&addr(third_port))
    );
    impostor.shutdown().await.expect("shutdown");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// Three nodes (ids 1–3) of a quorum found through bootstrap servers: their directories,
/// ports and directory ids.
struct BootstrapNodes {
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
}

impl BootstrapNodes {
    fn new() -> BootstrapNodes {
        BootstrapNodes {
            dirs: (0..3)
                .map(|_| tempfile::tempdir().expect("tempdir"))
                .collect(),
            ports: (0..3).map(|_| free_port()).collect(),
        }
    }

    fn addr(&self, id: u64) -> String {
        addr(self.ports[(id - 1) as usize])
    }

    fn dir_id(id: u64) -> String {
        format!("AAAAAAAAAAAAAAAAAAAAA{}", ["Q", "g", "w"][id as usize - 1])
    }

    /// Node `id`'s config: `initial` the initial voters it is given (`--standalone`,
    /// `--initial-controllers`), `bootstrap` the nodes whose addresses are its bootstrap servers.
    fn cfg(&self, id: u64, initial: &[u64], bootstrap: &[u64]) -> QuorumConfig {
        let i = (id - 1) as usize;
        let voters: BTreeMap<u64, String> = initial.iter().map(|&v| (v, self.addr(v))).collect();
        let mut cfg = config(id, self.dirs[i].path(), self.ports[i], &voters);
        cfg.bootstrap_servers = bootstrap.iter().map(|&b| self.addr(b)).collect();
        cfg.directory_id = Some(Self::dir_id(id));
        cfg
    }
}

/// Kafka 4.x's way to a quorum: `controller.quorum.bootstrap.servers`, no configured voter set.
/// Node 1 starts alone as the initial voter (Kafka's `format --standalone`); nodes 2 and 3 know
/// only a bootstrap address (node 3 a follower's, whose NOT_LEADER answer names the leader's
/// address), join as learners and are made voters. The handshake compares no voter sets
/// between them, and refuses a node with a configured voter set. With the first node gone, the
/// other two elect a leader and commit; a joiner restarted without any voter configured
/// follows its log's voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_found_through_bootstrap_servers_grows_from_one_voter() {
    init_tracing();
    let b = BootstrapNodes::new();
    let cfg = |id: u64, initial: &[u64], bootstrap: u64| b.cfg(id, initial, &[bootstrap]);
    let dir_id = BootstrapNodes::dir_id;
    let ports = &b.ports;
    let t = Duration::from_secs(10);
    let one = start(cfg(1, &[1], 1)).await;
    assert_eq!(wait_leader(&[&one]).await, 1);
    one.propose(kraft_version(1))
        .await
        .expect("kraft.version 1");
    one.propose(topic(0)).await.expect("propose");

    let mut nodes = vec![one];
    nodes.push(start(cfg(2, &[], 1)).await);
    wait_for("2 joins through node 1's address", t, || {
        by_id(&nodes, 1).state().learners.contains_key(&2)
    })
    .await;
    by_id(&nodes, 1)
        .add_voter(2, &addr(ports[1]), Some(&dir_id(2)), t)
        .await
        .expect("2 added");
    nodes.push(start(cfg(3, &[], 2)).await);
    wait_for("3 joins through a follower's address", t, || {
        by_id(&nodes, 1).state().learners.contains_key(&3)
    })
    .await;
    by_id(&nodes, 1)
        .add_voter(3, &addr(ports[2]), Some(&dir_id(3)), t)
        .await
        .expect("3 added");
    wait_for("every node sees voters 1-3", t, || {
        nodes.iter().all(|n| voter_ids(n) == vec![1, 2, 3])
    })
    .await;
    wait_for("every node applies the topic", t, || {
        nodes.iter().all(|n| topic_count(&image_of(n)) == 1)
    })
    .await;

    // A node configured with a static voter set is another kind of cluster: refused.
    let static_dir = tempfile::tempdir().expect("tempdir");
    let static_port = free_port();
    let static_voters = BTreeMap::from([(1, addr(ports[0]))]);
    let mut stranger = config(4, static_dir.path(), static_port, &static_voters);
    stranger.directory_id = Some("AAAAAAAAAAAAAAAAAAAABA".into());
    let stranger = start(stranger).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!by_id(&nodes, 1).state().learners.contains_key(&4));
    stranger.shutdown().await.expect("shutdown");

    // The first voter goes: the two that joined elect a leader and commit.
    let first = nodes.remove(0);
    first.shutdown().await.expect("shutdown");
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("committed by 2 and 3");
    // A joiner restarts with no voter configured: its log's voters hold.
    let restarted = if leader == 2 { 3 } else { 2 };
    let pos = nodes
        .iter()
        .position(|n| n.node_id() == restarted)
        .expect("node");
    nodes.remove(pos).shutdown().await.expect("shutdown");
    nodes.push(start(cfg(restarted, &[], 1)).await);
    by_id(&nodes, leader)
        .propose(topic(2))
        .await
        .expect("committed by 2 and 3 again");
    wait_for("the restarted voter applies", t, || {
        topic_count(&image_of(by_id(&nodes, restarted))) == 3
    })
    .await;
    assert_eq!(by_id(&nodes, restarted).state().role, "follower");
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}

/// The first voter of a quorum found through bootstrap servers loses its disk and restarts as
/// it first started (`--standalone`: it alone as the initial voter). Its bootstrap servers name
/// another controller too, which names the running quorum's leader: it does not start a
/// cluster of its own but follows the running one as the voter it is, caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_voter_that_lost_its_disk_rejoins_instead_of_starting_anew() {
    init_tracing();
    let b = BootstrapNodes::new();
    let cfg = |id: u64, initial: &[u64], bootstrap: &[u64]| b.cfg(id, initial, bootstrap);
    let ports = &b.ports;
    let dirs = &b.dirs;
    let t = Duration::from_secs(10);
    let mut nodes = vec![start(cfg(1, &[1], &[1, 2])).await];
    assert_eq!(wait_leader(&[&nodes[0]]).await, 1);
    nodes[0]
        .propose(kraft_version(1))
        .await
        .expect("kraft.version 1");
    for id in [2, 3] {
        nodes.push(start(cfg(id, &[], &[1])).await);
        wait_for("the node joins", t, || {
            by_id(&nodes, 1).state().learners.contains_key(&id)
        })
        .await;
        let dir = BootstrapNodes::dir_id(id);
        by_id(&nodes, 1)
            .add_voter(id, &addr(ports[id as usize - 1]), Some(&dir), t)
            .await
            .expect("added");
    }
    nodes[0].propose(topic(0)).await.expect("propose");

    // Node 1's disk is lost; it restarts exactly as it first started.
    let first = nodes.remove(0);
    first.shutdown().await.expect("shutdown");
    wipe(dirs[0].path());
    let leader = wait_leader(&nodes.iter().collect::<Vec<_>>()).await;
    by_id(&nodes, leader)
        .propose(topic(1))
        .await
        .expect("committed by 2 and 3");
    nodes.push(start(cfg(1, &[1], &[1, 2])).await);
    // Started anew, it would lead a one-voter quorum of its own within an election timeout.
    let mut led = by_id(&nodes, 1).leader_and_epoch();
    let own = tokio::time::timeout(
        Duration::from_millis(1500),
        led.wait_for(|l| l.leader == Some(1)),
    )
    .await;
    assert!(own.is_err(), "the wiped voter led a quorum of its own");
    wait_for(
        "the wiped voter catches up with the running quorum",
        t,
        || topic_count(&image_of(by_id(&nodes, 1))) == 2,
    )
    .await;
    let state = by_id(&nodes, 1).state();
    assert_eq!(
        state.voters.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_ne!(state.leader, Some(1), "{state:?}");
    by_id(&nodes, leader)
        .propose(topic(2))
        .await
        .expect("propose");
    wait_for("every node applies", t, || {
        nodes.iter().all(|n| topic_count(&image_of(n)) == 3)
    })
    .await;
    for n in nodes {
        n.shutdown().await.expect("shutdown");
    }
}
