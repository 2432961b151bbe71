//! The sticky task assignor (Kafka's `StickyTaskAssignor`, named "sticky").
//!
//! A pure function of the members (their process and previous target), the subtopologies
//! (task count, stateful or not) and `num.standby.replicas`. It keeps Kafka's structure:
//!
//! - **Quotas.** `ceil(tasks / members)`, once for active tasks and once for all tasks (active
//!   plus standby replicas). When a member reaches a quota, it leaves the pool and the quota is
//!   recomputed over the tasks and members left, so quotas only go down.
//! - **Active tasks.** (1) In (partition, subtopology) order, each task goes back to its
//!   previous active owner while that member is below the active quota. (2) Then to the least
//!   loaded of its previous standby owners, if below the quota. (3) The rest, in (subtopology,
//!   partition) order, go to the least loaded process, and there to its least loaded member.
//! - **Standby tasks** (only with replicas, only for stateful subtopologies). (1) In (partition,
//!   subtopology) descending order, each replica goes to the previous active owner, else to the
//!   least loaded previous standby owner, while below the total quota and while its process does
//!   not hold the task yet. (2) The replicas left, in (subtopology, partition) descending order,
//!   go to the least loaded process that does not hold the task, to its least loaded member. A
//!   replica no process can take is dropped.
//!
//! A process never holds a task twice (as active and standby, or as two standbys). A process's
//! load is its task count divided by its member count, compared exactly (no floating point).
//! Active counts per member differ by at most one when every member has its own process; the
//! members of a shared process are balanced as a process, so theirs may spread further.
//!
//! Ties, which Kafka leaves to `HashMap` and `PriorityQueue` order, are broken here by process
//! id, then member id, smallest first; so the same inputs always give the same assignment, on
//! every coordinator that replays the group. Among previous standby owners, the least loaded
//! is the smallest (process load, member task count, process id, member id); Kafka replaces its
//! candidate only when both loads are strictly lower, which is not a total order. When the
//! previous targets disagree (two members name the same previous active task), the smallest
//! member id is taken as the previous owner.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};

use super::tasks::{add_task, TaskMap, Tasks};

/// The assignor's name as StreamsGroupDescribe and configs show it.
pub const STICKY: &str = "sticky";

/// One member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignorMember {
    pub process_id: String,
    /// The member's previous target assignment (active and standby are used; warm-up ignored).
    pub previous: Tasks,
}

/// One subtopology: its id, how many tasks (partitions `0..num_tasks`) and whether it has
/// state (changelog topics), which makes it get standby replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignorSubtopology {
    pub subtopology_id: String,
    pub num_tasks: i32,
    pub stateful: bool,
}

