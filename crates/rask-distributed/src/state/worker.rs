//! `WorkerState`: a worker's state machine, sans I/O.
//!
//! It holds metadata only (keys, states, sizes, priorities, who holds what); the driver holds
//! the values (in memory or in spill files), talks to peers and runs ops on its thread pool.
//! Every event comes in through a method and every consequence goes out as a
//! [`WorkerInstruction`] collected by [`WorkerState::drain`].
//!
//! # One record per key, one state per record
//!
//! A key is known here for one of three reasons: the scheduler asked this worker to compute
//! it (its *run*), a local task reads it (its *dependents*), or the scheduler believes this
//! worker holds it (*wanted*: a result announced with `TaskFinished`, a replica announced
//! with `AddKeys`, scattered data). A record with none of these reasons is dropped at once
//! (its value released), except while the pool or the network is still working on it: an
//! executing task or a fetch in flight cannot be recalled, so they are marked orphaned and
//! cleaned up when they come back.
//!
//! Tasks: `waiting` (some input absent) -> `ready` (all inputs present, queued by priority)
//! -> `executing` -> `memory` or `error`. Freeing an executing task turns it `cancelled`: it
//! keeps its thread and its inputs pinned until the pool returns, and its result is then
//! released instead of reported (or kept, if a new task here needs it after all; a new
//! `ComputeTask` for a cancelled key resumes it as `executing`).
//!
//! Inputs that are not here are the part Dask users see deadlock (dask/distributed #6159,
//! #6689, #6244): a key needed by a waiting task ended up in no queue at all. Here every
//! needed key that is absent is in exactly one of these states, each with a named way out:
//!
//! - `fetch`: queued at every holder not yet tried (one priority queue per peer); it leaves
//!   when some peer with no request in flight picks it up.
//! - `flight`: requested from exactly one peer, with that request in the in-flight table; it
//!   leaves when the driver reports the request done, busy or failed.
//! - `busy`: every remaining holder answered Busy; it goes back to `fetch` at `retry_busy`.
//! - `missing`: no holder left; `MissingData` was sent and the key stays until the scheduler
//!   names holders again (a new or repeated `ComputeTask` naming it) or frees the dependent.
//! - being computed here (`waiting`/`ready`/`executing`/`cancelled`) or `error` (the
//!   scheduler was told and frees the dependents).
//!
//! A key that runs out of untried holders goes to `busy` when some holder was only busy,
//! else to `missing`; a missing key is never retried on its own, because only the scheduler
//! can say where it went. [`WorkerState::check_invariants`] checks all of this after every
//! step of the property tests, together with liveness: no ready task waits while a thread is
//! free, and no peer with queued keys is idle while the byte cap would admit a request.
//!
//! # Fetching
//!
//! At most one request per peer is in flight (a second would only queue behind the first at
//! that peer); a request takes up to `max_fetch_keys_per_request` keys in priority order, and
//! requests are started while the bytes in flight stay under `max_fetch_bytes_in_flight`,
//! except that a request is always allowed when nothing is in flight, so one key larger than
//! the cap still moves. A fetched key is a replica the scheduler is told about (`AddKeys`,
//! batched per event) and then owns: it stays until `FreeKeys`. A fetch that is no longer
//! needed when it lands is released silently (the scheduler never heard of it).
//!
//! # Memory
//!
//! Managed bytes are the exact sizes of the values in memory. Above `target_fraction` of the
//! limit the least recently used values that no executing task reads are spilled; the same
//! happens from the process size (`memory_report`) above `spill_fraction`. Bytes being
//! spilled count as managed until the driver confirms (`spilled`). Above `pause_fraction`
//! nothing new is started or fetched (fetching only adds memory); above `terminate_fraction`
//! the driver is asked to restart the worker, once per crossing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rask_graph::Key;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::protocol::{
    DepLocation, ErrorKind, FromWorker, Priority, RemoteError, ToWorker, WireOp, WorkerMetrics,
};

/// Thresholds as fractions of memory_limit, Dask's defaults.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub nthreads: u32,
    /// 0 = no limit.
    pub memory_limit: u64,
    /// 0.6: start spilling managed memory LRU above this.
    pub target_fraction: f64,
    /// 0.7: spill based on process memory above this.
    pub spill_fraction: f64,
    /// 0.8: stop starting new tasks above this.
    pub pause_fraction: f64,
    /// 0.95: ask the driver to restart the worker.
    pub terminate_fraction: f64,
    /// Cap on bytes being fetched at once (one request is always allowed when none is in
    /// flight).
    pub max_fetch_bytes_in_flight: u64,
    /// Keys per request to one peer.
    pub max_fetch_keys_per_request: usize,
    /// Largest value sent inline in `TaskFinished`.
    pub inline_limit: u64,
}

