//! Array ops cross the wire: every task's op of a representative set of arrays is encoded
//! with `OpRegistry::encode`, decoded through the global registry, and the decoded graph run
//! (by the sync executor, and by a hand-run loop that also sends every intermediate value
//! through the value codec, as a cluster would) gives exactly the local result.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rask::array::{self, Axes, Element};
use rask::graph::{
    Collection, Graph, GraphBuilder, Op, OpRegistry, TaskId, TaskSpec, Value, optimize, order,
};
use rask::scheduler::{Executor, RunOptions};

/// `graph` with every op replaced by its decoded wire form.
fn wire_graph(graph: &Graph) -> Graph {
    let specs: Vec<TaskSpec> = graph
        .tasks()
        .iter()
        .map(|t| {
            let (name, params) = OpRegistry::encode(&*t.op)
                .unwrap_or_else(|e| panic!("op of {} does not encode: {e}", t.key));
            let op: Arc<dyn Op> = OpRegistry::global()
                .decode(&name, &params)
                .unwrap_or_else(|e| panic!("op `{name}` of {} does not decode: {e}", t.key));
            // Decoding is faithful: the rebuilt op encodes to the same bytes.
            assert_eq!(
                OpRegistry::encode(&*op).unwrap().1,
                params,
                "op `{name}` re-encodes differently"
            );
            assert_eq!(op.name(), t.op.name());
            TaskSpec::new(
                t.key.clone(),
                op,
                t.deps.iter().map(|&d| graph.task(d).key.clone()),
            )
        })
        .collect();
    Graph::from_specs(specs).unwrap()
}

/// Runs `graph` in topological order, sending every task's output through the value codec
/// before a dependent reads it.
fn run_through_codec(graph: &Graph, outputs: &[TaskId]) -> Vec<Value> {
    let mut values: Vec<Option<Value>> = vec![None; graph.len()];
    for &id in graph.topological_order().unwrap() {
        let task = graph.task(id);
        let inputs: Vec<Value> = task
            .deps
            .iter()
            .map(|&d| values[d as usize].clone().unwrap())
            .collect();
        let out = task.op.execute(&inputs).unwrap();
        let (tag, bytes) = out
            .encode()
            .unwrap_or_else(|e| panic!("output of {} does not encode: {e}", task.key));
        values[id as usize] = Some(Value::decode(tag, &bytes).unwrap());
    }
    outputs
        .iter()
        .map(|&o| values[o as usize].clone().unwrap())
        .collect()
}

/// Computes `c` locally, then through the wire three ways (raw graph on the sync executor,
/// optimized graph with its fused composites on the sync executor, raw graph with every
/// value through the codec), and checks all agree exactly. Returns the local result.
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
    assert_eq!(c.finalize(out.values).unwrap(), local, "raw graph");

    // The optimizer keeps the output keys, so they resolve in the decoded graph too.
    let raw_ids = graph.ids_of(&keys).unwrap();
    let (opt, _) = optimize::optimize(graph.clone(), &raw_ids, Default::default());
    let decoded = wire_graph(&opt);
    let ids = decoded.ids_of(&keys).unwrap();
    let out = rask::scheduler::run(
        Executor::Sync,
        &decoded,
        &ids,
        order(&decoded),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(c.finalize(out.values).unwrap(), local, "optimized graph");

    let ids = graph.ids_of(&keys).unwrap();
    let values = run_through_codec(&wire_graph(&graph), &ids);
    assert_eq!(
        c.finalize(values).unwrap(),
        local,
        "values through the codec"
    );
    local
}

fn grid<T: Element>(shape: &[usize], f: impl Fn(usize) -> T) -> ArrayD<T> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

#[test]
fn creation_ops_cross_the_wire() {
    // Large integers are carried exactly (not through f64).
    check(&array::full::<i64>(&[5, 3], i64::MAX - 1, 2).unwrap());
    check(&array::full::<f32>(&[4], -0.1, 3).unwrap());
    check(&array::full::<bool>(&[3], true, 2).unwrap());
    check(&array::arange::<i32>(-3.0, 17.0, 2.0, 4).unwrap());
    check(&array::linspace::<f64>(0.0, 1.0, 101, true, 7).unwrap());
    check(&array::eye::<u16>(5, Some(7), 1, 3).unwrap());
    let data = grid::<f64>(&[7, 5], |i| i as f64 * 0.25 - 3.0);
    check(&array::from_ndarray(data.clone(), vec![3, 2]).unwrap());
    let via_delayed = rask::array::from_delayed(&rask::value(data), &[7, 5]).unwrap();
    check(&via_delayed);
}

