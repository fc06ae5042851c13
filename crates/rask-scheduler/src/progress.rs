//! A terminal progress bar, shown only for computations that last more than a moment and only
//! when standard error is a terminal (so logs and pipes stay clean).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rask_error::RaskError;
use rask_graph::{Graph, TaskId};

use crate::{Callback, TaskState};

/// A [`Callback`] drawing an `indicatif` bar of finished tasks.
pub struct ProgressBar {
    min_time: Duration,
    force: bool,
    start: OnceLock<Instant>,
    total: AtomicU64,
    done: AtomicU64,
    bar: OnceLock<indicatif::ProgressBar>,
    title: String,
}

impl ProgressBar {
    /// A bar that appears after `min_time` (Dask's default is 0.1 s).
    pub fn new(title: impl Into<String>) -> Self {
        ProgressBar {
            min_time: Duration::from_millis(100),
            force: false,
            start: OnceLock::new(),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bar: OnceLock::new(),
            title: title.into(),
        }
    }

    pub fn with_min_time(mut self, min_time: Duration) -> Self {
        self.min_time = min_time;
        self
    }

    /// Draws even when standard error is not a terminal (for demos recorded to a file).
    pub fn always(mut self) -> Self {
        self.force = true;
        self
    }

    fn enabled(&self) -> bool {
        self.force || std::io::stderr().is_terminal()
    }

    /// Tasks finished so far.
    pub fn finished_tasks(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn bar(&self) -> Option<&indicatif::ProgressBar> {
        if let Some(b) = self.bar.get() {
            return Some(b);
        }
        let start = *self.start.get()?;
        if start.elapsed() < self.min_time || !self.enabled() {
            return None;
        }
        Some(self.bar.get_or_init(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(self.total.load(Ordering::Relaxed)),
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {percent:>3}% | {pos}/{len} tasks | {elapsed_precise}",
            )
            .map(|s| s.progress_chars("#>-"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(self.title.clone());
            bar
        }))
    }
}

impl Callback for ProgressBar {
    fn on_compute_start(&self, graph: &Graph) {
        let _ = self.start.set(Instant::now());
        self.total.store(graph.len() as u64, Ordering::Relaxed);
    }

    fn on_task_finish(&self, _graph: &Graph, _id: TaskId, _nbytes: u64, _elapsed: Duration) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = self.bar() {
            bar.set_position(done);
        }
    }

    fn on_compute_finish(&self, _graph: &Graph, _states: &[TaskState], error: Option<&RaskError>) {
        if let Some(bar) = self.bar.get() {
            bar.set_position(self.done.load(Ordering::Relaxed));
            match error {
                None => bar.finish(),
                Some(_) => bar.abandon(),
            }
        }
    }
}
