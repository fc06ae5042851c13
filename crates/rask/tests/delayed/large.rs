//! Large graphs: long chains and wide trees build, optimize, compute and drop without
//! recursion, and the optimizer stays linear (a 200_000-link chain fuses into one task; a
//! sum over 200_000 literals inlines them all), with each pass also exercised switched off.

use rask::graph::optimize::OptimizeOptions;
use rask::prelude::*;
use rask::{Executor, value};

use crate::config;

const N: i64 = 200_000;

const NO_FUSE: OptimizeOptions = OptimizeOptions {
    cull: true,
    inline: true,
    fuse: false,
};

const NO_INLINE: OptimizeOptions = OptimizeOptions {
    cull: true,
    inline: false,
    fuse: true,
};

fn add_chain(n: i64) -> Delayed<i64> {
    let mut x = value(0i64);
    for _ in 0..n {
        x = x + 1;
    }
    x
}

fn map_chain(n: u64) -> (Delayed<u64>, u64) {
    let mut x = value(1u64);
    let mut oracle = 1u64;
    for i in 0..n {
        x = x.map(move |v| v.wrapping_mul(3).wrapping_add(i));
        oracle = oracle.wrapping_mul(3).wrapping_add(i);
    }
    (x, oracle)
}

#[test]
fn chain_of_200k_adds() {
    let x = add_chain(N);
    assert_eq!(
        x.compute_with(&config(Executor::Sync).with_optimize(NO_FUSE))
            .unwrap(),
        N
    );
    // Dropping the last handle frees the whole chain without recursing once per link.
    drop(x);
}

#[test]
fn chain_of_200k_maps() {
    let (x, oracle) = map_chain(N as u64);
    assert_eq!(
        x.compute_with(&config(Executor::Threads(2)).with_optimize(NO_FUSE))
            .unwrap(),
        oracle
    );
    drop(x);
}

#[test]
fn fused_chains_of_moderate_length() {
    let x = add_chain(500);
    let (y, oracle) = map_chain(500);
    assert_eq!(
        (x, y).compute_with(&config(Executor::Threaded)).unwrap(),
        (500, oracle)
    );
}

#[test]
fn chain_of_200k_with_default_optimizations() {
    assert_eq!(
        add_chain(N)
            .compute_with(&config(Executor::Threaded))
            .unwrap(),
        N
    );
    let (y, oracle) = map_chain(N as u64);
    assert_eq!(y.compute_with(&config(Executor::Threaded)).unwrap(), oracle);
}

#[test]
fn tree_of_200k_leaves() {
    let mut level: Vec<Delayed<i64>> = (0..N).map(value).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [a, b] => a + b,
                [a] => a.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    let total = level.pop().unwrap();
    let oracle: i64 = (0..N).sum();
    assert_eq!(
        total.compute_with(&config(Executor::Threaded)).unwrap(),
        oracle
    );
}

#[test]
fn one_sum_over_200k_items() {
    let flat = rask::sum((0..N).map(value));
    let oracle: i64 = (0..N).sum();
    assert_eq!(
        flat.compute_with(&config(Executor::Sync).with_optimize(NO_INLINE))
            .unwrap(),
        oracle
    );
}

#[test]
fn one_sum_over_200k_literals_with_default_optimizations() {
    let flat = rask::sum((0..N).map(value));
    assert_eq!(
        flat.compute_with(&config(Executor::Sync)).unwrap(),
        (0..N).sum::<i64>()
    );
}
