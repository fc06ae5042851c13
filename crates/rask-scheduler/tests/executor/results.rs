//! Results against hand computations: tree reductions, diamonds, several outputs, tasks the
//! outputs do not need.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask_graph::{Graph, Value};
use rask_scheduler::RunOptions;

use crate::common::*;

/// Sums the leaves `1..=n` pairwise, level by level. Returns the graph, the root's name and
/// the number of sum tasks.
fn tree_sum(n: usize, count: &Arc<AtomicUsize>) -> (Arc<Graph>, String, usize) {
    let mut s = Specs::default();
    let mut level: Vec<String> = (1..=n).map(|i| format!("leaf-{i}")).collect();
    for (i, k) in level.iter().enumerate() {
        s.add(k, lit(i as i64 + 1), &[]);
    }
    let mut sums = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            let k = format!("sum-{sums}");
            sums += 1;
            let deps: Vec<&str> = pair.iter().map(String::as_str).collect();
            s.add(&k, sum_op(0, count), &deps);
            next.push(k);
        }
        level = next;
    }
    (s.build(), level.pop().unwrap(), sums)
}

#[test]
fn tree_reductions_sum_to_the_closed_form() {
    for n in [1usize, 2, 3, 1000, 10_000] {
        for ex in EXECUTORS {
            let count = Arc::new(AtomicUsize::new(0));
            let (g, root, sums) = tree_sum(n, &count);
            let outs = ids(&g, &[&root]);
            let out = run_guarded(ex, &g, &outs, RunOptions::default()).unwrap();
            let expected = (n * (n + 1) / 2) as i64;
            assert_eq!(ints(&out), vec![expected], "n = {n}, {ex:?}");
            assert_eq!(count.load(Ordering::SeqCst), sums, "each sum ran once");
            assert_eq!(out.stats.tasks_run, g.len(), "n = {n}, {ex:?}");
        }
    }
}

fn diamond(count: &Arc<AtomicUsize>) -> Arc<Graph> {
    let c1 = count.clone();
    let c2 = count.clone();
    let c3 = count.clone();
    let mut s = Specs::default();
    s.add("a", lit(3), &[])
        .add(
            "b",
            op("test.double", move |i| {
                c1.fetch_add(1, Ordering::SeqCst);
                Ok(Value::new(2 * int(&i[0])?))
            }),
            &["a"],
        )
        .add(
            "c",
            op("test.add10", move |i| {
                c2.fetch_add(1, Ordering::SeqCst);
                Ok(Value::new(int(&i[0])? + 10))
            }),
            &["a"],
        )
        .add(
            "d",
            op("test.mul", move |i| {
                c3.fetch_add(1, Ordering::SeqCst);
                Ok(Value::new(int(&i[0])? * int(&i[1])?))
            }),
            &["b", "c"],
        );
    s.build()
}

#[test]
fn diamond_computes_each_task_once() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = diamond(&count);
        let out = run_guarded(ex, &g, &ids(&g, &["d"]), RunOptions::default()).unwrap();
        // b = 2 * 3 = 6, c = 3 + 10 = 13, d = 6 * 13.
        assert_eq!(ints(&out), vec![78], "{ex:?}");
        assert_eq!(count.load(Ordering::SeqCst), 3, "{ex:?}");
    }
}

