//! Monte-Carlo pi with futures on a local cluster: 100 batches by `map`, then `as_completed`
//! adding a batch per result until the estimate settles.
//!
//! `cargo run --release -p rask-examples --example cluster_monte_carlo_pi [per_batch]`

use std::time::Instant;

use rask::distributed::Client;
use rask_examples::cluster_tutorial::pi_until_converged;

fn main() -> anyhow::Result<()> {
    // In the worker processes the local cluster starts (this same binary), this runs the
    // worker and never returns.
    rask::distributed::init();
    let per_batch: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let client = Client::local()?;
    let t = Instant::now();
    let est = pi_until_converged(&client, 100, per_batch, 1e-5, 1000)?;
    println!(
        "pi ~ {:.6} (error {:.1e}) from {} batches, {} points, in {:.2} s",
        est.pi,
        (est.pi - std::f64::consts::PI).abs(),
        est.batches,
        est.points,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
