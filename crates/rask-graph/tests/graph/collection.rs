//! `Collection` for tuples, `Vec`s, slices and references: output keys in order, and
//! `finalize` handing each part exactly its own values.

use std::sync::Arc;

use rask_graph::{Collection, GraphBuilder, Key, Layer, RaskError, Result, TaskSpec, Value};

use crate::common::*;

/// One value: a `Delayed`-like collection.
struct Scalar {
    layer: Arc<Layer>,
    key: Key,
}

impl Scalar {
    fn constant(name: &str, v: i64) -> Scalar {
        let key = Key::named(name);
        let layer = Layer::single(TaskSpec::new(key.clone(), op(Const(v)), vec![]), vec![]);
        Scalar { layer, key }
    }

    fn inc(&self, name: &str) -> Scalar {
        let key = Key::named(name);
        let layer = Layer::single(
            TaskSpec::new(key.clone(), op(Inc), vec![self.key.clone()]),
            vec![self.layer.clone()],
        );
        Scalar { layer, key }
    }
}

impl Collection for Scalar {
    type Output = i64;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }
    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }
    fn finalize(&self, values: Vec<Value>) -> Result<i64> {
        if values.len() != 1 {
            return Err(RaskError::msg(format!(
                "{} got {} values",
                self.key,
                values.len()
            )));
        }
        values.into_iter().next().unwrap().take(&self.key)
    }
}

/// Several blocks: an array-like collection whose output is the blocks' values in order.
struct Blocks {
    layer: Arc<Layer>,
    keys: Vec<Key>,
}

impl Blocks {
    /// Blocks `name[i] = base + i`, each reading `base`.
    fn from(base: &Scalar, name: &str, n: u32) -> Blocks {
        let name = rask_graph::KeyName::new(name);
        let keys: Vec<Key> = (0..n).map(|i| Key::new(name.clone(), [i])).collect();
        let tasks = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let offset = format!("{name}-offset-{i}");
                TaskSpec::new(
                    k.clone(),
                    op(Add),
                    vec![base.key.clone(), Key::named(offset)],
                )
            })
            .chain((0..n).map(|i| {
                TaskSpec::new(
                    Key::named(format!("{name}-offset-{i}")),
                    lit(i as i64),
                    vec![],
                )
            }))
            .collect();
        Blocks {
            layer: Layer::new(tasks, vec![base.layer.clone()]),
            keys,
        }
    }
}

impl Collection for Blocks {
    type Output = Vec<i64>;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }
    fn output_keys(&self) -> Vec<Key> {
        self.keys.clone()
    }
    fn finalize(&self, values: Vec<Value>) -> Result<Vec<i64>> {
        if values.len() != self.keys.len() {
            return Err(RaskError::msg(format!(
                "{} blocks got {} values",
                self.keys.len(),
                values.len()
            )));
        }
        values
            .into_iter()
            .zip(&self.keys)
            .map(|(v, k)| v.take(k))
            .collect()
    }
}

/// What `compute` does: build the graph of a collection, run it, finalize.
fn compute<C: Collection + ?Sized>(c: &C) -> C::Output {
    let mut builder = GraphBuilder::new();
    builder.add_collection(c);
    let graph = builder.build().unwrap();
    let ids = graph.ids_of(&c.output_keys()).unwrap();
    let vals = evaluate(&graph);
    c.finalize(ids.iter().map(|&i| vals[i as usize].clone()).collect())
        .unwrap()
}

#[test]
fn tuple_splits_values_between_its_parts() {
    let a = Scalar::constant("a", 10);
    let b = a.inc("b");
    let blocks = Blocks::from(&b, "blk", 3);
    let pair = (b, blocks);
    let expected_keys: Vec<Key> = std::iter::once(Key::named("b"))
        .chain((0..3).map(|i| Key::new(rask_graph::KeyName::new("blk"), [i])))
        .collect();
    assert_eq!(pair.output_keys(), expected_keys);
    // b = 11; blk[i] = 11 + i.
    assert_eq!(compute(&pair), (11, vec![11, 12, 13]));

    // Three parts, the multi-valued one in the middle.
    let triple = (
        Scalar::constant("p", 1),
        Blocks::from(&a, "mid", 2),
        Scalar::constant("q", 2),
    );
    assert_eq!(compute(&triple), (1, vec![10, 11], 2));
    // A one-tuple and a reference.
    assert_eq!(compute(&(Scalar::constant("solo", 5),)), (5,));
    assert_eq!(compute(&&Scalar::constant("ref", 6)), 6);
}

#[test]
fn vec_splits_values_between_its_elements() {
    let base = Scalar::constant("base", 100);
    // Different lengths, an empty one among them: the split must follow each element's own
    // number of keys.
    let parts = vec![
        Blocks::from(&base, "first", 2),
        Blocks::from(&base, "empty", 0),
        Blocks::from(&base, "third", 3),
    ];
    assert_eq!(parts.output_keys().len(), 5);
    assert_eq!(
        compute(&parts),
        vec![vec![100, 101], vec![], vec![100, 101, 102]]
    );
    // The same through a slice.
    assert_eq!(compute(&parts[1..]), vec![vec![], vec![100, 101, 102]]);
    // A vector of scalars and a tuple holding vectors.
    let scalars: Vec<Scalar> = (0..4).map(|i| base.inc(&format!("s{i}"))).collect();
    assert_eq!(compute(&scalars), vec![101; 4]);
    let nested = (scalars, parts, Scalar::constant("tail", -1));
    assert_eq!(
        compute(&nested),
        (
            vec![101; 4],
            vec![vec![100, 101], vec![], vec![100, 101, 102]],
            -1
        )
    );
}

#[test]
fn shared_layers_are_built_once() {
    let base = Scalar::constant("shared-base", 1);
    let left = base.inc("left");
    let right = base.inc("right");
    let mut builder = GraphBuilder::new();
    builder.add_collection(&(left, right, base));
    // shared-base, left, right: the base layer is reached three times, added once.
    assert_eq!(builder.len(), 3);
}
