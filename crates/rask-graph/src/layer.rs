//! Layers and the builder that flattens them into a [`Graph`].
//!
//! Collections do not hold a flat graph. Each operation adds a [`Layer`]: the tasks it creates
//! (one for a `Delayed` call, one per chunk for an array operation) plus the layers those tasks
//! read from. Layers form a DAG shared by reference, so building an expression is cheap and
//! two collections derived from the same input share its layers. At compute time the
//! [`GraphBuilder`] walks the layers reachable from the requested outputs, deduplicates tasks
//! by key and produces one [`Graph`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rask_error::{RaskError, Result};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::graph::{Task, TaskId, TaskSpec};
use crate::{Graph, Key, Value};

/// The tasks one operation added, and the layers they read from.
pub struct Layer {
    tasks: SmallVec<[TaskSpec; 1]>,
    deps: SmallVec<[Arc<Layer>; 2]>,
    /// Scratch slot for the [`GraphBuilder`] flattening this layer: `builder id << 32 | task
    /// id` of its single task. Resolving a dependency through it is one pointer hop instead of
    /// a hash lookup in a table of millions of keys.
    builder_tag: AtomicU64,
}

impl Layer {
    /// A layer of tasks. Every key that `tasks` depend on must be produced either by a task of
    /// this layer or by a layer in `deps` (checked when the graph is built).
    pub fn new(tasks: Vec<TaskSpec>, deps: Vec<Arc<Layer>>) -> Arc<Layer> {
        Arc::new(Layer {
            tasks: SmallVec::from_vec(tasks),
            deps: SmallVec::from_vec(deps),
            builder_tag: AtomicU64::new(0),
        })
    }

    /// A layer of one task. When `deps[i]` produces `task.deps[i]` (as for a `Delayed`
    /// call), the builder resolves dependencies without hashing.
    pub fn single(task: TaskSpec, deps: impl IntoIterator<Item = Arc<Layer>>) -> Arc<Layer> {
        let mut tasks = SmallVec::new();
        tasks.push(task);
        Arc::new(Layer {
            tasks,
            deps: deps.into_iter().collect(),
            builder_tag: AtomicU64::new(0),
        })
    }

    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    pub fn deps(&self) -> &[Arc<Layer>] {
        &self.deps
    }
}

impl Drop for Layer {
    // A chain of a million `Delayed`s is a million nested `Arc<Layer>`s; the default drop
    // would recurse once per link and overflow the stack, so unlink iteratively.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Layer>> = self.deps.drain(..).collect();
        while let Some(layer) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(layer) {
                stack.extend(inner.deps.drain(..));
            }
        }
    }
}

/// Something that lowers to tasks: a `Delayed`, an `Array`, a `DataFrame`, or a tuple of them.
pub trait Collection {
    /// What computing it returns.
    type Output;

    /// Adds every layer the collection needs.
    fn add_layers(&self, builder: &mut GraphBuilder);

    /// The keys whose values [`Collection::finalize`] turns into the output.
    fn output_keys(&self) -> Vec<Key>;

    /// Assembles the output from the values of [`Collection::output_keys`], in that order.
    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output>;
}

/// A key inside a layer the builder keeps alive: hashing and comparing through the
/// pointer avoids touching (and dirtying) the key's reference count for every task.
#[derive(Clone, Copy)]
struct KeyRef(*const Key);

impl KeyRef {
    fn get(&self) -> &Key {
        // SAFETY: every KeyRef points into a `TaskSpec` of a layer held in
        // `GraphBuilder::layers` (or the stack being processed, which is pushed there before
        // the builder finishes); layers are never mutated while shared, and the map holding
        // KeyRefs is dropped before `layers`.
        unsafe { &*self.0 }
    }
}

impl PartialEq for KeyRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.get() == other.get()
    }
}

impl Eq for KeyRef {}

impl std::hash::Hash for KeyRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.get().hash(state)
    }
}

impl std::borrow::Borrow<Key> for KeyRef {
    fn borrow(&self) -> &Key {
        self.get()
    }
}

