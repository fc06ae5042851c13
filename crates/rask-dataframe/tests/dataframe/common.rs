use std::path::Path;

use rask_dataframe::polars::prelude::*;

/// A flights-like frame: string keys with nulls in the values, ints and floats.
pub fn flights(n: usize, seed: u64) -> DataFrame {
    let origins = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut origin = Vec::with_capacity(n);
    let mut delay: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut dist = Vec::with_capacity(n);
    let mut year = Vec::with_capacity(n);
    let mut cancelled = Vec::with_capacity(n);
    for i in 0..n {
        let o = (next() % origins.len() as u32) as usize;
        origin.push(origins[o]);
        let c = next() % 17 == 0;
        cancelled.push(c as i64);
        delay.push(if c {
            None
        } else {
            Some((next() % 200) as f64 - 30.0 + o as f64 * 2.5)
        });
        dist.push((next() % 3000) as i64 + 100);
        year.push(1990 + (i * 3 / n.max(1)) as i64);
    }
    df!(
        "Year" => year,
        "Origin" => origin,
        "DepDelay" => delay,
        "Distance" => dist,
        "Cancelled" => cancelled,
    )
    .unwrap()
}

/// Sorts by the given columns, for order-free comparison.
pub fn sorted(df: &DataFrame, by: &[&str]) -> DataFrame {
    df.sort(
        by.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        SortMultipleOptions::default(),
    )
    .unwrap()
}

/// Frames equal up to float rounding (values compared within 1e-9 relative).
pub fn assert_frames_close(got: &DataFrame, want: &DataFrame) {
    assert_eq!(
        got.schema(),
        want.schema(),
        "schemas differ\n got {got}\nwant {want}"
    );
    assert_eq!(
        got.height(),
        want.height(),
        "heights differ\n got {got}\nwant {want}"
    );
    for (g, w) in got.columns().iter().zip(want.columns()) {
        if g.dtype().is_float() {
            let g = g.f64().unwrap();
            let w = w.f64().unwrap();
            for (a, b) in g.iter().zip(w.iter()) {
                match (a, b) {
                    (Some(a), Some(b)) => assert!(
                        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        "column {}: {a} vs {b}",
                        g.name()
                    ),
                    (a, b) => assert_eq!(a, b, "column {}", g.name()),
                }
            }
        } else {
            assert!(
                g.as_materialized_series()
                    .equals_missing(w.as_materialized_series()),
                "column {} differs\n got {got}\nwant {want}",
                g.name()
            );
        }
    }
}

pub fn write_csv(df: &DataFrame, path: &Path) {
    let mut df = df.clone();
    let mut f = std::fs::File::create(path).unwrap();
    CsvWriter::new(&mut f)
        .include_header(true)
        .finish(&mut df)
        .unwrap();
}

pub fn write_parquet(df: &DataFrame, path: &Path, row_group_rows: usize) {
    let mut df = df.clone();
    let f = std::fs::File::create(path).unwrap();
    ParquetWriter::new(f)
        .with_row_group_size(Some(row_group_rows))
        .finish(&mut df)
        .unwrap();
}

/// Three yearly files of `flights`, as CSV and Parquet, and the whole frame.
pub fn flight_files(dir: &Path, rows: usize) -> DataFrame {
    let all = flights(rows, 7);
    write_yearly_files(&all, dir, 100);
    all
}

/// `all` cut by `Year` (1990 to 1992) into `{year}.csv` and `{year}.parquet` in `dir`.
pub fn write_yearly_files(all: &DataFrame, dir: &Path, row_group_rows: usize) {
    for y in 1990..1993i64 {
        let part = all
            .clone()
            .lazy()
            .filter(col("Year").eq(lit(y)))
            .collect()
            .unwrap();
        write_csv(&part, &dir.join(format!("{y}.csv")));
        write_parquet(&part, &dir.join(format!("{y}.parquet")), row_group_rows);
    }
}
