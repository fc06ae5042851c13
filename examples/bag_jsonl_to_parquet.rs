//! The Bag tutorial's JSON-lines workload: account records (nested address, a list of
//! transactions) read with a bag, filtered, plucked, counted, and written as Parquet.
//!
//! `cargo run --release -p rask-examples --example bag_jsonl_to_parquet -- [IN_DIR] [OUT_DIR]`
//! (without arguments it writes 8 gzipped files of 20 000 records into a temp folder first).

use rask::Config;
use rask::bag::JsonOptions;
use rask_examples::bag_tutorial::{accounts_to_parquet, write_accounts};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile_dir()?;
    let input = match args.next() {
        Some(dir) => dir,
        None => {
            let dir = tmp.join("accounts");
            write_accounts(&dir, 8, 20_000, 42, true)?;
            dir.display().to_string()
        }
    };
    let out = args
        .next()
        .unwrap_or_else(|| tmp.join("parquet").display().to_string());
    let t = std::time::Instant::now();
    let s = accounts_to_parquet(
        &format!("{input}/accounts.*.jsonl*"),
        &out,
        JsonOptions::default(),
        &Config::default(),
    )?;
    println!(
        "{} records, {} Alices with transactions, top cities {:?}, mean amount {:.2}",
        s.records, s.alices, s.top_cities, s.mean_amount
    );
    println!(
        "wrote {} Parquet files into {out} in {:.2} s",
        s.parquet.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rask-bag-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
