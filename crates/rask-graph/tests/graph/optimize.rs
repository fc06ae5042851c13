//! cull, inline_cheap, fuse_linear and optimize against hand computations and a naive
//! evaluator of random DAGs.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rask_graph::optimize::{OptimizeOptions, cull, fuse_linear, inline_cheap, optimize};
use rask_graph::{Cost, Graph, Key, TaskId};

use crate::common::*;

/// A graph with a used part and dead branches:
///
/// ```text
///   a   b   c        dead1 <- a    lonely
///    \ / \ /          dead2 <- dead1, c
///     ab  bc
///      \  /
///      top
/// ```
fn culling_graph() -> Graph {
    Graph::from_specs([
        spec("a", op(Const(1)), &[]),
        spec("b", op(Const(2)), &[]),
        spec("c", op(Const(3)), &[]),
        spec("ab", op(Add), &["a", "b"]),
        spec("bc", op(Mul), &["b", "c"]),
        spec("top", op(Add), &["ab", "bc"]),
        spec("dead1", op(Inc), &["a"]),
        spec("dead2", op(Add), &["dead1", "c"]),
        spec("lonely", op(Const(9)), &[]),
    ])
    .unwrap()
}

#[test]
fn cull_keeps_exactly_the_ancestors_of_the_outputs() {
    let g = culling_graph();
    let cases: &[(&[&str], &[&str], &[i64])] = &[
        (&["top"], &["a", "b", "c", "ab", "bc", "top"], &[3 + 6]),
        (&["ab"], &["a", "b", "ab"], &[3]),
        (&["bc", "dead1"], &["a", "b", "c", "bc", "dead1"], &[6, 2]),
        (
            &["dead2", "ab"],
            &["a", "b", "c", "ab", "dead1", "dead2"],
            &[5, 3],
        ),
        (&["lonely"], &["lonely"], &[9]),
        (
            &["top", "top"],
            &["a", "b", "c", "ab", "bc", "top"],
            &[9, 9],
        ),
    ];
    for &(outputs, kept, values) in cases {
        let out_keys = keys(outputs);
        let ids = g.ids_of(&out_keys).unwrap();
        let (culled, new_ids) = cull(g.clone(), &ids);
        assert_valid(&culled);
        assert_eq!(key_set(&culled), name_set(kept), "outputs {outputs:?}");
        let new_keys: Vec<Key> = new_ids
            .iter()
            .map(|&i| culled.task(i).key.clone())
            .collect();
        assert_eq!(new_keys, out_keys);
        assert_eq!(int_values(&culled, &new_ids), values, "outputs {outputs:?}");
    }
    // Nothing requested, nothing kept; everything requested, everything kept.
    assert_eq!(cull(g.clone(), &[]).0.len(), 0);
    let all: Vec<TaskId> = (0..g.len() as TaskId).collect();
    assert_eq!(cull(g.clone(), &all).0.len(), g.len());
}

/// `x = [10, 20, 30]` (normal); `g0 = x[0]`, `g2 = x[2]` (cheap); `s = g0 + g2`;
/// `ten` is a cheap literal read by both `t = s + ten` and `u = s * ten`.
fn getitem_graph() -> Graph {
    Graph::from_specs([
        spec("x", op(MakeVec(vec![10, 20, 30])), &[]),
        spec("g0", op(GetItem(0)), &["x"]),
        spec("g2", op(GetItem(2)), &["x"]),
        spec("s", op(Add), &["g0", "g2"]),
        spec("ten", lit(10), &[]),
        spec("t", op(Add), &["s", "ten"]),
        spec("u", op(Mul), &["s", "ten"]),
    ])
    .unwrap()
}

