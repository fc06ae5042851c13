use rask::prelude::ComputeExt;
use rask_dataframe::polars::prelude::*;
use rask_dataframe::{CsvOptions, ParquetOptions, read_csv, read_ndjson, read_parquet};

use crate::common::*;

fn glob(dir: &std::path::Path, pat: &str) -> String {
    format!("{}/{pat}", dir.display())
}

#[test]
fn read_csv_over_a_glob_split_into_byte_ranges_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = flight_files(dir.path(), 3000);
    let want = sorted(
        &all,
        &["Year", "Origin", "Distance", "DepDelay", "Cancelled"],
    );
    for blocksize in [1 << 20, 5000, 777] {
        let frame = read_csv(
            &glob(dir.path(), "*.csv"),
            CsvOptions::default().with_blocksize(blocksize),
        )
        .unwrap();
        if blocksize < 10000 {
            assert!(
                frame.npartitions() > 3,
                "{} partitions",
                frame.npartitions()
            );
        } else {
            assert_eq!(frame.npartitions(), 3);
        }
        let got = frame.compute().unwrap();
        assert_eq!(
            got.height(),
            all.height(),
            "blocksize {blocksize}: no row lost or doubled"
        );
        assert_frames_close(
            &sorted(
                &got,
                &["Year", "Origin", "Distance", "DepDelay", "Cancelled"],
            ),
            &want,
        );
    }
}

#[test]
fn csv_groupby_mean_reads_only_the_needed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let all = flight_files(dir.path(), 2000);
    let frame = read_csv(
        &glob(dir.path(), "*.csv"),
        CsvOptions::default().with_blocksize(4000),
    )
    .unwrap();
    let means = frame.groupby(["Origin"]).col("DepDelay").mean().unwrap();
    let plan = means.explain();
    assert!(
        plan.contains(r#"columns ["DepDelay", "Origin"]"#)
            || plan.contains(r#"columns ["Origin", "DepDelay"]"#),
        "{plan}"
    );
    assert!(plan.contains("GROUPBY"), "{plan}");
    let got = sorted(&means.compute().unwrap(), &["Origin"]);
    let want = all
        .lazy()
        .group_by([col("Origin")])
        .agg([col("DepDelay").mean()])
        .collect()
        .unwrap();
    assert_frames_close(&got, &sorted(&want, &["Origin"]));
}

#[test]
fn csv_dtype_overrides_separator_and_null_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "k;v;w\nx;1;NA\ny;2;3.5\nx;NA;4\n").unwrap();
    let opts = CsvOptions::default()
        .with_separator(b';')
        .with_null_values(&["NA"])
        .with_dtypes(&[("v", DataType::Float64)]);
    let frame = read_csv(&glob(dir.path(), "a.csv"), opts).unwrap();
    assert_eq!(frame.dtypes()[1], ("v".to_string(), DataType::Float64));
    let got = frame.compute().unwrap();
    let want = df!("k" => ["x", "y", "x"], "v" => [Some(1.0), Some(2.0), None], "w" => [None, Some(3.5), Some(4.0)]).unwrap();
    assert_frames_close(&got, &want);
    let err = read_csv(
        &glob(dir.path(), "a.csv"),
        CsvOptions::default()
            .with_separator(b';')
            .with_dtypes(&[("zz", DataType::Int64)]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("zz"), "{err}");
}

#[test]
fn parquet_by_file_and_by_row_groups_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let all = flight_files(dir.path(), 3000);
    let keys = ["Year", "Origin", "Distance", "DepDelay", "Cancelled"];
    let want = sorted(&all, &keys);
    let by_file = read_parquet(&glob(dir.path(), "*.parquet"), ParquetOptions::default()).unwrap();
    assert_eq!(by_file.npartitions(), 3);
    assert_frames_close(&sorted(&by_file.compute().unwrap(), &keys), &want);
    let by_rg = read_parquet(
        &glob(dir.path(), "*.parquet"),
        ParquetOptions::default().with_row_groups_per_partition(3),
    )
    .unwrap();
    assert!(by_rg.npartitions() > 3);
    assert_frames_close(&sorted(&by_rg.compute().unwrap(), &keys), &want);
    // Row counts come from the footers.
    assert_eq!(by_rg.len().unwrap().compute().unwrap(), all.height());
}

#[test]
fn parquet_filters_skip_row_groups_by_statistics() {
    let dir = tempfile::tempdir().unwrap();
    // Sorted by Distance: each row group covers a narrow range.
    let all = flights(4000, 9)
        .sort(["Distance"], Default::default())
        .unwrap();
    write_parquet(&all, &dir.path().join("sorted.parquet"), 250);
    let frame = read_parquet(
        &glob(dir.path(), "*.parquet"),
        ParquetOptions::default().with_row_groups_per_partition(1),
    )
    .unwrap();
    assert_eq!(frame.npartitions(), 16);
    let q = frame
        .filter(col("Distance").gt_eq(lit(2800)))
        .unwrap()
        .select([col("Origin"), col("Distance")])
        .unwrap();
    assert!(
        q.npartitions() < 5,
        "{} partitions kept\n{}",
        q.npartitions(),
        q.explain()
    );
    let got = sorted(&q.compute().unwrap(), &["Distance", "Origin"]);
    let want = all
        .lazy()
        .filter(col("Distance").gt_eq(lit(2800)))
        .select([col("Origin"), col("Distance")])
        .collect()
        .unwrap();
    assert_frames_close(&got, &sorted(&want, &["Distance", "Origin"]));
    // A filter nothing matches keeps one (empty) partition with the right schema.
    let none = frame.filter(col("Distance").gt(lit(1_000_000))).unwrap();
    assert_eq!(none.npartitions(), 1);
    let out = none.compute().unwrap();
    assert_eq!(out.height(), 0);
    assert_eq!(out.width(), 5);
}