/// Kafka's `StickyTaskAssignor`: returns each member's new target (active and standby;
/// warm-up empty), keyed by member id. Every member gets an entry, possibly empty. Every task
/// is active on exactly one member (none when there are no members); each task of a stateful
/// subtopology gets up to `num_standby_replicas` standbys, on distinct processes other than
/// the active one's. A subtopology id listed twice counts once (the first entry); a negative
/// task or replica count counts as zero.
pub fn assign(
    members: &BTreeMap<String, AssignorMember>,
    subtopologies: &[AssignorSubtopology],
    num_standby_replicas: i32,
) -> BTreeMap<String, Tasks> {
    let mut out: BTreeMap<String, Tasks> = members
        .keys()
        .map(|m| (m.clone(), Tasks::default()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let num_standby = usize::try_from(num_standby_replicas).unwrap_or(0);
    let mut state = State::new(members, subtopologies, num_standby);
    state.assign_active();
    if num_standby > 0 {
        state.assign_standby();
    }
    for member in &state.members {
        let Some(target) = out.get_mut(member.id) else {
            continue;
        };
        write_tasks(&mut target.active, &state.tasks, &member.active);
        write_tasks(&mut target.standby, &state.tasks, &member.standby);
    }
    out
}

fn write_tasks(map: &mut TaskMap, tasks: &[Task<'_>], held: &[usize]) {
    for t in held {
        let task = &tasks[*t];
        add_task(map, task.subtopology, task.partition);
    }
}

/// `ceil(tasks / members)`, or 0 without members.
fn per_member(tasks: usize, members: usize) -> usize {
    if members == 0 {
        0
    } else {
        tasks.div_ceil(members)
    }
}

/// One task of the current topology. Tasks are named by their index in `State::tasks`,
/// which is sorted by (subtopology id, partition).
struct Task<'a> {
    subtopology: &'a str,
    partition: i32,
    stateful: bool,
}

struct MemberState<'a> {
    id: &'a str,
    /// Index in `State::processes`.
    process: usize,
    /// Active plus standby tasks assigned so far.
    count: usize,
    active: Vec<usize>,
    standby: Vec<usize>,
}

struct ProcessState {
    /// Indexes in `State::members`, in member id order.
    members: Vec<usize>,
    /// Active plus standby tasks assigned so far to all its members.
    count: usize,
    /// Every task the process holds, active or standby.
    held: BTreeSet<usize>,
}

impl ProcessState {
    /// Compares the loads `count / members` exactly (both have at least one member).
    fn cmp_load(&self, other: &ProcessState) -> Ordering {
        let lhs = self.count as u128 * other.members.len() as u128;
        let rhs = other.count as u128 * self.members.len() as u128;
        lhs.cmp(&rhs)
    }
}

/// A per-member quota, recomputed as members reach it (Kafka's `computeTasksPerMember` and
/// `maybeUpdate...PerMember`).
struct Quota {
    tasks_left: usize,
    members_left: usize,
    per_member: usize,
}

impl Quota {
    fn new(tasks: usize, members: usize) -> Quota {
        Quota {
            tasks_left: tasks,
            members_left: members,
            per_member: per_member(tasks, members),
        }
    }

    /// A member just reached `count` tasks.
    fn record(&mut self, count: usize) {
        if count == self.per_member {
            self.members_left = self.members_left.saturating_sub(1);
            self.tasks_left = self.tasks_left.saturating_sub(count);
            self.per_member = per_member(self.tasks_left, self.members_left);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Standby,
}

struct State<'a> {
    tasks: Vec<Task<'a>>,
    /// Every member in member id order; a member is named by its index here.
    members: Vec<MemberState<'a>>,
    /// Every process in process id order; a process is named by its index here.
    processes: Vec<ProcessState>,
    /// Per task: the member that had it active in its previous target.
    prev_active: Vec<Option<usize>>,
    /// Per task: the members that had it as a standby in their previous target, in id order.
    prev_standby: Vec<Vec<usize>>,
    active_quota: Quota,
    total_quota: Quota,
    num_standby: usize,
}

impl<'a> State<'a> {
    fn new(
        members: &'a BTreeMap<String, AssignorMember>,
        subtopologies: &'a [AssignorSubtopology],
        num_standby: usize,
    ) -> State<'a> {
        let mut by_id: BTreeMap<&'a str, &'a AssignorSubtopology> = BTreeMap::new();
        for s in subtopologies {
            by_id.entry(s.subtopology_id.as_str()).or_insert(s);
        }
        let mut tasks = Vec::new();
        for (id, s) in &by_id {
            for partition in 0..s.num_tasks.max(0) {
                tasks.push(Task {
                    subtopology: id,
                    partition,
                    stateful: s.stateful,
                });
            }
        }
        let index: BTreeMap<(&str, i32), usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.subtopology, t.partition), i))
            .collect();

        let process_ids: BTreeSet<&str> = members.values().map(|m| m.process_id.as_str()).collect();
        let process_index: BTreeMap<&str, usize> = process_ids
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i))
            .collect();
        let mut processes: Vec<ProcessState> = process_ids
            .iter()
            .map(|_| ProcessState {
                members: Vec::new(),
                count: 0,
                held: BTreeSet::new(),
            })
            .collect();

        let mut prev_active: Vec<Option<usize>> = vec![None; tasks.len()];
        let mut prev_standby: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
        let mut states = Vec::with_capacity(members.len());
        for (m, (id, member)) in members.iter().enumerate() {
            let process = process_index
                .get(member.process_id.as_str())
                .copied()
                .expect("every member's process is indexed");
            processes[process].members.push(m);
            states.push(MemberState {
                id,
                process,
                count: 0,
                active: Vec::new(),
                standby: Vec::new(),
            });
            for t in previous_tasks(&member.previous.active, &index) {
                prev_active[t].get_or_insert(m);
            }
            for t in previous_tasks(&member.previous.standby, &index) {
                prev_standby[t].push(m);
            }
        }

        let total_active = tasks.len();
        let stateful = tasks.iter().filter(|t| t.stateful).count();
        let total = total_active.saturating_add(stateful.saturating_mul(num_standby));
        State {
            tasks,
            members: states,
            processes,
            prev_active,
            prev_standby,
            active_quota: Quota::new(total_active, members.len()),
            total_quota: Quota::new(total, members.len()),
            num_standby,
        }
    }

    fn assign_active(&mut self) {
        let mut pending: Vec<usize> = (0..self.tasks.len()).collect();
        pending.sort_by_key(|t| (self.tasks[*t].partition, self.tasks[*t].subtopology));

        // 1. Back to the previous active owner, up to the quota.
        let mut left = Vec::new();
        for t in pending {
            match self.prev_active[t] {
                Some(m) if self.members[m].count < self.active_quota.per_member => {
                    self.give(m, t, Role::Active);
                }
                _ => left.push(t),
            }
        }

        // 2. To the least loaded previous standby owner, up to the quota.
        let mut rest = Vec::new();
        for t in left {
            match self.least_loaded_of(&self.prev_standby[t], None) {
                Some(m) if self.members[m].count < self.active_quota.per_member => {
                    self.give(m, t, Role::Active);
                }
                _ => rest.push(t),
            }
        }

        // 3. The rest, in (subtopology, partition) order (the index order), by load.
        rest.sort_unstable();
        for t in rest {
            let Some(p) = self.least_loaded_process(None) else {
                break;
            };
            let m = self.least_loaded_member(p);
            self.give(m, t, Role::Active);
        }
    }

    fn assign_standby(&mut self) {
        let mut stateful: Vec<usize> = (0..self.tasks.len())
            .filter(|t| self.tasks[*t].stateful)
            .collect();
        stateful.sort_by_key(|t| Reverse((self.tasks[*t].partition, self.tasks[*t].subtopology)));

        // 1. To previous owners while they have room; remember what is left per task.
        let mut left: Vec<(usize, usize)> = Vec::new();
        for t in stateful {
            for replica in 0..self.num_standby {
                match self.sticky_standby_owner(t) {
                    Some(m) => self.give(m, t, Role::Standby),
                    None => {
                        left.push((t, self.num_standby - replica));
                        break;
                    }
                }
            }
        }

        // 2. The rest, in (subtopology, partition) descending order, by load; a replica that
        //    no process can take is dropped (Kafka logs "Unable to assign ...").
        left.sort_unstable_by_key(|(t, _)| Reverse(*t));
        for (t, replicas) in left {
            for _ in 0..replicas {
                let Some(p) = self.least_loaded_process(Some(t)) else {
                    break;
                };
                let m = self.least_loaded_member(p);
                self.give(m, t, Role::Standby);
            }
        }
    }

    /// The previous active owner, else the least loaded previous standby owner, whose process
    /// does not hold `task` yet and which is below the total quota.
    fn sticky_standby_owner(&self, task: usize) -> Option<usize> {
        let quota = self.total_quota.per_member;
        if let Some(m) = self.prev_active[task] {
            let member = &self.members[m];
            if !self.processes[member.process].held.contains(&task) && member.count < quota {
                return Some(m);
            }
        }
        let m = self.least_loaded_of(&self.prev_standby[task], Some(task))?;
        (self.members[m].count < quota).then_some(m)
    }

    /// The candidate with the smallest (process load, member task count, process id, member
    /// id), skipping members whose process holds `excluded`.
    fn least_loaded_of(&self, candidates: &[usize], excluded: Option<usize>) -> Option<usize> {
        candidates
            .iter()
            .copied()
            .filter(|m| {
                excluded.is_none_or(|t| !self.processes[self.members[*m].process].held.contains(&t))
            })
            .min_by(|a, b| {
                let (ma, mb) = (&self.members[*a], &self.members[*b]);
                self.processes[ma.process]
                    .cmp_load(&self.processes[mb.process])
                    .then(ma.count.cmp(&mb.count))
                    .then(ma.process.cmp(&mb.process))
                    .then(a.cmp(b))
            })
    }

    /// The process with the smallest (load, process id), skipping those holding `excluded`.
    fn least_loaded_process(&self, excluded: Option<usize>) -> Option<usize> {
        (0..self.processes.len())
            .filter(|p| excluded.is_none_or(|t| !self.processes[*p].held.contains(&t)))
            .min_by(|a, b| {
                self.processes[*a]
                    .cmp_load(&self.processes[*b])
                    .then(a.cmp(b))
            })
    }

    /// The member of process `p` with the fewest tasks, the smallest member id on ties.
    fn least_loaded_member(&self, p: usize) -> usize {
        self.processes[p]
            .members
            .iter()
            .copied()
            .min_by_key(|m| (self.members[*m].count, *m))
            .expect("every process has a member")
    }

    fn give(&mut self, m: usize, task: usize, role: Role) {
        let member = &mut self.members[m];
        member.count += 1;
        let count = member.count;
        match role {
            Role::Active => member.active.push(task),
            Role::Standby => member.standby.push(task),
        }
        let process = &mut self.processes[member.process];
        process.count += 1;
        process.held.insert(task);
        if role == Role::Active {
            self.active_quota.record(count);
        }
        self.total_quota.record(count);
    }
}

