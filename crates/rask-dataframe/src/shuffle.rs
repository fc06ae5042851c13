//! Operations that move rows between partitions: `repartition`, `shuffle`, `drop_duplicates`,
//! `join`, `sort` and `set_index`. Everything is lazy: nothing is computed while the graph is
//! built, and every partition boundary that depends on the data is found by a task.
//!
//! - **repartition(m)** never reorders rows. Fewer partitions concatenate runs of neighbours
//!   (balanced by row count when the counts are known, by partition count otherwise). More
//!   partitions split by row ranges: with known counts each output takes an exact range of
//!   the global row numbering (a slice of one or two inputs); without them every input is cut
//!   into `m / n` (or one more) equal pieces by one task, and each output picks one piece.
//! - **shuffle(on, m)** hash-partitions: each input is cut into `m` pieces by a seeded hash of
//!   the key columns (the same key lands in the same piece in every task and process), and
//!   output `j` concatenates piece `j` of every input.
//! - **drop_duplicates** is a reduction: distinct rows per partition, then a tree of
//!   concatenate-and-distinct combines; with `split_out > 1` the partials are hash-split by the
//!   subset so each output owns a disjoint set of keys.
//! - **join** broadcasts a one-partition side when the join type allows it (each partition of
//!   the big side joins the whole small one, no shuffle), and otherwise hash-shuffles both sides
//!   on their keys into `max(npartitions)` buckets and joins bucket `i` with bucket `i`. Keys
//!   of different numeric dtypes are cast to their common supertype first, so equal values hash
//!   alike on both sides.
//! - **sort** samples each partition (its sorted key columns at up to 1000 evenly spaced
//!   ranks, weighted by the partition's rows), turns all samples into `n - 1` weighted
//!   quantile boundaries in one task, range-splits every partition by the boundaries (a task
//!   that depends on the partition and the boundaries), and sorts the concatenation of piece
//!   `i` of every input into output `i`. Nulls sort last in every output partition, so the
//!   concatenated result equals polars' `sort` with `nulls_last(true)`.

use std::sync::Arc;

use polars::prelude::{
    Column, DataFrame as PlFrame, DataType, Field, IdxCa, IdxSize, IntoLazy, JoinArgs, JoinType,
    PlSmallStr, Schema, SchemaRef, SortMultipleOptions, UniqueKeepStrategy, col, lit, when,
};
use rask_error::{RaskError, Result};
use rask_graph::{Cost, Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Token, Tokenizer, Value};

use crate::frame::{DataFrame, Lowered, concat_frames};
use crate::groupby::{HashSplit, TreeOps, tree_reduce, unknown_column};
use crate::ops::Scalar;
use crate::wire::{self, Pieces};
use crate::{frame_value, get_frame, polars_err};

/// Rows sampled per partition to find the sort boundaries.
const SORT_SAMPLES: usize = 1000;

const WEIGHT: &str = "__rask_weight";
const IS_BOUNDARY: &str = "__rask_is_boundary";
const ROW: &str = "__rask_row";

impl DataFrame {
    /// The same rows, in the same order, in `npartitions` partitions: neighbours are
    /// concatenated to make fewer, partitions are split by row ranges to make more. No
    /// shuffle.
    pub fn repartition(&self, npartitions: usize) -> Result<DataFrame> {
        check_npartitions("npartitions", npartitions)?;
        if npartitions == self.npartitions() {
            return Ok(self.clone());
        }
        Ok(self.stage(self.schema().clone(), |input| {
            repartition_lowered(input, npartitions, self.schema())
        }))
    }

    /// Hash-partitions the rows by the `on` columns into `npartitions` partitions: all rows
    /// with one key end up in one partition. Row order within a partition is not kept.
    pub fn shuffle(&self, on: &[&str], npartitions: usize) -> Result<DataFrame> {
        check_npartitions("npartitions", npartitions)?;
        let on = check_columns("on", on, self.schema())?;
        Ok(self.stage(self.schema().clone(), |input| {
            hash_shuffle(input, &on, npartitions, self.schema())
        }))
    }

    /// One row per distinct combination of the `subset` columns (all columns when `None`);
    /// which row of a group is kept is unspecified. The result has `split_out` partitions,
    /// hash-partitioned by the subset.
    pub fn drop_duplicates(&self, subset: Option<&[&str]>, split_out: usize) -> Result<DataFrame> {
        check_npartitions("split_out", split_out)?;
        let subset = match subset {
            Some(s) => Some(check_columns("subset", s, self.schema())?),
            None => None,
        };
        let hash_keys = subset.clone().unwrap_or_else(|| self.columns());
        if hash_keys.is_empty() {
            return Err(RaskError::invalid_argument(
                "subset",
                "a frame without columns has no rows to deduplicate",
            ));
        }
        let schema = self.schema().clone();
        let post = Post::Unique(subset.clone());
        let desc = format!(
            "DROP_DUPLICATES subset {} (distinct per partition, then a tree; split_out {split_out})",
            subset
                .as_ref()
                .map_or("all columns".to_string(), |s| format!("{s:?}"))
        );
        Ok(self.stage(schema.clone(), |input| {
            let local = map_partitions_op(input, "drop-duplicates-local", &desc, post.clone());
            let combine: Arc<dyn Op> = Arc::new(ConcatThen {
                schema: schema.clone(),
                post: post.clone(),
            });
            let mut out = tree_reduce(
                &local,
                &hash_keys,
                TreeOps {
                    combine: combine.clone(),
                    finalize: combine,
                },
                8,
                split_out,
                desc.clone(),
            );
            // `local` added a plan line too; show the operation once.
            let mut plan = (*input.plan).clone();
            plan.push(desc.clone());
            out.plan = Arc::new(plan);
            out
        }))
    }

