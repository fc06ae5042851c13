//! The local executors: both drive [`SchedulerState`], one on the calling thread, one on a
//! pool of threads sharing it behind a mutex.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rask_error::{RaskError, Result};
use rask_graph::{Graph, TaskId, Value};
use smallvec::SmallVec;

use crate::callbacks::{Callback, CancelToken, interrupted};
use crate::spill::SpillStore;
use crate::state::{SchedulerState, Status, TaskState};

/// How to run a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Executor {
    /// One thread, the caller's: deterministic order, easiest to debug.
    Sync,
    /// A pool of threads; `0` means one per available core.
    Threads(usize),
    /// [`Executor::Threads`] with one thread per core.
    #[default]
    Threaded,
}

impl Executor {
    pub fn num_threads(self) -> usize {
        match self {
            Executor::Sync => 1,
            Executor::Threads(0) | Executor::Threaded => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            Executor::Threads(n) => n,
        }
    }
}

/// Options for one run.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub callbacks: Vec<Arc<dyn Callback>>,
    pub cancel: CancelToken,
    /// Memory budget in bytes for values held between tasks.
    pub memory_limit: Option<u64>,
    /// Where values go when the budget forces them out of memory (a fresh directory under
    /// the system's temporary directory by default, removed when the run ends).
    pub spill_dir: Option<std::path::PathBuf>,
}

/// What a successful run returns.
#[derive(Debug)]
pub struct RunOutput {
    /// One value per requested output, in the order requested.
    pub values: Vec<Value>,
    pub stats: RunStats,
}

/// Figures about a finished run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub tasks_run: usize,
    /// Values written to disk to stay within the memory budget, and their bytes.
    pub spilled_values: usize,
    pub spilled_bytes: u64,
    pub peak_memory: u64,
    /// Heap bytes held by the scheduler state machine.
    pub scheduler_heap_bytes: usize,
}

/// Runs `graph` to produce `outputs`, ordering ready tasks by `priority`.
pub fn run(
    executor: Executor,
    graph: &Graph,
    outputs: &[TaskId],
    priority: Vec<u32>,
    opts: &RunOptions,
) -> Result<RunOutput> {
    let mut state =
        SchedulerState::new(graph, outputs, priority).with_memory_limit(opts.memory_limit);
    if let Some(limit) = opts.memory_limit {
        let sizes = graph.projected_nbytes();
        let transient = graph.transient_nbytes(&sizes);
        crate::budget::check_sizes(graph, &sizes, &transient, limit)?;
        state = state.with_task_sizes(transient.iter().map(|t| t.unwrap_or(0)).collect());
    }
    let shared = Shared {
        inner: Mutex::new(Inner {
            values: vec![None; graph.len()],
            spill: SpillStore::new(opts.spill_dir.clone()),
            error: None,
            idle: 0,
            state,
        }),
        wake: Condvar::new(),
        failed: AtomicBool::new(false),
    };
    for cb in &opts.callbacks {
        cb.on_compute_start(graph);
    }
    let threads = executor.num_threads().max(1);
    if threads == 1 || graph.len() <= 1 {
        worker_loop(&shared, graph, opts, 1);
    } else {
        std::thread::scope(|scope| {
            for w in 1..threads {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("rask-worker-{w}"))
                    .spawn_scoped(scope, move || worker_loop(shared, graph, opts, threads))
                    .expect("spawning a worker thread");
            }
            worker_loop(&shared, graph, opts, threads);
        });
    }
    let mut inner = shared.inner.into_inner().unwrap_or_else(|p| p.into_inner());
    if inner.error.is_none() && inner.state.status() != Status::Done {
        inner.error = Some(RaskError::Cancelled(None));
    }
    let stats = RunStats {
        spilled_values: inner.state.n_spilled(),
        spilled_bytes: inner.spill.written_bytes,
        tasks_run: inner.state.n_finished(),
        peak_memory: inner.state.peak_memory(),
        scheduler_heap_bytes: inner.state.heap_bytes(),
    };
    for cb in &opts.callbacks {
        cb.on_compute_finish(graph, inner.state.states(), inner.error.as_ref());
    }
    if let Some(err) = inner.error.take() {
        return Err(err);
    }
    let mut values = Vec::with_capacity(outputs.len());
    for &o in outputs {
        let v = match inner.values[o as usize].clone() {
            Some(v) => v,
            None => match inner.spill.read(o)? {
                Some(v) => {
                    inner.values[o as usize] = Some(v.clone());
                    v
                }
                None => {
                    return Err(RaskError::InvalidGraph(format!(
                        "output {} was not computed",
                        graph.task(o).key
                    )));
                }
            },
        };
        values.push(v);
    }
    Ok(RunOutput { values, stats })
}