#[test]
fn a_linspace_sum_crosses_the_wire() {
    let x = array::linspace::<f64>(1.0, 10.0, 1000, true, 37).unwrap();
    let s = check(&x.sum(Axes::All).unwrap());
    assert_eq!(s.shape(), &[] as &[usize]);
}

#[test]
fn a_sliced_normal_mean_crosses_the_wire() {
    let x = array::random::normal(2.0, 3.0, &[40, 30], vec![7, 9], 42).unwrap();
    let y = x
        .slice(&rask::array::s![1..37;3, ..;-2])
        .unwrap()
        .mean(0)
        .unwrap();
    let m = check(&y);
    assert_eq!(m.shape(), &[15]);
    check(&array::random::uniform(-1.0, 1.0, &[9, 4], 4, 7).unwrap());
    check(&array::random::integers(-5, 100, &[11], 3, 8).unwrap());
}

#[test]
fn elementwise_with_broadcasting_crosses_the_wire() {
    let a = array::from_ndarray(grid::<f64>(&[6, 8], |i| i as f64 - 20.0), vec![4, 3]).unwrap();
    let row = array::from_ndarray(grid::<f64>(&[8], |i| i as f64 * 1.5), 5).unwrap();
    let col = array::from_ndarray(grid::<f64>(&[6, 1], |i| i as f64), 2).unwrap();
    check(&(&(&a + &row).unwrap() * &col).unwrap());
    check(&(&a / 3.0));
    check(&(2.0 - &a));
    check(&(&a % 7.0));
    check(&a.abs());
    check(&a.abs().sqrt().powf(1.5).round());
    check(&a.powi(3).clip(-100.0, 100.0).unwrap());
    check(&a.astype::<i16>());
    check(&a.astype::<i16>().astype::<u8>());
    let ints = array::arange::<i64>(-20.0, 20.0, 1.0, 7).unwrap();
    check(&(&ints * i64::MIN));
    check(&(&(&ints / 3) % 4));
    let big = a.gt_scalar(0.0);
    let mid = a.lt(&row).unwrap().logical_and(&big).unwrap();
    check(&mid);
    check(&mid.logical_not());
    check(&big.logical_or(&a.eq_scalar(-1.0)).unwrap());
    // where, broadcasting all three operands.
    check(&array::where_(&big, &a, &row).unwrap());
}

#[test]
fn reductions_cross_the_wire() {
    let x = array::from_ndarray(
        grid::<i32>(&[9, 10, 4], |i| ((i * 7919) % 23) as i32 - 11),
        vec![2, 3, 4],
    )
    .unwrap();
    let opts = array::ReduceOptions {
        keepdims: true,
        split_every: Some(2),
    };
    check(&x.sum([0, 2]).unwrap());
    check(&x.sum_with(1, opts).unwrap());
    check(&x.prod(2).unwrap());
    check(&x.min(Axes::All).unwrap());
    check(&x.max_with([0, 1], opts).unwrap());
    check(&x.mean(1).unwrap());
    check(&x.var(0, 1).unwrap());
    check(&x.std_with([0, 1], 0, opts).unwrap());
    check(&x.argmin(1).unwrap());
    check(&x.argmax(Axes::All).unwrap());
    check(&x.any(0).unwrap());
    check(&x.gt_scalar(-11).all(Axes::All).unwrap());
}

#[test]
fn rechunk_and_shape_ops_cross_the_wire() {
    let x = array::from_ndarray(grid::<u32>(&[6, 4, 10], |i| i as u32), vec![4, 3, 3]).unwrap();
    check(&x.rechunk(vec![3, 4, 5]).unwrap());
    check(&array::rechunk_with(&x, vec![6, 1, 10], Some(2000)).unwrap());
    check(&x.transpose(None).unwrap());
    check(&x.transpose(Some(&[1, 2, 0])).unwrap());
    check(&x.reshape(&[24, -1]).unwrap());
    check(&x.reshape(&[6, 40]).unwrap().transpose(None).unwrap());
    check(&x.expand_dims(1).unwrap().squeeze(1).unwrap());
    let row = array::arange::<u32>(0.0, 10.0, 1.0, 4).unwrap();
    check(&row.broadcast_to(&[3, 10]).unwrap());
    check(&array::stack(&[row.clone(), row.clone()], 0).unwrap());
    check(&array::concatenate(&[row.clone(), (&row * 2)], 0).unwrap());
}

