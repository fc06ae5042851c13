//! Integration tests of rask-array: every operation against plain ndarray.

mod creation;
mod elementwise;
mod random;
