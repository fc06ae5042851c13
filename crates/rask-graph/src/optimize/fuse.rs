use crate::graph::{Task, TaskId};
use crate::optimize::compose::compose;
use crate::optimize::output_mask;
use crate::Graph;

/// Fuses linear chains into single tasks.
///
/// `a` folds into `b` when `b` is `a`'s only dependent, `a` is `b`'s only dependency, and `a`
/// is not a requested output. The fused task keeps the key of the chain's last task, so
/// everything downstream still finds it.
pub fn fuse_linear(graph: &Graph, outputs: &[TaskId]) -> (Graph, Vec<TaskId>) {
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
        return (graph.clone(), outputs.to_vec());
    }

    let topo = graph
        .topological_order()
        .expect("a validated graph is acyclic");
    let mut ops: Vec<_> = graph.tasks().iter().map(|t| t.op.clone()).collect();
    let mut deps: Vec<_> = graph.tasks().iter().map(|t| t.deps.clone()).collect();
    for &id in &topo {
        let i = id as usize;
        if deps[i].len() == 1 && absorbed[deps[i][0] as usize] {
            let p = deps[i][0];
            let (op, new_deps) = compose(p, &ops[p as usize], &deps[p as usize], &ops[i], &deps[i]);
            ops[i] = op;
            deps[i] = new_deps;
        }
    }

    let mut new_id = vec![u32::MAX; n];
    let mut kept = 0u32;
    for i in 0..n {
        if !absorbed[i] {
            new_id[i] = kept;
            kept += 1;
        }
    }
    let mut tasks = Vec::with_capacity(kept as usize);
    for (i, t) in graph.tasks().iter().enumerate() {
        if absorbed[i] {
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
