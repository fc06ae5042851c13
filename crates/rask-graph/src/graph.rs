//! Tasks and graphs.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rask_error::{RaskError, Result};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::{Key, Op};

/// Dense index of a task inside one [`Graph`].
pub type TaskId = u32;

/// A task as users and collections describe it: a key, an op and the keys of its inputs.
#[derive(Clone)]
pub struct TaskSpec {
    pub key: Key,
    pub op: Arc<dyn Op>,
    pub deps: SmallVec<[Key; 2]>,
}

impl TaskSpec {
    pub fn new(key: Key, op: Arc<dyn Op>, deps: impl IntoIterator<Item = Key>) -> Self {
        TaskSpec {
            key,
            op,
            deps: deps.into_iter().collect(),
        }
    }
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}({:?})", self.key, self.op.name(), self.deps)
    }
}

/// A task inside a [`Graph`], its inputs resolved to dense ids.
#[derive(Clone)]
pub struct Task {
    pub key: Key,
    pub op: Arc<dyn Op>,
    pub deps: SmallVec<[TaskId; 2]>,
}

/// Compressed adjacency lists (dependencies or dependents of every task).
#[derive(Clone, Debug, Default)]
pub struct Adjacency {
    offsets: Vec<u32>,
    targets: Vec<TaskId>,
}

impl Adjacency {
    pub fn of(&self, id: TaskId) -> &[TaskId] {
        let i = id as usize;
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn len_of(&self, id: TaskId) -> usize {
        let i = id as usize;
        (self.offsets[i + 1] - self.offsets[i]) as usize
    }

    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.targets.capacity() * 4
    }

    /// Sorts every task's list with `cmp`.
    pub fn sort_each_by(&mut self, mut cmp: impl FnMut(TaskId, TaskId) -> std::cmp::Ordering) {
        for w in 0..self.offsets.len().saturating_sub(1) {
            let (s, e) = (self.offsets[w] as usize, self.offsets[w + 1] as usize);
            self.targets[s..e].sort_unstable_by(|&a, &b| cmp(a, b));
        }
    }
}

/// A validated task graph: tasks in a dense vector, each dependency present, no cycles.
///
/// Built from [`TaskSpec`]s with [`Graph::from_specs`] or from collections' layers with a
/// [`crate::GraphBuilder`]. Optimizations in [`crate::optimize`] and the static
/// [`crate::order()`] take a `Graph` and the ids of the requested outputs.
#[derive(Clone, Default)]
pub struct Graph {
    tasks: Vec<Task>,
    // Key lookup is only needed for outputs and hand-written graphs: built on first use,
    // so the optimization passes that rebuild graphs of millions of tasks never pay for it.
    index: OnceLock<FxHashMap<Key, TaskId>>,
    // Derived data, computed once: every pass and the scheduler need them.
    dependents: OnceLock<Adjacency>,
    topological: OnceLock<Vec<TaskId>>,
}

