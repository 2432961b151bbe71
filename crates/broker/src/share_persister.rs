//! The share-partition leaders' client of the share coordinators (Kafka's `Persister`,
//! `DefaultStatePersister`): it reads and writes each share-partition's durable state in
//! `__share_group_state`, through the coordinator that leads the state's partition (this
//! broker or another one).
//!
//! ```text
//!  SharePartition / group coordinator ─► SharePersister::read/write/... (key)
//!    ─► partition_for(key) ─► its leader in the applied image
//!         ├─ no __share_group_state yet ─► ask for it (ShareCoordinatorRuntime::ensure_topic)
//!         ├─ this broker ─► ShareCoordinatorRuntime (a local call)
//!         └─ another broker ─► its connection (one per broker, reused, inter-broker
//!                              security) ─► Read/Write/Initialize/Delete ShareGroupState,
//!                              ReadShareGroupStateSummary (the newest version both
//!                              speak: Write and Summary v1 carry the delivery-complete
//!                              count, KIP-1226)
//!    ─► NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, no leader,
//!       a connection error: retried after a short backoff or the next image, for up to
//!       RETRY_LIMIT (then PersistError::Unavailable)
//!    ─► FENCED_LEADER_EPOCH / FENCED_STATE_EPOCH / "uninitialized share partition"
//!       (INVALID_REQUEST) ─► PersistError::{FencedLeaderEpoch, FencedStateEpoch,
//!       NotInitialized}
//! ```
//!
//! ReadShareGroupStateSummary answers a share-partition without state as Kafka does (start
//! offset -1, leader and state epoch 0); over the wire that answer is taken as
//! `NotInitialized` (a share-partition initialized at -1 in state epoch 0 and never loaded
//! reads the same, and means the same to DescribeShareGroupOffsets: no start offset).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_client::{ClientConfig, Connection};
use gregor_protocol::messages::{
    delete_share_group_state_request, initialize_share_group_state_request,
    read_share_group_state_request, read_share_group_state_summary_request,
    write_share_group_state_request, ApiKey, DeleteShareGroupStateRequest,
    InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use gregor_protocol::protocol::{Request, StrBytes};
use gregor_share::coordinator::{code, ShareError, READ_UNINITIALIZED, WRITE_UNINITIALIZED};
use gregor_share::{
    DeliveryState, PersistError, PersistedState, ShareKey, StateBatch, StateSummary,
};
use tracing::debug;

use crate::config::BrokerConfig;
use crate::replica_manager::ReplicaManager;
use crate::share_coordinator::{ShareCoordinatorRuntime, SHARE_GROUP_STATE_TOPIC};

/// A persister call's future.
pub type PersistFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PersistError>> + Send + 'a>>;

/// What a share-partition leader (and the group coordinator's share admin APIs) ask of the
/// share coordinators. Each call names one share-partition; the implementation finds the
/// coordinator of its key and retries while that one is loading or moving, within its own
/// time limit.
pub trait Persister: Send + Sync + 'static {
    /// The share-partition's state (ReadShareGroupState), as the leader in `leader_epoch`
    /// loads it; `Err(NotInitialized)` when it has none.
    fn read(&self, key: &ShareKey, leader_epoch: i32) -> PersistFuture<'_, PersistedState>;

    /// Replace the share-partition's state (WriteShareGroupState) with `state`, written by
    /// the leader in `leader_epoch`. Fenced when a newer leader epoch wrote it, or when its
    /// state epoch is no longer `state.state_epoch`.
    fn write(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
        state: &PersistedState,
    ) -> PersistFuture<'_, ()>;

    /// Create or reset the share-partition's state (InitializeShareGroupState) at
    /// `start_offset` (-1: the leader decides it from `share.auto.offset.reset`), with no
    /// batches, in `state_epoch`.
    fn initialize(
        &self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> PersistFuture<'_, ()>;

    /// What DescribeShareGroupOffsets shows (ReadShareGroupStateSummary);
    /// `Err(NotInitialized)` when it has no state.
    fn read_summary(&self, key: &ShareKey) -> PersistFuture<'_, StateSummary>;

    /// Delete the share-partition's state (DeleteShareGroupState); no error when it has none.
    fn delete(&self, key: &ShareKey) -> PersistFuture<'_, ()>;
}

/// How long a call keeps retrying a coordinator that is loading, moving or unreachable.
const RETRY_LIMIT: Duration = Duration::from_secs(10);
/// The pause before a retry (cut short by a new metadata image).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// One exchange with a remote coordinator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One call, for either path.
#[derive(Debug, Clone)]
enum Call {
    Read {
        leader_epoch: i32,
    },
    Write {
        leader_epoch: i32,
        state: PersistedState,
    },
    Initialize {
        state_epoch: i32,
        start_offset: i64,
    },
    Delete,
    Summary,
}

/// A call's answer.
#[derive(Debug)]
enum Answer {
    State(PersistedState),
    Done,
    Summary(Option<StateSummary>),
}

/// Why one attempt failed: a coordinator's refusal, or the coordinator could not be asked.
enum Attempt {
    Refused(ShareError, Option<String>),
    Unreachable(String),
}

/// The real persister: finds each key's coordinator in the applied image and asks it.
pub struct SharePersister {
    config: Arc<BrokerConfig>,
    /// The metadata image (who leads each `__share_group_state` partition, endpoints).
    replicas: Arc<ReplicaManager>,
    /// This broker's own coordinator, called directly when it leads the key's partition.
    coordinator: Arc<ShareCoordinatorRuntime>,
    /// One connection per coordinator broker, reused by every call (one exchange at a time).
    connections: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Option<Connection>>>>>,
}

impl std::fmt::Debug for SharePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharePersister").finish_non_exhaustive()
    }
}

