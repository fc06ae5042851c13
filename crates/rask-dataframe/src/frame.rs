//! `DataFrame`: the partitioned frame handle, its lowering to tasks, and `explain()`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use polars::prelude::{
    DataFrame as PlFrame, DataType, Expr, IntoLazy, PlSmallStr, Schema, SchemaRef,
};
use rask_error::{RaskError, Result};
use rask_graph::{
    Collection, GraphBuilder, Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Token, Tokenizer,
    Value,
};

use crate::source::{MemorySource, Pushdown, Source};
use crate::step::{self, PartitionFn, Step};
use crate::{frame_value, get_frame, polars_err, wire};

/// A lazy frame cut into partitions, each a polars `DataFrame` produced by one task keyed
/// `('name', i)`.
///
/// The schema is known before anything runs. Per-partition operations (`select`, `filter`,
/// `with_columns`, ...) append steps that run inside the task producing each partition;
/// operations across partitions (`groupby`, `head`, ...) lower the frame into a layer of tasks
/// and build theirs on top. Cloning is cheap.
#[derive(Clone)]
#[must_use = "a lazy frame: nothing runs until it is computed (`.compute()`)"]
pub struct DataFrame {
    inner: Arc<Inner>,
}

struct Inner {
    input: Input,
    /// The schema of the input, before the steps.
    input_schema: SchemaRef,
    steps: Vec<Step>,
    schema: SchemaRef,
    lowered: OnceLock<Lowered>,
}

#[derive(Clone)]
enum Input {
    Source(Arc<dyn Source>),
    /// Partitions already produced by tasks `(name, i)` of `layer`.
    Tasks(Lowered),
}

/// A frame turned into tasks.
#[derive(Clone)]
pub(crate) struct Lowered {
    pub(crate) name: KeyName,
    pub(crate) layer: Arc<Layer>,
    pub(crate) npartitions: usize,
    /// The plan that produced these tasks, for `explain()`.
    pub(crate) plan: Arc<Vec<String>>,
    /// Known rows per partition (from footers), when every partition's count is known.
    pub(crate) num_rows: Option<Vec<u64>>,
}

impl Lowered {
    pub(crate) fn key(&self, i: usize) -> Key {
        Key::new(self.name.clone(), [i as u32])
    }
    pub(crate) fn keys(&self) -> Vec<Key> {
        (0..self.npartitions).map(|i| self.key(i)).collect()
    }
}

impl fmt::Debug for DataFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rask.DataFrame<npartitions={}, columns={:?}>",
            self.npartitions(),
            self.columns()
        )
    }
}

