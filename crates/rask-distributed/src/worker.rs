//! The worker process: a thin tokio loop around [`WorkerState`], a pool of executor threads,
//! a store of values (in memory or spilled), and a data port peers and clients fetch from.
//!
//! The central loop alone owns the state machine. Executor threads run ops and send results
//! back as events; fetches run as tokio tasks and report back as events; the data port reads
//! the store under its lock. Values never pass through the scheduler: a task's inputs come
//! from the workers holding them.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rask_error::{RaskError, Result};
use rask_graph::{Key, OpRegistry, SpillFns, Value};
use rustc_hash::FxHashMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::comm::{self, FrameReader, FrameWriter};
use crate::protocol::{
    ErrorKind, FromWorker, Hello, PROTOCOL_VERSION, PeerRequest, PeerResponse, RemoteError,
    ToWorker, Welcome, WireOp, WireValue,
};
use crate::state::{WorkerConfig, WorkerInstruction, WorkerState};
use crate::tls::TlsContext;

/// How a worker is started.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The scheduler's address.
    pub scheduler: String,
    pub nthreads: u32,
    /// Bytes; 0 for no limit (no spilling, pausing or restarting).
    pub memory_limit: u64,
    /// Where the data port listens (`host:port`, port 0 picks one). Empty: on the address
    /// of the interface that routes to the scheduler (the one peers on other hosts can
    /// reach), on a free port.
    pub listen: String,
    /// The host name peers use to reach the data port, when `listen` binds a wildcard.
    pub contact_host: Option<String>,
    pub name: String,
    pub token: Option<String>,
    pub heartbeat_interval: Duration,
    /// Parent of the spill directory (a fresh one is made inside and removed on exit).
    pub spill_dir: Option<PathBuf>,
    pub max_frame: u64,
    /// How long to keep trying to reach the scheduler (at start, and after losing it) before
    /// giving up.
    pub reconnect_for: Duration,
    /// At most this many values are being sent to peers at once; more requests get `Busy`.
    pub max_outgoing_transfers: usize,
    /// The cluster's TLS context: for the scheduler connection, peer fetches and the data
    /// port. Required unless `insecure`.
    pub tls: Option<Arc<TlsContext>>,
    /// Plain TCP everywhere, explicitly.
    pub insecure: bool,
}

impl WorkerOptions {
    pub fn new(scheduler: impl Into<String>) -> Self {
        WorkerOptions {
            scheduler: scheduler.into(),
            nthreads: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_limit: 0,
            listen: String::new(),
            contact_host: None,
            name: format!("worker-{}", std::process::id()),
            token: None,
            heartbeat_interval: Duration::from_millis(500),
            spill_dir: None,
            max_frame: crate::codec::DEFAULT_MAX_FRAME,
            reconnect_for: Duration::from_secs(30),
            max_outgoing_transfers: 16,
            tls: None,
            insecure: false,
        }
    }
}

/// `1000`, `4GB`, `512MiB`, `1.5G` (decimal units for k/M/G/T, binary for KiB/MiB/GiB/TiB).
/// (A memory limit as `rask worker --memory-limit` and SLURM/Kubernetes options take it.)
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 4GB or 512MiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0f64.powi(3),
        "tib" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (try 4GB or 512MiB)"
            ));
        }
    };
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("`{s}` is not a size"));
    }
    Ok((n * mult) as u64)
}

/// The local address of the interface the kernel would use to reach `scheduler` (`host:port`):
/// a connected UDP socket picks the route without sending anything.
fn route_to(scheduler: &str) -> Result<std::net::IpAddr> {
    use std::net::{ToSocketAddrs, UdpSocket};
    let err = |message: String| RaskError::Comm {
        peer: scheduler.to_string(),
        message,
    };
    let target = scheduler
        .to_socket_addrs()
        .map_err(|e| err(format!("cannot resolve the scheduler's address: {e}")))?
        .next()
        .ok_or_else(|| err("the scheduler's address resolves to nothing".into()))?;
    let any = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(any).map_err(|e| err(format!("no local socket: {e}")))?;
    socket
        .connect(target)
        .map_err(|e| err(format!("no route to the scheduler: {e}")))?;
    Ok(socket
        .local_addr()
        .map_err(|e| err(format!("no local address: {e}")))?
        .ip())
}

/// Why a worker stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// The scheduler told it to close, or went away for longer than `reconnect_for`.
    Closed,
    /// Memory passed the terminate threshold: the process should exit so that it is restarted.
    Restart(String),
}

/// The values a worker holds.
struct Store {
    memory: FxHashMap<Key, Value>,
    spilled: FxHashMap<Key, (PathBuf, SpillFns)>,
    dir: Option<tempfile::TempDir>,
    parent: Option<PathBuf>,
    next_file: u64,
}

impl Store {
    fn new(parent: Option<PathBuf>) -> Self {
        Store {
            memory: FxHashMap::default(),
            spilled: FxHashMap::default(),
            dir: None,
            parent,
            next_file: 0,
        }
    }

    /// The value, read back from disk if it was spilled (then it is in memory again; the
    /// bool says so).
    fn get(&mut self, key: &Key) -> Result<Option<(Value, bool)>> {
        if let Some(v) = self.memory.get(key) {
            return Ok(Some((v.clone(), false)));
        }
        let Some((path, fns)) = self.spilled.remove(key) else {
            return Ok(None);
        };
        let file = std::fs::File::open(&path).map_err(|e| RaskError::io(path.display(), e))?;
        let mut r = std::io::BufReader::new(file);
        let v = fns
            .decode(&mut r)
            .map_err(|e| RaskError::io(path.display(), e))?;
        let _ = std::fs::remove_file(&path);
        self.memory.insert(key.clone(), v.clone());
        Ok(Some((v, true)))
    }

