//! A consumer that is a member of a consumer group (classic protocol, type `consumer`): it joins,
//! the leader assigns partitions, every member fetches its share starting at the group's
//! committed offsets, and consumed offsets are committed back.
//!
//! ```text
//! JoinGroup ──MEMBER_ID_REQUIRED──► JoinGroup(member id)   (leader: assign all subscriptions)
//!    └─► SyncGroup ─► assignment ─► OffsetFetch ─► positions (else auto_offset_reset)
//! poll ─► Fetch per topic ─► records (max_poll_records) ─► consumed offsets
//!   └ every auto_commit_interval: OffsetCommit(generation, member id)
//! heartbeat task: Heartbeat every heartbeat_interval; REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION
//!   / UNKNOWN_MEMBER_ID ─► flag ─► next poll commits and rejoins
//! close ─► OffsetCommit ─► LeaveGroup
//! ```

use crate::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor,
};
use crate::cluster::Cluster;
use crate::connection::{ClientConfig, Connection};
use crate::consumer::{Consumer, ConsumerConfig, OffsetSpec};
use crate::error::{ClientError, Result};
use crate::group::{
    commit_offsets, fetch_offsets, find_coordinator, is_coordinator_retriable, TopicOffsets,
};
use crate::records::ConsumerRecord;
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Settings of a group member.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// `group.id`.
    pub group_id: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Assignors offered, preferred first (`partition.assignment.strategy`).
    pub assignors: Vec<Assignor>,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`; `None` is a third of the session timeout.
    pub heartbeat_interval: Option<Duration>,
    /// Where to start a partition without a committed offset (Earliest or Latest).
    pub auto_offset_reset: OffsetSpec,
    /// `auto.commit.interval.ms`; `None` disables auto-commit (commit with
    /// [`GroupConsumer::commit`]; close still commits).
    pub auto_commit_interval: Option<Duration>,
    /// `max.poll.records`: most records one `poll` returns; the rest stay buffered.
    pub max_poll_records: usize,
    /// Fetch settings.
    pub fetch: ConsumerConfig,
}

impl GroupConsumerConfig {
    /// Kafka's defaults for `group_id` subscribing to `topics`.
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        GroupConsumerConfig {
            group_id: group_id.into(),
            topics,
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: None,
            auto_offset_reset: OffsetSpec::Latest,
            auto_commit_interval: Some(Duration::from_secs(5)),
            max_poll_records: 500,
            fetch: ConsumerConfig::default(),
        }
    }
}

/// Membership shared with the heartbeat task.
#[derive(Debug, Clone, Default)]
struct Membership {
    generation: i32,
    member_id: String,
    /// Set by the heartbeat task when the coordinator says the member must rejoin.
    rejoin: bool,
}

/// A member of a consumer group.
#[derive(Debug)]
pub struct GroupConsumer {
    client: ClientConfig,
    config: GroupConsumerConfig,
    /// Metadata and the first hop of FindCoordinator.
    cluster: Cluster,
    /// Connection to the group coordinator (JoinGroup, SyncGroup, OffsetCommit, LeaveGroup).
    coord: Connection,
    member: Arc<Mutex<Membership>>,
    heartbeat: Option<JoinHandle<()>>,
    /// Partitions assigned in the current generation.
    assignment: BTreeMap<String, Vec<i32>>,
    /// One fetcher per assigned topic.
    fetchers: BTreeMap<String, Consumer>,
    /// Fetched records not yet handed out (beyond `max_poll_records`).
    buffer: VecDeque<ConsumerRecord>,
    /// Next offset after the last record handed out, per partition: what a commit sends.
    consumed: TopicOffsets,
    /// What the coordinator has, so unchanged offsets are not committed again.
    committed: TopicOffsets,
    last_commit: Instant,
    bootstrap: String,
}

fn lock(m: &Mutex<Membership>) -> std::sync::MutexGuard<'_, Membership> {
    // The guarded data stays consistent even if a holder panicked (plain field writes).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupConsumer {
    /// Connects, joins the group and positions the assigned partitions.
    pub async fn join(
        bootstrap: &str,
        client: &ClientConfig,
        config: GroupConsumerConfig,
    ) -> Result<GroupConsumer> {
        if config.topics.is_empty() || config.assignors.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a group consumer needs at least one topic and one assignor".to_owned(),
            ));
        }
        let mut cluster = Cluster::connect(bootstrap, client).await?;
        let addr = find_coordinator(cluster.control().await?, &config.group_id).await?;
        let coord = Connection::connect(&addr, client).await?;
        let mut c = GroupConsumer {
            client: client.clone(),
            config,
            cluster,
            coord,
            member: Arc::new(Mutex::new(Membership {
                generation: -1,
                ..Membership::default()
            })),
            heartbeat: None,
            assignment: BTreeMap::new(),
            fetchers: BTreeMap::new(),
            buffer: VecDeque::new(),
            consumed: TopicOffsets::new(),
            committed: TopicOffsets::new(),
            last_commit: Instant::now(),
            bootstrap: bootstrap.to_owned(),
        };
        c.rejoin().await?;
        Ok(c)
    }

    /// Partitions assigned in the current generation.
    pub fn assignment(&self) -> &BTreeMap<String, Vec<i32>> {
        &self.assignment
    }

    /// The member id and generation given by the coordinator.
    pub fn membership(&self) -> (String, i32) {
        let m = lock(&self.member);
        (m.member_id.clone(), m.generation)
    }

    /// Changes `max_poll_records` (a caller that wants exactly N more records asks for N).
    pub fn set_max_poll_records(&mut self, n: usize) {
        self.config.max_poll_records = n.max(1);
    }

    /// Offsets that the next commit would send.
    pub fn consumed(&self) -> &TopicOffsets {
        &self.consumed
    }

    /// Replaces a coordinator connection that an abandoned exchange (a cancelled `poll`, a
    /// timeout) left out of step.
    async fn ensure_coordinator(&mut self) -> Result<()> {
        if self.coord.is_broken() {
            self.reconnect_coordinator().await?;
        }
        Ok(())
    }

    async fn reconnect_coordinator(&mut self) -> Result<()> {
        let addr = find_coordinator(self.cluster.control().await?, &self.config.group_id).await?;
        self.coord = Connection::connect(&addr, &self.client).await?;
        Ok(())
    }

    fn gid(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group_id.clone()))
    }

    /// Commits what was consumed, then JoinGroup + SyncGroup until a generation is reached, and
    /// repositions the assigned partitions.
    async fn rejoin(&mut self) -> Result<()> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if lock(&self.member).generation >= 0 {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "commit before rejoining failed");
            }
        }
        let topics = self.config.topics.clone();
        let owned = self.assignment.clone();
        let mut member_id = lock(&self.member).member_id.clone();
        let session_ms = ms(self.config.session_timeout);
        let rebalance_ms = ms(self.config.rebalance_timeout);
        let join_limit = self.config.rebalance_timeout + self.client.request_timeout;
        let mut attempts = 0;
        let (generation, assignment) = loop {
            attempts += 1;
            if attempts > 50 {
                return Err(ClientError::Other(format!(
                    "could not join group {} after {} attempts",
                    self.config.group_id,
                    attempts - 1
                )));
            }
            self.ensure_coordinator().await?;
            let version = self.coord.version(ApiKey::JoinGroup)?;
            let mut req = JoinGroupRequest::default();
            req.group_id = self.gid();
            req.session_timeout_ms = session_ms;
            if version >= 1 {
                req.rebalance_timeout_ms = rebalance_ms;
            }
            req.member_id = StrBytes::from_string(member_id.clone());
            req.protocol_type = StrBytes::from_static_str("consumer");
            let metadata = encode_subscription(&topics, &owned)?;
            req.protocols = self
                .config
                .assignors
                .iter()
                .map(|a| {
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str(a.name()))
                        .with_metadata(metadata.clone())
                })
                .collect();
            let resp = match self
                .coord
                .send_at_with_timeout(&req, version, join_limit)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "JoinGroup failed; finding the coordinator again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.reconnect_coordinator().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ErrorCode(resp.error_code) {
                ErrorCode::NONE => {}
                ErrorCode::MEMBER_ID_REQUIRED => {
                    member_id = resp.member_id.to_string();
                    tracing::debug!(
                        member_id,
                        "coordinator assigned a member id; joining with it"
                    );
                    continue;
                }
                ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION => {
                    member_id.clear();
                    continue;
                }
                ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.reconnect_coordinator().await?;
                    continue;
                }
                code => {
                    return Err(ClientError::Kafka {
                        code,
                        message: None,
                        context: format!("join group {}", self.config.group_id),
                    })
                }
            }
            member_id = resp.member_id.to_string();
            let generation = resp.generation_id;
            let protocol = resp
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let assignments = if resp.leader.as_str() == member_id {
                self.lead(&protocol, &resp.members).await?
            } else {
                Vec::new()
            };
            tracing::debug!(generation, member_id, leader = %resp.leader, protocol, "joined");

            let version = self.coord.version(ApiKey::SyncGroup)?;
            let mut req = SyncGroupRequest::default();
            req.group_id = self.gid();
            req.generation_id = generation;
            req.member_id = StrBytes::from_string(member_id.clone());
            if version >= 5 {
                req.protocol_type = Some(StrBytes::from_static_str("consumer"));
                req.protocol_name = Some(StrBytes::from_string(protocol.clone()));
            }
            req.assignments = assignments;
            let resp = match self
                .coord
                .send_at_with_timeout(&req, version, join_limit)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.reconnect_coordinator().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ErrorCode(resp.error_code) {
                ErrorCode::NONE => break (generation, decode_assignment(&resp.assignment)?),
                ErrorCode::REBALANCE_IN_PROGRESS => continue,
                ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION => {
                    member_id.clear();
                    continue;
                }
                ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                    self.reconnect_coordinator().await?;
                    continue;
                }
                code => {
                    return Err(ClientError::Kafka {
                        code,
                        message: None,
                        context: format!("sync group {}", self.config.group_id),
                    })
                }
            }
        };
        {
            let mut m = lock(&self.member);
            m.generation = generation;
            m.member_id = member_id;
            m.rejoin = false;
        }
        tracing::info!(group = %self.config.group_id, generation, ?assignment, "assigned");
        self.assignment = assignment;
        self.start_heartbeat().await?;
        self.position().await
    }

    /// The leader's part: decode all subscriptions, look up partition counts, run the assignor.
    async fn lead(
        &mut self,
        protocol: &str,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let assignor = Assignor::from_name(protocol).ok_or_else(|| {
            ClientError::Other(format!(
                "the coordinator chose unknown assignor {protocol:?}"
            ))
        })?;
        let mut subs = BTreeMap::new();
        for m in members {
            let topics = decode_subscription(&m.metadata).unwrap_or_else(|e| {
                tracing::warn!(member = %m.member_id, error = %e, "undecodable subscription");
                Vec::new()
            });
            subs.insert(m.member_id.to_string(), topics);
        }
        let mut all: Vec<String> = subs.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        let md = self.cluster.metadata(Some(&all)).await?;
        let counts: BTreeMap<String, i32> = md
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let plan = assignor.assign(&subs, &counts);
        plan.iter()
            .map(|(m, a)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(m.clone()))
                    .with_assignment(encode_assignment(a)?))
            })
            .collect()
    }

    async fn start_heartbeat(&mut self) -> Result<()> {
        let interval = self
            .config
            .heartbeat_interval
            .unwrap_or(self.config.session_timeout / 3)
            .max(Duration::from_millis(10));
        let conn = Connection::connect(self.coord.addr(), &self.client).await?;
        let member = Arc::clone(&self.member);
        let gid = self.gid();
        let client = self.client.clone();
        self.heartbeat = Some(tokio::spawn(heartbeat_loop(
            conn, client, member, gid, interval,
        )));
        Ok(())
    }

    /// Starts every assigned partition at its committed offset, else at `auto_offset_reset`.
    async fn position(&mut self) -> Result<()> {
        self.buffer.clear();
        self.consumed.clear();
        let committed = fetch_offsets(
            &mut self.coord,
            &self.config.group_id,
            Some(&self.assignment),
        )
        .await?;
        self.fetchers
            .retain(|t, _| self.assignment.get(t).is_some_and(|p| !p.is_empty()));
        for (topic, parts) in &self.assignment {
            if parts.is_empty() {
                continue;
            }
            if !self.fetchers.contains_key(topic) {
                let c = Consumer::connect(&self.bootstrap, &self.client, self.config.fetch.clone())
                    .await?;
                self.fetchers.insert(topic.clone(), c);
            }
            let Some(c) = self.fetchers.get_mut(topic) else {
                continue;
            };
            c.assign(topic, Some(parts), OffsetSpec::Offset(0)).await?;
            let known = committed.get(topic);
            let missing: Vec<i32> = parts
                .iter()
                .copied()
                .filter(|p| known.is_none_or(|k| !k.contains_key(p)))
                .collect();
            let reset = if missing.is_empty() {
                BTreeMap::new()
            } else {
                c.list_offsets(topic, &missing, self.config.auto_offset_reset)
                    .await?
            };
            for &p in parts {
                let at = known
                    .and_then(|k| k.get(&p))
                    .or_else(|| reset.get(&p))
                    .copied()
                    .unwrap_or(0);
                c.seek(p, at);
            }
        }
        self.committed = committed;
        Ok(())
    }

    /// Returns the next records of the assigned partitions (at most `max_poll_records`),
    /// rejoining first if a rebalance was signalled and auto-committing when due. Records
    /// returned count as consumed.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if lock(&self.member).rejoin {
            self.rejoin().await?;
        }
        if let Some(every) = self.config.auto_commit_interval {
            if self.last_commit.elapsed() >= every {
                if let Err(e) = self.commit().await {
                    tracing::warn!(error = %e, "auto-commit failed");
                }
            }
        }
        if self.buffer.is_empty() {
            if self.fetchers.is_empty() {
                tokio::time::sleep(self.config.fetch.max_wait).await;
            }
            for c in self.fetchers.values_mut() {
                self.buffer.extend(c.poll().await?);
            }
        }
        let n = self.buffer.len().min(self.config.max_poll_records.max(1));
        let out: Vec<ConsumerRecord> = self.buffer.drain(..n).collect();
        for r in &out {
            self.consumed
                .entry(r.topic.clone())
                .or_default()
                .insert(r.partition, r.offset + 1);
        }
        Ok(out)
    }

    /// Commits the consumed offsets that changed since the last commit.
    pub async fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        let mut todo = TopicOffsets::new();
        for (t, ps) in &self.consumed {
            for (&p, &o) in ps {
                if self.committed.get(t).and_then(|c| c.get(&p)) != Some(&o) {
                    todo.entry(t.clone()).or_default().insert(p, o);
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        self.ensure_coordinator().await?;
        let (member_id, generation) = self.membership();
        let r = commit_offsets(
            &mut self.coord,
            &self.config.group_id,
            generation,
            &member_id,
            &todo,
        )
        .await;
        if let Err(e) = &r {
            if matches!(
                e.code(),
                Some(
                    ErrorCode::REBALANCE_IN_PROGRESS
                        | ErrorCode::ILLEGAL_GENERATION
                        | ErrorCode::UNKNOWN_MEMBER_ID
                )
            ) {
                lock(&self.member).rejoin = true;
            } else if is_coordinator_retriable(e) || e.is_retriable() {
                let _ = self.reconnect_coordinator().await;
            }
            return r;
        }
        for (t, ps) in todo {
            self.committed.entry(t).or_default().extend(ps);
        }
        tracing::debug!(group = %self.config.group_id, "committed offsets");
        Ok(())
    }

    /// Commits consumed offsets and leaves the group so the others rebalance at once.
    pub async fn close(mut self) -> Result<()> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let commit = self.commit().await;
        self.ensure_coordinator().await?;
        let (member_id, _) = self.membership();
        let version = self.coord.version(ApiKey::LeaveGroup)?;
        let mut req = LeaveGroupRequest::default();
        req.group_id = self.gid();
        if version >= 3 {
            req.members =
                vec![MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(member_id.clone()))];
        } else {
            req.member_id = StrBytes::from_string(member_id.clone());
        }
        let resp = self.coord.send_at(&req, version).await?;
        ClientError::check(resp.error_code, None, || {
            format!("leave group {}", self.config.group_id)
        })?;
        for m in resp.members {
            ClientError::check(m.error_code, None, || {
                format!("leave group {} as {}", self.config.group_id, m.member_id)
            })?;
        }
        commit
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

/// Sends Heartbeat every `interval` for the current generation; flags a rejoin when the
/// coordinator asks for one. Ends when aborted (rejoin, close, drop).
async fn heartbeat_loop(
    mut conn: Connection,
    client: ClientConfig,
    member: Arc<Mutex<Membership>>,
    group_id: GroupId,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let m = lock(&member).clone();
        if m.rejoin || m.generation < 0 {
            continue;
        }
        if conn.is_broken() {
            match Connection::connect(conn.addr(), &client).await {
                Ok(c) => conn = c,
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat reconnect failed");
                    continue;
                }
            }
        }
        let req = HeartbeatRequest::default()
            .with_group_id(group_id.clone())
            .with_generation_id(m.generation)
            .with_member_id(StrBytes::from_string(m.member_id.clone()));
        let code = match conn.send(&req).await {
            Ok(r) => ErrorCode(r.error_code),
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                continue;
            }
        };
        match code {
            ErrorCode::NONE => {}
            ErrorCode::REBALANCE_IN_PROGRESS
            | ErrorCode::ILLEGAL_GENERATION
            | ErrorCode::UNKNOWN_MEMBER_ID
            | ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::NOT_COORDINATOR
            | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                tracing::debug!(%code, "heartbeat asks to rejoin");
                lock(&member).rejoin = true;
            }
            code => tracing::warn!(%code, "heartbeat error"),
        }
    }
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
