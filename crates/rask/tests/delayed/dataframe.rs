//! `rask::dataframe::from_delayed`: partitions built by delayed functions, checked against
//! the declared schema, and the flights "by hand" pattern against the DataFrame one-liner.

use rask::dataframe::polars::prelude::*;
use rask::dataframe::{DataFrame as Frame, Partition, from_delayed};
use rask::prelude::ComputeExt;

#[rask::delayed(pure)]
fn load(i: i64) -> Partition {
    let keys: Vec<&str> = (0..10)
        .map(|j| if (i + j) % 3 == 0 { "a" } else { "b" })
        .collect();
    let vals: Vec<f64> = (0..10).map(|j| (i * 10 + j) as f64).collect();
    Partition(df!("k" => keys, "v" => vals).unwrap())
}

fn schema() -> Schema {
    Schema::from_iter([
        Field::new("k".into(), DataType::String),
        Field::new("v".into(), DataType::Float64),
    ])
}

#[test]
fn from_delayed_partitions_groupby_matches_eager() {
    let parts: Vec<_> = (0..4).map(load).collect();
    let frame: Frame = from_delayed(&parts, schema()).unwrap();
    assert_eq!(frame.npartitions(), 4);
    let got = frame
        .groupby(["k"])
        .col("v")
        .sum()
        .unwrap()
        .compute()
        .unwrap();
    let got = got.sort(["k"], Default::default()).unwrap();
    let mut all = Vec::new();
    for i in 0..4 {
        all.push(load(i).compute().unwrap().0.lazy());
    }
    let want = concat(all, UnionArgs::default())
        .unwrap()
        .group_by([col("k")])
        .agg([col("v").sum()])
        .sort(["k"], Default::default())
        .collect()
        .unwrap();
    assert!(got.equals(&want), "{got}\n{want}");
}

#[rask::delayed]
fn wrong(i: i64) -> Partition {
    Partition(df!("k" => [i]).unwrap())
}

#[test]
fn from_delayed_with_the_wrong_schema_names_the_partition() {
    let parts = vec![load(0), wrong(1)];
    let err = from_delayed(&parts, schema())
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("partition 1") && err.contains("declared"),
        "{err}"
    );
    assert!(from_delayed(&[], schema()).is_err());
}
