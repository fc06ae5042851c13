//! Out-of-core: computations over arrays larger than the memory budget, measured by the
//! scheduler's own accounting of the bytes it holds between tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ndarray::Axis;
use rask::array::{self, Axes};
use rask::graph::{Graph, TaskId};
use rask::prelude::*;
use rask::scheduler::Callback;
use rask::{Plan, Progress};

const MB: u64 = 1_000_000;

fn config(limit: u64, executor: Executor) -> Config {
    Config::builtin()
        .with_executor(executor)
        .with_progress(Progress::Never)
        .with_memory_limit(Some(limit))
}

#[test]
fn a_reduction_over_four_times_the_budget_stays_within_it() {
    // 4000 x 4000 f64 = 128 MB in 2 MB blocks, under a 32 MB budget.
    let x = array::random::uniform(0.0, 1.0, &[4000, 4000], (500, 500), 11).unwrap();
    let oracle = x
        .compute_with(&Config::builtin().with_progress(Progress::Never))
        .unwrap();
    let want = oracle.sum_axis(Axis(0));
    for executor in [Executor::Sync, Executor::Threads(2)] {
        let budget = 32 * MB;
        let plan = Plan::new(&x.sum(0).unwrap(), Default::default()).unwrap();
        let (values, stats) = plan.run(&config(budget, executor)).unwrap();
        assert!(
            stats.peak_memory <= budget,
            "{executor:?}: peak {} over the {budget} budget",
            stats.peak_memory
        );
        let got = values[0].get::<ndarray::ArrayD<f64>>(&"sum").unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-9 * w.abs(), "{g} vs {w}");
        }
    }
}

#[test]
fn centering_by_the_mean_spills_when_the_blocks_do_not_fit() {
    // x - x.mean(axis 0) must keep every block of x until the mean is known: 32 MB of
    // blocks under a 12 MB budget, so blocks go to disk and come back.
    let x = array::random::normal(0.0, 1.0, &[2000, 2000], (250, 2000), 5).unwrap();
    let centered = x.try_sub(&x.mean(0).unwrap().astype::<f64>()).unwrap();
    let total = centered.sum(Axes::All).unwrap();
    let data = x
        .compute_with(&Config::builtin().with_progress(Progress::Never))
        .unwrap();
    let means = data.mean_axis(Axis(0)).unwrap();
    let want: f64 = (&data - &means).sum();
    for executor in [Executor::Sync, Executor::Threads(2)] {
        let budget = 12 * MB;
        let plan = Plan::new(&total, Default::default()).unwrap();
        let (values, stats) = plan.run(&config(budget, executor)).unwrap();
        let got = values[0]
            .get::<ndarray::ArrayD<f64>>(&"total")
            .unwrap()
            .first()
            .copied()
            .unwrap();
        assert!((got - want).abs() < 1e-6, "{executor:?}: {got} vs {want}");
        assert!(
            stats.spilled_values > 0,
            "{executor:?}: nothing was spilled"
        );
        // One block (4 MB) may be read back over the budget per running task.
        let slack = 4 * MB * executor.num_threads() as u64 + MB;
        assert!(
            stats.peak_memory <= budget + slack,
            "{executor:?}: peak {}",
            stats.peak_memory
        );
    }
}

#[derive(Default)]
struct CountStarts(AtomicUsize);

impl Callback for CountStarts {
    fn on_task_start(&self, _graph: &Graph, _id: TaskId) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_task_finish(&self, _graph: &Graph, _id: TaskId, _nbytes: u64, _elapsed: Duration) {}
}

#[test]
fn a_budget_below_one_block_is_an_error_before_anything_runs() {
    // One block is 1000 x 1000 f64 = 8 MB; the budget is 1 MB.
    let x = array::ones::<f64>(&[2000, 1000], 1000).unwrap();
    let starts = Arc::new(CountStarts::default());
    let cfg = config(MB, Executor::Threaded).with_callback(starts.clone());
    let err = x.sum(Axes::All).unwrap().compute_with(&cfg).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, rask::RaskError::MemoryBudget(_)), "{text}");
    assert!(text.contains("8.0 MB") && text.contains("1.0 MB"), "{text}");
    // The block's task is fused with the first step of the sum; the message names its key
    // and both ops.
    assert!(
        text.contains("('sum-chunk-") && text.contains("full"),
        "{text}"
    );
    assert_eq!(starts.0.load(Ordering::SeqCst), 0, "no task may start");
}
