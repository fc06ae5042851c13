//! DataFrames on a cluster: every task of a frame read from CSV files (groupby, join,
//! shuffle, sort, persist) runs on worker processes, and the results equal eager polars on
//! the same data.

use libtest_mimic::Trial;
use rask::dataframe::polars::prelude::*;
use rask::dataframe::{Agg, CsvOptions, DataFrame as RDataFrame};
use rask::prelude::{ComputeExt, Config};

use crate::{TestResult, check, client, trial};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "dataframe::groupby_and_join_over_csv_files_match_polars",
            groupby_and_join,
        ),
        trial(
            "dataframe::persisted_frame_stays_on_workers",
            persisted_frame,
        ),
        trial(
            "dataframe::closure_map_partitions_is_refused_at_submit",
            closure_refused,
        ),
    ]
}

/// A fixed-seed frame: string and int keys, float values with nulls.
pub(crate) fn flights(n: usize, seed: u64) -> DataFrame {
    let origins = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let (mut origin, mut delay, mut dist, mut year) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let o = (next() % origins.len() as u32) as usize;
        origin.push(origins[o]);
        delay.push(if next() % 13 == 0 {
            None
        } else {
            Some((next() % 200) as f64 - 30.0)
        });
        dist.push((next() % 3000) as i64 + 100);
        year.push(1990 + (i * 4 / n.max(1)) as i64);
    }
    df!("Year" => year, "Origin" => origin, "DepDelay" => delay, "Distance" => dist).unwrap()
}

/// `df` written as one CSV file per year into `dir`.
fn write_years(df: &DataFrame, dir: &std::path::Path) {
    for y in 1990..1994i64 {
        let mut part = df
            .clone()
            .lazy()
            .filter(col("Year").eq(lit(y)))
            .collect()
            .unwrap();
        let mut f = std::fs::File::create(dir.join(format!("{y}.csv"))).unwrap();
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(&mut part)
            .unwrap();
    }
}

fn sorted(df: &DataFrame) -> DataFrame {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    df.sort(names, SortMultipleOptions::default().with_nulls_last(true))
        .unwrap()
}

/// Equal frames, floats within 1e-9 relative (sums may add in another order).
pub(crate) fn close(got: &DataFrame, want: &DataFrame, what: &str) -> TestResult {
    let (got, want) = (sorted(got), sorted(want));
    check(
        got.schema() == want.schema() && got.height() == want.height(),
        format!("{what}: shapes differ\n got {got}\nwant {want}"),
    )?;
    for (g, w) in got.columns().iter().zip(want.columns()) {
        if g.dtype().is_float() {
            for (a, b) in g.f64().unwrap().iter().zip(w.f64().unwrap().iter()) {
                let ok = match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    (a, b) => a == b,
                };
                check(ok, format!("{what}: column {}: {a:?} vs {b:?}", g.name()))?;
            }
        } else {
            check(
                g.as_materialized_series()
                    .equals_missing(w.as_materialized_series()),
                format!("{what}: column {} differs", g.name()),
            )?;
        }
    }
    Ok(())
}

fn read(dir: &std::path::Path) -> rask::Result<RDataFrame> {
    // Small blocks: several partitions per file.
    rask::dataframe::read_csv(
        &format!("{}/*.csv", dir.display()),
        CsvOptions::default().with_blocksize(4096),
    )
}

