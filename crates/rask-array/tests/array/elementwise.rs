//! Elementwise operations against plain ndarray.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rask::array::{self, Array, ChunkSpec};
use rask::prelude::*;

fn nd(shape: &[usize], f: impl Fn(usize) -> f64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

fn ndi(shape: &[usize], f: impl Fn(usize) -> i64) -> ArrayD<i64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

/// ndarray's own broadcasting of a binary function (the oracle).
fn oracle<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C,
) -> ArrayD<C> {
    let ndim = a.ndim().max(b.ndim());
    let pad = |s: &[usize]| {
        let mut v = vec![1; ndim - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (sa, sb) = (pad(a.shape()), pad(b.shape()));
    let shape: Vec<usize> = sa.iter().zip(&sb).map(|(&x, &y)| x.max(y)).collect();
    let av = a.broadcast(IxDyn(&shape)).unwrap();
    let bv = b.broadcast(IxDyn(&shape)).unwrap();
    ndarray::Zip::from(&av).and(&bv).map_collect(f)
}

/// Broadcasting cases: (shape a, chunks a, shape b, chunks b), with chunkings that disagree
/// along shared axes (forcing unification) and uneven last blocks.
fn cases() -> Vec<(Vec<usize>, ChunkSpec, Vec<usize>, ChunkSpec)> {
    vec![
        (vec![5], 2.into(), vec![1], 1.into()),
        (vec![3, 1], 2.into(), vec![1, 4], 3.into()),
        (vec![2, 3, 4], vec![1, 2, 3].into(), vec![4], 2.into()),
        (
            vec![5, 1, 3],
            vec![2, 1, 2].into(),
            vec![4, 1],
            vec![3, 1].into(),
        ),
        (
            vec![7, 6],
            vec![vec![3, 4], vec![2, 2, 2]].into(),
            vec![7, 6],
            vec![vec![4, 3], vec![5, 1]].into(),
        ),
        (vec![6], 4.into(), vec![6], vec![vec![1, 2, 3]].into()),
    ]
}

#[test]
fn arithmetic_broadcasts_like_ndarray() {
    for (sa, ca, sb, cb) in cases() {
        let da = nd(&sa, |i| i as f64 * 0.75 - 3.0);
        let db = nd(&sb, |i| i as f64 * 0.5 + 1.25);
        let a = array::from_ndarray(da.clone(), ca.clone()).unwrap();
        let b = array::from_ndarray(db.clone(), cb.clone()).unwrap();
        let ctx = format!("{sa:?} {ca:?} with {sb:?} {cb:?}");
        assert_eq!(
            (&a + &b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x + y),
            "{ctx}"
        );
        assert_eq!(
            a.try_sub(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x - y),
            "{ctx}"
        );
        assert_eq!(
            (&b - &a).unwrap().compute().unwrap(),
            oracle(&db, &da, |x, y| x - y),
            "{ctx}"
        );
        assert_eq!(
            a.try_mul(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x * y),
            "{ctx}"
        );
        assert_eq!(
            a.try_div(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x / y),
            "{ctx}"
        );
        // NumPy's `%` takes the divisor's sign.
        let rem = |x: &f64, y: &f64| {
            let r = x % y;
            if r != 0.0 && (r < 0.0) != (*y < 0.0) {
                r + y
            } else {
                r
            }
        };
        assert_eq!(
            a.try_rem(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, rem),
            "{ctx}"
        );
    }
}

#[test]
fn unify_rechunks_to_common_refinement() {
    let a =
        array::from_ndarray(nd(&[7, 6], |i| i as f64), vec![vec![3, 4], vec![2, 2, 2]]).unwrap();
    let b = array::from_ndarray(nd(&[7, 6], |i| i as f64), vec![vec![4, 3], vec![5, 1]]).unwrap();
    let c = (&a + &b).unwrap();
    assert_eq!(c.chunks().sizes(), &[vec![3, 1, 3], vec![2, 2, 1, 1]]);
    // A broadcast axis keeps the other operand's chunks.
    let row = array::from_ndarray(nd(&[1, 6], |i| i as f64), vec![1, 4]).unwrap();
    let d = (&a * &row).unwrap();
    assert_eq!(d.chunks().sizes(), &[vec![3, 4], vec![2, 2, 2]]);
    let want = oracle(
        &nd(&[7, 6], |i| i as f64),
        &nd(&[1, 6], |i| i as f64),
        |x, y| x * y,
    );
    assert_eq!(d.compute().unwrap(), want);
    // The same array twice is fine, and keys are deterministic.
    let e = (&a + &a).unwrap();
    assert_eq!(e.compute().unwrap(), nd(&[7, 6], |i| 2.0 * i as f64));
    assert_eq!((&a + &a).unwrap().name(), e.name());
}

#[test]
fn integer_arithmetic_follows_numpy() {
    let da = ndi(&[6], |i| [7, -7, 7, -7, i64::MIN, 5][i]);
    let db = ndi(&[6], |i| [2, 2, -2, -2, -1, 0][i]);
    let a = array::from_ndarray(da, 4).unwrap();
    let b = array::from_ndarray(db, 3).unwrap();
    let q = a.try_div(&b).unwrap().compute().unwrap();
    assert_eq!(q.as_slice().unwrap(), &[3, -4, -4, 3, i64::MIN, 0]);
    let r = a.try_rem(&b).unwrap().compute().unwrap();
    assert_eq!(r.as_slice().unwrap(), &[1, 1, -1, -1, 0, 0]);
    let s = (&a + 1).compute().unwrap();
    assert_eq!(s[0], 8);
    let t = (10 - &b).compute().unwrap();
    assert_eq!(t.as_slice().unwrap(), &[8, 8, 12, 12, 11, 10]);
    assert_eq!((&a / 0).compute().unwrap().as_slice().unwrap(), &[0; 6]);
    // Overflow wraps as in NumPy, in debug builds too.
    let w = (10 - &a).compute().unwrap();
    assert_eq!(w[4], 10i64.wrapping_sub(i64::MIN));
    let w = a.try_mul(&b).unwrap().compute().unwrap();
    assert_eq!(w[4], i64::MIN.wrapping_mul(-1));
    let small = array::from_ndarray(
        ArrayD::from_shape_vec(IxDyn(&[2]), vec![250u8, 3]).unwrap(),
        1,
    )
    .unwrap();
    let s2 = (&small + 10u8).compute().unwrap();
    assert_eq!(s2.as_slice().unwrap(), &[4, 13]);
    let s3 = small.try_sub(&(&small * 2u8)).unwrap().compute().unwrap();
    assert_eq!(
        s3.as_slice().unwrap(),
        &[250u8.wrapping_sub(250u8.wrapping_mul(2)), 253]
    );
}

#[test]
fn scalar_operators_both_sides() {
    let d = nd(&[4, 3], |i| i as f64 - 5.5);
    let a = array::from_ndarray(d.clone(), 2).unwrap();
    assert_eq!((&a + 2.0).compute().unwrap(), d.mapv(|x| x + 2.0));
    assert_eq!((&a - 2.0).compute().unwrap(), d.mapv(|x| x - 2.0));
    assert_eq!((2.0 - &a).compute().unwrap(), d.mapv(|x| 2.0 - x));
    assert_eq!((a.clone() * 3.0).compute().unwrap(), d.mapv(|x| x * 3.0));
    assert_eq!((3.0 / &a).compute().unwrap(), d.mapv(|x| 3.0 / x));
    assert_eq!((&a / 4.0).compute().unwrap(), d.mapv(|x| x / 4.0));
    assert_eq!((&a % 4.0).compute().unwrap(), d.mapv(|x| x.rem_euclid(4.0)));
    assert_eq!((-&a).compute().unwrap(), d.mapv(|x| -x));
    // Chains stay one task per block after fusion and give the right values.
    let chain = ((&a + 1.0) * 2.0 - 3.0) / 2.0;
    assert_eq!(
        chain.compute().unwrap(),
        d.mapv(|x| ((x + 1.0) * 2.0 - 3.0) / 2.0)
    );
}

#[test]
fn comparisons_and_logic() {
    for (sa, ca, sb, cb) in cases() {
        let da = nd(&sa, |i| (i % 5) as f64);
        let db = nd(&sb, |i| (i % 3) as f64 + 0.0);
        let a = array::from_ndarray(da.clone(), ca).unwrap();
        let b = array::from_ndarray(db.clone(), cb).unwrap();
        assert_eq!(
            a.eq(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x == y)
        );
        assert_eq!(
            a.ne(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x != y)
        );
        assert_eq!(
            a.lt(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x < y)
        );
        assert_eq!(
            a.le(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x <= y)
        );
        assert_eq!(
            a.gt(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x > y)
        );
        assert_eq!(
            a.ge(&b).unwrap().compute().unwrap(),
            oracle(&da, &db, |x, y| x >= y)
        );
        let (p, q) = (a.gt_scalar(1.0), b.le_scalar(1.0));
        let (dp, dq) = (da.mapv(|x| x > 1.0), db.mapv(|x| x <= 1.0));
        assert_eq!(
            p.logical_and(&q).unwrap().compute().unwrap(),
            oracle(&dp, &dq, |x, y| *x && *y)
        );
        assert_eq!(
            p.logical_or(&q).unwrap().compute().unwrap(),
            oracle(&dp, &dq, |x, y| *x || *y)
        );
        assert_eq!((!&p).compute().unwrap(), dp.mapv(|x| !x));
    }
    let a = array::from_ndarray(nd(&[5], |i| i as f64), 2).unwrap();
    let d = nd(&[5], |i| i as f64);
    assert_eq!(a.eq_scalar(2.0).compute().unwrap(), d.mapv(|x| x == 2.0));
    assert_eq!(a.ne_scalar(2.0).compute().unwrap(), d.mapv(|x| x != 2.0));
    assert_eq!(a.lt_scalar(2.0).compute().unwrap(), d.mapv(|x| x < 2.0));
    assert_eq!(a.ge_scalar(2.0).compute().unwrap(), d.mapv(|x| x >= 2.0));
}

#[test]
fn where_broadcasts_all_three() {
    let dc = ArrayD::from_shape_vec(IxDyn(&[3, 1]), vec![true, false, true]).unwrap();
    let da = nd(&[1, 4], |i| i as f64);
    let db = nd(&[2, 3, 4], |i| -(i as f64));
    let c = array::from_ndarray(dc.clone(), 2).unwrap();
    let a = array::from_ndarray(da.clone(), 3).unwrap();
    let b = array::from_ndarray(db.clone(), vec![1, 2, 3]).unwrap();
    let got = array::where_(&c, &a, &b).unwrap().compute().unwrap();
    assert_eq!(got.shape(), &[2, 3, 4]);
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                let want = if dc[[j, 0]] {
                    da[[0, k]]
                } else {
                    db[[i, j, k]]
                };
                assert_eq!(got[[i, j, k]], want);
            }
        }
    }
    let bad = array::from_ndarray(nd(&[2], |i| i as f64), 1).unwrap();
    let err = array::where_(&c, &a, &bad).unwrap_err().to_string();
    assert!(err.contains("`b`"), "{err}");
}

