//! Integration tests of rask-array: every operation against plain ndarray.

mod creation;
mod elementwise;
mod linalg;
mod object_store;
mod out_of_core;
mod random;
mod rechunk;
mod reduction;
mod shape;
mod slicing;
mod storage;
mod wire;
mod zarr;
