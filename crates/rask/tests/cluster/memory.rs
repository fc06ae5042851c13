//! A worker's memory limit at work: values beyond it spill to disk and still come back
//! right; a task whose memory crosses the pause threshold pauses the worker; one that
//! crosses the restart threshold gets its worker restarted, and after three such deaths the
//! task fails naming itself.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use rask::distributed::{Client, Future, LocalCluster, LocalClusterOptions, SchedulerOptions};
use rask_error::RaskError;

use crate::{TestResult, check, eventually, trial};

const MB: u64 = 1 << 20;

/// 8 MiB of f64, different for each `i`; a short sleep keeps production slower than the
/// worker's memory checks.
#[rask::delayed]
fn block(i: i64) -> Vec<f64> {
    std::thread::sleep(Duration::from_millis(25));
    (0..(1usize << 20))
        .map(|j| (i as f64) * 1e6 + j as f64)
        .collect()
}

/// Holds `mb` MiB of touched, unmanaged memory for `ms`, then returns its length.
#[rask::delayed]
fn hold(mb: i64, ms: u64) -> i64 {
    let mut v = vec![0u8; (mb as usize) << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::thread::sleep(Duration::from_millis(ms));
    std::hint::black_box(&v);
    v.len() as i64
}

/// The future's value within `secs`, or a failure saying it did not come.
fn within<T: rask::Data>(f: &Future<T>, secs: u64) -> Result<T, libtest_mimic::Failed> {
    match f.result_timeout(Duration::from_secs(secs))? {
        Some(v) => Ok(v),
        None => Err(format!("{} did not finish within {secs} s", f.key()).into()),
    }
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial("memory::values_beyond_the_limit_spill_and_come_back", spill),
        trial(
            "memory::unmanaged_memory_pauses_then_restarts_the_worker",
            pause_and_restart,
        ),
    ]
}

fn limited_cluster(memory_limit: u64) -> Arc<LocalCluster> {
    limited_cluster_with(memory_limit, LocalClusterOptions::default())
}

fn limited_cluster_with(memory_limit: u64, base: LocalClusterOptions) -> Arc<LocalCluster> {
    let opts = LocalClusterOptions {
        n_workers: 1,
        threads_per_worker: 1,
        memory_limit,
        heartbeat: Duration::from_millis(50),
        worker_reconnect: Duration::from_secs(20),
        scheduler: SchedulerOptions {
            heartbeat_timeout: Duration::from_secs(5),
            ..base.scheduler.clone()
        },
        ..base
    };
    Arc::new(LocalCluster::with_options(opts).expect("starting a local cluster"))
}

