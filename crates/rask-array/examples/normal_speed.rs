//! Measures the random kernels: `cargo run --release -p rask-array --example normal_speed`.

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
}
