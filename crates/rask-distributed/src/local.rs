//! `LocalCluster`: a scheduler in this process and workers as child processes, in one call.
//!
//! Workers run the same binary as the caller (the same-binary model: the child registers the
//! same ops and value types, so `#[delayed]` functions work on it). The child learns its role
//! from environment variables; the program must call [`run_worker_if_requested`] first thing
//! in `main` (`rask::distributed::init()` does), the way Python's multiprocessing needs its
//! `if __name__ == "__main__"` guard. Another binary (such as the generic `rask` command, which
//! links only the built-in ops) can be named instead.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rask_error::{RaskError, Result};

use crate::client::{Client, ClientOptions};
use crate::scheduler::{self, SchedulerHandle, SchedulerOptions};
use crate::worker::{WorkerExit, WorkerOptions, run_worker};

/// Environment variables of the worker role.
pub const ENV_SCHEDULER: &str = "RASK_WORKER_SCHEDULER";
pub const ENV_NTHREADS: &str = "RASK_WORKER_NTHREADS";
pub const ENV_MEMORY_LIMIT: &str = "RASK_WORKER_MEMORY_LIMIT";
pub const ENV_NAME: &str = "RASK_WORKER_NAME";
pub const ENV_TOKEN: &str = "RASK_WORKER_TOKEN";
pub const ENV_HEARTBEAT_MS: &str = "RASK_WORKER_HEARTBEAT_MS";
pub const ENV_RECONNECT_MS: &str = "RASK_WORKER_RECONNECT_MS";
pub const ENV_LISTEN: &str = "RASK_WORKER_LISTEN";
pub const ENV_CONTACT_HOST: &str = "RASK_WORKER_CONTACT_HOST";
/// The cluster's TLS credentials, PEM text (a `LocalCluster` hands its fresh ones to its
/// children this way: the environment of a process is readable only by its user and root).
pub const ENV_TLS_CA: &str = "RASK_WORKER_TLS_CA";
pub const ENV_TLS_CERT: &str = "RASK_WORKER_TLS_CERT";
pub const ENV_TLS_KEY: &str = "RASK_WORKER_TLS_KEY";
/// `1`: plain TCP, explicitly.
pub const ENV_INSECURE: &str = "RASK_WORKER_INSECURE";
/// A scheduler file to read the scheduler's address (and token) from, when
/// [`ENV_SCHEDULER`] is not set: how SLURM job scripts point a program's workers at a
/// scheduler file on a shared filesystem.
pub const ENV_SCHEDULER_FILE: &str = "RASK_WORKER_SCHEDULER_FILE";

/// The exit code of a worker that restarts itself (memory over the terminate threshold).
pub const RESTART_EXIT_CODE: i32 = 75;

/// Worker options from the role's environment variables, or `None` when this process was not
/// started as a worker. Bad values are errors naming the variable.
pub fn worker_options_from_env() -> Result<Option<WorkerOptions>> {
    let mut o = match (
        std::env::var(ENV_SCHEDULER),
        std::env::var_os(ENV_SCHEDULER_FILE),
    ) {
        (Ok(addr), _) => WorkerOptions::new(addr),
        (Err(_), Some(path)) => {
            let path = std::path::Path::new(&path);
            worker_options_from_scheduler_file(path)
                .map_err(|e| e.context(format!("{ENV_SCHEDULER_FILE}={}", path.display())))?
        }
        (Err(_), None) => return Ok(None),
    };
    let num = |name: &str| -> Result<Option<u64>> {
        match std::env::var(name) {
            Ok(v) => v.trim().parse::<u64>().map(Some).map_err(|e| {
                RaskError::invalid_argument(name, format!("`{v}` is not a whole number: {e}"))
            }),
            Err(_) => Ok(None),
        }
    };
    if let Some(n) = num(ENV_NTHREADS)? {
        o.nthreads = n.max(1) as u32;
    }
    if let Some(m) = num(ENV_MEMORY_LIMIT)? {
        o.memory_limit = m;
    }
    if let Some(ms) = num(ENV_HEARTBEAT_MS)? {
        o.heartbeat_interval = Duration::from_millis(ms.max(10));
    }
    if let Some(ms) = num(ENV_RECONNECT_MS)? {
        o.reconnect_for = Duration::from_millis(ms);
    }
    if let Ok(n) = std::env::var(ENV_NAME) {
        o.name = n;
    }
    if let Ok(t) = std::env::var(ENV_TOKEN) {
        o.token = Some(t);
    }
    if let Ok(l) = std::env::var(ENV_LISTEN) {
        o.listen = l;
    }
    if let Ok(h) = std::env::var(ENV_CONTACT_HOST) {
        o.contact_host = Some(h);
    }
    match (
        std::env::var(ENV_TLS_CA),
        std::env::var(ENV_TLS_CERT),
        std::env::var(ENV_TLS_KEY),
    ) {
        (Ok(ca_pem), Ok(cert_pem), Ok(key_pem)) => {
            let creds = crate::tls::Credentials {
                ca_pem,
                cert_pem,
                key_pem,
            };
            o.tls =
                Some(crate::tls::TlsContext::new(creds).map_err(|e| {
                    e.context(format!("{ENV_TLS_CA}/{ENV_TLS_CERT}/{ENV_TLS_KEY}"))
                })?);
        }
        (Err(_), Err(_), Err(_)) => {}
        _ => {
            return Err(RaskError::invalid_argument(
                ENV_TLS_CA,
                format!("set all three of {ENV_TLS_CA}, {ENV_TLS_CERT} and {ENV_TLS_KEY}, or none"),
            ));
        }
    }
    if std::env::var(ENV_INSECURE).is_ok_and(|v| v == "1") {
        o.insecure = true;
    }
    Ok(Some(o))
}

