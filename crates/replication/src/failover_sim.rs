//! Seeded simulation of leader failover: three nodes, each with its own [`Partition`], log and
//! leader-epoch cache, a controller that fences a crashed node and elects a new leader from
//! the ISR, and a metadata log each node applies late. Crashed nodes restart with their log
//! (everything they wrote was flushed) and rejoin; a crashed leader may come back as a zombie
//! that still believes it leads until the metadata reaches it. Followers truncate with the
//! OffsetForLeaderEpoch exchange ([`crate::epoch`]) before they fetch.
//!
//! Checked: at most one node leads in any leader epoch; when an acks=all produce completes,
//! every replica in the controller's ISR holds exactly those records at those offsets; after
//! the faults stop, every replica's log is identical to the leader's and every acknowledged
//! record is in it, at its offset.

use std::collections::BTreeMap;

use crate::epoch::{assign, latest_epoch, truncate_from_end, truncation_offset, EpochEntry};
use crate::sim_rng::Rng;
use crate::*;

const NODES: [i32; 3] = [1, 2, 3];
const LAG: i64 = 1_000;
/// Kafka's `LeaderConstants.NO_LEADER`.
const NO_LEADER: i32 = -1;

/// A record: the leader epoch it was written in, and a unique id standing for its bytes.
type Record = (i32, u64);

struct Node {
    id: i32,
    alive: bool,
    part: Partition,
    log: Vec<Record>,
    cache: Vec<EpochEntry>,
    broker_epoch: i64,
    /// Must run the OffsetForLeaderEpoch exchange before fetching.
    truncating: bool,
    /// Registrations to apply: (time, registration), in order.
    metadata: Vec<(i64, LeaderAndIsr)>,
}

impl Node {
    fn push(&mut self, record: Record) {
        assign(&mut self.cache, record.0, self.log.len() as i64);
        self.log.push(record);
    }

    fn truncate(&mut self, offset: usize) {
        self.log.truncate(offset);
        truncate_from_end(&mut self.cache, offset as i64);
    }
}

fn config() -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: LAG,
        min_insync_replicas: 2,
        alter_partition_retry_ms: 200,
    }
}

struct Controller {
    reg: LeaderAndIsr,
    /// Broker epochs of registered (unfenced) brokers.
    alive: BTreeMap<i32, i64>,
}