impl Graph {
    /// Builds and validates a graph. Errors name the keys at fault: a duplicate key, a
    /// dependency that no task produces, or the keys along a cycle.
    pub fn from_specs(specs: impl IntoIterator<Item = TaskSpec>) -> Result<Graph> {
        let specs: Vec<TaskSpec> = specs.into_iter().collect();
        let mut index: FxHashMap<Key, TaskId> = FxHashMap::default();
        index.reserve(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if index.insert(spec.key.clone(), i as TaskId).is_some() {
                return Err(RaskError::InvalidGraph(format!(
                    "duplicate key {}: two tasks produce it",
                    spec.key
                )));
            }
        }
        let mut tasks = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut deps = SmallVec::with_capacity(spec.deps.len());
            for d in &spec.deps {
                match index.get(d) {
                    Some(&id) => deps.push(id),
                    None => {
                        return Err(RaskError::InvalidGraph(format!(
                            "task {} depends on {}, which no task produces",
                            spec.key, d
                        )));
                    }
                }
            }
            tasks.push(Task {
                key: spec.key,
                op: spec.op,
                deps,
            });
        }
        let graph = Graph::from_parts(tasks, index);
        graph.check_acyclic()?;
        Ok(graph)
    }

    /// Builds a graph from tasks whose dependencies are already resolved and known to be
    /// acyclic: optimizations only remove or merge tasks of a validated graph.
    pub(crate) fn from_tasks_unchecked(tasks: Vec<Task>) -> Graph {
        Graph {
            tasks,
            index: OnceLock::new(),
            dependents: OnceLock::new(),
            topological: OnceLock::new(),
        }
    }

    pub(crate) fn from_parts(tasks: Vec<Task>, index: FxHashMap<Key, TaskId>) -> Graph {
        Graph {
            tasks,
            index: OnceLock::from(index),
            dependents: OnceLock::new(),
            topological: OnceLock::new(),
        }
    }

    /// Takes the tasks out (optimizations rebuild graphs without cloning keys and ops).
    pub fn into_tasks(self) -> Vec<Task> {
        self.tasks
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    pub fn task(&self, id: TaskId) -> &Task {
        &self.tasks[id as usize]
    }

    pub fn id_of(&self, key: &Key) -> Option<TaskId> {
        self.index
            .get_or_init(|| {
                let mut index = FxHashMap::default();
                index.reserve(self.tasks.len());
                for (i, t) in self.tasks.iter().enumerate() {
                    index.insert(t.key.clone(), i as TaskId);
                }
                index
            })
            .get(key)
            .copied()
    }

    /// Resolves requested output keys to ids, naming the first key that is not in the graph.
    pub fn ids_of(&self, keys: &[Key]) -> Result<Vec<TaskId>> {
        keys.iter()
            .map(|k| {
                self.id_of(k).ok_or_else(|| {
                    RaskError::InvalidGraph(format!("requested output {k} is not in the graph"))
                })
            })
            .collect()
    }

    pub fn dependencies(&self) -> Adjacency {
        let mut offsets = Vec::with_capacity(self.tasks.len() + 1);
        let mut targets = Vec::new();
        offsets.push(0);
        for t in &self.tasks {
            targets.extend_from_slice(&t.deps);
            offsets.push(targets.len() as u32);
        }
        Adjacency { offsets, targets }
    }

    /// Dependents of every task, each list in increasing id order (computed once).
    pub fn dependents(&self) -> &Adjacency {
        self.dependents.get_or_init(|| self.compute_dependents())
    }

    fn compute_dependents(&self) -> Adjacency {
        let n = self.tasks.len();
        let mut counts = vec![0u32; n + 1];
        for t in &self.tasks {
            for &d in &t.deps {
                counts[d as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let offsets = counts.clone();
        let mut fill = counts;
        let mut targets = vec![0; *offsets.last().unwrap_or(&0) as usize];
        for (id, t) in self.tasks.iter().enumerate() {
            for &d in &t.deps {
                let slot = &mut fill[d as usize];
                targets[*slot as usize] = id as TaskId;
                *slot += 1;
            }
        }
        Adjacency { offsets, targets }
    }

    /// A topological order (dependencies first), or an error naming the keys along a cycle.
    pub fn topological_order(&self) -> Result<&[TaskId]> {
        if let Some(t) = self.topological.get() {
            return Ok(t);
        }
        let order = self.compute_topological_order()?;
        Ok(self.topological.get_or_init(|| order))
    }

    fn compute_topological_order(&self) -> Result<Vec<TaskId>> {
        let n = self.tasks.len();
        let dependents = self.dependents();
        let mut missing: Vec<u32> = self.tasks.iter().map(|t| t.deps.len() as u32).collect();
        let mut order: Vec<TaskId> = (0..n as TaskId)
            .filter(|&i| missing[i as usize] == 0)
            .collect();
        let mut head = 0;
        while head < order.len() {
            let id = order[head];
            head += 1;
            for &d in dependents.of(id) {
                let m = &mut missing[d as usize];
                *m -= 1;
                if *m == 0 {
                    order.push(d);
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        Err(RaskError::InvalidGraph(self.describe_cycle(&missing)))
    }

    fn check_acyclic(&self) -> Result<()> {
        self.topological_order().map(|_| ())
    }

    /// Finds one cycle among the tasks left with unmet dependencies and names its keys.
    fn describe_cycle(&self, missing: &[u32]) -> String {
        // Every task left over has an unmet dependency that is itself left over, so walking
        // such dependencies must revisit a task: that walk's tail is a cycle.
        let start = missing.iter().position(|&m| m > 0).unwrap_or(0) as TaskId;
        let mut seen_at: FxHashMap<TaskId, usize> = FxHashMap::default();
        let mut path = Vec::new();
        let mut cur = start;
        loop {
            if let Some(&pos) = seen_at.get(&cur) {
                let mut names: Vec<String> = path[pos..]
                    .iter()
                    .map(|&id: &TaskId| self.tasks[id as usize].key.to_string())
                    .collect();
                names.push(names[0].clone());
                return format!(
                    "cycle through keys {} (each depends on the next)",
                    names.join(" -> ")
                );
            }
            seen_at.insert(cur, path.len());
            path.push(cur);
            let next = self.tasks[cur as usize]
                .deps
                .iter()
                .copied()
                .find(|&d| missing[d as usize] > 0);
            match next {
                Some(n) => cur = n,
                None => return "cycle detected".to_string(),
            }
        }
    }

    /// The projected output size of every task, from [`Op::projected_nbytes`] applied in
    /// topological order; `None` where an op cannot tell or an input's size is unknown.
    pub fn projected_nbytes(&self) -> Vec<Option<u64>> {
        let mut sizes: Vec<Option<u64>> = vec![None; self.tasks.len()];
        let Ok(topo) = self.topological_order() else {
            return sizes;
        };
        let mut inputs: Vec<u64> = Vec::new();
        for &id in topo {
            let task = &self.tasks[id as usize];
            inputs.clear();
            let mut known = true;
            for &d in &task.deps {
                match sizes[d as usize] {
                    Some(s) => inputs.push(s),
                    None => {
                        known = false;
                        break;
                    }
                }
            }
            sizes[id as usize] = if known {
                task.op.projected_nbytes(&inputs)
            } else {
                None
            };
        }
        sizes
    }

    /// The transient size of every task ([`Op::transient_nbytes`]) given the projected sizes
    /// of its inputs; `None` where unknown.
    pub fn transient_nbytes(&self, projected: &[Option<u64>]) -> Vec<Option<u64>> {
        self.tasks
            .iter()
            .map(|t| {
                let ins: Option<Vec<u64>> = t.deps.iter().map(|&d| projected[d as usize]).collect();
                t.op.transient_nbytes(&ins?)
            })
            .collect()
    }

    /// Approximate heap bytes held by the graph (tasks, dependency lists, key index).
    pub fn heap_bytes(&self) -> usize {
        let per_task = std::mem::size_of::<Task>();
        let mut bytes = self.tasks.capacity() * per_task;
        for t in &self.tasks {
            if t.deps.spilled() {
                bytes += t.deps.capacity() * 4;
            }
        }
        bytes += self
            .index
            .get()
            .map_or(0, |i| i.capacity() * (std::mem::size_of::<Key>() + 4 + 1));
        bytes += self.dependents.get().map_or(0, |a| a.heap_bytes());
        bytes += self.topological.get().map_or(0, |t| t.capacity() * 4);
        bytes
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for t in &self.tasks {
            let deps: Vec<String> = t
                .deps
                .iter()
                .map(|&d| self.tasks[d as usize].key.to_string())
                .collect();
            l.entry(&format_args!(
                "{} = {}({})",
                t.key,
                t.op.name(),
                deps.join(", ")
            ));
        }
        l.finish()
    }
}
