//! Monte-Carlo pi in batches: each batch counts random points inside the quarter circle; the
//! counts are summed lazily. Batches are impure tasks, as random work should be.
//!
//! `cargo run --release -p rask-examples --example delayed_monte_carlo_pi [batches] [per_batch]`

use std::time::Instant;

use rask::Config;
use rask_examples::delayed_tutorial::{monte_carlo_pi, monte_carlo_pi_eager};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let per_batch: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let t = Instant::now();
    let eager = monte_carlo_pi_eager(batches, per_batch, 42);
    let eager_t = t.elapsed();
    let t = Instant::now();
    let pi = monte_carlo_pi(batches, per_batch, 42, &Config::default())?;
    let lazy_t = t.elapsed();
    println!(
        "pi ~ {pi:.6} from {} points (error {:.2e})",
        batches * per_batch,
        (pi - std::f64::consts::PI).abs()
    );
    println!(
        "sequential: {:.2} s, rask: {:.2} s",
        eager_t.as_secs_f64(),
        lazy_t.as_secs_f64()
    );
    anyhow::ensure!(
        pi == eager,
        "the lazy and eager estimates must be identical"
    );
    Ok(())
}
