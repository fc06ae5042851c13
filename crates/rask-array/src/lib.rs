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
//! - Reductions (`sum`, `mean`, `var`, `argmax`, ... over [`Axes`] with [`ReduceOptions`])
//!   lower to a per-block partial, a tree of combines and a finalize step (see the
//!   `reduction` module); [`matmul`] / [`Array::dot`] multiply blocks and sum them with the
//!   same tree.
//!
//! - Operations: creation (`creation`), basic indexing with [`SliceArg`] and the [`s!`]
//!   macro (`slicing`: reads only the blocks it needs), shape operations (`shape`:
//!   transpose, squeeze, expand_dims, reshape, [`stack`], [`concatenate`], broadcast_to) and
//!   [`rechunk`] / [`rechunk_with`] (`rechunk`: optionally within a memory bound per task).
//!   Storage (`storage`): [`read_npy`] / [`to_npy`] and [`read_npy_stack`] /
//!   [`to_npy_stack`], and Zarr v3 with [`read_zarr`] / [`to_zarr`], read lazily, one task
//!   per block reading only its bytes, and write
//!   through a [`Store`] whose compute writes each block in its own task.
//!   Each module's docs describe its lowering and the memory each task holds.
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
mod linalg;
pub mod random;
mod rechunk;
mod reduction;
mod shape;
mod slicing;
mod storage;

pub use array::{Array, block_value, input_block};
pub use chunks::{AUTO_CHUNK_BYTES, BlockIndices, ChunkSpec, Chunks};
pub use creation::{
    arange, eye, from_block_ops, from_computed_blocks, from_ndarray, from_task, full, linspace,
    ones, zeros,
};
pub use dtype::{DType, Element, FloatElement, NumElement};
pub use elementwise::{ArithOp, CmpOp, where_};
pub use linalg::{MatmulElement, matmul};
pub use rechunk::{rechunk, rechunk_with};
pub use reduction::{ArgPartial, Axes, DEFAULT_SPLIT_EVERY, Moments, ReduceOptions, SumCount};
pub use shape::{concatenate, stack};
pub use slicing::{Slice, SliceArg, slice};
pub use storage::{
    Store, ZarrOptions, read_npy, read_npy_stack, read_zarr, to_npy, to_npy_stack, to_zarr,
    to_zarr_with,
};
