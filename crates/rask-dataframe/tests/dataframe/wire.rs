//! DataFrame ops cross the wire: every task's op of a representative set of frames (read
//! from generated CSV and Parquet files) is encoded with `OpRegistry::encode`, decoded
//! through the global registry (re-encoding must give the same bytes), and the decoded graph
//! run three ways (raw and optimized on the sync executor, and a hand-run loop sending every
//! intermediate value through the value codec, as a cluster does). Each must give the local
//! result, which must equal eager polars on the same data.

use std::path::Path;
use std::sync::Arc;

use rask::graph::{
    Collection, Graph, GraphBuilder, Op, OpRegistry, TaskId, TaskSpec, Value, optimize, order,
};
use rask::prelude::ComputeExt;
use rask::scheduler::{Executor, RunOptions};
use rask_dataframe::polars::prelude::*;
use rask_dataframe::{Agg, CsvOptions, DataFrame as RDataFrame, ParquetOptions};

use crate::common::*;

/// `graph` with every op replaced by its decoded wire form.
fn wire_graph(graph: &Graph) -> Graph {
    let specs: Vec<TaskSpec> = graph
        .tasks()
        .iter()
        .map(|t| {
            let (name, params) = OpRegistry::encode(&*t.op)
                .unwrap_or_else(|e| panic!("op of {} does not encode: {e}", t.key));
            let op: Arc<dyn Op> = OpRegistry::global()
                .decode(&name, &params)
                .unwrap_or_else(|e| panic!("op `{name}` of {} does not decode: {e}", t.key));
            assert_eq!(
                OpRegistry::encode(&*op).unwrap().1,
                params,
                "op `{name}` re-encodes differently"
            );
            assert_eq!(op.name(), t.op.name());
            // A truncated blob is an error naming the op, never a panic.
            if params.len() > 1 && t.op.as_composite().is_none() {
                let cut = &params[..params.len() / 2];
                if let Err(e) = OpRegistry::global().decode(&name, cut) {
                    let msg = e.to_string();
                    assert!(msg.contains(&*name), "{msg}");
                }
            }
            TaskSpec::new(
                t.key.clone(),
                op,
                t.deps.iter().map(|&d| graph.task(d).key.clone()),
            )
        })
        .collect();
    Graph::from_specs(specs).unwrap()
}

/// Runs `graph` in topological order, sending every task's output through the value codec
/// before a dependent reads it.
fn run_through_codec(graph: &Graph, outputs: &[TaskId]) -> Vec<Value> {
    let mut values: Vec<Option<Value>> = vec![None; graph.len()];
    for &id in graph.topological_order().unwrap() {
        let task = graph.task(id);
        let inputs: Vec<Value> = task
            .deps
            .iter()
            .map(|&d| values[d as usize].clone().unwrap())
            .collect();
        let out = task
            .op
            .execute(&inputs)
            .unwrap_or_else(|e| panic!("{}: {e}", task.key));
        let (tag, bytes) = out
            .encode()
            .unwrap_or_else(|e| panic!("output of {} does not encode: {e}", task.key));
        values[id as usize] = Some(Value::decode(tag, &bytes).unwrap());
    }
    outputs
        .iter()
        .map(|&o| values[o as usize].clone().unwrap())
        .collect()
}

/// Computes `c` locally and through the wire three ways; `same` compares each wire result
/// with the local one. Returns the local result.
fn check_with<C: Collection>(c: &C, same: impl Fn(&C::Output, &C::Output, &str)) -> C::Output {
    let local = rask::compute(c).unwrap();
    let mut b = GraphBuilder::new();
    c.add_layers(&mut b);
    let keys = c.output_keys();
    let (graph, _) = b.build_with_outputs(&keys).unwrap();

    let decoded = wire_graph(&graph);
    let ids = decoded.ids_of(&keys).unwrap();
    let out = rask::scheduler::run(
        Executor::Sync,
        &decoded,
        &ids,
        order(&decoded),
        &RunOptions::default(),
    )
    .unwrap();
    same(&c.finalize(out.values).unwrap(), &local, "raw graph");

    let raw_ids = graph.ids_of(&keys).unwrap();
    let (opt, _) = optimize::optimize(graph.clone(), &raw_ids, Default::default());
    let decoded = wire_graph(&opt);
    let ids = decoded.ids_of(&keys).unwrap();
    let out = rask::scheduler::run(
        Executor::Sync,
        &decoded,
        &ids,
        order(&decoded),
        &RunOptions::default(),
    )
    .unwrap();
    same(&c.finalize(out.values).unwrap(), &local, "optimized graph");

    let ids = graph.ids_of(&keys).unwrap();
    let values = run_through_codec(&wire_graph(&graph), &ids);
    same(
        &c.finalize(values).unwrap(),
        &local,
        "values through the codec",
    );
    local
}

