//! Folding tasks into their dependents, the building block of inlining and fusing. Each
//! function builds the resulting composite once, so a pass stays linear in the size of the
//! graph however long the chains or wide the fan-ins.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::Op;
use crate::graph::TaskId;
use crate::op::{Composite, Step, StepArg};

/// The inputs of a composite being built: task ids without repeats, with a map once there
/// are too many to search linearly.
#[derive(Default)]
struct Inputs {
    ids: SmallVec<[TaskId; 2]>,
    index: FxHashMap<TaskId, u32>,
}

impl Inputs {
    fn slot(&mut self, id: TaskId) -> u32 {
        if self.ids.len() <= 8 {
            if let Some(p) = self.ids.iter().position(|&x| x == id) {
                return p as u32;
            }
            self.ids.push(id);
            if self.ids.len() > 8 {
                self.index = self
                    .ids
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (x, i as u32))
                    .collect();
            }
            return (self.ids.len() - 1) as u32;
        }
        if let Some(&p) = self.index.get(&id) {
            return p;
        }
        let p = self.ids.len() as u32;
        self.ids.push(id);
        self.index.insert(id, p);
        p
    }
}

/// Appends the steps of `op` (reading `deps`) to `steps`, its inputs mapped by `arg`;
/// returns the index of its output step.
fn append(
    steps: &mut Vec<Step>,
    op: &Arc<dyn Op>,
    deps: &[TaskId],
    mut arg: impl FnMut(u32) -> StepArg,
) -> u32 {
    let offset = steps.len() as u32;
    for s in Composite::steps_of(op, deps.len()) {
        let args = s
            .args
            .iter()
            .map(|a| match *a {
                StepArg::Input(i) => arg(i),
                StepArg::Step(j) => StepArg::Step(j + offset),
            })
            .collect();
        steps.push(Step { op: s.op, args });
    }
    (steps.len() - 1) as u32
}

fn finish(steps: Vec<Step>, inputs: Inputs) -> (Arc<dyn Op>, SmallVec<[TaskId; 2]>) {
    let n_inputs = inputs.ids.len();
    let composite = Composite::new(steps, n_inputs).expect("composed steps only refer backwards");
    (Arc::new(composite), inputs.ids)
}

/// Folds every input `p` of `consumer` for which `producer(p)` gives `(op, deps)` into the
/// consumer, in one composite. Producers must not themselves read other producers.
pub(crate) fn compose_many<'a>(
    consumer: &Arc<dyn Op>,
    consumer_deps: &[TaskId],
    producer: impl Fn(TaskId) -> Option<(&'a Arc<dyn Op>, &'a [TaskId])>,
) -> (Arc<dyn Op>, SmallVec<[TaskId; 2]>) {
    let mut inputs = Inputs::default();
    let mut steps: Vec<Step> = Vec::new();
    let mut produced: FxHashMap<TaskId, u32> = FxHashMap::default();
    for &d in consumer_deps {
        if produced.contains_key(&d) {
            continue;
        }
        if let Some((op, deps)) = producer(d) {
            let out = append(&mut steps, op, deps, |i| {
                StepArg::Input(inputs.slot(deps[i as usize]))
            });
            produced.insert(d, out);
        }
    }
    append(&mut steps, consumer, consumer_deps, |k| {
        let dep = consumer_deps[k as usize];
        match produced.get(&dep) {
            Some(&s) => StepArg::Step(s),
            None => StepArg::Input(inputs.slot(dep)),
        }
    });
    finish(steps, inputs)
}

/// Fuses a linear chain `links[0] -> links[1] -> ... -> links[n-1]` into one composite:
/// every link after the first reads only the link before it (possibly several times).
pub(crate) fn compose_chain(
    links: &[(&Arc<dyn Op>, &[TaskId])],
) -> (Arc<dyn Op>, SmallVec<[TaskId; 2]>) {
    let mut inputs = Inputs::default();
    let mut steps: Vec<Step> = Vec::new();
    let (first_op, first_deps) = links[0];
    let mut last = append(&mut steps, first_op, first_deps, |i| {
        StepArg::Input(inputs.slot(first_deps[i as usize]))
    });
    for &(op, deps) in &links[1..] {
        let prev = last;
        last = append(&mut steps, op, deps, |_| StepArg::Step(prev));
    }
    finish(steps, inputs)
}
