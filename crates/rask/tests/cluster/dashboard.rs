//! The dashboard in a real headless browser (Chromium over WebDriver): each page loaded
//! while a computation runs on a 2-worker cluster, its contents checked against the
//! scheduler's own counts and the known shape of the work, and a screenshot of each saved
//! under the target directory (`dashboard-screenshots/`) for a person to look at.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use rask::distributed::{Client, Future, LocalCluster, LocalClusterOptions, SchedulerOptions};
use rask::prelude::*;
use rask_testkit::browser::Browser;
use rask_testkit::http;
use serde_json::Value;

use crate::{TestResult, check, trial};

const TASKS: i64 = 24;
const TASK_MS: u64 = 150;

#[rask::delayed]
fn slow_square(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

#[rask::delayed(pure)]
fn sum4(a: i64, b: i64, c: i64, d: i64) -> i64 {
    a + b + c + d
}

#[rask::delayed(pure)]
fn count_up(x: i64) -> i64 {
    x + 1
}

#[rask::delayed(pure)]
fn add_up(x: i64, y: i64) -> i64 {
    x + y
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "dashboard::pages_show_a_running_computation_as_the_scheduler_counts_it",
            pages_follow_the_cluster,
        ),
        trial(
            "dashboard::a_page_open_for_a_million_tasks_keeps_the_browser_bounded",
            million_tasks_bounded,
        ),
        trial(
            "dashboard::a_cluster_with_a_token_asks_for_it",
            token_is_asked,
        ),
    ]
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("dashboard-screenshots")
}

fn io<T>(r: std::io::Result<T>) -> Result<T, Failed> {
    r.map_err(|e| Failed::from(e.to_string()))
}

fn dashboard_cluster(token: Option<&str>) -> LocalCluster {
    let opts = LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        memory_limit: 0,
        heartbeat: Duration::from_millis(100),
        scheduler: SchedulerOptions {
            token: token.map(String::from),
            ..Default::default()
        },
        ..Default::default()
    }
    .dashboard("127.0.0.1:0");
    LocalCluster::with_options(opts).expect("starting a local cluster with a dashboard")
}

fn attr(b: &Browser, selector: &str, name: &str) -> Result<Value, Failed> {
    io(b.eval(&format!(
        "const e = document.querySelector({sel}); return e ? e.getAttribute({name}) : null;",
        sel = serde_json::to_string(selector).unwrap(),
        name = serde_json::to_string(name).unwrap(),
    )))
}

fn num(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .or_else(|| v.as_f64())
        .map_or(u64::MAX, |f| f as u64)
}

/// The page's progress row of `prefix`, as numbers by attribute.
fn progress_row(
    b: &Browser,
    prefix: &str,
) -> Result<Option<serde_json::Map<String, Value>>, Failed> {
    let v = io(b.eval(&format!(
        "const r = document.querySelector('#progress .prefix-row[data-prefix=\"{prefix}\"]');
         if (!r) return null;
         const o = {{}};
         for (const k of ['waiting','queued','processing','memory','erred','released','forgotten','total'])
           o[k] = Number(r.getAttribute('data-' + k));
         return o;"
    )))?;
    Ok(v.as_object().cloned())
}

