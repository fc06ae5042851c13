//! The groupby query matrix: six query shapes over the flights files, Parquet and CSV, from two
//! writers (rask's polars writer and pyarrow), timed the way `peers/groupby_matrix.py` times
//! DuckDB, Polars streaming and Dask on the same files, with each cell's peak RSS.
//!
//! Queries (the peers' script spells the same ones in SQL, polars and dask):
//!
//! | name | query |
//! |---|---|
//! | `mean` | the tutorial's: mean `DepDelay` per `Origin` |
//! | `filter_two_keys` | `Cancelled == 0 & Distance > 1000`, per (`Origin`, `UniqueCarrier`): mean `DepDelay`, std `ArrDelay`, count `DepDelay` |
//! | `thousands` | per `FlightNum` (3000 groups): sum `ArrDelay`, max `DepDelay` |
//! | `millions` | per (`FlightNum`, `Month`, `DayofMonth`) (~1M groups, `split_out` 4): mean `DepDelay` |
//! | `nunique` | distinct `Dest` per `Origin` |
//! | `with_columns` | `Gain = DepDelay - ArrDelay`, per `UniqueCarrier`: mean and max `Gain` |
//!
//! `cargo bench -p rask-benches --bench groupby -- [--json] [--data DIR] [--format parquet|csv]
//! [--query NAME] [--budget-mb N]`. Without `--query` every cell runs in its own process, so
//! each peak RSS is its own. `DF_BENCH_REPEATS` (default 3) repeats per cell; the median is
//! reported. `check` is the sum of every aggregated column over all groups (the peers print
//! the same figure), so a cell that computes something else shows it.

use rask::Progress;
use rask::dataframe::polars::prelude::{DataFrame as PlFrame, *};
use rask::dataframe::{Agg, CsvOptions, DataFrame, ParquetOptions, read_csv, read_parquet};
use rask::prelude::{ComputeExt, Config};
use rask_benches::{emit, json_requested, median_time, peak_rss_bytes, s as js};

pub const QUERIES: [&str; 6] = [
    "mean",
    "filter_two_keys",
    "thousands",
    "millions",
    "nunique",
    "with_columns",
];

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn repeats() -> usize {
    std::env::var("DF_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The query `name` over `frame`.
fn query(frame: &DataFrame, name: &str) -> anyhow::Result<DataFrame> {
    Ok(match name {
        "mean" => frame.groupby(["Origin"]).col("DepDelay").mean()?,
        "filter_two_keys" => frame
            .filter(
                col("Cancelled")
                    .eq(lit(0))
                    .and(col("Distance").gt(lit(1000))),
            )?
            .groupby(["Origin", "UniqueCarrier"])
            .agg([
                Agg::mean("DepDelay"),
                Agg::std("ArrDelay"),
                Agg::count("DepDelay").alias("n"),
            ])?,
        "thousands" => frame
            .groupby(["FlightNum"])
            .agg([Agg::sum("ArrDelay"), Agg::max("DepDelay")])?,
        "millions" => frame
            .groupby(["FlightNum", "Month", "DayofMonth"])
            .split_out(4)
            .agg([Agg::mean("DepDelay")])?,
        "nunique" => frame.groupby(["Origin"]).col("Dest").nunique()?,
        "with_columns" => frame
            .with_columns([(col("DepDelay") - col("ArrDelay")).alias("Gain")])?
            .groupby(["UniqueCarrier"])
            .agg([
                Agg::mean("Gain").alias("gain_mean"),
                Agg::max("Gain").alias("gain_max"),
            ])?,
        other => anyhow::bail!("unknown query {other} (one of {QUERIES:?})"),
    })
}

/// Sum of every aggregated (non-key) column over all groups, rounded to 3 decimals.
fn check(out: &PlFrame, keys: usize) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for c in out.columns().iter().skip(keys) {
        let s = c.as_materialized_series().cast(&DataType::Float64)?;
        total += s.f64()?.sum().unwrap_or(0.0);
    }
    Ok((total * 1e3).round() / 1e3)
}

fn key_count(name: &str) -> usize {
    match name {
        "filter_two_keys" => 2,
        "millions" => 3,
        _ => 1,
    }
}

fn run_cell(data: &str, format: &str, name: &str, json: bool) -> anyhow::Result<()> {
    let writer = std::path::Path::new(data)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let open = || -> anyhow::Result<DataFrame> {
        Ok(match format {
            "csv" => read_csv(&format!("{data}/*.csv"), CsvOptions::default())?,
            "parquet" => read_parquet(&format!("{data}/*.parquet"), ParquetOptions::default())?,
            other => anyhow::bail!("unknown format {other}"),
        })
    };
    let rows = read_parquet(&format!("{data}/*.parquet"), ParquetOptions::default())?
        .len()?
        .compute()?;
    let mut config = Config::builtin().with_progress(Progress::Never);
    let mut variant = "threads".to_string();
    if let Some(mb) = arg_value("--budget-mb").and_then(|v| v.parse::<u64>().ok()) {
        config = config.with_memory_limit(Some(mb << 20));
        variant = format!("budget_{mb}MB");
    }
    let (t, result) = median_time(repeats(), || -> anyhow::Result<(f64, usize)> {
        let out = query(&open()?, name)?.compute_with(&config)?;
        Ok((check(&out, key_count(name))?, out.height()))
    });
    let (check, groups) = result?;
    let rss = peak_rss_bytes().unwrap_or(0);
    emit(
        json,
        &[
            ("bench", js(&format!("groupby_{name}"))),
            ("data", js(&writer)),
            ("format", js(format)),
            ("variant", js(&variant)),
            ("impl", js("rask")),
            ("n", rows.to_string()),
            ("groups", groups.to_string()),
            ("median_s", t.as_secs_f64().to_string()),
            ("check", check.to_string()),
            ("peak_rss_mb", (rss >> 20).to_string()),
        ],
        &format!(
            "{name:>16} {writer}/{format} [{variant}]: {:.3} s, {groups} groups, check {check}, peak RSS {} MB",
            t.as_secs_f64(),
            rss >> 20
        ),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let json = json_requested();
    let data = arg_value("--data").unwrap_or_else(|| {
        std::env::var("DF_BENCH_DATA")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data/flights").to_string())
    });
    let formats: Vec<String> = match arg_value("--format") {
        Some(f) => vec![f],
        None => vec!["parquet".into(), "csv".into()],
    };
    if let Some(name) = arg_value("--query")
        && formats.len() == 1
    {
        return run_cell(&data, &formats[0], &name, json);
    }
    // Each cell in its own process so its peak RSS is its own.
    let exe = std::env::current_exe()?;
    let queries: Vec<String> = match arg_value("--query") {
        Some(q) => vec![q],
        None => QUERIES.iter().map(|q| q.to_string()).collect(),
    };
    for format in &formats {
        for q in &queries {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--data", &data, "--format", format, "--query", q]);
            if let Some(mb) = arg_value("--budget-mb") {
                cmd.args(["--budget-mb", &mb]);
            }
            if json {
                cmd.arg("--json");
            }
            let status = cmd.status()?;
            anyhow::ensure!(status.success(), "cell {format}/{q} failed");
        }
    }
    Ok(())
}
