//! Connections open against `max.connections` and each listener's
//! `listener.name.<listener>.max.connections` (KIP-402; both dynamic, read for each
//! connection), as Kafka's `ConnectionQuotas` counts them:
//!
//! - a listener accepts while it is under its own limit and the broker under `max.connections`;
//! - the inter-broker listener, when the broker has other listeners too, needs only its own
//!   limit: replication and the brokers' own requests go on when clients have taken every
//!   connection. A connection it takes past `max.connections` closes the least recently used
//!   connection of another listener (Kafka's processors' `closeExcessConnections`), which
//!   brings the count back.
//!
//! A limit of 0 lets one connection in, as gregor's `max.connections` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The limits in force for the next connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLimits {
    /// `max.connections`.
    pub broker: usize,
    /// By listener (the accept loop's index): its `max.connections`.
    pub listeners: Vec<usize>,
    /// The inter-broker listener's index, when it is protected (there are other listeners).
    pub protected: Option<usize>,
}

impl SlotLimits {
    /// The limits for `listeners` (upper-case names, by index): `max.connections`, the
    /// listeners' own, and which is the inter-broker one (`inter_broker`, upper-case).
    pub fn new(
        max_connections: usize,
        per_listener: &std::collections::BTreeMap<String, usize>,
        listeners: &[String],
        inter_broker: &str,
    ) -> SlotLimits {
        let protected = listeners
            .iter()
            .position(|l| l == inter_broker)
            .filter(|_| listeners.len() > 1);
        SlotLimits {
            broker: max_connections,
            listeners: listeners
                .iter()
                .map(|l| per_listener.get(l).copied().unwrap_or(usize::MAX))
                .collect(),
            protected,
        }
    }
}

/// The connections open, by listener, and the ones another listener's connection may close.
#[derive(Debug, Default)]
pub struct ConnectionSlots {
    state: Mutex<State>,
    /// A connection ended.
    freed: Notify,
    /// The order connections were last used in (see [`LastUse`]).
    clock: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    per_listener: HashMap<usize, usize>,
    total: usize,
    next_id: u64,
    /// Open connections of the unprotected listeners, by id.
    closable: HashMap<u64, Closable>,
}

#[derive(Debug)]
struct Closable {
    listener: usize,
    last_use: Arc<AtomicU64>,
    close: Arc<Notify>,
}

/// When a connection was last used, in [`ConnectionSlots`]' own order: its serving loop marks
/// each request it reads.
#[derive(Debug, Clone)]
pub struct LastUse {
    slots: Arc<ConnectionSlots>,
    at: Arc<AtomicU64>,
}

impl LastUse {
    /// The connection is in use now.
    pub fn mark(&self) {
        let now = self.slots.clock.fetch_add(1, Ordering::Relaxed);
        self.at.store(now, Ordering::Relaxed);
    }
}

/// One connection's slot, given back on drop.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<ConnectionSlots>,
    listener: usize,
    id: u64,
    /// Notified when the connection must close to make room for an inter-broker one.
    pub close: Arc<Notify>,
    pub last_use: LastUse,
}

impl ConnectionSlots {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether listener `i` may take a connection now.
    pub fn available(&self, i: usize, limits: &SlotLimits) -> bool {
        let state = self.state();
        let own = limits
            .listeners
            .get(i)
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        if state.per_listener.get(&i).copied().unwrap_or(0) >= own {
            return false;
        }
        limits.protected == Some(i) || state.total < limits.broker.max(1)
    }

    /// Resolves when a connection has ended since the last call (or at once if one did before
    /// anybody waited).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }

