//! What crosses the wire: the handshake, the control messages of each direction, and the
//! values they carry.
//!
//! Control messages are `postcard`-encoded enums; the values they carry ([`WireValue`]) travel
//! as raw frames after the header (see [`crate::codec`]), so a 256 MB array block is never
//! copied through the serializer. Nothing here knows about sockets or threads.
//!
//! The schema is written down in `docs/distributed.md`; changing any type here changes the
//! wire format and must bump [`PROTOCOL_VERSION`].

use std::sync::Arc;

use bytes::Bytes;
use rask_graph::Key;
use serde::{Deserialize, Serialize};

/// Bumped on every change of a message type in this module.
pub const PROTOCOL_VERSION: u16 = 1;

/// Identifies a build: two processes talk only when their fingerprints are equal, because a
/// task names its op and its values' types by strings that only mean the same thing in the
/// same build (the same-binary model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `rask-distributed`'s version.
    pub rask_version: String,
    /// The program's name (the executable's file name), for messages.
    pub program: String,
    /// A hash over every registered op name and value type tag in the process, and the
    /// protocol version.
    pub registry_hash: u64,
    /// How many op names were registered.
    pub n_ops: u32,
    /// How many value types were registered.
    pub n_value_types: u32,
}

impl Fingerprint {
    /// Why `theirs` cannot talk to `ours`, naming both sides; `None` when they match.
    pub fn mismatch(ours: &Fingerprint, theirs: &Fingerprint) -> Option<String> {
        if ours == theirs {
            return None;
        }
        Some(format!(
            "build mismatch: this side is {} (rask {}, {} ops, {} value types, registry {:016x}); \
             the other side is {} (rask {}, {} ops, {} value types, registry {:016x}). \
             Every scheduler, worker and client must run the same build",
            ours.program,
            ours.rask_version,
            ours.n_ops,
            ours.n_value_types,
            ours.registry_hash,
            theirs.program,
            theirs.rask_version,
            theirs.n_ops,
            theirs.n_value_types,
            theirs.registry_hash
        ))
    }
}

/// The first frame on every connection, from the side that connected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Hello {
    /// A client connecting to the scheduler.
    Client {
        version: u16,
        fingerprint: Fingerprint,
        name: String,
        token: Option<String>,
    },
    /// A worker joining the scheduler. `listen` is where its peers fetch data from it.
    Worker {
        version: u16,
        fingerprint: Fingerprint,
        name: String,
        token: Option<String>,
        listen: String,
        nthreads: u32,
        memory_limit: u64,
        pid: u32,
    },
    /// A worker or client connecting to a worker's data port.
    Peer {
        version: u16,
        fingerprint: Fingerprint,
        token: Option<String>,
    },
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Welcome {
    /// Accepted; `id` is the client's or worker's id at the scheduler (0 for peers).
    Accepted { id: u64 },
    /// Refused, and why (a version or build mismatch names both sides).
    Refused { reason: String },
}

/// A worker as the scheduler names it.
pub type WorkerId = u64;
/// A client as the scheduler names it.
pub type ClientId = u64;

/// An op in its portable form: the name it is registered under and its parameters
/// (`rask_graph::OpRegistry::encode`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOp {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub params: Vec<u8>,
}

/// A value in its portable form: a type tag (see `rask_graph::Value::encode`) and the bytes.
/// The bytes travel as a raw frame after the message header, not through postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireValue {
    pub type_tag: String,
    /// Sending side only: bytes that go before `data` (a large value's small spill head,
    /// when its body is sent straight from the value's memory). Decoding leaves it empty and
    /// puts every byte in `data`.
    #[serde(skip)]
    pub head: Bytes,
    /// Filled by the codec from the frame's payload section.
    #[serde(skip)]
    pub data: Bytes,
}

impl WireValue {
    pub fn new(type_tag: impl Into<String>, data: impl Into<Bytes>) -> Self {
        WireValue {
            type_tag: type_tag.into(),
            head: Bytes::new(),
            data: data.into(),
        }
    }

    /// A value sent as `head` then `body`, without joining them.
    pub fn split(type_tag: impl Into<String>, head: Bytes, body: Bytes) -> Self {
        WireValue {
            type_tag: type_tag.into(),
            head,
            data: body,
        }
    }

    /// Its bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// When a task runs relative to others: higher user priority first, then earlier
/// submissions, then the client's static order (rask_graph::order). Smaller sorts first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Priority {
    /// The negated user priority (`submit(..).priority(10)` becomes -10).
    pub user: i32,
    /// The scheduler's submission counter.
    pub generation: u64,
    /// The position in the client's static order.
    pub order: u32,
}

/// A task as a client submits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientTask {
    pub key: Key,
    pub op: Arc<WireOp>,
    /// The keys it reads, in argument order (repeats allowed).
    pub deps: Vec<Key>,
    /// Position in the client's static order of this submission.
    pub order: u32,
    /// The output size the client projects, when known (`Op::projected_nbytes`).
    pub projected_nbytes: Option<u64>,
}

