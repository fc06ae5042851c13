//! Callbacks see every start and finish once, in causal order, and the final task states;
//! the progress bar counts finished tasks without changing results.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rask_error::RaskError;
use rask_graph::{Graph, TaskId, Value};
use rask_scheduler::{Callback, Executor, ProgressBar, RunOptions, TaskState};

use crate::common::*;

#[derive(Clone, Debug, PartialEq)]
enum Event {
    ComputeStart(usize),
    Start(TaskId),
    Finish(TaskId, u64),
    Error(TaskId, String),
    ComputeFinish(Vec<TaskState>, Option<String>),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    fn push(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl Callback for Recorder {
    fn on_compute_start(&self, graph: &Graph) {
        self.push(Event::ComputeStart(graph.len()));
    }
    fn on_task_start(&self, _graph: &Graph, id: TaskId) {
        self.push(Event::Start(id));
    }
    fn on_task_finish(&self, _graph: &Graph, id: TaskId, nbytes: u64, _elapsed: Duration) {
        self.push(Event::Finish(id, nbytes));
    }
    fn on_task_error(&self, _graph: &Graph, id: TaskId, error: &RaskError) {
        self.push(Event::Error(id, error.to_string()));
    }
    fn on_compute_finish(&self, _graph: &Graph, states: &[TaskState], error: Option<&RaskError>) {
        self.push(Event::ComputeFinish(
            states.to_vec(),
            error.map(|e| e.to_string()),
        ));
    }
}

/// What a recorded run looked like, after checking what holds for every run: one start
/// event first, one finish event last, each task started at most once, every finish or
/// error after its own start and every start after all its dependencies finished.
struct Summary {
    started: Vec<usize>,
    finished: Vec<usize>,
    errored: Vec<usize>,
    states: Vec<TaskState>,
    error: Option<String>,
}

fn check_events(g: &Graph, events: &[Event]) -> Summary {
    let n = g.len();
    assert_eq!(events.first(), Some(&Event::ComputeStart(n)));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ComputeStart(_)))
            .count(),
        1
    );
    let finishes: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::ComputeFinish(..)))
        .collect();
    assert_eq!(finishes.len(), 1, "on_compute_finish once");
    let Some(Event::ComputeFinish(states, error)) = events.last() else {
        panic!("on_compute_finish is not the last event");
    };
    let (mut started, mut finished, mut errored) = (vec![0; n], vec![0; n], vec![0; n]);
    for e in events {
        match *e {
            Event::Start(id) => {
                let i = id as usize;
                for &d in &g.task(id).deps {
                    assert_eq!(
                        finished[d as usize],
                        1,
                        "{} started before its input finished",
                        g.task(id).key
                    );
                }
                started[i] += 1;
            }
            Event::Finish(id, nbytes) => {
                assert_eq!(started[id as usize], 1, "finish before start");
                assert_eq!(nbytes, 8, "an i64 is 8 bytes");
                finished[id as usize] += 1;
            }
            Event::Error(id, _) => {
                assert_eq!(started[id as usize], 1, "error before start");
                errored[id as usize] += 1;
            }
            _ => {}
        }
    }
    assert!(started.iter().all(|&s| s <= 1), "a task started twice");
    for i in 0..n {
        assert_eq!(
            started[i],
            finished[i] + errored[i],
            "task {i} started but never ended"
        );
    }
    assert_eq!(states.len(), n);
    Summary {
        started,
        finished,
        errored,
        states: states.clone(),
        error: error.clone(),
    }
}

/// A tree of sums over 64 literal leaves.
fn tree() -> (Arc<Graph>, String) {
    let mut s = Specs::default();
    let count = Arc::new(AtomicUsize::new(0));
    let mut level: Vec<String> = (0..64).map(|i| format!("leaf-{i}")).collect();
    for (i, k) in level.iter().enumerate() {
        s.add(k, lit(i as i64), &[]);
    }
    let mut n = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            let k = format!("sum-{n}");
            n += 1;
            let deps: Vec<&str> = pair.iter().map(String::as_str).collect();
            s.add(&k, sum_op(0, &count), &deps);
            next.push(k);
        }
        level = next;
    }
    (s.build(), level.pop().unwrap())
}