    /// Joins `other` on `left_on` = `right_on` (polars semantics and output columns; `suffix`
    /// is appended to right columns whose names clash). A one-partition side is broadcast
    /// when the join type allows it; otherwise both sides are hash-shuffled on their keys.
    /// Inner, left, right, full, semi and anti joins are supported.
    pub fn join(
        &self,
        other: &DataFrame,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinType,
        suffix: &str,
    ) -> Result<DataFrame> {
        if !matches!(
            how,
            JoinType::Inner
                | JoinType::Left
                | JoinType::Right
                | JoinType::Full
                | JoinType::Semi
                | JoinType::Anti
        ) {
            return Err(RaskError::invalid_argument(
                "how",
                format!("{how} joins are not supported (inner, left, right, full, semi, anti)"),
            ));
        }
        if left_on.is_empty() {
            return Err(RaskError::invalid_argument(
                "left_on",
                "at least one key column is needed",
            ));
        }
        if left_on.len() != right_on.len() {
            return Err(RaskError::invalid_argument(
                "right_on",
                format!(
                    "{} right key columns for {} left key columns",
                    right_on.len(),
                    left_on.len()
                ),
            ));
        }
        let lkeys = check_columns("left_on", left_on, self.schema())?;
        let rkeys = check_columns("right_on", right_on, other.schema())?;
        // Equal keys must hash alike on both sides: give each key pair one dtype.
        let (mut lcasts, mut rcasts) = (Vec::new(), Vec::new());
        for (l, r) in lkeys.iter().zip(&rkeys) {
            let ld = dtype(self.schema(), l);
            let rd = dtype(other.schema(), r);
            if ld == rd {
                continue;
            }
            let common = common_key_dtype(ld, rd).ok_or_else(|| {
                RaskError::invalid_argument(
                    "right_on",
                    format!(
                        "join key `{l}` is {ld} on the left but `{r}` is {rd} on the right; \
                         cast one side first"
                    ),
                )
            })?;
            if ld != &common {
                lcasts.push((l.clone(), common.clone()));
            }
            if rd != &common {
                rcasts.push((r.clone(), common));
            }
        }
        let left = if lcasts.is_empty() {
            self.clone()
        } else {
            self.cast(&lcasts)?
        };
        let right = if rcasts.is_empty() {
            other.clone()
        } else {
            other.cast(&rcasts)?
        };
        let args = JoinArgs::new(how.clone()).with_suffix(Some(suffix.into()));
        let schema = PlFrame::empty_with_schema(left.schema())
            .lazy()
            .join(
                PlFrame::empty_with_schema(right.schema()).lazy(),
                exprs(&lkeys),
                exprs(&rkeys),
                args.clone(),
            )
            .collect_schema()
            .map_err(|e| RaskError::invalid_argument("join", e))?;
        let op = JoinOp {
            left_on: lkeys.clone(),
            right_on: rkeys.clone(),
            args,
            schema: schema.clone(),
        };
        let (nl, nr) = (left.npartitions(), right.npartitions());
        let rlow = right.lowered().clone();
        let left_preserving = matches!(
            how,
            JoinType::Inner | JoinType::Left | JoinType::Semi | JoinType::Anti
        );
        let right_preserving = matches!(how, JoinType::Inner | JoinType::Right);
        let on = format!("{how} on {lkeys:?} = {rkeys:?}");
        let right_line = rlow.plan.last().cloned().unwrap_or_default();
        Ok(left.stage(schema.clone(), |llow| {
            if nr == 1 && (left_preserving || nl == 1) {
                broadcast_join(llow, &rlow, Side::Right, op, &on, &right_line)
            } else if nl == 1 && right_preserving {
                broadcast_join(llow, &rlow, Side::Left, op, &on, &right_line)
            } else {
                let n = nl.max(nr);
                let ls = hash_shuffle(llow, &lkeys, n, left.schema());
                let rs = hash_shuffle(&rlow, &rkeys, n, right.schema());
                hash_join(llow, &ls, &rs, op, &on, &right_line)
            }
        }))
    }

    /// Sorts by the `by` columns (all ascending or all descending), nulls last, into as many
    /// partitions as the input has: output partition `i` holds a contiguous range of the
    /// order, sorted. Ties may be in any order.
    pub fn sort(&self, by: &[&str], descending: bool) -> Result<DataFrame> {
        Ok(self.sort_with_divisions(by, descending)?.0)
    }

    /// [`DataFrame::sort`] and its *divisions*, computed by the same tasks: a frame of the
    /// `by` columns with `npartitions + 1` rows, as in Dask: the first key in the sort order,
    /// then the boundary that starts each output partition after the first (rows equal to a
    /// boundary sort into the partition it starts, or a later one when boundaries repeat),
    /// then the last key. Keys that are null sort last, so the last division may be null.
    /// Empty when the frame has no rows.
    pub fn sort_with_divisions(
        &self,
        by: &[&str],
        descending: bool,
    ) -> Result<(DataFrame, Scalar<PlFrame>)> {
        if by.is_empty() {
            return Err(RaskError::invalid_argument(
                "by",
                "at least one sort column is needed",
            ));
        }
        let by = check_columns("by", by, self.schema())?;
        // polars accepts sorting by any column on empty data; fail at build time instead.
        for b in &by {
            let d = dtype(self.schema(), b);
            if d.is_nested() {
                return Err(RaskError::invalid_argument(
                    "by",
                    format!("cannot sort by column `{b}` of type {d}"),
                ));
            }
        }
        let spec = SortSpec { by, descending };
        let mut divisions = None;
        let frame = self.stage(self.schema().clone(), |input| {
            let (lowered, key) = sort_lowered(input, &spec, self.schema());
            divisions = Some(key);
            lowered
        });
        let key = divisions.expect("the stage ran");
        let scalar = Scalar::new(key, frame.lowered().layer.clone());
        Ok((frame, scalar))
    }

