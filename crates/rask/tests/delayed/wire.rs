//! `#[delayed]` calls, `sum` and the operators cross the wire: each task's op is encoded with
//! `OpRegistry::encode`, decoded through the global registry (as a worker running this binary
//! would), and the decoded graph computes what the local one does. Closures stay local and
//! say so.

use std::sync::Arc;

use rask::graph::{Collection, Graph, GraphBuilder, Op, OpRegistry, TaskId, TaskSpec, order};
use rask::prelude::*;
use rask::scheduler::RunOptions;

#[rask::delayed(pure)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Borrowed parameters (`&[f64]` stores a `Vec<f64>`), a `String`, a `Vec` result.
#[rask::delayed(pure)]
fn scale(xs: &[f64], unit: String) -> Vec<f64> {
    let factor = match unit.as_str() {
        "km" => 1000.0,
        "cm" => 0.01,
        _ => 1.0,
    };
    xs.iter().map(|x| x * factor).collect()
}

#[rask::delayed]
fn parse(s: &str) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse()
}

/// A type without a wire encoding still makes a valid `#[delayed]` function.
#[derive(Clone)]
struct Opaque(i64);
impl rask::Data for Opaque {}

#[rask::delayed]
fn open_opaque(o: Opaque) -> i64 {
    o.0
}

fn wire_graph(graph: &Graph) -> Graph {
    let specs: Vec<TaskSpec> = graph
        .tasks()
        .iter()
        .map(|t| {
            let (name, params) = OpRegistry::encode(&*t.op)
                .unwrap_or_else(|e| panic!("op of {} does not encode: {e}", t.key));
            let op: Arc<dyn Op> = OpRegistry::global()
                .decode(&name, &params)
                .unwrap_or_else(|e| panic!("op `{name}` does not decode: {e}"));
            assert_eq!(op.name(), t.op.name());
            assert_eq!(OpRegistry::encode(&*op).unwrap().1, params);
            TaskSpec::new(
                t.key.clone(),
                op,
                t.deps.iter().map(|&d| graph.task(d).key.clone()),
            )
        })
        .collect();
    Graph::from_specs(specs).unwrap()
}

/// Runs `graph` by hand, each output through the value codec before its dependents read it.
fn run_through_codec(graph: &Graph, outputs: &[TaskId]) -> Vec<rask::Value> {
    let mut values: Vec<Option<rask::Value>> = vec![None; graph.len()];
    for &id in graph.topological_order().unwrap() {
        let task = graph.task(id);
        let inputs: Vec<rask::Value> = task
            .deps
            .iter()
            .map(|&d| values[d as usize].clone().unwrap())
            .collect();
        let out = task.op.execute(&inputs).unwrap();
        let (tag, bytes) = out.encode().unwrap();
        values[id as usize] = Some(rask::Value::decode(tag, &bytes).unwrap());
    }
    outputs
        .iter()
        .map(|&o| values[o as usize].clone().unwrap())
        .collect()
}