#[test]
fn a_successful_run_reports_every_task_once_and_final_states() {
    for ex in EXECUTORS {
        let (g, root) = tree();
        let rec = Arc::new(Recorder::default());
        let opts = RunOptions {
            callbacks: vec![rec.clone()],
            ..Default::default()
        };
        let outs = ids(&g, &[&root, "sum-0"]);
        let out = run_guarded(ex, &g, &outs, opts).unwrap();
        assert_eq!(ints(&out), vec![(0..64).sum::<i64>(), 1], "{ex:?}");
        let s = check_events(&g, &rec.events());
        assert!(
            s.started.iter().all(|&c| c == 1),
            "{ex:?}: every task started once"
        );
        assert!(
            s.finished.iter().all(|&c| c == 1),
            "{ex:?}: every task finished once"
        );
        assert!(s.errored.iter().all(|&c| c == 0));
        assert_eq!(s.error, None);
        for id in 0..g.len() as TaskId {
            let expected = if outs.contains(&id) {
                TaskState::Memory
            } else {
                TaskState::Released
            };
            assert_eq!(
                s.states[id as usize],
                expected,
                "{ex:?}: {}",
                g.task(id).key
            );
        }
    }
}

#[test]
fn a_failed_run_reports_the_error_and_erred_and_cancelled_states() {
    for ex in EXECUTORS {
        for panics in [false, true] {
            let count = Arc::new(AtomicUsize::new(0));
            let mut s = Specs::default();
            for i in 0..12 {
                s.add(&format!("r{i}"), lit(i), &[]);
            }
            s.add(
                "bad",
                op("test.bad", move |_| {
                    if panics {
                        panic!("kaboom");
                    }
                    Err(ext("boom"))
                }),
                &["r1"],
            )
            .add("after-bad", sum_op(0, &count), &["bad", "r2"])
            .add("side", sum_op(0, &count), &["r3", "r4"])
            .add("total", sum_op(0, &count), &["after-bad", "side", "r5"]);
            for i in 6..12 {
                s.add(&format!("m{i}"), sum_op(0, &count), &[&format!("r{i}")]);
            }
            let g = s.build();
            let rec = Arc::new(Recorder::default());
            let opts = RunOptions {
                callbacks: vec![rec.clone()],
                ..Default::default()
            };
            let mut outputs = vec!["total".to_string()];
            outputs.extend((6..12).map(|i| format!("m{i}")));
            let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
            let err = run_guarded(ex, &g, &ids(&g, &outputs), opts).unwrap_err();
            let sum = check_events(&g, &rec.events());
            let bad = ids(&g, &["bad"])[0] as usize;
            assert_eq!(sum.errored[bad], 1, "{ex:?}");
            assert_eq!(sum.errored.iter().sum::<usize>(), 1, "{ex:?}");
            assert_eq!(sum.error.as_deref(), Some(err.to_string().as_str()));
            let events = rec.events();
            let error_msg = events
                .iter()
                .find_map(|e| match e {
                    Event::Error(_, m) => Some(m.clone()),
                    _ => None,
                })
                .unwrap();
            assert!(
                error_msg.contains("bad") && error_msg.contains("test.bad"),
                "{error_msg}"
            );
            assert_eq!(error_msg, err.to_string());
            for id in 0..g.len() {
                let key = &g.task(id as TaskId).key;
                let state = sum.states[id];
                match state {
                    TaskState::Erred => assert_eq!(id, bad),
                    TaskState::Memory | TaskState::Released => {
                        assert_eq!(
                            sum.finished[id], 1,
                            "{ex:?}: {key} {state:?} never finished"
                        )
                    }
                    TaskState::Cancelled => {
                        assert_eq!(sum.started[id], 0, "{ex:?}: {key} ran but is Cancelled")
                    }
                    other => panic!("{ex:?}: {key} ended {other:?}"),
                }
            }
            for k in ["after-bad", "total"] {
                let id = ids(&g, &[k])[0] as usize;
                assert_eq!(sum.states[id], TaskState::Cancelled, "{ex:?}: {k}");
            }
            assert_eq!(sum.states[bad], TaskState::Erred);
        }
    }
}