/// How an error in a task reached the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The op returned an error.
    Failed,
    /// The op panicked (the worker caught it).
    Panicked,
    /// Workers kept dying while running it (Dask's `KilledWorker`), this many times; the
    /// message lists each death.
    KilledWorker { deaths: u32 },
    /// Its value was lost and cannot be recomputed (scattered data on a dead worker).
    Lost,
    /// It was cancelled, or the graph it belonged to was refused.
    Cancelled,
    /// A dependency erred; `message` names it.
    DependencyFailed,
}

/// An error as it crosses the wire: enough for the client to build a `RaskError` that names
/// the task, its op and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    pub key: String,
    pub op: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// How much memory a worker uses, by kind (Dask's "unmanaged memory" made explicit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    /// Bytes of values held in memory (their exact `nbytes`).
    pub managed: u64,
    /// Bytes of values spilled to disk.
    pub spilled: u64,
    /// The process's resident set size.
    pub process: u64,
    pub executing: u32,
    pub ready: u32,
    /// True while the worker has paused new work (memory above its pause threshold).
    pub paused: bool,
}

/// A worker's report for the dashboard: what happened since its previous one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Percent of one core since the previous report.
    pub cpu: f32,
    pub net_read_bps: f32,
    pub net_write_bps: f32,
    /// Task-stream records, oldest first.
    pub stream: Vec<StreamEvent>,
    /// Records left out (more than a report carries).
    pub stream_dropped: u64,
    /// New log lines.
    pub logs: Vec<String>,
}

/// One bar of the dashboard's task stream, as a worker records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    pub key: Key,
    pub kind: rask_dashboard::StreamKind,
    /// The executor thread (`0..nthreads`); transfers, spills and tasks run on the I/O
    /// thread use `nthreads`.
    pub lane: u32,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub stop_us: u64,
}

/// One worker as the scheduler sees it (what `Client::scheduler_info` returns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    pub id: WorkerId,
    pub name: String,
    /// Its data address.
    pub address: String,
    pub nthreads: u32,
    /// Bytes; 0 is no limit.
    pub memory_limit: u64,
    /// From its last heartbeat.
    pub metrics: WorkerMetrics,
    /// Tasks sent to it and not finished.
    pub processing: u32,
    /// Keys it holds.
    pub keys: u32,
}

/// Client to scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToScheduler {
    /// New tasks and the keys the client wants. Tasks whose key the cluster already has are
    /// ignored (keys are deterministic: the same key is the same value).
    UpdateGraph {
        tasks: Vec<ClientTask>,
        wants: Vec<Key>,
        /// User priority of this submission (higher runs first).
        priority: i32,
        /// How many times a task of this submission that returns an error is retried.
        retries: u32,
        /// Keys the client gives up immediately but which must still run
        /// (`fire_and_forget`): the scheduler holds them until they finish.
        fire_and_forget: bool,
    },
    /// The client no longer wants these keys (its last `Future` for each was dropped).
    Release { keys: Vec<Key> },
    /// Stop these keys (and everything only they need).
    Cancel { keys: Vec<Key> },
    /// Data the client places on the cluster; the scheduler forwards it to a worker.
    Scatter { values: Vec<(Key, WireValue)> },
    /// Where are these keys? Answered by `WhoHas`.
    WhoHas { keys: Vec<Key> },
    /// The client is leaving: release everything it wants.
    Close,
    /// Ask for the workers' summaries (answered with `ToClient::Info`).
    Info,
    /// Secrets ops of this client's graphs refer to (bucket credentials), sent before the
    /// graph that needs them; never part of a graph. Handled by the scheduler's driver,
    /// which keeps them in memory and hands them to every worker.
    Secrets {
        secrets: Vec<rask_graph::secrets::Secret>,
    },
}

/// Scheduler to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    /// A wanted key is in memory on some worker; small values come inline.
    KeyInMemory {
        key: Key,
        nbytes: u64,
        value: Option<WireValue>,
    },
    /// A wanted key failed.
    KeyErred { key: Key, error: RemoteError },
    /// A wanted key was cancelled.
    KeyCancelled { key: Key, reason: String },
    /// Where keys are: each key with the data addresses of the workers holding it (empty
    /// when nobody does right now).
    WhoHas { keys: Vec<(Key, Vec<String>)> },
    /// A submission was refused as a whole (an unknown dependency, say); nothing of it runs.
    GraphRefused { keys: Vec<Key>, reason: String },
    /// The answer to `ToScheduler::Info`.
    Info { workers: Vec<WorkerSummary> },
}

/// A dependency of a task, with where it can be fetched from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepLocation {
    pub key: Key,
    /// Data addresses of the workers holding it.
    pub who_has: Vec<String>,
    pub nbytes: u64,
}

