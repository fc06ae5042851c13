//! The client: a connection to the scheduler, the status of every key this process waits
//! for, and handles ([`FutureHandle`]) that keep keys alive on the cluster.
//!
//! The client runs a small tokio runtime of its own. A reader task applies the scheduler's
//! messages to a shared table and wakes waiters; user threads block on it (`wait`, `result`)
//! or await it (`*_async`). Results arrive inline when small; otherwise the client asks the
//! scheduler who holds them and fetches from that worker directly. Dropping the last handle
//! of a key tells the scheduler this client no longer wants it.
//!
//! This is the untyped layer (keys and [`Value`]s); `rask::distributed` wraps it in typed
//! `Future<T>`s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rask_error::{RaskError, Result};
use rask_graph::{Graph, Key, Op, OpRegistry, Value};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::comm;
use crate::protocol::{
    ClientTask, ErrorKind, Hello, PROTOCOL_VERSION, RemoteError, ToClient, ToScheduler, WireOp,
    WorkerSummary,
};
use crate::tls::TlsContext;
use crate::worker::{fetch_values, from_wire, to_wire};

/// The op of a key that already lives on the cluster (a future passed as an argument, a
/// persisted collection): it marks the key in a locally built graph and is never sent or run.
/// It holds a handle on the key, so the key stays on the cluster while any graph reads it.
pub struct RemoteKey {
    _hold: Option<FutureHandle>,
}

impl RemoteKey {
    pub fn holding(handle: FutureHandle) -> Self {
        RemoteKey {
            _hold: Some(handle),
        }
    }
}

/// The name [`RemoteKey`] goes by.
pub const REMOTE_KEY_OP: &str = "rask.remote";

impl Op for RemoteKey {
    fn name(&self) -> &str {
        REMOTE_KEY_OP
    }
    fn label(&self) -> &str {
        "remote"
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Err(RaskError::msg(
            "this key lives on a cluster: compute it with the client that holds it",
        ))
    }
}

/// Where a key is, as far as this client knows.
#[derive(Clone, Debug)]
pub enum KeyStatus {
    Pending,
    /// In memory on some worker; `value` is here when it came inline or was fetched.
    Finished {
        nbytes: u64,
        value: Option<Value>,
    },
    Erred(RemoteError),
    Cancelled(String),
}

impl KeyStatus {
    pub fn is_done(&self) -> bool {
        !matches!(self, KeyStatus::Pending)
    }

    /// A short name: `pending`, `finished`, `error`, `cancelled` (Dask's `Future.status`).
    pub fn name(&self) -> &'static str {
        match self {
            KeyStatus::Pending => "pending",
            KeyStatus::Finished { .. } => "finished",
            KeyStatus::Erred(_) => "error",
            KeyStatus::Cancelled(_) => "cancelled",
        }
    }
}

struct Entry {
    refs: u32,
    status: KeyStatus,
    /// When it reached a final status (a counter), for `as_completed` order.
    done_seq: u64,
}

#[derive(Default)]
struct Shared {
    keys: FxHashMap<Key, Entry>,
    who_has: FxHashMap<Key, Vec<String>>,
    closed: Option<String>,
    seq: u64,
    /// The last `Info` answer and how many have arrived.
    info: Vec<WorkerSummary>,
    info_seq: u64,
}

/// How a client connects.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub address: String,
    pub token: Option<String>,
    pub name: String,
    pub max_frame: u64,
    /// The cluster's TLS context (from the scheduler file, files, or a `LocalCluster`).
    /// Required unless `insecure`.
    pub tls: Option<Arc<TlsContext>>,
    /// Plain TCP, explicitly.
    pub insecure: bool,
}

impl ClientOptions {
    pub fn new(address: impl Into<String>) -> Self {
        ClientOptions {
            address: address.into(),
            token: None,
            name: format!("client-{}", std::process::id()),
            max_frame: crate::codec::DEFAULT_MAX_FRAME,
            tls: None,
            insecure: false,
        }
    }
}

/// Environment variables [`ClientOptions::from_vars`] reads (the Kubernetes client Job sets
/// them; `rask-deploy` writes the same names).
pub const ENV_SCHEDULER_FILE: &str = "RASK_SCHEDULER_FILE";
pub const ENV_SCHEDULER: &str = "RASK_SCHEDULER";
pub const ENV_TLS_CA_FILE: &str = "RASK_TLS_CA_FILE";
pub const ENV_TLS_CERT_FILE: &str = "RASK_TLS_CERT_FILE";
pub const ENV_TLS_KEY_FILE: &str = "RASK_TLS_KEY_FILE";
pub const ENV_TOKEN_FILE: &str = "RASK_TOKEN_FILE";
pub const ENV_INSECURE: &str = "RASK_INSECURE";

