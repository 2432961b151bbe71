//! `MetadataQuorum`: one node of the metadata quorum — start (bootstrap, join, restart checks),
//! propose, the committed image, leadership, controller calls, state, shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_metadata::{MetadataImage, MetadataRecord, KRAFT_VERSION_FEATURE};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::contacts::PeerContacts;
use crate::fsutil::{lock_dir, DirLock};
use crate::log_store::LogStore;
use crate::network::{
    dial, kind, serve, ConnectionPool, ControllerRpcHandler, Hello, JoinRequest,
    KafkaConnectionHandler, KafkaSlot, NetworkFactory, QuorumStream, QuorumTls, Server,
};
use crate::pre_vote::{self, LeaderContact};
use crate::state_machine::StateMachine;
use crate::types::{ControllerNode, MetadataBatch, NodeId, Raft};
use crate::vote_gate::VoteGate;

/// How one node takes part in the metadata quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Every node of one cluster has the same id; connections from another cluster are refused.
    pub cluster_id: String,
    /// The quorum's own directory (the broker passes `<data-dir>/__cluster_metadata`).
    pub dir: PathBuf,
    /// Where the controller listener binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The `host:port` other nodes use to reach this node.
    pub advertised: String,
    /// The voters: node id → `host:port`. A node not in it is a learner.
    pub voters: BTreeMap<NodeId, String>,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every: u64,
    /// TLS on the controller listener and on every connection to a peer's (`None`: plain
    /// TCP); see [`QuorumTls`].
    pub tls: Option<Arc<QuorumTls>>,
    /// SASL on the controller listener and on every connection to a peer's (`None`: none);
    /// see [`crate::QuorumSasl`].
    pub sasl: Option<Arc<crate::QuorumSasl>>,
    /// This node's data directory id (Kafka's `directory.id` in `meta.properties`), told to
    /// the leader when the node joins, so the membership records it (`None`: not told).
    pub directory_id: Option<String>,
    /// The leader removes a learner that has not answered it for this long (Kafka's observer
    /// session timeout, 5 minutes; see [`crate::contacts`]).
    pub observer_session_timeout: Duration,
    /// Kafka 4.x's `controller.quorum.bootstrap.servers`: controller listeners (`host:port`,
    /// node ids unknown) a node that knows no voter asks to join. Set, the quorum has no
    /// configured voter set: `voters` are only the initial voters of a new cluster (this
    /// node alone for Kafka's `format --standalone`, the `--initial-controllers`, or none for
    /// a node that joins), the handshake does not compare voter sets, and the voters are
    /// always the log's.
    pub bootstrap_servers: Vec<String>,
    /// The directory ids of the initial voters, recorded in a new log's membership (Kafka's
    /// `--initial-controllers id@host:port:directoryId`; unknown ones stay unrecorded).
    pub initial_directory_ids: BTreeMap<NodeId, String>,
    /// Kafka's `metadata.log.max.record.bytes.between.snapshots`: a snapshot once the log since
    /// the last one holds this many bytes ([`crate::snapshot_policy`]).
    pub snapshot_max_bytes: u64,
    /// Kafka's `metadata.log.max.snapshot.interval.ms`: a snapshot once this long has passed
    /// since the last one, with entries after it (`None`: no time trigger).
    pub snapshot_max_interval: Option<Duration>,
    /// The listener's socket sizes (the broker's `socket.send.buffer.bytes`,
    /// `socket.receive.buffer.bytes`, `socket.listen.backlog.size`).
    pub sockets: gregor_client::socket::ListenOptions,
}

impl QuorumConfig {
    /// A config with the default timings: heartbeat 100 ms, election timeout 300–600 ms, a
    /// snapshot every 1000 entries.
    pub fn new(
        node_id: NodeId,
        cluster_id: impl Into<String>,
        dir: impl Into<PathBuf>,
        listen: SocketAddr,
        advertised: impl Into<String>,
        voters: BTreeMap<NodeId, String>,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            cluster_id: cluster_id.into(),
            dir: dir.into(),
            listen,
            advertised: advertised.into(),
            voters,
            heartbeat_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_every: 1000,
            tls: None,
            sasl: None,
            directory_id: None,
            observer_session_timeout: crate::contacts::OBSERVER_SESSION_TIMEOUT,
            bootstrap_servers: Vec::new(),
            initial_directory_ids: BTreeMap::new(),
            sockets: gregor_client::socket::ListenOptions::default(),
            snapshot_max_bytes: 20 * 1024 * 1024,
            snapshot_max_interval: Some(Duration::from_secs(3600)),
        }
    }

    /// Whether the voters are configured (`controller.quorum.voters`, the same set on every
    /// node for the cluster's life), as opposed to found through bootstrap servers.
    pub fn static_voters(&self) -> bool {
        self.bootstrap_servers.is_empty()
    }

    /// The voter set nodes compare in their handshake: the configured one, or none when the
    /// voters are found through bootstrap servers.
    fn handshake_voters(&self) -> BTreeSet<NodeId> {
        if self.static_voters() {
            self.voters.keys().copied().collect()
        } else {
            BTreeSet::new()
        }
    }

    fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }
}

/// The quorum could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("invalid quorum config: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("the metadata directory is in use by another process (lock {0} is held)")]
    Locked(PathBuf),
    #[error(
        "the configured voters {configured:?} differ from the voters {stored:?} in the metadata \
         log; refusing to start (changing the voter set is not supported)"
    )]
    VoterMismatch {
        configured: BTreeSet<NodeId>,
        stored: BTreeSet<NodeId>,
    },
    #[error(
        "the metadata directory {dir} belongs to node {stored_node} of cluster {stored_cluster:?}, \
         but this node is node {node} of cluster {cluster:?}"
    )]
    WrongDirectory {
        dir: PathBuf,
        cluster: String,
        node: NodeId,
        stored_cluster: String,
        stored_node: NodeId,
    },
    #[error("raft: {0}")]
    Raft(String),
}

/// Who a metadata directory belongs to, written on first start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct DirOwner {
    cluster_id: String,
    node_id: NodeId,
}

const OWNER_FILE: &str = "owner";