    /// Dask's `set_index(column)`: the frame sorted by `column` (ascending, nulls last), which
    /// stays a column (rask frames have no separate index). See
    /// [`DataFrame::sort_with_divisions`] for the partition boundaries.
    pub fn set_index(&self, column: &str) -> Result<DataFrame> {
        if self.schema().get(column).is_none() {
            return Err(unknown_column("column", column, self.schema()));
        }
        self.sort(&[column], false)
    }
}

fn check_npartitions(arg: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(RaskError::invalid_argument(arg, "must be at least 1"));
    }
    Ok(())
}

fn check_columns(arg: &str, names: &[&str], schema: &Schema) -> Result<Vec<String>> {
    if names.is_empty() {
        return Err(RaskError::invalid_argument(
            arg,
            "at least one column is needed",
        ));
    }
    names
        .iter()
        .map(|n| {
            if schema.get(n).is_none() {
                Err(unknown_column(arg, n, schema))
            } else {
                Ok(n.to_string())
            }
        })
        .collect()
}

/// The dtype of a column already checked to exist.
fn dtype<'a>(schema: &'a Schema, name: &str) -> &'a DataType {
    schema.get(name).unwrap_or(&DataType::Null)
}

fn exprs(names: &[String]) -> Vec<polars::prelude::Expr> {
    names.iter().map(|n| col(n.as_str())).collect()
}

/// The dtype both sides of a join key are cast to: polars' supertype, for numeric keys only
/// (polars would also unify a number with a string, which would join `1` with `"1"`).
fn common_key_dtype(l: &DataType, r: &DataType) -> Option<DataType> {
    if !(l.is_primitive_numeric() && r.is_primitive_numeric()) {
        return None;
    }
    let schema = Schema::from_iter([
        Field::new("l".into(), l.clone()),
        Field::new("r".into(), r.clone()),
    ]);
    // A conditional's branches are unified to their supertype.
    let out = PlFrame::empty_with_schema(&schema)
        .lazy()
        .select([when(lit(true))
            .then(col("l"))
            .otherwise(col("r"))
            .alias("s")])
        .collect_schema()
        .ok()?;
    out.get("s").cloned()
}

fn token(op: &str, input: &Lowered, params: &str) -> Token {
    let mut t = Tokenizer::new(op);
    t.write_str(input.name.as_str());
    t.write_str(params);
    t.finish()
}

fn with_plan(input: &Lowered, line: String) -> Arc<Vec<String>> {
    let mut plan = (*input.plan).clone();
    plan.push(line);
    Arc::new(plan)
}

// ----- repartition -----

fn repartition_lowered(input: &Lowered, m: usize, schema: &SchemaRef) -> Lowered {
    let n = input.npartitions;
    let tok = token("rask.dataframe.repartition", input, &m.to_string());
    let name = KeyName::from_token("repartition", tok);
    let out_key = |j: usize| Key::new(name.clone(), [j as u32]);
    let mut tasks = Vec::new();
    let mut num_rows = None;
    let how;
    if n == 0 {
        how = "empty input";
        for j in 0..m {
            tasks.push(TaskSpec::new(
                out_key(j),
                concat_op(schema, vec![]),
                Vec::<Key>::new(),
            ));
        }
    } else if m <= n {
        how = "concatenating neighbours";
        let cuts = neighbour_cuts(n, m, input.num_rows.as_deref());
        for j in 0..m {
            let parts: Vec<usize> = (cuts[j]..cuts[j + 1]).collect();
            let op = concat_op(schema, parts.iter().map(|_| Slice::Whole).collect());
            tasks.push(TaskSpec::new(
                out_key(j),
                op,
                parts.iter().map(|&i| input.key(i)),
            ));
        }
        num_rows = input.num_rows.as_ref().map(|rows| {
            (0..m)
                .map(|j| rows[cuts[j]..cuts[j + 1]].iter().sum())
                .collect()
        });
    } else if let Some(rows) = &input.num_rows {
        how = "slicing exact row ranges";
        // Output j takes global rows [j N / m, (j + 1) N / m).
        let total: u64 = rows.iter().sum();
        let mut starts = vec![0u64];
        for r in rows {
            starts.push(starts.last().expect("nonempty") + r);
        }
        let mut out_rows = Vec::with_capacity(m);
        for j in 0..m {
            let lo = total * j as u64 / m as u64;
            let hi = total * (j as u64 + 1) / m as u64;
            let (mut deps, mut slices) = (Vec::new(), Vec::new());
            for i in 0..n {
                let (a, b) = (starts[i].max(lo), starts[i + 1].min(hi));
                if a < b {
                    deps.push(input.key(i));
                    slices.push(Slice::Range {
                        offset: (a - starts[i]) as usize,
                        len: (b - a) as usize,
                        of: rows[i] as usize,
                    });
                }
            }
            tasks.push(TaskSpec::new(out_key(j), concat_op(schema, slices), deps));
            out_rows.push(hi - lo);
        }
        num_rows = Some(out_rows);
    } else {
        how = "splitting each partition into equal row ranges";
        // Row counts are unknown until the partitions exist: cut each input into k_i equal
        // pieces, with sum k_i = m, in one task per input.
        let split_name = KeyName::from_token("split-rows", tok);
        let mut j = 0;
        for i in 0..n {
            let k = m / n + usize::from(i < m % n);
            let split_key = Key::new(split_name.clone(), [i as u32]);
            tasks.push(TaskSpec::new(
                split_key.clone(),
                Arc::new(SplitRows { n: k }),
                [input.key(i)],
            ));
            for p in 0..k {
                tasks.push(TaskSpec::new(
                    out_key(j),
                    Arc::new(TakePiece { j: p, n: k }),
                    [split_key.clone()],
                ));
                j += 1;
            }
        }
    }
    Lowered {
        name,
        layer: Layer::new(tasks, vec![input.layer.clone()]),
        npartitions: m,
        plan: with_plan(input, format!("REPARTITION {n} -> {m} ({how})")),
        num_rows,
    }
}

