use rask::prelude::ComputeExt;
use rask_dataframe::polars::prelude::*;
use rask_dataframe::{CsvOptions, DataFrame as RDataFrame, ParquetOptions, read_csv, read_parquet};

use crate::common::*;

#[test]
fn schema_columns_dtypes_npartitions() {
    let df = flights(100, 1);
    let frame = RDataFrame::from_polars_split(df.clone(), 4).unwrap();
    assert_eq!(frame.npartitions(), 4);
    assert_eq!(
        frame.columns(),
        ["Year", "Origin", "DepDelay", "Distance", "Cancelled"]
    );
    assert_eq!(
        frame.dtypes()[2],
        ("DepDelay".to_string(), DataType::Float64)
    );
    assert_eq!(frame.schema(), df.schema());
}

#[test]
fn head_reads_only_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let all = flight_files(dir.path(), 3000);
    let first_file = all
        .clone()
        .lazy()
        .filter(col("Year").eq(lit(1990)))
        .collect()
        .unwrap();
    let csv = read_csv(
        &format!("{}/*.csv", dir.path().display()),
        CsvOptions::default().with_blocksize(2000),
    )
    .unwrap();
    let h = csv.head(5).unwrap();
    assert!(h.explain().contains("limit 5"), "{}", h.explain());
    assert_frames_close(&h.compute().unwrap(), &first_file.head(Some(5)));
    // Across split partitions: each stops at its own lines, none is read twice.
    let n = first_file.height() + 7;
    let h = csv.head_from(n, usize::MAX).unwrap();
    assert_frames_close(&h.compute().unwrap(), &all.head(Some(n)));
    let pq = read_parquet(
        &format!("{}/*.parquet", dir.path().display()),
        ParquetOptions::default(),
    )
    .unwrap();
    // More rows than the first file holds: footers say how many files to read.
    let n = first_file.height() + 10;
    let h = pq.head(n).unwrap();
    assert!(
        h.explain().contains("first 2 partitions"),
        "{}",
        h.explain()
    );
    assert_frames_close(&h.compute().unwrap(), &all.head(Some(n)));
}

