//! Reductions against plain ndarray: every reduction over every single axis, a pair of axes
//! and all axes of a 3-D array, with and without keepdims, under uneven, size-1 and
//! single-block chunkings, with split_every 2, 3 and the default.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rask::array::{self, Array, Axes, ChunkSpec, ReduceOptions};
use rask::prelude::*;

const SHAPE: [usize; 3] = [7, 5, 4];

fn chunkings() -> Vec<ChunkSpec> {
    vec![
        // Uneven: 7 -> 3,3,1; 5 -> 2,2,1; 4 -> 3,1.
        ChunkSpec::from(vec![3, 2, 3]),
        ChunkSpec::from(1),
        ChunkSpec::from(vec![7, 5, 4]),
    ]
}

fn axes_sets() -> Vec<(Axes, Vec<usize>)> {
    vec![
        (Axes::from(0), vec![0]),
        (Axes::from(1usize), vec![1]),
        (Axes::from(-1), vec![2]),
        (Axes::All, vec![0, 1, 2]),
        (Axes::from([0, 2]), vec![0, 2]),
    ]
}

fn options() -> Vec<ReduceOptions> {
    let mut out = Vec::new();
    for keepdims in [false, true] {
        for split_every in [None, Some(2), Some(3)] {
            out.push(ReduceOptions {
                keepdims,
                split_every,
            });
        }
    }
    out
}

/// A deterministic pseudo-random sequence in [0, 1).
fn noise(i: usize) -> f64 {
    let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 11) as f64) / (1u64 << 53) as f64
}

fn float_data() -> ArrayD<f64> {
    let n: usize = SHAPE.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(&SHAPE),
        (0..n).map(|i| noise(i) * 20.0 - 10.0).collect(),
    )
    .unwrap()
}

/// Integers in -3..=3 with many ties and zeros.
fn int_data() -> ArrayD<i64> {
    let n: usize = SHAPE.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(&SHAPE),
        (0..n).map(|i| (noise(i) * 7.0) as i64 - 3).collect(),
    )
    .unwrap()
}

/// Plain-ndarray oracle: groups the elements of each output position in row-major order
/// (so a group's position is the index along a single reduced axis, or the flat index when
/// all axes are reduced) and applies `f` to each group.
fn oracle<T: Copy, R: Clone>(
    data: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
    f: impl Fn(&[T]) -> R,
) -> ArrayD<R> {
    let shape = data.shape();
    let kshape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(ax, &n)| if axes.contains(&ax) { 1 } else { n })
        .collect();
    let mut groups: Vec<Vec<T>> = vec![Vec::new(); kshape.iter().product()];
    for (idx, &x) in data.indexed_iter() {
        let mut flat = 0;
        for ax in 0..shape.len() {
            let i = if axes.contains(&ax) { 0 } else { idx[ax] };
            flat = flat * kshape[ax] + i;
        }
        groups[flat].push(x);
    }
    let out =
        ArrayD::from_shape_vec(IxDyn(&kshape), groups.iter().map(|g| f(g)).collect()).unwrap();
    if keepdims {
        return out;
    }
    let squeezed: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(ax, _)| !axes.contains(ax))
        .map(|(_, &n)| n)
        .collect();
    out.into_shape_with_order(IxDyn(&squeezed)).unwrap()
}

fn assert_close(got: &ArrayD<f64>, want: &ArrayD<f64>, rtol: f64, ctx: &str) {
    assert_eq!(got.shape(), want.shape(), "{ctx}");
    for (g, w) in got.iter().zip(want) {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= rtol * w.abs().max(1.0);
        assert!(ok, "{ctx}: got {g}, want {w}\ngot {got}\nwant {want}");
    }
}

fn exact<T: PartialEq + std::fmt::Debug>(
    got: Result<ArrayD<T>, rask::RaskError>,
    want: &ArrayD<T>,
    ctx: &str,
) {
    let got = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(&got, want, "{ctx}");
}

