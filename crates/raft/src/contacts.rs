//! When each peer last answered this node's Raft RPCs, and the leader's sweep of learners that
//! stopped answering.
//!
//! openraft 0.9 reports each peer's matched log index but not when it was last heard from, so
//! the network layer records it: every AppendEntries (a heartbeat included) or snapshot chunk
//! a peer answers marks it alive. DescribeQuorum reports the time as the replica's last fetch
//! (Kafka's `lastFetchTimestamp`).
//!
//! A learner is a broker-only node. Kafka's quorum leader forgets an observer that has not
//! fetched for five minutes (`LeaderState.OBSERVER_SESSION_TIMEOUT_MS`), so a broker that died
//! and was never unregistered leaves `kafka-metadata-quorum describe --replication`. gregor's
//! leader does the same by removing such a learner from the Raft membership, which also stops
//! the replication that kept reconnecting to it; a learner that comes back joins again by
//! itself (its join task asks every [`crate::quorum::REJOIN_INTERVAL`]).
//!
//! ```text
//!  PeerClient::rpc ──tried──► PeerContacts ◄──answered── a peer's OK reply
//!                                  │
//!  sweep (leader, every tick): a learner silent for the session timeout, under a leadership
//!  at least that old ──► RemoveNodes{learner}
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::ServerState;

use crate::types::{NodeId, Raft};

/// Kafka's `LeaderState.OBSERVER_SESSION_TIMEOUT_MS`: how long an observer may go without
/// fetching before the leader forgets it.
pub const OBSERVER_SESSION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Contact {
    /// When this node first sent the peer anything (the start of its silence if it never
    /// answered).
    first_tried: Instant,
    /// The last answer: when (monotonic) and the wall-clock time in ms since the epoch.
    last_answer: Option<(Instant, i64)>,
}

/// Per peer, when this node first tried it and when it last answered.
#[derive(Debug, Default)]
pub(crate) struct PeerContacts {
    peers: Mutex<HashMap<NodeId, Contact>>,
}

impl PeerContacts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Contact>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node is about to send `peer` an RPC, at `now`.
    pub(crate) fn tried(&self, peer: NodeId, now: Instant) {
        self.lock().entry(peer).or_insert(Contact {
            first_tried: now,
            last_answer: None,
        });
    }

    /// `peer` answered an RPC at `now` (`wall_ms`: the same moment in ms since the epoch).
    pub(crate) fn answered(&self, peer: NodeId, now: Instant, wall_ms: i64) {
        self.lock()
            .entry(peer)
            .and_modify(|c| c.last_answer = Some((now, wall_ms)))
            .or_insert(Contact {
                first_tried: now,
                last_answer: Some((now, wall_ms)),
            });
    }

    /// When each peer last answered, in ms since the epoch.
    pub(crate) fn last_answers_ms(&self) -> BTreeMap<NodeId, i64> {
        self.lock()
            .iter()
            .filter_map(|(id, c)| Some((*id, c.last_answer?.1)))
            .collect()
    }

    /// How long `peer` has gone without answering, at `now` (`None`: never tried).
    pub(crate) fn silent_for(&self, peer: NodeId, now: Instant) -> Option<Duration> {
        let c = *self.lock().get(&peer)?;
        let since = c.last_answer.map_or(c.first_tried, |(at, _)| at);
        Some(now.saturating_duration_since(since))
    }
}

/// Now, in ms since the epoch.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The learners to remove at `now`: silent for `timeout`, when this node has led for at least
/// as long (a new leader first gives every learner a full timeout to answer it).
pub(crate) fn silent_learners(
    contacts: &PeerContacts,
    learners: &BTreeSet<NodeId>,
    leading_since: Instant,
    now: Instant,
    timeout: Duration,
) -> Vec<NodeId> {
    if now.saturating_duration_since(leading_since) < timeout {
        return Vec::new();
    }
    learners
        .iter()
        .copied()
        .filter(|&id| contacts.silent_for(id, now).is_some_and(|s| s >= timeout))
        .collect()
}

/// The leader's sweep: every `timeout / 10` (at least 100 ms, at most 10 s), while this node
/// leads, removes the learners that [`silent_learners`] names. Runs until aborted.
pub(crate) async fn sweep(
    raft: Raft,
    node_id: NodeId,
    contacts: std::sync::Arc<PeerContacts>,
    timeout: Duration,
) {
    let tick = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(10));
    // The term this node leads in, and since when.
    let mut leading: Option<(u64, Instant)> = None;
    loop {
        tokio::time::sleep(tick).await;
        let (term, learners) = {
            let m = raft.metrics();
            let m = m.borrow();
            if m.state != ServerState::Leader || m.current_leader != Some(node_id) {
                leading = None;
                continue;
            }
            let membership = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let learners: BTreeSet<NodeId> = membership
                .nodes()
                .map(|(id, _)| *id)
                .filter(|id| !voters.contains(id))
                .collect();
            (m.current_term, learners)
        };
        let now = Instant::now();
        let since = match leading {
            Some((t, since)) if t == term => since,
            _ => {
                leading = Some((term, now));
                now
            }
        };
        for id in silent_learners(&contacts, &learners, since, now, timeout) {
            tracing::info!(
                node = id,
                silent_s = timeout.as_secs(),
                "a learner of the metadata quorum has not answered the leader for the observer \
                 session timeout: removing it (it joins again if it comes back)"
            );
            if let Err(e) = crate::quorum::drop_learner(&raft, id).await {
                tracing::warn!(node = id, error = %e, "cannot remove a silent learner");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(300);

    #[test]
    fn a_learner_silent_for_the_timeout_is_named_once_the_leadership_is_as_old() {
        let c = PeerContacts::default();
        let t0 = Instant::now();
        c.tried(4, t0);
        c.tried(5, t0);
        c.answered(5, t0, 1);
        let learners = BTreeSet::from([4, 5, 6]);
        // A leadership younger than the timeout names no one.
        assert!(silent_learners(&c, &learners, t0, t0 + T / 2, T).is_empty());
        // 4 never answered, 5 answered at t0, 6 was never tried (not this node's to judge).
        assert_eq!(silent_learners(&c, &learners, t0, t0 + T, T), vec![4, 5]);
        // 5 answers again: only 4 is silent.
        c.answered(5, t0 + T / 2, 2);
        assert_eq!(silent_learners(&c, &learners, t0, t0 + T, T), vec![4]);
        // A leadership that began at t0 + T / 2 waits until t0 + 3T / 2.
        assert!(silent_learners(&c, &learners, t0 + T / 2, t0 + T, T).is_empty());
        assert_eq!(
            silent_learners(&c, &learners, t0 + T / 2, t0 + T * 3 / 2, T),
            vec![4, 5]
        );
    }

    #[test]
    fn last_answers_are_those_of_peers_that_answered() {
        let c = PeerContacts::default();
        let t0 = Instant::now();
        c.tried(2, t0);
        c.answered(3, t0, 42);
        c.answered(3, t0 + T, 43);
        assert_eq!(c.last_answers_ms(), BTreeMap::from([(3, 43)]));
        assert_eq!(c.silent_for(2, t0 + T), Some(T));
        assert_eq!(c.silent_for(3, t0 + T * 2), Some(T));
        assert_eq!(c.silent_for(7, t0), None);
    }
}
