//! End-to-end tests of the delayed tutorial's workloads (`rask_examples::delayed_tutorial`),
//! each against a hand-computed oracle, under the sync and threaded executors. No test
//! asserts on wall time: concurrency is shown by two tasks that can only finish if they run
//! at the same time.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use rask::prelude::*;
use rask::{Progress, RaskError};
use rask_examples::delayed_tutorial::{
    add, control_flow, double, inc, inc_add, is_even, monte_carlo_pi, monte_carlo_pi_eager,
    parallel_loop, pi_batch, tree_reduction, tree_sum,
};
use rask_examples::rng::SplitMix64;

const PAUSES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(1)];

fn configs() -> [Config; 2] {
    [Executor::Sync, Executor::Threaded].map(|ex| {
        Config::builtin()
            .with_executor(ex)
            .with_progress(Progress::Never)
    })
}

#[track_caller]
fn assert_invalid_argument(err: &RaskError, name: &str) {
    match err {
        RaskError::InvalidArgument { name: n, .. } => assert_eq!(n, name, "{err}"),
        other => panic!("expected InvalidArgument `{name}`, got {other:?}"),
    }
}

#[test]
fn step1_inc_add() {
    for cfg in configs() {
        for pause in PAUSES {
            let step = inc_add(pause, &cfg).unwrap();
            assert_eq!(step.value, (1 + 1) + (2 + 1));
        }
    }
    // The building blocks on their own.
    let cfg = &configs()[0];
    let p = Duration::ZERO;
    assert_eq!(inc(41, p).compute_with(cfg).unwrap(), 42);
    assert_eq!(double(21, p).compute_with(cfg).unwrap(), 42);
    assert_eq!(
        add(inc(1, p), double(3, p), p).compute_with(cfg).unwrap(),
        8
    );
    // The tutorial's functions are impure: equal calls are distinct tasks.
    assert_ne!(inc(1, p).key(), inc(1, p).key());
    assert_eq!(inc(1, p).key().prefix(), "inc");
}

/// A pair of tasks that each wait (up to `patience`) for the other to have started: both
/// finish only if they run at the same time.
fn rendezvous_pair(patience: Duration) -> (Delayed<i64>, Delayed<i64>) {
    let (to_right, from_left) = mpsc::channel::<()>();
    let (to_left, from_right) = mpsc::channel::<()>();
    let from_left = Mutex::new(from_left);
    let from_right = Mutex::new(from_right);
    let left = rask::try_delayed(move |x: i64| {
        to_right.send(()).map_err(|_| "right is gone".to_string())?;
        from_right
            .lock()
            .unwrap()
            .recv_timeout(patience)
            .map_err(|_| "partner never ran alongside".to_string())?;
        Ok::<i64, String>(x + 1)
    })
    .name("slow_inc_left");
    let right = rask::try_delayed(move |x: i64| {
        to_left.send(()).map_err(|_| "left is gone".to_string())?;
        from_left
            .lock()
            .unwrap()
            .recv_timeout(patience)
            .map_err(|_| "partner never ran alongside".to_string())?;
        Ok::<i64, String>(x + 1)
    })
    .name("slow_inc_right");
    (left.call((1,)), right.call((2,)))
}

#[test]
fn step1_two_threads_run_both_incs_at_once() {
    // `add(inc(1), inc(2))` where the two incs rendezvous: with two threads they overlap, so
    // three sequential steps take two (the tutorial's "3 s becomes 2 s"), shown structurally.
    let (x, y) = rendezvous_pair(Duration::from_secs(10));
    let z = add(x, y, Duration::ZERO);
    let cfg = Config::builtin()
        .with_executor(Executor::Threads(2))
        .with_progress(Progress::Never);
    assert_eq!(z.compute_with(&cfg).unwrap(), 5);

    // The control: one thread cannot overlap them, so the first one gives up.
    let (x, y) = rendezvous_pair(Duration::from_millis(100));
    let z = add(&x, &y, Duration::ZERO);
    let err = z.compute_with(&configs()[0]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("partner never ran alongside"), "{msg}");
    assert!(
        msg.contains(&x.key().to_string()) || msg.contains(&y.key().to_string()),
        "{msg}"
    );
}

