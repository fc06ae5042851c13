//! Shape operations against plain ndarray on uneven chunkings; bad inputs name the argument.

use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use rask::array::{self, Array};
use rask::prelude::*;

fn nd(shape: &[usize]) -> ArrayD<i64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n as i64).collect()).unwrap()
}

fn arr(shape: &[usize], chunks: Vec<Vec<usize>>) -> (Array<i64>, ArrayD<i64>) {
    let data = nd(shape);
    (array::from_ndarray(data.clone(), chunks).unwrap(), data)
}

fn err_names<T: std::fmt::Debug>(r: rask::Result<T>, arg: &str) -> String {
    let e = r.unwrap_err().to_string();
    assert!(e.contains(&format!("`{arg}`")), "{e}");
    e
}

#[test]
fn transpose_matches_ndarray() {
    let (x, d) = arr(&[5, 7, 3], vec![vec![2, 3], vec![1, 4, 2], vec![3]]);
    for axes in [[2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]] {
        let y = x.transpose(Some(&axes)).unwrap();
        let want = d.clone().permuted_axes(IxDyn(&axes));
        assert_eq!(y.shape(), want.shape());
        assert_eq!(y.chunks().sizes()[0], x.chunks().sizes()[axes[0]]);
        let got = y.compute().unwrap();
        assert_eq!(got, want);
        assert!(got.is_standard_layout());
    }
    let (m, md) = arr(&[4, 6], vec![vec![3, 1], vec![2, 2, 2]]);
    assert_eq!(m.t().unwrap().compute().unwrap(), md.t().to_owned());
    err_names(x.transpose(Some(&[0, 0, 1])), "axes");
    err_names(x.transpose(Some(&[0, 1])), "axes");
    err_names(x.transpose(Some(&[0, 1, 3])), "axes");
}

#[test]
fn squeeze_and_expand_dims() {
    let (x, d) = arr(&[4, 1, 3], vec![vec![3, 1], vec![1], vec![2, 1]]);
    let s = x.squeeze(1).unwrap();
    assert_eq!(s.shape(), &[4, 3]);
    assert_eq!(s.compute().unwrap(), d.index_axis(Axis(1), 0).to_owned());
    let e = err_names(x.squeeze(0), "axis");
    assert!(e.contains("length 4"), "{e}");
    err_names(x.squeeze(3), "axis");
    for ax in 0..=3 {
        let y = x.expand_dims(ax).unwrap();
        assert_eq!(y.compute().unwrap(), d.clone().insert_axis(Axis(ax)));
    }
    err_names(x.expand_dims(4), "axis");
}

#[test]
fn reshape_matches_ndarray() {
    type Case<'a> = (&'a [usize], Vec<Vec<usize>>, &'a [isize]);
    let cases: &[Case] = &[
        (&[6, 4, 5], vec![vec![4, 2], vec![1, 3], vec![5]], &[24, 5]),
        (&[6, 4, 5], vec![vec![4, 2], vec![1, 3], vec![2, 3]], &[-1]),
        (&[24], vec![vec![5, 7, 12]], &[2, 3, 4]),
        (&[24], vec![vec![5, 7, 12]], &[4, -1]),
        (&[6, 4], vec![vec![2, 2, 2], vec![3, 1]], &[4, 6]),
        (&[6, 4], vec![vec![1; 6], vec![4]], &[3, 8]),
        (
            &[2, 1, 3],
            vec![vec![1, 1], vec![1], vec![2, 1]],
            &[3, 1, 2],
        ),
        (
            &[2, 1, 3],
            vec![vec![1, 1], vec![1], vec![2, 1]],
            &[1, 6, 1],
        ),
        (&[5, 3], vec![vec![2, 3], vec![1, 2]], &[5, 1, 3, 1]),
        (&[0, 3], vec![vec![0], vec![2, 1]], &[3, 0]),
        (&[7], vec![vec![3, 4]], &[7]),
    ];
    for (shape, chunks, new) in cases {
        let (x, d) = arr(shape, chunks.clone());
        let y = x.reshape(new).unwrap();
        let want_shape: Vec<usize> = y.shape().to_vec();
        let want = d.to_shape(IxDyn(&want_shape)).unwrap().to_owned();
        assert_eq!(y.compute().unwrap(), want, "{shape:?} -> {new:?}");
    }
    let (x, _) = arr(&[6, 4], vec![vec![3, 3], vec![4]]);
    // Merging axes whose trailing axis is one block needs no rechunk: one layer over x.
    let y = x.reshape(&[24]).unwrap();
    assert_eq!(y.layer().deps()[0].tasks()[0].key.name(), x.name().as_str());
    err_names(x.reshape(&[5, 5]), "shape");
    err_names(x.reshape(&[-1, -1]), "shape");
    err_names(x.reshape(&[-1, 5]), "shape");
    err_names(x.reshape(&[-2, 12]), "shape");
}