/// The rows of `df` sorted by every column: a canonical order for frames whose partitions
/// arrive in an order of no meaning (group order).
fn canon(df: &DataFrame) -> DataFrame {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    df.sort(names, SortMultipleOptions::default().with_nulls_last(true))
        .unwrap()
}

/// Checks a frame through the wire (rows compared in canonical order, floats within 1e-9)
/// and returns the local result in canonical order.
fn check(frame: &RDataFrame) -> DataFrame {
    let local = check_with(frame, |got: &DataFrame, local: &DataFrame, how: &str| {
        assert_eq!(got.schema(), local.schema(), "{how}");
        let (g, l) = (canon(got), canon(local));
        if !g.equals_missing(&l) {
            // Group sums may add in another order: equal within rounding.
            assert_frames_close(&g, &l);
        }
    });
    canon(&local)
}

/// Checks a frame and compares it with eager polars.
fn check_eq(frame: &RDataFrame, want: &DataFrame) {
    let got = check(frame);
    assert_frames_close(&got, &canon(want));
}

struct Files {
    _dir: tempfile::TempDir,
    all: DataFrame,
    csv: RDataFrame,
    parquet: RDataFrame,
}

/// Three yearly CSV and Parquet files of a fixed-seed frame: CSV in several byte ranges per
/// file, Parquet one row group per partition.
fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let all = flights(900, 11);
    write_yearly_files(&all, dir.path(), 100);
    let glob = |ext: &str| format!("{}/*.{ext}", dir.path().display());
    let csv =
        rask_dataframe::read_csv(&glob("csv"), CsvOptions::default().with_blocksize(3000)).unwrap();
    let parquet = rask_dataframe::read_parquet(
        &glob("parquet"),
        ParquetOptions::default().with_row_groups_per_partition(1),
    )
    .unwrap();
    assert!(csv.npartitions() > 3 && parquet.npartitions() > 3);
    Files {
        _dir: dir,
        all,
        csv,
        parquet,
    }
}

fn eager(df: &DataFrame, f: impl Fn(LazyFrame) -> LazyFrame) -> DataFrame {
    f(df.clone().lazy()).collect().unwrap()
}

#[test]
fn readers_and_per_partition_steps_cross_the_wire() {
    let f = files();
    for frame in [&f.csv, &f.parquet] {
        check_eq(frame, &f.all);
        // Column and filter pushdown into the reader, then the fused steps.
        let q = frame
            .filter(col("DepDelay").gt(lit(10.0)))
            .unwrap()
            .select([col("Origin"), col("DepDelay"), col("Distance")])
            .unwrap();
        let want = eager(&f.all, |lf| {
            lf.filter(col("DepDelay").gt(lit(10.0))).select([
                col("Origin"),
                col("DepDelay"),
                col("Distance"),
            ])
        });
        check_eq(&q, &want);

        let q = frame
            .with_columns([
                (col("Distance") * lit(2i64)).alias("d2"),
                col("Origin").str().to_lowercase().alias("o"),
            ])
            .unwrap()
            .rename(&["Year"], &["year"])
            .unwrap()
            .cast(&[("Distance", DataType::Float64)])
            .unwrap()
            .fill_null(lit(0.0))
            .unwrap()
            .drop(&["Cancelled"])
            .unwrap();
        let want = eager(&f.all, |lf| {
            lf.with_columns([
                (col("Distance") * lit(2i64)).alias("d2"),
                col("Origin").str().to_lowercase().alias("o"),
            ])
            .rename(["Year"], ["year"], true)
            .with_columns([col("Distance").strict_cast(DataType::Float64)])
            .fill_null(lit(0.0))
            .drop(Selector::ByName {
                names: ["Cancelled".into()].into(),
                strict: true,
            })
        });
        check_eq(&q, &want);

        let q = frame.drop_nulls(Some(&["DepDelay"])).unwrap();
        let want = eager(&f.all, |lf| lf.drop_nulls(None));
        check_eq(&q, &want);

        // A row count and a head (the gather tasks).
        let n = check_with(
            &frame
                .filter(col("Cancelled").eq(lit(0i64)))
                .unwrap()
                .len()
                .unwrap(),
            |g, l, how| assert_eq!(g, l, "{how}"),
        );
        let want = f
            .all
            .clone()
            .lazy()
            .filter(col("Cancelled").eq(lit(0i64)))
            .collect()
            .unwrap()
            .height();
        assert_eq!(n, want);
        let n = check_with(&frame.len().unwrap(), |g, l, how| assert_eq!(g, l, "{how}"));
        assert_eq!(n, f.all.height());
        let head = check(&frame.head(7).unwrap());
        assert_eq!(head, canon(&f.all.head(Some(7))));
    }
}

