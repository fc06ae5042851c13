//! The two sans-I/O state machines: [`ClusterState`] (the scheduler's) and [`WorkerState`]
//! (each worker's). Events in, messages and instructions out; no sockets, threads or clocks.

mod scheduler;
mod worker;

pub use scheduler::{ClusterState, Outgoing, SchedulerConfig, TaskStateKind, WorkerInfo};
pub use worker::{WorkerConfig, WorkerInstruction, WorkerState};
