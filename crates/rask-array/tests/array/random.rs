//! Random arrays: statistics, reproducibility across executors, bad arguments.

use ndarray::ArrayD;
use rask::array::{self, random};
use rask::prelude::*;

fn with(executor: Executor) -> Config {
    Config {
        executor,
        ..Config::builtin()
    }
}

fn mean_std(v: &ArrayD<f64>) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.sum() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn normal_has_the_right_moments() {
    let x = random::normal(10.0, 0.1, &[1000, 1000], (250, 400), 42).unwrap();
    let v = x.compute().unwrap();
    let (mean, std) = mean_std(&v);
    assert!((mean - 10.0).abs() < 5e-3, "{mean}");
    assert!((std - 0.1).abs() < 5e-3, "{std}");
    // Standard normal: tighter checks of the shape of the distribution.
    let z = random::standard_normal(&[1_000_000], 100_000, 7)
        .unwrap()
        .compute()
        .unwrap();
    let (m, s) = mean_std(&z);
    assert!(m.abs() < 5e-3 && (s - 1.0).abs() < 5e-3, "{m} {s}");
    let frac = |t: f64| z.iter().filter(|x| x.abs() < t).count() as f64 / z.len() as f64;
    assert!((frac(1.0) - 0.682_689).abs() < 3e-3, "{}", frac(1.0));
    assert!((frac(2.0) - 0.954_500).abs() < 2e-3, "{}", frac(2.0));
    // The tail beyond the ziggurat's base (3.654) is sampled: P(|z| > 3.654) ~ 2.6e-4.
    let tail = z.iter().filter(|x| x.abs() > 3.7).count();
    assert!((100..400).contains(&tail), "{tail}");
    let skew = z.iter().map(|x| x * x * x).sum::<f64>() / z.len() as f64;
    assert!(skew.abs() < 0.02, "{skew}");
}

#[test]
fn uniform_in_range_and_flat() {
    let u = random::uniform(-2.0, 3.0, &[400, 500], 128, 1)
        .unwrap()
        .compute()
        .unwrap();
    assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
    let (mean, _) = mean_std(&u);
    assert!((mean - 0.5).abs() < 0.02, "{mean}");
    // Chi-square over 50 bins: 49 degrees of freedom, 99.9% quantile ~ 85.4.
    let bins = 50;
    let mut counts = vec![0usize; bins];
    for &x in &u {
        counts[((x + 2.0) / 5.0 * bins as f64) as usize] += 1;
    }
    let expect = u.len() as f64 / bins as f64;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expect).powi(2) / expect)
        .sum();
    assert!(chi2 < 85.4, "chi2 = {chi2}");
    let r = random::random(&[1000], 100, 3).unwrap().compute().unwrap();
    assert!(r.iter().all(|&x| (0.0..1.0).contains(&x)));
}

#[test]
fn integers_cover_the_range_and_never_hit_high() {
    let v = random::integers(-3, 4, &[100_000], 7_000, 9)
        .unwrap()
        .compute()
        .unwrap();
    let mut counts = [0usize; 7];
    for &x in &v {
        assert!((-3..4).contains(&x), "{x}");
        counts[(x + 3) as usize] += 1;
    }
    for c in counts {
        assert!((c as f64 - 100_000.0 / 7.0).abs() < 600.0, "{counts:?}");
    }
    // The whole i64 range works too.
    let wide = random::integers(i64::MIN, i64::MAX, &[1000], 100, 2)
        .unwrap()
        .compute()
        .unwrap();
    assert!(wide.iter().any(|&x| x < 0) && wide.iter().any(|&x| x > 0));
}

#[test]
fn same_seed_same_values_whatever_the_executor() {
    let make = || {
        (
            random::normal(0.0, 1.0, &[300, 200], (64, 50), 123).unwrap(),
            random::uniform(0.0, 1.0, &[300, 200], (64, 50), 123).unwrap(),
            random::integers(0, 10, &[300, 200], (64, 50), 123).unwrap(),
        )
    };
    let a = rask::compute_with(&make(), &with(Executor::Sync)).unwrap();
    let b = rask::compute_with(&make(), &with(Executor::Threads(4))).unwrap();
    assert_eq!(a, b);
    // Same keys too: built twice, the arrays are the same expression.
    assert_eq!(make().0.name(), make().0.name());
    // Another seed gives other values; so do other parameters.
    let c = random::normal(0.0, 1.0, &[300, 200], (64, 50), 124)
        .unwrap()
        .compute()
        .unwrap();
    assert_ne!(a.0, c);
    assert_ne!(
        make().0.name(),
        random::normal(0.0, 1.0, &[300, 200], (64, 50), 124)
            .unwrap()
            .name()
    );
    // A block depends only on (seed, its index): a slice of blocks would compute the same.
    let small = random::normal(0.0, 1.0, &[64, 50], (64, 50), 123)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(small, a.0.slice(ndarray::s![0..64, 0..50]).into_dyn());
}

#[test]
fn random_state_gives_a_reproducible_sequence() {
    let mut r1 = random::RandomState::new(5);
    let mut r2 = random::RandomState::new(5);
    let a1 = r1.normal(0.0, 1.0, &[100], 30).unwrap().compute().unwrap();
    let b1 = r1.normal(0.0, 1.0, &[100], 30).unwrap().compute().unwrap();
    let a2 = r2.normal(0.0, 1.0, &[100], 30).unwrap().compute().unwrap();
    assert_eq!(a1, a2);
    assert_ne!(a1, b1);
    let u = r1.uniform(1.0, 2.0, &[10], 3).unwrap().compute().unwrap();
    assert!(u.iter().all(|&x| (1.0..2.0).contains(&x)));
    let i = r1.integers(0, 2, &[10], 3).unwrap().compute().unwrap();
    assert!(i.iter().all(|&x| x == 0 || x == 1));
}

#[test]
fn bad_arguments_name_the_argument() {
    let err = |r: rask::Result<array::Array<f64>>| r.unwrap_err().to_string();
    let e = err(random::normal(0.0, -1.0, &[10], 5, 0));
    assert!(e.contains("`std`"), "{e}");
    let e = err(random::normal(f64::NAN, 1.0, &[10], 5, 0));
    assert!(e.contains("`mean`"), "{e}");
    let e = err(random::normal(0.0, f64::INFINITY, &[10], 5, 0));
    assert!(e.contains("`std`"), "{e}");
    let e = err(random::uniform(1.0, 1.0, &[10], 5, 0));
    assert!(e.contains("`high`"), "{e}");
    let e = err(random::uniform(f64::NEG_INFINITY, 1.0, &[10], 5, 0));
    assert!(e.contains("`low`"), "{e}");
    let e = err(random::uniform(-f64::MAX, f64::MAX, &[10], 5, 0));
    assert!(e.contains("`high`"), "{e}");
    let e = random::integers(5, 5, &[10], 5, 0).unwrap_err().to_string();
    assert!(e.contains("`high`"), "{e}");
    let e = err(random::normal(0.0, 1.0, &[10], 0, 0));
    assert!(e.contains("`chunks`"), "{e}");
}
