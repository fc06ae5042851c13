//! Computing several outputs at once, persist, executors and the other `Config` settings,
//! and `Plan`.

use std::sync::atomic::{AtomicUsize, Ordering};

use rask::graph::optimize::OptimizeOptions;
use rask::prelude::*;
use rask::{CancelToken, Plan, value};

use crate::{config, executors};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed(pure)]
fn load(n: i64) -> Vec<i64> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    (1..=n).collect()
}

#[rask::delayed(pure)]
fn total(v: &[i64]) -> i64 {
    v.iter().sum()
}

#[rask::delayed(pure)]
fn largest(v: &[i64]) -> i64 {
    v.iter().copied().max().unwrap_or(i64::MIN)
}

#[rask::delayed(pure)]
fn count(v: &[i64]) -> usize {
    v.len()
}

#[test]
fn tuple_outputs_share_intermediates() {
    for ex in executors() {
        LOADS.store(0, Ordering::SeqCst);
        // `load(100)` is called three times but is one pure task.
        let (s, m, c) = (total(load(100)), largest(load(100)), count(load(100)))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((s, m, c), (5050, 100, 100));
        assert_eq!(LOADS.load(Ordering::SeqCst), 1, "{ex:?}");

        // The free function, mixing output types, with the shared input among the outputs.
        LOADS.store(0, Ordering::SeqCst);
        let data = load(10);
        let (d, s, half) =
            rask::compute_with(&(data.clone(), total(&data), total(&data) / 2), &config(ex))
                .unwrap();
        assert_eq!(d, (1..=10).collect::<Vec<i64>>());
        assert_eq!((s, half), (55, 27));
        assert_eq!(LOADS.load(Ordering::SeqCst), 1, "{ex:?}");
    }
    // `rask::compute` with the default config.
    let (a, b) = rask::compute(&(value(1i64) + 1, value(2i64) * 3)).unwrap();
    assert_eq!((a, b), (2, 6));
}

#[rask::delayed(pure)]
fn shared_base(n: i64) -> i64 {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    n * 1000
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn vec_outputs_in_order_sharing_one_input() {
    for ex in executors() {
        SHARED_RUNS.store(0, Ordering::SeqCst);
        let base = shared_base(3);
        let outs: Vec<Delayed<i64>> = (0..64i64).map(|i| &base + i).collect();
        let got = outs.compute_with(&config(ex)).unwrap();
        let oracle: Vec<i64> = (0..64).map(|i| 3000 + i).collect();
        assert_eq!(got, oracle);
        assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1, "{ex:?}");

        // Repeated and reordered outputs, and the shared input itself among them.
        SHARED_RUNS.store(0, Ordering::SeqCst);
        let a = &base * 2;
        let b = &base - 1;
        let outs = vec![b.clone(), a.clone(), b, base.clone(), a];
        assert_eq!(
            rask::compute_with(&outs, &config(ex)).unwrap(),
            vec![2999, 6000, 2999, 3000, 6000]
        );
        assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1, "{ex:?}");
        // A slice is a collection too.
        let got = rask::compute_with(&outs[1..3], &config(ex)).unwrap();
        assert_eq!(got, vec![6000, 2999]);
    }
    // A tuple of Vecs and scalars.
    let (v, s) = (vec![value(1i64), value(2)], value(3i64))
        .compute_with(&config(Executor::Sync))
        .unwrap();
    assert_eq!((v, s), (vec![1, 2], 3));
    // The empty Vec computes to an empty Vec.
    let empty: Vec<Delayed<i64>> = Vec::new();
    assert_eq!(
        empty.compute_with(&config(Executor::Sync)).unwrap(),
        Vec::<i64>::new()
    );
}

static PERSIST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed(pure)]
fn persist_load(n: i64) -> Vec<i64> {
    PERSIST_LOADS.fetch_add(1, Ordering::SeqCst);
    (0..n).map(|i| i * 3).collect()
}

