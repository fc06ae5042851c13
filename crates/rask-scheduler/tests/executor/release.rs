//! Intermediates are dropped as soon as their last reader finished, and nothing is left
//! alive after a run: values count their live instances and report their true size.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use rask_graph::{Graph, Op, Value, max_live, order};
use rask_scheduler::{Executor, RunOptions};

use crate::common::*;

const LEN: usize = 1000;

/// A task making a fresh `Tracked` of `LEN` bytes after checking its inputs are `Tracked`;
/// records in `max_seen` the most live values seen as it starts.
fn make(live: &Arc<AtomicIsize>, max_seen: &Arc<AtomicIsize>) -> Arc<dyn Op> {
    let live = live.clone();
    let max_seen = max_seen.clone();
    op("test.make", move |inputs| {
        max_seen.fetch_max(live.load(Ordering::SeqCst), Ordering::SeqCst);
        for v in inputs {
            assert_eq!(v.get::<Tracked>(&"input")?.bytes.len(), LEN);
        }
        Ok(Value::new(Tracked::new(LEN, &live)))
    })
}

fn chain(n: usize, live: &Arc<AtomicIsize>, max_seen: &Arc<AtomicIsize>) -> Arc<Graph> {
    let mut s = Specs::default();
    s.add("c0", make(live, max_seen), &[]);
    for i in 1..n {
        s.add(
            &format!("c{i}"),
            make(live, max_seen),
            &[&format!("c{}", i - 1)],
        );
    }
    s.build()
}

#[test]
fn a_chain_holds_two_values_at_most() {
    let b = Tracked::nbytes_of(LEN);
    for ex in EXECUTORS {
        let live = Arc::new(AtomicIsize::new(0));
        let max_seen = Arc::new(AtomicIsize::new(0));
        let g = chain(100, &live, &max_seen);
        let out = run_guarded(ex, &g, &ids(&g, &["c99"]), RunOptions::default()).unwrap();
        assert_eq!(out.values[0].nbytes() as u64, b);
        // When c[i] finishes, c[i-1] is still held until the state machine drops it.
        assert_eq!(out.stats.peak_memory, 2 * b, "{ex:?}");
        assert!(out.stats.peak_memory <= 3000, "{ex:?}");
        assert!(
            max_seen.load(Ordering::SeqCst) <= 1,
            "{ex:?}: {} values alive as a chain task started",
            max_seen.load(Ordering::SeqCst)
        );
        assert_eq!(
            live.load(Ordering::SeqCst),
            1,
            "{ex:?}: only the output is alive"
        );
        drop(out);
        assert_eq!(live.load(Ordering::SeqCst), 0, "{ex:?}");
    }
}

/// A binary tree over `leaves` leaves merging `Tracked` values.
fn tree(
    leaves: usize,
    live: &Arc<AtomicIsize>,
    max_seen: &Arc<AtomicIsize>,
) -> (Arc<Graph>, String) {
    let mut s = Specs::default();
    let mut level: Vec<String> = (0..leaves).map(|i| format!("leaf-{i}")).collect();
    for k in &level {
        s.add(k, make(live, max_seen), &[]);
    }
    let mut n = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            let k = format!("merge-{n}");
            n += 1;
            let deps: Vec<&str> = pair.iter().map(String::as_str).collect();
            s.add(&k, make(live, max_seen), &deps);
            next.push(k);
        }
        level = next;
    }
    (s.build(), level.pop().unwrap())
}

#[test]
fn a_tree_reduction_holds_few_values_and_drops_them_all() {
    let b = Tracked::nbytes_of(LEN);
    let leaves = 512;
    for ex in EXECUTORS {
        let live = Arc::new(AtomicIsize::new(0));
        let max_seen = Arc::new(AtomicIsize::new(0));
        let (g, root) = tree(leaves, &live, &max_seen);
        let outs = ids(&g, &[&root]);
        let out = run_guarded(ex, &g, &outs, RunOptions::default()).unwrap();
        let peak = out.stats.peak_memory;
        eprintln!("{ex:?}: tree of {leaves} leaves, peak {} values", peak / b);
        if ex == Executor::Sync {
            // Sequentially in the static order the tree needs `max_live` values; the sync
            // executor may run one batch of ready tasks (at most 16) ahead of that order.
            let bound = (max_live(&g, &order(&g), &outs) + 16) as u64 * b;
            assert!(peak <= bound, "peak {peak} > {bound}");
        }
        assert!(
            peak < leaves as u64 * b / 4,
            "{ex:?}: peak {peak}: the tree was not released early"
        );
        assert_eq!(live.load(Ordering::SeqCst), 1, "{ex:?}");
        drop(out);
        assert_eq!(live.load(Ordering::SeqCst), 0, "{ex:?}");
    }
}

#[test]
fn nothing_stays_alive_after_a_failed_or_cancelled_run() {
    for ex in EXECUTORS {
        for cancel in [false, true] {
            let live = Arc::new(AtomicIsize::new(0));
            let max_seen = Arc::new(AtomicIsize::new(0));
            let opts = RunOptions::default();
            let token = opts.cancel.clone();
            let ran = Arc::new(AtomicUsize::new(0));
            let ran2 = ran.clone();
            let mut s = Specs::default();
            for i in 0..20 {
                s.add(&format!("r{i}"), make(&live, &max_seen), &[]);
            }
            s.add(
                "stop",
                op("test.stop", move |_| {
                    ran2.fetch_add(1, Ordering::SeqCst);
                    if cancel {
                        token.cancel();
                        Ok(Value::new(0i64))
                    } else {
                        Err(ext("boom"))
                    }
                }),
                &["r3", "r4"],
            );
            for i in 0..20 {
                s.add(
                    &format!("m{i}"),
                    make(&live, &max_seen),
                    &[&format!("r{i}")],
                );
            }
            s.add("after", make(&live, &max_seen), &["stop", "m0"]);
            let mut all: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
            all.push("after".into());
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let g = s.build();
            let err = run_guarded(ex, &g, &ids(&g, &all), opts).unwrap_err();
            if cancel {
                assert!(err.is_cancelled(), "{ex:?}: {err}");
            } else {
                assert!(err.to_string().contains("boom"), "{ex:?}: {err}");
            }
            assert_eq!(ran.load(Ordering::SeqCst), 1);
            assert_eq!(
                live.load(Ordering::SeqCst),
                0,
                "{ex:?}, cancel {cancel}: values leaked"
            );
        }
    }
}
