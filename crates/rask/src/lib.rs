//! rask: Dask, done natively in Rust.
//!
//! Build lazy collections, and every operation becomes tasks in a graph; computing runs that
//! graph on one scheduler core, on one thread or on every core.
//!
//! # The main types and how they relate
//!
//! - [`Delayed<T>`] is a value a task will produce. `#[rask::delayed]` functions and
//!   [`delayed`] closures return one when called; arguments may be plain values or other
//!   `Delayed`s; `+ - * / %` combine them. [`value`] wraps a plain value, [`sum`] and
//!   [`tree_reduce`] combine many.
//! - Every collection implements [`Collection`](rask_graph::Collection): it adds its
//!   [`Layer`](rask_graph::Layer)s to a graph and turns its output values into a result.
//!   Tuples and `Vec`s of collections are collections, so computing several at once shares
//!   their intermediates.
//! - [`prelude::ComputeExt`] gives every collection `.compute()`, `.persist()` and
//!   `.visualize()`. Each compute builds a [`Plan`] (graph, optimizations, static order) and
//!   runs it with the executor chosen in the [`Config`].
//! - [`bag::Bag<T>`] is a partitioned sequence of arbitrary items (Dask's bag): text and
//!   JSON-lines readers, element-wise pipelines, tree reductions, a shuffle for groupby.
//! - The graph types live in [`rask_graph`], the scheduler core and executors in
//!   [`rask_scheduler`]; both are re-exported as [`graph`] and [`scheduler`].
//!
//! # Example: the Dask tutorial's first graph
//!
//! ```
//! use rask::prelude::*;
//!
//! #[rask::delayed(pure)]
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! #[rask::delayed(pure)]
//! fn add(x: i64, y: i64) -> i64 { x + y }
//!
//! let x = inc(1);
//! let y = inc(2);
//! let z = add(&x, &y);
//! assert_eq!(z.compute()?, 5);
//! // Several outputs at once, sharing `x` and `y`:
//! let (a, b) = (x.clone() * 10, z.clone()).compute()?;
//! assert_eq!((a, b), (20, 5));
//! # Ok::<(), rask::RaskError>(())
//! ```

mod compute;
mod delayed;
pub mod distributed;
mod visualize;

pub use compute::{
    Config, Persist, Plan, Progress, compute, compute_with, persist, persist_with, set_config,
};
pub use delayed::{
    CallWith, ClosureFn, Delayed, DelayedFn, IntoArg, TryDelayedFn, delayed, sum, tree_reduce,
    try_delayed, value,
};
pub use rask_error::{RaskError, Result, ResultExt};
pub use rask_graph::{Data, Key, Value};
pub use rask_macros::delayed;
pub use rask_scheduler::{CancelToken, Executor};
pub use visualize::{ColorBy, Visualization};

pub use rask_graph as graph;

/// Chunked arrays: [`rask_array`] plus [`array::from_delayed`].
pub mod array {
    pub use rask_array::*;

    use crate::{Delayed, Result};
    use ndarray::ArrayD;

    /// Computes an array into one in-memory `ndarray` (for small results): the same as
    /// `.compute()`.
    pub fn to_ndarray<T: Element>(a: &Array<T>) -> Result<ArrayD<T>> {
        crate::compute::compute(a)
    }

    impl<T: Element> crate::compute::Persist for Array<T> {
        fn with_values(&self, values: Vec<crate::Value>) -> Result<Self> {
            from_computed_blocks(self, values)
        }
        fn with_remote_ops(&self, ops: Vec<std::sync::Arc<dyn rask_graph::Op>>) -> Result<Self> {
            from_block_ops(self, ops)
        }
    }

    /// `.to_ndarray()` on arrays; in the prelude.
    pub trait ArrayExt<T: Element> {
        fn to_ndarray(&self) -> Result<ArrayD<T>>;
    }

    impl<T: Element> ArrayExt<T> for Array<T> {
        fn to_ndarray(&self) -> Result<ArrayD<T>> {
            to_ndarray(self)
        }
    }

    /// A one-block array from a `Delayed` producing an `ndarray` of the declared `shape`
    /// (Dask's `da.from_delayed`). A different shape or type at run time is an error naming
    /// the argument and the task.
    pub fn from_delayed<T: Element>(
        value: &Delayed<ArrayD<T>>,
        shape: &[usize],
    ) -> Result<Array<T>> {
        from_task(value.layer().clone(), value.key().clone(), shape)
    }
}
pub use rask_scheduler as scheduler;

/// The live dashboard: [`Config::with_dashboard`] for local computations,
/// `LocalClusterOptions::dashboard` for a cluster (see `docs/dashboard.md`).
pub use rask_dashboard as dashboard;