/// 40 values of 8 MiB (320 MiB) held as futures on one worker limited to 256 MiB: the
/// worker spills, is never restarted, and every value gathers back exactly. The dashboard's
/// task stream shows one spill bar per value on disk.
fn spill() -> TestResult {
    let cluster = limited_cluster_with(
        256 * MB,
        LocalClusterOptions::default().dashboard("127.0.0.1:0"),
    );
    let dashboard = cluster.dashboard_url().ok_or("no dashboard")?;
    let token = cluster.token().ok_or("a generated token")?.to_string();
    let client = Client::on(cluster.clone())?;
    let pid = cluster.worker_pids();
    let n = 40;
    let futures: Vec<Future<Vec<f64>>> = client.map(block, 0..n)?;
    for f in &futures {
        within(f, 60)?;
    }
    let info = client.scheduler_info()?;
    check(info.len() == 1, format!("one worker: {info:?}"))?;
    // nbytes counts each Vec's 24-byte header too.
    let all = n as u64 * 8 * MB;
    // The scheduler shows the last heartbeat, which may predate the last task's end (spilling
    // starts long before it): wait for one sent after every value was stored.
    check(
        eventually(Duration::from_secs(5), || {
            client.scheduler_info().is_ok_and(|i| {
                i.len() == 1
                    && i[0].metrics.spilled > 0
                    && i[0].metrics.executing == 0
                    && i[0].metrics.managed + i[0].metrics.spilled >= all
            })
        }),
        "the worker reports spilled bytes and every value stored",
    )?;
    let info = client.scheduler_info()?;
    let m = info[0].metrics;
    check(
        (all..=all + n as u64 * 64).contains(&(m.managed + m.spilled)),
        format!("managed + spilled = all 40 values: {m:?}"),
    )?;
    check(
        m.managed <= 256 * MB * 6 / 10,
        format!("managed memory at most the 60% target: {m:?}"),
    )?;
    // Nothing read a value yet, so each value on disk was spilled once: one bar each, for
    // keys of these futures.
    let on_disk = m.spilled / (8 * MB + 24);
    let keys: std::collections::BTreeSet<String> =
        futures.iter().map(|f| f.key().to_string()).collect();
    let mut bars = Vec::new();
    let seen = eventually(Duration::from_secs(5), || {
        let Ok(r) = rask_testkit::http::get(&format!("{dashboard}/api/tasks?token={token}")) else {
            return false;
        };
        bars = r.json()["records"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter(|r| r["kind"] == "spill")
                    .filter_map(|r| r["key"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        bars.len() as u64 >= on_disk
    });
    check(
        seen && bars.len() as u64 == on_disk && bars.iter().all(|k| keys.contains(k)),
        format!(
            "{} spill bars for {on_disk} values on disk: {bars:?}",
            bars.len()
        ),
    )?;
    // Everything comes back right, read from disk where it was spilled.
    for (i, f) in futures.iter().enumerate() {
        let v = f.result()?;
        let i = i as f64;
        check(
            v.len() == 1 << 20 && v[0] == i * 1e6 && v[12345] == i * 1e6 + 12345.0,
            format!("value {i} is intact"),
        )?;
    }
    check(
        cluster.worker_pids() == pid,
        "the worker was never restarted",
    )?;
    Ok(())
}

/// A task holding 80-95% of the limit pauses the worker (seen by the scheduler) until it
/// ends; a task holding more than 95% gets the worker restarted each time it runs, and after
/// three deaths it fails with `KilledWorker` naming it, while the cluster keeps working.
fn pause_and_restart() -> TestResult {
    let limit = 200 * MB;
    let cluster = limited_cluster(limit);
    let client = Client::on(cluster.clone())?;
    // Baseline: a small task runs, so the worker is up.
    let small = client.submit(&hold(1, 0))?;
    within(&small, 30)?;
    let base = client.scheduler_info()?[0].metrics.process;
    // Enough to land between pause (80%) and restart (95%) on top of the baseline.
    let mb = ((limit as f64 * 0.875) as u64).saturating_sub(base) / MB;
    check(
        mb >= 40,
        format!("the worker's baseline {base} leaves room"),
    )?;
    let paused = client.submit(&hold(mb as i64, 1500))?;
    check(
        eventually(Duration::from_secs(10), || {
            client
                .scheduler_info()
                .is_ok_and(|i| i.len() == 1 && i[0].metrics.paused)
        }),
        "the scheduler sees the worker paused",
    )?;
    check(within(&paused, 30)? == (mb << 20) as i64, "held")?;
    check(
        eventually(Duration::from_secs(10), || {
            client
                .scheduler_info()
                .is_ok_and(|i| i.len() == 1 && !i[0].metrics.paused)
        }),
        "the worker resumes once the memory is freed",
    )?;

    let pids = cluster.worker_pids();
    let hog = client.submit(&hold((limit / MB) as i64, 3000))?;
    let err = match hog.result_timeout(Duration::from_secs(60)) {
        Ok(Some(_)) => return Err("a task above the restart threshold finished".into()),
        Ok(None) => return Err("the memory hog neither finished nor failed in 60 s".into()),
        Err(e) => e,
    };
    check(
        matches!(&err, RaskError::KilledWorker { deaths, .. } if *deaths >= 3),
        format!("KilledWorker after three deaths: {err}"),
    )?;
    let msg = err.to_string();
    check(msg.contains("hold"), format!("names the task: {msg}"))?;
    check(msg.contains("memory"), format!("says why: {msg}"))?;
    check(cluster.worker_pids() != pids, "the worker was restarted")?;
    // The restarted worker still serves.
    let after = client.submit(&hold(1, 0))?;
    check(
        within(&after, 30)? == 1 << 20,
        "the cluster works after the restarts",
    )?;
    Ok(())
}
