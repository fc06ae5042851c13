//! Cancellation: a token set before or during a run, `ComputeHandle::cancel`, and dropping
//! a handle while its tasks are blocked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rask_error::RaskError;
use rask_graph::{Graph, Value, order};
use rask_scheduler::{CancelToken, ComputeHandle, Executor, RunOptions, RunOutput};

use crate::common::*;

fn assert_cancelled(r: rask_error::Result<RunOutput>, what: &str) {
    match r {
        Err(RaskError::Cancelled(_)) => {}
        other => panic!("{what}: expected Cancelled, got {other:?}"),
    }
}

/// A chain `c0 -> ... -> c{n-1}` of counted sums; `c{at}` runs `hook` first.
fn chain_with_hook(
    n: usize,
    at: usize,
    hook: impl Fn() -> rask_error::Result<()> + Send + Sync + 'static,
    count: &Arc<AtomicUsize>,
) -> Arc<Graph> {
    let hook = Arc::new(hook);
    let mut s = Specs::default();
    for i in 0..n {
        let (count, hook) = (count.clone(), hook.clone());
        let deps: Vec<String> = if i == 0 {
            vec![]
        } else {
            vec![format!("c{}", i - 1)]
        };
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        s.add(
            &format!("c{i}"),
            op("test.step", move |inputs| {
                count.fetch_add(1, Ordering::SeqCst);
                if i == at {
                    hook()?;
                }
                let prev = inputs.first().map(int).transpose()?.unwrap_or(0);
                Ok(Value::new(prev + 1))
            }),
            &deps,
        );
    }
    s.build()
}

#[test]
fn a_token_cancelled_before_the_run_runs_nothing() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = chain_with_hook(10, usize::MAX, || Ok(()), &count);
        let opts = RunOptions::default();
        opts.cancel.cancel();
        assert_cancelled(
            run_guarded(ex, &g, &ids(&g, &["c9"]), opts),
            &format!("{ex:?}"),
        );
        assert_eq!(count.load(Ordering::SeqCst), 0, "{ex:?}");
    }
}

#[test]
fn a_task_cancelling_the_token_stops_the_chain_after_it() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let token = CancelToken::new();
        let t = token.clone();
        let g = chain_with_hook(
            10,
            3,
            move || {
                t.cancel();
                Ok(())
            },
            &count,
        );
        let opts = RunOptions {
            cancel: token,
            ..Default::default()
        };
        assert_cancelled(
            run_guarded(ex, &g, &ids(&g, &["c9"]), opts),
            &format!("{ex:?}"),
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            4,
            "{ex:?}: c0..=c3 ran, nothing after"
        );
    }
}

/// Many ready tasks beside the one that cancels: under `Sync` none may start after it; with
/// threads, at most one per other worker (one that had just checked the token).
#[test]
fn a_task_cancelling_the_token_stops_wide_graphs() {
    for (ex, tolerance) in [(Executor::Sync, 0), (Executor::Threads(4), 3)] {
        for at in [0usize, 7, 20] {
            let flag = AfterFlag::new();
            let opts = RunOptions::default();
            let mut s = Specs::default();
            let mut roots = Vec::new();
            for i in 0..40 {
                let (flag, token) = (flag.clone(), opts.cancel.clone());
                s.add(
                    &format!("x{i}"),
                    op("test.root", move |_| {
                        flag.task_started();
                        if i == at {
                            flag.raise();
                            token.cancel();
                        }
                        Ok(Value::new(1i64))
                    }),
                    &[],
                );
                roots.push(format!("x{i}"));
            }
            let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
            s.add("sum", sum_op(0, &Arc::default()), &roots);
            let g = s.build();
            assert_cancelled(
                run_guarded(ex, &g, &ids(&g, &["sum"]), opts),
                &format!("{ex:?}"),
            );
            assert!(
                flag.started_after() <= tolerance,
                "{ex:?}, cancel at x{at}: {} tasks started after the cancel",
                flag.started_after()
            );
        }
    }
}