#[test]
fn inline_cheap_removes_cheap_non_outputs() {
    let g = getitem_graph();
    let out_keys = keys(&["t", "u"]);
    let ids = g.ids_of(&out_keys).unwrap();
    // By hand: s = 10 + 30 = 40, t = 50, u = 400.
    assert_eq!(int_values(&g, &ids), [50, 400]);
    let (inlined, new_ids) = inline_cheap(g.clone(), &ids);
    assert_valid(&inlined);
    assert_eq!(key_set(&inlined), name_set(&["x", "s", "t", "u"]));
    assert_eq!(int_values(&inlined, &new_ids), [50, 400]);
    // `s` now reads `x` directly (both getitems folded into it, `x` once), and `t`/`u` read
    // only `s` (the literal folded into each).
    let id = |k: &str| inlined.id_of(&Key::named(k)).unwrap();
    assert_eq!(inlined.task(id("s")).deps.as_slice(), [id("x")]);
    assert_eq!(inlined.task(id("t")).deps.as_slice(), [id("s")]);
    assert_eq!(inlined.task(id("u")).deps.as_slice(), [id("s")]);
    assert_eq!(
        inlined
            .task(id("s"))
            .op
            .as_composite()
            .unwrap()
            .steps()
            .len(),
        3
    );
    for t in inlined.tasks() {
        assert_ne!(
            t.op.cost(),
            Cost::Cheap,
            "{} is cheap and was not inlined",
            t.key
        );
    }
}

#[test]
fn inline_cheap_keeps_requested_cheap_outputs() {
    let g = getitem_graph();
    let out_keys = keys(&["g0", "u", "ten"]);
    let ids = g.ids_of(&out_keys).unwrap();
    let (inlined, new_ids) = inline_cheap(g.clone(), &ids);
    assert_valid(&inlined);
    // g2 is folded into s; the requested cheap tasks g0 and ten stay (and, since inlining does
    // not cull, so does t).
    assert_eq!(
        key_set(&inlined),
        name_set(&["x", "g0", "ten", "s", "t", "u"])
    );
    let new_keys: Vec<Key> = new_ids
        .iter()
        .map(|&i| inlined.task(i).key.clone())
        .collect();
    assert_eq!(new_keys, out_keys);
    assert_eq!(int_values(&inlined, &new_ids), [10, 400, 10]);
}

