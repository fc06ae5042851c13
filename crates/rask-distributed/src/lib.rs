//! rask on a cluster: a scheduler process, worker processes and clients, talking over TLS
//! (plain TCP only when asked for with `--insecure`).
//!
//! # The main types and how they relate
//!
//! - [`protocol`] is what crosses the wire: the handshake ([`protocol::Hello`], carrying a
//!   [`protocol::Fingerprint`] of the build and its op and value registries), and one message
//!   enum per direction ([`protocol::ToScheduler`], [`protocol::ToClient`],
//!   [`protocol::ToWorker`], [`protocol::FromWorker`], and the data port's
//!   [`protocol::PeerRequest`]/[`protocol::PeerResponse`]). A task travels as
//!   `(op name, params, input keys)`; workers rebuild the op through
//!   `rask_graph::OpRegistry`. Values travel in their spill format with a type tag.
//! - [`codec`] turns a batch of messages into one frame (postcard header, values as raw
//!   parts after it) and back, refusing oversized, truncated or malformed frames.
//! - [`state`] holds the two sans-I/O state machines: [`state::ClusterState`] (the
//!   scheduler's: tasks merged by key from many clients, wants, who-has, placement, root
//!   queuing, work stealing, worker loss and recomputation) and [`state::WorkerState`] (a
//!   worker's: tasks waiting for inputs, fetches from peers, execution slots, memory
//!   thresholds). Events in, messages out; no sockets, threads or clocks inside.
//! - The drivers are thin tokio loops around them: [`scheduler::start`] /
//!   [`scheduler::serve`], [`worker::run_worker`], and the [`client::Client`] with its
//!   [`client::FutureHandle`]s.
//! - [`comm`] opens and accepts connections (TCP, then the TLS handshake, then the
//!   `Hello`); [`tls`] holds the cluster's credentials ([`tls::Credentials`], made fresh by
//!   default) and the rustls configurations built from them ([`tls::TlsContext`]), with
//!   mutual authentication. The scheduler file ([`scheduler::write_scheduler_file`], mode
//!   0600) carries address, token and credentials to workers and clients.
//! - [`local::LocalCluster`] starts a scheduler in this process and workers as child
//!   processes of the same binary (or of another one, such as the `rask` command).
//!
//! Typed futures (`Future<T>`, `submit`, `map`, `as_completed`) for `Delayed` values, arrays
//! and frames are in the `rask` facade's `rask::distributed` module.
//!
//! # Example: a scheduler, one worker thread and a client in one process
//!
//! ```
//! use std::sync::Arc;
//! use rask_distributed::{client, scheduler, worker};
//! use rask_graph::{Key, Literal, Op, OpRegistry, Value};
//!
//! // TLS with fresh credentials and a token is the default; workers and clients take them
//! // from the handle here (from the scheduler file across processes).
//! let sched = scheduler::start(Default::default())?;
//! let mut w = worker::WorkerOptions::new(sched.address());
//! w.tls = sched.tls();
//! w.token = sched.token().map(String::from);
//! std::thread::spawn(move || worker::run_worker(w));
//! let mut c = client::ClientOptions::new(sched.address());
//! c.tls = sched.tls();
//! c.token = sched.token().map(String::from);
//! let client = client::Client::connect(c)?;
//! // One literal task: its op crosses the wire by name and parameters.
//! let op: Arc<dyn Op> = Arc::new(Literal::new(Value::new(41i64)));
//! let (name, params) = OpRegistry::encode(&*op)?;
//! let key = Key::named("answer");
//! let task = rask_distributed::protocol::ClientTask {
//!     key: key.clone(),
//!     op: Arc::new(rask_distributed::protocol::WireOp { name, params }),
//!     deps: vec![],
//!     order: 0,
//!     projected_nbytes: Some(8),
//! };
//! let futures = client.submit(vec![task], &[key], Default::default())?;
//! let v = futures[0].result()?;
//! assert_eq!(*v.get::<i64>(&"answer")?, 41);
//! # Ok::<(), rask_error::RaskError>(())
//! ```

pub mod client;
pub mod codec;
pub mod comm;
pub mod local;
pub mod logs;
mod outbox;
pub mod protocol;
pub mod scheduler;
pub mod state;
pub mod tls;
pub mod worker;

pub use client::{Client, ClientOptions, FutureHandle, KeyStatus, SubmitOptions};
pub use local::{LocalCluster, LocalClusterOptions, WorkerProgram, run_worker_if_requested};
pub use protocol::{WorkerMetrics, WorkerSummary};
pub use scheduler::{SchedulerHandle, SchedulerOptions};
pub use worker::{WorkerOptions, run_worker};
