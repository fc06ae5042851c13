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

use polars::prelude::{DataFrame as PlFrame, Expr, IntoLazy};
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
        // No rows at all: the chain over an empty frame gives the partial's schema.
        None => {
            let empty = PlFrame::empty_with_schema(&crate::source::projected_schema(
                source.schema(),
                pushdown,
            ));
            step::run_steps(empty, steps)
                .map(Some)
                .map_err(polars_err("steps"))
        }
    }
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
