use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::op::Cost;
use crate::optimize::compose::compose_many;
use crate::optimize::{output_mask, renumber};

/// Folds every cheap task that is not a requested output into each of its dependents.
///
/// A cheap task with several dependents runs once per dependent afterwards; that is the point:
/// cheap means cheaper than a scheduler round trip and the memory it would hold.
pub fn inline_cheap(graph: Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
    let n = graph.len();
    let is_output = output_mask(n, outputs);
    let dependents = graph.dependents();
    let inlinable: Vec<bool> = graph
        .tasks()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            !is_output[i] && t.op.cost() == Cost::Cheap && dependents.len_of(i as TaskId) > 0
        })
        .collect();
    if !inlinable.iter().any(|&x| x) {
        return (graph, outputs.to_vec());
    }

    // In topological order, a cheap task's own cheap inputs are folded into it before it is
    // folded into its readers, so one level of folding per task suffices.
    let topo: Vec<TaskId> = graph
        .topological_order()
        .expect("a validated graph is acyclic")
        .to_vec();
    let mut tasks: Vec<Task> = graph.into_tasks();
    for &id in &topo {
        let i = id as usize;
        if !tasks[i].deps.iter().any(|&d| inlinable[d as usize]) {
            continue;
        }
        let (op, deps) = {
            let all = &tasks;
            compose_many(&all[i].op, &all[i].deps, |d| {
                inlinable[d as usize]
                    .then(|| (&all[d as usize].op, all[d as usize].deps.as_slice()))
            })
        };
        tasks[i].op = op;
        tasks[i].deps = deps;
    }
    renumber(tasks, &inlinable, outputs)
}
