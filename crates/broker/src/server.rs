//! The listener and the broker's lifetime: open storage, bind, build the shared state
//! ([`Broker`], broker.rs), accept connections (bounded by `max.connections` and, per client
//! address, `max.connections.per.ip`), run the periodic tasks (retention, checkpoints,
//! Kafka-style flushes, the replication tick), and on shutdown stop accepting, then flush and
//! mark the data directory clean (or return an error when the final flush failed, which the
//! binary turns into a non-zero exit). Nothing else in the crate depends on this module.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::broker::{open_storage, Broker};
use crate::clock::{Clock, SystemClock};
use crate::config::{BrokerConfig, FlushPolicy, NetConfig};
use crate::memory_pool::MemoryPool;

/// Runs a broker until `shutdown` turns true. Logs `listening on HOST:PORT` once bound.
pub async fn run(config: BrokerConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    config.validate()?;
    if !config.cluster.is_single_node(config.node_id) {
        anyhow::bail!(
            "controller.quorum.voters names other nodes ({}), but this build runs a single node \
             only: the metadata quorum is not wired into the broker yet",
            crate::config::voters_text(&config.cluster.voters)
        );
    }
    for key in &config.ignored {
        warn!(key = %key, "config key not used by gregor; ignored");
    }
    let config = Arc::new(config);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (replicas, groups) = {
        let (c, clock) = (Arc::clone(&config), Arc::clone(&clock));
        tokio::task::spawn_blocking(move || open_storage(c, clock)).await??
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
        clock,
    });
    info!("listening on {bound}");

    let mut tasks = spawn_periodic_tasks(&broker, shutdown.clone());
    tasks.push(tokio::spawn(
        Arc::clone(&broker.groups).run_ticker(Arc::clone(&broker)),
    ));
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_ip = Arc::new(ConnectionQuotas::new(config.net.clone()));
    let pool = Arc::new(MemoryPool::new(config.net.queued_max_request_bytes));
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
                // An IPv4 client of a dual-stack listener counts as its IPv4 address.
                let ip = peer.ip().to_canonical();
                let Some(quota) = ConnectionQuotas::open(&per_ip, ip) else {
                    // Kafka closes the socket at once and logs the address at INFO.
                    info!(
                        %peer,
                        max = per_ip.config.max_connections_for(ip),
                        "rejected connection: the address already has the maximum number of \
                         connections (max.connections.per.ip)"
                    );
                    drop(stream);
                    continue;
                };
                let broker = Arc::clone(&broker);
                let pool = Arc::clone(&pool);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    crate::connection::serve(broker, pool, stream, peer, shutdown).await;
                    drop(quota);
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

/// Connections open per client address (Kafka's `ConnectionQuotas`, per-IP part). Taken once
/// per accepted connection and given back when it ends, so a mutex is fine here.
#[derive(Debug)]
struct ConnectionQuotas {
    /// `max.connections.per.ip` and its overrides.
    config: NetConfig,
    /// Open connections per address; an address leaves the map with its last connection.
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's share of its address's quota, given back on drop.
struct QuotaGuard {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    fn new(config: NetConfig) -> Self {
        ConnectionQuotas {
            config,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, or `None` if the address is at its limit.
    fn open(quotas: &Arc<ConnectionQuotas>, ip: IpAddr) -> Option<QuotaGuard> {
        let max = quotas.config.max_connections_for(ip);
        let mut counts = quotas.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(QuotaGuard {
            quotas: Arc::clone(quotas),
            ip,
        })
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut counts = self.quotas.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
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
    // Kafka's isr-expiration task: half the lag limit, so a lagging follower leaves the ISR
    // within 1.5 × replica.lag.time.max.ms. Its AlterPartition proposals wait in the
    // partitions' queues until the controller exists to take them.
    tasks.push(every(
        (c.cluster.replica_lag_time_max_ms / 2).max(1) as u64,
        Arc::clone(broker),
        |b| b.replicas.tick_replication(),
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_quotas_count_open_connections() {
        let mut net = NetConfig {
            max_connections_per_ip: 2,
            ..NetConfig::default()
        };
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        net.max_connections_per_ip_overrides.insert(b, 0);
        let q = Arc::new(ConnectionQuotas::new(net));
        let first = ConnectionQuotas::open(&q, a).expect("1 of 2");
        let second = ConnectionQuotas::open(&q, a).expect("2 of 2");
        assert!(ConnectionQuotas::open(&q, a).is_none(), "3 of 2");
        assert!(ConnectionQuotas::open(&q, b).is_none(), "override 0");
        drop(first);
        let third = ConnectionQuotas::open(&q, a).expect("a slot was given back");
        drop((second, third));
        assert!(q.counts.lock().expect("lock").is_empty());
    }
}