impl ClientOptions {
    /// Options to connect as a scheduler file says: address, token, and the cluster's TLS
    /// credentials (or plain TCP, when the file says `security = insecure`).
    pub fn from_scheduler_file(path: &std::path::Path) -> Result<ClientOptions> {
        let f = crate::scheduler::read_scheduler_file(path)?;
        let mut o = ClientOptions::new(f.address.clone());
        o.tls = f.tls_context()?;
        o.insecure = o.tls.is_none();
        o.token = f.token;
        Ok(o)
    }

    /// Options from variables looked up by `var` (`std::env::var` in
    /// `Client::from_env`): a scheduler file ([`ENV_SCHEDULER_FILE`]), or an address
    /// ([`ENV_SCHEDULER`]) with the TLS files and token file, or with `RASK_INSECURE=1`.
    /// `None` when neither a file nor an address is set; errors name the variable at fault.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<ClientOptions>> {
        if let Some(path) = var(ENV_SCHEDULER_FILE) {
            return ClientOptions::from_scheduler_file(std::path::Path::new(&path))
                .map(Some)
                .map_err(|e| e.context(format!("{ENV_SCHEDULER_FILE}={path}")));
        }
        let Some(address) = var(ENV_SCHEDULER) else {
            return Ok(None);
        };
        let mut o = ClientOptions::new(address);
        let file = |name: &str| var(name).map(std::path::PathBuf::from);
        match (
            file(ENV_TLS_CA_FILE),
            file(ENV_TLS_CERT_FILE),
            file(ENV_TLS_KEY_FILE),
        ) {
            (Some(ca), Some(cert), Some(key)) => {
                let creds = crate::tls::Credentials::from_files(&ca, &cert, &key)?;
                o.tls = Some(TlsContext::new(creds)?);
            }
            (None, None, None) => {}
            _ => {
                return Err(RaskError::invalid_argument(
                    ENV_TLS_CA_FILE,
                    format!(
                        "set all three of {ENV_TLS_CA_FILE}, {ENV_TLS_CERT_FILE} and \
                         {ENV_TLS_KEY_FILE}, or none"
                    ),
                ));
            }
        }
        if let Some(path) = file(ENV_TOKEN_FILE) {
            let t = std::fs::read_to_string(&path)
                .map_err(|e| RaskError::io(format!("{ENV_TOKEN_FILE}={}", path.display()), e))?;
            o.token = Some(t.trim().to_string());
        }
        o.insecure = var(ENV_INSECURE).as_deref() == Some("1");
        Ok(Some(o))
    }
}

/// Per-submission settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubmitOptions {
    /// Higher runs first.
    pub priority: i32,
    /// Times a task that returns an error is retried before its error is final.
    pub retries: u32,
    /// Run it to completion even though nobody will wait for it.
    pub fire_and_forget: bool,
}

struct Inner {
    rt: std::sync::OnceLock<tokio::runtime::Runtime>,
    outbox: Arc<crate::outbox::Outbox>,
    shared: Mutex<Shared>,
    notify: Notify,
    opts: ClientOptions,
    /// How many of this process's [`rask_graph::secrets`] the scheduler has been sent.
    secrets_sent: Mutex<usize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.outbox.send(ToScheduler::Close);
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped from inside a runtime (the last handle went in async code): a
                // runtime cannot be shut down there, so another thread does it.
                std::thread::spawn(move || rt.shutdown_timeout(Duration::from_millis(200)));
            } else {
                // Let the writer flush the Close.
                rt.shutdown_timeout(Duration::from_millis(200));
            }
        }
    }
}

