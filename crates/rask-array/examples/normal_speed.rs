//! Measures the random kernels: `cargo run --release -p rask-array --example normal_speed`.
//! With an argument N, also runs `normal(10, 0.1, (N, N), chunks 1000)` end to end through
//! the threaded scheduler, each block reduced to its column sums (`map_blocks`), as a stand-in
//! for the brief's `mean(axis 0)` workload.

use std::time::Instant;

/// Nanoseconds this thread has run on a CPU (Linux), so that a loaded machine's waiting time
/// does not count; `None` elsewhere.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

use rask_array::random::{fill_standard_normal, fill_uniform};

fn main() {
    let n = 1_000_000;
    let blocks = 100;
    let mut buf = vec![0.0f64; n];
    for (name, fill) in [
        (
            "normal",
            fill_standard_normal as fn(u64, &[usize], &mut [f64]),
        ),
        ("uniform", fill_uniform),
    ] {
        // One warm-up block (table construction, page faults).
        fill(7, &[0], &mut buf);
        let t = Instant::now();
        let c = cpu_ns();
        let mut acc = 0.0;
        for b in 0..blocks {
            fill(7, &[b], &mut buf);
            acc += buf[b];
        }
        let samples = (n * blocks) as f64;
        let wall = t.elapsed().as_nanos() as f64 / samples;
        let cpu = match (c, cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.2}", (b - a) as f64 / samples),
            _ => "?".into(),
        };
        println!("{name}: {wall:.2} ns/sample wall, {cpu} ns/sample on CPU (checksum {acc:.3})");
    }
    if let Some(n) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<usize>().ok())
    {
        use rask::prelude::*;
        let t = Instant::now();
        let x = rask_array::random::normal(10.0, 0.1, &[n, n], (1000, 1000), 0).unwrap();
        let nb = x.numblocks();
        let col_sums = x
            .map_blocks_with_chunks(
                vec![vec![1; nb[0]], x.chunks().sizes()[1].clone()],
                |b: &ndarray::ArrayD<f64>| {
                    b.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0))
                },
            )
            .unwrap();
        let sums = col_sums.compute().unwrap();
        let mean0 = sums.sum_axis(ndarray::Axis(0)) / n as f64;
        println!(
            "normal(({n}, {n}), chunks 1000) -> column means: {:.2} s, mean[0] = {:.5}",
            t.elapsed().as_secs_f64(),
            mean0[0]
        );
    }
}