impl WorkerConfig {
    /// Dask's defaults.
    pub fn new(nthreads: u32, memory_limit: u64) -> Self {
        WorkerConfig {
            nthreads,
            memory_limit,
            target_fraction: 0.6,
            spill_fraction: 0.7,
            pause_fraction: 0.8,
            terminate_fraction: 0.95,
            max_fetch_bytes_in_flight: 256 << 20,
            max_fetch_keys_per_request: 64,
            inline_limit: 64 << 10,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerInstruction {
    /// Run this task now on the pool; its inputs are all in the driver's store (spilled ones
    /// the driver reads back). `args` is the argument list (keys, possibly repeated).
    Execute {
        key: Key,
        op: Arc<WireOp>,
        args: Vec<Key>,
    },
    /// Ask peer `from` (a data address) for these keys (GetData) and report back with
    /// `fetch_done` / `fetch_busy` / `fetch_failed`.
    Fetch { from: String, keys: Vec<Key> },
    /// Send this to the scheduler. `TaskFinished` is always emitted with `value: None`.
    /// `type_tag` is empty when this state machine never learned it (a fetched or scattered
    /// value answered as a replica): the driver fills it from its store.
    Send(FromWorker),
    /// Like Send(TaskFinished) but the driver must attach the value inline (the scheduler
    /// asked for it and nbytes <= inline_limit). `type_tag` as for `Send`.
    SendFinishedInline {
        key: Key,
        nbytes: u64,
        type_tag: String,
        attempt: u32,
        compute_us: Option<u32>,
    },
    /// Drop this key's value from the store (memory or disk).
    Release { key: Key },
    /// Write this key's value to disk and drop it from memory; reply with `spilled`.
    Spill { key: Key },
    /// Memory is above the terminate threshold: the driver should exit so the worker is
    /// restarted (the scheduler recomputes what it held).
    Restart { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum St {
    Waiting,
    Ready,
    Executing,
    Cancelled,
    Fetch,
    Flight(String),
    Busy,
    Missing,
    Memory,
    Spilled,
    Erred,
}

impl St {
    fn name(&self) -> &'static str {
        match self {
            St::Waiting => "waiting",
            St::Ready => "ready",
            St::Executing => "executing",
            St::Cancelled => "cancelled",
            St::Fetch => "fetch",
            St::Flight(_) => "flight",
            St::Busy => "busy",
            St::Missing => "missing",
            St::Memory => "memory",
            St::Spilled => "spilled",
            St::Erred => "error",
        }
    }

    fn has_value(&self) -> bool {
        matches!(self, St::Memory | St::Spilled)
    }

    /// The key is a task attached here (its inputs link back to it).
    fn is_task(&self) -> bool {
        matches!(
            self,
            St::Waiting | St::Ready | St::Executing | St::Cancelled
        )
    }
}

/// A `ComputeTask`'s fields, as the state machine takes them.
struct RunRequest {
    op: Arc<WireOp>,
    args: Vec<u32>,
    priority: Priority,
    inline_result: bool,
    attempt: u32,
}

/// What the scheduler asked to run.
#[derive(Clone, Debug)]
struct Run {
    op: Arc<WireOp>,
    args: Vec<Key>,
    inline_result: bool,
    /// The scheduler's attempt number, echoed in the answer.
    attempt: u32,
    /// Where the inputs are, kept only while the run is pending behind a fetch of the same
    /// key (it is attached if that fetch fails everywhere).
    locs: Vec<DepLocation>,
}

#[derive(Debug)]
struct Rec {
    state: St,
    nbytes: u64,
    /// A task's own priority; for an absent input, the best priority of its dependents (the
    /// order in which it is fetched).
    priority: Priority,
    run: Option<Run>,
    /// Distinct inputs of the attached task (task states only).
    deps: Vec<Key>,
    /// Inputs in `deps` not present here.
    waiting_for: u32,
    /// Attached tasks here that read this key.
    dependents: FxHashSet<Key>,
    /// The scheduler believes this worker holds (or computes) this key.
    wanted: bool,
    /// Holders not tried yet.
    holders: Vec<String>,
    /// Holders that answered Busy, tried again at `retry_busy`.
    busy: Vec<String>,
    /// The last peer asked, named in `MissingData`.
    last_tried: String,
    type_tag: String,
    /// False once the driver said this value's type cannot be spilled.
    spillable: bool,
    /// A Spill was emitted and not yet confirmed.
    spilling: bool,
    /// LRU tick (valid while in the LRU index).
    lru: u64,
    /// Executing (or cancelled) tasks reading this key: never spilled while > 0.
    readers: u32,
}

impl Rec {
    fn new(state: St, nbytes: u64, priority: Priority) -> Self {
        Rec {
            state,
            nbytes,
            priority,
            run: None,
            deps: Vec::new(),
            waiting_for: 0,
            dependents: FxHashSet::default(),
            wanted: false,
            holders: Vec::new(),
            busy: Vec::new(),
            last_tried: String::new(),
            type_tag: String::new(),
            spillable: true,
            spilling: false,
            lru: 0,
            readers: 0,
        }
    }

    fn needed(&self) -> bool {
        self.wanted || self.run.is_some() || !self.dependents.is_empty()
    }
}

#[derive(Debug)]
struct Request {
    keys: Vec<Key>,
    bytes: u64,
}

/// A worker's state machine. See the module docs.
pub struct WorkerState {
    config: WorkerConfig,
    nthreads: usize,
    me: String,
    recs: FxHashMap<Key, Rec>,
    ready: BTreeSet<(Priority, Key)>,
    /// Executing and cancelled tasks: each holds a pool thread.
    executing: FxHashSet<Key>,
    /// Keys in `fetch`, queued at each of their untried holders.
    peer_queue: FxHashMap<String, BTreeSet<(Priority, Key)>>,
    in_flight: FxHashMap<String, Request>,
    bytes_in_flight: u64,
    /// Peers that answered Busy since the last `retry_busy`: not asked until then.
    busy_peers: FxHashSet<String>,
    /// Keys with a non-empty `busy` list.
    busy_keys: FxHashSet<Key>,
    /// Spill candidates (in memory, not being spilled, spillable) by last use.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    managed: u64,
    spilled: u64,
    spill_pending: u64,
    process: u64,
    paused: bool,
    restart_sent: bool,
    add_keys: Vec<(Key, u64)>,
    out: Vec<WorkerInstruction>,
}

impl WorkerState {
    pub fn new(config: WorkerConfig, my_address: String) -> Self {
        let nthreads = config.nthreads.max(1) as usize;
        WorkerState {
            config,
            nthreads,
            me: my_address,
            recs: FxHashMap::default(),
            ready: BTreeSet::new(),
            executing: FxHashSet::default(),
            peer_queue: FxHashMap::default(),
            in_flight: FxHashMap::default(),
            bytes_in_flight: 0,
            busy_peers: FxHashSet::default(),
            busy_keys: FxHashSet::default(),
            lru: BTreeMap::new(),
            tick: 0,
            managed: 0,
            spilled: 0,
            spill_pending: 0,
            process: 0,
            paused: false,
            restart_sent: false,
            add_keys: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    // ---------------------------------------------------------------- events

    /// A message from the scheduler. `PutData` and `SendInline` are handled by the driver
    /// (it owns the bytes) and are ignored here; so is `Close`.
    pub fn handle_scheduler(&mut self, msg: ToWorker) {
        match msg {
            ToWorker::ComputeTask {
                key,
                op,
                deps,
                args,
                priority,
                inline_result,
                projected_nbytes: _,
                attempt,
            } => {
                let run = RunRequest {
                    op,
                    args,
                    priority,
                    inline_result,
                    attempt,
                };
                self.compute_task(key, deps, run)
            }
            ToWorker::FreeKeys { keys } => {
                for key in keys {
                    self.free_key(&key);
                }
            }
            ToWorker::StealRequest { key } => {
                let released = self.steal(&key);
                self.send(FromWorker::StealResponse { key, released });
            }
            ToWorker::PutData { .. }
            | ToWorker::SendInline { .. }
            | ToWorker::Close
            | ToWorker::Observe { .. }
            | ToWorker::Secrets { .. } => {}
        }
        self.finish_event();
    }

    /// The driver stored these values (from PutData/scatter): they are in memory now; emits
    /// AddKeys to the scheduler.
    pub fn put_data(&mut self, keys: Vec<(Key, u64)>) {
        for (key, nbytes) in keys {
            let state = self.recs.get(&key).map(|r| r.state.clone());
            match state {
                None => {
                    self.recs.insert(
                        key.clone(),
                        Rec::new(St::Missing, nbytes, Priority::default()),
                    );
                    self.set_in_memory(&key, nbytes);
                }
                Some(St::Memory) => {
                    let rec = self.recs.get_mut(&key).expect("known");
                    self.managed = self.managed - rec.nbytes + nbytes;
                    if rec.spilling {
                        self.spill_pending = self.spill_pending - rec.nbytes + nbytes;
                    }
                    rec.nbytes = nbytes;
                    self.touch(&key);
                }
                Some(St::Spilled) => {
                    // The driver replaced the spilled copy with this one in memory.
                    let rec = self.recs.get_mut(&key).expect("known");
                    self.spilled -= rec.nbytes;
                    self.set_in_memory(&key, nbytes);
                }
                Some(St::Fetch | St::Busy | St::Missing | St::Flight(_) | St::Erred) => {
                    self.leave_fetch(&key);
                    self.set_in_memory(&key, nbytes);
                }
                Some(St::Waiting | St::Ready) => {
                    // Scattered over a pending task: the value is here, the task need not run.
                    self.detach_task(&key);
                    self.recs.get_mut(&key).expect("known").run = None;
                    self.set_in_memory(&key, nbytes);
                }
                Some(St::Executing | St::Cancelled) => {
                    // The pool's result will overwrite it in the store; count it then.
                    continue;
                }
            }
            let rec = self.recs.get_mut(&key).expect("known");
            rec.wanted = true;
            self.add_keys.push((key, nbytes));
        }
        self.finish_event();
    }

    /// A fetch answered: `got` are now in the store (with sizes); the other keys of that
    /// request (`missing`, or left unanswered) were not at that peer.
    pub fn fetch_done(&mut self, from: &str, got: Vec<(Key, u64)>, missing: Vec<Key>) {
        let _ = missing; // everything requested and not in `got` counts as missing
        let requested = self.take_request(from);
        let mut arrived: FxHashSet<Key> = FxHashSet::default();
        for (key, nbytes) in got {
            arrived.insert(key.clone());
            let state = self.recs.get(&key).map(|r| r.state.clone());
            match state {
                Some(St::Flight(_) | St::Fetch | St::Busy | St::Missing) => {
                    self.arrive(&key, nbytes)
                }
                Some(St::Memory | St::Spilled) => {} // the same value, stored again
                _ => self.out.push(WorkerInstruction::Release { key }),
            }
        }
        for key in requested {
            if arrived.contains(&key) {
                continue;
            }
            if let Some(rec) = self.recs.get_mut(&key)
                && rec.state == St::Flight(from.to_string())
            {
                rec.last_tried = from.to_string();
                self.next_holder(&key);
            }
        }
        self.finish_event();
    }

    /// The peer answered Busy: its keys try another holder first, and that peer again after
    /// `retry_busy`.
    pub fn fetch_busy(&mut self, from: &str, keys: Vec<Key>) {
        let _ = keys; // the request's own key list is authoritative
        let requested = self.take_request(from);
        self.busy_peers.insert(from.to_string());
        for key in requested {
            if let Some(rec) = self.recs.get_mut(&key)
                && rec.state == St::Flight(from.to_string())
            {
                rec.last_tried = from.to_string();
                if !rec.busy.iter().any(|h| h == from) {
                    rec.busy.push(from.to_string());
                }
                self.busy_keys.insert(key.clone());
                self.next_holder(&key);
            }
        }
        self.finish_event();
    }

    /// The connection to the peer failed: its keys are treated as missing there, and the peer
    /// is forgotten as a holder of every key queued or waiting for it (it is probably gone).
    pub fn fetch_failed(&mut self, from: &str, keys: Vec<Key>) {
        let _ = keys;
        let requested = self.take_request(from);
        self.busy_peers.remove(from);
        for key in requested {
            if let Some(rec) = self.recs.get_mut(&key)
                && rec.state == St::Flight(from.to_string())
            {
                rec.last_tried = from.to_string();
                self.next_holder(&key);
            }
        }
        if let Some(queue) = self.peer_queue.remove(from) {
            for (_, key) in queue {
                let rec = self.recs.get_mut(&key).expect("queued key");
                rec.holders.retain(|h| h != from);
                if rec.holders.is_empty() {
                    rec.last_tried = from.to_string();
                    self.out_of_holders(&key);
                }
            }
        }
        let with_busy: Vec<Key> = self.busy_keys.iter().cloned().collect();
        for key in with_busy {
            let rec = self.recs.get_mut(&key).expect("busy key");
            if !rec.busy.iter().any(|h| h == from) {
                continue;
            }
            rec.busy.retain(|h| h != from);
            if rec.busy.is_empty() {
                self.busy_keys.remove(&key);
                if rec.state == St::Busy {
                    rec.last_tried = from.to_string();
                    self.out_of_holders(&key);
                }
            }
        }
        self.finish_event();
    }

    /// Ask the peers that answered Busy again.
    pub fn retry_busy(&mut self) {
        self.busy_peers.clear();
        let keys: Vec<Key> = self.busy_keys.drain().collect();
        for key in keys {
            let state = self.recs[&key].state.clone();
            if state == St::Fetch {
                self.dequeue(&key);
            }
            let rec = self.recs.get_mut(&key).expect("busy key");
            for h in std::mem::take(&mut rec.busy) {
                if !rec.holders.contains(&h) {
                    rec.holders.push(h);
                }
            }
            if matches!(state, St::Fetch | St::Busy) {
                self.enqueue(&key);
            }
        }
        self.finish_event();
    }

    /// True while some key waits for `retry_busy` (the driver schedules one after a delay).
    pub fn has_busy_retries(&self) -> bool {
        !self.busy_keys.is_empty() || !self.busy_peers.is_empty()
    }

    /// A task finished running after `compute_us` microseconds: Ok((nbytes, type_tag)) or
    /// Err(error already naming key/op).
    pub fn execute_finished(
        &mut self,
        key: &Key,
        outcome: Result<(u64, String), RemoteError>,
        compute_us: u32,
    ) {
        if !self.executing.remove(key) {
            return;
        }
        let rec = self.recs.get_mut(key).expect("an executing task is known");
        let cancelled = rec.state == St::Cancelled;
        let deps = std::mem::take(&mut rec.deps);
        rec.waiting_for = 0;
        match outcome {
            Ok((nbytes, type_tag)) => {
                rec.type_tag = type_tag.clone();
                if !cancelled {
                    let run = rec.run.take().expect("an executing task has its run");
                    rec.wanted = true;
                    self.set_in_memory(key, nbytes);
                    self.emit_finished(
                        key.clone(),
                        nbytes,
                        type_tag,
                        (run.inline_result, run.attempt),
                        Some(compute_us),
                    );
                } else if rec.wanted || !rec.dependents.is_empty() {
                    // Freed, but a task here needs it after all: keep it as a replica.
                    let announce = !rec.wanted;
                    rec.wanted = true;
                    self.set_in_memory(key, nbytes);
                    if announce {
                        self.add_keys.push((key.clone(), nbytes));
                    }
                } else {
                    self.recs.remove(key);
                    self.out
                        .push(WorkerInstruction::Release { key: key.clone() });
                }
            }
            Err(error) => {
                if !cancelled {
                    let attempt = rec.run.take().map_or(0, |r| r.attempt);
                    rec.state = St::Erred;
                    rec.wanted = true;
                    self.send(FromWorker::TaskErred {
                        key: key.clone(),
                        error,
                        attempt,
                    });
                } else if !rec.dependents.is_empty() {
                    rec.state = St::Missing;
                    if rec.last_tried.is_empty() {
                        rec.last_tried = self.me.clone();
                    }
                    self.next_holder(key);
                } else {
                    self.recs.remove(key);
                }
            }
        }
        for d in deps {
            let dep = self.recs.get_mut(&d).expect("an input of a task is known");
            dep.readers -= 1;
            dep.dependents.remove(key);
            self.settle(&d);
        }
        self.finish_event();
    }

    /// The driver wrote a value to disk after a Spill instruction (ok=false: its type cannot
    /// be spilled; it is never asked again for that key).
    pub fn spilled(&mut self, key: &Key, ok: bool) {
        if let Some(rec) = self.recs.get_mut(key)
            && rec.state == St::Memory
            && rec.spilling
        {
            rec.spilling = false;
            self.spill_pending -= rec.nbytes;
            if ok {
                rec.state = St::Spilled;
                self.managed -= rec.nbytes;
                self.spilled += rec.nbytes;
            } else {
                rec.spillable = false;
            }
        }
        self.finish_event();
    }

    /// The driver read a spilled value back into memory (to run a task that reads it).
    pub fn unspilled(&mut self, key: &Key) {
        if let Some(rec) = self.recs.get_mut(key)
            && rec.state == St::Spilled
        {
            rec.state = St::Memory;
            self.spilled -= rec.nbytes;
            self.managed += rec.nbytes;
            self.touch(key);
        }
        self.finish_event();
    }

    /// Periodic memory check with the process RSS (bytes): may emit Spill, pause or Restart.
    pub fn memory_report(&mut self, process_bytes: u64) {
        self.process = process_bytes;
        let limit = self.config.memory_limit;
        if limit > 0 {
            let l = limit as f64;
            let p = process_bytes as f64;
            if p > self.config.terminate_fraction * l {
                if !self.restart_sent {
                    self.restart_sent = true;
                    self.out.push(WorkerInstruction::Restart {
                        reason: format!(
                            "process memory {process_bytes} bytes is above {:.0}% of the \
                             memory limit of {limit} bytes ({} bytes managed, {} spilled)",
                            self.config.terminate_fraction * 100.0,
                            self.managed,
                            self.spilled
                        ),
                    });
                }
            } else {
                self.restart_sent = false;
            }
            self.paused = p > self.config.pause_fraction * l;
            // Start what may start first, so that its inputs are pinned and not spilled.
            self.ensure_computing();
            if p > self.config.spill_fraction * l {
                let target = (self.config.target_fraction * l) as u64;
                let mut estimate = process_bytes.saturating_sub(self.spill_pending);
                while estimate > target {
                    match self.spill_one() {
                        Some(n) => estimate = estimate.saturating_sub(n),
                        None => break,
                    }
                }
            }
        }
        self.finish_event();
    }

    pub fn metrics(&self) -> WorkerMetrics {
        WorkerMetrics {
            managed: self.managed,
            spilled: self.spilled,
            process: self.process,
            executing: self.executing.len() as u32,
            ready: self.ready.len() as u32,
            paused: self.paused,
        }
    }

    pub fn drain(&mut self) -> Vec<WorkerInstruction> {
        std::mem::take(&mut self.out)
    }

    // ---------------------------------------------------------------- inspection

    /// "waiting", "ready", "executing", "cancelled", "fetch", "flight", "busy", "missing",
    /// "memory", "spilled" or "error"; `None` for a key not known here.
    pub fn key_state(&self, key: &Key) -> Option<&'static str> {
        self.recs.get(key).map(|r| r.state.name())
    }

    /// Tasks holding a pool thread (executing or cancelled but not yet returned).
    pub fn n_executing(&self) -> usize {
        self.executing.len()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Keys known here (tests, debugging).
    pub fn n_keys(&self) -> usize {
        self.recs.len()
    }

    // ---------------------------------------------------------------- tasks

    fn compute_task(&mut self, key: Key, deps: Vec<DepLocation>, req: RunRequest) {
        let RunRequest {
            op,
            args,
            priority,
            inline_result,
            attempt,
        } = req;
        let mut arg_keys = Vec::with_capacity(args.len());
        for &i in &args {
            match deps.get(i as usize) {
                Some(d) => arg_keys.push(d.key.clone()),
                None => {
                    let error = RemoteError {
                        key: key.to_string(),
                        op: op.name.clone(),
                        kind: ErrorKind::Failed,
                        message: format!(
                            "argument index {i} is out of range: the task has {} inputs",
                            deps.len()
                        ),
                    };
                    self.send(FromWorker::TaskErred {
                        key,
                        error,
                        attempt,
                    });
                    return;
                }
            }
        }
        // Distinct inputs, never the key itself.
        let mut seen = FxHashSet::default();
        let deps: Vec<DepLocation> = deps
            .into_iter()
            .filter(|d| d.key != key && seen.insert(d.key.clone()))
            .collect();
        let run = Run {
            op,
            args: arg_keys,
            inline_result,
            attempt,
            locs: Vec::new(),
        };
        let state = self.recs.get(&key).map(|r| r.state.clone());
        match state {
            None => {
                self.recs
                    .insert(key.clone(), Rec::new(St::Missing, 0, priority));
                self.attach_task(&key, run, deps, priority);
            }
            Some(St::Memory | St::Spilled) => {
                // A replica: it is done.
                let rec = self.recs.get_mut(&key).expect("known");
                rec.wanted = true;
                let (nbytes, tag) = (rec.nbytes, rec.type_tag.clone());
                self.touch(&key);
                self.emit_finished(key, nbytes, tag, (inline_result, attempt), None);
            }
            Some(St::Waiting | St::Ready | St::Executing) => {
                // A duplicate: learn where its absent inputs are now, and answer the
                // latest attempt.
                if let Some(r) = self.recs.get_mut(&key).and_then(|r| r.run.as_mut()) {
                    r.attempt = attempt;
                    r.inline_result = inline_result;
                }
                for loc in &deps {
                    self.learn_holders(loc, priority);
                }
            }
            Some(St::Cancelled) => {
                // Freed while running, wanted again: its result counts after all.
                let rec = self.recs.get_mut(&key).expect("known");
                rec.state = St::Executing;
                rec.run = Some(run);
                for loc in &deps {
                    self.learn_holders(loc, priority);
                }
            }
            Some(St::Flight(_)) => {
                // Arriving from a peer: that answers the task; run it only if the fetch fails.
                let rec = self.recs.get_mut(&key).expect("known");
                rec.run = Some(Run { locs: deps, ..run });
            }
            Some(St::Fetch | St::Busy | St::Missing | St::Erred) => {
                self.leave_fetch(&key);
                let rec = self.recs.get_mut(&key).expect("known");
                rec.wanted = false;
                self.attach_task(&key, run, deps, priority);
            }
        }
    }

    /// Makes `key` a task waiting for (or ready with) its inputs.
    fn attach_task(&mut self, key: &Key, run: Run, deps: Vec<DepLocation>, priority: Priority) {
        let mut waiting = 0;
        let mut dep_keys = Vec::with_capacity(deps.len());
        for loc in &deps {
            if !self.recs.contains_key(&loc.key) {
                self.recs
                    .insert(loc.key.clone(), Rec::new(St::Missing, loc.nbytes, priority));
                let rec = self.recs.get_mut(&loc.key).expect("inserted");
                rec.dependents.insert(key.clone());
                self.learn_holders(loc, priority);
                let rec = self.recs.get_mut(&loc.key).expect("inserted");
                if rec.state == St::Missing {
                    rec.last_tried = self.me.clone();
                    self.send(FromWorker::MissingData {
                        key: loc.key.clone(),
                        errant_worker: self.me.clone(),
                    });
                }
            } else {
                self.recs
                    .get_mut(&loc.key)
                    .expect("known")
                    .dependents
                    .insert(key.clone());
                self.learn_holders(loc, priority);
            }
            if !self.recs[&loc.key].state.has_value() {
                waiting += 1;
            }
            dep_keys.push(loc.key.clone());
        }
        let rec = self.recs.get_mut(key).expect("known");
        rec.run = Some(run);
        rec.priority = priority;
        rec.deps = dep_keys;
        rec.waiting_for = waiting;
        if waiting == 0 {
            rec.state = St::Ready;
            self.ready.insert((priority, key.clone()));
        } else {
            rec.state = St::Waiting;
        }
    }

    /// Takes in what the scheduler says about an input: new holders, a better priority.
    fn learn_holders(&mut self, loc: &DepLocation, priority: Priority) {
        let Some(rec) = self.recs.get(&loc.key) else {
            return;
        };
        match rec.state.clone() {
            St::Fetch => {
                self.dequeue(&loc.key);
                let rec = self.recs.get_mut(&loc.key).expect("known");
                merge_holders(rec, &loc.who_has, &self.me);
                rec.priority = rec.priority.min(priority);
                self.enqueue(&loc.key);
            }
            St::Flight(_) | St::Busy | St::Cancelled => {
                let rec = self.recs.get_mut(&loc.key).expect("known");
                merge_holders(rec, &loc.who_has, &self.me);
                rec.priority = rec.priority.min(priority);
                if rec.state == St::Busy && !rec.holders.is_empty() {
                    self.enqueue(&loc.key);
                }
            }
            St::Missing | St::Erred => {
                let rec = self.recs.get_mut(&loc.key).expect("known");
                merge_holders(rec, &loc.who_has, &self.me);
                rec.priority = rec.priority.min(priority);
                if !rec.holders.is_empty() {
                    if rec.state == St::Erred {
                        // Computed elsewhere since: fetch it, it is not ours any more.
                        rec.wanted = false;
                    }
                    if rec.nbytes == 0 {
                        rec.nbytes = loc.nbytes;
                    }
                    self.enqueue(&loc.key);
                }
            }
            St::Waiting | St::Ready | St::Executing | St::Memory | St::Spilled => {}
        }
    }

    /// Removes an attached task's links to its inputs (which may then go).
    fn detach_task(&mut self, key: &Key) {
        let rec = self.recs.get_mut(key).expect("known");
        if rec.state == St::Ready {
            self.ready.remove(&(rec.priority, key.clone()));
        }
        let deps = std::mem::take(&mut rec.deps);
        rec.waiting_for = 0;
        for d in deps {
            self.recs
                .get_mut(&d)
                .expect("an input of a task is known")
                .dependents
                .remove(key);
            self.settle(&d);
        }
    }

    fn free_key(&mut self, key: &Key) {
        let Some(rec) = self.recs.get_mut(key) else {
            return;
        };
        rec.wanted = false;
        match rec.state.clone() {
            St::Waiting | St::Ready => {
                self.detach_task(key);
                let rec = self.recs.get_mut(key).expect("known");
                rec.run = None;
                if rec.dependents.is_empty() {
                    self.recs.remove(key);
                } else {
                    // Tasks here read it and it will not be computed: only the scheduler
                    // knows where it could come from now.
                    rec.state = St::Missing;
                    rec.last_tried = self.me.clone();
                    self.next_holder(key);
                }
            }
            St::Executing => {
                rec.run = None;
                rec.state = St::Cancelled;
            }
            St::Cancelled => {}
            St::Flight(_) => {
                rec.run = None;
            }
            St::Memory | St::Spilled | St::Fetch | St::Busy | St::Missing | St::Erred => {
                self.settle(key);
            }
        }
    }

    /// Gives the task back if it has not started. A key that is no task here (never was,
    /// or freed) counts as given back.
    fn steal(&mut self, key: &Key) -> bool {
        let Some(rec) = self.recs.get_mut(key) else {
            return true;
        };
        match rec.state {
            St::Waiting | St::Ready => {
                if !rec.dependents.is_empty() {
                    return false; // needed here anyway
                }
                self.free_key(key);
                true
            }
            St::Flight(_) => {
                rec.run = None;
                true
            }
            St::Fetch | St::Busy | St::Missing => true,
            St::Executing | St::Cancelled | St::Memory | St::Spilled | St::Erred => false,
        }
    }

    fn ensure_computing(&mut self) {
        if self.paused {
            return;
        }
        while self.executing.len() < self.nthreads {
            let Some((_, key)) = self.ready.pop_first() else {
                break;
            };
            self.executing.insert(key.clone());
            let rec = self.recs.get_mut(&key).expect("ready key");
            rec.state = St::Executing;
            let run = rec.run.as_ref().expect("a ready task has its run");
            let (op, args) = (run.op.clone(), run.args.clone());
            let deps = rec.deps.clone();
            for d in &deps {
                self.recs.get_mut(d).expect("input").readers += 1;
                self.touch(d);
            }
            self.out.push(WorkerInstruction::Execute { key, op, args });
        }
    }

    /// `request` is the run's (inline_result, attempt).
    fn emit_finished(
        &mut self,
        key: Key,
        nbytes: u64,
        type_tag: String,
        request: (bool, u32),
        compute_us: Option<u32>,
    ) {
        let (inline, attempt) = request;
        if inline && nbytes <= self.config.inline_limit {
            self.out.push(WorkerInstruction::SendFinishedInline {
                key,
                nbytes,
                type_tag,
                attempt,
                compute_us,
            });
        } else {
            self.send(FromWorker::TaskFinished {
                key,
                nbytes,
                type_tag,
                value: None,
                attempt,
                compute_us,
            });
        }
    }

    // ---------------------------------------------------------------- fetching

    fn take_request(&mut self, from: &str) -> Vec<Key> {
        match self.in_flight.remove(from) {
            Some(req) => {
                self.bytes_in_flight -= req.bytes;
                req.keys
            }
            None => Vec::new(),
        }
    }

    /// Queues a key with untried holders at each of them.
    fn enqueue(&mut self, key: &Key) {
        let rec = self.recs.get_mut(key).expect("known");
        debug_assert!(!rec.holders.is_empty());
        rec.state = St::Fetch;
        for h in &rec.holders {
            self.peer_queue
                .entry(h.clone())
                .or_default()
                .insert((rec.priority, key.clone()));
        }
    }

    fn dequeue(&mut self, key: &Key) {
        let rec = &self.recs[key];
        for h in &rec.holders {
            if let Some(q) = self.peer_queue.get_mut(h) {
                q.remove(&(rec.priority, key.clone()));
                if q.is_empty() {
                    self.peer_queue.remove(h);
                }
            }
        }
    }

    /// Takes a key out of the fetch machinery (it arrived another way, or is computed here).
    /// A request in flight for it is left alone: its answer is then ignored.
    fn leave_fetch(&mut self, key: &Key) {
        if self.recs[key].state == St::Fetch {
            self.dequeue(key);
        }
        let rec = self.recs.get_mut(key).expect("known");
        rec.holders.clear();
        rec.busy.clear();
        self.busy_keys.remove(key);
    }

    /// After a failed try: the next holder, or out of holders.
    fn next_holder(&mut self, key: &Key) {
        let rec = self.recs.get_mut(key).expect("known");
        if !rec.needed() {
            self.busy_keys.remove(key);
            self.recs.remove(key);
        } else if !rec.holders.is_empty() {
            self.enqueue(key);
        } else {
            self.out_of_holders(key);
        }
    }

    /// No untried holder left: compute it if asked to, wait for busy holders, or report it.
    fn out_of_holders(&mut self, key: &Key) {
        let rec = self.recs.get_mut(key).expect("known");
        debug_assert!(rec.holders.is_empty());
        if let Some(mut run) = rec.run.take() {
            let locs = std::mem::take(&mut run.locs);
            let priority = rec.priority;
            self.leave_fetch(key);
            self.attach_task(key, run, locs, priority);
        } else if !rec.busy.is_empty() {
            rec.state = St::Busy;
        } else {
            rec.state = St::Missing;
            let errant_worker = rec.last_tried.clone();
            self.send(FromWorker::MissingData {
                key: key.clone(),
                errant_worker,
            });
        }
    }

    /// A fetched value landed in the store.
    fn arrive(&mut self, key: &Key, nbytes: u64) {
        self.leave_fetch(key);
        let rec = self.recs.get_mut(key).expect("known");
        if !rec.needed() {
            // Nobody wants it any more; the scheduler never heard of it.
            self.recs.remove(key);
            self.out
                .push(WorkerInstruction::Release { key: key.clone() });
            return;
        }
        let run = rec.run.take();
        rec.wanted = true;
        self.set_in_memory(key, nbytes);
        match run {
            Some(run) => {
                let tag = self.recs[key].type_tag.clone();
                self.emit_finished(
                    key.clone(),
                    nbytes,
                    tag,
                    (run.inline_result, run.attempt),
                    None,
                )
            }
            None => self.add_keys.push((key.clone(), nbytes)),
        }
    }

    fn ensure_communicating(&mut self) {
        if self.paused || self.peer_queue.is_empty() {
            return;
        }
        let cap = self.config.max_fetch_bytes_in_flight;
        let max_keys = self.config.max_fetch_keys_per_request.max(1);
        let mut peers: Vec<(Priority, String)> = self
            .peer_queue
            .iter()
            .filter(|(p, _)| !self.in_flight.contains_key(*p) && !self.busy_peers.contains(*p))
            .map(|(p, q)| (q.first().expect("non-empty queue").0, p.clone()))
            .collect();
        peers.sort();
        for (_, peer) in peers {
            // An earlier request may have taken this peer's keys (queued at several holders).
            let Some(queue) = self.peer_queue.get(&peer) else {
                continue;
            };
            let mut keys = Vec::new();
            let mut bytes = 0u64;
            for (_, key) in queue {
                if keys.len() >= max_keys {
                    break;
                }
                let nb = self.recs[key].nbytes;
                let fits = self.bytes_in_flight + bytes + nb <= cap;
                if !(fits || keys.is_empty() && self.bytes_in_flight == 0) {
                    break;
                }
                keys.push(key.clone());
                bytes += nb;
            }
            if keys.is_empty() {
                continue;
            }
            for key in &keys {
                self.dequeue(key);
                let rec = self.recs.get_mut(key).expect("queued key");
                rec.holders.retain(|h| *h != peer);
                rec.last_tried = peer.clone();
                rec.state = St::Flight(peer.clone());
            }
            self.bytes_in_flight += bytes;
            self.in_flight.insert(
                peer.clone(),
                Request {
                    keys: keys.clone(),
                    bytes,
                },
            );
            self.out.push(WorkerInstruction::Fetch { from: peer, keys });
        }
    }

    // ---------------------------------------------------------------- values and memory

    /// The value is in memory now (from any state without a value, or from Spilled with the
    /// spilled bytes already taken off): count it and wake the tasks that read it.
    fn set_in_memory(&mut self, key: &Key, nbytes: u64) {
        let rec = self.recs.get_mut(key).expect("known");
        let was_absent = !rec.state.has_value();
        rec.state = St::Memory;
        rec.nbytes = nbytes;
        rec.spilling = false;
        rec.holders.clear();
        rec.busy.clear();
        self.busy_keys.remove(key);
        self.managed += nbytes;
        self.touch(key);
        if was_absent {
            let dependents: Vec<Key> = self.recs[key].dependents.iter().cloned().collect();
            for t in dependents {
                let task = self.recs.get_mut(&t).expect("a dependent is known");
                if task.state == St::Waiting {
                    task.waiting_for -= 1;
                    if task.waiting_for == 0 {
                        task.state = St::Ready;
                        self.ready.insert((task.priority, t.clone()));
                    }
                }
            }
        }
    }

    /// Marks a key used now (LRU order), when it is a spill candidate.
    fn touch(&mut self, key: &Key) {
        let rec = self.recs.get_mut(key).expect("known");
        self.lru.remove(&rec.lru);
        if rec.state == St::Memory && !rec.spilling && rec.spillable {
            self.tick += 1;
            rec.lru = self.tick;
            self.lru.insert(self.tick, key.clone());
        }
    }

    /// Drops a record with no reason to stay, releasing its value.
    fn settle(&mut self, key: &Key) {
        let Some(rec) = self.recs.get(key) else {
            return;
        };
        if rec.needed() {
            return;
        }
        match rec.state {
            St::Executing => self.recs.get_mut(key).expect("known").state = St::Cancelled,
            St::Cancelled | St::Flight(_) => {} // cleaned up when it comes back
            St::Memory | St::Spilled => {
                let rec = self.recs.remove(key).expect("known");
                self.lru.remove(&rec.lru);
                if rec.state == St::Memory {
                    self.managed -= rec.nbytes;
                    if rec.spilling {
                        self.spill_pending -= rec.nbytes;
                    }
                } else {
                    self.spilled -= rec.nbytes;
                }
                self.out
                    .push(WorkerInstruction::Release { key: key.clone() });
            }
            St::Fetch => {
                self.dequeue(key);
                self.busy_keys.remove(key);
                self.recs.remove(key);
            }
            St::Waiting | St::Ready | St::Busy | St::Missing | St::Erred => {
                self.busy_keys.remove(key);
                self.recs.remove(key);
            }
        }
    }

    /// Emits a Spill for the least recently used candidate no executing task reads; returns
    /// its size.
    fn spill_one(&mut self) -> Option<u64> {
        let key = self
            .lru
            .values()
            .find(|k| self.recs[*k].readers == 0)?
            .clone();
        let rec = self.recs.get_mut(&key).expect("lru key");
        self.lru.remove(&rec.lru);
        rec.spilling = true;
        let nb = rec.nbytes;
        self.spill_pending += nb;
        self.out.push(WorkerInstruction::Spill { key });
        Some(nb)
    }

    fn spill_to_target(&mut self) {
        let limit = self.config.memory_limit;
        if limit == 0 {
            return;
        }
        let target = (self.config.target_fraction * limit as f64) as u64;
        while self.managed - self.spill_pending > target {
            if self.spill_one().is_none() {
                break;
            }
        }
    }

    fn send(&mut self, msg: FromWorker) {
        self.out.push(WorkerInstruction::Send(msg));
    }

    /// What every event ends with: start what can start, spill what must, announce replicas.
    fn finish_event(&mut self) {
        self.ensure_computing();
        self.ensure_communicating();
        self.spill_to_target();
        if !self.add_keys.is_empty() {
            let keys = std::mem::take(&mut self.add_keys);
            self.send(FromWorker::AddKeys { keys });
        }
    }

    // ---------------------------------------------------------------- invariants

    /// Panics, naming the key, when the bookkeeping is inconsistent or a needed key is stuck.
    pub fn check_invariants(&self) {
        let mut managed = 0;
        let mut spilled = 0;
        let mut spill_pending = 0;
        let mut lru_n = 0;
        let mut ready_n = 0;
        let mut exec_n = 0;
        for (key, rec) in &self.recs {
            let at = |what: &str| format!("{key} ({}): {what}", rec.state.name());
            assert!(
                rec.needed() || matches!(rec.state, St::Executing | St::Cancelled | St::Flight(_)),
                "{}",
                at("kept with no reason")
            );
            match &rec.state {
                St::Waiting | St::Ready => {
                    assert!(rec.run.is_some(), "{}", at("task without its run"));
                    let absent = rec
                        .deps
                        .iter()
                        .filter(|d| !self.recs[*d].state.has_value())
                        .count() as u32;
                    assert_eq!(rec.waiting_for, absent, "{}", at("waiting count"));
                    assert_eq!(
                        rec.state == St::Waiting,
                        absent > 0,
                        "{}",
                        at("waiting iff inputs absent")
                    );
                    let in_ready = self.ready.contains(&(rec.priority, key.clone()));
                    assert_eq!(in_ready, rec.state == St::Ready, "{}", at("ready set"));
                    ready_n += in_ready as usize;
                    for d in &rec.deps {
                        self.check_input_alive(key, d);
                    }
                }
                St::Executing | St::Cancelled => {
                    assert_eq!(
                        rec.run.is_some(),
                        rec.state == St::Executing,
                        "{}",
                        at("run iff executing")
                    );
                    assert!(self.executing.contains(key), "{}", at("executing set"));
                    exec_n += 1;
                }
                St::Fetch => {
                    assert!(!rec.holders.is_empty(), "{}", at("fetch with no holder"));
                    for h in &rec.holders {
                        assert!(
                            self.peer_queue
                                .get(h)
                                .is_some_and(|q| q.contains(&(rec.priority, key.clone()))),
                            "{}",
                            at(&format!("not queued at holder {h}"))
                        );
                    }
                }
                St::Flight(p) => assert!(
                    self.in_flight.get(p).is_some_and(|r| r.keys.contains(key)),
                    "{}",
                    at("no request in flight")
                ),
                St::Busy => {
                    assert!(rec.holders.is_empty(), "{}", at("busy with holders"));
                    assert!(!rec.busy.is_empty(), "{}", at("busy with no busy holder"));
                }
                St::Missing => assert!(
                    rec.holders.is_empty() && rec.busy.is_empty(),
                    "{}",
                    at("missing with holders")
                ),
                St::Memory => {
                    managed += rec.nbytes;
                    if rec.spilling {
                        spill_pending += rec.nbytes;
                    }
                    let candidate = !rec.spilling && rec.spillable;
                    assert_eq!(
                        candidate,
                        self.lru.get(&rec.lru) == Some(key),
                        "{}",
                        at("LRU index")
                    );
                    lru_n += candidate as usize;
                }
                St::Spilled => spilled += rec.nbytes,
                St::Erred => {}
            }
            if !matches!(rec.state, St::Flight(_)) {
                assert!(
                    rec.run.is_none() || rec.state.is_task(),
                    "{}",
                    at("a run on a non-task")
                );
            }
            if !rec.state.is_task() {
                assert!(rec.deps.is_empty(), "{}", at("inputs on a non-task"));
            }
            assert_eq!(
                !rec.busy.is_empty(),
                self.busy_keys.contains(key),
                "{}",
                at("busy key set")
            );
            assert!(
                !rec.holders.contains(&self.me),
                "{}",
                at("itself as a holder")
            );
            let mut readers = 0;
            for t in &rec.dependents {
                let task = self
                    .recs
                    .get(t)
                    .unwrap_or_else(|| panic!("{}", at(&format!("unknown dependent {t}"))));
                assert!(
                    task.state.is_task() && task.deps.contains(key),
                    "{}",
                    at(&format!("dependent {t} does not read it"))
                );
                readers += matches!(task.state, St::Executing | St::Cancelled) as u32;
            }
            assert_eq!(rec.readers, readers, "{}", at("readers"));
            for d in &rec.deps {
                assert!(
                    self.recs.get(d).is_some_and(|r| r.dependents.contains(key)),
                    "{}",
                    at(&format!("input {d} does not link back"))
                );
            }
        }
        assert_eq!(self.managed, managed, "managed bytes");
        assert_eq!(self.spilled, spilled, "spilled bytes");
        assert_eq!(self.spill_pending, spill_pending, "bytes being spilled");
        assert_eq!(self.lru.len(), lru_n, "LRU index size");
        assert_eq!(self.ready.len(), ready_n, "ready set size");
        assert_eq!(self.executing.len(), exec_n, "executing set size");
        assert!(
            self.executing.len() <= self.nthreads,
            "more tasks than threads"
        );
        for (peer, q) in &self.peer_queue {
            assert!(!q.is_empty(), "empty queue for {peer}");
            for (p, k) in q {
                let rec = &self.recs[k];
                assert!(
                    rec.state == St::Fetch && rec.priority == *p && rec.holders.contains(peer),
                    "{k} queued at {peer} but {} there",
                    rec.state.name()
                );
            }
        }
        let bytes: u64 = self.in_flight.values().map(|r| r.bytes).sum();
        assert_eq!(self.bytes_in_flight, bytes, "bytes in flight");
        // Liveness.
        if !self.paused {
            assert!(
                self.ready.is_empty() || self.executing.len() == self.nthreads,
                "a ready task waits while a thread is free"
            );
            for (peer, q) in &self.peer_queue {
                if self.in_flight.contains_key(peer) || self.busy_peers.contains(peer) {
                    continue;
                }
                let first = self.recs[&q.first().expect("non-empty").1].nbytes;
                assert!(
                    self.bytes_in_flight > 0
                        && self.bytes_in_flight + first > self.config.max_fetch_bytes_in_flight,
                    "peer {peer} has queued keys, no request and room under the byte cap"
                );
            }
        }
    }

    /// An input of a waiting task is present or on one of the ways to becoming present.
    fn check_input_alive(&self, task: &Key, dep: &Key) {
        let rec = self
            .recs
            .get(dep)
            .unwrap_or_else(|| panic!("input {dep} of {task} is unknown"));
        assert!(
            rec.dependents.contains(task),
            "input {dep} of {task} does not link back"
        );
        match rec.state {
            St::Memory | St::Spilled | St::Fetch | St::Flight(_) | St::Busy | St::Missing => {}
            St::Waiting | St::Ready | St::Executing | St::Cancelled | St::Erred => {}
        }
    }
}

fn merge_holders(rec: &mut Rec, who_has: &[String], me: &str) {
    for h in who_has {
        let in_flight_there = matches!(&rec.state, St::Flight(p) if p == h);
        if h != me && !in_flight_there && !rec.holders.contains(h) && !rec.busy.contains(h) {
            rec.holders.push(h.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::round_trip;
    use crate::protocol::WireValue;

    pub(super) fn k(s: &str) -> Key {
        Key::named(s)
    }

    pub(super) fn prio(order: u32) -> Priority {
        Priority {
            user: 0,
            generation: 0,
            order,
        }
    }

    pub(super) fn wire_op(name: &str) -> Arc<WireOp> {
        Arc::new(WireOp {
            name: name.into(),
            params: vec![],
        })
    }

    /// A fake driver and comm around a `WorkerState`: every message to and from the scheduler
    /// goes through the real codec, and a model of the driver's store checks that the state
    /// machine only ever runs tasks whose inputs are there and releases what is there.
    pub(super) struct Sim {
        pub w: WorkerState,
        /// Key -> on disk.
        pub store: FxHashMap<Key, bool>,
        pub fetches: Vec<(String, Vec<Key>)>,
        pub running: Vec<Key>,
        /// The inputs of each running task.
        pub running_args: FxHashMap<Key, Vec<Key>>,
        pub spills: Vec<Key>,
        pub sent: Vec<FromWorker>,
        pub restarts: Vec<String>,
        /// Every instruction, in order.
        pub log: Vec<WorkerInstruction>,
    }

    impl Sim {
        pub fn new(config: WorkerConfig) -> Self {
            Sim {
                w: WorkerState::new(config, "me".into()),
                store: FxHashMap::default(),
                fetches: Vec::new(),
                running: Vec::new(),
                running_args: FxHashMap::default(),
                spills: Vec::new(),
                sent: Vec::new(),
                restarts: Vec::new(),
                log: Vec::new(),
            }
        }

        pub fn deliver(&mut self, msg: ToWorker) {
            let mut msgs = round_trip(vec![msg.clone()]).expect("codec");
            assert_eq!(msgs, vec![msg]);
            self.w.handle_scheduler(msgs.pop().expect("one message"));
            self.pump();
        }

        /// A task named `key` reading `deps` (key, holders, nbytes), each once, in order.
        pub fn compute(
            &mut self,
            key: &str,
            deps: &[(&str, &[&str], u64)],
            order: u32,
            inline: bool,
        ) {
            let deps: Vec<DepLocation> = deps
                .iter()
                .map(|(d, who, nb)| DepLocation {
                    key: k(d),
                    who_has: who.iter().map(|s| s.to_string()).collect(),
                    nbytes: *nb,
                })
                .collect();
            let args = (0..deps.len() as u32).collect();
            self.deliver(ToWorker::ComputeTask {
                key: k(key),
                op: wire_op("test::op"),
                deps,
                args,
                priority: prio(order),
                inline_result: inline,
                projected_nbytes: None,
                attempt: 1,
            });
        }

        pub fn free(&mut self, keys: &[&str]) {
            self.deliver(ToWorker::FreeKeys {
                keys: keys.iter().map(|s| k(s)).collect(),
            });
        }

        pub fn put(&mut self, keys: &[(&str, u64)]) {
            for (key, _) in keys {
                self.store.insert(k(key), false);
            }
            self.w
                .put_data(keys.iter().map(|(key, nb)| (k(key), *nb)).collect());
            self.pump();
        }

        /// Answers the request to `from`: `got` keys with their sizes, the rest missing.
        pub fn answer(&mut self, from: &str, got: &[(&str, u64)]) {
            let i = self
                .fetches
                .iter()
                .position(|(p, _)| p == from)
                .unwrap_or_else(|| panic!("no request to {from}"));
            let (_, keys) = self.fetches.remove(i);
            let got: Vec<(Key, u64)> = got.iter().map(|(s, nb)| (k(s), *nb)).collect();
            let missing = keys
                .iter()
                .filter(|key| !got.iter().any(|(g, _)| g == *key))
                .cloned()
                .collect();
            for (key, _) in &got {
                self.store.insert(key.clone(), false);
            }
            self.w.fetch_done(from, got, missing);
            self.pump();
        }

        pub fn busy(&mut self, from: &str) {
            let i = self.fetches.iter().position(|(p, _)| p == from).unwrap();
            let (_, keys) = self.fetches.remove(i);
            self.w.fetch_busy(from, keys);
            self.pump();
        }

        pub fn fail(&mut self, from: &str) {
            let i = self.fetches.iter().position(|(p, _)| p == from).unwrap();
            let (_, keys) = self.fetches.remove(i);
            self.w.fetch_failed(from, keys);
            self.pump();
        }

        pub fn finish(&mut self, key: &Key, outcome: Result<u64, &str>) {
            let i = self.running.iter().position(|r| r == key).expect("running");
            self.running.remove(i);
            self.running_args.remove(key);
            let outcome = match outcome {
                Ok(nb) => {
                    self.store.insert(key.clone(), false);
                    Ok((nb, "t".to_string()))
                }
                Err(m) => Err(RemoteError {
                    key: key.to_string(),
                    op: "test::op".into(),
                    kind: ErrorKind::Failed,
                    message: m.into(),
                }),
            };
            self.w.execute_finished(key, outcome, 5);
            self.pump();
        }

        pub fn spill_done(&mut self, key: &Key, ok: bool) {
            let i = self.spills.iter().position(|r| r == key).expect("spill");
            self.spills.remove(i);
            if ok {
                self.store.insert(key.clone(), true);
            }
            self.w.spilled(key, ok);
            self.pump();
        }

        pub fn memory(&mut self, process: u64) {
            self.w.memory_report(process);
            self.pump();
        }

        pub fn retry(&mut self) {
            self.w.retry_busy();
            self.pump();
        }

        fn pump(&mut self) {
            loop {
                let batch = self.w.drain();
                if batch.is_empty() {
                    break;
                }
                for ins in batch {
                    self.log.push(ins.clone());
                    self.apply(ins);
                }
            }
            self.w.check_invariants();
            self.check_store();
        }

        fn apply(&mut self, ins: WorkerInstruction) {
            match ins {
                WorkerInstruction::Execute { key, args, .. } => {
                    for a in &args {
                        if let Some(i) = self.spills.iter().position(|s| s == a) {
                            // The driver finishes writing it before reading it back.
                            self.spills.remove(i);
                            self.store.insert(a.clone(), true);
                            self.w.spilled(a, true);
                        }
                        match self.store.get(a) {
                            Some(true) => {
                                self.store.insert(a.clone(), false);
                                self.w.unspilled(a);
                            }
                            Some(false) => {}
                            None => panic!("{key} runs but its input {a} is not in the store"),
                        }
                    }
                    assert!(!self.running.contains(&key), "{key} started twice");
                    self.running_args.insert(key.clone(), args);
                    self.running.push(key);
                    assert!(self.running.len() <= self.w.nthreads);
                }
                WorkerInstruction::Fetch { from, keys } => {
                    assert!(!keys.is_empty());
                    assert!(
                        keys.len() <= self.w.config.max_fetch_keys_per_request,
                        "request over the key limit"
                    );
                    assert!(
                        !self.fetches.iter().any(|(p, _)| *p == from),
                        "two requests to {from} at once"
                    );
                    self.fetches.push((from, keys));
                }
                WorkerInstruction::Send(msg) => {
                    if let FromWorker::TaskFinished { key, value, .. } = &msg {
                        assert!(value.is_none());
                        assert!(self.store.contains_key(key), "{key} finished, not stored");
                    }
                    let mut back = round_trip(vec![msg.clone()]).expect("codec");
                    assert_eq!(back, vec![msg]);
                    self.sent.push(back.pop().expect("one"));
                }
                WorkerInstruction::SendFinishedInline {
                    key,
                    nbytes,
                    type_tag,
                    attempt,
                    compute_us,
                } => {
                    assert!(self.store.contains_key(&key), "{key} inline, not stored");
                    assert!(nbytes <= self.w.config.inline_limit);
                    let msg = FromWorker::TaskFinished {
                        key,
                        nbytes,
                        type_tag: type_tag.clone(),
                        value: Some(WireValue::new(type_tag, vec![7u8; nbytes as usize])),
                        attempt,
                        compute_us,
                    };
                    let mut back = round_trip(vec![msg.clone()]).expect("codec");
                    assert_eq!(back, vec![msg]);
                    self.sent.push(back.pop().expect("one"));
                }
                WorkerInstruction::Release { key } => {
                    assert!(
                        self.store.remove(&key).is_some(),
                        "release of {key}: not stored"
                    );
                    self.spills.retain(|s| *s != key);
                }
                WorkerInstruction::Spill { key } => {
                    assert_eq!(self.store.get(&key), Some(&false), "spill of {key}");
                    assert!(!self.spills.contains(&key), "{key} spilled twice");
                    assert!(
                        !self.running_args.values().any(|args| args.contains(&key)),
                        "spilling {key}, an input of a running task"
                    );
                    self.spills.push(key);
                }
                WorkerInstruction::Restart { reason } => self.restarts.push(reason),
            }
        }

        /// The store holds exactly the keys the state machine counts as held, where it says.
        fn check_store(&self) {
            for (key, disk) in &self.store {
                let st = self.w.key_state(key);
                assert!(
                    (st == Some("memory") && !disk) || (st == Some("spilled") && *disk),
                    "{key} in the store ({}) but {st:?}",
                    if *disk { "disk" } else { "memory" }
                );
            }
            let held = self.w.recs.values().filter(|r| r.state.has_value()).count();
            assert_eq!(held, self.store.len(), "values held");
            assert_eq!(self.running.len(), self.w.n_executing());
            assert_eq!(self.fetches.len(), self.w.in_flight.len());
        }

        pub fn finished(&self, key: &str) -> usize {
            let key = k(key);
            self.sent
                .iter()
                .filter(|m| matches!(m, FromWorker::TaskFinished { key: x, .. } if *x == key))
                .count()
        }

        pub fn fetch_to(&self, from: &str) -> Option<Vec<Key>> {
            self.fetches
                .iter()
                .find(|(p, _)| p == from)
                .map(|(_, keys)| keys.clone())
        }

        pub fn executed(&self) -> Vec<Key> {
            self.log
                .iter()
                .filter_map(|i| match i {
                    WorkerInstruction::Execute { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    fn keys(names: &[&str]) -> Vec<Key> {
        names.iter().map(|s| k(s)).collect()
    }

    #[test]
    fn a_task_with_local_inputs_runs() {
        let mut s = Sim::new(WorkerConfig::new(2, 0));
        s.put(&[("x", 8)]);
        assert_eq!(
            s.sent,
            vec![FromWorker::AddKeys {
                keys: vec![(k("x"), 8)]
            }]
        );
        s.deliver(ToWorker::ComputeTask {
            key: k("y"),
            op: wire_op("test::add"),
            deps: vec![DepLocation {
                key: k("x"),
                who_has: vec!["me".into()],
                nbytes: 8,
            }],
            args: vec![0, 0],
            priority: prio(0),
            inline_result: false,
            projected_nbytes: None,
            attempt: 1,
        });
        assert_eq!(
            s.log.last(),
            Some(&WorkerInstruction::Execute {
                key: k("y"),
                op: wire_op("test::add"),
                args: keys(&["x", "x"]),
            })
        );
        assert_eq!(s.w.key_state(&k("y")), Some("executing"));
        s.finish(&k("y"), Ok(16));
        assert_eq!(
            s.sent.last(),
            Some(&FromWorker::TaskFinished {
                key: k("y"),
                nbytes: 16,
                type_tag: "t".into(),
                value: None,
                attempt: 1,
                compute_us: Some(5),
            })
        );
        assert_eq!(s.w.key_state(&k("y")), Some("memory"));
        assert_eq!(s.w.metrics().managed, 24);
        assert!(s.fetches.is_empty());
    }

    #[test]
    fn inputs_are_fetched_from_two_peers_in_batches() {
        let mut cfg = WorkerConfig::new(1, 0);
        cfg.max_fetch_keys_per_request = 2;
        let mut s = Sim::new(cfg);
        let p1: &[&str] = &["p1"];
        let p2: &[&str] = &["p2"];
        s.compute(
            "t",
            &[
                ("a", p1, 10),
                ("b", p1, 10),
                ("c", p1, 10),
                ("d", p2, 10),
                ("e", p2, 10),
            ],
            0,
            false,
        );
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a", "b"])));
        assert_eq!(s.fetch_to("p2"), Some(keys(&["d", "e"])));
        assert_eq!(s.w.key_state(&k("c")), Some("fetch"));
        assert_eq!(s.w.key_state(&k("a")), Some("flight"));
        s.answer("p1", &[("a", 10), ("b", 10)]);
        // One request per peer: c goes once p1's first request is answered.
        assert_eq!(s.fetch_to("p1"), Some(keys(&["c"])));
        assert_eq!(
            s.sent.last(),
            Some(&FromWorker::AddKeys {
                keys: vec![(k("a"), 10), (k("b"), 10)]
            })
        );
        s.answer("p2", &[("d", 10), ("e", 10)]);
        assert_eq!(s.w.key_state(&k("t")), Some("waiting"));
        s.answer("p1", &[("c", 10)]);
        assert_eq!(s.w.key_state(&k("t")), Some("executing"));
        assert_eq!(s.w.metrics().managed, 50);
    }

    #[test]
    fn bytes_in_flight_are_capped_but_one_huge_key_still_moves() {
        let mut cfg = WorkerConfig::new(1, 0);
        cfg.max_fetch_bytes_in_flight = 100;
        let mut s = Sim::new(cfg);
        s.compute(
            "t",
            &[("a", &["p1"], 60), ("b", &["p2"], 60), ("c", &["p3"], 500)],
            0,
            false,
        );
        assert_eq!(s.fetches.len(), 1);
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        s.answer("p1", &[("a", 60)]);
        assert_eq!(s.fetches.len(), 1);
        assert_eq!(s.fetch_to("p2"), Some(keys(&["b"])));
        s.answer("p2", &[("b", 60)]);
        // Nothing in flight: the 500-byte key goes alone although it is over the cap.
        assert_eq!(s.fetch_to("p3"), Some(keys(&["c"])));
        s.answer("p3", &[("c", 500)]);
        assert_eq!(s.executed(), keys(&["t"]));
    }

    #[test]
    fn busy_peers_are_skipped_then_retried() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[("a", &["p1", "p2"], 10)], 0, false);
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        s.busy("p1");
        // Another holder first.
        assert_eq!(s.fetch_to("p2"), Some(keys(&["a"])));
        s.busy("p2");
        assert_eq!(s.w.key_state(&k("a")), Some("busy"));
        assert!(s.fetches.is_empty());
        assert!(s.w.has_busy_retries());
        s.retry();
        assert!(!s.w.has_busy_retries());
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        s.answer("p1", &[("a", 10)]);
        assert_eq!(s.executed(), keys(&["t"]));
        assert!(
            !s.sent
                .iter()
                .any(|m| matches!(m, FromWorker::MissingData { .. }))
        );
    }

    #[test]
    fn a_busy_peer_is_not_asked_for_other_keys_until_the_retry() {
        let mut cfg = WorkerConfig::new(1, 0);
        cfg.max_fetch_keys_per_request = 1;
        let mut s = Sim::new(cfg);
        s.compute("t", &[("a", &["p1"], 10), ("b", &["p1"], 10)], 0, false);
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        s.busy("p1");
        assert!(s.fetches.is_empty());
        assert_eq!(s.w.key_state(&k("a")), Some("busy"));
        assert_eq!(s.w.key_state(&k("b")), Some("fetch"));
        assert!(s.w.has_busy_retries());
        s.retry();
        assert_eq!(s.fetches.len(), 1);
        let first = s.fetch_to("p1").unwrap();
        s.answer("p1", &[(first[0].name(), 10)]);
        let second = s.fetch_to("p1").unwrap();
        assert_ne!(first, second);
        s.answer("p1", &[(second[0].name(), 10)]);
        assert_eq!(s.executed(), keys(&["t"]));
    }

    #[test]
    fn missing_at_the_first_holder_found_at_the_second() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[("a", &["p1", "p2"], 10)], 0, false);
        s.answer("p1", &[]);
        assert_eq!(s.fetch_to("p2"), Some(keys(&["a"])));
        s.answer("p2", &[("a", 10)]);
        assert_eq!(s.executed(), keys(&["t"]));
        assert!(
            !s.sent
                .iter()
                .any(|m| matches!(m, FromWorker::MissingData { .. }))
        );
    }

    #[test]
    fn missing_everywhere_is_reported_and_recovers_when_the_scheduler_names_a_holder() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[("a", &["p1"], 10)], 0, false);
        s.answer("p1", &[]);
        assert_eq!(
            s.sent.last(),
            Some(&FromWorker::MissingData {
                key: k("a"),
                errant_worker: "p1".into()
            })
        );
        assert_eq!(s.w.key_state(&k("a")), Some("missing"));
        assert_eq!(s.w.key_state(&k("t")), Some("waiting"));
        assert!(s.fetches.is_empty());
        // The scheduler recomputed `a` on p3 and sends the task again: the duplicate does not
        // start a second task, but its new holder is used.
        s.compute("t", &[("a", &["p3"], 12)], 0, false);
        assert_eq!(s.fetch_to("p3"), Some(keys(&["a"])));
        s.answer("p3", &[("a", 12)]);
        assert_eq!(s.executed(), keys(&["t"]));
    }

    #[test]
    fn a_failed_peer_is_forgotten_for_every_key() {
        let mut cfg = WorkerConfig::new(1, 0);
        cfg.max_fetch_keys_per_request = 1;
        let mut s = Sim::new(cfg);
        s.compute(
            "t",
            &[
                ("a", &["p1", "p2"], 10),
                ("b", &["p1"], 10),
                ("c", &["p1", "p2"], 10),
            ],
            0,
            false,
        );
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        assert_eq!(s.fetch_to("p2"), Some(keys(&["c"])));
        s.fail("p1");
        // a goes to p2 (queued behind c); b had only p1.
        assert_eq!(s.w.key_state(&k("a")), Some("fetch"));
        assert_eq!(s.w.key_state(&k("b")), Some("missing"));
        assert!(s.sent.contains(&FromWorker::MissingData {
            key: k("b"),
            errant_worker: "p1".into()
        }));
        assert!(s.fetch_to("p1").is_none());
    }

    #[test]
    fn freeing_a_task_while_its_inputs_are_fetched() {
        let mut cfg = WorkerConfig::new(1, 0);
        cfg.max_fetch_keys_per_request = 1;
        let mut s = Sim::new(cfg);
        s.compute("t", &[("a", &["p1"], 10), ("b", &["p1"], 10)], 0, false);
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
        assert_eq!(s.w.key_state(&k("b")), Some("fetch"));
        s.free(&["t"]);
        assert_eq!(s.w.key_state(&k("t")), None);
        assert_eq!(s.w.key_state(&k("b")), None, "a queued input is dropped");
        assert_eq!(
            s.w.key_state(&k("a")),
            Some("flight"),
            "in flight until answered"
        );
        let sent = s.sent.len();
        s.answer("p1", &[("a", 10)]);
        assert_eq!(
            s.log.last(),
            Some(&WorkerInstruction::Release { key: k("a") })
        );
        assert_eq!(s.sent.len(), sent, "no AddKeys for a value nobody wants");
        assert_eq!(s.w.n_keys(), 0);
        assert!(s.fetches.is_empty());
    }

    #[test]
    fn freeing_an_executing_task_discards_its_result() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[("a", &["p1"], 10)], 0, false);
        s.answer("p1", &[("a", 10)]);
        assert_eq!(s.w.key_state(&k("t")), Some("executing"));
        s.free(&["t"]);
        assert_eq!(s.w.key_state(&k("t")), Some("cancelled"));
        assert_eq!(s.w.n_executing(), 1, "it still holds its thread");
        s.finish(&k("t"), Ok(5));
        assert_eq!(
            s.log.last(),
            Some(&WorkerInstruction::Release { key: k("t") })
        );
        assert_eq!(s.finished("t"), 0);
        assert_eq!(s.w.key_state(&k("t")), None);
        // The fetched input was announced: it is the scheduler's to free.
        assert_eq!(s.w.key_state(&k("a")), Some("memory"));
        s.free(&["a"]);
        assert_eq!(s.w.n_keys(), 0);
        assert!(s.store.is_empty());
    }

    #[test]
    fn a_cancelled_task_sent_again_resumes() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.put(&[("x", 1)]);
        s.compute("t", &[("x", &["me"], 1)], 0, false);
        s.free(&["t"]);
        s.compute("t", &[("x", &["me"], 1)], 0, false);
        assert_eq!(s.w.key_state(&k("t")), Some("executing"));
        assert_eq!(s.executed(), keys(&["t"]));
        s.finish(&k("t"), Ok(3));
        assert_eq!(s.finished("t"), 1);
    }

    #[test]
    fn steal_before_start_is_released_after_start_is_not() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[("a", &["p1"], 10)], 0, false);
        s.deliver(ToWorker::StealRequest { key: k("t") });
        assert_eq!(
            s.sent.last(),
            Some(&FromWorker::StealResponse {
                key: k("t"),
                released: true
            })
        );
        assert_eq!(s.w.key_state(&k("t")), None);
        s.answer("p1", &[("a", 10)]);
        assert_eq!(s.w.n_keys(), 0);

        s.put(&[("x", 1)]);
        s.compute("u", &[("x", &["me"], 1)], 0, false);
        s.deliver(ToWorker::StealRequest { key: k("u") });
        assert_eq!(
            s.sent.last(),
            Some(&FromWorker::StealResponse {
                key: k("u"),
                released: false
            })
        );
        s.finish(&k("u"), Ok(1));
        assert_eq!(s.finished("u"), 1);
    }

    #[test]
    fn at_most_nthreads_run_in_priority_order() {
        let mut s = Sim::new(WorkerConfig::new(2, 0));
        s.put(&[("x", 1)]);
        let local: &[&str] = &["me"];
        s.compute("block1", &[("x", local, 1)], 0, false);
        s.compute("block2", &[("x", local, 1)], 0, false);
        for (name, order) in [("t5", 5), ("t3", 3), ("t4", 4), ("t1", 1), ("t2", 2)] {
            s.compute(name, &[("x", local, 1)], order, false);
        }
        assert_eq!(s.w.n_executing(), 2);
        assert_eq!(s.w.metrics().ready, 5);
        s.finish(&k("block1"), Ok(1));
        s.finish(&k("block2"), Ok(1));
        for _ in 0..5 {
            let next = s.running[0].clone();
            s.finish(&next, Ok(1));
        }
        assert_eq!(
            s.executed(),
            keys(&["block1", "block2", "t1", "t2", "t3", "t4", "t5"])
        );
    }

    #[test]
    fn small_results_are_sent_inline_when_asked() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("small", &[], 0, true);
        s.finish(&k("small"), Ok(100));
        assert_eq!(
            s.log.last(),
            Some(&WorkerInstruction::SendFinishedInline {
                key: k("small"),
                nbytes: 100,
                type_tag: "t".into(),
                attempt: 1,
                compute_us: Some(5),
            })
        );
        assert!(matches!(
            s.sent.last(),
            Some(FromWorker::TaskFinished { value: Some(v), .. }) if v.data.len() == 100
        ));
        s.compute("big", &[], 0, true);
        s.finish(&k("big"), Ok(1 << 20));
        assert!(matches!(
            s.log.last(),
            Some(WorkerInstruction::Send(FromWorker::TaskFinished {
                value: None,
                ..
            }))
        ));
        s.compute("plain", &[], 0, false);
        s.finish(&k("plain"), Ok(10));
        assert!(matches!(
            s.log.last(),
            Some(WorkerInstruction::Send(FromWorker::TaskFinished {
                value: None,
                ..
            }))
        ));
    }

    #[test]
    fn errors_are_reported() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[], 0, false);
        s.finish(&k("t"), Err("boom"));
        assert!(matches!(
            s.sent.last(),
            Some(FromWorker::TaskErred { key, error, .. }) if *key == k("t") && error.message == "boom"
        ));
        assert_eq!(s.w.key_state(&k("t")), Some("error"));
        s.free(&["t"]);
        assert_eq!(s.w.n_keys(), 0);
    }

