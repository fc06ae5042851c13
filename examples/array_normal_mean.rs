//! Dask array tutorial: `normal(10, 0.1, (20000, 20000), chunks=(1000, 1000)).mean(axis=0)[::100]`.
//!
//! 400 blocks of 8 MB (3.2 GB of samples in all), yet rask keeps only a few blocks alive at
//! once: each is drawn, reduced to its column sums and freed. The same computation then runs
//! on one core with plain `ndarray`, drawing the same numbers block by block, for comparison;
//! the two results agree to rounding. Prints both times and the process's peak RSS.
//!
//! `cargo run --release -p rask-examples --example array_normal_mean [n] [chunk] [step]`
//! (defaults 20000, 1000 and 100).

use std::time::Instant;

use rask::Config;
use rask_examples::array_tutorial::{max_rel_diff, normal_mean, normal_mean_eager, peak_rss_bytes};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let chunk: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let step: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    anyhow::ensure!(chunk > 0 && step > 0, "chunk and step must be positive");
    let seed = 42;
    let config = Config::default();
    println!(
        "normal(10, 0.1, ({n}, {n}), chunks=({chunk}, {chunk})).mean(axis=0)[::{step}]: {:.2} GB of samples",
        (n * n * 8) as f64 / 1e9
    );

    let t = Instant::now();
    let lazy = normal_mean(n, chunk, step, seed, &config)?;
    let rask_t = t.elapsed();
    // Peak RSS before the eager run, which holds about as little (one block at a time).
    let rss = peak_rss_bytes();

    let t = Instant::now();
    let eager = normal_mean_eager(n, chunk, step, seed);
    let eager_t = t.elapsed();

    let head: Vec<String> = lazy.iter().take(5).map(|v| format!("{v:.6}")).collect();
    println!(
        "result: {} values, first [{}, ...]",
        lazy.len(),
        head.join(", ")
    );
    println!(
        "rask ({} threads):       {:.3} s",
        config.executor.num_threads(),
        rask_t.as_secs_f64()
    );
    println!("ndarray, one core:       {:.3} s", eager_t.as_secs_f64());
    match rss {
        Some(b) => println!("peak RSS after rask:     {:.1} MB", b as f64 / 1e6),
        None => println!("peak RSS after rask:     unavailable (no /proc/self/status)"),
    }
    let diff = max_rel_diff(&lazy, &eager);
    println!("max relative difference: {diff:.1e}");
    anyhow::ensure!(diff <= 1e-10, "rask and ndarray disagree by {diff}");
    Ok(())
}
