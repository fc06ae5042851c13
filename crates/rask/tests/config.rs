//! `rask::set_config` changes the process-wide default that `.compute()` and `Config::default`
//! use. Its own test binary with a single test, so nothing else runs while the default is
//! changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask::prelude::*;
use rask::scheduler::Callback;
use rask::{CancelToken, Progress, set_config, value};

/// Counts the tasks each computation starts and the threads they ran on.
#[derive(Default)]
struct Recorder {
    computes: AtomicUsize,
    tasks: AtomicUsize,
    threads: std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
}

impl Callback for Recorder {
    fn on_compute_start(&self, _graph: &rask::graph::Graph) {
        self.computes.fetch_add(1, Ordering::SeqCst);
    }
    fn on_task_start(&self, _graph: &rask::graph::Graph, _id: rask::graph::TaskId) {
        self.tasks.fetch_add(1, Ordering::SeqCst);
        self.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
    }
}

fn tree(n: i64) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..n).map(|i| value(i) + 1).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [a, b] => a + b,
                [a] => a.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    level.pop().unwrap()
}

struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        set_config(Config::builtin());
    }
}

#[test]
fn set_config_changes_the_default() {
    let _restore = Restore;
    let t = tree(1000);
    let oracle: i64 = (1..=1000).sum();

    // The built-in default is the threaded executor.
    let d = Config::default();
    assert_eq!(d.executor, Executor::Threaded);
    assert!(d.callbacks.is_empty());
    assert_eq!(t.compute().unwrap(), oracle);

    // A recorder in the default config sees `.compute()`, `rask::compute` and `.persist()`.
    let rec = Arc::new(Recorder::default());
    set_config(
        Config::builtin()
            .with_executor(Executor::Sync)
            .with_progress(Progress::Never)
            .with_callback(rec.clone()),
    );
    assert_eq!(Config::default().executor, Executor::Sync);
    assert_eq!(Config::default().progress, Progress::Never);
    assert_eq!(t.compute().unwrap(), oracle);
    assert_eq!(rec.computes.load(Ordering::SeqCst), 1);
    assert!(rec.tasks.load(Ordering::SeqCst) > 0);
    // Sync: every task ran on this thread.
    {
        let threads = rec.threads.lock().unwrap();
        assert_eq!(threads.len(), 1);
        assert!(threads.contains(&std::thread::current().id()));
    }
    assert_eq!(
        rask::compute(&(t.clone(), value(1i64))).unwrap(),
        (oracle, 1)
    );
    let p = t.persist().unwrap();
    assert_eq!(rec.computes.load(Ordering::SeqCst), 3);
    assert_eq!(p.compute().unwrap(), oracle);
    // An explicit config overrides the default.
    let before = rec.computes.load(Ordering::SeqCst);
    assert_eq!(
        t.compute_with(&Config::builtin().with_progress(Progress::Never))
            .unwrap(),
        oracle
    );
    assert_eq!(rec.computes.load(Ordering::SeqCst), before);

    // A cancelled token in the default config cancels every default compute.
    let token = CancelToken::new();
    token.cancel();
    set_config(Config::builtin().with_cancel(token));
    assert!(t.compute().unwrap_err().is_cancelled());

    // Restored: computes again, on the threaded executor.
    set_config(Config::builtin());
    assert_eq!(Config::default().executor, Executor::Threaded);
    assert_eq!(t.compute().unwrap(), oracle);
}
