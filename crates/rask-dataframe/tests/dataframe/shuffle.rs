//! Operations that move rows between partitions, against eager polars.

use proptest::prelude::*;
use rask::prelude::ComputeExt;
use rask_dataframe::DataFrame as RDataFrame;
use rask_dataframe::polars::prelude::*;

use crate::common::*;

const ALL: [&str; 5] = ["Year", "Origin", "DepDelay", "Distance", "Cancelled"];

/// Rows per partition, computed.
fn heights(frame: &RDataFrame) -> Vec<usize> {
    let schema = Schema::from_iter([Field::new("n".into(), IDX_DTYPE)]);
    let out = frame
        .map_partitions(schema, |p| df!("n" => [p.height() as IdxSize]))
        .unwrap()
        .compute()
        .unwrap();
    out.column("n")
        .unwrap()
        .idx()
        .unwrap()
        .iter()
        .map(|v| v.unwrap() as usize)
        .collect()
}

/// The same frame with row counts the planner cannot know (a step runs in every partition).
fn unknown_rows(frame: &RDataFrame) -> RDataFrame {
    frame.filter(lit(true)).unwrap()
}

fn err_of(r: rask_error::Result<RDataFrame>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

// ----- repartition -----

#[test]
fn repartition_keeps_rows_and_order() {
    let df = flights(500, 2);
    for nparts in [1, 3, 7] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        for known in [true, false] {
            let input = if known {
                frame.clone()
            } else {
                unknown_rows(&frame)
            };
            for target in [1, 2, 3, 5, 7, 10, 20] {
                let out = input.repartition(target).unwrap();
                assert_eq!(out.npartitions(), target);
                if target != nparts {
                    assert!(out.explain().contains("REPARTITION"), "{}", out.explain());
                }
                assert_frames_close(&out.compute().unwrap(), &df);
                let h = heights(&out);
                assert_eq!(h.iter().sum::<usize>(), 500);
                if target > nparts {
                    // Splits are even: within a row of each other (known counts), or of the
                    // other pieces of the same input (unknown counts).
                    let (min, max) = (h.iter().min().unwrap(), h.iter().max().unwrap());
                    let slack = if known {
                        1
                    } else {
                        500 / nparts / (target / nparts)
                    };
                    assert!(max - min <= slack.max(1), "{h:?}");
                } else {
                    assert!(h.iter().all(|&n| n > 0), "{h:?}");
                }
            }
        }
    }
}

#[test]
fn repartition_balances_uneven_partitions_by_rows() {
    let df = flights(400, 3);
    let parts = vec![
        df.slice(0, 300),
        df.slice(300, 20),
        df.slice(320, 20),
        df.slice(340, 20),
        df.slice(360, 40),
    ];
    let frame = RDataFrame::from_partitions(parts).unwrap();
    let out = frame.repartition(2).unwrap();
    // The big partition stands alone; the small ones are concatenated.
    assert_eq!(heights(&out), vec![300, 100]);
    assert_frames_close(&out.compute().unwrap(), &df);
    // Without row counts, neighbours are grouped by count.
    let out = unknown_rows(&frame).repartition(2).unwrap();
    assert_eq!(heights(&out), vec![320, 80]);
    assert_frames_close(&out.compute().unwrap(), &df);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn repartition_preserves_rows_and_order(
        sizes in prop::collection::vec(0usize..30, 1..8),
        target in 1usize..16,
        known in any::<bool>(),
    ) {
        let total: usize = sizes.iter().sum();
        let df = df!("i" => (0..total as i64).collect::<Vec<_>>()).unwrap();
        let mut parts = Vec::new();
        let mut at = 0;
        for s in &sizes {
            parts.push(df.slice(at as i64, *s));
            at += s;
        }
        let frame = RDataFrame::from_partitions(parts).unwrap();
        let frame = if known { frame } else { unknown_rows(&frame) };
        let out = frame.repartition(target).unwrap();
        prop_assert_eq!(out.npartitions(), target);
        let got = out.compute().unwrap();
        prop_assert!(got.equals(&df), "got {:?}", got);
    }
}

