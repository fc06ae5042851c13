//! Blocked matmul against ndarray's `dot`.

use ndarray::{Array2, ArrayD, Ix2, IxDyn};
use rask::array::{self, ChunkSpec};
use rask::prelude::*;

fn mat(rows: usize, cols: usize, seed: i64) -> Array2<i64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i as i64 * 7 + j as i64 * 3 + seed) % 11) - 5
    })
}

fn check(a: &Array2<i64>, b: &Array2<i64>, ca: ChunkSpec, cb: ChunkSpec) {
    let want = a.dot(b).into_dyn();
    let xa = array::from_ndarray(a.clone().into_dyn(), ca).unwrap();
    let xb = array::from_ndarray(b.clone().into_dyn(), cb).unwrap();
    let c = xa.dot(&xb).unwrap();
    assert_eq!(c.shape(), want.shape());
    assert_eq!(c.chunks().sizes()[0], xa.chunks().sizes()[0]);
    assert_eq!(c.chunks().sizes()[1], xb.chunks().sizes()[1]);
    assert_eq!(
        c.compute().unwrap(),
        want,
        "chunks {:?} x {:?}",
        xa.chunks().sizes(),
        xb.chunks().sizes()
    );
    // The same through floats, compared with a tolerance.
    let fa = array::from_ndarray(
        a.mapv(|v| v as f64 * 0.1).into_dyn(),
        xa.chunks().sizes().to_vec(),
    )
    .unwrap();
    let fb = array::from_ndarray(
        b.mapv(|v| v as f64 * 0.1).into_dyn(),
        xb.chunks().sizes().to_vec(),
    )
    .unwrap();
    let got = array::matmul(&fa, &fb).unwrap().compute().unwrap();
    let want = a
        .mapv(|v| v as f64 * 0.1)
        .dot(&b.mapv(|v| v as f64 * 0.1))
        .into_dyn();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
    }
}

#[test]
fn matmul_matches_ndarray_with_uneven_chunks() {
    let (a, b) = (mat(7, 9, 1), mat(9, 5, 2));
    // Aligned, uneven inner chunks (4, 4, 1).
    check(&a, &b, vec![3, 4].into(), vec![4, 2].into());
    // One block each.
    check(&a, &b, vec![7, 9].into(), vec![9, 5].into());
    // Inner chunks of 1: 9 products per output block, two levels of sums.
    check(&a, &b, 1.into(), 1.into());
}

#[test]
fn matmul_rechunks_mismatched_inner_chunks() {
    let (a, b) = (mat(6, 10, 3), mat(10, 4, 4));
    check(&a, &b, vec![4, 3].into(), vec![4, 3].into());
    check(
        &a,
        &b,
        ChunkSpec::from(vec![vec![6], vec![1, 2, 7]]),
        ChunkSpec::from(vec![vec![5, 5], vec![4]]),
    );
}

#[test]
fn matmul_errors() {
    let a = array::ones::<f64>(&[3, 4], 2).unwrap();
    let b = array::ones::<f64>(&[5, 2], 2).unwrap();
    let err = a.dot(&b).unwrap_err().to_string();
    assert!(err.contains("[3, 4]") && err.contains("[5, 2]"), "{err}");
    let v = array::ones::<f64>(&[4], 2).unwrap();
    let err = a.dot(&v).unwrap_err().to_string();
    assert!(err.contains("`b`"), "{err}");
}

#[test]
fn matmul_result_composes() {
    let a = mat(5, 6, 0).mapv(|v| v as f64);
    let b = mat(6, 3, 1).mapv(|v| v as f64);
    let xa = array::from_ndarray(a.clone().into_dyn(), 2).unwrap();
    let xb = array::from_ndarray(b.clone().into_dyn(), 4).unwrap();
    let s = xa.dot(&xb).unwrap().sum(0).unwrap().compute().unwrap();
    let want: ArrayD<f64> = a.dot(&b).sum_axis(ndarray::Axis(0)).into_dyn();
    for (g, w) in s.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-9);
    }
    let _ = want.into_dimensionality::<ndarray::Ix1>().unwrap();
    let _ = IxDyn(&[1]);
    let _: Option<Ix2> = None;
}
