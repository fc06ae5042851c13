//! The dashboard of a computation on the local executors: a [`Callback`] that keeps the same
//! counters a cluster scheduler keeps, and a thread that publishes them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use rask_error::{RaskError, Result};
use rask_graph::{Graph, TaskId};
use rask_scheduler::{Callback, TaskState};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::process::{ProcessSampler, rss_bytes};
use crate::snapshot::{
    GraphNode, GraphView, Info, PrefixRow, Snapshot, StateCounts, StreamKind, TaskPhase,
    TaskRecord, WorkerRow, now_ms,
};
use crate::{Dashboard, GRAPH_TASK_LIMIT, Publisher, SNAPSHOT_INTERVAL, serve};

#[derive(Default)]
struct PrefixStats {
    name: String,
    counts: [u64; 6],
    forgotten: u64,
    nbytes: u64,
    keys: u64,
}

#[derive(Default)]
struct State {
    prefixes: Vec<PrefixStats>,
    prefix_index: FxHashMap<String, u32>,
    /// Of the current computation, by task id.
    task_prefix: Vec<u32>,
    task_phase: Vec<TaskPhase>,
    task_nbytes: Vec<u64>,
    task_start: FxHashMap<TaskId, (f64, u32)>,
    lanes: FxHashMap<ThreadId, u32>,
    pending: Vec<TaskRecord>,
    graph: Arc<GraphView>,
    /// Bounded view: the labels and edges of a small graph, or prefix edges of a large one.
    small_graph: bool,
    n_tasks: u64,
    running: bool,
    changed: bool,
}

impl State {
    fn prefix_of(&mut self, prefix: &str) -> u32 {
        if let Some(&i) = self.prefix_index.get(prefix) {
            return i;
        }
        let i = self.prefixes.len() as u32;
        self.prefixes.push(PrefixStats {
            name: prefix.to_string(),
            ..Default::default()
        });
        self.prefix_index.insert(prefix.to_string(), i);
        i
    }

    fn move_task(&mut self, id: TaskId, to: TaskPhase) {
        let Some(&from) = self.task_phase.get(id as usize) else {
            return;
        };
        let p = &mut self.prefixes[self.task_prefix[id as usize] as usize];
        p.counts[from.index()] -= 1;
        p.counts[to.index()] += 1;
        self.task_phase[id as usize] = to;
        self.changed = true;
    }

    fn lane(&mut self) -> u32 {
        let n = self.lanes.len() as u32;
        *self.lanes.entry(std::thread::current().id()).or_insert(n)
    }
}

/// A dashboard for computations on the local executors: add it as a callback
/// (`rask::Config::with_dashboard` does) and it serves the pages while they run.
pub struct LocalDashboard {
    state: Arc<Mutex<State>>,
    publisher: Arc<Publisher>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    server: Option<Dashboard>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalDashboard {
    /// Starts serving on `address` (`host:port`, port 0 picks one) with nothing to show yet.
    pub fn start(address: &str) -> Result<Arc<Self>> {
        let publisher = Arc::new(Publisher::new());
        let server = serve(address, None, publisher.clone())?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let started_ms = now_ms();
        let ticker = {
            let (state, publisher, stop) = (state.clone(), publisher.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rask-dashboard-publish".into())
                .spawn(move || publish_loop(&state, &publisher, &stop, started_ms))
                .map_err(|e| RaskError::io("the dashboard's publisher thread", e))?
        };
        Ok(Arc::new(LocalDashboard {
            state,
            publisher,
            stop,
            ticker: Some(ticker),
            server: Some(server),
        }))
    }

    /// `http://address` of the pages.
    pub fn url(&self) -> String {
        self.server.as_ref().map(|s| s.url()).unwrap_or_default()
    }

    /// The publisher the pages read (for tests and tools).
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }
}

impl Drop for LocalDashboard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.server.take();
    }
}

