//! Seeded simulation of one partition: a leader [`Partition`], two followers, a controller
//! and a metadata log, with random appends, fetches, pauses, fencing, re-elections, ticks and
//! AlterPartition messages that are delayed, reordered (answers) or lost. A run is a function
//! of its seed; invariants are checked after every step:
//!
//! * the high watermark never decreases and stays within the leader's log, and advances only
//!   while the ISR has at least `min.insync.replicas` members;
//! * every member of the ISR (the controller's, and the leader's maximal ISR) holds every
//!   offset below the high watermark: committed records are on every replica that could be
//!   elected;
//! * a follower is proposed for removal only when it has not reached the leader's log end for
//!   longer than `replica.lag.time.max.ms`;
//! * an acks=all produce is reported complete only when every ISR member has it and the ISR
//!   is at least `min.insync.replicas`;
//! * after the faults stop, the ISR grows back to every replica, nothing stays in flight and
//!   every acks=all produce of the current epoch completes.

use std::collections::{BTreeMap, BTreeSet};

use crate::sim_rng::Rng;
use crate::*;

const LEADER: i32 = 1;
const FOLLOWERS: [i32; 2] = [2, 3];
const LAG: i64 = 1_000;
const RETRY: i64 = 300;
const MIN_ISR: usize = 2;

#[derive(Debug, Clone)]
enum Meta {
    Registration(LeaderAndIsr),
    Broker(i32, BrokerStatus),
}

struct Follower {
    log_end: i64,
    paused_until: i64,
    /// The leader epoch this follower knows from the metadata.
    known_epoch: i32,
    /// A fetch response on its way: (arrives at, log end after it).
    response: Option<(i64, i64)>,
}

struct Controller {
    leader_epoch: i32,
    partition_epoch: i32,
    isr: BTreeSet<i32>,
    fenced: BTreeSet<i32>,
}

struct Sim {
    rng: Rng,
    now: i64,
    faults: bool,
    leader: Partition,
    followers: BTreeMap<i32, Follower>,
    ctl: Controller,
    /// One ordered channel to the controller: copies may be lost or delayed but are processed
    /// in the order sent (the contract of `alter_partition_response`).
    to_controller: Vec<(i64, AlterPartitionRequest)>,
    /// Answers: delayed, reordered or lost.
    to_leader: Vec<(i64, ProposalId, AlterPartitionResponse)>,
    /// The metadata log as each node applies it: (time it is applied, record), in order.
    meta_leader: Vec<(i64, Meta)>,
    meta_followers: Vec<(i64, Meta)>,
    // Ground truth for the checks.
    max_hw: i64,
    /// Last time each follower fetched at the leader's log end of that moment.
    last_full_catch_up: BTreeMap<i32, i64>,
    /// acks=all produces waiting: (offset the records end before, epoch appended in).
    produces: Vec<(i64, i32)>,
    completed_ok: usize,
    /// How often each other outcome happened: NOT_ENOUGH_REPLICAS before the append,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER (appended in an older epoch).
    refused_before: usize,
    failed_after: usize,
    not_leader: usize,
    /// First copy of the last proposal checked.
    last_proposal: Option<ProposalId>,
}

