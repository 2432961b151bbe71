//! Pre-vote (the Raft thesis, §9.6; Kafka's KIP-996): a voter that stops hearing from the
//! leader first asks the other voters whether they would vote for it, and stands for election
//! (bumping its term) only when a majority would.
//!
//! Without it a voter cut off from the leader for longer than an election timeout (a paused
//! process, a network partition, a slow link) raises its term at every timeout; when it comes
//! back, the leader's next append is answered with that higher term and the leader steps down,
//! though nothing was wrong with it: the metadata quorum, and with it the active controller,
//! is gone for an election or more (seen in the cluster tests: three seconds without a
//! controller after a resumed or healed node). openraft 0.9 has no pre-vote, so gregor runs
//! the follower's election timer itself (openraft's `enable_elect` is off when there are
//! several voters) and calls `trigger().elect()` after a pre-vote majority.
//!
//! ```text
//!  election timer: the leader lease (the maximum election timeout) plus a random part of
//!  the election timeout after the last append from a leader; after an attempt, a random
//!  election timeout (in [min, max)) after it
//!     └─ ran out ─► (not while this voter's vote gate is closed, but at the cluster's first
//!                   start: see vote_gate.rs)
//!                   PRE_VOTE {last log id} to every other voter
//!                      granted by a voter that (a) has heard from no leader within the
//!                      lease and does not lead with a quorum's ack within it itself, (b)
//!                      votes at all (its vote gate's verdict, as for a vote), and (c) has a
//!                      last log id no newer than the candidate's
//!                 ─► granted by a majority (this node included) ─► openraft elect()
//! ```
//!
//! A pre-vote changes no state anywhere, so a lost or late answer costs only the round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::{LogId, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::network::{kind, ConnectionPool};
use crate::types::{NodeId, Raft};

/// When this node last heard from a leader (or led itself).
#[derive(Debug)]
pub(crate) struct LeaderContact {
    last: Mutex<Instant>,
}

impl LeaderContact {
    pub(crate) fn new() -> LeaderContact {
        LeaderContact {
            last: Mutex::new(Instant::now()),
        }
    }

    /// A leader was heard from now.
    pub(crate) fn heard(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Time since a leader was last heard from.
    pub(crate) fn since(&self) -> Duration {
        self.at().elapsed()
    }

    /// When a leader was last heard from.
    pub(crate) fn at(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A pre-vote request: the candidate's last log id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PreVoteRequest {
    pub(crate) last_log_id: Option<LogId<NodeId>>,
}

/// A pre-vote answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PreVoteResponse {
    pub(crate) granted: bool,
}

/// What a voter knows when it answers a pre-vote.
#[derive(Debug, Clone)]
pub(crate) struct VoterView {
    /// Time since it last heard from a leader.
    pub(crate) since_leader: Duration,
    /// It leads, and a quorum acknowledged it this long ago (None: not leading).
    pub(crate) leading_acked: Option<Option<Duration>>,
    /// Its vote gate would let it vote for this candidate.
    pub(crate) votes: bool,
    /// Its last log id.
    pub(crate) last_log_id: Option<LogId<NodeId>>,
}

/// Whether a voter in `view` grants a pre-vote for a candidate whose last log id is
/// `candidate`. `lease` is openraft's leader lease, the maximum election timeout: within it
/// of the last append from its leader a voter refuses a vote, so it refuses the pre-vote too
/// (and the standing voter's term is not raised in vain).
pub(crate) fn grant(view: &VoterView, candidate: Option<LogId<NodeId>>, lease: Duration) -> bool {
    if !view.votes {
        return false;
    }
    match view.leading_acked {
        // A leader whose quorum answered recently keeps its place.
        Some(Some(acked)) if acked < lease => return false,
        Some(None) => return false,
        _ => {}
    }
    if view.leading_acked.is_none() && view.since_leader < lease {
        return false;
    }
    candidate >= view.last_log_id
}

/// This voter's view, for answering a pre-vote.
pub(crate) async fn voter_view(
    raft: &Raft,
    contact: &LeaderContact,
    log: &mut crate::log_store::LogStore,
    votes: bool,
) -> VoterView {
    let (state, acked) = {
        let m = raft.metrics();
        let m = m.borrow();
        (m.state, m.millis_since_quorum_ack)
    };
    let last_log_id = match log.get_log_state().await {
        Ok(s) => s.last_log_id,
        // Unknown: refuse (an empty log id is older than any candidate's).
        Err(_) => {
            return VoterView {
                since_leader: Duration::ZERO,
                leading_acked: None,
                votes: false,
                last_log_id: None,
            }
        }
    };
    VoterView {
        since_leader: contact.since(),
        leading_acked: (state == ServerState::Leader).then(|| acked.map(Duration::from_millis)),
        votes,
        last_log_id,
    }
}

/// Timings of the election timer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) heartbeat: Duration,
    pub(crate) election_min: Duration,
    pub(crate) election_max: Duration,
}

