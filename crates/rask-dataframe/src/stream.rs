//! A partition's steps and partial aggregation run batch by batch.
//!
//! When a reading task's steps end in a groupby's partial ([`Step::GroupAgg`]) and every step
//! before it works row by row (filters, projections, casts, `with_columns`), the task never
//! needs the whole partition at once: the source hands it the partition in batches (Parquet
//! row groups, CSV blocks of lines; [`Source::read_batches`]), each batch runs the whole
//! chain as one polars query down to its partial, and a [`PartialMerger`] merges the
//! batches' partials with the groupby's combine expressions. Memory is one batch plus the
//! partials, whatever the partition's size, and polars' kernels do all the work.
//!
//! Merging is geometric: the partials are concatenated and re-aggregated only once they hold
//! twice as many rows as after the last merge. With few groups that is a merge every few
//! batches of tiny frames; with millions of groups (every batch's partial nearly as large as
//! the batch) the total merge work stays within a small multiple of the partials' size, and
//! the memory within three times the final partial.

use std::sync::Arc;

use polars::prelude::{
    Column, DataFrame as PlFrame, DataType, Expr, IntoColumn, IntoLazy, NewChunkedArray, Schema,
    SchemaRef, StringChunked,
};
use rask_error::Result;

use crate::frame::concat_frames;
use crate::polars_err;
use crate::source::{Pushdown, Source};
use crate::step::{self, Step};

