//! The scheduler's memory per task with a million tasks submitted (the cluster issue's
//! budget: at most 500 bytes a task). The same graph and count as the cluster bench's
//! `scheduler_bytes_per_task`, measured on the state machine itself, so a field added to a
//! task that breaks the budget fails here and not only in a benchmark.

use rask::prelude::*;

#[rask::delayed]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[test]
fn a_million_tasks_take_at_most_500_bytes_each_at_the_scheduler() {
    let n = 500_000usize;
    let mut level: Vec<Delayed<i64>> = (0..n as i64).map(inc).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => add(a, b),
                None => a,
            });
        }
        level = next;
    }
    let total = level.pop().unwrap();
    let plan = rask::Plan::new(
        &total,
        rask::graph::optimize::OptimizeOptions {
            cull: true,
            inline: true,
            fuse: false,
        },
    )
    .unwrap();
    let wire = rask_distributed::client::tasks_from_graph(&plan.graph, &plan.priorities).unwrap();
    let ntasks = wire.len();
    assert_eq!(ntasks, 2 * n - 1);
    let mut state = rask_distributed::state::ClusterState::new(Default::default());
    state.add_client(1);
    state.handle_client(
        1,
        rask_distributed::protocol::ToScheduler::UpdateGraph {
            wants: vec![total.key().clone()],
            tasks: wire,
            priority: 0,
            retries: 0,
            fire_and_forget: false,
        },
    );
    assert_eq!(state.n_tasks(), ntasks);
    let per_task = state.heap_bytes() as f64 / ntasks as f64;
    eprintln!("scheduler state: {per_task:.1} bytes per task over {ntasks} tasks");
    assert!(per_task <= 500.0, "{per_task:.1} bytes per task");
}