/// Flattens layers into a [`Graph`].
pub struct GraphBuilder {
    /// Unique per builder in this process; 0 disables the tag fast path.
    id: u32,
    seen_layers: FxHashSet<usize>,
    stack: Vec<Arc<Layer>>,
    layers: Vec<Arc<Layer>>,
    /// Task id -> (layer, task within the layer).
    entries: Vec<(u32, u32)>,
    /// Pointers into `layers`; emptied first when the builder drops (see `Drop`).
    index: FxHashMap<KeyRef, TaskId>,
}

impl Drop for GraphBuilder {
    fn drop(&mut self) {
        // The pointers in `index` must not outlive the layers they point into.
        self.index.clear();
    }
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn next_builder_id() -> u32 {
    // Ids are never reused, so a tag left in a layer by an earlier builder cannot be
    // mistaken for one of ours; once the counter is exhausted the fast path is off.
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n != u32::MAX).then(|| n + 1)
    })
    .unwrap_or(0)
}

impl GraphBuilder {
    pub fn new() -> Self {
        GraphBuilder {
            id: next_builder_id(),
            seen_layers: FxHashSet::default(),
            stack: Vec::new(),
            layers: Vec::new(),
            entries: Vec::new(),
            index: FxHashMap::default(),
        }
    }

    /// Adds a layer and, transitively, every layer it depends on. Tasks whose key is already
    /// present are skipped: equal keys mean equal computations, and a single-task layer whose
    /// key is present needs none of its inputs (a persisted value, say, replaces its inputs).
    pub fn add_layer(&mut self, layer: &Arc<Layer>) {
        self.stack.push(layer.clone());
        while let Some(layer) = self.stack.pop() {
            let layer_idx = self.layers.len() as u32;
            if layer.tasks.len() == 1 {
                let id = self.entries.len() as TaskId;
                match self.index.entry(KeyRef(&layer.tasks[0].key)) {
                    std::collections::hash_map::Entry::Occupied(_) => continue,
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(id);
                    }
                }
                self.entries.push((layer_idx, 0));
                if self.id != 0 {
                    layer
                        .builder_tag
                        .store(((self.id as u64) << 32) | id as u64, Ordering::Relaxed);
                }
            } else {
                if !self.seen_layers.insert(Arc::as_ptr(&layer) as usize) {
                    continue;
                }
                for (task_idx, spec) in layer.tasks.iter().enumerate() {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        self.index.entry(KeyRef(&spec.key))
                    {
                        e.insert(self.entries.len() as TaskId);
                        self.entries.push((layer_idx, task_idx as u32));
                    }
                }
            }
            self.stack.extend(layer.deps.iter().cloned());
            self.layers.push(layer);
        }
    }

    /// Adds one task that is not part of any layer.
    pub fn add_task(&mut self, spec: TaskSpec) -> Result<()> {
        if self.index.contains_key(&spec.key) {
            return Err(RaskError::InvalidGraph(format!(
                "duplicate key {}",
                spec.key
            )));
        }
        self.add_layer(&Layer::single(spec, Vec::new()));
        Ok(())
    }

    pub fn add_collection<C: Collection + ?Sized>(&mut self, c: &C) {
        c.add_layers(self);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of the task producing `dep` (the `k`-th input of a task in `layer`).
    fn resolve(&self, layer: &Layer, k: usize, dep: &Key) -> Option<TaskId> {
        if self.id != 0
            && let Some(d) = layer.deps.get(k)
            && d.tasks.len() == 1
            && d.tasks[0].key == *dep
        {
            let tag = d.builder_tag.load(Ordering::Relaxed);
            if (tag >> 32) as u32 == self.id {
                return Some(tag as u32);
            }
        }
        self.index.get(dep).copied()
    }

    /// Resolves dependencies and validates the graph: a key that no task produces, or a
    /// cycle, is an error naming the keys.
    pub fn build(self) -> Result<Graph> {
        self.build_with_outputs(&[]).map(|(g, _)| g)
    }

    /// Like [`GraphBuilder::build`], also resolving the ids of `outputs` (an error names the
    /// first key that is not in the graph).
    pub fn build_with_outputs(self, outputs: &[Key]) -> Result<(Graph, Vec<TaskId>)> {
        let mut output_ids = Vec::with_capacity(outputs.len());
        for k in outputs {
            match self.index.get(k) {
                Some(&id) => output_ids.push(id),
                None => {
                    return Err(RaskError::InvalidGraph(format!(
                        "requested output {k} is not in the graph"
                    )));
                }
            }
        }
        let aligned = |layer: &Layer, spec: &TaskSpec| {
            layer.tasks.len() == 1 && layer.deps.len() == spec.deps.len()
        };
        let mut tasks = Vec::with_capacity(self.entries.len());
        for &(l, t) in &self.entries {
            let layer = &self.layers[l as usize];
            let spec = &layer.tasks[t as usize];
            let fast = aligned(layer, spec);
            let mut deps: SmallVec<[TaskId; 2]> = SmallVec::with_capacity(spec.deps.len());
            for (k, d) in spec.deps.iter().enumerate() {
                let found = if fast {
                    self.resolve(layer, k, d)
                } else {
                    self.index.get(d).copied()
                };
                match found {
                    Some(id) => deps.push(id),
                    None => {
                        return Err(RaskError::InvalidGraph(format!(
                            "task {} depends on {}, which no task produces",
                            spec.key, d
                        )));
                    }
                }
            }
            tasks.push(Task {
                key: spec.key.clone(),
                op: spec.op.clone(),
                deps,
            });
        }
        let graph = Graph::from_tasks_unchecked(tasks);
        graph.topological_order()?;
        Ok((graph, output_ids))
    }
}

