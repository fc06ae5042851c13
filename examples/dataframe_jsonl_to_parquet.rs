//! Converts JSON-lines files (the daily stock files) to Parquet in parallel: one task per
//! file reads it and writes its Parquet twin.
//!
//! `cargo run --release -p rask-examples --example dataframe_jsonl_to_parquet -- 'IN/*.jsonl' OUT_DIR`
//! (for example after `cargo run --release -p rask-cli -- datasets stocks --dir data/stocks`).

use rask::Config;
use rask_examples::dataframe_tutorial::jsonl_to_parquet;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (input, out) = match (args.next(), args.next()) {
        (Some(i), Some(o)) => (i, o),
        _ => anyhow::bail!("usage: dataframe_jsonl_to_parquet 'IN/*.jsonl' OUT_DIR"),
    };
    let t = std::time::Instant::now();
    let files = jsonl_to_parquet(&input, &out, &Config::default())?;
    println!(
        "wrote {} Parquet files into {out} in {:.2} s",
        files.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