static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Batches aggregated through the streaming path since the process started: the tests'
/// evidence that a query took it.
#[doc(hidden)]
pub fn streamed_batches() -> u64 {
    BATCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Bytes of CSV text per batch.
pub(crate) const CSV_BATCH_BYTES: usize = 16 << 20;

/// Whether `steps` can run batch by batch: a groupby partial last, and only row-wise steps
/// before it (no head, sort or closure, which need the partition whole), with the combine
/// expressions to merge the batches.
pub(crate) fn streamable(steps: &[Step]) -> bool {
    let Some((
        Step::GroupAgg {
            combines, fused: _, ..
        },
        before,
    )) = steps.split_last()
    else {
        return false;
    };
    !combines.is_empty()
        && before.iter().all(|s| {
            matches!(
                s,
                Step::Select(_)
                    | Step::WithColumns(_)
                    | Step::Filter(_)
                    | Step::Rename { .. }
                    | Step::Drop(_)
                    | Step::Cast(_)
                    | Step::FillNull(_)
                    | Step::DropNulls(_)
            )
        })
}

/// Merges the partials of one partition's batches.
pub(crate) struct PartialMerger {
    keys: Vec<Expr>,
    combines: Vec<Expr>,
    parts: Vec<PlFrame>,
    rows: usize,
    merged_rows: usize,
    /// Whether the batches' partials are much smaller than the batches.
    reduces: bool,
}

impl PartialMerger {
    pub(crate) fn new(keys: Vec<Expr>, combines: Vec<Expr>) -> PartialMerger {
        PartialMerger {
            keys,
            combines,
            parts: Vec::new(),
            rows: 0,
            merged_rows: 0,
            reduces: true,
        }
    }

    /// Adds the partial of a batch of `batch_rows` rows.
    pub(crate) fn push(&mut self, partial: PlFrame, batch_rows: usize) -> Result<()> {
        // A partial that barely reduces its batch (most keys distinct) would barely reduce
        // when merged either: the tree's combines merge it once, not here too.
        self.reduces &= partial.height() * 2 <= batch_rows;
        self.rows += partial.height();
        self.parts.push(partial);
        if self.reduces && self.parts.len() > 1 && self.rows > (2 * self.merged_rows).max(1 << 16) {
            self.merge()?;
        }
        Ok(())
    }

    fn merge(&mut self) -> Result<()> {
        let parts = std::mem::take(&mut self.parts);
        let schema = parts[0].schema().clone();
        let df = concat_frames(parts, &schema)?;
        // Combine expressions keep the partial's columns: the result is a partial again.
        let merged = df
            .lazy()
            .group_by(self.keys.clone())
            .agg(self.combines.clone())
            .collect()
            .map_err(polars_err("merging a partition's partial aggregates"))?;
        self.rows = merged.height();
        self.merged_rows = self.rows;
        self.parts.push(merged);
        Ok(())
    }

    /// The partition's partial; `None` when no batch came. When the partials did not reduce,
    /// they are only concatenated: a key may then appear in several rows, which the groupby's
    /// combine (run on every partial) merges.
    pub(crate) fn finish(mut self) -> Result<Option<PlFrame>> {
        if self.parts.len() > 1 {
            if self.reduces {
                self.merge()?;
            } else {
                let parts = std::mem::take(&mut self.parts);
                let schema = parts[0].schema().clone();
                return concat_frames(parts, &schema).map(Some);
            }
        }
        Ok(self.parts.pop())
    }
}

/// Reads partition `index` of `source` in batches and runs `steps` (see [`streamable`]) on
/// each; `None` when the source has no batches to offer (the caller reads it whole).
pub(crate) fn read_partial(
    source: &dyn Source,
    index: usize,
    pushdown: &Pushdown,
    steps: &[Step],
) -> Result<Option<PlFrame>> {
    let Some(Step::GroupAgg { keys, combines, .. }) = steps.last() else {
        return Ok(None);
    };
    let coded = coded_keys(source.schema(), pushdown, steps);
    if !coded.is_empty() {
        let mut merger = PartialMerger::new(keys.clone(), combines.clone());
        let dictionaries = source.read_batches_coded(index, pushdown, &coded, &mut |batch| {
            BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rows = batch.height();
            let partial = step::run_steps(batch, steps).map_err(polars_err("steps"))?;
            merger.push(partial, rows)
        })?;
        if let Some(dictionaries) = dictionaries {
            if let Some(mut partial) = merger.finish()? {
                for (name, values) in coded.iter().zip(&dictionaries) {
                    let strings =
                        decode_codes(partial.column(name).map_err(polars_err(name))?, values)?;
                    partial
                        .replace(name, strings)
                        .map_err(polars_err("decoding a coded key"))?;
                }
                return Ok(Some(partial));
            }
            return empty_partial(source, pushdown, steps).map(Some);
        }
    }
    let mut merger = PartialMerger::new(keys.clone(), combines.clone());
    let streamed = source.read_batches(index, pushdown, &mut |batch| {
        BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rows = batch.height();
        let partial = step::run_steps(batch, steps).map_err(polars_err("steps"))?;
        merger.push(partial, rows)
    })?;
    if !streamed {
        return Ok(None);
    }
    match merger.finish()? {
        Some(df) => Ok(Some(df)),
        None => empty_partial(source, pushdown, steps).map(Some),
    }
}

/// No rows at all: the chain over an empty frame gives the partial's schema.
fn empty_partial(source: &dyn Source, pushdown: &Pushdown, steps: &[Step]) -> Result<PlFrame> {
    let empty =
        PlFrame::empty_with_schema(&crate::source::projected_schema(source.schema(), pushdown));
    step::run_steps(empty, steps).map_err(polars_err("steps"))
}

/// The groupby keys that can be read as dictionary codes (see `readers/coded.rs`): string
/// columns of the source, grouped on as they are, that no step before the groupby reads, and
/// that no aggregation reads in a way that depends on their dtype. Checked by polars on
/// schemas: the chain must resolve the same with the key absent (before the groupby) and
/// with the key as `UInt32` (through the groupby).
pub(crate) fn coded_keys(input: &SchemaRef, pushdown: &Pushdown, steps: &[Step]) -> Vec<String> {
    let Some((Step::GroupAgg { keys, .. }, before)) = steps.split_last() else {
        return vec![];
    };
    let Ok(full) = step::output_schema(input, steps) else {
        return vec![];
    };
    let Ok(before_out) = step::output_schema(input, before) else {
        return vec![];
    };
    let mut coded = Vec::new();
    for k in keys {
        let Expr::Column(name) = k else { continue };
        if input.get(name) != Some(&DataType::String)
            || pushdown
                .columns
                .as_ref()
                .is_some_and(|c| !c.iter().any(|c| c == name.as_str()))
        {
            continue;
        }
        // Before the groupby the key only flows through.
        let mut without: Schema = (**input).clone();
        without.shift_remove(name);
        let mut expected: Schema = (*before_out).clone();
        expected.shift_remove(name);
        match step::output_schema(&Arc::new(without), before) {
            Ok(s) if *s == expected => {}
            _ => continue,
        }
        // Through the groupby, only the key's own dtype changes.
        let mut as_codes: Schema = (**input).clone();
        as_codes.with_column(name.clone(), DataType::UInt32);
        let mut want: Schema = (*full).clone();
        want.with_column(name.clone(), DataType::UInt32);
        match step::output_schema(&Arc::new(as_codes), steps) {
            Ok(s) if *s == want => coded.push(name.to_string()),
            _ => continue,
        }
    }
    coded
}

/// The strings of a coded key column.
fn decode_codes(codes: &Column, values: &[Option<String>]) -> Result<Column> {
    let codes = codes.u32().map_err(polars_err("decoding a coded key"))?;
    let strings = StringChunked::from_iter_options(
        codes.name().clone(),
        codes
            .iter()
            .map(|c| c.and_then(|c| values.get(c as usize).and_then(|v| v.as_deref()))),
    );
    Ok(strings.into_column())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn merging_batches_equals_aggregating_the_whole() {
        // Sum and count partials of three batches, merged, against one aggregation.
        let batches = [
            df!("k" => ["a", "b", "a"], "v" => [1i64, 2, 3]).unwrap(),
            df!("k" => ["b", "c"], "v" => [10i64, 20]).unwrap(),
            df!("k" => ["a"], "v" => [100i64]).unwrap(),
        ];
        let partial = |df: &PlFrame| {
            df.clone()
                .lazy()
                .group_by([col("k")])
                .agg([col("v").sum().alias("s"), col("v").count().alias("n")])
                .collect()
                .unwrap()
        };
        let mut m = PartialMerger::new(
            vec![col("k")],
            vec![col("s").sum().alias("s"), col("n").sum().alias("n")],
        );
        for b in &batches {
            // Claim large batches, so the partials count as reducing and are merged.
            m.push(partial(b), 100).unwrap();
        }
        let got = m
            .finish()
            .unwrap()
            .unwrap()
            .sort(["k"], Default::default())
            .unwrap();
        let all = concat_frames(batches.to_vec(), batches[0].schema()).unwrap();
        let want = partial(&all).sort(["k"], Default::default()).unwrap();
        assert!(got.equals(&want), "{got}\n{want}");
    }

    #[test]
    fn string_keys_that_only_flow_through_are_read_as_codes() {
        let input: SchemaRef = Arc::new(Schema::from_iter([
            ("k".into(), DataType::String),
            ("j".into(), DataType::String),
            ("n".into(), DataType::Int64),
            ("v".into(), DataType::Float64),
        ]));
        let all = Pushdown::default();
        let agg = |keys: &[&str], aggs: Vec<Expr>| Step::GroupAgg {
            keys: keys.iter().map(|k| col(*k)).collect(),
            aggs: aggs.clone(),
            fused: None,
            combines: aggs,
        };
        let sum_v = || vec![col("v").sum().alias("s")];
        // Both string keys, behind a filter and a with_columns that do not read them.
        let steps = [
            Step::Filter(col("v").gt(lit(0.0))),
            Step::WithColumns(vec![(col("v") * lit(2.0)).alias("w")]),
            agg(
                &["k", "j"],
                vec![col("w").sum().alias("s"), col("k").count().alias("c")],
            ),
        ];
        assert_eq!(coded_keys(&input, &all, &steps), ["k", "j"]);
        // An integer key is grouped as it is.
        assert!(coded_keys(&input, &all, &[agg(&["n"], sum_v())]).is_empty());
        // A filter on the key, a with_columns of it, an aggregation whose dtype follows it.
        let reads_key = [
            vec![Step::Filter(col("k").eq(lit("a"))), agg(&["k"], sum_v())],
            vec![
                Step::WithColumns(vec![col("k").cast(DataType::String).alias("k")]),
                agg(&["k"], sum_v()),
            ],
            vec![agg(&["k"], vec![col("k").first().alias("f")])],
            vec![agg(&["k"], vec![col("k").max().alias("m")])],
        ];
        for steps in reads_key {
            assert!(coded_keys(&input, &all, &steps).is_empty(), "{steps:?}");
        }
        // A key the reader does not read.
        let only_v = Pushdown {
            columns: Some(vec!["v".into()]),
            ..Default::default()
        };
        assert!(coded_keys(&input, &only_v, &[agg(&["k"], sum_v())]).is_empty());
    }

    #[test]
    fn codes_decode_to_their_strings_and_nulls() {
        let values = vec![Some("b".to_string()), None, Some("a".to_string())];
        let codes = UInt32Chunked::from_slice("k".into(), &[2, 0, 1, 2]).into_column();
        let got = decode_codes(&codes, &values).unwrap();
        let got: Vec<Option<&str>> = got.str().unwrap().iter().collect();
        assert_eq!(got, [Some("a"), Some("b"), None, Some("a")]);
    }

    #[test]
    fn only_row_wise_chains_ending_in_a_partial_stream() {
        let agg = Step::GroupAgg {
            keys: vec![col("k")],
            aggs: vec![col("v").sum()],
            fused: None,
            combines: vec![col("v").sum()],
        };
        assert!(streamable(&[
            Step::Filter(col("v").gt(lit(1))),
            agg.clone()
        ]));
        assert!(!streamable(&[Step::Head(3), agg.clone()]));
        assert!(!streamable(&[
            agg.clone(),
            Step::Filter(col("v").gt(lit(1)))
        ]));
        let Step::GroupAgg { keys, aggs, .. } = agg else {
            unreachable!()
        };
        assert!(!streamable(&[Step::GroupAgg {
            keys,
            aggs,
            fused: None,
            combines: vec![],
        }]));
    }
}