// ----- shuffle and drop_duplicates -----

#[test]
fn shuffle_puts_each_key_in_one_partition() {
    let df = flights(700, 4);
    for nparts in [1, 3, 7] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        let out = frame.shuffle(&["Origin", "Year"], 5).unwrap();
        assert_eq!(out.npartitions(), 5);
        assert!(out.explain().contains("SHUFFLE"));
        // Distinct keys per partition add up to distinct keys overall.
        let keys = out
            .map_partitions(
                Schema::from_iter([Field::new("n".into(), IDX_DTYPE)]),
                |p| {
                    let n = p.unique_stable(
                        Some(&["Origin".to_string(), "Year".to_string()]),
                        UniqueKeepStrategy::Any,
                        None,
                    )?;
                    df!("n" => [n.height() as IdxSize])
                },
            )
            .unwrap()
            .compute()
            .unwrap();
        let per_part: u64 = keys
            .column("n")
            .unwrap()
            .as_materialized_series()
            .sum()
            .unwrap();
        assert_eq!(per_part, 21);
        assert_frames_close(&sorted(&out.compute().unwrap(), &ALL), &sorted(&df, &ALL));
    }
}

#[test]
fn drop_duplicates_matches_polars_unique() {
    let base = flights(900, 5);
    // Whole-row duplicates, including rows with nulls.
    let df = base.vstack(&base.slice(0, 300)).unwrap();
    for nparts in [1, 3, 7] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        for split_out in [1, 3] {
            let got = frame.drop_duplicates(None, split_out).unwrap();
            assert_eq!(got.npartitions(), split_out);
            assert!(got.explain().contains("DROP_DUPLICATES"));
            let want = df
                .unique_stable(None, UniqueKeepStrategy::Any, None)
                .unwrap();
            assert_eq!(want.height(), 900);
            assert_frames_close(&sorted(&got.compute().unwrap(), &ALL), &sorted(&want, &ALL));

            for subset in [vec!["Origin"], vec!["Origin", "Year"], vec!["DepDelay"]] {
                let got = frame
                    .drop_duplicates(Some(&subset), split_out)
                    .unwrap()
                    .compute()
                    .unwrap();
                let owned: Vec<String> = subset.iter().map(|s| s.to_string()).collect();
                let want = df
                    .unique_stable(Some(&owned), UniqueKeepStrategy::Any, None)
                    .unwrap();
                // Any row of each group may be kept: the keys must match exactly...
                let keys = |f: &DataFrame| sorted(&f.select(subset.clone()).unwrap(), &subset);
                assert_frames_close(&keys(&got), &keys(&want));
                // ... and every kept row must be a row of the input.
                let found = got
                    .clone()
                    .lazy()
                    .join(
                        df.clone().lazy(),
                        ALL.map(col),
                        ALL.map(col),
                        JoinArgs {
                            nulls_equal: true,
                            ..JoinArgs::new(JoinType::Semi)
                        },
                    )
                    .collect()
                    .unwrap();
                assert_eq!(found.height(), got.height());
            }
        }
    }
}

// ----- join -----

/// A lookup table by origin: one origin missing, one absent from the flights, and a
/// duplicated key.
fn airports() -> DataFrame {
    df!(
        "Origin" => ["SFO", "LAX", "JFK", "ORD", "ATL", "XXX", "SFO"],
        "Name" => ["San Francisco", "Los Angeles", "Kennedy", "O'Hare", "Atlanta", "Nowhere", "SF again"],
        "Distance" => [1i64, 2, 3, 4, 5, 6, 7],
    )
    .unwrap()
}

fn oracle_join(
    l: &DataFrame,
    r: &DataFrame,
    lon: &[&str],
    ron: &[&str],
    how: JoinType,
) -> DataFrame {
    l.clone()
        .lazy()
        .join(
            r.clone().lazy(),
            lon.iter().map(|c| col(*c)).collect::<Vec<_>>(),
            ron.iter().map(|c| col(*c)).collect::<Vec<_>>(),
            JoinArgs::new(how).with_suffix(Some("_r".into())),
        )
        .collect()
        .unwrap()
}

