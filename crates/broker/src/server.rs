//! The listener and the broker's lifetime: open storage, bind, accept connections (bounded by
//! `max.connections`), run the periodic tasks (retention, checkpoints, Kafka-style flushes), and
//! on shutdown stop accepting, then flush and mark the data directory clean (or return an error
//! when the final flush failed, which the binary turns into a non-zero exit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::config::{BrokerConfig, FlushPolicy};
use crate::replica_manager::ReplicaManager;

/// Shared state every connection and handler sees.
#[derive(Debug)]
pub struct Broker {
    /// Configuration.
    pub config: Arc<BrokerConfig>,
    /// Topics, partitions, logs.
    pub replicas: ReplicaManager,
    /// Host and port given to clients in Metadata.
    pub advertised: (String, u16),
    /// Consumer group coordinator.
    pub groups: Arc<crate::group_coordinator::GroupRuntime>,
}

/// Runs a broker until `shutdown` turns true. Logs `listening on HOST:PORT` once bound.
pub async fn run(config: BrokerConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    for key in &config.ignored {
        warn!(key = %key, "config key not used by gregor; ignored");
    }
    let config = Arc::new(config);
    let (replicas, groups) = {
        let c = Arc::clone(&config);
        tokio::task::spawn_blocking(move || {
            let replicas = ReplicaManager::open(c)?;
            let groups = crate::group_coordinator::GroupRuntime::open(&replicas)?;
            anyhow::Ok((replicas, Arc::new(groups)))
        })
        .await??
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let bound: SocketAddr = listener.local_addr()?;
    let advertised = config.advertised.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            bound.ip().to_string()
        };
        (host, bound.port())
    });
    let broker = Arc::new(Broker {
        config: Arc::clone(&config),
        replicas,
        advertised,
        groups,
    });
    info!("listening on {bound}");

    let mut tasks = spawn_periodic_tasks(&broker, shutdown.clone());
    tasks.push(tokio::spawn(
        Arc::clone(&broker.groups).run_ticker(Arc::clone(&broker)),
    ));
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let broker = Arc::clone(&broker);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    crate::connection::serve(broker, stream, peer, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    info!("shutting down");
    for t in tasks {
        t.abort();
    }
    let b = Arc::clone(&broker);
    // A failed final flush is not a clean stop: the caller exits non-zero so that whoever
    // stopped the broker (an operator, systemd, a rolling restart) learns that acknowledged
    // data may not be on disk, and the next start recovers the logs (no clean-shutdown marker).
    match tokio::task::spawn_blocking(move || b.replicas.shutdown()).await {
        Ok(Ok(())) => {
            info!("clean shutdown complete");
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "shutdown flush failed; the data directory is not marked clean");
            Err(anyhow::anyhow!(
                "shutdown flush failed: {e}; the next start will recover the logs"
            ))
        }
        Err(e) => {
            error!(error = %e, "shutdown task failed");
            Err(anyhow::anyhow!("shutdown task failed: {e}"))
        }
    }
}

fn spawn_periodic_tasks(
    broker: &Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let every = |ms: u64, b: Arc<Broker>, f: fn(&Broker)| {
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tick.tick() => {}
                }
                let b2 = Arc::clone(&b);
                // Retention and checkpoints touch the disk; keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || f(&b2)).await;
            }
        })
    };
    let c = &broker.config;
    tasks.push(every(
        c.retention_check_interval_ms,
        Arc::clone(broker),
        |b| b.replicas.apply_retention(),
    ));
    tasks.push(every(c.checkpoint_interval_ms, Arc::clone(broker), |b| {
        b.replicas.checkpoint()
    }));
    if let FlushPolicy::Interval {
        messages,
        interval_ms,
    } = c.flush
    {
        if interval_ms != i64::MAX {
            tasks.push(every(interval_ms as u64, Arc::clone(broker), |b| {
                b.replicas.flush_by_policy(true)
            }));
        }
        if messages != i64::MAX {
            tasks.push(every(100, Arc::clone(broker), |b| {
                b.replicas.flush_by_policy(false)
            }));
        }
    }
    tasks
}