impl DataFrame {
    pub(crate) fn from_source(source: Arc<dyn Source>) -> DataFrame {
        let schema = source.schema().clone();
        DataFrame {
            inner: Arc::new(Inner {
                input: Input::Source(source),
                input_schema: schema.clone(),
                steps: Vec::new(),
                schema,
                lowered: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn from_lowered(lowered: Lowered, schema: SchemaRef) -> DataFrame {
        DataFrame {
            inner: Arc::new(Inner {
                input: Input::Tasks(lowered),
                input_schema: schema.clone(),
                steps: Vec::new(),
                schema,
                lowered: OnceLock::new(),
            }),
        }
    }

    /// One partition holding `df`.
    pub fn from_polars(df: PlFrame) -> DataFrame {
        Self::from_partitions(vec![df]).expect("one partition always has one schema")
    }

    /// `df` cut into `npartitions` partitions of near-equal row counts (the last may be
    /// shorter), like `dask.dataframe.from_pandas(df, npartitions=n)`.
    pub fn from_polars_split(df: PlFrame, npartitions: usize) -> Result<DataFrame> {
        if npartitions == 0 {
            return Err(RaskError::invalid_argument(
                "npartitions",
                "must be at least 1",
            ));
        }
        let n = df.height();
        let per = n.div_ceil(npartitions).max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            parts.push(df.slice(start as i64, per.min(n - start)));
            start += per;
        }
        if parts.is_empty() {
            parts.push(df);
        }
        Self::from_partitions(parts)
    }

    /// A frame whose partitions are the given polars frames, which must share one schema.
    pub fn from_partitions(partitions: Vec<PlFrame>) -> Result<DataFrame> {
        let first = partitions.first().ok_or_else(|| {
            RaskError::invalid_argument("partitions", "at least one partition is needed")
        })?;
        let schema = first.schema().clone();
        for (i, p) in partitions.iter().enumerate().skip(1) {
            if p.schema() != &schema {
                return Err(RaskError::invalid_argument(
                    "partitions",
                    format!(
                        "partition {i} has schema {:?}, but partition 0 has {:?}",
                        p.schema(),
                        schema
                    ),
                ));
            }
        }
        // In-memory data is hashed by identity: equal contents in two calls are two frames,
        // as with impure delayed values.
        let token = Token::fresh();
        Ok(Self::from_source(Arc::new(MemorySource {
            partitions,
            schema,
            token,
        })))
    }

    /// A frame whose partition `i` is the value of task `parts[i].1` (in layer `parts[i].0`),
    /// a [`crate::Partition`] with the declared `schema` (Dask's `from_delayed(..., meta=)`).
    /// A partition with another schema is an error at run time naming it and its task.
    pub fn from_delayed_parts(parts: Vec<(Arc<Layer>, Key)>, schema: Schema) -> Result<DataFrame> {
        if parts.is_empty() {
            return Err(RaskError::invalid_argument(
                "parts",
                "at least one partition is needed",
            ));
        }
        let schema: SchemaRef = Arc::new(schema);
        let mut t = Tokenizer::new("rask.dataframe.from_delayed");
        for (_, k) in &parts {
            t.write_key(k);
        }
        t.write_str(&format!("{schema:?}"));
        let name = KeyName::from_token("from-delayed", t.finish());
        let mut tasks = Vec::with_capacity(parts.len());
        let mut layers = Vec::with_capacity(parts.len());
        for (i, (layer, key)) in parts.into_iter().enumerate() {
            let op: Arc<dyn Op> = Arc::new(CheckPartition {
                schema: schema.clone(),
                index: i as u64,
                source: key.to_string(),
            });
            tasks.push(TaskSpec::new(
                Key::new(name.clone(), [i as u32]),
                op,
                vec![key],
            ));
            layers.push(layer);
        }
        let n = tasks.len();
        Ok(DataFrame::from_lowered(
            Lowered {
                name,
                layer: Layer::new(tasks, layers),
                npartitions: n,
                plan: Arc::new(vec![format!("FROM_DELAYED {n} partitions")]),
                num_rows: None,
            },
            schema,
        ))
    }

    pub(crate) fn with_step(&self, step: Step) -> Result<DataFrame> {
        let mut steps = self.inner.steps.clone();
        steps.push(step);
        let input_schema = self.input_schema();
        let schema = step::output_schema(&input_schema, &steps)?;
        Ok(DataFrame {
            inner: Arc::new(Inner {
                input: self.inner.input.clone(),
                input_schema,
                steps,
                schema,
                lowered: OnceLock::new(),
            }),
        })
    }

    fn input_schema(&self) -> SchemaRef {
        self.inner.input_schema.clone()
    }

    // ----- inspect -----

    /// The schema after all steps.
    pub fn schema(&self) -> &SchemaRef {
        &self.inner.schema
    }

    /// Column names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.inner
            .schema
            .iter_names()
            .map(|n| n.to_string())
            .collect()
    }

    /// `(column, dtype)` pairs, in order.
    pub fn dtypes(&self) -> Vec<(String, DataType)> {
        self.inner
            .schema
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    }

    /// The source this frame reads, when it reads one directly.
    #[cfg(test)]
    pub(crate) fn source(&self) -> Option<Arc<dyn Source>> {
        match &self.inner.input {
            Input::Source(s) => Some(s.clone()),
            Input::Tasks(_) => None,
        }
    }

    /// Number of partitions (after statistics pruned the ones that cannot match).
    pub fn npartitions(&self) -> usize {
        self.lowered().npartitions
    }

    /// The plan as text: the reader with what was pushed into it, the steps fused into each
    /// partition's task, and the stages above.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (depth, line) in self.lowered().plan.iter().rev().enumerate() {
            out.push_str(&"  ".repeat(depth));
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    // ----- per-partition transforms (fused) -----

    /// Keeps/computes these expressions (polars `select`).
    pub fn select<E: AsRef<[Expr]>>(&self, exprs: E) -> Result<DataFrame> {
        self.with_step(Step::Select(exprs.as_ref().to_vec()))
    }

    pub fn with_columns<E: AsRef<[Expr]>>(&self, exprs: E) -> Result<DataFrame> {
        self.with_step(Step::WithColumns(exprs.as_ref().to_vec()))
    }

    pub fn with_column(&self, expr: Expr) -> Result<DataFrame> {
        self.with_step(Step::WithColumns(vec![expr]))
    }

    /// Rows where `predicate` is true. Leading filters are also given to the reader, which
    /// skips row groups whose statistics rule them out.
    pub fn filter(&self, predicate: Expr) -> Result<DataFrame> {
        self.with_step(Step::Filter(predicate))
    }

    pub fn rename<S: AsRef<str>>(&self, existing: &[S], new: &[S]) -> Result<DataFrame> {
        if existing.len() != new.len() {
            return Err(RaskError::invalid_argument(
                "new",
                format!(
                    "{} new names for {} existing columns",
                    new.len(),
                    existing.len()
                ),
            ));
        }
        self.with_step(Step::Rename {
            existing: existing.iter().map(|s| s.as_ref().to_string()).collect(),
            new: new.iter().map(|s| s.as_ref().to_string()).collect(),
        })
    }

    pub fn drop<S: AsRef<str>>(&self, columns: &[S]) -> Result<DataFrame> {
        self.with_step(Step::Drop(
            columns.iter().map(|s| s.as_ref().to_string()).collect(),
        ))
    }

    /// Casts columns (strictly: a value that does not convert is an error).
    pub fn cast<S: AsRef<str>>(&self, dtypes: &[(S, DataType)]) -> Result<DataFrame> {
        self.with_step(Step::Cast(
            dtypes
                .iter()
                .map(|(n, d)| (n.as_ref().to_string(), d.clone()))
                .collect(),
        ))
    }

    pub fn fill_null(&self, value: Expr) -> Result<DataFrame> {
        self.with_step(Step::FillNull(value))
    }

    /// Drops rows with a null in `subset` (all columns when `None`).
    pub fn drop_nulls<S: AsRef<str>>(&self, subset: Option<&[S]>) -> Result<DataFrame> {
        self.with_step(Step::DropNulls(
            subset.map(|s| s.iter().map(|s| s.as_ref().to_string()).collect()),
        ))
    }

    /// Runs `func` on every partition. `schema` is what it returns (it is not called on
    /// empty data to find out). The closure keeps the data local to this process.
    pub fn map_partitions<F>(&self, schema: Schema, func: F) -> Result<DataFrame>
    where
        F: Fn(PlFrame) -> polars::prelude::PolarsResult<PlFrame> + Send + Sync + 'static,
    {
        let func: PartitionFn = Arc::new(func);
        self.with_step(Step::Map {
            name: "map_partitions".into(),
            func,
            schema: Arc::new(schema),
            token: Token::fresh(),
        })
    }

    // ----- lowering -----

    /// The tasks of this frame (computed once per handle).
    pub(crate) fn lowered(&self) -> &Lowered {
        self.inner.lowered.get_or_init(|| self.lower())
    }

    fn lower(&self) -> Lowered {
        let steps: Arc<[Step]> = self.inner.steps.clone().into();
        match &self.inner.input {
            Input::Source(source) => lower_source(source, &self.inner.input_schema, steps),
            Input::Tasks(prev) if steps.is_empty() => prev.clone(),
            Input::Tasks(prev) => {
                let mut t = Tokenizer::new("rask.dataframe.steps");
                t.write_str(prev.name.as_str());
                for s in steps.iter() {
                    s.tokenize(&mut t);
                }
                let name = KeyName::from_token("steps", t.finish());
                let op: Arc<dyn Op> = Arc::new(MapSteps {
                    steps: steps.clone(),
                });
                let tasks = (0..prev.npartitions)
                    .map(|i| {
                        TaskSpec::new(
                            Key::new(name.clone(), [i as u32]),
                            op.clone(),
                            vec![prev.key(i)],
                        )
                    })
                    .collect();
                let mut plan = (*prev.plan).clone();
                plan.push(format!("STEPS (per partition) {}", steps_str(&steps)));
                Lowered {
                    name,
                    layer: Layer::new(tasks, vec![prev.layer.clone()]),
                    npartitions: prev.npartitions,
                    plan: Arc::new(plan),
                    num_rows: None,
                }
            }
        }
    }

    pub(crate) fn from_lowered_parts(
        key: Key,
        layer: Arc<Layer>,
        plan: Vec<String>,
        schema: SchemaRef,
    ) -> DataFrame {
        DataFrame::from_lowered(
            Lowered {
                name: key.key_name().clone(),
                layer,
                npartitions: 1,
                plan: Arc::new(plan),
                num_rows: None,
            },
            schema,
        )
    }

    /// Partition keys, in order.
    pub fn partition_keys(&self) -> Vec<Key> {
        self.lowered().keys()
    }

    /// The same frame (keys, schema) with partition `i`'s task replaced by `ops[i]`, which
    /// takes no inputs: how a persisted frame points at partitions already computed (a
    /// literal here, or a value kept on a cluster's workers).
    #[doc(hidden)]
    pub fn with_partition_ops(&self, ops: Vec<Arc<dyn Op>>) -> Result<DataFrame> {
        let lowered = self.lowered();
        if ops.len() != lowered.npartitions {
            return Err(RaskError::invalid_argument(
                "ops",
                format!(
                    "{} ops for a frame of {} partitions",
                    ops.len(),
                    lowered.npartitions
                ),
            ));
        }
        let tasks = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| TaskSpec::new(lowered.key(i), op, Vec::<Key>::new()))
            .collect();
        let mut plan = (*lowered.plan).clone();
        plan.push(format!("PERSISTED {} partitions", lowered.npartitions));
        Ok(DataFrame::from_lowered(
            Lowered {
                name: lowered.name.clone(),
                layer: Layer::new(tasks, vec![]),
                npartitions: lowered.npartitions,
                plan: Arc::new(plan),
                num_rows: lowered.num_rows.clone(),
            },
            self.inner.schema.clone(),
        ))
    }

    /// Adds a task-level stage on top of this frame: `build` receives the lowered input and
    /// returns the new lowered stage.
    pub(crate) fn stage(
        &self,
        schema: SchemaRef,
        build: impl FnOnce(&Lowered) -> Lowered,
    ) -> DataFrame {
        DataFrame::from_lowered(build(self.lowered()), schema)
    }
}

fn steps_str(steps: &[Step]) -> String {
    let parts: Vec<String> = steps.iter().map(|s| format!("{s:?}")).collect();
    parts.join(" -> ")
}

fn lower_source(source: &Arc<dyn Source>, input_schema: &SchemaRef, steps: Arc<[Step]>) -> Lowered {
    let columns = step::needed_columns(input_schema, &steps).map(|mut cols| {
        // A query that reads no column (a row count) still needs the rows: read the
        // narrowest column.
        if cols.is_empty()
            && let Some(first) = input_schema.iter_names().next()
        {
            cols.push(first.to_string());
        }
        cols
    });
    let columns = columns.filter(|c| c.len() < input_schema.len());
    let filters = step::leading_filters(&steps);
    let limit = step::leading_limit(&steps);
    let total = source.npartitions();
    let mut kept = source.prune(&filters);
    if kept.is_empty() && total > 0 {
        // Keep one partition so the result has the right schema (it filters to no rows).
        kept.push(0);
    }
    let pushdown = Pushdown {
        columns,
        filters,
        limit,
    };
    let mut t = Tokenizer::new(source.name());
    source.tokenize(&mut t);
    pushdown.tokenize(&mut t);
    for s in steps.iter() {
        s.tokenize(&mut t);
    }
    let prefix = source
        .name()
        .rsplit('.')
        .next()
        .unwrap_or("read")
        .to_string();
    let name = KeyName::from_token(&prefix, t.finish());
    let pushdown = Arc::new(pushdown);
    let num_rows: Option<Vec<u64>> = if steps.is_empty() {
        kept.iter().map(|&i| source.num_rows(i)).collect()
    } else {
        None
    };
    let tasks = kept
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let op: Arc<dyn Op> = Arc::new(ReadPartition {
                source: source.clone(),
                index: i,
                pushdown: pushdown.clone(),
                steps: steps.clone(),
                nbytes: source.projected_nbytes(i, pushdown.columns.as_deref()),
            });
            TaskSpec::new(Key::new(name.clone(), [j as u32]), op, Vec::<Key>::new())
        })
        .collect();
    let mut line = source.describe();
    if let Some(c) = &pushdown.columns {
        line.push_str(&format!("; columns {c:?}"));
    }
    if !pushdown.filters.is_empty() {
        let f: Vec<String> = pushdown.filters.iter().map(|f| f.to_string()).collect();
        line.push_str(&format!("; filters [{}]", f.join(", ")));
    }
    if let Some(n) = pushdown.limit {
        line.push_str(&format!("; limit {n}"));
    }
    line.push_str(&format!("; {} of {total} partitions", kept.len()));
    let mut plan = vec![line];
    if !steps.is_empty() {
        // The reader may compute a lone partial itself (see `crate::fused`).
        let kernel = matches!(&*steps, [Step::GroupAgg { fused: Some(_), .. }])
            && pushdown.filters.is_empty()
            && pushdown.limit.is_none();
        let mut how = String::new();
        if kernel {
            how.push_str("; the reader aggregates while reading when it can");
        }
        if pushdown.limit.is_none() && crate::stream::streamable(&steps) {
            how.push_str("; streamed in batches");
            let coded = crate::stream::coded_keys(source.schema(), &pushdown, &steps);
            if source.reads_coded_keys() && !coded.is_empty() {
                how.push_str(&format!("; keys {coded:?} as dictionary codes"));
            }
        }
        plan.push(format!(
            "STEPS (fused into the reading task{how}) {}",
            steps_str(&steps)
        ));
    }
    Lowered {
        name,
        layer: Layer::new(tasks, vec![]),
        npartitions: kept.len(),
        plan: Arc::new(plan),
        num_rows,
    }
}

