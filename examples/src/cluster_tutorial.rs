//! The futures tutorial on a cluster: Monte-Carlo pi with `map` and `as_completed` until the
//! estimate settles, futures composed with literals, and the array workload computed on the
//! cluster with the same answer as locally.
//!
//! Every function takes a [`Client`]; the examples start a `LocalCluster` whose workers run
//! the example's own binary, so the `#[delayed]` functions here run on them.

use rask::distributed::{Client, as_completed};
use rask::prelude::*;

use crate::delayed_tutorial::pi_batch;

/// What [`pi_until_converged`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct PiEstimate {
    pub pi: f64,
    pub batches: u64,
    pub points: u64,
}

/// Monte-Carlo pi with futures: `first` batches by `map`, then, in completion order, one more
/// batch per finished one until the estimate moves by less than `tolerance` between two
/// results (at least `first` results, at most `max_batches` batches).
pub fn pi_until_converged(
    client: &Client,
    first: u64,
    per_batch: u64,
    tolerance: f64,
    max_batches: u64,
) -> rask::Result<PiEstimate> {
    if first == 0 || per_batch == 0 || max_batches < first {
        return Err(RaskError::invalid_argument(
            "first",
            "first and per_batch must be positive and max_batches at least first",
        ));
    }
    let mut seq = as_completed(client.map(|seed| pi_batch(seed, per_batch), 0..first)?);
    let (mut hits, mut done, mut submitted) = (0u64, 0u64, first);
    let mut last = f64::NAN;
    while let Some(f) = seq.next() {
        hits += f.result()?;
        done += 1;
        let pi = 4.0 * hits as f64 / (done * per_batch) as f64;
        let settled = done >= first && (pi - last).abs() < tolerance;
        last = pi;
        if !settled && submitted < max_batches {
            seq.add(client.submit(&pi_batch(submitted, per_batch))?);
            submitted += 1;
        }
    }
    Ok(PiEstimate {
        pi: last,
        batches: done,
        points: done * per_batch,
    })
}

#[rask::delayed(pure)]
pub fn add2(x: i64, y: i64) -> i64 {
    x + y
}

#[rask::delayed(pure)]
pub fn make_list(a: i64, b: i64, c: i64) -> Vec<i64> {
    vec![a, b, c]
}

/// Writes a list to `dir/name.txt` and returns the path (a side effect, so impure).
#[rask::delayed]
pub fn write_list(list: Vec<i64>, dir: String, name: String) -> Result<String, std::io::Error> {
    let path = std::path::Path::new(&dir).join(format!("{name}.txt"));
    let text: Vec<String> = list.iter().map(i64::to_string).collect();
    std::fs::write(&path, text.join("\n"))?;
    Ok(path.to_string_lossy().into_owned())
}

#[rask::delayed(pure)]
pub fn combine_lists(a: Vec<i64>, b: Vec<i64>) -> Vec<i64> {
    let mut out: Vec<i64> = a.into_iter().chain(b).collect();
    out.sort_unstable();
    out
}

/// The tutorial's futures composed: `add2` futures feed `make_list` with literals mixed in,
/// the lists are written to `dir` and combined. Returns the combined list and the two paths.
pub fn futures_composed(client: &Client, dir: &str) -> rask::Result<(Vec<i64>, Vec<String>)> {
    let x = client.submit(&add2(1, 2))?;
    let y = client.submit(&add2(&x, 10))?;
    let l1 = client.submit(&make_list(&x, &y, 100))?;
    let l2 = client.submit(&make_list(-1, &y, &x))?;
    let p1 = client.submit(&write_list(&l1, dir.to_string(), "first".to_string()))?;
    let p2 = client.submit(&write_list(&l2, dir.to_string(), "second".to_string()))?;
    let combined = client.submit(&combine_lists(&l1, &l2))?;
    Ok((combined.result()?, client.gather(&[p1, p2])?))
}