/// The tasks of `map` that exist in the current topology, as indexes.
fn previous_tasks<'m>(
    map: &'m TaskMap,
    index: &'m BTreeMap<(&str, i32), usize>,
) -> impl Iterator<Item = usize> + 'm {
    map.iter().flat_map(move |(subtopology, partitions)| {
        partitions
            .iter()
            .filter_map(move |p| index.get(&(subtopology.as_str(), *p)).copied())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Layout = (BTreeMap<String, AssignorMember>, Vec<AssignorSubtopology>);

    fn task_map(tasks: &[(&str, i32)]) -> TaskMap {
        let mut map = TaskMap::new();
        for (s, p) in tasks {
            add_task(&mut map, s, *p);
        }
        map
    }

    fn member(process: &str, active: &[(&str, i32)], standby: &[(&str, i32)]) -> AssignorMember {
        AssignorMember {
            process_id: process.to_string(),
            previous: Tasks {
                active: task_map(active),
                standby: task_map(standby),
                warmup: TaskMap::new(),
            },
        }
    }

    fn sub(id: &str, num_tasks: i32, stateful: bool) -> AssignorSubtopology {
        AssignorSubtopology {
            subtopology_id: id.to_string(),
            num_tasks,
            stateful,
        }
    }

    fn members(list: &[(&str, AssignorMember)]) -> BTreeMap<String, AssignorMember> {
        list.iter()
            .map(|(id, m)| (id.to_string(), m.clone()))
            .collect()
    }

    fn count(map: &TaskMap) -> usize {
        map.values().map(BTreeSet::len).sum()
    }

    fn flatten(map: &TaskMap) -> Vec<(String, i32)> {
        map.iter()
            .flat_map(|(s, ps)| ps.iter().map(move |p| (s.clone(), *p)))
            .collect()
    }

    fn partitions(map: &TaskMap, subtopology: &str) -> Vec<i32> {
        map.get(subtopology)
            .map(|ps| ps.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks what holds for every input; returns nothing, panics with the broken rule.
    fn check_invariants(
        members: &BTreeMap<String, AssignorMember>,
        subtopologies: &[AssignorSubtopology],
        num_standby: i32,
        out: &BTreeMap<String, Tasks>,
    ) {
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            members.keys().collect::<Vec<_>>(),
            "one entry per member"
        );
        assert!(
            out.values().all(|t| t.warmup.is_empty()),
            "no warm-up tasks"
        );

        let mut topology: BTreeMap<&str, (i32, bool)> = BTreeMap::new();
        for s in subtopologies {
            topology
                .entry(s.subtopology_id.as_str())
                .or_insert((s.num_tasks.max(0), s.stateful));
        }
        let all: Vec<(String, i32)> = topology
            .iter()
            .flat_map(|(s, (n, _))| (0..*n).map(move |p| (s.to_string(), p)))
            .collect();
        let processes: BTreeSet<&str> = members.values().map(|m| m.process_id.as_str()).collect();

        // Every task active exactly once (when there is anyone to run it).
        let mut active: Vec<(String, i32)> =
            out.values().flat_map(|t| flatten(&t.active)).collect();
        active.sort();
        if members.is_empty() {
            assert!(active.is_empty());
        } else {
            assert_eq!(active, all, "every task active exactly once");
        }

        // Holders per task: each process at most once, standbys only for stateful tasks, as
        // many as the replicas asked for and the other processes allow.
        let mut holders: BTreeMap<(String, i32), Vec<&str>> = BTreeMap::new();
        let mut standbys: BTreeMap<(String, i32), usize> = BTreeMap::new();
        for (id, tasks) in out {
            let process = members[id].process_id.as_str();
            for task in flatten(&tasks.active) {
                holders.entry(task).or_default().push(process);
            }
            for task in flatten(&tasks.standby) {
                let (n, stateful) = topology.get(task.0.as_str()).copied().unwrap_or((0, false));
                assert!(task.1 >= 0 && task.1 < n, "standby {task:?} exists");
                assert!(stateful, "standby {task:?} of a stateless subtopology");
                *standbys.entry(task.clone()).or_default() += 1;
                holders.entry(task).or_default().push(process);
            }
        }
        for (task, procs) in &holders {
            let distinct: BTreeSet<&&str> = procs.iter().collect();
            assert_eq!(distinct.len(), procs.len(), "{task:?} twice on a process");
        }
        let expected = (num_standby.max(0) as usize).min(processes.len().saturating_sub(1));
        for task in &all {
            if topology[task.0.as_str()].1 {
                let got = standbys.get(task).copied().unwrap_or(0);
                assert_eq!(got, expected, "standbys of {task:?}");
            }
        }

        // Balanced active counts when every member has its own process.
        if processes.len() == members.len() && !members.is_empty() {
            let counts: Vec<usize> = out.values().map(|t| count(&t.active)).collect();
            let max = counts.iter().max().copied().unwrap_or(0);
            let min = counts.iter().min().copied().unwrap_or(0);
            assert!(max - min <= 1, "active counts {counts:?} unbalanced");
        }
    }

    #[test]
    fn assignor_name_is_sticky() {
        assert_eq!(STICKY, "sticky");
    }

    #[test]
    fn zero_members_give_an_empty_map() {
        let out = assign(&BTreeMap::new(), &[sub("0", 4, true)], 1);
        assert!(out.is_empty());
    }

    #[test]
    fn members_without_subtopologies_get_empty_entries() {
        let group = members(&[
            ("a", member("p1", &[("0", 0)], &[])),
            ("b", member("p2", &[], &[])),
        ]);
        let out = assign(&group, &[], 2);
        assert_eq!(out.len(), 2);
        assert!(out.values().all(Tasks::is_empty));
    }

    #[test]
    fn fresh_assignment_covers_every_task_once_and_balances() {
        let group = members(&[
            ("a", member("p1", &[], &[])),
            ("b", member("p2", &[], &[])),
            ("c", member("p3", &[], &[])),
        ]);
        let subs = [sub("0", 4, false), sub("1", 3, true)];
        let out = assign(&group, &subs, 0);
        check_invariants(&group, &subs, 0, &out);
        let counts: Vec<usize> = out.values().map(|t| count(&t.active)).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(out.values().all(|t| t.standby.is_empty()));
    }

    #[test]
    fn same_input_gives_the_same_output() {
        let group = members(&[
            ("a", member("p1", &[("0", 1)], &[("1", 0)])),
            ("b", member("p1", &[], &[("0", 1)])),
            ("c", member("p2", &[("1", 2)], &[])),
            ("d", member("p3", &[], &[])),
        ]);
        let subs = [sub("0", 5, true), sub("1", 3, true), sub("2", 2, false)];
        let out = assign(&group, &subs, 2);
        check_invariants(&group, &subs, 2, &out);
        assert_eq!(out, assign(&group, &subs, 2));
        // The order the subtopologies are listed in does not matter either.
        let reversed: Vec<AssignorSubtopology> = subs.iter().rev().cloned().collect();
        assert_eq!(out, assign(&group, &reversed, 2));
    }

    #[test]
    fn members_keep_their_previous_actives_when_still_balanced() {
        let group = members(&[
            ("a", member("p1", &[("0", 0), ("0", 3), ("1", 2)], &[])),
            ("b", member("p2", &[("0", 1), ("0", 4), ("1", 0)], &[])),
            ("c", member("p3", &[("0", 2), ("0", 5), ("1", 1)], &[])),
        ]);
        let subs = [sub("0", 6, false), sub("1", 3, true)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        for (id, m) in &group {
            assert_eq!(out[id].active, m.previous.active, "{id} keeps its actives");
        }
    }

    #[test]
    fn a_joining_member_takes_only_its_share() {
        let mut group = members(&[
            ("a", member("p1", &[], &[])),
            ("b", member("p2", &[], &[])),
            ("c", member("p3", &[], &[])),
        ]);
        let subs = [sub("0", 12, false)];
        let first = assign(&group, &subs, 0);
        for (id, m) in group.iter_mut() {
            m.previous = first[id].clone();
        }
        group.insert("d".to_string(), member("p4", &[], &[]));
        let second = assign(&group, &subs, 0);
        check_invariants(&group, &subs, 0, &second);
        for id in ["a", "b", "c"] {
            let before: BTreeSet<_> = flatten(&first[id].active).into_iter().collect();
            let after: BTreeSet<_> = flatten(&second[id].active).into_iter().collect();
            assert_eq!(after.len(), 3);
            assert!(after.is_subset(&before), "{id} only gives tasks up");
        }
        assert_eq!(count(&second["d"].active), 3);
    }

    #[test]
    fn an_orphaned_active_goes_to_its_previous_standby_owner() {
        // The member that ran 0_0 left; d had it as a standby, so d gets it, not b (the
        // first process by id, which a fresh placement would pick).
        let group = members(&[
            ("b", member("p2", &[("0", 1)], &[])),
            ("c", member("p3", &[("0", 2)], &[])),
            ("d", member("p4", &[], &[("0", 0)])),
        ]);
        let subs = [sub("0", 3, true)];
        let out = assign(&group, &subs, 0);
        check_invariants(&group, &subs, 0, &out);
        assert_eq!(partitions(&out["b"].active, "0"), vec![1]);
        assert_eq!(partitions(&out["c"].active, "0"), vec![2]);
        assert_eq!(partitions(&out["d"].active, "0"), vec![0]);
    }

    #[test]
    fn previous_standbys_stay_put() {
        let group = members(&[
            ("a", member("p1", &[("0", 0)], &[("0", 1)])),
            ("b", member("p2", &[("0", 1)], &[("0", 2)])),
            ("c", member("p3", &[("0", 2)], &[("0", 0)])),
        ]);
        let subs = [sub("0", 3, true)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        for (id, m) in &group {
            assert_eq!(out[id].active, m.previous.active);
            assert_eq!(out[id].standby, m.previous.standby);
        }
    }

    #[test]
    fn the_previous_active_owner_keeps_a_standby_of_a_task_it_gives_up() {
        let group = members(&[
            (
                "a",
                member("p1", &[("0", 0), ("0", 1), ("0", 2), ("0", 3)], &[]),
            ),
            ("b", member("p2", &[], &[])),
        ]);
        let subs = [sub("0", 4, true)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        assert_eq!(partitions(&out["a"].active, "0"), vec![0, 1]);
        assert_eq!(partitions(&out["b"].active, "0"), vec![2, 3]);
        assert_eq!(partitions(&out["a"].standby, "0"), vec![2, 3]);
        assert_eq!(partitions(&out["b"].standby, "0"), vec![0, 1]);
    }

    #[test]
    fn each_stateful_task_gets_the_configured_standbys_on_other_processes() {
        let group = members(&[
            ("a", member("p1", &[], &[])),
            ("b", member("p2", &[], &[])),
            ("c", member("p3", &[], &[])),
        ]);
        let subs = [sub("0", 4, true), sub("1", 2, false)];
        let out = assign(&group, &subs, 2);
        check_invariants(&group, &subs, 2, &out);
        // Three processes, one active and two standbys each: every process holds every
        // stateful task, and no stateless one as a standby.
        for t in out.values() {
            let mut held = partitions(&t.active, "0");
            held.extend(partitions(&t.standby, "0"));
            held.sort_unstable();
            assert_eq!(held, vec![0, 1, 2, 3]);
            assert!(!t.standby.contains_key("1"));
        }
    }

    #[test]
    fn stateless_subtopologies_get_no_standbys() {
        let group = members(&[("a", member("p1", &[], &[])), ("b", member("p2", &[], &[]))]);
        let subs = [sub("0", 4, false)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        assert!(out.values().all(|t| t.standby.is_empty()));
    }

    #[test]
    fn standbys_are_dropped_when_processes_run_out() {
        // Two processes (three members): one standby per task at most, whatever is asked.
        let group = members(&[
            ("a1", member("p1", &[], &[])),
            ("a2", member("p1", &[], &[])),
            ("b", member("p2", &[], &[])),
        ]);
        let subs = [sub("0", 6, true)];
        let out = assign(&group, &subs, 3);
        check_invariants(&group, &subs, 3, &out);
        let standbys: usize = out.values().map(|t| count(&t.standby)).sum();
        assert_eq!(standbys, 6);
        // A single process gets none at all.
        let alone = members(&[
            ("a1", member("p1", &[], &[])),
            ("a2", member("p1", &[], &[])),
        ]);
        let out = assign(&alone, &subs, 2);
        check_invariants(&alone, &subs, 2, &out);
        assert!(out.values().all(|t| t.standby.is_empty()));
    }

    #[test]
    fn members_of_one_process_never_share_a_task() {
        // a1 and a2 share p1; even when their previous targets put the same task on both
        // (as active and standby), the process ends up holding it once.
        let group = members(&[
            ("a1", member("p1", &[("0", 0), ("0", 1)], &[])),
            ("a2", member("p1", &[], &[("0", 0), ("0", 1)])),
            ("b", member("p2", &[], &[("0", 0)])),
        ]);
        let subs = [sub("0", 4, true)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        let mut p1: Vec<(String, i32)> = ["a1", "a2"]
            .iter()
            .flat_map(|m| {
                let mut held = flatten(&out[*m].active);
                held.extend(flatten(&out[*m].standby));
                held
            })
            .collect();
        p1.sort();
        let len = p1.len();
        p1.dedup();
        assert_eq!(p1.len(), len);
    }

    #[test]
    fn stale_previous_tasks_are_ignored() {
        let group = members(&[
            (
                "a",
                member("p1", &[("gone", 0), ("0", 9), ("0", -1)], &[("0", 7)]),
            ),
            ("b", member("p2", &[], &[])),
        ]);
        let subs = [sub("0", 2, true), sub("0", 5, false)];
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        assert_eq!(count(&out["a"].active) + count(&out["b"].active), 2);
    }

    #[test]
    fn large_groups_are_balanced() {
        let group: BTreeMap<String, AssignorMember> = (0..200)
            .map(|i| (format!("m{i:03}"), member(&format!("p{i:03}"), &[], &[])))
            .collect();
        let subs: Vec<AssignorSubtopology> =
            (0..3).map(|i| sub(&i.to_string(), 1000, i != 2)).collect();
        let out = assign(&group, &subs, 1);
        check_invariants(&group, &subs, 1, &out);
        assert!(out.values().all(|t| count(&t.active) == 15));
        assert!(out.values().all(|t| count(&t.standby) == 10));
    }

    fn layout() -> impl Strategy<Value = Layout> {
        let task = (0..5usize, -1..8i32);
        let subs = prop::collection::vec((0..7i32, any::<bool>()), 0..5);
        let member = (
            0..5usize,
            prop::collection::vec(task.clone(), 0..6),
            prop::collection::vec(task, 0..6),
        );
        let group = prop::collection::vec(member, 0..9);
        (subs, group).prop_map(|(subs, group)| {
            let subs: Vec<AssignorSubtopology> = subs
                .into_iter()
                .enumerate()
                .map(|(i, (n, stateful))| sub(&format!("s{i}"), n, stateful))
                .collect();
            let group = group
                .into_iter()
                .enumerate()
                .map(|(i, (process, active, standby))| {
                    let names = |list: Vec<(usize, i32)>| -> Vec<(String, i32)> {
                        list.into_iter()
                            .map(|(s, p)| (format!("s{s}"), p))
                            .collect()
                    };
                    let (active, standby) = (names(active), names(standby));
                    let borrow = |l: &[(String, i32)]| -> TaskMap {
                        task_map(&l.iter().map(|(s, p)| (s.as_str(), *p)).collect::<Vec<_>>())
                    };
                    let m = AssignorMember {
                        process_id: format!("p{process}"),
                        previous: Tasks {
                            active: borrow(&active),
                            standby: borrow(&standby),
                            warmup: TaskMap::new(),
                        },
                    };
                    (format!("m{i}"), m)
                })
                .collect();
            (group, subs)
        })
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_layout(
            (group, subs) in layout(),
            standby in -1..4i32,
            own_processes in any::<bool>(),
        ) {
            let mut group = group;
            if own_processes {
                for (id, m) in group.iter_mut() {
                    m.process_id = format!("p-{id}");
                }
            }
            let out = assign(&group, &subs, standby);
            check_invariants(&group, &subs, standby, &out);
            prop_assert_eq!(&out, &assign(&group, &subs, standby));
        }

        #[test]
        fn a_balanced_previous_assignment_is_kept(
            (group, subs) in layout(),
            keys in prop::collection::vec(any::<u32>(), 30),
            standby in 0..3i32,
        ) {
            prop_assume!(!group.is_empty());
            // Deal every task, in a shuffled order, round-robin over the members.
            let mut all: Vec<(String, i32)> = subs
                .iter()
                .flat_map(|s| (0..s.num_tasks.max(0)).map(move |p| (s.subtopology_id.clone(), p)))
                .collect();
            let mut keyed: Vec<(u32, (String, i32))> =
                all.drain(..).enumerate().map(|(i, t)| (keys[i % keys.len()], t)).collect();
            keyed.sort();
            let mut group = group;
            for m in group.values_mut() {
                m.previous.active.clear();
            }
            let ids: Vec<String> = group.keys().cloned().collect();
            for (i, (_, (s, p))) in keyed.iter().enumerate() {
                let id = &ids[i % ids.len()];
                if let Some(m) = group.get_mut(id) {
                    add_task(&mut m.previous.active, s, *p);
                }
            }
            let out = assign(&group, &subs, standby);
            check_invariants(&group, &subs, standby, &out);
            for (id, m) in &group {
                prop_assert_eq!(&out[id].active, &m.previous.active);
            }
        }
    }
}
