//! Failing and panicking tasks: the error names the task, dependents never run, nothing new
//! starts after the failure, and the run always returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rask_error::RaskError;
use rask_graph::{Graph, Op, Value};
use rask_scheduler::{Executor, RunOptions};

use crate::common::*;

/// How long the long tasks keep running after the failure, so the failing worker has
/// reported it to the scheduler before they finish (any delay only weakens the check).
const GRACE: Duration = Duration::from_millis(200);

/// Ten roots, a failing task `bad` reading `r3`, two dependents of it, and an independent
/// sum of the roots. Returns the graph and the count of dependents that ran.
fn failing_graph(bad: Arc<dyn Op>) -> (Arc<Graph>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let dependents = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let mut s = Specs::default();
    let roots: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for (i, r) in roots.iter().enumerate() {
        s.add(r, lit(i as i64), &[]);
    }
    let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
    s.add("bad", bad, &["r3"])
        .add("d1", sum_op(0, &dependents), &["bad"])
        .add("d2", sum_op(0, &dependents), &["d1", "r5"])
        .add("side", sum_op(0, &others), &roots);
    (s.build(), dependents, others)
}

#[test]
fn a_failing_task_names_its_key_and_op_and_stops_its_dependents() {
    for ex in EXECUTORS {
        for _ in 0..50 {
            let (g, dependents, _) = failing_graph(op("test.fail", |i| {
                let _ = int(&i[0])?;
                Err(RaskError::invalid_argument("x", "boom"))
            }));
            let err =
                run_guarded(ex, &g, &ids(&g, &["d2", "side"]), RunOptions::default()).unwrap_err();
            let msg = err.to_string();
            match &err {
                RaskError::TaskFailed { key, op, source } => {
                    assert_eq!(key, "bad");
                    assert_eq!(op, "test.fail");
                    assert!(
                        matches!(**source, RaskError::InvalidArgument { .. }),
                        "{source:?}"
                    );
                }
                other => panic!("{ex:?}: expected TaskFailed, got {other:?}"),
            }
            assert!(
                msg.contains("bad") && msg.contains("test.fail") && msg.contains("boom"),
                "{msg}"
            );
            assert_eq!(
                dependents.load(Ordering::SeqCst),
                0,
                "{ex:?}: a dependent ran"
            );
        }
    }
}