/// Checks that `cfg.dir` belongs to this node of this cluster (a vote or log of another node
/// must never be reused), claiming it on first start.
fn check_owner(cfg: &QuorumConfig) -> Result<(), QuorumError> {
    let path = cfg.dir.join(OWNER_FILE);
    let ours = DirOwner {
        cluster_id: cfg.cluster_id.clone(),
        node_id: cfg.node_id,
    };
    let stored = crate::fsutil::read_checked(&path)
        .map_err(io_ctx(format!("cannot read {}", path.display())))?;
    match stored {
        None => {
            let bytes = serde_json::to_vec(&ours).map_err(|e| QuorumError::Io {
                context: "cannot encode the directory owner".into(),
                source: io::Error::other(e),
            })?;
            crate::fsutil::write_checked(&cfg.dir, OWNER_FILE, &bytes)
                .map_err(io_ctx(format!("cannot write {}", path.display())))
        }
        Some(bytes) => {
            let theirs: DirOwner = serde_json::from_slice(&bytes).map_err(|e| QuorumError::Io {
                context: format!("cannot read {}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
            if theirs == ours {
                Ok(())
            } else {
                Err(QuorumError::WrongDirectory {
                    dir: cfg.dir.clone(),
                    cluster: ours.cluster_id,
                    node: ours.node_id,
                    stored_cluster: theirs.cluster_id,
                    stored_node: theirs.node_id,
                })
            }
        }
    }
}

/// A proposal that did not become part of the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// Committed at `index`, but skipped by every node's state machine.
    #[error("the batch committed at index {index} was rejected: {reason}")]
    Rejected { index: u64, reason: String },
    #[error("the quorum is shut down or failed: {0}")]
    Fatal(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// A controller request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no answer from the controller leader within {timeout:?} (last: {last})")]
    Timeout { timeout: Duration, last: String },
    #[error("the quorum is shut down")]
    Shutdown,
}

/// A voter change (AddRaftVoter, RemoveRaftVoter) that did not happen; each maps to Kafka's
/// error code for it ([`VoterChangeError::kafka_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterChangeError {
    /// NOT_LEADER_OR_FOLLOWER: only the quorum leader changes the voters.
    #[error("this node is not the metadata quorum's leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// UNSUPPORTED_VERSION: `kraft.version` is 0, the voters are the configured ones.
    #[error("Cluster doesn't support {verb} voter because the kraft.version feature is {level}")]
    Unsupported { verb: &'static str, level: i16 },
    /// DUPLICATE_VOTER.
    #[error("The voter id {id} is already part of the set of voters {voters:?}.")]
    Duplicate {
        id: NodeId,
        voters: BTreeSet<NodeId>,
    },
    /// VOTER_NOT_FOUND.
    #[error("Cannot remove voter {id} from the set of voters {voters:?}")]
    NotFound {
        id: NodeId,
        voters: BTreeSet<NodeId>,
    },
    /// INVALID_REQUEST: e.g. removing the only voter.
    #[error("{0}")]
    Invalid(String),
    /// REQUEST_TIMED_OUT: another change is under way, or the new voter is not caught up.
    #[error("{0}")]
    TimedOut(String),
    /// UNKNOWN_SERVER_ERROR.
    #[error("{0}")]
    Failed(String),
}

impl VoterChangeError {
    /// Kafka's error code for this refusal.
    pub fn kafka_code(&self) -> i16 {
        match self {
            VoterChangeError::NotLeader { .. } => 6,
            VoterChangeError::Unsupported { .. } => 35,
            VoterChangeError::Duplicate { .. } => 116,
            VoterChangeError::NotFound { .. } => 117,
            VoterChangeError::Invalid(_) => 42,
            VoterChangeError::TimedOut(_) => 7,
            VoterChangeError::Failed(_) => -1,
        }
    }
}

fn membership_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, ControllerNode>>,
) -> VoterChangeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => VoterChangeError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(_),
        )) => VoterChangeError::TimedOut(
            "Request timed out waiting for leader to handle previous voter change request".into(),
        ),
        RaftError::APIError(e) => VoterChangeError::Failed(e.to_string()),
        RaftError::Fatal(e) => VoterChangeError::Failed(e.to_string()),
    }
}

/// Removes `node` from the Raft membership (a learner: see [`MetadataQuorum::remove_learner`]
/// and [`crate::contacts`]).
pub(crate) async fn drop_learner(raft: &Raft, node: NodeId) -> Result<(), ProposeError> {
    match raft
        .change_membership(
            openraft::ChangeMembers::RemoveNodes(BTreeSet::from([node])),
            false,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(e)) => Err(ProposeError::Raft(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(ProposeError::Fatal(e.to_string())),
    }
}

/// The quorum's leader and its term, as this node sees them (Kafka's `LeaderAndEpoch`; Raft's
/// term is Kafka's leader epoch). A new term is a new leadership even when the same node wins
/// it again: what a controller decided in an earlier term must not be proposed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderAndEpoch {
    pub leader: Option<NodeId>,
    pub epoch: u64,
}

/// The quorum as this node sees it (for `gregor cluster describe` and DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// This node's role: "leader", "follower", "candidate", "learner", "shutdown".
    pub role: &'static str,
    pub voters: BTreeMap<NodeId, String>,
    pub learners: BTreeMap<NodeId, String>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// On the leader: every other node's matched log index (`None`: nothing matched yet).
    pub replication: BTreeMap<NodeId, Option<u64>>,
    /// When each other node last answered this node's Raft RPCs, in ms since the epoch
    /// (meaningful on the leader, which sends them; Kafka's `lastFetchTimestamp`).
    pub last_answer_ms: BTreeMap<NodeId, i64>,
    /// The directory id the membership records for each node that told it (KIP-853).
    pub directory_ids: BTreeMap<NodeId, String>,
}

impl QuorumState {
    /// How many entries node `id` lags behind the leader's log (on the leader only).
    pub fn lag(&self, id: NodeId) -> Option<u64> {
        let last = self.last_log_index?;
        let matched = self.replication.get(&id)?;
        Some(match matched {
            Some(m) => last.saturating_sub(*m),
            None => last + 1,
        })
    }
}

/// Running totals of a node's metadata quorum, from which the broker computes Kafka's
/// raft-metrics rates and averages over a window.
#[derive(Debug, Default)]
pub struct QuorumCounters {
    /// Metadata records applied to this node's image (from its own proposals or the leader's
    /// log).
    pub applied_records: Arc<AtomicU64>,
    /// Metadata records this node proposed as leader and saw committed.
    pub proposed_records: AtomicU64,
    /// Proposals committed, and their total time from proposal to commit and apply, in µs.
    pub commits: AtomicU64,
    pub commit_micros: AtomicU64,
}

/// A node of the metadata quorum; see the crate docs.
pub struct MetadataQuorum {
    cfg: QuorumConfig,
    raft: Raft,
    local_addr: SocketAddr,
    image: watch::Receiver<Arc<MetadataImage>>,
    leadership: watch::Receiver<Option<NodeId>>,
    /// The leader with its term: changes on every new term, even one the same leader wins.
    leader_and_epoch: watch::Receiver<LeaderAndEpoch>,
    handler: Arc<dyn ControllerRpcHandler>,
    pool: Arc<ConnectionPool>,
    /// The leader as the voters last named it (a JOIN's answer, a NOT_LEADER reply), for a
    /// learner that Raft has not told yet: one whose log the leader sends elsewhere (another
    /// process that holds this node id) still reaches the controller, whose registration check
    /// then refuses it by name instead of leaving it waiting with no leader.
    leader_hint: Arc<std::sync::Mutex<Option<NodeId>>>,
    /// Serves Kafka clients on the controller listener, once set.
    kafka: KafkaSlot,
    /// The listener and its connections, the leadership forwarder, the learner's join loop.
    tasks: Vec<JoinHandle<()>>,
    /// Records applied and proposed, commits and their time (Kafka's raft-metrics rates).
    counters: Arc<QuorumCounters>,
    /// When each peer last answered this node's Raft RPCs.
    contacts: Arc<PeerContacts>,
    /// Released last, after Raft stopped writing.
    _lock: DirLock,
}

