//! Integration tests of the executors: every test checks values against a hand computation
//! or a naive evaluation, runs under the sync and threaded executors, and never relies on
//! timing for correctness (waits go through barriers, channels and gates with timeouts, and
//! every run is guarded so a hang fails the test instead of blocking it).
//!
//! The global interrupt flag is tested in its own binary (`tests/interrupt.rs`), so it cannot
//! cancel the runs here.

mod callbacks;
mod cancel;
mod common;
mod errors;
mod memory;
mod parallel;
mod release;
mod results;
mod spill;
mod state;
mod stress;
