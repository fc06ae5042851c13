//! Dask's `delayed` tutorial, step by step.
//!
//! Every slow function takes a `pause` so that the examples can show real speed-ups (the
//! tutorial uses one second) while the tests stay fast (a millisecond or none).

use std::thread::sleep;
use std::time::{Duration, Instant};

use rask::prelude::*;
use rask::{Config, Visualization};

use crate::rng::SplitMix64;

pub fn inc_eager(x: i64, pause: Duration) -> i64 {
    sleep(pause);
    x + 1
}

pub fn double_eager(x: i64, pause: Duration) -> i64 {
    sleep(pause);
    2 * x
}

pub fn add_eager(x: i64, y: i64, pause: Duration) -> i64 {
    sleep(pause);
    x + y
}

#[rask::delayed]
pub fn inc(x: i64, pause: Duration) -> i64 {
    inc_eager(x, pause)
}

#[rask::delayed]
pub fn double(x: i64, pause: Duration) -> i64 {
    double_eager(x, pause)
}

#[rask::delayed]
pub fn add(x: i64, y: i64, pause: Duration) -> i64 {
    add_eager(x, y, pause)
}

/// A cheap decision that runs eagerly while the graph is being built.
pub fn is_even(x: i64) -> bool {
    x % 2 == 0
}

/// What a timed step reports.
#[derive(Clone, Debug)]
pub struct Timed<T> {
    pub value: T,
    pub sequential: Duration,
    pub parallel: Duration,
}

/// Step 1: `inc(1)`, `inc(2)`, `add(x, y)`. Sequentially that is three pauses; with rask the
/// two `inc`s run at once, so two pauses.
pub fn inc_add(pause: Duration, config: &Config) -> rask::Result<Timed<i64>> {
    let t = Instant::now();
    let x = inc_eager(1, pause);
    let y = inc_eager(2, pause);
    let sequential_value = add_eager(x, y, pause);
    let sequential = t.elapsed();

    let t = Instant::now();
    let x = inc(1, pause);
    let y = inc(2, pause);
    let z = add(x, y, pause);
    let value = z.compute_with(config)?;
    let parallel = t.elapsed();
    assert_eq!(value, sequential_value, "lazy and eager results agree");
    Ok(Timed {
        value,
        sequential,
        parallel,
    })
}

/// Step 2: a for-loop of `inc` calls whose results are summed, made lazy.
pub fn parallel_loop(data: &[i64], pause: Duration, config: &Config) -> rask::Result<Timed<i64>> {
    let t = Instant::now();
    let sequential_value: i64 = data.iter().map(|&x| inc_eager(x, pause)).sum();
    let sequential = t.elapsed();

    let t = Instant::now();
    let results: Vec<Delayed<i64>> = data.iter().map(|&x| inc(x, pause)).collect();
    let total = rask::sum(results);
    let value = total.compute_with(config)?;
    let parallel = t.elapsed();
    assert_eq!(value, sequential_value);
    Ok(Timed {
        value,
        sequential,
        parallel,
    })
}

/// Step 3: control flow. `is_even` is cheap and runs now, on plain values; the slow `inc` and
/// `double` calls are delayed.
pub fn control_flow(data: &[i64], pause: Duration, config: &Config) -> rask::Result<Timed<i64>> {
    let t = Instant::now();
    let sequential_value: i64 = data
        .iter()
        .map(|&x| {
            if is_even(x) {
                double_eager(x, pause)
            } else {
                inc_eager(x, pause)
            }
        })
        .sum();
    let sequential = t.elapsed();

    let t = Instant::now();
    let results: Vec<Delayed<i64>> = data
        .iter()
        .map(|&x| {
            if is_even(x) {
                double(x, pause)
            } else {
                inc(x, pause)
            }
        })
        .collect();
    let value = rask::sum(results).compute_with(config)?;
    let parallel = t.elapsed();
    assert_eq!(value, sequential_value);
    Ok(Timed {
        value,
        sequential,
        parallel,
    })
}

/// Step 4: a tree reduction: `inc` every element, then add pairwise, level by level, as the
/// tutorial's exercise does. Returns the total and the graph's picture.
pub fn tree_reduction(
    data: &[i64],
    pause: Duration,
    config: &Config,
) -> rask::Result<(Timed<i64>, Visualization)> {
    let t = Instant::now();
    let mut level: Vec<i64> = data.iter().map(|&x| inc_eager(x, pause)).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                if p.len() == 2 {
                    add_eager(p[0], p[1], pause)
                } else {
                    p[0]
                }
            })
            .collect();
    }
    let sequential_value = level.first().copied().unwrap_or(0);
    let sequential = t.elapsed();

    let t = Instant::now();
    let total = tree_sum(data, pause)?;
    let value = total.compute_with(config)?;
    let parallel = t.elapsed();
    assert_eq!(value, sequential_value);
    let picture = total.visualize()?;
    Ok((
        Timed {
            value,
            sequential,
            parallel,
        },
        picture,
    ))
}

/// The lazy tree: `inc` on each element, then pairwise `add`.
pub fn tree_sum(data: &[i64], pause: Duration) -> rask::Result<Delayed<i64>> {
    if data.is_empty() {
        return Err(RaskError::invalid_argument(
            "data",
            "needs at least one element",
        ));
    }
    let mut level: Vec<Delayed<i64>> = data.iter().map(|&x| inc(x, pause)).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            next.push(match pair {
                [a, b] => add(a, b, pause),
                [a] => a.clone(),
                _ => unreachable!("chunks(2)"),
            });
        }
        level = next;
    }
    Ok(level.pop().expect("non-empty"))
}

/// Counts, in one batch of `n` random points in the unit square, those inside the quarter
/// circle. Impure: each call is a fresh task even with equal arguments.
#[rask::delayed]
pub fn pi_batch(seed: u64, n: u64) -> u64 {
    let mut rng = SplitMix64::new(seed);
    let mut hits = 0;
    for _ in 0..n {
        let (x, y) = (rng.next_f64(), rng.next_f64());
        if x * x + y * y <= 1.0 {
            hits += 1;
        }
    }
    hits
}

/// Step 5: Monte-Carlo pi in batches: `batches` delayed batches of `per_batch` points, their
/// hits summed lazily.
pub fn monte_carlo_pi(
    batches: u64,
    per_batch: u64,
    seed: u64,
    config: &Config,
) -> rask::Result<f64> {
    if batches == 0 || per_batch == 0 {
        return Err(RaskError::invalid_argument(
            "batches",
            "batches and per_batch must be positive",
        ));
    }
    let hits: Vec<Delayed<u64>> = (0..batches)
        .map(|b| pi_batch(seed.wrapping_add(b), per_batch))
        .collect();
    let total = rask::sum(hits).compute_with(config)?;
    Ok(4.0 * total as f64 / (batches * per_batch) as f64)
}

/// The same estimate without rask, for comparison.
pub fn monte_carlo_pi_eager(batches: u64, per_batch: u64, seed: u64) -> f64 {
    let mut hits = 0u64;
    for b in 0..batches {
        let mut rng = SplitMix64::new(seed.wrapping_add(b));
        for _ in 0..per_batch {
            let (x, y) = (rng.next_f64(), rng.next_f64());
            if x * x + y * y <= 1.0 {
                hits += 1;
            }
        }
    }
    4.0 * hits as f64 / (batches * per_batch) as f64
}