#[test]
fn a_cancelled_run_tells_callbacks_it_was_cancelled() {
    for ex in EXECUTORS {
        let rec = Arc::new(Recorder::default());
        let opts = RunOptions {
            callbacks: vec![rec.clone()],
            ..Default::default()
        };
        let token = opts.cancel.clone();
        let mut s = Specs::default();
        s.add("a", lit(1), &[])
            .add(
                "b",
                op("test.cancel", move |i| {
                    token.cancel();
                    Ok(Value::new(int(&i[0])?))
                }),
                &["a"],
            )
            .add("c", sum_op(0, &Arc::default()), &["b"]);
        let g = s.build();
        let err = run_guarded(ex, &g, &ids(&g, &["c"]), opts).unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        let sum = check_events(&g, &rec.events());
        let c = ids(&g, &["c"])[0] as usize;
        assert_eq!(sum.states[c], TaskState::Cancelled);
        assert_eq!(sum.started[c], 0);
        let reported = sum.error.expect("on_compute_finish gets the cancellation");
        assert_eq!(reported, err.to_string());
    }
}

#[test]
fn the_progress_bar_counts_finished_tasks_and_changes_nothing() {
    // About 10,000 tasks: 5,000 leaves and their sums.
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Specs::default();
    let leaves = 5000usize;
    let mut level: Vec<String> = (0..leaves).map(|i| format!("leaf-{i}")).collect();
    for (i, k) in level.iter().enumerate() {
        s.add(k, lit(i as i64), &[]);
    }
    let mut n = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            let k = format!("sum-{n}");
            n += 1;
            let deps: Vec<&str> = pair.iter().map(String::as_str).collect();
            s.add(&k, sum_op(0, &count), &deps);
            next.push(k);
        }
        level = next;
    }
    let g = s.build();
    assert!(g.len() >= 9999);
    let outs = ids(&g, &[&level[0]]);
    for ex in [Executor::Sync, Executor::Threads(4)] {
        for min_time in [Duration::ZERO, Duration::from_millis(100)] {
            let bar = Arc::new(ProgressBar::new("test").with_min_time(min_time));
            let opts = RunOptions {
                callbacks: vec![bar.clone()],
                ..Default::default()
            };
            let out = run_guarded(ex, &g, &outs, opts).unwrap();
            let expected = (leaves * (leaves - 1) / 2) as i64;
            assert_eq!(ints(&out), vec![expected], "{ex:?}");
            assert_eq!(bar.finished_tasks(), g.len() as u64, "{ex:?}");
        }
    }
}

#[test]
fn the_progress_bar_counts_only_successes_on_failure() {
    let mut s = Specs::default();
    s.add("a", lit(1), &[])
        .add("b", sum_op(0, &Arc::default()), &["a"])
        .add("bad", op("test.bad", |_| Err(ext("boom"))), &["b"])
        .add("c", sum_op(0, &Arc::default()), &["bad"]);
    let g = s.build();
    for ex in EXECUTORS {
        let bar = Arc::new(ProgressBar::new("test").with_min_time(Duration::ZERO));
        let opts = RunOptions {
            callbacks: vec![bar.clone()],
            ..Default::default()
        };
        assert!(run_guarded(ex, &g, &ids(&g, &["c"]), opts).is_err());
        assert_eq!(bar.finished_tasks(), 2, "{ex:?}: a and b");
    }
}
