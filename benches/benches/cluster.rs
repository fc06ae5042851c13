//! rask on a local cluster of worker processes (this binary's own, same-binary model):
//!
//! * `cluster_inc_add`: N `inc` tasks plus a pairwise tree of `add` (2N - 1 tasks, the
//!   delayed bench's graph), submitted from a client and run on 2 workers of 1 thread each;
//!   the time includes building, submitting and the result's return. `RASK_CLUSTER_N`
//!   (default 100000: 200k tasks).
//! * `cluster_roundtrip`: one `submit` + `result` of a trivial task, median of many.
//! * `cluster_scheduler_ping`: the client-scheduler leg of a round trip alone.
//! * `cluster_transfer`: a 256 MB `f64` block made on a worker, then fetched from that
//!   worker's data port (the path a worker's input fetch takes: request, value frame,
//!   decode), in GB/s.
//! * `cluster_transfer_w2w`: worker to worker. Two 256 MB blocks made on the two workers,
//!   then a task taking both: it runs beside one and fetches the other from its peer. The
//!   time is from submitting that task to its (inline) result, so it includes one
//!   scheduling round trip (about 0.1 ms) besides the transfer and the decode.
//! * `cluster_inc_add_dashboard`: the inc/add graph again, alternating runs on the plain
//!   cluster and on one serving the dashboard with its status page open in headless
//!   Chromium; reports both medians and the ratio (`RASK_CLUSTER_DASHBOARD=0` leaves it out;
//!   it needs `chromium` and `chromium-driver`).
//! * `cluster_inc_add_insecure`: TLS's cost. The default cluster above runs TLS with mutual
//!   authentication; this alternates the inc/add graph between it and a second cluster
//!   started `--insecure` (plain TCP), and reports both medians and the ratio, plus the
//!   round trip on each (`RASK_CLUSTER_TLS=0` leaves it out).
//! * `scheduler_bytes_per_task`: the scheduler state's heap per task after one submission of
//!   1M tasks (the same graph) with no worker to run them.
//!
//! `cargo bench -p rask-benches --bench cluster [-- --json]`; `benches/compare.sh cluster` runs
//! it beside Dask distributed.

use std::time::{Duration, Instant};

use rask::distributed::{Client, LocalCluster, LocalClusterOptions};
use rask::prelude::*;
use rask_benches::{emit, json_requested, median_time, s, sizes_from_env};

#[rask::delayed]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[rask::delayed]
fn block(n: u64) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

/// Borrows both blocks (an owned parameter would copy 256 MB each, which is not transfer).
#[rask::delayed]
fn total_len(a: &[f64], b: &[f64]) -> u64 {
    (a.len() + b.len()) as u64
}

fn build(n: usize) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..n as i64).map(inc).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(add(a, b)),
                None => next.push(a),
            }
        }
        level = next;
    }
    level.pop().expect("n >= 1")
}

/// Median submit + result round trip of a trivial task, after a warm-up.
fn round_trip(client: &Client, runs: usize) -> anyhow::Result<Vec<Duration>> {
    for i in 0..50 {
        client.submit(&inc(i))?.result()?;
    }
    let mut rtts = Vec::with_capacity(runs);
    for i in 0..runs as i64 {
        let t = Instant::now();
        let v = client.submit(&inc(i))?.result()?;
        rtts.push(t.elapsed());
        anyhow::ensure!(v == i + 1, "wrong round-trip answer {v}");
    }
    rtts.sort();
    Ok(rtts)
}

