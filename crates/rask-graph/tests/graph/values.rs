//! Values, layers and the builder.

use std::sync::Arc;

use rask_graph::{GraphBuilder, Key, KeyName, Layer, RaskError, TaskSpec, Value};

use crate::common::*;

#[test]
fn take_of_wrong_type_names_key_and_both_types() {
    let key = Key::new(KeyName::new("blocks"), [0, 1]);
    let err = Value::new(5i64).take::<String>(&key).unwrap_err();
    match &err {
        RaskError::TypeMismatch {
            key: k,
            expected,
            found,
        } => {
            assert_eq!(k, "('blocks', 0, 1)");
            assert_eq!(expected, std::any::type_name::<String>());
            assert_eq!(found, "i64");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("('blocks', 0, 1)") && msg.contains("String") && msg.contains("i64"),
        "{msg}"
    );

    // `get` says the same, and a shared value is not consumed by a failed `take`.
    let v = Value::new(vec![1.5f64, 2.5]);
    let w = v.clone();
    let err = w.take::<Vec<f32>>(&"v-key").unwrap_err().to_string();
    assert!(
        err.contains("v-key") && err.contains("Vec<f32>") && err.contains("Vec<f64>"),
        "{err}"
    );
    let err = v.get::<u8>(&"v-key").unwrap_err().to_string();
    assert!(
        err.contains("v-key") && err.contains("u8") && err.contains("Vec<f64>"),
        "{err}"
    );
    assert_eq!(v.take::<Vec<f64>>(&"v-key").unwrap(), [1.5, 2.5]);
}

#[test]
fn take_moves_the_last_reference_and_clones_shared_ones() {
    let v = Value::new(String::from("shared"));
    let w = v.clone();
    assert!(v.ptr_eq(&w));
    assert_eq!(v.nbytes(), w.nbytes());
    assert_eq!(w.take::<String>(&"k").unwrap(), "shared");
    assert_eq!(v.take::<String>(&"k").unwrap(), "shared");
    // nbytes counts the heap part.
    assert_eq!(
        Value::new(vec![0u64; 100]).nbytes(),
        std::mem::size_of::<Vec<u64>>() + 800
    );
    assert_eq!(
        Value::with_nbytes(std::sync::Mutex::new(1u8), 4096).nbytes(),
        4096
    );
}

#[test]
fn dropping_a_million_layer_chain_does_not_overflow() {
    // Each layer reads the one before: a million nested `Arc<Layer>`s, which the default
    // recursive drop would walk one stack frame per link. Run it on a thread with a small
    // stack so that recursion would fail for sure.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let key = Key::named("link");
            let op = op(Inc);
            let mut layer = Layer::single(TaskSpec::new(key.clone(), op.clone(), vec![]), vec![]);
            for _ in 1..1_000_000 {
                layer = Layer::single(
                    TaskSpec::new(key.clone(), op.clone(), vec![key.clone()]),
                    vec![layer],
                );
            }
            // Walk the chain to check its length before dropping it.
            let mut n = 1;
            let mut cur: &Arc<Layer> = &layer;
            while let Some(next) = cur.deps().first() {
                n += 1;
                cur = next;
            }
            assert_eq!(n, 1_000_000);
            drop(layer);
            // A chain still shared from outside is left to its other owner.
            let base = Layer::single(
                TaskSpec::new(Key::named("base"), op.clone(), vec![]),
                vec![],
            );
            let mut top = base.clone();
            for i in 0..100_000 {
                top = Layer::single(
                    TaskSpec::new(Key::named(format!("n{i}")), op.clone(), vec![]),
                    vec![top],
                );
            }
            drop(top);
            assert_eq!(Arc::strong_count(&base), 1);
            assert_eq!(base.tasks()[0].key, Key::named("base"));
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}

#[test]
fn builder_deduplicates_equal_keys_from_two_layers() {
    // Two layers each create `x` (separately built, equal keys: the same computation); a third
    // reads x from both sides.
    let left = Layer::new(
        vec![spec("x", op(Const(7)), &[]), spec("y", op(Inc), &["x"])],
        vec![],
    );
    let right = Layer::new(
        vec![spec("x", op(Const(7)), &[]), spec("z", op(Double), &["x"])],
        vec![],
    );
    let top = Layer::single(
        spec("sum", op(Add), &["x", "y", "z"]),
        vec![left.clone(), right.clone()],
    );
    let mut b = GraphBuilder::new();
    b.add_layer(&top);
    // Adding layers again (directly or through another path) adds nothing.
    b.add_layer(&left);
    b.add_layer(&top);
    assert_eq!(b.len(), 4);
    let g = b.build().unwrap();
    assert_eq!(key_set(&g), name_set(&["x", "y", "z", "sum"]));
    let ids = g.ids_of(&keys(&["sum", "x"])).unwrap();
    // x = 7, y = 8, z = 14, sum = 29.
    assert_eq!(int_values(&g, &ids), [29, 7]);
}

#[test]
fn builder_keeps_tasks_of_temporary_layers() {
    // Layers that live only for the `add_layer` call must all be added, even if a later layer
    // happens to be allocated where an earlier, already dropped one was.
    let mut b = GraphBuilder::new();
    for i in 0..100 {
        b.add_layer(&Layer::single(
            spec(&format!("tmp{i}"), op(Const(i)), &[]),
            vec![],
        ));
    }
    assert_eq!(b.len(), 100);
    let g = b.build().unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("tmp{i}")).collect();
    let ids = g
        .ids_of(&names.iter().map(Key::named).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(int_values(&g, &ids), (0..100).collect::<Vec<i64>>());
}

#[test]
fn builder_handles_a_deep_layer_chain() {
    // 100k layers, each reading the one before: flattening must not recurse either.
    let mut layer = Layer::single(spec("c0", op(Const(0)), &[]), vec![]);
    for i in 1..100_000 {
        let (k, p) = (format!("c{i}"), format!("c{}", i - 1));
        layer = Layer::single(spec(&k, op(Inc), &[&p]), vec![layer]);
    }
    let mut b = GraphBuilder::new();
    b.add_layer(&layer);
    let g = b.build().unwrap();
    assert_eq!(g.len(), 100_000);
    let ids = g.ids_of(&keys(&["c99999"])).unwrap();
    assert_eq!(int_values(&g, &ids), [99_999]);
}
