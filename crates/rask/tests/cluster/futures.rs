//! submit, map, gather, wait, as_completed, scatter, cancel, errors: Dask's futures tutorial.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use rask::distributed::{SubmitOptions, WaitFor, as_completed, wait};
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

/// The process that ran the task.
#[rask::delayed]
fn where_am_i() -> u32 {
    std::process::id()
}

#[rask::delayed]
fn slow_inc(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x + 1
}

#[rask::delayed(pure)]
fn checked(x: i64) -> Result<i64, String> {
    if x < 0 {
        Err(format!("negative input {x}"))
    } else {
        Ok(x)
    }
}

#[rask::delayed(pure)]
fn boom(x: i64) -> i64 {
    panic!("boom on {x}")
}

#[rask::delayed(pure)]
fn total(xs: &[f64]) -> f64 {
    xs.iter().sum()
}

// The tutorial's "futures composed": add2 -> make_list -> combine_lists.
#[rask::delayed(pure)]
fn add2(x: i64, y: i64) -> i64 {
    x + y
}

#[rask::delayed(pure)]
fn make_list(a: i64, b: i64, c: i64) -> Vec<i64> {
    vec![a, b, c]
}

#[rask::delayed(pure)]
fn combine_lists(a: Vec<i64>, b: Vec<i64>) -> Vec<i64> {
    a.into_iter().chain(b).collect()
}

/// Fails the first time it runs for a path (leaving a marker file), succeeds after.
#[rask::delayed]
fn flaky(marker: String) -> Result<i64, String> {
    let path = std::path::Path::new(&marker);
    if path.exists() {
        Ok(1)
    } else {
        std::fs::write(path, b"ran").map_err(|e| e.to_string())?;
        Err("first attempt fails".into())
    }
}

/// Monte-Carlo batch: `[hits inside the quarter circle, samples]` from a small xorshift.
#[rask::delayed]
fn pi_batch(seed: u64, n: u64) -> Vec<u64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut hits = 0;
    for _ in 0..n {
        let (x, y) = (next(), next());
        if x * x + y * y <= 1.0 {
            hits += 1;
        }
    }
    vec![hits, n]
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial("futures::submit_runs_on_a_worker", submit_runs_on_a_worker),
        trial(
            "futures::pure_keys_are_shared_impure_are_fresh",
            pure_and_impure,
        ),
        trial(
            "futures::futures_as_arguments_and_composed",
            futures_composed,
        ),
        trial(
            "futures::map_gather_and_as_completed_pi",
            map_and_as_completed,
        ),
        trial("futures::errors_reach_dependents_not_unrelated", errors),
        trial("futures::cancel_wait_and_timeouts", cancel_and_wait),
        trial("futures::scatter_then_submit", scatter),
        trial("futures::closures_fail_at_submit", closures_fail_at_submit),
        trial("futures::default_client_runs_compute", default_client),
        trial("futures::priority_and_retries", priority_and_retries),
    ]
}

fn submit_runs_on_a_worker() -> TestResult {
    let (client, cluster) = client(2);
    let f = client.submit(&where_am_i())?;
    let pid = f.result()?;
    check(
        pid != std::process::id(),
        "the task ran in the client process",
    )?;
    check(
        cluster.worker_pids().contains(&pid),
        format!("{pid} is not a worker: {:?}", cluster.worker_pids()),
    )?;
    let g = client.submit(&inc(1))?;
    check(g.result()? == 2, "inc(1)")?;
    check(g.status() == "finished" && g.done(), g.status())?;
    // async form
    let h = client.submit(&add(20, 22))?;
    let v = client.raw().block_on(h.result_async())?;
    check(v == 42, v)
}

fn pure_and_impure() -> TestResult {
    let (client, _c) = client(1);
    let a = client.submit(&inc(10))?;
    let b = client.submit(&inc(10))?;
    check(a.key() == b.key(), "equal pure submits share a key")?;
    check(a.result()? == 11 && b.result()? == 11, "values")?;
    let x = client.submit(&slow_inc(1, 0))?;
    let y = client.submit(&slow_inc(1, 0))?;
    check(x.key() != y.key(), "impure submits get fresh keys")?;
    check(x.result()? == 2 && y.result()? == 2, "impure values")
}