/// Waits for a handle's result on another thread, failing the test on a hang.
fn wait_guarded(handle: ComputeHandle) -> rask_error::Result<RunOutput> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.wait());
    });
    rx.recv_timeout(RUN_TIMEOUT)
        .expect("ComputeHandle::wait hung")
}

#[test]
fn a_spawned_computation_returns_its_values() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let g = chain_with_hook(50, usize::MAX, || Ok(()), &count);
        let outs = ids(&g, &["c49", "c0"]);
        let pr = order(&g);
        let handle = ComputeHandle::spawn(ex, g, outs, pr, RunOptions::default());
        let out = wait_guarded(handle).unwrap();
        assert_eq!(ints(&out), vec![50, 1], "{ex:?}");
        assert_eq!(count.load(Ordering::SeqCst), 50);
    }
}

#[test]
fn cancelling_a_handle_makes_wait_return_cancelled() {
    for ex in EXECUTORS {
        let count = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        let (started_tx, started_rx) = mpsc::channel();
        let started_tx = Mutex::new(started_tx);
        let g2 = gate.clone();
        let g = chain_with_hook(
            10,
            2,
            move || {
                let _ = started_tx.lock().unwrap().send(());
                g2.wait()
            },
            &count,
        );
        let outs = ids(&g, &["c9"]);
        let pr = order(&g);
        let handle = ComputeHandle::spawn(ex, g, outs, pr, RunOptions::default());
        started_rx
            .recv_timeout(RUN_TIMEOUT)
            .expect("c2 never started");
        assert!(!handle.is_finished(), "c2 is blocked");
        handle.cancel();
        gate.open();
        assert_cancelled(wait_guarded(handle), &format!("{ex:?}"));
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{ex:?}: c0..=c2 ran, nothing after"
        );
    }
}

/// Sends once when dropped: tells the test the graph holding it was freed, which happens
/// when the computation's thread ends (after joining its workers).
struct DropSignal(mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn dropping_a_handle_stops_blocked_work_and_its_threads() {
    for (ex, workers) in [
        (Executor::Sync, 1),
        (Executor::Threads(2), 2),
        (Executor::Threads(4), 4),
    ] {
        let started = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let signal = Arc::new(DropSignal(dropped_tx));
        let mut s = Specs::default();
        let mut roots = Vec::new();
        for i in 0..16 {
            let (started, gate, tx, signal) = (
                started.clone(),
                gate.clone(),
                Mutex::new(started_tx.clone()),
                signal.clone(),
            );
            s.add(
                &format!("x{i}"),
                op("test.blocked", move |_| {
                    let _keep = &signal;
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.lock().unwrap().send(());
                    gate.wait()?;
                    Ok(Value::new(1i64))
                }),
                &[],
            );
            roots.push(format!("x{i}"));
        }
        drop(signal);
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        s.add("sum", sum_op(0, &Arc::default()), &roots);
        let g = s.build();
        let outs = ids(&g, &["sum"]);
        let pr = order(&g);
        let handle = ComputeHandle::spawn(ex, g, outs, pr, RunOptions::default());
        for _ in 0..workers {
            started_rx
                .recv_timeout(RUN_TIMEOUT)
                .expect("the workers never started their first tasks");
        }
        // Every worker is now blocked in a task, so exactly `workers` tasks started.
        assert_eq!(started.load(Ordering::SeqCst), workers, "{ex:?}");
        drop(handle);
        gate.open();
        dropped_rx
            .recv_timeout(RUN_TIMEOUT)
            .expect("the computation's threads never exited after the handle was dropped");
        // The graph (and every op) is gone, so no task can start any more.
        assert_eq!(
            started.load(Ordering::SeqCst),
            workers,
            "{ex:?}: tasks started after the handle was dropped"
        );
        // And nothing more arrives.
        assert!(started_rx.recv_timeout(Duration::from_millis(10)).is_err());
    }
}
