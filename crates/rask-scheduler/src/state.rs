//! The scheduler core: a state machine with no threads, clocks or I/O.
//!
//! Executors feed it events (a task finished, a task failed, cancel) and ask it for work
//! ([`SchedulerState::pop_ready`]). It decides which ready task runs next (lowest static
//! priority first), when a value can be dropped (as soon as its last dependent finished and it
//! is not a requested output), and when to hold root tasks back because the memory budget is
//! spent. Because it is plain data, every policy is tested by driving it by hand.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rask_graph::{Adjacency, Graph, TaskId};

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Some dependency has not finished.
    Waiting,
    /// All dependencies are in memory; queued by priority.
    Ready,
    /// Handed to an executor.
    Running,
    /// Finished; its value is held because a dependent or the caller still needs it.
    Memory,
    /// Finished and its value dropped.
    Released,
    /// Finished; its value was written to disk to stay within the memory budget, and is read
    /// back when a dependent starts.
    Spilled,
    /// It returned an error or panicked.
    Erred,
    /// It never ran because the computation failed or was cancelled.
    Cancelled,
}

/// Where the computation as a whole is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    /// Every requested output is in memory.
    Done,
    /// A task failed; nothing new starts.
    Failed,
    /// Cancelled; nothing new starts.
    Cancelled,
}

/// The scheduler's state for one computation over one [`Graph`].
pub struct SchedulerState {
    deps: Adjacency,
    dependents: Adjacency,
    priority: Vec<u32>,
    by_priority: Vec<TaskId>,
    state: Vec<TaskState>,
    waiting_on: Vec<u32>,
    waiters: Vec<u32>,
    is_output: Vec<bool>,
    /// An output or an ancestor of one: only these run.
    needed: Vec<bool>,
    nbytes: Vec<u64>,
    ready_roots: BinaryHeap<Reverse<u32>>,
    ready_inner: BinaryHeap<Reverse<u32>>,
    released: Vec<TaskId>,
    /// Under a memory budget: values in memory by last use (oldest first), the spill
    /// candidates.
    lru: std::collections::BTreeSet<(u64, TaskId)>,
    last_use: Vec<u64>,
    clock: u64,
    to_spill: Vec<TaskId>,
    unspillable: rustc_hash::FxHashSet<TaskId>,
    spilled_bytes: u64,
    n_spilled: usize,
    /// Under a budget: bytes each task allocates while running, and the sum over running
    /// tasks (memory that is spoken for but not yet reported).
    transient: Vec<u64>,
    in_flight: u64,
    memory: u64,
    peak_memory: u64,
    memory_limit: Option<u64>,
    n_running: usize,
    n_finished: usize,
    outputs_left: usize,
    status: Status,
}

impl SchedulerState {
    /// Prepares a computation of `outputs`. `priority[id]` is the task's static order
    /// position (see `rask_graph::order`); ties never happen because it is a permutation.
    pub fn new(graph: &Graph, outputs: &[TaskId], priority: Vec<u32>) -> Self {
        let n = graph.len();
        assert_eq!(priority.len(), n, "one priority per task");
        let deps = graph.dependencies();
        let dependents = graph.dependents().clone();
        let mut by_priority = vec![0; n];
        for (id, &p) in priority.iter().enumerate() {
            by_priority[p as usize] = id as TaskId;
        }
        let mut is_output = vec![false; n];
        for &o in outputs {
            is_output[o as usize] = true;
        }
        let outputs_left = is_output.iter().filter(|&&o| o).count();
        // Only the outputs and their ancestors run; any other task stays `Waiting`.
        let mut needed = vec![false; n];
        let mut stack: Vec<TaskId> = outputs.to_vec();
        while let Some(t) = stack.pop() {
            if !needed[t as usize] {
                needed[t as usize] = true;
                stack.extend_from_slice(deps.of(t));
            }
        }
        let mut s = SchedulerState {
            waiting_on: (0..n as TaskId).map(|i| deps.len_of(i) as u32).collect(),
            waiters: (0..n as TaskId)
                .map(|i| {
                    let readers = dependents.of(i).iter();
                    readers.filter(|&&t| needed[t as usize]).count() as u32
                })
                .collect(),
            state: vec![TaskState::Waiting; n],
            nbytes: vec![0; n],
            deps,
            dependents,
            priority,
            by_priority,
            is_output,
            needed,
            ready_roots: BinaryHeap::new(),
            ready_inner: BinaryHeap::new(),
            released: Vec::new(),
            lru: std::collections::BTreeSet::new(),
            last_use: Vec::new(),
            clock: 0,
            to_spill: Vec::new(),
            unspillable: rustc_hash::FxHashSet::default(),
            spilled_bytes: 0,
            n_spilled: 0,
            transient: Vec::new(),
            in_flight: 0,
            memory: 0,
            peak_memory: 0,
            memory_limit: None,
            n_running: 0,
            n_finished: 0,
            outputs_left,
            status: if outputs_left == 0 {
                Status::Done
            } else {
                Status::Running
            },
        };
        for id in 0..n as TaskId {
            if s.waiting_on[id as usize] == 0 && s.needed[id as usize] {
                s.make_ready(id);
            }
        }
        s
    }

