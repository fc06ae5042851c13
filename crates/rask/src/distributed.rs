//! Futures and clusters: Dask's `distributed` for rask.
//!
//! A [`Client`] connects to a scheduler (an address, a scheduler file, or a [`LocalCluster`]
//! it starts itself). [`Client::submit`] sends a `Delayed`'s graph and returns a [`Future`] at
//! once; the work runs on the workers. Futures can be passed as arguments to later delayed
//! calls (the value stays on the cluster), waited on ([`wait`]), gathered, iterated in
//! completion order ([`as_completed`]) or cancelled. [`Client::compute`] and
//! [`Client::persist`] run whole collections (`Delayed`, `Array`) on the cluster, and
//! [`Client::set_as_default`] makes plain `.compute()` do so too.
//!
//! Workers run the same binary as the client, so `#[delayed]` functions registered by name
//! run on them. A program that starts a [`LocalCluster`] must call [`init`] first thing in
//! `main`: in the worker processes it starts, that call runs the worker and never returns.
//!
//! ```no_run
//! use rask::prelude::*;
//! use rask::distributed::{Client, as_completed};
//!
//! #[rask::delayed(pure)]
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! fn main() -> rask::Result<()> {
//!     rask::distributed::init();
//!     let client = Client::local()?;
//!     let a = client.submit(&inc(1))?;            // runs now, on a worker
//!     let b = client.submit(&inc(&a))?;           // a future as an argument
//!     assert_eq!(b.result()?, 3);
//!     let many = client.map(inc, 0..10)?;
//!     let total: i64 = client.gather(&many)?.into_iter().sum();
//!     assert_eq!(total, 55);
//!     for f in as_completed(many) { let _ = f.result()?; }
//!     Ok(())
//! }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rask_distributed::client::{self as raw, FutureHandle, RemoteKey};
use rask_graph::optimize::OptimizeOptions;
use rask_graph::{Collection, Data, Key, Layer, Op, TaskSpec, Value};

use crate::compute::{Persist, Plan};
use crate::delayed::{Arg, IntoArg};
use crate::{Delayed, RaskError, Result};

pub use rask_distributed::client::ClientOptions;
pub use rask_distributed::client::{KeyStatus, SubmitOptions};
pub use rask_distributed::local::RESTART_EXIT_CODE;
pub use rask_distributed::local::{LocalCluster, LocalClusterOptions, WorkerProgram};
pub use rask_distributed::protocol::{WorkerMetrics, WorkerSummary};
pub use rask_distributed::scheduler::{
    SchedulerFile, SchedulerHandle, SchedulerOptions, read_scheduler_file, start as start_scheduler,
};
pub use rask_distributed::tls::{
    CertificateAuthority, Credentials, Security, TlsContext, generate_token,
};
pub use rask_distributed::worker::{WorkerExit, WorkerOptions, parse_bytes, run_worker};

/// Runs the worker role when this process was started as a worker (by a [`LocalCluster`] or
/// a deployment) and exits; returns at once otherwise. Call it first thing in `main`.
pub fn init() {
    rask_distributed::local::run_worker_if_requested();
}

/// Logs events passing `filter` (`warn`, `info`, `rask=debug`, ...) to standard error and
/// keeps the recent `info` lines for the dashboard's workers page. Does nothing when the
/// program installed a `tracing` subscriber of its own.
pub fn init_logging(filter: &str) {
    rask_distributed::logs::init_logging(filter);
}

/// Graphs sent to a cluster are culled and have cheap tasks inlined, but are not fused: a
/// future's key must stay a key of its own.
fn cluster_optimize() -> OptimizeOptions {
    OptimizeOptions {
        cull: true,
        inline: true,
        fuse: false,
    }
}

/// A connection to a scheduler.
#[derive(Clone)]
pub struct Client {
    raw: raw::Client,
    /// The cluster this client started (`Client::local`), stopped with the last clone.
    _cluster: Option<Arc<LocalCluster>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.raw.address())
    }
}

impl Client {
    /// Connects to a scheduler at `host:port`, or through a scheduler file (a path to an
    /// existing file, as written by `rask scheduler --scheduler-file`).
    pub fn connect(address_or_file: &str) -> Result<Client> {
        let path = std::path::Path::new(address_or_file);
        let opts = if path.is_file() {
            raw::ClientOptions::from_scheduler_file(path)?
        } else {
            // A bare address carries no credentials: only an --insecure cluster takes it
            // (`connect_with` for explicit TLS files), and the error says so.
            raw::ClientOptions::new(address_or_file)
        };
        Client::connect_with(opts)
    }