/// Runs `f` for every chunking, axes set and option set.
fn for_each_case(
    mut f: impl FnMut(&Array<f64>, &Array<i64>, &Axes, &[usize], ReduceOptions, &str),
) {
    let (fd, id) = (float_data(), int_data());
    for chunks in chunkings() {
        let xf = array::from_ndarray(fd.clone(), chunks.clone()).unwrap();
        let xi = array::from_ndarray(id.clone(), chunks.clone()).unwrap();
        for (axes, resolved) in axes_sets() {
            for opts in options() {
                let ctx = format!("chunks {:?}, axes {axes:?}, {opts:?}", xf.chunks().sizes());
                f(&xf, &xi, &axes, &resolved, opts, &ctx);
            }
        }
    }
}

fn sum_f(g: &[f64]) -> f64 {
    g.iter().sum()
}

fn two_pass_var(g: &[f64], ddof: usize) -> f64 {
    let n = g.len() as f64;
    let mean = g.iter().sum::<f64>() / n;
    g.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - ddof as f64).max(0.0)
}

#[test]
fn sum_and_prod() {
    let pd = int_data().mapv(|v| match v {
        -3 => -1,
        3 => 2,
        _ => 1,
    });
    for_each_case(|xf, xi, axes, ax, o, ctx| {
        let got = xf.sum_with(axes.clone(), o).unwrap().compute().unwrap();
        assert_close(
            &got,
            &oracle(&float_data(), ax, o.keepdims, sum_f),
            1e-12,
            ctx,
        );
        exact(
            xi.sum_with(axes.clone(), o).unwrap().compute(),
            &oracle(&int_data(), ax, o.keepdims, |g| g.iter().sum::<i64>()),
            ctx,
        );
        let xp = array::from_ndarray(pd.clone(), xi.chunks().sizes().to_vec()).unwrap();
        exact(
            xp.prod_with(axes.clone(), o).unwrap().compute(),
            &oracle(&pd, ax, o.keepdims, |g| g.iter().product::<i64>()),
            ctx,
        );
        let xq = xf.map_blocks_for_test(|v| 1.0 + v / 100.0);
        let got = xq.prod_with(axes.clone(), o).unwrap().compute().unwrap();
        let qd = float_data().mapv(|v| 1.0 + v / 100.0);
        assert_close(
            &got,
            &oracle(&qd, ax, o.keepdims, |g| g.iter().product::<f64>()),
            1e-12,
            ctx,
        );
    });
}

/// Test-only helper: the same array with `f` applied, built from ndarray directly.
trait MapForTest {
    fn map_blocks_for_test(&self, f: impl Fn(f64) -> f64) -> Array<f64>;
}
impl MapForTest for Array<f64> {
    fn map_blocks_for_test(&self, f: impl Fn(f64) -> f64) -> Array<f64> {
        let data = self.compute().unwrap().mapv(f);
        array::from_ndarray(data, self.chunks().sizes().to_vec()).unwrap()
    }
}

#[test]
fn min_and_max() {
    for_each_case(|xf, xi, axes, ax, o, ctx| {
        let fmin = |g: &[f64]| g.iter().copied().fold(f64::INFINITY, f64::min);
        let fmax = |g: &[f64]| g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        exact(
            xf.min_with(axes.clone(), o).unwrap().compute(),
            &oracle(&float_data(), ax, o.keepdims, fmin),
            ctx,
        );
        exact(
            xf.max_with(axes.clone(), o).unwrap().compute(),
            &oracle(&float_data(), ax, o.keepdims, fmax),
            ctx,
        );
        exact(
            xi.min_with(axes.clone(), o).unwrap().compute(),
            &oracle(&int_data(), ax, o.keepdims, |g| *g.iter().min().unwrap()),
            ctx,
        );
        exact(
            xi.max_with(axes.clone(), o).unwrap().compute(),
            &oracle(&int_data(), ax, o.keepdims, |g| *g.iter().max().unwrap()),
            ctx,
        );
    });
}

