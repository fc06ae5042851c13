//! Dask DataFrame tutorial: mean departure delay per origin airport over one CSV file per
//! year, three ways (a sequential loop, by hand with `delayed`, and
//! `read_csv("flights/*.csv").groupby(["Origin"]).col("DepDelay").mean()`), with the same
//! numbers and their times.
//!
//! `cargo run --release -p rask-examples --example dataframe_flights_mean -- DIR`, where DIR
//! holds yearly `*.csv` files, for example from
//! `cargo run --release -p rask-cli -- datasets flights --dir data/flights --format csv`.

use std::time::Instant;

use rask::Config;
use rask_examples::dataframe_tutorial::*;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: dataframe_flights_mean DIR (a folder of yearly flights CSV files)")
    })?;
    let dir = std::path::Path::new(&dir);
    let config = Config::default();

    let t = Instant::now();
    let seq = mean_delay_sequential(dir)?;
    let t_seq = t.elapsed();
    let t = Instant::now();
    let by_hand = mean_delay_by_hand(dir, &config)?;
    let t_hand = t.elapsed();
    let t = Instant::now();
    let frame = mean_delay_dataframe(dir, &config)?;
    let t_frame = t.elapsed();

    println!("{:<8} {:>12}", "Origin", "mean delay");
    for (origin, mean) in &frame {
        println!("{origin:<8} {mean:>12.4}");
    }
    println!(
        "sequential loop {:.2} s, delayed by hand {:.2} s, DataFrame {:.2} s",
        t_seq.as_secs_f64(),
        t_hand.as_secs_f64(),
        t_frame.as_secs_f64()
    );
    let diff = [
        differences(&seq, &by_hand, 1e-9),
        differences(&seq, &frame, 1e-9),
    ]
    .concat();
    anyhow::ensure!(diff.is_empty(), "the three ways disagree on {diff:?}");
    println!("all three agree on {} airports", seq.len());
    Ok(())
}