fn futures_composed() -> TestResult {
    let (client, _c) = client(2);
    let a = client.submit(&inc(1))?;
    let b = client.submit(&add(&a, 10))?;
    let c = client.submit(&add(&a, &b))?;
    check(c.result()? == 2 + 12, "a + b")?;
    // add2 -> make_list -> combine_lists, futures and literals mixed.
    let x = client.submit(&add2(1, 2))?;
    let y = client.submit(&add2(&x, 3))?;
    let l1 = client.submit(&make_list(&x, &y, 7))?;
    let l2 = client.submit(&make_list(0, &x, &y))?;
    let both = client.submit(&combine_lists(&l1, &l2))?;
    let got = both.result()?;
    check(got == vec![3, 6, 7, 0, 3, 6], format!("{got:?}"))?;
    // The same computation built locally gives the same answer (independent oracle).
    let local = combine_lists(
        make_list(add2(1, 2), add2(add2(1, 2), 3), 7),
        make_list(0, add2(1, 2), add2(add2(1, 2), 3)),
    )
    .compute_with(&Config::builtin())?;
    check(local == got, "local and cluster agree")?;
    // Dropping the future of an input does not lose a dependent already submitted.
    let d = client.submit(&slow_inc(5, 200))?;
    let e = client.submit(&add(&d, 1))?;
    drop(d);
    check(e.result()? == 7, "dependent of a dropped future")
}

fn map_and_as_completed() -> TestResult {
    let (client, _c) = client(2);
    let futs = client.map(inc, 0..100)?;
    let total: i64 = client.gather(&futs)?.into_iter().sum();
    check(total == (1..=100).sum::<i64>(), total)?;

    // 100 batches by map, then as_completed adding batches until the estimate settles.
    let n = 20_000u64;
    let futs = client.map(|s| pi_batch(s, n), 0..100u64)?;
    let mut seq = as_completed(futs);
    let (mut hits, mut samples, mut next_seed, mut seen) = (0u64, 0u64, 100u64, 0usize);
    let mut last = 0.0f64;
    while let Some(f) = seq.next() {
        let r = f.result()?;
        hits += r[0];
        samples += r[1];
        seen += 1;
        let est = 4.0 * hits as f64 / samples as f64;
        let settled = seen >= 100 && (est - last).abs() < 1e-4;
        last = est;
        if !settled && next_seed < 300 {
            seq.add(client.submit(&pi_batch(next_seed, n))?);
            next_seed += 1;
        }
    }
    check(
        seen as u64 == next_seed,
        format!("{seen} results for {next_seed} batches"),
    )?;
    check(
        (last - std::f64::consts::PI).abs() < 0.01,
        format!("pi ~ {last}"),
    )?;

    // Batches and with_results.
    let mut seq = as_completed(client.map(inc, 0..20)?);
    let mut got = 0;
    while !seq.is_empty() {
        got += seq.next_batch()?.len();
    }
    check(got == 20, got)?;
    let sum: i64 = as_completed(client.map(inc, 0..10)?)
        .with_results()
        .map(|(_, r)| r.unwrap())
        .sum();
    check(sum == 55, sum)
}

fn errors() -> TestResult {
    let (client, _c) = client(2);
    let bad = client.submit(&checked(-1))?;
    let after = client.submit(&add(&bad, 1))?;
    let good = client.submit(&inc(5))?;
    check(good.result()? == 6, "unrelated work finishes")?;
    let err = bad.result().unwrap_err().to_string();
    check(
        err.contains("negative input -1") && err.contains(&bad.key().to_string()),
        &err,
    )?;
    check(bad.status() == "error", bad.status())?;
    let err = after.result().unwrap_err().to_string();
    check(err.contains(&bad.key().to_string()), &err)?;
    check(
        bad.exception()?.is_some() && good.exception()?.is_none(),
        "exception()",
    )?;
    let p = client.submit(&boom(3))?;
    let err = p.result().unwrap_err();
    check(
        matches!(err, RaskError::TaskPanicked { .. }) && err.to_string().contains("boom on 3"),
        &err,
    )?;
    // The worker survived the panic and keeps working.
    check(client.submit(&inc(41))?.result()? == 42, "after a panic")
}

