//! Checking a graph against a memory budget before anything runs.

use rask_error::{RaskError, Result};
use rask_graph::Graph;

/// Bytes in a human unit, for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Errors when some task's working set (its inputs plus its output, by projected sizes) is
/// larger than `limit`: no schedule can run that task within the budget, so say so before
/// running anything rather than fail (or be killed) halfway. Tasks whose sizes are unknown
/// are not checked.
pub fn check_budget(graph: &Graph, limit: u64) -> Result<()> {
    let sizes = graph.projected_nbytes();
    let transient = graph.transient_nbytes(&sizes);
    check_sizes(graph, &sizes, &transient, limit)
}

pub(crate) fn check_sizes(
    graph: &Graph,
    sizes: &[Option<u64>],
    transient: &[Option<u64>],
    limit: u64,
) -> Result<()> {
    for (id, task) in graph.tasks().iter().enumerate() {
        let Some(out) = transient[id].or(sizes[id]) else {
            continue;
        };
        let inputs: Option<u64> = task.deps.iter().map(|&d| sizes[d as usize]).sum();
        let Some(inputs) = inputs else { continue };
        let need = inputs + out;
        if need > limit {
            return Err(RaskError::MemoryBudget(format!(
                "task {} (op `{}`) needs {} (inputs {} + {} while it runs), more than the memory budget \
                 of {}; use smaller chunks or a larger budget",
                task.key,
                task.op.name(),
                human_bytes(need),
                human_bytes(inputs),
                human_bytes(out),
                human_bytes(limit)
            )));
        }
    }
    Ok(())
}