fn replicas() -> Vec<i32> {
    vec![LEADER, FOLLOWERS[0], FOLLOWERS[1]]
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let config = ReplicationConfig {
            replica_lag_time_max_ms: LAG,
            min_insync_replicas: MIN_ISR,
            alter_partition_retry_ms: RETRY,
        };
        let log = LogOffsets {
            log_start_offset: 0,
            high_watermark: 0,
            log_end_offset: 0,
        };
        let mut leader = Partition::new(LEADER, 7, config, log).expect("valid offsets");
        let reg = LeaderAndIsr {
            leader: LEADER,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: replicas(),
            isr: replicas(),
        };
        leader.become_leader(&reg, 0).expect("first registration");
        let followers = FOLLOWERS
            .iter()
            .map(|&id| {
                let f = Follower {
                    log_end: 0,
                    paused_until: 0,
                    known_epoch: 0,
                    response: None,
                };
                (id, f)
            })
            .collect();
        Sim {
            rng: Rng(seed),
            now: 0,
            faults: true,
            leader,
            followers,
            ctl: Controller {
                leader_epoch: 0,
                partition_epoch: 0,
                isr: replicas().into_iter().collect(),
                fenced: BTreeSet::new(),
            },
            to_controller: Vec::new(),
            to_leader: Vec::new(),
            meta_leader: Vec::new(),
            meta_followers: Vec::new(),
            max_hw: 0,
            last_full_catch_up: FOLLOWERS.iter().map(|&id| (id, 0)).collect(),
            produces: Vec::new(),
            completed_ok: 0,
            refused_before: 0,
            failed_after: 0,
            not_leader: 0,
            last_proposal: None,
        }
    }

    fn delay(&mut self) -> i64 {
        if self.faults {
            self.rng.below(2 * RETRY as u64) as i64
        } else {
            self.rng.below(20) as i64
        }
    }

    fn lost(&mut self) -> bool {
        self.faults && self.rng.chance(10)
    }

    fn log_end_of(&self, id: i32) -> i64 {
        if id == LEADER {
            self.leader.log_end_offset()
        } else {
            self.followers.get(&id).map_or(-1, |f| f.log_end)
        }
    }

    /// Carry out the leader's outputs, checking each AlterPartition it sends.
    fn run(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::HighWatermarkAdvanced { high_watermark } => {
                    assert_eq!(high_watermark, self.leader.high_watermark());
                    // Committed only on at least min.insync.replicas replicas.
                    assert!(
                        self.leader.isr().len() >= MIN_ISR,
                        "high watermark {high_watermark} advanced with ISR {:?}",
                        self.leader.isr()
                    );
                }
                Output::AlterPartition(req) => {
                    self.check_proposal(&req);
                    if !self.lost() {
                        let at = self.now + self.delay();
                        let last = self.to_controller.last().map_or(0, |m| m.0);
                        self.to_controller.push((at.max(last), req));
                    }
                }
                Output::AssignEpochStartOffset { start_offset, .. } => {
                    assert_eq!(start_offset, self.leader.log_end_offset());
                }
            }
        }
    }

    fn check_proposal(&mut self, req: &AlterPartitionRequest) {
        // A resend repeats a decision taken when it was first sent.
        let first = self.leader.isr_state().inflight().map(|i| i.first);
        if first.is_some() && first <= self.last_proposal {
            return;
        }
        self.last_proposal = first;
        let proposed = req.isr_ids();
        assert!(proposed.contains(&LEADER), "leader removed itself: {req:?}");
        for removed in self.leader.isr().difference(&proposed) {
            let last = self.last_full_catch_up.get(removed).copied().unwrap_or(0);
            assert!(
                self.now - last > LAG,
                "{removed} removed at {} but was caught up at {last}: {:?}",
                self.now,
                self.leader.replica_state(*removed),
            );
            let known = self
                .leader
                .replica_state(*removed)
                .map(|r| r.log_end_offset);
            assert_ne!(known, Some(self.leader.log_end_offset()));
        }
    }

    fn publish(&mut self, meta: Meta) {
        // The metadata log is reliable and ordered, but each node applies it with a delay.
        let at = self.now + self.delay();
        let last = self.meta_leader.last().map_or(0, |m| m.0);
        self.meta_leader.push((at.max(last), meta.clone()));
        let at = self.now + self.delay();
        let last = self.meta_followers.last().map_or(0, |m| m.0);
        self.meta_followers.push((at.max(last), meta));
    }

    fn registration(&self) -> LeaderAndIsr {
        LeaderAndIsr {
            leader: LEADER,
            leader_epoch: self.ctl.leader_epoch,
            partition_epoch: self.ctl.partition_epoch,
            replicas: replicas(),
            isr: self.ctl.isr.iter().copied().collect(),
        }
    }

    /// Kafka's controller-side AlterPartition checks, simplified.
    fn controller_handle(&mut self, req: &AlterPartitionRequest) -> AlterPartitionResponse {
        if self.faults && self.rng.chance(5) {
            return AlterPartitionResponse::Error(code::NOT_CONTROLLER);
        }
        if req.leader_epoch != self.ctl.leader_epoch {
            return AlterPartitionResponse::Error(code::FENCED_LEADER_EPOCH);
        }
        if req.partition_epoch != self.ctl.partition_epoch {
            return AlterPartitionResponse::Error(code::INVALID_UPDATE_VERSION);
        }
        // Only now, with both epochs current, may the controller say it did not try: the
        // leader then reverts to its committed ISR, which is safe only because that is still
        // the controller's.
        if self.faults && self.rng.chance(5) {
            return AlterPartitionResponse::Error(code::OPERATION_NOT_ATTEMPTED);
        }
        let isr = req.isr_ids();
        if isr.iter().any(|id| self.ctl.fenced.contains(id)) {
            return AlterPartitionResponse::Error(code::INELIGIBLE_REPLICA);
        }
        if isr != self.ctl.isr {
            self.ctl.isr = isr;
            self.ctl.partition_epoch += 1;
            self.publish(Meta::Registration(self.registration()));
        }
        AlterPartitionResponse::Accepted {
            leader_id: LEADER,
            leader_epoch: self.ctl.leader_epoch,
            partition_epoch: self.ctl.partition_epoch,
            isr: self.ctl.isr.iter().copied().collect(),
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.to_controller.drain(..).partition(|m| m.0 <= now);
        self.to_controller = rest;
        for (_, req) in due {
            let resp = self.controller_handle(&req);
            if !self.lost() {
                let at = now + self.delay();
                self.to_leader.push((at, req.proposal, resp));
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.to_leader.drain(..).partition(|m| m.0 <= now);
        self.to_leader = rest;
        for (_, proposal, resp) in due {
            let out = self.leader.alter_partition_response(proposal, &resp, now);
            self.run(out);
        }
        while self.meta_leader.first().is_some_and(|m| m.0 <= now) {
            let (_, meta) = self.meta_leader.remove(0);
            let out = match meta {
                // An AlterPartition answer can bring a partition epoch before the metadata
                // does; the older registration is then refused, as Kafka skips it.
                Meta::Registration(reg) => match self.leader.become_leader(&reg, now) {
                    Ok(out) => {
                        // A new leader epoch judges a follower outside the ISR afresh, as
                        // Kafka's leader does: what it fetched before no longer counts.
                        if out
                            .iter()
                            .any(|o| matches!(o, Output::AssignEpochStartOffset { .. }))
                        {
                            for id in FOLLOWERS {
                                if !reg.isr.contains(&id) {
                                    self.last_full_catch_up.insert(id, i64::MIN / 4);
                                }
                            }
                        }
                        out
                    }
                    Err(StateError::StaleRegistration {
                        current_partition_epoch,
                        ..
                    }) => {
                        assert!(reg.partition_epoch < current_partition_epoch);
                        Vec::new()
                    }
                    Err(e) => panic!("registration refused: {e}"),
                },
                Meta::Broker(id, status) => self.leader.set_broker_status(id, Some(status), now),
            };
            self.run(out);
        }
        while self.meta_followers.first().is_some_and(|m| m.0 <= now) {
            let (_, meta) = self.meta_followers.remove(0);
            if let Meta::Registration(reg) = meta {
                for f in self.followers.values_mut() {
                    f.known_epoch = reg.leader_epoch;
                }
            }
        }
        for f in self.followers.values_mut() {
            if let Some((at, end)) = f.response {
                if at <= now {
                    f.log_end = f.log_end.max(end);
                    f.response = None;
                }
            }
        }
    }

    fn fetch(&mut self, id: i32) {
        let Some(f) = self.followers.get(&id) else {
            return;
        };
        if f.paused_until > self.now || f.response.is_some() {
            return;
        }
        let request = FollowerFetch {
            replica_id: id,
            fetch_offset: f.log_end,
            log_start_offset: 0,
            current_leader_epoch: Some(f.known_epoch),
            broker_epoch: Some(1000 + id as i64),
        };
        let leader_end = self.leader.log_end_offset();
        match self.leader.follower_fetch(&request, self.now) {
            Ok(out) => {
                if request.fetch_offset == leader_end {
                    self.last_full_catch_up.insert(id, self.now);
                }
                self.run(out);
                // The response carries some or all of the records past the fetch offset.
                let upto = request.fetch_offset
                    + self
                        .rng
                        .below((leader_end - request.fetch_offset + 1) as u64)
                        as i64;
                let at = self.now + self.delay() / 4;
                if let Some(f) = self.followers.get_mut(&id) {
                    f.response = Some((at, upto));
                }
            }
            Err(e) => {
                let code = e.code();
                assert!(
                    code == code::FENCED_LEADER_EPOCH || code == code::UNKNOWN_LEADER_EPOCH,
                    "unexpected fetch error {e}"
                );
            }
        }
    }

    fn append(&mut self) {
        let acks_all = self.rng.chance(70);
        match self.leader.check_append(if acks_all { -1 } else { 1 }) {
            Ok(()) => {
                let end = self.leader.log_end_offset() + 1 + self.rng.below(5) as i64;
                let out = self.leader.leader_append(end, self.now).expect("leader");
                if acks_all {
                    self.produces.push((end, self.leader.leader_epoch()));
                }
                self.run(out);
            }
            Err(e) => {
                assert_eq!(e.code(), code::NOT_ENOUGH_REPLICAS);
                assert!(acks_all && self.leader.isr().len() < MIN_ISR);
                self.refused_before += 1;
            }
        }
    }

    fn check_produces(&mut self) {
        let mut waiting = Vec::new();
        for (required, epoch) in std::mem::take(&mut self.produces) {
            match self.leader.produce_status(required, epoch) {
                ProduceStatus::Pending => waiting.push((required, epoch)),
                ProduceStatus::Complete(Ok(())) => {
                    self.completed_ok += 1;
                    assert!(self.leader.maximal_isr().len() >= MIN_ISR);
                    for id in self.ctl.isr.clone() {
                        assert!(
                            self.log_end_of(id) >= required,
                            "acks=all up to {required} acknowledged but {id} ends at {}",
                            self.log_end_of(id)
                        );
                    }
                }
                ProduceStatus::Complete(Err(e)) => match e.code() {
                    code::NOT_ENOUGH_REPLICAS_AFTER_APPEND => self.failed_after += 1,
                    code::NOT_LEADER_OR_FOLLOWER => self.not_leader += 1,
                    _ => panic!("unexpected produce error {e}"),
                },
            }
        }
        self.produces = waiting;
    }

    fn check(&mut self) {
        let hw = self.leader.high_watermark();
        assert!(
            hw >= self.max_hw,
            "HW went back from {} to {hw}",
            self.max_hw
        );
        self.max_hw = hw;
        assert!(hw <= self.leader.log_end_offset());
        let members: BTreeSet<i32> = self
            .ctl
            .isr
            .iter()
            .copied()
            .chain(self.leader.maximal_isr())
            .collect();
        for id in members {
            assert!(
                self.log_end_of(id) >= hw,
                "ISR member {id} ends at {} below the HW {hw} (controller ISR {:?}, leader {:?})",
                self.log_end_of(id),
                self.ctl.isr,
                self.leader.isr_state()
            );
        }
        self.check_produces();
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=24 => self.append(),
            25..=59 => {
                let id = FOLLOWERS[self.rng.below(2) as usize];
                self.fetch(id);
            }
            60..=69 => {
                let out = self.leader.tick(self.now);
                self.run(out);
            }
            70 if self.faults && self.rng.chance(50) => {
                let id = FOLLOWERS[self.rng.below(2) as usize];
                let until = self.now + self.rng.below(3 * LAG as u64) as i64;
                if let Some(f) = self.followers.get_mut(&id) {
                    f.paused_until = until;
                }
            }
            73 if self.faults => {
                // The controller fences a broker (it missed heartbeats) and takes it out of
                // the ISR itself, or unfences it.
                let id = FOLLOWERS[self.rng.below(2) as usize];
                let fenced = !self.ctl.fenced.contains(&id);
                if fenced {
                    self.ctl.fenced.insert(id);
                    if self.ctl.isr.remove(&id) {
                        self.ctl.partition_epoch += 1;
                        self.publish(Meta::Registration(self.registration()));
                    }
                } else {
                    self.ctl.fenced.remove(&id);
                }
                let status = BrokerStatus {
                    broker_epoch: 1000 + id as i64,
                    fenced,
                    in_controlled_shutdown: false,
                };
                self.publish(Meta::Broker(id, status));
            }
            74 if self.faults && self.rng.chance(20) => {
                // A new leader epoch with the same leader (e.g. a preferred election).
                self.ctl.leader_epoch += 1;
                self.ctl.partition_epoch += 1;
                self.publish(Meta::Registration(self.registration()));
            }
            _ => {}
        }
        self.now += self.rng.below(60) as i64;
        self.deliver();
        self.check();
    }

    /// Stop the faults and let everything settle.
    fn heal(&mut self) {
        self.faults = false;
        for id in FOLLOWERS {
            if self.ctl.fenced.remove(&id) {
                let status = BrokerStatus {
                    broker_epoch: 1000 + id as i64,
                    fenced: false,
                    in_controlled_shutdown: false,
                };
                self.publish(Meta::Broker(id, status));
            }
        }
        for f in self.followers.values_mut() {
            f.paused_until = 0;
        }
        let end = self.now + 20 * LAG;
        while self.now < end {
            for id in FOLLOWERS {
                self.fetch(id);
            }
            let out = self.leader.tick(self.now);
            self.run(out);
            self.now += 10;
            self.deliver();
            self.check();
        }
    }
}

fn run_seed(seed: u64, steps: usize) -> Sim {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
    }
    sim.heal();
    let all: BTreeSet<i32> = replicas().into_iter().collect();
    assert_eq!(
        sim.ctl.isr, all,
        "seed {seed}: controller ISR did not recover"
    );
    assert_eq!(
        sim.leader.isr_state(),
        &IsrState::Committed { isr: all },
        "seed {seed}"
    );
    assert_eq!(sim.leader.partition_epoch(), sim.ctl.partition_epoch);
    assert_eq!(sim.leader.high_watermark(), sim.leader.log_end_offset());
    let current = sim.leader.leader_epoch();
    assert!(
        sim.produces.iter().all(|p| p.1 != current),
        "seed {seed}: acks=all produces still waiting: {:?}",
        sim.produces
    );
    sim
}