/// A random duration in [0, span).
fn jitter(span: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let span = span.as_millis() as u64;
    if span == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    Duration::from_millis(h.finish() % span)
}

/// What this voter's election timer reads: when it last heard from a leader, and its vote gate
/// (whether it may stand; opened when it wins).
pub(crate) struct Voter {
    pub(crate) contact: std::sync::Arc<LeaderContact>,
    pub(crate) gate: std::sync::Arc<crate::vote_gate::VoteGate>,
}

/// The other voters with their addresses, and the configurations a majority is needed in.
pub(crate) type Electorate = (BTreeMap<NodeId, String>, Vec<BTreeSet<NodeId>>);

/// The voters of the membership this node has (every configuration of a joint one), with
/// the address this node reaches each at (`configured` first, as the network layer does,
/// else the membership's), and the configurations a majority is needed in. `None` while this
/// node is not a voter or is the only one (openraft's own timer elects a sole voter).
pub(crate) fn electorate(
    raft: &Raft,
    node_id: NodeId,
    configured: &BTreeMap<NodeId, String>,
) -> Option<Electorate> {
    let m = raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    // Checked every tick on every node: nothing is copied for a learner or a sole voter.
    let is_voter = membership.voter_ids().any(|v| v == node_id);
    if !is_voter || membership.voter_ids().nth(1).is_none() {
        return None;
    }
    let configs: Vec<BTreeSet<NodeId>> = membership.get_joint_config().clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let peers = voters
        .iter()
        .filter(|&&id| id != node_id)
        .filter_map(|&id| {
            let addr = configured
                .get(&id)
                .cloned()
                .or_else(|| membership.get_node(&id).map(|n| n.addr.clone()))?;
            Some((id, addr))
        })
        .collect();
    Some((peers, configs))
}

/// Whether `granted` (this node included) is a majority of every configuration in `configs`
/// (both halves of a joint membership).
pub(crate) fn majority_in_all(granted: &BTreeSet<NodeId>, configs: &[BTreeSet<NodeId>]) -> bool {
    configs
        .iter()
        .all(|c| c.iter().filter(|id| granted.contains(id)).count() * 2 > c.len())
}

/// The follower's election timer with pre-vote: runs until the node shuts down, standing
/// only while this node is one voter among several of the membership it has (which changes
/// with AddRaftVoter and RemoveRaftVoter). `configured` are the configured voters' addresses,
/// which win over the membership's.
pub(crate) async fn run(
    raft: Raft,
    node_id: NodeId,
    voter: Voter,
    mut log: crate::log_store::LogStore,
    configured: BTreeMap<NodeId, String>,
    pool: std::sync::Arc<ConnectionPool>,
    timings: Timings,
) {
    // Fine-grained, so that two voters' random timeouts seldom fall into the same tick.
    let tick = (timings.heartbeat / 5).clamp(Duration::from_millis(5), Duration::from_millis(20));
    let span = timings.election_max.saturating_sub(timings.election_min);
    // The first attempt after the leader went silent waits out the leader lease (openraft's
    // voters refuse a vote until it has run out, and so do pre-votes, see `grant`) and a
    // random part of the election timeout; a further attempt, a random election timeout
    // after the previous one.
    let mut wait_after_leader = timings.election_max + jitter(span);
    let mut attempted: Option<Instant> = None;
    let mut wait_after_attempt = timings.election_min + jitter(span);
    loop {
        tokio::time::sleep(tick).await;
        let state = raft.metrics().borrow().state;
        match state {
            ServerState::Shutdown => return,
            ServerState::Leader => {
                voter.contact.heard();
                // Elected: its log holds every committed record (see `VoteGate::may_stand`).
                voter.gate.became_leader();
                continue;
            }
            ServerState::Learner => {
                voter.contact.heard();
                continue;
            }
            ServerState::Follower | ServerState::Candidate => {}
        }
        let Some((peers, configs)) = electorate(&raft, node_id, &configured) else {
            // Not a voter (yet), or the only one.
            voter.contact.heard();
            continue;
        };
        let heard = voter.contact.at();
        let due = match attempted {
            Some(at) if at > heard => at.elapsed() >= wait_after_attempt,
            _ => heard.elapsed() >= wait_after_leader,
        };
        if !due {
            continue;
        }
        attempted = Some(Instant::now());
        wait_after_leader = timings.election_max + jitter(span);
        wait_after_attempt = timings.election_min + jitter(span);
        let last_log_id = match log.get_log_state().await {
            Ok(s) => s.last_log_id,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the metadata log's state; no election");
                continue;
            }
        };
        if !voter.gate.may_stand(last_log_id.map(|l| l.index)) {
            tracing::debug!("no election: this voter is still catching up after a wipe");
            continue;
        }
        let round_started = Instant::now();
        let mut granted = pre_vote_round(
            node_id,
            &peers,
            &configs,
            &pool,
            last_log_id,
            timings.election_min,
        )
        .await;
        let voters = peers.len() + 1;
        granted.insert(node_id);
        let won = majority_in_all(&granted, &configs);
        let granted = granted.len() - 1;
        // A leader heard during the round (elected while this voter asked, its grant given
        // before): standing now would depose it, for a log it may be ahead of.
        if voter.contact.at() > round_started {
            tracing::debug!(
                granted,
                voters,
                "pre-vote overtaken: a leader was heard meanwhile"
            );
            continue;
        }
        if won {
            tracing::debug!(granted, voters, "pre-vote won: standing for election");
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!(error = %e, "cannot start an election");
                return;
            }
        } else {
            tracing::debug!(
                granted,
                voters,
                "pre-vote lost: a leader is still heard, or this log is behind"
            );
        }
    }
}

