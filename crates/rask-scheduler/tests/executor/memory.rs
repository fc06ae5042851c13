//! The memory budget: results stay right, a tight budget never deadlocks, and it never
//! raises the peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use rask_graph::{Graph, Value, breadth_first};
use rask_scheduler::{Executor, RunOptions};

use crate::common::*;

const ROOTS: usize = 96;
const LEN: usize = 1000;

/// `ROOTS` loads of `LEN`-byte values, each shrunk to an i64 (its length plus its index),
/// then summed pairwise.
fn loads_then_reduce(live: &Arc<AtomicIsize>) -> (Arc<Graph>, String, i64) {
    let mut s = Specs::default();
    let mut level = Vec::new();
    for i in 0..ROOTS {
        let live = live.clone();
        s.add(
            &format!("load-{i}"),
            op("test.load", move |_| {
                Ok(Value::new(Tracked::new(LEN, &live)))
            }),
            &[],
        )
        .add(
            &format!("shrink-{i}"),
            op("test.shrink", move |inputs| {
                let t = inputs[0].get::<Tracked>(&"load")?;
                Ok(Value::new(t.bytes.len() as i64 + i as i64))
            }),
            &[&format!("load-{i}")],
        );
        level.push(format!("shrink-{i}"));
    }
    let mut n = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            let k = format!("sum-{n}");
            n += 1;
            let deps: Vec<&str> = pair.iter().map(String::as_str).collect();
            s.add(&k, sum_op(0, &Arc::default()), &deps);
            next.push(k);
        }
        level = next;
    }
    let expected = (0..ROOTS as i64).map(|i| LEN as i64 + i).sum();
    (s.build(), level.pop().unwrap(), expected)
}

#[test]
fn a_memory_budget_keeps_results_and_never_deadlocks() {
    let b = Tracked::nbytes_of(LEN);
    for ex in EXECUTORS {
        let mut peaks = Vec::new();
        for limit in [None, Some(1), Some(b), Some(3 * b), Some(20 * b)] {
            for _ in 0..3 {
                let live = Arc::new(AtomicIsize::new(0));
                let (g, root, expected) = loads_then_reduce(&live);
                let opts = RunOptions {
                    memory_limit: limit,
                    ..Default::default()
                };
                let out = run_guarded(ex, &g, &ids(&g, &[&root]), opts)
                    .unwrap_or_else(|e| panic!("{ex:?}, limit {limit:?}: {e}"));
                assert_eq!(ints(&out), vec![expected], "{ex:?}, limit {limit:?}");
                assert_eq!(live.load(Ordering::SeqCst), 0, "{ex:?}: loads leaked");
                assert!(out.stats.peak_memory <= ROOTS as u64 * b + 1000);
                peaks.push((limit, out.stats.peak_memory));
            }
        }
        eprintln!("{ex:?}: peaks {peaks:?}");
        if ex == Executor::Sync {
            // One thread is deterministic: a budget can only lower the peak.
            let unlimited = peaks[0].1;
            for &(limit, peak) in &peaks {
                assert!(
                    peak <= unlimited,
                    "limit {limit:?}: peak {peak} > unlimited {unlimited}"
                );
            }
        }
    }
}

/// With a breadth-first priority every load comes before every shrink, so without a budget
/// the sync executor holds all loads at once; a budget makes it shrink them first.
#[test]
fn a_memory_budget_lowers_the_peak_of_a_memory_hungry_order() {
    let b = Tracked::nbytes_of(LEN);
    let mut peaks = Vec::new();
    for limit in [None, Some(1), Some(10 * b)] {
        let live = Arc::new(AtomicIsize::new(0));
        let (g, root, expected) = loads_then_reduce(&live);
        let opts = RunOptions {
            memory_limit: limit,
            ..Default::default()
        };
        let priority = breadth_first(&g);
        let out =
            run_with_priority(Executor::Sync, &g, &ids(&g, &[&root]), priority, opts).unwrap();
        assert_eq!(ints(&out), vec![expected], "limit {limit:?}");
        assert_eq!(live.load(Ordering::SeqCst), 0);
        peaks.push(out.stats.peak_memory);
    }
    // Unbounded, every load is alive at once.
    assert!(peaks[0] >= ROOTS as u64 * b, "{peaks:?}");
    for &p in &peaks[1..] {
        // Budgeted: at most the first batch of loads (16) plus one load at a time.
        assert!(p < peaks[0] / 2, "{peaks:?}");
    }
    // And with threads the budget still gives the right answer with this order.
    for ex in [Executor::Threads(4), Executor::Threaded] {
        for limit in [Some(1), Some(10 * b)] {
            let live = Arc::new(AtomicIsize::new(0));
            let (g, root, expected) = loads_then_reduce(&live);
            let opts = RunOptions {
                memory_limit: limit,
                ..Default::default()
            };
            let priority = breadth_first(&g);
            let out = run_with_priority(ex, &g, &ids(&g, &[&root]), priority, opts).unwrap();
            assert_eq!(ints(&out), vec![expected], "{ex:?}, limit {limit:?}");
        }
    }
}
