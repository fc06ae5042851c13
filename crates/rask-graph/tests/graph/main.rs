//! Integration tests of `rask-graph`, one binary with a module per area.
//!
//! Every test checks values against an independent oracle: a hand computation, a naive
//! evaluator of the task descriptions, or a re-derivation of the rule being tested.

mod collection;
mod common;
mod optimize;
mod order;
mod registry;
mod tokens;
mod validation;
mod values;