    /// The value without changing where it lives: a spilled one is read from disk and left
    /// there (the data port serving a peer must not change the worker's memory accounting).
    fn peek(&self, key: &Key) -> Result<Option<Value>> {
        if let Some(v) = self.memory.get(key) {
            return Ok(Some(v.clone()));
        }
        let Some((path, fns)) = self.spilled.get(key) else {
            return Ok(None);
        };
        let file = std::fs::File::open(path).map_err(|e| RaskError::io(path.display(), e))?;
        let v = fns
            .decode(&mut std::io::BufReader::new(file))
            .map_err(|e| RaskError::io(path.display(), e))?;
        Ok(Some(v))
    }

    fn spill(&mut self, key: &Key) -> Result<bool> {
        let Some(v) = self.memory.get(key) else {
            return Ok(false);
        };
        if !v.can_spill() {
            return Ok(false);
        }
        if self.dir.is_none() {
            let mut b = tempfile::Builder::new();
            b.prefix("rask-worker-spill-");
            let dir = match &self.parent {
                Some(p) => b.tempdir_in(p),
                None => b.tempdir(),
            }
            .map_err(|e| RaskError::io("the worker's spill directory", e))?;
            self.dir = Some(dir);
        }
        let dir = self.dir.as_ref().expect("made above").path();
        self.next_file += 1;
        let path = dir.join(format!("{}.bin", self.next_file));
        let file = std::fs::File::create(&path).map_err(|e| RaskError::io(path.display(), e))?;
        let mut w = std::io::BufWriter::new(file);
        let fns = v
            .spill(&mut w)
            .map_err(|e| RaskError::io(path.display(), e))?;
        let Some(fns) = fns else {
            let _ = std::fs::remove_file(&path);
            return Ok(false);
        };
        use std::io::Write;
        w.flush().map_err(|e| RaskError::io(path.display(), e))?;
        self.memory.remove(key);
        self.spilled.insert(key.clone(), (path, fns));
        Ok(true)
    }

    fn remove(&mut self, key: &Key) {
        self.memory.remove(key);
        if let Some((path, _)) = self.spilled.remove(key) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn clear(&mut self) {
        self.memory.clear();
        for (_, (path, _)) in self.spilled.drain() {
            let _ = std::fs::remove_file(path);
        }
    }
}

type SharedStore = Arc<Mutex<Store>>;

fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// One task for an executor thread.
struct Job {
    key: Key,
    op: Arc<WireOp>,
    inputs: Vec<Value>,
}

enum Event {
    Scheduler(Vec<ToWorker>),
    SchedulerGone(String),
    /// A task ran: its result, how long it ran (microseconds) and its op (None when it did
    /// not run: an input could not be read).
    Executed(
        Key,
        std::result::Result<Value, RemoteError>,
        u32,
        Option<Arc<WireOp>>,
    ),
    Fetched {
        from: String,
        keys: Vec<Key>,
        outcome: FetchOutcome,
    },
}

enum FetchOutcome {
    Data {
        values: Vec<(Key, Value)>,
        missing: Vec<Key>,
    },
    Busy,
    Failed(String),
}

/// The most task-stream records one heartbeat carries; more are dropped and counted. The
/// page draws the newest thousand or so of the last ten seconds: a few thousand a heartbeat
/// is more than it can show, and every record costs the scheduler a decode.
const STREAM_BATCH: usize = 2000;

/// Task-stream records waiting for the next heartbeat. Recording is off until the scheduler
/// says a dashboard is watching ([`ToWorker::Observe`]).
#[derive(Default)]
struct StreamRecorder {
    on: std::sync::atomic::AtomicBool,
    buf: Mutex<(Vec<crate::protocol::StreamEvent>, u64)>,
}

impl StreamRecorder {
    fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn record(&self, key: &Key, kind: rask_dashboard::StreamKind, lane: u32, start_us: u64) {
        let stop_us = now_us();
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if b.0.len() >= STREAM_BATCH {
            b.1 += 1;
            return;
        }
        b.0.push(crate::protocol::StreamEvent {
            key: key.clone(),
            kind,
            lane,
            start_us,
            stop_us,
        });
    }

    fn take(&self) -> (Vec<crate::protocol::StreamEvent>, u64) {
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut b.0), std::mem::take(&mut b.1))
    }
}

/// Microseconds since the Unix epoch (the task stream's clock: workers' records line up on
/// one page only on a common clock).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The executor threads' queue: jobs and a stop flag, with the condition variable they wait on.
type JobQueue = Arc<(Mutex<(VecDeque<Job>, bool)>, Condvar)>;

/// A fixed pool of executor threads fed from one queue.
struct Pool {
    queue: JobQueue,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(n: u32, events: mpsc::UnboundedSender<Event>, stream: Arc<StreamRecorder>) -> Self {
        let queue: JobQueue = Arc::new((Mutex::new((VecDeque::new(), false)), Condvar::new()));
        let threads = (0..n.max(1))
            .map(|i| {
                let q = queue.clone();
                let events = events.clone();
                let stream = stream.clone();
                std::thread::Builder::new()
                    .name(format!("rask-exec-{i}"))
                    .spawn(move || executor_thread(q, events, i, &stream))
                    .expect("spawning an executor thread")
            })
            .collect();
        Pool { queue, threads }
    }

    fn submit(&self, job: Job) {
        let (m, cv) = &*self.queue;
        m.lock().unwrap_or_else(|p| p.into_inner()).0.push_back(job);
        cv.notify_one();
    }