struct Sim {
    rng: Rng,
    now: i64,
    faults: bool,
    nodes: BTreeMap<i32, Node>,
    ctl: Controller,
    next_record: u64,
    /// Which node led each leader epoch.
    leaders: BTreeMap<i32, i32>,
    /// acks=all produces waiting: (node, epoch, start offset, records).
    produces: Vec<(i32, i32, usize, Vec<Record>)>,
    /// Acknowledged records by offset.
    acknowledged: BTreeMap<usize, Record>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let reg = LeaderAndIsr {
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: NODES.to_vec(),
            isr: NODES.to_vec(),
        };
        let mut sim = Sim {
            rng: Rng(seed),
            now: 0,
            faults: true,
            nodes: BTreeMap::new(),
            ctl: Controller {
                reg: reg.clone(),
                alive: NODES.iter().map(|&id| (id, 1)).collect(),
            },
            next_record: 0,
            leaders: BTreeMap::new(),
            produces: Vec::new(),
            acknowledged: BTreeMap::new(),
        };
        for id in NODES {
            let log = LogOffsets {
                log_start_offset: 0,
                high_watermark: 0,
                log_end_offset: 0,
            };
            let part = Partition::new(id, 1, config(), log).expect("offsets");
            let node = Node {
                id,
                alive: true,
                part,
                log: Vec::new(),
                cache: Vec::new(),
                broker_epoch: 1,
                truncating: false,
                metadata: vec![(0, reg.clone())],
            };
            sim.nodes.insert(id, node);
        }
        sim
    }

    fn delay(&mut self) -> i64 {
        if self.faults {
            self.rng.below(400) as i64
        } else {
            self.rng.below(10) as i64
        }
    }

    fn publish(&mut self) {
        self.ctl.reg.partition_epoch += 1;
        let reg = self.ctl.reg.clone();
        for id in NODES {
            let at = self.now + self.delay();
            if let Some(n) = self.nodes.get_mut(&id) {
                let last = n.metadata.last().map_or(0, |m| m.0);
                n.metadata.push((at.max(last), reg.clone()));
            }
        }
    }

    /// The controller's AlterPartition handling; the answer may be lost.
    fn alter_partition(&mut self, from: i32, req: AlterPartitionRequest) {
        let reg = &self.ctl.reg;
        let response = if req.leader_id != reg.leader || req.leader_epoch != reg.leader_epoch {
            AlterPartitionResponse::Error(code::FENCED_LEADER_EPOCH)
        } else if req.partition_epoch != reg.partition_epoch {
            AlterPartitionResponse::Error(code::INVALID_UPDATE_VERSION)
        } else if !req.isr_ids().contains(&req.leader_id) {
            AlterPartitionResponse::Error(code::INVALID_REQUEST)
        } else if req
            .new_isr
            .iter()
            .any(|m| self.ctl.alive.get(&m.broker_id) != Some(&m.broker_epoch))
        {
            AlterPartitionResponse::Error(code::INELIGIBLE_REPLICA)
        } else {
            let isr: Vec<i32> = req.isr_ids().into_iter().collect();
            if isr != self.ctl.reg.isr {
                self.ctl.reg.isr = isr;
                self.publish();
            }
            AlterPartitionResponse::Accepted {
                leader_id: self.ctl.reg.leader,
                leader_epoch: self.ctl.reg.leader_epoch,
                partition_epoch: self.ctl.reg.partition_epoch,
                isr: self.ctl.reg.isr.clone(),
            }
        };
        if self.faults && self.rng.chance(10) {
            return;
        }
        let now = self.now;
        let out = match self.nodes.get_mut(&from) {
            Some(n) if n.alive => n
                .part
                .alter_partition_response(req.proposal, &response, now),
            _ => return,
        };
        self.run(from, out);
    }

    fn run(&mut self, id: i32, out: Vec<Output>) {
        for o in out {
            match o {
                Output::AlterPartition(req) => self.alter_partition(id, req),
                Output::AssignEpochStartOffset {
                    leader_epoch,
                    start_offset,
                } => {
                    if let Some(n) = self.nodes.get_mut(&id) {
                        assert_eq!(start_offset, n.log.len() as i64);
                        assign(&mut n.cache, leader_epoch, start_offset);
                    }
                }
                Output::HighWatermarkAdvanced { .. } => {}
            }
        }
    }

    fn apply_metadata(&mut self, id: i32) {
        let now = self.now;
        loop {
            let Some(n) = self.nodes.get_mut(&id) else {
                return;
            };
            if !n.alive || n.metadata.first().is_none_or(|m| m.0 > now) {
                return;
            }
            let (_, reg) = n.metadata.remove(0);
            if reg.leader == id {
                match n.part.become_leader(&reg, now) {
                    Ok(out) => {
                        let previous = self.leaders.insert(reg.leader_epoch, id);
                        assert!(
                            previous.is_none_or(|p| p == id),
                            "two leaders in epoch {}",
                            reg.leader_epoch
                        );
                        self.run(id, out);
                    }
                    Err(StateError::StaleRegistration { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            } else {
                let new_epoch = reg.leader_epoch != n.part.leader_epoch() || n.part.is_leader();
                match n.part.become_follower(&reg) {
                    Ok(()) => n.truncating |= new_epoch,
                    Err(StateError::StaleRegistration { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    fn append(&mut self, id: i32) {
        let now = self.now;
        let next = self.next_record;
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if !n.alive || n.part.check_append(-1).is_err() {
            return;
        }
        let epoch = n.part.leader_epoch();
        let start = n.log.len();
        let records: Vec<Record> = (0..3).map(|i| (epoch, next + i)).collect();
        self.next_record += 3;
        for &r in &records {
            n.push(r);
        }
        let out = n
            .part
            .leader_append(n.log.len() as i64, now)
            .expect("leader");
        self.produces.push((id, epoch, start, records));
        self.run(id, out);
    }

    fn fetch(&mut self, id: i32) {
        let now = self.now;
        let Some(f) = self.nodes.get(&id) else {
            return;
        };
        let Some(leader_id) = f.part.leader() else {
            return;
        };
        if !f.alive || f.part.is_leader() {
            return;
        }
        let Some(l) = self.nodes.get(&leader_id) else {
            return;
        };
        if !l.alive {
            return;
        }
        let epoch = f.part.leader_epoch();
        if f.truncating {
            let Some(last) = latest_epoch(&f.cache) else {
                if let Some(f) = self.nodes.get_mut(&id) {
                    f.truncating = false;
                }
                return;
            };
            let Ok(answer) = l.part.offset_for_leader_epoch(Some(epoch), last, &l.cache) else {
                return;
            };
            let end = f.log.len() as i64;
            let t = truncation_offset(&f.cache, end, end, answer);
            let f = self.nodes.get_mut(&id).expect("node");
            f.truncate(t.offset as usize);
            f.part.truncate_to(t.offset).expect("follower");
            f.truncating = !t.completed;
            return;
        }
        let request = FollowerFetch {
            replica_id: id,
            fetch_offset: f.log.len() as i64,
            log_start_offset: 0,
            current_leader_epoch: Some(epoch),
            broker_epoch: Some(f.broker_epoch),
        };
        let l = self.nodes.get_mut(&leader_id).expect("leader");
        let Ok(out) = l.part.follower_fetch(&request, now) else {
            return;
        };
        let start = request.fetch_offset as usize;
        let upto = start + self.rng.below((l.log.len() - start + 1) as u64) as usize;
        let records = l.log[start..upto].to_vec();
        let hw = l.part.high_watermark();
        self.run(leader_id, out);
        let f = self.nodes.get_mut(&id).expect("follower");
        for r in records {
            f.push(r);
        }
        f.part
            .follower_append(f.log.len() as i64, hw)
            .expect("follower");
    }

    fn crash(&mut self, id: i32) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.alive = false;
        }
    }

    /// The controller notices a dead node: fences it and drops it from the ISR; if it led,
    /// elects a replica of the ISR (clean election only). Like Kafka, the last ISR member
    /// stays in the ISR and the partition has no leader until that replica returns.
    fn fence(&mut self, id: i32) {
        if self.ctl.alive.remove(&id).is_none() {
            return;
        }
        let reg = &mut self.ctl.reg;
        if !reg.isr.contains(&id) {
            return;
        }
        if reg.isr.len() > 1 {
            reg.isr.retain(|&r| r != id);
        }
        if reg.leader == id {
            reg.leader = reg
                .isr
                .iter()
                .copied()
                .find(|&r| r != id)
                .unwrap_or(NO_LEADER);
            reg.leader_epoch += 1;
        }
        self.publish();
    }

    fn restart(&mut self, id: i32) {
        let reg = self.ctl.reg.clone();
        let now = self.now;
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        n.broker_epoch += 1;
        let log = LogOffsets {
            log_start_offset: 0,
            high_watermark: n.part.high_watermark().min(n.log.len() as i64),
            log_end_offset: n.log.len() as i64,
        };
        n.part = Partition::new(id, n.broker_epoch, config(), log).expect("offsets");
        n.alive = true;
        n.truncating = false;
        n.metadata = vec![(now, reg)];
        let epoch = n.broker_epoch;
        self.ctl.alive.insert(id, epoch);
        if self.ctl.reg.leader == NO_LEADER && self.ctl.reg.isr.contains(&id) {
            self.ctl.reg.leader = id;
            self.ctl.reg.leader_epoch += 1;
            self.publish();
        }
        for other in NODES {
            let status = BrokerStatus {
                broker_epoch: epoch,
                fenced: false,
                in_controlled_shutdown: false,
            };
            if let Some(o) = self.nodes.get_mut(&other) {
                o.part.set_broker_status(id, Some(status), now);
            }
        }
    }

    fn check_produces(&mut self) {
        let mut waiting = Vec::new();
        for (id, epoch, start, records) in std::mem::take(&mut self.produces) {
            let end = (start + records.len()) as i64;
            let status = match self.nodes.get(&id) {
                Some(n) if n.alive => n.part.produce_status(end, epoch),
                _ => ProduceStatus::Complete(Err(ReplicationError::NotLeaderOrFollower)),
            };
            match status {
                ProduceStatus::Pending => waiting.push((id, epoch, start, records)),
                ProduceStatus::Complete(Ok(())) => {
                    for member in self.ctl.reg.isr.clone() {
                        let log = &self.nodes[&member].log;
                        assert_eq!(
                            log.get(start..start + records.len()),
                            Some(&records[..]),
                            "acknowledged records missing on ISR member {member}"
                        );
                    }
                    for (i, r) in records.into_iter().enumerate() {
                        self.acknowledged.insert(start + i, r);
                    }
                }
                ProduceStatus::Complete(Err(_)) => {}
            }
        }
        self.produces = waiting;
    }

    fn step(&mut self) {
        let id = NODES[self.rng.below(3) as usize];
        match self.rng.below(100) {
            0..=29 => self.append(id),
            30..=74 => self.fetch(id),
            75..=84 => {
                let now = self.now;
                if let Some(n) = self.nodes.get_mut(&id) {
                    if n.alive {
                        let out = n.part.tick(now);
                        self.run(id, out);
                    }
                }
            }
            85 if self.faults && self.nodes.values().all(|n| n.alive) => self.crash(id),
            86..=88 => {
                let dead: Vec<i32> = self
                    .nodes
                    .values()
                    .filter(|n| !n.alive)
                    .map(|n| n.id)
                    .collect();
                for d in dead {
                    if self.ctl.alive.contains_key(&d) {
                        self.fence(d);
                    } else if self.rng.chance(30) {
                        self.restart(d);
                    }
                }
            }
            _ => {}
        }
        self.now += self.rng.below(40) as i64;
        for id in NODES {
            self.apply_metadata(id);
        }
        self.check_produces();
    }
}

fn run_seed(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    for _ in 0..3_000 {
        sim.step();
    }
    sim.faults = false;
    for id in NODES {
        if !sim.nodes[&id].alive {
            if sim.ctl.alive.contains_key(&id) {
                sim.fence(id);
            }
            sim.restart(id);
        }
    }
    let end = sim.now + 30 * LAG;
    while sim.now < end {
        for id in NODES {
            sim.apply_metadata(id);
            sim.fetch(id);
            let now = sim.now;
            let out = sim
                .nodes
                .get_mut(&id)
                .map(|n| n.part.tick(now))
                .unwrap_or_default();
            sim.run(id, out);
        }
        sim.check_produces();
        sim.now += 10;
    }
    let leader = sim.ctl.reg.leader;
    let log = sim.nodes[&leader].log.clone();
    for id in NODES {
        let n = &sim.nodes[&id];
        assert!(
            n.log == log,
            "seed {seed}: replica {id} ({} records, leader {:?}, epoch {}, truncating {}, alive {}) differs from leader {leader} ({} records); controller {:?} alive {:?}; leader state {:?} {:?}",
            n.log.len(),
            n.part.leader(),
            n.part.leader_epoch(),
            n.truncating,
            n.alive,
            log.len(),
            sim.ctl.reg,
            sim.ctl.alive,
            sim.nodes[&leader].part.isr_state(),
            sim.nodes[&leader].part.replica_state(id),
        );
    }
    for (&offset, record) in &sim.acknowledged {
        assert_eq!(
            log.get(offset),
            Some(record),
            "seed {seed}: acknowledged record lost at {offset}"
        );
    }
    sim
}

#[test]
fn failover_never_loses_an_acknowledged_record() {
    let seeds: u64 = std::env::var("GREGOR_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let (mut acknowledged, mut epochs) = (0, 0);
    for seed in 0..seeds {
        let sim = run_seed(seed);
        acknowledged += sim.acknowledged.len();
        epochs += sim.ctl.reg.leader_epoch;
    }
    eprintln!("acknowledged {acknowledged} records over {epochs} leader changes");
    assert!(acknowledged > seeds as usize * 100);
    assert!(epochs > seeds as i32);
}