#[test]
fn mean_var_std() {
    for_each_case(|xf, xi, axes, ax, o, ctx| {
        let fd = float_data();
        let mean = |g: &[f64]| sum_f(g) / g.len() as f64;
        let got = xf.mean_with(axes.clone(), o).unwrap().compute().unwrap();
        assert_close(&got, &oracle(&fd, ax, o.keepdims, mean), 1e-12, ctx);
        let idf = int_data().mapv(|v| v as f64);
        let got = xi.mean_with(axes.clone(), o).unwrap().compute().unwrap();
        assert_close(&got, &oracle(&idf, ax, o.keepdims, mean), 1e-12, ctx);
        for ddof in [0, 1] {
            let got = xf
                .var_with(axes.clone(), ddof, o)
                .unwrap()
                .compute()
                .unwrap();
            let want = oracle(&fd, ax, o.keepdims, |g| two_pass_var(g, ddof));
            assert_close(&got, &want, 1e-10, ctx);
            let got = xf
                .std_with(axes.clone(), ddof, o)
                .unwrap()
                .compute()
                .unwrap();
            assert_close(&got, &want.mapv(f64::sqrt), 1e-10, ctx);
            let got = xi
                .var_with(axes.clone(), ddof, o)
                .unwrap()
                .compute()
                .unwrap();
            let want = oracle(&idf, ax, o.keepdims, |g| two_pass_var(g, ddof));
            assert_close(&got, &want, 1e-10, ctx);
        }
    });
}

#[test]
fn any_and_all() {
    for_each_case(|xf, xi, axes, ax, o, ctx| {
        let id = int_data();
        exact(
            xi.any_with(axes.clone(), o).unwrap().compute(),
            &oracle(&id, ax, o.keepdims, |g| g.iter().any(|&v| v != 0)),
            ctx,
        );
        exact(
            xi.all_with(axes.clone(), o).unwrap().compute(),
            &oracle(&id, ax, o.keepdims, |g| g.iter().all(|&v| v != 0)),
            ctx,
        );
        // Mostly-true data, so `all` is not trivially false everywhere.
        let nz = id.mapv(|v| v != 3);
        let xb = array::from_ndarray(nz.clone(), xf.chunks().sizes().to_vec()).unwrap();
        exact(
            xb.all_with(axes.clone(), o).unwrap().compute(),
            &oracle(&nz, ax, o.keepdims, |g| g.iter().all(|&v| v)),
            ctx,
        );
        exact(
            xb.any_with(axes.clone(), o).unwrap().compute(),
            &oracle(&nz, ax, o.keepdims, |g| g.iter().any(|&v| v)),
            ctx,
        );
    });
}

fn first_arg<T: PartialOrd + Copy>(g: &[T], max: bool) -> i64 {
    let mut best = 0;
    for (i, x) in g.iter().enumerate() {
        if (max && *x > g[best]) || (!max && *x < g[best]) {
            best = i;
        }
    }
    best as i64
}

#[test]
fn argmin_argmax_with_ties_and_negatives() {
    // int_data has many ties (values -3..=3) and negative values.
    for_each_case(|xf, xi, axes, ax, o, ctx| {
        if ax.len() == 2 {
            let err = xi.argmax_with(axes.clone(), o).unwrap_err().to_string();
            assert!(err.contains("`axis`"), "{err}");
            return;
        }
        for max in [false, true] {
            let run = |x: &Array<i64>| {
                if max {
                    x.argmax_with(axes.clone(), o)
                } else {
                    x.argmin_with(axes.clone(), o)
                }
            };
            exact(
                run(xi).unwrap().compute(),
                &oracle(&int_data(), ax, o.keepdims, |g| first_arg(g, max)),
                &format!("{ctx}, max {max}"),
            );
            let runf = if max {
                xf.argmax_with(axes.clone(), o)
            } else {
                xf.argmin_with(axes.clone(), o)
            };
            exact(
                runf.unwrap().compute(),
                &oracle(&float_data(), ax, o.keepdims, |g| first_arg(g, max)),
                &format!("{ctx}, max {max}"),
            );
        }
    });
}