    fn shutdown(self) {
        let (m, cv) = &*self.queue;
        m.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        cv.notify_all();
        // Threads running a long task are left to finish on their own: their results have
        // nowhere to go.
        drop(self.threads);
    }
}

fn executor_thread(
    queue: JobQueue,
    events: mpsc::UnboundedSender<Event>,
    lane: u32,
    stream: &StreamRecorder,
) {
    let (m, cv) = &*queue;
    loop {
        let job = {
            let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if g.1 {
                    return;
                }
                if let Some(j) = g.0.pop_front() {
                    break j;
                }
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        };
        let start = stream.enabled().then(now_us);
        let (result, us) = run_timed(&job);
        if let Some(start) = start {
            stream.record(&job.key, rask_dashboard::StreamKind::Compute, lane, start);
        }
        if events
            .send(Event::Executed(job.key, result, us, Some(job.op)))
            .is_err()
        {
            return;
        }
    }
}

/// [`run_job`] and how long it took, in microseconds.
fn run_timed(job: &Job) -> (std::result::Result<Value, RemoteError>, u32) {
    let started = std::time::Instant::now();
    let result = run_job(job);
    let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
    (result, us)
}

/// Ops averaging less than this (microseconds) over at least [`INLINE_AFTER_RUNS`] runs
/// execute on the I/O thread itself: handing such a task to an executor thread and its
/// result back costs two thread wake-ups, several times the task. A heartbeat or a peer's
/// fetch waits at most for one such task.
const INLINE_BELOW_US: f64 = 50.0;
const INLINE_AFTER_RUNS: u32 = 3;

/// Decodes the op and runs it, turning errors and panics into a `RemoteError` naming the task.
fn run_job(job: &Job) -> std::result::Result<Value, RemoteError> {
    let op = OpRegistry::global()
        .decode(&job.op.name, &job.op.params)
        .map_err(|e| RemoteError {
            key: job.key.to_string(),
            op: job.op.name.clone(),
            kind: ErrorKind::Failed,
            message: format!("cannot rebuild the op on this worker: {e}"),
        })?;
    match std::panic::catch_unwind(AssertUnwindSafe(|| op.execute(&job.inputs))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RemoteError {
            key: job.key.to_string(),
            op: op.name().to_string(),
            kind: ErrorKind::Failed,
            message: e.to_string(),
        }),
        Err(panic) => Err(RemoteError {
            key: job.key.to_string(),
            op: op.name().to_string(),
            kind: ErrorKind::Panicked,
            message: panic_message(&panic),
        }),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".into()
    }
}

/// Values at least this large are sent from their own memory when their type allows it
/// (`Data::spill_view`), not copied into an encode buffer first.
const SEND_IN_PLACE_FROM: usize = 64 << 10;

/// A value's body as `Bytes` that borrow the value's memory (kept alive by the `Value`).
struct ValueBody(Value);

impl AsRef<[u8]> for ValueBody {
    fn as_ref(&self) -> &[u8] {
        self.0.spill_view().map(|(_, body)| body).unwrap_or(&[])
    }
}

/// Encodes a value for the wire. A large `Vec` or standard-layout array of numbers is sent
/// in place: its small head is encoded, its body is the value's own memory.
pub(crate) fn to_wire(v: &Value) -> Result<WireValue> {
    if v.nbytes() >= SEND_IN_PLACE_FROM
        && rask_graph::ValueRegistry::global().contains(v.type_tag())
        && let Some((head, _)) = v.spill_view()
    {
        let body = bytes::Bytes::from_owner(ValueBody(v.clone()));
        return Ok(WireValue::split(v.type_tag(), head.into(), body));
    }
    let (tag, bytes) = v.encode()?;
    Ok(WireValue::new(tag, bytes))
}

/// Decodes a value from the wire.
pub(crate) fn from_wire(v: &WireValue) -> Result<Value> {
    if v.head.is_empty() {
        return Value::decode(&v.type_tag, &v.data);
    }
    // Only a value encoded in this process has a separate head (tests, local loops).
    let mut joined = Vec::with_capacity(v.len());
    joined.extend_from_slice(&v.head);
    joined.extend_from_slice(&v.data);
    Value::decode(&v.type_tag, &joined)
}

/// Reads the values of a `GetData` answer straight from the connection into their final
/// memory (no frame buffer in between), decoding each by its type tag.
fn read_data_answer(r: &mut impl std::io::Read, max_frame: u64, peer: &str) -> Result<PeerAnswer> {
    let comm_err = |m: String| RaskError::Comm {
        peer: peer.to_string(),
        message: m,
    };
    let head = crate::codec::read_head::<PeerResponse>(r, max_frame)
        .map_err(|e| comm_err(format!("reading a GetData answer: {e}")))?
        .ok_or_else(|| comm_err("connection closed before the GetData answer".into()))?;
    let mut msgs = head.msgs.into_iter();
    let (Some(resp), None) = (msgs.next(), msgs.next()) else {
        return Err(comm_err("a GetData answer must be one message".into()));
    };
    match resp {
        PeerResponse::Busy => Ok(PeerAnswer::Busy),
        PeerResponse::Data { values, missing } => {
            let mut out = Vec::with_capacity(values.len());
            crate::comm::traffic::read(head.value_lens.iter().sum::<u64>() as usize);
            for ((key, wire), len) in values.into_iter().zip(head.value_lens) {
                let mut limited = std::io::Read::take(&mut *r, len);
                let value = Value::decode_from(&wire.type_tag, &mut limited, len)
                    .map_err(|e| e.context(format!("value of {key} from {peer}")))?;
                if limited.limit() != 0 {
                    return Err(comm_err(format!(
                        "value of {key}: {} bytes left over after the value",
                        limited.limit()
                    )));
                }
                out.push((key, value));
            }
            Ok(PeerAnswer::Data {
                values: out,
                missing,
            })
        }
    }
}

