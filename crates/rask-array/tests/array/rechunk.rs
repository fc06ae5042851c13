//! Rechunking: any old -> new chunking gives back the input; with a bound, every task of the
//! plan (output plus inputs) stays within it.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rask::array::{self, Array};
use rask::prelude::*;

fn nd(shape: &[usize]) -> ArrayD<i64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n as i64).collect()).unwrap()
}

fn chunking(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..7, 1..16).prop_map(move |v| {
        if len == 0 {
            return vec![0];
        }
        let mut out = Vec::new();
        let mut left = len;
        for c in v.into_iter().cycle() {
            let c = c.min(left);
            out.push(c);
            left -= c;
            if left == 0 {
                break;
            }
        }
        out
    })
}

type Case = (Vec<usize>, Vec<Vec<usize>>, Vec<Vec<usize>>);

fn case() -> impl Strategy<Value = Case> {
    prop::collection::vec(0usize..15, 1..4).prop_flat_map(|shape| {
        let old: Vec<_> = shape.iter().map(|&n| chunking(n)).collect();
        let new: Vec<_> = shape.iter().map(|&n| chunking(n)).collect();
        (Just(shape), old, new)
    })
}

/// The largest rechunk task in the graph: its projected output plus its inputs' bytes.
fn largest_rechunk_task(x: &Array<i64>) -> u64 {
    let g = x.graph().unwrap();
    let mut size: HashMap<usize, u64> = HashMap::new();
    let mut worst = 0;
    for &id in g.topological_order().unwrap() {
        let task = g.task(id);
        let ins: Vec<u64> = task.deps.iter().map(|d| size[&(*d as usize)]).collect();
        let out = task.op.projected_nbytes(&ins).expect("projected size");
        if task.op.name() == "rask.array.assemble" {
            worst = worst.max(out + ins.iter().sum::<u64>());
        }
        size.insert(id as usize, out);
    }
    worst
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn rechunk_roundtrips((shape, old, new) in case(), slack in 0usize..40) {
        let data = nd(&shape);
        let x = array::from_ndarray(data.clone(), old).unwrap();
        let y = x.rechunk(new.clone()).unwrap();
        prop_assert_eq!(y.chunks().sizes(), new.as_slice());
        prop_assert_eq!(y.compute().unwrap(), data.clone());

        // The tightest bound any plan can meet, plus some slack.
        let max_new = y.chunks().max_block_len() * 8;
        let max_old = x.chunks().max_block_len() * 8;
        let bound = (2 * max_new).max(max_old + 8) + slack * 8;
        let z = x.rechunk_with(new.clone(), Some(bound)).unwrap();
        prop_assert_eq!(z.chunks().sizes(), new.as_slice());
        let worst = largest_rechunk_task(&z);
        prop_assert!(worst <= bound as u64, "task of {} bytes over the bound {}", worst, bound);
        prop_assert_eq!(z.compute().unwrap(), data);
    }
}

#[test]
fn tall_to_wide_within_a_bound() {
    let data = nd(&[60, 60]);
    let x = array::from_ndarray(data.clone(), vec![60, 1]).unwrap();
    let one = x.rechunk(vec![1, 60]).unwrap();
    // One stage reads the whole array for every row.
    assert_eq!(largest_rechunk_task(&one), (60 + 3600) * 8);
    let bound = 8 * 600;
    let y = x.rechunk_with(vec![1, 60], Some(bound)).unwrap();
    assert!(largest_rechunk_task(&y) <= bound as u64);
    assert_eq!(y.compute().unwrap(), data);
    // No bound: the same as `rechunk`.
    assert_eq!(
        x.rechunk_with(vec![1, 60], None).unwrap().name(),
        one.name()
    );
}

#[test]
fn impossible_bound_is_an_error_before_running() {
    let x = array::from_ndarray(nd(&[100, 100]), vec![100, 10]).unwrap();
    // Output blocks of 50x100 i64 = 40000 bytes need at least 80000.
    let e = x
        .rechunk_with(vec![50, 100], Some(70_000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`max_task_bytes`") && e.contains("80000"), "{e}");
    // Input blocks of 8000 bytes cannot be read within 8000.
    let e = x
        .rechunk_with(vec![1, 1], Some(8_000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`max_task_bytes`"), "{e}");
    let e = x
        .rechunk_with(vec![3, 3, 3], Some(1 << 20))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`chunks`"), "{e}");
}
