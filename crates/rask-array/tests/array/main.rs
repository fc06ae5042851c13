//! Integration tests of rask-array: every operation against plain ndarray.

mod creation;
mod linalg;
mod rechunk;
mod reduction;
mod shape;
mod slicing;