/// Worker options that connect to the scheduler a scheduler file names (its address and
/// token); the rest at their defaults.
pub fn worker_options_from_scheduler_file(path: &std::path::Path) -> Result<WorkerOptions> {
    let f = scheduler::read_scheduler_file(path)?;
    let mut o = WorkerOptions::new(f.address.clone());
    o.tls = f.tls_context()?;
    o.insecure = o.tls.is_none();
    o.token = f.token;
    Ok(o)
}

/// When this process was started as a worker (by [`LocalCluster`] or a deployment), runs the
/// worker and exits the process; otherwise returns at once. Call it first thing in `main`.
pub fn run_worker_if_requested() {
    let opts = match worker_options_from_env() {
        Ok(Some(o)) => o,
        Ok(None) => return,
        Err(e) => {
            eprintln!("rask worker: {e}");
            std::process::exit(2);
        }
    };
    // Warnings to standard error (RASK_LOG to change it); recent lines for the dashboard.
    let filter = std::env::var("RASK_LOG").unwrap_or_else(|_| "warn".into());
    crate::logs::init_logging(&filter);
    let code = match run_worker(opts) {
        Ok(WorkerExit::Closed) => 0,
        Ok(WorkerExit::Restart(reason)) => {
            eprintln!("rask worker: restarting: {reason}");
            RESTART_EXIT_CODE
        }
        Err(e) => {
            eprintln!("rask worker: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Which program the workers run.
#[derive(Clone, Debug)]
pub enum WorkerProgram {
    /// This executable, with `args`; it must call [`run_worker_if_requested`] early.
    CurrentExe { args: Vec<String> },
    /// Another executable with arguments (for example the `rask` command with `worker`).
    Binary { path: PathBuf, args: Vec<String> },
}

/// How a local cluster is laid out.
#[derive(Clone, Debug)]
pub struct LocalClusterOptions {
    pub n_workers: usize,
    pub threads_per_worker: u32,
    /// Per worker, bytes; 0 for none.
    pub memory_limit: u64,
    pub program: WorkerProgram,
    pub scheduler: SchedulerOptions,
    /// Workers' heartbeat interval.
    pub heartbeat: Duration,
    /// How long a worker keeps trying to reach a lost scheduler.
    pub worker_reconnect: Duration,
    /// Start a worker again when it exits (memory restart, crash, kill): Dask's nanny.
    pub restart_workers: bool,
}

impl Default for LocalClusterOptions {
    /// Dask's defaults: as many workers as about the square root of the cores, the cores
    /// shared among them, the machine's memory shared among them.
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let n_workers = ((cores as f64).sqrt().ceil() as usize).clamp(1, cores);
        let threads = (cores / n_workers).max(1) as u32;
        let memory = total_memory() / n_workers as u64;
        LocalClusterOptions {
            n_workers,
            threads_per_worker: threads,
            memory_limit: memory,
            program: WorkerProgram::CurrentExe { args: Vec::new() },
            scheduler: SchedulerOptions::default(),
            heartbeat: Duration::from_millis(500),
            worker_reconnect: Duration::from_secs(30),
            restart_workers: true,
        }
    }
}

impl LocalClusterOptions {
    /// Serves the dashboard on `address` (`host:port`; Dask's is `127.0.0.1:8787`).
    pub fn dashboard(mut self, address: impl Into<String>) -> Self {
        self.scheduler.dashboard = Some(address.into());
        self
    }
}

/// The machine's memory in bytes (0 when unknown).
pub fn total_memory() -> u64 {
    #[cfg(target_os = "linux")]
    if let Ok(s) = std::fs::read_to_string("/proc/meminfo") {
        for line in s.lines() {
            if let Some(rest) = line.strip_prefix("MemTotal:") {
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                return kb * 1024;
            }
        }
    }
    0
}

struct Workers {
    children: Vec<Option<Child>>,
    stopping: bool,
}

/// A scheduler in this process and worker processes, stopped when dropped.
pub struct LocalCluster {
    scheduler: Option<SchedulerHandle>,
    workers: Arc<Mutex<Workers>>,
    opts: LocalClusterOptions,
    monitor: Option<std::thread::JoinHandle<()>>,
}

impl LocalCluster {
    /// A cluster with the default layout (see [`LocalClusterOptions::default`]), waiting until
    /// every worker has joined.
    pub fn new() -> Result<LocalCluster> {
        LocalCluster::with_options(LocalClusterOptions::default())
    }

    pub fn with_options(mut opts: LocalClusterOptions) -> Result<LocalCluster> {
        if opts.n_workers == 0 {
            return Err(RaskError::invalid_argument(
                "n_workers",
                "a local cluster needs at least one worker",
            ));
        }
        let scheduler = scheduler::start(opts.scheduler.clone())?;
        // What the scheduler generated (credentials, token) is what the workers get.
        opts.scheduler.token = scheduler.token().map(String::from);
        opts.scheduler.security = match scheduler.tls() {
            Some(t) => crate::tls::Security::Tls(t),
            None => crate::tls::Security::Insecure,
        };
        let workers = Arc::new(Mutex::new(Workers {
            children: Vec::new(),
            stopping: false,
        }));
        let mut cluster = LocalCluster {
            scheduler: Some(scheduler),
            workers,
            opts,
            monitor: None,
        };
        for i in 0..cluster.opts.n_workers {
            let child = cluster.spawn_worker(i)?;
            lock(&cluster.workers).children.push(Some(child));
        }
        cluster.wait_for_workers(cluster.opts.n_workers, Duration::from_secs(60))?;
        if cluster.opts.restart_workers {
            cluster.monitor = Some(cluster.start_monitor());
        }
        Ok(cluster)
    }

    fn spawn_worker(&self, i: usize) -> Result<Child> {
        spawn_worker(&self.opts, self.address(), i)
    }

    fn start_monitor(&self) -> std::thread::JoinHandle<()> {
        let workers = self.workers.clone();
        let opts = self.opts.clone();
        let address = self.address().to_string();
        std::thread::Builder::new()
            .name("rask-local-nanny".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let mut w = lock(&workers);
                    if w.stopping {
                        return;
                    }
                    for i in 0..w.children.len() {
                        let exited = match w.children[i].as_mut().map(Child::try_wait) {
                            Some(Ok(Some(status))) => Some(status),
                            _ => None,
                        };
                        // Like Dask's nanny: a worker that exits while the cluster runs
                        // (a memory restart, a crash, a kill) is started again; the
                        // scheduler already recomputes what it held.
                        if let Some(status) = exited {
                            tracing::warn!("worker {i} exited ({status}); starting it again");
                            w.children[i] = spawn_worker(&opts, &address, i).ok();
                        }
                    }
                }
            })
            .expect("spawning the local cluster's monitor")
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        self.scheduler.as_ref().expect("running").address()
    }

    /// A client connected to this cluster.
    /// `http://host:port` of the scheduler's dashboard, when it serves one.
    pub fn dashboard_url(&self) -> Option<String> {
        self.scheduler.as_ref().and_then(|s| s.dashboard_url())
    }

    /// The token every connection and the dashboard ask for (generated unless given).
    pub fn token(&self) -> Option<&str> {
        self.scheduler.as_ref().and_then(|s| s.token())
    }

    /// The dashboard's status page with the token in the query (as Jupyter prints its
    /// links): opening it once sets the cookie the other pages use.
    pub fn dashboard_link(&self) -> Option<String> {
        let url = self.dashboard_url()?;
        Some(match self.token() {
            Some(t) => format!("{url}/status?token={t}"),
            None => format!("{url}/status"),
        })
    }

    pub fn client(&self) -> Result<Client> {
        let s = self.scheduler.as_ref().expect("running");
        let mut o = ClientOptions::new(self.address());
        o.token = s.token().map(String::from);
        o.tls = s.tls();
        o.insecure = o.tls.is_none();
        Client::connect(o)
    }

    /// How many workers are connected right now.
    pub fn n_workers(&self) -> usize {
        self.scheduler
            .as_ref()
            .map_or(0, |s| s.stats().workers.load(Ordering::Relaxed))
    }

    /// Waits until `n` workers are connected; an error after `timeout` says how many came,
    /// and a worker that exits before joining (a refused handshake, say) ends the wait at once.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        self.scheduler
            .as_ref()
            .expect("running")
            .wait_for_workers(n, timeout, || self.dead_worker_message())
    }

    fn dead_worker_message(&self) -> Option<String> {
        let mut w = lock(&self.workers);
        for (i, c) in w.children.iter_mut().enumerate() {
            if let Some(child) = c
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(format!("worker {i} exited before joining: {status}"));
            }
        }
        None
    }

    /// The process ids of the worker processes (for fault tests: SIGKILL, SIGSTOP).
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.workers)
            .children
            .iter()
            .flatten()
            .map(Child::id)
            .collect()
    }

    /// Starts one more worker.
    pub fn add_worker(&self) -> Result<()> {
        let i = lock(&self.workers).children.len();
        let child = self.spawn_worker(i)?;
        lock(&self.workers).children.push(Some(child));
        Ok(())
    }
}