#[test]
fn groupby_aggregations_cross_the_wire() {
    let f = files();
    let aggs = || {
        vec![
            Agg::sum("DepDelay").alias("sum"),
            Agg::mean("DepDelay").alias("mean"),
            Agg::count("DepDelay").alias("count"),
            Agg::size(),
            Agg::min("DepDelay").alias("min"),
            Agg::max("Distance").alias("max"),
        ]
    };
    let oracle = |keys: &[&str]| {
        eager(&f.all, |lf| {
            lf.group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
                .agg([
                    col("DepDelay").sum().alias("sum"),
                    col("DepDelay").mean().alias("mean"),
                    col("DepDelay").count().alias("count"),
                    len(),
                    col("DepDelay").min().alias("min"),
                    col("Distance").max().alias("max"),
                ])
        })
    };
    for frame in [&f.csv, &f.parquet] {
        // A string key (the fused reader kernels), an int key, two keys; tree shapes.
        for keys in [vec!["Origin"], vec!["Cancelled"], vec!["Year", "Origin"]] {
            for (split_every, split_out) in [(8, 1), (2, 1), (3, 3)] {
                let g = frame
                    .groupby(&keys)
                    .split_every(split_every)
                    .split_out(split_out)
                    .agg(aggs())
                    .unwrap();
                check_eq(&g, &oracle(&keys));
            }
        }
        // After a filter (the general partial path), and nunique / unique.
        let g = frame
            .filter(col("Distance").gt(lit(500i64)))
            .unwrap()
            .groupby(["Origin"])
            .col("DepDelay")
            .mean()
            .unwrap();
        let want = eager(&f.all, |lf| {
            lf.filter(col("Distance").gt(lit(500i64)))
                .group_by([col("Origin")])
                .agg([col("DepDelay").mean()])
        });
        check_eq(&g, &want);
        let u = frame.unique("Origin").unwrap();
        check_eq(&u, &eager(&f.all, |lf| lf.select([col("Origin").unique()])));
        // value_counts: a sort step on the one groupby output partition; order checked.
        let vc = frame.value_counts("Origin").unwrap();
        let got = check_with(&vc, |g: &DataFrame, l: &DataFrame, how: &str| {
            assert!(g.equals_missing(l), "{how}")
        });
        let want = eager(&f.all, |lf| {
            lf.group_by([col("Origin")])
                .agg([len().alias("count")])
                .sort_by_exprs(
                    [col("count"), col("Origin")],
                    SortMultipleOptions::default().with_order_descending_multi([true, false]),
                )
        });
        assert_frames_close(&got, &want);
        // describe: sketches, quantiles and the reshape are named steps, not closures.
        let d = frame.describe().unwrap();
        let got = check_with(&d, |g: &DataFrame, l: &DataFrame, how: &str| {
            assert!(g.equals_missing(l), "{how}")
        });
        let stat = |name: &str, c: &str| {
            let row = got
                .clone()
                .lazy()
                .filter(col("statistic").eq(lit(name)))
                .collect()
                .unwrap();
            row.column(c).unwrap().f64().unwrap().get(0).unwrap()
        };
        let delay = f.all.column("DepDelay").unwrap().f64().unwrap().clone();
        assert_eq!(
            stat("count", "DepDelay"),
            delay.len() as f64 - delay.null_count() as f64
        );
        assert!((stat("mean", "DepDelay") - delay.mean().unwrap()).abs() < 1e-9);
        assert_eq!(stat("max", "Distance"), {
            let d = f.all.column("Distance").unwrap().i64().unwrap().clone();
            d.max().unwrap() as f64
        });
        let n = check_with(&frame.nunique("Year").unwrap(), |g, l, how| {
            assert_eq!(g, l, "{how}")
        });
        assert_eq!(n, 3);
    }
}