impl SharePersister {
    /// A persister of this broker (`config`), asking `coordinator` for the keys it leads.
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        coordinator: Arc<ShareCoordinatorRuntime>,
    ) -> SharePersister {
        SharePersister {
            config,
            replicas,
            coordinator,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `call` for `key` at its coordinator, retrying while none can answer.
    async fn call(&self, key: &ShareKey, call: Call) -> Result<Answer, PersistError> {
        let deadline = tokio::time::Instant::now() + RETRY_LIMIT;
        let mut images = self.replicas.watch_image();
        loop {
            let why = match self.attempt(key, &call).await {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Refused(e, message)) => match e.code {
                    code::NOT_COORDINATOR
                    | code::COORDINATOR_LOAD_IN_PROGRESS
                    | code::COORDINATOR_NOT_AVAILABLE => format!("error code {}", e.code),
                    _ => return Err(persist_error(&e, message)),
                },
                Err(Attempt::Unreachable(why)) => why,
            };
            debug!(group = %key.group_id, partition = key.partition, why = %why,
                "share coordinator not available; retrying");
            if tokio::time::Instant::now() + RETRY_BACKOFF > deadline {
                return Err(PersistError::Unavailable(why));
            }
            images.borrow_and_update();
            let _ = tokio::time::timeout(RETRY_BACKOFF, images.changed()).await;
        }
    }

    /// One try at the coordinator the applied image names.
    async fn attempt(&self, key: &ShareKey, call: &Call) -> Result<Answer, Attempt> {
        let partition = self.coordinator.partition_for(key);
        let leader = {
            let image = self.replicas.image();
            image
                .topics()
                .topic_by_name(SHARE_GROUP_STATE_TOPIC)
                .map(|t| t.partition(partition).map_or(-1, |p| p.leader))
        };
        let Some(leader) = leader else {
            self.coordinator.ensure_topic();
            return Err(Attempt::Unreachable(format!(
                "{SHARE_GROUP_STATE_TOPIC} does not exist yet"
            )));
        };
        if leader < 0 {
            return Err(Attempt::Unreachable(format!(
                "{SHARE_GROUP_STATE_TOPIC}-{partition} has no leader"
            )));
        }
        if leader == self.config.node_id {
            self.local(key, call)
                .await
                .map_err(|e| Attempt::Refused(e, None))
        } else {
            self.remote(leader, key, call).await
        }
    }

    async fn local(&self, key: &ShareKey, call: &Call) -> Result<Answer, ShareError> {
        let c = &self.coordinator;
        Ok(match call {
            Call::Read { leader_epoch } => Answer::State(c.read(key, *leader_epoch).await?),
            Call::Write {
                leader_epoch,
                state,
            } => {
                let complete = state.delivery_complete_count();
                c.write(key, *leader_epoch, state, complete).await?;
                Answer::Done
            }
            Call::Initialize {
                state_epoch,
                start_offset,
            } => {
                c.initialize(key, *state_epoch, *start_offset).await?;
                Answer::Done
            }
            Call::Delete => {
                c.delete(key).await?;
                Answer::Done
            }
            Call::Summary => Answer::Summary(c.read_summary(key).await?),
        })
    }

    /// The connection slot of `broker` (created on first use).
    fn connection(&self, broker: i32) -> Arc<tokio::sync::Mutex<Option<Connection>>> {
        let mut all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(all.entry(broker).or_default())
    }

    /// Sends `req` (at the newest version both sides speak) to `broker` over its connection,
    /// dialling it first if needed.
    async fn exchange<R: Request>(&self, broker: i32, req: &R) -> Result<R::Response, String> {
        let slot = self.connection(broker);
        let mut conn = slot.lock().await;
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            *conn = None;
            let addr = crate::replica_fetcher::leader_address(&self.replicas, &self.config, broker)
                .ok_or_else(|| format!("broker {broker} has no known endpoint"))?;
            let config = ClientConfig {
                client_id: format!("gregor-share-persister-{}", self.config.node_id),
                connect_timeout: Duration::from_secs(5),
                request_timeout: REQUEST_TIMEOUT,
                max_response_bytes: 16 << 20,
                security: self.config.inter_broker_security.clone(),
                ..ClientConfig::default()
            };
            *conn = Some(
                Connection::connect(&addr, &config)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().ok_or("no connection")?;
        let key = ApiKey::try_from(R::KEY).map_err(|_| "unknown api".to_string())?;
        let version = c
            .version_at_most(key, R::VERSIONS.max)
            .map_err(|e| e.to_string())?;
        match c.send_at(req, version).await {
            Ok(r) => Ok(r),
            Err(e) => {
                if c.is_broken() {
                    *conn = None;
                }
                Err(e.to_string())
            }
        }
    }

    async fn remote(&self, broker: i32, key: &ShareKey, call: &Call) -> Result<Answer, Attempt> {
        let group = StrBytes::from_string(key.group_id.clone());
        let refused = |error_code: i16, message: Option<StrBytes>| {
            Attempt::Refused(
                crate::share_coordinator::error_code(error_code),
                message.map(|m| m.to_string()),
            )
        };
        let missing = || Attempt::Unreachable(format!("broker {broker} answered no partition"));
        match call {
            Call::Read { leader_epoch } => {
                let req = ReadShareGroupStateRequest::default()
                    .with_group_id(group)
                    .with_topics(vec![
                        read_share_group_state_request::ReadStateData::default()
                            .with_topic_id(key.topic_id)
                            .with_partitions(vec![
                                read_share_group_state_request::PartitionData::default()
                                    .with_partition(key.partition)
                                    .with_leader_epoch(*leader_epoch),
                            ]),
                    ]);
                let resp = self
                    .exchange(broker, &req)
                    .await
                    .map_err(Attempt::Unreachable)?;
                let p = resp
                    .results
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(missing)?;
                if p.error_code != code::NONE {
                    return Err(refused(p.error_code, p.error_message));
                }
                let mut batches = Vec::with_capacity(p.state_batches.len());
                for b in p.state_batches {
                    let delivery_state =
                        DeliveryState::from_code(b.delivery_state).ok_or_else(|| {
                            refused(
                                code::UNKNOWN_SERVER_ERROR,
                                Some(StrBytes::from_static_str("unknown delivery state")),
                            )
                        })?;
                    batches.push(StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        delivery_state,
                        delivery_count: b.delivery_count,
                    });
                }
                Ok(Answer::State(PersistedState {
                    state_epoch: p.state_epoch,
                    start_offset: p.start_offset,
                    state_batches: batches,
                }))
            }
            Call::Write {
                leader_epoch,
                state,
            } => {
                let req = WriteShareGroupStateRequest::default()
                    .with_group_id(group)
                    .with_topics(vec![
                        write_share_group_state_request::WriteStateData::default()
                            .with_topic_id(key.topic_id)
                            .with_partitions(vec![
                            write_share_group_state_request::PartitionData::default()
                                .with_partition(key.partition)
                                .with_state_epoch(state.state_epoch)
                                .with_leader_epoch(*leader_epoch)
                                .with_start_offset(state.start_offset)
                                .with_delivery_complete_count(state.delivery_complete_count())
                                .with_state_batches(
                                    state
                                        .state_batches
                                        .iter()
                                        .map(|b| {
                                            write_share_group_state_request::StateBatch::default()
                                                .with_first_offset(b.first_offset)
                                                .with_last_offset(b.last_offset)
                                                .with_delivery_state(b.delivery_state.code())
                                                .with_delivery_count(b.delivery_count)
                                        })
                                        .collect(),
                                ),
                        ]),
                    ]);
                let resp = self
                    .exchange(broker, &req)
                    .await
                    .map_err(Attempt::Unreachable)?;
                let p = resp
                    .results
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(missing)?;
                if p.error_code != code::NONE {
                    return Err(refused(p.error_code, p.error_message));
                }
                Ok(Answer::Done)
            }
            Call::Initialize {
                state_epoch,
                start_offset,
            } => {
                let req = InitializeShareGroupStateRequest::default()
                    .with_group_id(group)
                    .with_topics(vec![
                        initialize_share_group_state_request::InitializeStateData::default()
                            .with_topic_id(key.topic_id)
                            .with_partitions(vec![
                                initialize_share_group_state_request::PartitionData::default()
                                    .with_partition(key.partition)
                                    .with_state_epoch(*state_epoch)
                                    .with_start_offset(*start_offset),
                            ]),
                    ]);
                let resp = self
                    .exchange(broker, &req)
                    .await
                    .map_err(Attempt::Unreachable)?;
                let p = resp
                    .results
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(missing)?;
                if p.error_code != code::NONE {
                    return Err(refused(p.error_code, p.error_message));
                }
                Ok(Answer::Done)
            }
            Call::Delete => {
                let req = DeleteShareGroupStateRequest::default()
                    .with_group_id(group)
                    .with_topics(vec![
                        delete_share_group_state_request::DeleteStateData::default()
                            .with_topic_id(key.topic_id)
                            .with_partitions(vec![
                                delete_share_group_state_request::PartitionData::default()
                                    .with_partition(key.partition),
                            ]),
                    ]);
                let resp = self
                    .exchange(broker, &req)
                    .await
                    .map_err(Attempt::Unreachable)?;
                let p = resp
                    .results
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(missing)?;
                if p.error_code != code::NONE {
                    return Err(refused(p.error_code, p.error_message));
                }
                Ok(Answer::Done)
            }
            Call::Summary => {
                let req = ReadShareGroupStateSummaryRequest::default()
                    .with_group_id(group)
                    .with_topics(vec![
                        read_share_group_state_summary_request::ReadStateSummaryData::default()
                            .with_topic_id(key.topic_id)
                            .with_partitions(vec![
                                read_share_group_state_summary_request::PartitionData::default()
                                    .with_partition(key.partition)
                                    .with_leader_epoch(-1),
                            ]),
                    ]);
                let resp = self
                    .exchange(broker, &req)
                    .await
                    .map_err(Attempt::Unreachable)?;
                let p = resp
                    .results
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .next()
                    .ok_or_else(missing)?;
                if p.error_code != code::NONE {
                    return Err(refused(p.error_code, p.error_message));
                }
                let none = p.start_offset == -1 && p.state_epoch == 0 && p.leader_epoch == 0;
                Ok(Answer::Summary((!none).then_some(StateSummary {
                    state_epoch: p.state_epoch,
                    leader_epoch: p.leader_epoch,
                    start_offset: p.start_offset,
                    delivery_complete_count: p.delivery_complete_count,
                })))
            }
        }
    }
}

