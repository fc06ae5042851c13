//! The scheduler process: a thin tokio loop around [`ClusterState`].
//!
//! One task accepts connections and runs each handshake; each connection gets a reader task
//! (frames in, events to the central loop) and a writer task (messages out, batched: whatever
//! queued up while the previous frame was being written goes out as one frame). The central
//! loop owns the state machine alone, so it needs no locks: it applies events in arrival order,
//! drains the machine's messages and routes them to the writers. A timer checks heartbeats and
//! runs the work-stealing pass.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rask_error::{RaskError, Result};
use rustc_hash::FxHashMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::comm::{self, FrameReader, FrameWriter};
use crate::protocol::{
    ClientId, FromWorker, Hello, ToClient, ToScheduler, ToWorker, Welcome, WorkerId,
};
use crate::state::{ClusterState, Outgoing, SchedulerConfig, WorkerInfo};
use crate::tls::{Credentials, Security, TlsContext};

/// How a scheduler is started.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Where to listen, `host:port` (port 0 picks a free one).
    pub listen: String,
    pub config: SchedulerConfig,
    /// A worker silent for this long is removed (its tasks go elsewhere).
    pub heartbeat_timeout: Duration,
    /// The largest frame accepted from anyone.
    pub max_frame: u64,
    /// When set, every connection must present this token.
    pub token: Option<String>,
    /// Where to write the scheduler file (address and token, mode 0600), if anywhere.
    pub scheduler_file: Option<PathBuf>,
    /// Where to serve the dashboard (`host:port`; Dask's is port 8787), if anywhere. It
    /// asks for `token` when there is one.
    pub dashboard: Option<String>,
    /// TLS (fresh credentials by default) or, only when asked, plain TCP.
    pub security: Security,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            listen: "127.0.0.1:0".into(),
            config: SchedulerConfig::default(),
            heartbeat_timeout: Duration::from_secs(10),
            max_frame: crate::codec::DEFAULT_MAX_FRAME,
            token: None,
            scheduler_file: None,
            dashboard: None,
            security: Security::Generate,
        }
    }
}

enum Event {
    ClientJoined {
        id: ClientId,
        tx: mpsc::UnboundedSender<ToClient>,
    },
    Client(ClientId, Vec<ToScheduler>),
    ClientLeft(ClientId),
    WorkerJoined {
        id: WorkerId,
        info: WorkerInfo,
        tx: mpsc::UnboundedSender<ToWorker>,
    },
    Worker(WorkerId, Vec<FromWorker>),
    WorkerLeft(WorkerId, String),
}

/// Figures a running scheduler publishes for its owner (cheap atomics, updated by the loop).
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub workers: std::sync::atomic::AtomicUsize,
    pub clients: std::sync::atomic::AtomicUsize,
    pub tasks: std::sync::atomic::AtomicUsize,
    /// Tasks waiting, queued or processing (updated every 100 ms; `SlurmCluster::adapt`
    /// scales on it).
    pub unfinished: std::sync::atomic::AtomicUsize,
}

/// A running scheduler (on its own threads); dropping it stops it.
pub struct SchedulerHandle {
    address: String,
    tls: Option<std::sync::Arc<TlsContext>>,
    token: Option<String>,
    /// Dropped after the scheduler's thread: it reads what that thread publishes.
    dashboard: Option<rask_dashboard::Dashboard>,
    stats: std::sync::Arc<SchedulerStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SchedulerHandle {
    /// The address clients and workers connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `http://host:port` of the dashboard, when it serves one.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.as_ref().map(|d| d.url())
    }

    /// The TLS context workers and clients must use (`None` only for `--insecure`).
    pub fn tls(&self) -> Option<std::sync::Arc<TlsContext>> {
        self.tls.clone()
    }