#[test]
fn a_panicking_task_names_its_key_op_and_message() {
    for ex in EXECUTORS {
        for i in 0..50 {
            let formatted = i % 2 == 0;
            let (g, dependents, _) = failing_graph(op("test.panic", move |inputs| {
                let x = int(&inputs[0])?;
                if formatted {
                    panic!("kaboom {}", 39 + x);
                }
                panic!("static kaboom");
            }));
            let err =
                run_guarded(ex, &g, &ids(&g, &["d2", "side"]), RunOptions::default()).unwrap_err();
            let expected = if formatted {
                "kaboom 42"
            } else {
                "static kaboom"
            };
            match &err {
                RaskError::TaskPanicked { key, op, message } => {
                    assert_eq!(key, "bad");
                    assert_eq!(op, "test.panic");
                    assert_eq!(message, expected);
                }
                other => panic!("{ex:?}: expected TaskPanicked, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains("bad") && msg.contains("test.panic") && msg.contains(expected),
                "{msg}"
            );
            assert_eq!(
                dependents.load(Ordering::SeqCst),
                0,
                "{ex:?}: a dependent ran"
            );
        }
    }
}

#[test]
fn several_failing_tasks_give_one_of_their_errors() {
    for ex in EXECUTORS {
        for _ in 0..50 {
            let after = Arc::new(AtomicUsize::new(0));
            let mut s = Specs::default();
            let mut fails = Vec::new();
            for i in 0..8 {
                let k = format!("fail-{i}");
                s.add(&k, op("test.fail", |_| Err(ext("boom"))), &[]);
                fails.push(k);
            }
            let fails: Vec<&str> = fails.iter().map(String::as_str).collect();
            s.add("all", sum_op(0, &after), &fails);
            let g = s.build();
            match run_guarded(ex, &g, &ids(&g, &["all"]), RunOptions::default()) {
                Err(RaskError::TaskFailed { key, op, .. }) => {
                    assert!(key.starts_with("fail-"), "{key}");
                    assert_eq!(op, "test.fail");
                }
                other => panic!("{ex:?}: expected TaskFailed, got {other:?}"),
            }
            assert_eq!(after.load(Ordering::SeqCst), 0);
        }
    }
}

/// Under the sync executor "after the failure" is well defined: no task may start once the
/// failing task returned, even with many independent tasks ready beside it.
#[test]
fn sync_starts_nothing_after_a_failure() {
    for failing_at in [0usize, 5, 17, 29] {
        let flag = AfterFlag::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let mut s = Specs::default();
        let mut roots = Vec::new();
        for i in 0..30 {
            let k = format!("x{i}");
            let flag = flag.clone();
            let ran = ran.clone();
            let fails = i == failing_at;
            s.add(
                &k,
                op("test.root", move |_| {
                    flag.task_started();
                    ran.fetch_add(1, Ordering::SeqCst);
                    if fails {
                        flag.raise();
                        return Err(ext("boom"));
                    }
                    Ok(Value::new(1i64))
                }),
                &[],
            );
            roots.push(k);
        }
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        let g = s.build();
        let err =
            run_guarded(Executor::Sync, &g, &ids(&g, &roots), RunOptions::default()).unwrap_err();
        assert!(
            matches!(&err, RaskError::TaskFailed { key, .. } if *key == format!("x{failing_at}")),
            "{err:?}"
        );
        assert_eq!(
            flag.started_after(),
            0,
            "failing at x{failing_at}: {} tasks started after the failure ({} ran)",
            flag.started_after(),
            ran.load(Ordering::SeqCst)
        );
    }
}

/// Four workers run three long tasks and one that fails once all four are running. The
/// long ones may finish; nothing else (their dependents, the failing task's dependents)
/// starts afterwards.
#[test]
fn threads_let_running_tasks_finish_but_start_nothing_after_a_failure() {
    for _ in 0..3 {
        let flag = AfterFlag::new();
        let meet = Rendezvous::new(4);
        let gate = Gate::new();
        let long_done = Arc::new(AtomicUsize::new(0));
        let later = Arc::new(AtomicUsize::new(0));
        let mut s = Specs::default();
        for i in 0..3 {
            let (f, meet, gate, done) =
                (flag.clone(), meet.clone(), gate.clone(), long_done.clone());
            s.add(
                &format!("long{i}"),
                op("test.long", move |_| {
                    f.task_started();
                    meet.wait()?;
                    gate.wait()?;
                    std::thread::sleep(GRACE);
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(Value::new(1i64))
                }),
                &[],
            );
            let flag = flag.clone();
            let later = later.clone();
            s.add(
                &format!("next{i}"),
                op("test.next", move |_| {
                    flag.task_started();
                    later.fetch_add(1, Ordering::SeqCst);
                    Ok(Value::new(1i64))
                }),
                &[&format!("long{i}")],
            );
        }
        {
            let (flag, meet, gate) = (flag.clone(), meet.clone(), gate.clone());
            s.add(
                "bad",
                op("test.fail", move |_| {
                    flag.task_started();
                    meet.wait()?;
                    flag.raise();
                    gate.open();
                    Err(ext("boom"))
                }),
                &[],
            );
        }
        s.add("after-bad", sum_op(0, &later), &["bad"]);
        s.add(
            "total",
            sum_op(0, &later),
            &["next0", "next1", "next2", "after-bad"],
        );
        let g = s.build();
        let err = run_guarded(
            Executor::Threads(4),
            &g,
            &ids(&g, &["total"]),
            RunOptions::default(),
        )
        .unwrap_err();
        match &err {
            RaskError::TaskFailed { key, op, source } => {
                assert_eq!((key.as_str(), op.as_str()), ("bad", "test.fail"));
                assert!(source.to_string().contains("boom"));
            }
            other => panic!("expected bad's failure, got {other:?}"),
        }
        assert_eq!(
            long_done.load(Ordering::SeqCst),
            3,
            "the running tasks finished"
        );
        assert_eq!(
            later.load(Ordering::SeqCst),
            0,
            "a task started after the failure"
        );
        assert_eq!(flag.started_after(), 0);
    }
}