/// Asks every peer at once; the peers that granted, collected until the grants make a
/// majority of every configuration with this voter's own (then the round ends, not waiting
/// out a peer that does not answer: the longer a round, the staler its grants) or every peer
/// has answered.
async fn pre_vote_round(
    node_id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    configs: &[BTreeSet<NodeId>],
    pool: &ConnectionPool,
    last_log_id: Option<LogId<NodeId>>,
    timeout: Duration,
) -> BTreeSet<NodeId> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut granted = BTreeSet::new();
    let payload = match serde_json::to_vec(&PreVoteRequest { last_log_id }) {
        Ok(p) => p,
        Err(_) => return granted,
    };
    let mut asks: FuturesUnordered<_> = peers
        .iter()
        .filter(|(&id, _)| id != node_id)
        .map(|(&id, addr)| {
            let payload = &payload;
            async move {
                let yes = match pool.call(id, addr, kind::PRE_VOTE, payload, timeout).await {
                    Ok((kind::OK, reply)) => serde_json::from_slice::<PreVoteResponse>(&reply)
                        .map(|r| r.granted)
                        .unwrap_or(false),
                    _ => false,
                };
                (id, yes)
            }
        })
        .collect();
    granted.insert(node_id);
    while let Some((id, yes)) = asks.next().await {
        if yes {
            granted.insert(id);
        }
        if majority_in_all(&granted, configs) {
            break;
        }
    }
    granted.remove(&node_id);
    granted
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn follower(since_ms: u64, last: Option<LogId<NodeId>>) -> VoterView {
        VoterView {
            since_leader: Duration::from_millis(since_ms),
            leading_acked: None,
            votes: true,
            last_log_id: last,
        }
    }

    const LEASE: Duration = Duration::from_millis(300);

    #[test]
    fn a_follower_that_hears_its_leader_refuses() {
        assert!(!grant(&follower(100, id(1, 5)), id(1, 9), LEASE));
        assert!(grant(&follower(400, id(1, 5)), id(1, 9), LEASE));
    }

    #[test]
    fn a_candidate_with_an_older_log_is_refused() {
        assert!(!grant(&follower(400, id(2, 5)), id(1, 9), LEASE));
        assert!(!grant(&follower(400, id(1, 9)), id(1, 8), LEASE));
        assert!(grant(&follower(400, id(1, 9)), id(1, 9), LEASE));
        assert!(!grant(&follower(400, id(1, 1)), None, LEASE));
        assert!(grant(&follower(400, None), None, LEASE));
    }

    #[test]
    fn a_leader_with_a_recent_quorum_refuses_and_a_stale_one_grants() {
        let mut v = follower(10_000, id(1, 5));
        v.leading_acked = Some(Some(Duration::from_millis(50)));
        assert!(!grant(&v, id(1, 9), LEASE));
        v.leading_acked = Some(None);
        assert!(!grant(&v, id(1, 9), LEASE));
        v.leading_acked = Some(Some(Duration::from_millis(5_000)));
        assert!(grant(&v, id(1, 9), LEASE));
    }

    #[test]
    fn a_joint_membership_needs_a_majority_of_both_halves() {
        let old = BTreeSet::from([1, 2, 3]);
        let new = BTreeSet::from([2, 3, 4, 5]);
        let joint = [old.clone(), new];
        assert!(majority_in_all(
            &BTreeSet::from([1, 2]),
            std::slice::from_ref(&old)
        ));
        // 1 and 2 are a majority of the old half, not of the new one.
        assert!(!majority_in_all(&BTreeSet::from([1, 2]), &joint));
        assert!(!majority_in_all(&BTreeSet::from([2, 4]), &joint));
        assert!(majority_in_all(&BTreeSet::from([2, 3, 4]), &joint));
        assert!(majority_in_all(&BTreeSet::from([1, 2, 4, 5]), &joint));
        // A two-voter configuration needs both.
        assert!(!majority_in_all(
            &BTreeSet::from([1]),
            &[BTreeSet::from([1, 2])]
        ));
    }

    #[test]
    fn a_voter_whose_gate_is_closed_refuses() {
        let mut v = follower(10_000, None);
        v.votes = false;
        assert!(!grant(&v, id(1, 9), LEASE));
    }
}