#[test]
fn shuffles_joins_and_sorts_cross_the_wire() {
    let f = files();
    let airports = df!(
        "Origin" => ["SFO", "LAX", "JFK", "ORD", "DEN"],
        "City" => ["San Francisco", "Los Angeles", "New York", "Chicago", "Denver"],
    )
    .unwrap();
    for frame in [&f.csv, &f.parquet] {
        check_eq(&frame.repartition(2).unwrap(), &f.all);
        check_eq(&frame.repartition(9).unwrap(), &f.all);
        check_eq(
            &frame.filter(lit(true)).unwrap().repartition(4).unwrap(),
            &f.all,
        );
        check_eq(&frame.shuffle(&["Origin"], 3).unwrap(), &f.all);

        let d = frame
            .select([col("Origin"), col("Year")])
            .unwrap()
            .drop_duplicates(None, 2)
            .unwrap();
        let want = eager(&f.all, |lf| {
            lf.select([col("Origin"), col("Year")])
                .unique(None, UniqueKeepStrategy::Any)
        });
        check_eq(&d, &want);

        // Broadcast (one-partition right side) and hash joins, inner and left.
        let one = RDataFrame::from_polars(airports.clone());
        let split = RDataFrame::from_polars_split(airports.clone(), 2).unwrap();
        for how in [JoinType::Inner, JoinType::Left] {
            let want = eager(&f.all, |lf| {
                lf.join(
                    airports.clone().lazy(),
                    [col("Origin")],
                    [col("Origin")],
                    JoinArgs::new(how.clone()).with_suffix(Some("_r".into())),
                )
            });
            for right in [&one, &split] {
                let j = frame
                    .join(right, &["Origin"], &["Origin"], how.clone(), "_r")
                    .unwrap();
                check_eq(&j, &want);
            }
        }
        // A self join on two keys, both sides shuffled.
        let small = frame
            .groupby(["Origin", "Year"])
            .col("Distance")
            .max()
            .unwrap()
            .rename(&["Distance"], &["maxd"])
            .unwrap();
        let j = frame
            .join(
                &small,
                &["Origin", "Year"],
                &["Origin", "Year"],
                JoinType::Inner,
                "_r",
            )
            .unwrap();
        let want = eager(&f.all, |lf| {
            let small = f
                .all
                .clone()
                .lazy()
                .group_by([col("Origin"), col("Year")])
                .agg([col("Distance").max().alias("maxd")]);
            lf.join(
                small,
                [col("Origin"), col("Year")],
                [col("Origin"), col("Year")],
                JoinArgs::new(JoinType::Inner).with_suffix(Some("_r".into())),
            )
        });
        check_eq(&j, &want);

        // Sorts: the sorted order itself is checked, not only the rows.
        for (by, descending) in [(vec!["Distance"], false), (vec!["DepDelay", "Year"], true)] {
            let s = frame.sort(&by, descending).unwrap();
            let local = check_with(&s, |g: &DataFrame, l: &DataFrame, how: &str| {
                assert!(g.equals_missing(l), "{how}")
            });
            let keys = |df: &DataFrame| df.select(by.iter().copied()).unwrap();
            let want = f
                .all
                .sort(
                    by.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    SortMultipleOptions::default()
                        .with_order_descending(descending)
                        .with_nulls_last(true),
                )
                .unwrap();
            assert!(keys(&local).equals_missing(&keys(&want)));
            assert_frames_close(&canon(&local), &canon(&f.all));
        }
        let s = frame.set_index("Distance").unwrap();
        let local = check_with(&s, |g: &DataFrame, l: &DataFrame, how: &str| {
            assert!(g.equals_missing(l), "{how}")
        });
        let d = local.column("Distance").unwrap().i64().unwrap();
        let v: Vec<i64> = d.into_no_null_iter().collect();
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(v.len(), f.all.height());
    }
}

