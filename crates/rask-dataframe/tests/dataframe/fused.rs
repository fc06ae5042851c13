//! Groupbys the readers compute while reading (the fused kernels), end to end against eager
//! polars on the same data: Parquet with dictionary, plain and integer keys, CSV across byte
//! ranges, nulls in keys and values; and bad input through the same path still names the
//! file and line.

use rask::prelude::ComputeExt;
use rask_dataframe::polars::prelude::*;
use rask_dataframe::{Agg, CsvOptions, ParquetOptions, read_csv, read_parquet};

use crate::common::*;

/// `flights` with null origins, as the yearly files get them.
fn flights_with_null_keys(rows: usize) -> DataFrame {
    flights(rows, 11)
        .lazy()
        .with_column(
            when((col("Distance") % lit(13)).eq(lit(0)))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(col("Origin"))
                .alias("Origin"),
        )
        .collect()
        .unwrap()
}

fn aggs() -> Vec<Agg> {
    vec![
        Agg::mean("DepDelay").alias("mean"),
        Agg::sum("DepDelay").alias("sum"),
        Agg::count("DepDelay").alias("count"),
        Agg::size(),
        Agg::min("Distance").alias("min"),
        Agg::max("Distance").alias("max"),
        Agg::sum("Distance").alias("dsum"),
        Agg::mean("Cancelled").alias("cancelled"),
        Agg::min("DepDelay").alias("dmin"),
        Agg::max("DepDelay").alias("dmax"),
    ]
}

fn oracle(df: &DataFrame, key: &str) -> DataFrame {
    let out = df
        .clone()
        .lazy()
        .group_by([col(key)])
        .agg([
            col("DepDelay").mean().alias("mean"),
            col("DepDelay").sum().alias("sum"),
            col("DepDelay").count().alias("count"),
            len(),
            col("Distance").min().alias("min"),
            col("Distance").max().alias("max"),
            col("Distance").sum().alias("dsum"),
            col("Cancelled").mean().alias("cancelled"),
            col("DepDelay").min().alias("dmin"),
            col("DepDelay").max().alias("dmax"),
        ])
        .collect()
        .unwrap();
    sorted(&out, &[key])
}

#[test]
fn fused_parquet_groupby_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = flights_with_null_keys(6000);
    write_yearly_files(&all, dir.path(), 256);
    for key in ["Origin", "Year"] {
        let want = oracle(&all, key);
        for per in [None, Some(1), Some(3)] {
            let options = ParquetOptions {
                row_groups_per_partition: per,
                ..Default::default()
            };
            let frame =
                read_parquet(&format!("{}/*.parquet", dir.path().display()), options).unwrap();
            let got = frame.groupby([key]).agg(aggs()).unwrap().compute().unwrap();
            assert_frames_close(&sorted(&got, &[key]), &want);
        }
    }
}

#[test]
fn fused_csv_groupby_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = flights_with_null_keys(6000);
    write_yearly_files(&all, dir.path(), 256);
    for key in ["Origin", "Year"] {
        let want = oracle(&all, key);
        for blocksize in [1 << 20, 7000, 999] {
            let frame = read_csv(
                &format!("{}/*.csv", dir.path().display()),
                CsvOptions::default().with_blocksize(blocksize),
            )
            .unwrap();
            let got = frame.groupby([key]).agg(aggs()).unwrap().compute().unwrap();
            assert_frames_close(&sorted(&got, &[key]), &want);
        }
    }
}

#[test]
fn quoted_csv_fields_take_the_general_path_with_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let all = flights_with_null_keys(3000);
    // Quote every string field: the kernel declines, the polars reader handles it.
    let mut df = all.clone();
    let mut f = std::fs::File::create(dir.path().join("q.csv")).unwrap();
    CsvWriter::new(&mut f)
        .with_quote_style(QuoteStyle::NonNumeric)
        .finish(&mut df)
        .unwrap();
    let frame = read_csv(
        &format!("{}/q.csv", dir.path().display()),
        CsvOptions::default().with_blocksize(10_000),
    )
    .unwrap();
    let got = frame
        .groupby(["Origin"])
        .agg(aggs())
        .unwrap()
        .compute()
        .unwrap();
    assert_frames_close(&sorted(&got, &["Origin"]), &oracle(&all, "Origin"));
}

#[test]
fn malformed_value_in_a_fused_csv_groupby_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("Origin,DepDelay\n");
    for i in 0..1500 {
        text.push_str(&format!("SFO,{}.5\n", i % 40));
    }
    text.push_str("LAX,late\n");
    text.push_str("LAX,3.5\n");
    std::fs::write(dir.path().join("bad.csv"), &text).unwrap();
    for blocksize in [1 << 20, 2000] {
        let err = read_csv(
            &format!("{}/bad.csv", dir.path().display()),
            CsvOptions::default().with_blocksize(blocksize),
        )
        .and_then(|frame| frame.groupby(["Origin"]).col("DepDelay").mean())
        .and_then(|means| means.compute())
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bad.csv") && err.contains("line 1502"),
            "blocksize {blocksize}: {err}"
        );
    }
}

#[test]
fn corrupt_column_chunk_in_a_fused_parquet_groupby_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let all = flights_with_null_keys(2000);
    let path = dir.path().join("broken.parquet");
    write_parquet(&all, &path, 500);
    // Overwrite every page, keeping the magic and the footer readable.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    for b in &mut bytes[4..n - 8 - footer] {
        *b = 0xAB;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = read_parquet(path.to_str().unwrap(), ParquetOptions::default())
        .and_then(|frame| frame.groupby(["Origin"]).col("DepDelay").mean())
        .and_then(|means| means.compute())
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.parquet"), "{err}");
}