#[test]
fn stack_and_concatenate() {
    let (a, da) = arr(&[4, 5], vec![vec![3, 1], vec![2, 3]]);
    let (b, db) = arr(&[4, 5], vec![vec![1, 3], vec![5]]);
    let db = db * 10;
    let b = b.map_blocks_test_scale();
    for axis in 0..=2 {
        let s = array::stack(&[a.clone(), b.clone()], axis).unwrap();
        let want = ndarray::stack(Axis(axis), &[da.view(), db.view()]).unwrap();
        assert_eq!(s.shape(), want.shape());
        assert_eq!(s.chunks().sizes()[axis], vec![1, 1]);
        assert_eq!(s.compute().unwrap(), want);
    }
    let (c, dc) = arr(&[2, 5], vec![vec![2], vec![4, 1]]);
    let (e, de) = arr(&[0, 5], vec![vec![0], vec![5]]);
    let cat = array::concatenate(&[a.clone(), e.clone(), c.clone()], 0).unwrap();
    assert_eq!(cat.chunks().sizes(), &[vec![3, 1, 2], vec![2, 3]]);
    let want = ndarray::concatenate(Axis(0), &[da.view(), de.view(), dc.view()]).unwrap();
    assert_eq!(cat.compute().unwrap(), want);
    let (f, df) = arr(&[4, 2], vec![vec![2, 2], vec![1, 1]]);
    let cat = array::concatenate(&[a.clone(), f], 1).unwrap();
    let want = ndarray::concatenate(Axis(1), &[da.view(), df.view()]).unwrap();
    assert_eq!(cat.compute().unwrap(), want);

    let e = err_names(array::stack(&[a.clone(), c.clone()], 0), "arrays");
    assert!(e.contains("[4, 5]") && e.contains("[2, 5]"), "{e}");
    err_names(array::stack(&[a.clone(), b.clone()], 3), "axis");
    err_names(array::stack::<i64>(&[], 0), "arrays");
    let e = err_names(array::concatenate(&[a.clone(), c.clone()], 1), "arrays");
    assert!(e.contains("axis 1"), "{e}");
    err_names(array::concatenate(&[a.clone(), c], 2), "axis");
}

#[test]
fn broadcast_to_matches_ndarray() {
    let (x, d) = arr(&[3, 1, 4], vec![vec![2, 1], vec![1], vec![1, 3]]);
    let y = x.broadcast_to(&[2, 3, 5, 4]).unwrap();
    assert_eq!(
        y.chunks().sizes(),
        &[vec![2], vec![2, 1], vec![5], vec![1, 3]]
    );
    assert_eq!(
        y.compute().unwrap(),
        d.broadcast(IxDyn(&[2, 3, 5, 4])).unwrap().to_owned()
    );
    let z = x.broadcast_to(&[3, 0, 4]).unwrap();
    assert_eq!(z.compute().unwrap().shape(), &[3, 0, 4]);
    let e = err_names(x.broadcast_to(&[3, 2, 5]), "shape");
    assert!(e.contains("[3, 1, 4]"), "{e}");
    err_names(x.broadcast_to(&[1, 4]), "shape");
}

trait Scale {
    fn map_blocks_test_scale(&self) -> Self;
}

impl Scale for Array<i64> {
    /// Another array with the same chunks and ten times the values (built from ndarray).
    fn map_blocks_test_scale(&self) -> Self {
        let d = nd(self.shape()) * 10;
        array::from_ndarray(d, self.chunks().sizes().to_vec()).unwrap()
    }
}

fn chunking(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..12).prop_map(move |v| {
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

fn shaped() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>)> {
    prop::collection::vec(0usize..9, 1..4).prop_flat_map(|shape| {
        let chunks: Vec<_> = shape.iter().map(|&n| chunking(n)).collect();
        (Just(shape), chunks)
    })
}

/// A shape with `size` elements built from `seeds`: each seed picks a divisor of what is left.
fn factor(size: usize, seeds: &[usize]) -> Vec<usize> {
    let mut left = size;
    let mut out = Vec::new();
    for &s in seeds {
        let divisors: Vec<usize> = (1..=left.max(1)).filter(|d| left % d == 0).collect();
        let d = if left == 0 {
            s % 3
        } else {
            divisors[s % divisors.len()]
        };
        out.push(d);
        left = left.checked_div(d).unwrap_or(left);
    }
    out.push(left);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn reshape_any_factorization(
        (shape, chunks) in shaped(),
        seeds in prop::collection::vec(0usize..100, 0..3),
        infer in 0usize..4,
    ) {
        let data = nd(&shape);
        let x = array::from_ndarray(data.clone(), chunks).unwrap();
        let new = factor(data.len(), &seeds);
        let mut req: Vec<isize> = new.iter().map(|&d| d as isize).collect();
        // Ask for one axis with -1 when it can be inferred.
        let known: usize = new.iter().enumerate().filter(|&(i, _)| i != infer).map(|(_, d)| d).product();
        if infer < req.len() && known > 0 {
            req[infer] = -1;
        }
        let y = x.reshape(&req).unwrap();
        prop_assert_eq!(y.shape(), new.as_slice());
        let want = data.to_shape(IxDyn(&new)).unwrap().to_owned();
        prop_assert_eq!(y.compute().unwrap(), want);
    }

    #[test]
    fn transpose_any_permutation(
        (shape, chunks) in shaped(),
        perm in Just(vec![0usize, 1, 2]).prop_shuffle(),
    ) {
        let data = nd(&shape);
        let x = array::from_ndarray(data.clone(), chunks).unwrap();
        let axes: Vec<usize> = perm.into_iter().filter(|&a| a < shape.len()).collect();
        let y = x.transpose(Some(&axes)).unwrap();
        prop_assert_eq!(y.compute().unwrap(), data.permuted_axes(IxDyn(&axes)));
    }
}