/// Partition indices where each of the `m` groups of neighbours starts, then `n`. With known
/// row counts the groups are balanced by rows, otherwise by partition count; every group
/// gets at least one partition.
fn neighbour_cuts(n: usize, m: usize, rows: Option<&[u64]>) -> Vec<usize> {
    let mut cuts = vec![0];
    let total: u64 = rows.map_or(0, |r| r.iter().sum());
    let mut prefix = vec![0u64];
    if let Some(rows) = rows {
        for r in rows {
            prefix.push(prefix.last().expect("nonempty") + r);
        }
    }
    for j in 1..m {
        let prev = *cuts.last().expect("nonempty");
        let ideal = if total > 0 {
            let target = total * j as u64 / m as u64;
            // The partition boundary closest to the target row.
            (1..n)
                .min_by_key(|&c| prefix[c].abs_diff(target))
                .unwrap_or(1)
        } else {
            j * n / m
        };
        cuts.push(ideal.clamp(prev + 1, n - (m - j)));
    }
    cuts.push(n);
    cuts
}

// ----- shuffle -----

/// Hash-partitions `input` by `keys` into `n` partitions.
fn hash_shuffle(input: &Lowered, keys: &[String], n: usize, schema: &SchemaRef) -> Lowered {
    let tok = token("rask.dataframe.shuffle", input, &format!("{keys:?}/{n}"));
    let split_name = KeyName::from_token("shuffle-split", tok);
    let piece_name = KeyName::from_token("shuffle-piece", tok);
    let name = KeyName::from_token("shuffle", tok);
    let split: Arc<dyn Op> = Arc::new(HashSplit {
        keys: keys.to_vec(),
        n,
    });
    let mut tasks = Vec::new();
    for i in 0..input.npartitions {
        tasks.push(TaskSpec::new(
            Key::new(split_name.clone(), [i as u32]),
            split.clone(),
            [input.key(i)],
        ));
    }
    let inputs = input.npartitions;
    for j in 0..n {
        let piece: Arc<dyn Op> = Arc::new(TakePiece { j, n });
        let mut deps = Vec::with_capacity(inputs);
        for i in 0..inputs {
            let key = Key::new(piece_name.clone(), [i as u32, j as u32]);
            tasks.push(TaskSpec::new(
                key.clone(),
                piece.clone(),
                [Key::new(split_name.clone(), [i as u32])],
            ));
            deps.push(key);
        }
        tasks.push(TaskSpec::new(
            Key::new(name.clone(), [j as u32]),
            concat_op(schema, vec![Slice::Whole; inputs]),
            deps,
        ));
    }
    Lowered {
        name,
        layer: Layer::new(tasks, vec![input.layer.clone()]),
        npartitions: n,
        plan: with_plan(
            input,
            format!("SHUFFLE on {keys:?} into {n} partitions (hash)"),
        ),
        num_rows: None,
    }
}

/// One task per partition running `post` over it.
fn map_partitions_op(input: &Lowered, prefix: &str, desc: &str, post: Post) -> Lowered {
    let name = KeyName::from_token(prefix, token("rask.dataframe.map", input, desc));
    let op: Arc<dyn Op> = Arc::new(ConcatThen {
        schema: Arc::new(Schema::default()),
        post,
    });
    let tasks = (0..input.npartitions)
        .map(|i| {
            TaskSpec::new(
                Key::new(name.clone(), [i as u32]),
                op.clone(),
                [input.key(i)],
            )
        })
        .collect();
    Lowered {
        name,
        layer: Layer::new(tasks, vec![input.layer.clone()]),
        npartitions: input.npartitions,
        plan: with_plan(input, desc.to_string()),
        num_rows: None,
    }
}

// ----- join -----

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Left,
    Right,
}

