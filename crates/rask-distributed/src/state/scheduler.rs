//! `ClusterState`: the scheduler's state machine, sans I/O.
//!
//! The drivers feed it events (a worker joined or left, a client message, a worker message, a
//! periodic balancing tick) and drain the messages it wants sent. It holds no sockets, threads
//! or clocks, so every decision is reproducible and tested by hand.
//!
//! # Why it is shaped like this
//!
//! Unlike the local one-shot scheduler, this state lives as long as the cluster: graphs from
//! many submissions and clients are merged by [`Key`] (keys are deterministic, so an existing
//! key *is* the value being asked for and a resubmission is ignored). Keys are interned into
//! dense `u32` ids in a slab so that per-task state stays a few hundred bytes even for millions
//! of tasks, and every walk over a graph (activation, release, error propagation) is iterative:
//! a chain of a million tasks must not overflow the stack.
//!
//! # Task states (Dask's names)
//!
//! - `Released`: known, no value anywhere, nobody working on it. A task stays known in this
//!   state while a dependent exists, because if that dependent's value is lost it must be
//!   recomputed from its inputs. It is *forgotten* (removed) once nothing needs it and no
//!   dependent is left.
//! - `Waiting`: needed, but some inputs are not in memory yet (`waiting_on` counts them). An
//!   internal sub-state, *no-worker*, is a ready task no worker can take (none joined, or all
//!   paused): it is reported as `Waiting` and placed when a worker becomes available, so
//!   losing every worker is a pause, not an error.
//! - `Queued`: a ready root task (no inputs) held on the scheduler. Sending every root to the
//!   workers at once is what makes Dask's memory blow up (root-task overproduction): roots are
//!   released to a worker only while it has free slots (`worker_saturation`) and its managed
//!   plus projected bytes stay under 80% of its memory limit. Roots of an op whose tasks
//!   typically run under a millisecond (learned from the workers' reported run times) get
//!   extra slots, enough to keep about 2 ms of them queued per thread: otherwise each such
//!   task would cost a whole scheduler round trip and the cluster would idle between them.
//! - `Processing`: sent to one worker. Non-root tasks go to their best worker at once and queue
//!   there (the worker orders its own queue by priority); work stealing moves them later.
//! - `Memory`: at least one live worker holds the value (`who_has`).
//! - `Erred`: the task failed, or a worker died under it too often, or an input failed.
//!
//! A task is *needed* while a client wants it, the scheduler holds it for `fire_and_forget`,
//! or an unfinished dependent (`waiters`) reads it. Only needed tasks are active (waiting,
//! queued, processing); a value is dropped from the workers (`FreeKeys`) as soon as it is not
//! needed, which frees intermediates right after their last reader, as the local scheduler does.
//!
//! # Failure
//!
//! Losing a worker sends its processing tasks back to waiting (each one's *suspicion* count
//! grows; at `allowed_failures` it errs with `KilledWorker` naming every worker and how it
//! died) and recomputes the keys whose only copy it held, recursively through released inputs.
//! Dependents that were already sent to a worker and now miss an input are taken back
//! (`FreeKeys`) and re-sent when the input is back: the worker cannot be told "wait longer", and
//! taking them back is what keeps a task from running against an input that no longer exists.
//! Scattered keys have no op: losing their last copy is an error (`Lost`).
//!
//! Work stealing is a handshake: the task moves only when the victim confirms it had not
//! started, so stealing never runs a task twice. At most one steal is outstanding per task,
//! and its answer is matched to it even if the task left the victim in between.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rask_graph::Key;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::protocol::{
    ClientId, DepLocation, ErrorKind, FromWorker, Priority, RemoteError, ToClient, ToScheduler,
    ToWorker, WireOp, WireValue, WorkerId, WorkerMetrics, WorkerSummary,
};

/// What the scheduler sends, and to whom.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    Worker(WorkerId, ToWorker),
    Client(ClientId, ToClient),
}

/// Policy knobs, with Dask's defaults.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// A task whose worker died this many times while running it fails (Dask's
    /// `allowed-failures`).
    pub allowed_failures: u32,
    /// Root tasks are released to a worker while it runs fewer than
    /// `ceil(nthreads * worker_saturation)` tasks (Dask's `worker-saturation`). Infinite
    /// disables queuing: roots are then placed like every other task.
    pub worker_saturation: f64,
    /// Values up to this size are sent inline to the clients waiting for them.
    pub inline_limit: u64,
    /// Assumed network bandwidth in bytes/s, for the transfer cost of placement.
    pub bandwidth: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            allowed_failures: 3,
            worker_saturation: 1.1,
            inline_limit: 64 * 1024,
            bandwidth: 1e9,
        }
    }
}

/// What the scheduler knows of a worker when it joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub name: String,
    /// Its data address (where peers and clients fetch values).
    pub address: String,
    pub nthreads: u32,
    pub memory_limit: u64,
}

/// A task's state at the scheduler (Dask's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStateKind {
    Waiting,
    Queued,
    Processing,
    Memory,
    Erred,
    Released,
    /// Never reported by [`ClusterState::task_state`] (a forgotten key is unknown: `None`);
    /// kept for the drivers' and the dashboard's vocabulary.
    Forgotten,
}

/// The duration assumed for a task when nothing better is known (Dask uses 0.5 s for unknown
/// task groups; rask's tasks are mostly small, and only the relative order matters here).
const DEFAULT_TASK_SECONDS: f64 = 0.001;
/// Roots are not admitted to a worker whose managed plus projected bytes would exceed this
/// fraction of its memory limit (Dask's pause threshold).
const ADMIT_MEMORY_FRACTION: f64 = 0.8;

/// Root tasks of an op that typically runs for less than this (microseconds) are short
/// enough that the round trip to refill a worker's slot would dominate: such a worker gets
/// extra slots.
const SHORT_TASK_US: f64 = 1000.0;
/// The extra slots keep about this much work (microseconds) queued per thread, which covers
/// a refill round trip with room to spare...
const QUEUED_WORK_US: f64 = 2000.0;
/// ...but never more than this many extra roots per thread.
const MAX_EXTRA_SLOTS_PER_THREAD: f64 = 64.0;

/// The internal state; `Processing` and `Scattering` carry the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Released,
    Waiting,
    /// Ready, but no worker can take it now (reported as `Waiting`).
    NoWorker,
    Queued,
    Processing(WorkerId),
    Memory,
    Erred,
    /// Scattered data sent to a worker (`PutData`), not confirmed by `AddKeys` yet (reported as
    /// `Waiting`).
    Scattering(WorkerId),
}

impl State {
    /// Active tasks are being worked towards; each one counts as a waiter on its inputs.
    fn is_active(self) -> bool {
        matches!(
            self,
            State::Waiting
                | State::NoWorker
                | State::Queued
                | State::Processing(_)
                | State::Scattering(_)
        )
    }

    /// The dashboard's state, by [`rask_dashboard::TaskPhase::index`].
    fn phase(self) -> usize {
        use rask_dashboard::TaskPhase as P;
        match self {
            State::Released => P::Released,
            State::Waiting | State::NoWorker | State::Scattering(_) => P::Waiting,
            State::Queued => P::Queued,
            State::Processing(_) => P::Processing,
            State::Memory => P::Memory,
            State::Erred => P::Erred,
        }
        .index()
    }

    fn kind(self) -> TaskStateKind {
        match self {
            State::Released => TaskStateKind::Released,
            State::Waiting | State::NoWorker | State::Scattering(_) => TaskStateKind::Waiting,
            State::Queued => TaskStateKind::Queued,
            State::Processing(_) => TaskStateKind::Processing,
            State::Memory => TaskStateKind::Memory,
            State::Erred => TaskStateKind::Erred,
        }
    }
}

/// The scheduler holds this key for `fire_and_forget` until it is in memory or erred.
const F_FIRE_AND_FORGET: u8 = 1;
/// Added by the `update_graph` in progress (cleared before it returns).
const F_NEW: u8 = 2;

/// A task's projected size, if known, in 8 bytes (an `Option<u64>` takes 16): `u64::MAX`
/// stands for "unknown", and a projection of exactly that is taken as one byte less.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Projection(u64);

impl Projection {
    fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }
}

impl From<Option<u64>> for Projection {
    fn from(p: Option<u64>) -> Self {
        Projection(p.map_or(u64::MAX, |b| b.min(u64::MAX - 1)))
    }
}

/// One task. Kept small: rare data (errors, death history, retries, steals) lives in side
/// maps keyed by task id.
struct Task {
    key: Key,
    /// `None` for scattered data, which cannot be recomputed.
    op: Option<Arc<WireOp>>,
    /// Distinct inputs, in first-use order.
    deps: SmallVec<[u32; 2]>,
    /// Argument list as indices into `deps`, only when it is not `0..deps.len()`.
    args: Option<Box<[u32]>>,
    dependents: SmallVec<[u32; 2]>,
    who_has: SmallVec<[WorkerId; 1]>,
    priority: Priority,
    /// The value's size once known (in memory), else the projection or 0.
    nbytes: u64,
    projected: Projection,
    state: State,
    /// Active tasks: inputs not in memory.
    waiting_on: u32,
    /// Active dependents (they still read this task's value).
    waiters: u32,
    /// Clients wanting it.
    n_wants: u32,
    /// How many workers died while running it.
    /// u16 (saturating) rather than u32: with `prefix` and `flags` it fits the padding the
    /// other u32 counters leave, which keeps a task within the 500-bytes budget.
    suspicious: u16,
    /// Set from `ClusterState::last_attempt` each time the task is sent to a worker; answers
    /// carry it back, so a stale answer from an earlier run is told apart from the current
    /// one.
    attempt: u32,
    /// Its key's prefix, an index into `ClusterState::prefixes` (set by `alloc`).
    prefix: u32,
    flags: u8,
}

impl Task {
    fn needed(&self) -> bool {
        self.n_wants > 0 || self.waiters > 0 || self.flags & F_FIRE_AND_FORGET != 0
    }

    fn is_root(&self) -> bool {
        self.deps.is_empty()
    }

    fn op_name(&self) -> &str {
        self.op.as_deref().map_or("scatter", |o| o.name.as_str())
    }
}

struct Worker {
    info: WorkerInfo,
    processing: FxHashSet<u32>,
    /// Confirmed replicas.
    has: FxHashSet<u32>,
    /// Scattered keys sent with `PutData`, not confirmed yet.
    scattering: FxHashSet<u32>,
    /// Bytes of the values it holds (`has`).
    managed: u64,
    /// Projected bytes of what it processes or is being scattered to it.
    projected: u64,
    /// From heartbeats: a paused worker takes no new work.
    paused: bool,
    /// Its last heartbeat's numbers.
    metrics: WorkerMetrics,
    /// Steal requests in flight that chose this worker as thief.
    incoming_steals: u32,
}

impl Worker {
    fn eligible(&self) -> bool {
        !self.paused
    }
}

/// What a client has been told about a key it wants, so that it gets one terminal message
/// per want (a lost key recomputed later does not tell it again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Told {
    Nothing,
    InMemory,
    /// Erred or cancelled: nothing more will come.
    Final,
}

#[derive(Default)]
struct Client {
    wants: FxHashMap<u32, Told>,
}

struct Steal {
    victim: WorkerId,
    thief: WorkerId,
    /// False once the task left the victim for another reason: the answer then refers to an
    /// instance that no longer exists and must not move anything.
    valid: bool,
}

/// The dashboard's counters for one key prefix, kept as tasks move (a few additions per
/// transition), so that a snapshot never walks the tasks.
#[derive(Clone, Debug, Default)]
struct PrefixStats {
    name: Arc<str>,
    /// Tasks per state, by [`rask_dashboard::TaskPhase::index`].
    counts: [u64; 6],
    forgotten: u64,
    /// Bytes and keys of its values held somewhere (one copy counted per key).
    nbytes: u64,
    keys: u64,
}

/// The scheduler's state machine. See the module docs.
pub struct ClusterState {
    config: SchedulerConfig,
    tasks: Vec<Option<Task>>,
    free_ids: Vec<u32>,
    index: FxHashMap<Key, u32>,
    workers: BTreeMap<WorkerId, Worker>,
    clients: BTreeMap<ClientId, Client>,
    /// Ready root tasks held on the scheduler, best first.
    queue: BTreeSet<(Priority, u32)>,
    /// Ready tasks no worker can take now.
    no_worker: BTreeSet<(Priority, u32)>,
    errors: FxHashMap<u32, RemoteError>,
    /// The last attempt number handed out. One counter for all tasks (not one per task), so
    /// a key forgotten and submitted again never reuses an attempt still in flight. It
    /// wraps after 2^32 dispatches, far beyond any message's time in flight.
    last_attempt: u32,
    /// Typical run time (microseconds) of each op, by name: a moving average of what the
    /// workers report (Dask's task-prefix durations).
    op_durations: FxHashMap<String, f64>,
    /// Per task, each worker death while it ran it: "name at address: cause".
    deaths: FxHashMap<u32, Vec<String>>,
    retries: FxHashMap<u32, u32>,
    /// Outstanding steal requests, by key: the answer is matched to the request by key, so a
    /// record outlives its task being forgotten or re-sent, and a second request for the same
    /// key waits until the first is answered (else an old answer could move a new instance).
    steals: FxHashMap<Key, Steal>,
    /// Scattered values waiting for a worker to join.
    pending_scatter: FxHashMap<u32, WireValue>,
    generation: u64,
    out: Vec<Outgoing>,
    /// `FreeKeys` batched per worker; flushed before any other message to that worker so
    /// that "free K, compute K" keeps its order.
    pending_frees: BTreeMap<WorkerId, Vec<Key>>,
    /// Tasks whose need may have dropped; checked by `settle`.
    release_checks: Vec<u32>,
    /// Tasks that became ready; placed by `settle`.
    ready: Vec<u32>,
    prefixes: Vec<PrefixStats>,
    prefix_index: FxHashMap<Arc<str>, u32>,
    /// Prefix pairs `(input, reader)` seen in submitted graphs: the grouped graph view.
    prefix_edges: FxHashSet<(u32, u32)>,
}

impl ClusterState {
    pub fn new(config: SchedulerConfig) -> Self {
        ClusterState {
            config,
            last_attempt: 0,
            op_durations: FxHashMap::default(),
            tasks: Vec::new(),
            free_ids: Vec::new(),
            index: FxHashMap::default(),
            workers: BTreeMap::new(),
            clients: BTreeMap::new(),
            queue: BTreeSet::new(),
            no_worker: BTreeSet::new(),
            errors: FxHashMap::default(),
            deaths: FxHashMap::default(),
            retries: FxHashMap::default(),
            steals: FxHashMap::default(),
            pending_scatter: FxHashMap::default(),
            generation: 0,
            out: Vec::new(),
            pending_frees: BTreeMap::new(),
            release_checks: Vec::new(),
            ready: Vec::new(),
            prefixes: Vec::new(),
            prefix_index: FxHashMap::default(),
            prefix_edges: FxHashSet::default(),
        }
    }

    // ----- events -------------------------------------------------------------------------

    pub fn add_worker(&mut self, id: WorkerId, info: WorkerInfo) {
        if self.workers.contains_key(&id) {
            return;
        }
        self.workers.insert(
            id,
            Worker {
                info,
                processing: FxHashSet::default(),
                has: FxHashSet::default(),
                scattering: FxHashSet::default(),
                managed: 0,
                projected: 0,
                paused: false,
                metrics: WorkerMetrics::default(),
                incoming_steals: 0,
            },
        );
        self.retry_no_worker();
        self.settle();
    }