fn all_columns(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn assert_same_rows(got: &DataFrame, want: &DataFrame) {
    let cols = all_columns(want);
    let by: Vec<&str> = cols.iter().map(|s| s.as_str()).collect();
    assert_frames_close(&sorted(got, &by), &sorted(want, &by));
}

#[test]
fn join_on_origin_matches_polars_for_every_strategy() {
    let df = flights(600, 6);
    let right = airports();
    let hows = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
        JoinType::Semi,
        JoinType::Anti,
    ];
    for lparts in [1, 3, 7] {
        let left = RDataFrame::from_polars_split(df.clone(), lparts).unwrap();
        for rparts in [1, 2, 5] {
            let r = RDataFrame::from_polars_split(right.clone(), rparts).unwrap();
            // Seven rows do not fill five partitions of two.
            let rparts = r.npartitions();
            for how in hows.clone() {
                let got = left
                    .join(&r, &["Origin"], &["Origin"], how.clone(), "_r")
                    .unwrap();
                let plan = got.explain();
                let broadcast = (rparts == 1
                    && (lparts == 1
                        || matches!(
                            how,
                            JoinType::Inner | JoinType::Left | JoinType::Semi | JoinType::Anti
                        )))
                    || (lparts == 1 && matches!(how, JoinType::Inner | JoinType::Right));
                if broadcast {
                    assert!(
                        plan.contains("BROADCAST_JOIN"),
                        "{how} {lparts}x{rparts}\n{plan}"
                    );
                } else {
                    assert!(
                        plan.contains("HASH_JOIN"),
                        "{how} {lparts}x{rparts}\n{plan}"
                    );
                    assert_eq!(got.npartitions(), lparts.max(rparts));
                }
                let want = oracle_join(&df, &right, &["Origin"], &["Origin"], how.clone());
                assert_eq!(got.schema(), &want.schema().clone(), "{how}");
                assert_same_rows(&got.compute().unwrap(), &want);
            }
        }
    }
}

