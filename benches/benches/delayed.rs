//! Per-task overhead of the sync and threaded executors, and the time to build, optimize and
//! order a large graph: N independent `inc` tasks plus a pairwise tree of `add` over them
//! (2N - 1 tasks), the same graph `peers/dask_delayed.py` builds for Dask.
//!
//! `cargo bench -p rask-benches --bench delayed [-- --json]`; sizes from `RASK_BENCH_N`
//! (default `100000,500000,1000000`; 500000 gives a graph of about 1M tasks), repeats from `RASK_BENCH_REPEATS` (default 5).

use rask::prelude::*;
use rask::{Plan, Progress};
use rask_benches::{emit, json_requested, median_time, peak_rss_bytes, s, sizes_from_env};

#[rask::delayed]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn build(n: usize) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..n as i64).map(inc).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(add(a, b)),
                None => next.push(a),
            }
        }
        level = next;
    }
    level.pop().expect("n >= 1")
}

fn main() -> anyhow::Result<()> {
    let json = json_requested();
    let sizes = sizes_from_env("RASK_BENCH_N", &[100_000, 500_000, 1_000_000]);
    let repeats: usize = std::env::var("RASK_BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let threads = Executor::Threaded.num_threads();

    for &n in &sizes {
        let tasks = 2 * n - 1;
        let expected: i64 = (0..n as i64).map(|i| i + 1).sum();
        let (build_t, total) = median_time(repeats, || build(n));
        emit(
            json,
            &[
                ("bench", s("delayed_build")),
                ("n", n.to_string()),
                ("tasks", tasks.to_string()),
                ("median_s", build_t.as_secs_f64().to_string()),
                (
                    "us_per_task",
                    (build_t.as_secs_f64() * 1e6 / tasks as f64).to_string(),
                ),
            ],
            &format!(
                "build {n:>8} inc + add tree: {:>8.1} ms",
                build_t.as_secs_f64() * 1e3
            ),
        );

        for (name, executor) in [("sync", Executor::Sync), ("threads", Executor::Threaded)] {
            let cfg = Config::builtin()
                .with_executor(executor)
                .with_progress(Progress::Never);
            let mut bytes_per_task = 0.0;
            let (t, got) = median_time(repeats, || {
                let plan = Plan::new(&total, cfg.optimize).expect("plan");
                let (values, stats) = plan.run(&cfg).expect("run");
                bytes_per_task = stats.scheduler_heap_bytes as f64 / tasks as f64;
                *values[0].get::<i64>(&"total").expect("i64")
            });
            anyhow::ensure!(got == expected, "wrong total {got}, expected {expected}");
            emit(
                json,
                &[
                    ("bench", s("delayed_inc_add")),
                    ("n", n.to_string()),
                    ("scheduler", s(name)),
                    (
                        "threads",
                        if name == "sync" {
                            "1".into()
                        } else {
                            threads.to_string()
                        },
                    ),
                    ("tasks", tasks.to_string()),
                    ("median_s", t.as_secs_f64().to_string()),
                    (
                        "us_per_task",
                        (t.as_secs_f64() * 1e6 / tasks as f64).to_string(),
                    ),
                    ("scheduler_bytes_per_task", format!("{bytes_per_task:.1}")),
                ],
                &format!(
                    "compute {n:>8} ({name:>7}): {:>8.1} ms = {:.3} us/task, scheduler {:.0} B/task",
                    t.as_secs_f64() * 1e3,
                    t.as_secs_f64() * 1e6 / tasks as f64,
                    bytes_per_task
                ),
            );
        }

        // Building the Delayeds plus flattening, optimizing and ordering: the time from user
        // code to the first task starting.
        // Freeing the previous repeat's graph happens outside the timed part.
        let (t, (_total, plan)) = median_time(repeats.min(3), || {
            let total = build(n);
            let plan = Plan::new(&total, Config::builtin().optimize).expect("plan");
            (total, plan)
        });
        let plan_tasks = plan.graph.len();
        anyhow::ensure!(
            plan_tasks == tasks,
            "plan has {plan_tasks} tasks, expected {tasks}"
        );
        emit(
            json,
            &[
                ("bench", s("graph_build_order")),
                ("n", n.to_string()),
                ("tasks", tasks.to_string()),
                ("median_s", t.as_secs_f64().to_string()),
                (
                    "us_per_task",
                    (t.as_secs_f64() * 1e6 / tasks as f64).to_string(),
                ),
            ],
            &format!(
                "build+optimize+order {n:>8}: {:>8.1} ms",
                t.as_secs_f64() * 1e3
            ),
        );
    }
    if let Some(rss) = peak_rss_bytes() {
        emit(
            json,
            &[
                ("bench", s("delayed_peak_rss")),
                ("rss_bytes", rss.to_string()),
            ],
            &format!("peak RSS {:.1} MB", rss as f64 / 1e6),
        );
    }
    Ok(())
}
