//! Graph optimizations, each a function from a graph and its requested outputs to a smaller
//! graph that computes the same outputs under the same keys.
//!
//! - [`cull`] drops tasks that no requested output depends on.
//! - [`inline_cheap`] folds [`Cost::Cheap`](crate::Cost::Cheap) tasks (constants, views) into
//!   each dependent, so they cost no scheduling.
//! - [`fuse_linear`] merges chains `a -> b -> c` where each link is the only dependent of the
//!   one before and the only dependency of the one after, as Dask's `fuse_linear` does: one task
//!   instead of several, and no intermediate value held between them.
//!
//! [`optimize`] runs all three in that order.

mod compose;
mod cull;
mod fuse;
mod inline;

pub use cull::cull;
pub use fuse::fuse_linear;
pub use inline::inline_cheap;

use crate::Graph;
use crate::graph::{Task, TaskId};

/// Which optimizations [`optimize`] runs.
#[derive(Clone, Copy, Debug)]
pub struct OptimizeOptions {
    pub cull: bool,
    pub inline: bool,
    pub fuse: bool,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            cull: true,
            inline: true,
            fuse: true,
        }
    }
}

/// Runs the enabled passes; returns the new graph and the outputs' ids in it.
pub fn optimize(graph: Graph, outputs: &[TaskId], opts: OptimizeOptions) -> (Graph, Vec<TaskId>) {
    let (mut g, mut out) = (graph, outputs.to_vec());
    if opts.cull {
        (g, out) = cull(g, &out);
    }
    if opts.inline {
        (g, out) = inline_cheap(g, &out);
    }
    if opts.fuse {
        (g, out) = fuse_linear(g, &out);
    }
    (g, out)
}

/// Marks requested outputs in a dense bitmap.
pub(crate) fn output_mask(n: usize, outputs: &[TaskId]) -> Vec<bool> {
    let mut mask = vec![false; n];
    for &o in outputs {
        mask[o as usize] = true;
    }
    mask
}

/// Drops the tasks marked in `removed`, renumbering the rest (and their dependencies and the
/// outputs) densely in their original order.
pub(crate) fn renumber(
    tasks: Vec<Task>,
    removed: &[bool],
    outputs: &[TaskId],
) -> (Graph, Vec<TaskId>) {
    let mut new_id = vec![u32::MAX; tasks.len()];
    let mut kept = 0u32;
    for (i, &r) in removed.iter().enumerate() {
        if !r {
            new_id[i] = kept;
            kept += 1;
        }
    }
    let mut out_tasks = Vec::with_capacity(kept as usize);
    for (i, mut t) in tasks.into_iter().enumerate() {
        if removed[i] {
            continue;
        }
        for d in t.deps.iter_mut() {
            debug_assert_ne!(
                new_id[*d as usize],
                u32::MAX,
                "a kept task reads a removed one"
            );
            *d = new_id[*d as usize];
        }
        out_tasks.push(t);
    }
    let out = outputs.iter().map(|&o| new_id[o as usize]).collect();
    (Graph::from_tasks_unchecked(out_tasks), out)
}
