//! The metadata quorum: gregor's metadata log replicated with openraft, so that every node
//! holds the same committed [`MetadataImage`](gregor_metadata::MetadataImage).
//!
//! ```text
//!   controller layer (active on the leader)          every node
//!      │ propose(Vec<MetadataRecord>)                   ▲ image(): watch<Arc<MetadataImage>>
//!      ▼                                                │
//!  ┌──────────────── MetadataQuorum ─────────────────────────────────────────────┐
//!  │ openraft::Raft<TypeConfig>                                                  │
//!  │   log_store:     <dir>/log (len+CRC frames), vote, committed, purged        │
//!  │   state_machine: MetadataDelta::replay → apply → watch (one swap per batch) │
//!  │                  <dir>/snapshot every `snapshot_every` entries              │
//!  │   network:       TCP (or TLS: QuorumTls), u32 length | kind | JSON;         │
//!  │                  handshake (cluster id, node id, voter ids);                │
//!  │                  APPEND_ENTRIES, VOTE, INSTALL_SNAPSHOT                     │
//!  │ listener on the controller address also serves:                             │
//!  │   CONTROLLER opaque bytes → ControllerRpcHandler (leader only)              │
//!  │   JOIN       a learner asking the leader to add it                          │
//!  │   Kafka requests (first byte 0) → KafkaConnectionHandler, once set          │
//!  └─────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * Voters are configured (`QuorumConfig::voters`, the `--voters` flag). A voter with an empty
//!   log initializes the membership with exactly those voters; every voter does, which openraft
//!   allows because the first entry is the same everywhere. On restart the voters in the log
//!   must equal the configured ones, or the node refuses to start; and nodes configured with
//!   different voter sets refuse each other's connections (two different initial memberships
//!   would share log id 0, which Raft cannot tell apart). One voter alone elects itself at once.
//! * At `kraft.version` 1 (KIP-853; a feature level record in the log) the voters are the
//!   log's: [`MetadataQuorum::add_voter`] (AddRaftVoter) makes a caught-up learner a voter and
//!   [`MetadataQuorum::remove_voter`] (RemoveRaftVoter) takes one out, each with openraft's
//!   joint consensus; the configured voters then only bootstrap a new cluster, tell a node
//!   whom to ask first and keep the handshake's check, and a restart takes the log's voters.
//!   Whether a node is a voter, whom it asks for pre-votes (a majority of both halves of a
//!   joint membership) and whether openraft's own timer elects (a sole voter) follow the
//!   membership it has.
//! * A voter that starts without a log (a new or wiped data dir) does not vote until it has
//!   caught up with a quorum leader (`vote_gate`), except at the cluster's first start: a
//!   wiped voter's vote could otherwise elect a candidate missing committed records.
//! * A node not among the voters is a learner (a broker-only node, or a controller waiting to
//!   be added): it asks the leader to add it, then receives the log like a follower and never
//!   votes. A removed voter stays a learner; a leader that removed itself leaves the
//!   membership (openraft's leader steps down only then) and joins again as one.
//! * The leader removes a learner that has not answered it for the observer session timeout
//!   (5 minutes, Kafka's for observers; `contacts`), and reports when each node last answered
//!   (`QuorumState::last_answer_ms`, DescribeQuorum's last fetch times).
//! * `propose` resolves after the batch is committed and applied on this node. A committed
//!   batch that does not replay on the image is skipped on every node alike (see
//!   `state_machine`), and `propose` reports it as [`ProposeError::Rejected`].
//! * The directory is locked (`flock`), so two processes cannot share it, and it records the
//!   cluster id and node id it belongs to, so it cannot be reused by another node or cluster.
//!
//! The controller layer (`gregor-controller`: placement, fencing, elections from
//! `gregor-metadata`) sits on top, using [`MetadataQuorum::propose`],
//! [`MetadataQuorum::leadership`] and the controller RPCs; the broker starts a quorum for every
//! node of a cluster.

mod contacts;
mod fsutil;
mod log_store;
mod network;
mod pre_vote;
mod quorum;
mod quorum_sasl;
mod snapshot_policy;
mod state_machine;
mod types;
mod vote_gate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

pub use network::{
    went_away, ControllerRpcHandler, KafkaConnectionHandler, QuorumStream, QuorumTls,
};
pub use quorum::{
    CallError, LeaderAndEpoch, MetadataQuorum, ProposeError, QuorumConfig, QuorumCounters,
    QuorumError, QuorumState, VoterChangeError,
};
pub use quorum_sasl::{
    QuorumSasl, QuorumSaslClient, QuorumSaslClientExchange, QuorumSaslExchange, QuorumSaslServer,
    SaslStep,
};
pub use types::{ApplyOutcome, ControllerNode, MetadataBatch, NodeId, TypeConfig};