    /// The worker is gone (connection closed, heartbeat timeout, killed). `cause` is a human
    /// sentence ("connection closed", "no heartbeat for 10 s", "killed by signal 9") that ends
    /// up in KilledWorker errors.
    pub fn remove_worker(&mut self, id: WorkerId, cause: &str) {
        let Some(ws) = self.workers.remove(&id) else {
            return;
        };
        self.pending_frees.remove(&id);
        let who = format!(
            "worker '{}' at {}: {}",
            ws.info.name, ws.info.address, cause
        );

        // Steals: no answer will come from a dead victim; a dead thief is replaced when the
        // answer comes.
        let dead_steals: Vec<Key> = self
            .steals
            .iter()
            .filter(|(_, s)| s.victim == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead_steals {
            let s = self.steals.remove(&k).expect("listed");
            if let Some(th) = self.workers.get_mut(&s.thief) {
                th.incoming_steals -= 1;
            }
        }

        // Tasks it was running go back to waiting, suspected of killing it.
        let mut processing: Vec<u32> = ws.processing.iter().copied().collect();
        processing.sort_unstable();
        let mut killed = Vec::new();
        let mut requeue = Vec::new();
        for &t in &processing {
            let task = self.task_mut(t);
            task.suspicious = task.suspicious.saturating_add(1);
            let k = task.suspicious as u32;
            self.deaths.entry(t).or_default().push(who.clone());
            self.set_state(t, State::Waiting);
            self.task_mut(t).waiting_on = 0;
            if k >= self.config.allowed_failures {
                killed.push(t);
            } else {
                requeue.push(t);
            }
        }

        // Scattered data not confirmed yet is lost with it.
        let mut scattering: Vec<u32> = ws.scattering.iter().copied().collect();
        scattering.sort_unstable();
        let mut lost = Vec::new();
        for t in scattering {
            self.set_state(t, State::Released);
            lost.push(t);
        }

        // Replicas.
        let mut held: Vec<u32> = ws.has.iter().copied().collect();
        held.sort_unstable();
        for t in held {
            let task = self.task_mut(t);
            let had = !task.who_has.is_empty();
            task.who_has.retain(|w| *w != id);
            let gone = had && task.who_has.is_empty();
            if gone {
                self.no_replica_left(t);
            }
            let task = self.task(t);
            if task.who_has.is_empty() && task.state == State::Memory {
                self.mark_lost(t);
                lost.push(t);
            }
        }
        for t in lost {
            self.recover(t);
        }

        for t in killed {
            if !self.task(t).state.is_active() {
                continue; // erred meanwhile, through a lost input
            }
            let task = self.task(t);
            let history = self
                .deaths
                .get(&t)
                .map(|d| d.join("; "))
                .unwrap_or_default();
            let error = RemoteError {
                key: task.key.to_string(),
                op: task.op_name().to_string(),
                kind: ErrorKind::KilledWorker {
                    deaths: task.suspicious as u32,
                },
                message: format!(
                    "allowed failures: {}; {}",
                    self.config.allowed_failures, history
                ),
            };
            self.err(t, error);
        }
        for t in requeue {
            let task = self.task(t);
            if task.state == State::Waiting && task.waiting_on == 0 {
                self.ready.push(t);
            }
        }
        self.settle();
    }

    pub fn add_client(&mut self, id: ClientId) {
        self.clients.entry(id).or_default();
    }

    /// The client disconnected: release everything it wanted.
    pub fn remove_client(&mut self, id: ClientId) {
        if let Some(c) = self.clients.remove(&id) {
            let mut ts: Vec<u32> = c.wants.into_keys().collect();
            ts.sort_unstable();
            for t in ts {
                self.task_mut(t).n_wants -= 1;
                self.release_checks.push(t);
            }
        }
        self.settle();
    }

    pub fn handle_client(&mut self, id: ClientId, msg: ToScheduler) {
        self.clients.entry(id).or_default();
        match msg {
            ToScheduler::UpdateGraph {
                tasks,
                wants,
                priority,
                retries,
                fire_and_forget,
            } => self.update_graph(id, tasks, wants, priority, retries, fire_and_forget),
            ToScheduler::Release { keys } => {
                for k in &keys {
                    if let Some(t) = self.lookup(k) {
                        self.drop_want(id, t);
                    }
                }
            }
            ToScheduler::Cancel { keys } => self.cancel(id, &keys),
            ToScheduler::Scatter { values } => self.scatter(id, values),
            ToScheduler::WhoHas { keys } => {
                let keys = keys
                    .into_iter()
                    .map(|k| {
                        let addrs = match self.lookup(&k) {
                            Some(t) => self.addresses(t),
                            None => Vec::new(),
                        };
                        (k, addrs)
                    })
                    .collect();
                self.out
                    .push(Outgoing::Client(id, ToClient::WhoHas { keys }));
            }
            ToScheduler::Close => {
                self.remove_client(id);
                return;
            }
            ToScheduler::Info => {
                let workers = self.worker_summaries();
                self.out
                    .push(Outgoing::Client(id, ToClient::Info { workers }));
            }
            // The driver keeps and forwards secrets; they never enter the graph state.
            ToScheduler::Secrets { .. } => {}
        }
        self.settle();
    }

    pub fn handle_worker(&mut self, id: WorkerId, msg: FromWorker) {
        if !self.workers.contains_key(&id) {
            // A message that raced the worker's removal: it is gone, so is what it says.
            return;
        }
        match msg {
            FromWorker::TaskFinished {
                key,
                nbytes,
                value,
                attempt,
                compute_us,
                ..
            } => {
                if let Some(us) = compute_us {
                    self.learn_duration(&key, us);
                }
                self.task_finished(id, &key, nbytes, value, attempt)
            }
            FromWorker::TaskErred {
                key,
                error,
                attempt,
            } => self.task_erred(id, &key, error, attempt),
            FromWorker::AddKeys { keys } => {
                for (k, nbytes) in keys {
                    self.add_keys(id, &k, nbytes);
                }
            }
            FromWorker::MissingData { key, errant_worker } => {
                self.missing_data(id, &key, &errant_worker)
            }
            FromWorker::StealResponse { key, released } => self.steal_response(id, &key, released),
            // The scheduler never asks for inline values (a client wanting a key already in
            // memory fetches it from a worker itself), so there is nobody to forward them to.
            FromWorker::InlineValues { .. } => {}
            // For the dashboard: the driver reads it.
            FromWorker::Observed(_) => {}
            FromWorker::Closing { reason } => {
                self.remove_worker(id, &reason);
                return;
            }
            FromWorker::Heartbeat { metrics } => {
                let ws = self.workers.get_mut(&id).expect("checked above");
                let was = ws.paused;
                ws.paused = metrics.paused;
                ws.metrics = metrics;
                if was && !metrics.paused {
                    self.retry_no_worker();
                }
            }
        }
        self.settle();
    }

    /// A periodic work-stealing pass (the driver calls it every ~100 ms): sends StealRequest
    /// for queued-on-worker tasks of saturated workers when another worker is idle.
    pub fn balance(&mut self) {
        let mut thieves: Vec<(WorkerId, u32)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.eligible())
            .filter_map(|(&id, w)| {
                let busy = w.processing.len() as u32 + w.incoming_steals;
                (busy < w.info.nthreads).then(|| (id, w.info.nthreads - busy))
            })
            .collect();
        if thieves.is_empty() {
            return;
        }
        let mut victims: Vec<(WorkerId, f64)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.processing.len() as u64 > 2 * w.info.nthreads as u64)
            .map(|(&id, w)| {
                (
                    id,
                    w.processing.len() as f64 / w.info.nthreads.max(1) as f64,
                )
            })
            .collect();
        victims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (v, _) in victims {
            let ws = &self.workers[&v];
            // Tasks beyond one per thread are queued on the victim: those can move. Least
            // urgent first, so the victim keeps what it would run next.
            let movable = ws
                .processing
                .len()
                .saturating_sub(ws.info.nthreads as usize);
            let mut cands: Vec<(Priority, u32)> = ws
                .processing
                .iter()
                .filter(|&&t| {
                    let task = self.task(t);
                    !task.is_root() && !self.steals.contains_key(&task.key)
                })
                .map(|&t| (self.task(t).priority, t))
                .collect();
            cands.sort_unstable_by(|a, b| b.cmp(a));
            for (_, t) in cands.into_iter().take(movable) {
                let Some(slot) = thieves
                    .iter_mut()
                    .filter(|(_, d)| *d > 0)
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                else {
                    break;
                };
                slot.1 -= 1;
                let thief = slot.0;
                let key = self.task(t).key.clone();
                self.steals.insert(
                    key.clone(),
                    Steal {
                        victim: v,
                        thief,
                        valid: true,
                    },
                );
                self.workers.get_mut(&thief).expect("live").incoming_steals += 1;
                self.send_to_worker(v, ToWorker::StealRequest { key });
            }
            thieves.retain(|(_, d)| *d > 0);
            if thieves.is_empty() {
                break;
            }
        }
        self.settle();
    }

    /// Messages produced since the last drain, in order.
    pub fn drain(&mut self) -> Vec<Outgoing> {
        self.flush_frees();
        std::mem::take(&mut self.out)
    }

    // ----- inspection ---------------------------------------------------------------------

    pub fn n_tasks(&self) -> usize {
        self.index.len()
    }

    /// Tasks not finished yet: waiting, queued or processing (what an adaptive deployment
    /// scales on). O(task prefixes).
    pub fn n_unfinished(&self) -> usize {
        use rask_dashboard::TaskPhase as P;
        self.prefixes
            .iter()
            .map(|p| {
                p.counts[P::Waiting.index()]
                    + p.counts[P::Queued.index()]
                    + p.counts[P::Processing.index()]
            })
            .sum::<u64>() as usize
    }

    pub fn task_state(&self, key: &Key) -> Option<TaskStateKind> {
        self.lookup(key).map(|t| self.task(t).state.kind())
    }

    pub fn who_has(&self, key: &Key) -> Vec<WorkerId> {
        self.lookup(key)
            .map(|t| self.task(t).who_has.to_vec())
            .unwrap_or_default()
    }

    pub fn processing_on(&self, key: &Key) -> Option<WorkerId> {
        match self.task(self.lookup(key)?).state {
            State::Processing(w) => Some(w),
            _ => None,
        }
    }

    /// Every worker as `Client::scheduler_info` and the dashboard show it.
    pub fn worker_summaries(&self) -> Vec<WorkerSummary> {
        self.workers
            .iter()
            .map(|(&wid, ws)| WorkerSummary {
                id: wid,
                name: ws.info.name.clone(),
                address: ws.info.address.clone(),
                nthreads: ws.info.nthreads,
                memory_limit: ws.info.memory_limit,
                metrics: ws.metrics,
                processing: ws.processing.len() as u32,
                keys: ws.has.len() as u32,
            })
            .collect()
    }

    /// The dashboard's progress rows: one per prefix with tasks or history.
    pub fn prefix_rows(&self) -> Vec<rask_dashboard::PrefixRow> {
        self.prefixes
            .iter()
            .filter(|p| p.counts.iter().any(|&c| c > 0) || p.forgotten > 0)
            .map(|p| rask_dashboard::PrefixRow {
                prefix: p.name.to_string(),
                counts: rask_dashboard::StateCounts::from_array(p.counts, p.forgotten),
                nbytes: p.nbytes,
                keys: p.keys,
            })
            .collect()
    }

    /// The dashboard's graph: every task when there are at most `limit`, else one node per
    /// prefix with tasks, joined where a task of one reads a task of the other.
    pub fn graph_view(&self, limit: usize) -> rask_dashboard::GraphView {
        use rask_dashboard::{GraphNode, GraphView, StateCounts, TaskPhase};
        let n = self.index.len();
        let mut view = GraphView {
            grouped: n > limit,
            n_tasks: n as u64,
            ..Default::default()
        };
        if n <= limit {
            let mut node_of: FxHashMap<u32, u32> = FxHashMap::default();
            for (t, task) in self.tasks.iter().enumerate() {
                let Some(task) = task else { continue };
                node_of.insert(t as u32, view.nodes.len() as u32);
                view.nodes.push(GraphNode {
                    id: view.nodes.len() as u32,
                    label: task.key.to_string(),
                    prefix: task.key.prefix().to_string(),
                    state: TaskPhase::ALL[task.state.phase()],
                    counts: None,
                });
            }
            for (t, task) in self.tasks.iter().enumerate() {
                let Some(task) = task else { continue };
                for d in &task.deps {
                    view.edges.push([node_of[d], node_of[&(t as u32)]]);
                }
            }
            return view;
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            if p.counts.iter().all(|&c| c == 0) {
                continue;
            }
            let counts = StateCounts::from_array(p.counts, p.forgotten);
            view.nodes.push(GraphNode {
                id: i as u32,
                label: p.name.to_string(),
                prefix: p.name.to_string(),
                state: counts.dominant(),
                counts: Some(counts),
            });
        }
        let live = |i: u32| self.prefixes[i as usize].counts.iter().any(|&c| c > 0);
        let mut edges: Vec<[u32; 2]> = self
            .prefix_edges
            .iter()
            .filter(|(a, b)| live(*a) && live(*b))
            .map(|&(a, b)| [a, b])
            .collect();
        edges.sort_unstable();
        view.edges = edges;
        view
    }

    pub fn n_workers(&self) -> usize {
        self.workers.len()
    }

    pub fn worker_ids(&self) -> Vec<WorkerId> {
        self.workers.keys().copied().collect()
    }

    /// Approximate heap bytes of the whole state (target: <= 500 bytes per task for 1M
    /// released-or-waiting trivial tasks with one dep each). O(tasks): for tests and
    /// occasional metrics, not for a dashboard refresh. Key names are counted once per key
    /// (an over-estimate: keys of one layer share their name); ops are counted by share.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        fn spilled<A: smallvec::Array>(v: &SmallVec<A>) -> usize {
            if v.spilled() {
                v.capacity() * size_of::<A::Item>()
            } else {
                0
            }
        }
        fn set_bytes<T>(cap: usize) -> usize {
            cap * (size_of::<T>() + 1)
        }
        let mut n = self.tasks.capacity() * size_of::<Option<Task>>();
        n += self.free_ids.capacity() * 4;
        n += set_bytes::<(Key, u32)>(self.index.capacity());
        for task in self.tasks.iter().flatten() {
            // The Arc'd name: counts + text.
            n += 16 + task.key.name().len();
            if task.key.index().len() > 4 {
                n += 4 * task.key.index().len();
            }
            n += spilled(&task.deps) + spilled(&task.dependents) + spilled(&task.who_has);
            n += task.args.as_ref().map_or(0, |a| a.len() * 4);
            if let Some(op) = &task.op {
                let total = size_of::<WireOp>() + 16 + op.name.len() + op.params.len();
                n += total / Arc::strong_count(op).max(1);
            }
        }
        // B-tree sets: about the entry plus a third of overhead.
        let btree_entry = size_of::<(Priority, u32)>() * 4 / 3;
        n += (self.queue.len() + self.no_worker.len()) * btree_entry;
        for w in self.workers.values() {
            n += set_bytes::<u32>(w.processing.capacity())
                + set_bytes::<u32>(w.has.capacity())
                + set_bytes::<u32>(w.scattering.capacity())
                + w.info.name.len()
                + w.info.address.len();
        }
        for c in self.clients.values() {
            n += set_bytes::<(u32, Told)>(c.wants.capacity());
        }
        for e in self.errors.values() {
            n += size_of::<(u32, RemoteError)>() + e.key.len() + e.op.len() + e.message.len();
        }
        for d in self.deaths.values() {
            n += size_of::<(u32, Vec<String>)>() + d.iter().map(|s| 24 + s.len()).sum::<usize>();
        }
        n += set_bytes::<(u32, u32)>(self.retries.capacity());
        n += set_bytes::<(Key, Steal)>(self.steals.capacity());
        n += self
            .pending_scatter
            .values()
            .map(|v| 64 + v.type_tag.len() + v.data.len())
            .sum::<usize>();
        n += self
            .prefixes
            .iter()
            .map(|p| size_of::<PrefixStats>() + 2 * (16 + p.name.len()))
            .sum::<usize>();
        n += set_bytes::<(Arc<str>, u32)>(self.prefix_index.capacity());
        n += set_bytes::<(u32, u32)>(self.prefix_edges.capacity());
        n
    }

    /// Panics with a clear message if an internal invariant is broken (for tests).
    pub fn check_invariants(&self) {
        self.check_prefix_counters();
        let mut live = 0usize;
        let mut n_processing = 0usize;
        let mut n_queued = 0usize;
        let mut n_no_worker = 0usize;
        for (i, slot) in self.tasks.iter().enumerate() {
            let Some(task) = slot else { continue };
            let t = i as u32;
            live += 1;
            let key = &task.key;
            assert_eq!(
                self.index.get(key),
                Some(&t),
                "{key}: index disagrees with the slab"
            );
            for &d in &task.deps {
                let dt = self.tasks[d as usize]
                    .as_ref()
                    .unwrap_or_else(|| panic!("{key}: input {d} is forgotten"));
                assert!(
                    dt.dependents.contains(&t),
                    "{key}: missing from {}'s dependents",
                    dt.key
                );
            }
            let mut waiters = 0;
            for &d in &task.dependents {
                let dt = self.tasks[d as usize]
                    .as_ref()
                    .unwrap_or_else(|| panic!("{key}: dependent {d} is forgotten"));
                assert!(
                    dt.deps.contains(&t),
                    "{key}: not an input of dependent {}",
                    dt.key
                );
                if dt.state.is_active() {
                    waiters += 1;
                }
            }
            assert_eq!(task.waiters, waiters, "{key}: waiters count");
            let wants = self
                .clients
                .values()
                .filter(|c| c.wants.contains_key(&t))
                .count() as u32;
            assert_eq!(task.n_wants, wants, "{key}: wants refcount");
            if task.state.is_active() || task.state == State::Memory {
                assert!(
                    task.needed(),
                    "{key}: {:?} but nothing needs it",
                    task.state
                );
            }
            if task.state.is_active() {
                let missing = task
                    .deps
                    .iter()
                    .filter(|&&d| self.task(d).state != State::Memory)
                    .count() as u32;
                assert_eq!(task.waiting_on, missing, "{key}: waiting_on");
                for &d in &task.deps {
                    let ds = self.task(d).state;
                    assert!(
                        ds == State::Memory || ds.is_active(),
                        "{key} ({:?}) reads {} which is {ds:?}: it would wait forever",
                        task.state,
                        self.task(d).key
                    );
                }
            }
            match task.state {
                State::Waiting => assert!(
                    task.waiting_on > 0,
                    "{key}: waiting with all inputs in memory"
                ),
                State::NoWorker => {
                    n_no_worker += 1;
                    assert!(
                        self.no_worker.contains(&(task.priority, t)),
                        "{key}: no-worker set"
                    );
                    assert!(
                        !self.workers.values().any(Worker::eligible),
                        "{key}: ready with no worker while a worker can take it"
                    );
                }
                State::Queued => {
                    n_queued += 1;
                    assert!(task.is_root(), "{key}: queued but not a root");
                    assert!(
                        self.queue.contains(&(task.priority, t)),
                        "{key}: not in the queue"
                    );
                }
                State::Processing(w) => {
                    n_processing += 1;
                    let ws = self
                        .workers
                        .get(&w)
                        .unwrap_or_else(|| panic!("{key}: processing on dead worker {w}"));
                    assert!(
                        ws.processing.contains(&t),
                        "{key}: not in worker {w}'s processing"
                    );
                }
                State::Scattering(w) => {
                    let ws = self
                        .workers
                        .get(&w)
                        .unwrap_or_else(|| panic!("{key}: scattering to dead worker {w}"));
                    assert!(
                        ws.scattering.contains(&t),
                        "{key}: not in worker {w}'s scattering"
                    );
                }
                State::Memory => {
                    assert!(!task.who_has.is_empty(), "{key}: in memory nowhere");
                }
                State::Erred => {
                    assert!(
                        self.errors.contains_key(&t),
                        "{key}: erred without an error"
                    );
                }
                State::Released => {}
            }
            if task.state != State::Memory {
                assert!(
                    task.who_has.is_empty(),
                    "{key}: {:?} but has replicas",
                    task.state
                );
            }
            for w in &task.who_has {
                let ws = self
                    .workers
                    .get(w)
                    .unwrap_or_else(|| panic!("{key}: held by dead worker {w}"));
                assert!(ws.has.contains(&t), "{key}: worker {w}'s has set");
            }
            if task.flags & F_FIRE_AND_FORGET != 0 {
                assert!(
                    !matches!(task.state, State::Memory | State::Erred),
                    "{key}: fire-and-forget hold kept after it finished"
                );
            }
        }
        assert_eq!(live, self.index.len(), "index size");
        assert_eq!(self.queue.len(), n_queued, "queue size");
        assert_eq!(self.no_worker.len(), n_no_worker, "no-worker set size");
        let mut total_processing = 0;
        for (w, ws) in &self.workers {
            total_processing += ws.processing.len();
            let mut managed = 0;
            for &t in &ws.has {
                let task = self.task(t);
                assert!(
                    task.who_has.contains(w),
                    "{}: worker {w} has it, who_has disagrees",
                    task.key
                );
                managed += task.nbytes;
            }
            assert_eq!(ws.managed, managed, "worker {w}: managed bytes");
            let projected: u64 = ws
                .processing
                .iter()
                .chain(ws.scattering.iter())
                .map(|&t| self.task(t).projected.get().unwrap_or(0))
                .sum();
            assert_eq!(ws.projected, projected, "worker {w}: projected bytes");
            let incoming = self.steals.values().filter(|s| s.thief == *w).count() as u32;
            assert_eq!(ws.incoming_steals, incoming, "worker {w}: incoming steals");
        }
        assert_eq!(total_processing, n_processing, "processing sets");
        for (k, s) in &self.steals {
            assert!(
                self.workers.contains_key(&s.victim),
                "steal of {k} from a dead victim"
            );
            if s.valid {
                let t = self
                    .lookup(k)
                    .unwrap_or_else(|| panic!("valid steal record for forgotten {k}"));
                assert_eq!(
                    self.task(t).state,
                    State::Processing(s.victim),
                    "{k}: valid steal"
                );
            }
        }
        // Liveness of the queue: if its head could go to some worker, it should have.
        if let Some(&(_, head)) = self.queue.first() {
            let extra = self.extra_slots_per_thread(head);
            for (w, ws) in &self.workers {
                assert!(
                    !(ws.eligible() && self.has_slot(ws, extra) && self.admits(ws, head)),
                    "queued {} could go to worker {w}",
                    self.task(head).key
                );
            }
        }
        for (c, cs) in &self.clients {
            for &t in cs.wants.keys() {
                assert!(
                    self.tasks[t as usize].is_some(),
                    "client {c} wants forgotten task {t}"
                );
            }
        }
        for &t in self.errors.keys().chain(self.pending_scatter.keys()) {
            assert!(
                self.tasks[t as usize].is_some(),
                "side data for forgotten task {t}"
            );
        }
    }

    // ----- internals: lookup --------------------------------------------------------------

    fn lookup(&self, key: &Key) -> Option<u32> {
        self.index.get(key).copied()
    }

    fn task(&self, t: u32) -> &Task {
        self.tasks[t as usize].as_ref().expect("live task id")
    }

    fn task_mut(&mut self, t: u32) -> &mut Task {
        self.tasks[t as usize].as_mut().expect("live task id")
    }

    fn addresses(&self, t: u32) -> Vec<String> {
        self.task(t)
            .who_has
            .iter()
            .filter_map(|w| self.workers.get(w).map(|ws| ws.info.address.clone()))
            .collect()
    }

    fn alloc(&mut self, mut task: Task) -> u32 {
        let key = task.key.clone();
        task.prefix = self.prefix_id(key.prefix());
        self.prefixes[task.prefix as usize].counts[task.state.phase()] += 1;
        let t = match self.free_ids.pop() {
            Some(t) => {
                self.tasks[t as usize] = Some(task);
                t
            }
            None => {
                self.tasks.push(Some(task));
                (self.tasks.len() - 1) as u32
            }
        };
        self.index.insert(key, t);
        t
    }

    // ----- internals: sending -------------------------------------------------------------

    fn send_to_worker(&mut self, w: WorkerId, msg: ToWorker) {
        if !self.workers.contains_key(&w) {
            return;
        }
        if let Some(keys) = self.pending_frees.remove(&w) {
            self.out
                .push(Outgoing::Worker(w, ToWorker::FreeKeys { keys }));
        }
        self.out.push(Outgoing::Worker(w, msg));
    }

    fn free_on(&mut self, w: WorkerId, key: Key) {
        if self.workers.contains_key(&w) {
            self.pending_frees.entry(w).or_default().push(key);
        }
    }

    fn flush_frees(&mut self) {
        for (w, keys) in std::mem::take(&mut self.pending_frees) {
            self.out
                .push(Outgoing::Worker(w, ToWorker::FreeKeys { keys }));
        }
    }

    fn send_compute(&mut self, t: u32, w: WorkerId) {
        self.last_attempt = self.last_attempt.wrapping_add(1);
        let attempt = self.last_attempt;
        self.task_mut(t).attempt = attempt;
        // A new instance: an outstanding steal's answer refers to the previous one (the
        // victim may have given that one back just before this one arrived).
        if !self.steals.is_empty() {
            let key = &self.tasks[t as usize].as_ref().expect("live").key;
            if let Some(s) = self.steals.get_mut(key) {
                s.valid = false;
            }
        }
        let task = self.task(t);
        let deps: Vec<DepLocation> = task
            .deps
            .iter()
            .map(|&d| DepLocation {
                key: self.task(d).key.clone(),
                who_has: self.addresses(d),
                nbytes: self.task(d).nbytes,
            })
            .collect();
        let args = match &task.args {
            Some(a) => a.to_vec(),
            None => (0..deps.len() as u32).collect(),
        };
        let msg = ToWorker::ComputeTask {
            key: task.key.clone(),
            op: task.op.clone().expect("only tasks with an op are computed"),
            deps,
            args,
            priority: task.priority,
            inline_result: task.n_wants > 0,
            projected_nbytes: task.projected.get(),
            attempt: task.attempt,
        };
        self.send_to_worker(w, msg);
    }

    // ----- internals: state bookkeeping ---------------------------------------------------

    /// Moves `t` to `new`, keeping every index in step: worker sets and bytes, the queues,
    /// steal validity, and the waiter counts of its inputs when it enters or leaves the
    /// active states. Decisions are the callers'.
    fn set_state(&mut self, t: u32, new: State) {
        let (old, prio, proj) = {
            let task = self.task(t);
            (task.state, task.priority, task.projected.get().unwrap_or(0))
        };
        if old == new {
            return;
        }
        let (po, pn) = (old.phase(), new.phase());
        if po != pn {
            let prefix = self.task(t).prefix as usize;
            let p = &mut self.prefixes[prefix];
            p.counts[po] -= 1;
            p.counts[pn] += 1;
        }
        match old {
            State::Processing(w) => {
                if let Some(ws) = self.workers.get_mut(&w) {
                    ws.processing.remove(&t);
                    ws.projected -= proj;
                }
                if !self.steals.is_empty() {
                    let key = &self.tasks[t as usize].as_ref().expect("live").key;
                    if let Some(s) = self.steals.get_mut(key) {
                        s.valid = false;
                    }
                }
            }
            State::Scattering(w) => {
                if let Some(ws) = self.workers.get_mut(&w) {
                    ws.scattering.remove(&t);
                    ws.projected -= proj;
                }
            }
            State::Queued => {
                self.queue.remove(&(prio, t));
            }
            State::NoWorker => {
                self.no_worker.remove(&(prio, t));
            }
            _ => {}
        }
        match new {
            State::Processing(w) => {
                let ws = self
                    .workers
                    .get_mut(&w)
                    .expect("processing on a live worker");
                ws.processing.insert(t);
                ws.projected += proj;
            }
            State::Scattering(w) => {
                let ws = self
                    .workers
                    .get_mut(&w)
                    .expect("scattering to a live worker");
                ws.scattering.insert(t);
                ws.projected += proj;
            }
            State::Queued => {
                self.queue.insert((prio, t));
            }
            State::NoWorker => {
                self.no_worker.insert((prio, t));
            }
            _ => {}
        }
        let n_deps = self.task(t).deps.len();
        if old.is_active() && !new.is_active() {
            for i in 0..n_deps {
                let d = self.task(t).deps[i];
                self.task_mut(d).waiters -= 1;
                self.release_checks.push(d);
            }
            self.task_mut(t).waiting_on = 0;
        } else if !old.is_active() && new.is_active() {
            for i in 0..n_deps {
                let d = self.task(t).deps[i];
                self.task_mut(d).waiters += 1;
            }
        }
        self.task_mut(t).state = new;
    }

    fn add_replica(&mut self, t: u32, w: WorkerId, nbytes: u64) {
        let task = self.task_mut(t);
        if task.who_has.contains(&w) {
            return;
        }
        // One size per task: the first replica's. A copy may report another size (a frame
        // decoded on the receiving worker no longer shares its sender's buffers); counting
        // each holder with the task's one size keeps `managed` equal to what
        // `drop_replicas` and `missing_data` take off again.
        let first = task.who_has.is_empty();
        if first {
            task.nbytes = nbytes;
        }
        let nbytes = task.nbytes;
        task.who_has.push(w);
        let prefix = task.prefix as usize;
        if first {
            let p = &mut self.prefixes[prefix];
            p.nbytes += nbytes;
            p.keys += 1;
        }
        let ws = self.workers.get_mut(&w).expect("replica on a live worker");
        ws.has.insert(t);
        ws.managed += nbytes;
    }

    /// The last copy of `t`'s value is gone: its prefix holds that much less.
    /// The dashboard's counters agree with a recount over the tasks.
    fn check_prefix_counters(&self) {
        let mut counts = vec![[0u64; 6]; self.prefixes.len()];
        let mut held = vec![(0u64, 0u64); self.prefixes.len()];
        for task in self.tasks.iter().flatten() {
            let p = task.prefix as usize;
            assert_eq!(
                &*self.prefixes[p].name,
                task.key.prefix(),
                "{}: wrong prefix",
                task.key
            );
            counts[p][task.state.phase()] += 1;
            if !task.who_has.is_empty() {
                held[p].0 += task.nbytes;
                held[p].1 += 1;
            }
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            assert_eq!(p.counts, counts[i], "prefix {}: state counts", p.name);
            assert_eq!((p.nbytes, p.keys), held[i], "prefix {}: bytes held", p.name);
        }
    }

    fn no_replica_left(&mut self, t: u32) {
        let task = self.task(t);
        let (prefix, nbytes) = (task.prefix as usize, task.nbytes);
        let p = &mut self.prefixes[prefix];
        p.nbytes -= nbytes;
        p.keys -= 1;
    }

    fn prefix_id(&mut self, prefix: &str) -> u32 {
        if let Some(&i) = self.prefix_index.get(prefix) {
            return i;
        }
        let i = self.prefixes.len() as u32;
        let name: Arc<str> = Arc::from(prefix);
        self.prefixes.push(PrefixStats {
            name: name.clone(),
            ..Default::default()
        });
        self.prefix_index.insert(name, i);
        i
    }

    fn drop_replicas(&mut self, t: u32) {
        let holders = std::mem::take(&mut self.task_mut(t).who_has);
        if !holders.is_empty() {
            self.no_replica_left(t);
        }
        let (key, nbytes) = (self.task(t).key.clone(), self.task(t).nbytes);
        for w in holders {
            if let Some(ws) = self.workers.get_mut(&w) {
                ws.has.remove(&t);
                ws.managed -= nbytes;
            }
            self.free_on(w, key.clone());
        }
    }

    /// Runs the deferred work of an event: release what is no longer needed, place what
    /// became ready, then feed queued roots to free slots.
    fn settle(&mut self) {
        loop {
            if let Some(t) = self.release_checks.pop() {
                self.maybe_release(t);
                continue;
            }
            if !self.ready.is_empty() {
                let mut ready = std::mem::take(&mut self.ready);
                ready.retain(|&t| {
                    self.tasks[t as usize]
                        .as_ref()
                        .is_some_and(|task| task.state == State::Waiting && task.waiting_on == 0)
                });
                ready.sort_unstable_by_key(|&t| (self.task(t).priority, t));
                ready.dedup();
                for t in ready {
                    self.place(t);
                }
                continue;
            }
            break;
        }
        self.fill_queue();
    }

    // ----- internals: placement -----------------------------------------------------------

    /// Folds a reported run time into its op's average.
    fn learn_duration(&mut self, key: &Key, us: u32) {
        let Some(t) = self.lookup(key) else { return };
        let Some(op) = self.task(t).op.clone() else {
            return;
        };
        let us = us as f64;
        match self.op_durations.get_mut(op.name.as_str()) {
            Some(avg) => *avg = 0.5 * *avg + 0.5 * us,
            None => {
                self.op_durations.insert(op.name.clone(), us);
            }
        }
    }

    /// Extra root slots per thread for `t`'s op: none until its tasks are known to be short.
    fn extra_slots_per_thread(&self, t: u32) -> f64 {
        let Some(op) = &self.task(t).op else {
            return 0.0;
        };
        match self.op_durations.get(op.name.as_str()) {
            Some(&avg) if avg < SHORT_TASK_US => (QUEUED_WORK_US / avg.max(1.0))
                .ceil()
                .min(MAX_EXTRA_SLOTS_PER_THREAD),
            _ => 0.0,
        }
    }

    fn slots(&self, ws: &Worker, extra_per_thread: f64) -> usize {
        let sat = self.config.worker_saturation;
        if !sat.is_finite() {
            return usize::MAX;
        }
        let threads = ws.info.nthreads as f64;
        ((threads * sat).ceil() as usize).max(1) + (threads * extra_per_thread) as usize
    }

    fn has_slot(&self, ws: &Worker, extra_per_thread: f64) -> bool {
        ws.processing.len() < self.slots(ws, extra_per_thread)
    }

    fn admits(&self, ws: &Worker, t: u32) -> bool {
        if ws.processing.is_empty() || ws.info.memory_limit == 0 {
            return true;
        }
        let after = ws.managed + ws.projected + self.task(t).projected.get().unwrap_or(0);
        after as f64 <= ws.info.memory_limit as f64 * ADMIT_MEMORY_FRACTION
    }

    fn queuing(&self) -> bool {
        self.config.worker_saturation.is_finite()
    }

    /// A ready task (all inputs in memory): queue a root, or send it where it starts first.
    fn place(&mut self, t: u32) {
        if self.task(t).is_root() && self.queuing() {
            self.set_state(t, State::Queued);
            return;
        }
        match self.decide_worker(t, None) {
            Some(w) => self.dispatch(t, w),
            None => self.set_state(t, State::NoWorker),
        }
    }

    fn dispatch(&mut self, t: u32, w: WorkerId) {
        self.set_state(t, State::Processing(w));
        self.send_compute(t, w);
    }

    /// Where `t` can start earliest: queue wait (occupancy / threads) plus the transfer of
    /// the inputs the worker lacks. Ties: fewer processing tasks, then lower id.
    fn decide_worker(&self, t: u32, exclude: Option<WorkerId>) -> Option<WorkerId> {
        let task = self.task(t);
        let mut best: Option<(f64, usize, WorkerId)> = None;
        for (&w, ws) in &self.workers {
            if !ws.eligible() || Some(w) == exclude {
                continue;
            }
            let occupancy = ws.processing.len() as f64 * DEFAULT_TASK_SECONDS;
            let mut cost = occupancy / ws.info.nthreads.max(1) as f64;
            let mut transfer = 0u64;
            for &d in &task.deps {
                let dt = self.task(d);
                if !dt.who_has.contains(&w) {
                    transfer += dt.nbytes;
                }
            }
            cost += transfer as f64 / self.config.bandwidth;
            let cand = (cost, ws.processing.len(), w);
            let better = match best {
                None => true,
                Some(b) => cand
                    .0
                    .total_cmp(&b.0)
                    .then((cand.1, cand.2).cmp(&(b.1, b.2)))
                    .is_lt(),
            };
            if better {
                best = Some(cand);
            }
        }
        best.map(|b| b.2)
    }

    /// Releases queued roots, best first, to workers with a free slot that admit them.
    fn fill_queue(&mut self) {
        while let Some(&(_, t)) = self.queue.first() {
            let extra = self.extra_slots_per_thread(t);
            let mut best: Option<(f64, usize, WorkerId)> = None;
            for (&w, ws) in &self.workers {
                if !ws.eligible() || !self.has_slot(ws, extra) || !self.admits(ws, t) {
                    continue;
                }
                let load = ws.processing.len() as f64 / ws.info.nthreads.max(1) as f64;
                let cand = (load, ws.processing.len(), w);
                let better = match best {
                    None => true,
                    Some(b) => cand
                        .0
                        .total_cmp(&b.0)
                        .then((cand.1, cand.2).cmp(&(b.1, b.2)))
                        .is_lt(),
                };
                if better {
                    best = Some(cand);
                }
            }
            let Some((_, _, w)) = best else { break };
            self.dispatch(t, w);
        }
    }

    /// After a worker joins or unpauses: place what was waiting for one, and deliver pending
    /// scatters.
    fn retry_no_worker(&mut self) {
        let pending: Vec<u32> = self.no_worker.iter().map(|&(_, t)| t).collect();
        let mut puts: BTreeMap<WorkerId, Vec<(Key, WireValue)>> = BTreeMap::new();
        for t in pending {
            if self.task(t).op.is_none() {
                let Some(w) = self.scatter_target() else {
                    break;
                };
                let value = self
                    .pending_scatter
                    .remove(&t)
                    .expect("pending scatter value");
                self.set_state(t, State::Scattering(w));
                puts.entry(w)
                    .or_default()
                    .push((self.task(t).key.clone(), value));
            } else if let Some(w) = self.decide_worker(t, None) {
                self.dispatch(t, w);
            } else {
                break;
            }
        }
        for (w, values) in puts {
            self.send_to_worker(w, ToWorker::PutData { values });
        }
    }

    fn scatter_target(&self) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, ws)| ws.eligible())
            .min_by_key(|&(&w, ws)| (ws.managed + ws.projected, w))
            .map(|(&w, _)| w)
    }

    // ----- internals: transitions ---------------------------------------------------------

    /// Makes a released task (and, recursively, its released inputs) work towards a value.
    fn activate(&mut self, t0: u32) {
        let mut stack = vec![t0];
        while let Some(t) = stack.pop() {
            if self.task(t).state != State::Released {
                continue;
            }
            if self.task(t).op.is_none() {
                let task = self.task(t);
                let error = RemoteError {
                    key: task.key.to_string(),
                    op: task.op_name().to_string(),
                    kind: ErrorKind::Lost,
                    message: format!(
                        "{} was scattered and every copy of it was lost with its workers; \
                         scattered data cannot be recomputed",
                        task.key
                    ),
                };
                self.err(t, error);
                continue;
            }
            self.set_state(t, State::Waiting);
            let mut missing = 0;
            let mut erred = None;
            for i in 0..self.task(t).deps.len() {
                let d = self.task(t).deps[i];
                match self.task(d).state {
                    State::Memory => {}
                    State::Erred => erred = Some(d),
                    State::Released => {
                        missing += 1;
                        stack.push(d);
                    }
                    _ => missing += 1,
                }
            }
            self.task_mut(t).waiting_on = missing;
            if let Some(d) = erred {
                let error = self.errors[&d].clone();
                self.err_dependent(t, &error);
                continue;
            }
            if missing == 0 {
                self.ready.push(t);
            }
        }
    }

    /// `t` lost its last replica: it is released, and its active dependents count it as
    /// missing again (taking back those already sent to a worker). Whether it is recomputed
    /// is [`Self::recover`]'s decision, made once every loss of the event is marked, so that a
    /// recomputation never reads an input still believed in memory.
    fn mark_lost(&mut self, t: u32) {
        self.set_state(t, State::Released);
        for i in 0..self.task(t).dependents.len() {
            let d = self.task(t).dependents[i];
            match self.task(d).state {
                State::Waiting => self.task_mut(d).waiting_on += 1,
                State::NoWorker => {
                    self.set_state(d, State::Waiting);
                    self.task_mut(d).waiting_on = 1;
                }
                State::Processing(w) => {
                    let key = self.task(d).key.clone();
                    self.free_on(w, key);
                    self.set_state(d, State::Waiting);
                    self.task_mut(d).waiting_on = 1;
                }
                _ => {}
            }
        }
    }

    fn recover(&mut self, t: u32) {
        if self.tasks[t as usize].is_none() || self.task(t).state != State::Released {
            return;
        }
        if self.task(t).needed() {
            self.activate(t);
        } else {
            self.release_checks.push(t);
        }
    }

    /// If nothing needs `t`, stops work on it or frees its value, then forgets it (and
    /// whatever that leaves without a reason to exist).
    fn maybe_release(&mut self, t: u32) {
        let Some(task) = self.tasks[t as usize].as_ref() else {
            return;
        };
        if task.needed() {
            return;
        }
        let key = task.key.clone();
        match task.state {
            State::Processing(w) | State::Scattering(w) => {
                self.free_on(w, key);
                self.set_state(t, State::Released);
            }
            State::NoWorker => {
                self.pending_scatter.remove(&t);
                self.set_state(t, State::Released);
            }
            State::Waiting | State::Queued => self.set_state(t, State::Released),
            State::Memory => {
                self.drop_replicas(t);
                self.set_state(t, State::Released);
            }
            State::Released | State::Erred => {}
        }
        self.maybe_forget(t);
    }

    fn maybe_forget(&mut self, t0: u32) {
        let mut stack = vec![t0];
        while let Some(t) = stack.pop() {
            let Some(task) = self.tasks[t as usize].as_ref() else {
                continue;
            };
            if task.needed()
                || !matches!(task.state, State::Released | State::Erred)
                || !task.dependents.is_empty()
            {
                continue;
            }
            let task = self.tasks[t as usize].take().expect("checked");
            let p = &mut self.prefixes[task.prefix as usize];
            p.counts[task.state.phase()] -= 1;
            p.forgotten += 1;
            self.index.remove(&task.key);
            self.errors.remove(&t);
            self.deaths.remove(&t);
            self.retries.remove(&t);
            self.pending_scatter.remove(&t);
            self.free_ids.push(t);
            for &d in &task.deps {
                let dt = self.task_mut(d);
                if let Some(pos) = dt.dependents.iter().position(|&x| x == t) {
                    dt.dependents.swap_remove(pos);
                }
                stack.push(d);
            }
        }
    }

    fn transition_to_memory(&mut self, t: u32, w: WorkerId, nbytes: u64, value: Option<WireValue>) {
        if let State::Processing(o) = self.task(t).state {
            if o != w {
                // Someone else finished it first: the other run is wasted work.
                let key = self.task(t).key.clone();
                self.free_on(o, key);
            }
        }
        if self.task(t).state == State::NoWorker {
            self.pending_scatter.remove(&t);
        }
        self.set_state(t, State::Memory);
        self.add_replica(t, w, nbytes);
        let task = self.task_mut(t);
        task.flags &= !F_FIRE_AND_FORGET;
        let key = task.key.clone();
        let value = value.filter(|_| nbytes <= self.config.inline_limit);
        for (&c, cs) in self.clients.iter_mut() {
            if let Some(told) = cs.wants.get_mut(&t) {
                if *told == Told::Nothing {
                    *told = Told::InMemory;
                    self.out.push(Outgoing::Client(
                        c,
                        ToClient::KeyInMemory {
                            key: key.clone(),
                            nbytes,
                            value: value.clone(),
                        },
                    ));
                }
            }
        }
        for i in 0..self.task(t).dependents.len() {
            let d = self.task(t).dependents[i];
            let dt = self.task_mut(d);
            if dt.state == State::Waiting {
                dt.waiting_on -= 1;
                if dt.waiting_on == 0 {
                    self.ready.push(d);
                }
            }
        }
        self.release_checks.push(t);
    }

    /// `t` fails with `error`; its active dependents fail with `DependencyFailed` naming it.
    fn err(&mut self, t: u32, error: RemoteError) {
        self.set_erred(t, error.clone());
        self.err_dependents_of(t, &error);
    }

    /// `t` cannot run because an input failed with `cause`.
    fn err_dependent(&mut self, t: u32, cause: &RemoteError) {
        let e = self.dependency_error(t, cause);
        self.set_erred(t, e);
        self.err_dependents_of(t, cause);
    }

    fn dependency_error(&self, t: u32, cause: &RemoteError) -> RemoteError {
        let task = self.task(t);
        // The root cause, not the intermediate that relayed it.
        let message = if cause.kind == ErrorKind::DependencyFailed {
            cause.message.clone()
        } else {
            format!(
                "dependency {} (op {}) failed: {}",
                cause.key, cause.op, cause.message
            )
        };
        RemoteError {
            key: task.key.to_string(),
            op: task.op_name().to_string(),
            kind: ErrorKind::DependencyFailed,
            message,
        }
    }

    fn err_dependents_of(&mut self, t: u32, cause: &RemoteError) {
        let mut stack = vec![t];
        while let Some(t) = stack.pop() {
            for i in 0..self.task(t).dependents.len() {
                let d = self.task(t).dependents[i];
                if self.task(d).state.is_active() {
                    let e = self.dependency_error(d, cause);
                    self.set_erred(d, e);
                    stack.push(d);
                }
            }
        }
    }

    fn set_erred(&mut self, t: u32, error: RemoteError) {
        match self.task(t).state {
            State::Processing(w) | State::Scattering(w) => {
                let key = self.task(t).key.clone();
                self.free_on(w, key);
            }
            State::Memory => self.drop_replicas(t),
            _ => {}
        }
        self.pending_scatter.remove(&t);
        self.set_state(t, State::Erred);
        let task = self.task_mut(t);
        task.flags &= !F_FIRE_AND_FORGET;
        let key = task.key.clone();
        for (&c, cs) in self.clients.iter_mut() {
            if let Some(told) = cs.wants.get_mut(&t) {
                if *told != Told::Final {
                    *told = Told::Final;
                    self.out.push(Outgoing::Client(
                        c,
                        ToClient::KeyErred {
                            key: key.clone(),
                            error: error.clone(),
                        },
                    ));
                }
            }
        }
        self.errors.insert(t, error);
        self.release_checks.push(t);
    }

    // ----- internals: client events -------------------------------------------------------

    fn update_graph(
        &mut self,
        client: ClientId,
        tasks: Vec<crate::protocol::ClientTask>,
        wants: Vec<Key>,
        priority: i32,
        retries: u32,
        fire_and_forget: bool,
    ) {
        self.generation += 1;
        let user = priority.saturating_neg();
        // Add the tasks whose key is new, released and flagged new, hashing each key once;
        // a refused submission is rolled back, so this costs nothing extra when it is not.
        let mut new_ids: Vec<u32> = Vec::new();
        let mut dep_keys: Vec<Vec<Key>> = Vec::new();
        for ct in tasks {
            if self.index.contains_key(&ct.key) {
                continue; // keys are deterministic: the cluster already has this one
            }
            let t = self.alloc(Task {
                key: ct.key,
                op: Some(ct.op),
                deps: SmallVec::new(),
                args: None,
                dependents: SmallVec::new(),
                who_has: SmallVec::new(),
                priority: Priority {
                    user,
                    generation: self.generation,
                    order: ct.order,
                },
                nbytes: ct.projected_nbytes.unwrap_or(0),
                projected: ct.projected_nbytes.into(),
                state: State::Released,
                waiting_on: 0,
                waiters: 0,
                n_wants: 0,
                suspicious: 0,
                attempt: 0,
                prefix: 0,
                flags: F_NEW,
            });
            new_ids.push(t);
            dep_keys.push(ct.deps);
        }
        // Resolve inputs: each must be in this submission or already on the cluster.
        // Per new task: its distinct dependencies, and the argument order when it differs.
        type ResolvedDeps = (SmallVec<[u32; 2]>, Option<Box<[u32]>>);
        let mut resolved: Vec<ResolvedDeps> = Vec::with_capacity(new_ids.len());
        for (&t, keys) in new_ids.iter().zip(&dep_keys) {
            let mut deps: SmallVec<[u32; 2]> = SmallVec::new();
            let mut args: Vec<u32> = Vec::with_capacity(keys.len());
            for d in keys {
                let Some(dt) = self.lookup(d) else {
                    let task = self.task(t);
                    let reason = format!(
                        "task {} (op {}) depends on {d}, which is neither in this submission \
                         nor on the cluster",
                        task.key,
                        task.op_name()
                    );
                    self.rollback(&new_ids, false);
                    return self.refuse(client, wants, reason);
                };
                let pos = match deps.iter().position(|&x| x == dt) {
                    Some(p) => p,
                    None => {
                        deps.push(dt);
                        deps.len() - 1
                    }
                };
                args.push(pos as u32);
            }
            let identity =
                args.len() == deps.len() && args.iter().enumerate().all(|(i, &a)| a as usize == i);
            resolved.push((deps, (!identity).then(|| args.into_boxed_slice())));
        }
        drop(dep_keys);
        let mut want_ids = Vec::with_capacity(wants.len());
        for k in &wants {
            match self.lookup(k) {
                Some(t) => want_ids.push(t),
                None => {
                    self.rollback(&new_ids, false);
                    let reason =
                        format!("wanted key {k} is neither in this submission nor on the cluster");
                    return self.refuse(client, wants, reason);
                }
            }
        }
        let mut last_edge = (u32::MAX, u32::MAX);
        for (&t, (deps, args)) in new_ids.iter().zip(resolved) {
            let tp = self.task(t).prefix;
            for &d in &deps {
                let dt = self.task_mut(d);
                dt.dependents.push(t);
                // Graphs repeat one prefix pair over and over: skip the set when it is the
                // pair just added.
                let edge = (dt.prefix, tp);
                if edge != last_edge && edge.0 != edge.1 {
                    self.prefix_edges.insert(edge);
                    last_edge = edge;
                }
            }
            let task = self.task_mut(t);
            task.deps = deps;
            task.args = args;
        }
        // Cycles can only run through new tasks (existing ones never read new keys): Kahn's
        // algorithm over them, with `waiting_on` as scratch in-degree. A cycle would wait
        // forever, so it is refused.
        let mut stack = Vec::new();
        for &t in &new_ids {
            let n_new = self
                .task(t)
                .deps
                .iter()
                .filter(|&&d| self.task(d).flags & F_NEW != 0)
                .count() as u32;
            self.task_mut(t).waiting_on = n_new;
            if n_new == 0 {
                stack.push(t);
            }
        }
        let mut sorted = 0;
        while let Some(t) = stack.pop() {
            sorted += 1;
            for i in 0..self.task(t).dependents.len() {
                let u = self.task(t).dependents[i];
                let ut = self.task_mut(u);
                ut.waiting_on -= 1;
                if ut.waiting_on == 0 {
                    stack.push(u);
                }
            }
        }
        if sorted < new_ids.len() {
            let mut in_cycle: Vec<&Key> = new_ids
                .iter()
                .map(|&t| self.task(t))
                .filter(|task| task.waiting_on > 0)
                .map(|task| &task.key)
                .collect();
            in_cycle.sort();
            let reason = format!("the submission has a cycle through {}", in_cycle[0]);
            self.rollback(&new_ids, true);
            return self.refuse(client, wants, reason);
        }
        for &t in &new_ids {
            let task = self.task_mut(t);
            task.flags &= !F_NEW;
            task.waiting_on = 0;
            if retries > 0 {
                self.retries.insert(t, retries);
            }
        }

        for t in want_ids {
            if fire_and_forget {
                if !matches!(self.task(t).state, State::Memory | State::Erred) {
                    self.task_mut(t).flags |= F_FIRE_AND_FORGET;
                }
            } else {
                self.add_want(client, t);
            }
            if self.task(t).state == State::Released {
                self.activate(t);
            }
        }
        // New tasks nothing needs (not wanted, no dependents) are dropped at once.
        for t in new_ids.into_iter().rev() {
            self.maybe_forget(t);
        }
    }

    fn refuse(&mut self, client: ClientId, keys: Vec<Key>, reason: String) {
        self.out.push(Outgoing::Client(
            client,
            ToClient::GraphRefused { keys, reason },
        ));
    }

    /// Undoes the first steps of a refused `update_graph`: the new tasks were added released,
    /// and (when `linked`) registered as dependents of their inputs.
    fn rollback(&mut self, new_ids: &[u32], linked: bool) {
        if linked {
            for &t in new_ids {
                for i in 0..self.task(t).deps.len() {
                    let d = self.task(t).deps[i];
                    if self.task(d).flags & F_NEW == 0 {
                        self.task_mut(d).dependents.retain(|x| *x != t);
                    }
                }
            }
        }
        for &t in new_ids {
            let task = self.tasks[t as usize].take().expect("new task");
            self.prefixes[task.prefix as usize].counts[task.state.phase()] -= 1;
            self.index.remove(&task.key);
            self.free_ids.push(t);
        }
    }

    fn add_want(&mut self, client: ClientId, t: u32) {
        let cs = self.clients.entry(client).or_default();
        if cs.wants.contains_key(&t) {
            return;
        }
        let task = self.tasks[t as usize].as_mut().expect("live task id");
        task.n_wants += 1;
        let told = match task.state {
            State::Memory => {
                self.out.push(Outgoing::Client(
                    client,
                    ToClient::KeyInMemory {
                        key: task.key.clone(),
                        nbytes: task.nbytes,
                        value: None,
                    },
                ));
                Told::InMemory
            }
            State::Erred => {
                self.out.push(Outgoing::Client(
                    client,
                    ToClient::KeyErred {
                        key: task.key.clone(),
                        error: self.errors[&t].clone(),
                    },
                ));
                Told::Final
            }
            _ => Told::Nothing,
        };
        cs.wants.insert(t, told);
    }

    fn drop_want(&mut self, client: ClientId, t: u32) {
        if let Some(cs) = self.clients.get_mut(&client) {
            if cs.wants.remove(&t).is_some() {
                self.task_mut(t).n_wants -= 1;
                self.release_checks.push(t);
            }
        }
    }

    fn cancel(&mut self, client: ClientId, keys: &[Key]) {
        for k in keys {
            let Some(t) = self.lookup(k) else { continue };
            let key = self.task(t).key.clone();
            for (&c, cs) in self.clients.iter_mut() {
                if let Some(told) = cs.wants.remove(&t) {
                    if told == Told::Nothing {
                        self.out.push(Outgoing::Client(
                            c,
                            ToClient::KeyCancelled {
                                key: key.clone(),
                                reason: format!("{key} was cancelled by client {client}"),
                            },
                        ));
                    }
                    self.tasks[t as usize].as_mut().expect("live").n_wants -= 1;
                }
            }
            self.task_mut(t).flags &= !F_FIRE_AND_FORGET;
            self.release_checks.push(t);
        }
    }

    fn scatter(&mut self, client: ClientId, values: Vec<(Key, WireValue)>) {
        self.generation += 1;
        let mut puts: BTreeMap<WorkerId, Vec<(Key, WireValue)>> = BTreeMap::new();
        for (key, value) in values {
            let t = match self.lookup(&key) {
                // A released scattered key (its copies lost) is revived by new data.
                Some(t) if self.task(t).op.is_none() && self.task(t).state == State::Released => t,
                Some(t) => {
                    // Keys are deterministic: the cluster already has (or makes) this value.
                    self.add_want(client, t);
                    if self.task(t).state == State::Released {
                        self.activate(t);
                    }
                    continue;
                }
                None => {
                    let nbytes = value.data.len() as u64;
                    self.alloc(Task {
                        key: key.clone(),
                        op: None,
                        deps: SmallVec::new(),
                        args: None,
                        dependents: SmallVec::new(),
                        who_has: SmallVec::new(),
                        priority: Priority {
                            user: 0,
                            generation: self.generation,
                            order: 0,
                        },
                        nbytes,
                        projected: Some(nbytes).into(),
                        state: State::Released,
                        waiting_on: 0,
                        waiters: 0,
                        n_wants: 0,
                        suspicious: 0,
                        attempt: 0,
                        prefix: 0,
                        flags: 0,
                    })
                }
            };
            self.add_want(client, t);
            match self.scatter_target() {
                Some(w) => {
                    self.set_state(t, State::Scattering(w));
                    puts.entry(w).or_default().push((key, value));
                }
                None => {
                    self.set_state(t, State::NoWorker);
                    self.pending_scatter.insert(t, value);
                }
            }
        }
        for (w, values) in puts {
            self.send_to_worker(w, ToWorker::PutData { values });
        }
    }

    // ----- internals: worker events -------------------------------------------------------

    fn task_finished(
        &mut self,
        w: WorkerId,
        key: &Key,
        nbytes: u64,
        value: Option<WireValue>,
        attempt: u32,
    ) {
        let Some(t) = self.lookup(key) else {
            self.free_on(w, key.clone());
            return;
        };
        let task = self.task(t);
        match task.state {
            State::Processing(p) if p == w && attempt == task.attempt => {
                self.transition_to_memory(t, w, nbytes, value)
            }
            // An answer to an earlier run on this same worker, which freed that value when
            // told to: the current run answers for itself.
            State::Processing(p) if p == w => {}
            State::Memory => self.add_replica(t, w, nbytes),
            // A stale finish (the task moved after a steal or a loss): the value is the same
            // (keys are deterministic), so it serves whoever still needs it.
            s if s.is_active() && task.needed() => self.transition_to_memory(t, w, nbytes, value),
            _ => self.free_on(w, key.clone()),
        }
    }

    fn task_erred(&mut self, w: WorkerId, key: &Key, error: RemoteError, attempt: u32) {
        let Some(t) = self.lookup(key) else { return };
        let task = self.task(t);
        if task.state != State::Processing(w) || task.attempt != attempt {
            return; // stale: that run was taken back already
        }
        if let Some(left) = self.retries.get_mut(&t) {
            if *left > 0 {
                *left -= 1;
                self.set_state(t, State::Waiting);
                self.task_mut(t).waiting_on = 0;
                self.ready.push(t);
                return;
            }
        }
        self.err(t, error);
    }

    fn add_keys(&mut self, w: WorkerId, key: &Key, nbytes: u64) {
        let Some(t) = self.lookup(key) else {
            self.free_on(w, key.clone());
            return;
        };
        let task = self.task(t);
        match task.state {
            State::Memory => self.add_replica(t, w, nbytes),
            s if s.is_active() && task.needed() => self.transition_to_memory(t, w, nbytes, None),
            _ => self.free_on(w, key.clone()),
        }
    }

    fn missing_data(&mut self, reporter: WorkerId, key: &Key, errant: &str) {
        let Some(t) = self.lookup(key) else { return };
        let errant_id = self
            .workers
            .iter()
            .find(|(_, ws)| ws.info.address == errant)
            .map(|(&w, _)| w);
        if let Some(e) = errant_id {
            let task = self.task_mut(t);
            if let Some(pos) = task.who_has.iter().position(|&x| x == e) {
                task.who_has.remove(pos);
                let gone = task.who_has.is_empty();
                let nbytes = task.nbytes;
                if gone {
                    self.no_replica_left(t);
                }
                let ws = self.workers.get_mut(&e).expect("found above");
                ws.has.remove(&t);
                ws.managed -= nbytes;
            }
        }
        if self.task(t).state != State::Memory {
            return; // already being recomputed; its dependents were taken back
        }
        if self.task(t).who_has.is_empty() {
            self.mark_lost(t);
            self.recover(t);
            return;
        }
        // Other copies exist: the reporter ran out of addresses, so re-send it its tasks
        // that read this key, with fresh ones (the protocol has no "refresh who_has").
        let mut refresh = Vec::new();
        for &d in &self.task(t).dependents {
            if self.task(d).state == State::Processing(reporter) {
                refresh.push(d);
            }
        }
        for d in refresh {
            let dkey = self.task(d).key.clone();
            self.free_on(reporter, dkey);
            self.send_compute(d, reporter);
        }
    }

    fn steal_response(&mut self, w: WorkerId, key: &Key, released: bool) {
        match self.steals.get(key) {
            Some(s) if s.victim == w => {}
            _ => return,
        }
        let s = self.steals.remove(key).expect("checked");
        if let Some(th) = self.workers.get_mut(&s.thief) {
            th.incoming_steals -= 1;
        }
        let Some(t) = self.lookup(key) else { return };
        if !released || !s.valid || self.task(t).state != State::Processing(w) {
            return;
        }
        // The victim gave it back: it will not run there, so it can run elsewhere.
        let target = match self.workers.get(&s.thief) {
            Some(th) if th.eligible() => Some(s.thief),
            _ => self
                .decide_worker(t, Some(w))
                .or_else(|| self.decide_worker(t, None)),
        };
        self.set_state(t, State::Waiting);
        self.task_mut(t).waiting_on = 0;
        match target {
            Some(to) => self.dispatch(t, to),
            None => self.set_state(t, State::NoWorker),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The scheduler driven by hand through a fake comm: every message it emits or receives
    //! goes through the real codec, and fake workers and clients answer as the real ones
    //! would (fetching inputs from the addresses they are given, reporting missing data,
    //! answering steal requests).

    use std::collections::VecDeque;
    use std::fmt::Debug;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::codec::round_trip;
    use crate::protocol::{CarriesValues, ClientTask};

    fn rt<M: Serialize + DeserializeOwned + CarriesValues + Clone + PartialEq + Debug>(m: M) -> M {
        let mut back = round_trip(vec![m.clone()]).expect("codec round trip");
        assert_eq!(back.len(), 1);
        let back = back.pop().expect("one message");
        assert_eq!(back, m, "the codec changed a message");
        back
    }

    pub(super) fn k(s: &str) -> Key {
        Key::named(s)
    }

    pub(super) fn op(name: &str) -> Arc<WireOp> {
        Arc::new(WireOp {
            name: name.into(),
            params: vec![1, 2],
        })
    }

    pub(super) fn ct(key: &str, deps: &[&str], order: u32) -> ClientTask {
        ClientTask {
            key: k(key),
            op: op(&format!("op-{}", key.split('-').next().unwrap_or(key))),
            deps: deps.iter().map(|d| k(d)).collect(),
            order,
            projected_nbytes: None,
        }
    }

    pub(super) fn update(tasks: Vec<ClientTask>, wants: &[&str]) -> ToScheduler {
        ToScheduler::UpdateGraph {
            tasks,
            wants: wants.iter().map(|w| k(w)).collect(),
            priority: 0,
            retries: 0,
            fire_and_forget: false,
        }
    }

    pub(super) struct Assigned {
        deps: Vec<DepLocation>,
        pub(super) started: bool,
        inline: bool,
        attempt: u32,
    }

    pub(super) struct FakeWorker {
        pub(super) addr: String,
        pub(super) tasks: BTreeMap<Key, Assigned>,
        pub(super) held: BTreeMap<Key, u64>,
        pub(super) outbox: VecDeque<FromWorker>,
        pub(super) frees: Vec<Key>,
        /// Keys freed while this worker's finish (or error) for them was still in flight. If
        /// the scheduler re-sends such a key to this worker before the stale finish arrives,
        /// it cannot tell the two runs apart (the protocol carries no attempt number), so it
        /// may take the stale finish for the new run: a known, harmless duplicate (see the
        /// module docs). The double-run check exempts exactly these keys.
        pub(super) ambiguous: BTreeSet<Key>,
    }

    pub(super) struct Sim {
        pub(super) s: ClusterState,
        pub(super) workers: BTreeMap<WorkerId, FakeWorker>,
        pub(super) inbox: BTreeMap<ClientId, Vec<ToClient>>,
        pub(super) sizes: FxHashMap<Key, u64>,
        /// Keys whose op fails this many more times.
        pub(super) fail: FxHashMap<Key, u32>,
        pub(super) runs: FxHashMap<Key, u32>,
        /// The run time fake workers report (None: not reported, so no op counts as short).
        pub(super) compute_us: Option<u32>,
        next_worker: WorkerId,
        /// `SCHED_TRACE=1` prints every message, for debugging a failing case.
        trace: bool,
    }

    impl Sim {
        pub(super) fn new(config: SchedulerConfig) -> Self {
            Sim {
                s: ClusterState::new(config),
                workers: BTreeMap::new(),
                inbox: BTreeMap::new(),
                sizes: FxHashMap::default(),
                fail: FxHashMap::default(),
                runs: FxHashMap::default(),
                compute_us: None,
                next_worker: 1,
                trace: std::env::var_os("SCHED_TRACE").is_some(),
            }
        }

        pub(super) fn add_worker_with(&mut self, nthreads: u32, memory_limit: u64) -> WorkerId {
            let id = self.next_worker;
            self.next_worker += 1;
            let addr = format!("10.0.0.{id}:7000");
            self.workers.insert(
                id,
                FakeWorker {
                    addr: addr.clone(),
                    tasks: BTreeMap::new(),
                    held: BTreeMap::new(),
                    outbox: VecDeque::new(),
                    frees: Vec::new(),
                    ambiguous: BTreeSet::new(),
                },
            );
            self.s.add_worker(
                id,
                WorkerInfo {
                    name: format!("w{id}"),
                    address: addr,
                    nthreads,
                    memory_limit,
                },
            );
            self.pump();
            id
        }

        pub(super) fn add_worker(&mut self, nthreads: u32) -> WorkerId {
            self.add_worker_with(nthreads, 1 << 30)
        }

        pub(super) fn kill(&mut self, w: WorkerId, cause: &str) {
            if self.trace {
                eprintln!("kill w{w}");
            }
            self.workers.remove(&w);
            self.s.remove_worker(w, cause);
            self.pump();
        }

        pub(super) fn client(&mut self, c: ClientId, msg: ToScheduler) {
            let msg = rt(msg);
            if self.trace {
                eprintln!("c{c} -> {msg:?}");
            }
            self.s.handle_client(c, msg);
            self.pump();
        }

        pub(super) fn balance(&mut self) {
            if self.trace {
                eprintln!("balance");
            }
            self.s.balance();
            self.pump();
        }

        /// Delivers everything the scheduler emitted, through the codec.
        pub(super) fn pump(&mut self) {
            for o in self.s.drain() {
                match o {
                    Outgoing::Worker(w, m) => {
                        let m = rt(m);
                        if self.trace {
                            eprintln!("  -> w{w}: {m:?}");
                        }
                        assert!(
                            self.workers.contains_key(&w),
                            "message to dead worker {w}: {m:?}"
                        );
                        if let ToWorker::ComputeTask { key, .. } = &m {
                            for (ow, fw) in &self.workers {
                                assert!(
                                    *ow == w
                                        || !fw.tasks.contains_key(key)
                                        || fw.ambiguous.contains(key),
                                    "{key} sent to worker {w} while worker {ow} still has it: \
                                     it would run twice"
                                );
                            }
                        }
                        self.workers.get_mut(&w).expect("checked").receive(m);
                    }
                    Outgoing::Client(c, m) => {
                        let m = rt(m);
                        if self.trace {
                            eprintln!("  -> c{c}: {m:?}");
                        }
                        self.inbox.entry(c).or_default().push(m);
                    }
                }
            }
            self.s.check_invariants();
        }

        /// Worker `w` runs `key` if it can fetch its inputs (else it reports them missing);
        /// its messages wait in its outbox. Returns whether it ran.
        pub(super) fn run(&mut self, w: WorkerId, key: &Key) -> bool {
            let fw = &self.workers[&w];
            let Some(a) = fw.tasks.get(key) else {
                return false;
            };
            let mut fetched = Vec::new();
            let mut missing = Vec::new();
            for d in &a.deps {
                if fw.held.contains_key(&d.key) {
                    continue;
                }
                assert!(
                    !d.who_has.is_empty(),
                    "{key} sent with input {} held nowhere",
                    d.key
                );
                let found = self
                    .workers
                    .values()
                    .find(|o| d.who_has.contains(&o.addr) && o.held.contains_key(&d.key));
                match found {
                    Some(o) => fetched.push((d.key.clone(), o.held[&d.key])),
                    None => {
                        for addr in &d.who_has {
                            missing.push(FromWorker::MissingData {
                                key: d.key.clone(),
                                errant_worker: addr.clone(),
                            });
                        }
                    }
                }
            }
            let fw = self.workers.get_mut(&w).expect("live");
            if !missing.is_empty() {
                fw.outbox.extend(missing);
                return false;
            }
            let a = fw.tasks.remove(key).expect("assigned");
            if !fetched.is_empty() {
                fw.held.extend(fetched.iter().cloned());
                fw.outbox.push_back(FromWorker::AddKeys { keys: fetched });
            }
            *self.runs.entry(key.clone()).or_default() += 1;
            if let Some(n) = self.fail.get_mut(key).filter(|n| **n > 0) {
                *n -= 1;
                fw.outbox.push_back(FromWorker::TaskErred {
                    key: key.clone(),
                    error: RemoteError {
                        key: key.to_string(),
                        op: "op".into(),
                        kind: ErrorKind::Failed,
                        message: format!("boom in {key}"),
                    },
                    attempt: a.attempt,
                });
                return true;
            }
            let nbytes = self.sizes.get(key).copied().unwrap_or(8);
            fw.held.insert(key.clone(), nbytes);
            let value = (a.inline && nbytes <= 1024)
                .then(|| WireValue::new("bytes", vec![7u8; nbytes as usize]));
            fw.outbox.push_back(FromWorker::TaskFinished {
                key: key.clone(),
                nbytes,
                type_tag: "bytes".into(),
                value,
                attempt: a.attempt,
                compute_us: self.compute_us,
            });
            true
        }

        pub(super) fn deliver_one(&mut self, w: WorkerId) -> bool {
            let Some(m) = self
                .workers
                .get_mut(&w)
                .and_then(|fw| fw.outbox.pop_front())
            else {
                return false;
            };
            let m = rt(m);
            if self.trace {
                eprintln!("w{w} -> {m:?}");
            }
            self.s.handle_worker(w, m);
            self.pump();
            true
        }

        pub(super) fn flush(&mut self, w: WorkerId) {
            while self.deliver_one(w) {}
        }

        /// Runs `key` on the worker it was sent to and delivers that worker's messages.
        pub(super) fn finish(&mut self, key: &str) {
            let key = k(key);
            let w = self
                .s
                .processing_on(&key)
                .unwrap_or_else(|| panic!("{key} is not processing"));
            assert!(self.run(w, &key), "{key} could not run on {w}");
            self.flush(w);
        }

        pub(super) fn assigned(&self, w: WorkerId) -> Vec<Key> {
            self.workers[&w].tasks.keys().cloned().collect()
        }

        /// Runs everything until nothing is left to do.
        pub(super) fn drive(&mut self) {
            for _ in 0..10_000 {
                let mut progress = false;
                let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
                for w in ids {
                    for key in self.assigned(w) {
                        progress |= self.run(w, &key);
                    }
                    while self.deliver_one(w) {
                        progress = true;
                    }
                }
                self.balance();
                if !progress {
                    return;
                }
            }
            let mut stuck = Vec::new();
            for (w, fw) in &self.workers {
                for key in fw.tasks.keys() {
                    stuck.push(format!(
                        "{key} on worker {w}: scheduler says {:?} on {:?}",
                        self.s.task_state(key),
                        self.s.processing_on(key)
                    ));
                }
            }
            panic!("the cluster never went quiet: {stuck:?}");
        }

        pub(super) fn take_inbox(&mut self, c: ClientId) -> Vec<ToClient> {
            self.inbox.remove(&c).unwrap_or_default()
        }
    }

    impl FakeWorker {
        fn receive(&mut self, m: ToWorker) {
            match m {
                ToWorker::ComputeTask {
                    key,
                    deps,
                    args,
                    inline_result,
                    attempt,
                    ..
                } => {
                    assert!(
                        args.iter().all(|&a| (a as usize) < deps.len()),
                        "{key}: bad args"
                    );
                    self.tasks.insert(
                        key,
                        Assigned {
                            deps,
                            started: false,
                            inline: inline_result,
                            attempt,
                        },
                    );
                }
                ToWorker::FreeKeys { keys } => {
                    for key in keys {
                        let in_flight = self.outbox.iter().any(|m| match m {
                            FromWorker::TaskFinished { key: kk, .. }
                            | FromWorker::TaskErred { key: kk, .. } => *kk == key,
                            _ => false,
                        });
                        if in_flight {
                            self.ambiguous.insert(key.clone());
                        }
                        self.tasks.remove(&key);
                        self.held.remove(&key);
                        self.frees.push(key);
                    }
                }
                ToWorker::StealRequest { key } => {
                    let released = match self.tasks.get(&key) {
                        Some(a) if !a.started => {
                            self.tasks.remove(&key);
                            true
                        }
                        _ => false,
                    };
                    self.outbox
                        .push_back(FromWorker::StealResponse { key, released });
                }
                ToWorker::PutData { values } => {
                    let keys: Vec<(Key, u64)> = values
                        .into_iter()
                        .map(|(key, v)| (key, v.data.len() as u64))
                        .collect();
                    self.held.extend(keys.iter().cloned());
                    self.outbox.push_back(FromWorker::AddKeys { keys });
                }
                ToWorker::SendInline { .. }
                | ToWorker::Close
                | ToWorker::Observe { .. }
                | ToWorker::Secrets { .. } => {}
            }
        }
    }

    fn in_memory(msgs: &[ToClient], key: &str) -> Option<(u64, Option<WireValue>)> {
        msgs.iter().find_map(|m| match m {
            ToClient::KeyInMemory {
                key: kk,
                nbytes,
                value,
            } if *kk == k(key) => Some((*nbytes, value.clone())),
            _ => None,
        })
    }

    fn erred(msgs: &[ToClient], key: &str) -> Option<RemoteError> {
        msgs.iter().find_map(|m| match m {
            ToClient::KeyErred { key: kk, error } if *kk == k(key) => Some(error.clone()),
            _ => None,
        })
    }

    fn sim() -> Sim {
        Sim::new(SchedulerConfig::default())
    }

    #[test]
    fn a_chain_runs_over_two_workers_and_frees_intermediates() {
        let mut s = sim();
        let w1 = s.add_worker(2);
        let w2 = s.add_worker(2);
        s.client(
            1,
            update(
                vec![ct("a", &[], 0), ct("b", &["a"], 1), ct("c", &["b"], 2)],
                &["c"],
            ),
        );
        assert_eq!(s.s.n_tasks(), 3);
        assert_eq!(s.s.task_state(&k("a")), Some(TaskStateKind::Processing));
        assert_eq!(s.s.task_state(&k("b")), Some(TaskStateKind::Waiting));
        s.finish("a");
        // b goes where a is.
        assert_eq!(s.s.processing_on(&k("b")), Some(w1));
        s.finish("b");
        assert_eq!(s.s.task_state(&k("a")), Some(TaskStateKind::Released));
        assert!(
            !s.workers[&w1].held.contains_key(&k("a")),
            "a freed after its last reader"
        );
        s.finish("c");
        let msgs = s.take_inbox(1);
        let (nbytes, value) = in_memory(&msgs, "c").expect("c arrived");
        assert_eq!(nbytes, 8);
        assert_eq!(value.expect("inline").data.len(), 8);
        assert_eq!(s.s.who_has(&k("c")), vec![w1]);
        assert!(s.workers[&w2].held.is_empty());
        assert_eq!(
            s.workers[&w1].held.keys().cloned().collect::<Vec<_>>(),
            vec![k("c")]
        );
        // Released inputs stay known while c exists (to recompute c if it is lost).
        assert_eq!(s.s.n_tasks(), 3);
        s.client(1, ToScheduler::Release { keys: vec![k("c")] });
        assert_eq!(s.s.n_tasks(), 0);
        assert!(s.workers[&w1].held.is_empty());
        assert!(s.s.heap_bytes() < 10_000);
    }

    #[test]
    fn a_task_stays_within_its_memory_budget() {
        // The 1M-task budget is 500 bytes a task, all told; the struct is most of it.
        assert!(
            std::mem::size_of::<Option<Task>>() <= 216,
            "Task grew to {} bytes",
            std::mem::size_of::<Option<Task>>()
        );
    }

    #[test]
    fn dashboard_counters_follow_every_transition() {
        // Keys `inc-<token>` share the prefix `inc`; `sum-<token>` reads all of them.
        let name = |p: &str, i: usize| format!("{p}-{i:032x}");
        let mut s = sim();
        let w = s.add_worker(1);
        let incs: Vec<String> = (0..3).map(|i| name("inc", i)).collect();
        let sum = name("sum", 9);
        let mut tasks: Vec<ClientTask> = incs.iter().map(|n| ct(n, &[], 0)).collect();
        let deps: Vec<&str> = incs.iter().map(String::as_str).collect();
        tasks.push(ct(&sum, &deps, 1));
        s.client(1, update(tasks, &[sum.as_str()]));
        let row = |s: &Sim, p: &str| {
            s.s.prefix_rows()
                .into_iter()
                .find(|r| r.prefix == p)
                .unwrap_or_else(|| panic!("no row for {p}"))
        };
        let inc = row(&s, "inc");
        assert_eq!(inc.counts.total(), 3);
        assert_eq!(
            inc.counts.waiting + inc.counts.queued + inc.counts.processing,
            3
        );
        assert_eq!(row(&s, "sum").counts.waiting, 1);
        // Small graph: one node per task, an edge per input.
        let g = s.s.graph_view(100);
        assert!(!g.grouped);
        assert_eq!((g.nodes.len(), g.edges.len()), (4, 3));
        // Over the limit: one node per prefix, one edge inc -> sum.
        let g = s.s.graph_view(2);
        assert!(g.grouped);
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.edges.len(), 1);
        let from = &g
            .nodes
            .iter()
            .find(|n| n.id == g.edges[0][0])
            .unwrap()
            .prefix;
        assert_eq!(from, "inc");

        for n in &incs {
            s.finish(n);
        }
        let inc = row(&s, "inc");
        assert_eq!((inc.counts.memory, inc.nbytes, inc.keys), (3, 24, 3));
        s.finish(&sum);
        let inc = row(&s, "inc");
        assert_eq!((inc.counts.memory, inc.counts.released), (0, 3));
        assert_eq!((inc.nbytes, inc.keys), (0, 0));
        let total = row(&s, "sum");
        assert_eq!((total.counts.memory, total.nbytes), (1, 8));
        assert_eq!(s.s.worker_summaries()[0].id, w);
        // Released by its client: everything is forgotten, and counted as such.
        s.client(
            1,
            ToScheduler::Release {
                keys: vec![k(&sum)],
            },
        );
        let inc = row(&s, "inc");
        assert_eq!((inc.counts.total(), inc.counts.forgotten), (3, 3));
        assert_eq!(row(&s, "sum").counts.forgotten, 1);
        assert!(
            s.s.graph_view(2).nodes.is_empty(),
            "no live prefix is drawn"
        );
        s.s.check_invariants();
    }

    #[test]
    fn a_replica_of_another_size_counts_with_the_task_s_size() {
        // A copy decoded on another worker may report another size (a DataFrame partition
        // no longer sharing its sender's buffers): releasing it must not underflow.
        let mut s = sim();
        let w1 = s.add_worker(1);
        let w2 = s.add_worker(1);
        s.client(1, update(vec![ct("a", &[], 0)], &["a"]));
        s.finish("a");
        assert_eq!(s.s.who_has(&k("a")), vec![w1]);
        let fw2 = s.workers.get_mut(&w2).unwrap();
        fw2.held.insert(k("a"), 1000);
        fw2.outbox.push_back(FromWorker::AddKeys {
            keys: vec![(k("a"), 1000)],
        });
        s.flush(w2);
        assert_eq!(s.s.who_has(&k("a")).len(), 2);
        s.s.check_invariants();
        s.client(1, ToScheduler::Release { keys: vec![k("a")] });
        s.s.check_invariants();
        assert_eq!(s.s.n_tasks(), 0);
    }

    #[test]
    fn graphs_from_two_clients_merge_by_key() {
        let mut s = sim();
        s.add_worker(4);
        s.client(1, update(vec![ct("x", &[], 0), ct("y", &["x"], 1)], &["y"]));
        s.client(
            2,
            update(vec![ct("x", &[], 0), ct("z", &["x"], 1)], &["z", "x"]),
        );
        assert_eq!(s.s.n_tasks(), 3);
        s.drive();
        assert_eq!(s.runs[&k("x")], 1, "the shared key ran once");
        assert!(in_memory(&s.take_inbox(1), "y").is_some());
        let m2 = s.take_inbox(2);
        assert!(in_memory(&m2, "z").is_some() && in_memory(&m2, "x").is_some());
        // A key already in memory is answered at once, without its value (fetch it).
        s.client(1, update(vec![ct("x", &[], 5)], &["x"]));
        assert_eq!(in_memory(&s.take_inbox(1), "x"), Some((8, None)));
        assert_eq!(s.runs[&k("x")], 1);
        s.client(
            2,
            ToScheduler::WhoHas {
                keys: vec![k("x"), k("nope")],
            },
        );
        let m2 = s.take_inbox(2);
        assert!(matches!(&m2[..], [ToClient::WhoHas { keys }]
            if keys[0].1 == vec!["10.0.0.1:7000".to_string()] && keys[1].1.is_empty()));
        s.client(1, ToScheduler::Close);
        s.s.remove_client(2);
        s.pump();
        assert_eq!(s.s.n_tasks(), 0);
    }

    #[test]
    fn releasing_the_last_want_frees_everything() {
        let mut s = sim();
        let w = s.add_worker(1);
        s.client(
            1,
            update(
                vec![ct("a", &[], 0), ct("b", &["a"], 1), ct("c", &["b"], 2)],
                &["b", "c"],
            ),
        );
        s.drive();
        assert_eq!(s.workers[&w].held.len(), 2);
        s.client(1, ToScheduler::Release { keys: vec![k("b")] });
        assert!(s.workers[&w].frees.contains(&k("b")));
        assert_eq!(s.s.task_state(&k("b")), Some(TaskStateKind::Released));
        s.client(1, ToScheduler::Release { keys: vec![k("c")] });
        assert_eq!(s.s.n_tasks(), 0);
        assert!(s.workers[&w].held.is_empty());
        // Releasing while running takes the running task back.
        s.client(1, update(vec![ct("d", &[], 0), ct("e", &["d"], 1)], &["e"]));
        assert_eq!(s.s.task_state(&k("d")), Some(TaskStateKind::Processing));
        s.client(1, ToScheduler::Release { keys: vec![k("e")] });
        assert_eq!(s.s.n_tasks(), 0);
        assert!(s.workers[&w].tasks.is_empty());
        assert!(s.workers[&w].frees.contains(&k("d")));
    }

    #[test]
    fn short_roots_get_extra_slots_once_their_run_time_is_known() {
        let names: Vec<String> = (0..300).map(|i| format!("inc-{i}")).collect();
        let wants: Vec<&str> = names.iter().map(String::as_str).collect();
        let roots = |names: &[String]| -> Vec<ClientTask> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| ct(n, &[], i as u32))
                .collect()
        };
        for (compute_us, extra) in [(None, 0), (Some(10), 64), (Some(400), 5), (Some(5000), 0)] {
            let mut s = sim();
            s.compute_us = compute_us;
            let w = s.add_worker(1);
            s.client(1, update(roots(&names), &wants));
            // Nothing known yet: ceil(1 * 1.1) = 2 slots.
            assert_eq!(s.assigned(w).len(), 2);
            let first = s.assigned(w)[0].clone();
            s.run(w, &first);
            s.flush(w);
            // inc is short (10 us: 2 ms of them is 200, capped at 64; 400 us: 5), or long
            // or unreported (no extra).
            assert_eq!(s.assigned(w).len(), 2 + extra, "run time {compute_us:?} us");
            s.drive();
            for n in &names {
                assert!(in_memory(&s.inbox[&1], n).is_some(), "{n}");
            }
        }
    }

    #[test]
    fn root_tasks_are_queued_by_saturation_and_memory() {
        let mut s = sim();
        let w = s.add_worker(2);
        let roots: Vec<ClientTask> = (0..10).map(|i| ct(&format!("r{i}"), &[], i)).collect();
        let names: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        let wants: Vec<&str> = names.iter().map(String::as_str).collect();
        s.client(1, update(roots, &wants));
        let mut max = 0;
        for _ in 0..20 {
            let now = s.assigned(w);
            max = max.max(now.len());
            assert!(
                now.len() <= 3,
                "ceil(2 * 1.1) = 3 at most, got {}",
                now.len()
            );
            let Some(first) = now.first() else { break };
            // Priority order: the first released are the first in the static order.
            s.run(w, first);
            s.flush(w);
        }
        assert_eq!(max, 3);
        for n in &names {
            assert!(in_memory(&s.inbox[&1], n).is_some());
        }

        // Admission by projected bytes: 300 MB roots on a 1 GB worker (80% = 800 MB).
        let mut s = sim();
        let w = s.add_worker_with(8, 1_000_000_000);
        let big: Vec<ClientTask> = (0..5)
            .map(|i| ClientTask {
                projected_nbytes: Some(300_000_000),
                ..ct(&format!("big{i}"), &[], i)
            })
            .collect();
        s.client(1, update(big, &["big0", "big1", "big2", "big3", "big4"]));
        assert_eq!(s.assigned(w).len(), 2, "a third would pass 800 MB");
        assert_eq!(s.s.task_state(&k("big4")), Some(TaskStateKind::Queued));
    }

    #[test]
    fn placement_prefers_the_worker_holding_a_big_input() {
        let mut s = sim();
        let w2 = s.add_worker(1); // id 1
        s.sizes.insert(k("big"), 100_000_000);
        s.client(1, update(vec![ct("big", &[], 0)], &["big"]));
        s.finish("big");
        let w_other = s.add_worker(1);
        assert!(w_other > w2);
        // Load the holder a little: 1 ms of queue is still cheaper than 100 ms of transfer.
        s.client(
            1,
            update(
                vec![ct("small", &[], 0), ct("t", &["big", "small"], 1)],
                &["t"],
            ),
        );
        s.finish("small");
        assert_eq!(s.s.processing_on(&k("t")), Some(w2));
        // A small input does not pin a task to a busy worker.
        s.sizes.insert(k("s2"), 8);
        let w3 = s.add_worker(1);
        s.client(1, update(vec![ct("s2", &[], 0)], &["s2"]));
        let holder = s.s.processing_on(&k("s2")).expect("running");
        s.finish("s2");
        s.client(
            1,
            update(
                vec![
                    ct("u1", &["s2"], 1),
                    ct("u2", &["s2"], 2),
                    ct("u3", &["s2"], 3),
                ],
                &["u1", "u2", "u3"],
            ),
        );
        let places: BTreeSet<WorkerId> = ["u1", "u2", "u3"]
            .iter()
            .map(|u| s.s.processing_on(&k(u)).expect("placed"))
            .collect();
        assert!(
            places.len() > 1,
            "spread over workers, holder {holder}, {w3}"
        );
    }

    #[test]
    fn losing_a_worker_mid_run_recomputes_and_the_result_arrives() {
        let mut s = sim();
        let w1 = s.add_worker(2);
        let w2 = s.add_worker(2);
        s.client(
            1,
            update(
                vec![ct("a", &[], 0), ct("b", &["a"], 1), ct("c", &["b"], 2)],
                &["c"],
            ),
        );
        s.finish("a");
        assert_eq!(s.s.processing_on(&k("b")), Some(w1));
        s.kill(w1, "connection closed");
        // a's only copy was on w1: recomputed on w2; b waits for it.
        assert_eq!(s.s.processing_on(&k("a")), Some(w2));
        assert_eq!(s.s.task_state(&k("b")), Some(TaskStateKind::Waiting));
        s.drive();
        assert!(in_memory(&s.inbox[&1], "c").is_some());
        assert_eq!(s.runs[&k("a")], 2);
        assert_eq!(s.s.who_has(&k("c")), vec![w2]);

        // Losing a finished result that a client still wants recomputes the chain.
        let w3 = s.add_worker(1);
        s.kill(w2, "no heartbeat for 10 s");
        assert_eq!(s.s.processing_on(&k("a")), Some(w3));
        s.drive();
        assert_eq!(s.s.task_state(&k("c")), Some(TaskStateKind::Memory));
        assert_eq!(s.runs[&k("c")], 2);
        // One terminal message for one want.
        let n = s.inbox[&1]
            .iter()
            .filter(|m| matches!(m, ToClient::KeyInMemory { .. }))
            .count();
        assert_eq!(n, 1);
    }

    #[test]
    fn missing_data_takes_dependents_back_and_recomputes() {
        let mut s = sim();
        let w1 = s.add_worker(1);
        s.client(1, update(vec![ct("a", &[], 0), ct("b", &["a"], 1)], &["b"]));
        s.finish("a");
        let w2 = s.add_worker(1);
        // Pretend a vanished from w1 without the scheduler knowing.
        s.workers.get_mut(&w1).unwrap().held.clear();
        s.workers.get_mut(&w1).unwrap().tasks.clear();
        s.s.handle_worker(
            w2,
            rt(FromWorker::MissingData {
                key: k("a"),
                errant_worker: "10.0.0.1:7000".into(),
            }),
        );
        s.pump();
        assert_eq!(s.s.task_state(&k("b")), Some(TaskStateKind::Waiting));
        assert!(s.s.processing_on(&k("a")).is_some());
        s.drive();
        assert!(in_memory(&s.inbox[&1], "b").is_some());
    }

    #[test]
    fn a_task_that_kills_three_workers_errs_naming_them() {
        let mut s = sim();
        s.client(
            1,
            update(
                vec![ct("bad-1", &[], 0), ct("after", &["bad-1"], 1)],
                &["after"],
            ),
        );
        let causes = [
            "killed by signal 9",
            "connection closed",
            "out of memory (95%)",
        ];
        for cause in causes {
            let w = s.add_worker(1);
            assert_eq!(s.s.processing_on(&k("bad-1")), Some(w));
            s.kill(w, cause);
        }
        assert_eq!(s.s.task_state(&k("bad-1")), Some(TaskStateKind::Erred));
        let e = erred(&s.inbox[&1], "after").expect("the dependent erred");
        assert_eq!(e.kind, ErrorKind::DependencyFailed);
        assert!(e.message.contains("bad-1"), "{}", e.message);
        s.client(1, update(vec![], &["bad-1"]));
        let e = erred(&s.inbox[&1], "bad-1").expect("erred");
        assert_eq!(e.kind, ErrorKind::KilledWorker { deaths: 3 });
        for (i, cause) in causes.iter().enumerate() {
            let id = i + 1;
            for part in [
                format!("'w{id}'"),
                format!("10.0.0.{id}:7000"),
                cause.to_string(),
            ] {
                assert!(
                    e.message.contains(&part),
                    "{part} missing from {}",
                    e.message
                );
            }
        }
        // The op travels in its own field (the client's error names key, op and deaths).
        assert_eq!(e.op, "op-bad");
        // With no worker left nothing else errs; a new worker finds nothing to do.
        let w = s.add_worker(1);
        assert!(s.assigned(w).is_empty());
    }

    #[test]
    fn errors_reach_wanters_and_dependents_but_not_unrelated_branches() {
        let mut s = sim();
        s.add_worker(2);
        s.fail.insert(k("a"), 1);
        s.client(
            1,
            update(
                vec![
                    ct("a", &[], 0),
                    ct("b", &["a"], 1),
                    ct("bb", &["b"], 2),
                    ct("c", &[], 3),
                    ct("d", &["c"], 4),
                ],
                &["a", "bb", "d"],
            ),
        );
        s.client(2, update(vec![], &["b"]));
        s.drive();
        let m1 = s.take_inbox(1);
        let ea = erred(&m1, "a").expect("a erred");
        assert_eq!(ea.kind, ErrorKind::Failed);
        let ebb = erred(&m1, "bb").expect("bb erred");
        assert_eq!(ebb.kind, ErrorKind::DependencyFailed);
        assert!(
            ebb.message.contains("dependency a") && ebb.message.contains("boom in a"),
            "{}",
            ebb.message
        );
        assert_eq!(ebb.key, "bb");
        assert!(erred(&s.take_inbox(2), "b").is_some());
        assert!(
            in_memory(&m1, "d").is_some(),
            "the unrelated branch finished"
        );
        assert_eq!(s.runs.get(&k("b")), None);
    }

    #[test]
    fn retries_rerun_a_failing_task() {
        let mut s = sim();
        s.add_worker(1);
        s.fail.insert(k("flaky"), 2);
        s.client(
            1,
            ToScheduler::UpdateGraph {
                tasks: vec![ct("flaky", &[], 0)],
                wants: vec![k("flaky")],
                priority: 0,
                retries: 2,
                fire_and_forget: false,
            },
        );
        s.drive();
        assert!(in_memory(&s.inbox[&1], "flaky").is_some());
        assert_eq!(s.runs[&k("flaky")], 3);

        s.fail.insert(k("doomed"), 5);
        s.client(
            1,
            ToScheduler::UpdateGraph {
                tasks: vec![ct("doomed", &[], 0)],
                wants: vec![k("doomed")],
                priority: 0,
                retries: 1,
                fire_and_forget: false,
            },
        );
        s.drive();
        assert!(erred(&s.inbox[&1], "doomed").is_some());
        assert_eq!(s.runs[&k("doomed")], 2);
    }

    #[test]
    fn cancel_stops_the_key_and_what_only_it_needs() {
        let mut s = sim();
        let w = s.add_worker(1);
        s.client(1, update(vec![ct("a", &[], 0), ct("b", &["a"], 1)], &["b"]));
        s.client(2, update(vec![ct("a", &[], 0), ct("b", &["a"], 1)], &["b"]));
        s.client(1, ToScheduler::Cancel { keys: vec![k("b")] });
        for c in [1, 2] {
            assert!(
                matches!(&s.inbox[&c][..], [ToClient::KeyCancelled { key, .. }] if *key == k("b"))
            );
        }
        assert!(s.workers[&w].frees.contains(&k("a")));
        assert!(s.workers[&w].tasks.is_empty());
        assert_eq!(s.s.n_tasks(), 0);
    }

    #[test]
    fn fire_and_forget_runs_then_lets_go() {
        let mut s = sim();
        s.add_worker(1);
        s.client(
            1,
            ToScheduler::UpdateGraph {
                tasks: vec![ct("a", &[], 0), ct("side-effect", &["a"], 1)],
                wants: vec![k("side-effect")],
                priority: 0,
                retries: 0,
                fire_and_forget: true,
            },
        );
        s.client(1, ToScheduler::Close);
        s.drive();
        assert_eq!(s.runs[&k("side-effect")], 1);
        assert_eq!(s.s.n_tasks(), 0);
        assert!(s.inbox.is_empty());
    }

    #[test]
    fn scattered_data_feeds_tasks_and_is_lost_with_its_worker() {
        let mut s = sim();
        let w1 = s.add_worker(1);
        s.client(
            1,
            ToScheduler::Scatter {
                values: vec![(k("x"), WireValue::new("bytes", vec![1u8; 16]))],
            },
        );
        assert_eq!(s.s.task_state(&k("x")), Some(TaskStateKind::Waiting));
        s.client(1, update(vec![ct("t", &["x"], 0)], &["t"]));
        assert_eq!(s.s.task_state(&k("t")), Some(TaskStateKind::Waiting));
        s.flush(w1); // AddKeys
        assert_eq!(in_memory(&s.inbox[&1], "x"), Some((16, None)));
        assert_eq!(s.s.processing_on(&k("t")), Some(w1));
        s.finish("t");
        assert!(in_memory(&s.inbox[&1], "t").is_some());
        s.take_inbox(1);
        s.kill(w1, "killed by signal 9");
        let e = erred(&s.inbox[&1], "x").expect("x lost");
        assert_eq!(e.kind, ErrorKind::Lost);
        assert!(e.message.contains('x'));
        // t itself was lost too and cannot be recomputed.
        assert!(erred(&s.inbox[&1], "t").is_some());

        // Scattering with no worker waits for one.
        let mut s = sim();
        s.client(
            1,
            ToScheduler::Scatter {
                values: vec![(k("y"), WireValue::new("bytes", vec![2u8; 4]))],
            },
        );
        let w = s.add_worker(1);
        s.flush(w);
        assert_eq!(s.s.who_has(&k("y")), vec![w]);
    }

    #[test]
    fn stealing_is_a_handshake_and_never_runs_a_task_twice() {
        let mut s = sim();
        let w1 = s.add_worker(1);
        s.sizes.insert(k("big"), 100_000_000);
        s.client(1, update(vec![ct("big", &[], 0)], &["big"]));
        s.finish("big");
        let w2 = s.add_worker(1);
        let deps: Vec<ClientTask> = (0..6)
            .map(|i| ct(&format!("d{i}"), &["big"], i + 1))
            .collect();
        let names: Vec<String> = (0..6).map(|i| format!("d{i}")).collect();
        let wants: Vec<&str> = names.iter().map(String::as_str).collect();
        s.client(1, update(deps, &wants));
        assert_eq!(s.assigned(w1).len(), 6, "all next to their big input");
        // Every task on w1 has started: the steals are refused and nothing moves.
        for a in s.workers.get_mut(&w1).unwrap().tasks.values_mut() {
            a.started = true;
        }
        s.balance();
        let requests = s.workers[&w1].outbox.len();
        assert!(requests >= 1);
        // A second pass while the first is unanswered asks nothing new.
        s.balance();
        assert_eq!(s.workers[&w1].outbox.len(), requests);
        s.flush(w1);
        assert!(s.assigned(w2).is_empty());
        assert_eq!(s.assigned(w1).len(), 6);
        // Not started: the steal succeeds, the thief runs it, the victim never does.
        for a in s.workers.get_mut(&w1).unwrap().tasks.values_mut() {
            a.started = false;
        }
        s.balance();
        s.flush(w1);
        let moved = s.assigned(w2);
        assert_eq!(moved.len(), 1);
        // The steal answer crossing a finish: the victim finished the task first.
        s.drive();
        for n in &names {
            assert_eq!(s.runs[&k(n)], 1, "{n} ran once");
            assert!(in_memory(&s.inbox[&1], n).is_some());
        }
    }

    #[test]
    fn a_steal_answer_crossing_a_finish_is_harmless() {
        let mut s = sim();
        let w1 = s.add_worker(1);
        s.sizes.insert(k("big"), 100_000_000);
        s.client(1, update(vec![ct("big", &[], 0)], &["big"]));
        s.finish("big");
        let _w2 = s.add_worker(1);
        let deps: Vec<ClientTask> = (0..4)
            .map(|i| ct(&format!("d{i}"), &["big"], i + 1))
            .collect();
        s.client(1, update(deps, &["d0", "d1", "d2", "d3"]));
        // The victim runs everything before it sees the steal request.
        for key in s.assigned(w1) {
            assert!(s.run(w1, &key));
        }
        s.balance();
        s.flush(w1);
        for i in 0..4 {
            assert_eq!(s.runs[&k(&format!("d{i}"))], 1);
        }
        s.drive();
        for i in 0..4 {
            assert_eq!(s.runs[&k(&format!("d{i}"))], 1);
        }
    }

    #[test]
    fn an_unknown_dependency_refuses_the_whole_submission() {
        let mut s = sim();
        s.add_worker(1);
        s.client(
            1,
            update(vec![ct("a", &[], 0), ct("b", &["a", "ghost"], 1)], &["b"]),
        );
        match &s.take_inbox(1)[..] {
            [ToClient::GraphRefused { keys, reason }] => {
                assert_eq!(keys, &vec![k("b")]);
                assert!(reason.contains("ghost") && reason.contains('b'), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.s.n_tasks(), 0);
        // A cycle is refused too.
        s.client(
            1,
            update(vec![ct("p", &["q"], 0), ct("q", &["p"], 1)], &["p"]),
        );
        assert!(matches!(
            &s.take_inbox(1)[..],
            [ToClient::GraphRefused { .. }]
        ));
        assert_eq!(s.s.n_tasks(), 0);
        // A dependency already on the cluster is fine.
        s.client(1, update(vec![ct("a", &[], 0)], &["a"]));
        s.client(1, update(vec![ct("b", &["a", "a"], 1)], &["b"]));
        s.drive();
        assert!(in_memory(&s.inbox[&1], "b").is_some());
    }

    #[test]
    fn with_no_worker_ready_tasks_wait_for_one() {
        let mut s = sim();
        let w = s.add_worker(1);
        s.client(1, update(vec![ct("a", &[], 0), ct("b", &["a"], 1)], &["b"]));
        s.finish("a");
        s.kill(w, "connection closed");
        assert_eq!(s.s.task_state(&k("b")), Some(TaskStateKind::Waiting));
        assert!(s.inbox.get(&1).is_none_or(|m| m.is_empty()));
        s.add_worker(1);
        s.drive();
        assert!(in_memory(&s.inbox[&1], "b").is_some());
    }

    #[test]
    fn priorities_order_the_queue() {
        let mut s = sim();
        let w = s.add_worker(1);
        s.client(1, update(vec![ct("low", &[], 0)], &["low"]));
        s.client(
            1,
            ToScheduler::UpdateGraph {
                tasks: vec![ct("urgent", &[], 0), ct("later", &[], 1)],
                wants: vec![k("urgent"), k("later")],
                priority: 10,
                retries: 0,
                fire_and_forget: false,
            },
        );
        // ceil(1 * 1.1) = 2 slots: "low" went first, then the urgent one.
        let got = s.assigned(w);
        assert!(
            got.contains(&k("low")) && got.contains(&k("urgent")),
            "{got:?}"
        );
        assert_eq!(s.s.task_state(&k("later")), Some(TaskStateKind::Queued));
    }

    /// 1M single-input tasks over 1k roots, wanted, with no worker: the state's size.
    #[test]
    fn a_million_waiting_tasks_fit_in_500_bytes_each() {
        use rask_graph::KeyName;
        let n: u32 = if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        };
        let roots = KeyName::new("root-0123456789abcdef0123456789abcdef");
        let leaves = KeyName::new("leaf-0123456789abcdef0123456789abcdef");
        let root_op = op("root");
        let leaf_op = op("leaf");
        let mut tasks = Vec::with_capacity(n as usize + 1000);
        for j in 0..1000 {
            tasks.push(ClientTask {
                key: Key::new(roots.clone(), [j]),
                op: root_op.clone(),
                deps: vec![],
                order: j,
                projected_nbytes: Some(8),
            });
        }
        let mut wants = Vec::with_capacity(n as usize);
        for i in 0..n {
            let key = Key::new(leaves.clone(), [i]);
            wants.push(key.clone());
            tasks.push(ClientTask {
                key,
                op: leaf_op.clone(),
                deps: vec![Key::new(roots.clone(), [i % 1000])],
                order: 1000 + i,
                projected_nbytes: Some(8),
            });
        }
        let mut s = ClusterState::new(SchedulerConfig::default());
        s.handle_client(
            1,
            ToScheduler::UpdateGraph {
                tasks,
                wants,
                priority: 0,
                retries: 0,
                fire_and_forget: false,
            },
        );
        assert_eq!(s.n_tasks(), n as usize + 1000);
        let per_task = s.heap_bytes() / s.n_tasks();
        eprintln!("heap: {per_task} bytes per task ({} tasks)", s.n_tasks());
        assert!(per_task <= 500, "{per_task} bytes per task");
        assert!(s.drain().is_empty());
    }
}

