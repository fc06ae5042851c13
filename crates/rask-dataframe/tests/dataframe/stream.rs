//! The streaming general path (`stream` module): groupbys whose partitions are read batch by
//! batch (Parquet row groups, blocks of CSV lines) with every step run per batch, against
//! eager polars over the same rows.

use std::path::Path;

use rask_dataframe::polars::prelude::{DataFrame as PlFrame, *};
use rask_dataframe::{Agg, CsvOptions, DataFrame, ParquetOptions, read_csv, read_parquet};

use crate::common::{assert_frames_close, flights, sorted, write_csv, write_parquet};

/// `flights` with a second string key and a second float column.
fn wide_flights(n: usize, seed: u64) -> PlFrame {
    let df = flights(n, seed);
    df.lazy()
        .with_columns([
            when((col("Distance") % lit(3)).eq(lit(0)))
                .then(lit("AA"))
                .when((col("Distance") % lit(3)).eq(lit(1)))
                .then(lit("DL"))
                .otherwise(lit("UA"))
                .alias("Carrier"),
            (col("DepDelay") + (col("Distance") % lit(17)).cast(DataType::Float64) - lit(8.0))
                .alias("ArrDelay"),
        ])
        .collect()
        .unwrap()
}

/// Four files of `rows` rows, as Parquet (row groups of `rg` rows) and CSV, and their rows.
fn write_files(dir: &Path, rows: usize, rg: usize) -> PlFrame {
    let mut all: Option<PlFrame> = None;
    for i in 0..4u64 {
        let df = wide_flights(rows, 40 + i);
        write_parquet(&df, &dir.join(format!("f{i}.parquet")), rg);
        write_csv(&df, &dir.join(format!("f{i}.csv")));
        all = Some(match all {
            None => df,
            Some(a) => a.vstack(&df).unwrap(),
        });
    }
    all.unwrap()
}

type Query = fn(&DataFrame) -> rask_error::Result<DataFrame>;
/// A query's name, its rask form, its eager polars oracle, and its key columns.
type Shape = (
    &'static str,
    Query,
    fn(LazyFrame) -> LazyFrame,
    Vec<&'static str>,
);

/// The shapes of the benchmark's query matrix, each with its eager polars oracle.
fn shapes() -> Vec<Shape> {
    vec![
        (
            "filter, two keys, mean/std/count",
            |f| {
                f.filter(
                    col("Cancelled")
                        .eq(lit(0))
                        .and(col("Distance").gt(lit(1000))),
                )?
                .groupby(["Origin", "Carrier"])
                .agg([
                    Agg::mean("DepDelay"),
                    Agg::std("ArrDelay"),
                    Agg::count("DepDelay").alias("n"),
                ])
            },
            |lf| {
                lf.filter(
                    col("Cancelled")
                        .eq(lit(0))
                        .and(col("Distance").gt(lit(1000))),
                )
                .group_by([col("Origin"), col("Carrier")])
                .agg([
                    col("DepDelay").mean(),
                    col("ArrDelay").std(1),
                    col("DepDelay").count().alias("n"),
                ])
            },
            vec!["Origin", "Carrier"],
        ),
        (
            "with_columns feeding var, min, max",
            |f| {
                f.with_columns([(col("DepDelay") - col("ArrDelay")).alias("Gain")])?
                    .groupby(["Carrier"])
                    .agg([
                        Agg::var("Gain"),
                        Agg::min("Gain").alias("lo"),
                        Agg::max("Gain").alias("hi"),
                    ])
            },
            |lf| {
                lf.with_columns([(col("DepDelay") - col("ArrDelay")).alias("Gain")])
                    .group_by([col("Carrier")])
                    .agg([
                        col("Gain").var(1),
                        col("Gain").min().alias("lo"),
                        col("Gain").max().alias("hi"),
                    ])
            },
            vec!["Carrier"],
        ),
        (
            "nunique, first, last, size, sum",
            |f| {
                f.groupby(["Origin"]).agg([
                    Agg::nunique("Distance"),
                    Agg::first("ArrDelay").alias("first"),
                    Agg::last("ArrDelay").alias("last"),
                    Agg::size(),
                    Agg::sum("Cancelled"),
                ])
            },
            |lf| {
                lf.group_by([col("Origin")]).agg([
                    col("Distance").n_unique(),
                    col("ArrDelay").first().alias("first"),
                    col("ArrDelay").last().alias("last"),
                    len(),
                    col("Cancelled").sum(),
                ])
            },
            vec!["Origin"],
        ),
        (
            "an integer key with many groups, split_out",
            |f| {
                f.groupby(["Distance", "Year"])
                    .split_out(3)
                    .agg([Agg::mean("DepDelay"), Agg::count("ArrDelay")])
            },
            |lf| {
                lf.group_by([col("Distance"), col("Year")])
                    .agg([col("DepDelay").mean(), col("ArrDelay").count()])
            },
            vec!["Distance", "Year"],
        ),
    ]
}

