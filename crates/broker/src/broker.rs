//! The broker's shared state: what every connection and handler sees (Kafka's `KafkaApis`
//! dependencies). The listener (server.rs) builds it at startup; handlers, the group
//! coordinator and the periodic tasks take it by `Arc`, never the socket or the listener.
//!
//! ```text
//!  server (listener, startup) ──builds──► Broker { config, replicas, groups, advertised, clock }
//!  connection ─► router ─► handlers ──────────┘        │           │
//!                                   ReplicaManager (partitions, purgatory)   GroupRuntime
//! ```

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::group_coordinator::GroupRuntime;
use crate::replica_manager::ReplicaManager;

/// Shared state every connection and handler sees.
#[derive(Debug)]
pub struct Broker {
    /// Configuration.
    pub config: Arc<BrokerConfig>,
    /// Topics, partitions, logs, and the purgatory where produces and fetches wait.
    pub replicas: ReplicaManager,
    /// Host and port given to clients in Metadata.
    pub advertised: (String, u16),
    /// Consumer group coordinator.
    pub groups: Arc<GroupRuntime>,
    /// Time, wherever it decides something (the same clock the replica manager and the group
    /// runtime use).
    pub clock: Arc<dyn Clock>,
}

impl Broker {
    /// Opens the storage (blocking: log recovery, `__consumer_offsets` replay) and builds the
    /// state. The listener opens the storage first and binds after, so it builds the state from
    /// [`open_storage`]'s parts itself.
    pub fn open(
        config: Arc<BrokerConfig>,
        clock: Arc<dyn Clock>,
        advertised: (String, u16),
    ) -> anyhow::Result<Broker> {
        let (replicas, groups) = open_storage(Arc::clone(&config), Arc::clone(&clock))?;
        Ok(Broker {
            config,
            replicas,
            advertised,
            groups,
            clock,
        })
    }
}

impl AsRef<ReplicaManager> for Broker {
    fn as_ref(&self) -> &ReplicaManager {
        &self.replicas
    }
}

/// Blocking: opens the data directory (every partition's log, recovering after a crash) and
/// the group coordinator (creates and replays `__consumer_offsets`).
pub fn open_storage(
    config: Arc<BrokerConfig>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(ReplicaManager, Arc<GroupRuntime>)> {
    let replicas = ReplicaManager::open(config, clock)?;
    let groups = GroupRuntime::open(&replicas)?;
    Ok((replicas, Arc::new(groups)))
}

/// A broker over `config` (storage opened, no listener, system clock) for unit tests.
#[cfg(test)]
pub(crate) fn test_broker(config: BrokerConfig) -> Arc<Broker> {
    Arc::new(
        Broker::open(
            Arc::new(config),
            Arc::new(crate::clock::SystemClock),
            ("127.0.0.1".into(), 9092),
        )
        .expect("open broker"),
    )
}

/// [`test_broker`] on a given clock.
#[cfg(test)]
pub(crate) fn test_broker_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Arc<Broker> {
    Arc::new(
        Broker::open(Arc::new(config), clock, ("127.0.0.1".into(), 9092)).expect("open broker"),
    )
}