macro_rules! collection_tuple {
    ($($n:ident $i:tt),+) => {
        impl<$($n: Collection),+> Collection for ($($n,)+) {
            type Output = ($($n::Output,)+);
            fn add_layers(&self, builder: &mut GraphBuilder) {
                $(self.$i.add_layers(builder);)+
            }
            fn output_keys(&self) -> Vec<Key> {
                let mut keys = Vec::new();
                $(keys.extend(self.$i.output_keys());)+
                keys
            }
            fn finalize(&self, values: Vec<Value>) -> Result<Self::Output> {
                let mut values = values.into_iter();
                Ok(($({
                    let n = self.$i.output_keys().len();
                    let part: Vec<Value> = values.by_ref().take(n).collect();
                    self.$i.finalize(part)?
                },)+))
            }
        }
    };
}
collection_tuple!(A 0);
collection_tuple!(A 0, B 1);
collection_tuple!(A 0, B 1, C 2);
collection_tuple!(A 0, B 1, C 2, D 3);
collection_tuple!(A 0, B 1, C 2, D 3, E 4);
collection_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

impl<C: Collection> Collection for Vec<C> {
    type Output = Vec<C::Output>;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        self.as_slice().add_layers(builder)
    }
    fn output_keys(&self) -> Vec<Key> {
        self.as_slice().output_keys()
    }
    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output> {
        self.as_slice().finalize(values)
    }
}

impl<C: Collection> Collection for [C] {
    type Output = Vec<C::Output>;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        for c in self {
            c.add_layers(builder);
        }
    }
    fn output_keys(&self) -> Vec<Key> {
        self.iter().flat_map(|c| c.output_keys()).collect()
    }
    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output> {
        let mut values = values.into_iter();
        self.iter()
            .map(|c| {
                let n = c.output_keys().len();
                c.finalize(values.by_ref().take(n).collect())
            })
            .collect()
    }
}

impl<C: Collection + ?Sized> Collection for &C {
    type Output = C::Output;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        (**self).add_layers(builder)
    }
    fn output_keys(&self) -> Vec<Key> {
        (**self).output_keys()
    }
    fn finalize(&self, values: Vec<Value>) -> Result<Self::Output> {
        (**self).finalize(values)
    }
}