#[test]
fn every_groupby_shape_streams_batches_and_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_files(dir.path(), 6000, 1000);
    let pattern = |ext: &str| format!("{}/*.{ext}", dir.path().display());
    // CSV: blocks of 12 KB, so each partition is read in several batches of lines.
    let frames = [
        (
            "parquet",
            read_parquet(&pattern("parquet"), ParquetOptions::default()).unwrap(),
        ),
        (
            "csv",
            read_csv(
                &pattern("csv"),
                CsvOptions::default().with_blocksize(48_000),
            )
            .unwrap(),
        ),
    ];
    for (format, frame) in &frames {
        for (name, query, oracle, keys) in shapes() {
            let q = query(frame).unwrap();
            // Parquet string keys are grouped by dictionary codes; CSV has no dictionaries.
            let plan = q.explain();
            assert!(plan.contains("streamed in batches"), "{plan}");
            let string_keyed = keys.iter().all(|k| ["Origin", "Carrier"].contains(k));
            assert_eq!(
                plan.contains("as dictionary codes"),
                *format == "parquet" && string_keyed,
                "{format} {name}: {plan}"
            );
            let before = rask_dataframe::streamed_batches();
            let got = rask::compute(&q).unwrap();
            let batches = rask_dataframe::streamed_batches() - before;
            // Four files of six row groups (Parquet) or several line blocks (CSV) each.
            assert!(
                batches >= 16,
                "{format} {name}: only {batches} batches streamed"
            );
            let want = oracle(all.clone().lazy()).collect().unwrap();
            assert_frames_close(&sorted(&got, &keys), &sorted(&want, &keys));
        }
    }
}

#[test]
fn quoted_csv_strings_and_row_group_pruning_give_the_same_groups() {
    // Every string quoted, as pyarrow writes CSV; and a filter that rules out row groups by
    // their statistics, so some batches are never read.
    let dir = tempfile::tempdir().unwrap();
    let mut df = wide_flights(5000, 3)
        .sort(["Distance"], Default::default())
        .unwrap();
    CsvWriter::new(std::fs::File::create(dir.path().join("q.csv")).unwrap())
        .with_quote_style(QuoteStyle::NonNumeric)
        .finish(&mut df)
        .unwrap();
    write_parquet(&df, &dir.path().join("q.parquet"), 500);
    let oracle = df
        .clone()
        .lazy()
        .filter(col("Distance").gt(lit(2500)))
        .group_by([col("Origin"), col("Carrier")])
        .agg([col("DepDelay").sum(), col("ArrDelay").max()])
        .collect()
        .unwrap();
    for frame in [
        read_csv(
            &format!("{}/q.csv", dir.path().display()),
            CsvOptions::default().with_blocksize(20_000),
        )
        .unwrap(),
        read_parquet(
            &format!("{}/q.parquet", dir.path().display()),
            ParquetOptions::default(),
        )
        .unwrap(),
    ] {
        let q = frame
            .filter(col("Distance").gt(lit(2500)))
            .unwrap()
            .groupby(["Origin", "Carrier"])
            .agg([Agg::sum("DepDelay"), Agg::max("ArrDelay")])
            .unwrap();
        let got = rask::compute(&q).unwrap();
        let keys = ["Origin", "Carrier"];
        assert_frames_close(&sorted(&got, &keys), &sorted(&oracle, &keys));
    }
}