    /// Sets a memory budget in bytes: while the values held exceed it, root tasks (which
    /// only add memory) are held back as long as other work is running that may free some.
    pub fn with_memory_limit(mut self, limit: Option<u64>) -> Self {
        self.memory_limit = limit;
        if limit.is_some() {
            self.last_use = vec![0; self.state.len()];
        }
        self
    }

    /// The bytes each task allocates while it runs (see `Op::transient_nbytes`; 0 where
    /// unknown), so that the budget counts running tasks too.
    pub fn with_task_sizes(mut self, transient: Vec<u64>) -> Self {
        if transient.len() == self.state.len() {
            self.transient = transient;
        }
        self
    }

    fn transient_of(&self, id: TaskId) -> u64 {
        self.transient.get(id as usize).copied().unwrap_or(0)
    }

    fn end_flight(&mut self, id: TaskId) {
        self.in_flight = self.in_flight.saturating_sub(self.transient_of(id));
    }

    /// Marks a value as just used (produced or read), for least-recently-used spilling.
    fn touch(&mut self, id: TaskId) {
        if self.memory_limit.is_none() {
            return;
        }
        let i = id as usize;
        self.lru.remove(&(self.last_use[i], id));
        self.clock += 1;
        self.last_use[i] = self.clock;
        if self.state[i] == TaskState::Memory && !self.unspillable.contains(&id) {
            self.lru.insert((self.clock, id));
        }
    }

    fn forget(&mut self, id: TaskId) {
        if self.memory_limit.is_some() {
            self.lru.remove(&(self.last_use[id as usize], id));
        }
    }

    /// Picks least-recently-used values to write to disk until the bytes held are at most
    /// `target`. Values read by running tasks stay (spilling them frees nothing).
    fn choose_spills(&mut self, target: u64) {
        let mut skipped = Vec::new();
        while self.memory > target {
            let Some(&(t, id)) = self.lru.iter().next() else {
                break;
            };
            self.lru.remove(&(t, id));
            let read_by_running = self
                .dependents
                .of(id)
                .iter()
                .any(|&d| self.state[d as usize] == TaskState::Running);
            if read_by_running {
                skipped.push((t, id));
                continue;
            }
            let i = id as usize;
            self.state[i] = TaskState::Spilled;
            self.memory -= self.nbytes[i];
            self.spilled_bytes += self.nbytes[i];
            self.n_spilled += 1;
            self.to_spill.push(id);
        }
        self.lru.extend(skipped);
    }

