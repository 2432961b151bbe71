//! The vote gate: a voter that lost its metadata log does not vote until it has it back.
//!
//! Raft's safety rests on every voter keeping what it acknowledged. A voter restarted on an
//! empty directory (a replaced disk, a wiped data dir) breaks that: with an empty log it would
//! vote for any candidate, so a candidate that missed the last committed records could win with
//! its vote and the records would be lost (Kafka closes the same hole with KIP-853's directory
//! ids). So a voter that starts without a log starts with its gate *closed*:
//!
//! ```text
//!   start on an empty log ──► closed (marker file `vote-gate` written first)
//!        │  AppendEntries from a leader: remember its commit index (the first one seen; a
//!        │  leader holds every committed record, so this covers all that was committed
//!        │  before the wipe)
//!        ▼
//!   applied ≥ that commit index ──► open (marker removed): votes like any voter
//!   (or: elected leader itself ──► open, see below)
//! ```
//!
//! A voter with its gate closed does not stand for election either (its own vote would count
//! for a log that may miss committed records), but at the cluster's very first start. So a
//! voter that wins an election was elected by voters whose gates are open (or nothing was
//! committed yet), holds every committed record, and opens its gate: the first leader of a new
//! cluster never hears from another leader, and would otherwise keep its gate closed.
//!
//! While closed, vote requests are answered "not granted" (with this node's current vote, as a
//! voter whose leader lease has not expired answers), except at the cluster's very first start:
//! a candidate whose log holds nothing beyond the initial membership (index 0), before any
//! leader was heard, cannot be missing anything committed, so the gate lets that vote through.
//! The marker keeps the gate closed across a restart before the catch-up finished.
//!
//! The cost: with the gate closed, this node counts for replication but not for elections, so
//! a quorum leader's death while a wiped voter catches up leaves the quorum without a leader
//! until another voter returns, rather than electing one that may have lost records.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The marker file in the quorum directory while the gate is closed.
pub(crate) const VOTE_GATE_MARKER: &str = "vote-gate";

#[derive(Debug)]
pub(crate) struct VoteGate {
    state: Mutex<State>,
    marker: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    open: bool,
    /// The commit index of the first leader heard from while closed (`None`: none yet).
    catch_up_to: Option<u64>,
    /// Whether a refused vote was logged at INFO already (later ones log at DEBUG).
    refusal_logged: bool,
}

/// What to do with a vote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteVerdict {
    /// Hand it to Raft.
    Consider,
    /// Answer "not granted" without asking Raft; `first` when this is the first refusal.
    Refuse { first: bool },
}

impl VoteGate {
    /// The gate of a voter whose directory is `dir`: closed when `log_was_empty` (the node just
    /// started without a log) or when the marker of an unfinished catch-up is there.
    pub(crate) fn open_at_start(dir: &Path, log_was_empty: bool) -> io::Result<VoteGate> {
        let marker = dir.join(VOTE_GATE_MARKER);
        let closed = log_was_empty || marker.exists();
        if closed {
            let file = std::fs::File::create(&marker)?;
            file.sync_all()?;
            crate::fsutil::sync_dir(dir)?;
        }
        Ok(VoteGate {
            state: Mutex::new(State {
                open: !closed,
                ..State::default()
            }),
            marker,
        })
    }

