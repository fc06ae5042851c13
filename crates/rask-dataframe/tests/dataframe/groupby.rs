use rask::prelude::ComputeExt;
use rask_dataframe::polars::prelude::*;
use rask_dataframe::{Agg, DataFrame as RDataFrame};

use crate::common::*;

fn all_aggs() -> Vec<Agg> {
    vec![
        Agg::sum("DepDelay").alias("sum"),
        Agg::mean("DepDelay").alias("mean"),
        Agg::count("DepDelay").alias("count"),
        Agg::size(),
        Agg::min("DepDelay").alias("min"),
        Agg::max("Distance").alias("max"),
        Agg::var("DepDelay").alias("var"),
        Agg::std("Distance").alias("std"),
        Agg::nunique("Distance").alias("nunique"),
        Agg::sum("Distance").alias("dsum"),
    ]
}

fn oracle(df: &DataFrame, keys: &[&str]) -> DataFrame {
    let out = df
        .clone()
        .lazy()
        .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg([
            col("DepDelay").sum().alias("sum"),
            col("DepDelay").mean().alias("mean"),
            col("DepDelay").count().alias("count"),
            len(),
            col("DepDelay").min().alias("min"),
            col("Distance").max().alias("max"),
            col("DepDelay").var(1).alias("var"),
            col("Distance").std(1).alias("std"),
            col("Distance").n_unique().alias("nunique"),
            col("Distance").sum().alias("dsum"),
        ])
        .collect()
        .unwrap();
    sorted(&out, keys)
}

#[test]
fn groupby_all_aggregations_match_eager_polars_under_many_partitionings() {
    let df = flights(2000, 1);
    for keys in [vec!["Origin"], vec!["Origin", "Year"]] {
        let want = oracle(&df, &keys);
        for nparts in [1, 3, 7, 40] {
            for (split_every, split_out) in [(2, 1), (8, 1), (3, 4)] {
                let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
                let got = frame
                    .groupby(&keys)
                    .split_every(split_every)
                    .split_out(split_out)
                    .agg(all_aggs())
                    .unwrap();
                assert_eq!(got.npartitions(), split_out);
                let got = sorted(&got.compute().unwrap(), &keys);
                assert_frames_close(&got, &want);
            }
        }
    }
}

#[test]
fn dask_spelling_of_groupby_column_mean() {
    let df = flights(500, 2);
    let frame = RDataFrame::from_polars_split(df.clone(), 4).unwrap();
    let got = sorted(
        &frame
            .groupby(["Origin"])
            .col("DepDelay")
            .mean()
            .unwrap()
            .compute()
            .unwrap(),
        &["Origin"],
    );
    let want = sorted(
        &df.lazy()
            .group_by([col("Origin")])
            .agg([col("DepDelay").mean()])
            .collect()
            .unwrap(),
        &["Origin"],
    );
    assert_frames_close(&got, &want);
    assert_eq!(got.get_column_names(), ["Origin", "DepDelay"]);
}

#[test]
fn first_and_last_follow_partition_order() {
    let df = flights(300, 3);
    let frame = RDataFrame::from_polars_split(df.clone(), 5).unwrap();
    let got = frame
        .groupby(["Origin"])
        .split_every(2)
        .agg([Agg::first("Distance"), Agg::last("DepDelay")])
        .unwrap();
    let got = sorted(&got.compute().unwrap(), &["Origin"]);
    let want = sorted(
        &df.lazy()
            .group_by([col("Origin")])
            .agg([col("Distance").first(), col("DepDelay").last()])
            .collect()
            .unwrap(),
        &["Origin"],
    );
    assert_frames_close(&got, &want);
}

#[test]
fn groupby_after_filter_and_with_columns() {
    let df = flights(1000, 4);
    let frame = RDataFrame::from_polars_split(df.clone(), 6).unwrap();
    let got = frame
        .filter(col("Distance").gt(lit(1000)))
        .unwrap()
        .with_column((col("DepDelay") * lit(2.0)).alias("d2"))
        .unwrap()
        .groupby(["Origin"])
        .agg([Agg::mean("d2"), Agg::count("d2").alias("n")])
        .unwrap();
    let got = sorted(&got.compute().unwrap(), &["Origin"]);
    let want = df
        .lazy()
        .filter(col("Distance").gt(lit(1000)))
        .with_column((col("DepDelay") * lit(2.0)).alias("d2"))
        .group_by([col("Origin")])
        .agg([col("d2").mean(), col("d2").count().alias("n")])
        .collect()
        .unwrap();
    assert_frames_close(&got, &sorted(&want, &["Origin"]));
}

#[test]
fn groupby_bad_arguments_are_errors_naming_them() {
    let frame = RDataFrame::from_polars(flights(10, 5));
    let err = frame
        .groupby(["Nope"])
        .col("DepDelay")
        .mean()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Nope") && err.contains("keys"), "{err}");
    let err = frame
        .groupby(["Origin"])
        .col("Missing")
        .sum()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Missing"), "{err}");
    let err = frame
        .groupby(["Origin"])
        .split_every(1)
        .col("DepDelay")
        .sum()
        .unwrap_err()
        .to_string();
    assert!(err.contains("split_every"), "{err}");
    let err = frame
        .groupby(["Origin"])
        .split_out(0)
        .col("DepDelay")
        .sum()
        .unwrap_err()
        .to_string();
    assert!(err.contains("split_out"), "{err}");
    let err = frame
        .groupby(["Origin"])
        .agg(Vec::<Agg>::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("aggs"), "{err}");
    // A mean of strings is a type error at build time, naming the column.
    let err = frame
        .groupby(["Year"])
        .col("Origin")
        .var()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Origin") && err.contains("numeric"), "{err}");
}
