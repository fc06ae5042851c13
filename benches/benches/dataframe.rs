//! The DataFrame seed workload, timed the way `peers/dataframe_peers.py` times Dask, Polars
//! and DuckDB: mean `DepDelay` per `Origin` over the yearly flights files, from Parquet and
//! from CSV (`DF_BENCH_DATA`, default `benches/data/flights`, written by
//! `rask datasets flights --format both`), plus the same Parquet groupby under a memory
//! budget smaller than the data, with the peak RSS.
//!
//! `cargo bench -p rask-benches --bench dataframe [-- --json] [-- --case NAME]`.

use rask::Progress;
use rask::dataframe::polars::prelude::ChunkAgg;
use rask::dataframe::{CsvOptions, DataFrame, ParquetOptions, read_csv, read_parquet};
use rask::prelude::{ComputeExt, Config};
use rask_benches::{emit, json_requested, median_time, peak_rss_bytes, s as js};

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn data_dir() -> String {
    std::env::var("DF_BENCH_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data/flights").to_string())
}

fn repeats() -> usize {
    std::env::var("DF_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn config() -> Config {
    Config::builtin().with_progress(Progress::Never)
}

/// Sum of the per-origin means, rounded: the peers print the same check value.
fn check(out: &rask::dataframe::polars::prelude::DataFrame) -> f64 {
    let s = out
        .column("DepDelay")
        .expect("DepDelay")
        .f64()
        .expect("f64");
    (s.sum().unwrap_or(f64::NAN) * 1e6).round() / 1e6
}

fn groupby_mean(frame: &DataFrame, config: &Config) -> anyhow::Result<(f64, usize)> {
    let means = frame.groupby(["Origin"]).col("DepDelay").mean()?;
    let out = means.compute_with(config)?;
    Ok((check(&out), out.height()))
}

fn run(case: &str, json: bool) -> anyhow::Result<()> {
    let dir = data_dir();
    // The reader is built inside the timed closure, as the peers' timings include listing
    // the files and reading their footers.
    let open = || -> anyhow::Result<DataFrame> {
        Ok(match case {
            "csv" => read_csv(&format!("{dir}/*.csv"), CsvOptions::default())?,
            _ => read_parquet(&format!("{dir}/*.parquet"), ParquetOptions::default())?,
        })
    };
    let bench = match case {
        "parquet" | "parquet_budget" => "groupby_mean_parquet",
        "csv" => "groupby_mean_csv",
        other => anyhow::bail!("unknown case {other}"),
    };
    let rows = read_parquet(&format!("{dir}/*.parquet"), ParquetOptions::default())?
        .len()?
        .compute()?;
    let mut config = config();
    let mut variant = "threads".to_string();
    let mut budget_note = String::new();
    if case == "parquet_budget" {
        // A quarter of the Parquet data's in-memory size for the two columns read.
        let budget: u64 = arg_value("--budget-mb")
            .and_then(|v| v.parse().ok())
            .unwrap_or(64)
            << 20;
        config = config.with_memory_limit(Some(budget));
        variant = format!("budget_{}MB", budget >> 20);
        budget_note = format!("; budget {} MB", budget >> 20);
    }
    let (t, result) = median_time(repeats(), || groupby_mean(&open()?, &config));
    let (check, groups) = result?;
    let rss = peak_rss_bytes().unwrap_or(0);
    if !budget_note.is_empty() {
        let within = if rss <= config.memory_limit.unwrap_or(u64::MAX) {
            "process peak RSS within it"
        } else {
            "process peak RSS ABOVE it"
        };
        budget_note.push_str(&format!(", {within}"));
    }
    emit(
        json,
        &[
            ("bench", js(bench)),
            ("variant", js(&variant)),
            ("n", rows.to_string()),
            ("median_s", t.as_secs_f64().to_string()),
            ("check", check.to_string()),
            ("peak_rss_mb", (rss >> 20).to_string()),
        ],
        &format!(
            "{bench} [{variant}] over {rows} rows: {:.3} s ({groups} groups, check {check}, peak RSS {} MB{budget_note})",
            t.as_secs_f64(),
            rss >> 20
        ),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let json = json_requested();
    if let Some(case) = arg_value("--case") {
        return run(&case, json);
    }
    // Each case in its own process so its peak RSS is its own.
    let exe = std::env::current_exe()?;
    for case in ["parquet", "csv", "parquet_budget"] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--case", case]);
        if json {
            cmd.arg("--json");
        }
        let status = cmd.status()?;
        anyhow::ensure!(status.success(), "case {case} failed");
    }
    Ok(())
}