    /// Values the executor must write to disk now (their state is already `Spilled`).
    pub fn drain_spills(&mut self) -> std::vec::Drain<'_, TaskId> {
        self.to_spill.drain(..)
    }

    /// The executor could not spill `id` (its type has no spill path): it stays in memory
    /// and is not chosen again.
    pub fn spill_failed(&mut self, id: TaskId) {
        let i = id as usize;
        if self.state[i] != TaskState::Spilled {
            return;
        }
        self.state[i] = TaskState::Memory;
        self.memory += self.nbytes[i];
        self.spilled_bytes -= self.nbytes[i];
        self.n_spilled -= 1;
        self.unspillable.insert(id);
    }

    /// The executor read a spilled value back into memory.
    pub fn unspilled(&mut self, id: TaskId) {
        let i = id as usize;
        if self.state[i] != TaskState::Spilled {
            return;
        }
        self.state[i] = TaskState::Memory;
        self.memory += self.nbytes[i];
        self.spilled_bytes -= self.nbytes[i];
        self.peak_memory = self.peak_memory.max(self.memory);
        self.touch(id);
    }

    fn make_ready(&mut self, id: TaskId) {
        self.state[id as usize] = TaskState::Ready;
        let p = Reverse(self.priority[id as usize]);
        if self.deps.len_of(id) == 0 {
            self.ready_roots.push(p);
        } else {
            self.ready_inner.push(p);
        }
    }

    /// The next task to run, marked running; `None` when nothing may start now.
    pub fn pop_ready(&mut self) -> Option<TaskId> {
        if self.status != Status::Running {
            return None;
        }
        let committed = self.memory + self.in_flight;
        let over_budget = self.memory_limit.is_some_and(|l| committed > l);
        let heap = match (self.ready_roots.peek(), self.ready_inner.peek()) {
            (None, None) => return None,
            (Some(&Reverse(p)), None) => {
                if let Some(limit) = self.memory_limit {
                    let root = self.by_priority[p as usize];
                    let need = self.transient_of(root);
                    if committed + need > limit {
                        if self.n_running > 0 {
                            // Starting another root only adds memory; wait for running work.
                            return None;
                        }
                        // Nothing runs that could free memory: the only way on within the
                        // budget is to move held values to disk before loading more.
                        let target = limit.saturating_sub(need + self.in_flight);
                        self.choose_spills(target);
                    }
                }
                &mut self.ready_roots
            }
            (None, Some(_)) => &mut self.ready_inner,
            (Some(r), Some(i)) => {
                if over_budget || i > r {
                    // Reverse(): the greater entry has the smaller priority number.
                    &mut self.ready_inner
                } else {
                    &mut self.ready_roots
                }
            }
        };
        let Reverse(p) = heap.pop().expect("peeked");
        let id = self.by_priority[p as usize];
        self.state[id as usize] = TaskState::Running;
        self.n_running += 1;
        self.in_flight += self.transient_of(id);
        if self.memory_limit.is_some() {
            for k in 0..self.deps.len_of(id) {
                let d = self.deps.of(id)[k];
                self.touch(d);
            }
        }
        Some(id)
    }

    /// Records that a running task produced a value of `nbytes` bytes. Values that are no
    /// longer needed are appended to the release list ([`SchedulerState::drain_released`]).
    pub fn task_finished(&mut self, id: TaskId, nbytes: u64) {
        let i = id as usize;
        debug_assert_eq!(self.state[i], TaskState::Running);
        self.n_running -= 1;
        self.n_finished += 1;
        self.end_flight(id);
        if self.status != Status::Running {
            // Failed or cancelled meanwhile: the result is discarded.
            self.state[i] = TaskState::Released;
            self.released.push(id);
            return;
        }
        self.state[i] = TaskState::Memory;
        self.nbytes[i] = nbytes;
        self.memory += nbytes;
        self.peak_memory = self.peak_memory.max(self.memory);
        self.touch(id);

        for k in 0..self.deps.len_of(id) {
            let d = self.deps.of(id)[k];
            let w = &mut self.waiters[d as usize];
            *w -= 1;
            if *w == 0 && !self.is_output[d as usize] {
                self.release(d);
            }
        }
        for k in 0..self.dependents.len_of(id) {
            let t = self.dependents.of(id)[k];
            let w = &mut self.waiting_on[t as usize];
            *w -= 1;
            if *w == 0 && self.needed[t as usize] {
                self.make_ready(t);
            }
        }
        if self.is_output[i] {
            self.outputs_left -= 1;
            if self.outputs_left == 0 {
                self.status = Status::Done;
            }
        } else if self.waiters[i] == 0 {
            // Nobody reads it (an uncalled-for sink): drop at once.
            self.release(id);
        }
    }

    fn release(&mut self, id: TaskId) {
        let i = id as usize;
        self.forget(id);
        if self.state[i] == TaskState::Spilled {
            self.spilled_bytes -= self.nbytes[i];
        } else {
            self.memory -= self.nbytes[i];
        }
        self.state[i] = TaskState::Released;
        self.nbytes[i] = 0;
        self.released.push(id);
    }

    /// Records that a running task failed: every task not yet started is cancelled.
    pub fn task_failed(&mut self, id: TaskId) {
        debug_assert_eq!(self.state[id as usize], TaskState::Running);
        self.n_running -= 1;
        self.end_flight(id);
        self.state[id as usize] = TaskState::Erred;
        if self.status == Status::Running {
            self.status = Status::Failed;
            self.cancel_pending();
        }
    }

    /// Records that a task handed out by [`SchedulerState::pop_ready`] was never started
    /// because the computation failed or was cancelled meanwhile (see
    /// [`SchedulerState::cancel`]): it ends `Cancelled`.
    pub fn task_skipped(&mut self, id: TaskId) {
        debug_assert_eq!(self.state[id as usize], TaskState::Running);
        debug_assert_ne!(self.status, Status::Running, "skipped while running on");
        self.n_running -= 1;
        self.end_flight(id);
        self.state[id as usize] = TaskState::Cancelled;
    }

    /// Cancels the computation: nothing new starts; running tasks finish and are discarded.
    pub fn cancel(&mut self) {
        if self.status == Status::Running {
            self.status = Status::Cancelled;
            self.cancel_pending();
        }
    }

    fn cancel_pending(&mut self) {
        self.ready_roots.clear();
        self.ready_inner.clear();
        for s in &mut self.state {
            if matches!(s, TaskState::Waiting | TaskState::Ready) {
                *s = TaskState::Cancelled;
            }
        }
    }

    /// Values the executor may drop now; empties the list.
    pub fn drain_released(&mut self) -> std::vec::Drain<'_, TaskId> {
        self.released.drain(..)
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// True when nothing more will happen: done, or failed/cancelled with nothing running.
    pub fn is_finished(&self) -> bool {
        match self.status {
            Status::Done => true,
            Status::Running => false,
            Status::Failed | Status::Cancelled => self.n_running == 0,
        }
    }

    /// True when tasks are queued (whether or not the budget lets them start).
    pub fn has_ready(&self) -> bool {
        !(self.ready_roots.is_empty() && self.ready_inner.is_empty())
    }

    pub fn n_ready(&self) -> usize {
        self.ready_roots.len() + self.ready_inner.len()
    }

    pub fn n_running(&self) -> usize {
        self.n_running
    }

    pub fn n_finished(&self) -> usize {
        self.n_finished
    }

    pub fn n_tasks(&self) -> usize {
        self.state.len()
    }

    pub fn state_of(&self, id: TaskId) -> TaskState {
        self.state[id as usize]
    }

    pub fn states(&self) -> &[TaskState] {
        &self.state
    }

    /// Bytes of values held now, by the projected sizes reported at finish.
    /// Bytes of values on disk now.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Values spilled so far in this computation.
    pub fn n_spilled(&self) -> usize {
        self.n_spilled
    }

    pub fn memory(&self) -> u64 {
        self.memory
    }

    pub fn peak_memory(&self) -> u64 {
        self.peak_memory
    }

    /// Heap bytes this state machine holds (what "scheduler memory per task" measures).
    pub fn heap_bytes(&self) -> usize {
        self.deps.heap_bytes()
            + self.dependents.heap_bytes()
            + self.priority.capacity() * 4
            + self.by_priority.capacity() * 4
            + self.state.capacity() * std::mem::size_of::<TaskState>()
            + self.waiting_on.capacity() * 4
            + self.waiters.capacity() * 4
            + self.is_output.capacity()
            + self.needed.capacity()
            + self.nbytes.capacity() * 8
            + (self.ready_roots.capacity() + self.ready_inner.capacity()) * 4
            + self.released.capacity() * 4
            + self.last_use.capacity() * 8
            + self.transient.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rask_graph::{Graph, Key, Literal, Op, TaskSpec, Value, order};

    use super::*;

    fn lit() -> Arc<dyn Op> {
        Arc::new(Literal::new(Value::new(0u8)))
    }

    /// Builds a graph from `(name, deps)` pairs, all with a dummy op.
    fn graph(spec: &[(&str, &[&str])]) -> Graph {
        Graph::from_specs(
            spec.iter()
                .map(|(k, deps)| TaskSpec::new(Key::named(k), lit(), deps.iter().map(Key::named))),
        )
        .unwrap()
    }

    fn id(g: &Graph, k: &str) -> TaskId {
        g.id_of(&Key::named(k)).unwrap()
    }

    fn state(g: &Graph, outputs: &[&str]) -> SchedulerState {
        let outs: Vec<TaskId> = outputs.iter().map(|o| id(g, o)).collect();
        SchedulerState::new(g, &outs, order(g))
    }

    #[test]
    fn diamond_runs_in_dependency_order_and_releases_early() {
        // a -> b, a -> c, (b, c) -> d
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let mut s = state(&g, &["d"]);
        let a = s.pop_ready().unwrap();
        assert_eq!(a, id(&g, "a"));
        assert_eq!(s.pop_ready(), None, "b and c wait for a");
        s.task_finished(a, 10);
        assert_eq!(s.memory(), 10);
        let first = s.pop_ready().unwrap();
        let second = s.pop_ready().unwrap();
        assert_eq!(s.state_of(first), TaskState::Running);
        s.task_finished(first, 5);
        assert_eq!(
            s.state_of(a),
            TaskState::Memory,
            "a still read by the other branch"
        );
        s.task_finished(second, 5);
        assert_eq!(
            s.state_of(a),
            TaskState::Released,
            "a released after its last dependent"
        );
        let released: Vec<TaskId> = s.drain_released().collect();
        assert_eq!(released, vec![a]);
        assert_eq!(s.memory(), 10);
        let d = s.pop_ready().unwrap();
        s.task_finished(d, 1);
        assert_eq!(s.status(), Status::Done);
        assert!(s.is_finished());
        assert_eq!(s.memory(), 1, "only the output is held");
        assert_eq!(s.peak_memory(), 20);
        assert_eq!(s.state_of(d), TaskState::Memory);
    }

    #[test]
    fn ready_tasks_come_out_by_priority() {
        let g = graph(&[("x", &[]), ("y", &[]), ("z", &[]), ("s", &["x", "y", "z"])]);
        let pr = order(&g);
        let mut s = SchedulerState::new(&g, &[id(&g, "s")], pr.clone());
        let mut got = Vec::new();
        while let Some(t) = s.pop_ready() {
            got.push(pr[t as usize]);
        }
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn failure_cancels_everything_not_started() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b", "c"])]);
        let mut s = state(&g, &["d"]);
        let t1 = s.pop_ready().unwrap();
        let t2 = s.pop_ready().unwrap();
        s.task_failed(t1);
        assert_eq!(s.status(), Status::Failed);
        assert!(!s.is_finished(), "t2 is still running");
        assert_eq!(s.pop_ready(), None);
        s.task_finished(t2, 8);
        assert!(s.is_finished());
        assert_eq!(s.state_of(t1), TaskState::Erred);
        assert_eq!(
            s.state_of(t2),
            TaskState::Released,
            "late results are discarded"
        );
        assert_eq!(s.state_of(id(&g, "c")), TaskState::Cancelled);
        assert_eq!(s.state_of(id(&g, "d")), TaskState::Cancelled);
        assert_eq!(s.memory(), 0);
    }

    #[test]
    fn cancel_stops_new_work() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
        let mut s = state(&g, &["c"]);
        let t = s.pop_ready().unwrap();
        s.cancel();
        assert_eq!(s.pop_ready(), None);
        assert!(!s.is_finished());
        s.task_finished(t, 1);
        assert!(s.is_finished());
        assert_eq!(s.status(), Status::Cancelled);
    }

    #[test]
    fn outputs_are_kept_and_unneeded_sinks_dropped() {
        // `b` is a sink nobody asked for; `a` is an output that is also read by `c`.
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a"])]);
        let mut s = state(&g, &["a", "c"]);
        let mut n = 0;
        while let Some(t) = s.pop_ready() {
            s.task_finished(t, 3);
            n += 1;
        }
        assert!(s.is_finished());
        assert_eq!(s.state_of(id(&g, "a")), TaskState::Memory);
        assert_eq!(s.state_of(id(&g, "c")), TaskState::Memory);
        // b either never ran (done before it) or was dropped at once.
        assert_ne!(s.state_of(id(&g, "b")), TaskState::Memory);
        assert!(n >= 2);
    }

    #[test]
    fn memory_budget_holds_back_roots_while_work_runs() {
        // Two independent pairs: r1 -> f1, r2 -> f2, both f outputs.
        let g = graph(&[("r1", &[]), ("r2", &[]), ("f1", &["r1"]), ("f2", &["r2"])]);
        let outs = [id(&g, "f1"), id(&g, "f2")];
        let mut s = SchedulerState::new(&g, &outs, order(&g)).with_memory_limit(Some(100));
        let r_first = s.pop_ready().unwrap();
        s.task_finished(r_first, 150); // over budget now
        let f = s.pop_ready().unwrap();
        assert_eq!(
            g.task(f).deps.as_slice(),
            &[r_first],
            "the consumer goes first"
        );
        // f is running and memory is over budget: the other root is held back.
        assert_eq!(s.pop_ready(), None);
        s.task_finished(f, 1);
        assert_eq!(s.memory(), 1, "r_first released");
        let r_second = s.pop_ready().unwrap();
        assert_eq!(g.task(r_second).deps.len(), 0);
    }

    #[test]
    fn over_budget_with_nothing_running_still_progresses() {
        let g = graph(&[("r1", &[]), ("r2", &[]), ("s", &["r1", "r2"])]);
        let mut s = state(&g, &["s"]).with_memory_limit(Some(10));
        let a = s.pop_ready().unwrap();
        s.task_finished(a, 100);
        // Nothing else is running, so holding back would deadlock: the root must start.
        let b = s.pop_ready().unwrap();
        s.task_finished(b, 100);
        let c = s.pop_ready().unwrap();
        s.task_finished(c, 1);
        assert_eq!(s.status(), Status::Done);
    }

    #[test]
    fn empty_output_list_is_done_at_once() {
        let g = graph(&[("a", &[])]);
        let mut s = state(&g, &[]);
        assert!(s.is_finished());
        assert_eq!(s.pop_ready(), None);
    }

    #[test]
    fn scheduler_memory_per_task_is_small() {
        // A tree of adds over 10,000 leaves.
        let mut specs = Vec::new();
        let mut level: Vec<Key> = (0..10_000)
            .map(|i| Key::named(format!("leaf-{i}")))
            .collect();
        for k in &level {
            specs.push(TaskSpec::new(k.clone(), lit(), vec![]));
        }
        let mut n = 0;
        while level.len() > 1 {
            let mut next = Vec::new();
            for pair in level.chunks(2) {
                let k = Key::named(format!("add-{n}"));
                n += 1;
                specs.push(TaskSpec::new(k.clone(), lit(), pair.to_vec()));
                next.push(k);
            }
            level = next;
        }
        let g = Graph::from_specs(specs).unwrap();
        let root = g.id_of(&level[0]).unwrap();
        let s = SchedulerState::new(&g, &[root], order(&g));
        let per_task = s.heap_bytes() as f64 / g.len() as f64;
        assert!(per_task < 300.0, "{per_task} bytes per task");
    }
}