fn pages_follow_the_cluster() -> TestResult {
    let cluster = dashboard_cluster(None);
    let url = cluster
        .dashboard_url()
        .ok_or("the cluster serves no dashboard")?;
    // TLS is on by default, so the scheduler made a token; the dashboard asks for it too.
    let token = cluster.token().ok_or("a generated token")?.to_string();
    let link = cluster.dashboard_link().ok_or("no dashboard link")?;
    check(link.ends_with(&format!("/status?token={token}")), &link)?;
    let client = Client::on(std::sync::Arc::new(cluster))?;
    let browser = io(Browser::start())?;
    let shots = screenshots();

    // The link once; the cookie it sets carries the token from then on.
    io(browser.goto(&link))?;
    io(browser.wait_for(
        "return window.raskDashboard && window.raskDashboard.connected;",
        Duration::from_secs(20),
    ))?;

    let futures: Vec<Future<i64>> = (0..TASKS)
        .map(|i| client.submit(&slow_square(i, TASK_MS)))
        .collect::<rask::Result<_>>()?;
    let prefix = futures[0].key().prefix().to_string();

    // While it runs: every task of the prefix is counted once, and at most one per worker
    // thread is processing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_running = false;
    while Instant::now() < deadline {
        if let Some(row) = progress_row(&browser, &prefix)? {
            let total = row["total"].as_u64().unwrap_or(0);
            check(
                total == TASKS as u64,
                format!("progress total {total}, not {TASKS}: {row:?}"),
            )?;
            // Sent to a worker: roots are admitted to a one-thread worker while it has fewer
            // than ceil(1 * worker_saturation 1.1) = 2 tasks, so at most 4 on two workers.
            let processing = row["processing"].as_u64().unwrap_or(0);
            check(
                processing <= 4,
                format!("{processing} processing on 2 one-thread workers"),
            )?;
            if processing > 0 && row["memory"].as_u64().unwrap_or(0) < TASKS as u64 {
                saw_running = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check(
        saw_running,
        "the status page never showed the computation running",
    )?;
    io(browser.screenshot(&shots.join("status-running.png")))?;

    let values: Vec<i64> = futures
        .iter()
        .map(|f| f.result())
        .collect::<rask::Result<_>>()?;
    check(
        values == (0..TASKS).map(|i| i * i).collect::<Vec<_>>(),
        "results",
    )?;

    // Done: the scheduler holds every value (the futures keep them). Its own counts:
    let info = client.scheduler_info()?;
    let keys: u32 = info.iter().map(|w| w.keys).sum();
    check(keys == TASKS as u32, format!("scheduler holds {keys} keys"))?;

    let want_memory = format!(
        "const r = document.querySelector('#progress .prefix-row[data-prefix=\"{prefix}\"]');
         return r && r.getAttribute('data-memory') === '{TASKS}';"
    );
    io(browser.wait_for(&want_memory, Duration::from_secs(10)))?;
    // The task stream: one compute bar per task (none ran twice), each as long as its sleep,
    // on lanes of the two workers.
    let stream = io(browser.wait_for(
        &format!(
            "const rs = (window.raskDashboard.records || []).filter(r => r.prefix === '{prefix}' && r.kind === 'compute');
             return rs.length >= {TASKS} ? rs : null;"
        ),
        Duration::from_secs(10),
    ))?;
    let stream = stream.as_array().cloned().unwrap_or_default();
    check(
        stream.len() == TASKS as usize,
        format!("{} compute bars for {TASKS} tasks", stream.len()),
    )?;
    let mut workers: Vec<&str> = stream.iter().filter_map(|r| r["worker"].as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    check(workers.len() == 2, format!("bars on workers {workers:?}"))?;
    for r in &stream {
        let ms = r["stop_ms"].as_f64().unwrap_or(0.0) - r["start_ms"].as_f64().unwrap_or(0.0);
        check(
            ms >= TASK_MS as f64 - 1.0,
            format!("a bar of {ms} ms for a {TASK_MS} ms task"),
        )?;
    }
    // One thread runs one task at a time: bars of one lane never overlap.
    let mut lanes: std::collections::BTreeMap<(String, u64), Vec<(f64, f64)>> = Default::default();
    for r in &stream {
        let lane = (
            r["worker"].as_str().unwrap_or("").to_string(),
            r["lane"].as_u64().unwrap_or(0),
        );
        lanes.entry(lane).or_default().push((
            r["start_ms"].as_f64().unwrap_or(0.0),
            r["stop_ms"].as_f64().unwrap_or(0.0),
        ));
    }
    for (lane, mut bars) in lanes {
        bars.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in bars.windows(2) {
            check(
                w[1].0 >= w[0].1 - 0.01,
                format!("bars overlap on lane {lane:?}: {w:?}"),
            )?;
        }
    }
    let drawn = num(&attr(&browser, "#task-stream", "data-records")?);
    check(
        drawn >= TASKS as u64,
        format!("the task stream draws {drawn} records"),
    )?;
    let rows =
        io(browser.eval("return document.querySelectorAll('#worker-memory .worker-row').length;"))?;
    check(
        rows.as_u64() == Some(2),
        format!("{rows} worker memory rows"),
    )?;
    io(browser.screenshot(&shots.join("status-done.png")))?;

    // Memory by key: the prefix holds TASKS values of 8 bytes.
    io(browser.goto(&format!("{url}/memory")))?;
    let sel = format!("#memory-by-key .key-row[data-prefix=\"{prefix}\"]");
    io(browser.wait_for(
        &format!(
            "return document.querySelector({});",
            serde_json::to_string(&sel).unwrap()
        ),
        Duration::from_secs(10),
    ))?;
    let (k, b) = (
        num(&attr(&browser, &sel, "data-keys")?),
        num(&attr(&browser, &sel, "data-nbytes")?),
    );
    check(
        (k, b) == (TASKS as u64, TASKS as u64 * 8),
        format!("memory row: {k} keys, {b} bytes"),
    )?;
    io(browser.screenshot(&shots.join("memory.png")))?;

    // The graph: every task known to the scheduler, in memory.
    io(browser.goto(&format!("{url}/graph")))?;
    io(browser.wait_for(
        &format!("const g = document.querySelector('#graph'); return g && g.getAttribute('data-nodes') === '{TASKS}';"),
        Duration::from_secs(10),
    ))?;
    check(
        attr(&browser, "#graph", "data-grouped")? == "false",
        "a small graph is not grouped",
    )?;
    let states = io(browser.eval(
        "return Array.from(document.querySelectorAll('#graph .node')).map(n => n.getAttribute('data-state'));",
    ))?;
    let states = states.as_array().cloned().unwrap_or_default();
    check(
        states.len() == TASKS as usize && states.iter().all(|s| s == "memory"),
        format!("node states {states:?}"),
    )?;
    io(browser.screenshot(&shots.join("graph.png")))?;

    // Workers: the scheduler's two, by name, with their log lines.
    io(browser.goto(&format!("{url}/workers")))?;
    io(browser.wait_for(
        "return document.querySelectorAll('#workers tr.worker-row').length === 2;",
        Duration::from_secs(10),
    ))?;
    for w in &info {
        let sel = format!("#workers tr.worker-row[data-worker=\"{}\"]", w.name);
        check(
            !attr(&browser, &sel, "data-nthreads")?.is_null(),
            format!("no row for {}", w.name),
        )?;
        let logs = io(browser.wait_for(
            &format!(
                "const p = document.querySelector('pre.worker-logs[data-worker=\"{}\"]'); return p && p.textContent.includes('joined') ? p.textContent : null;",
                w.name
            ),
            Duration::from_secs(10),
        ))?;
        check(
            logs.as_str().is_some_and(|l| l.contains(&w.name)),
            format!("logs of {}: {logs}", w.name),
        )?;
    }
    io(browser.screenshot(&shots.join("workers.png")))?;

    io(browser.goto(&format!("{url}/info")))?;
    io(browser.wait_for("const e = document.querySelector('#info [data-field=\"n_workers\"]'); return e && e.textContent.trim() === '2';", Duration::from_secs(10)))?;
    io(browser.screenshot(&shots.join("info.png")))?;

    // The JSON API agrees with the scheduler too, and bad requests are refused cleanly.
    let status = io(http::get(&format!("{url}/api/status?token={token}")))?.json();
    let row = status["prefixes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["prefix"] == prefix.as_str()).cloned())
        .ok_or("no status row")?;
    check(row["memory"] == TASKS, format!("api row {row}"))?;
    check(
        io(http::get(&format!("{url}/nope?token={token}")))?.status == 404,
        "unknown page",
    )?;
    check(
        io(http::get(&format!("{url}/api/tasks?since=x&token={token}")))?.status == 400,
        "bad since",
    )?;

    // Back on the status page after four others: their event streams must have let go of
    // their connections (a browser allows six per host), or this page's fetches would stall.
    // A task reading four values runs on one worker and fetches those computed on the
    // other: each fetch is a transfer bar on its worker. Where each input was computed is in
    // the stream's compute bars.
    let [a, b, c, d] = [&futures[0], &futures[1], &futures[2], &futures[3]];
    let total = client.submit(&sum4(a, b, c, d))?;
    check(total.result()? == 1 + 4 + 9, "the sum")?;
    let sum_prefix = total.key().prefix().to_string();
    io(browser.goto(&format!("{url}/status")))?;
    let ran_on = io(browser.wait_for(
        &format!(
            "const r = (window.raskDashboard.records || []).find(r => r.prefix === '{sum_prefix}' && r.kind === 'compute');
             return r ? r.worker : null;"
        ),
        Duration::from_secs(10),
    ))?;
    let ran_on = ran_on.as_str().unwrap_or_default().to_string();
    let computed_on = |key: &str| {
        stream
            .iter()
            .find(|r| r["key"] == key)
            .and_then(|r| r["worker"].as_str())
            .map(String::from)
    };
    let mut expected = Vec::new();
    for f in [a, b, c, d] {
        let key = f.key().to_string();
        let at = computed_on(&key).ok_or(format!("no compute bar for {key}"))?;
        if at != ran_on {
            expected.push(key);
        }
    }
    let got = io(browser.wait_for(
        &format!(
            "const t = (window.raskDashboard.records || []).filter(r => r.kind === 'transfer');
             return t.length >= {} ? t : null;",
            expected.len().max(1)
        ),
        Duration::from_secs(10),
    ));
    let transfers = if expected.is_empty() {
        // Nothing to fetch (all four were computed where the sum ran): no transfer at all.
        check(got.is_err(), "transfers with nothing to fetch")?;
        Vec::new()
    } else {
        got?.as_array().cloned().unwrap_or_default()
    };
    let mut moved: Vec<String> = transfers
        .iter()
        .filter(|t| t["worker"] == ran_on.as_str())
        .filter_map(|t| t["key"].as_str().map(String::from))
        .collect();
    moved.sort();
    expected.sort();
    check(
        moved == expected && transfers.len() == expected.len(),
        format!("transfers to {ran_on}: {moved:?}, expected {expected:?} ({transfers:?})"),
    )?;
    io(browser.screenshot(&shots.join("status-transfers.png")))?;
    drop(futures);
    Ok(())
}

/// A local computation of about a million tasks with the status page open the whole time:
/// the page's JavaScript heap and DOM stay bounded (the stream keeps at most 5000 records).
fn million_tasks_bounded() -> TestResult {
    let config = Config::builtin()
        .with_executor(Executor::Threaded)
        .with_progress(rask::Progress::Never)
        .with_dashboard("127.0.0.1:0")?;
    let url = config.dashboard_url().ok_or("no dashboard url")?;
    let browser = io(Browser::start())?;
    io(browser.goto(&format!("{url}/status")))?;
    io(browser.wait_for(
        "return window.raskDashboard && window.raskDashboard.connected;",
        Duration::from_secs(20),
    ))?;
    let n: i64 = 500_000;
    let mut level: Vec<Delayed<i64>> = (0..n).map(count_up).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => add_up(a, b),
                None => a,
            });
        }
        level = next;
    }
    let total = level.pop().expect("one root");
    let runner = std::thread::spawn(move || total.compute_with(&config).map(|v| (v, config)));
    let mut heaps = Vec::new();
    let mut doms = Vec::new();
    while !runner.is_finished() {
        heaps.push(io(browser.js_heap_bytes())?);
        doms.push(
            io(browser.eval("return document.getElementsByTagName('*').length;"))?
                .as_u64()
                .unwrap_or(0),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (value, config) = runner.join().map_err(|_| "the computation panicked")??;
    check(value == (1..=n).sum::<i64>(), format!("sum {value}"))?;
    // Let the page take the last snapshots, then measure once more.
    std::thread::sleep(Duration::from_secs(1));
    heaps.push(io(browser.js_heap_bytes())?);
    let kept = io(browser.eval("return (window.raskDashboard.records || []).length;"))?;
    check(
        kept.as_u64().is_some_and(|k| k <= 5000),
        format!("the page keeps {kept} records"),
    )?;
    let max_heap = heaps.iter().copied().max().unwrap_or(0);
    let max_dom = doms.iter().copied().max().unwrap_or(0);
    eprintln!(
        "dashboard over {} tasks: {} samples, JS heap max {:.1} MB, last {:.1} MB, DOM max {max_dom} elements",
        2 * n - 1,
        heaps.len(),
        max_heap as f64 / 1e6,
        *heaps.last().unwrap_or(&0) as f64 / 1e6
    );
    check(heaps.len() >= 3, "the run was sampled at least three times")?;
    check(
        max_heap < 64_000_000,
        format!("the page's JS heap reached {max_heap} bytes"),
    )?;
    check(
        max_dom < 5_000,
        format!("the page grew to {max_dom} elements"),
    )?;
    // The progress shows the whole run, forgotten once it ended.
    let status = io(http::get(&format!("{url}/api/status")))?.json();
    let forgotten: u64 = status["prefixes"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r["forgotten"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    check(
        forgotten == (2 * n - 1) as u64,
        format!("{forgotten} tasks counted"),
    )?;
    io(browser.screenshot(&screenshots().join("status-million.png")))?;
    drop(config);
    Ok(())
}

fn token_is_asked() -> TestResult {
    let cluster = dashboard_cluster(Some("dash-secret"));
    let url = cluster.dashboard_url().ok_or("no dashboard")?;
    check(
        io(http::get(&format!("{url}/api/status")))?.status == 401,
        "no token, no status",
    )?;
    let browser = io(Browser::start())?;
    io(browser.goto(&format!("{url}/status")))?;
    io(browser.wait_for(
        "return document.querySelector('form#login input[name=token]') !== null;",
        Duration::from_secs(10),
    ))?;
    io(browser.screenshot(&screenshots().join("login.png")))?;
    // The token once in the URL; the cookie carries it from then on.
    io(browser.goto(&format!("{url}/status?token=dash-secret")))?;
    io(browser.wait_for("return window.raskDashboard && window.raskDashboard.connected && document.body.dataset.seq;", Duration::from_secs(20)))?;
    io(browser.goto(&format!("{url}/workers")))?;
    io(browser.wait_for(
        "return document.querySelectorAll('#workers tr.worker-row').length === 2;",
        Duration::from_secs(10),
    ))?;
    drop(cluster);
    Ok(())
}