/// The inc/add graph of `n` on the TLS cluster (the default) and on an `--insecure` one,
/// alternating, so drift in the machine hits both alike.
fn tls_overhead(tls: &Client, n: usize, repeats: usize, json: bool) -> anyhow::Result<()> {
    let insecure_cluster = std::sync::Arc::new(LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        memory_limit: 0,
        scheduler: rask::distributed::SchedulerOptions {
            security: rask::distributed::Security::Insecure,
            ..Default::default()
        },
        ..Default::default()
    })?);
    let insecure = Client::on(insecure_cluster.clone())?;
    let tasks = 2 * n - 1;
    let expected: i64 = (0..n as i64).map(|i| i + 1).sum();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(3) {
        for (client, times) in [(&insecure, &mut off), (tls, &mut on)] {
            let total = build(n);
            let t = Instant::now();
            let got = client.compute(&total)?;
            times.push(t.elapsed());
            anyhow::ensure!(got == expected, "wrong total {got}");
        }
    }
    on.sort();
    off.sort();
    let (t_on, t_off) = (on[on.len() / 2], off[off.len() / 2]);
    let ratio = t_on.as_secs_f64() / t_off.as_secs_f64();
    let rtt_on = round_trip(tls, 300)?;
    let rtt_off = round_trip(&insecure, 300)?;
    let (rtt_on, rtt_off) = (rtt_on[rtt_on.len() / 2], rtt_off[rtt_off.len() / 2]);
    emit(
        json,
        &[
            ("bench", s("cluster_inc_add_insecure")),
            ("n", n.to_string()),
            ("scheduler", s("cluster-2x1")),
            ("variant", s("tls vs insecure")),
            ("tasks", tasks.to_string()),
            ("median_s", t_on.as_secs_f64().to_string()),
            ("baseline_s", t_off.as_secs_f64().to_string()),
            ("overhead", ratio.to_string()),
            ("roundtrip_tls_s", rtt_on.as_secs_f64().to_string()),
            ("roundtrip_insecure_s", rtt_off.as_secs_f64().to_string()),
        ],
        &format!(
            "{tasks:>8} tasks, TLS: {:>8.3} s vs {:.3} s --insecure ({:+.1}%); round trip \
             {:.1} us vs {:.1} us",
            t_on.as_secs_f64(),
            t_off.as_secs_f64(),
            (ratio - 1.0) * 100.0,
            rtt_on.as_secs_f64() * 1e6,
            rtt_off.as_secs_f64() * 1e6
        ),
    );
    Ok(())
}

