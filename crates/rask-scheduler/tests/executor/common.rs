//! Shared helpers: closure ops, graph building, a run with a hang guard, a value type that
//! counts its live instances, and small synchronization tools with timeouts.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rask_error::{RaskError, Result};
use rask_graph::{Data, Graph, Key, Literal, Op, TaskId, TaskSpec, Value, order};
use rask_scheduler::{Executor, RunOptions, RunOutput, run};

/// Every executor a result-only test runs under.
pub const EXECUTORS: [Executor; 3] = [Executor::Sync, Executor::Threads(4), Executor::Threaded];

/// How long a whole run may take before the test calls it a hang.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a task waits for another one before giving up with an error.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// An op running a closure.
pub struct FnOp<F> {
    name: String,
    f: F,
}

impl<F> Op for FnOp<F>
where
    F: Fn(&[Value]) -> Result<Value> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        (self.f)(inputs)
    }
}

pub fn op(
    name: &str,
    f: impl Fn(&[Value]) -> Result<Value> + Send + Sync + 'static,
) -> Arc<dyn Op> {
    Arc::new(FnOp {
        name: name.to_string(),
        f,
    })
}

pub fn lit(v: i64) -> Arc<dyn Op> {
    Arc::new(Literal::new(Value::new(v)))
}

pub fn int(v: &Value) -> Result<i64> {
    v.get::<i64>(&"input").copied()
}

/// `c + sum(inputs)` with wrapping arithmetic, counting its executions in `count`.
pub fn sum_op(c: i64, count: &Arc<AtomicUsize>) -> Arc<dyn Op> {
    let count = count.clone();
    op("test.sum", move |inputs| {
        count.fetch_add(1, Ordering::SeqCst);
        let mut s = c;
        for v in inputs {
            s = s.wrapping_add(int(v)?);
        }
        Ok(Value::new(s))
    })
}

pub fn key(name: &str) -> Key {
    Key::named(name)
}

/// Collects task specs by name.
#[derive(Default)]
pub struct Specs(pub Vec<TaskSpec>);

impl Specs {
    pub fn add(&mut self, name: &str, op: Arc<dyn Op>, deps: &[&str]) -> &mut Self {
        self.0
            .push(TaskSpec::new(key(name), op, deps.iter().map(|d| key(d))));
        self
    }

    pub fn build(self) -> Arc<Graph> {
        Arc::new(Graph::from_specs(self.0).expect("a valid graph"))
    }
}

pub fn ids(graph: &Graph, names: &[&str]) -> Vec<TaskId> {
    names
        .iter()
        .map(|n| {
            graph
                .id_of(&key(n))
                .unwrap_or_else(|| panic!("no task {n}"))
        })
        .collect()
}

/// Runs on a separate thread with `order`'s priorities and fails the test instead of hanging
/// when the run does not return within [`RUN_TIMEOUT`].
pub fn run_guarded(
    executor: Executor,
    graph: &Arc<Graph>,
    outputs: &[TaskId],
    opts: RunOptions,
) -> Result<RunOutput> {
    let priority = order(graph);
    run_with_priority(executor, graph, outputs, priority, opts)
}

pub fn run_with_priority(
    executor: Executor,
    graph: &Arc<Graph>,
    outputs: &[TaskId],
    priority: Vec<u32>,
    opts: RunOptions,
) -> Result<RunOutput> {
    let (tx, rx) = mpsc::channel();
    let graph = graph.clone();
    let outputs = outputs.to_vec();
    std::thread::Builder::new()
        .name("test-run".into())
        .spawn(move || {
            let _ = tx.send(run(executor, &graph, &outputs, priority, &opts));
        })
        .expect("spawning the run thread");
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => {
            panic!("{executor:?}: run did not return within {RUN_TIMEOUT:?} (hang)")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("{executor:?}: run panicked"),
    }
}

pub fn ints(out: &RunOutput) -> Vec<i64> {
    out.values
        .iter()
        .map(|v| *v.get::<i64>(&"output").expect("an i64 output"))
        .collect()
}

/// A value that counts how many instances of it are alive, so tests can check that the
/// scheduler dropped what it released.
#[derive(Debug)]
pub struct Tracked {
    pub bytes: Vec<u8>,
    live: Arc<AtomicIsize>,
}

impl Tracked {
    pub fn new(len: usize, live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked {
            bytes: vec![0u8; len],
            live: live.clone(),
        }
    }

    /// What `nbytes` reports for a value of `len` bytes.
    pub fn nbytes_of(len: usize) -> u64 {
        (std::mem::size_of::<Tracked>() + len) as u64
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.bytes.len(), &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Data for Tracked {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bytes.capacity()
    }
}

/// `n` threads meet here; each waits at most [`WAIT_TIMEOUT`] for the others.
pub struct Rendezvous {
    arrived: Mutex<usize>,
    cv: Condvar,
    n: usize,
}

impl Rendezvous {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Rendezvous {
            arrived: Mutex::new(0),
            cv: Condvar::new(),
            n,
        })
    }

    /// Arrives and waits for all `n`; an error if they do not all come in time.
    pub fn wait(&self) -> Result<()> {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.cv.notify_all();
        let (arrived, timeout) = self
            .cv
            .wait_timeout_while(arrived, WAIT_TIMEOUT, |a| *a < self.n)
            .unwrap();
        if timeout.timed_out() && *arrived < self.n {
            return Err(RaskError::External(
                format!(
                    "only {} of {} tasks met: they did not run concurrently",
                    *arrived, self.n
                )
                .into(),
            ));
        }
        Ok(())
    }
}

/// A gate tasks wait at (with [`WAIT_TIMEOUT`]) until the test opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Gate::default())
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub fn wait(&self) -> Result<()> {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .cv
            .wait_timeout_while(open, WAIT_TIMEOUT, |o| !*o)
            .unwrap();
        if *open {
            Ok(())
        } else {
            Err(RaskError::External("the gate was never opened".into()))
        }
    }
}

/// A flag plus a count of the tasks that started after it was raised.
#[derive(Default)]
pub struct AfterFlag {
    raised: AtomicBool,
    started_after: AtomicUsize,
}

impl AfterFlag {
    pub fn new() -> Arc<Self> {
        Arc::new(AfterFlag::default())
    }
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }
    /// Called by a task as it starts.
    pub fn task_started(&self) {
        if self.raised.load(Ordering::SeqCst) {
            self.started_after.fetch_add(1, Ordering::SeqCst);
        }
    }
    pub fn started_after(&self) -> usize {
        self.started_after.load(Ordering::SeqCst)
    }
}

pub fn ext(msg: &str) -> RaskError {
    RaskError::External(msg.to_string().into())
}