/// Each partition of the big side joined with the whole one-partition side.
fn broadcast_join(
    left: &Lowered,
    right: &Lowered,
    small: Side,
    op: JoinOp,
    on: &str,
    right_line: &str,
) -> Lowered {
    let mut t = Tokenizer::new("rask.dataframe.broadcast_join");
    t.write_str(left.name.as_str());
    t.write_str(right.name.as_str());
    t.write_str(&op.describe());
    let name = KeyName::from_token("broadcast-join", t.finish());
    let big = if small == Side::Right { left } else { right };
    let op: Arc<dyn Op> = Arc::new(op);
    let tasks = (0..big.npartitions)
        .map(|i| {
            let (l, r) = match small {
                Side::Right => (left.key(i), right.key(0)),
                Side::Left => (left.key(0), right.key(i)),
            };
            TaskSpec::new(Key::new(name.clone(), [i as u32]), op.clone(), [l, r])
        })
        .collect();
    let small_name = if small == Side::Right {
        "right"
    } else {
        "left"
    };
    let mut plan = (*left.plan).clone();
    plan.push(format!(
        "BROADCAST_JOIN {on} (the {small_name} side's one partition joins each of {}; right: {right_line})",
        big.npartitions
    ));
    Lowered {
        name,
        layer: Layer::new(tasks, vec![left.layer.clone(), right.layer.clone()]),
        npartitions: big.npartitions,
        plan: Arc::new(plan),
        num_rows: None,
    }
}

/// Bucket `i` of the shuffled left joined with bucket `i` of the shuffled right.
fn hash_join(
    left_input: &Lowered,
    left: &Lowered,
    right: &Lowered,
    op: JoinOp,
    on: &str,
    right_line: &str,
) -> Lowered {
    let mut t = Tokenizer::new("rask.dataframe.hash_join");
    t.write_str(left.name.as_str());
    t.write_str(right.name.as_str());
    t.write_str(&op.describe());
    let name = KeyName::from_token("hash-join", t.finish());
    let n = left.npartitions;
    let op: Arc<dyn Op> = Arc::new(op);
    let tasks = (0..n)
        .map(|i| {
            TaskSpec::new(
                Key::new(name.clone(), [i as u32]),
                op.clone(),
                [left.key(i), right.key(i)],
            )
        })
        .collect();
    let mut plan = (*left_input.plan).clone();
    plan.push(format!(
        "HASH_JOIN {on} (both sides hash-shuffled into {n} buckets; right: {right_line})"
    ));
    Lowered {
        name,
        layer: Layer::new(tasks, vec![left.layer.clone(), right.layer.clone()]),
        npartitions: n,
        plan: Arc::new(plan),
        num_rows: None,
    }
}

/// Joins its two inputs (left, right) with polars.
#[derive(serde::Serialize, serde::Deserialize)]
struct JoinOp {
    left_on: Vec<String>,
    right_on: Vec<String>,
    #[serde(with = "crate::wire::pl")]
    args: JoinArgs,
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
}

/// The ops of this module whose parameters are the op itself, encoded and decoded whole.
macro_rules! portable {
    ($($t:ty => $decode:ident: $($name:expr),+);* $(;)?) => {$(
        fn $decode(name: &'static str, params: &[u8]) -> Result<Arc<dyn Op>> {
            let op: $t = wire::decode(name, params)?;
            op.check(name)?;
            Ok(Arc::new(op))
        }
        $(
            rask_graph::register_op!($name, |params: &[u8], _: &OpRegistry| $decode($name, params));
        )+
    )*};
}

portable!(
    JoinOp => decode_join: JOIN;
    SortSample => decode_sort_sample: SORT_SAMPLE;
    SortDivisions => decode_sort_divisions: SORT_DIVISIONS;
    RangeSplit => decode_range_split: SORT_SPLIT;
    ConcatThen => decode_concat_then: CONCAT, DROP_DUPLICATES, SORT_PARTITION;
    ConcatSlices => decode_concat_slices: CONCAT_SLICES;
    SplitRows => decode_split_rows: SPLIT_ROWS;
    TakePiece => decode_take_piece: TAKE_PIECE;
);

const JOIN: &str = "rask.dataframe.join";
const SORT_SAMPLE: &str = "rask.dataframe.sort_sample";
const SORT_DIVISIONS: &str = "rask.dataframe.sort_divisions";
const SORT_SPLIT: &str = "rask.dataframe.sort_split";
const CONCAT: &str = "rask.dataframe.concat";
const DROP_DUPLICATES: &str = "rask.dataframe.drop_duplicates";
const SORT_PARTITION: &str = "rask.dataframe.sort_partition";
const CONCAT_SLICES: &str = "rask.dataframe.concat_slices";
const SPLIT_ROWS: &str = "rask.dataframe.split_rows";
const TAKE_PIECE: &str = "rask.dataframe.take_piece";

fn bad_params(name: &str, why: impl Into<String>) -> RaskError {
    RaskError::Serialization {
        what: format!("parameters of op `{name}`"),
        message: why.into(),
    }
}

/// Checks of decoded parameters that the types alone do not make (a count of pieces of
/// zero, parameters sent under another op's name), so a bad blob is an error, not a panic.
trait CheckParams {
    fn check(&self, _name: &str) -> Result<()> {
        Ok(())
    }
}

impl CheckParams for JoinOp {}
impl CheckParams for SortSample {}
impl CheckParams for SortDivisions {
    fn check(&self, name: &str) -> Result<()> {
        if self.n == 0 {
            return Err(bad_params(name, "zero partitions"));
        }
        Ok(())
    }
}
impl CheckParams for RangeSplit {
    fn check(&self, name: &str) -> Result<()> {
        if self.n == 0 {
            return Err(bad_params(name, "zero pieces"));
        }
        Ok(())
    }
}
impl CheckParams for ConcatThen {
    fn check(&self, name: &str) -> Result<()> {
        if self.name() != name {
            return Err(bad_params(
                name,
                format!("the parameters are those of `{}`", self.name()),
            ));
        }
        Ok(())
    }
}
impl CheckParams for ConcatSlices {}
impl CheckParams for SplitRows {
    fn check(&self, name: &str) -> Result<()> {
        if self.n == 0 {
            return Err(bad_params(name, "zero pieces"));
        }
        Ok(())
    }
}
impl CheckParams for TakePiece {}