fn publish_loop(state: &Mutex<State>, publisher: &Publisher, stop: &AtomicBool, started: f64) {
    let mut sampler = ProcessSampler::default();
    let mut last_publish = std::time::Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(SNAPSHOT_INTERVAL);
        let cpu = sampler.cpu_percent();
        let (snapshot, records) = {
            let mut st = lock(state);
            // Publish when something moved, and every few seconds anyway (the clock moves).
            if !st.changed && last_publish.elapsed() < Duration::from_secs(2) {
                continue;
            }
            st.changed = false;
            (
                build_snapshot(&st, started, cpu),
                std::mem::take(&mut st.pending),
            )
        };
        last_publish = std::time::Instant::now();
        publisher.record(records, 0);
        publisher.publish(snapshot);
    }
}

fn build_snapshot(st: &State, started_ms: f64, cpu: f64) -> Snapshot {
    let prefixes: Vec<PrefixRow> = st
        .prefixes
        .iter()
        .map(|p| PrefixRow {
            prefix: p.name.clone(),
            counts: StateCounts::from_array(p.counts, p.forgotten),
            nbytes: p.nbytes,
            keys: p.keys,
        })
        .collect();
    let managed: u64 = st.prefixes.iter().map(|p| p.nbytes).sum();
    let in_memory: u64 = st.prefixes.iter().map(|p| p.keys).sum();
    let processing: u64 = st.prefixes.iter().map(|p| p.counts[2]).sum();
    let nthreads = (st.lanes.len() as u32).max(1);
    let worker = WorkerRow {
        id: 0,
        name: "local".into(),
        address: String::new(),
        nthreads,
        memory_limit: 0,
        managed,
        spilled: 0,
        process: rss_bytes(),
        executing: processing,
        ready: st.prefixes.iter().map(|p| p.counts[0]).sum(),
        processing,
        in_memory,
        paused: false,
        cpu,
        net_read_bps: 0.0,
        net_write_bps: 0.0,
        last_seen_ms: 0.0,
    };
    let mut graph = (*st.graph).clone();
    if graph.grouped {
        for node in &mut graph.nodes {
            let p = &st.prefixes[node.id as usize];
            let counts = StateCounts::from_array(p.counts, p.forgotten);
            node.state = counts.dominant();
            node.counts = Some(counts);
        }
    } else {
        for node in &mut graph.nodes {
            // After the computation its tasks are gone: drawn as released.
            node.state = st
                .task_phase
                .get(node.id as usize)
                .copied()
                .unwrap_or(TaskPhase::Released);
        }
    }
    Snapshot {
        seq: 0,
        now_ms: now_ms(),
        info: Info {
            source: "local",
            version: env!("CARGO_PKG_VERSION"),
            address: String::new(),
            started_ms,
            n_workers: 1,
            n_threads: nthreads as u64,
            n_clients: 0,
            n_tasks: if st.running { st.n_tasks } else { 0 },
        },
        prefixes,
        workers: vec![worker],
        logs: vec![Arc::new(Vec::new())],
        graph: Arc::new(graph),
    }
}

impl Callback for LocalDashboard {
    fn on_compute_start(&self, graph: &Graph) {
        let mut st = lock(&self.state);
        let n = graph.len();
        st.task_prefix.clear();
        st.task_phase.clear();
        st.task_nbytes.clear();
        st.task_start.clear();
        st.lanes.clear();
        for id in 0..n as TaskId {
            let p = st.prefix_of(graph.task(id).key.prefix());
            st.task_prefix.push(p);
            st.task_phase.push(TaskPhase::Waiting);
            st.task_nbytes.push(0);
            st.prefixes[p as usize].counts[TaskPhase::Waiting.index()] += 1;
        }
        // The graph view, once per computation: every task of a small graph, else one node
        // per prefix with the edges between prefixes.
        let small = n <= GRAPH_TASK_LIMIT;
        let mut view = GraphView {
            grouped: !small,
            n_tasks: n as u64,
            ..Default::default()
        };
        if small {
            for id in 0..n as TaskId {
                let task = graph.task(id);
                view.nodes.push(GraphNode {
                    id,
                    label: task.key.to_string(),
                    prefix: task.key.prefix().to_string(),
                    state: TaskPhase::Waiting,
                    counts: None,
                });
                for &d in task.deps.iter() {
                    view.edges.push([d, id]);
                }
            }
        } else {
            let mut edges = FxHashSet::default();
            let mut used = FxHashSet::default();
            for id in 0..n as TaskId {
                let p = st.task_prefix[id as usize];
                used.insert(p);
                for &d in graph.task(id).deps.iter() {
                    let dp = st.task_prefix[d as usize];
                    if dp != p {
                        edges.insert([dp, p]);
                    }
                }
            }
            let mut used: Vec<u32> = used.into_iter().collect();
            used.sort_unstable();
            for p in used {
                let name = st.prefixes[p as usize].name.clone();
                view.nodes.push(GraphNode {
                    id: p,
                    label: name.clone(),
                    prefix: name,
                    state: TaskPhase::Waiting,
                    counts: None,
                });
            }
            let mut edges: Vec<[u32; 2]> = edges.into_iter().collect();
            edges.sort_unstable();
            view.edges = edges;
        }
        st.graph = Arc::new(view);
        st.small_graph = small;
        st.n_tasks = n as u64;
        st.running = true;
        st.changed = true;
    }

