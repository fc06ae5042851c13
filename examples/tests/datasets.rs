//! The dataset generators: deterministic, CSV and Parquet of a year hold the same rows, the
//! null pattern follows `Cancelled`, and the committed fixtures are what the generator writes.

use std::path::Path;

use rask::dataframe::polars::prelude::*;
use rask_examples::datasets::*;

fn read_csv_file(p: &Path) -> DataFrame {
    CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(p.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap()
}

fn read_parquet_file(p: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(p).unwrap())
        .finish()
        .unwrap()
}

fn small() -> FlightsOptions {
    FlightsOptions {
        years: 1990..=1992,
        rows_per_year: 300,
        seed: 0,
        format: Format::Both,
        row_group_rows: 100,
    }
}

#[test]
fn flights_are_deterministic_and_csv_matches_parquet() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = write_flights(a.path(), &small()).unwrap();
    write_flights(b.path(), &small()).unwrap();
    assert_eq!(pa.len(), 6);
    for y in 1990..=1992 {
        let name = format!("{y}.csv");
        assert_eq!(
            std::fs::read(a.path().join(&name)).unwrap(),
            std::fs::read(b.path().join(&name)).unwrap()
        );
        let csv = read_csv_file(&a.path().join(&name));
        let pq = read_parquet_file(&a.path().join(format!("{y}.parquet")));
        assert_eq!(csv.height(), 300);
        assert!(csv.equals_missing(&pq), "{y}: CSV and Parquet differ");
        // DepDelay is null exactly when the flight was cancelled.
        let nulls = csv.column("DepDelay").unwrap().is_null();
        let cancelled = csv.column("Cancelled").unwrap().i64().unwrap().equal(1);
        assert!(
            nulls.equal(&cancelled).all(),
            "DepDelay nulls differ from Cancelled == 1"
        );
    }
    // Another seed, other rows.
    let c = tempfile::tempdir().unwrap();
    write_flights(c.path(), &FlightsOptions { seed: 1, ..small() }).unwrap();
    assert_ne!(
        std::fs::read(a.path().join("1990.csv")).unwrap(),
        std::fs::read(c.path().join("1990.csv")).unwrap()
    );
}

#[test]
fn committed_fixtures_are_what_the_generators_write() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets");
    let dir = tempfile::tempdir().unwrap();
    write_flights(dir.path(), &small()).unwrap();
    write_stocks(dir.path(), 3, 50, 0).unwrap();
    for y in 1990..=1992 {
        let name = format!("{y}.csv");
        assert_eq!(
            std::fs::read(root.join("flights-small").join(&name)).unwrap(),
            std::fs::read(dir.path().join(&name)).unwrap(),
            "{name}"
        );
        let want = read_parquet_file(&dir.path().join(format!("{y}.parquet")));
        let got = read_parquet_file(&root.join("flights-small").join(format!("{y}.parquet")));
        assert!(got.equals_missing(&want));
    }
    for s in &SYMBOLS[..3] {
        let name = format!("{s}.jsonl");
        assert_eq!(
            std::fs::read(root.join("stocks-small").join(&name)).unwrap(),
            std::fs::read(dir.path().join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn taxi_and_stocks_have_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_taxi(dir.path(), 2, 1000, 0).unwrap();
    let df = read_parquet_file(&files[0]);
    assert_eq!(df.height(), 1000);
    assert_eq!(
        df.column("passenger_count").unwrap().dtype(),
        &DataType::Int64
    );
    let files = write_stocks(dir.path(), 2, 30, 0).unwrap();
    let text = std::fs::read(&files[0]).unwrap();
    let df = JsonReader::new(std::io::Cursor::new(text))
        .with_json_format(JsonFormat::JsonLines)
        .finish()
        .unwrap();
    assert_eq!(df.height(), 30);
    assert_eq!(
        df.get_column_names(),
        ["date", "symbol", "open", "high", "low", "close", "volume"]
    );
}

#[test]
fn bad_arguments_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_flights(
        dir.path(),
        &FlightsOptions {
            rows_per_year: 0,
            ..small()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("rows_per_year"), "{err}");
    #[allow(clippy::reversed_empty_ranges)]
    let err = write_flights(
        dir.path(),
        &FlightsOptions {
            years: 1995..=1990,
            ..small()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("years"), "{err}");
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let err = write_flights(&dir.path().join("file/sub"), &small())
        .unwrap_err()
        .to_string();
    assert!(err.contains("file/sub"), "{err}");
    assert!(
        write_stocks(dir.path(), 0, 5, 0)
            .unwrap_err()
            .to_string()
            .contains("symbols")
    );
    assert!(
        write_taxi(dir.path(), 0, 5, 0)
            .unwrap_err()
            .to_string()
            .contains("files")
    );
}