/// A connection to a scheduler. Cheap to clone; the connection closes when the last clone
/// and the last handle are gone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.inner.opts.address)
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects and shakes hands (a build mismatch is refused with both sides named).
    pub fn connect(opts: ClientOptions) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rask-client")
            .enable_all()
            .build()
            .map_err(|e| RaskError::io("the client's runtime", e))?;
        let hello = Hello::Client {
            version: PROTOCOL_VERSION,
            fingerprint: comm::local_fingerprint(),
            name: opts.name.clone(),
            token: opts.token.clone(),
        };
        let tls = crate::tls::context_for(&opts.tls, opts.insecure, "the client", &opts.address)?;
        let (mut r, w, _id) =
            rt.block_on(comm::connect(&opts.address, hello, opts.max_frame, tls))?;
        let (half, peer) = w.into_parts();
        let outbox = crate::outbox::Outbox::new(half, peer);
        let inner = Arc::new(Inner {
            rt: std::sync::OnceLock::new(),
            outbox: outbox.clone(),
            shared: Mutex::new(Shared::default()),
            notify: Notify::new(),
            opts,
            secrets_sent: Mutex::new(0),
        });
        rt.spawn(outbox.flush_loop());
        let weak = Arc::downgrade(&inner);
        rt.spawn(async move {
            let why = loop {
                match r.recv::<ToClient>().await {
                    Ok(Some(msgs)) => {
                        let Some(inner) = weak.upgrade() else { return };
                        apply(&inner, msgs);
                    }
                    Ok(None) => break "the scheduler closed the connection".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            if let Some(inner) = weak.upgrade() {
                inner.outbox.close(&why);
                lock(&inner.shared).closed = Some(why);
                inner.notify.notify_waiters();
            }
        });
        // The runtime lives in `Inner` so it stops when the last clone goes.
        let _ = inner.rt.set(rt);
        Ok(Client { inner })
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.inner.opts.address
    }

    fn send(&self, m: ToScheduler) -> Result<()> {
        self.inner.outbox.send(m)
    }

    fn handle_of(&self, key: Key) -> FutureHandle {
        FutureHandle {
            client: self.clone(),
            key,
        }
    }

    /// Takes a handle on each want (new keys start `Pending`).
    fn want(&self, keys: &[Key]) -> Vec<FutureHandle> {
        let mut s = lock(&self.inner.shared);
        keys.iter()
            .map(|k| {
                s.keys
                    .entry(k.clone())
                    .or_insert(Entry {
                        refs: 0,
                        status: KeyStatus::Pending,
                        done_seq: 0,
                    })
                    .refs += 1;
                self.handle_of(k.clone())
            })
            .collect()
    }

    /// Submits tasks and returns a handle per wanted key. Tasks whose key the cluster already
    /// has are not run again.
    pub fn submit(
        &self,
        tasks: Vec<ClientTask>,
        wants: &[Key],
        opts: SubmitOptions,
    ) -> Result<Vec<FutureHandle>> {
        self.send_new_secrets()?;
        let handles = self.want(wants);
        self.send(ToScheduler::UpdateGraph {
            tasks,
            wants: wants.to_vec(),
            priority: opts.priority,
            retries: opts.retries,
            fire_and_forget: opts.fire_and_forget,
        })?;
        Ok(handles)
    }

    /// Sends the secrets this process's ops remembered since the last submission (bucket
    /// credentials), in their own message ahead of the graph: graphs never carry them.
    fn send_new_secrets(&self) -> Result<()> {
        let mut sent = self
            .inner
            .secrets_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (new, count) = rask_graph::secrets::since(*sent);
        if !new.is_empty() {
            // Held while sending, so no graph needing them overtakes them.
            self.send(ToScheduler::Secrets { secrets: new })?;
        }
        *sent = count;
        Ok(())
    }

    /// Places values on the cluster under the given keys.
    pub fn scatter(&self, values: Vec<(Key, Value)>) -> Result<Vec<FutureHandle>> {
        let mut wire = Vec::with_capacity(values.len());
        for (k, v) in &values {
            let w = to_wire(v).map_err(|e| e.context(format!("scattering {k}")))?;
            wire.push((k.clone(), w));
        }
        let keys: Vec<Key> = values.iter().map(|(k, _)| k.clone()).collect();
        let handles = self.want(&keys);
        self.send(ToScheduler::Scatter { values: wire })?;
        self.send(ToScheduler::UpdateGraph {
            tasks: Vec::new(),
            wants: keys,
            priority: 0,
            retries: 0,
            fire_and_forget: false,
        })?;
        Ok(handles)
    }

    /// Cancels keys (and what only they need).
    pub fn cancel(&self, keys: &[Key]) -> Result<()> {
        self.send(ToScheduler::Cancel {
            keys: keys.to_vec(),
        })
    }

    /// The status of a key this client holds a handle on.
    pub fn status(&self, key: &Key) -> KeyStatus {
        let s = lock(&self.inner.shared);
        match s.keys.get(key) {
            Some(e) => e.status.clone(),
            None => KeyStatus::Cancelled("released".into()),
        }
    }

    fn closed_error(&self, why: &str) -> RaskError {
        RaskError::Comm {
            peer: self.inner.opts.address.clone(),
            message: format!("lost the scheduler: {why}"),
        }
    }

    /// Waits until `done(statuses)` holds for the keys, or the timeout passes (`Ok(false)`).
    async fn wait_until(
        &self,
        keys: &[Key],
        timeout: Option<Duration>,
        done: impl Fn(&[bool]) -> bool,
    ) -> Result<bool> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = lock(&self.inner.shared);
                let flags: Vec<bool> = keys
                    .iter()
                    .map(|k| s.keys.get(k).is_none_or(|e| e.status.is_done()))
                    .collect();
                if done(&flags) {
                    return Ok(true);
                }
                if let Some(why) = &s.closed {
                    return Err(self.closed_error(why));
                }
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return Ok(false);
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Blocks until every key is done (`all = true`) or any is, or the timeout passes;
    /// returns whether the condition was met.
    pub fn wait(&self, keys: &[Key], all: bool, timeout: Option<Duration>) -> Result<bool> {
        self.block_on(self.wait_async(keys, all, timeout))
    }

    pub async fn wait_async(
        &self,
        keys: &[Key],
        all: bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        if keys.is_empty() {
            return Ok(true);
        }
        self.wait_until(keys, timeout, |f| {
            if all {
                f.iter().all(|&d| d)
            } else {
                f.iter().any(|&d| d)
            }
        })
        .await
    }

    /// Runs a future of this client to completion from a plain thread.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.inner
            .rt
            .get()
            .expect("the runtime lives as long as the client")
            .block_on(f)
    }

    /// The value of a key: waits for it, then takes it from the inline copy or fetches it from
    /// a worker holding it. An erred key gives an error naming the task and its op.
    pub async fn result_async(&self, key: &Key) -> Result<Value> {
        self.wait_until(std::slice::from_ref(key), None, |f| f[0])
            .await?;
        let status = self.status(key);
        match status {
            KeyStatus::Finished { value: Some(v), .. } => Ok(v),
            KeyStatus::Finished { value: None, .. } => {
                let v = self.fetch(key).await?;
                Ok(v)
            }
            KeyStatus::Erred(e) => Err(remote_to_error(&e)),
            KeyStatus::Cancelled(reason) => {
                Err(RaskError::Cancelled(Some(format!("{key}: {reason}"))))
            }
            KeyStatus::Pending => unreachable!("waited until done"),
        }
    }

    pub fn result(&self, key: &Key) -> Result<Value> {
        self.block_on(self.result_async(key))
    }

    /// The workers as the scheduler sees them now: addresses, threads, memory limits and
    /// their last heartbeat's memory numbers (Dask's `scheduler_info()["workers"]`).
    pub fn scheduler_info(&self) -> Result<Vec<WorkerSummary>> {
        self.block_on(async {
            let before = lock(&self.inner.shared).info_seq;
            self.send(ToScheduler::Info)?;
            loop {
                let notified = self.inner.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let s = lock(&self.inner.shared);
                    if s.info_seq > before {
                        return Ok(s.info.clone());
                    }
                    if let Some(why) = &s.closed {
                        return Err(self.closed_error(why));
                    }
                }
                notified.await;
            }
        })
    }

    /// Asks the scheduler who holds `key` and fetches it from one of them.
    async fn fetch(&self, key: &Key) -> Result<Value> {
        for attempt in 0..50 {
            lock(&self.inner.shared).who_has.remove(key);
            self.send(ToScheduler::WhoHas {
                keys: vec![key.clone()],
            })?;
            let addrs = loop {
                let notified = self.inner.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let s = lock(&self.inner.shared);
                    if let Some(a) = s.who_has.get(key) {
                        break a.clone();
                    }
                    if let Some(why) = &s.closed {
                        return Err(self.closed_error(why));
                    }
                }
                notified.await;
            };
            for addr in &addrs {
                match fetch_values(
                    addr,
                    vec![key.clone()],
                    self.inner.opts.token.clone(),
                    self.inner.opts.max_frame,
                    self.inner.opts.tls.clone(),
                )
                .await
                {
                    Ok((mut values, _)) => {
                        // Not cached here (only small inline values are): a cached copy
                        // would hold a large value in the client for as long as its future
                        // lives, and would make handing out the owned value a full copy.
                        if let Some((_, v)) = values.pop() {
                            return Ok(v);
                        }
                    }
                    Err(e) => tracing::debug!("fetching {key} from {addr}: {e}"),
                }
            }
            // Nobody had it right now (a worker died and it is being recomputed): wait for
            // the key to be done again.
            tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
            self.wait_until(std::slice::from_ref(key), None, |f| f[0])
                .await?;
            if let KeyStatus::Erred(e) = self.status(key) {
                return Err(remote_to_error(&e));
            }
        }
        Err(RaskError::Comm {
            peer: self.inner.opts.address.clone(),
            message: format!("no worker could hand over {key}"),
        })
    }

    /// Keys among `keys` that are done, in the order they finished (for `as_completed`).
    pub fn done_in_order(&self, keys: &[Key]) -> Vec<Key> {
        let s = lock(&self.inner.shared);
        let mut done: Vec<(u64, Key)> = keys
            .iter()
            .filter_map(|k| {
                let e = s.keys.get(k)?;
                e.status.is_done().then(|| (e.done_seq, k.clone()))
            })
            .collect();
        done.sort_by_key(|(seq, _)| *seq);
        done.into_iter().map(|(_, k)| k).collect()
    }

    fn release(&self, key: &Key) {
        let mut s = lock(&self.inner.shared);
        let gone = match s.keys.get_mut(key) {
            Some(e) => {
                e.refs -= 1;
                e.refs == 0
            }
            None => false,
        };
        if gone {
            s.keys.remove(key);
            drop(s);
            self.inner.outbox.defer(ToScheduler::Release {
                keys: vec![key.clone()],
            });
        }
    }
}

