//! Slicing against plain ndarray, and culling: only contributing blocks are referenced.

use std::collections::HashSet;

use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use rask::array::{self, Array, Slice, SliceArg};
use rask::graph::Collection;
use rask::prelude::*;

fn nd(shape: &[usize]) -> ArrayD<i64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n as i64).collect()).unwrap()
}

/// Python's `slice(start, stop, step).indices(n)`, element by element: the oracle.
fn numpy_indices(s: Slice, n: usize) -> Vec<usize> {
    let n = n as isize;
    let (start, stop) = if s.step > 0 {
        let f = |v: isize| (if v < 0 { v + n } else { v }).clamp(0, n);
        (s.start.map_or(0, f), s.stop.map_or(n, f))
    } else {
        let f = |v: isize| (if v < 0 { v + n } else { v }).clamp(-1, n - 1);
        (s.start.map_or(n - 1, f), s.stop.map_or(-1, f))
    };
    let mut out = Vec::new();
    let mut i = start;
    while (s.step > 0 && i < stop) || (s.step < 0 && i > stop) {
        out.push(i as usize);
        i += s.step;
    }
    out
}

/// The oracle: ndarray `select` per kept axis and `index_axis` per integer index.
fn oracle(data: &ArrayD<i64>, args: &[SliceArg]) -> ArrayD<i64> {
    let mut out = data.clone();
    // Drop indexed axes from the last so earlier axis numbers stay valid.
    for (ax, arg) in args.iter().enumerate() {
        if let SliceArg::Slice(s) = arg {
            let idx = numpy_indices(*s, data.shape()[ax]);
            out = out.select(Axis(ax), &idx);
        }
    }
    for (ax, arg) in args.iter().enumerate().rev() {
        if let SliceArg::Index(i) = arg {
            let n = data.shape()[ax] as isize;
            let j = if *i < 0 { i + n } else { *i };
            out = out.index_axis(Axis(ax), j as usize).to_owned();
        }
    }
    out
}

/// The input blocks the sliced array's graph reaches, by walking back from its outputs.
fn reached_blocks(x: &Array<i64>, input: &Array<i64>) -> HashSet<Vec<u32>> {
    let g = x.graph().unwrap();
    let mut stack: Vec<_> = g.ids_of(&x.output_keys()).unwrap();
    let mut seen = HashSet::new();
    let mut out = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let task = g.task(id);
        if task.key.name() == input.name().as_str() {
            out.insert(task.key.index().to_vec());
        }
        stack.extend(task.deps.iter().copied());
    }
    out
}

