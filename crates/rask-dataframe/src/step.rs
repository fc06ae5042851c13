//! Per-partition steps: the polars work that runs inside each partition's task.
//!
//! A chain of `select`, `with_columns`, `filter`, ... on a [`crate::DataFrame`] does not add
//! tasks: it appends [`Step`]s, and when the frame is lowered the steps of a partition run in
//! the same task that reads (or receives) it, as one polars lazy query. That is the fusion of
//! per-partition work, and it lets polars optimize the chain within a partition too.

use std::fmt;
use std::sync::Arc;

use polars::prelude::{
    DataFrame as PlFrame, DataType, Expr, IntoLazy, LazyFrame, PlSmallStr, PolarsResult, Schema,
    SchemaRef, col,
};
use rask_error::{RaskError, Result};
use rask_graph::{Token, Tokenizer};

/// A user function over one partition, with the schema it produces.
pub type PartitionFn = Arc<dyn Fn(PlFrame) -> PolarsResult<PlFrame> + Send + Sync>;

/// One per-partition transformation.
#[derive(Clone)]
pub enum Step {
    Select(Vec<Expr>),
    WithColumns(Vec<Expr>),
    Filter(Expr),
    Rename {
        existing: Vec<String>,
        new: Vec<String>,
    },
    Drop(Vec<String>),
    Cast(Vec<(String, DataType)>),
    FillNull(Expr),
    DropNulls(Option<Vec<String>>),
    /// A partial aggregation (`group_by(keys).agg(aggs)`), the first stage of a groupby.
    GroupAgg {
        keys: Vec<Expr>,
        aggs: Vec<Expr>,
        /// The same partial in a form a reader can compute while reading, when it has one.
        fused: Option<Arc<crate::fused::FusedAgg>>,
        /// Merges partials of this step (the groupby's combine expressions), so a partition
        /// read in batches is aggregated batch by batch and the batches' partials merged
        /// (see [`crate::stream`]). Empty: the partition is aggregated whole.
        combines: Vec<Expr>,
    },
    /// Only the first `n` rows of the partition.
    Head(usize),
    /// The partition's rows sorted by these expressions (polars' defaults: nulls first), each
    /// ascending or descending.
    SortBy {
        by: Vec<Expr>,
        descending: Vec<bool>,
    },
    /// A built-in function over the whole partition that is not a polars query (describe's
    /// sketches): opaque to pushdown like a closure, but named, so it crosses the wire.
    Builtin {
        func: crate::ops::Builtin,
        schema: SchemaRef,
    },
    /// A closure: opaque to pushdown (it may read any column), fresh token per call.
    Map {
        name: String,
        func: PartitionFn,
        schema: SchemaRef,
        token: Token,
    },
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Select(e) => write!(f, "SELECT {}", exprs_str(e)),
            Step::WithColumns(e) => write!(f, "WITH_COLUMNS {}", exprs_str(e)),
            Step::Filter(e) => write!(f, "FILTER {e}"),
            Step::Rename { existing, new } => write!(f, "RENAME {existing:?} -> {new:?}"),
            Step::Drop(c) => write!(f, "DROP {c:?}"),
            Step::Cast(c) => {
                let parts: Vec<String> = c.iter().map(|(n, d)| format!("{n}: {d}")).collect();
                write!(f, "CAST [{}]", parts.join(", "))
            }
            Step::FillNull(e) => write!(f, "FILL_NULL {e}"),
            Step::DropNulls(s) => write!(f, "DROP_NULLS {s:?}"),
            Step::Head(n) => write!(f, "HEAD {n}"),
            Step::SortBy { by, descending } => {
                write!(
                    f,
                    "SORT_PARTITION {} descending {descending:?}",
                    exprs_str(by)
                )
            }
            Step::GroupAgg { keys, aggs, .. } => {
                write!(
                    f,
                    "GROUPBY_PARTIAL {} AGG {}",
                    exprs_str(keys),
                    exprs_str(aggs)
                )
            }
            Step::Map { name, .. } => write!(f, "MAP_PARTITIONS {name}"),
            Step::Builtin { func, .. } => write!(f, "MAP_PARTITIONS {func:?}"),
        }
    }
}

