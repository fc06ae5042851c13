//! Dask array tutorial: `linspace(1, 10, 1_000_000, chunks=1000).sum()`.
//!
//! A thousand blocks of a thousand numbers: the arithmetic is trivial, so the time is mostly
//! building, optimizing and scheduling the graph (the brief's target is 20 ms; Dask ~0.7 s).
//!
//! `cargo run --release -p rask-examples --example array_linspace_sum [n] [chunk]`
//! (defaults 1000000 and 1000).

use std::time::Instant;

use rask::Config;
use rask_examples::array_tutorial::{linspace_sum, linspace_sum_exact};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let chunk: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let config = Config::default();
    // The first run pays one-off costs (thread pool start, page faults); report the second.
    linspace_sum(n, chunk, &config)?;
    let t = Instant::now();
    let total = linspace_sum(n, chunk, &config)?;
    let elapsed = t.elapsed();
    let exact = linspace_sum_exact(n);
    println!("linspace(1, 10, {n}, chunks={chunk}).sum() = {total}");
    println!("closed form                          = {exact}");
    println!("rask: {:.2} ms", elapsed.as_secs_f64() * 1e3);
    anyhow::ensure!(
        (total - exact).abs() <= 1e-9 * exact.abs().max(1.0),
        "sum {total} differs from {exact}"
    );
    Ok(())
}
