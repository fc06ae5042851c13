//! The state machine's public face, driven by hand: the policies the executors rely on.

use rask_graph::{Graph, Key, TaskId};
use rask_scheduler::{SchedulerState, Status, TaskState};

use crate::common::*;

fn graph(spec: &[(&str, &[&str])]) -> std::sync::Arc<Graph> {
    let mut s = Specs::default();
    for (k, deps) in spec {
        s.add(k, lit(0), deps);
    }
    s.build()
}

fn id(g: &Graph, k: &str) -> TaskId {
    g.id_of(&Key::named(k)).unwrap()
}

/// Priorities given by name order in `by_priority`.
fn priorities(g: &Graph, by_priority: &[&str]) -> Vec<u32> {
    let mut p = vec![0; g.len()];
    for (pos, k) in by_priority.iter().enumerate() {
        p[id(g, k) as usize] = pos as u32;
    }
    p
}

#[test]
fn a_ready_inner_task_with_a_better_priority_goes_before_a_root() {
    // r1 -> a; r2 is another root. Priority: r1, a, r2 (finish a branch before the next).
    let g = graph(&[
        ("r1", &[]),
        ("a", &["r1"]),
        ("r2", &[]),
        ("s", &["a", "r2"]),
    ]);
    let mut s = SchedulerState::new(&g, &[id(&g, "s")], priorities(&g, &["r1", "a", "r2", "s"]));
    assert_eq!(s.pop_ready(), Some(id(&g, "r1")));
    s.task_finished(id(&g, "r1"), 1);
    assert_eq!(
        s.pop_ready(),
        Some(id(&g, "a")),
        "a (priority 1) before r2 (priority 2)"
    );
    assert_eq!(s.pop_ready(), Some(id(&g, "r2")));

    // And the other way round: a root with a better priority goes before an inner task.
    let mut s = SchedulerState::new(&g, &[id(&g, "s")], priorities(&g, &["r1", "r2", "a", "s"]));
    assert_eq!(s.pop_ready(), Some(id(&g, "r1")));
    s.task_finished(id(&g, "r1"), 1);
    assert_eq!(
        s.pop_ready(),
        Some(id(&g, "r2")),
        "r2 (priority 1) before a (priority 2)"
    );
    assert_eq!(s.pop_ready(), Some(id(&g, "a")));
}

#[test]
fn only_ancestors_of_the_outputs_become_ready() {
    // u reads a but no output needs it; v is an unrelated root.
    let g = graph(&[("v", &[]), ("a", &[]), ("u", &["a"]), ("b", &["a"])]);
    let mut s = SchedulerState::new(&g, &[id(&g, "b")], priorities(&g, &["v", "a", "u", "b"]));
    let mut ran = Vec::new();
    while let Some(t) = s.pop_ready() {
        ran.push(t);
        s.task_finished(t, 4);
    }
    assert_eq!(ran, vec![id(&g, "a"), id(&g, "b")]);
    assert_eq!(s.status(), Status::Done);
    assert!(s.is_finished());
    // a was released after b, its only needed reader, even though u also reads it.
    assert_eq!(s.state_of(id(&g, "a")), TaskState::Released);
    assert_eq!(s.memory(), 4);
    assert_eq!(s.state_of(id(&g, "u")), TaskState::Waiting);
    assert_eq!(s.state_of(id(&g, "v")), TaskState::Waiting);
}

#[test]
fn a_task_taken_but_not_started_ends_cancelled() {
    let g = graph(&[("a", &[]), ("b", &[]), ("c", &[]), ("s", &["a", "b", "c"])]);
    let mut s = SchedulerState::new(&g, &[id(&g, "s")], priorities(&g, &["a", "b", "c", "s"]));
    let a = s.pop_ready().unwrap();
    let b = s.pop_ready().unwrap();
    s.task_failed(a);
    s.task_skipped(b);
    assert!(s.is_finished());
    assert_eq!(s.status(), Status::Failed);
    assert_eq!(s.state_of(a), TaskState::Erred);
    assert_eq!(s.state_of(b), TaskState::Cancelled);
    assert_eq!(s.state_of(id(&g, "c")), TaskState::Cancelled);
    assert_eq!(s.n_finished(), 0);
}
