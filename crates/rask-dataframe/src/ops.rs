//! Whole-frame operations built on the lowered partitions: `head`, `len`, `unique`,
//! `nunique`, `value_counts`, `describe`, and the writers.

use std::marker::PhantomData;
use std::sync::Arc;

use polars::prelude::{
    CsvWriter, DataFrame as PlFrame, DataType, Expr, IntoLazy, ParquetWriter, Schema, SerWriter,
    col, len, lit,
};
use rask_error::{RaskError, Result};
use rask_graph::{
    Collection, GraphBuilder, Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Tokenizer, Value,
};
use rask_io::{IoStore, StoreOptions};

use crate::frame::{DataFrame, Lowered, concat_frames};
use crate::groupby::{Agg, TreeOps, tree_reduce, unknown_column};
use crate::step::Step;
use crate::{frame_value, get_frame, polars_err, wire};
use polars::prelude::JoinType;

/// A single lazy value computed from a frame (a row count, the written file names).
#[must_use = "a lazy value (a writer writes nothing until it is computed: `.compute()`)"]
pub struct Scalar<T> {
    key: Key,
    layer: Arc<Layer>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Scalar<T> {
    /// The value of task `key`, which `layer` (or a layer below it) produces.
    pub(crate) fn new(key: Key, layer: Arc<Layer>) -> Self {
        Scalar {
            key,
            layer,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for Scalar<T> {
    fn clone(&self) -> Self {
        Scalar {
            key: self.key.clone(),
            layer: self.layer.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Collection for Scalar<T> {
    type Output = T;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }
    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }
    fn finalize(&self, values: Vec<Value>) -> Result<T> {
        let v = values.into_iter().next().expect("one value");
        // A frame-valued scalar is stored as a `Partition`.
        if let Some(p) = v.downcast_ref::<crate::Partition>() {
            let any: &dyn std::any::Any = &p.0;
            if let Some(t) = any.downcast_ref::<T>() {
                return Ok(t.clone());
            }
        }
        v.downcast_ref::<T>().cloned().ok_or_else(|| {
            RaskError::msg(format!(
                "{}: unexpected value type {}",
                self.key,
                v.type_name()
            ))
        })
    }
}

/// What a task over all partitions of `input` computes from their list.
#[derive(serde::Serialize, serde::Deserialize)]
enum GatherKind {
    /// The first `n` rows of the concatenated inputs (`schema` when there are none).
    Head {
        n: u64,
        #[serde(with = "crate::wire::schema_ref")]
        schema: polars::prelude::SchemaRef,
    },
    /// A row count known from footers.
    Total(u64),
    /// The sum of the one-row `len` columns of the inputs.
    SumLen,
    /// The rows of all inputs.
    SumHeights,
}

/// A task over all partitions of `input`.
struct Gather {
    name: &'static str,
    kind: GatherKind,
}

const GATHER_NAMES: [&str; 4] = [
    "rask.dataframe.head",
    "rask.dataframe.len_from_footers",
    "rask.dataframe.len",
    "rask.dataframe.nunique",
];

fn decode_gather(name: &'static str, params: &[u8]) -> Result<Arc<dyn Op>> {
    let kind: GatherKind = wire::decode(name, params)?;
    let expected = match kind {
        GatherKind::Head { .. } => GATHER_NAMES[0],
        GatherKind::Total(_) => GATHER_NAMES[1],
        GatherKind::SumLen => GATHER_NAMES[2],
        GatherKind::SumHeights => GATHER_NAMES[3],
    };
    if expected != name {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{name}`"),
            message: format!("the parameters are those of `{expected}`"),
        });
    }
    Ok(Arc::new(Gather { name, kind }))
}

rask_graph::register_op!(GATHER_NAMES[0], |p: &[u8], _: &OpRegistry| decode_gather(
    GATHER_NAMES[0],
    p
));
rask_graph::register_op!(GATHER_NAMES[1], |p: &[u8], _: &OpRegistry| decode_gather(
    GATHER_NAMES[1],
    p
));
rask_graph::register_op!(GATHER_NAMES[2], |p: &[u8], _: &OpRegistry| decode_gather(
    GATHER_NAMES[2],
    p
));
rask_graph::register_op!(GATHER_NAMES[3], |p: &[u8], _: &OpRegistry| decode_gather(
    GATHER_NAMES[3],
    p
));

impl Op for Gather {
    fn name(&self) -> &str {
        self.name
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(self.name, &self.kind).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let frames = inputs
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<Vec<_>>>()?;
        match &self.kind {
            GatherKind::Head { n, schema } => Ok(frame_value(
                concat_frames(frames, schema)?.head(Some(*n as usize)),
            )),
            GatherKind::Total(n) => Ok(Value::new(*n as usize)),
            GatherKind::SumLen => {
                let mut total = 0usize;
                for f in frames {
                    let c = f.column("len").map_err(polars_err("len"))?;
                    total += c.u32().map_err(polars_err("len"))?.get(0).unwrap_or(0) as usize;
                }
                Ok(Value::new(total))
            }
            GatherKind::SumHeights => {
                Ok(Value::new(frames.iter().map(|f| f.height()).sum::<usize>()))
            }
        }
    }
}

fn gather_task(
    input: &Lowered,
    deps: Vec<Key>,
    name: &'static str,
    salt: &str,
    kind: GatherKind,
) -> (Key, Arc<Layer>) {
    let mut t = Tokenizer::new(name);
    t.write_str(input.name.as_str());
    t.write_str(salt);
    let prefix = name.rsplit('.').next().unwrap_or(name);
    let key = Key::new(KeyName::from_token(prefix, t.finish()), [0u32]);
    let op: Arc<dyn Op> = Arc::new(Gather { name, kind });
    let layer = Layer::new(
        vec![TaskSpec::new(key.clone(), op, deps)],
        vec![input.layer.clone()],
    );
    (key, layer)
}

impl DataFrame {
    /// The first `n` rows. Readers stop after `n` rows of a partition; only the partitions
    /// needed are read when row counts are known (Parquet), otherwise the first partition
    /// only, as in Dask (use [`DataFrame::head_from`] to look further).
    pub fn head(&self, n: usize) -> Result<DataFrame> {
        self.head_from(n, 1)
    }

    /// The first `n` rows from the first `npartitions` partitions (or fewer when row counts
    /// show fewer are enough).
    pub fn head_from(&self, n: usize, npartitions: usize) -> Result<DataFrame> {
        let limited = self.with_step(Step::Head(n))?;
        let input = limited.lowered();
        let mut k = npartitions.clamp(1, input.npartitions.max(1));
        if let Some(rows) = &self.lowered().num_rows {
            // Known counts: as many partitions as hold n rows.
            let mut acc = 0;
            k = rows.len().max(1);
            for (i, r) in rows.iter().enumerate() {
                acc += r;
                if acc >= n as u64 {
                    k = i + 1;
                    break;
                }
            }
        }
        let k = k.min(input.npartitions);
        let schema = self.schema().clone();
        let deps: Vec<Key> = (0..k).map(|i| input.key(i)).collect();
        let (key, layer) = gather_task(
            input,
            deps,
            GATHER_NAMES[0],
            &format!("{n}/{k}"),
            GatherKind::Head {
                n: n as u64,
                schema: schema.clone(),
            },
        );
        let mut plan = (*input.plan).clone();
        plan.push(format!("HEAD {n} of the first {k} partitions"));
        Ok(DataFrame::from_lowered_parts(key, layer, plan, schema))
    }

    /// Number of rows: from Parquet footers when nothing filters rows (no data read),
    /// otherwise a count per partition, summed.
    pub fn len(&self) -> Result<Scalar<usize>> {
        let lowered = self.lowered();
        if let Some(rows) = &lowered.num_rows {
            let total: u64 = rows.iter().sum();
            let (key, layer) = gather_task(
                lowered,
                vec![],
                GATHER_NAMES[1],
                &total.to_string(),
                GatherKind::Total(total),
            );
            return Ok(Scalar {
                key,
                layer,
                _type: PhantomData,
            });
        }
        let counted = self.with_step(Step::Select(vec![len().alias("len")]))?;
        let input = counted.lowered();
        let (key, layer) =
            gather_task(input, input.keys(), GATHER_NAMES[2], "", GatherKind::SumLen);
        Ok(Scalar {
            key,
            layer,
            _type: PhantomData,
        })
    }

    /// The distinct values of one column (one partition, unordered), as a tree reduction.
    pub fn unique(&self, column: &str) -> Result<DataFrame> {
        if self.schema().get(column).is_none() {
            return Err(unknown_column("column", column, self.schema()));
        }
        let c = column.to_string();
        let partial = self.with_step(Step::Select(vec![col(column).unique()]))?;
        let schema = partial.schema().clone();
        let op = |final_: bool, c: String| -> Arc<dyn Op> {
            Arc::new(UniqueCombine { column: c, final_ })
        };
        let desc = format!("UNIQUE {column}");
        Ok(partial.stage(schema, |input| {
            tree_reduce(
                input,
                std::slice::from_ref(&c),
                TreeOps {
                    combine: op(false, c.clone()),
                    finalize: op(true, c.clone()),
                },
                8,
                1,
                desc,
            )
        }))
    }

    /// Number of distinct values of one column (null counts as a value, as in polars).
    pub fn nunique(&self, column: &str) -> Result<Scalar<usize>> {
        let u = self.unique(column)?;
        let input = u.lowered();
        let (key, layer) = gather_task(
            input,
            input.keys(),
            GATHER_NAMES[3],
            "",
            GatherKind::SumHeights,
        );
        Ok(Scalar {
            key,
            layer,
            _type: PhantomData,
        })
    }

    /// Rows per distinct value of one column: the column and `count`, most frequent first.
    pub fn value_counts(&self, column: &str) -> Result<DataFrame> {
        let counts = self.groupby([column]).agg([Agg::size().alias("count")])?;
        // One partition (the groupby's single output): sorting it sorts the result.
        let first = counts.columns()[0].clone();
        counts.with_step(Step::SortBy {
            by: vec![col("count"), col(first.as_str())],
            descending: vec![true, false],
        })
    }

    /// Summary statistics of the numeric columns, as Dask's `describe`: `count`,
    /// `null_count`, `mean`, `std`, `min`, `25%`, `50%`, `75%`, `max` in rows named by a
    /// `statistic` column, one Float64 column per input column.
    ///
    /// The percentiles are approximate, as Dask's: each partition keeps a sketch of at most
    /// `SKETCH_POINTS` (512) of its sorted values per column (all of them when it has no more),
    /// and the sketches are merged into weighted quantiles, interpolated linearly. They are
    /// exact when no partition has more values than that; otherwise a percentile is off by
    /// at most about one sketch step of rank in each partition (1/512 of its values). NaN
    /// is left out of the percentiles (it counts as a value, as in polars).
    pub fn describe(&self) -> Result<DataFrame> {
        let numeric: Vec<String> = self
            .schema()
            .iter()
            .filter(|(_, d)| d.is_primitive_numeric())
            .map(|(n, _)| n.to_string())
            .collect();
        if numeric.is_empty() {
            return Err(RaskError::invalid_argument(
                "frame",
                "describe needs at least one numeric column",
            ));
        }
        const KEY: &str = "__rask_describe";
        let mut aggs = Vec::new();
        for c in &numeric {
            aggs.push(Agg::count(c).alias(&format!("{c}\u{1}count")));
            aggs.push(Agg::size().alias(&format!("{c}\u{1}size")));
            aggs.push(Agg::mean(c).alias(&format!("{c}\u{1}mean")));
            aggs.push(Agg::std(c).alias(&format!("{c}\u{1}std")));
            aggs.push(Agg::min(c).alias(&format!("{c}\u{1}min")));
            aggs.push(Agg::max(c).alias(&format!("{c}\u{1}max")));
        }
        let keyed = self.with_column(lit(0i32).alias(KEY))?;
        let wide = keyed.groupby([KEY]).agg(aggs)?;
        let percentiles = self.percentiles(&numeric, KEY)?;
        let wide = wide.join(&percentiles, &[KEY], &[KEY], JoinType::Inner, "")?;
        let mut out_schema = Schema::default();
        out_schema.insert("statistic".into(), DataType::String);
        for c in &numeric {
            out_schema.insert(c.as_str().into(), DataType::Float64);
        }
        wide.with_step(Step::Builtin {
            func: Builtin::StatisticRows { columns: numeric },
            schema: Arc::new(out_schema),
        })
    }

    /// One row keyed `key = 0` with columns `{c}\u{1}25%`, `50%`, `75%` per column `c` of
    /// `columns`: per-partition sketches, gathered into one partition and merged.
    fn percentiles(&self, columns: &[String], key: &'static str) -> Result<DataFrame> {
        let mut sketch_schema = Schema::default();
        sketch_schema.insert("column".into(), DataType::String);
        sketch_schema.insert("value".into(), DataType::Float64);
        sketch_schema.insert("weight".into(), DataType::Float64);
        let sketches = self
            .select(columns.iter().map(|c| col(c.as_str())).collect::<Vec<_>>())?
            .with_step(Step::Builtin {
                func: Builtin::QuantileSketch {
                    columns: columns.to_vec(),
                },
                schema: Arc::new(sketch_schema),
            })?
            .repartition(1)?;
        let mut schema = Schema::default();
        schema.insert(key.into(), DataType::Int32);
        for c in columns {
            for q in ["25%", "50%", "75%"] {
                schema.insert(format!("{c}\u{1}{q}").into(), DataType::Float64);
            }
        }
        sketches.with_step(Step::Builtin {
            func: Builtin::MergeSketches {
                key: key.to_string(),
                columns: columns.to_vec(),
            },
            schema: Arc::new(schema),
        })
    }

    /// Writes one Parquet file per partition, `part-00000.parquet`, ..., into `dir` (a path
    /// or URL); computing the result writes and returns the files' URLs.
    pub fn to_parquet(&self, dir: &str, storage: StoreOptions) -> Result<Scalar<Vec<String>>> {
        self.write(dir, storage, "parquet")
    }

    /// Writes one CSV file (with a header) per partition, `part-00000.csv`, ..., into `dir`.
    pub fn to_csv(&self, dir: &str, storage: StoreOptions) -> Result<Scalar<Vec<String>>> {
        self.write(dir, storage, "csv")
    }

    fn write(
        &self,
        dir: &str,
        storage: StoreOptions,
        format: &'static str,
    ) -> Result<Scalar<Vec<String>>> {
        let store = IoStore::open(dir, &storage)?;
        let input = self.lowered();
        let mut t = Tokenizer::new("rask.dataframe.write");
        t.write_str(input.name.as_str());
        t.write_str(dir);
        t.write_str(format);
        let token = t.finish();
        let write_name = KeyName::from_token(&format!("to-{format}"), token);
        let mut tasks = Vec::new();
        let mut written = Vec::new();
        for i in 0..input.npartitions {
            let file = format!("part-{i:05}.{format}");
            written.push(store.url(&file));
            let op: Arc<dyn Op> = Arc::new(WritePartition {
                store: store.clone(),
                dir: dir.to_string(),
                storage: storage.clone(),
                file,
                format,
            });
            let key = Key::new(write_name.clone(), [i as u32]);
            tasks.push(TaskSpec::new(key.clone(), op, vec![input.key(i)]));
        }
        let deps: Vec<Key> = tasks.iter().map(|t: &TaskSpec| t.key.clone()).collect();
        let done = Key::new(
            KeyName::from_token(&format!("written-{format}"), token),
            [0u32],
        );
        let urls = written.clone();
        let op: Arc<dyn Op> = Arc::new(Written(urls));
        tasks.push(TaskSpec::new(done.clone(), op, deps));
        let layer = Layer::new(tasks, vec![input.layer.clone()]);
        Ok(Scalar {
            key: done,
            layer,
            _type: PhantomData,
        })
    }
}

/// The list of written files, once every write task is done.
struct Written(Vec<String>);

const WRITTEN: &str = "rask.dataframe.written";

fn decode_written(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(Written(wire::decode(WRITTEN, params)?)))
}
rask_graph::register_op!(WRITTEN, decode_written);

impl Op for Written {
    fn name(&self) -> &str {
        WRITTEN
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(WRITTEN, &self.0).ok()
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(Value::new(self.0.clone()))
    }
}

/// Concatenated partial uniques, made unique again.
struct UniqueCombine {
    column: String,
    final_: bool,
}

const UNIQUE_COMBINE: &str = "rask.dataframe.unique_combine";
const UNIQUE_FINALIZE: &str = "rask.dataframe.unique_finalize";

fn decode_unique_combine(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(UniqueCombine {
        column: wire::decode(UNIQUE_COMBINE, params)?,
        final_: false,
    }))
}
fn decode_unique_finalize(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(UniqueCombine {
        column: wire::decode(UNIQUE_FINALIZE, params)?,
        final_: true,
    }))
}
rask_graph::register_op!(UNIQUE_COMBINE, decode_unique_combine);
rask_graph::register_op!(UNIQUE_FINALIZE, decode_unique_finalize);

impl Op for UniqueCombine {
    fn name(&self) -> &str {
        if self.final_ {
            UNIQUE_FINALIZE
        } else {
            UNIQUE_COMBINE
        }
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(self.name(), &self.column).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let frames = inputs
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<Vec<_>>>()?;
        let schema = frames[0].schema().clone();
        let df = concat_frames(frames, &schema)?;
        let out = df
            .lazy()
            .select([col(self.column.as_str()).unique()])
            .collect()
            .map_err(polars_err(self.name()))?;
        Ok(frame_value(out))
    }
}

/// Writes one partition.
struct WritePartition {
    store: IoStore,
    /// The folder `store` was opened on, and how: what a worker opens it with.
    dir: String,
    storage: StoreOptions,
    file: String,
    format: &'static str,
}

const WRITE_PARTITION: &str = "rask.dataframe.write_partition";

#[derive(serde::Serialize, serde::Deserialize)]
struct WriteParams {
    dir: String,
    storage: wire::WireStore,
    file: String,
    format: String,
}

fn decode_write_partition(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: WriteParams = wire::decode(WRITE_PARTITION, params)?;
    let format = match p.format.as_str() {
        "parquet" => "parquet",
        "csv" => "csv",
        other => {
            return Err(RaskError::Serialization {
                what: format!("parameters of op `{WRITE_PARTITION}`"),
                message: format!("unknown format `{other}`"),
            });
        }
    };
    let storage = p.storage.options();
    let store = IoStore::open(&p.dir, &storage)
        .map_err(|e| e.context(format!("decoding op `{WRITE_PARTITION}`")))?;
    Ok(Arc::new(WritePartition {
        store,
        dir: p.dir,
        storage,
        file: p.file,
        format,
    }))
}
rask_graph::register_op!(WRITE_PARTITION, decode_write_partition);

impl Op for WritePartition {
    fn name(&self) -> &str {
        WRITE_PARTITION
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(
            WRITE_PARTITION,
            &WriteParams {
                dir: self.dir.clone(),
                storage: wire::WireStore::of(&self.storage),
                file: self.file.clone(),
                format: self.format.to_string(),
            },
        )
        .ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut df = get_frame(&inputs[0])?.clone();
        let url = self.store.url(&self.file);
        let mut buf = Vec::new();
        let res = match self.format {
            "parquet" => ParquetWriter::new(&mut buf).finish(&mut df).map(|_| ()),
            _ => CsvWriter::new(&mut buf)
                .include_header(true)
                .finish(&mut df),
        };
        res.map_err(|e| RaskError::external(e).context(format!("writing {url}")))?;
        self.store.put(&self.file, buf)?;
        Ok(Value::new(url))
    }
}

#[allow(dead_code)]
fn exprs(_: &[Expr]) {}

/// The rows of `describe`'s output, in order.
const DESCRIBE_STATS: [&str; 9] = [
    "count",
    "null_count",
    "mean",
    "std",
    "min",
    "25%",
    "50%",
    "75%",
    "max",
];

/// The per-partition functions of `describe` that are not polars queries, as named steps
/// (they cross the wire; a closure would not).
#[doc(hidden)]
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Builtin {
    /// Per column, a quantile sketch of the partition's values: rows `column`, `value`,
    /// `weight`.
    QuantileSketch { columns: Vec<String> },
    /// All sketches (one partition) to one row keyed `key = 0` with the columns
    /// `{c}\u{1}25%`, `50%`, `75%`.
    MergeSketches { key: String, columns: Vec<String> },
    /// The one wide row of statistics to one row per statistic.
    StatisticRows { columns: Vec<String> },
}

impl Builtin {
    pub(crate) fn run(&self, df: PlFrame) -> polars::prelude::PolarsResult<PlFrame> {
        use polars::prelude::Column;
        match self {
            Builtin::QuantileSketch { columns } => {
                let (mut column, mut value, mut weight) = (Vec::new(), Vec::new(), Vec::new());
                for c in columns {
                    let s = df.column(c)?.cast(&DataType::Float64)?;
                    let mut v: Vec<f64> =
                        s.f64()?.iter().flatten().filter(|x| !x.is_nan()).collect();
                    v.sort_unstable_by(f64::total_cmp);
                    for (x, w) in quantile_sketch(&v, SKETCH_POINTS) {
                        column.push(c.as_str());
                        value.push(x);
                        weight.push(w);
                    }
                }
                PlFrame::new_infer_height(vec![
                    Column::new("column".into(), column),
                    Column::new("value".into(), value),
                    Column::new("weight".into(), weight),
                ])
            }
            Builtin::MergeSketches { key, columns } => {
                let column = df.column("column")?.str()?.clone();
                let value = df.column("value")?.f64()?.clone();
                let weight = df.column("weight")?.f64()?.clone();
                let mut points: std::collections::HashMap<&str, Vec<(f64, f64)>> =
                    Default::default();
                for ((c, v), w) in column.iter().zip(value.iter()).zip(weight.iter()) {
                    if let (Some(c), Some(v), Some(w)) = (c, v, w) {
                        points.entry(c).or_default().push((v, w));
                    }
                }
                let mut out = vec![Column::new(key.as_str().into(), [0i32])];
                for c in columns {
                    let mut p = points.remove(c.as_str()).unwrap_or_default();
                    p.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    for (q, label) in [(0.25, "25%"), (0.5, "50%"), (0.75, "75%")] {
                        let name = format!("{c}\u{1}{label}");
                        out.push(Column::new(name.into(), [weighted_quantile(&p, q)]));
                    }
                }
                PlFrame::new_infer_height(out)
            }
            Builtin::StatisticRows { columns } => {
                let get = |c: &str, s: &str| -> polars::prelude::PolarsResult<Option<f64>> {
                    let col = df
                        .column(&format!("{c}\u{1}{s}"))?
                        .cast(&DataType::Float64)?;
                    Ok(col.f64()?.get(0))
                };
                let mut out = vec![Column::new("statistic".into(), DESCRIBE_STATS.to_vec())];
                for c in columns {
                    let count = get(c, "count")?;
                    let size = get(c, "size")?;
                    let values = vec![
                        count,
                        size.zip(count).map(|(s, n)| s - n),
                        get(c, "mean")?,
                        get(c, "std")?,
                        get(c, "min")?,
                        get(c, "25%")?,
                        get(c, "50%")?,
                        get(c, "75%")?,
                        get(c, "max")?,
                    ];
                    out.push(Column::new(c.as_str().into(), values));
                }
                PlFrame::new_infer_height(out)
            }
        }
    }
}

/// Values a partition keeps per column for `describe`'s percentiles.
pub const SKETCH_POINTS: usize = 512;

/// A quantile sketch of sorted `values`: all of them with weight 1 when there are at most
/// `points`, else `points` values at evenly spaced ranks (the first and the last included),
/// each standing for `len / points` values.
fn quantile_sketch(values: &[f64], points: usize) -> Vec<(f64, f64)> {
    let n = values.len();
    if n <= points {
        return values.iter().map(|&v| (v, 1.0)).collect();
    }
    let weight = n as f64 / points as f64;
    (0..points)
        .map(|j| (values[j * (n - 1) / (points - 1)], weight))
        .collect()
}

/// The `q` quantile of weighted points sorted by value, by linear interpolation between
/// the points' central ranks: with every weight 1 this is polars' (and NumPy's) linear
/// quantile. `None` without points.
fn weighted_quantile(points: &[(f64, f64)], q: f64) -> Option<f64> {
    let total: f64 = points.iter().map(|p| p.1).sum();
    let last = points.last()?;
    let target = q * (total - 1.0);
    // The central rank of each point: ranks before it, plus half of the others it stands for.
    let mut before = 0.0;
    let mut prev: Option<(f64, f64)> = None;
    for &(v, w) in points {
        let rank = before + (w - 1.0) / 2.0;
        if rank >= target {
            return Some(match prev {
                None => v,
                Some((pv, pr)) if rank > pr => pv + (v - pv) * (target - pr) / (rank - pr),
                Some(_) => v,
            });
        }
        prev = Some((v, rank));
        before += w;
    }
    Some(last.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NumPy's linear quantile of sorted values, by hand.
    fn linear(sorted: &[f64], q: f64) -> f64 {
        let pos = q * (sorted.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        match sorted.get(i + 1) {
            Some(next) => sorted[i] + (next - sorted[i]) * frac,
            None => sorted[i],
        }
    }

    #[test]
    fn unit_weights_give_the_linear_quantile() {
        let v: Vec<f64> = (0..37).map(|i| ((i * 11) % 37) as f64 * 1.5).collect();
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let points = quantile_sketch(&sorted, 64);
        assert_eq!(points.len(), 37);
        for q in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0] {
            assert_eq!(
                weighted_quantile(&points, q),
                Some(linear(&sorted, q)),
                "q{q}"
            );
        }
        assert_eq!(weighted_quantile(&[], 0.5), None);
        assert_eq!(weighted_quantile(&[(3.0, 1.0)], 0.5), Some(3.0));
    }

    #[test]
    fn a_sketch_keeps_the_ends_and_stays_within_a_step_of_rank() {
        let sorted: Vec<f64> = (0..100_000).map(|i| i as f64).collect();
        let points = quantile_sketch(&sorted, 512);
        assert_eq!(points.len(), 512);
        assert_eq!((points[0].0, points[511].0), (0.0, 99_999.0));
        let total: f64 = points.iter().map(|p| p.1).sum();
        assert!((total - 100_000.0).abs() < 1e-6);
        for q in [0.01, 0.25, 0.5, 0.75, 0.99] {
            let got = weighted_quantile(&points, q).unwrap();
            // Ranks equal values here: the error in rank is the error in value.
            assert!(
                (got - linear(&sorted, q)).abs() <= 100_000.0 / 512.0,
                "q{q}: {got}"
            );
        }
    }
}
