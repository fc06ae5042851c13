//! `describe()` of the flights data: count, null count, mean, std, min and max of the delay
//! and distance columns, computed as one tree reduction over all files.
//!
//! `cargo run --release -p rask-examples --example dataframe_describe -- DIR`

use rask::Config;
use rask_examples::dataframe_tutorial::describe_flights;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: dataframe_describe DIR (a folder of yearly flights CSV files)")
    })?;
    println!(
        "{}",
        describe_flights(std::path::Path::new(&dir), &Config::default())?
    );
    Ok(())
}