/// The files written, read back with eager polars (CSV with the frame's schema: a file of
/// an empty partition holds only the header).
fn read_back(paths: &[String], csv: bool, schema: &SchemaRef) -> DataFrame {
    let frames: Vec<LazyFrame> = paths
        .iter()
        .map(|p| {
            let p = p.strip_prefix("file://").unwrap_or(p);
            let file = std::fs::File::open(Path::new(p)).unwrap();
            if csv {
                CsvReadOptions::default()
                    .with_schema(Some(schema.clone()))
                    .into_reader_with_file_handle(file)
                    .finish()
                    .unwrap()
                    .lazy()
            } else {
                ParquetReader::new(file).finish().unwrap().lazy()
            }
        })
        .collect();
    concat(frames, UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap()
}

#[test]
fn writers_cross_the_wire() {
    let f = files();
    let out = tempfile::tempdir().unwrap();
    for (k, frame) in [&f.csv, &f.parquet].into_iter().enumerate() {
        let q = frame.filter(col("Year").neq(lit(1991i64))).unwrap();
        let want = eager(&f.all, |lf| lf.filter(col("Year").neq(lit(1991i64))));
        let dir = out.path().join(format!("pq{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let w = q
            .to_parquet(dir.to_str().unwrap(), Default::default())
            .unwrap();
        let paths = check_with(&w, |g, l, how| assert_eq!(g, l, "{how}"));
        assert_eq!(paths.len(), q.npartitions());
        assert_frames_close(
            &canon(&read_back(&paths, false, want.schema())),
            &canon(&want),
        );

        let dir = out.path().join(format!("csv{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let w = q.to_csv(dir.to_str().unwrap(), Default::default()).unwrap();
        let paths = check_with(&w, |g, l, how| assert_eq!(g, l, "{how}"));
        assert_frames_close(
            &canon(&read_back(&paths, true, want.schema())),
            &canon(&want),
        );
    }
}

#[test]
fn in_memory_frames_carry_their_data() {
    let df = flights(300, 5);
    let frame = RDataFrame::from_polars_split(df.clone(), 4).unwrap();
    check_eq(&frame, &df);
    let g = frame.groupby(["Origin"]).col("Distance").sum().unwrap();
    check_eq(
        &g,
        &eager(&df, |lf| {
            lf.group_by([col("Origin")]).agg([col("Distance").sum()])
        }),
    );
}

#[test]
fn a_closure_map_partitions_fails_to_encode_naming_the_op() {
    let df = flights(100, 3);
    let frame = RDataFrame::from_polars_split(df.clone(), 2).unwrap();
    let schema = (**frame.schema()).clone();
    // Fused into the read of in-memory partitions, and on top of a shuffle.
    let fused = frame.map_partitions(schema.clone(), Ok).unwrap();
    let staged = frame
        .repartition(3)
        .unwrap()
        .map_partitions(schema, Ok)
        .unwrap();
    for (m, op) in [
        (&fused, "rask.dataframe.from_polars"),
        (&staged, "rask.dataframe.steps"),
    ] {
        let mut b = GraphBuilder::new();
        m.add_layers(&mut b);
        let (graph, _) = b.build_with_outputs(&m.output_keys()).unwrap();
        let mut seen = false;
        for t in graph.tasks() {
            if t.op.name() != op {
                continue;
            }
            seen = true;
            let err = OpRegistry::encode(&*t.op).unwrap_err();
            assert!(
                matches!(err, rask_error::RaskError::Serialization { .. }),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(op) && msg.contains("map_partitions") && msg.contains("closure"),
                "{msg}"
            );
            assert!(t.op.params().is_none());
        }
        assert!(seen, "no `{op}` task");
        // It still computes locally.
        assert_frames_close(&m.compute().unwrap(), &df);
    }
}

#[test]
fn bad_params_are_errors_naming_the_op() {
    let reg = OpRegistry::global();
    for name in [
        "rask.dataframe.read_csv",
        "rask.dataframe.read_parquet",
        "rask.dataframe.from_polars",
        "rask.dataframe.steps",
        "rask.dataframe.groupby_combine",
        "rask.dataframe.groupby_finalize",
        "rask.dataframe.split_by_hash",
        "rask.dataframe.hash_piece",
        "rask.dataframe.join",
        "rask.dataframe.sort_sample",
        "rask.dataframe.sort_divisions",
        "rask.dataframe.sort_split",
        "rask.dataframe.concat",
        "rask.dataframe.drop_duplicates",
        "rask.dataframe.sort_partition",
        "rask.dataframe.concat_slices",
        "rask.dataframe.split_rows",
        "rask.dataframe.take_piece",
        "rask.dataframe.unique_combine",
        "rask.dataframe.write_partition",
        "rask.dataframe.written",
        "rask.dataframe.head",
        "rask.dataframe.len",
        "rask.dataframe.from_delayed",
    ] {
        for blob in [
            &[][..],
            &[0xff; 7][..],
            &[1, 2, 3, 200, 200, 200, 200, 9][..],
        ] {
            if let Err(e) = reg.decode(name, blob) {
                let msg = e.to_string();
                assert!(msg.contains(name), "{name}: {msg}");
            }
        }
    }
    // A partition value cut short is an error naming its type.
    let (tag, bytes) = Value::new(rask_dataframe::Partition(flights(20, 1)))
        .encode()
        .unwrap();
    for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
        let err = Value::decode(tag, &bytes[..cut]).unwrap_err().to_string();
        assert!(err.contains("Partition"), "{err}");
    }
}

#[test]
fn bucket_readers_and_writers_cross_the_wire_with_their_storage_options() {
    use crate::object_store::{BUCKET, opts};
    let bucket = rask_io::IoStore::open(&format!("s3://{BUCKET}"), &opts()).unwrap();
    let all = flights(600, 17);
    for y in 1990..1993i64 {
        let mut part = eager(&all, |lf| lf.filter(col("Year").eq(lit(y))));
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf)
            .with_row_group_size(Some(80))
            .finish(&mut part)
            .unwrap();
        bucket.put(&format!("wire/{y}.parquet"), buf).unwrap();
        let mut buf = Vec::new();
        CsvWriter::new(&mut buf)
            .include_header(true)
            .finish(&mut part)
            .unwrap();
        bucket.put(&format!("wire-csv/{y}.csv"), buf).unwrap();
    }
    let parquet = rask_dataframe::read_parquet(
        &format!("s3://{BUCKET}/wire/*.parquet"),
        ParquetOptions::default()
            .with_row_groups_per_partition(1)
            .with_storage(opts()),
    )
    .unwrap();
    let csv = rask_dataframe::read_csv(
        &format!("s3://{BUCKET}/wire-csv/*.csv"),
        CsvOptions::default()
            .with_blocksize(2000)
            .with_storage(opts()),
    )
    .unwrap();
    for frame in [&parquet, &csv] {
        check_eq(frame, &all);
        let q = frame
            .select([col("Origin"), col("Distance")])
            .unwrap()
            .filter(col("Distance").lt(lit(1000i64)))
            .unwrap();
        check_eq(
            &q,
            &eager(&all, |lf| {
                lf.select([col("Origin"), col("Distance")])
                    .filter(col("Distance").lt(lit(1000i64)))
            }),
        );
        let g = frame.groupby(["Origin"]).col("Distance").sum().unwrap();
        check_eq(
            &g,
            &eager(&all, |lf| {
                lf.group_by([col("Origin")]).agg([col("Distance").sum()])
            }),
        );
    }
    // A writer into the bucket, rebuilt on the other side with the same credentials.
    let w = parquet
        .to_parquet(&format!("s3://{BUCKET}/wire-out"), opts())
        .unwrap();
    let paths = check_with(&w, |g, l, how| assert_eq!(g, l, "{how}"));
    assert_eq!(paths.len(), parquet.npartitions());
    let back = rask_dataframe::read_parquet(
        &format!("s3://{BUCKET}/wire-out/*.parquet"),
        ParquetOptions::default().with_storage(opts()),
    )
    .unwrap()
    .compute()
    .unwrap();
    assert_frames_close(&canon(&back), &canon(&all));
}

#[test]
fn an_expression_polars_cannot_serialize_fails_to_encode_naming_the_op() {
    // A Rust closure inside an expression (`Expr::map`): polars has no serialized form of it.
    let df = flights(50, 4);
    let frame = RDataFrame::from_polars_split(df.clone(), 2).unwrap();
    let m = frame
        .with_column(col("Distance").map(Ok, |_, f| Ok(f.clone())).alias("d2"))
        .unwrap();
    let mut b = GraphBuilder::new();
    m.add_layers(&mut b);
    let (graph, _) = b.build_with_outputs(&m.output_keys()).unwrap();
    for t in graph.tasks() {
        let err = OpRegistry::encode(&*t.op).unwrap_err();
        assert!(
            matches!(err, rask_error::RaskError::Serialization { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("rask.dataframe.from_polars"), "{msg}");
    }
    // Locally it runs.
    let got = m.compute().unwrap();
    assert_eq!(
        got.column("d2").unwrap(),
        &df.column("Distance")
            .unwrap()
            .clone()
            .with_name("d2".into())
    );
}