impl fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.cfg.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> QuorumError {
    let context = context.into();
    move |source| QuorumError::Io { context, source }
}

fn validate(cfg: &QuorumConfig) -> Result<(), QuorumError> {
    if cfg.voters.is_empty() && cfg.static_voters() {
        return Err(QuorumError::Config(
            "the voter set is empty, and there are no bootstrap servers".into(),
        ));
    }
    if cfg.snapshot_every == 0 {
        return Err(QuorumError::Config(
            "snapshot_every must be at least 1".into(),
        ));
    }
    if let Some(addr) = cfg.voters.get(&cfg.node_id) {
        if *addr != cfg.advertised {
            // Peers dial the address in the voter set; a different advertised address is
            // probably a typo, but a one-voter quorum on port 0 legitimately has one.
            tracing::warn!(
                node = cfg.node_id,
                voter_addr = %addr,
                advertised = %cfg.advertised,
                "this voter's address in the voter set differs from its advertised address"
            );
        }
    }
    Ok(())
}

/// Resolves once the quorum's leadership, as this node sees it, is no longer `leader` (another
/// leader, or an election in progress); never, if this node is shutting down.
async fn leader_moves_from(mut leadership: watch::Receiver<Option<NodeId>>, leader: NodeId) {
    loop {
        if *leadership.borrow_and_update() != Some(leader) {
            return;
        }
        if leadership.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl MetadataQuorum {
    /// Starts this node: locks and opens its directory, binds the listener, and
    ///
    /// * a voter with an empty log initializes the membership with the configured voters (the
    ///   same on every voter, which openraft allows: the first entry is identical everywhere,
    ///   and a node that already has entries answers `NotAllowed`, which is ignored);
    /// * a learner not yet in the membership asks the leader to add it (in the background,
    ///   retrying until it is in);
    /// * a node with a log checks that its voters are the configured ones.
    ///
    /// Returns once the node runs; it need not have a leader yet.
    pub async fn start(
        cfg: QuorumConfig,
        handler: Arc<dyn ControllerRpcHandler>,
    ) -> Result<MetadataQuorum, QuorumError> {
        validate(&cfg)?;
        std::fs::create_dir_all(&cfg.dir)
            .map_err(io_ctx(format!("cannot create {}", cfg.dir.display())))?;
        let lock = lock_dir(&cfg.dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                QuorumError::Locked(cfg.dir.join("lock"))
            } else {
                QuorumError::Io {
                    context: format!("cannot lock {}", cfg.dir.display()),
                    source: e,
                }
            }
        })?;
        check_owner(&cfg)?;
        let log = LogStore::open(&cfg.dir).map_err(io_ctx(format!(
            "cannot open the metadata log in {}",
            cfg.dir.display()
        )))?;
        let (sm, image) = StateMachine::open(&cfg.dir).map_err(io_ctx(format!(
            "cannot open the metadata snapshot in {}",
            cfg.dir.display()
        )))?;
        let counters = Arc::new(QuorumCounters {
            applied_records: Arc::clone(&sm.applied_records),
            ..QuorumCounters::default()
        });
        let listener = gregor_client::socket::bind(cfg.listen, &cfg.sockets).map_err(io_ctx(
            format!("cannot bind the controller listener on {}", cfg.listen),
        ))?;
        let local_addr = listener
            .local_addr()
            .map_err(io_ctx("cannot read the listener's address"))?;

        let config = Config {
            cluster_name: cfg.cluster_id.clone(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            // Lagging nodes get the snapshot; the log before it goes.
            max_in_snapshot_log_to_keep: 0,
            // A chunk travels as JSON (about 3.5 bytes per byte): keep frames moderate and give
            // each chunk time on a slower link.
            snapshot_max_chunk_size: 1024 * 1024,
            install_snapshot_timeout: 2000,
            // Among several voters the election timer is gregor's, with a pre-vote first
            // (crate::pre_vote); a single voter has no one to disturb.
            enable_elect: cfg.is_voter() && cfg.voters.len() == 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let hello = Hello {
            cluster_id: cfg.cluster_id.clone(),
            node_id: cfg.node_id,
            voters: cfg.handshake_voters(),
        };
        let contacts = Arc::new(PeerContacts::default());
        let network = NetworkFactory {
            voters: cfg.voters.clone(),
            hello: Arc::new(hello.clone()),
            connect_timeout: Duration::from_millis(cfg.election_timeout_min_ms.max(100)),
            refusals: Default::default(),
            tls: cfg.tls.clone(),
            sasl: cfg.sasl.clone(),
            contacts: Arc::clone(&contacts),
        };
        let log_handle = log.clone();
        let raft = Raft::new(cfg.node_id, Arc::new(config), network, log, sm)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;

        let stored_voters = raft
            .with_raft_state(move |st| {
                let m = st.membership_state.effective().membership();
                m.voter_ids().collect::<BTreeSet<NodeId>>()
            })
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let configured: BTreeSet<NodeId> = cfg.voters.keys().copied().collect();
        // At kraft.version 1 the voters are the log's (AddRaftVoter, RemoveRaftVoter); the
        // configured ones only bootstrap a new cluster and tell a node whom to ask first.
        // Found through bootstrap servers, they are the log's from the start.
        let dynamic =
            !cfg.static_voters() || image.borrow().feature_level(KRAFT_VERSION_FEATURE) >= Some(1);
        if !dynamic && !stored_voters.is_empty() && stored_voters != configured {
            // Refuse rather than run with a voter set nobody configured (split brain).
            let _ = raft.shutdown().await;
            return Err(QuorumError::VoterMismatch {
                configured,
                stored: stored_voters,
            });
        }

        // An initial voter of a quorum found through bootstrap servers, with an empty log,
        // first asks the other bootstrap servers whether a quorum runs already: if one names a
        // leader, this node lost its log (or was given `--standalone` again) and must not start
        // a second cluster; it joins the running one instead, as a voter that lost its log.
        let runs_elsewhere = if cfg.is_voter() && !initialized && !cfg.static_voters() {
            let probe =
                ConnectionPool::new(hello.clone(), cfg.tls.clone()).with_sasl(cfg.sasl.clone());
            let found = quorum_elsewhere(&probe, &cfg).await;
            if let Some(at) = &found {
                tracing::warn!(
                    %at,
                    "this initial voter's metadata log is empty, but the quorum runs already: \
                     joining it instead of starting a new one (a lost disk, or --standalone / \
                     --initial-controllers given again)"
                );
            }
            found.is_some()
        } else {
            false
        };
        // Before the membership is initialized, so a crash in between keeps the gate closed.
        // Every node but a lone configured voter: a node that is no voter now may be made one
        // (AddRaftVoter), and one made a voter that lost its log must not vote either.
        let vote_gate = if !(cfg.is_voter() && cfg.voters.len() == 1) || runs_elsewhere {
            match VoteGate::open_at_start(&cfg.dir, !initialized) {
                Ok(gate) => gate,
                Err(e) => {
                    let _ = raft.shutdown().await;
                    return Err(QuorumError::Io {
                        context: format!("cannot write the vote gate in {}", cfg.dir.display()),
                        source: e,
                    });
                }
            }
        } else {
            VoteGate::open()
        };
        if !vote_gate.is_open() && cfg.is_voter() {
            tracing::info!(
                "this voter starts without its metadata log (a new or wiped data dir): it will not \
                 vote until it has caught up with a quorum leader"
            );
        }

        if cfg.is_voter() && !runs_elsewhere {
            if !initialized {
                let members: BTreeMap<NodeId, ControllerNode> = cfg
                    .voters
                    .iter()
                    .map(|(id, addr)| {
                        let dir = cfg.initial_directory_ids.get(id).cloned();
                        (*id, ControllerNode::with_directory(addr.clone(), dir))
                    })
                    .collect();
                match raft.initialize(members).await {
                    Ok(()) => {
                        tracing::info!(voters = ?configured, "initialized the metadata quorum")
                    }
                    // Another voter's leader got here first; the log already has the membership.
                    Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                    Err(e) => {
                        let _ = raft.shutdown().await;
                        return Err(QuorumError::Raft(format!("cannot initialize: {e}")));
                    }
                }
            } else if stored_voters.len() == 1 && stored_voters.contains(&cfg.node_id) {
                // The only voter: no one else can win, so do not wait an election timeout.
                if let Err(e) = raft.trigger().elect().await {
                    tracing::warn!(error = %e, "cannot start an election");
                }
            }
        }

        let mut tasks = Vec::new();
        let kafka: KafkaSlot = Default::default();
        let contact = Arc::new(LeaderContact::new());
        let vote_gate = Arc::new(vote_gate);
        let server = Arc::new(Server {
            node_id: cfg.node_id,
            cluster_id: cfg.cluster_id.clone(),
            voters: cfg.handshake_voters(),
            raft: raft.clone(),
            handler: handler.clone(),
            vote_gate: Arc::clone(&vote_gate),
            contact: Arc::clone(&contact),
            log: log_handle.clone(),
            lease: Duration::from_millis(cfg.election_timeout_max_ms),
            kafka: Arc::clone(&kafka),
            tls: cfg.tls.clone(),
            sasl: cfg.sasl.clone(),
        });
        tasks.push(tokio::spawn(serve(listener, server)));

        let pool =
            Arc::new(ConnectionPool::new(hello, cfg.tls.clone()).with_sasl(cfg.sasl.clone()));
        // On every node: it stands only while the node is one voter among several of the
        // membership it has, which AddRaftVoter and RemoveRaftVoter change.
        {
            tasks.push(tokio::spawn(pre_vote::run(
                raft.clone(),
                cfg.node_id,
                pre_vote::Voter {
                    contact,
                    gate: vote_gate,
                },
                log_handle.clone(),
                cfg.voters.clone(),
                Arc::clone(&pool),
                pre_vote::Timings {
                    heartbeat: Duration::from_millis(cfg.heartbeat_ms),
                    election_min: Duration::from_millis(cfg.election_timeout_min_ms),
                    election_max: Duration::from_millis(cfg.election_timeout_max_ms),
                },
            )));
        }
        let leader_hint = Arc::new(std::sync::Mutex::new(None));
        // Every node runs it, and asks while it is no voter: a learner not yet in the
        // membership joins, and one already in it (from its log) asks again now and then, in
        // case the leader removed it (an unregistered broker that is still running, or
        // restarted); a voter that RemoveRaftVoter took out entirely (a leader that removed
        // itself) comes back as a learner.
        {
            tasks.push(tokio::spawn(join_as_learner(
                raft.clone(),
                pool.clone(),
                Arc::clone(&leader_hint),
                cfg.voters.clone(),
                cfg.bootstrap_servers.clone(),
                JoinRequest {
                    node_id: cfg.node_id,
                    addr: cfg.advertised.clone(),
                    directory_id: cfg.directory_id.clone(),
                    want_leader_addr: true,
                },
            )));
        }

        // Kafka's snapshot triggers by bytes and by time, beside openraft's count.
        tasks.push(tokio::spawn(crate::snapshot_policy::run(
            raft.clone(),
            log_handle,
            cfg.snapshot_max_bytes,
            cfg.snapshot_max_interval,
        )));

        // A leader completes a voter change its caller abandoned half way.
        tasks.push(tokio::spawn(complete_voter_changes(
            raft.clone(),
            cfg.node_id,
        )));

        // Only a leader sweeps; any node may become a voter, and then lead.
        {
            tasks.push(tokio::spawn(crate::contacts::sweep(
                raft.clone(),
                cfg.node_id,
                Arc::clone(&contacts),
                cfg.observer_session_timeout,
            )));
        }

        let (leader_tx, leadership) = watch::channel(None);
        let (epoch_tx, leader_and_epoch) = watch::channel(LeaderAndEpoch {
            leader: None,
            epoch: 0,
        });
        let mut metrics = raft.metrics();
        let elect_raft = raft.clone();
        let own_id = cfg.node_id;
        let mut sole_voter = None;
        tasks.push(tokio::spawn(async move {
            loop {
                let (leader, epoch, sole) = {
                    let m = metrics.borrow_and_update();
                    let membership = m.membership_config.membership();
                    let mut voters = membership.voter_ids();
                    let sole = voters.next() == Some(own_id) && voters.next().is_none();
                    (m.current_leader, m.current_term, sole)
                };
                // openraft's own election timer for a sole voter, gregor's pre-vote timer
                // (crate::pre_vote) among several: the membership may change either way.
                if sole_voter != Some(sole) {
                    elect_raft.runtime_config().elect(sole);
                    sole_voter = Some(sole);
                }
                leader_tx.send_if_modified(|l| {
                    let changed = *l != leader;
                    *l = leader;
                    changed
                });
                let now = LeaderAndEpoch { leader, epoch };
                epoch_tx.send_if_modified(|l| {
                    let changed = *l != now;
                    *l = now;
                    changed
                });
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        }));

        Ok(MetadataQuorum {
            cfg,
            raft,
            local_addr,
            image,
            leadership,
            leader_and_epoch,
            handler,
            pool,
            leader_hint,
            kafka,
            tasks,
            counters,
            contacts,
            _lock: lock,
        })
    }

    /// What this node's quorum has done so far, for metrics.
    pub fn counters(&self) -> &QuorumCounters {
        &self.counters
    }

    /// Serves the Kafka clients that connect to the controller listener with `handler` from
    /// now on (until then they are disconnected). Set once; false if it was set already.
    pub fn serve_kafka(&self, handler: Arc<dyn KafkaConnectionHandler>) -> bool {
        self.kafka.set(handler).is_ok()
    }

    /// Opens a connection to another node's controller listener at `addr` (`host:port`) for
    /// Kafka requests, as this node's quorum connections are opened: with TLS, showing this
    /// node's certificate, when the controller listener is SSL; logged in with
    /// `sasl.mechanism.controller.protocol` when it is SASL_*.
    pub async fn connect_kafka(&self, addr: &str) -> io::Result<QuorumStream> {
        let mut stream = dial(addr, self.pool.tls()).await.map_err(|e| match e {
            crate::network::TransportError::Connect { source, .. } => source,
            crate::network::TransportError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        // Logged in as any Kafka client on a SASL controller listener.
        if let Some(sasl) = self.pool.sasl() {
            sasl.kafka_login(&mut stream).await?;
        }
        Ok(stream)
    }

    /// The address the controller listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The committed image, as applied on this node: one new value per applied batch.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Appends `records` as one batch to the metadata log, on the leader only. Resolves once
    /// the batch is committed and applied here, so [`MetadataQuorum::image`] already shows it;
    /// returns its log index.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        self.write(records).await.map(|(index, _)| index)
    }

    /// [`propose`](Self::propose) for a controller activated in term `epoch`: refused with
    /// `NotLeader` unless this node leads the quorum in that very term (Kafka's
    /// `scheduleAtomicAppend(epoch, ...)`). A controller of an earlier term of this node, still
    /// running after the node lost and won the leadership again, decided on what it knew then
    /// and must not append in the new term (two such controllers once both wrote the bootstrap
    /// records).
    ///
    /// The check reads Raft's state just before the write is handed to it; a term that changed
    /// in between would need a whole election in that instant. The entry's own term is checked
    /// after it committed too, and such an append is logged as an error.
    pub async fn propose_in_epoch(
        &self,
        epoch: u64,
        records: Vec<MetadataRecord>,
    ) -> Result<u64, ProposeError> {
        {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.current_leader != Some(self.cfg.node_id) || m.current_term != epoch {
                return Err(ProposeError::NotLeader {
                    leader: m.current_leader,
                });
            }
        }
        let (index, term) = self.write(records).await?;
        if term != epoch {
            tracing::error!(
                epoch,
                term,
                index,
                "a proposal of an earlier leader epoch was appended in a later term"
            );
        }
        Ok(index)
    }

    /// Writes one batch; its index and the term it was appended in.
    async fn write(&self, records: Vec<MetadataRecord>) -> Result<(u64, u64), ProposeError> {
        let started = std::time::Instant::now();
        match self
            .raft
            .client_write(MetadataBatch::encode(&records))
            .await
        {
            Ok(resp) => match resp.data.rejected {
                None => {
                    let c = &self.counters;
                    c.proposed_records
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    c.commits.fetch_add(1, Ordering::Relaxed);
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    c.commit_micros.fetch_add(micros, Ordering::Relaxed);
                    Ok((resp.log_id.index, resp.log_id.leader_id.term))
                }
                Some(reason) => Err(ProposeError::Rejected {
                    index: resp.log_id.index,
                    reason,
                }),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(ProposeError::Raft(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(ProposeError::Fatal(e.to_string())),
        }
    }

    /// Removes learner `node` (a broker-only node that was unregistered) from the Raft
    /// membership, so the leader stops sending it the log. Only on the leader; a voter, or a
    /// node that is no member, is left alone (`Ok(false)`). A learner that is in fact still
    /// running joins again (its join task asks every [`REJOIN_INTERVAL`]).
    pub async fn remove_learner(&self, node: NodeId) -> Result<bool, ProposeError> {
        let (learner, leader) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let learner =
                membership.get_node(&node).is_some() && !membership.voter_ids().any(|v| v == node);
            (learner, m.current_leader)
        };
        if !learner {
            return Ok(false);
        }
        if leader != Some(self.cfg.node_id) {
            return Err(ProposeError::NotLeader { leader });
        }
        tracing::info!(node, "removing a learner from the metadata quorum");
        drop_learner(&self.raft, node).await.map(|()| true)
    }

    /// Resolves, with the cause, once Raft on this node has stopped for good on an error (a
    /// write or fsync of the metadata log failed: openraft's storage errors are fatal). Never
    /// resolves while it runs, nor after a clean stop.
    pub async fn failed(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow_and_update().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                // The core is gone: its last metrics say why, if it failed.
                if let Err(e) = &metrics.borrow().running_state {
                    return e.to_string();
                }
                return std::future::pending().await;
            }
        }
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The current leader, as it changes (for the controller layer to activate/deactivate).
    pub fn leadership(&self) -> watch::Receiver<Option<NodeId>> {
        self.leadership.clone()
    }

    /// The leader and the term, as they change: a new value for every new term, even when the
    /// same node wins it again (for the controller layer, whose controllers are fenced by term).
    pub fn leader_and_epoch(&self) -> watch::Receiver<LeaderAndEpoch> {
        self.leader_and_epoch.clone()
    }

    /// Sends `payload` to the leader's [`ControllerRpcHandler`] and returns its answer. With no
    /// leader known, a leader that moved, or a leader that cannot be reached, it waits briefly
    /// and tries again until `timeout`.
    ///
    /// A request whose connection broke after it was sent may have reached the handler and is
    /// sent again: controller requests must be idempotent (Kafka's broker registration and
    /// heartbeats are).
    pub async fn call_controller(
        &self,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no leader known");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(CallError::Timeout { timeout, last });
            }
            let left = deadline - now;
            let raft_leader = self.raft.metrics().borrow().current_leader;
            let from_raft = raft_leader.is_some();
            let leader =
                raft_leader.or_else(|| *self.leader_hint.lock().unwrap_or_else(|p| p.into_inner()));
            match leader {
                None => last = "no leader known".into(),
                Some(id) if id == self.cfg.node_id => {
                    return Ok(self.handler.handle(id, payload).await);
                }
                Some(id) => match self.leader_addr(id) {
                    None => last = format!("no address known for leader {id}"),
                    Some(addr) => {
                        // A leader that dies or stalls mid-call is given up as soon as the
                        // quorum elects another, not after the whole timeout: a broker's
                        // heartbeat then reaches the new controller within its grace. A leader
                        // known only from the hint (Raft has not named one here) is not
                        // watched: Raft's view says nothing about it.
                        let call = self.pool.call(id, &addr, kind::CONTROLLER, &payload, left);
                        let moved = async {
                            if from_raft {
                                leader_moves_from(self.leadership.clone(), id).await
                            } else {
                                std::future::pending::<()>().await
                            }
                        };
                        let outcome = tokio::select! {
                            r = call => Some(r),
                            () = moved => None,
                        };
                        match outcome {
                            None => last = format!("node {id} lost the leadership during the call"),
                            Some(Ok((kind::OK, reply))) => return Ok(Bytes::from(reply)),
                            Some(Ok((kind::NOT_LEADER, reply))) => {
                                let named = serde_json::from_slice::<Option<NodeId>>(&reply)
                                    .ok()
                                    .flatten();
                                *self.leader_hint.lock().unwrap_or_else(|p| p.into_inner()) = named;
                                last = format!("node {id} is no longer the leader")
                            }
                            Some(Ok((other, reply))) => {
                                last = format!(
                                    "node {id} answered kind {other:#04x}: {}",
                                    String::from_utf8_lossy(&reply)
                                )
                            }
                            Some(Err(e)) => last = format!("node {id}: {e}"),
                        }
                    }
                },
            }
            if self.raft.metrics().borrow().running_state.is_err() {
                return Err(CallError::Shutdown);
            }
            let pause =
                Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }

    /// Where to reach node `id`: this node's own `voters` setting first (each node has its own
    /// view of the voters' addresses, e.g. through a proxy per link or a NAT), then the address
    /// the membership recorded (learners).
    fn leader_addr(&self, id: NodeId) -> Option<String> {
        if let Some(addr) = self.cfg.voters.get(&id) {
            return Some(addr.clone());
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Whether the membership this node has is joint (a voter change half done).
    #[cfg(test)]
    pub(crate) fn membership_is_joint(&self) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_joint_config()
            .len()
            > 1
    }

    /// Node `id` as the membership records it, if it is in it.
    fn node(&self, id: NodeId) -> Option<ControllerNode> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// The node this node voted for in the current term (Kafka's `current-vote`), if any.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().vote.leader_id().voted_for()
    }

    /// The quorum as this node sees it.
    pub fn state(&self) -> QuorumState {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut voters = BTreeMap::new();
        let mut learners = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.insert(*id, node.addr.clone());
            } else {
                learners.insert(*id, node.addr.clone());
            }
        }
        QuorumState {
            node_id: self.cfg.node_id,
            leader: m.current_leader,
            term: m.current_term,
            role: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            },
            voters,
            learners,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            replication: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .filter(|(id, _)| **id != self.cfg.node_id)
                        .map(|(id, l)| (*id, l.map(|l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
            last_answer_ms: self.contacts.last_answers_ms(),
            directory_ids: membership
                .nodes()
                .filter_map(|(id, n)| Some((*id, n.directory_id.clone()?)))
                .collect(),
        }
    }

    /// The `kraft.version` level (KIP-853): 1 when the voters are the metadata log's and may
    /// change, 0 when they are the configured ones.
    pub fn kraft_version(&self) -> i16 {
        self.image
            .borrow()
            .feature_level(KRAFT_VERSION_FEATURE)
            .unwrap_or(0)
    }

    /// On the leader, at `kraft.version` 1: the voters now, or why no change may start.
    fn voter_change_start(&self, verb: &'static str) -> Result<BTreeSet<NodeId>, VoterChangeError> {
        let (leader, voters, joint) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (
                m.current_leader,
                membership.voter_ids().collect::<BTreeSet<NodeId>>(),
                membership.get_joint_config().len() > 1,
            )
        };
        if leader != Some(self.cfg.node_id) {
            return Err(VoterChangeError::NotLeader { leader });
        }
        let level = self.kraft_version();
        if level < 1 {
            return Err(VoterChangeError::Unsupported { verb, level });
        }
        if joint {
            return Err(VoterChangeError::TimedOut(
                "Request timed out waiting for leader to handle previous voter change request"
                    .into(),
            ));
        }
        Ok(voters)
    }

    /// AddRaftVoter (KIP-853), on the leader at `kraft.version` 1: makes node `id`, whose
    /// controller listener is at `addr`, a voter. A node not yet in the membership is added as
    /// a learner first (a controller-role node not among the voters has joined as one
    /// already); either way it must have caught up with the leader's log within `timeout`, as
    /// Kafka's leader requires, before the change (openraft's joint consensus) is proposed.
    /// Resolves once the new voter set is committed.
    pub async fn add_voter(
        &self,
        id: NodeId,
        addr: &str,
        directory_id: Option<&str>,
        timeout: Duration,
    ) -> Result<(), VoterChangeError> {
        let voters = self.voter_change_start("adding")?;
        if voters.contains(&id) {
            return Err(VoterChangeError::Duplicate { id, voters });
        }
        let deadline = Instant::now() + timeout;
        let known_node = self.node(id);
        // Kafka names a voter by id and directory id: another directory under this id is
        // another replica (a wiped disk, another process), not the one asked for.
        if let (Some(asked), Some(recorded)) = (
            directory_id,
            known_node.as_ref().and_then(|n| n.directory_id.as_deref()),
        ) {
            if asked != recorded {
                return Err(VoterChangeError::Invalid(format!(
                    "Node {id} runs with directory id {recorded}, not {asked}"
                )));
            }
        }
        let known = known_node.map(|n| n.addr);
        if known.is_none() {
            tracing::info!(node = id, %addr, "adding a node to the metadata quorum to make it a voter");
            let added = tokio::time::timeout_at(
                deadline,
                self.raft.add_learner(
                    id,
                    ControllerNode::with_directory(addr, directory_id.map(str::to_string)),
                    false,
                ),
            )
            .await
            .map_err(|_| {
                VoterChangeError::TimedOut(format!(
                    "Request timed out adding node {id} at {addr} to the metadata quorum"
                ))
            })?;
            added.map_err(membership_error)?;
        } else if known.as_deref() != Some(addr) {
            tracing::warn!(
                node = id,
                %addr,
                known_at = ?known,
                "AddRaftVoter names another address than the one the quorum reaches this node at;                  keeping the known one"
            );
        }
        // Caught up: it has matched everything the leader had when the request came.
        let target = self.raft.metrics().borrow().last_log_index;
        let mut metrics = self.raft.metrics();
        loop {
            let matched = metrics
                .borrow_and_update()
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index);
            if matched >= target {
                break;
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(VoterChangeError::Failed("the quorum is shut down".into())),
                Err(_) => {
                    return Err(VoterChangeError::TimedOut(format!(
                        "Aborted add voter operation for {id} since it is lagging behind                          (matched {matched:?} of {target:?})"
                    )))
                }
            }
        }
        tracing::info!(node = id, "making a node a voter of the metadata quorum");
        let changed = tokio::time::timeout_at(
            deadline,
            self.raft.change_membership(
                openraft::ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                true,
            ),
        )
        .await
        .map_err(|_| {
            VoterChangeError::TimedOut(format!(
                "Request timed out waiting for the voter set with {id} to commit"
            ))
        })?;
        changed.map_err(membership_error)?;
        tracing::info!(node = id, voters = ?self.state().voters.keys().collect::<Vec<_>>(), "added a voter to the metadata quorum");
        Ok(())
    }

    /// RemoveRaftVoter (KIP-853), on the leader at `kraft.version` 1: node `id` stops being a
    /// voter and stays a learner (Kafka's observer) while it runs; the leader forgets it once
    /// it has been silent for the observer session timeout. Resolves once the new voter set
    /// is committed. The leader may remove itself; it hands over once that is committed.
    pub async fn remove_voter(
        &self,
        id: NodeId,
        directory_id: Option<&str>,
        timeout: Duration,
    ) -> Result<(), VoterChangeError> {
        let voters = self.voter_change_start("removing")?;
        if !voters.contains(&id) {
            return Err(VoterChangeError::NotFound { id, voters });
        }
        // A voter recorded with a directory id is removed only under that id (Kafka's replica
        // key); one recorded without (a configured voter) under any.
        let recorded = self.node(id).and_then(|n| n.directory_id);
        if let (Some(asked), Some(recorded)) = (directory_id, recorded) {
            if asked != recorded {
                return Err(VoterChangeError::NotFound { id, voters });
            }
        }
        if voters.len() == 1 {
            return Err(VoterChangeError::Invalid(format!(
                "Cannot remove voter {id}: it is the only voter of the metadata quorum"
            )));
        }
        tracing::info!(node = id, "removing a voter from the metadata quorum");
        // Another voter stays a learner. The leader leaves the membership entirely: openraft's
        // leader steps down only once it is no member at all (a learner may lead in
        // openraft); it then joins again as a learner (join_as_learner).
        let retain = id != self.cfg.node_id;
        let changed = tokio::time::timeout(
            timeout,
            self.raft.change_membership(
                openraft::ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                retain,
            ),
        )
        .await
        .map_err(|_| {
            VoterChangeError::TimedOut(format!(
                "Request timed out waiting for the voter set without {id} to commit"
            ))
        })?;
        changed.map_err(membership_error)?;
        tracing::info!(node = id, "removed a voter from the metadata quorum");
        Ok(())
    }

    /// Stops Raft, the listener and its connections, then releases the directory lock.
    pub async fn shutdown(mut self) -> Result<(), QuorumError> {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        let result = self.raft.shutdown().await;
        for task in tasks {
            let _ = task.await;
        }
        result.map_err(|e| QuorumError::Raft(format!("shutdown: {e}")))
    }
}

impl Drop for MetadataQuorum {
    /// Dropped without [`MetadataQuorum::shutdown`]: stop serving at least. Raft stops once its
    /// last handle is gone.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How long a joint membership stays committed before the leader completes it itself: a
/// voter change's caller (`add_voter`, `remove_voter`) proposes the second step within
/// milliseconds of the first one's commit, unless it gave up (its request timed out, or the
/// leader that ran it died).
pub(crate) const ABANDONED_CHANGE_AFTER: Duration = Duration::from_secs(2);

/// openraft's joint consensus is driven by its caller: `change_membership` appends the joint
/// membership, waits for its commit, then appends the final one. A caller that stops in
/// between (a request that timed out while the joint membership could not commit, a leader
/// that died) leaves the membership joint for good, and every later change refused. So the
/// leader watches: a joint membership committed and applied for [`ABANDONED_CHANGE_AFTER`] is
/// completed to its new half (`ReplaceAllVoters`: openraft makes that one uniform step; a
/// leader not in the new half leaves the membership, as `remove_voter` has it). Runs until
/// aborted.
async fn complete_voter_changes(raft: Raft, node_id: NodeId) {
    let mut joint_since: Option<(Option<crate::types::LogId>, Instant)> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (leading, joint, log_id, applied) = {
            let m = raft.metrics();
            let m = m.borrow();
            let configs = m.membership_config.membership().get_joint_config().clone();
            (
                m.state == ServerState::Leader && m.current_leader == Some(node_id),
                (configs.len() > 1).then(|| configs.last().cloned().unwrap_or_default()),
                *m.membership_config.log_id(),
                m.last_applied,
            )
        };
        let Some(new_half) = joint.filter(|_| leading && log_id <= applied) else {
            joint_since = None;
            continue;
        };
        let since = match joint_since {
            Some((id, at)) if id == log_id => at,
            _ => {
                joint_since = Some((log_id, Instant::now()));
                continue;
            }
        };
        if since.elapsed() < ABANDONED_CHANGE_AFTER {
            continue;
        }
        let retain = new_half.contains(&node_id);
        tracing::info!(
            voters = ?new_half,
            "completing a voter change left half way (a joint membership nobody finished)"
        );
        match raft
            .change_membership(openraft::ChangeMembers::ReplaceAllVoters(new_half), retain)
            .await
        {
            Ok(_) => joint_since = None,
            Err(e) => tracing::debug!(error = %e, "cannot complete the voter change yet"),
        }
    }
}

/// How often a learner that has joined asks the leader again to have it (answered OK at once
/// when it is a learner already): a learner the leader removed gets no more log, and the
/// membership it last saw still names it, so it cannot tell on its own.
pub const REJOIN_INTERVAL: Duration = Duration::from_secs(5);

/// Whether a quorum already runs behind one of `cfg`'s bootstrap servers (not this node's own
/// address): one that answers a JOIN with OK (it leads, and takes this node in) or names a
/// leader. The address that answered so.
async fn quorum_elsewhere(pool: &ConnectionPool, cfg: &QuorumConfig) -> Option<String> {
    let req = JoinRequest {
        node_id: cfg.node_id,
        addr: cfg.advertised.clone(),
        directory_id: cfg.directory_id.clone(),
        want_leader_addr: true,
    };
    let payload = serde_json::to_vec(&req).ok()?;
    let timeout = Duration::from_millis(cfg.election_timeout_max_ms.max(500));
    for addr in cfg
        .bootstrap_servers
        .iter()
        .filter(|a| **a != cfg.advertised)
    {
        match pool.call_any(addr, kind::JOIN, &payload, timeout).await {
            Ok((kind::OK, _)) => return Some(addr.clone()),
            Ok((kind::NOT_LEADER, reply)) => {
                if crate::network::parse_not_leader(&reply).0.is_some() {
                    return Some(addr.clone());
                }
            }
            Ok((_, reply)) => {
                // Only a leader answers a JOIN otherwise (a voter with this id under another
                // directory, say): the quorum runs.
                tracing::debug!(%addr, reason = %String::from_utf8_lossy(&reply), "join refused");
                return Some(addr.clone());
            }
            Err(e) => tracing::debug!(%addr, error = %e, "no quorum reached at a bootstrap server"),
        }
    }
    None
}

/// A learner's way in: asks a voter to add it, follows NOT_LEADER answers to the leader, and
/// tries again until the membership (as replicated to this node) has it; then asks again every
/// [`REJOIN_INTERVAL`], which re-adds it if the leader removed it. A node that knows no other
/// voter (a new node found the quorum through bootstrap servers) asks the bootstrap servers in
/// turn; their NOT_LEADER answers name the leader's address.
async fn join_as_learner(
    raft: Raft,
    pool: Arc<ConnectionPool>,
    leader_hint: Arc<std::sync::Mutex<Option<NodeId>>>,
    voters: BTreeMap<NodeId, String>,
    bootstrap_servers: Vec<String>,
    req: JoinRequest,
) {
    let payload = match serde_json::to_vec(&req) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the join request");
            return;
        }
    };
    let node_id = req.node_id;
    let bootstrap: Vec<String> = bootstrap_servers
        .into_iter()
        .filter(|a| *a != req.addr)
        .collect();
    let joined = || {
        raft.metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .is_some()
    };
    // Whom to ask: the configured voters and the membership's (voters added at run time), never
    // this node itself (a configured voter that is no voter any more).
    let order = || -> Vec<NodeId> {
        let mut ids: BTreeSet<NodeId> = voters.keys().copied().collect();
        ids.extend(
            raft.metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids(),
        );
        ids.remove(&node_id);
        ids.into_iter().collect()
    };
    let mut next = 0usize;
    let mut next_bootstrap = 0usize;
    let mut target: Option<NodeId> = None;
    // Leaders' addresses as NOT_LEADER answers named them, for leaders this node knows no
    // address of yet.
    let mut named: BTreeMap<NodeId, String> = BTreeMap::new();
    let mut asked = false;
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let is_voter = || {
        raft.metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == node_id)
    };
    // The membership records this node's directory at another address than it advertises: it
    // moved, and the leader (which sends the log to the recorded address) must be told, voter
    // or not. (A configured voter's entry has no directory id: its address is the configured
    // one on every node, changed by configuration.)
    let moved = || {
        raft.metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .is_some_and(|n| {
                n.addr != req.addr && n.directory_id.is_some() && n.directory_id == req.directory_id
            })
    };
    loop {
        if is_voter() && !moved() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let known_addr = |id: NodeId| {
            // A voter added by AddRaftVoter is in the membership, not in the configured voters.
            voters
                .get(&id)
                .cloned()
                .or_else(|| {
                    raft.metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| n.addr.clone())
                })
                .or_else(|| named.get(&id).cloned())
        };
        // Someone to ask: the leader last named, else the next known voter, else the next
        // bootstrap server (its node id unknown until it answers).
        let who: Option<(Option<NodeId>, String)> = match target.take().filter(|&t| t != node_id) {
            Some(id) => known_addr(id).map(|a| (Some(id), a)),
            None => {
                let order = order();
                if order.is_empty() {
                    (!bootstrap.is_empty()).then(|| {
                        next_bootstrap = (next_bootstrap + 1) % bootstrap.len();
                        (None, bootstrap[next_bootstrap].clone())
                    })
                } else {
                    next = (next + 1) % order.len();
                    let id = order[next];
                    known_addr(id).map(|a| (Some(id), a))
                }
            }
        };
        let Some((id, addr)) = who else {
            // No other voter to ask, and no leader named yet.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let addr = &addr;
        let answer = match id {
            Some(id) => {
                pool.call(id, addr, kind::JOIN, &payload, Duration::from_secs(2))
                    .await
            }
            None => {
                pool.call_any(addr, kind::JOIN, &payload, Duration::from_secs(2))
                    .await
            }
        };
        let peer = id.map_or_else(|| addr.clone(), |id| id.to_string());
        match answer {
            Ok((kind::OK, _)) => {
                if let Some(id) = id {
                    *leader_hint.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
                }
                if !asked {
                    tracing::info!(leader = %peer, "joined the metadata quorum as a learner");
                }
                asked = true;
                // Once the leader said yes, the log reaches this node within a heartbeat or
                // two; once it has, ask again only now and then (see REJOIN_INTERVAL).
                let pause = if joined() && !moved() {
                    REJOIN_INTERVAL
                } else {
                    Duration::from_millis(500)
                };
                tokio::time::sleep(pause).await;
                target = *leader_hint.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            Ok((kind::NOT_LEADER, reply)) => {
                let (leader, leader_addr) = crate::network::parse_not_leader(&reply);
                target = leader;
                if let Some(leader) = leader {
                    *leader_hint.lock().unwrap_or_else(|p| p.into_inner()) = Some(leader);
                    if let Some(a) = leader_addr {
                        named.insert(leader, a);
                    }
                }
            }
            Ok((_, reply)) => {
                let reason = String::from_utf8_lossy(&reply).into_owned();
                if refused.insert(reason.clone()) {
                    tracing::warn!(voter = %peer, %reason, "the quorum refused this learner");
                }
            }
            Err(
                crate::network::TransportError::Refused { reason, .. }
                | crate::network::TransportError::Tls { reason, .. },
            ) => {
                // Said once per reason: the voters will not change their minds.
                if refused.insert(reason.clone()) {
                    tracing::error!(voter = %peer, %reason, "a voter refuses this learner");
                }
            }
            Err(e) => tracing::debug!(voter = %peer, error = %e, "cannot reach a voter to join"),
        }
        let pause = if target.is_some() {
            20
        } else if joined() {
            // A member already (from its log), the leader unknown or unreachable for now.
            500
        } else {
            100
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::*;
    use crate::tests::{addr, config, free_port, topic};
    use futures::FutureExt;

    struct Silent;

    impl ControllerRpcHandler for Silent {
        fn handle(
            &self,
            _from: NodeId,
            _payload: Bytes,
        ) -> futures::future::BoxFuture<'static, Bytes> {
            futures::future::ready(Bytes::new()).boxed()
        }
    }

    /// Waits until `q` leads in a term after `after`.
    async fn leading(q: &MetadataQuorum, after: u64) -> LeaderAndEpoch {
        let mut le = q.leader_and_epoch();
        let now = tokio::time::timeout(
            Duration::from_secs(5),
            le.wait_for(|l| l.leader == Some(q.node_id()) && l.epoch > after),
        )
        .await
        .expect("leads within 5 s")
        .expect("channel open");
        *now
    }

    /// Only the term this node leads in may append: a proposal of an earlier or a later term
    /// is refused with NotLeader and appends nothing, though this node is the leader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proposal_of_another_term_is_refused_though_this_node_leads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let voters = BTreeMap::from([(1, addr(port))]);
        let q = MetadataQuorum::start(config(1, dir.path(), port, &voters), Arc::new(Silent))
            .await
            .expect("quorum starts");
        let now = leading(&q, 0).await;
        assert!(q.propose_in_epoch(now.epoch, topic(0)).await.is_ok());
        let before = q.state().last_log_index;
        for epoch in [now.epoch - 1, now.epoch + 1] {
            assert_eq!(
                q.propose_in_epoch(epoch, topic(1)).await,
                Err(ProposeError::NotLeader { leader: Some(1) })
            );
        }
        assert_eq!(q.state().last_log_index, before, "nothing appended");
        assert!(q.propose_in_epoch(now.epoch, topic(1)).await.is_ok());
        q.shutdown().await.expect("shutdown");
    }
}
