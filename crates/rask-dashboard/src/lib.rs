//! rask's live dashboard: web pages and a JSON API showing a computation while it runs.
//!
//! Three parts, kept apart so that a page can never slow the scheduler down:
//!
//! - A source (the cluster scheduler's loop, or [`LocalDashboard`] for a computation on the
//!   local threaded executor) keeps counters as tasks change state, and a few times a second
//!   turns them into a [`Snapshot`]: progress per task prefix, workers, memory per prefix, a
//!   bounded view of the graph. A snapshot costs O(workers + prefixes), never O(tasks).
//! - A [`Publisher`] holds the latest snapshot and the task stream (a ring buffer of
//!   [`TaskRecord`]s). Publishing swaps one pointer; appending to the stream takes a short
//!   lock.
//! - [`serve`] runs the web server (axum, on its own thread and runtime). It reads only what
//!   the publisher holds. Pages update live from server-sent events.
//!
//! Every page and script is compiled into the binary: nothing is fetched at run time. The
//! JSON API is documented in `docs/dashboard.md`.
//!
//! ```
//! use std::sync::Arc;
//! use rask_dashboard::{Publisher, Snapshot, serve};
//!
//! let publisher = Arc::new(Publisher::new());
//! let dashboard = serve("127.0.0.1:0", None, publisher.clone())?;
//! publisher.publish(Snapshot::default());
//! println!("open http://{}/status", dashboard.address());
//! # Ok::<(), rask_error::RaskError>(())
//! ```

mod local;
mod process;
mod server;
pub mod snapshot;
pub mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use local::LocalDashboard;
pub use process::{ProcessSampler, cpu_seconds, rss_bytes};
pub use server::{Dashboard, serve};
pub use snapshot::{
    GraphNode, GraphView, Info, PrefixRow, Snapshot, StateCounts, StreamKind, TaskPhase,
    TaskRecord, WorkerRow, now_ms,
};
pub use stream::{STREAM_KEEP, TaskStream};

/// How often sources publish a snapshot.
pub const SNAPSHOT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// Below this many tasks the graph page shows every task; above it, one node per prefix.
pub const GRAPH_TASK_LIMIT: usize = 1000;
/// Log lines kept per worker.
pub const LOG_KEEP: usize = 200;

/// Where a source leaves what the web server reads: the latest [`Snapshot`] and the task
/// stream.
pub struct Publisher {
    latest: tokio::sync::watch::Sender<Arc<Snapshot>>,
    stream: Mutex<TaskStream>,
    seq: AtomicU64,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    pub fn new() -> Self {
        let (latest, _) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
        Publisher {
            latest,
            stream: Mutex::new(TaskStream::default()),
            seq: AtomicU64::new(0),
        }
    }

    /// Makes `snapshot` the one pages read, numbering it.
    pub fn publish(&self, mut snapshot: Snapshot) {
        snapshot.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.latest.send_replace(Arc::new(snapshot));
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.borrow().clone()
    }

    /// Appends task-stream records (numbered on arrival); `dropped` counts records the source
    /// lost before sending them.
    pub fn record(&self, records: impl IntoIterator<Item = TaskRecord>, dropped: u64) {
        self.stream_lock().extend(records, dropped);
    }

    pub(crate) fn stream_page(&self, since: Option<u64>, limit: usize) -> stream::StreamPage {
        self.stream_lock().page(since, limit)
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Snapshot>> {
        self.latest.subscribe()
    }

    fn stream_lock(&self) -> std::sync::MutexGuard<'_, TaskStream> {
        // A panic while holding it left a consistent ring (every update is one push or pop).
        self.stream.lock().unwrap_or_else(|p| p.into_inner())
    }
}