/// `GREGOR_SIM_SEEDS=N` runs more seeds than the default 200.
#[test]
fn simulation_keeps_the_invariants_under_loss_delay_and_pauses() {
    let seeds: u64 = std::env::var("GREGOR_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut acknowledged = 0;
    let mut shrinks = 0;
    let (mut before, mut after, mut not_leader) = (0, 0, 0);
    for seed in 0..seeds {
        let sim = run_seed(seed, 2_000);
        acknowledged += sim.completed_ok;
        shrinks += sim.ctl.partition_epoch;
        before += sim.refused_before;
        after += sim.failed_after;
        not_leader += sim.not_leader;
    }
    eprintln!(
        "acknowledged {acknowledged}, refused {before}, failed after append {after}, \
         not leader {not_leader}, partition epochs {shrinks}"
    );
    // The runs exercised every outcome, and the ISR changed many times.
    let runs = seeds as usize;
    assert!(acknowledged > runs * 50, "{acknowledged}");
    assert!(before > runs && after > runs / 4 && not_leader > runs / 4);
    assert!(shrinks > seeds as i32 * 5, "{shrinks}");
}

#[test]
fn simulation_is_a_function_of_its_seed() {
    let a = run_seed(42, 1_000);
    let b = run_seed(42, 1_000);
    assert_eq!(a.now, b.now);
    assert_eq!(a.leader.log_end_offset(), b.leader.log_end_offset());
    assert_eq!(a.ctl.partition_epoch, b.ctl.partition_epoch);
    assert_eq!(a.completed_ok, b.completed_ok);
}
