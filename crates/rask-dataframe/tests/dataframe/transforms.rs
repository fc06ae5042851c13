use rask::prelude::ComputeExt;
use rask_dataframe::DataFrame as RDataFrame;
use rask_dataframe::polars::prelude::*;

use crate::common::*;

#[test]
fn per_partition_transforms_match_eager_polars() {
    let df = flights(800, 11);
    for nparts in [1, 4, 9] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        let got = frame
            .filter(col("Cancelled").eq(lit(0)))
            .unwrap()
            .with_columns([(col("Distance") / lit(10)).alias("d10")])
            .unwrap()
            .rename(&["Origin"], &["origin"])
            .unwrap()
            .drop(&["Year"])
            .unwrap()
            .cast(&[("Distance", DataType::Float64)])
            .unwrap()
            .select([col("origin"), col("Distance"), col("d10"), col("DepDelay")])
            .unwrap();
        // Everything above is fused into the partitions' tasks.
        assert_eq!(got.npartitions(), nparts);
        let plan = got.explain();
        assert!(plan.contains("FILTER") && plan.contains("RENAME"), "{plan}");
        let got = got.compute().unwrap();
        let want = df
            .clone()
            .lazy()
            .filter(col("Cancelled").eq(lit(0)))
            .with_columns([(col("Distance") / lit(10)).alias("d10")])
            .rename(["Origin"], ["origin"], true)
            .drop(by_name(["Year"], true, false))
            .with_column(col("Distance").cast(DataType::Float64))
            .select([col("origin"), col("Distance"), col("d10"), col("DepDelay")])
            .collect()
            .unwrap();
        assert_frames_close(&got, &want);
    }
}

#[test]
fn fill_null_drop_nulls_and_map_partitions() {
    let df = flights(400, 12);
    let frame = RDataFrame::from_polars_split(df.clone(), 3).unwrap();
    let filled = frame.fill_null(lit(0.0)).unwrap().compute().unwrap();
    let want = df.clone().lazy().fill_null(lit(0.0)).collect().unwrap();
    assert_frames_close(&filled, &want);
    let dropped = frame
        .drop_nulls(Some(&["DepDelay"]))
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(
        dropped.height(),
        df.column("DepDelay").unwrap().len() - df.column("DepDelay").unwrap().null_count()
    );
    let schema = Schema::from_iter([Field::new("n".into(), IDX_DTYPE)]);
    let heights = frame
        .map_partitions(schema, |p| df!("n" => [p.height() as IdxSize]))
        .unwrap()
        .compute()
        .unwrap();
    let total: u64 = heights
        .column("n")
        .unwrap()
        .as_materialized_series()
        .sum::<u64>()
        .unwrap();
    assert_eq!(heights.height(), 3);
    assert_eq!(total, 400);
}

#[test]
fn bad_transforms_name_the_step() {
    let frame = RDataFrame::from_polars(flights(10, 1));
    let err = frame
        .filter(col("Nope").gt(lit(1)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Nope") && err.contains("FILTER"), "{err}");
    let err = frame
        .rename(&["Origin", "Year"], &["o"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("new"), "{err}");
    assert!(frame.drop(&["Missing"]).is_err());
    // A failing closure names the task.
    let err = frame
        .map_partitions((**frame.schema()).clone(), |_| {
            Err(PolarsError::ComputeError("boom".into()))
        })
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("boom"), "{err}");
    // Partitions with different schemas.
    let err = RDataFrame::from_partitions(vec![df!("a" => [1]).unwrap(), df!("b" => [1]).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("partition 1"), "{err}");
    assert!(RDataFrame::from_polars_split(flights(3, 1), 0).is_err());
}