/// The persister's error for a coordinator's refusal (`message`: a remote coordinator's).
fn persist_error(e: &ShareError, message: Option<String>) -> PersistError {
    let message = message.or_else(|| e.message.map(str::to_string));
    match e.code {
        code::FENCED_LEADER_EPOCH => PersistError::FencedLeaderEpoch,
        code::FENCED_STATE_EPOCH => PersistError::FencedStateEpoch,
        code::INVALID_REQUEST
            if matches!(
                message.as_deref(),
                Some(READ_UNINITIALIZED | WRITE_UNINITIALIZED)
            ) =>
        {
            PersistError::NotInitialized
        }
        other => PersistError::Other {
            code: other,
            message: message.unwrap_or_default(),
        },
    }
}

fn unexpected(answer: Answer) -> PersistError {
    PersistError::Other {
        code: code::UNKNOWN_SERVER_ERROR,
        message: format!("unexpected answer {answer:?}"),
    }
}

impl Persister for SharePersister {
    fn read(&self, key: &ShareKey, leader_epoch: i32) -> PersistFuture<'_, PersistedState> {
        let key = key.clone();
        Box::pin(async move {
            match self.call(&key, Call::Read { leader_epoch }).await? {
                Answer::State(s) => Ok(s),
                other => Err(unexpected(other)),
            }
        })
    }

    fn write(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
        state: &PersistedState,
    ) -> PersistFuture<'_, ()> {
        let key = key.clone();
        let state = state.clone();
        Box::pin(async move {
            match self
                .call(
                    &key,
                    Call::Write {
                        leader_epoch,
                        state,
                    },
                )
                .await?
            {
                Answer::Done => Ok(()),
                other => Err(unexpected(other)),
            }
        })
    }

    fn initialize(
        &self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> PersistFuture<'_, ()> {
        let key = key.clone();
        Box::pin(async move {
            let call = Call::Initialize {
                state_epoch,
                start_offset,
            };
            match self.call(&key, call).await? {
                Answer::Done => Ok(()),
                other => Err(unexpected(other)),
            }
        })
    }

    fn read_summary(&self, key: &ShareKey) -> PersistFuture<'_, StateSummary> {
        let key = key.clone();
        Box::pin(async move {
            match self.call(&key, Call::Summary).await? {
                Answer::Summary(Some(s)) => Ok(s),
                Answer::Summary(None) => Err(PersistError::NotInitialized),
                other => Err(unexpected(other)),
            }
        })
    }

    fn delete(&self, key: &ShareKey) -> PersistFuture<'_, ()> {
        let key = key.clone();
        Box::pin(async move {
            match self.call(&key, Call::Delete).await? {
                Answer::Done => Ok(()),
                other => Err(unexpected(other)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{test_broker, Broker};
    use crate::share_coordinator::follow_share_group_state_leadership;

    /// A test broker with a topic `t` (2 partitions) and `__share_group_state` of one
    /// partition, created by the persister's first call.
    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        config.share_coordinator.state_topic_num_partitions = 1;
        let b = test_broker(config);
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        b
    }

    fn key(b: &Broker, group: &str, partition: i32) -> ShareKey {
        let topic_id = b.replicas.image().topics().topic_id("t").expect("topic id");
        ShareKey {
            group_id: group.into(),
            topic_id,
            partition,
        }
    }

    /// The local path: the first call creates `__share_group_state` (the broker follows its
    /// leadership), then state round-trips through this broker's coordinator, with Kafka's
    /// fences.
    #[tokio::test]
    async fn the_local_path_round_trips_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let follow = tokio::spawn(follow_share_group_state_leadership(
            Arc::clone(&b.share_coordinator),
            Arc::clone(&b.replicas),
        ));
        let p = &b.share_persister;
        let k = key(&b, "g", 1);
        assert_eq!(p.read(&k, 0).await, Err(PersistError::NotInitialized));
        assert!(b.replicas.topic(SHARE_GROUP_STATE_TOPIC).is_some());
        assert_eq!(p.read_summary(&k).await, Err(PersistError::NotInitialized));

        p.initialize(&k, 0, -1).await.expect("initialize");
        let empty = PersistedState {
            state_epoch: 0,
            start_offset: -1,
            state_batches: vec![],
        };
        assert_eq!(p.read(&k, 3).await, Ok(empty));
        let written = PersistedState {
            state_epoch: 0,
            start_offset: 10,
            state_batches: vec![
                StateBatch::new(10, 11, DeliveryState::Acknowledged, 1),
                StateBatch::new(14, 20, DeliveryState::Available, 2),
            ],
        };
        p.write(&k, 3, &written).await.expect("write");
        assert_eq!(p.read(&k, 3).await, Ok(written.clone()));
        assert_eq!(
            p.read_summary(&k).await,
            Ok(StateSummary {
                state_epoch: 0,
                leader_epoch: 3,
                start_offset: 10,
                // The leader's count went with the write: 10 and 11 are acknowledged.
                delivery_complete_count: 2,
            })
        );
        // Another key of the same group is separate.
        assert_eq!(
            p.read(&key(&b, "g", 0), 0).await,
            Err(PersistError::NotInitialized)
        );

        // An older leader is fenced; a newer one's read fences the previous one.
        assert_eq!(
            p.write(&k, 2, &written).await,
            Err(PersistError::FencedLeaderEpoch)
        );
        assert_eq!(p.read(&k, 4).await, Ok(written.clone()));
        assert_eq!(
            p.write(&k, 3, &written).await,
            Err(PersistError::FencedLeaderEpoch)
        );
        // An administrator's reset in state epoch 1 fences the leader's writes of epoch 0.
        p.initialize(&k, 1, 50).await.expect("reset");
        assert_eq!(
            p.write(&k, 4, &written).await,
            Err(PersistError::FencedStateEpoch)
        );
        assert_eq!(
            p.initialize(&k, 0, 0).await,
            Err(PersistError::FencedStateEpoch)
        );

        // The state survives a new coordinator replaying the log.
        let again = crate::share_coordinator::ShareCoordinatorRuntime::new(
            Arc::clone(&b.replicas),
            Arc::clone(&b.controller),
        );
        again.sync_leadership().expect("load");
        assert_eq!(
            again.read(&k, 4).await,
            Ok(PersistedState {
                state_epoch: 1,
                start_offset: 50,
                state_batches: vec![]
            })
        );

        p.delete(&k).await.expect("delete");
        p.delete(&k)
            .await
            .expect("delete again: no state is no error");
        assert_eq!(p.read(&k, 4).await, Err(PersistError::NotInitialized));
        assert_eq!(
            p.write(&k, 4, &written).await,
            Err(PersistError::NotInitialized)
        );
        follow.abort();
    }

    /// A key of a topic partition the image does not have is refused at once.
    #[tokio::test]
    async fn unknown_topic_partitions_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.replicas
            .create_topic(SHARE_GROUP_STATE_TOPIC, 1, 1, Default::default())
            .expect("create");
        b.share_coordinator.sync_leadership().expect("load");
        let k = key(&b, "g", 7);
        assert!(matches!(
            b.share_persister.initialize(&k, 0, 0).await,
            Err(PersistError::Other {
                code: code::UNKNOWN_TOPIC_OR_PARTITION,
                ..
            })
        ));
    }

    /// The remote path: the key's state partition is led by broker 2 (a fake node here), asked
    /// over a connection; NOT_COORDINATOR is retried, the answers are mapped.
    #[tokio::test]
    async fn the_remote_path_asks_the_leader_and_retries() {
        use bytes::BytesMut;
        use gregor_metadata::{Endpoint, MetadataRecord, RegisterBrokerRecord};
        use gregor_protocol::messages::{
            read_share_group_state_response as rr, read_share_group_state_summary_response as sr,
            write_share_group_state_response as wr, ReadShareGroupStateResponse,
            ReadShareGroupStateSummaryResponse, WriteShareGroupStateResponse,
        };
        use gregor_protocol::protocol::{Decodable, Encodable};
        use std::sync::atomic::{AtomicU32, Ordering};

        let reads = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&reads);
        // (version, delivery-complete count) of each write the node got.
        let writes = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&writes);
        let summaries = Arc::new(AtomicU32::new(0));
        let s = Arc::clone(&summaries);
        let port = crate::fake_node::start(
            vec![
                (ApiKey::ReadShareGroupState, 0, 0),
                (ApiKey::WriteShareGroupState, 0, 1),
                (ApiKey::ReadShareGroupStateSummary, 0, 1),
            ],
            move |api, version, mut body| {
                let reads = Arc::clone(&r);
                let writes = Arc::clone(&w);
                let summaries = Arc::clone(&s);
                async move {
                    let mut out = BytesMut::new();
                    match api {
                        ApiKey::ReadShareGroupState => {
                            let req =
                                ReadShareGroupStateRequest::decode(&mut body, version).ok()?;
                            let first = reads.fetch_add(1, Ordering::AcqRel) == 0;
                            let p = rr::PartitionResult::default()
                                .with_partition(req.topics[0].partitions[0].partition);
                            let p = if first {
                                p.with_error_code(code::NOT_COORDINATOR)
                            } else {
                                p.with_state_epoch(2)
                                    .with_start_offset(7)
                                    .with_state_batches(vec![rr::StateBatch::default()
                                        .with_first_offset(8)
                                        .with_last_offset(9)
                                        .with_delivery_state(4)
                                        .with_delivery_count(5)])
                            };
                            ReadShareGroupStateResponse::default()
                                .with_results(vec![rr::ReadStateResult::default()
                                    .with_topic_id(req.topics[0].topic_id)
                                    .with_partitions(vec![p])])
                                .encode(&mut out, version)
                                .ok()?;
                        }
                        ApiKey::WriteShareGroupState => {
                            let req =
                                WriteShareGroupStateRequest::decode(&mut body, version).ok()?;
                            let count = req.topics[0].partitions[0].delivery_complete_count;
                            writes
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((version, count));
                            WriteShareGroupStateResponse::default()
                                .with_results(vec![wr::WriteStateResult::default()
                                    .with_partitions(vec![wr::PartitionResult::default()
                                        .with_error_code(code::FENCED_STATE_EPOCH)])])
                                .encode(&mut out, version)
                                .ok()?;
                        }
                        _ => {
                            // The first: no state; then a state with its count (v1).
                            let p = if summaries.fetch_add(1, Ordering::AcqRel) == 0 {
                                sr::PartitionResult::default().with_start_offset(-1)
                            } else {
                                sr::PartitionResult::default()
                                    .with_state_epoch(1)
                                    .with_leader_epoch(4)
                                    .with_start_offset(7)
                                    .with_delivery_complete_count(3)
                            };
                            ReadShareGroupStateSummaryResponse::default()
                                .with_results(vec![
                                    sr::ReadStateSummaryResult::default().with_partitions(vec![p])
                                ])
                                .encode(&mut out, version)
                                .ok()?;
                        }
                    }
                    Some(out)
                }
            },
        )
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        config.share_coordinator.state_topic_num_partitions = 4;
        config.cluster.peer_address_overrides = vec![crate::config::Voter {
            id: 2,
            host: "127.0.0.1".into(),
            port,
        }];
        let b = test_broker(config);
        b.replicas
            .apply_records(&[MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                log_dirs: Vec::new(),
                broker_id: 2,
                incarnation_id: uuid::Uuid::new_v4(),
                broker_epoch: 1,
                endpoints: vec![Endpoint {
                    name: crate::handlers::metadata::CLIENT_LISTENER.into(),
                    host: "127.0.0.1".into(),
                    port,
                    security_protocol: 0,
                }],
                rack: None,
                fenced: false,
            })]);
        b.replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        b.share_coordinator.ensure_topic();
        for _ in 0..100 {
            if b.replicas
                .image()
                .topics()
                .topic_by_name(SHARE_GROUP_STATE_TOPIC)
                .is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let image = b.replicas.image();
        let state = image
            .topics()
            .topic_by_name(SHARE_GROUP_STATE_TOPIC)
            .expect("created");
        // A group whose state partition broker 2 leads.
        let k = (0..1000)
            .map(|i| key(&b, &format!("g{i}"), 0))
            .find(|k| {
                state
                    .partition(b.share_coordinator.partition_for(k))
                    .is_some_and(|p| p.leader == 2)
            })
            .expect("a partition led by broker 2");
        let p = &b.share_persister;
        assert_eq!(
            p.read(&k, 1).await,
            Ok(PersistedState {
                state_epoch: 2,
                start_offset: 7,
                state_batches: vec![StateBatch::new(8, 9, DeliveryState::Archived, 5)],
            })
        );
        assert_eq!(
            reads.load(Ordering::Acquire),
            2,
            "NOT_COORDINATOR was retried"
        );
        let written = PersistedState {
            state_epoch: 1,
            start_offset: 0,
            state_batches: vec![
                StateBatch::new(0, 2, DeliveryState::Acknowledged, 1),
                StateBatch::new(3, 3, DeliveryState::Available, 1),
                StateBatch::new(4, 4, DeliveryState::Archived, 5),
            ],
        };
        assert_eq!(
            p.write(&k, 1, &written).await,
            Err(PersistError::FencedStateEpoch)
        );
        // Written at v1, with the leader's delivery-complete count.
        assert_eq!(
            *writes.lock().unwrap_or_else(|p| p.into_inner()),
            vec![(1, 4)]
        );
        assert_eq!(p.read_summary(&k).await, Err(PersistError::NotInitialized));
        assert_eq!(
            p.read_summary(&k).await,
            Ok(StateSummary {
                state_epoch: 1,
                leader_epoch: 4,
                start_offset: 7,
                delivery_complete_count: 3,
            })
        );
    }
}
