//! rask's scheduler: one state machine for every executor.
//!
//! # The main types and how they relate
//!
//! - [`SchedulerState`] is the policy, with no threads, clocks or I/O inside: given a
//!   [`Graph`](rask_graph::Graph), the requested outputs and each task's static priority, it
//!   answers "which task next?" ([`SchedulerState::pop_ready`]) and takes events
//!   ([`SchedulerState::task_finished`], [`SchedulerState::task_failed`],
//!   [`SchedulerState::cancel`]). It releases each value as soon as its last dependent has
//!   finished, tracks the bytes held (plus what running tasks are allocating) against a
//!   memory budget, holds back root tasks when the budget is spent, and when nothing else
//!   helps picks least-recently-used values to spill to disk. It is tested by driving it by
//!   hand.
//! - [`check_budget`] refuses, before anything runs, a graph with a task that cannot fit in
//!   the budget on its own.
//! - [`run`] drives that state machine with an [`Executor`]: [`Executor::Sync`] on the calling
//!   thread, [`Executor::Threaded`] on one thread per core. Both share one worker loop; a task
//!   that errors or panics becomes an error naming its key and op, the rest is cancelled, and
//!   every thread is joined before `run` returns.
//! - [`ComputeHandle`] runs the same in the background; dropping it cancels.
//! - [`Callback`]s observe task starts and finishes; [`ProgressBar`] is one. Each task also
//!   runs inside a `tracing` span named `task` with its key and op.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use rask_graph::{Graph, Literal, Op, TaskSpec, Value, order};
//! use rask_scheduler::{Executor, RunOptions, run};
//!
//! struct Double;
//! impl Op for Double {
//!     fn name(&self) -> &str { "double" }
//!     fn execute(&self, inputs: &[Value]) -> rask_error::Result<Value> {
//!         Ok(Value::new(2 * *inputs[0].get::<i64>(&"x")?))
//!     }
//! }
//! let graph = Graph::from_specs([
//!     TaskSpec::new("x".into(), Arc::new(Literal::new(Value::new(21i64))), vec![]),
//!     TaskSpec::new("y".into(), Arc::new(Double), vec!["x".into()]),
//! ])?;
//! let outputs = graph.ids_of(&["y".into()])?;
//! let out = run(Executor::Threaded, &graph, &outputs, order(&graph), &RunOptions::default())?;
//! assert_eq!(*out.values[0].get::<i64>(&"y")?, 42);
//! # Ok::<(), rask_error::RaskError>(())
//! ```

mod budget;
mod callbacks;
mod executor;
mod progress;
mod spill;
mod state;

pub use budget::{check_budget, human_bytes};
pub use callbacks::{Callback, CancelToken, clear_interrupt, interrupt};
pub use executor::{ComputeHandle, Executor, RunOptions, RunOutput, RunStats, run};
pub use progress::ProgressBar;
pub use state::{SchedulerState, Status, TaskState};