    /// Connects as the environment says: `RASK_SCHEDULER_FILE`, or `RASK_SCHEDULER` with
    /// `RASK_TLS_CA_FILE`, `RASK_TLS_CERT_FILE`, `RASK_TLS_KEY_FILE` and `RASK_TOKEN_FILE`
    /// (what the Kubernetes client Job of `rask k8s manifests` sets), or `RASK_INSECURE=1`.
    pub fn from_env() -> Result<Client> {
        let opts = raw::ClientOptions::from_vars(|k| std::env::var(k).ok())?.ok_or_else(|| {
            RaskError::invalid_argument(
                "RASK_SCHEDULER",
                "set RASK_SCHEDULER_FILE, or RASK_SCHEDULER with the TLS and token files",
            )
        })?;
        Client::connect_with(opts)
    }

    /// Connects with explicit options: TLS context (see
    /// [`TlsContext`](rask_distributed::tls::TlsContext)), token, or `insecure`.
    pub fn connect_with(opts: raw::ClientOptions) -> Result<Client> {
        Ok(Client {
            raw: raw::Client::connect(opts)?,
            _cluster: None,
        })
    }

    /// Starts a [`LocalCluster`] with the default layout and connects to it (Dask's
    /// `Client()` with no address). Needs [`init`] at the start of `main`.
    pub fn local() -> Result<Client> {
        Client::on(Arc::new(LocalCluster::new()?))
    }

    /// Connects to a local cluster and keeps it running while the client lives.
    pub fn on(cluster: Arc<LocalCluster>) -> Result<Client> {
        Ok(Client {
            raw: cluster.client()?,
            _cluster: Some(cluster),
        })
    }

    /// The untyped client underneath.
    pub fn raw(&self) -> &raw::Client {
        &self.raw
    }

    pub fn address(&self) -> &str {
        self.raw.address()
    }

    /// The workers as the scheduler sees them now (Dask's `client.scheduler_info()`):
    /// names, addresses, threads, memory limits, and each one's last heartbeat (managed,
    /// spilled and process memory, paused or not).
    pub fn scheduler_info(&self) -> Result<Vec<WorkerSummary>> {
        self.raw.scheduler_info()
    }

    fn submit_collection<C: Collection + ?Sized>(
        &self,
        c: &C,
        opts: SubmitOptions,
    ) -> Result<Vec<FutureHandle>> {
        let plan = Plan::new(c, cluster_optimize())?;
        let tasks = raw::tasks_from_graph(&plan.graph, &plan.priorities)?;
        let wants = c.output_keys();
        let handles = self.raw.submit(tasks, &wants, opts)?;
        // The plan's graph holds the handles of futures used as arguments (in their
        // `RemoteKey` ops): it is dropped only now, after the submission is queued, so their
        // keys cannot be released before the scheduler sees what reads them.
        drop(plan);
        Ok(handles)
    }

    /// Starts computing a `Delayed` on the cluster and returns its future. A pure `Delayed`
    /// (deterministic key) submitted twice gives the same key and runs once; an impure one has
    /// a fresh key each time it is built.
    pub fn submit<T: Data>(&self, d: &Delayed<T>) -> Result<Future<T>> {
        self.submit_with(d, SubmitOptions::default())
    }

    /// `submit` with a priority, retries or fire-and-forget.
    pub fn submit_with<T: Data>(&self, d: &Delayed<T>, opts: SubmitOptions) -> Result<Future<T>> {
        let mut h = self.submit_collection(d, opts)?;
        Ok(Future::from_handle(h.pop().expect("one output key")))
    }

    /// Calls `f` on every item and submits all the calls in one message (Dask's
    /// `client.map`).
    pub fn map<I, A, T, F>(&self, f: F, items: I) -> Result<Vec<Future<T>>>
    where
        I: IntoIterator<Item = A>,
        F: Fn(A) -> Delayed<T>,
        T: Data,
    {
        self.map_with(f, items, SubmitOptions::default())
    }

    pub fn map_with<I, A, T, F>(
        &self,
        f: F,
        items: I,
        opts: SubmitOptions,
    ) -> Result<Vec<Future<T>>>
    where
        I: IntoIterator<Item = A>,
        F: Fn(A) -> Delayed<T>,
        T: Data,
    {
        let delayeds: Vec<Delayed<T>> = items.into_iter().map(f).collect();
        let handles = self.submit_collection(&delayeds, opts)?;
        Ok(handles.into_iter().map(Future::from_handle).collect())
    }

    /// The results of many futures, in order; the first error is returned.
    pub fn gather<T: Data>(&self, futures: &[Future<T>]) -> Result<Vec<T>> {
        self.raw.block_on(gather_async(futures))
    }