    /// The token every connection presents (generated with fresh credentials).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Live figures: workers and clients connected, tasks known.
    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Waits until `n` workers are connected. `give_up` is asked between looks: a reason from
    /// it (workers that died before joining, jobs that are gone) ends the wait with that
    /// reason. The error after `timeout` says how many came.
    pub fn wait_for_workers(
        &self,
        n: usize,
        timeout: Duration,
        mut give_up: impl FnMut() -> Option<String>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self
                .stats
                .workers
                .load(std::sync::atomic::Ordering::Relaxed);
            if have >= n {
                return Ok(());
            }
            let why = if Instant::now() >= deadline {
                Some(format!("timed out after {timeout:?}"))
            } else {
                give_up()
            };
            if let Some(why) = why {
                return Err(RaskError::Comm {
                    peer: self.address.clone(),
                    message: format!("{have} of {n} workers joined: {why}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the scheduler and waits for its threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.dashboard.take();
    }

    /// Blocks until the scheduler stops (it runs until stopped or the process ends).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a scheduler on a background thread with its own tokio runtime and returns once it
/// listens.
pub fn start(mut opts: SchedulerOptions) -> Result<SchedulerHandle> {
    let tls = match &opts.security {
        Security::Generate => {
            // Fresh credentials are only useful with a token nobody else knows.
            opts.token.get_or_insert_with(crate::tls::generate_token);
            let ctx = TlsContext::new(crate::tls::Credentials::generate()?)?;
            opts.security = Security::Tls(ctx.clone());
            Some(ctx)
        }
        Security::Tls(ctx) => Some(ctx.clone()),
        Security::Insecure => {
            tracing::warn!(
                "INSECURE: the scheduler on {} speaks plain TCP: no encryption, no \
                 certificates; anyone who can reach the port {}",
                opts.listen,
                if opts.token.is_some() {
                    "and sniffs the token can submit work"
                } else {
                    "can submit work"
                }
            );
            None
        }
    };
    // One thread for the state machine and every connection: a message then never crosses
    // threads inside the scheduler (a cross-thread wake-up costs more than handling most
    // messages), and the state machine is single-threaded anyway, as Dask's is.
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name("rask-scheduler")
        .enable_all()
        .build()
        .map_err(|e| RaskError::io("the scheduler's runtime", e))?;
    let listener = rt
        .block_on(TcpListener::bind(&opts.listen))
        .map_err(|e| RaskError::Comm {
            peer: opts.listen.clone(),
            message: format!("cannot listen: {e}"),
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| RaskError::io(&opts.listen, e))?
        .to_string();
    if let Some(path) = &opts.scheduler_file {
        write_scheduler_file(
            path,
            &address,
            opts.token.as_deref(),
            tls.as_ref().map(|t| t.credentials()),
        )?;
    }
    let opts_token = opts.token.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let stats = std::sync::Arc::new(SchedulerStats::default());
    let stats2 = stats.clone();
    let (dashboard, publisher) = match &opts.dashboard {
        Some(at) => {
            let publisher = std::sync::Arc::new(rask_dashboard::Publisher::new());
            let d = rask_dashboard::serve(at, opts.token.clone(), publisher.clone())?;
            (Some(d), Some(publisher))
        }
        None => (None, None),
    };
    let thread = std::thread::Builder::new()
        .name("rask-scheduler-main".into())
        .spawn(move || {
            rt.block_on(serve(listener, opts, stop_rx, stats2, publisher));
            rt.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(|e| RaskError::io("the scheduler's thread", e))?;
    Ok(SchedulerHandle {
        address,
        tls,
        token: opts_token,
        dashboard,
        stats,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The scheduler file: what workers and clients need to connect (Dask's `--scheduler-file`).
/// `key = value` lines: `address`, `token`, and either the TLS credentials (`tls_ca`,
/// `tls_cert`, `tls_key`: PEM text in base64, one line each) or `security = insecure`.
/// Written mode 0600: it holds the cluster's private key and token.
pub fn write_scheduler_file(
    path: &std::path::Path,
    address: &str,
    token: Option<&str>,
    tls: Option<&Credentials>,
) -> Result<()> {
    use base64::Engine;
    use std::io::Write;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut text = format!("address = {address}\n");
    if let Some(t) = token {
        text.push_str(&format!("token = {t}\n"));
    }
    match tls {
        Some(c) => {
            text.push_str(&format!("tls_ca = {}\n", b64(&c.ca_pem)));
            text.push_str(&format!("tls_cert = {}\n", b64(&c.cert_pem)));
            text.push_str(&format!("tls_key = {}\n", b64(&c.key_pem)));
        }
        None => text.push_str("security = insecure\n"),
    }
    // Written beside the target and renamed over it: a reader polling for the file (a
    // worker on another host) never sees half of it.
    let tmp = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        path.with_file_name(name)
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| RaskError::io(tmp.display(), e))?;
    // A leftover temporary file keeps its mode on open: private before the key goes in.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| RaskError::io(tmp.display(), e))?;
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| RaskError::io(tmp.display(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| RaskError::io(path.display(), e))
}

/// What a scheduler file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerFile {
    pub address: String,
    pub token: Option<String>,
    /// The cluster's credentials; `None` when the file says `security = insecure`.
    pub tls: Option<Credentials>,
}

impl SchedulerFile {
    /// The TLS context to connect with (`None` for an insecure cluster).
    pub fn tls_context(&self) -> Result<Option<std::sync::Arc<TlsContext>>> {
        self.tls.clone().map(TlsContext::new).transpose()
    }
}

/// Reads a scheduler file written by [`write_scheduler_file`]; errors name the file and line.
pub fn read_scheduler_file(path: &std::path::Path) -> Result<SchedulerFile> {
    use base64::Engine;
    let text = std::fs::read_to_string(path).map_err(|e| RaskError::io(path.display(), e))?;
    let bad = |msg: String| RaskError::invalid_argument("scheduler file", msg);
    let mut address = None;
    let mut token = None;
    let (mut ca, mut cert, mut key, mut insecure) = (None, None, None, false);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(bad(format!(
                "{}: line {} is not `key = value`",
                path.display(),
                i + 1
            )));
        };
        let v = v.trim();
        let pem = |v: &str| -> Result<String> {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{}: `{}` on line {} is not base64 PEM text",
                        path.display(),
                        k.trim(),
                        i + 1
                    ))
                })
        };
        match k.trim() {
            "address" => address = Some(v.to_string()),
            "token" => token = Some(v.to_string()),
            "tls_ca" => ca = Some(pem(v)?),
            "tls_cert" => cert = Some(pem(v)?),
            "tls_key" => key = Some(pem(v)?),
            "security" if v == "insecure" => insecure = true,
            other => {
                return Err(bad(format!(
                    "{}: unknown key `{other}` on line {}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    let address =
        address.ok_or_else(|| bad(format!("{} has no `address` line", path.display())))?;
    let tls = match (ca, cert, key, insecure) {
        (Some(ca_pem), Some(cert_pem), Some(key_pem), false) => Some(Credentials {
            ca_pem,
            cert_pem,
            key_pem,
        }),
        (None, None, None, true) => None,
        (None, None, None, false) => {
            return Err(bad(format!(
                "{} has no TLS credentials (`tls_ca`, `tls_cert`, `tls_key`) and does not \
                 say `security = insecure`",
                path.display()
            )));
        }
        (_, _, _, true) => {
            return Err(bad(format!(
                "{} says `security = insecure` but also holds TLS credentials",
                path.display()
            )));
        }
        _ => {
            return Err(bad(format!(
                "{} needs all three of `tls_ca`, `tls_cert` and `tls_key`",
                path.display()
            )));
        }
    };
    Ok(SchedulerFile {
        address,
        token,
        tls,
    })
}

/// Runs the scheduler on `listener` until `stop` fires, publishing dashboard snapshots to
/// `dashboard` when given.
pub async fn serve(
    listener: TcpListener,
    opts: SchedulerOptions,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    stats: std::sync::Arc<SchedulerStats>,
    dashboard: Option<std::sync::Arc<rask_dashboard::Publisher>>,
) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut dash = dashboard.map(|p| DashboardFeed::new(p, address));
    use std::sync::atomic::Ordering::Relaxed;
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let mut next_id: u64 = 1;
    let mut state = ClusterState::new(opts.config.clone());
    let mut secrets: Vec<rask_graph::secrets::Secret> = Vec::new();
    let mut clients: FxHashMap<ClientId, mpsc::UnboundedSender<ToClient>> = FxHashMap::default();
    let mut workers: FxHashMap<WorkerId, (mpsc::UnboundedSender<ToWorker>, Instant)> =
        FxHashMap::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dash_tick = tokio::time::interval(rask_dashboard::SNAPSHOT_INTERVAL);
    dash_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        let id = next_id;
                        next_id += 1;
                        let ev_tx = ev_tx.clone();
                        let opts = opts.clone();
                        tokio::spawn(async move {
                            handle_connection(stream, id, ev_tx, opts).await;
                        });
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
            }
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break };
                // Take whatever else queued up before routing: one drain per burst (at most
                // 4097 events, so timers still get their turn).
                let mut next = Some(ev);
                let mut n = 0;
                while let Some(ev) = next {
                    apply(
                        ev,
                        &mut state,
                        &mut secrets,
                        &mut clients,
                        &mut workers,
                        dash.as_mut(),
                    );
                    n += 1;
                    next = if n <= 4096 { ev_rx.try_recv().ok() } else { None };
                }
                route(&mut state, &clients, &workers);
                stats.workers.store(workers.len(), Relaxed);
                stats.clients.store(clients.len(), Relaxed);
                stats.tasks.store(state.n_tasks(), Relaxed);
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let dead: Vec<WorkerId> = workers
                    .iter()
                    .filter(|(_, (_, seen))| now.duration_since(*seen) > opts.heartbeat_timeout)
                    .map(|(id, _)| *id)
                    .collect();
                for id in dead {
                    tracing::warn!(
                        "worker {id}: no message for {:?}, removing it",
                        opts.heartbeat_timeout
                    );
                    // Dropping its sender ends its writer, which closes the socket; the
                    // reader then ends on its own.
                    workers.remove(&id);
                    state.remove_worker(
                        id,
                        &format!("no heartbeat for {:.1} s", opts.heartbeat_timeout.as_secs_f64()),
                    );
                }
                state.balance();
                route(&mut state, &clients, &workers);
                stats.workers.store(workers.len(), Relaxed);
                stats.unfinished.store(state.n_unfinished(), Relaxed);
            }
            _ = dash_tick.tick(), if dash.is_some() => {
                if let Some(d) = &mut dash {
                    d.publish(&state, &workers, clients.len());
                }
            }
        }
    }
    for (_, tx) in workers.drain() {
        let _ = tx.0.send(ToWorker::Close);
    }
    // Give the writers a moment to flush the Close.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Why a submission names an op this build does not have, if it does.
fn unregistered_op(m: &ToScheduler) -> Option<String> {
    let ToScheduler::UpdateGraph { tasks, .. } = m else {
        return None;
    };
    let registry = rask_graph::OpRegistry::global();
    tasks.iter().find_map(|t| {
        (!registry.contains(&t.op.name) && t.op.name != rask_graph::COMPOSITE_OP).then(|| {
            format!(
                "task {} names op `{}`, which is not registered in this build",
                t.key, t.op.name
            )
        })
    })
}

fn apply(
    ev: Event,
    state: &mut ClusterState,
    secrets: &mut Vec<rask_graph::secrets::Secret>,
    clients: &mut FxHashMap<ClientId, mpsc::UnboundedSender<ToClient>>,
    workers: &mut FxHashMap<WorkerId, (mpsc::UnboundedSender<ToWorker>, Instant)>,
    mut dash: Option<&mut DashboardFeed>,
) {
    match ev {
        Event::ClientJoined { id, tx } => {
            clients.insert(id, tx);
            state.add_client(id);
        }
        Event::Client(id, msgs) => {
            if !clients.contains_key(&id) {
                return;
            }
            for m in msgs {
                if let ToScheduler::Secrets { secrets: new } = m {
                    // Kept in memory only, and handed to every worker (now and on joining)
                    // over its own encrypted connection, ahead of any task that needs them.
                    for (tx, _) in workers.values() {
                        let _ = tx.send(ToWorker::Secrets {
                            secrets: new.clone(),
                        });
                    }
                    secrets.extend(new);
                    continue;
                }
                if let Some(reason) = unregistered_op(&m) {
                    // Every process runs the same build (the handshake checks), so an op the
                    // scheduler does not know is one no worker can run: a forged or corrupted
                    // graph. Refused whole, before any of it is scheduled.
                    tracing::warn!("refused a graph from client {id}: {reason}");
                    if let (ToScheduler::UpdateGraph { wants, .. }, Some(tx)) =
                        (m, clients.get(&id))
                    {
                        let _ = tx.send(ToClient::GraphRefused {
                            keys: wants,
                            reason,
                        });
                    }
                    continue;
                }
                state.handle_client(id, m);
            }
        }
        Event::ClientLeft(id) => {
            if clients.remove(&id).is_some() {
                state.remove_client(id);
            }
        }
        Event::WorkerJoined { id, info, tx } => {
            tracing::info!("worker {id} joined: {} at {}", info.name, info.address);
            if let Some(d) = dash {
                let _ = tx.send(ToWorker::Observe { task_stream: true });
                d.worker_joined(id, &info.name);
            }
            if !secrets.is_empty() {
                let _ = tx.send(ToWorker::Secrets {
                    secrets: secrets.clone(),
                });
            }
            workers.insert(id, (tx, Instant::now()));
            state.add_worker(id, info);
        }
        Event::Worker(id, msgs) => {
            // Messages from a worker already removed (timed out) are dropped: its tasks were
            // given to others.
            let Some(w) = workers.get_mut(&id) else {
                return;
            };
            w.1 = Instant::now();
            for m in msgs {
                match m {
                    FromWorker::Observed(obs) => {
                        if let Some(d) = dash.as_deref_mut() {
                            d.observed(id, *obs);
                        }
                    }
                    m => state.handle_worker(id, m),
                }
            }
        }
        Event::WorkerLeft(id, cause) => {
            if workers.remove(&id).is_some() {
                if let Some(d) = dash {
                    d.worker_left(id);
                }
                tracing::warn!("worker {id} left: {cause}");
                state.remove_worker(id, &cause);
            }
        }
    }
}

/// The scheduler's side of the dashboard: what the workers report for it, and the snapshots
/// built from that and the state machine's counters.
struct DashboardFeed {
    publisher: std::sync::Arc<rask_dashboard::Publisher>,
    address: String,
    started_ms: f64,
    workers: FxHashMap<WorkerId, WorkerFeed>,
}

struct WorkerFeed {
    name: std::sync::Arc<str>,
    last: crate::protocol::Observation,
    logs: std::collections::VecDeque<String>,
    /// The log lines as last published, shared by snapshots until a new line comes.
    published_logs: std::sync::Arc<Vec<String>>,
}

impl DashboardFeed {
    fn new(publisher: std::sync::Arc<rask_dashboard::Publisher>, address: String) -> Self {
        DashboardFeed {
            publisher,
            address,
            started_ms: rask_dashboard::now_ms(),
            workers: FxHashMap::default(),
        }
    }

    fn worker_joined(&mut self, id: WorkerId, name: &str) {
        self.workers.insert(
            id,
            WorkerFeed {
                name: std::sync::Arc::from(name),
                last: Default::default(),
                logs: Default::default(),
                published_logs: Default::default(),
            },
        );
    }

    fn worker_left(&mut self, id: WorkerId) {
        self.workers.remove(&id);
    }

    fn observed(&mut self, id: WorkerId, mut obs: crate::protocol::Observation) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let worker = w.name.clone();
        let records =
            std::mem::take(&mut obs.stream)
                .into_iter()
                .map(|e| rask_dashboard::TaskRecord {
                    id: 0,
                    worker: worker.clone(),
                    lane: e.lane,
                    key: e.key,
                    kind: e.kind,
                    start_ms: e.start_us as f64 / 1000.0,
                    stop_ms: e.stop_us as f64 / 1000.0,
                });
        self.publisher.record(records, obs.stream_dropped);
        if !obs.logs.is_empty() {
            for line in std::mem::take(&mut obs.logs) {
                if w.logs.len() == rask_dashboard::LOG_KEEP {
                    w.logs.pop_front();
                }
                w.logs.push_back(line);
            }
            w.published_logs = std::sync::Arc::new(w.logs.iter().cloned().collect());
        }
        w.last = obs;
    }

    /// Builds and publishes a snapshot: O(workers + prefixes), plus a bounded graph.
    fn publish(
        &mut self,
        state: &ClusterState,
        workers: &FxHashMap<WorkerId, (mpsc::UnboundedSender<ToWorker>, Instant)>,
        n_clients: usize,
    ) {
        let now = Instant::now();
        let mut rows = Vec::new();
        let mut logs = Vec::new();
        let mut n_threads = 0u64;
        for w in state.worker_summaries() {
            let feed = self.workers.get(&w.id);
            let last_seen_ms = workers.get(&w.id).map_or(0.0, |(_, seen)| {
                now.duration_since(*seen).as_secs_f64() * 1000.0
            });
            n_threads += w.nthreads as u64;
            rows.push(rask_dashboard::WorkerRow {
                id: w.id,
                name: w.name,
                address: w.address,
                nthreads: w.nthreads,
                memory_limit: w.memory_limit,
                managed: w.metrics.managed,
                spilled: w.metrics.spilled,
                process: w.metrics.process,
                executing: w.metrics.executing as u64,
                ready: w.metrics.ready as u64,
                processing: w.processing as u64,
                in_memory: w.keys as u64,
                paused: w.metrics.paused,
                cpu: feed.map_or(0.0, |f| f.last.cpu as f64),
                net_read_bps: feed.map_or(0.0, |f| f.last.net_read_bps as f64),
                net_write_bps: feed.map_or(0.0, |f| f.last.net_write_bps as f64),
                last_seen_ms,
            });
            logs.push(feed.map(|f| f.published_logs.clone()).unwrap_or_default());
        }
        let snapshot = rask_dashboard::Snapshot {
            seq: 0,
            now_ms: rask_dashboard::now_ms(),
            info: rask_dashboard::Info {
                source: "cluster",
                version: env!("CARGO_PKG_VERSION"),
                address: self.address.clone(),
                started_ms: self.started_ms,
                n_workers: rows.len() as u64,
                n_threads,
                n_clients: n_clients as u64,
                n_tasks: state.n_tasks() as u64,
            },
            prefixes: state.prefix_rows(),
            workers: rows,
            logs,
            graph: std::sync::Arc::new(state.graph_view(rask_dashboard::GRAPH_TASK_LIMIT)),
        };
        self.publisher.publish(snapshot);
    }
}

fn route(
    state: &mut ClusterState,
    clients: &FxHashMap<ClientId, mpsc::UnboundedSender<ToClient>>,
    workers: &FxHashMap<WorkerId, (mpsc::UnboundedSender<ToWorker>, Instant)>,
) {
    for out in state.drain() {
        match out {
            Outgoing::Worker(id, m) => {
                if let Some((tx, _)) = workers.get(&id) {
                    let _ = tx.send(m);
                }
            }
            Outgoing::Client(id, m) => {
                if let Some(tx) = clients.get(&id) {
                    let _ = tx.send(m);
                }
            }
        }
    }
}

/// Writes batches from `rx` until it closes or the socket fails.
pub(crate) async fn writer_loop<M>(mut w: FrameWriter, mut rx: mpsc::UnboundedReceiver<M>)
where
    M: serde::Serialize + crate::protocol::CarriesValues + Send + 'static,
{
    let mut batch: Vec<M> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 65_536 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if let Err(e) = w.send(&mut batch).await {
            tracing::debug!("writer to {}: {e}", w.peer());
            return;
        }
        batch.clear();
    }
    w.shutdown().await;
}

async fn handle_connection(
    stream: tokio::net::TcpStream,
    id: u64,
    ev_tx: mpsc::UnboundedSender<Event>,
    opts: SchedulerOptions,
) {
    let tls = match &opts.security {
        Security::Tls(t) => Some(t.clone()),
        _ => None,
    };
    let conn = match comm::accept_stream(stream, tls.as_deref()).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::debug!("a connection closed before saying anything (a probe?)");
            return;
        }
        Err(e) => {
            tracing::warn!("refused a connection: {e}");
            return;
        }
    };
    let (mut r, mut w) = comm::split(conn, opts.max_frame);
    let hello = match comm::accept(&mut r, &mut w, opts.token.as_deref()).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("refused a connection: {e}");
            return;
        }
    };
    if let Err(e) = w.send(&mut [Welcome::Accepted { id }]).await {
        tracing::warn!("handshake answer failed: {e}");
        return;
    }
    match hello {
        Hello::Client { name, .. } => {
            tracing::info!("client {id} ({name}) connected from {}", r.peer());
            let (tx, rx) = mpsc::unbounded_channel::<ToClient>();
            let writer = tokio::spawn(writer_loop(w, rx));
            if ev_tx.send(Event::ClientJoined { id, tx }).is_err() {
                return;
            }
            read_loop(&mut r, |msgs| Event::Client(id, msgs), &ev_tx).await;
            let _ = ev_tx.send(Event::ClientLeft(id));
            writer.abort();
        }
        Hello::Worker {
            name,
            listen,
            nthreads,
            memory_limit,
            ..
        } => {
            let (tx, rx) = mpsc::unbounded_channel::<ToWorker>();
            let writer = tokio::spawn(writer_loop(w, rx));
            let info = WorkerInfo {
                name,
                address: listen,
                nthreads,
                memory_limit,
            };
            if ev_tx.send(Event::WorkerJoined { id, info, tx }).is_err() {
                return;
            }
            let cause = read_loop(&mut r, |msgs| Event::Worker(id, msgs), &ev_tx).await;
            let _ = ev_tx.send(Event::WorkerLeft(id, cause));
            writer.abort();
        }
        Hello::Peer { .. } => {
            tracing::warn!(
                "a peer connection reached the scheduler from {}; closing it",
                r.peer()
            );
        }
    }
}

/// Forwards batches as events until the connection ends; returns why it ended.
async fn read_loop<M>(
    r: &mut FrameReader,
    wrap: impl Fn(Vec<M>) -> Event,
    ev_tx: &mpsc::UnboundedSender<Event>,
) -> String
where
    M: serde::de::DeserializeOwned + crate::protocol::CarriesValues,
{
    loop {
        match r.recv::<M>().await {
            Ok(Some(msgs)) => {
                if ev_tx.send(wrap(msgs)).is_err() {
                    return "scheduler stopping".into();
                }
            }
            Ok(None) => return "connection closed".into(),
            Err(e) => {
                tracing::warn!("closing the connection: {e}");
                return e.to_string();
            }
        }
    }
}
