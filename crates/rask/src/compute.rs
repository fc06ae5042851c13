//! From a collection to its value: build the graph, optimize, order, run, finalize.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rask_graph::optimize::{OptimizeOptions, optimize};
use rask_graph::{Collection, Graph, GraphBuilder, TaskId, Value, order};
use rask_scheduler::{
    Callback, CancelToken, ComputeHandle, Executor, ProgressBar, RunOptions, RunStats,
};

use crate::Result;

/// When to draw a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Progress {
    /// For computations longer than 0.1 s, when standard error is a terminal.
    #[default]
    Auto,
    Never,
    /// Even when standard error is not a terminal.
    Always,
}

/// How computations run. [`Config::default`] reads the process-wide default, which
/// [`set_config`] changes (like `dask.config.set`).
#[derive(Clone)]
pub struct Config {
    pub executor: Executor,
    pub optimize: OptimizeOptions,
    pub progress: Progress,
    /// Budget in bytes for values held between tasks: the scheduler holds back new work and,
    /// when nothing else helps, spills values to disk to stay within it.
    pub memory_limit: Option<u64>,
    /// Where spilled values go (a fresh directory under the system temp dir by default).
    pub spill_dir: Option<std::path::PathBuf>,
    pub callbacks: Vec<Arc<dyn Callback>>,
    pub cancel: CancelToken,
    /// When set, `compute` and `persist` run on this cluster instead of in this process
    /// (see [`crate::distributed::Client::set_as_default`]).
    pub client: Option<crate::distributed::Client>,
    /// The dashboard serving this config's computations, if any ([`Config::with_dashboard`]).
    pub dashboard: Option<Arc<rask_dashboard::LocalDashboard>>,
}

impl Config {
    /// The built-in defaults: threaded executor, all optimizations, automatic progress bar.
    pub fn builtin() -> Self {
        Config {
            executor: Executor::Threaded,
            optimize: OptimizeOptions::default(),
            progress: Progress::Auto,
            memory_limit: None,
            spill_dir: None,
            callbacks: Vec::new(),
            cancel: CancelToken::new(),
            client: None,
            dashboard: None,
        }
    }

    /// Runs computations on a cluster through `client` (`None`: in this process).
    pub fn with_client(mut self, client: Option<crate::distributed::Client>) -> Self {
        self.client = client;
        self
    }

    pub fn with_executor(mut self, executor: Executor) -> Self {
        self.executor = executor;
        self
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    pub fn with_memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.memory_limit = bytes;
        self
    }

    pub fn with_optimize(mut self, optimize: OptimizeOptions) -> Self {
        self.optimize = optimize;
        self
    }

    pub fn with_callback(mut self, cb: Arc<dyn Callback>) -> Self {
        self.callbacks.push(cb);
        self
    }

    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Serves the dashboard on `address` (`host:port`, port 0 picks one; Dask's is
    /// `127.0.0.1:8787`) for the computations run with this config on the local executors:
    /// the same pages a cluster's scheduler serves. The server starts now and stops when the
    /// last clone of this config is dropped. An address that cannot be bound is an error
    /// naming it.
    pub fn with_dashboard(mut self, address: &str) -> Result<Self> {
        let dashboard = rask_dashboard::LocalDashboard::start(address)?;
        self.callbacks.push(dashboard.clone());
        self.dashboard = Some(dashboard);
        Ok(self)
    }

    /// `http://host:port` of this config's dashboard, if it has one.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.as_ref().map(|d| d.url())
    }
}

impl Default for Config {
    fn default() -> Self {
        DEFAULT
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
            .unwrap_or_else(Config::builtin)
    }
}

static DEFAULT: RwLock<Option<Config>> = RwLock::new(None);

/// Makes `client` the default for computations (keeping the rest of the default config).
pub(crate) fn set_default_client(client: Option<crate::distributed::Client>) {
    let config = Config::default().with_client(client);
    set_config(config);
}

/// Sets the process-wide default configuration.
pub fn set_config(config: Config) {
    match DEFAULT.write() {
        Ok(mut c) => *c = Some(config),
        Err(p) => *p.into_inner() = Some(config),
    }
}

/// A graph ready to run: built, optimized and ordered.
pub struct Plan {
    pub graph: Graph,
    pub outputs: Vec<TaskId>,
    pub priorities: Vec<u32>,
    /// Tasks before optimization.
    pub tasks_before: usize,
    pub build_time: Duration,
    pub optimize_time: Duration,
    pub order_time: Duration,
}