#[cfg(test)]
mod proptests {
    //! Random small DAGs submitted by 1-2 clients over 1-3 workers, with a random
    //! interleaving of worker messages, worker joins and losses, releases, cancels and new
    //! submissions; the invariants are checked after every step (the fake comm does it), and
    //! at the end the cluster is driven to completion and every wanted key must have reached
    //! its client exactly once.

    use proptest::prelude::*;

    use super::tests::{Sim, ct, k};
    use super::*;
    use crate::protocol::ClientTask;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    struct Universe {
        deps: Vec<Vec<usize>>,
        fails: Vec<bool>,
        /// Big outputs pull their dependents onto their worker, which is what makes
        /// stealing worthwhile.
        big: Vec<bool>,
    }

    impl Universe {
        fn new(rng: &mut Rng) -> Self {
            let n = 3 + rng.below(28);
            let mut deps = Vec::new();
            let mut fails = Vec::new();
            let mut big = Vec::new();
            for i in 0..n {
                big.push(rng.below(4) == 0);
                let mut d = Vec::new();
                if i > 0 {
                    for _ in 0..rng.below(3) {
                        d.push(rng.below(i));
                    }
                }
                deps.push(d);
                fails.push(rng.below(12) == 0);
            }
            Universe { deps, fails, big }
        }

