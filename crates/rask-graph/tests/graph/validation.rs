//! Graph validation: cycles, missing dependencies, duplicate keys, unknown outputs.

use rask_graph::{Graph, GraphBuilder, Key, Layer, RaskError};

use crate::common::*;

fn invalid_graph_message(err: RaskError) -> String {
    match err {
        RaskError::InvalidGraph(m) => m,
        other => panic!("expected InvalidGraph, got {other:?}"),
    }
}

/// Parses `cycle through keys a -> b -> c -> a (...)` into `[a, b, c, a]`.
fn cycle_keys(message: &str) -> Vec<String> {
    let start = message
        .find("cycle through keys ")
        .expect("message names the cycle")
        + "cycle through keys ".len();
    let end = message[start..]
        .find(" (")
        .map_or(message.len(), |e| start + e);
    message[start..end]
        .split(" -> ")
        .map(str::to_string)
        .collect()
}

/// Checks that `cycle` is closed, that each key depends on the next in `edges`, and that it
/// visits exactly the keys in `expected`.
fn check_cycle(message: &str, edges: &[(&str, &str)], expected: &[&str]) {
    let cycle = cycle_keys(message);
    assert!(cycle.len() >= 2, "{message}");
    assert_eq!(cycle.first(), cycle.last(), "cycle is closed: {message}");
    for w in cycle.windows(2) {
        assert!(
            edges.iter().any(|&(a, b)| a == w[0] && b == w[1]),
            "{} does not depend on {} in {message}",
            w[0],
            w[1]
        );
    }
    let visited: std::collections::BTreeSet<String> = cycle[1..].iter().cloned().collect();
    assert_eq!(visited, name_set(expected), "{message}");
    assert_eq!(cycle.len() - 1, expected.len(), "each key once: {message}");
}

#[test]
fn from_specs_rejects_cycle_naming_its_keys() {
    // src -> cyc-a -> cyc-b -> cyc-c -> cyc-a, and tail-d hangs off the cycle: the message
    // must name the three cycle keys, in dependency order, and not the others.
    let specs = vec![
        spec("tail-d", op(Add), &["cyc-a"]),
        spec("cyc-a", op(Add), &["cyc-c", "src"]),
        spec("cyc-b", op(Add), &["cyc-a"]),
        spec("cyc-c", op(Add), &["cyc-b"]),
        spec("src", op(Const(1)), &[]),
    ];
    let edges = [("cyc-a", "cyc-c"), ("cyc-b", "cyc-a"), ("cyc-c", "cyc-b")];
    let msg = invalid_graph_message(Graph::from_specs(specs).unwrap_err());
    check_cycle(&msg, &edges, &["cyc-a", "cyc-b", "cyc-c"]);
    assert!(!msg.contains("tail-d") && !msg.contains("src"), "{msg}");
}

#[test]
fn from_specs_rejects_self_loop() {
    let msg = invalid_graph_message(
        Graph::from_specs([
            spec("ok", op(Const(1)), &[]),
            spec("selfish", op(Add), &["selfish", "ok"]),
        ])
        .unwrap_err(),
    );
    assert_eq!(cycle_keys(&msg), ["selfish", "selfish"], "{msg}");
}

#[test]
fn from_specs_rejects_missing_dependency() {
    let err = Graph::from_specs([
        spec("present", op(Const(1)), &[]),
        spec("needs-ghost", op(Add), &["present", "ghost-key"]),
    ])
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RaskError::InvalidGraph(_)), "{err:?}");
    assert!(
        msg.contains("needs-ghost") && msg.contains("ghost-key"),
        "{msg}"
    );
}

#[test]
fn from_specs_rejects_duplicate_key() {
    let err = Graph::from_specs([
        spec("twice-made", op(Const(1)), &[]),
        spec("other", op(Const(2)), &[]),
        spec("twice-made", op(Const(3)), &[]),
    ])
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RaskError::InvalidGraph(_)), "{err:?}");
    assert!(
        msg.contains("twice-made") && !msg.contains("other"),
        "{msg}"
    );
}

#[test]
fn block_keys_are_named_in_dask_spelling() {
    let a = Key::new(rask_graph::KeyName::new("blocks"), [0, 1]);
    let err = Graph::from_specs([rask_graph::TaskSpec::new(
        Key::named("sum"),
        op(Add),
        vec![a],
    )])
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("('blocks', 0, 1)") && msg.contains("sum"),
        "{msg}"
    );
}

#[test]
fn builder_rejects_cycle_across_layers() {
    let edges = [
        ("loop-x", "loop-y"),
        ("loop-y", "loop-z"),
        ("loop-z", "loop-x"),
    ];
    let first = Layer::new(
        vec![
            spec("loop-x", op(Inc), &["loop-y"]),
            spec("loop-y", op(Inc), &["loop-z"]),
        ],
        vec![],
    );
    let second = Layer::single(spec("loop-z", op(Inc), &["loop-x"]), vec![first]);
    let mut b = GraphBuilder::new();
    b.add_layer(&second);
    let msg = invalid_graph_message(b.build().unwrap_err());
    check_cycle(&msg, &edges, &["loop-x", "loop-y", "loop-z"]);
}

#[test]
fn builder_rejects_missing_dependency() {
    // `orphan` reads a key of a layer that is not among its layer's dependencies.
    let unrelated = Layer::single(spec("elsewhere", op(Const(1)), &[]), vec![]);
    let reader = Layer::single(spec("orphan", op(Inc), &["elsewhere"]), vec![]);
    let mut b = GraphBuilder::new();
    b.add_layer(&reader);
    let msg = b.build().unwrap_err().to_string();
    assert!(msg.contains("orphan") && msg.contains("elsewhere"), "{msg}");
    drop(unrelated);
}

#[test]
fn builder_rejects_duplicate_task() {
    let mut b = GraphBuilder::new();
    b.add_layer(&Layer::single(spec("layered", op(Const(1)), &[]), vec![]));
    b.add_task(spec("loose", op(Const(2)), &[])).unwrap();
    let err = b.add_task(spec("layered", op(Const(3)), &[])).unwrap_err();
    assert!(matches!(err, RaskError::InvalidGraph(_)), "{err:?}");
    assert!(err.to_string().contains("layered"), "{err}");
    let err = b.add_task(spec("loose", op(Const(4)), &[])).unwrap_err();
    assert!(err.to_string().contains("loose"), "{err}");
    // The rejected tasks were not added: the graph holds the first two with their values.
    assert_eq!(b.len(), 2);
    let g = b.build().unwrap();
    let ids = g.ids_of(&keys(&["layered", "loose"])).unwrap();
    assert_eq!(int_values(&g, &ids), [1, 2]);
}

#[test]
fn ids_of_names_unknown_key() {
    let g = Graph::from_specs([spec("known", op(Const(1)), &[])]).unwrap();
    assert_eq!(g.ids_of(&keys(&["known"])).unwrap(), [0]);
    let err = g.ids_of(&keys(&["known", "not-here"])).unwrap_err();
    assert!(matches!(err, RaskError::InvalidGraph(_)), "{err:?}");
    assert!(err.to_string().contains("not-here"), "{err}");
    let block = Key::new(rask_graph::KeyName::new("known"), [3]);
    let err = g.ids_of(&[block]).unwrap_err();
    assert!(err.to_string().contains("('known', 3)"), "{err}");
}

#[test]
fn empty_graph_is_valid() {
    let g = Graph::from_specs(Vec::new()).unwrap();
    assert!(g.is_empty());
    assert!(rask_graph::order(&g).is_empty());
    assert_eq!(GraphBuilder::new().build().unwrap().len(), 0);
}
