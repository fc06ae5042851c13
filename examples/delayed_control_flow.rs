//! Dask tutorial, step 3: control flow. The cheap `is_even` runs eagerly while the graph is
//! built and picks which slow function (`double` or `inc`) to delay for each element.
//!
//! `cargo run -p rask-examples --example delayed_control_flow [pause_ms]` (default 1000).

use std::time::Duration;

use rask::Config;
use rask_examples::delayed_tutorial::control_flow;

fn main() -> anyhow::Result<()> {
    let pause_ms: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    let step = control_flow(&data, Duration::from_millis(pause_ms), &Config::default())?;
    println!("sum(double(x) if is_even(x) else inc(x)) = {}", step.value);
    println!("sequential: {:.2} s", step.sequential.as_secs_f64());
    println!("rask:       {:.2} s", step.parallel.as_secs_f64());
    Ok(())
}