        fn name(i: usize) -> String {
            format!("t{i}")
        }

        fn task(&self, i: usize) -> ClientTask {
            let deps: Vec<String> = self.deps[i].iter().map(|&d| Self::name(d)).collect();
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            ct(&Self::name(i), &deps, i as u32)
        }

        /// `i` and its ancestors, inputs first.
        fn closure(&self, i: usize) -> Vec<usize> {
            let mut seen = vec![false; self.deps.len()];
            let mut stack = vec![i];
            while let Some(t) = stack.pop() {
                if !seen[t] {
                    seen[t] = true;
                    stack.extend(self.deps[t].iter().copied());
                }
            }
            (0..self.deps.len()).filter(|&t| seen[t]).collect()
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Got {
        Mem,
        Err,
        Cancelled,
    }

    /// Per (client, key): the terminal messages of the current want.
    type Episodes = BTreeMap<(ClientId, Key), Vec<Got>>;

    fn absorb(sim: &mut Sim, episodes: &mut Episodes) {
        for (c, msgs) in std::mem::take(&mut sim.inbox) {
            for m in msgs {
                let (key, got) = match m {
                    ToClient::KeyInMemory { key, .. } => (key, Got::Mem),
                    ToClient::KeyErred { key, .. } => (key, Got::Err),
                    ToClient::KeyCancelled { key, .. } => (key, Got::Cancelled),
                    ToClient::WhoHas { .. }
                    | ToClient::GraphRefused { .. }
                    | ToClient::Info { .. } => continue,
                };
                let ep = episodes
                    .get_mut(&(c, key.clone()))
                    .unwrap_or_else(|| panic!("client {c} told about {key} it does not want"));
                ep.push(got);
                let ok = matches!(
                    &ep[..],
                    [Got::Mem] | [Got::Err] | [Got::Cancelled] | [Got::Mem, Got::Err]
                );
                assert!(ok, "client {c}, {key}: {ep:?}");
            }
        }
    }

    fn run_case(seed: u64, actions: Vec<(u8, u16, u16)>) {
        let mut rng = Rng(seed | 1);
        let uni = Universe::new(&mut rng);
        let mut sim = Sim::new(SchedulerConfig::default());
        // A third of the cases report short run times, so short ops get extra root slots.
        if seed % 3 == 0 {
            sim.compute_us = Some(1 + (seed % 700) as u32);
        }
        for i in 0..uni.deps.len() {
            if uni.fails[i] {
                sim.fail.insert(k(&Universe::name(i)), u32::MAX);
            }
            if uni.big[i] {
                sim.sizes.insert(k(&Universe::name(i)), 100_000_000);
            }
        }
        let mut episodes: Episodes = BTreeMap::new();
        let n_clients = 1 + (seed % 2);
        for _ in 0..1 + rng.below(3) {
            sim.add_worker(1 + rng.below(2) as u32);
        }
        for (what, a, b) in actions {
            let (a, b) = (a as usize, b as usize);
            let live: Vec<WorkerId> = sim.workers.keys().copied().collect();
            let pick_worker = |x: usize| live.get(x % live.len().max(1)).copied();
            match what % 16 {
                0..=2 => {
                    if let Some(w) = pick_worker(a) {
                        let tasks = sim.assigned(w);
                        if !tasks.is_empty() {
                            let key = tasks[b % tasks.len()].clone();
                            sim.run(w, &key);
                        }
                    }
                }
                3..=5 => {
                    if let Some(w) = pick_worker(a) {
                        sim.deliver_one(w);
                    }
                }
                6 => {
                    if let Some(w) = pick_worker(a) {
                        if let Some(t) = sim
                            .workers
                            .get_mut(&w)
                            .unwrap()
                            .tasks
                            .values_mut()
                            .nth(b % 4)
                        {
                            t.started = true;
                        }
                    }
                }
                8 => {
                    if live.len() < 3 {
                        sim.add_worker(1 + (a % 2) as u32);
                    }
                }
                9 if b % 3 == 0 => {
                    if let Some(w) = pick_worker(a) {
                        sim.kill(w, "killed by the test");
                    }
                }
                10 | 14 => {
                    let wanted: Vec<(ClientId, Key)> = episodes.keys().cloned().collect();
                    if !wanted.is_empty() {
                        let (c, key) = wanted[a % wanted.len()].clone();
                        if what % 16 == 10 || b % 4 != 0 {
                            sim.client(
                                c,
                                ToScheduler::Release {
                                    keys: vec![key.clone()],
                                },
                            );
                            absorb(&mut sim, &mut episodes);
                            episodes.remove(&(c, key));
                        } else {
                            sim.client(
                                c,
                                ToScheduler::Cancel {
                                    keys: vec![key.clone()],
                                },
                            );
                            absorb(&mut sim, &mut episodes);
                            episodes.retain(|(_, kk), _| *kk != key);
                        }
                    }
                }
                11..=13 => {
                    let c = 1 + (b as u64 % n_clients);
                    let i = a % uni.deps.len();
                    let members = if b % 5 == 0 { vec![i] } else { uni.closure(i) };
                    let mut wants = vec![k(&Universe::name(i))];
                    if b % 3 == 0 {
                        let j = members[b % members.len()];
                        wants.push(k(&Universe::name(j)));
                    }
                    let ff = b % 11 == 0;
                    sim.client(
                        c,
                        ToScheduler::UpdateGraph {
                            tasks: members.iter().map(|&m| uni.task(m)).collect(),
                            wants: wants.clone(),
                            priority: (b % 3) as i32,
                            retries: (b % 2) as u32,
                            fire_and_forget: ff,
                        },
                    );
                    let refused = sim.inbox.get(&c).is_some_and(|m| {
                        m.iter().any(|x| matches!(x, ToClient::GraphRefused { .. }))
                    });
                    if !refused && !ff {
                        for w in wants {
                            episodes.entry((c, w)).or_default();
                        }
                    }
                    absorb(&mut sim, &mut episodes);
                }
                7 => sim.balance(),
                _ => {
                    let c = 1 + (b as u64 % n_clients);
                    sim.client(
                        c,
                        ToScheduler::WhoHas {
                            keys: vec![k(&Universe::name(a % uni.deps.len()))],
                        },
                    );
                    absorb(&mut sim, &mut episodes);
                }
            }
            absorb(&mut sim, &mut episodes);
        }

        // Drive to completion with a live worker.
        if sim.workers.is_empty() {
            sim.add_worker(2);
        }
        for a in sim.workers.values_mut() {
            for t in a.tasks.values_mut() {
                t.started = false;
            }
        }
        sim.drive();
        absorb(&mut sim, &mut episodes);
        sim.s.check_invariants();
        for ((c, key), got) in &episodes {
            let state = sim.s.task_state(key);
            match state {
                Some(TaskStateKind::Memory) => {
                    assert!(
                        got.first() == Some(&Got::Mem) && got.len() == 1,
                        "client {c}, {key} in memory, told {got:?}"
                    );
                }
                Some(TaskStateKind::Erred) => {
                    assert_eq!(got.last(), Some(&Got::Err), "client {c}, {key} erred");
                }
                other => panic!("client {c} wants {key}, which is {other:?} after the run"),
            }
        }
        // Nothing is left running or queued.
        for w in sim.workers.values() {
            assert!(w.tasks.is_empty() && w.outbox.is_empty());
        }
    }

    #[test]
    fn regression_case_1() {
        run_case(
            8613715740623178686,
            vec![
                (104, 37156, 10811),
                (217, 47811, 45177),
                (8, 20764, 33781),
                (88, 61485, 1239),
                (28, 49455, 8086),
                (112, 57244, 36921),
                (207, 36120, 29445),
                (14, 5246, 56559),
                (48, 57480, 29621),
                (245, 38523, 47990),
                (136, 55151, 29729),
                (144, 50192, 26827),
                (110, 40409, 32647),
                (98, 5695, 40834),
                (69, 38081, 39959),
                (209, 4954, 17249),
                (187, 60110, 52535),
                (237, 20946, 20595),
                (16, 2890, 4333),
                (8, 62858, 3464),
                (9, 5422, 50561),
                (127, 27104, 58725),
                (131, 7572, 58381),
                (185, 27662, 13963),
                (109, 24602, 40751),
                (96, 47892, 60924),
                (142, 783, 32591),
                (134, 34199, 41667),
                (152, 46572, 47769),
                (0, 40798, 48481),
                (198, 6980, 37458),
                (127, 48115, 34209),
                (215, 32471, 26996),
                (234, 50326, 64924),
                (0, 51928, 13912),
                (116, 39529, 45554),
                (237, 30519, 27980),
                (230, 30369, 42477),
                (250, 39786, 31120),
                (106, 6414, 37745),
                (183, 29216, 24666),
                (250, 21296, 53933),
                (134, 31068, 54226),
                (161, 57226, 61581),
                (118, 52316, 53687),
                (74, 25110, 41481),
                (42, 59921, 28215),
                (43, 60595, 8728),
                (213, 15976, 50464),
                (222, 47593, 3160),
                (120, 49697, 40850),
                (15, 27343, 13812),
                (237, 25430, 12905),
                (56, 57220, 36247),
                (72, 9725, 19309),
                (67, 16809, 26823),
                (70, 38359, 27233),
                (207, 26931, 54769),
                (89, 21408, 63225),
                (22, 24598, 34688),
                (253, 42966, 42517),
                (29, 28275, 55217),
                (23, 25623, 50482),
                (236, 9333, 2937),
                (194, 42223, 8097),
                (80, 4221, 21448),
                (23, 40548, 35429),
                (195, 8629, 63118),
                (50, 7096, 64666),
                (160, 7266, 44745),
                (241, 40265, 55557),
                (159, 59617, 29130),
                (12, 56396, 18216),
                (85, 64844, 64846),
                (220, 18910, 20161),
                (20, 3543, 62098),
                (183, 11409, 31496),
                (130, 15839, 44605),
                (169, 31300, 61055),
                (146, 26486, 49023),
                (116, 45474, 46850),
                (127, 60013, 7417),
                (201, 20839, 16671),
                (15, 23507, 12455),
                (16, 52515, 5618),
                (3, 23010, 37235),
                (151, 47282, 2207),
                (149, 38411, 4063),
                (159, 58198, 13482),
                (178, 56744, 29234),
                (9, 4455, 50860),
                (19, 46139, 59037),
                (200, 21997, 49853),
                (131, 297, 64100),
                (123, 21612, 32558),
                (228, 37389, 25689),
                (17, 23351, 30337),
                (127, 37117, 5131),
                (106, 47415, 6473),
                (231, 61882, 56094),
                (51, 49330, 48786),
                (20, 62338, 57187),
                (7, 40217, 37355),
                (48, 52714, 8714),
                (198, 60112, 23079),
                (75, 23464, 34467),
                (118, 63626, 42952),
                (151, 31631, 63436),
                (130, 20409, 12246),
                (124, 12460, 40140),
                (125, 37278, 55931),
                (33, 46144, 10753),
                (105, 4478, 15297),
                (62, 39157, 57034),
                (51, 9991, 30749),
                (173, 32178, 18842),
                (240, 22406, 4758),
                (154, 65526, 21168),
                (117, 11425, 6328),
                (73, 43858, 57297),
                (229, 54654, 45806),
                (68, 53059, 16042),
            ],
        );
    }

    #[test]
    fn regression_case_2() {
        run_case(
            9977444340179837121,
            vec![
                (248, 22122, 19120),
                (13, 12320, 18946),
                (116, 16944, 38017),
                (224, 45298, 31689),
                (248, 41114, 36878),
                (214, 39959, 3681),
                (8, 52455, 5606),
                (98, 63702, 27778),
                (247, 33172, 55442),
                (246, 29027, 48580),
                (133, 63556, 47137),
                (46, 40792, 7063),
                (111, 56037, 56758),
                (97, 30361, 12945),
                (190, 3886, 57790),
                (43, 58107, 19450),
                (49, 34111, 24165),
                (209, 37550, 15316),
                (52, 41537, 27061),
                (29, 57787, 30170),
                (219, 48891, 64558),
                (123, 48023, 17101),
                (204, 55822, 40699),
                (238, 47755, 11344),
                (73, 60388, 64267),
                (76, 58193, 51680),
                (7, 44884, 20355),
                (194, 64528, 60261),
                (177, 33698, 40383),
                (237, 51832, 45163),
                (200, 23278, 8653),
                (126, 29517, 57715),
                (116, 53170, 28302),
                (135, 39310, 50875),
                (127, 20339, 20421),
                (68, 58088, 48177),
                (97, 65355, 7747),
                (203, 2347, 45878),
                (116, 24054, 63843),
                (138, 36257, 2010),
                (227, 29470, 57322),
                (164, 63520, 52430),
                (55, 29020, 60813),
                (121, 20698, 11073),
                (66, 38620, 5529),
                (227, 18357, 48314),
                (252, 48765, 61984),
                (1, 47602, 38687),
                (219, 23593, 51466),
                (190, 9566, 39659),
                (206, 19604, 14119),
                (108, 29950, 43799),
                (132, 49192, 10845),
                (238, 43661, 33589),
                (39, 27787, 12951),
                (116, 64930, 11640),
                (100, 21293, 21077),
                (169, 45715, 39868),
                (28, 5201, 9931),
                (87, 10060, 36310),
                (138, 37006, 44066),
                (119, 54709, 4845),
                (221, 16022, 33746),
                (192, 28023, 4412),
                (239, 24082, 13699),
                (86, 58753, 53225),
                (102, 22542, 64775),
                (49, 45541, 21983),
                (146, 16874, 6535),
                (147, 19466, 59968),
                (172, 16728, 56785),
                (107, 19174, 48515),
                (174, 35678, 61666),
                (229, 4636, 27638),
                (22, 40740, 5536),
                (60, 55582, 433),
                (119, 41786, 40254),
                (142, 37405, 48002),
                (87, 53968, 28779),
                (123, 63493, 62829),
                (181, 47289, 5481),
                (142, 8967, 48929),
                (99, 23396, 56525),
                (231, 23115, 14336),
                (4, 63657, 1560),
                (3, 14851, 34747),
                (133, 22990, 58940),
                (135, 17301, 41695),
                (38, 42126, 17980),
                (109, 14144, 55447),
                (182, 26838, 18119),
                (55, 19396, 25407),
                (188, 10352, 9494),
                (66, 32116, 45539),
                (106, 63327, 13680),
                (197, 8086, 52210),
                (77, 9028, 38432),
                (87, 16484, 17631),
                (99, 3970, 25766),
                (45, 9288, 44691),
                (77, 1189, 56889),
                (86, 41124, 40550),
                (172, 59373, 865),
                (148, 21514, 28147),
                (94, 52166, 57583),
                (206, 50755, 19844),
                (104, 24602, 30824),
                (96, 43238, 7293),
                (195, 63789, 1955),
                (20, 18269, 11221),
                (182, 41706, 4057),
                (83, 44242, 31535),
                (253, 54941, 43423),
                (123, 57127, 9906),
                (81, 40184, 6359),
                (171, 7305, 4391),
                (144, 1794, 18982),
                (182, 30218, 32905),
                (14, 13513, 2691),
                (181, 4301, 11053),
                (221, 24798, 11027),
                (98, 50704, 51181),
                (196, 14915, 27332),
                (111, 18413, 408),
                (138, 55845, 13484),
                (139, 31009, 48356),
                (65, 24048, 38037),
                (249, 5747, 44651),
                (53, 8501, 61550),
                (36, 43850, 51638),
                (163, 34888, 344),
                (191, 28929, 56233),
                (216, 62047, 60163),
                (246, 54515, 45720),
                (131, 51462, 11844),
                (176, 50220, 36736),
                (22, 8023, 31553),
                (46, 29652, 40844),
                (26, 43153, 26344),
                (106, 33920, 17761),
                (9, 48149, 52352),
                (120, 14800, 49841),
                (175, 34724, 20892),
                (238, 24285, 20460),
                (109, 64200, 55203),
                (50, 49345, 60182),
                (23, 32936, 27679),
                (236, 44854, 59492),
                (63, 63417, 58144),
                (254, 59658, 5262),
                (46, 52797, 28864),
                (175, 44261, 62336),
                (61, 31468, 9812),
                (13, 36131, 33347),
                (68, 26771, 30982),
                (225, 40757, 22414),
                (36, 49687, 64247),
                (60, 22433, 1977),
                (60, 32838, 51443),
                (75, 14511, 63780),
                (184, 95, 38103),
            ],
        );
    }

    #[test]
    fn regression_case_3() {
        run_case(
            7989576289379550183,
            vec![
                (75, 9363, 9324),
                (185, 0, 24552),
                (0, 0, 10004),
                (152, 0, 0),
                (138, 0, 0),
                (11, 27476, 15412),
                (11, 41478, 31667),
                (91, 43883, 14900),
                (8, 0, 0),
                (107, 14044, 31961),
                (143, 0, 0),
                (126, 2860, 0),
                (74, 30885, 0),
                (91, 16727, 16249),
                (185, 6436, 11817),
                (202, 8948, 0),
                (99, 16160, 0),
                (27, 3754, 8274),
                (11, 15068, 11468),
                (168, 0, 0),
                (0, 0, 0),
                (106, 10320, 0),
                (94, 7027, 0),
                (243, 2871, 0),
                (0, 0, 0),
                (96, 8471, 0),
                (6, 0, 0),
                (170, 0, 0),
                (30, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (94, 0, 0),
                (0, 0, 0),
                (10, 0, 0),
                (0, 0, 0),
                (86, 0, 0),
                (0, 0, 0),
                (238, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (0, 0, 0),
                (14, 0, 0),
                (0, 0, 0),
                (11, 54499, 418),
                (62, 0, 0),
                (99, 37361, 0),
                (0, 24, 0),
                (0, 249, 0),
                (3, 16457, 0),
                (0, 0, 0),
                (0, 0, 0),
            ],
        );
    }

    #[test]
    fn regression_case_4() {
        run_case(
            14305170145895778947,
            vec![
                (153, 10662, 2856),
                (168, 14209, 16149),
                (216, 39794, 49960),
                (216, 65137, 17604),
                (12, 7138, 26954),
                (176, 40665, 21291),
                (236, 19102, 7899),
                (123, 32541, 26621),
                (89, 49336, 40647),
                (242, 60939, 47222),
                (92, 7816, 7818),
                (252, 916, 62377),
                (91, 25757, 22710),
                (8, 37818, 45206),
                (212, 39214, 17137),
                (165, 57012, 33340),
                (225, 22155, 12557),
                (238, 21191, 6479),
                (228, 61716, 4609),
                (91, 56061, 38133),
                (172, 21586, 4677),
                (93, 31166, 17572),
                (42, 57008, 65446),
                (108, 57319, 38021),
                (129, 30191, 14670),
                (107, 29765, 63150),
                (34, 44, 9105),
                (154, 57896, 56857),
                (65, 34854, 45782),
                (235, 21974, 13846),
                (236, 2822, 57918),
                (9, 6463, 27612),
                (36, 875, 2650),
                (242, 37668, 49559),
                (242, 49779, 41963),
                (148, 22437, 62638),
                (181, 53918, 33489),
                (210, 46161, 16481),
                (165, 27294, 1983),
                (136, 28460, 24852),
                (247, 30521, 54256),
            ],
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_event_orders_keep_the_invariants(
            seed in any::<u64>(),
            actions in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u16>()), 0..200),
        ) {
            run_case(seed, actions);
        }
    }
}