    /// Counts a connection accepted on listener `i`. Past `max.connections` (only the protected
    /// inter-broker listener takes one then), the least recently used connection of another
    /// listener is told to close; its listener's index is returned with the guard.
    pub fn open(self: &Arc<Self>, i: usize, limits: &SlotLimits) -> (SlotGuard, Option<usize>) {
        let mut state = self.state();
        state.total += 1;
        *state.per_listener.entry(i).or_insert(0) += 1;
        let id = state.next_id;
        state.next_id += 1;
        let close = Arc::new(Notify::new());
        let at = Arc::new(AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)));
        let mut evicted = None;
        if limits.protected == Some(i) {
            if state.total > limits.broker.max(1) {
                let lru = state
                    .closable
                    .iter()
                    .min_by_key(|(_, c)| c.last_use.load(Ordering::Relaxed))
                    .map(|(&id, _)| id);
                if let Some(c) = lru.and_then(|id| state.closable.remove(&id)) {
                    c.close.notify_one();
                    evicted = Some(c.listener);
                }
            }
        } else {
            state.closable.insert(
                id,
                Closable {
                    listener: i,
                    last_use: Arc::clone(&at),
                    close: Arc::clone(&close),
                },
            );
        }
        drop(state);
        let guard = SlotGuard {
            slots: Arc::clone(self),
            listener: i,
            id,
            close,
            last_use: LastUse {
                slots: Arc::clone(self),
                at,
            },
        };
        (guard, evicted)
    }

    /// Connections open: in all, and on listener `i`.
    #[cfg(test)]
    pub fn open_count(&self, i: usize) -> (usize, usize) {
        let state = self.state();
        (
            state.total,
            state.per_listener.get(&i).copied().unwrap_or(0),
        )
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_listener.get_mut(&self.listener) {
            *n = n.saturating_sub(1);
        }
        state.closable.remove(&self.id);
        drop(state);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn limits(broker: usize, per: &[(&str, usize)]) -> SlotLimits {
        let per: BTreeMap<String, usize> = per.iter().map(|(l, n)| (l.to_string(), *n)).collect();
        SlotLimits::new(
            broker,
            &per,
            &["INTERNAL".to_string(), "EXTERNAL".to_string()],
            "INTERNAL",
        )
    }

    #[test]
    fn a_listener_is_held_to_its_own_limit_and_the_brokers() {
        let slots = Arc::new(ConnectionSlots::default());
        let l = limits(3, &[("EXTERNAL", 2)]);
        assert_eq!(l.protected, Some(0));
        let (a, _) = slots.open(1, &l);
        let (_b, _) = slots.open(1, &l);
        assert!(!slots.available(1, &l), "EXTERNAL at its own 2");
        assert!(slots.available(0, &l));
        drop(a);
        assert!(slots.available(1, &l));
        let (_c, _) = slots.open(0, &l);
        let (_d, _) = slots.open(0, &l);
        assert_eq!(slots.open_count(1), (3, 1));
        assert!(!slots.available(1, &l), "the broker is at its 3");
        // A larger max.connections, no listener limit: room again.
        let l = limits(4, &[]);
        assert!(slots.available(1, &l));
        let (_e, _) = slots.open(1, &l);
        assert!(!slots.available(1, &l));
    }

    #[tokio::test]
    async fn the_inter_broker_listener_takes_a_connection_past_the_limit_and_closes_the_lru() {
        let slots = Arc::new(ConnectionSlots::default());
        let l = limits(2, &[]);
        let (old, _) = slots.open(1, &l);
        let (recent, _) = slots.open(1, &l);
        // The first one is used after the second: the second is the least recently used.
        old.last_use.mark();
        assert!(!slots.available(1, &l));
        assert!(
            slots.available(0, &l),
            "protected: only its own limit counts"
        );
        let (internal, evicted) = slots.open(0, &l);
        assert_eq!(evicted, Some(1), "a connection of EXTERNAL");
        tokio::time::timeout(std::time::Duration::from_secs(1), recent.close.notified())
            .await
            .expect("the least recently used connection is told to close");
        let told =
            tokio::time::timeout(std::time::Duration::from_millis(50), old.close.notified()).await;
        assert!(told.is_err(), "only one is closed");
        drop(recent);
        assert_eq!(slots.open_count(0), (2, 1));
        // The inter-broker listener alone: not protected, the broker's limit holds it too.
        let single = SlotLimits::new(2, &BTreeMap::new(), &["INTERNAL".to_string()], "INTERNAL");
        assert_eq!(single.protected, None);
        assert!(!slots.available(0, &single));
        drop(internal);
        assert!(slots.available(0, &single));
    }

    #[tokio::test]
    async fn a_freed_slot_is_signalled() {
        let slots = Arc::new(ConnectionSlots::default());
        let l = limits(1, &[]);
        let (a, _) = slots.open(1, &l);
        let waiter = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.freed().await })
        };
        tokio::task::yield_now().await;
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("freed")
            .expect("task");
    }
}