#[test]
fn matmul_crosses_the_wire() {
    let a =
        array::from_ndarray(grid::<f64>(&[7, 9], |i| (i % 13) as f64 * 0.5), vec![3, 4]).unwrap();
    let b =
        array::from_ndarray(grid::<f64>(&[9, 5], |i| (i % 7) as f64 - 2.0), vec![2, 5]).unwrap();
    check(&array::matmul(&a, &b).unwrap());
    let ai = a.astype::<i64>();
    let bi = b.astype::<i64>();
    check(&ai.dot(&bi).unwrap());
}

#[test]
fn npy_and_zarr_ops_cross_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let data = grid::<i16>(&[13, 6], |i| i as i16 * 3 - 40);
    let x = array::from_ndarray(data.clone(), vec![5, 4]).unwrap();

    // Write through the decoded graph, then read (locally and through the wire).
    let path = dir.path().join("x.npy");
    check(&array::to_npy(&x, &path).unwrap());
    let back = check(&array::read_npy::<i16>(&path, vec![4, 6]).unwrap());
    assert_eq!(back, data);

    let stack_dir = dir.path().join("stack");
    check(&array::to_npy_stack(&x, &stack_dir).unwrap());
    assert_eq!(
        check(&array::read_npy_stack::<i16>(&stack_dir).unwrap()),
        data
    );

    let zarr = dir.path().join("x.zarr");
    check(&array::to_zarr(&x, &zarr).unwrap());
    assert_eq!(check(&array::read_zarr::<i16>(&zarr).unwrap()), data);
    let zarr_gz = dir.path().join("gz.zarr");
    let opts = array::ZarrOptions {
        gzip: Some(6),
        ..Default::default()
    };
    check(&array::to_zarr_with(&x, &zarr_gz, &opts).unwrap());
    assert_eq!(check(&array::read_zarr::<i16>(&zarr_gz).unwrap()), data);
}

#[test]
fn non_utf8_paths_cross_the_wire_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.npy");
    let path = dir.path().join(name);
    let x = array::arange::<f32>(0.0, 10.0, 1.0, 3).unwrap();
    check(&array::to_npy(&x, &path).unwrap());
    assert!(path.exists());
    check(&array::read_npy::<f32>(&path, 4).unwrap());
}

#[test]
fn map_blocks_stays_local_and_says_so() {
    let x = array::arange::<f64>(0.0, 10.0, 1.0, 5).unwrap();
    let y = x.map_blocks(|b| b.mapv(|v| v * 2.0));
    let mut b = GraphBuilder::new();
    y.add_layers(&mut b);
    let graph = b.build().unwrap();
    let local: Vec<_> = graph
        .tasks()
        .iter()
        .filter(|t| OpRegistry::encode(&*t.op).is_err())
        .collect();
    assert_eq!(local.len(), 2, "one map_blocks task per block");
    let err = OpRegistry::encode(&*local[0].op).unwrap_err().to_string();
    assert!(err.contains("rask.array.map_blocks"), "{err}");
}

#[test]
fn corrupt_array_params_are_errors_not_panics() {
    let reg = OpRegistry::global();
    let x = array::arange::<f64>(0.0, 10.0, 1.0, 5)
        .unwrap()
        .sum(0)
        .unwrap();
    let mut b = GraphBuilder::new();
    x.add_layers(&mut b);
    let graph = b.build().unwrap();
    for t in graph.tasks() {
        let (name, params) = OpRegistry::encode(&*t.op).unwrap();
        for cut in 0..params.len() {
            assert!(
                reg.decode(&name, &params[..cut]).is_err(),
                "{name} cut {cut}"
            );
        }
    }
    // A dtype with no instance of the op names both.
    let params = (
        "complex128",
        1.0f64,
        1.0f64,
        0usize,
        3usize,
        None::<(usize, f64)>,
    );
    let bad = rask::graph::encode_params("test", &params).unwrap();
    let err = reg
        .decode("rask.array.range", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("complex128") && err.contains("rask.array.range"),
        "{err}"
    );
}
