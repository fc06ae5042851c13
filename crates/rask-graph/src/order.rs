//! Static ordering: which task to run first when several are ready.
//!
//! The goal, as in Dask's `order.py`, is to keep few intermediate values alive: finish one
//! branch (and free what it read) before opening the next, and reach the outputs along the
//! critical path. The algorithm here is a depth-first post-order from the sinks in which each
//! task visits its dependencies in decreasing order of their register need (the
//! Sethi-Ullman number, generalized to DAGs): the input whose subtree needs the most live
//! values is computed first, while nothing else is held. On a tree this ordering is optimal
//! for sequential execution; on DAGs it is a good heuristic that runs in O(V + E log d).
//!
//! [`max_live`] measures the result: the largest number of values alive at once when the
//! graph runs sequentially in a given order. Tests bound it on characteristic shapes.

use crate::Graph;
use crate::graph::{Adjacency, TaskId};

/// The priority of every task: `priority[id]` is its position in the static order (lower
/// runs first). A valid topological order of the graph.
pub fn order(graph: &Graph) -> Vec<u32> {
    let n = graph.len();
    if n == 0 {
        return Vec::new();
    }
    let topo = graph
        .topological_order()
        .expect("a validated graph is acyclic");
    let dependents = graph.dependents();

    // Register need, bottom-up: a leaf holds 1 value; a task whose inputs, sorted by need
    // decreasing, are n_0 >= n_1 >= ... needs max_k(n_k + k).
    let mut need = vec![1u32; n];
    let mut scratch: Vec<u32> = Vec::new();
    for &id in topo {
        let deps = &graph.task(id).deps;
        if deps.is_empty() {
            continue;
        }
        scratch.clear();
        scratch.extend(deps.iter().map(|&d| need[d as usize]));
        scratch.sort_unstable_by(|a, b| b.cmp(a));
        let m = scratch
            .iter()
            .enumerate()
            .map(|(k, &v)| v.saturating_add(k as u32))
            .max()
            .unwrap_or(1);
        need[id as usize] = m.max(1);
    }

    // Dependencies of every task, sorted by need decreasing, then by id for determinism.
    let deps_sorted = sorted_deps(graph, &need);

    // Sinks in id order: collections add their outputs in block order, so this finishes
    // output blocks one after another.
    let mut priority = vec![u32::MAX; n];
    let mut visited = vec![false; n];
    let mut next = 0u32;
    let mut stack: Vec<(TaskId, u32)> = Vec::new();
    for sink in (0..n as TaskId).filter(|&i| dependents.len_of(i) == 0) {
        visited[sink as usize] = true;
        stack.push((sink, 0));
        while let Some(top) = stack.last_mut() {
            let (id, ref mut child) = *top;
            let children = deps_sorted.of(id);
            let mut pushed = None;
            while (*child as usize) < children.len() {
                let c = children[*child as usize];
                *child += 1;
                if !visited[c as usize] {
                    visited[c as usize] = true;
                    pushed = Some(c);
                    break;
                }
            }
            match pushed {
                Some(c) => stack.push((c, 0)),
                None => {
                    priority[id as usize] = next;
                    next += 1;
                    stack.pop();
                }
            }
        }
    }
    debug_assert_eq!(next as usize, n);
    priority
}

fn sorted_deps(graph: &Graph, need: &[u32]) -> Adjacency {
    let mut adj = graph.dependencies();
    adj.sort_each_by(|a, b| need[b as usize].cmp(&need[a as usize]).then(a.cmp(&b)));
    adj
}

/// The most values alive at once when the graph runs one task at a time in `priority` order.
/// A value is alive from the moment its task finishes until its last dependent finishes;
/// outputs stay alive to the end.
pub fn max_live(graph: &Graph, priority: &[u32], outputs: &[TaskId]) -> usize {
    let n = graph.len();
    let mut by_position = vec![0 as TaskId; n];
    for (id, &p) in priority.iter().enumerate() {
        by_position[p as usize] = id as TaskId;
    }
    let dependents = graph.dependents();
    let mut remaining: Vec<u32> = (0..n as TaskId)
        .map(|i| dependents.len_of(i) as u32)
        .collect();
    let mut is_output = vec![false; n];
    for &o in outputs {
        is_output[o as usize] = true;
    }
    let (mut live, mut peak) = (0usize, 0usize);
    for &id in &by_position {
        live += 1;
        peak = peak.max(live);
        for &d in &graph.task(id).deps {
            let r = &mut remaining[d as usize];
            *r -= 1;
            if *r == 0 && !is_output[d as usize] {
                live -= 1;
            }
        }
        if remaining[id as usize] == 0 && !is_output[id as usize] {
            // A sink nobody asked for is dropped as soon as it is made.
            live -= 1;
        }
    }
    peak
}

/// A breadth-first (Kahn) order, as a baseline that ignores memory.
pub fn breadth_first(graph: &Graph) -> Vec<u32> {
    let topo = graph
        .topological_order()
        .expect("a validated graph is acyclic");
    let mut priority = vec![0u32; graph.len()];
    for (pos, &id) in topo.iter().enumerate() {
        priority[id as usize] = pos as u32;
    }
    priority
}