fn close(got: &ArrayD<f64>, want: &ArrayD<f64>) {
    assert_eq!(got.shape(), want.shape());
    for (g, w) in got.iter().zip(want) {
        if w.is_nan() {
            assert!(g.is_nan(), "{g} vs NaN");
        } else {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}

#[test]
fn unary_math_on_floats() {
    let d = nd(&[9, 4], |i| i as f64 * 0.37 - 4.1);
    let a = array::from_ndarray(d.clone(), vec![4, 3]).unwrap();
    close(&a.abs().compute().unwrap(), &d.mapv(f64::abs));
    close(&a.sqrt().compute().unwrap(), &d.mapv(f64::sqrt));
    close(&a.exp().compute().unwrap(), &d.mapv(f64::exp));
    close(&a.log().compute().unwrap(), &d.mapv(f64::ln));
    close(&a.sin().compute().unwrap(), &d.mapv(f64::sin));
    close(&a.cos().compute().unwrap(), &d.mapv(f64::cos));
    close(&a.tan().compute().unwrap(), &d.mapv(f64::tan));
    close(&a.floor().compute().unwrap(), &d.mapv(f64::floor));
    close(&a.ceil().compute().unwrap(), &d.mapv(f64::ceil));
    close(&a.neg().compute().unwrap(), &d.mapv(|x| -x));
    close(&a.powf(1.5).compute().unwrap(), &d.mapv(|x| x.powf(1.5)));
    close(&a.powi(3).compute().unwrap(), &d.mapv(|x| x.powi(3)));
    close(
        &a.clip(-1.0, 2.0).unwrap().compute().unwrap(),
        &d.mapv(|x| x.clamp(-1.0, 2.0)),
    );
    let halves = array::from_ndarray(nd(&[6], |i| i as f64 - 2.5), 4).unwrap();
    assert_eq!(
        halves.round().compute().unwrap().as_slice().unwrap(),
        &[-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]
    );
    let err = a.clip(2.0, 1.0).unwrap_err().to_string();
    assert!(err.contains("`min`"), "{err}");
    // abs and neg on signed integers, wrapping at MIN like NumPy.
    let i = array::from_ndarray(ndi(&[3], |k| [i64::MIN, -3, 4][k]), 2).unwrap();
    assert_eq!(
        i.abs().compute().unwrap().as_slice().unwrap(),
        &[i64::MIN, 3, 4]
    );
    assert_eq!(
        (-&i).compute().unwrap().as_slice().unwrap(),
        &[i64::MIN, 3, -4]
    );
    // f32 works too.
    let f = array::from_ndarray(nd(&[4], |k| k as f64).mapv(|x| x as f32), 3).unwrap();
    assert_eq!(f.sqrt().compute().unwrap()[2], 2f32.sqrt());
}

#[test]
fn astype_edge_cases() {
    let d = ArrayD::from_shape_vec(
        IxDyn(&[8]),
        vec![-2.7, -0.5, 0.0, 0.9, 2.5, 300.0, f64::NAN, 1e30],
    )
    .unwrap();
    let a = array::from_ndarray(d, 3).unwrap();
    // Truncation toward zero; out of range saturates; NaN becomes 0.
    let i = a.astype::<i64>().compute().unwrap();
    assert_eq!(i.as_slice().unwrap(), &[-2, 0, 0, 0, 2, 300, 0, i64::MAX]);
    let u = a.astype::<u8>().compute().unwrap();
    assert_eq!(u.as_slice().unwrap(), &[0, 0, 0, 0, 2, 255, 0, 255]);
    let b = a.astype::<bool>().compute().unwrap();
    assert_eq!(
        b.as_slice().unwrap(),
        &[true, true, false, true, true, true, true, true]
    );
    // Integer to integer wraps; large i64 stays exact through integer casts.
    let big = array::from_ndarray(ndi(&[3], |k| [i64::MAX, -1, 257][k]), 2).unwrap();
    assert_eq!(
        big.astype::<u64>().compute().unwrap().as_slice().unwrap(),
        &[i64::MAX as u64, u64::MAX, 257]
    );
    assert_eq!(
        big.astype::<u8>().compute().unwrap().as_slice().unwrap(),
        &[255, 255, 1]
    );
    assert_eq!(
        big.astype::<i64>().compute().unwrap().as_slice().unwrap(),
        &[i64::MAX, -1, 257]
    );
    assert_eq!(
        big.astype::<f64>().compute().unwrap().as_slice().unwrap(),
        &[i64::MAX as f64, -1.0, 257.0]
    );
    let flags = big.gt_scalar(0).astype::<f32>().compute().unwrap();
    assert_eq!(flags.as_slice().unwrap(), &[1.0, 0.0, 1.0]);
    assert_eq!(
        big.gt_scalar(0)
            .astype::<i32>()
            .compute()
            .unwrap()
            .as_slice()
            .unwrap(),
        &[1, 0, 1]
    );
}

#[test]
fn map_blocks_and_wrong_shapes() {
    let d = nd(&[6, 4], |i| i as f64);
    let a = array::from_ndarray(d.clone(), vec![4, 3]).unwrap();
    let m = a.map_blocks(|b: &ArrayD<f64>| b.mapv(|x| (x * 2.0) as i64));
    assert_eq!(m.compute().unwrap(), d.mapv(|x| (x * 2.0) as i64));
    // Explicit output chunks: each block reduced to its column sums (one row per block).
    let s = a
        .map_blocks_with_chunks(vec![vec![1, 1], vec![3, 1]], |b: &ArrayD<f64>| {
            b.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0))
        })
        .unwrap();
    let got = s.compute().unwrap();
    assert_eq!(got.shape(), &[2, 4]);
    assert_eq!(got[[0, 0]], d[[0, 0]] + d[[1, 0]] + d[[2, 0]] + d[[3, 0]]);
    assert_eq!(got[[1, 3]], d[[4, 3]] + d[[5, 3]]);
    // A block of the wrong shape names its key.
    let bad = a
        .map_blocks_with_chunks(vec![vec![1, 1], vec![3, 1]], |b: &ArrayD<f64>| b.clone())
        .unwrap();
    // Every block is wrong; whichever a worker finishes first is the one reported.
    let err = bad.compute().unwrap_err().to_string();
    assert!(
        err.contains("map_blocks: the function returned shape")
            && err.contains("for block ('map_blocks-")
            && (err.contains(", 0, 0)")
                || err.contains(", 0, 1)")
                || err.contains(", 1, 0)")
                || err.contains(", 1, 1)")),
        "{err}"
    );
    let err = a
        .map_blocks_with_chunks(vec![vec![2], vec![3, 1]], |b: &ArrayD<f64>| b.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`chunks`"), "{err}");
}

#[test]
fn non_broadcastable_shapes_name_the_argument() {
    let a = array::zeros::<f64>(&[3, 4], 2).unwrap();
    let b = array::zeros::<f64>(&[3], 2).unwrap();
    let err = (&a + &b).unwrap_err().to_string();
    assert!(
        err.contains("`other`") && err.contains("[3, 4]") && err.contains("[3]"),
        "{err}"
    );
    let err = a.lt(&b).unwrap_err().to_string();
    assert!(err.contains("`other`"), "{err}");
    // Zero-length and zero-dimensional operands broadcast like NumPy's.
    let empty = array::zeros::<f64>(&[0, 3], 2).unwrap();
    let row = array::ones::<f64>(&[3], 2).unwrap();
    let e = (&empty + &row).unwrap();
    assert_eq!(e.shape(), &[0, 3]);
    assert_eq!(e.compute().unwrap().shape(), &[0, 3]);
    let scalar = array::from_ndarray(ArrayD::from_elem(IxDyn(&[]), 2.0), 1).unwrap();
    let s = (&row * &scalar).unwrap().compute().unwrap();
    assert_eq!(s.as_slice().unwrap(), &[2.0, 2.0, 2.0]);
    let err = (&empty + &array::ones::<f64>(&[2], 1).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[0, 3]"), "{err}");
    let c = array::zeros::<f64>(&[2, 1, 4], 2).unwrap();
    let err = b.try_mul(&c).unwrap_err().to_string();
    assert!(err.contains("[2, 1, 4]") && err.contains("[3]"), "{err}");
}

#[test]
fn executors_agree() {
    let a = array::from_ndarray(nd(&[30, 20], |i| i as f64), vec![7, 6]).unwrap();
    let b = array::from_ndarray(nd(&[20], |i| i as f64), 9).unwrap();
    let c = ((&a * &b).unwrap() + 1.0).sqrt();
    let sync = rask::compute_with(
        &c,
        &Config {
            executor: Executor::Sync,
            ..Config::builtin()
        },
    )
    .unwrap();
    let threads = rask::compute_with(
        &c,
        &Config {
            executor: Executor::Threads(4),
            ..Config::builtin()
        },
    )
    .unwrap();
    assert_eq!(sync, threads);
}

fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    // A full shape, then each operand keeps a suffix with some axes set to 1.
    (1usize..=4)
        .prop_flat_map(|nd| {
            (
                proptest::collection::vec(1usize..=6, nd),
                0..=nd,
                0..=nd,
                proptest::collection::vec(any::<bool>(), nd),
                proptest::collection::vec(any::<bool>(), nd),
            )
        })
        .prop_map(|(full, da, db, ma, mb)| {
            let nd = full.len();
            let a: Vec<usize> = (da..nd).map(|i| if ma[i] { 1 } else { full[i] }).collect();
            let b: Vec<usize> = (db..nd).map(|i| if mb[i] { 1 } else { full[i] }).collect();
            (a, b)
        })
}

fn arr(shape: &[usize], chunk: &[usize], offset: f64) -> (ArrayD<f64>, Array<f64>) {
    let d = nd(shape, |i| i as f64 + offset);
    let chunks: Vec<usize> = shape
        .iter()
        .zip(chunk.iter().cycle())
        .map(|(&s, &c)| c.min(s).max(1))
        .collect();
    let a = array::from_ndarray(d.clone(), chunks).unwrap();
    (d, a)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn broadcasting_add_matches_ndarray(
        (sa, sb) in shape_pair(),
        ca in proptest::collection::vec(1usize..=4, 4),
        cb in proptest::collection::vec(1usize..=4, 4),
    ) {
        let (da, a) = arr(&sa, &ca, 0.5);
        let (db, b) = arr(&sb, &cb, 100.0);
        let got = (&a + &b).unwrap();
        let want = oracle(&da, &db, |x, y| x + y);
        prop_assert_eq!(got.shape(), want.shape());
        prop_assert_eq!(got.compute().unwrap(), want);
        let got = (&b - &a).unwrap().compute().unwrap();
        prop_assert_eq!(got, oracle(&db, &da, |x, y| x - y));
    }
}

#[test]
fn elementwise_chains_fuse_to_one_task_per_block() {
    let a = array::from_ndarray(nd(&[8, 6], |i| i as f64), (4, 3)).unwrap();
    let c = ((&a + 1.0) * 2.0).sqrt().lt_scalar(5.0);
    let plan = rask::Plan::new(&c, Config::builtin().optimize).unwrap();
    assert_eq!(plan.tasks_before, 4 * 5);
    assert_eq!(plan.graph.len(), 4, "one task per block after fusion");
    // A two-input op starts a new linear chain: the source chain, the broadcast operand's
    // blocks (read by two output blocks each) and the chain from the add on.
    let b = array::from_ndarray(nd(&[6], |i| i as f64), 3).unwrap();
    let d = ((&a + 1.0) * 2.0).try_add(&b).unwrap().sqrt();
    let plan = rask::Plan::new(&d, Config::builtin().optimize).unwrap();
    assert_eq!(plan.tasks_before, 2 + 4 * 5);
    assert!(
        plan.graph.len() <= 4 + 2 + 4,
        "{} tasks after fusion",
        plan.graph.len()
    );
}
