//! The static order: validity on random DAGs, and memory bounds on characteristic shapes.
//!
//! Bounds are derived in the comments of each test, in the model `max_live` measures: tasks
//! run one at a time; while a task runs, its inputs and its output are all alive; a value is
//! freed after its last dependent ran; requested outputs stay alive to the end.

use proptest::prelude::*;
use rask_graph::optimize::{OptimizeOptions, optimize};
use rask_graph::{Graph, Key, TaskId, TaskSpec, breadth_first, max_live, order};

use crate::common::*;

/// Checks that `priority` is a permutation of `0..n` in which every dependency comes first,
/// and returns the ids in run order.
fn check_valid_order(graph: &Graph, priority: &[u32]) -> Vec<TaskId> {
    let n = graph.len();
    assert_eq!(priority.len(), n);
    let mut by_position = vec![u32::MAX; n];
    for (id, &p) in priority.iter().enumerate() {
        assert!((p as usize) < n, "priority {p} out of range");
        assert_eq!(by_position[p as usize], u32::MAX, "priority {p} used twice");
        by_position[p as usize] = id as TaskId;
    }
    for (id, t) in graph.tasks().iter().enumerate() {
        for &d in &t.deps {
            assert!(
                priority[d as usize] < priority[id],
                "{} (priority {}) runs before its input {} (priority {})",
                t.key,
                priority[id],
                graph.task(d).key,
                priority[d as usize]
            );
        }
    }
    by_position
}