fn apply(inner: &Inner, msgs: Vec<ToClient>) {
    let mut s = lock(&inner.shared);
    for m in msgs {
        match m {
            ToClient::KeyInMemory { key, nbytes, value } => {
                let value = value.and_then(|w| match from_wire(&w) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::error!("inline value of {key}: {e}");
                        None
                    }
                });
                s.seq += 1;
                let seq = s.seq;
                if let Some(e) = s.keys.get_mut(&key) {
                    e.status = KeyStatus::Finished { nbytes, value };
                    e.done_seq = seq;
                }
            }
            ToClient::KeyErred { key, error } => {
                s.seq += 1;
                let seq = s.seq;
                if let Some(e) = s.keys.get_mut(&key) {
                    e.status = KeyStatus::Erred(error);
                    e.done_seq = seq;
                }
            }
            ToClient::KeyCancelled { key, reason } => {
                s.seq += 1;
                let seq = s.seq;
                if let Some(e) = s.keys.get_mut(&key) {
                    e.status = KeyStatus::Cancelled(reason);
                    e.done_seq = seq;
                }
            }
            ToClient::WhoHas { keys } => {
                for (k, addrs) in keys {
                    s.who_has.insert(k, addrs);
                }
            }
            ToClient::Info { workers } => {
                s.info = workers;
                s.info_seq += 1;
            }
            ToClient::GraphRefused { keys, reason } => {
                for k in keys {
                    s.seq += 1;
                    let seq = s.seq;
                    if let Some(e) = s.keys.get_mut(&k) {
                        e.status = KeyStatus::Erred(RemoteError {
                            key: k.to_string(),
                            op: "(submission)".into(),
                            kind: ErrorKind::Cancelled,
                            message: format!("the scheduler refused the graph: {reason}"),
                        });
                        e.done_seq = seq;
                    }
                }
            }
        }
    }
    drop(s);
    inner.notify.notify_waiters();
}