/// Deployment: SLURM jobs and Kubernetes manifests (see `docs/deploy.md`).
pub use rask_deploy as deploy;

/// Partitioned DataFrames: [`rask_dataframe`] plus [`dataframe::from_delayed`].
pub mod dataframe {
    pub use rask_dataframe::*;

    use crate::{Delayed, Result};

    /// A frame from delayed partitions, each a [`Partition`] with the declared `schema`
    /// (Dask's `dd.from_delayed(parts, meta=...)`). A partition with another schema is an
    /// error at run time naming it and its task.
    pub fn from_delayed(
        parts: &[Delayed<Partition>],
        schema: polars::prelude::Schema,
    ) -> Result<DataFrame> {
        DataFrame::from_delayed_parts(
            parts
                .iter()
                .map(|d| (d.layer().clone(), d.key().clone()))
                .collect(),
            schema,
        )
    }

    /// Persisting a frame keeps its partitions: here as literals, on a cluster as values
    /// held by the workers (every op of the frame's graph must then be portable).
    impl crate::compute::Persist for DataFrame {
        fn with_values(&self, values: Vec<crate::Value>) -> Result<Self> {
            self.with_partition_ops(crate::literal_ops(values))
        }
        fn with_remote_ops(&self, ops: Vec<std::sync::Arc<dyn rask_graph::Op>>) -> Result<Self> {
            self.with_partition_ops(ops)
        }
    }
}

/// Computed values as literal ops: how a persisted collection starts from its partitions.
fn literal_ops(values: Vec<Value>) -> Vec<std::sync::Arc<dyn rask_graph::Op>> {
    values
        .into_iter()
        .map(|v| {
            std::sync::Arc::new(rask_graph::Literal::new(v)) as std::sync::Arc<dyn rask_graph::Op>
        })
        .collect()
}

/// Bags, partitioned sequences of arbitrary items: [`rask_bag`] plus [`bag::from_delayed`].
pub mod bag {
    pub use rask_bag::*;

    use crate::{Delayed, Result};

    /// A bag from delayed partitions, each a `Vec<T>` (Dask's `db.from_delayed`).
    pub fn from_delayed<T: BagData + crate::Data>(parts: &[Delayed<Vec<T>>]) -> Result<Bag<T>> {
        Bag::from_parts(
            parts
                .iter()
                .map(|d| (d.layer().clone(), d.key().clone()))
                .collect(),
        )
    }

    /// Persisting a bag keeps its partitions as literals: later work on it starts from them.
    impl<T: BagData> crate::compute::Persist for Bag<T> {
        fn with_values(&self, values: Vec<crate::Value>) -> Result<Self> {
            self.with_partition_ops(crate::literal_ops(values))
        }
        fn with_remote_ops(&self, ops: Vec<std::sync::Arc<dyn rask_graph::Op>>) -> Result<Self> {
            self.with_partition_ops(ops)
        }
    }

    /// A bag reduction's result as a `Delayed`, to feed `#[delayed]` functions.
    pub fn item_to_delayed<R: BagData + crate::Data>(item: &Item<R>) -> Delayed<R> {
        Delayed::from_layer(item.layer().clone(), item.key().clone())
    }
}

/// What most programs need: `use rask::prelude::*;`.
pub mod prelude {
    pub use crate::array::{Array, ArrayExt};
    pub use crate::bag::Bag;
    pub use crate::compute::{ComputeExt, Persist};
    pub use crate::dataframe::DataFrame;
    pub use crate::{Config, Data, Delayed, Executor, RaskError, compute, delayed, value};
}

#[doc(hidden)]
pub mod __private {
    //! What `#[rask::delayed]`'s expansion names: the call builder, and the registrations
    //! that make each function portable (its op decoder, its value types).
    pub use crate::delayed::{Arg, Call, Func, decode_call};
    use crate::{RaskError, Result, Value};
    pub use rask_graph::__private::inventory;
    pub use rask_graph::{
        Op, OpRegistration, OpRegistry, ValueRegistration, register_op, register_value,
    };

    /// Clones argument `name` out of its value (moved out would need ownership of the Arc).
    pub fn arg_owned<T: crate::Data>(v: &Value, name: &str) -> Result<T> {
        v.get::<T>(&format_args!("argument `{name}`")).cloned()
    }

    pub fn arg_ref<'a, T: 'static>(v: &'a Value, name: &str) -> Result<&'a T> {
        v.get::<T>(&format_args!("argument `{name}`"))
    }

    pub fn external(e: impl Into<rask_error::BoxError>) -> RaskError {
        RaskError::external(e)
    }
}