    /// Places values on the workers and returns futures to them (Dask's `scatter`). Keys are
    /// deterministic for values that can be tokenized, so scattering equal data twice shares
    /// one key.
    pub fn scatter<T: Data>(&self, values: Vec<T>) -> Result<Vec<Future<T>>> {
        let mut pairs = Vec::with_capacity(values.len());
        for v in values {
            let mut t = rask_graph::Tokenizer::new("rask.scatter");
            let token = if v.tokenize(&mut t) {
                t.finish()
            } else {
                rask_graph::Token::fresh()
            };
            let key = Key::single(rask_graph::KeyName::from_token("scatter", token));
            pairs.push((key, Value::new(v)));
        }
        let handles = self.raw.scatter(pairs)?;
        Ok(handles.into_iter().map(Future::from_handle).collect())
    }

    /// Cancels futures: their keys stop (and what only they need); waiting on them gives a
    /// cancelled error.
    pub fn cancel<T: Data>(&self, futures: &[Future<T>]) -> Result<()> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key().clone()).collect();
        self.raw.cancel(&keys)
    }

    /// Runs a `Delayed` to completion on the cluster without keeping a future: its result is
    /// dropped when done (Dask's `fire_and_forget`).
    pub fn fire_and_forget<T: Data>(&self, d: &Delayed<T>) -> Result<()> {
        let opts = SubmitOptions {
            fire_and_forget: true,
            ..Default::default()
        };
        drop(self.submit_collection(d, opts)?);
        Ok(())
    }

    /// Computes a collection (a `Delayed`, an `Array`, a tuple or `Vec` of them) on the
    /// cluster and brings the result here.
    pub fn compute<C: Collection + ?Sized>(&self, c: &C) -> Result<C::Output> {
        let handles = self.submit_collection(c, SubmitOptions::default())?;
        let values = self.raw.block_on(async {
            let mut out = Vec::with_capacity(handles.len());
            for h in &handles {
                out.push(h.result_async().await?);
            }
            Ok::<_, RaskError>(out)
        })?;
        c.finalize(values)
    }

    /// Computes a collection on the cluster and keeps its data there: the returned collection
    /// has the same keys, bound to the values on the workers, so later graphs built on it
    /// start from them. The data stays while the returned collection (or anything built on
    /// it) lives.
    pub fn persist<C: Persist>(&self, c: &C) -> Result<C> {
        let handles = self.submit_collection(c, SubmitOptions::default())?;
        self.raw.wait(
            &handles.iter().map(|h| h.key().clone()).collect::<Vec<_>>(),
            true,
            None,
        )?;
        for h in &handles {
            if let KeyStatus::Erred(e) = h.status() {
                return Err(raw::remote_to_error(&e));
            }
        }
        let ops: Vec<Arc<dyn Op>> = handles
            .into_iter()
            .map(|h| Arc::new(RemoteKey::holding(h)) as Arc<dyn Op>)
            .collect();
        c.with_remote_ops(ops)
    }

    /// Makes this client the one `.compute()` uses by default (Dask's `Client.as_default`);
    /// undone by `rask::set_config(Config::builtin())` or another client's call.
    pub fn set_as_default(&self) {
        crate::compute::set_default_client(Some(self.clone()));
    }
}

async fn gather_async<T: Data>(futures: &[Future<T>]) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        out.push(f.result_async().await?);
    }
    Ok(out)
}

/// A value being computed on a cluster (Dask's `Future`). Holding it keeps the value on the
/// workers; dropping the last future of a key releases it there.
pub struct Future<T> {
    handle: FutureHandle,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            handle: self.handle.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.handle.fmt(f)
    }
}

impl<T: Data> Future<T> {
    fn from_handle(handle: FutureHandle) -> Self {
        Future {
            handle,
            _type: PhantomData,
        }
    }

    pub fn key(&self) -> &Key {
        self.handle.key()
    }

    /// `pending`, `finished`, `error` or `cancelled`.
    pub fn status(&self) -> &'static str {
        self.handle.status().name()
    }

    /// True once the future finished, erred or was cancelled.
    pub fn done(&self) -> bool {
        self.handle.status().is_done()
    }

    /// Waits for the value and brings it here. An error names the task and its op.
    pub fn result(&self) -> Result<T> {
        self.handle.result()?.take::<T>(self.key())
    }

    pub async fn result_async(&self) -> Result<T> {
        self.handle.result_async().await?.take::<T>(self.key())
    }

    /// Waits at most `timeout`; `None` when it did not finish in time.
    pub fn result_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        let done =
            self.handle
                .client()
                .wait(std::slice::from_ref(self.key()), true, Some(timeout))?;
        if !done {
            return Ok(None);
        }
        self.result().map(Some)
    }

    /// The error, if it erred (Dask's `Future.exception()`); waits for it to finish.
    pub fn exception(&self) -> Result<Option<RaskError>> {
        self.handle
            .client()
            .wait(std::slice::from_ref(self.key()), true, None)?;
        Ok(match self.handle.status() {
            KeyStatus::Erred(e) => Some(raw::remote_to_error(&e)),
            _ => None,
        })
    }

    pub fn cancel(&self) -> Result<()> {
        self.handle
            .client()
            .cancel(std::slice::from_ref(self.key()))
    }
}