fn groupby_and_join() -> TestResult {
    let (client, cluster) = client(2);
    let dir = tempfile::tempdir()?;
    let all = flights(4000, 3);
    write_years(&all, dir.path());
    let frame = read(dir.path())?;
    check(frame.npartitions() > 4, frame.npartitions())?;

    // A groupby over the files (the fused reader partials, a tree of combines, split out).
    for (keys, split_out) in [(vec!["Origin"], 1), (vec!["Year", "Origin"], 3)] {
        let g = frame
            .filter(col("Distance").gt(lit(200i64)))?
            .groupby(&keys)
            .split_every(3)
            .split_out(split_out)
            .agg([
                Agg::sum("DepDelay").alias("sum"),
                Agg::mean("DepDelay").alias("mean"),
                Agg::count("DepDelay").alias("count"),
                Agg::size(),
                Agg::min("DepDelay").alias("min"),
                Agg::max("Distance").alias("max"),
            ])?;
        let got = client.compute(&g)?;
        let want = all
            .clone()
            .lazy()
            .filter(col("Distance").gt(lit(200i64)))
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg([
                col("DepDelay").sum().alias("sum"),
                col("DepDelay").mean().alias("mean"),
                col("DepDelay").count().alias("count"),
                len(),
                col("DepDelay").min().alias("min"),
                col("Distance").max().alias("max"),
            ])
            .collect()?;
        close(&got, &want, &format!("groupby {keys:?}"))?;
    }
    // The same groupby without the filter: the reader computes the partial while reading.
    let g = frame.groupby(["Origin"]).col("DepDelay").mean()?;
    let want = all
        .clone()
        .lazy()
        .group_by([col("Origin")])
        .agg([col("DepDelay").mean()])
        .collect()?;
    close(&client.compute(&g)?, &want, "fused groupby mean")?;

    // Joins: a hash join of two multi-partition frames, and a broadcast join.
    let airports = df!(
        "Origin" => ["SFO", "LAX", "JFK", "ORD", "DEN"],
        "City" => ["San Francisco", "Los Angeles", "New York", "Chicago", "Denver"],
    )?;
    let per_origin = frame
        .groupby(["Origin", "Year"])
        .col("Distance")
        .max()?
        .rename(&["Distance"], &["maxd"])?;
    for how in [JoinType::Inner, JoinType::Left] {
        let j = frame
            .join(
                &RDataFrame::from_polars_split(airports.clone(), 2)?,
                &["Origin"],
                &["Origin"],
                how.clone(),
                "_r",
            )?
            .join(
                &per_origin,
                &["Origin", "Year"],
                &["Origin", "Year"],
                how.clone(),
                "_r",
            )?;
        let got = client.compute(&j)?;
        let small = all
            .clone()
            .lazy()
            .group_by([col("Origin"), col("Year")])
            .agg([col("Distance").max().alias("maxd")]);
        let args = || JoinArgs::new(how.clone()).with_suffix(Some("_r".into()));
        let want = all
            .clone()
            .lazy()
            .join(
                airports.clone().lazy(),
                [col("Origin")],
                [col("Origin")],
                args(),
            )
            .join(
                small,
                [col("Origin"), col("Year")],
                [col("Origin"), col("Year")],
                args(),
            )
            .collect()?;
        close(&got, &want, &format!("{how:?} join"))?;
        let one = RDataFrame::from_polars(airports.clone());
        let b = frame.join(&one, &["Origin"], &["Origin"], how.clone(), "_r")?;
        let want = all
            .clone()
            .lazy()
            .join(
                airports.clone().lazy(),
                [col("Origin")],
                [col("Origin")],
                args(),
            )
            .collect()?;
        close(
            &client.compute(&b)?,
            &want,
            &format!("{how:?} broadcast join"),
        )?;
    }

    // A sort (samples, divisions, range split) and drop_duplicates.
    let s = frame.sort(&["Distance"], false)?;
    let got = client.compute(&s)?;
    let d: Vec<i64> = got.column("Distance")?.i64()?.into_no_null_iter().collect();
    check(
        d.windows(2).all(|w| w[0] <= w[1]) && d.len() == all.height(),
        "sorted by Distance",
    )?;
    close(&got, &all, "sorted rows")?;
    let u = frame
        .select([col("Origin"), col("Year")])?
        .drop_duplicates(None, 2)?;
    let want = all
        .clone()
        .lazy()
        .select([col("Origin"), col("Year")])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    close(&client.compute(&u)?, &want, "drop_duplicates")?;

    // value_counts (a sort step) and describe (named sketch steps) on the cluster.
    let vc = client.compute(&frame.value_counts("Origin")?)?;
    let want = all
        .clone()
        .lazy()
        .group_by([col("Origin")])
        .agg([len().alias("count")])
        .sort_by_exprs(
            [col("count"), col("Origin")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?;
    check(
        vc.equals_missing(&want),
        format!("value_counts {vc} vs {want}"),
    )?;
    let d = frame.describe()?;
    let (c, l) = (client.compute(&d)?, d.compute_with(&Config::builtin())?);
    check(c.equals_missing(&l), format!("describe {c} vs {l}"))?;
    check(cluster.worker_pids().len() == 2, "two workers")
}

fn persisted_frame() -> TestResult {
    let (client, _c) = client(2);
    let local = Config::builtin();
    let dir = tempfile::tempdir()?;
    let all = flights(2000, 9);
    write_years(&all, dir.path());
    let frame = read(dir.path())?.filter(col("DepDelay").is_not_null())?;
    let kept = client.persist(&frame)?;
    check(kept.npartitions() == frame.npartitions(), "same partitions")?;
    // The partitions live on the workers: computing here fails, on the cluster reads them.
    check(
        kept.compute_with(&local).is_err(),
        "the data is not in this process",
    )?;
    let g = kept.groupby(["Origin"]).col("DepDelay").sum()?;
    let want = all
        .clone()
        .lazy()
        .filter(col("DepDelay").is_not_null())
        .group_by([col("Origin")])
        .agg([col("DepDelay").sum()])
        .collect()?;
    close(&client.compute(&g)?, &want, "groupby of a persisted frame")?;
    // Locally persisted frames keep their partitions as literals.
    let here = rask::persist_with(&frame, &local)?;
    close(
        &here
            .groupby(["Origin"])
            .col("DepDelay")
            .sum()?
            .compute_with(&local)?,
        &want,
        "groupby of a locally persisted frame",
    )
}

fn closure_refused() -> TestResult {
    let (client, _c) = client(1);
    let df = flights(100, 1);
    let frame = RDataFrame::from_polars_split(df.clone(), 2)?;
    let m = frame.map_partitions((**frame.schema()).clone(), Ok)?;
    let err = client.compute(&m).unwrap_err().to_string();
    check(
        err.contains("cannot be sent to the cluster")
            && err.contains("map_partitions")
            && err.contains("rask.dataframe.from_polars"),
        &err,
    )?;
    // Without the closure the same frame computes there.
    close(&client.compute(&frame)?, &df, "from_polars on the cluster")
}
