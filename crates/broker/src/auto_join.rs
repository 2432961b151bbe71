//! `controller.quorum.auto.join.enable=true` (Kafka 4.x, KIP-853): a controller that is not a
//! voter of the metadata quorum makes itself one, so a controller started with
//! `controller.quorum.bootstrap.servers` joins the voters without `kafka-metadata-quorum
//! add-controller`.
//!
//! ```text
//!  every AUTO_JOIN_PERIOD (Kafka: the fetch timeout) on a controller at kraft.version 1:
//!    a voter under this node's id and directory ─► nothing to do
//!    a voter under this node's id, another directory (the disk was replaced)
//!        ─► RemoveRaftVoter {id, that directory} to the quorum leader
//!    a learner (it has joined the membership, join_as_learner)
//!        ─► AddRaftVoter {id, own directory, CONTROLLER listener} to the quorum leader,
//!           which adds it once it has caught up
//!    not in the membership yet, no leader known, or this node leads ─► wait
//! ```
//!
//! As Kafka's observers do, it keeps checking for as long as the node runs: a controller
//! removed with `remove-controller` while auto-join is on makes itself a voter again. Kafka's
//! brokers never do (they cannot be voters), nor do controllers at kraft.version 0 (configured
//! `controller.quorum.voters`), where the voter set does not change.
//!
//! The requests go to the leader's controller listener (the quorum connection, with its TLS
//! and SASL), which answers them as it answers `kafka-metadata-quorum`'s.

use std::sync::Arc;
use std::time::Duration;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::add_raft_voter_request::Listener;
use gregor_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use gregor_raft::{MetadataQuorum, NodeId, QuorumState};
use tracing::{debug, info, warn};

use crate::handlers::describe_quorum::exchange;
use crate::handlers::raft_voters::{ADD_KEY, REMOVE_KEY};
use crate::handlers::str_bytes;

/// How often a controller that is not a voter checks again (Kafka's
/// `controller.quorum.fetch.timeout.ms` default).
pub const AUTO_JOIN_PERIOD: Duration = Duration::from_secs(2);

/// How long the leader may take to add this node (it waits for the node to catch up).
const ADD_TIMEOUT: Duration = Duration::from_secs(30);

/// What an auto-joining controller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing for now (the reason, for the log).
    Wait(&'static str),
    /// It is a voter under its own directory.
    Voter,
    /// A voter under this node's id has another directory: take it out first.
    Remove { directory_id: String },
    /// A learner: ask the leader to make it a voter.
    Add,
}

/// The next step of node `state.node_id`, whose data directory is `own_directory`, at
/// `kraft_version`.
pub fn next_step(state: &QuorumState, kraft_version: i16, own_directory: Option<&str>) -> Step {
    let me = state.node_id;
    if kraft_version < 1 {
        return Step::Wait("the voter set changes only at kraft.version 1");
    }
    if state.voters.contains_key(&me) {
        return match (state.directory_ids.get(&me), own_directory) {
            (Some(recorded), Some(own)) if recorded != own => Step::Remove {
                directory_id: recorded.clone(),
            },
            _ => Step::Voter,
        };
    }
    if state.leader.is_none() || state.leader == Some(me) {
        return Step::Wait("no quorum leader known");
    }
    if state.learners.contains_key(&me) {
        Step::Add
    } else {
        Step::Wait("not in the quorum's membership yet")
    }
}

/// What the auto-join task needs to name this node.
pub struct AutoJoin {
    pub quorum: Arc<MetadataQuorum>,
    pub cluster_id: String,
    /// This node's `directory.id`.
    pub directory_id: Option<String>,
    /// The controller listener's name (`controller.listener.names`' first).
    pub listener_name: String,
    /// The controller listener's address as the other nodes reach it.
    pub advertised: String,
}