    #[test]
    fn replicas_answer_at_once_and_duplicates_are_ignored() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.compute("t", &[], 0, false);
        s.compute("t", &[], 0, false);
        assert_eq!(s.executed().len(), 1);
        s.finish(&k("t"), Ok(4));
        s.compute("t", &[], 0, false);
        assert_eq!(s.executed().len(), 1);
        assert_eq!(s.finished("t"), 2);
    }

    #[test]
    fn pause_and_resume() {
        let mut s = Sim::new(WorkerConfig::new(1, 1000));
        s.memory(850);
        assert!(s.w.is_paused());
        assert!(s.w.metrics().paused);
        s.compute("t", &[], 0, false);
        s.compute("u", &[("a", &["p1"], 10)], 0, false);
        assert!(s.executed().is_empty());
        assert!(s.fetches.is_empty(), "no fetching while paused");
        assert_eq!(s.w.metrics().ready, 1);
        s.memory(500);
        assert!(!s.w.is_paused());
        assert_eq!(s.executed(), keys(&["t"]));
        assert_eq!(s.fetch_to("p1"), Some(keys(&["a"])));
    }

    #[test]
    fn spilling_is_lru_and_never_touches_inputs_of_running_tasks() {
        let mut s = Sim::new(WorkerConfig::new(1, 1000));
        s.put(&[("a", 200)]);
        s.put(&[("b", 200)]);
        s.put(&[("c", 200)]);
        assert!(s.spills.is_empty(), "600 is not above the 60% target");
        // `t` reads a: a becomes the most recently used and is pinned while t runs.
        s.compute("t", &[("a", &["me"], 200)], 0, false);
        s.put(&[("d", 200)]);
        assert_eq!(s.spills, keys(&["b"]));
        assert_eq!(s.w.metrics().managed, 800, "counted until confirmed");
        s.spill_done(&k("b"), true);
        assert_eq!(s.w.key_state(&k("b")), Some("spilled"));
        assert_eq!(s.w.metrics().managed, 600);
        assert_eq!(s.w.metrics().spilled, 200);
        s.put(&[("e", 300)]);
        assert_eq!(s.spills, keys(&["c", "d"]), "a is read by t: never spilled");
        s.spill_done(&k("c"), true);
        // d cannot be spilled (its type has no spill path): never asked again.
        s.spill_done(&k("d"), false);
        assert_eq!(s.w.key_state(&k("d")), Some("memory"));
        s.put(&[("f", 100)]);
        let spills_of_d = s
            .log
            .iter()
            .filter(|i| matches!(i, WorkerInstruction::Spill { key } if *key == k("d")))
            .count();
        assert_eq!(spills_of_d, 1);
        assert!(
            !s.log
                .iter()
                .any(|i| matches!(i, WorkerInstruction::Spill { key } if *key == k("a")))
        );
        // A task reading a spilled input: the driver reads it back.
        s.finish(&k("t"), Ok(1));
        s.compute("u", &[("b", &["me"], 200)], 0, false);
        assert_eq!(s.w.key_state(&k("b")), Some("memory"));
        assert_eq!(s.executed(), keys(&["t", "u"]));
    }

    #[test]
    fn process_memory_spills_and_restarts_once() {
        let mut s = Sim::new(WorkerConfig::new(1, 1000));
        s.put(&[("a", 100)]);
        s.put(&[("b", 100)]);
        s.memory(750);
        // Above 70%: spill until the estimate is under 60%.
        assert_eq!(s.spills, keys(&["a", "b"]));
        s.memory(960);
        assert_eq!(s.restarts.len(), 1);
        assert!(s.restarts[0].contains("960"));
        s.memory(970);
        assert_eq!(s.restarts.len(), 1, "once");
        s.memory(100);
        s.memory(990);
        assert_eq!(s.restarts.len(), 2, "again after falling below");
    }

    #[test]
    fn no_limit_means_no_spilling_or_pausing() {
        let mut s = Sim::new(WorkerConfig::new(1, 0));
        s.put(&[("a", 1 << 40)]);
        s.memory(u64::MAX);
        assert!(s.spills.is_empty() && s.restarts.is_empty() && !s.w.is_paused());
    }
}

