use ndarray::{ArrayD, IxDyn};
use rask::array::{self, ChunkSpec};
use rask::prelude::*;

fn nd(shape: &[usize], f: impl Fn(usize) -> f64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

#[test]
fn linspace_matches_numpy_definition() {
    let x = array::linspace::<f64>(1.0, 10.0, 1_000_000, true, 1000).unwrap();
    assert_eq!(x.npartitions(), 1000);
    let v = x.compute().unwrap();
    let step = 9.0 / 999_999.0;
    for (i, &got) in v.iter().enumerate().step_by(9973) {
        assert_eq!(got, 1.0 + i as f64 * step);
    }
    assert_eq!(v[999_999], 10.0);
    let x = array::linspace::<f64>(0.0, 1.0, 4, false, 3)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(x.as_slice().unwrap(), &[0.0, 0.25, 0.5, 0.75]);
}

#[test]
fn arange_full_eye() {
    let a = array::arange::<i64>(0.0, 10.0, 3.0, 2)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(a.as_slice().unwrap(), &[0, 3, 6, 9]);
    let z = array::zeros::<f32>(&[5, 3], 2).unwrap().compute().unwrap();
    assert_eq!(z, ArrayD::<f32>::zeros(IxDyn(&[5, 3])));
    let e = array::eye::<i32>(4, Some(5), 1, 3)
        .unwrap()
        .compute()
        .unwrap();
    for i in 0..4 {
        for j in 0..5 {
            assert_eq!(e[[i, j]], i32::from(j == i + 1));
        }
    }
    let err = array::arange::<i64>(0.0, 10.0, 0.0, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`step`"), "{err}");
}

#[test]
fn from_ndarray_and_rechunk_roundtrip() {
    let data = nd(&[7, 5, 3], |i| i as f64 * 0.5);
    let x = array::from_ndarray(data.clone(), vec![3, 2, 3]).unwrap();
    assert_eq!(x.numblocks(), vec![3, 3, 1]);
    assert_eq!(x.compute().unwrap(), data);
    for chunks in [
        ChunkSpec::from(vec![1, 5, 1]),
        ChunkSpec::from(vec![7, 1, 2]),
        ChunkSpec::from(4),
    ] {
        let y = x.rechunk(chunks.clone()).unwrap();
        assert_eq!(y.compute().unwrap(), data, "{chunks:?}");
    }
    let err = x
        .rechunk(vec![vec![3, 3], vec![5], vec![3]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`chunks`"), "{err}");
}

#[test]
fn from_delayed_checks_shape() {
    let d = rask::delayed(|n: usize| ArrayD::<f64>::from_elem(IxDyn(&[n, 2]), 1.5)).call((3usize,));
    let ok = array::from_delayed(&d, &[3, 2]).unwrap();
    assert_eq!(
        ok.compute().unwrap(),
        ArrayD::from_elem(IxDyn(&[3, 2]), 1.5)
    );
    let bad = array::from_delayed(&d, &[2, 2]).unwrap();
    let err = bad.compute().unwrap_err().to_string();
    assert!(err.contains("`shape`") && err.contains("[3, 2]"), "{err}");
}

#[test]
fn persist_keeps_blocks_under_the_same_keys() {
    use rask::prelude::Persist as _;
    let x = array::random::normal(0.0, 1.0, &[30, 20], (7, 6), 3).unwrap();
    let p = rask::persist(&x).unwrap();
    assert_eq!(p.name(), x.name());
    assert_eq!(p.chunks(), x.chunks());
    // The persisted array's graph is one constant task per block, nothing to generate.
    let plan = rask::Plan::new(&p, Default::default()).unwrap();
    assert_eq!(plan.tasks_before, x.npartitions());
    let want = x.compute().unwrap();
    assert_eq!(p.compute().unwrap(), want);
    let doubled = (&p * 2.0).compute().unwrap();
    assert_eq!(doubled, want.mapv(|v| v * 2.0));
    let _ = p.with_values(Vec::new()).unwrap_err();
}

#[test]
fn from_task_with_the_wrong_dtype_is_an_error_naming_the_argument() {
    // A task producing f32 blocks declared as an f64 array: the check op says what it got.
    let d = rask::delayed(|n: usize| ArrayD::<f32>::zeros(IxDyn(&[n]))).call((4usize,));
    let bad = array::from_task::<f64>(d.layer().clone(), d.key().clone(), &[4]).unwrap();
    let err = bad.compute().unwrap_err().to_string();
    assert!(
        err.contains("`value`") && err.contains("f32") && err.contains("float64"),
        "{err}"
    );
}