#[test]
fn a_ladder_of_diamonds_matches_a_loop() {
    // x0 = 1; each rung: l = 3x + 1, r = x - 7, x' = l * r (wrapping), 200 rungs.
    let mut s = Specs::default();
    s.add("x0", lit(1), &[]);
    let rungs = 200;
    for k in 0..rungs {
        let x = format!("x{k}");
        s.add(
            &format!("l{k}"),
            op("test.l", |i| {
                Ok(Value::new(int(&i[0])?.wrapping_mul(3).wrapping_add(1)))
            }),
            &[&x],
        )
        .add(
            &format!("r{k}"),
            op("test.r", |i| Ok(Value::new(int(&i[0])?.wrapping_sub(7)))),
            &[&x],
        )
        .add(
            &format!("x{}", k + 1),
            op("test.m", |i| {
                Ok(Value::new(int(&i[0])?.wrapping_mul(int(&i[1])?)))
            }),
            &[&format!("l{k}"), &format!("r{k}")],
        );
    }
    let g = s.build();
    let mut x = 1i64;
    for _ in 0..rungs {
        x = x
            .wrapping_mul(3)
            .wrapping_add(1)
            .wrapping_mul(x.wrapping_sub(7));
    }
    let last = format!("x{rungs}");
    for ex in EXECUTORS {
        let out = run_guarded(ex, &g, &ids(&g, &[&last, "x1"]), RunOptions::default()).unwrap();
        assert_eq!(ints(&out), vec![x, (3 + 1) * (1 - 7)], "{ex:?}");
    }
}

#[test]
fn several_outputs_in_the_order_requested() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = diamond(&count);
        // `d` twice; `b` and `a` are outputs that other outputs also read.
        let outs = ids(&g, &["d", "b", "d", "a", "c"]);
        let out = run_guarded(ex, &g, &outs, RunOptions::default()).unwrap();
        assert_eq!(ints(&out), vec![78, 6, 78, 3, 13], "{ex:?}");
        assert_eq!(count.load(Ordering::SeqCst), 3, "{ex:?}: nothing ran twice");
        assert_eq!(out.stats.tasks_run, 4);
    }
}

#[test]
fn an_intermediate_alone_is_an_output() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = diamond(&count);
        let out = run_guarded(ex, &g, &ids(&g, &["b", "b"]), RunOptions::default()).unwrap();
        assert_eq!(ints(&out), vec![6, 6], "{ex:?}");
        assert_eq!(count.load(Ordering::SeqCst), 1, "{ex:?}: only b runs");
    }
}

#[test]
fn no_outputs_runs_nothing() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = diamond(&count);
        let out = run_guarded(ex, &g, &[], RunOptions::default()).unwrap();
        assert!(out.values.is_empty());
        assert_eq!(count.load(Ordering::SeqCst), 0, "{ex:?}");
        assert_eq!(out.stats.tasks_run, 0);
    }
}

#[test]
fn tasks_the_outputs_do_not_need_never_run() {
    for ex in EXECUTORS {
        for _ in 0..5 {
            let needed = Arc::new(AtomicUsize::new(0));
            let unneeded = Arc::new(AtomicUsize::new(0));
            let u = unneeded.clone();
            let mut s = Specs::default();
            // Unneeded tasks come first, so they get the first ids and early priorities.
            s.add("u-root", sum_op(100, &unneeded), &[])
                .add("u-reads-a", sum_op(1, &unneeded), &["a"])
                .add("u-join", sum_op(1, &unneeded), &["u-root", "u-reads-a"])
                .add("u-reads-out", sum_op(1, &unneeded), &["out"])
                .add(
                    "u-fails",
                    op("test.unneeded_fail", move |_| {
                        u.fetch_add(1, Ordering::SeqCst);
                        Err(ext("an unneeded task failed"))
                    }),
                    &["a"],
                )
                .add("a", lit(1), &[])
                .add("b", sum_op(1, &needed), &["a"])
                .add("out", sum_op(1, &needed), &["b"]);
            let g = s.build();
            let out = run_guarded(ex, &g, &ids(&g, &["out"]), RunOptions::default()).unwrap();
            assert_eq!(ints(&out), vec![3], "{ex:?}");
            assert_eq!(needed.load(Ordering::SeqCst), 2, "{ex:?}");
            assert_eq!(
                unneeded.load(Ordering::SeqCst),
                0,
                "{ex:?}: unneeded tasks ran"
            );
            assert_eq!(out.stats.tasks_run, 3, "{ex:?}");
        }
    }
}
