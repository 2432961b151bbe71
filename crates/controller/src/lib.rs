//! The active controller of a gregor cluster and the broker's client of it (Kafka KRaft's
//! `QuorumController` and `BrokerLifecycleManager`).
//!
//! ```text
//!  broker                                   controller node (quorum leader)
//!  ┌──────────────────────────┐  Controller  ┌───────────────────────────────────────────┐
//!  │ BrokerLifecycleManager   │  Request     │ QuorumController (one task, one decision  │
//!  │  register, heartbeat,    ├─────────────►│  at a time)                                │
//!  │  controlled shutdown     │  (bytes over │   decide: gregor_metadata::controller      │
//!  │ admin handlers (Create-  │  the channel)│   sessions: BrokerHeartbeatManager         │
//!  │  Topics, AlterPartition…)│◄─────────────┤   propose ─► MetadataLog ─► image (watch)  │
//!  └──────────────────────────┘  Controller  └───────────────────────────────────────────┘
//!                                Response           ▲ Raft quorum, or LocalMetadataLog
//! ```
//!
//! * [`log`]: [`MetadataLog`], what the controller needs from the metadata quorum, and
//!   [`LocalMetadataLog`], an in-memory one for tests.
//! * [`controller`]: [`QuorumController`], the runtime: broker registration and sessions,
//!   fencing of silent brokers, controlled shutdown, topics, partitions, ISR changes,
//!   elections, reassignments, topic configs, producer id blocks (AllocateProducerIds), client
//!   quotas, SCRAM credentials (AlterUserScramCredentials), and the periodic preferred-leader
//!   election.
//! * [`protocol`]: [`ControllerRequest`] / [`ControllerResponse`] and their versioned bytes.
//! * [`lifecycle`]: [`BrokerLifecycleManager`] over a [`ControllerChannel`].
//! * [`clock`]: injected time.
//! * `sim` (tests only): a seeded simulation of brokers, a lossy network and controller
//!   failovers around the real controller, with invariants checked after every commit.
//!
//! Not wired into the broker or the Raft quorum yet: the quorum adapts to [`MetadataLog`] and
//! carries [`ControllerRequest`] bytes to [`QuorumController::handle_bytes`].

pub mod clock;
pub mod controller;
pub mod lifecycle;
pub mod log;
pub mod protocol;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use controller::{not_controller, ControllerConfig, QuorumController};
pub use lifecycle::{
    BrokerIdentity, BrokerLifecycleManager, BrokerState, ChannelError, ControllerChannel,
    LifecycleConfig, DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS, DEFAULT_BROKER_SESSION_TIMEOUT_MS,
};
pub use log::{LocalMetadataLog, MetadataLog, ProposeError};
pub use protocol::{ControllerRequest, ControllerResponse, ProtocolError};
