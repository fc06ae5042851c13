//! What a page shows, as plain data: a [`Snapshot`] of a scheduler's counters, and the
//! [`TaskRecord`]s of the task stream.

use std::sync::Arc;

use rask_graph::Key;
use serde::Serialize;

/// Milliseconds since the Unix epoch, as the pages' clocks count.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The task states the pages know, in Dask's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskPhase {
    Waiting,
    Queued,
    Processing,
    Memory,
    Erred,
    Released,
}

impl TaskPhase {
    pub const ALL: [TaskPhase; 6] = [
        TaskPhase::Waiting,
        TaskPhase::Queued,
        TaskPhase::Processing,
        TaskPhase::Memory,
        TaskPhase::Erred,
        TaskPhase::Released,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How many tasks of one prefix are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub waiting: u64,
    pub queued: u64,
    pub processing: u64,
    pub memory: u64,
    pub erred: u64,
    pub released: u64,
    /// Running count of the tasks forgotten since the scheduler started.
    pub forgotten: u64,
}

impl StateCounts {
    /// From counts indexed by [`TaskPhase::index`], and the forgotten count.
    pub fn from_array(counts: [u64; 6], forgotten: u64) -> Self {
        StateCounts {
            waiting: counts[0],
            queued: counts[1],
            processing: counts[2],
            memory: counts[3],
            erred: counts[4],
            released: counts[5],
            forgotten,
        }
    }

    pub fn total(&self) -> u64 {
        self.waiting
            + self.queued
            + self.processing
            + self.memory
            + self.erred
            + self.released
            + self.forgotten
    }

    /// The state most tasks are in (forgotten ones count as released).
    pub fn dominant(&self) -> TaskPhase {
        let mut best = (TaskPhase::Released, self.released + self.forgotten);
        for (phase, n) in [
            (TaskPhase::Memory, self.memory),
            (TaskPhase::Erred, self.erred),
            (TaskPhase::Queued, self.queued),
            (TaskPhase::Waiting, self.waiting),
            (TaskPhase::Processing, self.processing),
        ] {
            if n > best.1 {
                best = (phase, n);
            }
        }
        best.0
    }
}

/// One task prefix (the part of a key before its token: `inc`, `read-parquet`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PrefixRow {
    pub prefix: String,
    #[serde(flatten)]
    pub counts: StateCounts,
    /// Bytes its values in memory take, over all workers (one copy counted per key).
    pub nbytes: u64,
    /// Keys of this prefix in memory.
    #[serde(skip)]
    pub keys: u64,
}

/// One worker (on a local computation: the executor's threads, as one worker).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: u64,
    pub name: String,
    pub address: String,
    pub nthreads: u32,
    pub memory_limit: u64,
    pub managed: u64,
    pub spilled: u64,
    pub process: u64,
    pub executing: u64,
    pub ready: u64,
    pub processing: u64,
    pub in_memory: u64,
    pub paused: bool,
    /// Percent of one core, over the last heartbeat interval.
    pub cpu: f64,
    pub net_read_bps: f64,
    pub net_write_bps: f64,
    /// Since its last heartbeat.
    pub last_seen_ms: f64,
}

/// A node of [`GraphView`]: a task, or a whole prefix when grouped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphNode {
    pub id: u32,
    pub label: String,
    pub prefix: String,
    pub state: TaskPhase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<StateCounts>,
}

/// The task graph as the graph page draws it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GraphView {
    pub grouped: bool,
    pub n_tasks: u64,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<[u32; 2]>,
}

/// Figures about the source itself (`/api/info`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Info {
    /// `cluster` or `local`.
    pub source: &'static str,
    pub version: &'static str,
    /// The scheduler's address (empty for a local computation).
    pub address: String,
    pub started_ms: f64,
    pub n_workers: u64,
    pub n_threads: u64,
    pub n_clients: u64,
    pub n_tasks: u64,
}

/// Everything the pages show but the task stream, as of one moment. Built by the source (a
/// scheduler's loop, or a local computation's publisher thread) from its counters: its cost
/// grows with workers and prefixes, never with tasks (the graph is bounded separately).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Set by [`crate::Publisher::publish`].
    pub seq: u64,
    pub now_ms: f64,
    pub info: Info,
    pub prefixes: Vec<PrefixRow>,
    pub workers: Vec<WorkerRow>,
    /// Per worker, in the order of `workers`: its recent log lines, oldest first.
    pub logs: Vec<Arc<Vec<String>>>,
    pub graph: Arc<GraphView>,
}

/// What a task-stream record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A task ran.
    Compute,
    /// A value was fetched from a peer.
    Transfer,
    /// A value was written to disk.
    Spill,
}

/// One bar of the task stream.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Set when the stream keeps it: increasing, so pages ask for what is newer.
    pub id: u64,
    pub worker: Arc<str>,
    pub lane: u32,
    pub key: Key,
    pub kind: StreamKind,
    pub start_ms: f64,
    pub stop_ms: f64,
}

impl Serialize for TaskRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // Keys become text only here, when a page asks: the scheduler never formats them.
        let mut st = s.serialize_struct("TaskRecord", 8)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("worker", &*self.worker)?;
        st.serialize_field("lane", &self.lane)?;
        st.serialize_field("key", &self.key.to_string())?;
        st.serialize_field("prefix", self.key.prefix())?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("start_ms", &self.start_ms)?;
        st.serialize_field("stop_ms", &self.stop_ms)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_state_counts_forgotten_as_released() {
        let c = StateCounts {
            memory: 3,
            released: 1,
            forgotten: 4,
            ..Default::default()
        };
        assert_eq!(c.dominant(), TaskPhase::Released);
        assert_eq!(c.total(), 8);
        let c = StateCounts {
            processing: 2,
            waiting: 1,
            ..Default::default()
        };
        assert_eq!(c.dominant(), TaskPhase::Processing);
    }

    #[test]
    fn a_record_names_its_key_and_prefix() {
        let key = Key::new(rask_graph::KeyName::new("inc-0123abcd"), [7]);
        let r = TaskRecord {
            id: 3,
            worker: "w1".into(),
            lane: 0,
            key: key.clone(),
            kind: StreamKind::Transfer,
            start_ms: 1.0,
            stop_ms: 2.5,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["key"], key.to_string());
        assert_eq!(v["prefix"], key.prefix());
        assert_eq!(v["kind"], "transfer");
        assert_eq!(v["stop_ms"], 2.5);
    }
}