impl JoinOp {
    fn describe(&self) -> String {
        format!(
            "{} {:?} = {:?} suffix {:?}",
            self.args.how, self.left_on, self.right_on, self.args.suffix
        )
    }
}

impl Op for JoinOp {
    fn name(&self) -> &str {
        JOIN
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        wire::encode(JOIN, self)
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let l = get_frame(&inputs[0])?.clone();
        let r = get_frame(&inputs[1])?.clone();
        let out = l
            .lazy()
            .join(
                r.lazy(),
                exprs(&self.left_on),
                exprs(&self.right_on),
                self.args.clone(),
            )
            .collect()
            .map_err(polars_err(format!("join {}", self.describe())))?;
        if out.schema() != &self.schema {
            return Err(RaskError::msg(format!(
                "join {}: partition schema {:?} differs from the planned {:?}",
                self.describe(),
                out.schema(),
                self.schema
            )));
        }
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        // A join with few matches per key is about the size of its inputs; many-to-many
        // joins can be larger, which no estimate before running can know.
        Some(input_nbytes.iter().sum())
    }
}

// ----- sort -----

#[derive(serde::Serialize, serde::Deserialize)]
struct SortSpec {
    by: Vec<String>,
    descending: bool,
}

impl SortSpec {
    fn options(&self) -> SortMultipleOptions {
        SortMultipleOptions::default()
            .with_order_descending(self.descending)
            .with_nulls_last(true)
    }
    fn describe(&self) -> String {
        format!(
            "{:?} {}",
            self.by,
            if self.descending {
                "descending"
            } else {
                "ascending"
            }
        )
    }
    fn clone_spec(&self) -> SortSpec {
        SortSpec {
            by: self.by.clone(),
            descending: self.descending,
        }
    }
}

/// The sort's tasks, and the key of its divisions task.
fn sort_lowered(input: &Lowered, spec: &SortSpec, schema: &SchemaRef) -> (Lowered, Key) {
    let n = input.npartitions.max(1);
    let tok = token("rask.dataframe.sort", input, &spec.describe());
    let sample_name = KeyName::from_token("sort-sample", tok);
    let divisions = Key::new(KeyName::from_token("sort-divisions", tok), [0u32]);
    let split_name = KeyName::from_token("sort-split", tok);
    let piece_name = KeyName::from_token("sort-piece", tok);
    let name = KeyName::from_token("sort", tok);
    let mut tasks = Vec::new();
    let sample: Arc<dyn Op> = Arc::new(SortSample {
        spec: spec.clone_spec(),
    });
    let samples: Vec<Key> = (0..input.npartitions)
        .map(|i| Key::new(sample_name.clone(), [i as u32]))
        .collect();
    for (i, k) in samples.iter().enumerate() {
        tasks.push(TaskSpec::new(k.clone(), sample.clone(), [input.key(i)]));
    }
    let key_schema: Schema = spec
        .by
        .iter()
        .map(|b| Field::new(b.as_str().into(), dtype(schema, b).clone()))
        .collect();
    tasks.push(TaskSpec::new(
        divisions.clone(),
        Arc::new(SortDivisions {
            spec: spec.clone_spec(),
            n,
            key_schema: Arc::new(key_schema),
        }),
        samples,
    ));
    let split: Arc<dyn Op> = Arc::new(RangeSplit {
        spec: spec.clone_spec(),
        n,
    });
    for i in 0..input.npartitions {
        tasks.push(TaskSpec::new(
            Key::new(split_name.clone(), [i as u32]),
            split.clone(),
            [input.key(i), divisions.clone()],
        ));
    }
    for j in 0..n {
        let piece: Arc<dyn Op> = Arc::new(TakePiece { j, n });
        let mut deps = Vec::new();
        for i in 0..input.npartitions {
            let key = Key::new(piece_name.clone(), [i as u32, j as u32]);
            tasks.push(TaskSpec::new(
                key.clone(),
                piece.clone(),
                [Key::new(split_name.clone(), [i as u32])],
            ));
            deps.push(key);
        }
        let op: Arc<dyn Op> = Arc::new(ConcatThen {
            schema: schema.clone(),
            post: Post::Sort(spec.by.clone(), spec.descending),
        });
        tasks.push(TaskSpec::new(Key::new(name.clone(), [j as u32]), op, deps));
    }
    let lowered = Lowered {
        name,
        layer: Layer::new(tasks, vec![input.layer.clone()]),
        npartitions: n,
        plan: with_plan(
            input,
            format!(
                "SORT {} nulls last (sample {SORT_SAMPLES} per partition, quantile boundaries, \
                 range split into {n})",
                spec.describe()
            ),
        ),
        num_rows: None,
    };
    (lowered, divisions)
}

/// A partition's sort keys, sorted, at up to [`SORT_SAMPLES`] evenly spaced ranks (first and
/// last included), each weighted by the rows it stands for.
#[derive(serde::Serialize, serde::Deserialize)]
struct SortSample {
    spec: SortSpec,
}