fn cancel_and_wait() -> TestResult {
    let (client, _c) = client(1);
    let slow = client.submit(&slow_inc(1, 3000))?;
    let quick = client.submit(&inc(1))?;
    let t = Instant::now();
    let r = wait(
        vec![slow.clone()],
        WaitFor::AllCompleted,
        Some(Duration::from_millis(200)),
    )?;
    check(
        r.done.is_empty() && r.not_done.len() == 1,
        "not done after 200 ms",
    )?;
    check(
        t.elapsed() < Duration::from_secs(2),
        "wait honoured its timeout",
    )?;
    check(
        slow.result_timeout(Duration::from_millis(50))?.is_none(),
        "result_timeout",
    )?;
    client.cancel(std::slice::from_ref(&slow))?;
    let err = slow.result().unwrap_err();
    check(err.is_cancelled(), &err)?;
    check(slow.status() == "cancelled", slow.status())?;
    check(
        t.elapsed() < Duration::from_millis(2500),
        "cancel did not wait for the task",
    )?;
    // The worker's only thread finishes the cancelled task (a running op cannot be
    // interrupted), then runs the next one.
    let r = wait(vec![quick], WaitFor::FirstCompleted, None)?;
    check(r.done.len() == 1, "first completed")
}

fn scatter() -> TestResult {
    let (client, _c) = client(2);
    let data = client.scatter(vec![vec![1.0f64, 2.0, 3.5], vec![10.0]])?;
    let a = client.submit(&total(&data[0]))?;
    let b = client.submit(&total(&data[1]))?;
    check(
        a.result()? == 6.5 && b.result()? == 10.0,
        "sums of scattered data",
    )?;
    check(
        data[0].result()? == vec![1.0, 2.0, 3.5],
        "scattered value comes back",
    )
}

fn closures_fail_at_submit() -> TestResult {
    let (client, _c) = client(1);
    let f = rask::delayed(|x: i64| x + 1).call((1,));
    let err = client.submit(&f).unwrap_err().to_string();
    check(
        err.contains("cannot be sent to the cluster") && err.contains(&f.key().to_string()),
        &err,
    )
}

fn default_client() -> TestResult {
    let (client, cluster) = client(1);
    let cfg = Config::builtin().with_client(Some(client.clone()));
    let pid = where_am_i().compute_with(&cfg)?;
    check(
        cluster.worker_pids().contains(&pid),
        "compute ran on the cluster",
    )?;
    let v = add(inc(1), 5).compute_with(&cfg)?;
    check(v == 7, v)?;
    let p = rask::persist_with(&add(inc(2), 5), &cfg)?;
    check(
        add(&p, 1).compute_with(&cfg)? == 9,
        "built on a persisted value",
    )
}

fn priority_and_retries() -> TestResult {
    let (client, _c) = client(1);
    // A busy worker (both of its slots taken: 1 thread x saturation 1.1, rounded up); then a
    // low- and a high-priority task wait on the scheduler: the high one runs first.
    let _busy = client.submit(&slow_inc(0, 300))?;
    let _busy2 = client.submit(&slow_inc(1000, 300))?;
    let low = client.submit_with(
        &slow_inc(1, 100),
        SubmitOptions {
            priority: -10,
            ..Default::default()
        },
    )?;
    let high = client.submit_with(
        &slow_inc(2, 100),
        SubmitOptions {
            priority: 10,
            ..Default::default()
        },
    )?;
    let order: Vec<_> = as_completed(vec![low.clone(), high.clone()]).collect();
    check(order[0].key() == high.key(), "high priority first")?;
    // Retries: a task failing on its first attempt only succeeds with one retry and fails
    // without.
    let dir = tempfile::tempdir()?;
    let marker = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let retried = client.submit_with(
        &flaky(marker("a")),
        SubmitOptions {
            retries: 1,
            ..Default::default()
        },
    )?;
    check(retried.result()? == 1, "succeeds on the retry")?;
    let not_retried = client.submit(&flaky(marker("b")))?;
    let err = not_retried.result().unwrap_err().to_string();
    check(err.contains("first attempt fails"), err)
}
