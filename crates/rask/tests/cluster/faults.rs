//! Workers that die or hang mid-run, tasks that kill their workers, a worker that rejoins.
//! Every test is bounded: slow tasks are short, waits have deadlines.

use std::time::Duration;

use libtest_mimic::Trial;
use rask::distributed::Future;
use rask::prelude::*;

use crate::{TestResult, check, client, eventually, trial};

#[rask::delayed]
fn slow_square(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Kills the process running it, the way an out-of-memory kill would.
#[rask::delayed]
fn die(_x: i64) -> i64 {
    std::process::abort();
    #[allow(unreachable_code)]
    _x
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a child's pid; no memory is shared.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial("faults::a_killed_worker_is_survived", killed_worker),
        trial("faults::a_hung_worker_times_out_and_rejoins", hung_worker),
        trial(
            "faults::a_task_that_kills_workers_fails_naming_it",
            killer_task,
        ),
    ]
}

/// 24 slow squares summed in a tree on 2 workers; one worker is SIGKILLed mid-run. The
/// squares it held or was running are recomputed on the other (or its restarted self), and
/// the total is right.
fn killed_worker() -> TestResult {
    let (client, cluster) = client(2);
    let squares: Vec<Future<i64>> = client.map(|i| slow_square(i, 60), 0..24)?;
    let mut level: Vec<Delayed<i64>> = Vec::new();
    for pair in squares.chunks(2) {
        level.push(add(&pair[0], &pair[1]));
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                if p.len() == 2 {
                    add(&p[0], &p[1])
                } else {
                    p[0].clone()
                }
            })
            .collect();
    }
    let total = client.submit(&level[0])?;
    // Let some squares finish on both workers, then kill one.
    check(
        eventually(Duration::from_secs(20), || {
            squares.iter().filter(|f| f.done()).count() >= 6
        }),
        "some squares finished",
    )?;
    let victim = cluster.worker_pids()[0];
    signal(victim, libc::SIGKILL);
    let got = total.result()?;
    let want: i64 = (0..24).map(|i| i * i).sum();
    check(got == want, format!("{got} != {want}"))?;
    let all: Vec<i64> = client.gather(&squares)?;
    check(
        all == (0..24).map(|i| i * i).collect::<Vec<_>>(),
        "every square",
    )
}

/// One worker SIGSTOPped: after the heartbeat timeout its tasks run elsewhere; once
/// SIGCONTed it reconnects as a fresh worker and takes work again.
fn hung_worker() -> TestResult {
    let (client, cluster) = client(2);
    let pids = cluster.worker_pids();
    signal(pids[1], libc::SIGSTOP);
    let futs: Vec<Future<i64>> = client.map(|i| slow_square(i, 20), 100..120)?;
    let got: i64 = client.gather(&futs)?.into_iter().sum();
    let want: i64 = (100..120).map(|i| i * i).sum();
    check(got == want, format!("{got} != {want}"))?;
    check(
        eventually(Duration::from_secs(10), || cluster.n_workers() == 1),
        format!(
            "the hung worker was removed ({} workers)",
            cluster.n_workers()
        ),
    )?;
    signal(pids[1], libc::SIGCONT);
    check(
        eventually(Duration::from_secs(20), || cluster.n_workers() == 2),
        "the worker rejoined",
    )?;
    // Both workers take work: enough slow tasks that the rejoined one gets some.
    let futs: Vec<Future<i64>> = client.map(|i| slow_square(i, 50), 200..216)?;
    let got: i64 = client.gather(&futs)?.into_iter().sum();
    check(
        got == (200..216).map(|i: i64| i * i).sum::<i64>(),
        "after rejoining",
    )
}

/// A task that aborts every worker running it fails after 3 deaths with an error naming the
/// task, its op and the workers; unrelated work still finishes.
fn killer_task() -> TestResult {
    let (client, _cluster) = client(2);
    let bad = client.submit(&die(1))?;
    let err = bad.result().unwrap_err();
    let msg = err.to_string();
    check(matches!(err, RaskError::KilledWorker { .. }), &msg)?;
    check(
        msg.contains(&bad.key().to_string()) && msg.contains("die"),
        &msg,
    )?;
    check(msg.contains("local-worker-"), &msg)?;
    // The nanny restarted the workers: the cluster still computes.
    let ok = client.submit(&add(1, 2))?;
    check(ok.result()? == 3, "after the killer task")
}
