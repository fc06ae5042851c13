//! End-to-end: the DataFrame tutorial's three ways of computing the mean departure delay per
//! origin agree with each other and with eager polars over all files at once; JSON lines
//! convert to Parquet; `describe` runs over the flights columns.

use std::path::Path;

use rask::Config;
use rask::dataframe::polars::prelude::*;
use rask_examples::dataframe_tutorial::*;

/// A few small yearly files with nulls in DepDelay.
fn write_flights(dir: &Path) -> DataFrame {
    let origins = ["SFO", "LAX", "JFK", "ORD"];
    let mut all = Vec::new();
    for (y, year) in (2000..2004i64).enumerate() {
        let n = 200 + 37 * y;
        let origin: Vec<&str> = (0..n).map(|i| origins[(i * 7 + y) % 4]).collect();
        let delay: Vec<Option<f64>> = (0..n)
            .map(|i| {
                if i % 13 == 0 {
                    None
                } else {
                    Some(((i * 31 + y * 5) % 90) as f64 - 20.0)
                }
            })
            .collect();
        let arr: Vec<f64> = (0..n).map(|i| (i % 50) as f64).collect();
        let dist: Vec<i64> = (0..n).map(|i| 100 + (i as i64 * 17) % 2000).collect();
        let mut df = df!("Year" => vec![year; n], "Origin" => origin, "DepDelay" => delay, "ArrDelay" => arr, "Distance" => dist).unwrap();
        let mut f = std::fs::File::create(dir.join(format!("{year}.csv"))).unwrap();
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(&mut df)
            .unwrap();
        all.push(df.lazy());
    }
    concat(all, UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap()
}

#[test]
fn three_ways_give_the_same_means_as_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_flights(dir.path());
    let config = Config::default();
    let seq = mean_delay_sequential(dir.path()).unwrap();
    let by_hand = mean_delay_by_hand(dir.path(), &config).unwrap();
    let frame = mean_delay_dataframe(dir.path(), &config).unwrap();
    let want = all
        .lazy()
        .group_by([col("Origin")])
        .agg([col("DepDelay").mean()])
        .collect()
        .unwrap();
    let origins = want.column("Origin").unwrap().str().unwrap().clone();
    let means = want.column("DepDelay").unwrap().f64().unwrap().clone();
    assert_eq!(seq.len(), 4);
    for (o, m) in origins.iter().zip(means.iter()) {
        let (o, m) = (o.unwrap(), m.unwrap());
        for (name, got) in [
            ("sequential", &seq),
            ("delayed", &by_hand),
            ("dataframe", &frame),
        ] {
            assert!((got[o] - m).abs() < 1e-9, "{name} {o}: {} vs {m}", got[o]);
        }
    }
    assert!(differences(&seq, &frame, 1e-9).is_empty());
}

#[test]
fn jsonl_converts_to_parquet_and_describe_runs() {
    let dir = tempfile::tempdir().unwrap();
    for s in ["AAA", "BBB"] {
        let lines: String = (0..30)
            .map(|d| format!("{{\"date\":\"2020-01-{:02}\",\"symbol\":\"{s}\",\"close\":{}.25,\"volume\":{}}}\n", d % 28 + 1, d, d * 100))
            .collect();
        std::fs::write(dir.path().join(format!("{s}.jsonl")), lines).unwrap();
    }
    let out = dir.path().join("parquet");
    let files = jsonl_to_parquet(
        &format!("{}/*.jsonl", dir.path().display()),
        out.to_str().unwrap(),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(files.len(), 2);
    let mean = mean_of_column(
        &format!("{}/*.parquet", out.display()),
        "close",
        Default::default(),
        &Config::default(),
    )
    .unwrap();
    assert!((mean - (14.5 + 0.25)).abs() < 1e-12, "{mean}");

    let flights = tempfile::tempdir().unwrap();
    let all = write_flights(flights.path());
    let d = describe_flights(flights.path(), &Config::default()).unwrap();
    let count = d.column("DepDelay").unwrap().f64().unwrap().get(0).unwrap();
    let s = all.column("DepDelay").unwrap();
    assert_eq!(count as usize, s.len() - s.null_count());
}