impl AutoJoin {
    /// Runs until the task is aborted (the node shuts down). A request is logged when the step
    /// changes, a refusal when it differs from the last one (the task asks every period).
    pub async fn run(self) {
        let mut last: Option<Step> = None;
        let mut last_refusal: Option<String> = None;
        loop {
            tokio::time::sleep(AUTO_JOIN_PERIOD).await;
            let state = self.quorum.state();
            let step = next_step(
                &state,
                self.quorum.kraft_version(),
                self.directory_id.as_deref(),
            );
            let changed = last.as_ref() != Some(&step);
            if changed {
                match &step {
                    Step::Wait(why) => debug!(why, "auto-join: waiting"),
                    Step::Voter => info!("auto-join: this controller is a voter"),
                    Step::Remove { directory_id } => info!(
                        old_directory = %directory_id,
                        "auto-join: a voter with this node's id has another directory; asking \
                         the quorum leader to remove it"
                    ),
                    Step::Add => {
                        info!("auto-join: asking the quorum leader to make this controller a voter")
                    }
                }
            }
            let leader_addr = state.leader.and_then(|l| state.voters.get(&l)).cloned();
            let outcome = match (&step, leader_addr) {
                (Step::Remove { directory_id }, Some(at)) => Some((
                    "RemoveRaftVoter",
                    self.remove(state.node_id, directory_id, &at).await,
                )),
                (Step::Add, Some(at)) => Some(("AddRaftVoter", self.add(state.node_id, &at).await)),
                _ => None,
            };
            match outcome {
                Some((api, Ok(()))) => {
                    info!(api, "auto-join: the quorum leader accepted");
                    last_refusal = None;
                }
                Some((api, Err(refusal))) => {
                    if last_refusal.as_ref() != Some(&refusal) {
                        warn!(api, %refusal, "auto-join: not done; trying again every 2 s");
                    } else {
                        debug!(api, %refusal, "auto-join: not done yet");
                    }
                    last_refusal = Some(refusal);
                }
                None => {}
            }
            last = Some(step);
        }
    }

    async fn add(&self, me: NodeId, leader_addr: &str) -> Result<(), String> {
        let (host, port) = split_host_port(&self.advertised)
            .ok_or_else(|| format!("cannot parse this controller's address {}", self.advertised))?;
        let req = AddRaftVoterRequest::default()
            .with_cluster_id(Some(str_bytes(self.cluster_id.clone())))
            .with_timeout_ms(ADD_TIMEOUT.as_millis() as i32)
            .with_voter_id(me as i32)
            .with_voter_directory_id(self.directory_uuid())
            .with_listeners(vec![Listener::default()
                .with_name(str_bytes(self.listener_name.clone()))
                .with_host(str_bytes(host))
                .with_port(port)]);
        let answer: std::io::Result<AddRaftVoterResponse> = exchange(
            self.quorum.connect_kafka(leader_addr),
            ADD_KEY,
            0,
            &req,
            ADD_TIMEOUT + Duration::from_secs(5),
        )
        .await;
        outcome(leader_addr, answer.map(|r| (r.error_code, r.error_message)))
    }

    async fn remove(
        &self,
        me: NodeId,
        directory_id: &str,
        leader_addr: &str,
    ) -> Result<(), String> {
        let uuid = gregor_protocol::kafka_uuid::parse(directory_id).ok_or_else(|| {
            format!("the voter's recorded directory id {directory_id} is not a Kafka uuid")
        })?;
        let req = RemoveRaftVoterRequest::default()
            .with_cluster_id(Some(str_bytes(self.cluster_id.clone())))
            .with_voter_id(me as i32)
            .with_voter_directory_id(uuid);
        let answer: std::io::Result<RemoveRaftVoterResponse> = exchange(
            self.quorum.connect_kafka(leader_addr),
            REMOVE_KEY,
            0,
            &req,
            ADD_TIMEOUT,
        )
        .await;
        outcome(leader_addr, answer.map(|r| (r.error_code, r.error_message)))
    }