fn exprs_str(e: &[Expr]) -> String {
    let parts: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

impl Step {
    /// Appends this step to a lazy query.
    pub(crate) fn apply(&self, lf: LazyFrame) -> LazyFrame {
        match self {
            Step::Select(e) => lf.select(e.clone()),
            Step::WithColumns(e) => lf.with_columns(e.clone()),
            Step::Filter(e) => lf.filter(e.clone()),
            Step::Rename { existing, new } => lf.rename(existing, new, true),
            Step::Drop(c) => {
                let names: Vec<PlSmallStr> = c.iter().map(|s| s.as_str().into()).collect();
                lf.drop(polars::prelude::Selector::ByName {
                    names: names.into(),
                    strict: true,
                })
            }
            Step::Cast(c) => lf.with_columns(
                c.iter()
                    .map(|(n, d)| col(n.as_str()).strict_cast(d.clone()))
                    .collect::<Vec<_>>(),
            ),
            Step::FillNull(e) => lf.fill_null(e.clone()),
            Step::DropNulls(s) => lf.drop_nulls(s.as_ref().map(|s| {
                let names: Vec<PlSmallStr> = s.iter().map(|s| s.as_str().into()).collect();
                polars::prelude::Selector::ByName {
                    names: names.into(),
                    strict: true,
                }
            })),
            Step::GroupAgg { keys, aggs, .. } => lf.group_by(keys.clone()).agg(aggs.clone()),
            Step::Head(n) => lf.limit(*n as u32 as polars::prelude::IdxSize),
            Step::SortBy { by, descending } => lf.sort_by_exprs(
                by.clone(),
                polars::prelude::SortMultipleOptions::default()
                    .with_order_descending_multi(descending.clone()),
            ),
            // Closures break the lazy chain: see `run_steps`.
            Step::Map { .. } | Step::Builtin { .. } => lf,
        }
    }

    pub(crate) fn tokenize(&self, t: &mut Tokenizer) {
        match self {
            Step::Map { token, .. } => t.write_token(*token),
            other => t.write_str(&format!("{other:?}")),
        }
    }

    fn is_opaque(&self) -> bool {
        matches!(self, Step::Map { .. } | Step::Builtin { .. })
    }
}

/// Runs `steps` over one partition.
pub(crate) fn run_steps(df: PlFrame, steps: &[Step]) -> PolarsResult<PlFrame> {
    if steps.is_empty() {
        return Ok(df);
    }
    let mut lf = df.lazy();
    for s in steps {
        lf = match s {
            Step::Map { func, .. } => func(lf.collect()?)?.lazy(),
            Step::Builtin { func, .. } => func.run(lf.collect()?)?.lazy(),
            s => s.apply(lf),
        };
    }
    lf.collect()
}

/// The schema after `steps`, checked by polars without any data: unknown columns and
/// type errors surface here, when the frame is built, naming the step.
pub(crate) fn output_schema(input: &SchemaRef, steps: &[Step]) -> Result<SchemaRef> {
    let mut lf = PlFrame::empty_with_schema(input).lazy();
    for s in steps {
        lf = match s {
            // The closure is not run on empty data; its declared schema is the output.
            Step::Map { schema, .. } | Step::Builtin { schema, .. } => {
                PlFrame::empty_with_schema(schema).lazy()
            }
            s => s.apply(lf),
        };
        // Resolving after each step names the step at fault.
        lf.collect_schema()
            .map_err(|e| RaskError::invalid_argument(format!("{s:?}"), e))?;
    }
    lf.collect_schema()
        .map_err(|e| RaskError::invalid_argument("steps", e))
}

/// The input columns the steps read: each column whose absence would make the query fail or
/// change its output schema. polars does the resolving; no expression walking here.
pub(crate) fn needed_columns(input: &SchemaRef, steps: &[Step]) -> Option<Vec<String>> {
    if steps.iter().any(Step::is_opaque) {
        return None;
    }
    let full = output_schema(input, steps).ok()?;
    let mut needed = Vec::new();
    for name in input.iter_names() {
        let mut without: Schema = (**input).clone();
        without.shift_remove(name);
        let without = Arc::new(without);
        let mut lf = PlFrame::empty_with_schema(&without).lazy();
        for s in steps {
            lf = s.apply(lf);
        }
        match lf.collect_schema() {
            Ok(s) if s == full => {}
            _ => needed.push(name.to_string()),
        }
    }
    Some(needed)
}

/// The filters at the head of the chain, which may be evaluated by a reader before any other
/// step (for row-group statistics) because no earlier step changed their columns.
pub(crate) fn leading_filters(steps: &[Step]) -> Vec<Expr> {
    steps
        .iter()
        .take_while(|s| matches!(s, Step::Filter(_)))
        .map(|s| match s {
            Step::Filter(e) => e.clone(),
            _ => unreachable!(),
        })
        .collect()
}

/// The row limit of a chain whose only row-changing step is a leading `Head`.
pub(crate) fn leading_limit(steps: &[Step]) -> Option<usize> {
    let mut limit = None;
    for s in steps {
        match s {
            Step::Head(n) => {
                limit = Some(limit.map_or(*n, |l: usize| l.min(*n)));
            }
            // Row-preserving, row-by-row steps commute with a limit.
            Step::Rename { .. } | Step::Drop(_) | Step::Cast(_) => {}
            _ => return limit,
        }
    }
    limit
}
