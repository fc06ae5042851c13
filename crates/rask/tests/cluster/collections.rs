//! Whole collections on a cluster: compute and persist of arrays and delayed graphs, checked
//! against the local scheduler and plain ndarray.

use libtest_mimic::Trial;
use rask::array::{self, s};
use rask::prelude::*;

use crate::{TestResult, check, client, trial};

#[rask::delayed(pure)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial("collections::tree_of_delayed_matches_local", delayed_tree),
        trial("collections::arrays_match_local_and_ndarray", arrays),
        trial(
            "collections::persisted_array_stays_on_workers",
            persist_array,
        ),
    ]
}

fn delayed_tree() -> TestResult {
    let (client, _c) = client(2);
    let leaves: Vec<_> = (0..64).map(inc).collect();
    let mut level = leaves;
    while level.len() > 1 {
        level = level.chunks(2).map(|p| add(&p[0], &p[1])).collect();
    }
    let got = client.compute(&level[0])?;
    check(got == (1..=64).sum::<i64>(), got)?;
    // Several outputs at once, sharing intermediates.
    let (a, b) = client.compute(&(inc(5), add(inc(5), 1)))?;
    check((a, b) == (6, 7), format!("{a} {b}"))
}

fn arrays() -> TestResult {
    let (client, _c) = client(2);
    let local = Config::builtin();
    let x = array::linspace::<f64>(1.0, 10.0, 100_000, true, 1000)?;
    let sum = x.sum(array::Axes::All)?;
    let (c, l) = (client.compute(&sum)?, sum.compute_with(&local)?);
    check(c == l, format!("linspace sum {c:?} vs {l:?}"))?;
    let y = array::random::normal(10.0, 0.1, &[400, 400], (100, 100), 7)?;
    let m = y.mean(0)?.slice(&s![..;10])?;
    let (c, l) = (client.compute(&m)?, m.compute_with(&local)?);
    check(c == l, "normal mean: cluster equals local")?;
    // Independent oracle: plain ndarray over the same blocks.
    let full = y.compute_with(&local)?;
    let oracle = full.mean_axis(ndarray::Axis(0)).unwrap();
    for (i, v) in c.iter().enumerate() {
        check(
            (v - oracle[i * 10]).abs() < 1e-9,
            format!("column {}", i * 10),
        )?;
    }
    // Elementwise with broadcasting, a transpose and a matmul.
    let a = array::random::uniform(0.0, 1.0, &[60, 40], (25, 15), 3)?;
    let b = array::random::uniform(0.0, 1.0, &[40], 15, 4)?;
    let expr = a.try_add(&b)?.transpose(None)?.matmul(&a)?;
    let (c, l) = (client.compute(&expr)?, expr.compute_with(&local)?);
    check(c == l, "matmul expression: cluster equals local")
}

fn persist_array() -> TestResult {
    let (client, _c) = client(2);
    let local = Config::builtin();
    let x = array::random::normal(0.0, 1.0, &[300, 300], (100, 100), 11)?;
    let kept = client.persist(&x)?;
    // The persisted array's blocks live on the workers: computing it here fails, computing
    // on the cluster reads them.
    check(
        kept.compute_with(&local).is_err(),
        "the data is not in this process",
    )?;
    let s1 = client.compute(&kept.sum(array::Axes::All)?)?;
    let s2 = x.sum(array::Axes::All)?.compute_with(&local)?;
    check(s1 == s2, format!("{s1:?} vs {s2:?}"))?;
    let t = client.compute(&kept.transpose(None)?.slice(&s![5..7, 0..3])?)?;
    let o = x
        .transpose(None)?
        .slice(&s![5..7, 0..3])?
        .compute_with(&local)?;
    check(t == o, "slice of the persisted array")
}
