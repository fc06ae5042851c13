//! Measures the random kernels: `cargo run --release -p rask-array --example normal_speed`.

use std::time::Instant;

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
        let mut acc = 0.0;
        for b in 0..blocks {
            fill(7, &[b], &mut buf);
            acc += buf[b];
        }
        let ns = t.elapsed().as_nanos() as f64 / (n * blocks) as f64;
        println!("{name}: {ns:.2} ns/sample (checksum {acc:.3})");
    }
}
