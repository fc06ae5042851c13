//! Groupby as a tree reduction: partial aggregates per partition (fused into the task that
//! reads the partition), combines of `split_every` partials, then a finalize.
//!
//! Every aggregation is split into *partials* (columns computed per group in a partition),
//! *combines* (the same columns recomputed over concatenated partials, so a combine's output
//! can be combined again) and a *finalize* (the user's column from the combined partials):
//! a mean is a sum and a count; a variance is a count, a mean and a sum of squared
//! deviations merged with Chan's formula; `nunique` carries the distinct values as a list.
//! With `split_out = k` each partial is cut by a hash of the keys into `k` pieces, and piece
//! `j` of every partition is reduced into output partition `j`.

use std::sync::Arc;

use polars::prelude::{
    DataFrame as PlFrame, DataType, ExplodeOptions, Expr, IDX_DTYPE, IntoLazy, NULL, Schema,
    SchemaRef, col, len, lit, when,
};
use rask_error::{RaskError, Result};
use rask_graph::{Cost, Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Tokenizer, Value};

use crate::frame::{DataFrame, Lowered, concat_frames};
use crate::fused::FusedAgg;
use crate::step::Step;
use crate::wire::{self, Pieces};
use crate::{frame_value, get_frame, polars_err};

/// An aggregation function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AggKind {
    Sum,
    Mean,
    /// Non-null values.
    Count,
    /// Rows in the group, nulls included (`len` in polars, `size` in Dask).
    Size,
    Min,
    Max,
    Var {
        ddof: u8,
    },
    Std {
        ddof: u8,
    },
    First,
    Last,
    NUnique,
}

/// One output column of a groupby: a function of one input column.
#[derive(Clone, Debug)]
pub struct Agg {
    pub column: String,
    pub kind: AggKind,
    pub alias: Option<String>,
}

macro_rules! agg_ctor {
    ($($f:ident => $k:expr),* $(,)?) => {
        $(
            pub fn $f(column: &str) -> Agg {
                Agg { column: column.to_string(), kind: $k, alias: None }
            }
        )*
    };
}

impl Agg {
    agg_ctor! {
        sum => AggKind::Sum,
        mean => AggKind::Mean,
        count => AggKind::Count,
        min => AggKind::Min,
        max => AggKind::Max,
        var => AggKind::Var { ddof: 1 },
        std => AggKind::Std { ddof: 1 },
        first => AggKind::First,
        last => AggKind::Last,
        nunique => AggKind::NUnique,
    }

    /// Rows per group (output column `len`, as polars names it).
    pub fn size() -> Agg {
        Agg {
            column: String::new(),
            kind: AggKind::Size,
            alias: None,
        }
    }

    pub fn alias(mut self, name: &str) -> Agg {
        self.alias = Some(name.to_string());
        self
    }

    fn output_name(&self) -> String {
        match (&self.alias, self.kind) {
            (Some(a), _) => a.clone(),
            (None, AggKind::Size) => "len".to_string(),
            (None, _) => self.column.clone(),
        }
    }

    /// (partials, combines, finalize) expressions for output number `i`.
    fn plan(&self, i: usize) -> (Vec<Expr>, Vec<Expr>, Expr) {
        let p = |part: &str| format!("__rask{i}_{part}");
        let out = self.output_name();
        let c = || col(self.column.as_str());
        let sum_of = |name: &str| col(name).sum().alias(name);
        match self.kind {
            AggKind::Sum => {
                let s = p("sum");
                (
                    vec![c().sum().alias(&s)],
                    vec![sum_of(&s)],
                    col(&s).alias(&out),
                )
            }
            AggKind::Count | AggKind::Size => {
                let n = p("n");
                let partial = if self.kind == AggKind::Size {
                    len().alias(&n)
                } else {
                    c().count().alias(&n)
                };
                (
                    vec![partial],
                    vec![sum_of(&n)],
                    col(&n).strict_cast(IDX_DTYPE).alias(&out),
                )
            }
            AggKind::Mean => {
                let (s, n) = (p("sum"), p("n"));
                (
                    vec![
                        c().strict_cast(DataType::Float64).sum().alias(&s),
                        c().count().alias(&n),
                    ],
                    vec![sum_of(&s), sum_of(&n)],
                    when(col(&n).gt(lit(0)))
                        .then(col(&s) / col(&n).cast(DataType::Float64))
                        .otherwise(lit(NULL).cast(DataType::Float64))
                        .alias(&out),
                )
            }
            AggKind::Min => {
                let m = p("min");
                (
                    vec![c().min().alias(&m)],
                    vec![col(&m).min().alias(&m)],
                    col(&m).alias(&out),
                )
            }
            AggKind::Max => {
                let m = p("max");
                (
                    vec![c().max().alias(&m)],
                    vec![col(&m).max().alias(&m)],
                    col(&m).alias(&out),
                )
            }
            AggKind::Var { ddof } | AggKind::Std { ddof } => {
                let (n, m, m2) = (p("n"), p("mean"), p("m2"));
                let x = c().strict_cast(DataType::Float64);
                // M2 as n * var(ddof 0): both are grouped kernels in polars, where
                // `(x - x.mean())^2` per group would take the slow per-group path.
                let partials = vec![
                    x.clone().count().alias(&n),
                    x.clone().mean().alias(&m),
                    (x.clone().var(0) * x.count().cast(DataType::Float64)).alias(&m2),
                ];
                // Chan et al.: merge (n_i, mean_i, M2_i) of disjoint parts.
                let nf = || col(&n).cast(DataType::Float64);
                let total_mean = (nf() * col(&m)).sum() / nf().sum();
                let combines = vec![
                    col(&n).sum().alias(&n),
                    total_mean.clone().alias(&m),
                    (col(&m2).sum() + (nf() * (col(&m) - total_mean).pow(2)).sum()).alias(&m2),
                ];
                let var = when(col(&n).gt(lit(ddof as u32)))
                    .then(col(&m2) / (nf() - lit(ddof as f64)))
                    .otherwise(lit(NULL).cast(DataType::Float64));
                let fin = if matches!(self.kind, AggKind::Std { .. }) {
                    var.sqrt()
                } else {
                    var
                };
                (partials, combines, fin.alias(&out))
            }
            AggKind::First => {
                let f = p("first");
                (
                    vec![c().first().alias(&f)],
                    vec![col(&f).first().alias(&f)],
                    col(&f).alias(&out),
                )
            }
            AggKind::Last => {
                let f = p("last");
                (
                    vec![c().last().alias(&f)],
                    vec![col(&f).last().alias(&f)],
                    col(&f).alias(&out),
                )
            }
            AggKind::NUnique => {
                let u = p("uniq");
                let explode = ExplodeOptions {
                    empty_as_null: false,
                    keep_nulls: true,
                };
                (
                    vec![c().unique().implode(false).alias(&u)],
                    vec![col(&u).explode(explode).unique().implode(false).alias(&u)],
                    // Finalize runs as an aggregation too (see `FinalizeAgg`).
                    col(&u)
                        .explode(explode)
                        .n_unique()
                        .strict_cast(IDX_DTYPE)
                        .alias(&out),
                )
            }
        }
    }
}