#[test]
fn argmax_flattened_ties_pick_first() {
    // The maximum 5 appears at flat 3 and 9, the minimum -4 at 4 and 10.
    let data = ArrayD::from_shape_vec(
        IxDyn(&[3, 4]),
        vec![1, 2, 0, 5, -4, 5, 5, 0, 0, 5, -4, 3i64],
    )
    .unwrap();
    for chunks in [
        ChunkSpec::from(1),
        ChunkSpec::from(vec![2, 3]),
        ChunkSpec::from(4),
    ] {
        let x = array::from_ndarray(data.clone(), chunks).unwrap();
        let am = x.argmax(Axes::All).unwrap().compute().unwrap();
        assert_eq!(am.shape(), &[] as &[usize]);
        assert_eq!(am[[]], 3);
        assert_eq!(x.argmin(None).unwrap().compute().unwrap()[[]], 4);
        assert_eq!(
            x.argmax(1).unwrap().compute().unwrap().as_slice().unwrap(),
            &[3, 1, 1]
        );
        assert_eq!(
            x.argmin(0).unwrap().compute().unwrap().as_slice().unwrap(),
            &[1, 0, 2, 1]
        );
    }
}

#[test]
fn nan_propagates_through_max_and_argmax() {
    let data =
        ArrayD::from_shape_vec(IxDyn(&[6]), vec![1.0, f64::NAN, 3.0, f64::NAN, 9.0, 2.0]).unwrap();
    let x = array::from_ndarray(data, 2).unwrap();
    assert!(x.max(0).unwrap().compute().unwrap()[[]].is_nan());
    assert!(x.min(0).unwrap().compute().unwrap()[[]].is_nan());
    assert_eq!(x.argmax(0).unwrap().compute().unwrap()[[]], 1);
    assert_eq!(x.argmin(0).unwrap().compute().unwrap()[[]], 1);
}

#[test]
fn var_is_stable_for_large_offsets() {
    let n = 100_000;
    let data: Vec<f64> = (0..n).map(|i| 1e9 + noise(i) - 0.5).collect();
    let mean = data.iter().sum::<f64>() / n as f64;
    let want = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    let x = array::from_ndarray(ArrayD::from_shape_vec(IxDyn(&[n]), data).unwrap(), 1000).unwrap();
    for split_every in [None, Some(2), Some(7)] {
        let opts = ReduceOptions {
            split_every,
            ..Default::default()
        };
        let got = x.var_with(Axes::All, 0, opts).unwrap().compute().unwrap()[[]];
        assert!((got - want).abs() <= 1e-6 * want, "var {got}, want {want}");
        let got = x.std_with(0, 0, opts).unwrap().compute().unwrap()[[]];
        assert!((got - want.sqrt()).abs() <= 1e-6 * want.sqrt());
    }
}

#[test]
fn linspace_sum_seed_workload() {
    let x = array::linspace::<f64>(1.0, 10.0, 1_000_000, true, 1000).unwrap();
    let s = x.sum(Axes::All).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    let got = s.compute().unwrap()[[]];
    let want = 1_000_000.0 * (1.0 + 10.0) / 2.0;
    assert!((got - want).abs() <= 1e-6 * want, "sum {got}, want {want}");
    let m = x.mean(0).unwrap().compute().unwrap()[[]];
    assert!((m - 5.5).abs() <= 1e-9);
}