#[test]
fn persist_keeps_the_value_and_the_key() {
    for ex in executors() {
        PERSIST_LOADS.store(0, Ordering::SeqCst);
        let x = persist_load(20);
        let processed = x.map(|v| v.iter().map(|i| i + 1).collect::<Vec<i64>>());
        let p = rask::persist_with(&processed, &config(ex)).unwrap();
        assert_eq!(PERSIST_LOADS.load(Ordering::SeqCst), 1);
        assert_eq!(p.key(), processed.key());
        // Nothing of x's graph is left under p.
        assert_eq!(p.graph().unwrap().len(), 1);

        let oracle: Vec<i64> = (0..20).map(|i| i * 3 + 1).collect();
        let (s, m, again) = (total(&p), largest(&p), p.clone())
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!(s, oracle.iter().sum::<i64>());
        assert_eq!(m, *oracle.last().unwrap());
        assert_eq!(again, oracle);
        assert_eq!(PERSIST_LOADS.load(Ordering::SeqCst), 1, "{ex:?}: no reload");
        // Computing p many times never reloads.
        for _ in 0..3 {
            assert_eq!(count(&p).compute_with(&config(ex)).unwrap(), 20);
        }
        assert_eq!(PERSIST_LOADS.load(Ordering::SeqCst), 1, "{ex:?}");
        // The original still recomputes from scratch.
        assert_eq!(processed.compute_with(&config(ex)).unwrap(), oracle);
        assert_eq!(PERSIST_LOADS.load(Ordering::SeqCst), 2, "{ex:?}");
    }
    // `.persist()` from the prelude (default config).
    PERSIST_LOADS.store(0, Ordering::SeqCst);
    let x = persist_load(5);
    let p = x.persist().unwrap();
    assert_eq!(p.key(), x.key());
    assert_eq!(total(&p).compute().unwrap(), 30);
    assert_eq!(PERSIST_LOADS.load(Ordering::SeqCst), 1);
}

/// A binary tree of adds over `n` leaves.
fn tree(n: i64) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..n).map(|i| value(i) * 3 - 1).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [a, b] => a + b,
                [a] => a.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    level.pop().unwrap()
}

#[test]
fn executors_agree_on_a_10000_leaf_tree() {
    let n = 10_000i64;
    let oracle: i64 = (0..n).map(|i| i * 3 - 1).sum();
    let t = tree(n);
    for ex in [
        Executor::Sync,
        Executor::Threads(1),
        Executor::Threads(3),
        Executor::Threaded,
    ] {
        assert_eq!(t.compute_with(&config(ex)).unwrap(), oracle, "{ex:?}");
    }
    // Without optimizations too.
    let no_opt = OptimizeOptions {
        cull: false,
        inline: false,
        fuse: false,
    };
    assert_eq!(
        t.compute_with(&config(Executor::Threaded).with_optimize(no_opt))
            .unwrap(),
        oracle
    );
}

#[test]
fn a_tiny_memory_limit_still_computes() {
    let n = 500i64;
    let oracle: i64 = (0..n).map(|i| i * 3 - 1).sum();
    let t = tree(n);
    let vecs: Vec<Delayed<Vec<i64>>> = (0..50i64)
        .map(|i| value(i).map(move |&x| vec![x; 1000]))
        .collect();
    let lens = rask::sum(vecs.iter().map(|v| v.map(|v| v.iter().sum::<i64>())));
    let lens_oracle: i64 = (0..50).map(|i| i * 1000).sum();
    for ex in executors() {
        for limit in [Some(1), Some(0), Some(10_000), None] {
            let cfg = config(ex).with_memory_limit(limit);
            assert_eq!(t.compute_with(&cfg).unwrap(), oracle, "{ex:?} {limit:?}");
            assert_eq!(
                lens.compute_with(&cfg).unwrap(),
                lens_oracle,
                "{ex:?} {limit:?}"
            );
        }
    }
}

#[test]
fn a_cancelled_token_cancels() {
    let t = tree(100);
    for ex in executors() {
        let token = CancelToken::new();
        token.cancel();
        let err = t
            .compute_with(&config(ex).with_cancel(token.clone()))
            .unwrap_err();
        assert!(err.is_cancelled(), "{ex:?}: {err:?}");
        assert!(matches!(err, RaskError::Cancelled(_)), "{err:?}");
        // A fresh token runs.
        let ok = t.compute_with(&config(ex).with_cancel(CancelToken::new()));
        assert_eq!(ok.unwrap(), (0..100).map(|i| i * 3 - 1).sum::<i64>());
    }
}