fn chunking(len: usize) -> impl Strategy<Value = Vec<usize>> {
    // Uneven block lengths (1 included) adding up to `len`.
    prop::collection::vec(1usize..6, 1..16).prop_map(move |v| {
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

fn arg(len: usize) -> impl Strategy<Value = SliceArg> {
    let n = len as isize;
    let bound = prop::option::of(-(n + 3)..n + 4);
    prop_oneof![
        1 => Just(SliceArg::Full),
        1 => (-n.max(1)..n.max(1)).prop_map(SliceArg::Index),
        4 => (bound.clone(), bound, prop_oneof![-4isize..0, 1isize..5])
            .prop_map(|(start, stop, step)| SliceArg::Slice(Slice::new(start, stop, step))),
    ]
}

fn case() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>, Vec<SliceArg>)> {
    prop::collection::vec(0usize..15, 1..4).prop_flat_map(|shape| {
        let chunks: Vec<_> = shape.iter().map(|&n| chunking(n)).collect();
        let args: Vec<_> = shape.iter().map(|&n| arg(n)).collect();
        (Just(shape), chunks, args)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn slicing_matches_ndarray((shape, chunks, args) in case()) {
        let data = nd(&shape);
        let x = array::from_ndarray(data.clone(), chunks).unwrap();
        let valid = args
            .iter()
            .zip(&shape)
            .all(|(a, &n)| !matches!(a, SliceArg::Index(i) if *i >= n as isize || *i < -(n as isize)));
        let got = x.slice(&args);
        if !valid {
            let e = got.unwrap_err().to_string();
            prop_assert!(e.contains("`index`") && e.contains("axis"), "{}", e);
            return Ok(());
        }
        let y = got.unwrap();
        let want = oracle(&data, &args);
        prop_assert_eq!(y.shape(), want.shape());
        prop_assert_eq!(y.compute().unwrap(), want.clone());

        if y.name() == x.name() {
            // A selection of everything is the input itself.
            return Ok(());
        }
        // Culling: every reached input block holds at least one selected element.
        let reached = reached_blocks(&y, &x);
        for idx in &reached {
            let ranges = x.chunks().block_ranges(&idx.iter().map(|&i| i as usize).collect::<Vec<_>>());
            for (ax, (r, a)) in ranges.iter().zip(&args).enumerate() {
                let hit = match a {
                    SliceArg::Full => !r.is_empty(),
                    SliceArg::Index(i) => {
                        let n = shape[ax] as isize;
                        let j = (if *i < 0 { i + n } else { *i }) as usize;
                        r.contains(&j)
                    }
                    SliceArg::Slice(s) => numpy_indices(*s, shape[ax]).iter().any(|k| r.contains(k)),
                };
                prop_assert!(hit, "block {:?} contributes nothing along axis {}", idx, ax);
            }
        }
        if want.is_empty() {
            prop_assert!(reached.is_empty());
        }
    }
}

#[test]
fn macro_and_step_through_blocks() {
    let data = nd(&[10, 7]);
    let x = array::from_ndarray(data.clone(), vec![3, 2]).unwrap();
    let y = x.slice(&rask_array_s()).unwrap();
    assert_eq!(y.shape(), &[4]);
    assert_eq!(
        y.compute().unwrap(),
        data.slice(ndarray::s![1..8;2, -1]).to_owned().into_dyn()
    );
    let r = x
        .slice(&rask::array::s![..;-1, 2..])
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(r, data.slice(ndarray::s![..;-1, 2..]).to_owned().into_dyn());
    // A step longer than a block touches only the blocks holding selected elements.
    let big = array::from_ndarray(nd(&[1000]), 10).unwrap();
    let sel = big.slice(&rask::array::s![..;100]).unwrap();
    assert_eq!(sel.npartitions(), 10);
    assert_eq!(reached_blocks(&sel, &big).len(), 10);
    assert_eq!(
        sel.compute().unwrap().as_slice().unwrap(),
        &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    );
}

fn rask_array_s() -> Vec<SliceArg> {
    rask::array::s![1..8;2, -1].to_vec()
}

#[test]
fn bad_slices_name_the_argument() {
    let x = array::from_ndarray(nd(&[4, 3]), 2).unwrap();
    let e = x.slice(&[SliceArg::Index(4)]).unwrap_err().to_string();
    assert!(
        e.contains("`index`") && e.contains("axis 0") && e.contains("size 4"),
        "{e}"
    );
    let e = x
        .slice(&[SliceArg::Full, SliceArg::Index(-4)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`index`") && e.contains("axis 1"), "{e}");
    let e = x.slice(&rask::array::s![..;0]).unwrap_err().to_string();
    assert!(e.contains("`step`"), "{e}");
    let e = x.slice(&rask::array::s![0, 0, 0]).unwrap_err().to_string();
    assert!(e.contains("`index`") && e.contains("too many"), "{e}");
    // A fully empty selection is a valid 0-length axis.
    let y = x
        .slice(&[SliceArg::Slice(Slice::new(Some(3), Some(1), 1))])
        .unwrap();
    assert_eq!(y.shape(), &[0, 3]);
    assert_eq!(y.compute().unwrap().shape(), &[0, 3]);
}
