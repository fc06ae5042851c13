//! Folding one task into a dependent, the building block of inlining and fusing.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::Op;
use crate::graph::TaskId;
use crate::op::{Composite, Step, StepArg};

/// Folds `producer` (with inputs `producer_deps`) into `consumer` (with inputs
/// `consumer_deps`, some equal to `producer_id`). Returns the composite op and its inputs:
/// the producer's inputs followed by the consumer's other inputs, without repeats.
pub(crate) fn compose(
    producer_id: TaskId,
    producer: &Arc<dyn Op>,
    producer_deps: &[TaskId],
    consumer: &Arc<dyn Op>,
    consumer_deps: &[TaskId],
) -> (Arc<dyn Op>, SmallVec<[TaskId; 2]>) {
    let mut inputs: SmallVec<[TaskId; 2]> = SmallVec::new();
    let slot_of = |id: TaskId, inputs: &mut SmallVec<[TaskId; 2]>| -> u32 {
        match inputs.iter().position(|&x| x == id) {
            Some(p) => p as u32,
            None => {
                inputs.push(id);
                (inputs.len() - 1) as u32
            }
        }
    };

    let mut steps: Vec<Step> = Vec::new();
    for s in Composite::steps_of(producer, producer_deps.len()) {
        let args = s
            .args
            .iter()
            .map(|a| match *a {
                StepArg::Input(i) => {
                    StepArg::Input(slot_of(producer_deps[i as usize], &mut inputs))
                }
                StepArg::Step(j) => StepArg::Step(j),
            })
            .collect();
        steps.push(Step { op: s.op, args });
    }
    let produced = (steps.len() - 1) as u32;
    let offset = steps.len() as u32;
    for s in Composite::steps_of(consumer, consumer_deps.len()) {
        let args = s
            .args
            .iter()
            .map(|a| match *a {
                StepArg::Input(i) => {
                    let dep = consumer_deps[i as usize];
                    if dep == producer_id {
                        StepArg::Step(produced)
                    } else {
                        StepArg::Input(slot_of(dep, &mut inputs))
                    }
                }
                StepArg::Step(j) => StepArg::Step(j + offset),
            })
            .collect();
        steps.push(Step { op: s.op, args });
    }
    let n_inputs = inputs.len();
    let composite = Composite::new(steps, n_inputs).expect("composed steps only refer backwards");
    (Arc::new(composite), inputs)
}