/// A decoded answer to `GetData`.
pub(crate) enum PeerAnswer {
    Data {
        values: Vec<(Key, Value)>,
        missing: Vec<Key>,
    },
    Busy,
}

/// The process's resident set size in bytes (0 where unknown).
pub fn process_rss() -> u64 {
    rask_dashboard::rss_bytes()
}

/// Connections to peers' data ports, kept for reuse. After the handshake a connection is a
/// blocking socket used from tokio's blocking pool: an answer is read straight into the
/// values' final memory, which a byte-stream decoder needs a blocking reader for.
#[derive(Clone, Default)]
struct PeerPool {
    idle: Arc<Mutex<FxHashMap<String, Vec<comm::BlockingConn>>>>,
    max_frame: u64,
    token: Option<String>,
    tls: Option<Arc<TlsContext>>,
}

impl PeerPool {
    async fn connect(&self, addr: &str) -> Result<comm::BlockingConn> {
        let hello = Hello::Peer {
            version: PROTOCOL_VERSION,
            fingerprint: comm::local_fingerprint(),
            token: self.token.clone(),
        };
        let (r, w, _) = comm::connect_with(
            addr,
            hello,
            self.max_frame,
            Some(comm::PEER_LIVENESS),
            self.tls.as_deref(),
        )
        .await?;
        comm::reunite(r, w).map_err(|e| RaskError::Comm {
            peer: addr.to_string(),
            message: e,
        })
    }

    async fn get_data(&self, addr: &str, keys: Vec<Key>) -> Result<PeerAnswer> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.get_mut(addr).and_then(Vec::pop)
        };
        let mut stream = match conn {
            Some(c) => c,
            None => self.connect(addr).await?,
        };
        let max_frame = self.max_frame;
        let peer = addr.to_string();
        let (stream, answer) = tokio::task::spawn_blocking(move || {
            let answer =
                (|| {
                    use std::io::Write;
                    let frame = crate::codec::encode(&mut [PeerRequest::GetData { keys }])
                        .map_err(|e| RaskError::Comm {
                            peer: peer.clone(),
                            message: e.to_string(),
                        })?;
                    stream
                        .write_all(&frame.to_bytes())
                        .and_then(|()| stream.flush())
                        .map_err(|e| RaskError::Comm {
                            peer: peer.clone(),
                            message: format!("sending GetData: {e}"),
                        })?;
                    let mut r = std::io::BufReader::with_capacity(64 << 10, &mut stream);
                    let answer = read_data_answer(&mut r, max_frame, &peer)?;
                    if !r.buffer().is_empty() {
                        return Err(RaskError::Comm {
                            peer: peer.clone(),
                            message: "bytes after the GetData answer".into(),
                        });
                    }
                    Ok(answer)
                })();
            (stream, answer)
        })
        .await
        .map_err(|e| RaskError::Comm {
            peer: addr.to_string(),
            message: format!("the fetch thread failed: {e}"),
        })?;
        if answer.is_ok() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(addr.to_string())
                .or_default()
                .push(stream);
        }
        answer
    }
}

