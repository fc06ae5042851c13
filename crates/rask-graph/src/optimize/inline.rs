use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::op::Cost;
use crate::optimize::compose::compose;
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

    // Process in topological order so a cheap task's own cheap inputs are folded first.
    let topo: Vec<TaskId> = graph
        .topological_order()
        .expect("a validated graph is acyclic")
        .to_vec();
    let mut tasks: Vec<Task> = graph.into_tasks();
    for &id in &topo {
        let i = id as usize;
        while let Some(&p) = tasks[i].deps.iter().find(|&&d| inlinable[d as usize]) {
            let producer = &tasks[p as usize];
            let (op, deps) = compose(
                p,
                &producer.op,
                &producer.deps,
                &tasks[i].op,
                &tasks[i].deps,
            );
            tasks[i].op = op;
            tasks[i].deps = deps;
        }
    }
    renumber(tasks, &inlinable, outputs)
}