impl<T: Data> IntoArg<T> for &Future<T> {
    fn into_arg(self, _pure: bool) -> Arg {
        let op: Arc<dyn Op> = Arc::new(RemoteKey::holding(self.handle.clone()));
        let layer = Layer::single(TaskSpec::new(self.key().clone(), op, vec![]), vec![]);
        Arg::Delayed {
            key: self.key().clone(),
            layer,
        }
    }
}

impl<T: Data> IntoArg<T> for Future<T> {
    fn into_arg(self, pure: bool) -> Arg {
        (&self).into_arg(pure)
    }
}

/// What [`wait`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    AllCompleted,
    FirstCompleted,
}

/// Which futures are done and which are not, after [`wait`].
pub struct DoneAndNotDone<T> {
    pub done: Vec<Future<T>>,
    pub not_done: Vec<Future<T>>,
}

/// Waits for all (or the first) of `futures`, at most `timeout`; a timeout is not an error:
/// look at `not_done`.
pub fn wait<T: Data>(
    futures: Vec<Future<T>>,
    mode: WaitFor,
    timeout: Option<Duration>,
) -> Result<DoneAndNotDone<T>> {
    if let Some(first) = futures.first() {
        let client = first.handle.client().clone();
        let keys: Vec<Key> = futures.iter().map(|f| f.key().clone()).collect();
        client.wait(&keys, mode == WaitFor::AllCompleted, timeout)?;
    }
    let (done, not_done) = futures.into_iter().partition(|f| f.done());
    Ok(DoneAndNotDone { done, not_done })
}

/// Futures in the order they complete (Dask's `as_completed`); more can be added while
/// iterating. Iterating yields each future once it is done (finished, erred or cancelled).
pub struct AsCompleted<T> {
    pending: Vec<Future<T>>,
    ready: std::collections::VecDeque<Future<T>>,
}

/// Iterates `futures` in completion order.
pub fn as_completed<T: Data>(futures: impl IntoIterator<Item = Future<T>>) -> AsCompleted<T> {
    AsCompleted {
        pending: futures.into_iter().collect(),
        ready: Default::default(),
    }
}

impl<T: Data> AsCompleted<T> {
    /// Adds a future to iterate over.
    pub fn add(&mut self, f: Future<T>) {
        self.pending.push(f);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.ready.is_empty()
    }

    /// How many futures are left to yield.
    pub fn count(&self) -> usize {
        self.pending.len() + self.ready.len()
    }

    /// Moves the futures that are done to the ready queue, in completion order; waits for
    /// at least one when none is and `block` is set.
    fn collect_done(&mut self, block: bool) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let client = self.pending[0].handle.client().clone();
        let keys: Vec<Key> = self.pending.iter().map(|f| f.key().clone()).collect();
        if block {
            client.wait(&keys, false, None)?;
        }
        let order = client.done_in_order(&keys);
        if order.is_empty() {
            return Ok(());
        }
        let rank: rustc_hash::FxHashMap<&Key, usize> =
            order.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut done: Vec<(usize, Future<T>)> = Vec::new();
        let mut still = Vec::with_capacity(self.pending.len());
        for f in self.pending.drain(..) {
            match rank.get(f.key()) {
                Some(&r) => done.push((r, f)),
                None => still.push(f),
            }
        }
        self.pending = still;
        done.sort_by_key(|(r, _)| *r);
        self.ready.extend(done.into_iter().map(|(_, f)| f));
        Ok(())
    }

    /// Every future done right now (waiting for at least one): Dask's `batches()`.
    pub fn next_batch(&mut self) -> Result<Vec<Future<T>>> {
        if self.ready.is_empty() {
            self.collect_done(true)?;
        } else {
            self.collect_done(false)?;
        }
        Ok(self.ready.drain(..).collect())
    }

    /// Yields `(future, result)` pairs instead of futures (`with_results=True`).
    pub fn with_results(self) -> impl Iterator<Item = (Future<T>, Result<T>)> {
        self.map(|f| {
            let r = f.result();
            (f, r)
        })
    }
}

impl<T: Data> Iterator for AsCompleted<T> {
    type Item = Future<T>;
    fn next(&mut self) -> Option<Future<T>> {
        if self.ready.is_empty() && !self.pending.is_empty() {
            // A lost scheduler ends the iteration; the futures left say why.
            if self.collect_done(true).is_err() {
                return self.pending.pop();
            }
        }
        self.ready.pop_front()
    }
}