struct Inner {
    state: SchedulerState,
    values: Vec<Option<Value>>,
    spill: SpillStore,
    error: Option<RaskError>,
    idle: usize,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
    /// Set once a failure is reported, so workers stop their batches without the lock.
    failed: AtomicBool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A poisoned lock means a callback panicked while holding it; the state itself is only
    // changed by code here, which does not panic mid-update, so carry on.
    shared.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tasks averaging less than this are batched.
const QUICK_TASK_NS: u64 = 20_000;

/// Most tasks one worker takes from the queue at once.
const MAX_BATCH: usize = 16;

/// A worker holds its finished results back (to report them under one lock) for at most
/// this long, so quick tasks share lock round trips while slow ones report at once.
const FLUSH_AFTER: Duration = Duration::from_micros(20);

/// One worker: take the best ready tasks, run them outside the lock, report back. The same
/// loop serves the sync executor (one worker) and the threaded one (several).
///
/// Tasks are taken in small batches when many are ready (a fair share of the queue, at most
/// [`MAX_BATCH`]), so trivial tasks do not pay one lock round trip each; results are reported
/// as soon as [`FLUSH_AFTER`] has passed, so a slow task never hides others' results.
fn worker_loop(shared: &Shared, graph: &Graph, opts: &RunOptions, threads: usize) {
    let timed = !opts.callbacks.is_empty();
    // Running average of this worker's task durations; starts pessimistic (no batching)
    // until a few tasks showed they are quick.
    let mut avg_task_ns: u64 = u64::MAX / 2;
    let mut batch: Vec<(TaskId, SmallVec<[Value; 2]>)> = Vec::with_capacity(MAX_BATCH);
    // `None`: taken from the queue but not started, because the computation stopped.
    let mut done: Vec<(TaskId, Option<Result<Value>>)> = Vec::with_capacity(MAX_BATCH);
    let mut guard = lock(shared);
    loop {
        if opts.cancel.is_cancelled() || interrupted() {
            guard.state.cancel();
        }
        if guard.state.is_finished() {
            shared.wake.notify_all();
            return;
        }
        // Batch only tasks known to be quick, and never under a memory budget: a batch of
        // roots would load up to MAX_BATCH blocks at once, where the static order needs few.
        let want = if opts.memory_limit.is_some() || avg_task_ns > QUICK_TASK_NS {
            1
        } else {
            (guard.state.n_ready() / threads).clamp(1, MAX_BATCH)
        };
        while batch.len() < want {
            let Some(id) = guard.state.pop_ready() else {
                break;
            };
            apply_spills(&mut guard);
            let task = graph.task(id);
            let inputs: Result<SmallVec<[Value; 2]>> = task
                .deps
                .iter()
                .map(|&d| load_input(&mut guard, graph, d))
                .collect();
            match inputs {
                Ok(inputs) => batch.push((id, inputs)),
                Err(e) => {
                    guard.state.task_failed(id);
                    if guard.error.is_none() {
                        guard.error =
                            Some(e.context(format!("reading the inputs of {}", task.key)));
                    }
                    shared.failed.store(true, Ordering::Release);
                    shared.wake.notify_all();
                    break;
                }
            }
        }
        if batch.is_empty() {
            guard.idle += 1;
            // The timeout only matters for cancellation, which nothing else signals.
            guard = shared
                .wake
                .wait_timeout(guard, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            guard.idle -= 1;
            continue;
        }
        // Wake an idle worker if more work is queued than this one takes.
        if guard.idle > 0 && guard.state.has_ready() {
            shared.wake.notify_one();
        }
        drop(guard);

        let mut since_flush = Instant::now();
        let n = batch.len();
        let mut stop = false;
        for (k, (id, inputs)) in batch.drain(..).enumerate() {
            // No task starts once the computation failed or was cancelled, even one already
            // taken in this batch.
            stop = stop
                || (k > 0
                    && (opts.cancel.is_cancelled()
                        || interrupted()
                        || shared.failed.load(Ordering::Acquire)));
            if stop {
                done.push((id, None));
                continue;
            }
            let started = Instant::now();
            let result = run_task(graph, id, &inputs, opts, timed);
            let took = started.elapsed().as_nanos().min(u64::MAX as u128 / 4) as u64;
            avg_task_ns = if avg_task_ns >= u64::MAX / 4 {
                took
            } else {
                (avg_task_ns * 7 + took) / 8
            };
            drop(inputs);
            stop = result.is_err();
            done.push((id, Some(result)));
            if k + 1 < n && since_flush.elapsed() >= FLUSH_AFTER {
                let mut g = lock(shared);
                report(&mut g, shared, &mut done, graph, opts);
                drop(g);
                since_flush = Instant::now();
            }
        }
        guard = lock(shared);
        report(&mut guard, shared, &mut done, graph, opts);
    }
}

fn run_task(
    graph: &Graph,
    id: TaskId,
    inputs: &[Value],
    opts: &RunOptions,
    timed: bool,
) -> Result<Value> {
    let task = graph.task(id);
    for cb in &opts.callbacks {
        cb.on_task_start(graph, id);
    }
    let started = timed.then(Instant::now);
    let result = {
        let _span = tracing::trace_span!("task", key = %task.key, op = task.op.name()).entered();
        match catch_unwind(AssertUnwindSafe(|| task.op.execute(inputs))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RaskError::TaskFailed {
                key: task.key.to_string(),
                op: task.op.name().to_string(),
                source: Box::new(e),
            }),
            Err(payload) => Err(RaskError::TaskPanicked {
                key: task.key.to_string(),
                op: task.op.name().to_string(),
                message: panic_message(payload.as_ref()),
            }),
        }
    };
    match &result {
        Ok(v) => {
            let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
            for cb in &opts.callbacks {
                cb.on_task_finish(graph, id, v.nbytes() as u64, elapsed);
            }
        }
        Err(e) => {
            for cb in &opts.callbacks {
                cb.on_task_error(graph, id, e);
            }
        }
    }
    result
}

/// Writes the values the state machine chose to spill. A value whose type cannot spill stays
/// in memory; a failed write fails the computation with the path at fault.
fn apply_spills(inner: &mut Inner) {
    let chosen: SmallVec<[TaskId; 8]> = inner.state.drain_spills().collect();
    for id in chosen {
        let Some(value) = inner.values[id as usize].take() else {
            continue;
        };
        match inner.spill.write(id, &value) {
            Ok(true) => {}
            Ok(false) => {
                inner.values[id as usize] = Some(value);
                inner.state.spill_failed(id);
            }
            Err(e) => {
                inner.values[id as usize] = Some(value);
                inner.state.spill_failed(id);
                if inner.error.is_none() {
                    inner.error = Some(e.context("spilling to stay within the memory budget"));
                }
                inner.state.cancel();
            }
        }
    }
}

/// An input of a task about to start: in memory, or read back from disk.
fn load_input(inner: &mut Inner, graph: &Graph, d: TaskId) -> Result<Value> {
    if let Some(v) = &inner.values[d as usize] {
        return Ok(v.clone());
    }
    match inner.spill.read(d)? {
        Some(v) => {
            inner.state.unspilled(d);
            inner.values[d as usize] = Some(v.clone());
            Ok(v)
        }
        None => Err(RaskError::InvalidGraph(format!(
            "input {} is neither in memory nor on disk",
            graph.task(d).key
        ))),
    }
}

/// Feeds finished tasks to the state machine and drops released values.
fn report(
    guard: &mut MutexGuard<'_, Inner>,
    shared: &Shared,
    done: &mut Vec<(TaskId, Option<Result<Value>>)>,
    graph: &Graph,
    opts: &RunOptions,
) {
    let inner = &mut **guard;
    for (id, result) in done.drain(..) {
        match result {
            None => {
                // Skipped because the computation stopped: a failure reported earlier (the
                // state is no longer running then), or a cancellation.
                inner.state.cancel();
                inner.state.task_skipped(id);
            }
            Some(Ok(value)) => {
                let nbytes = value.nbytes() as u64;
                inner.state.task_finished(id, nbytes);
                if inner.state.state_of(id) == TaskState::Memory {
                    inner.values[id as usize] = Some(value);
                }
                let Inner {
                    state,
                    values,
                    spill,
                    ..
                } = &mut *inner;
                for r in state.drain_released() {
                    values[r as usize] = None;
                    spill.remove(r);
                    for cb in &opts.callbacks {
                        cb.on_task_release(graph, r);
                    }
                }
            }
            Some(Err(e)) => {
                inner.state.task_failed(id);
                if inner.error.is_none() {
                    inner.error = Some(e);
                }
                shared.failed.store(true, Ordering::Release);
                shared.wake.notify_all();
            }
        }
    }
    if inner.idle > 0 && inner.state.has_ready() {
        shared.wake.notify_one();
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A computation running in the background. Dropping it cancels the computation: no new
/// task starts, and the worker threads exit once their current task returns.
pub struct ComputeHandle {
    cancel: CancelToken,
    join: Option<std::thread::JoinHandle<Result<RunOutput>>>,
}

impl ComputeHandle {
    /// Starts running `graph` on background threads.
    pub fn spawn(
        executor: Executor,
        graph: Arc<Graph>,
        outputs: Vec<TaskId>,
        priority: Vec<u32>,
        mut opts: RunOptions,
    ) -> ComputeHandle {
        // The handle's own token, which also observes the caller's: cancelling or dropping
        // the handle must not cancel later computations sharing the caller's token.
        let cancel = opts.cancel.child();
        opts.cancel = cancel.clone();
        let join = std::thread::Builder::new()
            .name("rask-compute".into())
            .spawn(move || run(executor, &graph, &outputs, priority, &opts))
            .expect("spawning the compute thread");
        ComputeHandle {
            cancel,
            join: Some(join),
        }
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }

    /// Waits for the result.
    pub fn wait(mut self) -> Result<RunOutput> {
        let join = self.join.take().expect("waited once");
        join.join().unwrap_or_else(|p| {
            Err(RaskError::TaskPanicked {
                key: "<scheduler>".into(),
                op: "compute".into(),
                message: panic_message(p.as_ref()),
            })
        })
    }
}

impl Drop for ComputeHandle {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.cancel.cancel();
        }
    }
}