/// The inc/add graph of `n` on the plain cluster, and on a second one whose scheduler serves
/// the dashboard with the status page open in headless Chromium the whole time (the
/// browser asks for every snapshot, the task stream and the progress, as a person watching
/// would). Runs alternate between the two, so drift in the machine hits both alike.
fn dashboard_overhead(plain: &Client, n: usize, repeats: usize, json: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let watched = std::sync::Arc::new(LocalCluster::with_options(
        LocalClusterOptions {
            n_workers: 2,
            threads_per_worker: 1,
            memory_limit: 0,
            ..Default::default()
        }
        .dashboard("127.0.0.1:0"),
    )?);
    let link = watched.dashboard_link().context("no dashboard")?;
    let watched_client = Client::on(watched.clone())?;
    let browser = rask_testkit::browser::Browser::start().context(
        "the dashboard overhead runs a real browser: install chromium and chromium-driver \
         (or set RASK_CLUSTER_DASHBOARD=0 to leave this measure out)",
    )?;
    browser.goto(&link)?;
    browser.wait_for(
        "return window.raskDashboard && window.raskDashboard.connected;",
        Duration::from_secs(20),
    )?;
    let tasks = 2 * n - 1;
    let expected: i64 = (0..n as i64).map(|i| i + 1).sum();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(3) {
        for (client, times) in [(plain, &mut off), (&watched_client, &mut on)] {
            let total = build(n);
            let t = Instant::now();
            let got = client.compute(&total)?;
            times.push(t.elapsed());
            anyhow::ensure!(got == expected, "wrong total {got}");
        }
    }
    let seen = browser.eval("return (window.raskDashboard.records || []).length;")?;
    anyhow::ensure!(
        seen.as_u64().unwrap_or(0) > 0,
        "the page saw no task-stream records: it was not watching"
    );
    off.sort();
    on.sort();
    let (t_off, t_on) = (off[off.len() / 2], on[on.len() / 2]);
    let ratio = t_on.as_secs_f64() / t_off.as_secs_f64();
    emit(
        json,
        &[
            ("bench", s("cluster_inc_add_dashboard")),
            ("n", n.to_string()),
            ("scheduler", s("cluster-2x1")),
            ("variant", s("status page open")),
            ("tasks", tasks.to_string()),
            ("median_s", t_on.as_secs_f64().to_string()),
            (
                "us_per_task",
                (t_on.as_secs_f64() * 1e6 / tasks as f64).to_string(),
            ),
            ("baseline_s", t_off.as_secs_f64().to_string()),
            ("overhead", ratio.to_string()),
        ],
        &format!(
            "{tasks:>8} tasks, status page open: {:>8.3} s vs {:.3} s with no dashboard ({:+.1}%)",
            t_on.as_secs_f64(),
            t_off.as_secs_f64(),
            (ratio - 1.0) * 100.0
        ),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    rask::distributed::init();
    let json = json_requested();
    let sizes = sizes_from_env("RASK_CLUSTER_N", &[100_000]);
    let repeats: usize = std::env::var("RASK_BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);

    let cluster = std::sync::Arc::new(LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        memory_limit: 0,
        ..Default::default()
    })?);
    let client = Client::on(cluster.clone())?;

    for &n in &sizes {
        let tasks = 2 * n - 1;
        let expected: i64 = (0..n as i64).map(|i| i + 1).sum();
        let (t, got) = median_time(repeats, || {
            // Impure calls: fresh keys every repeat, so nothing is reused from the last run.
            let total = build(n);
            client.compute(&total).expect("cluster compute")
        });
        anyhow::ensure!(got == expected, "wrong total {got}, expected {expected}");
        emit(
            json,
            &[
                ("bench", s("cluster_inc_add")),
                ("n", n.to_string()),
                ("scheduler", s("cluster-2x1")),
                ("tasks", tasks.to_string()),
                ("median_s", t.as_secs_f64().to_string()),
                (
                    "us_per_task",
                    (t.as_secs_f64() * 1e6 / tasks as f64).to_string(),
                ),
            ],
            &format!(
                "{tasks:>8} tasks on 2 workers: {:>8.3} s, {:>7.2} us/task",
                t.as_secs_f64(),
                t.as_secs_f64() * 1e6 / tasks as f64
            ),
        );
    }

    // Round trips: warm up, then time each submit + result.
    for i in 0..50 {
        client.submit(&inc(i))?.result()?;
    }
    let mut rtts: Vec<Duration> = (0..500)
        .map(|i| {
            let t = Instant::now();
            let v = client.submit(&inc(i)).and_then(|f| f.result());
            assert_eq!(v.expect("round trip"), i + 1);
            t.elapsed()
        })
        .collect();
    rtts.sort();
    let rtt = rtts[rtts.len() / 2];
    emit(
        json,
        &[
            ("bench", s("cluster_roundtrip")),
            ("n", "1".into()),
            ("scheduler", s("cluster-2x1")),
            ("median_s", rtt.as_secs_f64().to_string()),
            ("p90_s", rtts[rtts.len() * 9 / 10].as_secs_f64().to_string()),
        ],
        &format!(
            "submit + result round trip: median {:.1} us, p90 {:.1} us",
            rtt.as_secs_f64() * 1e6,
            rtts[rtts.len() * 9 / 10].as_secs_f64() * 1e6
        ),
    );

    // The client-scheduler leg alone (an Info request and its answer), to split the round
    // trip into its hops.
    let mut pings: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            client.raw().scheduler_info().expect("info");
            t.elapsed()
        })
        .collect();
    pings.sort();
    let ping = pings[pings.len() / 2];
    emit(
        json,
        &[
            ("bench", s("cluster_scheduler_ping")),
            ("n", "1".into()),
            ("scheduler", s("cluster-2x1")),
            ("median_s", ping.as_secs_f64().to_string()),
        ],
        &format!(
            "client to scheduler and back: median {:.1} us",
            ping.as_secs_f64() * 1e6
        ),
    );

    // 256 MB block: made on a worker, then fetched from its data port.
    let len = 32 * 1024 * 1024u64;
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let f = client.submit(&block(len))?;
        client
            .raw()
            .wait(std::slice::from_ref(f.key()), true, None)?;
        let t = Instant::now();
        let v = f.result()?;
        let dt = t.elapsed();
        anyhow::ensure!(v.len() as u64 == len && v[12345] == 12345.0, "wrong block");
        rates.push(len as f64 * 8.0 / dt.as_secs_f64() / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    emit(
        json,
        &[
            ("bench", s("cluster_transfer")),
            ("n", (len * 8).to_string()),
            ("scheduler", s("cluster-2x1")),
            ("median_s", (len as f64 * 8.0 / rate / 1e9).to_string()),
            ("gb_per_s", rate.to_string()),
        ],
        &format!("256 MB block from a worker: {rate:.2} GB/s"),
    );

    // Worker to worker: both blocks must sit on different workers for the consumer to fetch
    // one; the scheduler spreads two roots over two idle one-thread workers, and this checks.
    let mut rates = Vec::new();
    let mut tries = 0;
    while rates.len() < repeats && tries < 4 * repeats {
        tries += 1;
        let a = client.submit(&block(len))?;
        let b = client.submit(&block(len))?;
        client
            .raw()
            .wait(&[a.key().clone(), b.key().clone()], true, None)?;
        let spread = client.raw().scheduler_info()?.iter().all(|w| w.keys == 1);
        if !spread {
            continue;
        }
        let t = Instant::now();
        let n = client.submit(&total_len(&a, &b))?.result()?;
        let dt = t.elapsed();
        anyhow::ensure!(n == 2 * len, "wrong length {n}");
        rates.push(len as f64 * 8.0 / dt.as_secs_f64() / 1e9);
    }
    anyhow::ensure!(
        !rates.is_empty(),
        "the two blocks never landed on different workers"
    );
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    emit(
        json,
        &[
            ("bench", s("cluster_transfer_w2w")),
            ("n", (len * 8).to_string()),
            ("scheduler", s("cluster-2x1")),
            ("median_s", (len as f64 * 8.0 / rate / 1e9).to_string()),
            ("gb_per_s", rate.to_string()),
        ],
        &format!("256 MB block worker to worker: {rate:.2} GB/s"),
    );
    if std::env::var("RASK_CLUSTER_TLS").as_deref() != Ok("0") {
        let n = sizes.iter().copied().max().unwrap_or(100_000);
        tls_overhead(&client, n, repeats, json)?;
    }
    if std::env::var("RASK_CLUSTER_DASHBOARD").as_deref() != Ok("0") {
        let n = sizes.iter().copied().max().unwrap_or(100_000);
        dashboard_overhead(&client, n, repeats, json)?;
    }
    drop(client);
    drop(cluster);

    // The scheduler's bytes per task, straight from its state machine.
    let n = 500_000usize;
    let total = build(n);
    let plan = rask::Plan::new(
        &total,
        rask::graph::optimize::OptimizeOptions {
            cull: true,
            inline: true,
            fuse: false,
        },
    )?;
    let wire = rask_distributed::client::tasks_from_graph(&plan.graph, &plan.priorities)?;
    let ntasks = wire.len();
    let mut state = rask_distributed::state::ClusterState::new(Default::default());
    state.add_client(1);
    state.handle_client(
        1,
        rask_distributed::protocol::ToScheduler::UpdateGraph {
            wants: vec![total.key().clone()],
            tasks: wire,
            priority: 0,
            retries: 0,
            fire_and_forget: false,
        },
    );
    let per_task = state.heap_bytes() as f64 / ntasks as f64;
    emit(
        json,
        &[
            ("bench", s("scheduler_bytes_per_task")),
            ("n", ntasks.to_string()),
            ("tasks", ntasks.to_string()),
            ("bytes_per_task", per_task.to_string()),
        ],
        &format!("scheduler state: {per_task:.0} bytes per task over {ntasks} tasks"),
    );
    Ok(())
}