/// The local result of `c`, checked against the decoded graph run by the sync executor and
/// by hand with every value through the codec.
fn check<C>(c: &C) -> C::Output
where
    C: Collection,
    C::Output: PartialEq + std::fmt::Debug,
{
    let local = rask::compute(c).unwrap();
    let mut b = GraphBuilder::new();
    c.add_layers(&mut b);
    let keys = c.output_keys();
    let (graph, _) = b.build_with_outputs(&keys).unwrap();
    let decoded = wire_graph(&graph);
    let ids = decoded.ids_of(&keys).unwrap();
    let out = rask::scheduler::run(
        Executor::Sync,
        &decoded,
        &ids,
        order(&decoded),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(c.finalize(out.values).unwrap(), local);
    let values = run_through_codec(&decoded, &ids);
    assert_eq!(c.finalize(values).unwrap(), local);
    local
}

#[test]
fn delayed_functions_cross_the_wire() {
    let total = add(inc(1), inc(2));
    assert_eq!(check(&total), 5);
    // The op is named by the function's path and registered under it.
    let name = format!("{}::inc", module_path!());
    assert!(OpRegistry::global().contains(&name), "{name}");

    let km = scale(vec![1.5, -2.0], String::from("km"));
    assert_eq!(check(&km), vec![1500.0, -2000.0]);
    // A dependency in a borrowed slot, a literal in the other.
    let cm = scale(&km, String::from("cm"));
    assert_eq!(check(&cm), vec![15.0, -20.0]);
    let both = (add(inc(10), 5), cm);
    assert_eq!(check(&both), (16, vec![15.0, -20.0]));
    assert_eq!(check(&parse(String::from(" 42 "))), 42);
}

#[test]
fn a_failing_function_fails_the_same_way_after_the_wire() {
    let bad = parse(String::from("x"));
    let mut b = GraphBuilder::new();
    bad.add_layers(&mut b);
    let graph = wire_graph(&b.build().unwrap());
    let err = graph.tasks()[0].op.execute(&[]).unwrap_err().to_string();
    assert!(err.contains("invalid digit"), "{err}");
}

#[test]
fn sum_and_operators_cross_the_wire() {
    let (a, b) = (inc(1), inc(5));
    assert_eq!(
        check(&rask::sum(vec![a.clone(), b.clone(), inc(7)])),
        2 + 6 + 8
    );
    assert_eq!(check(&(&a + &b)), 8);
    assert_eq!(check(&(a.clone() - b.clone())), -4);
    assert_eq!(check(&(a.clone() * 3)), 6);
    assert_eq!(check(&(100 / b.clone())), 16);
    assert_eq!(check(&(b.clone() % 4)), 2);
    assert_eq!(check(&-a.clone()), -2);
    assert_eq!(check(&(a.clone() + a.clone())), 4);
    let x = rask::value(2.5f64);
    let y = rask::value(0.5f32);
    assert_eq!(check(&(x.clone() * x.clone() - 1.0)), 5.25);
    assert_eq!(check(&rask::sum(vec![y.clone(), y.clone()])), 1.0);
    assert_eq!(check(&(-(y / 2.0))), -0.25);
    assert_eq!(
        check(&rask::sum(vec![rask::value(3u8), rask::value(4u8)])),
        7
    );
    // Each built-in number type has its own registered op.
    for name in [
        "rask.sum<i64>",
        "rask.add<f64>",
        "rask.neg<i32>",
        "rask.mod<u64>",
    ] {
        assert!(OpRegistry::global().contains(name), "{name}");
    }
}

#[test]
fn two_identical_pure_calls_still_share_one_key() {
    assert_eq!(inc(1).key(), inc(1).key());
    assert_ne!(inc(1).key(), inc(2).key());
    assert_eq!(
        scale(vec![1.0], "km".to_string()).key(),
        scale(vec![1.0], "km".to_string()).key()
    );
    let (x, y) = (inc(3), inc(3));
    let mut b = GraphBuilder::new();
    (x, y).add_layers(&mut b);
    assert_eq!(b.build().unwrap().len(), 1);
    assert_eq!(rask::sum(vec![inc(1)]).key(), rask::sum(vec![inc(1)]).key());
    assert_eq!((inc(1) + inc(2)).key(), (inc(1) + inc(2)).key());
}

fn encode_error(d: &impl Collection) -> String {
    let mut b = GraphBuilder::new();
    d.add_layers(&mut b);
    let keys = d.output_keys();
    let (graph, ids) = b.build_with_outputs(&keys).unwrap();
    OpRegistry::encode(&*graph.task(ids[0]).op)
        .unwrap_err()
        .to_string()
}

#[test]
fn closures_stay_local_with_an_error_naming_the_op() {
    let f = rask::delayed(|x: i64| x);
    let d = f.call((1,));
    let err = encode_error(&d);
    assert!(
        err.contains("closure") && err.contains("closures_stay_local"),
        "{err}"
    );
    let err = encode_error(&inc(1).map(|x| x + 1));
    assert!(err.contains("rask.map"), "{err}");
    let err = encode_error(
        &rask::tree_reduce(vec![inc(1), inc(2)], 2, |xs| xs.iter().copied().sum()).unwrap(),
    );
    assert!(err.contains("rask.tree_reduce"), "{err}");
}

#[test]
fn unportable_values_and_generic_ops_name_what_is_at_fault() {
    // A literal argument whose type has no spill: the error names the op and the type.
    let err = encode_error(&open_opaque(Opaque(3)));
    assert!(
        err.contains("open_opaque") && err.contains("Opaque"),
        "{err}"
    );
    // It still runs locally.
    assert_eq!(open_opaque(Opaque(3)).compute().unwrap(), 3);

    // `sum` over a type rask has no named op for.
    #[derive(Clone, Debug, PartialEq)]
    struct Meters(f64);
    impl rask::Data for Meters {}
    impl std::iter::Sum for Meters {
        fn sum<I: Iterator<Item = Meters>>(it: I) -> Meters {
            Meters(it.map(|m| m.0).sum())
        }
    }
    let s = rask::sum(vec![rask::value(Meters(1.0)), rask::value(Meters(2.0))]);
    let err = encode_error(&s);
    assert!(err.contains("rask.sum"), "{err}");
    assert_eq!(s.compute().unwrap(), Meters(3.0));
}

fn twin_a() -> Delayed<i64> {
    #[rask::delayed(pure)]
    fn twin(x: i64) -> i64 {
        x
    }
    twin(1)
}

fn twin_b() -> Delayed<i64> {
    #[rask::delayed(pure)]
    fn twin(x: i64) -> i64 {
        x * 2
    }
    twin(1)
}

#[test]
fn two_functions_of_one_name_in_one_module_are_refused_on_decode() {
    // Locally they are different tasks computing different values...
    assert_ne!(twin_a().key(), twin_b().key());
    assert_eq!((twin_a(), twin_b()).compute().unwrap(), (1, 2));
    // ...but a worker could not tell their ops apart by name.
    let mut b = GraphBuilder::new();
    twin_a().add_layers(&mut b);
    let graph = b.build().unwrap();
    let (name, params) = OpRegistry::encode(&*graph.tasks()[0].op).unwrap();
    let err = OpRegistry::global()
        .decode(&name, &params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("twin") && err.contains("several ops"), "{err}");
}