#[test]
fn read_ndjson_matches_eager_polars() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..50 {
        lines.push_str(&format!(
            "{{\"symbol\":\"S{}\",\"close\":{}.5,\"volume\":{}}}\n",
            i % 3,
            i,
            i * 10
        ));
    }
    std::fs::write(dir.path().join("a.jsonl"), &lines).unwrap();
    std::fs::write(dir.path().join("b.jsonl"), &lines).unwrap();
    let frame = read_ndjson(&glob(dir.path(), "*.jsonl"), Default::default()).unwrap();
    assert_eq!(frame.npartitions(), 2);
    let got = frame
        .groupby(["symbol"])
        .agg([
            rask_dataframe::Agg::sum("volume"),
            rask_dataframe::Agg::mean("close"),
        ])
        .unwrap();
    let got = sorted(&got.compute().unwrap(), &["symbol"]);
    let one = JsonReader::new(std::io::Cursor::new(lines.clone()))
        .with_json_format(JsonFormat::JsonLines)
        .finish()
        .unwrap();
    let both = concat([one.clone().lazy(), one.lazy()], UnionArgs::default()).unwrap();
    let want = both
        .group_by([col("symbol")])
        .agg([col("volume").sum(), col("close").mean()])
        .collect()
        .unwrap();
    assert_frames_close(&got, &sorted(&want, &["symbol"]));
}

#[test]
fn malformed_csv_row_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,b\n");
    // More rows than schema inference reads, so `b` is inferred as an integer.
    for i in 0..1500 {
        text.push_str(&format!("{i},{}\n", i * 2));
    }
    text.push_str("7,oops\n");
    text.push_str("8,16\n");
    std::fs::write(dir.path().join("bad.csv"), &text).unwrap();
    for blocksize in [1 << 20, 1000] {
        // Found while inferring dtypes (small file) or while reading a partition.
        let err = read_csv(
            &glob(dir.path(), "bad.csv"),
            CsvOptions::default().with_blocksize(blocksize),
        )
        .and_then(|frame| frame.compute())
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bad.csv") && err.contains("line 1502"),
            "blocksize {blocksize}: {err}"
        );
    }
    // A row with too many fields.
    std::fs::write(dir.path().join("ragged.csv"), "a,b\n1,2\n3,4,5\n").unwrap();
    let err = read_csv(&glob(dir.path(), "ragged.csv"), CsvOptions::default())
        .and_then(|f| f.compute())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ragged.csv"), "{err}");
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    flight_files(dir.path(), 300);
    // Missing file / empty glob.
    let err = read_csv(&glob(dir.path(), "nope.csv"), CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.csv"), "{err}");
    let err = read_parquet(&glob(dir.path(), "*.nothing"), ParquetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("*.nothing"), "{err}");
    // Corrupt and truncated Parquet.
    std::fs::write(
        dir.path().join("corrupt.parquet"),
        b"PAR1 this is not parquet PAR1",
    )
    .unwrap();
    let err = read_parquet(
        &glob(dir.path(), "corrupt.parquet"),
        ParquetOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("corrupt.parquet") && err.contains("not a Parquet file"),
        "{err}"
    );
    let good = std::fs::read(dir.path().join("1990.parquet")).unwrap();
    std::fs::write(dir.path().join("trunc.parquet"), &good[..good.len() / 2]).unwrap();
    let err = read_parquet(
        &glob(dir.path(), "trunc.parquet"),
        ParquetOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("trunc.parquet"), "{err}");
    // Schemas that disagree.
    let other = df!("x" => [1i64, 2]).unwrap();
    std::fs::create_dir(dir.path().join("mixed")).unwrap();
    std::fs::copy(
        dir.path().join("1990.parquet"),
        dir.path().join("mixed/a.parquet"),
    )
    .unwrap();
    write_parquet(&other, &dir.path().join("mixed/b.parquet"), 10);
    let err = read_parquet(
        &glob(dir.path(), "mixed/*.parquet"),
        ParquetOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("b.parquet") && err.contains("disagree"),
        "{err}"
    );
    std::fs::copy(dir.path().join("1990.csv"), dir.path().join("mixed/a.csv")).unwrap();
    write_csv(&other, &dir.path().join("mixed/b.csv"));
    let err = read_csv(&glob(dir.path(), "mixed/*.csv"), CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.csv") && err.contains("disagree"), "{err}");
    // Unknown column in a query.
    let frame = read_parquet(&glob(dir.path(), "199*.parquet"), ParquetOptions::default()).unwrap();
    let err = frame.select([col("NoSuchColumn")]).unwrap_err().to_string();
    assert!(err.contains("NoSuchColumn"), "{err}");
    // Bad options.
    assert!(
        read_csv(
            &glob(dir.path(), "*.csv"),
            CsvOptions::default().with_blocksize(0)
        )
        .unwrap_err()
        .to_string()
        .contains("blocksize")
    );
    assert!(
        read_parquet(
            &glob(dir.path(), "199*.parquet"),
            ParquetOptions::default().with_row_groups_per_partition(0)
        )
        .unwrap_err()
        .to_string()
        .contains("row_groups_per_partition")
    );
}