#[test]
fn join_on_two_keys_with_different_names_and_many_partitions() {
    let df = flights(800, 7);
    // Per (origin, year) a value; keys named differently, some pairs missing, duplicates.
    let right = df!(
        "o" => ["SFO", "SFO", "LAX", "JFK", "ORD", "SEA", "SEA", "BOS"],
        "y" => [1990i64, 1991, 1990, 1992, 1991, 1990, 1990, 1999],
        "score" => [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
    )
    .unwrap();
    for (lparts, rparts) in [(3, 3), (7, 2), (2, 7)] {
        let left = RDataFrame::from_polars_split(df.clone(), lparts).unwrap();
        let r = RDataFrame::from_polars_split(right.clone(), rparts).unwrap();
        for how in [JoinType::Inner, JoinType::Left, JoinType::Full] {
            let got = left
                .join(&r, &["Origin", "Year"], &["o", "y"], how.clone(), "_r")
                .unwrap();
            assert!(got.explain().contains("HASH_JOIN"));
            let want = oracle_join(&df, &right, &["Origin", "Year"], &["o", "y"], how.clone());
            assert_same_rows(&got.compute().unwrap(), &want);
        }
    }
}

#[test]
fn join_casts_numeric_keys_to_a_common_dtype() {
    let df = flights(300, 8);
    let years_i32 = df!("year" => [1990i32, 1992, 2000], "label" => ["a", "c", "z"]).unwrap();
    let years_f64 = df!("year" => [1990.0f64, 1991.5, 1992.0], "label" => ["a", "b", "c"]).unwrap();
    for right in [years_i32, years_f64] {
        let common = if right.column("year").unwrap().dtype() == &DataType::Int32 {
            DataType::Int64
        } else {
            DataType::Float64
        };
        let l_cast = df
            .clone()
            .lazy()
            .with_column(col("Year").cast(common.clone()))
            .collect()
            .unwrap();
        let r_cast = right
            .clone()
            .lazy()
            .with_column(col("year").cast(common.clone()))
            .collect()
            .unwrap();
        for (lparts, rparts) in [(4, 1), (4, 3)] {
            let left = RDataFrame::from_polars_split(df.clone(), lparts).unwrap();
            let r = RDataFrame::from_polars_split(right.clone(), rparts).unwrap();
            for how in [JoinType::Inner, JoinType::Left] {
                let got = left
                    .join(&r, &["Year"], &["year"], how.clone(), "_r")
                    .unwrap();
                let want = oracle_join(&l_cast, &r_cast, &["Year"], &["year"], how);
                assert_same_rows(&got.compute().unwrap(), &want);
            }
        }
    }
}

#[test]
fn join_with_empty_sides() {
    let df = flights(200, 9);
    let empty = df.clear();
    let left = RDataFrame::from_polars_split(df.clone(), 3).unwrap();
    let none = RDataFrame::from_polars(empty.clone());
    for how in [JoinType::Inner, JoinType::Left, JoinType::Full] {
        let got = left
            .join(&none, &["Origin"], &["Origin"], how.clone(), "_r")
            .unwrap()
            .compute()
            .unwrap();
        let want = oracle_join(&df, &empty, &["Origin"], &["Origin"], how.clone());
        assert_same_rows(&got, &want);
        let got = none
            .join(&left, &["Origin"], &["Origin"], how.clone(), "_r")
            .unwrap()
            .compute()
            .unwrap();
        let want = oracle_join(&empty, &df, &["Origin"], &["Origin"], how);
        assert_same_rows(&got, &want);
    }
}

// ----- sort -----

fn sort_oracle(df: &DataFrame, by: &[&str], descending: bool) -> DataFrame {
    df.sort(
        by.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        SortMultipleOptions::default()
            .with_order_descending(descending)
            .with_nulls_last(true),
    )
    .unwrap()
}

fn check_sorted(got: &DataFrame, df: &DataFrame, by: &[&str], descending: bool) {
    let want = sort_oracle(df, by, descending);
    for b in by {
        let (g, w) = (got.column(b).unwrap(), want.column(b).unwrap());
        assert!(
            g.as_materialized_series()
                .equals_missing(w.as_materialized_series()),
            "sort key {b} out of order\n got {got}\nwant {want}"
        );
    }
    assert_same_rows(got, &want);
}

#[test]
fn sort_matches_polars_with_nulls_last() {
    let df = flights(3000, 10);
    for nparts in [1, 3, 7] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        for (by, descending) in [
            (vec!["DepDelay"], false),
            (vec!["DepDelay"], true),
            (vec!["Origin", "Distance"], false),
            (vec!["Year", "DepDelay", "Origin"], true),
        ] {
            let out = frame.sort(&by, descending).unwrap();
            assert_eq!(out.npartitions(), nparts);
            assert!(out.explain().contains("SORT"), "{}", out.explain());
            check_sorted(&out.compute().unwrap(), &df, &by, descending);
        }
    }
}

#[test]
fn sort_balances_large_partitions_and_reports_divisions() {
    // More rows per partition than the sampler takes.
    let df = flights(40_000, 11);
    let frame = RDataFrame::from_polars_split(df.clone(), 4).unwrap();
    let (out, divisions) = frame.sort_with_divisions(&["Distance"], false).unwrap();
    let h = heights(&out);
    assert!(
        h.iter().all(|&n| (7_000..=13_000).contains(&n)),
        "unbalanced: {h:?}"
    );
    check_sorted(&out.compute().unwrap(), &df, &["Distance"], false);
    let divisions = divisions.compute().unwrap();
    assert_eq!(divisions.height(), 5);
    let d: Vec<i64> = divisions
        .column("Distance")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let dist = df.column("Distance").unwrap().i64().unwrap();
    assert_eq!(d[0], dist.min().unwrap());
    assert_eq!(d[4], dist.max().unwrap());
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    // Each output partition lies between its divisions.
    let parts = out
        .map_partitions(
            Schema::from_iter([
                Field::new("lo".into(), DataType::Int64),
                Field::new("hi".into(), DataType::Int64),
            ]),
            |p| {
                let c = p.column("Distance")?.i64()?.clone();
                df!("lo" => [c.min()], "hi" => [c.max()])
            },
        )
        .unwrap()
        .compute()
        .unwrap();
    let lo = parts.column("lo").unwrap().i64().unwrap();
    let hi = parts.column("hi").unwrap().i64().unwrap();
    for i in 0..4 {
        if let (Some(lo), Some(hi)) = (lo.get(i), hi.get(i)) {
            assert!(
                lo >= d[i] && hi <= d[i + 1],
                "partition {i}: {lo}..{hi} vs {d:?}"
            );
            if i + 1 < 4 {
                assert!(
                    hi < d[i + 1],
                    "rows equal to a division start the next partition"
                );
            }
        }
    }
}