#[test]
fn results_compose_and_keys_are_deterministic() {
    let x = array::from_ndarray(float_data(), vec![3, 2, 3]).unwrap();
    let a = x.sum(0).unwrap();
    let b = x.sum(0).unwrap();
    assert_eq!(a.name(), b.name());
    assert_ne!(a.name(), x.sum(1).unwrap().name());
    // A reduction of a reduction.
    let total = a.sum(Axes::All).unwrap().compute().unwrap()[[]];
    let want: f64 = float_data().sum();
    assert!((total - want).abs() <= 1e-9 * want.abs().max(1.0));
    assert_eq!(a.chunks().sizes(), &[vec![2, 2, 1], vec![3, 1]]);
    let k = x
        .sum_with(
            1,
            ReduceOptions {
                keepdims: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(k.chunks().sizes(), &[vec![3, 3, 1], vec![1], vec![3, 1]]);
}

#[test]
fn empty_reductions() {
    let x = array::zeros::<f64>(&[0, 3], 2).unwrap();
    let err = x.max(0).unwrap_err().to_string();
    assert!(
        err.contains("zero-size array to reduction operation"),
        "{err}"
    );
    assert!(x.argmin(Axes::All).is_err());
    assert!(x.argmax(0).is_err());
    assert_eq!(x.argmax(1).unwrap().compute().unwrap().shape(), &[0]);
    // Identities over no elements, as NumPy.
    assert_eq!(
        x.sum(0).unwrap().compute().unwrap().as_slice().unwrap(),
        &[0.0; 3]
    );
    assert_eq!(
        x.prod(0).unwrap().compute().unwrap().as_slice().unwrap(),
        &[1.0; 3]
    );
    assert_eq!(
        x.all(0).unwrap().compute().unwrap().as_slice().unwrap(),
        &[true; 3]
    );
    assert!(
        x.mean(0)
            .unwrap()
            .compute()
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    // Reducing the non-empty axis of an empty array is fine.
    assert_eq!(x.max(1).unwrap().compute().unwrap().shape(), &[0]);
}

#[test]
fn bad_arguments_name_the_argument() {
    let x = array::ones::<f64>(&[4, 5], 2).unwrap();
    let err = x.sum(3usize).unwrap_err().to_string();
    assert!(err.contains("`axis`"), "{err}");
    assert!(
        err.contains("axis 3 is out of range for an array of 2 dimensions"),
        "{err}"
    );
    let err = x.mean(-3).unwrap_err().to_string();
    assert!(err.contains("`axis`"), "{err}");
    let err = x.max([0, 0]).unwrap_err().to_string();
    assert!(err.contains("`axis`") && err.contains("repeated"), "{err}");
    for bad in [0, 1] {
        let opts = ReduceOptions {
            split_every: Some(bad),
            ..Default::default()
        };
        let err = x.sum_with(0, opts).unwrap_err().to_string();
        assert!(err.contains("`split_every`"), "{err}");
    }
    let err = x.argmax([0, 1]).unwrap_err().to_string();
    assert!(err.contains("`axis`"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sum_and_max_match_ndarray(
        (shape, chunks, axis, split) in (1usize..=3)
            .prop_flat_map(|nd| proptest::collection::vec(1usize..12, nd))
            .prop_flat_map(|shape| {
                let chunks: Vec<_> = shape.iter().map(|&n| 1..=n).collect();
                let nd = shape.len();
                (Just(shape), chunks, 0..=nd, 2usize..6)
            }),
        seed in 0usize..1000,
    ) {
        let n: usize = shape.iter().product();
        let data = ArrayD::from_shape_vec(
            IxDyn(&shape),
            (0..n).map(|i| (noise(i + seed * 7919) * 200.0) as i64 - 100).collect(),
        ).unwrap();
        let x = array::from_ndarray(data.clone(), chunks).unwrap();
        // axis == ndim stands for all axes.
        let (axes, resolved) = if axis == shape.len() {
            (Axes::All, (0..shape.len()).collect::<Vec<_>>())
        } else {
            (Axes::from(axis), vec![axis])
        };
        let opts = ReduceOptions { keepdims: false, split_every: Some(split) };
        let got = x.sum_with(axes.clone(), opts).unwrap().compute().unwrap();
        prop_assert_eq!(got, oracle(&data, &resolved, false, |g| g.iter().sum::<i64>()));
        let got = x.max_with(axes.clone(), opts).unwrap().compute().unwrap();
        prop_assert_eq!(got, oracle(&data, &resolved, false, |g| *g.iter().max().unwrap()));
        let xf = array::from_ndarray(data.mapv(|v| v as f64 / 3.0), x.chunks().sizes().to_vec()).unwrap();
        let got = xf.sum_with(axes, opts).unwrap().compute().unwrap();
        let want = oracle(&data.mapv(|v| v as f64 / 3.0), &resolved, false, sum_f);
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0));
        }
    }
}

/// The layers under a reduction: the tree has the advertised fan-in and depth, and every
/// task's op is portable (has params) and sized (has a projected output size).
#[test]
fn tree_shape_params_and_sizes() {
    let x = array::ones::<f64>(&[16], 1).unwrap();
    let s = x.sum(0).unwrap();
    // finalize (1 task, 4 deps) <- combine (4 tasks, 4 deps each) <- chunk (16 tasks).
    let top = s.layer();
    assert_eq!(top.tasks().len(), 1);
    assert_eq!(top.tasks()[0].deps.len(), 4);
    let mid = &top.deps()[0];
    assert_eq!(mid.tasks().len(), 4);
    assert!(mid.tasks().iter().all(|t| t.deps.len() == 4));
    let chunk = &mid.deps()[0];
    assert_eq!(chunk.tasks().len(), 16);
    for layer in [top, mid, chunk] {
        for t in layer.tasks() {
            assert!(t.op.params().is_some(), "{} has no params", t.op.name());
            let n = t.op.projected_nbytes(&[]).unwrap();
            assert!(n > 0 && n < 1024, "{} projects {n} bytes", t.op.name());
        }
    }
    assert_eq!(top.tasks()[0].op.projected_nbytes(&[]), Some(8));
    // split_every 2 over 16 blocks: 4 levels of pairs.
    let s2 = x
        .sum_with(
            0,
            ReduceOptions {
                split_every: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    let mut depth = 0;
    let mut layer = s2.layer().clone();
    while layer.tasks()[0].op.name() != "rask.array.reduce.chunk" {
        assert!(layer.tasks().iter().all(|t| t.deps.len() == 2));
        layer = layer.deps()[0].clone();
        depth += 1;
    }
    assert_eq!(depth, 4);
    assert_eq!(s.compute().unwrap()[[]], 16.0);
    assert_eq!(s2.compute().unwrap()[[]], 16.0);
    // Matmul ops are portable and sized too.
    let a = array::ones::<f64>(&[4, 6], 2).unwrap();
    let m = a.dot(&array::ones::<f64>(&[6, 3], 3).unwrap()).unwrap();
    for t in m.layer().tasks().iter().chain(m.layer().deps()[0].tasks()) {
        assert!(t.op.params().is_some());
        assert!(t.op.projected_nbytes(&[]).is_some());
    }
}

#[test]
fn integer_sums_and_products_wrap_like_numpy() {
    use ndarray::{ArrayD, IxDyn};
    use rask::array::Axes;
    use rask::prelude::*;
    // NumPy: np.array([2**63 - 1, 1]).sum() == -2**63 (int64 wraps), no error.
    let x = rask::array::from_ndarray(
        ArrayD::from_shape_vec(IxDyn(&[2]), vec![i64::MAX, 1]).unwrap(),
        1,
    )
    .unwrap();
    let s = x.sum(Axes::All).unwrap().compute().unwrap();
    assert_eq!(s.first().copied(), Some(i64::MIN));
    let p = x.prod(Axes::All).unwrap().compute().unwrap();
    assert_eq!(p.first().copied(), Some(i64::MAX));
    let y = rask::array::full::<i64>(&[4], 1 << 20, 1).unwrap();
    let p = y.prod(Axes::All).unwrap().compute().unwrap();
    assert_eq!(
        p.first().copied(),
        Some(
            (1i64 << 20)
                .wrapping_mul(1 << 20)
                .wrapping_mul(1 << 20)
                .wrapping_mul(1 << 20)
        )
    );
}