/// `frame.groupby(keys)`: choose aggregations with [`GroupBy::agg`] or per column with
/// [`GroupBy::col`].
#[derive(Clone)]
pub struct GroupBy {
    frame: DataFrame,
    keys: Vec<String>,
    split_every: usize,
    split_out: usize,
}

/// `frame.groupby(keys).col("x")`: Dask's `df.groupby(keys).x`.
pub struct GroupByColumn {
    groupby: GroupBy,
    column: String,
}

macro_rules! col_agg {
    ($($f:ident),*) => {
        $(
            pub fn $f(&self) -> Result<DataFrame> {
                self.groupby.agg([Agg::$f(&self.column)])
            }
        )*
    };
}

impl GroupByColumn {
    col_agg!(sum, mean, count, min, max, var, std, first, last, nunique);
}

impl DataFrame {
    /// Groups by the key columns.
    pub fn groupby<I, S>(&self, keys: I) -> GroupBy
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        GroupBy {
            frame: self.clone(),
            keys: keys.into_iter().map(|s| s.as_ref().to_string()).collect(),
            split_every: 8,
            split_out: 1,
        }
    }
}

impl GroupBy {
    /// How many partials one combine task takes (default 8).
    pub fn split_every(mut self, n: usize) -> GroupBy {
        self.split_every = n;
        self
    }

    /// Output partitions (default 1): for many groups, the result is hash-partitioned by
    /// key so no task holds all groups.
    pub fn split_out(mut self, n: usize) -> GroupBy {
        self.split_out = n;
        self
    }

    pub fn col(&self, column: &str) -> GroupByColumn {
        GroupByColumn {
            groupby: self.clone(),
            column: column.to_string(),
        }
    }

    /// Rows per group, in a column `len`.
    pub fn size(&self) -> Result<DataFrame> {
        self.agg([Agg::size()])
    }

    /// The partial step of `agg(aggs)` (with its fused form, when it has one), the combine
    /// expressions, the finalize expressions, and the output schema.
    fn partial_step(&self, aggs: &[Agg]) -> Result<(Step, Vec<Expr>, Vec<Expr>, SchemaRef)> {
        self.check(aggs)?;
        let keys: Vec<Expr> = self.keys.iter().map(|k| col(k.as_str())).collect();
        let (mut partials, mut combines, mut finals) = (Vec::new(), Vec::new(), Vec::new());
        for (i, a) in aggs.iter().enumerate() {
            let (p, c, f) = a.plan(i);
            partials.extend(p);
            combines.extend(c);
            finals.push(f);
        }
        // The output schema, from polars on an empty frame through the same expressions.
        let empty = PlFrame::empty_with_schema(self.frame.schema());
        let oracle_exprs: Vec<Expr> = aggs.iter().map(eager_expr).collect();
        let out_schema = empty
            .lazy()
            .group_by(keys.clone())
            .agg(oracle_exprs)
            .collect_schema()
            .map_err(|e| RaskError::invalid_argument("aggs", e))?;
        // A reader that can compute the partials while reading gets them in a form it
        // understands (see `crate::fused`).
        let partial_schema = crate::step::output_schema(
            self.frame.schema(),
            &[Step::GroupAgg {
                keys: keys.clone(),
                aggs: partials.clone(),
                fused: None,
                combines: Vec::new(),
            }],
        )?;
        let fused = FusedAgg::plan(self.frame.schema(), &self.keys, aggs, partial_schema);
        let step = Step::GroupAgg {
            keys,
            aggs: partials,
            fused: fused.map(Arc::new),
            combines: combines.clone(),
        };
        Ok((step, combines, finals, out_schema))
    }

