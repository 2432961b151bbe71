//! The classic group state machine (Kafka's `GroupState`), with the transitions Kafka allows.
//!
//! ```text
//!                    first join / offsets-only group created
//!                                 │
//!                                 ▼
//!   ┌──────────────────────────► Empty ◄────────────────────────────┐
//!   │                         │      │ DeleteGroups / offsets all   │
//!   │ last member left or     │      │ expired (retention)          │
//!   │ expired, join completes │ join ▼                              │
//!   │ with no members         │    Dead (terminal; group removed)   │
//!   │                         ▼                                     │
//!   └─────────────── PreparingRebalance ◄──────────────┐            │
//!                      │  ▲  all known members rejoined│            │
//!                      │  │  or rebalance timeout      │            │
//!      join completes, │  │ member joins/leaves/       │ member     │
//!      generation += 1 │  │ expires, leader rejoins,   │ joins/     │
//!                      ▼  │ sync timeout               │ leaves/    │
//!               CompletingRebalance ─────────────────► Stable ──────┘
//!                    leader's SyncGroup stored               expires
//! ```
//!
//! Every state may also go to `Dead` when the coordinator unloads the group (partition
//! emigration); here that only happens through DeleteGroups and offset expiry.

use std::fmt;

/// A classic group's state. `Display` gives Kafka's names, used by ListGroups/DescribeGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for the known members to (re)join; JoinGroup requests are parked.
    PreparingRebalance,
    /// Join completed; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
    /// The group is gone (deleted or all offsets expired) and will be removed.
    Dead,
}

impl GroupState {
    /// The states from which Kafka allows a transition into `self`.
    pub fn valid_previous_states(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }

    /// Kafka's state name ("Empty", "PreparingRebalance", ...).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses Kafka's state name, case-insensitively as ListGroups v4 filters do.
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ] {
            assert_eq!(GroupState::parse(s.name()), Some(s));
        }
        assert_eq!(GroupState::parse("stable"), Some(GroupState::Stable));
        assert_eq!(GroupState::parse("nope"), None);
    }

    #[test]
    fn stable_only_from_completing() {
        assert_eq!(
            GroupState::Stable.valid_previous_states(),
            &[GroupState::CompletingRebalance]
        );
    }
}
