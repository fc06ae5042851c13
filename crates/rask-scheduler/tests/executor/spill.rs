//! Spilling to disk under a memory budget: the "x - mean(x)" shape, where every block must
//! be kept until a reduction over all of them is done.

use std::sync::Arc;

use rask_error::Result;
use rask_graph::{Graph, Key, Op, TaskSpec, Value};
use rask_scheduler::{Executor, RunOptions};

use crate::common::{op, run_guarded};

const BLOCKS: usize = 40;
const LEN: usize = 1000; // 8 kB per block

fn block(v: &Value) -> Result<&Vec<f64>> {
    v.get::<Vec<f64>>(&"block")
}

/// x_i = [i; LEN]; s = sum over all x (pairwise tree); z_i = sum(x_i) - s / BLOCKS.
fn graph() -> (Arc<Graph>, Vec<Key>, Vec<f64>) {
    let mut specs = Vec::new();
    let x = |i: usize| Key::named(format!("x-{i}"));
    for i in 0..BLOCKS {
        let f: Arc<dyn Op> = op("make", move |_| Ok(Value::new(vec![i as f64; LEN])));
        specs.push(TaskSpec::new(x(i), f, []));
    }
    // A pairwise tree of scalar sums over the blocks.
    let mut level: Vec<Key> = (0..BLOCKS)
        .map(|i| {
            let k = Key::named(format!("s0-{i}"));
            specs.push(TaskSpec::new(
                k.clone(),
                op("block_sum", |ins| {
                    Ok(Value::new(block(&ins[0])?.iter().sum::<f64>()))
                }),
                [x(i)],
            ));
            k
        })
        .collect();
    let mut depth = 1;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, pair)| {
                let k = Key::named(format!("s{depth}-{j}"));
                specs.push(TaskSpec::new(
                    k.clone(),
                    op("add", |ins| {
                        let mut t = 0.0;
                        for v in ins {
                            t += *v.get::<f64>(&"partial")?;
                        }
                        Ok(Value::new(t))
                    }),
                    pair.to_vec(),
                ));
                k
            })
            .collect();
        depth += 1;
    }
    let total = level.pop().expect("one root");
    let mut outputs = Vec::new();
    let mut expected = Vec::new();
    let grand: f64 = (0..BLOCKS).map(|i| (i * LEN) as f64).sum();
    for i in 0..BLOCKS {
        let k = Key::named(format!("z-{i}"));
        specs.push(TaskSpec::new(
            k.clone(),
            op("center", |ins| {
                let s = *ins[1].get::<f64>(&"total")?;
                Ok(Value::new(
                    block(&ins[0])?.iter().sum::<f64>() - s / BLOCKS as f64,
                ))
            }),
            [x(i), total.clone()],
        ));
        outputs.push(k);
        expected.push((i * LEN) as f64 - grand / BLOCKS as f64);
    }
    (
        Arc::new(Graph::from_specs(specs).expect("valid")),
        outputs,
        expected,
    )
}

#[test]
fn a_budget_smaller_than_the_live_blocks_spills_and_stays_correct() {
    let (g, outputs, expected) = graph();
    let outs = g.ids_of(&outputs).expect("outputs");
    let block_bytes = Value::new(vec![0.0f64; LEN]).nbytes() as u64;
    let all_blocks = block_bytes * BLOCKS as u64;
    for executor in [Executor::Sync, Executor::Threads(2)] {
        // Without a budget every block is held until the total is known.
        let free = run_guarded(executor, &g, &outs, RunOptions::default()).expect("runs");
        assert!(
            free.stats.peak_memory >= all_blocks,
            "{executor:?}: {}",
            free.stats.peak_memory
        );
        assert_eq!(free.stats.spilled_values, 0);

        let dir = std::env::temp_dir().join(format!(
            "rask-spill-test-{}-{executor:?}",
            std::process::id()
        ));
        let budget = all_blocks / 4;
        let opts = RunOptions {
            memory_limit: Some(budget),
            spill_dir: Some(dir.clone()),
            ..Default::default()
        };
        let out = run_guarded(executor, &g, &outs, opts).expect("runs within the budget");
        let got: Vec<f64> = out
            .values
            .iter()
            .map(|v| *v.get::<f64>(&"z").expect("f64"))
            .collect();
        assert_eq!(got, expected, "{executor:?}");
        assert!(
            out.stats.spilled_values > 0,
            "{executor:?}: nothing spilled"
        );
        // Held values stay near the budget: one block over, at most, per worker.
        let slack = block_bytes * 2 * executor.num_threads() as u64 + 64 * BLOCKS as u64;
        assert!(
            out.stats.peak_memory <= budget + slack,
            "{executor:?}: peak {} over budget {budget} + {slack}",
            out.stats.peak_memory
        );
        // The spill directory is removed with the run.
        let leftovers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 0, "{executor:?}: spill files left behind");
    }
}

#[test]
fn values_that_cannot_spill_stay_in_memory() {
    // Values stored without a spill path (`with_nbytes`) are never written; the run still
    // completes, above the budget.
    let mut specs = Vec::new();
    for i in 0..8 {
        specs.push(TaskSpec::new(
            Key::named(format!("r{i}")),
            op("opaque", move |_| Ok(Value::with_nbytes(i as i64, 1000))),
            [],
        ));
    }
    specs.push(TaskSpec::new(
        Key::named("sum"),
        op("sum", |ins| {
            let mut t = 0i64;
            for v in ins {
                t += *v.get::<i64>(&"r")?;
            }
            Ok(Value::new(t))
        }),
        (0..8).map(|i| Key::named(format!("r{i}"))),
    ));
    let g = Arc::new(Graph::from_specs(specs).expect("valid"));
    let outs = g.ids_of(&[Key::named("sum")]).expect("outputs");
    let opts = RunOptions {
        memory_limit: Some(8000),
        ..Default::default()
    };
    let out = run_guarded(Executor::Sync, &g, &outs, opts).expect("runs");
    assert_eq!(*out.values[0].get::<i64>(&"sum").expect("i64"), 28);
    assert_eq!(out.stats.spilled_values, 0);
}
