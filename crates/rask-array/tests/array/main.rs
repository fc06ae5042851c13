//! Integration tests of rask-array: every operation against plain ndarray.

mod creation;
mod rechunk;
mod shape;
mod slicing;