/// Independent oracle for `max_live`: at the step where the task at position `p` runs, a value
/// `q` is alive when it was produced at or before `p` and either is an output, or has a
/// dependent at position `p` or later, or is the task running now.
fn naive_max_live(graph: &Graph, priority: &[u32], outputs: &[TaskId]) -> usize {
    let n = graph.len();
    let mut last_use: Vec<Option<u32>> = vec![None; n];
    for (id, t) in graph.tasks().iter().enumerate() {
        for &d in &t.deps {
            let p = priority[id];
            let l = &mut last_use[d as usize];
            *l = Some(l.map_or(p, |x| x.max(p)));
        }
    }
    (0..n as u32)
        .map(|p| {
            (0..n)
                .filter(|&q| {
                    priority[q] <= p
                        && (priority[q] == p
                            || outputs.contains(&(q as TaskId))
                            || last_use[q].is_some_and(|l| l >= p))
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Adds a pairwise reduction of `inputs` with `Add` tasks named `{prefix}-{level}-{i}`; an odd
/// one out at a level moves up unchanged. Returns the root's key and the tree's height.
fn tree_reduce(specs: &mut Vec<TaskSpec>, mut inputs: Vec<Key>, prefix: &str) -> (Key, u32) {
    let mut level = 0;
    while inputs.len() > 1 {
        level += 1;
        let mut next = Vec::with_capacity(inputs.len().div_ceil(2));
        for (i, pair) in inputs.chunks(2).enumerate() {
            if pair.len() == 1 {
                next.push(pair[0].clone());
                continue;
            }
            let key = Key::named(format!("{prefix}-{level}-{i}"));
            specs.push(TaskSpec::new(key.clone(), op(Add), pair.to_vec()));
            next.push(key);
        }
        inputs = next;
    }
    (inputs.pop().expect("at least one input"), level)
}

/// A chain `{prefix}-0 <- {prefix}-1 <- ...` of `len` tasks, the first reading `first_input`
/// (or a constant source when `None`). Returns the last key.
fn chain(specs: &mut Vec<TaskSpec>, prefix: &str, len: usize, first_input: Option<&Key>) -> Key {
    let mut prev: Option<Key> = first_input.cloned();
    for j in 0..len {
        let key = Key::named(format!("{prefix}-{j}"));
        let spec = match prev {
            None => TaskSpec::new(key.clone(), op(Const(j as i64 + 1)), vec![]),
            Some(p) => TaskSpec::new(key.clone(), op(Inc), vec![p]),
        };
        specs.push(spec);
        prev = Some(key);
    }
    prev.expect("len > 0")
}

/// Runs the graph in the given order and returns the requested values: the order must be
/// executable.
fn values_in_order(graph: &Graph, priority: &[u32], outputs: &[TaskId]) -> Vec<i64> {
    let run = check_valid_order(graph, priority);
    let vals = evaluate_in(graph, &run);
    outputs
        .iter()
        .map(|&o| *vals[o as usize].get::<i64>(&"output").unwrap())
        .collect()
}

#[test]
fn binary_tree_reduction_of_1024_leaves() {
    let mut specs = Vec::new();
    let leaves: Vec<Key> = (0..1024)
        .map(|i| {
            let k = Key::named(format!("leaf-{i}"));
            specs.push(TaskSpec::new(k.clone(), op(Const(i)), vec![]));
            k
        })
        .collect();
    let (root, height) = tree_reduce(&mut specs, leaves, "sum");
    assert_eq!(height, 10);
    let g = Graph::from_specs(specs).unwrap();
    let outputs = g.ids_of(&[root]).unwrap();
    let priority = order(&g);
    assert_eq!(values_in_order(&g, &priority, &outputs), [1023 * 1024 / 2]);

    // Finishing one subtree before starting its sibling, a subtree of height h peaks at
    // M(h) = h + 2 values: M(0) = 1 (a leaf), M(1) = 3 (two leaves and their sum), and
    // M(h) = 1 + M(h - 1) (the finished left half held while the right half runs). So
    // M(10) = 12 = log2(1024) + 2. No order does better: a complete binary tree of height h
    // needs h + 2 pebbles in the black pebble game without sliding, which is this model.
    let live = max_live(&g, &priority, &outputs);
    assert_eq!(live, naive_max_live(&g, &priority, &outputs));
    assert!(live <= 12, "max_live {live} > 12");
    assert_eq!(live, 12);

    // Breadth-first runs every leaf before any sum: at least 1024 values at once.
    let bf = breadth_first(&g);
    check_valid_order(&g, &bf);
    let bf_live = max_live(&g, &bf, &outputs);
    assert!(bf_live >= 512, "breadth-first max_live {bf_live}");
    assert!(bf_live >= 1024, "breadth-first max_live {bf_live}");
}

#[test]
fn independent_chains_into_a_tree_sum() {
    // 64 chains of 5 tasks, their ends summed pairwise (a tree of height 6).
    let mut specs = Vec::new();
    let ends: Vec<Key> = (0..64)
        .map(|c| chain(&mut specs, &format!("chain{c}"), 5, None))
        .collect();
    let (root, height) = tree_reduce(&mut specs, ends, "sum");
    assert_eq!(height, 6);
    let g = Graph::from_specs(specs).unwrap();
    let outputs = g.ids_of(&[root]).unwrap();
    let priority = order(&g);
    // Each chain starts at 1 and is incremented 4 times: 5 each.
    assert_eq!(values_in_order(&g, &priority, &outputs), [64 * 5]);

    // A chain alone peaks at 2 (a task and its input). As in the tree above, with leaves
    // peaking at 2: M(0) = 2, M(1) = max(2, 1 + 2, 3) = 3, M(h) = 1 + M(h - 1), so
    // M(6) = 8 = log2(64) + 2, within the log2(64) + 5 asked for. No order does better: the
    // chain ends form a complete binary tree of height 6, which alone needs 6 + 2 pebbles.
    let live = max_live(&g, &priority, &outputs);
    assert_eq!(live, naive_max_live(&g, &priority, &outputs));
    assert!(live <= 6 + 5, "max_live {live} > log2(64) + 5");
    assert_eq!(live, 8);
}

#[test]
fn shared_root_feeding_chains_into_a_tree_sum() {
    // One root read by the first task of 100 chains of 3 tasks; the chain ends are summed
    // pairwise (100 -> 50 -> 25 -> 13 -> 7 -> 4 -> 2 -> 1: height 7).
    let mut specs = vec![TaskSpec::new(Key::named("root"), op(Const(10)), vec![])];
    let root = Key::named("root");
    let ends: Vec<Key> = (0..100)
        .map(|c| chain(&mut specs, &format!("chain{c}"), 3, Some(&root)))
        .collect();
    let (sink, height) = tree_reduce(&mut specs, ends, "sum");
    assert_eq!(height, 7);
    let g = Graph::from_specs(specs).unwrap();
    let outputs = g.ids_of(&[sink]).unwrap();
    let priority = order(&g);
    assert_eq!(values_in_order(&g, &priority, &outputs), [100 * 13]);

    // The root stays alive until the last chain has read it: 1 value for the whole run.
    // Besides it, the rest is a tree whose leaves (chains) peak at 2, so a subtree of height h
    // peaks at most at h + 2 whichever child runs first (max(M(c0), 1 + M(c1), 3) with both
    // children of height <= h - 1). Height 7 gives 9, plus the root: 10.
    let live = max_live(&g, &priority, &outputs);
    assert_eq!(live, naive_max_live(&g, &priority, &outputs));
    assert!(live <= 10, "max_live {live} > 10");
}

#[test]
fn independent_chains_each_requested() {
    // 32 chains of 4 tasks, each chain's end a requested output.
    let mut specs = Vec::new();
    let ends: Vec<Key> = (0..32)
        .map(|c| chain(&mut specs, &format!("chain{c}"), 4, None))
        .collect();
    let g = Graph::from_specs(specs).unwrap();
    let outputs = g.ids_of(&ends).unwrap();
    let priority = order(&g);
    assert_eq!(values_in_order(&g, &priority, &outputs), vec![4; 32]);

    // Outputs stay alive, so whichever chain runs last does so with the 31 other outputs held,
    // and its last task needs its input and its output: 31 + 2 = 33 is a lower bound for any
    // order. Running chains one after another meets it (k finished outputs + a chain's 2).
    let live = max_live(&g, &priority, &outputs);
    assert_eq!(live, naive_max_live(&g, &priority, &outputs));
    assert_eq!(live, 32 + 1);
    // Breadth-first runs the chains side by side: at the step that starts their second
    // tasks, all 32 first values plus one new value are alive; by the end, 32 outputs.
    let bf = breadth_first(&g);
    assert_eq!(max_live(&g, &bf, &outputs), 33);
}

#[test]
fn max_live_by_hand() {
    //   a   b
    //    \ / \
    //     c   d      outputs: c, d
    let g = Graph::from_specs([
        spec("a", op(Const(1)), &[]),
        spec("b", op(Const(2)), &[]),
        spec("c", op(Add), &["a", "b"]),
        spec("d", op(Inc), &["b"]),
    ])
    .unwrap();
    let outputs = g.ids_of(&keys(&["c", "d"])).unwrap();
    let id = |k: &str| g.id_of(&Key::named(k)).unwrap() as usize;
    let prio = |run: [&str; 4]| {
        let mut p = vec![0u32; 4];
        for (pos, k) in run.iter().enumerate() {
            p[id(k)] = pos as u32;
        }
        p
    };
    // a, b, c, d: a,b (2); c runs: a,b,c (3), a freed; d: b,c,d (3), b freed. Peak 3.
    assert_eq!(max_live(&g, &prio(["a", "b", "c", "d"]), &outputs), 3);
    // b, d, a, c: b,d (2); a: b,d,a (3); c: b,d,a,c (4). Peak 4.
    assert_eq!(max_live(&g, &prio(["b", "d", "a", "c"]), &outputs), 4);
    // Without outputs (nothing requested), an unread sink is dropped right away:
    // a, b, c (3, then c and a dropped), d (b, d: 2). Peak 3.
    assert_eq!(max_live(&g, &prio(["a", "b", "c", "d"]), &[]), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_is_a_topological_permutation(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        let priority = order(&g);
        check_valid_order(&g, &priority);
        prop_assert_eq!(values_in_order(&g, &priority, &ids), dag.expected_outputs());
        prop_assert_eq!(max_live(&g, &priority, &ids), naive_max_live(&g, &priority, &ids));
        let bf = breadth_first(&g);
        check_valid_order(&g, &bf);
        prop_assert_eq!(max_live(&g, &bf, &ids), naive_max_live(&g, &bf, &ids));

        // The same on the optimized graph.
        let (opt, new_ids) = optimize(g, &ids, OptimizeOptions::default());
        let priority = order(&opt);
        check_valid_order(&opt, &priority);
        prop_assert_eq!(values_in_order(&opt, &priority, &new_ids), dag.expected_outputs());
        prop_assert_eq!(
            max_live(&opt, &priority, &new_ids),
            naive_max_live(&opt, &priority, &new_ids)
        );
    }
}
