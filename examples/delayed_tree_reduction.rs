//! Dask tutorial, step 4: a tree reduction (pairwise `add` over `inc`ed elements), and a
//! picture of its graph written to `tree_reduction.svg` (no graphviz needed).
//!
//! `cargo run -p rask-examples --example delayed_tree_reduction [pause_ms] [out.svg]`
//! (default 100 ms, `tree_reduction.svg`).

use std::time::Duration;

use rask::Config;
use rask_examples::delayed_tutorial::tree_reduction;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let pause_ms: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let out = args
        .next()
        .unwrap_or_else(|| "tree_reduction.svg".to_string());
    let data: Vec<i64> = (1..=16).collect();
    let (step, picture) =
        tree_reduction(&data, Duration::from_millis(pause_ms), &Config::default())?;
    println!("tree sum of inc(x) for x in 1..=16 = {}", step.value);
    println!("sequential: {:.2} s", step.sequential.as_secs_f64());
    println!("rask:       {:.2} s", step.parallel.as_secs_f64());
    picture.save(&out)?;
    println!("graph written to {out}");
    Ok(())
}
