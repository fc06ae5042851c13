use crate::graph::{Task, TaskId};
use crate::Graph;

/// Keeps only the tasks the outputs depend on (and the outputs), in their original order.
pub fn cull(graph: &Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
    let n = graph.len();
    let mut keep = vec![false; n];
    let mut stack: Vec<TaskId> = outputs.to_vec();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut keep[id as usize], true) {
            continue;
        }
        stack.extend(graph.task(id).deps.iter().copied().filter(|&d| !keep[d as usize]));
    }
    if keep.iter().all(|&k| k) {
        return (graph.clone(), outputs.to_vec());
    }
    let mut new_id = vec![u32::MAX; n];
    let mut kept = 0u32;
    for (i, &k) in keep.iter().enumerate() {
        if k {
            new_id[i] = kept;
            kept += 1;
        }
    }
    let tasks: Vec<Task> = graph
        .tasks()
        .iter()
        .enumerate()
        .filter(|(i, _)| keep[*i])
        .map(|(_, t)| Task {
            key: t.key.clone(),
            op: t.op.clone(),
            deps: t.deps.iter().map(|&d| new_id[d as usize]).collect(),
        })
        .collect();
    let out = outputs.iter().map(|&o| new_id[o as usize]).collect();
    (Graph::from_tasks_unchecked(tasks), out)
}
