//! Computing several outputs at once so they share intermediates; `persist` to keep a value
//! for later computations; pure (deduplicated) versus impure (fresh key per call) tasks.
//!
//! `cargo run -p rask-examples --example delayed_shared_and_persist`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask::prelude::*;

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed(pure)]
fn load(n: i64) -> Vec<i64> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    (0..n).collect()
}

#[rask::delayed(pure)]
fn total(v: &[i64]) -> i64 {
    v.iter().sum()
}

#[rask::delayed(pure)]
fn largest(v: &[i64]) -> i64 {
    v.iter().copied().max().unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    // Pure calls with equal arguments share one key, so `data` is loaded once even though
    // both outputs read it and it was "called" twice.
    let (s, m) = (total(load(1000)), largest(load(1000))).compute()?;
    println!(
        "sum = {s}, max = {m}, loads = {}",
        LOADS.load(Ordering::SeqCst)
    );

    // persist: compute once, keep the value; later graphs start from it.
    let data = load(10).persist()?;
    let before = LOADS.load(Ordering::SeqCst);
    let (a, b) = (total(&data), largest(&data)).compute()?;
    println!(
        "after persist: sum = {a}, max = {b}, extra loads = {}",
        LOADS.load(Ordering::SeqCst) - before
    );

    // Impure (the default for #[delayed] and rask::delayed): a fresh key per call.
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let tick = rask::delayed(move |x: i64| {
        c.fetch_add(1, Ordering::SeqCst);
        x
    });
    let (x, y) = (tick.call((1,)), tick.call((1,)));
    println!("impure keys differ: {}", x.key() != y.key());
    (x, y).compute()?;
    println!("impure calls ran {} times", counter.load(Ordering::SeqCst));
    Ok(())
}