#[test]
fn step2_parallel_loop() {
    let data: Vec<i64> = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let oracle: i64 = data.iter().map(|x| x + 1).sum();
    assert_eq!(oracle, 44);
    let wide: Vec<i64> = (-50..150).collect();
    let wide_oracle: i64 = wide.iter().map(|x| x + 1).sum();
    for cfg in configs() {
        for pause in PAUSES {
            assert_eq!(parallel_loop(&data, pause, &cfg).unwrap().value, oracle);
        }
        assert_eq!(
            parallel_loop(&wide, Duration::ZERO, &cfg).unwrap().value,
            wide_oracle
        );
        assert_eq!(parallel_loop(&[], Duration::ZERO, &cfg).unwrap().value, 0);
    }
}

#[test]
fn step3_control_flow() {
    let data: Vec<i64> = (1..=10).collect();
    let mut oracle = 0;
    for &x in &data {
        oracle += if x % 2 == 0 { 2 * x } else { x + 1 };
    }
    assert_eq!(oracle, 90);
    let mixed: Vec<i64> = vec![-3, -2, 0, 7, 8, 1001];
    let mixed_oracle: i64 = [-2, -4, 0, 8, 16, 1002].iter().sum();
    for cfg in configs() {
        for pause in PAUSES {
            assert_eq!(control_flow(&data, pause, &cfg).unwrap().value, oracle);
        }
        assert_eq!(
            control_flow(&mixed, Duration::ZERO, &cfg).unwrap().value,
            mixed_oracle
        );
    }
    assert!(is_even(0) && is_even(-4) && !is_even(7) && !is_even(-3));
}

#[test]
fn step4_tree_reduction() {
    for n in [1i64, 2, 3, 8, 16, 37] {
        let data: Vec<i64> = (1..=n).collect();
        let oracle: i64 = data.iter().map(|x| x + 1).sum();
        for cfg in configs() {
            for pause in PAUSES {
                let (step, picture) = tree_reduction(&data, pause, &cfg).unwrap();
                assert_eq!(step.value, oracle, "n = {n}");
                // n incs and n - 1 pairwise adds.
                let g = picture.graph();
                assert_eq!(g.len(), 2 * n as usize - 1, "n = {n}");
                let adds = g.tasks().iter().filter(|t| t.op.label() == "add").count();
                assert_eq!(adds, n as usize - 1);
                let dot = picture.to_dot();
                assert_eq!(dot.matches(" -> ").count(), 2 * (n as usize - 1));
            }
        }
    }
}

#[test]
fn tree_sum_values_and_depth() {
    let data: Vec<i64> = (0..1000).map(|i| i * 7 - 300).collect();
    let oracle: i64 = data.iter().map(|x| x + 1).sum();
    let total = tree_sum(&data, Duration::ZERO).unwrap();
    for cfg in configs() {
        assert_eq!(total.compute_with(&cfg).unwrap(), oracle);
    }
    // Pairwise: depth ceil(log2(1000)) = 10 adds above each inc.
    let g = total.graph().unwrap();
    let mut depth = vec![0usize; g.len()];
    for &id in g.topological_order().unwrap() {
        let t = g.task(id);
        depth[id as usize] = t
            .deps
            .iter()
            .map(|&d| depth[d as usize] + 1)
            .max()
            .unwrap_or(0);
    }
    assert_eq!(depth[g.id_of(total.key()).unwrap() as usize], 10);
    // One element: the inc itself.
    let one = tree_sum(&[41], Duration::ZERO).unwrap();
    assert_eq!(one.key().prefix(), "inc");
    assert_eq!(one.compute_with(&configs()[0]).unwrap(), 42);
}

