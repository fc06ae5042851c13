//! Random DAGs against a naive evaluation, many times over with threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask_graph::{Graph, TaskId, breadth_first, order};
use rask_scheduler::{Executor, RunOptions};

use crate::common::*;

/// SplitMix64: a tiny seeded generator, so the graphs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct RandomDag {
    graph: Arc<Graph>,
    outputs: Vec<TaskId>,
    expected: Vec<i64>,
    count: Arc<AtomicUsize>,
}

/// `n` tasks, each reading up to 3 distinct earlier ones and adding its own constant
/// (wrapping). Outputs: every sink plus some random tasks, a few twice.
fn random_dag(seed: u64, n: usize) -> RandomDag {
    let mut rng = Rng(seed);
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Specs::default();
    let mut deps_of: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut value = Vec::with_capacity(n);
    let mut read = vec![false; n];
    for i in 0..n {
        let c = rng.next() as i64;
        let mut deps = Vec::new();
        if i > 0 {
            for _ in 0..rng.below(4) {
                let d = rng.below(i);
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        let v = deps
            .iter()
            .fold(c, |acc: i64, &d| acc.wrapping_add(value[d]));
        value.push(v);
        for &d in &deps {
            read[d] = true;
        }
        let names: Vec<String> = deps.iter().map(|d| format!("t{d}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        s.add(&format!("t{i}"), sum_op(c, &count), &names);
        deps_of.push(deps);
    }
    let mut wanted: Vec<usize> = (0..n).filter(|&i| !read[i]).collect();
    for _ in 0..20 {
        wanted.push(rng.below(n));
    }
    wanted.push(wanted[0]);
    let graph = s.build();
    let outputs = wanted.iter().map(|&i| i as TaskId).collect();
    let expected = wanted.iter().map(|&i| value[i]).collect();
    RandomDag {
        graph,
        outputs,
        expected,
        count,
    }
}

#[test]
fn random_dags_match_the_naive_evaluation_every_time() {
    let dag = random_dag(0x5eed, 2000);
    // Ids are the spec order, so output ids are the oracle's indices.
    assert_eq!(dag.graph.id_of(&key("t1999")), Some(1999));
    for run in 0..20 {
        let before = dag.count.load(Ordering::SeqCst);
        let out = run_guarded(
            Executor::Threads(4),
            &dag.graph,
            &dag.outputs,
            RunOptions::default(),
        )
        .unwrap();
        assert_eq!(ints(&out), dag.expected, "run {run}");
        let ran = dag.count.load(Ordering::SeqCst) - before;
        assert_eq!(ran, out.stats.tasks_run, "run {run}");
        assert!(ran <= dag.graph.len());
    }
    for ex in [Executor::Sync, Executor::Threaded] {
        let out = run_guarded(ex, &dag.graph, &dag.outputs, RunOptions::default()).unwrap();
        assert_eq!(ints(&out), dag.expected, "{ex:?}");
    }
}

#[test]
fn random_dags_under_other_priorities_and_budgets() {
    for seed in 1..=3u64 {
        let dag = random_dag(seed, 500);
        let n = dag.graph.len();
        // A random permutation is a valid (if poor) priority too.
        let mut rng = Rng(seed * 77);
        let mut shuffled: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            shuffled.swap(i, rng.below(i + 1));
        }
        let priorities = [order(&dag.graph), breadth_first(&dag.graph), shuffled];
        for (p, priority) in priorities.iter().enumerate() {
            for ex in [Executor::Sync, Executor::Threads(4)] {
                for limit in [None, Some(64)] {
                    let opts = RunOptions {
                        memory_limit: limit,
                        ..Default::default()
                    };
                    let out =
                        run_with_priority(ex, &dag.graph, &dag.outputs, priority.clone(), opts)
                            .unwrap();
                    assert_eq!(
                        ints(&out),
                        dag.expected,
                        "seed {seed}, priority {p}, {ex:?}, {limit:?}"
                    );
                }
            }
        }
    }
}