/// Scheduler to worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run this task once its inputs are here (fetching those that are not).
    ComputeTask {
        key: Key,
        op: Arc<WireOp>,
        /// The task's distinct inputs.
        deps: Vec<DepLocation>,
        /// The argument list: indices into `deps` (a key may be read twice).
        args: Vec<u32>,
        priority: Priority,
        /// Send the value inline in `TaskFinished` (a client waits for it and it is small).
        inline_result: bool,
        projected_nbytes: Option<u64>,
        /// The scheduler's run number for this key, echoed in the answer: a finish or an
        /// error for an earlier attempt (the key was freed and sent again while the answer
        /// was in flight) is stale and ignored.
        attempt: u32,
    },
    /// Drop these keys (no longer needed anywhere, or a cancelled task).
    FreeKeys { keys: Vec<Key> },
    /// Give this task back if it has not started (work stealing as a handshake).
    StealRequest { key: Key },
    /// Hold these values (scatter).
    PutData { values: Vec<(Key, WireValue)> },
    /// Send these values to the scheduler inline (a client asked for keys whose values were
    /// not sent inline when they finished).
    SendInline { keys: Vec<Key> },
    /// Shut down.
    Close,
    /// Send (or stop sending) [`FromWorker::Observed`] with each heartbeat: a dashboard is
    /// watching. Handled by the worker's driver, not its state machine.
    Observe { task_stream: bool },
    /// Secrets for the ops it will run (see [`ToScheduler::Secrets`]); the worker's driver
    /// keeps them in this process.
    Secrets {
        secrets: Vec<rask_graph::secrets::Secret>,
    },
}

/// Worker to scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    TaskFinished {
        key: Key,
        nbytes: u64,
        type_tag: String,
        /// The value, when the scheduler asked for it inline and it is small.
        value: Option<WireValue>,
        /// The `attempt` of the `ComputeTask` this answers.
        attempt: u32,
        /// How long the op ran, in microseconds, when this answer follows a run here (not
        /// for a replica); the scheduler learns each op's typical duration from it.
        compute_us: Option<u32>,
    },
    TaskErred {
        key: Key,
        error: RemoteError,
        /// The `attempt` of the `ComputeTask` this answers.
        attempt: u32,
    },
    /// The worker now holds these keys (scatter, or replicas it fetched), with their sizes.
    AddKeys {
        keys: Vec<(Key, u64)>,
    },
    /// No peer the scheduler named had this key.
    MissingData {
        key: Key,
        errant_worker: String,
    },
    /// The answer to `StealRequest`: `true` when the task was given back (it had not started).
    StealResponse {
        key: Key,
        released: bool,
    },
    /// Values asked for with `SendInline`.
    InlineValues {
        values: Vec<(Key, WireValue)>,
    },
    Heartbeat {
        metrics: WorkerMetrics,
    },
    /// What a dashboard shows, sent with heartbeats while the scheduler asks for it
    /// ([`ToWorker::Observe`]). Read by the scheduler's driver, not its state machine.
    Observed(Box<Observation>),
    /// The worker is about to exit (a restart above its memory limit, say): the scheduler
    /// takes its tasks back now and names `reason` in what it tells about them.
    Closing {
        reason: String,
    },
}

/// Worker or client to a worker's data port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerRequest {
    GetData { keys: Vec<Key> },
}

/// A worker's answer on its data port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// The values it has; `missing` lists those it does not hold.
    Data {
        values: Vec<(Key, WireValue)>,
        missing: Vec<Key>,
    },
    /// Too many transfers in flight; ask again later.
    Busy,
}

/// A message that may carry values: the codec moves their bytes in and out of the frame's
/// payload section, in the order this visits them.
pub trait CarriesValues {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue));
}

fn each_pair(values: &mut [(Key, WireValue)], f: &mut dyn FnMut(&mut WireValue)) {
    for (_, v) in values {
        f(v);
    }
}

impl CarriesValues for Hello {
    fn for_each_value(&mut self, _f: &mut dyn FnMut(&mut WireValue)) {}
}

impl CarriesValues for Welcome {
    fn for_each_value(&mut self, _f: &mut dyn FnMut(&mut WireValue)) {}
}

impl CarriesValues for ToScheduler {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue)) {
        if let ToScheduler::Scatter { values } = self {
            each_pair(values, f);
        }
    }
}

impl CarriesValues for ToClient {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue)) {
        if let ToClient::KeyInMemory { value: Some(v), .. } = self {
            f(v);
        }
    }
}

impl CarriesValues for ToWorker {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue)) {
        if let ToWorker::PutData { values } = self {
            each_pair(values, f);
        }
    }
}

impl CarriesValues for FromWorker {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue)) {
        match self {
            FromWorker::TaskFinished { value: Some(v), .. } => f(v),
            FromWorker::InlineValues { values } => each_pair(values, f),
            _ => {}
        }
    }
}

impl CarriesValues for PeerRequest {
    fn for_each_value(&mut self, _f: &mut dyn FnMut(&mut WireValue)) {}
}

impl CarriesValues for PeerResponse {
    fn for_each_value(&mut self, f: &mut dyn FnMut(&mut WireValue)) {
        if let PeerResponse::Data { values, .. } = self {
            each_pair(values, f);
        }
    }
}
