use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::optimize::renumber;

/// Keeps only the tasks the outputs depend on (and the outputs), in their original order.
pub fn cull(graph: Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
    let n = graph.len();
    let mut keep = vec![false; n];
    let mut stack: Vec<TaskId> = outputs.to_vec();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut keep[id as usize], true) {
            continue;
        }
        stack.extend(
            graph
                .task(id)
                .deps
                .iter()
                .copied()
                .filter(|&d| !keep[d as usize]),
        );
    }
    if keep.iter().all(|&k| k) {
        return (graph, outputs.to_vec());
    }
    let drop: Vec<bool> = keep.iter().map(|&k| !k).collect();
    let tasks: Vec<Task> = graph.into_tasks();
    renumber(tasks, &drop, outputs)
}