#[test]
fn len_unique_nunique_value_counts() {
    let df = flights(700, 3);
    let frame = RDataFrame::from_polars_split(df.clone(), 5).unwrap();
    assert_eq!(frame.len().unwrap().compute().unwrap(), 700);
    assert_eq!(
        frame
            .filter(col("Cancelled").eq(lit(1)))
            .unwrap()
            .len()
            .unwrap()
            .compute()
            .unwrap(),
        df.column("Cancelled")
            .unwrap()
            .as_materialized_series()
            .sum::<i64>()
            .unwrap() as usize
    );
    let got = sorted(
        &frame.unique("Origin").unwrap().compute().unwrap(),
        &["Origin"],
    );
    let want = sorted(
        &df.clone()
            .lazy()
            .select([col("Origin").unique()])
            .collect()
            .unwrap(),
        &["Origin"],
    );
    assert_frames_close(&got, &want);
    let want_n = df
        .column("DepDelay")
        .unwrap()
        .as_materialized_series()
        .n_unique()
        .unwrap();
    assert_eq!(
        frame.nunique("DepDelay").unwrap().compute().unwrap(),
        want_n
    );
    let vc = frame.value_counts("Origin").unwrap().compute().unwrap();
    let want = df
        .clone()
        .lazy()
        .group_by([col("Origin")])
        .agg([len().alias("count")])
        .sort_by_exprs(
            [col("count"), col("Origin")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()
        .unwrap();
    assert_frames_close(&vc, &want);
    assert!(frame.unique("Nope").is_err());
}

#[test]
fn describe_matches_hand_computation() {
    let df = df!("x" => [Some(1.0), Some(2.0), None, Some(4.0), Some(8.0)], "k" => ["a", "b", "a", "b", "c"], "n" => [1i64, 2, 3, 4, 5]).unwrap();
    let frame = RDataFrame::from_polars_split(df, 3).unwrap();
    let d = frame.describe().unwrap().compute().unwrap();
    assert_eq!(d.get_column_names(), ["statistic", "x", "n"]);
    let x: Vec<Option<f64>> = d.column("x").unwrap().f64().unwrap().iter().collect();
    let mean = 15.0 / 4.0;
    let var = [1.0f64, 2.0, 4.0, 8.0]
        .iter()
        .map(|v| (v - mean).powi(2))
        .sum::<f64>()
        / 3.0;
    assert_eq!(x[0], Some(4.0));
    assert_eq!(x[1], Some(1.0));
    assert!((x[2].unwrap() - mean).abs() < 1e-12);
    assert!((x[3].unwrap() - var.sqrt()).abs() < 1e-12);
    assert_eq!((x[4], x[8]), (Some(1.0), Some(8.0)));
    // Linear percentiles of 1, 2, 4, 8 (the null left out), by hand.
    assert_eq!((x[5], x[6], x[7]), (Some(1.75), Some(3.0), Some(5.0)));
    let stats: Vec<Option<&str>> = d
        .column("statistic")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    let stats: Vec<&str> = stats.into_iter().flatten().collect();
    assert_eq!(
        stats,
        [
            "count",
            "null_count",
            "mean",
            "std",
            "min",
            "25%",
            "50%",
            "75%",
            "max"
        ]
    );
    let n: Vec<Option<f64>> = d.column("n").unwrap().f64().unwrap().iter().collect();
    assert_eq!(n[0], Some(5.0));
    assert_eq!(n[2], Some(3.0));
    assert_eq!(n[6], Some(3.0));
    let only_strings = RDataFrame::from_polars(df!("k" => ["a"]).unwrap());
    assert!(only_strings.describe().is_err());
}

/// Polars' linear quantile of column `c`: the oracle for describe's percentiles.
fn exact_quantile(df: &DataFrame, c: &str, q: f64) -> f64 {
    df.column(c)
        .unwrap()
        .as_materialized_series()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .quantile(q, QuantileMethod::Linear)
        .unwrap()
        .unwrap()
}

#[test]
fn describe_percentiles_match_polars() {
    // Partitions of at most 512 values keep them all: the percentiles are exact.
    let n = 3000;
    let df = df!(
        "a" => (0..n).map(|i| ((i * 7919) % 1009) as f64 * 0.5).collect::<Vec<_>>(),
        "b" => (0..n).map(|i| (i % 17 != 3).then_some((i * 31 % 503) as i64 - 200)).collect::<Vec<_>>(),
    )
    .unwrap();
    for parts in [6, 10, 25] {
        let d = RDataFrame::from_polars_split(df.clone(), parts)
            .unwrap()
            .describe()
            .unwrap()
            .compute()
            .unwrap();
        for c in ["a", "b"] {
            let got: Vec<Option<f64>> = d.column(c).unwrap().f64().unwrap().iter().collect();
            for (row, q) in [(5, 0.25), (6, 0.5), (7, 0.75)] {
                let want = exact_quantile(&df, c, q);
                let got = got[row].unwrap();
                assert!(
                    (got - want).abs() < 1e-9,
                    "{c} q{q} in {parts} parts: {got} vs {want}"
                );
            }
        }
    }
    // Larger partitions are sketched: each percentile lies between the exact quantiles a
    // little below and above it.
    let n = 200_000;
    let big = df!(
        "x" => (0..n).map(|i| ((i as u64 * 2_654_435_761) % 1_000_003) as f64).collect::<Vec<_>>(),
    )
    .unwrap();
    let d = RDataFrame::from_polars_split(big.clone(), 4)
        .unwrap()
        .describe()
        .unwrap()
        .compute()
        .unwrap();
    let got: Vec<Option<f64>> = d.column("x").unwrap().f64().unwrap().iter().collect();
    for (row, q) in [(5, 0.25), (6, 0.5), (7, 0.75)] {
        let (lo, hi) = (
            exact_quantile(&big, "x", q - 0.003),
            exact_quantile(&big, "x", q + 0.003),
        );
        let got = got[row].unwrap();
        assert!(lo <= got && got <= hi, "q{q}: {got} not in [{lo}, {hi}]");
    }
}

#[test]
fn to_parquet_and_to_csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let df = flights(500, 4);
    let frame = RDataFrame::from_polars_split(df.clone(), 3).unwrap();
    let out = dir.path().join("pq");
    let files = frame
        .to_parquet(out.to_str().unwrap(), Default::default())
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(files.len(), 3);
    let back = read_parquet(
        &format!("{}/*.parquet", out.display()),
        ParquetOptions::default(),
    )
    .unwrap();
    assert_eq!(back.npartitions(), 3);
    assert_frames_close(&back.compute().unwrap(), &df);
    let out = dir.path().join("csv");
    frame
        .to_csv(out.to_str().unwrap(), Default::default())
        .unwrap()
        .compute()
        .unwrap();
    let back = read_csv(&format!("{}/*.csv", out.display()), CsvOptions::default()).unwrap();
    assert_frames_close(&back.compute().unwrap(), &df);
}

#[test]
fn groupby_over_more_data_than_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    // 24 files of 100k rows: about 10 MB in memory as Float64/Int64/strings in all.
    let mut total = 0.0;
    let mut count = 0usize;
    for i in 0..24 {
        let df = flights(100_000, 100 + i);
        let s = df.column("DepDelay").unwrap().as_materialized_series();
        total += s.sum::<f64>().unwrap();
        count += s.len() - s.null_count();
        write_parquet(&df, &dir.path().join(format!("p{i:02}.parquet")), 50_000);
    }
    let frame = read_parquet(
        &format!("{}/*.parquet", dir.path().display()),
        ParquetOptions::default(),
    )
    .unwrap();
    let whole: u64 = (0..frame.npartitions()).count() as u64;
    assert_eq!(whole, 24);
    let means = frame
        .with_column(lit(1i32).alias("one"))
        .unwrap()
        .groupby(["one"])
        .col("DepDelay")
        .mean()
        .unwrap();
    // The budget is a fraction of the data: partitions must be read, reduced and freed.
    let config = rask::Config::builtin().with_memory_limit(Some(4 << 20));
    let got = rask::compute_with(&means, &config).unwrap();
    let got = got
        .column("DepDelay")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!((got - total / count as f64).abs() < 1e-9, "{got}");
}
