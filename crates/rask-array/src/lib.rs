//! Chunked n-dimensional arrays on `ndarray`, lowered to rask task graphs.
//!
//! # The main types and how they relate
//!
//! - [`Array<T>`] is a lazy array cut into blocks ("chunks"); `T` is an [`Element`]
//!   (`f64`, `i64`, `bool`, ...), described at run time by a [`DType`]. Each block is an
//!   `ndarray::ArrayD<T>` produced by one task keyed `('name', i, j, ...)`.
//! - [`Chunks`] holds the block lengths along every axis, normalized from a [`ChunkSpec`]
//!   (one length, one per axis, explicit lists, or `"auto"` by target bytes). Shapes, chunks
//!   and dtypes are known before anything runs, so every task's output size is known too.
//! - Every operation adds one [`Layer`](rask_graph::Layer) with a task per output block whose
//!   op is a named, parameterized [`Op`](rask_graph::Op). `Array` implements
//!   [`Collection`](rask_graph::Collection): computing it (with `rask`'s `compute`) runs the
//!   graph and assembles the blocks into one `ArrayD<T>`.
//!
//! This crate never runs anything: it builds graphs. The `rask` crate runs them.
//!
//! # Example
//!
//! ```
//! use rask::prelude::*;
//! use rask::array;
//!
//! let x = array::linspace::<f64>(1.0, 10.0, 10, true, 3)?;
//! assert_eq!(x.shape(), &[10]);
//! assert_eq!(x.chunks().sizes(), &[vec![3, 3, 3, 1]]);
//! let values = x.compute()?;
//! assert_eq!(values[9], 10.0);
//! # Ok::<(), rask::RaskError>(())
//! ```

mod array;
mod chunks;
mod creation;
mod dtype;
mod elementwise;
pub mod random;
mod rechunk;

pub use array::{Array, block_value, input_block};
pub use chunks::{AUTO_CHUNK_BYTES, BlockIndices, ChunkSpec, Chunks};
pub use creation::{arange, eye, from_ndarray, from_task, full, linspace, ones, zeros};
pub use dtype::{DType, Element, FloatElement, NumElement};
pub use elementwise::{ArithOp, CmpOp, where_};
pub use rechunk::rechunk;