impl Op for SortSample {
    fn name(&self) -> &str {
        SORT_SAMPLE
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(SORT_SAMPLE, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let err = || polars_err(self.name());
        let df = get_frame(&inputs[0])?;
        // Sorting the keys makes each sample an exact per-partition quantile (and keeps the
        // minimum and maximum for the divisions), at the cost of sorting the key columns.
        let keys = df
            .select(self.spec.by.iter().map(|s| s.as_str()))
            .and_then(|k| k.sort(self.spec.by.clone(), self.spec.options()))
            .map_err(err())?;
        let h = keys.height();
        let idx: Vec<IdxSize> = if h <= SORT_SAMPLES {
            (0..h as IdxSize).collect()
        } else {
            (0..SORT_SAMPLES)
                .map(|s| (s * (h - 1) / (SORT_SAMPLES - 1)) as IdxSize)
                .collect()
        };
        let k = idx.len();
        let mut out = keys.take(&IdxCa::from_vec("".into(), idx)).map_err(err())?;
        let w = if k == 0 { 0.0 } else { h as f64 / k as f64 };
        out.with_column(Column::new(WEIGHT.into(), vec![w; k]))
            .map_err(err())?;
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, _input_nbytes: &[u64]) -> Option<u64> {
        Some((SORT_SAMPLES * 16 * (self.spec.by.len() + 1)) as u64)
    }
}

/// All samples to the divisions: the minimum, `n - 1` weighted quantiles, the maximum.
#[derive(serde::Serialize, serde::Deserialize)]
struct SortDivisions {
    spec: SortSpec,
    n: usize,
    #[serde(with = "crate::wire::schema_ref")]
    key_schema: SchemaRef,
}

impl Op for SortDivisions {
    fn name(&self) -> &str {
        SORT_DIVISIONS
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(SORT_DIVISIONS, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let err = || polars_err(self.name());
        let frames = inputs
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<Vec<_>>>()?;
        let mut with_weight = (*self.key_schema).clone();
        with_weight.insert(WEIGHT.into(), DataType::Float64);
        let all = concat_frames(frames, &Arc::new(with_weight))?;
        if all.height() == 0 {
            return Ok(frame_value(PlFrame::empty_with_schema(&self.key_schema)));
        }
        let all = all
            .sort(self.spec.by.clone(), self.spec.options())
            .map_err(err())?;
        let weights = all.column(WEIGHT).and_then(|c| c.f64()).map_err(err())?;
        let mut cum = Vec::with_capacity(all.height());
        let mut acc = 0.0;
        for w in weights.iter() {
            acc += w.unwrap_or(0.0);
            cum.push(acc);
        }
        let total = acc;
        let last = all.height() - 1;
        let mut idx: Vec<IdxSize> = vec![0];
        let mut at = 0;
        for q in 1..self.n {
            let target = total * q as f64 / self.n as f64;
            while at < last && cum[at] < target {
                at += 1;
            }
            idx.push(at as IdxSize);
        }
        idx.push(last as IdxSize);
        let out = all
            .select(self.spec.by.iter().map(|s| s.as_str()))
            .and_then(|k| k.take(&IdxCa::from_vec("".into(), idx)))
            .map_err(err())?;
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, _input_nbytes: &[u64]) -> Option<u64> {
        Some((16 * (self.n + 1) * self.spec.by.len()) as u64)
    }
}

/// Cuts a partition into `n` pieces by the interior rows of the divisions: piece `i` holds
/// the rows at or after boundary `i` and before boundary `i + 1` in the sort order.
#[derive(serde::Serialize, serde::Deserialize)]
struct RangeSplit {
    spec: SortSpec,
    n: usize,
}

impl Op for RangeSplit {
    fn name(&self) -> &str {
        SORT_SPLIT
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(SORT_SPLIT, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let df = get_frame(&inputs[0])?;
        let divisions = get_frame(&inputs[1])?;
        let buckets = self
            .buckets(df, divisions)
            .map_err(polars_err(self.name()))?;
        let pieces = take_pieces(df, &buckets, self.n)?;
        Ok(Value::new(Pieces(Arc::new(pieces))))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().copied()
    }
    fn transient_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        // The pieces, plus the sorted key columns and row numbers used to place the rows.
        input_nbytes.first().map(|n| n + n / 2)
    }
}

impl RangeSplit {
    /// The piece of every row: how many interior boundaries sort at or before it. The
    /// boundaries and the rows' keys are sorted together (stably, boundaries first, so a row
    /// equal to a boundary comes after it) and counted in one pass.
    fn buckets(
        &self,
        df: &PlFrame,
        divisions: &PlFrame,
    ) -> polars::prelude::PolarsResult<Vec<u32>> {
        let h = df.height();
        let nb = divisions.height().saturating_sub(2);
        if nb == 0 || self.n == 1 {
            return Ok(vec![0; h]);
        }
        let by = || self.spec.by.iter().map(|s| s.as_str());
        let mut bounds = divisions.slice(1, nb).select(by())?;
        bounds.with_column(Column::new(IS_BOUNDARY.into(), vec![true; nb]))?;
        let mut keys = df.select(by())?;
        keys.with_column(Column::new(IS_BOUNDARY.into(), vec![false; h]))?;
        let both = bounds.vstack(&keys)?.with_row_index(ROW.into(), None)?;
        let sorted = both.sort(
            self.spec.by.clone(),
            self.spec.options().with_maintain_order(true),
        )?;
        let is_b = sorted.column(IS_BOUNDARY)?.bool()?;
        let rows = sorted.column(ROW)?.idx()?;
        let mut out = vec![0u32; h];
        let mut seen = 0u32;
        for (b, r) in is_b.iter().zip(rows.iter()) {
            if b == Some(true) {
                seen += 1;
            } else if let Some(r) = r {
                out[r as usize - nb] = seen.min(self.n as u32 - 1);
            }
        }
        Ok(out)
    }
}

fn take_pieces(df: &PlFrame, buckets: &[u32], n: usize) -> Result<Vec<PlFrame>> {
    let mut idx: Vec<Vec<IdxSize>> = vec![Vec::new(); n];
    for (row, &b) in buckets.iter().enumerate() {
        idx[b as usize].push(row as IdxSize);
    }
    idx.into_iter()
        .map(|rows| {
            df.take(&IdxCa::from_vec("".into(), rows))
                .map_err(polars_err("splitting a partition"))
        })
        .collect()
}

// ----- generic ops -----

/// Which rows of an input a concatenation takes.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Slice {
    Whole,
    /// `len` rows from `offset` of an input of `of` rows.
    Range {
        offset: usize,
        len: usize,
        of: usize,
    },
}

/// What runs on a concatenation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Post {
    None,
    /// Distinct rows over these columns (all when `None`), any row kept per group.
    Unique(Option<Vec<String>>),
    Sort(Vec<String>, bool),
}