impl Plan {
    /// Builds, optimizes and orders the graph of a collection.
    pub fn new<C: Collection + ?Sized>(c: &C, optimize_opts: OptimizeOptions) -> Result<Plan> {
        let t0 = Instant::now();
        let mut builder = GraphBuilder::new();
        c.add_layers(&mut builder);
        let (graph, outputs) = builder.build_with_outputs(&c.output_keys())?;
        let tasks_before = graph.len();
        let t1 = Instant::now();
        let (graph, outputs) = optimize(graph, &outputs, optimize_opts);
        let t2 = Instant::now();
        let priorities = order(&graph);
        let t3 = Instant::now();
        Ok(Plan {
            graph,
            outputs,
            priorities,
            tasks_before,
            build_time: t1 - t0,
            optimize_time: t2 - t1,
            order_time: t3 - t2,
        })
    }

    /// Runs the plan; returns the outputs' values and run figures.
    pub fn run(self, config: &Config) -> Result<(Vec<Value>, RunStats)> {
        let opts = run_options(config, "compute");
        let result = rask_scheduler::run(
            config.executor,
            &self.graph,
            &self.outputs,
            self.priorities,
            &opts,
        );
        if self.graph.len() >= 100_000 {
            // Freeing millions of keys and ops takes a while and nobody waits for it.
            let graph = self.graph;
            let _ = std::thread::Builder::new()
                .name("rask-free-graph".into())
                .spawn(move || drop(graph));
        }
        let out = result?;
        Ok((out.values, out.stats))
    }

    /// Starts the plan on background threads.
    pub fn spawn(self, config: &Config) -> ComputeHandle {
        let opts = run_options(config, "compute");
        ComputeHandle::spawn(
            config.executor,
            Arc::new(self.graph),
            self.outputs,
            self.priorities,
            opts,
        )
    }
}

fn run_options(config: &Config, title: &str) -> RunOptions {
    let mut callbacks = config.callbacks.clone();
    match config.progress {
        Progress::Never => {}
        Progress::Auto => callbacks.push(Arc::new(ProgressBar::new(title))),
        Progress::Always => callbacks.push(Arc::new(ProgressBar::new(title).always())),
    }
    RunOptions {
        callbacks,
        cancel: config.cancel.clone(),
        memory_limit: config.memory_limit,
        spill_dir: config.spill_dir.clone(),
    }
}

/// Computes a collection (or a tuple or `Vec` of them, sharing intermediates) with `config`.
pub fn compute_with<C: Collection + ?Sized>(c: &C, config: &Config) -> Result<C::Output> {
    if let Some(client) = &config.client {
        return client.compute(c);
    }
    let plan = Plan::new(c, config.optimize)?;
    let (values, _) = plan.run(config)?;
    c.finalize(values)
}

/// Computes several collections at once so they share intermediates: Dask's
/// `dask.compute(a, b)`. Pass a tuple or a `Vec`.
pub fn compute<C: Collection + ?Sized>(c: &C) -> Result<C::Output> {
    compute_with(c, &Config::default())
}

/// A collection that can be rebuilt from its computed values (so `persist` can keep them).
pub trait Persist: Collection + Sized {
    /// The same collection with each output key bound to its computed value.
    fn with_values(&self, values: Vec<Value>) -> Result<Self>;

    /// The same collection with each output key's task replaced by `ops[i]` (no inputs): how
    /// a collection persisted on a cluster points at values that stay on the workers.
    fn with_remote_ops(&self, ops: Vec<Arc<dyn rask_graph::Op>>) -> Result<Self> {
        let _ = ops;
        Err(crate::RaskError::invalid_argument(
            "collection",
            format!(
                "{} cannot be persisted on a cluster",
                std::any::type_name::<Self>()
            ),
        ))
    }
}

/// Computes and keeps the result in memory: the returned collection has the same keys but
/// no tasks left to run, so later computations built on it start from the stored values.
pub fn persist<C: Persist>(c: &C) -> Result<C> {
    persist_with(c, &Config::default())
}

pub fn persist_with<C: Persist>(c: &C, config: &Config) -> Result<C> {
    if let Some(client) = &config.client {
        return client.persist(c);
    }
    let plan = Plan::new(c, config.optimize)?;
    let (values, _) = plan.run(config)?;
    c.with_values(values)
}

/// `.compute()`, `.persist()`, `.visualize()` for every collection; in the prelude.
pub trait ComputeExt: Collection {
    /// Builds the graph, optimizes it and runs it with the default [`Config`].
    fn compute(&self) -> Result<Self::Output> {
        compute_with(self, &Config::default())
    }

    fn compute_with(&self, config: &Config) -> Result<Self::Output> {
        compute_with(self, config)
    }

    fn persist(&self) -> Result<Self>
    where
        Self: Persist,
    {
        persist(self)
    }

    /// A picture of the graph (see [`crate::Visualization`]).
    fn visualize(&self) -> Result<crate::Visualization> {
        crate::Visualization::of(self)
    }

    /// The graph as built, before optimization.
    fn graph(&self) -> Result<Graph> {
        let mut builder = GraphBuilder::new();
        self.add_layers(&mut builder);
        builder.build()
    }
}

impl<C: Collection + ?Sized> ComputeExt for C {}