/// Fetches `keys` from a peer's data port and decodes them: what a client's `gather` does
/// for results that were not sent inline.
pub async fn fetch_values(
    addr: &str,
    keys: Vec<Key>,
    token: Option<String>,
    max_frame: u64,
    tls: Option<Arc<TlsContext>>,
) -> Result<(Vec<(Key, Value)>, Vec<Key>)> {
    let pool = PeerPool {
        idle: Default::default(),
        max_frame,
        token,
        tls,
    };
    loop {
        match pool.get_data(addr, keys.clone()).await? {
            PeerAnswer::Data { values, missing } => return Ok((values, missing)),
            PeerAnswer::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Runs a worker until the scheduler closes it (or is gone for `reconnect_for`), on a tokio
/// runtime of its own. Blocks the calling thread.
pub fn run_worker(opts: WorkerOptions) -> Result<WorkerExit> {
    crate::tls::context_for(&opts.tls, opts.insecure, "the worker", &opts.scheduler)?;
    if opts.insecure {
        tracing::warn!(
            "INSECURE: worker {} speaks plain TCP to {} and its peers: no encryption, no \
             certificates",
            opts.name,
            opts.scheduler
        );
    }
    // One I/O thread: the state loop, the scheduler connection and the data port never hand
    // a message to another I/O thread (tasks run on the executor pool; large encodes and
    // decodes on tokio's blocking pool).
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name("rask-worker-io")
        .enable_all()
        .build()
        .map_err(|e| RaskError::io("the worker's runtime", e))?;
    let out = rt.block_on(worker_main(opts));
    rt.shutdown_timeout(Duration::from_millis(100));
    out
}

async fn worker_main(opts: WorkerOptions) -> Result<WorkerExit> {
    let listen = if opts.listen.is_empty() {
        format!("{}:0", route_to(&opts.scheduler)?)
    } else {
        opts.listen.clone()
    };
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| RaskError::Comm {
            peer: listen.clone(),
            message: format!("the data port cannot listen: {e}"),
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| RaskError::io(&listen, e))?;
    let address = match &opts.contact_host {
        Some(h) => format!("{h}:{}", local.port()),
        None => local.to_string(),
    };
    let store: SharedStore = Arc::new(Mutex::new(Store::new(opts.spill_dir.clone())));
    let outgoing = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(serve_data(
        listener,
        store.clone(),
        outgoing.clone(),
        opts.clone(),
    ));
    let peers = PeerPool {
        idle: Default::default(),
        max_frame: opts.max_frame,
        token: opts.token.clone(),
        tls: opts.tls.clone(),
    };
    let result = loop {
        let session = connect_scheduler(&opts, &address).await;
        let (r, w) = match session {
            Ok(rw) => rw,
            Err(e) => break Err(e),
        };
        match run_session(&opts, &address, r, w, &store, &peers).await {
            Ok(Some(exit)) => break Ok(exit),
            Ok(None) => {
                // Lost the scheduler: it has forgotten us and everything we held. Start over
                // empty and join again.
                lock(&store).clear();
                tracing::warn!("{}: lost the scheduler; reconnecting", opts.name);
            }
            Err(e) => break Err(e),
        }
    };
    server.abort();
    lock(&store).clear();
    result
}

async fn connect_scheduler(
    opts: &WorkerOptions,
    address: &str,
) -> Result<(FrameReader, FrameWriter)> {
    let deadline = Instant::now() + opts.reconnect_for;
    let mut delay = Duration::from_millis(50);
    loop {
        let hello = Hello::Worker {
            version: PROTOCOL_VERSION,
            fingerprint: comm::local_fingerprint(),
            name: opts.name.clone(),
            token: opts.token.clone(),
            listen: address.to_string(),
            nthreads: opts.nthreads,
            memory_limit: opts.memory_limit,
            pid: std::process::id(),
        };
        // A cut link surfaces as an error within ten heartbeats (at least 2 s).
        let user_timeout = (opts.heartbeat_interval * 10).max(Duration::from_secs(2));
        match comm::connect_with(
            &opts.scheduler,
            hello,
            opts.max_frame,
            Some(user_timeout),
            opts.tls.as_deref(),
        )
        .await
        {
            Ok((r, w, id)) => {
                tracing::info!("{} joined {} as worker {id}", opts.name, opts.scheduler);
                return Ok((r, w));
            }
            // A refusal will not change by retrying.
            Err(e @ RaskError::Refused { .. }) => return Err(e),
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(e.context(format!(
                        "worker {} could not reach the scheduler for {:?}",
                        opts.name, opts.reconnect_for
                    )));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One connection to the scheduler. `Ok(None)`: the connection was lost (reconnect).
async fn run_session(
    opts: &WorkerOptions,
    address: &str,
    mut r: FrameReader,
    w: FrameWriter,
    store: &SharedStore,
    peers: &PeerPool,
) -> Result<Option<WorkerExit>> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let (sched_tx, sched_rx) = mpsc::unbounded_channel::<FromWorker>();
    let writer = tokio::spawn(crate::scheduler::writer_loop(w, sched_rx));
    let reader = {
        let ev_tx = ev_tx.clone();
        tokio::spawn(async move {
            loop {
                match r.recv::<ToWorker>().await {
                    Ok(Some(msgs)) => {
                        if ev_tx.send(Event::Scheduler(msgs)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = ev_tx.send(Event::SchedulerGone("connection closed".into()));
                        return;
                    }
                    Err(e) => {
                        let _ = ev_tx.send(Event::SchedulerGone(e.to_string()));
                        return;
                    }
                }
            }
        })
    };
    let stream = Arc::new(StreamRecorder::default());
    let pool = Pool::new(opts.nthreads, ev_tx.clone(), stream.clone());
    let mut ws = WorkerState::new(
        WorkerConfig::new(opts.nthreads, opts.memory_limit),
        address.to_string(),
    );
    let mut heartbeat = tokio::time::interval(opts.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut ctx = Ctx {
        store: store.clone(),
        pool,
        sched_tx,
        ev_tx: ev_tx.clone(),
        peers: peers.clone(),
        inline_limit: WorkerConfig::new(opts.nthreads, opts.memory_limit).inline_limit,
        op_times: FxHashMap::default(),
        stream,
        nthreads: opts.nthreads,
        observer: None,
    };
    let outcome = loop {
        let retry_sleep = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break Ok(None) };
                let mut stop = ctx.apply(ev, &mut ws);
                let mut n = 0;
                while stop.is_none() && n < 4096 {
                    match ev_rx.try_recv() {
                        Ok(ev) => stop = ctx.apply(ev, &mut ws),
                        Err(_) => break,
                    }
                    n += 1;
                }
                if let Some(s) = stop {
                    break Ok(s);
                }
                if let Some(exit) = ctx.run_instructions(&mut ws) {
                    break Ok(Some(exit));
                }
                if ctx.busy_pending(&ws) && retry_at.is_none() {
                    retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(20));
                }
            }
            _ = retry_sleep => {
                retry_at = None;
                ws.retry_busy();
                if let Some(exit) = ctx.run_instructions(&mut ws) {
                    break Ok(Some(exit));
                }
            }
            _ = heartbeat.tick() => {
                ws.memory_report(process_rss());
                let _ = ctx.sched_tx.send(FromWorker::Heartbeat { metrics: ws.metrics() });
                if let Some(obs) = ctx.observation() {
                    let _ = ctx.sched_tx.send(FromWorker::Observed(Box::new(obs)));
                }
                if let Some(exit) = ctx.run_instructions(&mut ws) {
                    break Ok(Some(exit));
                }
            }
        }
    };
    reader.abort();
    // Let the writer flush what is queued (a last TaskErred, say) before closing.
    drop(ctx.sched_tx);
    let _ = tokio::time::timeout(Duration::from_millis(200), writer).await;
    ctx.pool.shutdown();
    outcome
}

struct Ctx {
    store: SharedStore,
    pool: Pool,
    sched_tx: mpsc::UnboundedSender<FromWorker>,
    ev_tx: mpsc::UnboundedSender<Event>,
    peers: PeerPool,
    inline_limit: u64,
    /// Per op name: average run time (microseconds) and how many runs it covers.
    op_times: FxHashMap<String, (f64, u32)>,
    stream: Arc<StreamRecorder>,
    nthreads: u32,
    /// Set while a dashboard watches: what the previous observation saw.
    observer: Option<Observer>,
}

/// The counters behind a worker's reports to the dashboard.
struct Observer {
    cpu: rask_dashboard::ProcessSampler,
    at: std::time::Instant,
    traffic: (u64, u64),
    log_cursor: u64,
}

impl Ctx {
    /// Starts or stops reporting to the dashboard.
    fn observe(&mut self, on: bool) {
        self.stream.on.store(on, Ordering::Relaxed);
        self.observer = on.then(|| {
            let mut cpu = rask_dashboard::ProcessSampler::default();
            cpu.cpu_percent();
            Observer {
                cpu,
                at: std::time::Instant::now(),
                traffic: crate::comm::traffic::totals(),
                // The lines logged before the dashboard asked are sent too (the ring keeps
                // the recent ones only).
                log_cursor: 0,
            }
        });
        if !on {
            self.stream.take();
        }
    }

    /// What happened since the previous report, while a dashboard watches.
    fn observation(&mut self) -> Option<crate::protocol::Observation> {
        let o = self.observer.as_mut()?;
        let now = std::time::Instant::now();
        let secs = now.duration_since(o.at).as_secs_f64().max(1e-6);
        let (r, w) = crate::comm::traffic::totals();
        let obs = {
            let (stream, stream_dropped) = self.stream.take();
            crate::protocol::Observation {
                cpu: o.cpu.cpu_percent() as f32,
                net_read_bps: ((r - o.traffic.0) as f64 / secs) as f32,
                net_write_bps: ((w - o.traffic.1) as f64 / secs) as f32,
                stream,
                stream_dropped,
                logs: crate::logs::take_new(&mut o.log_cursor),
            }
        };
        o.at = now;
        o.traffic = (r, w);
        Some(obs)
    }

    fn learn_time(&mut self, op: &WireOp, us: u32) {
        match self.op_times.get_mut(op.name.as_str()) {
            Some((avg, n)) => {
                *avg = 0.5 * *avg + 0.5 * us as f64;
                *n = n.saturating_add(1);
            }
            None => {
                self.op_times.insert(op.name.clone(), (us as f64, 1));
            }
        }
    }

    fn runs_inline(&self, op: &WireOp) -> bool {
        self.op_times
            .get(op.name.as_str())
            .is_some_and(|&(avg, n)| n >= INLINE_AFTER_RUNS && avg < INLINE_BELOW_US)
    }

    /// Applies one event. `Some(None)`: the scheduler is gone; `Some(Some(exit))`: stop.
    fn apply(&mut self, ev: Event, ws: &mut WorkerState) -> Option<Option<WorkerExit>> {
        match ev {
            Event::Scheduler(msgs) => {
                for m in msgs {
                    match m {
                        ToWorker::Close => return Some(Some(WorkerExit::Closed)),
                        ToWorker::Observe { task_stream } => self.observe(task_stream),
                        ToWorker::Secrets { secrets } => {
                            for s in secrets {
                                rask_graph::secrets::remember(s.id, s.value);
                            }
                        }
                        ToWorker::PutData { values } => {
                            let mut got = Vec::with_capacity(values.len());
                            for (k, v) in values {
                                match from_wire(&v) {
                                    Ok(value) => {
                                        got.push((k.clone(), value.nbytes() as u64));
                                        lock(&self.store).memory.insert(k, value);
                                    }
                                    Err(e) => tracing::error!("scattered value {k}: {e}"),
                                }
                            }
                            ws.put_data(got);
                        }
                        ToWorker::SendInline { keys } => {
                            let mut values = Vec::new();
                            for k in keys {
                                let got = lock(&self.store).get(&k);
                                match got {
                                    Ok(Some((v, unspilled))) => {
                                        if unspilled {
                                            ws.unspilled(&k);
                                        }
                                        match to_wire(&v) {
                                            Ok(w) => values.push((k, w)),
                                            Err(e) => tracing::error!("value of {k}: {e}"),
                                        }
                                    }
                                    Ok(None) => {}
                                    Err(e) => tracing::error!("value of {k}: {e}"),
                                }
                            }
                            let _ = self.sched_tx.send(FromWorker::InlineValues { values });
                        }
                        other => ws.handle_scheduler(other),
                    }
                }
                None
            }
            Event::SchedulerGone(why) => {
                tracing::warn!("scheduler connection ended: {why}");
                Some(None)
            }
            Event::Executed(key, result, us, op) => {
                if let Some(op) = &op {
                    self.learn_time(op, us);
                }
                match result {
                    Ok(value) => {
                        let nbytes = value.nbytes() as u64;
                        let tag = value.type_tag().to_string();
                        lock(&self.store).memory.insert(key.clone(), value);
                        ws.execute_finished(&key, Ok((nbytes, tag)), us);
                    }
                    Err(e) => ws.execute_finished(&key, Err(e), us),
                }
                None
            }
            Event::Fetched {
                from,
                keys,
                outcome,
            } => {
                match outcome {
                    FetchOutcome::Data { values, missing } => {
                        let mut got = Vec::with_capacity(values.len());
                        {
                            let mut store = lock(&self.store);
                            for (k, v) in values {
                                got.push((k.clone(), v.nbytes() as u64));
                                store.memory.insert(k, v);
                            }
                        }
                        ws.fetch_done(&from, got, missing);
                    }
                    FetchOutcome::Busy => ws.fetch_busy(&from, keys),
                    FetchOutcome::Failed(why) => {
                        tracing::warn!("fetch from {from} failed: {why}");
                        ws.fetch_failed(&from, keys)
                    }
                }
                None
            }
        }
    }

    fn busy_pending(&self, ws: &WorkerState) -> bool {
        ws.has_busy_retries()
    }

    /// Carries out what the state machine asked for; `Some(exit)` to stop the worker.
    fn run_instructions(&mut self, ws: &mut WorkerState) -> Option<WorkerExit> {
        // Instructions can produce more events for the state machine synchronously (a spill
        // done, an input missing); loop until it has nothing more to say.
        loop {
            let instructions = ws.drain();
            if instructions.is_empty() {
                return None;
            }
            for ins in instructions {
                match ins {
                    WorkerInstruction::Execute { key, op, args } => {
                        let mut inputs = Vec::with_capacity(args.len());
                        let mut missing = None;
                        for a in &args {
                            let got = lock(&self.store).get(a);
                            match got {
                                Ok(Some((v, unspilled))) => {
                                    if unspilled {
                                        ws.unspilled(a);
                                    }
                                    inputs.push(v);
                                }
                                Ok(None) => {
                                    missing = Some(format!("input {a} is not on this worker"));
                                    break;
                                }
                                Err(e) => {
                                    missing =
                                        Some(format!("input {a} could not be read back: {e}"));
                                    break;
                                }
                            }
                        }
                        match missing {
                            None if self.runs_inline(&op) => {
                                // Reported through the event queue like a pool result, so
                                // the state machine sees the same order of events.
                                let job = Job { key, op, inputs };
                                let start = self.stream.enabled().then(now_us);
                                let (result, us) = run_timed(&job);
                                if let Some(start) = start {
                                    self.stream.record(
                                        &job.key,
                                        rask_dashboard::StreamKind::Compute,
                                        self.nthreads,
                                        start,
                                    );
                                }
                                let _ = self.ev_tx.send(Event::Executed(
                                    job.key,
                                    result,
                                    us,
                                    Some(job.op),
                                ));
                            }
                            None => self.pool.submit(Job { key, op, inputs }),
                            Some(message) => {
                                let err = RemoteError {
                                    key: key.to_string(),
                                    op: op.name.clone(),
                                    kind: ErrorKind::Failed,
                                    message,
                                };
                                let _ = self.ev_tx.send(Event::Executed(key, Err(err), 0, None));
                            }
                        }
                    }
                    WorkerInstruction::Fetch { from, keys } => {
                        let peers = self.peers.clone();
                        let ev_tx = self.ev_tx.clone();
                        let stream = self.stream.clone();
                        let lane = self.nthreads;
                        tokio::spawn(async move {
                            let start = stream.enabled().then(now_us);
                            let outcome = match peers.get_data(&from, keys.clone()).await {
                                Ok(PeerAnswer::Data { values, missing }) => {
                                    if let Some(start) = start {
                                        for (k, _) in &values {
                                            stream.record(
                                                k,
                                                rask_dashboard::StreamKind::Transfer,
                                                lane,
                                                start,
                                            );
                                        }
                                    }
                                    FetchOutcome::Data { values, missing }
                                }
                                Ok(PeerAnswer::Busy) => FetchOutcome::Busy,
                                Err(e) => FetchOutcome::Failed(e.to_string()),
                            };
                            let _ = ev_tx.send(Event::Fetched {
                                from,
                                keys,
                                outcome,
                            });
                        });
                    }
                    WorkerInstruction::Send(mut m) => {
                        // The state machine does not know the type of a value it did not
                        // compute (a replica answered at once): the store does.
                        if let FromWorker::TaskFinished { key, type_tag, .. } = &mut m
                            && type_tag.is_empty()
                            && let Ok(Some(v)) = lock(&self.store).peek(key)
                        {
                            *type_tag = v.type_tag().to_string();
                        }
                        let _ = self.sched_tx.send(m);
                    }
                    WorkerInstruction::SendFinishedInline {
                        key,
                        nbytes,
                        type_tag,
                        attempt,
                        compute_us,
                    } => {
                        let value = if nbytes <= self.inline_limit {
                            let v = lock(&self.store).memory.get(&key).cloned();
                            v.and_then(|v| to_wire(&v).ok())
                        } else {
                            None
                        };
                        let _ = self.sched_tx.send(FromWorker::TaskFinished {
                            key,
                            nbytes,
                            type_tag,
                            value,
                            attempt,
                            compute_us,
                        });
                    }
                    WorkerInstruction::Release { key } => lock(&self.store).remove(&key),
                    WorkerInstruction::Spill { key } => {
                        let start = self.stream.enabled().then(now_us);
                        let spilled = lock(&self.store).spill(&key);
                        if let Some(start) = start {
                            let kind = rask_dashboard::StreamKind::Spill;
                            self.stream.record(&key, kind, self.nthreads, start);
                        }
                        let ok = match spilled {
                            Ok(ok) => ok,
                            Err(e) => {
                                tracing::error!("spilling {key}: {e}");
                                false
                            }
                        };
                        ws.spilled(&key, ok);
                    }
                    WorkerInstruction::Restart { reason } => {
                        tracing::error!("restarting: {reason}");
                        let _ = self.sched_tx.send(FromWorker::Closing {
                            reason: format!("restarted: {reason}"),
                        });
                        return Some(WorkerExit::Restart(reason));
                    }
                }
            }
        }
    }
}

/// The data port: answers `GetData` from the store.
async fn serve_data(
    listener: TcpListener,
    store: SharedStore,
    outgoing: Arc<AtomicUsize>,
    opts: WorkerOptions,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let store = store.clone();
        let outgoing = outgoing.clone();
        let opts = opts.clone();
        // An answer to a peer that vanished fails instead of holding a transfer slot.
        comm::set_liveness(&stream, comm::PEER_LIVENESS);
        tokio::spawn(async move {
            let conn = match comm::accept_stream(stream, opts.tls.as_deref()).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    tracing::debug!("a connection closed before saying anything (a probe?)");
                    return;
                }
                Err(e) => {
                    tracing::warn!("data port refused a connection: {e}");
                    return;
                }
            };
            let (mut r, mut w) = comm::split(conn, opts.max_frame);
            match comm::accept(&mut r, &mut w, opts.token.as_deref()).await {
                Ok(Hello::Peer { .. }) => {}
                Ok(_) => {
                    tracing::warn!("data port: {} is not a peer; closing", r.peer());
                    return;
                }
                Err(e) => {
                    tracing::warn!("data port refused {}: {e}", r.peer());
                    return;
                }
            }
            if w.send(&mut [Welcome::Accepted { id: 0 }]).await.is_err() {
                return;
            }
            loop {
                let reqs = match r.recv::<PeerRequest>().await {
                    Ok(Some(reqs)) => reqs,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!("data port: {e}");
                        return;
                    }
                };
                for req in reqs {
                    let PeerRequest::GetData { keys } = req;
                    let mut answer =
                        if outgoing.fetch_add(1, Ordering::SeqCst) >= opts.max_outgoing_transfers {
                            PeerResponse::Busy
                        } else {
                            let store = store.clone();
                            let res = tokio::task::spawn_blocking(move || {
                                let mut values = Vec::new();
                                let mut missing = Vec::new();
                                for k in keys {
                                    // Read under the lock, encode outside it.
                                    let got = lock(&store).peek(&k).ok().flatten();
                                    match got.map(|v| to_wire(&v)) {
                                        Some(Ok(w)) => values.push((k, w)),
                                        _ => missing.push(k),
                                    }
                                }
                                PeerResponse::Data { values, missing }
                            })
                            .await;
                            res.unwrap_or(PeerResponse::Busy)
                        };
                    outgoing.fetch_sub(1, Ordering::SeqCst);
                    if w.send(std::slice::from_mut(&mut answer)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_frame(values: Vec<(Key, WireValue)>) -> Vec<u8> {
        let mut msgs = [PeerResponse::Data {
            values,
            missing: vec![Key::named("gone")],
        }];
        crate::codec::encode(&mut msgs).unwrap().to_bytes().to_vec()
    }

    #[test]
    fn a_large_block_is_sent_in_place_and_read_back_by_the_streaming_decoder() {
        let block: Vec<f64> = (0..200_000).map(|i| i as f64 * 0.25).collect();
        let wire = to_wire(&Value::new(block.clone())).unwrap();
        assert!(
            !wire.head.is_empty(),
            "a large number vector is sent in place"
        );
        assert_eq!(wire.data.len(), block.len() * 8);
        // Small values and types without a view are encoded whole.
        assert!(
            to_wire(&Value::new(vec![1.0f64; 10]))
                .unwrap()
                .head
                .is_empty()
        );
        assert!(from_wire(&wire).unwrap().get::<Vec<f64>>(&"x").unwrap() == &block);

        let frame = answer_frame(vec![
            (Key::named("big"), wire),
            (Key::named("small"), to_wire(&Value::new(7i64)).unwrap()),
        ]);
        let PeerAnswer::Data { values, missing } =
            read_data_answer(&mut &frame[..], u64::MAX, "peer").unwrap()
        else {
            panic!("data")
        };
        assert_eq!(values[0].1.get::<Vec<f64>>(&"big").unwrap(), &block);
        assert_eq!(values[1].1.get::<i64>(&"small").unwrap(), &7);
        assert_eq!(missing, vec![Key::named("gone")]);

        // Cut anywhere inside the values: an error naming the key, never a panic.
        for cut in [frame.len() - 1, frame.len() - 9, frame.len() - 1000] {
            let err = match read_data_answer(&mut &frame[..cut], u64::MAX, "peer") {
                Err(e) => e.to_string(),
                Ok(_) => panic!("cut at {cut} accepted"),
            };
            assert!(err.contains("big") || err.contains("small"), "{err}");
        }
    }

    #[test]
    fn a_value_whose_bytes_disagree_with_its_length_is_refused() {
        // The table says 16 bytes, the i64 decoder reads 8: the rest is named, not ignored.
        let frame = answer_frame(vec![(
            Key::named("x"),
            WireValue::new(std::any::type_name::<i64>(), vec![0u8; 16]),
        )]);
        let err = match read_data_answer(&mut &frame[..], u64::MAX, "peer") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        assert!(err.contains("left over"), "{err}");
        // An unknown type tag names the key and the tag.
        let frame = answer_frame(vec![(
            Key::named("y"),
            WireValue::new("no::Such", vec![0u8; 8]),
        )]);
        let err = match read_data_answer(&mut &frame[..], u64::MAX, "peer") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        assert!(err.contains("no::Such") && err.contains('y'), "{err}");
    }
}