fn concat_op(schema: &SchemaRef, slices: Vec<Slice>) -> Arc<dyn Op> {
    if slices.iter().all(|s| matches!(s, Slice::Whole)) {
        return Arc::new(ConcatThen {
            schema: schema.clone(),
            post: Post::None,
        });
    }
    Arc::new(ConcatSlices {
        schema: schema.clone(),
        slices,
    })
}

/// Concatenates its inputs, then runs `post`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConcatThen {
    /// The schema of an output with no inputs.
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
    post: Post,
}

impl Op for ConcatThen {
    fn name(&self) -> &str {
        match self.post {
            Post::None => CONCAT,
            Post::Unique(_) => DROP_DUPLICATES,
            Post::Sort(..) => SORT_PARTITION,
        }
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(self.name(), self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let frames = inputs
            .iter()
            .map(|v| get_frame(v).cloned())
            .collect::<Result<Vec<_>>>()?;
        let df = concat_frames(frames, &self.schema)?;
        let out = match &self.post {
            Post::None => df,
            Post::Unique(subset) => df
                .unique_impl(
                    false,
                    subset
                        .as_ref()
                        .map(|s| s.iter().map(|c| PlSmallStr::from(c.as_str())).collect()),
                    UniqueKeepStrategy::Any,
                    None,
                )
                .map_err(polars_err(self.name()))?,
            Post::Sort(by, descending) => df
                .sort(
                    by.clone(),
                    SortMultipleOptions::default()
                        .with_order_descending(*descending)
                        .with_nulls_last(true),
                )
                .map_err(polars_err(self.name()))?,
        };
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        // Distinct rows are at most all rows: the sum is an upper bound.
        Some(input_nbytes.iter().sum())
    }
}

/// Concatenates row ranges of its inputs.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConcatSlices {
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
    slices: Vec<Slice>,
}

impl Op for ConcatSlices {
    fn name(&self) -> &str {
        CONCAT_SLICES
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(CONCAT_SLICES, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let frames = inputs
            .iter()
            .zip(&self.slices)
            .map(|(v, s)| {
                let df = get_frame(v)?;
                Ok(match *s {
                    Slice::Whole => df.clone(),
                    Slice::Range { offset, len, of } => {
                        if df.height() != of {
                            return Err(RaskError::msg(format!(
                                "repartition: a partition has {} rows, but {of} were expected \
                                 from its metadata",
                                df.height()
                            )));
                        }
                        df.slice(offset as i64, len)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Slices share their parents' buffers (no copy): a parent stays alive until every
        // output that holds a slice of it is released.
        let out = concat_frames(frames, &self.schema)?;
        Ok(frame_value(out))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        let total = input_nbytes
            .iter()
            .zip(&self.slices)
            .map(|(&n, s)| match *s {
                Slice::Whole => n,
                Slice::Range { len, of, .. } => n * len as u64 / of.max(1) as u64,
            })
            .sum();
        Some(total)
    }
}

/// Cuts a partition into `n` pieces of consecutive rows, of near-equal lengths.
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitRows {
    n: usize,
}

impl Op for SplitRows {
    fn name(&self) -> &str {
        SPLIT_ROWS
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(SPLIT_ROWS, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let df = get_frame(&inputs[0])?;
        let h = df.height();
        let pieces: Vec<PlFrame> = (0..self.n)
            .map(|p| {
                let lo = h * p / self.n;
                let hi = h * (p + 1) / self.n;
                df.slice(lo as i64, hi - lo)
            })
            .collect();
        Ok(Value::new(Pieces(Arc::new(pieces))))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().copied()
    }
}

/// Piece `j` of `n` from a split task.
#[derive(serde::Serialize, serde::Deserialize)]
struct TakePiece {
    j: usize,
    n: usize,
}

impl Op for TakePiece {
    fn name(&self) -> &str {
        TAKE_PIECE
    }
    fn params(&self) -> Option<Vec<u8>> {
        wire::encode(TAKE_PIECE, self).ok()
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let pieces = inputs[0]
            .downcast_ref::<Pieces>()
            .map(|p| &p.0)
            .ok_or_else(|| {
                RaskError::msg(format!(
                    "expected the pieces of a split partition, found {}",
                    inputs[0].type_name()
                ))
            })?;
        let piece = pieces.get(self.j).ok_or_else(|| {
            RaskError::msg(format!("piece {} of {} pieces", self.j, pieces.len()))
        })?;
        Ok(frame_value(piece.clone()))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        input_nbytes.first().map(|n| n / self.n.max(1) as u64)
    }
    fn cost(&self) -> Cost {
        Cost::Cheap
    }
}
