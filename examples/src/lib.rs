//! The Dask tutorial's workloads, written once and used three ways: by the runnable examples
//! in this folder (`cargo run -p rask-examples --example delayed_inc_add`), by `rask demo`,
//! and by the end-to-end tests in `tests/`.

pub mod array_tutorial;
pub mod bag_tutorial;
pub mod cluster_tutorial;
pub mod dataframe_tutorial;
pub mod datasets;
pub mod delayed_tutorial;
pub mod emergency_lab;
pub mod npy;
pub mod rng;