    /// An always-open gate (learners, which never vote, and tests).
    pub(crate) fn open() -> VoteGate {
        VoteGate {
            state: Mutex::new(State {
                open: true,
                ..State::default()
            }),
            marker: PathBuf::new(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().open
    }

    /// An AppendEntries from a leader carrying `leader_commit` (the index it has committed).
    pub(crate) fn saw_leader_commit(&self, leader_commit: Option<u64>) {
        let mut s = self.lock();
        if s.open || s.catch_up_to.is_some() {
            return;
        }
        // Nothing committed anywhere: nothing to catch up with.
        s.catch_up_to = Some(leader_commit.unwrap_or(0));
        if leader_commit.is_none() {
            drop(s);
            self.open_now();
        }
    }

    /// The node has applied its log up to `last_applied`; opens the gate once that covers the
    /// first leader's commit index.
    pub(crate) fn applied(&self, last_applied: Option<u64>) {
        let caught_up = {
            let s = self.lock();
            !s.open
                && matches!((s.catch_up_to, last_applied), (Some(target), Some(applied)) if applied >= target)
        };
        if caught_up {
            self.open_now();
        }
    }

    /// Whether this node may stand for election with its log ending at `own_last_index`: with
    /// the gate open, or at the cluster's very first start (as [`VoteGate::verdict`] lets
    /// others vote for it). A voter still catching up after a wipe does not: its own vote would
    /// count for a log that may miss committed records.
    pub(crate) fn may_stand(&self, own_last_index: Option<u64>) -> bool {
        let s = self.lock();
        s.open || (s.catch_up_to.is_none() && own_last_index.unwrap_or(0) == 0)
    }

    /// This node won an election. It was allowed to stand only with the gate open or at the
    /// cluster's very first start ([`VoteGate::may_stand`]), and a majority of voters whose
    /// gates are open elected it, so its log holds every committed record: it votes again.
    /// (Without this the first leader of a new cluster, which never hears from another
    /// leader, kept its gate closed: if it lost the leadership to a voter whose appends it
    /// never got and that voter then died, the two left could not elect anyone.)
    pub(crate) fn became_leader(&self) {
        self.open_now_because("this voter was elected leader");
    }

    /// Whether to consider a vote request from a candidate whose last log index is
    /// `candidate_last_index`.
    pub(crate) fn verdict(&self, candidate_last_index: Option<u64>) -> VoteVerdict {
        let mut s = self.lock();
        if s.open {
            return VoteVerdict::Consider;
        }
        let first_start = s.catch_up_to.is_none() && candidate_last_index.unwrap_or(0) == 0;
        if first_start {
            return VoteVerdict::Consider;
        }
        let first = !s.refusal_logged;
        s.refusal_logged = true;
        VoteVerdict::Refuse { first }
    }

    fn open_now(&self) {
        self.open_now_because(
            "this voter caught up with the quorum leader after starting without a metadata log",
        );
    }

    fn open_now_because(&self, why: &str) {
        {
            let mut s = self.lock();
            if s.open {
                return;
            }
            s.open = true;
        }
        tracing::info!("{why}; it votes again");
        if let Err(e) = std::fs::remove_file(&self.marker) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.marker.display(), error = %e, "cannot remove the vote-gate marker");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_log_closes_the_gate_until_the_first_leaders_commit_is_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = VoteGate::open_at_start(dir.path(), true).expect("gate");
        assert!(!gate.is_open());
        assert!(dir.path().join(VOTE_GATE_MARKER).exists());
        // The cluster's first start: candidates hold only the initial membership.
        assert_eq!(gate.verdict(Some(0)), VoteVerdict::Consider);
        assert_eq!(gate.verdict(None), VoteVerdict::Consider);
        // A candidate with records, before any leader was heard: refused.
        assert_eq!(gate.verdict(Some(7)), VoteVerdict::Refuse { first: true });
        gate.saw_leader_commit(Some(40));
        gate.saw_leader_commit(Some(90)); // only the first leader's commit counts
        assert_eq!(gate.verdict(Some(0)), VoteVerdict::Refuse { first: false });
        gate.applied(Some(39));
        assert!(!gate.is_open());
        gate.applied(Some(40));
        assert!(gate.is_open());
        assert!(!dir.path().join(VOTE_GATE_MARKER).exists());
        assert_eq!(gate.verdict(Some(3)), VoteVerdict::Consider);
    }

    /// Standing for election: only with the gate open or at the very first start; winning
    /// opens the gate (and removes the marker).
    #[test]
    fn only_an_open_gate_or_the_first_start_stands_and_winning_opens_the_gate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = VoteGate::open_at_start(dir.path(), true).expect("gate");
        assert!(gate.may_stand(None), "the very first start");
        assert!(
            !gate.may_stand(Some(3)),
            "a log with records, no leader heard yet"
        );
        gate.saw_leader_commit(Some(10));
        assert!(!gate.may_stand(None), "catching up");
        gate.became_leader();
        assert!(gate.is_open());
        assert!(gate.may_stand(Some(3)));
        assert!(!dir.path().join(VOTE_GATE_MARKER).exists());
    }

    #[test]
    fn the_marker_keeps_the_gate_closed_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(VoteGate::open_at_start(dir.path(), true).expect("gate"));
        let again = VoteGate::open_at_start(dir.path(), false).expect("gate");
        assert!(
            !again.is_open(),
            "the log is no longer empty, the catch-up unfinished"
        );
        again.saw_leader_commit(None);
        assert!(
            again.is_open(),
            "a leader with nothing committed: nothing to catch up"
        );
        let third = VoteGate::open_at_start(dir.path(), false).expect("gate");
        assert!(third.is_open());
    }
}