#[test]
fn a_bad_csv_value_in_a_later_batch_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let df = wide_flights(3000, 5);
    let path = dir.path().join("bad.csv");
    write_csv(&df, &path);
    // Line 2500 of the file (a data line in a later batch) gets a value that is not a number.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let fields: Vec<&str> = lines[2499].split(',').collect();
    let distance = df.get_column_index("Distance").unwrap();
    let mut broken: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    broken[distance] = "far".into();
    lines[2499] = broken.join(",");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    // A given schema: no inference, so the bad line is met by a batch at compute time.
    let options = CsvOptions {
        schema: Some((**df.schema()).clone()),
        ..CsvOptions::default().with_blocksize(40_000)
    };
    let frame = read_csv(path.to_str().unwrap(), options).unwrap();
    let q = frame
        .filter(col("Cancelled").eq(lit(0)))
        .unwrap()
        .groupby(["Origin", "Carrier"])
        .agg([Agg::std("Distance")])
        .unwrap();
    let err = rask::compute(&q).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv") && err.contains("line 2500"),
        "{err}"
    );
}

#[test]
fn string_keys_from_other_writers_with_nulls_and_many_values() {
    // pyarrow's files: a dictionary-encoded key with nulls, version-1 and -2 pages, and
    // dictionaries falling back to PLAIN pages for the values.
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../datasets/parquet-writers"
    );
    for file in [
        "pyarrow-v2-dictionary.parquet",
        "pyarrow-v1-fallback.parquet",
    ] {
        let path = format!("{fixtures}/{file}");
        let frame = read_parquet(&path, ParquetOptions::default()).unwrap();
        let q = frame
            .filter(col("I32").gt(lit(-200)))
            .unwrap()
            .groupby(["Origin"])
            .agg([
                Agg::sum("FPlain"),
                Agg::mean("IDict"),
                Agg::std("FFew"),
                Agg::size(),
            ])
            .unwrap();
        let got = rask::compute(&q).unwrap();
        let eager = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let want = eager
            .lazy()
            .filter(col("I32").gt(lit(-200)))
            .group_by([col("Origin")])
            .agg([
                col("FPlain").sum(),
                col("IDict").mean(),
                col("FFew").std(1),
                len(),
            ])
            .collect()
            .unwrap();
        assert!(want.column("Origin").unwrap().null_count() > 0);
        assert_frames_close(&sorted(&got, &["Origin"]), &sorted(&want, &["Origin"]));
    }
    // A key of thousands of distinct strings (polars may write it without a dictionary),
    // with a second, few-valued key.
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let df = df!(
        "tail" => (0..n).map(|i| format!("N{:05}", (i * 7919) % 6007)).collect::<Vec<_>>(),
        "carrier" => (0..n).map(|i| ["AA", "DL", "UA"][i % 3]).collect::<Vec<_>>(),
        "v" => (0..n).map(|i| (i % 101) as f64 - 50.0).collect::<Vec<_>>(),
    )
    .unwrap();
    write_parquet(&df, &dir.path().join("t.parquet"), 3000);
    let frame = read_parquet(
        &format!("{}/t.parquet", dir.path().display()),
        ParquetOptions::default(),
    )
    .unwrap();
    let got = rask::compute(
        &frame
            .groupby(["tail", "carrier"])
            .agg([Agg::mean("v"), Agg::max("v").alias("hi")])
            .unwrap(),
    )
    .unwrap();
    let want = df
        .lazy()
        .group_by([col("tail"), col("carrier")])
        .agg([col("v").mean(), col("v").max().alias("hi")])
        .collect()
        .unwrap();
    let keys = ["tail", "carrier"];
    assert_frames_close(&sorted(&got, &keys), &sorted(&want, &keys));
}