#[test]
fn sort_with_skewed_and_empty_data() {
    // Every key equal: one partition gets everything, the order is still right.
    let df = df!("k" => vec![5i64; 500], "v" => (0..500i64).collect::<Vec<_>>()).unwrap();
    let frame = RDataFrame::from_polars_split(df.clone(), 5).unwrap();
    check_sorted(
        &frame.sort(&["k"], false).unwrap().compute().unwrap(),
        &df,
        &["k"],
        false,
    );
    // Only nulls in the key.
    let nulls = df!("k" => vec![None::<i64>; 50], "v" => (0..50i64).collect::<Vec<_>>()).unwrap();
    let frame = RDataFrame::from_polars_split(nulls.clone(), 3).unwrap();
    check_sorted(
        &frame.sort(&["k"], true).unwrap().compute().unwrap(),
        &nulls,
        &["k"],
        true,
    );
    // No rows.
    let empty = flights(0, 1);
    let frame = RDataFrame::from_polars(empty.clone());
    let (out, divisions) = frame.sort_with_divisions(&["Origin"], false).unwrap();
    assert_eq!(out.compute().unwrap().height(), 0);
    assert_eq!(divisions.compute().unwrap().height(), 0);
    // Rows filtered away in some partitions only.
    let df = flights(300, 12);
    let frame = RDataFrame::from_polars_split(df.clone(), 6)
        .unwrap()
        .filter(col("Year").eq(lit(1991i64)))
        .unwrap();
    let want = df
        .clone()
        .lazy()
        .filter(col("Year").eq(lit(1991i64)))
        .collect()
        .unwrap();
    check_sorted(
        &frame.sort(&["Distance"], true).unwrap().compute().unwrap(),
        &want,
        &["Distance"],
        true,
    );
}

#[test]
fn set_index_sorts_by_the_column() {
    let df = flights(1000, 13);
    for nparts in [1, 3, 7] {
        let frame = RDataFrame::from_polars_split(df.clone(), nparts).unwrap();
        let out = frame.set_index("Origin").unwrap();
        assert_eq!(out.columns(), frame.columns());
        check_sorted(&out.compute().unwrap(), &df, &["Origin"], false);
    }
}

// ----- bad input -----

