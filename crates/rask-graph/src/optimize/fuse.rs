use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::optimize::compose::compose;
use crate::optimize::{output_mask, renumber};

/// Fuses linear chains into single tasks.
///
/// `a` folds into `b` when `b` is `a`'s only dependent, `a` is `b`'s only dependency, and `a`
/// is not a requested output. The fused task keeps the key of the chain's last task, so
/// everything downstream still finds it.
pub fn fuse_linear(graph: Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
    let n = graph.len();
    let is_output = output_mask(n, outputs);
    let dependents = graph.dependents();
    // `absorbed[a]`: a folds into its single dependent.
    let absorbed: Vec<bool> = (0..n)
        .map(|a| {
            let a_id = a as TaskId;
            if is_output[a] || dependents.len_of(a_id) != 1 {
                return false;
            }
            let b = dependents.of(a_id)[0];
            graph.task(b).deps.len() == 1
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
        if tasks[i].deps.len() == 1 && absorbed[tasks[i].deps[0] as usize] {
            let p = tasks[i].deps[0];
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