#[test]
fn bad_inputs_are_invalid_arguments() {
    let err = tree_sum(&[], Duration::ZERO).unwrap_err();
    assert_invalid_argument(&err, "data");
    let cfg = &configs()[0];
    let Err(err) = tree_reduction(&[], Duration::ZERO, cfg) else {
        panic!("tree_reduction of no data must fail");
    };
    assert_invalid_argument(&err, "data");
    let err = monte_carlo_pi(0, 100, 1, cfg).unwrap_err();
    assert_invalid_argument(&err, "batches");
    // per_batch = 0 is refused too; the message names it.
    let err = monte_carlo_pi(4, 0, 1, cfg).unwrap_err();
    assert!(matches!(err, RaskError::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("per_batch"), "{err}");
}

/// Counts hits of one batch directly, as the oracle of `pi_batch`.
fn hits(seed: u64, n: u64) -> u64 {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .filter(|_| {
            let (x, y) = (rng.next_f64(), rng.next_f64());
            x * x + y * y <= 1.0
        })
        .count() as u64
}

#[test]
fn step5_pi_batch() {
    for cfg in configs() {
        for seed in [0u64, 1, 42, u64::MAX] {
            assert_eq!(
                pi_batch(seed, 10_000).compute_with(&cfg).unwrap(),
                hits(seed, 10_000),
                "seed {seed}"
            );
        }
        assert_eq!(pi_batch(3, 0).compute_with(&cfg).unwrap(), 0);
    }
    // Impure: equal calls are separate tasks, and both run (same seed: same count).
    let (a, b) = (pi_batch(7, 1000), pi_batch(7, 1000));
    assert_ne!(a.key(), b.key());
    assert_eq!(a.key().prefix(), "pi_batch");
    let (ha, hb) = (a, b).compute_with(&configs()[1]).unwrap();
    assert_eq!((ha, hb), (hits(7, 1000), hits(7, 1000)));
}

#[test]
fn step5_monte_carlo_pi() {
    let (batches, per_batch, seed) = (64u64, 100_000u64, 42u64);
    let eager = monte_carlo_pi_eager(batches, per_batch, seed);
    let oracle_hits: u64 = (0..batches).map(|b| hits(seed + b, per_batch)).sum();
    assert_eq!(
        eager,
        4.0 * oracle_hits as f64 / (batches * per_batch) as f64
    );
    assert!((eager - std::f64::consts::PI).abs() < 0.01, "{eager}");
    for cfg in configs() {
        let lazy = monte_carlo_pi(batches, per_batch, seed, &cfg).unwrap();
        assert_eq!(lazy, eager, "lazy and eager estimates are identical");
    }
    // Small runs, other seeds, wrapping seeds.
    for (b, n, s) in [(1u64, 1u64, 0u64), (3, 17, 9), (5, 1000, u64::MAX - 2)] {
        let eager = monte_carlo_pi_eager(b, n, s);
        for cfg in configs() {
            assert_eq!(monte_carlo_pi(b, n, s, &cfg).unwrap(), eager, "{b} {n} {s}");
        }
    }
}

#[test]
fn slow_tasks_under_a_thread_pool_give_the_same_values() {
    // With a real (short) pause and two threads, everything still agrees with the oracles.
    let cfg = Config::builtin()
        .with_executor(Executor::Threads(2))
        .with_progress(Progress::Never);
    let pause = Duration::from_millis(1);
    assert_eq!(inc_add(pause, &cfg).unwrap().value, 5);
    let data: Vec<i64> = (1..=12).collect();
    let loop_oracle: i64 = data.iter().map(|x| x + 1).sum();
    assert_eq!(
        parallel_loop(&data, pause, &cfg).unwrap().value,
        loop_oracle
    );
    let cf_oracle: i64 = data
        .iter()
        .map(|&x| if x % 2 == 0 { 2 * x } else { x + 1 })
        .sum();
    assert_eq!(control_flow(&data, pause, &cfg).unwrap().value, cf_oracle);
    let (step, _) = tree_reduction(&data, pause, &cfg).unwrap();
    assert_eq!(step.value, loop_oracle);
}
