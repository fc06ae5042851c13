//! rask-dataframe: partitioned DataFrames on polars, lowered to rask task graphs.
//!
//! - [`DataFrame`] is the handle: a schema known before anything runs, and partitions, each a
//!   polars `DataFrame` made by one task keyed `('name', i)`.
//! - Readers ([`read_csv`], [`read_parquet`], [`read_ndjson`]) are [`Source`]s: they list
//!   files through `rask-io` (local paths, `file://`, `s3://`, `http(s)://`, ...), read
//!   Parquet footers once, and read each partition with a [`Pushdown`] (columns, filters,
//!   row limit) worked out from the query.
//! - Per-partition operations (`select`, `filter`, `with_columns`, `cast`, ...) are
//!   [`Step`]s fused into the task that reads the partition; `explain()` shows the result.
//! - Operations across partitions that move rows ([`DataFrame::repartition`],
//!   [`DataFrame::shuffle`], [`DataFrame::drop_duplicates`], [`DataFrame::join`],
//!   [`DataFrame::sort`], [`DataFrame::set_index`]) are lazy stages of tasks too: broadcast or
//!   hash joins, and a sample-then-range-split sort (see the `shuffle` module).
//! - [`GroupBy`] lowers `groupby(keys).agg(...)` to a tree reduction: a partial aggregate per
//!   partition (fused into the read), combines of `split_every` partials, and a finalize.
//!   For simple single-key groupbys the Parquet and CSV readers compute the partial while
//!   reading, without building a frame (the [`fused`] module).
//!
//! The frame is a [`rask_graph::Collection`], so `rask::compute(&df)` (or `df.compute()`
//! with `rask::ComputeExt`) runs it and concatenates the partitions into one polars frame.
//!
//! ```
//! use rask_dataframe::{DataFrame, polars::prelude::*};
//! use rask::prelude::ComputeExt;
//!
//! let df = df!("origin" => ["SFO", "LAX", "SFO", "JFK"], "delay" => [10.0, 2.0, 20.0, 5.0])
//!     .unwrap();
//! let frame = DataFrame::from_polars_split(df, 2).unwrap();
//! let means = frame.groupby(["origin"]).col("delay").mean().unwrap();
//! let out = means.compute().unwrap().sort(["origin"], Default::default()).unwrap();
//! assert_eq!(out.column("delay").unwrap().f64().unwrap().get(2), Some(15.0));
//! ```

mod frame;
pub mod fused;
mod groupby;
mod ops;
mod readers;
mod shuffle;
mod source;
mod stats;
mod step;
mod stream;
mod wire;

pub use frame::DataFrame;
pub use groupby::{Agg, AggKind, GroupBy, GroupByColumn};
pub use ops::Scalar;
pub use readers::{CsvOptions, ParquetOptions, read_csv, read_ndjson, read_parquet};
pub use source::{Pushdown, Source};
pub use step::Step;
#[doc(hidden)]
pub use stream::streamed_batches;
pub use wire::Pieces;

/// The polars version rask is built against, re-exported so users and the examples name the
/// exact same types.
pub use polars;

use polars::prelude::{DataFrame as PlFrame, PolarsError};
use rask_error::{RaskError, Result};
use rask_graph::Value;

/// A partition as a task value: a polars frame that knows its size (for the memory budget)
/// and can be spilled to disk or sent to another process, as polars IPC (see the `wire`
/// module). `#[rask::delayed]` functions return it to feed [`DataFrame::from_delayed_parts`].
#[derive(Clone, Debug)]
pub struct Partition(pub PlFrame);

impl rask_graph::Data for Partition {
    fn nbytes(&self) -> usize {
        self.0.estimated_size()
    }

    fn spill(&self, w: &mut dyn std::io::Write) -> std::io::Result<bool> {
        wire::write_frame(&self.0, w)?;
        Ok(true)
    }

    fn unspill(r: &mut dyn std::io::Read) -> std::io::Result<Self> {
        wire::read_frame(r).map(Partition)
    }
}

/// A partition as a task value (sized for the memory budget, spillable).
pub(crate) fn frame_value(df: PlFrame) -> Value {
    Value::new(Partition(df))
}

pub(crate) fn get_frame(v: &Value) -> Result<&PlFrame> {
    v.downcast_ref::<Partition>().map(|p| &p.0).ok_or_else(|| {
        RaskError::msg(format!(
            "expected a DataFrame partition, found {}",
            v.type_name()
        ))
    })
}

/// Turns a polars error into a rask error with context.
pub(crate) fn polars_err(context: impl std::fmt::Display) -> impl FnOnce(PolarsError) -> RaskError {
    move |e| RaskError::external(e).context(context)
}
