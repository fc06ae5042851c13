//! Hooks into a running computation: progress bars, diagnostics, recording task states.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rask_error::RaskError;
use rask_graph::{Graph, TaskId};

use crate::TaskState;

/// Called by executors around each task. Methods run on worker threads, outside the
/// scheduler's lock, so they must be cheap and thread-safe.
pub trait Callback: Send + Sync {
    fn on_compute_start(&self, _graph: &Graph) {}
    fn on_task_start(&self, _graph: &Graph, _id: TaskId) {}
    fn on_task_finish(&self, _graph: &Graph, _id: TaskId, _nbytes: u64, _elapsed: Duration) {}
    fn on_task_error(&self, _graph: &Graph, _id: TaskId, _error: &RaskError) {}
    /// A finished task's value was dropped (no task needs it any more). Called with the
    /// executor's lock held: keep it very cheap.
    fn on_task_release(&self, _graph: &Graph, _id: TaskId) {}
    /// Called once, with the final state of every task.
    fn on_compute_finish(&self, _graph: &Graph, _states: &[TaskState], _error: Option<&RaskError>) {
    }
}

/// A flag that stops a computation: no new task starts once it is set.
#[derive(Clone, Default, Debug)]
pub struct CancelToken {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled by its own `cancel` or by this one's; cancelling it leaves this one
    /// alone.
    pub fn child(&self) -> CancelToken {
        CancelToken {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
        }
    }

    pub fn cancel(&self) {
        self.own.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Acquire))
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Interrupts every running computation in the process (what a Ctrl-C handler calls).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Release);
}

/// Clears a previous [`interrupt`], so later computations run.
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::Release);
}

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