#[test]
fn inline_cheap_chains_of_cheap_tasks() {
    // c1 -> c2 -> c3 all cheap, read by two normal tasks: each gets the whole chain.
    let g = Graph::from_specs([
        spec("base", op(MakeVec(vec![4, 5])), &[]),
        spec("c1", op(GetItem(1)), &["base"]),
        spec("c2", op(CheapInc), &["c1"]),
        spec("c3", op(CheapInc), &["c2"]),
        spec("p", op(Double), &["c3"]),
        spec("q", op(Add), &["c3", "c1"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["p", "q"])).unwrap();
    // c1 = 5, c2 = 6, c3 = 7, p = 14, q = 12.
    assert_eq!(int_values(&g, &ids), [14, 12]);
    let (inlined, new_ids) = inline_cheap(g.clone(), &ids);
    assert_valid(&inlined);
    assert_eq!(key_set(&inlined), name_set(&["base", "p", "q"]));
    assert_eq!(int_values(&inlined, &new_ids), [14, 12]);
}

struct CheapInc;
impl rask_graph::Op for CheapInc {
    fn name(&self) -> &str {
        "cheap_inc"
    }
    fn execute(&self, inputs: &[rask_graph::Value]) -> rask_graph::Result<rask_graph::Value> {
        Inc.execute(inputs)
    }
    fn cost(&self) -> Cost {
        Cost::Cheap
    }
}

#[test]
fn fuse_linear_fuses_a_chain_into_its_last_key() {
    let g = Graph::from_specs([
        spec("d", op(Inc), &["c"]),
        spec("b", op(Inc), &["a"]),
        spec("a", op(Const(1)), &[]),
        spec("c", op(Double), &["b"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["d"])).unwrap();
    // By hand: a = 1, b = 2, c = 4, d = 5.
    assert_eq!(int_values(&g, &ids), [5]);
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_valid(&fused);
    assert_eq!(fused.len(), 1);
    let task = fused.task(new_ids[0]);
    assert_eq!(task.key, Key::named("d"));
    assert!(task.deps.is_empty());
    let composite = task.op.as_composite().expect("a composite op");
    let names: Vec<&str> = composite.steps().iter().map(|s| s.op.name()).collect();
    assert_eq!(names, ["const", "inc", "double", "inc"]);
    assert_eq!(task.op.name(), "const+inc+double+inc");
    assert_eq!(int_values(&fused, &new_ids), [5]);
    // Nothing more to fuse.
    assert_eq!(fuse_linear(fused.clone(), &new_ids).0.len(), 1);
}

#[test]
fn fuse_linear_stops_at_a_shared_task() {
    //   a -> b -> c1 -> d1
    //         \-> c2 -> d2
    let g = Graph::from_specs([
        spec("a", op(Const(3)), &[]),
        spec("b", op(Inc), &["a"]),
        spec("c1", op(Double), &["b"]),
        spec("d1", op(Inc), &["c1"]),
        spec("c2", op(Inc), &["b"]),
        spec("d2", op(Double), &["c2"]),
    ])
    .unwrap();
    let out_keys = keys(&["d1", "d2"]);
    let ids = g.ids_of(&out_keys).unwrap();
    // b = 4, d1 = 2 * 4 + 1 = 9, d2 = 2 * (4 + 1) = 10.
    assert_eq!(int_values(&g, &ids), [9, 10]);
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_valid(&fused);
    assert_eq!(key_set(&fused), name_set(&["b", "d1", "d2"]));
    let id = |k: &str| fused.id_of(&Key::named(k)).unwrap();
    assert!(fused.task(id("b")).deps.is_empty());
    assert_eq!(fused.task(id("d1")).deps.as_slice(), [id("b")]);
    assert_eq!(fused.task(id("d2")).deps.as_slice(), [id("b")]);
    assert_eq!(int_values(&fused, &new_ids), [9, 10]);
}

#[test]
fn fuse_linear_stops_at_a_task_with_two_inputs() {
    // a -> b -> sum <- c: neither b nor c folds into sum (two inputs), a folds into b.
    let g = Graph::from_specs([
        spec("a", op(Const(3)), &[]),
        spec("b", op(Inc), &["a"]),
        spec("c", op(Const(10)), &[]),
        spec("sum", op(Add), &["b", "c"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["sum"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_valid(&fused);
    assert_eq!(key_set(&fused), name_set(&["b", "c", "sum"]));
    assert_eq!(int_values(&fused, &new_ids), [14]);
}

#[test]
fn fuse_linear_fuses_a_task_read_twice_by_its_only_dependent() {
    // x -> a = x + x -> b = a + 1: a reads only x (twice) and is x's only dependent, so the
    // chain is linear and fuses into b in one pass.
    let g = Graph::from_specs([
        spec("x", op(Const(3)), &[]),
        spec("a", op(Add), &["x", "x"]),
        spec("b", op(Inc), &["a"]),
        spec("c", op(Mul), &["b", "b", "b"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["c"])).unwrap();
    // a = 6, b = 7, c = 343.
    assert_eq!(int_values(&g, &ids), [343]);
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_valid(&fused);
    assert_eq!(key_set(&fused), name_set(&["c"]));
    assert_eq!(int_values(&fused, &new_ids), [343]);
    // Read twice by two different tasks: not linear.
    let g = Graph::from_specs([
        spec("x", op(Const(3)), &[]),
        spec("a", op(Add), &["x", "x"]),
        spec("b", op(Mul), &["x", "x"]),
        spec("c", op(Add), &["a", "b"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["c"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_eq!(key_set(&fused), name_set(&["x", "a", "b", "c"]));
    assert_eq!(int_values(&fused, &new_ids), [6 + 9]);
}

#[test]
fn fuse_linear_keeps_requested_outputs() {
    let g = Graph::from_specs([
        spec("a", op(Const(1)), &[]),
        spec("b", op(Inc), &["a"]),
        spec("c", op(Double), &["b"]),
        spec("d", op(Inc), &["c"]),
    ])
    .unwrap();
    let out_keys = keys(&["b", "d"]);
    let ids = g.ids_of(&out_keys).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_valid(&fused);
    // a folds into b, c folds into d; b stays because it was requested.
    assert_eq!(key_set(&fused), name_set(&["b", "d"]));
    let new_keys: Vec<Key> = new_ids.iter().map(|&i| fused.task(i).key.clone()).collect();
    assert_eq!(new_keys, out_keys);
    assert_eq!(fused.task(new_ids[1]).deps.as_slice(), [new_ids[0]]);
    assert_eq!(int_values(&fused, &new_ids), [2, 5]);
}

#[test]
fn optimize_on_the_getitem_graph() {
    let g = getitem_graph();
    let ids = g.ids_of(&keys(&["u"])).unwrap();
    let (opt, new_ids) = optimize(g, &ids, OptimizeOptions::default());
    assert_valid(&opt);
    // cull drops t; inlining folds g0, g2 into s and ten into u; then x -> s -> u is a
    // linear chain fused into u.
    assert_eq!(key_set(&opt), name_set(&["u"]));
    assert_eq!(int_values(&opt, &new_ids), [400]);
}

/// Checks that `opt` computes the requested outputs of `dag` under their keys.
fn check_same_outputs(dag: &RandomDag, opt: &Graph, new_ids: &[TaskId], what: &str) {
    assert_valid(opt);
    assert_eq!(new_ids.len(), dag.outputs.len(), "{what}");
    let new_keys: Vec<Key> = new_ids.iter().map(|&i| opt.task(i).key.clone()).collect();
    assert_eq!(new_keys, dag.output_keys(), "{what}");
    assert_eq!(int_values(opt, new_ids), dag.expected_outputs(), "{what}");
}

fn logical_keys(indices: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
    indices
        .into_iter()
        .map(|i| RandomDag::key(i).to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unoptimized_graph_matches_the_oracle(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        check_same_outputs(&dag, &g, &ids, "unoptimized");
    }

    #[test]
    fn cull_matches_the_oracle(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        let (culled, new_ids) = cull(g.clone(), &ids);
        check_same_outputs(&dag, &culled, &new_ids, "cull");
        prop_assert_eq!(key_set(&culled), logical_keys(dag.ancestors_of_outputs()));
    }

    #[test]
    fn inline_cheap_matches_the_oracle(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        let (inlined, new_ids) = inline_cheap(g.clone(), &ids);
        check_same_outputs(&dag, &inlined, &new_ids, "inline_cheap");
        // Exactly the cheap tasks that are not outputs and have a dependent disappear.
        let deg = dag.out_degree();
        let kept = (0..dag.tasks.len())
            .filter(|&i| !(dag.tasks[i].cheap && !dag.outputs.contains(&i) && deg[i] > 0));
        prop_assert_eq!(key_set(&inlined), logical_keys(kept));
    }

    #[test]
    fn fuse_linear_matches_the_oracle(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        let (fused, new_ids) = fuse_linear(g.clone(), &ids);
        check_same_outputs(&dag, &fused, &new_ids, "fuse_linear");
        // `a` disappears when it is not an output, exactly one task reads it, and that task
        // reads nothing else (reading `a` several times is fine).
        let absorbed = |a: usize| {
            let readers: Vec<&RTask> = dag.tasks.iter().filter(|t| t.deps.contains(&a)).collect();
            !dag.outputs.contains(&a) && readers.len() == 1 && readers[0].deps.iter().all(|&d| d == a)
        };
        let kept = (0..dag.tasks.len()).filter(|&i| !absorbed(i));
        prop_assert_eq!(key_set(&fused), logical_keys(kept));
        // A second pass finds nothing left to fuse.
        let (again, _) = fuse_linear(fused.clone(), &new_ids);
        prop_assert_eq!(again.len(), fused.len());
    }

    #[test]
    fn optimize_matches_the_oracle(dag in random_dag(60)) {
        let g = dag.graph();
        let ids = g.ids_of(&dag.output_keys()).unwrap();
        for mask in 0..8u8 {
            let opts = OptimizeOptions { cull: mask & 1 != 0, inline: mask & 2 != 0, fuse: mask & 4 != 0 };
            let (opt, new_ids) = optimize(g.clone(), &ids, opts);
            check_same_outputs(&dag, &opt, &new_ids, &format!("{opts:?}"));
            if opts.cull {
                // Never more tasks than the outputs' ancestors.
                prop_assert!(opt.len() <= dag.ancestors_of_outputs().len());
            }
            if opts.cull && opts.inline {
                // Every cheap task left is a requested output.
                for (i, t) in opt.tasks().iter().enumerate() {
                    if t.op.cost() == Cost::Cheap {
                        prop_assert!(new_ids.contains(&(i as TaskId)), "{} is cheap", t.key);
                    }
                }
            }
        }
    }
}