#[test]
fn bad_arguments_are_named() {
    let df = flights(50, 14);
    let frame = RDataFrame::from_polars_split(df.clone(), 3).unwrap();
    let right = RDataFrame::from_polars(airports());

    let e = err_of(frame.repartition(0));
    assert!(e.contains("npartitions"), "{e}");
    let e = err_of(frame.shuffle(&["Nope"], 2));
    assert!(e.contains("on") && e.contains("Nope"), "{e}");
    let e = err_of(frame.shuffle(&["Origin"], 0));
    assert!(e.contains("npartitions"), "{e}");

    let e = err_of(frame.drop_duplicates(Some(&["Origin", "Missing"]), 1));
    assert!(e.contains("subset") && e.contains("Missing"), "{e}");
    let e = err_of(frame.drop_duplicates(Some(&[]), 1));
    assert!(e.contains("subset"), "{e}");
    let e = err_of(frame.drop_duplicates(None, 0));
    assert!(e.contains("split_out"), "{e}");

    let e = err_of(frame.join(&right, &["Nope"], &["Origin"], JoinType::Inner, "_r"));
    assert!(e.contains("left_on") && e.contains("Nope"), "{e}");
    let e = err_of(frame.join(&right, &["Origin"], &["Nope"], JoinType::Inner, "_r"));
    assert!(e.contains("right_on") && e.contains("Nope"), "{e}");
    let e = err_of(frame.join(
        &right,
        &["Origin", "Year"],
        &["Origin"],
        JoinType::Inner,
        "_r",
    ));
    assert!(
        e.contains("right_on") && e.contains("1 right key columns for 2"),
        "{e}"
    );
    let e = err_of(frame.join(&right, &[], &[], JoinType::Inner, "_r"));
    assert!(e.contains("left_on"), "{e}");
    // A string key against a number: no silent cast to string.
    let e = err_of(frame.join(&right, &["Year"], &["Origin"], JoinType::Left, "_r"));
    assert!(
        e.contains("right_on") && e.contains("Year") && e.contains("str"),
        "{e}"
    );
    let e = err_of(frame.join(&right, &["Origin"], &["Origin"], JoinType::Cross, "_r"));
    assert!(e.contains("how"), "{e}");
    // A suffix that makes names clash again is polars' error, reported at build time.
    let clash = RDataFrame::from_polars(df!("Origin" => ["SFO"], "Distance" => [1i64]).unwrap());
    let with_suffix = frame
        .with_column(col("Distance").alias("Distance_r"))
        .unwrap();
    assert!(
        with_suffix
            .join(&clash, &["Origin"], &["Origin"], JoinType::Inner, "_r")
            .is_err()
    );

    let e = err_of(frame.sort(&["Missing"], false));
    assert!(e.contains("by") && e.contains("Missing"), "{e}");
    let e = err_of(frame.sort(&[], false));
    assert!(e.contains("by"), "{e}");
    let e = err_of(frame.set_index("Missing"));
    assert!(e.contains("column") && e.contains("Missing"), "{e}");
}

#[test]
fn join_null_keys_never_match() {
    let left =
        df!("k" => [Some(1i64), None, Some(2), None, Some(3)], "a" => [1, 2, 3, 4, 5]).unwrap();
    let right = df!("k" => [None, Some(2i64), Some(3), Some(3)], "b" => [10, 20, 30, 31]).unwrap();
    for (lparts, rparts) in [(2, 1), (3, 2), (1, 3)] {
        let l = RDataFrame::from_polars_split(left.clone(), lparts).unwrap();
        let r = RDataFrame::from_polars_split(right.clone(), rparts).unwrap();
        for how in [
            JoinType::Inner,
            JoinType::Left,
            JoinType::Full,
            JoinType::Anti,
        ] {
            let got = l.join(&r, &["k"], &["k"], how.clone(), "_r").unwrap();
            let want = oracle_join(&left, &right, &["k"], &["k"], how);
            assert_same_rows(&got.compute().unwrap(), &want);
        }
    }
}

#[test]
fn building_the_graph_computes_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let df = flights(200, 15);
    let c = calls.clone();
    let frame = RDataFrame::from_polars_split(df.clone(), 4)
        .unwrap()
        .map_partitions(
            (**RDataFrame::from_polars(df.clone()).schema()).clone(),
            move |p| {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(p)
            },
        )
        .unwrap();
    let right = RDataFrame::from_polars_split(airports(), 2).unwrap();
    let sorted_frame = frame.sort(&["Distance"], false).unwrap();
    let joined = sorted_frame
        .join(&right, &["Origin"], &["Origin"], JoinType::Left, "_r")
        .unwrap()
        .drop_duplicates(Some(&["Origin"]), 2)
        .unwrap()
        .repartition(3)
        .unwrap();
    let plan = joined.explain();
    assert!(
        ["SORT", "HASH_JOIN", "DROP_DUPLICATES", "REPARTITION"]
            .iter()
            .all(|s| plan.contains(s)),
        "{plan}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(joined.compute().unwrap().height(), 7);
    assert!(calls.load(Ordering::SeqCst) > 0);
}