/// Reads one partition and runs the fused steps on it.
pub(crate) struct ReadPartition {
    source: Arc<dyn Source>,
    index: usize,
    pushdown: Arc<Pushdown>,
    steps: Arc<[Step]>,
    nbytes: Option<u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ReadParams {
    /// The partition as a one-partition source ([`Source::part_params`]).
    source: Vec<u8>,
    pushdown: wire::WirePushdown,
    steps: Vec<wire::WireStep>,
    nbytes: Option<u64>,
}

fn decode_read(name: &str, params: &[u8]) -> Result<Arc<dyn Op>> {
    let p: ReadParams = wire::decode(name, params)?;
    let source = crate::source::decode_source(name, &p.source)
        .map_err(|e| e.context(format!("decoding op `{name}`")))?;
    Ok(Arc::new(ReadPartition {
        source,
        index: 0,
        pushdown: Arc::new(p.pushdown.pushdown()),
        steps: wire::steps_of(name, p.steps)?,
        nbytes: p.nbytes,
    }))
}

macro_rules! register_reader {
    ($($f:ident => $name:expr),* $(,)?) => {$(
        fn $f(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
            decode_read($name, params)
        }
        rask_graph::register_op!($name, $f);
    )*};
}

register_reader!(
    decode_read_csv => "rask.dataframe.read_csv",
    decode_read_parquet => "rask.dataframe.read_parquet",
    decode_read_ndjson => "rask.dataframe.read_ndjson",
    decode_from_polars => crate::source::MEMORY_SOURCE,
);

impl Op for ReadPartition {
    fn name(&self) -> &str {
        self.source.name()
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        let name = self.source.name();
        let params = ReadParams {
            source: self.source.part_params(self.index)?,
            pushdown: wire::WirePushdown::of(&self.pushdown),
            steps: wire::wire_steps(name, &self.steps)?,
            nbytes: self.nbytes,
        };
        wire::encode(name, &params)
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        if let [
            Step::GroupAgg {
                fused: Some(agg), ..
            },
        ] = &*self.steps
        {
            if self.pushdown.limit.is_none() && self.pushdown.filters.is_empty() {
                if let Some(df) = self.source.read_aggregated(self.index, agg)? {
                    return Ok(frame_value(df));
                }
            }
        }
        if self.pushdown.limit.is_none() && crate::stream::streamable(&self.steps) {
            if let Some(df) =
                crate::stream::read_partial(&*self.source, self.index, &self.pushdown, &self.steps)?
            {
                return Ok(frame_value(df));
            }
        }
        let df = self.source.read(self.index, &self.pushdown)?;
        let df = step::run_steps(df, &self.steps).map_err(polars_err("steps"))?;
        Ok(frame_value(df))
    }
    fn projected_nbytes(&self, _input_nbytes: &[u64]) -> Option<u64> {
        // A partial aggregate or a head is far smaller than what was read.
        if self
            .steps
            .iter()
            .any(|s| matches!(s, Step::GroupAgg { .. } | Step::Head(_)))
        {
            return None;
        }
        self.nbytes
    }
    fn transient_nbytes(&self, _input_nbytes: &[u64]) -> Option<u64> {
        self.nbytes
    }
}

/// Runs steps over a partition produced by another task.
struct MapSteps {
    steps: Arc<[Step]>,
}

const MAP_STEPS: &str = "rask.dataframe.steps";

fn decode_map_steps(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let steps: Vec<wire::WireStep> = wire::decode(MAP_STEPS, params)?;
    Ok(Arc::new(MapSteps {
        steps: wire::steps_of(MAP_STEPS, steps)?,
    }))
}
rask_graph::register_op!(MAP_STEPS, decode_map_steps);

impl Op for MapSteps {
    fn name(&self) -> &str {
        MAP_STEPS
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        wire::encode(MAP_STEPS, &wire::wire_steps(MAP_STEPS, &self.steps)?)
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let df = get_frame(&inputs[0])?.clone();
        let df = step::run_steps(df, &self.steps).map_err(polars_err("steps"))?;
        Ok(frame_value(df))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().copied()
    }
}

/// Checks a delayed partition against the declared schema.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckPartition {
    #[serde(with = "wire::schema_ref")]
    schema: SchemaRef,
    index: u64,
    /// The key of the delayed task, for messages.
    source: String,
}