/// The `RaskError` a client raises for a remote error: it names the task and its op.
pub fn remote_to_error(e: &RemoteError) -> RaskError {
    match e.kind {
        ErrorKind::Panicked => RaskError::TaskPanicked {
            key: e.key.clone(),
            op: e.op.clone(),
            message: e.message.clone(),
        },
        ErrorKind::KilledWorker { deaths } => RaskError::KilledWorker {
            key: e.key.clone(),
            op: e.op.clone(),
            deaths,
            message: e.message.clone(),
        },
        ErrorKind::Cancelled => RaskError::Cancelled(Some(format!("{}: {}", e.key, e.message))),
        ErrorKind::Failed | ErrorKind::Lost | ErrorKind::DependencyFailed => {
            RaskError::TaskFailed {
                key: e.key.clone(),
                op: e.op.clone(),
                source: Box::new(RaskError::msg(&e.message)),
            }
        }
    }
}

/// A key this client holds on the cluster: while a handle lives, the scheduler keeps the key
/// (and recomputes it if a worker holding it dies).
pub struct FutureHandle {
    client: Client,
    key: Key,
}

impl FutureHandle {
    pub fn key(&self) -> &Key {
        &self.key
    }
    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn status(&self) -> KeyStatus {
        self.client.status(&self.key)
    }
    pub fn result(&self) -> Result<Value> {
        self.client.result(&self.key)
    }
    pub async fn result_async(&self) -> Result<Value> {
        self.client.result_async(&self.key).await
    }
}

