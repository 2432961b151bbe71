//! The group coordinator's runtime: drives the I/O-free core (`gregor-group`) with the clock,
//! parks JoinGroup/SyncGroup replies until the core answers them, and writes what must survive a
//! restart to the internal compacted topic `__consumer_offsets`.
//!
//! ```text
//!  handler ─► core call (under a short lock) ─► Vec<Output>
//!                                                 ├─ Respond{id, resp} ─► oneshot to the parked reply
//!                                                 └─ Append{partition, records, then}
//!                                                        append to __consumer_offsets-<p> (in call order),
//!                                                        wait until fsynced, then answer `then`
//!  ticker task: sleeps until core.next_deadline() (or a wake-up) ─► core.tick(now) ─► outputs
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use gregor_group::{GroupCoordinator, Output, Record, RequestId, Response};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::records::RecordBatchDecoder;
use tokio::sync::{oneshot, Notify};
use tracing::{error, info};

use crate::clock::Clock;
use crate::partition::Partition;
use crate::replica_manager::ReplicaManager;

/// Name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The CreateTopics entry for `__consumer_offsets`: `offsets.topic.num.partitions`, the
/// replication factor `offsets.topic.replication.factor` capped by the live brokers (`live`),
/// compacted, 100 MiB segments (Kafka's `offsets.topic.segment.bytes`).
pub fn offsets_topic(
    config: &crate::config::BrokerConfig,
    live: usize,
) -> gregor_controller::protocol::CreatableTopic {
    let live = i16::try_from(live.max(1)).unwrap_or(i16::MAX);
    gregor_controller::protocol::CreatableTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: config.group.offsets_topic_num_partitions,
        replication_factor: config.cluster.offsets_topic_replication_factor.min(live),
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ],
    }
}

/// Runtime state around the core.
#[derive(Debug)]
pub struct GroupRuntime {
    core: Mutex<GroupCoordinator>,
    waiters: Mutex<HashMap<RequestId, oneshot::Sender<Response>>>,
    /// Time for member sessions, rebalance delays and offset expiry.
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    /// Wakes the ticker when a call may have moved the next deadline earlier.
    wake: Notify,
}

impl GroupRuntime {
    /// Loads every partition of `__consumer_offsets` hosted here (the topic must exist: the
    /// broker creates it through the controller at startup, [`offsets_topic`]).
    pub fn open(replicas: &ReplicaManager) -> anyhow::Result<GroupRuntime> {
        let clock = Arc::clone(replicas.clock());
        let mut config = replicas.config().group.clone();
        config.member_id_seed = clock.now_ms() as u64 ^ u64::from(std::process::id()) << 40;
        let topic = replicas
            .topic(OFFSETS_TOPIC)
            .ok_or_else(|| anyhow::anyhow!("{OFFSETS_TOPIC} does not exist"))?;
        let mut core = GroupCoordinator::new(config);
        let mut loaded = 0usize;
        for part in topic.partitions.values() {
            let records = read_all(part)?;
            loaded += records.len();
            core.load_partition(part.tp.partition, records, clock.now_ms())
                .map_err(|e| {
                    anyhow::anyhow!("corrupt {OFFSETS_TOPIC}-{}: {e}", part.tp.partition)
                })?;
        }
        info!(records = loaded, "group coordinator loaded");
        Ok(GroupRuntime {
            core: Mutex::new(core),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            wake: Notify::new(),
            clock,
        })
    }

    /// The core, locked.
    pub fn core(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a reply to be answered by a later [`Output`].
    pub fn park(&self) -> (RequestId, oneshot::Receiver<Response>) {
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        (id, rx)
    }

    fn answer(&self, id: RequestId, response: Response) {
        let tx = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(response);
        }
    }

    /// Carries out a core call's outputs, in order.
    pub fn execute(self: &Arc<Self>, replicas: &ReplicaManager, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Respond { request, response } => self.answer(request, response),
                Output::Append {
                    partition,
                    records,
                    then,
                } => {
                    let appended = append(replicas, partition, &records);
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let result = match appended {
                            Ok((part, end)) => part.wait_durable(end).await,
                            Err(code) => Err(code),
                        };
                        for (id, resp) in then {
                            match result {
                                Ok(()) => me.answer(id, resp),
                                Err(code) => {
                                    error!(partition, error = %code, "cannot write group state");
                                    me.answer(
                                        id,
                                        resp.with_error(
                                            ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
                                        ),
                                    )
                                }
                            }
                        }
                    });
                }
            }
        }
        self.wake.notify_one();
    }

    /// Runs `tick` whenever the core's next deadline passes.
    /// `owner` is whatever holds the replica manager (the broker state), so that this module
    /// does not depend on it.
    pub async fn run_ticker<R: AsRef<ReplicaManager>>(self: Arc<Self>, owner: Arc<R>) {
        loop {
            let now = self.clock.now_ms();
            let next = self.core().next_deadline().unwrap_or(now + 1000);
            let wait = Duration::from_millis((next - now).clamp(0, 1000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => continue,
            }
            let outputs = self.core().tick(self.clock.now_ms());
            if !outputs.is_empty() {
                self.execute((*owner).as_ref(), outputs);
            }
        }
    }
}

type Appended = (Arc<Partition>, i64);

fn append(
    replicas: &ReplicaManager,
    partition: i32,
    records: &[Record],
) -> Result<Appended, ErrorCode> {
    let (topic, part) = replicas
        .partition(OFFSETS_TOPIC, partition)
        .ok_or(ErrorCode::NOT_COORDINATOR)?;
    let simple: Vec<gregor_protocol::batch::SimpleRecord<'_>> = records
        .iter()
        .map(|r| (Some(&r.key[..]), r.value.as_deref()))
        .collect();
    let batch = gregor_protocol::batch::encode_simple_batch(replicas.clock().now_ms(), &simple);
    let info = part.append(&batch, &topic.settings)?;
    Ok((part, info.last_offset + 1))
}

fn read_all(part: &Partition) -> anyhow::Result<Vec<Record>> {
    let (mut offset, end) = part
        .offsets()
        .map_err(|c| anyhow::anyhow!("cannot read offsets: {c}"))?;
    let mut out = Vec::new();
    while offset < end {
        let info = part
            .read(offset, 1 << 20, true)
            .map_err(|c| anyhow::anyhow!("cannot read at {offset}: {c}"))?;
        let Some(slice) = info.slice else { break };
        let mut bytes = Bytes::from(slice.read_to_vec()?);
        let sets = RecordBatchDecoder::decode_all(&mut bytes)?;
        let mut progressed = false;
        for set in sets {
            for r in set.records {
                if r.offset >= offset {
                    offset = r.offset + 1;
                    progressed = true;
                }
                if let Some(key) = r.key {
                    out.push(Record {
                        key,
                        value: r.value,
                    });
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(out)
}
