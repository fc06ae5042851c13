//! The array tutorial's `normal(10, 0.1, (20000, 20000)).mean(axis 0)[::100]` on a local
//! cluster, checked against the local scheduler.
//!
//! `cargo run --release -p rask-examples --example cluster_normal_mean [size] [chunk]`

use std::time::Instant;

use rask::array::{self, s};
use rask::distributed::Client;
use rask::prelude::*;

fn main() -> anyhow::Result<()> {
    rask::distributed::init();
    let mut args = std::env::args().skip(1);
    let size: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let chunk: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let x = array::random::normal(10.0, 0.1, &[size, size], (chunk, chunk), 42)?;
    let means = x.mean(0)?.slice(&s![..;100])?;
    let client = Client::local()?;
    let t = Instant::now();
    let on_cluster = client.compute(&means)?;
    let cluster_t = t.elapsed();
    let t = Instant::now();
    let local = means.compute_with(&Config::builtin())?;
    let local_t = t.elapsed();
    anyhow::ensure!(on_cluster == local, "cluster and local results differ");
    println!(
        "{} means (first {:.6}); cluster {:.2} s, local {:.2} s",
        on_cluster.len(),
        on_cluster[0],
        cluster_t.as_secs_f64(),
        local_t.as_secs_f64()
    );
    Ok(())
}
