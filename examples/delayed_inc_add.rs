//! Dask tutorial, step 1: `inc(1)`, `inc(2)`, `add(x, y)` with one-second bodies.
//! Sequentially that takes three seconds; rask runs the two `inc`s at once: two seconds.
//!
//! `cargo run -p rask-examples --example delayed_inc_add [pause_ms]` (default 1000).

use std::time::Duration;

use rask::Config;
use rask_examples::delayed_tutorial::inc_add;

fn main() -> anyhow::Result<()> {
    let pause_ms: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let step = inc_add(Duration::from_millis(pause_ms), &Config::default())?;
    println!("add(inc(1), inc(2)) = {}", step.value);
    println!("sequential: {:.2} s", step.sequential.as_secs_f64());
    println!("rask:       {:.2} s", step.parallel.as_secs_f64());
    Ok(())
}