    /// One row per group: the key columns, then one column per aggregation.
    pub fn agg(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<DataFrame> {
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        let (step, combines, finals, out_schema) = self.partial_step(&aggs)?;
        let keys: Vec<Expr> = self.keys.iter().map(|k| col(k.as_str())).collect();
        // Partials run as a step fused into each partition's task.
        let partial_frame = self.frame.with_step(step)?;
        let desc = format!(
            "GROUPBY {:?} AGG [{}] (tree: split_every {}, split_out {})",
            self.keys,
            aggs.iter()
                .map(|a| format!("{:?}({})", a.kind, a.column))
                .collect::<Vec<_>>()
                .join(", "),
            self.split_every,
            self.split_out
        );
        let split_every = self.split_every;
        let split_out = self.split_out;
        let key_names = self.keys.clone();
        Ok(partial_frame.stage(out_schema.clone(), |input| {
            tree_reduce(
                input,
                &key_names,
                TreeOps {
                    combine: Arc::new(CombineAgg {
                        keys: keys.clone(),
                        aggs: combines.clone(),
                        finals: None,
                        schema: None,
                    }),
                    finalize: Arc::new(CombineAgg {
                        keys: keys.clone(),
                        aggs: combines.clone(),
                        finals: Some(finals_for(&keys, &aggs, &finals)),
                        schema: Some(out_schema.clone()),
                    }),
                },
                split_every,
                split_out,
                desc,
            )
        }))
    }

    fn check(&self, aggs: &[Agg]) -> Result<()> {
        if self.keys.is_empty() {
            return Err(RaskError::invalid_argument(
                "keys",
                "at least one key column is needed",
            ));
        }
        let schema = self.frame.schema();
        for k in &self.keys {
            if schema.get(k.as_str()).is_none() {
                return Err(unknown_column("keys", k, schema));
            }
        }
        if aggs.is_empty() {
            return Err(RaskError::invalid_argument(
                "aggs",
                "at least one aggregation is needed",
            ));
        }
        for a in aggs {
            if a.kind == AggKind::Size {
                continue;
            }
            let Some(dtype) = schema.get(a.column.as_str()) else {
                return Err(unknown_column("aggs", &a.column, schema));
            };
            let numeric_only = matches!(
                a.kind,
                AggKind::Sum | AggKind::Mean | AggKind::Var { .. } | AggKind::Std { .. }
            );
            if numeric_only && !(dtype.is_primitive_numeric() || dtype.is_bool()) {
                return Err(RaskError::invalid_argument(
                    "aggs",
                    format!(
                        "{:?} of column `{}` needs a numeric column, not {dtype}",
                        a.kind, a.column
                    ),
                ));
            }
        }
        if self.split_every < 2 {
            return Err(RaskError::invalid_argument(
                "split_every",
                "must be at least 2",
            ));
        }
        if self.split_out == 0 {
            return Err(RaskError::invalid_argument(
                "split_out",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

pub(crate) fn unknown_column(arg: &str, name: &str, schema: &Schema) -> RaskError {
    let cols: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
    RaskError::invalid_argument(arg, format!("unknown column `{name}` (columns: {cols:?})"))
}

/// The eager polars expression for an aggregation: used for the output schema.
fn eager_expr(a: &Agg) -> Expr {
    let c = col(a.column.as_str());
    let e = match a.kind {
        AggKind::Sum => c.sum(),
        AggKind::Mean => c.mean(),
        AggKind::Count => c.count(),
        AggKind::Size => len(),
        AggKind::Min => c.min(),
        AggKind::Max => c.max(),
        AggKind::Var { ddof } => c.var(ddof),
        AggKind::Std { ddof } => c.std(ddof),
        AggKind::First => c.first(),
        AggKind::Last => c.last(),
        AggKind::NUnique => c.n_unique(),
    };
    e.alias(a.output_name())
}

/// The finalize stage's expressions: nunique finalizes as an aggregation, the rest select
/// over the combined partials.
fn finals_for(keys: &[Expr], aggs: &[Agg], finals: &[Expr]) -> Finals {
    let mut agg_finals = Vec::new();
    let mut select = keys.to_vec();
    for (a, f) in aggs.iter().zip(finals) {
        if a.kind == AggKind::NUnique {
            agg_finals.push(f.clone());
            select.push(col(a.output_name()));
        } else {
            select.push(f.clone());
        }
    }
    Finals { agg_finals, select }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Finals {
    #[serde(with = "crate::wire::pl")]
    agg_finals: Vec<Expr>,
    #[serde(with = "crate::wire::pl")]
    select: Vec<Expr>,
}

/// The ops of a tree reduction over partials.
pub(crate) struct TreeOps {
    pub(crate) combine: Arc<dyn Op>,
    pub(crate) finalize: Arc<dyn Op>,
}

/// Reduces the partitions of `input` with `ops`: `split_out` outputs, each the root of a
/// tree of fan-in `split_every`.
pub(crate) fn tree_reduce(
    input: &Lowered,
    keys: &[String],
    ops: TreeOps,
    split_every: usize,
    split_out: usize,
    desc: String,
) -> Lowered {
    let mut t = Tokenizer::new("rask.dataframe.tree_reduce");
    t.write_str(input.name.as_str());
    t.write_str(&desc);
    let token = t.finish();
    let mut tasks = Vec::new();
    // Level 0: the partials, or their hash pieces.
    let mut levels: Vec<Vec<Key>> = Vec::new();
    if split_out == 1 {
        levels.push(input.keys());
    } else {
        let split_name = KeyName::from_token("split-by-hash", token);
        let piece_name = KeyName::from_token("hash-piece", token);
        let split: Arc<dyn Op> = Arc::new(HashSplit {
            keys: keys.to_vec(),
            n: split_out,
        });
        for i in 0..input.npartitions {
            tasks.push(TaskSpec::new(
                Key::new(split_name.clone(), [i as u32]),
                split.clone(),
                vec![input.key(i)],
            ));
        }
        for j in 0..split_out {
            let mut level = Vec::new();
            let piece: Arc<dyn Op> = Arc::new(Piece(j));
            for i in 0..input.npartitions {
                let key = Key::new(piece_name.clone(), [i as u32, j as u32]);
                tasks.push(TaskSpec::new(
                    key.clone(),
                    piece.clone(),
                    vec![Key::new(split_name.clone(), [i as u32])],
                ));
                level.push(key);
            }
            levels.push(level);
        }
    }
    let out_name = KeyName::from_token("groupby-agg", token);
    let combine_name = KeyName::from_token("groupby-combine", token);
    let mut depth = 0u32;
    for (j, mut level) in levels.into_iter().enumerate() {
        while level.len() > split_every {
            depth += 1;
            let mut next = Vec::new();
            for (g, group) in level.chunks(split_every).enumerate() {
                let key = Key::new(combine_name.clone(), [j as u32, depth, g as u32]);
                tasks.push(TaskSpec::new(
                    key.clone(),
                    ops.combine.clone(),
                    group.to_vec(),
                ));
                next.push(key);
            }
            level = next;
        }
        tasks.push(TaskSpec::new(
            Key::new(out_name.clone(), [j as u32]),
            ops.finalize.clone(),
            level,
        ));
    }
    let mut plan = (*input.plan).clone();
    plan.push(desc);
    Lowered {
        name: out_name,
        layer: Layer::new(tasks, vec![input.layer.clone()]),
        npartitions: split_out,
        plan: Arc::new(plan),
        num_rows: None,
    }
}

/// Concatenates partials and aggregates them again; the finalize also selects the outputs.
#[derive(serde::Serialize, serde::Deserialize)]
struct CombineAgg {
    #[serde(with = "crate::wire::pl")]
    keys: Vec<Expr>,
    #[serde(with = "crate::wire::pl")]
    aggs: Vec<Expr>,
    finals: Option<Finals>,
    #[serde(with = "crate::wire::opt_schema_ref")]
    schema: Option<SchemaRef>,
}

const GROUPBY_COMBINE: &str = "rask.dataframe.groupby_combine";
const GROUPBY_FINALIZE: &str = "rask.dataframe.groupby_finalize";

fn decode_combine(name: &str, params: &[u8]) -> Result<Arc<dyn Op>> {
    let op: CombineAgg = wire::decode(name, params)?;
    if op.finals.is_some() != (name == GROUPBY_FINALIZE) {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{name}`"),
            message: "a combine's parameters under a finalize's name, or the reverse".into(),
        });
    }
    Ok(Arc::new(op))
}

fn decode_groupby_combine(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    decode_combine(GROUPBY_COMBINE, params)
}
fn decode_groupby_finalize(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    decode_combine(GROUPBY_FINALIZE, params)
}
rask_graph::register_op!(GROUPBY_COMBINE, decode_groupby_combine);
rask_graph::register_op!(GROUPBY_FINALIZE, decode_groupby_finalize);

impl Op for CombineAgg {
    fn name(&self) -> &str {
        if self.finals.is_some() {
            GROUPBY_FINALIZE
        } else {
            GROUPBY_COMBINE
        }
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        wire::encode(self.name(), self)
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let frames: Vec<PlFrame> = inputs
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<_>>()?;
        let schema = frames[0].schema().clone();
        let df = concat_frames(frames, &schema)?;
        let mut aggs = self.aggs.clone();
        if let Some(f) = &self.finals {
            aggs.extend(f.agg_finals.iter().cloned());
        }
        let mut lf = df.lazy().group_by(self.keys.clone()).agg(aggs);
        if let Some(f) = &self.finals {
            lf = lf.select(f.select.clone());
        }
        let out = lf.collect().map_err(polars_err(self.name()))?;
        if let Some(schema) = &self.schema {
            // Agree with eager polars on dtypes (e.g. a sum of partial counts).
            let casts: Vec<Expr> = schema
                .iter()
                .map(|(n, d)| col(n.clone()).strict_cast(d.clone()))
                .collect();
            let out = out
                .lazy()
                .select(casts)
                .collect()
                .map_err(polars_err(self.name()))?;
            return Ok(frame_value(out));
        }
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        Some(input_nbytes.iter().sum())
    }
}

/// Cuts a partition into `n` pieces by a hash of the key columns (the same key always lands
/// in the same piece, in every process).
pub(crate) struct HashSplit {
    pub(crate) keys: Vec<String>,
    pub(crate) n: usize,
}

const SPLIT_BY_HASH: &str = "rask.dataframe.split_by_hash";

fn decode_hash_split(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (keys, n): (Vec<String>, u64) = wire::decode(SPLIT_BY_HASH, params)?;
    if n == 0 {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{SPLIT_BY_HASH}`"),
            message: "zero pieces".into(),
        });
    }
    Ok(Arc::new(HashSplit {
        keys,
        n: n as usize,
    }))
}
rask_graph::register_op!(SPLIT_BY_HASH, decode_hash_split);

impl Op for HashSplit {
    fn name(&self) -> &str {
        SPLIT_BY_HASH
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(SPLIT_BY_HASH, &(&self.keys, self.n as u64)).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let df = get_frame(&inputs[0])?;
        let pieces = hash_split(df, &self.keys, self.n)?;
        Ok(Value::new(Pieces(Arc::new(pieces))))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().copied()
    }
}

pub(crate) fn hash_split(df: &PlFrame, keys: &[String], n: usize) -> Result<Vec<PlFrame>> {
    use polars::polars_utils::aliases::SeedableFromU64SeedExt;
    use polars::prelude::{IdxCa, PlSeedableRandomStateQuality};
    // A fixed seed: the same key hashes alike in every task and process.
    let state = || PlSeedableRandomStateQuality::seed_from_u64(0x5eed);
    let mut hashes: Vec<u64> = Vec::with_capacity(df.height());
    for (i, k) in keys.iter().enumerate() {
        let s = df
            .column(k.as_str())
            .map_err(polars_err("split_by_hash"))?
            .as_materialized_series()
            .clone();
        if i == 0 {
            s.vec_hash(state(), &mut hashes)
                .map_err(polars_err("split_by_hash"))?;
        } else {
            s.vec_hash_combine(state(), &mut hashes)
                .map_err(polars_err("split_by_hash"))?;
        }
    }
    let mut idx: Vec<Vec<polars::prelude::IdxSize>> = vec![Vec::new(); n];
    for (row, h) in hashes.iter().enumerate() {
        // Multiply-shift spreads the hash over the pieces without a modulo bias.
        let piece = ((*h as u128 * n as u128) >> 64) as usize;
        idx[piece].push(row as polars::prelude::IdxSize);
    }
    idx.into_iter()
        .map(|rows| {
            let ca = IdxCa::from_vec("".into(), rows);
            df.take(&ca).map_err(polars_err("split_by_hash"))
        })
        .collect()
}

/// Piece `j` of a hash split.
pub(crate) struct Piece(pub(crate) usize);

const HASH_PIECE: &str = "rask.dataframe.hash_piece";

fn decode_piece(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let j: u64 = wire::decode(HASH_PIECE, params)?;
    Ok(Arc::new(Piece(j as usize)))
}
rask_graph::register_op!(HASH_PIECE, decode_piece);

impl Op for Piece {
    fn name(&self) -> &str {
        HASH_PIECE
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(HASH_PIECE, &(self.0 as u64)).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let pieces = inputs[0].downcast_ref::<Pieces>().ok_or_else(|| {
            RaskError::msg(format!(
                "expected hash pieces, found {}",
                inputs[0].type_name()
            ))
        })?;
        let piece = pieces.0.get(self.0).ok_or_else(|| {
            RaskError::msg(format!(
                "hash piece {} of {} pieces",
                self.0,
                pieces.0.len()
            ))
        })?;
        Ok(frame_value(piece.clone()))
    }
    fn cost(&self) -> Cost {
        Cost::Cheap
    }
}

#[cfg(test)]
mod tests {
    //! The fused kernels against the general path (polars' `group_by` over the partition read
    //! by the same source), partition by partition; the integration tests compare whole
    //! groupbys with eager polars.
    use polars::prelude::{CsvWriter, DataType, ParquetWriter, SerWriter, SortMultipleOptions, df};

    use super::*;
    use crate::DataFrame;
    use crate::source::Pushdown;
    use crate::step::run_steps;
    use crate::{CsvOptions, ParquetOptions, read_csv, read_parquet};

    fn sample(n: usize) -> PlFrame {
        let origins = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"];
        let origin: Vec<Option<&str>> = (0..n)
            .map(|i| (i % 29 != 3).then_some(origins[(i * 7 + i / 5) % origins.len()]))
            .collect();
        let delay: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 11 != 0).then_some((i % 97) as f64 * 1.25 - 20.0))
            .collect();
        let distance: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 13 != 5).then_some((i * 37 % 3000) as i64 - 100))
            .collect();
        let year: Vec<i32> = (0..n).map(|i| 1990 + (i % 4) as i32).collect();
        let id: Vec<String> = (0..n).map(|i| format!("id{}", i % (n / 2))).collect();
        df!(
            "Year" => year,
            "Origin" => origin,
            "Id" => id,
            "DepDelay" => delay,
            "Distance" => distance,
        )
        .unwrap()
    }

    fn aggs() -> Vec<Agg> {
        vec![
            Agg::mean("DepDelay"),
            Agg::sum("DepDelay").alias("s"),
            Agg::count("DepDelay").alias("c"),
            Agg::size(),
            Agg::min("Distance").alias("lo"),
            Agg::max("Distance").alias("hi"),
            Agg::sum("Distance").alias("ds"),
            Agg::mean("Distance").alias("dm"),
            Agg::min("DepDelay").alias("dmin"),
            Agg::max("DepDelay").alias("dmax"),
        ]
    }

    fn assert_same(got: &PlFrame, want: &PlFrame, key: &str) {
        let sort = |df: &PlFrame| {
            df.sort([key], SortMultipleOptions::default().with_nulls_last(true))
                .unwrap()
        };
        let (got, want) = (sort(got), sort(want));
        assert_eq!(got.schema(), want.schema());
        assert_eq!(got.height(), want.height(), "got {got}\nwant {want}");
        for (g, w) in got.columns().iter().zip(want.columns()) {
            if g.dtype().is_float() {
                for (a, b) in g.f64().unwrap().iter().zip(w.f64().unwrap().iter()) {
                    match (a, b) {
                        (Some(a), Some(b)) if a.is_nan() || b.is_nan() => {
                            assert!(a.is_nan() && b.is_nan(), "{a} vs {b}")
                        }
                        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0)),
                        (a, b) => assert_eq!(a, b),
                    }
                }
            } else {
                assert!(
                    g.as_materialized_series()
                        .equals_missing(w.as_materialized_series()),
                    "column {} differs\ngot {got}\nwant {want}",
                    g.name()
                );
            }
        }
    }

    /// Every partition's kernel output equals polars' partial; `None` from a kernel fails.
    fn check_kernel(frame: &DataFrame, key: &str) {
        check_kernel_with(frame, key, &aggs())
    }

    fn check_kernel_with(frame: &DataFrame, key: &str, aggs: &[Agg]) {
        let (step, ..) = frame.groupby([key]).partial_step(aggs).unwrap();
        let Step::GroupAgg {
            fused: Some(agg), ..
        } = &step
        else {
            panic!("no fused form for {key}");
        };
        let source = frame.source().unwrap();
        assert!(source.npartitions() > 1);
        for i in 0..source.npartitions() {
            let got = source
                .read_aggregated(i, agg)
                .unwrap()
                .unwrap_or_else(|| panic!("the kernel declined partition {i}"));
            let read = source.read(i, &Pushdown::default()).unwrap();
            let want = run_steps(read, std::slice::from_ref(&step)).unwrap();
            assert_same(&got, &want, key);
        }
    }

    fn write_parquet(df: &PlFrame, path: &std::path::Path) {
        let mut df = df.clone();
        ParquetWriter::new(std::fs::File::create(path).unwrap())
            .with_row_group_size(Some(400))
            .finish(&mut df)
            .unwrap();
    }

    #[test]
    fn parquet_kernel_matches_polars_partials_for_dictionary_int_and_plain_keys() {
        let dir = tempfile::tempdir().unwrap();
        let df = sample(3000);
        write_parquet(&df.slice(0, 1700), &dir.path().join("a.parquet"));
        write_parquet(&df.slice(1700, 1300), &dir.path().join("b.parquet"));
        let pattern = format!("{}/*.parquet", dir.path().display());
        for per in [None, Some(1), Some(3)] {
            let options = ParquetOptions {
                row_groups_per_partition: per,
                ..Default::default()
            };
            let frame = read_parquet(&pattern, options).unwrap();
            // Origin is dictionary-encoded (7 values), Id is not (1500 values), Year is an
            // integer key.
            for key in ["Origin", "Year", "Id"] {
                check_kernel(&frame, key);
            }
        }
    }

    /// Columns for the page path, with nulls: floats, integers PLAIN (many distinct values)
    /// and dictionary-encoded (few), a 32-bit integer; a key with nulls.
    fn page_sample(n: usize) -> PlFrame {
        let origins = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"];
        let origin: Vec<Option<&str>> = (0..n)
            .map(|i| (i % 31 != 7).then_some(origins[(i * 5 + i / 3) % origins.len()]))
            .collect();
        let opt = |i: usize, m: usize| i % m != 1;
        let f_plain: Vec<Option<f64>> = (0..n)
            .map(|i| opt(i, 9).then_some(i as f64 * 0.37 - 250.0))
            .collect();
        let f_few: Vec<Option<f64>> = (0..n)
            .map(|i| opt(i, 7).then_some((i % 13) as f64 - 4.5))
            .collect();
        let i_plain: Vec<Option<i64>> = (0..n)
            .map(|i| opt(i, 5).then_some((i as i64 * 7_919_993) % 1_000_000_007 - 500_000_000))
            .collect();
        let i_dict: Vec<Option<i64>> = (0..n)
            .map(|i| opt(i, 6).then_some((i % 11) as i64 - 3))
            .collect();
        let i32s: Vec<Option<i32>> = (0..n)
            .map(|i| opt(i, 4).then_some((i * 31 % 1000) as i32 - 400))
            .collect();
        // NaN here and there, and only NaN for one airport.
        let nans: Vec<Option<f64>> = (0..n)
            .map(|i| match origin[i] {
                Some("BOS") => Some(f64::NAN),
                _ if i % 10 == 3 => Some(f64::NAN),
                _ if i % 10 == 4 => None,
                _ => Some((i % 101) as f64 - 50.0),
            })
            .collect();
        // Values for one airport only: the other keys have none (their groups still exist).
        let sparse: Vec<Option<f64>> = (0..n)
            .map(|i| (origin[i] == Some("SFO")).then_some(i as f64))
            .collect();
        df!(
            "Origin" => origin,
            "FPlain" => f_plain,
            "FFew" => f_few,
            "IPlain" => i_plain,
            "IDict" => i_dict,
            "I32" => i32s,
            "FSparse" => sparse,
            "FNaN" => nans,
        )
        .unwrap()
    }

    fn page_aggs() -> Vec<Agg> {
        vec![
            Agg::mean("FPlain"),
            Agg::sum("FPlain").alias("fps"),
            Agg::count("FPlain").alias("fpc"),
            Agg::mean("FFew").alias("fdm"),
            Agg::min("FPlain").alias("fpmin"),
            Agg::max("FFew").alias("ffmax"),
            Agg::sum("FFew").alias("fds"),
            Agg::size(),
            Agg::min("IPlain").alias("ipmin"),
            Agg::max("IPlain").alias("ipmax"),
            Agg::sum("IPlain").alias("ips"),
            Agg::mean("IPlain").alias("ipm"),
            Agg::min("IDict").alias("idmin"),
            Agg::max("IDict").alias("idmax"),
            Agg::sum("IDict").alias("ids"),
            Agg::count("IDict").alias("idc"),
            Agg::mean("IDict").alias("idm"),
            Agg::mean("I32").alias("i32m"),
            Agg::min("I32").alias("i32min"),
        ]
    }

    #[test]
    fn parquet_page_path_matches_polars_partials() {
        use crate::readers::PAGE_PATH_ROW_GROUPS;
        use polars::prelude::ParquetCompression as C;
        let aggs = page_aggs();
        let df = page_sample(5000);
        for compression in [C::Uncompressed, C::Snappy, C::Zstd(None), C::Lz4Raw] {
            // Default pages (one per chunk) and small ones: runs of levels span pages.
            for page_size in [None, Some(700)] {
                let dir = tempfile::tempdir().unwrap();
                for (name, offset, len) in [("a", 0, 3100), ("b", 3100, 1900)] {
                    let mut part = df.slice(offset, len);
                    let path = dir.path().join(format!("{name}.parquet"));
                    ParquetWriter::new(std::fs::File::create(&path).unwrap())
                        .with_compression(compression)
                        .with_row_group_size(Some(1000))
                        .with_data_page_size(page_size)
                        .finish(&mut part)
                        .unwrap();
                }
                // The writer chose PLAIN and dictionary pages as the test means.
                let mut file = std::fs::File::open(dir.path().join("a.parquet")).unwrap();
                let meta = polars_parquet::read::read_metadata(&mut file).unwrap();
                let dict = |name: &str| {
                    let rg = &meta.row_groups[0];
                    let col = rg.columns_under_root_iter(name).unwrap().next().unwrap();
                    col.dictionary_page_offset().is_some()
                };
                // (polars writes floats PLAIN even when few are distinct: dictionary pages
                // of values are covered by the integer columns, a mean reading them as
                // floats.)
                assert!(dict("Origin") && dict("IDict") && dict("I32"));
                assert!(!dict("FPlain") && !dict("FFew") && !dict("IPlain"));
                let row_groups: usize = ["a", "b"]
                    .iter()
                    .map(|name| {
                        let path = dir.path().join(format!("{name}.parquet"));
                        let mut file = std::fs::File::open(path).unwrap();
                        polars_parquet::read::read_metadata(&mut file)
                            .unwrap()
                            .row_groups
                            .len()
                    })
                    .sum();
                let pattern = format!("{}/*.parquet", dir.path().display());
                let frame = read_parquet(&pattern, ParquetOptions::default()).unwrap();
                let before = PAGE_PATH_ROW_GROUPS.with(|n| n.get());
                check_kernel_with(&frame, "Origin", &aggs);
                // Keys whose values are all null: found by scanning the codes.
                check_kernel_with(&frame, "Origin", &[Agg::mean("FSparse")]);
                // Float min/max ignore NaN unless a group has nothing else.
                let nan_aggs = [Agg::min("FNaN").alias("lo"), Agg::max("FNaN").alias("hi")];
                check_kernel_with(&frame, "Origin", &nan_aggs);
                // Dictionary-encoded integer keys, 64 and 32 bits.
                for key in ["IDict", "I32"] {
                    let others: Vec<Agg> =
                        aggs.iter().filter(|a| a.column != key).cloned().collect();
                    check_kernel_with(&frame, key, &others);
                }
                let taken = PAGE_PATH_ROW_GROUPS.with(|n| n.get()) - before;
                assert_eq!(
                    taken,
                    5 * row_groups,
                    "{compression:?}, pages {page_size:?}: row groups by pages"
                );
            }
        }
    }

    #[test]
    fn parquet_page_path_reads_other_writers_layouts() {
        // pyarrow files (datasets/parquet-writers/make.py): version-2 pages with every
        // column dictionary-encoded, floats included; version-1 pages falling back from
        // dictionary to PLAIN within a chunk.
        use crate::readers::PAGE_PATH_ROW_GROUPS;
        let aggs = page_aggs();
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/parquet-writers"
        );
        for file in ["pyarrow-v2-dictionary", "pyarrow-v1-fallback"] {
            let options = ParquetOptions {
                row_groups_per_partition: Some(1),
                ..Default::default()
            };
            let frame = read_parquet(&format!("{dir}/{file}.parquet"), options).unwrap();
            let before = PAGE_PATH_ROW_GROUPS.with(|n| n.get());
            check_kernel_with(&frame, "Origin", &aggs);
            let others: Vec<Agg> = aggs
                .iter()
                .filter(|a| a.column != "IDict")
                .cloned()
                .collect();
            check_kernel_with(&frame, "IDict", &others);
            let taken = PAGE_PATH_ROW_GROUPS.with(|n| n.get()) - before;
            assert_eq!(taken, 6, "{file}: row groups by pages");
        }
    }

    fn write_csv(df: &PlFrame, path: &std::path::Path) {
        let mut df = df.clone();
        CsvWriter::new(std::fs::File::create(path).unwrap())
            .finish(&mut df)
            .unwrap();
    }

    #[test]
    fn csv_kernel_matches_polars_partials_across_byte_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let df = sample(3000);
        write_csv(&df.slice(0, 2000), &dir.path().join("a.csv"));
        write_csv(&df.slice(2000, 1000), &dir.path().join("b.csv"));
        let pattern = format!("{}/*.csv", dir.path().display());
        for blocksize in [1500, 20_000, 1 << 20] {
            let frame =
                read_csv(&pattern, CsvOptions::default().with_blocksize(blocksize)).unwrap();
            for key in ["Origin", "Year", "Id"] {
                check_kernel(&frame, key);
            }
        }
        // CRLF line endings and a custom null marker.
        let text = std::fs::read_to_string(dir.path().join("b.csv")).unwrap();
        let crlf = text.replace(",,", ",NA,").replace('\n', "\r\n");
        let crlf_dir = tempfile::tempdir().unwrap();
        std::fs::write(crlf_dir.path().join("c.csv"), crlf).unwrap();
        let frame = read_csv(
            &format!("{}/c.csv", crlf_dir.path().display()),
            CsvOptions::default()
                .with_blocksize(4000)
                .with_null_values(&["NA"]),
        )
        .unwrap();
        check_kernel(&frame, "Origin");
        // Every string quoted, as pyarrow's CSV writer does: the kernel reads the keys.
        let quoted_dir = tempfile::tempdir().unwrap();
        let mut quoted = df.slice(0, 1500);
        CsvWriter::new(std::fs::File::create(quoted_dir.path().join("q.csv")).unwrap())
            .with_quote_style(polars::prelude::QuoteStyle::NonNumeric)
            .finish(&mut quoted)
            .unwrap();
        let text = std::fs::read_to_string(quoted_dir.path().join("q.csv")).unwrap();
        assert!(text.contains("\"SFO\""), "{}", &text[..200]);
        let frame = read_csv(
            &format!("{}/q.csv", quoted_dir.path().display()),
            CsvOptions::default().with_blocksize(9000),
        )
        .unwrap();
        check_kernel(&frame, "Origin");
    }

    #[test]
    fn an_aggregation_of_the_key_itself_takes_the_general_path() {
        let frame = DataFrame::from_polars(sample(100));
        let (step, ..) = frame
            .groupby(["Year"])
            .partial_step(&[Agg::count("Year").alias("n"), Agg::mean("DepDelay")])
            .unwrap();
        assert!(matches!(step, Step::GroupAgg { fused: None, .. }));
    }

    #[test]
    fn csv_kernel_declines_quotes_and_bad_values_so_the_reader_decides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        let agg_of = |frame: &DataFrame| {
            let (step, ..) = frame
                .groupby(["Origin"])
                .partial_step(&[Agg::mean("DepDelay")])
                .unwrap();
            match step {
                Step::GroupAgg { fused: Some(a), .. } => a,
                _ => panic!("no fused form"),
            }
        };
        for (text, why) in [
            (
                "Origin,DepDelay\n\"S,FO\",1.5\nLAX,2\n",
                "a separator in quotes",
            ),
            (
                "Origin,DepDelay\n\"S\nFO\",1.5\nLAX,2\n",
                "a newline in quotes",
            ),
            (
                "Origin,DepDelay\n\"S\"\"FO\",1.5\nLAX,2\n",
                "an escaped quote",
            ),
            (
                "Origin,DepDelay\nS\"FO,1.5\nLAX,2\n",
                "a quote inside a field",
            ),
            ("Origin,DepDelay\n\"\",1.5\nLAX,2\n", "a quoted empty key"),
            ("Origin,DepDelay\nSFO,\"1.5\"\nLAX,2\n", "a quoted value"),
            ("Origin,DepDelay\nSFO,1.5\nLAX,abc\n", "a bad value"),
            ("Origin,DepDelay\nSFO,1.5\nLAX,2,3\n", "a ragged row"),
            ("Origin,DepDelay\nSFO,1.5\n\nLAX,2\n", "an empty line"),
        ] {
            std::fs::write(&path, text).unwrap();
            // A given schema: no inference, so the bad rows reach the partition read.
            let options = CsvOptions {
                schema: Some(Schema::from_iter([
                    ("Origin".into(), DataType::String),
                    ("DepDelay".into(), DataType::Float64),
                ])),
                ..Default::default()
            };
            let frame = read_csv(path.to_str().unwrap(), options).unwrap();
            let agg = agg_of(&frame);
            let source = frame.source().unwrap();
            assert!(
                source.read_aggregated(0, &agg).unwrap().is_none(),
                "kernel should decline {why}"
            );
        }
    }
}