fn lock(m: &Mutex<Workers>) -> std::sync::MutexGuard<'_, Workers> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_worker(opts: &LocalClusterOptions, address: &str, i: usize) -> Result<Child> {
    let (path, args) = match &opts.program {
        WorkerProgram::CurrentExe { args } => (
            std::env::current_exe().map_err(|e| RaskError::io("the current executable", e))?,
            args.clone(),
        ),
        WorkerProgram::Binary { path, args } => (path.clone(), args.clone()),
    };
    let mut cmd = Command::new(&path);
    cmd.args(&args)
        .env(ENV_SCHEDULER, address)
        .env(ENV_NTHREADS, opts.threads_per_worker.to_string())
        .env(ENV_MEMORY_LIMIT, opts.memory_limit.to_string())
        .env(ENV_NAME, format!("local-worker-{i}"))
        .env(ENV_HEARTBEAT_MS, opts.heartbeat.as_millis().to_string())
        .env(
            ENV_RECONNECT_MS,
            opts.worker_reconnect.as_millis().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // As Dask's nanny does: without a fixed trim threshold glibc raises its mmap threshold
    // after the first large free, later large values come from the heap, and memory freed
    // by spilling is never given back, so the process looks full and gets restarted.
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        cmd.env("MALLOC_TRIM_THRESHOLD_", "65536");
    }
    if let Some(t) = &opts.scheduler.token {
        cmd.env(ENV_TOKEN, t);
    }
    match &opts.scheduler.security {
        crate::tls::Security::Tls(t) => {
            let c = t.credentials();
            cmd.env(ENV_TLS_CA, &c.ca_pem)
                .env(ENV_TLS_CERT, &c.cert_pem)
                .env(ENV_TLS_KEY, &c.key_pem);
        }
        _ => {
            cmd.env(ENV_INSECURE, "1");
        }
    }
    cmd.spawn()
        .map_err(|e| RaskError::io(format!("{} (starting worker {i})", path.display()), e))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        lock(&self.workers).stopping = true;
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        // Stopping the scheduler tells each worker to close; give them a moment, then make
        // sure.
        if let Some(s) = self.scheduler.take() {
            s.stop();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut w = lock(&self.workers);
        for child in w.children.iter_mut().flatten() {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}
