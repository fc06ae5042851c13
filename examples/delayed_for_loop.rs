//! Dask tutorial, step 2: parallelize a for-loop of slow `inc` calls, then sum.
//!
//! `cargo run -p rask-examples --example delayed_for_loop [pause_ms]` (default 1000).

use std::time::Duration;

use rask::Config;
use rask_examples::delayed_tutorial::parallel_loop;

fn main() -> anyhow::Result<()> {
    let pause_ms: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let data = [1, 2, 3, 4, 5, 6, 7, 8];
    let step = parallel_loop(&data, Duration::from_millis(pause_ms), &Config::default())?;
    println!("sum(inc(x) for x in {data:?}) = {}", step.value);
    println!("sequential: {:.2} s", step.sequential.as_secs_f64());
    println!(
        "rask:       {:.2} s on {} threads",
        step.parallel.as_secs_f64(),
        rask::Executor::Threaded.num_threads()
    );
    Ok(())
}