const CHECK_PARTITION: &str = "rask.dataframe.from_delayed";

fn decode_check_partition(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let op: CheckPartition = wire::decode(CHECK_PARTITION, params)?;
    Ok(Arc::new(op))
}
rask_graph::register_op!(CHECK_PARTITION, decode_check_partition);

impl Op for CheckPartition {
    fn name(&self) -> &str {
        CHECK_PARTITION
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(CHECK_PARTITION, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let df = get_frame(&inputs[0]).map_err(|e| {
            e.context(format!(
                "from_delayed partition {} (task {})",
                self.index, self.source
            ))
        })?;
        if df.schema() != &self.schema {
            return Err(RaskError::invalid_argument(
                "schema",
                format!(
                    "from_delayed partition {} (task {}) has schema {:?}, but {:?} was declared",
                    self.index,
                    self.source,
                    df.schema(),
                    self.schema
                ),
            ));
        }
        Ok(inputs[0].clone())
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().copied()
    }
    fn cost(&self) -> rask_graph::Cost {
        rask_graph::Cost::Cheap
    }
}

impl Collection for DataFrame {
    type Output = PlFrame;

    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.lowered().layer);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.lowered().keys()
    }

    fn finalize(&self, values: Vec<Value>) -> Result<PlFrame> {
        let frames: Vec<PlFrame> = values
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<_>>()?;
        concat_frames(frames, &self.inner.schema)
    }
}

/// Concatenates partitions vertically (an empty frame of `schema` for none).
pub(crate) fn concat_frames(frames: Vec<PlFrame>, schema: &SchemaRef) -> Result<PlFrame> {
    if frames.is_empty() {
        return Ok(PlFrame::empty_with_schema(schema));
    }
    if frames.len() == 1 {
        return Ok(frames.into_iter().next().expect("one frame"));
    }
    let lfs: Vec<_> = frames.into_iter().map(|f| f.lazy()).collect();
    polars::prelude::concat(lfs, polars::prelude::UnionArgs::default())
        .and_then(|lf| lf.collect())
        .map_err(polars_err("concatenating partitions"))
}

/// The name of an expression's output, for messages.
#[allow(dead_code)]
pub(crate) fn names(cols: &[PlSmallStr]) -> String {
    cols.iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