    fn on_task_start(&self, _graph: &Graph, id: TaskId) {
        let mut st = lock(&self.state);
        let lane = st.lane();
        st.task_start.insert(id, (now_ms(), lane));
        st.move_task(id, TaskPhase::Processing);
    }

    fn on_task_finish(&self, graph: &Graph, id: TaskId, nbytes: u64, _elapsed: Duration) {
        let stop = now_ms();
        let mut st = lock(&self.state);
        let (start, lane) = st.task_start.remove(&id).unwrap_or((stop, 0));
        st.move_task(id, TaskPhase::Memory);
        if let Some(b) = st.task_nbytes.get_mut(id as usize) {
            *b = nbytes;
        }
        let p = st.task_prefix.get(id as usize).copied();
        if let Some(p) = p {
            let ps = &mut st.prefixes[p as usize];
            ps.nbytes += nbytes;
            ps.keys += 1;
        }
        st.pending.push(TaskRecord {
            id: 0,
            worker: Arc::from("local"),
            lane,
            key: graph.task(id).key.clone(),
            kind: StreamKind::Compute,
            start_ms: start,
            stop_ms: stop,
        });
        // Bounded between two snapshots as the stream itself is.
        if st.pending.len() > crate::STREAM_KEEP {
            let extra = st.pending.len() - crate::STREAM_KEEP;
            st.pending.drain(..extra);
        }
    }

    fn on_task_error(&self, _graph: &Graph, id: TaskId, _error: &RaskError) {
        let mut st = lock(&self.state);
        st.task_start.remove(&id);
        st.move_task(id, TaskPhase::Erred);
    }

    fn on_task_release(&self, _graph: &Graph, id: TaskId) {
        let mut st = lock(&self.state);
        if st.task_phase.get(id as usize) != Some(&TaskPhase::Memory) {
            return;
        }
        let nbytes = std::mem::take(&mut st.task_nbytes[id as usize]);
        let p = st.task_prefix[id as usize] as usize;
        st.prefixes[p].nbytes -= nbytes;
        st.prefixes[p].keys -= 1;
        st.move_task(id, TaskPhase::Released);
    }

    fn on_compute_finish(&self, _graph: &Graph, _states: &[TaskState], _error: Option<&RaskError>) {
        let mut st = lock(&self.state);
        // The computation's values went to the caller or were dropped: every task of it is
        // forgotten now.
        let n = st.task_phase.len();
        for id in 0..n {
            let phase = st.task_phase[id];
            let nbytes = st.task_nbytes[id];
            let prefix = st.task_prefix[id] as usize;
            let p = &mut st.prefixes[prefix];
            p.counts[phase.index()] -= 1;
            p.forgotten += 1;
            if phase == TaskPhase::Memory {
                p.nbytes -= nbytes;
                p.keys -= 1;
            }
        }
        st.task_phase.clear();
        st.task_prefix.clear();
        st.task_nbytes.clear();
        st.running = false;
        st.changed = true;
    }
}
