use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::optimize::compose::compose;
use crate::optimize::{output_mask, renumber};

/// The one task a list names, repeats allowed (`b = f(a, a)` reads only `a`); `None` when the
/// list is empty or names several tasks.
fn only(ids: &[TaskId]) -> Option<TaskId> {
    let (&first, rest) = ids.split_first()?;
    rest.iter().all(|&x| x == first).then_some(first)
}

/// Fuses linear chains into single tasks.
///
/// `a` folds into `b` when `b` is `a`'s only dependent, `a` is `b`'s only dependency (`b` may
/// read it more than once), and `a` is not a requested output. The fused task keeps the key of
/// the chain's last task, so everything downstream still finds it.
pub fn fuse_linear(graph: Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
    let n = graph.len();
    let is_output = output_mask(n, outputs);
    let dependents = graph.dependents();
    // `absorbed[a]`: a folds into its single dependent.
    let absorbed: Vec<bool> = (0..n)
        .map(|a| {
            let a_id = a as TaskId;
            if is_output[a] {
                return false;
            }
            match only(dependents.of(a_id)) {
                Some(b) => only(&graph.task(b).deps) == Some(a_id),
                None => false,
            }
        })
        .collect();
    if !absorbed.iter().any(|&x| x) {
        return (graph, outputs.to_vec());
    }

    let topo: Vec<TaskId> = graph
        .topological_order()
        .expect("a validated graph is acyclic")
        .to_vec();
    let mut tasks: Vec<Task> = graph.into_tasks();
    for &id in &topo {
        let i = id as usize;
        if let Some(p) = only(&tasks[i].deps).filter(|&p| absorbed[p as usize]) {
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
    renumber(tasks, &absorbed, outputs)
}
