//! Dask's DataFrame tutorial: mean departure delay per origin airport over one CSV file per
//! year, three ways that must give the same numbers, plus the other DataFrame workloads.
//!
//! 1. [`mean_delay_sequential`]: a plain loop, one file at a time with eager polars, keeping a
//!    running sum and count per airport.
//! 2. [`mean_delay_by_hand`]: the same with `#[rask::delayed]`: one task per file returning
//!    sums and counts per airport, one task combining them. Files are read in parallel.
//! 3. [`mean_delay_dataframe`]: the one-liner,
//!    `read_csv("flights/*.csv").groupby(["Origin"]).col("DepDelay").mean()`, which lowers to
//!    the same shape of graph (a partial aggregate fused into each file's read, then a tree of
//!    combines) and reads only the two columns it needs.
//!
//! Also: [`mean_of_column`] over Parquet files anywhere `rask-io` reaches (a local folder or
//! an S3 bucket), [`jsonl_to_parquet`] (convert JSON-lines files to Parquet in parallel), and
//! [`describe_flights`].

use std::collections::BTreeMap;
use std::path::Path;

use rask::dataframe::polars::prelude::{
    self as pl, ChunkAgg, CsvReadOptions, IntoLazy, SerReader, col,
};
use rask::dataframe::{
    CsvOptions, DataFrame, ParquetOptions, Partition, read_csv, read_ndjson, read_parquet,
};
use rask::prelude::*;

/// Mean `DepDelay` per `Origin`, sorted by airport.
pub type MeanDelays = BTreeMap<String, f64>;

fn csv_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no .csv files in {}", dir.display());
    Ok(files)
}

fn read_delays(path: &Path) -> pl::PolarsResult<pl::DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_columns(Some(["Origin".into(), "DepDelay".into()].into()))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
}

/// Sums and non-null counts of `DepDelay` per `Origin` in one frame.
fn sums_and_counts(df: pl::DataFrame) -> pl::PolarsResult<pl::DataFrame> {
    df.lazy()
        .group_by([col("Origin")])
        .agg([
            col("DepDelay")
                .cast(pl::DataType::Float64)
                .sum()
                .alias("sum"),
            col("DepDelay")
                .count()
                .cast(pl::DataType::Int64)
                .alias("count"),
        ])
        .collect()
}

fn to_means(parts: Vec<pl::DataFrame>) -> pl::PolarsResult<MeanDelays> {
    let mut acc: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for p in parts {
        let origin = p.column("Origin")?.str()?.clone();
        let sum = p.column("sum")?.f64()?.clone();
        let count = p.column("count")?.i64()?.clone();
        for ((o, s), c) in origin.iter().zip(sum.iter()).zip(count.iter()) {
            let e = acc.entry(o.unwrap_or("").to_string()).or_default();
            e.0 += s.unwrap_or(0.0);
            e.1 += c.unwrap_or(0);
        }
    }
    Ok(acc
        .into_iter()
        .filter(|(_, (_, c))| *c > 0)
        .map(|(o, (s, c))| (o, s / c as f64))
        .collect())
}

/// 1. A sequential loop over the files.
pub fn mean_delay_sequential(dir: &Path) -> anyhow::Result<MeanDelays> {
    let mut parts = Vec::new();
    for f in csv_files(dir)? {
        parts.push(sums_and_counts(read_delays(&f)?)?);
    }
    Ok(to_means(parts)?)
}

#[rask::delayed(pure)]
fn file_sums(path: String) -> rask::Result<Partition> {
    let df = read_delays(Path::new(&path)).map_err(|e| RaskError::external(e).context(&path))?;
    Ok(Partition(sums_and_counts(df).map_err(RaskError::external)?))
}

/// 2. By hand with `delayed`: a task per file, a tree of tasks stacking the per-file sums
///    and counts, and one task turning them into means.
pub fn mean_delay_by_hand(dir: &Path, config: &Config) -> anyhow::Result<MeanDelays> {
    let parts: Vec<Delayed<Partition>> = csv_files(dir)?
        .into_iter()
        .map(|f| file_sums(f.display().to_string()))
        .collect();
    let stacked = rask::tree_reduce(parts, 4, |parts: &[&Partition]| {
        let mut out = parts[0].0.clone();
        for p in &parts[1..] {
            out.vstack_mut(&p.0).expect("same sums-and-counts schema");
        }
        Partition(out)
    })?;
    let means = stacked.try_map(|p: &Partition| {
        to_means(vec![p.0.clone()]).map(|m| m.into_iter().collect::<Vec<(String, f64)>>())
    });
    Ok(means.compute_with(config)?.into_iter().collect())
}

/// 3. The DataFrame one-liner.
pub fn mean_delay_dataframe(dir: &Path, config: &Config) -> anyhow::Result<MeanDelays> {
    let flights = read_csv(&format!("{}/*.csv", dir.display()), CsvOptions::default())?;
    let means = flights.groupby(["Origin"]).col("DepDelay").mean()?;
    let df = means.compute_with(config)?;
    let origin = df.column("Origin")?.str()?.clone();
    let mean = df.column("DepDelay")?.f64()?.clone();
    Ok(origin
        .iter()
        .zip(mean.iter())
        .filter_map(|(o, m)| Some((o?.to_string(), m?)))
        .collect())
}

/// The mean of one column over Parquet files (a glob of paths or URLs): only that column's
/// chunks are fetched.
pub fn mean_of_column(
    pattern: &str,
    column: &str,
    options: ParquetOptions,
    config: &Config,
) -> anyhow::Result<f64> {
    let frame = read_parquet(pattern, options)?;
    let partials = frame.select([
        col(column).cast(pl::DataType::Float64).sum().alias("sum"),
        col(column).count().cast(pl::DataType::Float64).alias("n"),
    ])?;
    let df = partials.compute_with(config)?;
    let sum: f64 = df.column("sum")?.f64()?.sum().unwrap_or(0.0);
    let n: f64 = df.column("n")?.f64()?.sum().unwrap_or(0.0);
    anyhow::ensure!(n > 0.0, "no values of {column}");
    Ok(sum / n)
}

/// Converts JSON-lines files to Parquet in parallel, one Parquet file per input file, into
/// `out_dir`; returns the written files.
pub fn jsonl_to_parquet(
    pattern: &str,
    out_dir: &str,
    config: &Config,
) -> anyhow::Result<Vec<String>> {
    let frame = read_ndjson(pattern, Default::default())?;
    Ok(frame
        .to_parquet(out_dir, Default::default())?
        .compute_with(config)?)
}

/// `describe()` of the flights' numeric columns.
pub fn describe_flights(dir: &Path, config: &Config) -> anyhow::Result<pl::DataFrame> {
    let flights: DataFrame = read_csv(&format!("{}/*.csv", dir.display()), CsvOptions::default())?;
    let numeric = flights.select([col("DepDelay"), col("ArrDelay"), col("Distance")])?;
    Ok(numeric.describe()?.compute_with(config)?)
}

/// The airports whose mean delays differ between two results by more than `tol`.
pub fn differences(a: &MeanDelays, b: &MeanDelays, tol: f64) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| {
            b.get(*k)
                .is_none_or(|w| (*v - w).abs() > tol * w.abs().max(1.0))
        })
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    out
}