#[test]
fn cancelling_from_inside_a_task_stops_the_rest() {
    // The first link of a chain cancels the token; the links after it must not all run.
    let no_fuse = OptimizeOptions {
        cull: true,
        inline: false,
        fuse: false,
    };
    for ex in executors() {
        let token = CancelToken::new();
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let mut x = value(0i64);
        for i in 0..50 {
            let (t, r) = (token.clone(), ran.clone());
            x = x.map(move |v| {
                r.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    t.cancel();
                }
                v + 1
            });
        }
        let cfg = config(ex).with_optimize(no_fuse).with_cancel(token);
        let err = x.compute_with(&cfg).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        let ran = ran.load(Ordering::SeqCst);
        assert!((1..50).contains(&ran), "{ex:?}: {ran} links ran");
    }
}

#[test]
fn plan_reports_tasks_before_and_after_optimization() {
    let x = value(1i64) + value(2i64);
    let plan = Plan::new(&x, OptimizeOptions::default()).unwrap();
    assert_eq!(plan.tasks_before, 3);
    assert_eq!(plan.graph.len(), 1, "both literals inlined into the add");
    assert_eq!(plan.outputs.len(), 1);
    assert_eq!(plan.priorities.len(), plan.graph.len());
    let (values, stats) = plan.run(&config(Executor::Sync)).unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(*values[0].get::<i64>(&"out").unwrap(), 3);
    assert_eq!(stats.tasks_run, 1);

    let off = OptimizeOptions {
        cull: false,
        inline: false,
        fuse: false,
    };
    let plan = Plan::new(&x, off).unwrap();
    assert_eq!((plan.tasks_before, plan.graph.len()), (3, 3));
    let (values, stats) = plan.run(&config(Executor::Threaded)).unwrap();
    assert_eq!(*values[0].get::<i64>(&"out").unwrap(), 3);
    assert_eq!(stats.tasks_run, 3);

    // A chain of maps fuses into one task.
    let chain = value(2i64).map(|v| v * 10).map(|v| v + 1).map(|v| v * 2);
    let plan = Plan::new(&chain, OptimizeOptions::default()).unwrap();
    assert_eq!((plan.tasks_before, plan.graph.len()), (4, 1));
    let (values, _) = plan.run(&config(Executor::Sync)).unwrap();
    assert_eq!(*values[0].get::<i64>(&"out").unwrap(), 42);

    // Several outputs: tasks_before counts the union.
    let a = value(1i64) * 2;
    let both = (a.clone() + 1, a - 1);
    let plan = Plan::new(&both, OptimizeOptions::default()).unwrap();
    assert_eq!(
        plan.tasks_before, 5,
        "value(1) (shared by key), value(2), mul, add, sub"
    );
    assert_eq!(plan.outputs.len(), 2);
}

#[test]
fn spawned_plan_runs_in_the_background() {
    let t = tree(500);
    let oracle: i64 = (0..500).map(|i| i * 3 - 1).sum();
    let plan = Plan::new(&t, OptimizeOptions::default()).unwrap();
    let handle = plan.spawn(&config(Executor::Threads(2)));
    let out = handle.wait().unwrap();
    assert_eq!(*out.values[0].get::<i64>(&"out").unwrap(), oracle);
}

#[test]
fn graph_is_the_unoptimized_graph() {
    let a = value(1i64);
    let b = value(2i64);
    let c = &a + &b;
    let d = &c * &c;
    let g = d.graph().unwrap();
    assert_eq!(g.len(), 4);
    let id_c = g.id_of(c.key()).unwrap();
    let id_d = g.id_of(d.key()).unwrap();
    assert_eq!(g.task(id_d).deps.as_slice(), &[id_c]);
    let mut deps_of_c: Vec<_> = g.task(id_c).deps.to_vec();
    deps_of_c.sort();
    let mut ab = vec![g.id_of(a.key()).unwrap(), g.id_of(b.key()).unwrap()];
    ab.sort();
    assert_eq!(deps_of_c, ab);
}