    fn directory_uuid(&self) -> uuid::Uuid {
        self.directory_id
            .as_deref()
            .and_then(gregor_protocol::kafka_uuid::parse)
            .unwrap_or_default()
    }
}

/// A voter request's answer from the leader at `leader_addr`: `Ok` when accepted, else what
/// went wrong.
fn outcome(
    leader_addr: &str,
    answer: std::io::Result<(i16, Option<gregor_protocol::protocol::StrBytes>)>,
) -> Result<(), String> {
    match answer {
        Ok((0, _)) => Ok(()),
        Ok((code, message)) => Err(format!(
            "the quorum leader at {leader_addr} answered {}{}",
            ErrorCode(code),
            message
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "no answer from the quorum leader at {leader_addr}: {e}"
        )),
    }
}

/// `host:port` or `[v6]:port` as (host, port).
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        me: NodeId,
        leader: Option<NodeId>,
        voters: &[NodeId],
        learners: &[NodeId],
    ) -> QuorumState {
        QuorumState {
            node_id: me,
            leader,
            term: 1,
            role: "learner",
            voters: voters.iter().map(|&v| (v, format!("h:{v}"))).collect(),
            learners: learners.iter().map(|&v| (v, format!("h:{v}"))).collect(),
            last_log_index: None,
            last_applied: None,
            replication: Default::default(),
            last_answer_ms: Default::default(),
            directory_ids: Default::default(),
        }
    }

    #[test]
    fn a_learner_asks_to_be_a_voter_once_a_leader_is_known() {
        let s = state(2, Some(1), &[1], &[2]);
        assert_eq!(next_step(&s, 1, Some("dir2")), Step::Add);
        assert!(matches!(
            next_step(&state(2, None, &[1], &[2]), 1, Some("dir2")),
            Step::Wait(_)
        ));
        // Not in the membership yet (join_as_learner has not been answered).
        assert!(matches!(
            next_step(&state(2, Some(1), &[1], &[]), 1, Some("dir2")),
            Step::Wait(_)
        ));
    }

    #[test]
    fn nothing_changes_at_kraft_version_0() {
        let s = state(2, Some(1), &[1], &[2]);
        assert!(matches!(next_step(&s, 0, Some("dir2")), Step::Wait(_)));
    }

    #[test]
    fn a_voter_under_another_directory_is_removed_first() {
        let mut s = state(2, Some(1), &[1, 2], &[]);
        s.directory_ids.insert(2, "old".into());
        assert_eq!(
            next_step(&s, 1, Some("new")),
            Step::Remove {
                directory_id: "old".into()
            }
        );
        assert_eq!(next_step(&s, 1, Some("old")), Step::Voter);
        // A voter recorded without a directory (a configured voter) is this node.
        s.directory_ids.clear();
        assert_eq!(next_step(&s, 1, Some("new")), Step::Voter);
    }

    #[test]
    fn a_refusal_names_the_leader_and_kafka_s_error() {
        assert_eq!(outcome("h:1", Ok((0, None))), Ok(()));
        let refused = outcome("h:1", Ok((7, Some(str_bytes("lagging"))))).expect_err("refused");
        assert!(
            refused.contains("h:1")
                && refused.contains("REQUEST_TIMED_OUT")
                && refused.ends_with(": lagging"),
            "{refused}"
        );
        let silent = outcome("h:1", Err(std::io::Error::other("reset"))).expect_err("no answer");
        assert!(
            silent.contains("no answer") && silent.contains("reset"),
            "{silent}"
        );
    }

    #[test]
    fn addresses_split_with_and_without_brackets() {
        assert_eq!(split_host_port("h:9093"), Some(("h".into(), 9093)));
        assert_eq!(split_host_port("[::1]:9093"), Some(("::1".into(), 9093)));
        assert_eq!(split_host_port("h"), None);
    }
}