impl Clone for FutureHandle {
    fn clone(&self) -> Self {
        let mut s = lock(&self.client.inner.shared);
        if let Some(e) = s.keys.get_mut(&self.key) {
            e.refs += 1;
        }
        drop(s);
        FutureHandle {
            client: self.client.clone(),
            key: self.key.clone(),
        }
    }
}

impl Drop for FutureHandle {
    fn drop(&mut self) {
        self.client.release(&self.key);
    }
}

impl std::fmt::Debug for FutureHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Future({}, {})", self.key, self.status().name())
    }
}

/// The tasks of an optimized, ordered graph in their wire form. Tasks whose op is
/// [`RemoteKey`] are left out: their keys are already on the cluster. A task whose op cannot
/// leave this process (a local closure) is an error naming the task, before anything is sent.
pub fn tasks_from_graph(graph: &Graph, priorities: &[u32]) -> Result<Vec<ClientTask>> {
    let projected = graph.projected_nbytes();
    let mut tasks = Vec::with_capacity(graph.len());
    for (id, task) in graph.tasks().iter().enumerate() {
        if task.op.name() == REMOTE_KEY_OP {
            continue;
        }
        let (name, params) = OpRegistry::encode(&*task.op).map_err(|e| {
            RaskError::invalid_argument(
                "graph",
                format!(
                    "task {} (op `{}`) cannot be sent to the cluster: {e}",
                    task.key,
                    task.op.name()
                ),
            )
        })?;
        tasks.push(ClientTask {
            key: task.key.clone(),
            op: Arc::new(WireOp { name, params }),
            deps: task
                .deps
                .iter()
                .map(|&d| graph.task(d).key.clone())
                .collect(),
            order: priorities[id],
            projected_nbytes: projected[id],
        });
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_a_scheduler_file_or_an_address_with_files() {
        let dir = tempfile::tempdir().unwrap();
        let creds = crate::tls::Credentials::generate().unwrap();
        let sf = dir.path().join("scheduler");
        crate::scheduler::write_scheduler_file(&sf, "h:1", Some("tok"), Some(&creds)).unwrap();
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let o =
            ClientOptions::from_vars(vars(vec![(ENV_SCHEDULER_FILE, sf.display().to_string())]))
                .unwrap()
                .unwrap();
        assert_eq!(
            (o.address.as_str(), o.token.as_deref()),
            ("h:1", Some("tok"))
        );
        assert!(o.tls.is_some() && !o.insecure);
        for (name, text) in [
            ("ca.pem", creds.ca_pem.as_str()),
            ("cert.pem", creds.cert_pem.as_str()),
            ("key.pem", creds.key_pem.as_str()),
            ("token", "  tok2\n"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let p = |n: &str| dir.path().join(n).display().to_string();
        let o = ClientOptions::from_vars(vars(vec![
            (ENV_SCHEDULER, "svc:8786".into()),
            (ENV_TLS_CA_FILE, p("ca.pem")),
            (ENV_TLS_CERT_FILE, p("cert.pem")),
            (ENV_TLS_KEY_FILE, p("key.pem")),
            (ENV_TOKEN_FILE, p("token")),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.address.as_str(), o.token.as_deref()),
            ("svc:8786", Some("tok2"))
        );
        assert!(o.tls.is_some());
        assert!(ClientOptions::from_vars(vars(vec![])).unwrap().is_none());
        let e = ClientOptions::from_vars(vars(vec![
            (ENV_SCHEDULER, "svc:8786".into()),
            (ENV_TLS_CA_FILE, p("ca.pem")),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains(ENV_TLS_CERT_FILE), "{e}");
        let e = ClientOptions::from_vars(vars(vec![(ENV_SCHEDULER_FILE, p("missing"))]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(ENV_SCHEDULER_FILE) && e.contains("missing"),
            "{e}"
        );
    }
}
