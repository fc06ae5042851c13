use crate::Graph;
use crate::graph::{Task, TaskId};
use crate::optimize::compose::compose_chain;
use crate::optimize::{output_mask, renumber};

/// The single task `ids` names, repeats allowed (`f(a, a)` reads one task).
fn only(ids: &[TaskId]) -> Option<TaskId> {
    let first = *ids.first()?;
    ids.iter().all(|&x| x == first).then_some(first)
}

/// Fuses linear chains into single tasks.
///
/// `a` folds into `b` when `b` is `a`'s only dependent, `a` is `b`'s only dependency (`b`
/// may read it more than once), and `a` is not a requested output. The fused task keeps the
/// key of the chain's last task, so everything downstream still finds it. Each chain is
/// collected first and composed once, so the pass is linear however long the chains.
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

    let mut tasks: Vec<Task> = graph.into_tasks();
    let mut chain: Vec<TaskId> = Vec::new();
    for end in 0..n {
        // A chain ends at a task that is not absorbed but reads an absorbed one.
        if absorbed[end] {
            continue;
        }
        let Some(mut cur) = only(&tasks[end].deps).filter(|&p| absorbed[p as usize]) else {
            continue;
        };
        chain.clear();
        chain.push(end as TaskId);
        loop {
            chain.push(cur);
            match only(&tasks[cur as usize].deps) {
                Some(p) if absorbed[p as usize] => cur = p,
                _ => break,
            }
        }
        chain.reverse();
        let (op, deps) = {
            let links: Vec<_> = chain
                .iter()
                .map(|&t| (&tasks[t as usize].op, tasks[t as usize].deps.as_slice()))
                .collect();
            compose_chain(&links)
        };
        tasks[end].op = op;
        tasks[end].deps = deps;
    }
    renumber(tasks, &absorbed, outputs)
}
