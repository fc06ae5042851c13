use crate::graph::{Task, TaskId};
use crate::op::Cost;
use crate::optimize::compose::compose;
use crate::optimize::output_mask;
use crate::Graph;

/// Folds every cheap task that is not a requested output into each of its dependents.
///
/// A cheap task with several dependents runs once per dependent afterwards; that is the point:
/// cheap means cheaper than a scheduler round trip and the memory it would hold.
pub fn inline_cheap(graph: &Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
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
        return (graph.clone(), outputs.to_vec());
    }

    // Process in topological order so a cheap task's own cheap inputs are folded first.
    let topo = graph
        .topological_order()
        .expect("a validated graph is acyclic");
    let mut ops: Vec<_> = graph.tasks().iter().map(|t| t.op.clone()).collect();
    let mut deps: Vec<_> = graph.tasks().iter().map(|t| t.deps.clone()).collect();
    for &id in &topo {
        let i = id as usize;
        // Fold every inlinable input of this task (inputs were finalized earlier in `topo`).
        while let Some(&p) = deps[i].iter().find(|&&d| inlinable[d as usize]) {
            let (op, new_deps) = compose(p, &ops[p as usize], &deps[p as usize], &ops[i], &deps[i]);
            ops[i] = op;
            deps[i] = new_deps;
        }
    }

    let mut new_id = vec![u32::MAX; n];
    let mut kept = 0u32;
    for i in 0..n {
        if !inlinable[i] {
            new_id[i] = kept;
            kept += 1;
        }
    }
    let mut tasks = Vec::with_capacity(kept as usize);
    for (i, t) in graph.tasks().iter().enumerate() {
        if inlinable[i] {
            continue;
        }
        tasks.push(Task {
            key: t.key.clone(),
            op: ops[i].clone(),
            deps: deps[i].iter().map(|&d| new_id[d as usize]).collect(),
        });
    }
    let out = outputs.iter().map(|&o| new_id[o as usize]).collect();
    (Graph::from_tasks_unchecked(tasks), out)
}