#[cfg(test)]
mod proptests {
    use super::tests::{Sim, k, prio, wire_op};
    use super::*;
    use proptest::prelude::*;

    const PEERS: [&str; 3] = ["p0", "p1", "p2"];

    #[derive(Clone, Debug)]
    enum Act {
        Submit(usize),
        Dup(usize),
        /// 0 ok, 1 all missing, 2 busy, 3 failed, 4 first half ok.
        Answer(usize, u8),
        Finish(usize, bool),
        Free(usize),
        FreeData(usize),
        Steal(usize),
        /// Process memory in thousandths of the limit.
        Mem(u64),
        Retry,
        Spill(usize, bool),
        Put(usize),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => (0..64usize).prop_map(Act::Submit),
            1 => (0..64usize).prop_map(Act::Dup),
            6 => (0..64usize, 0..5u8).prop_map(|(i, a)| Act::Answer(i, a)),
            4 => (0..64usize, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Act::Finish(i, ok)),
            1 => (0..64usize).prop_map(Act::Free),
            1 => (0..64usize).prop_map(Act::FreeData),
            1 => (0..64usize).prop_map(Act::Steal),
            1 => (0..1100u64).prop_map(Act::Mem),
            1 => Just(Act::Retry),
            2 => (0..64usize, prop::bool::weighted(0.8)).prop_map(|(i, ok)| Act::Spill(i, ok)),
            1 => (0..64usize).prop_map(Act::Put),
        ]
    }

    #[derive(Clone, Debug)]
    struct Scenario {
        nthreads: u32,
        max_keys: usize,
        /// (nbytes, holders) per data key.
        data: Vec<(u64, Vec<usize>)>,
        /// (inputs, order, inline) per task.
        tasks: Vec<(Vec<usize>, u32, bool)>,
        acts: Vec<Act>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            1..4u32,
            1..4usize,
            prop::collection::vec(
                (
                    1..300u64,
                    prop::sample::subsequence(vec![0usize, 1, 2], 1..=3),
                ),
                1..8,
            ),
            prop::collection::vec(
                (
                    prop::collection::vec(0..8usize, 0..4),
                    0..20u32,
                    any::<bool>(),
                ),
                1..10,
            ),
            prop::collection::vec(act(), 0..120),
        )
            .prop_map(|(nthreads, max_keys, data, tasks, acts)| Scenario {
                nthreads,
                max_keys,
                data,
                tasks,
                acts,
            })
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Fate {
        NotSent,
        Live,
        Gone,
    }

    struct World {
        s: Sim,
        sc: Scenario,
        fate: Vec<Fate>,
        seen: usize,
    }

    impl World {
        fn data_key(&self, i: usize) -> Key {
            k(&format!("d{}", i % self.sc.data.len()))
        }

        fn task_key(i: usize) -> Key {
            k(&format!("t{i}"))
        }

        fn deps(&self, t: usize) -> Vec<usize> {
            let mut deps: Vec<usize> = self.sc.tasks[t]
                .0
                .iter()
                .map(|d| d % self.sc.data.len())
                .collect();
            deps.sort();
            deps.dedup();
            deps
        }

        fn compute_msg(&self, t: usize, all_peers: bool) -> ToWorker {
            let deps: Vec<DepLocation> = self
                .deps(t)
                .into_iter()
                .map(|d| {
                    let (nbytes, holders) = &self.sc.data[d];
                    let who_has = if all_peers {
                        PEERS.iter().map(|p| p.to_string()).collect()
                    } else {
                        holders.iter().map(|h| PEERS[*h].to_string()).collect()
                    };
                    DepLocation {
                        key: self.data_key(d),
                        who_has,
                        nbytes: *nbytes,
                    }
                })
                .collect();
            let n = deps.len() as u32;
            let mut args: Vec<u32> = (0..n).collect();
            if n > 0 {
                args.push(0);
            }
            let (_, order, inline) = self.sc.tasks[t];
            ToWorker::ComputeTask {
                key: Self::task_key(t),
                op: wire_op("test::op"),
                deps,
                args,
                priority: prio(order),
                inline_result: inline,
                projected_nbytes: None,
                attempt: 1,
            }
        }

        fn terminal(&self, t: usize) -> usize {
            let key = Self::task_key(t);
            self.s
                .sent
                .iter()
                .filter(|m| {
                    matches!(m, FromWorker::TaskFinished { key: x, .. }
                        | FromWorker::TaskErred { key: x, .. } if *x == key)
                })
                .count()
        }

        fn size_of(&self, key: &Key) -> u64 {
            let i: usize = key.name()[1..].parse().unwrap();
            if key.name().starts_with('d') {
                self.sc.data[i].0
            } else {
                10 + i as u64
            }
        }

        /// The fake scheduler: a key reported missing is found again and every live task
        /// reading it is sent again, naming all peers.
        fn react(&mut self) {
            while self.seen < self.s.sent.len() {
                let msg = self.s.sent[self.seen].clone();
                self.seen += 1;
                if let FromWorker::MissingData { key, .. } = msg {
                    for t in 0..self.sc.tasks.len() {
                        let reads = self.deps(t).iter().any(|d| self.data_key(*d) == key);
                        if reads && self.fate[t] == Fate::Live && self.terminal(t) == 0 {
                            let m = self.compute_msg(t, true);
                            self.s.deliver(m);
                        }
                    }
                }
            }
        }

        fn answer(&mut self, i: usize, how: u8) {
            if self.s.fetches.is_empty() {
                return;
            }
            let (from, keys) = self.s.fetches[i % self.s.fetches.len()].clone();
            match how {
                0 | 4 => {
                    let n = if how == 0 { keys.len() } else { keys.len() / 2 };
                    let got: Vec<(String, u64)> = keys[..n]
                        .iter()
                        .map(|key| (key.name().to_string(), self.size_of(key)))
                        .collect();
                    let got: Vec<(&str, u64)> = got.iter().map(|(s, n)| (s.as_str(), *n)).collect();
                    self.s.answer(&from, &got);
                }
                1 => self.s.answer(&from, &[]),
                2 => self.s.busy(&from),
                _ => self.s.fail(&from),
            }
        }

        fn step(&mut self, a: &Act) {
            let n = self.sc.tasks.len();
            match *a {
                Act::Submit(i) => {
                    let t = i % n;
                    if self.fate[t] == Fate::NotSent {
                        self.fate[t] = Fate::Live;
                        let m = self.compute_msg(t, false);
                        self.s.deliver(m);
                    }
                }
                Act::Dup(i) => {
                    let t = i % n;
                    if self.fate[t] == Fate::Live && self.terminal(t) == 0 {
                        let m = self.compute_msg(t, i % 2 == 0);
                        self.s.deliver(m);
                    }
                }
                Act::Answer(i, how) => self.answer(i, how),
                Act::Finish(i, ok) => {
                    if !self.s.running.is_empty() {
                        let key = self.s.running[i % self.s.running.len()].clone();
                        let nb = self.size_of(&key);
                        self.s.finish(&key, if ok { Ok(nb) } else { Err("boom") });
                    }
                }
                Act::Free(i) => {
                    let t = i % n;
                    if self.fate[t] == Fate::Live {
                        self.fate[t] = Fate::Gone;
                        self.s.deliver(ToWorker::FreeKeys {
                            keys: vec![Self::task_key(t)],
                        });
                    }
                }
                Act::FreeData(i) => {
                    let key = self.data_key(i);
                    self.s.deliver(ToWorker::FreeKeys { keys: vec![key] });
                }
                Act::Steal(i) => {
                    let t = i % n;
                    if self.fate[t] == Fate::Live {
                        let key = Self::task_key(t);
                        self.s.deliver(ToWorker::StealRequest { key: key.clone() });
                        match self.s.sent.last() {
                            Some(FromWorker::StealResponse { key: x, released }) if *x == key => {
                                if *released {
                                    self.fate[t] = Fate::Gone;
                                    assert_eq!(self.s.w.key_state(&key), None);
                                }
                            }
                            other => panic!("no steal response: {other:?}"),
                        }
                    }
                }
                Act::Mem(pm) => {
                    let limit = self.s.w.config.memory_limit;
                    self.s.memory(limit * pm / 1000);
                }
                Act::Retry => self.s.retry(),
                Act::Spill(i, ok) => {
                    if !self.s.spills.is_empty() {
                        let key = self.s.spills[i % self.s.spills.len()].clone();
                        self.s.spill_done(&key, ok);
                    }
                }
                Act::Put(i) => {
                    let key = self.data_key(i);
                    let absent = matches!(
                        self.s.w.key_state(&key),
                        None | Some("fetch" | "busy" | "missing")
                    );
                    if absent {
                        let nb = self.size_of(&key);
                        let name = key.name().to_string();
                        self.s.put(&[(name.as_str(), nb)]);
                    }
                }
            }
            self.react();
        }

        /// Answers everything with success until nothing is outstanding.
        fn settle_all(&mut self) {
            self.s.memory(0);
            for _ in 0..500 {
                let busy = self.s.w.has_busy_retries();
                let idle = self.s.fetches.is_empty()
                    && self.s.running.is_empty()
                    && self.s.spills.is_empty()
                    && !busy;
                if idle {
                    return;
                }
                while let Some(key) = self.s.spills.first().cloned() {
                    self.s.spill_done(&key, true);
                }
                while !self.s.fetches.is_empty() {
                    self.answer(0, 0);
                    self.react();
                }
                if busy {
                    self.s.retry();
                }
                while let Some(key) = self.s.running.first().cloned() {
                    let nb = self.size_of(&key);
                    self.s.finish(&key, Ok(nb));
                }
                self.react();
            }
            panic!("no quiescence");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_event_orders_keep_the_invariants_and_finish_every_task(sc in scenario()) {
            let mut cfg = WorkerConfig::new(sc.nthreads, 1000);
            cfg.max_fetch_keys_per_request = sc.max_keys;
            cfg.max_fetch_bytes_in_flight = 400;
            cfg.inline_limit = 15;
            let n = sc.tasks.len();
            let mut world = World { s: Sim::new(cfg), sc: sc.clone(), fate: vec![Fate::NotSent; n], seen: 0 };
            for a in &sc.acts {
                world.step(a);
            }
            // Submit whatever was never sent, then let everything succeed.
            for t in 0..n {
                world.step(&Act::Submit(t));
            }
            world.settle_all();
            for t in 0..n {
                let done = world.terminal(t);
                match world.fate[t] {
                    Fate::Live => prop_assert_eq!(done, 1, "task t{} finished {} times", t, done),
                    _ => prop_assert!(done <= 1, "freed task t{} finished {} times", t, done),
                }
                if world.fate[t] == Fate::Live {
                    let st = world.s.w.key_state(&World::task_key(t));
                    prop_assert!(matches!(st, Some("memory" | "spilled" | "error")), "t{} ends {:?}", t, st);
                }
            }
            // Freeing everything leaves nothing behind.
            let mut all: Vec<Key> = (0..n).map(World::task_key).collect();
            all.extend((0..sc.data.len()).map(|d| world.data_key(d)));
            world.s.deliver(ToWorker::FreeKeys { keys: all });
            prop_assert_eq!(world.s.w.n_keys(), 0);
            prop_assert!(world.s.store.is_empty());
            let m = world.s.w.metrics();
            prop_assert_eq!((m.managed, m.spilled, m.executing, m.ready), (0, 0, 0, 0));
        }
    }
}
