//! rask-dataframe: partitioned DataFrames on polars (work in progress).

/// The polars version rask is built against, re-exported so users and the examples name the
/// exact same types.
pub use polars;
