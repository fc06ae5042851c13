//! The array seed workloads, timed the same way `peers/dask_array.py` times Dask and NumPy:
//!
//! - `linspace_sum`: `linspace(1, 10, 1_000_000, chunks 1000).sum()`;
//! - `normal_mean`: `normal(10, 0.1, (20000, 20000), chunks (1000, 1000)).mean(axis 0)[::100]`
//!   (3.2 GB of samples), with the peak RSS of the process;
//! - `out_of_core_sum`: the sum of a random array twice as large as the memory budget given
//!   to the scheduler, with the peak RSS against the budget.
//!
//! `cargo bench -p rask-benches --bench array [-- --json] [-- --case NAME]`. Each case runs
//! in a fresh process when selected with `--case`, so its peak RSS is its own.

use rask::Progress;
use rask::array::{self, Axes, s};
use rask::prelude::*;
use rask_benches::{emit, json_requested, median_time, peak_rss_bytes, s as js};

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn config() -> Config {
    Config::builtin().with_progress(Progress::Never)
}

fn linspace_sum(json: bool, repeats: usize) -> anyhow::Result<()> {
    let (t, total) = median_time(repeats, || {
        let x = array::linspace::<f64>(1.0, 10.0, 1_000_000, true, 1000).expect("linspace");
        let total = x
            .sum(Axes::All)
            .expect("sum")
            .compute_with(&config())
            .expect("compute");
        total.first().copied().unwrap_or(f64::NAN)
    });
    anyhow::ensure!((total - 5.5e6).abs() < 1e-3, "wrong sum {total}");
    emit(
        json,
        &[
            ("bench", js("linspace_sum")),
            ("n", "1000000".into()),
            ("median_s", t.as_secs_f64().to_string()),
        ],
        &format!(
            "linspace(1, 10, 1e6, chunks 1000).sum(): {:.2} ms",
            t.as_secs_f64() * 1e3
        ),
    );
    Ok(())
}

fn normal_mean(json: bool, repeats: usize) -> anyhow::Result<()> {
    let n: usize = arg_value("--n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (t, out) = median_time(repeats, || {
        let x = array::random::normal(10.0, 0.1, &[n, n], (1000, 1000), 42).expect("normal");
        let m = x.mean(0).expect("mean").slice(&s![..;100]).expect("slice");
        m.compute_with(&config()).expect("compute")
    });
    anyhow::ensure!(out.len() == n.div_ceil(100), "wrong length {}", out.len());
    let worst = out.iter().map(|v| (v - 10.0).abs()).fold(0.0, f64::max);
    anyhow::ensure!(worst < 0.01, "a column mean is {worst} away from 10");
    let rss = peak_rss_bytes().unwrap_or(0);
    emit(
        json,
        &[
            ("bench", js("normal_mean")),
            ("n", n.to_string()),
            ("median_s", t.as_secs_f64().to_string()),
            ("peak_rss_bytes", rss.to_string()),
            ("peak_rss_mb", format!("{:.1}", rss as f64 / 1e6)),
        ],
        &format!(
            "normal(10, 0.1, ({n}, {n}), chunks 1000).mean(0)[::100]: {:.2} s, peak RSS {:.0} MB",
            t.as_secs_f64(),
            rss as f64 / 1e6
        ),
    );
    Ok(())
}

fn out_of_core_sum(json: bool) -> anyhow::Result<()> {
    let budget: u64 = 256 * 1000 * 1000;
    // 8000 x 8000 f64 = 512 MB, twice the budget, in 8 MB blocks.
    let x = array::random::uniform(0.0, 1.0, &[8000, 8000], (1000, 1000), 7)?;
    let cfg = config().with_memory_limit(Some(budget));
    let (t, total) = median_time(1, || {
        x.sum(Axes::All)
            .expect("sum")
            .compute_with(&cfg)
            .expect("compute")
    });
    let mean = total.first().copied().unwrap_or(f64::NAN) / 64e6;
    anyhow::ensure!((mean - 0.5).abs() < 1e-3, "mean {mean}");
    let rss = peak_rss_bytes().unwrap_or(0);
    emit(
        json,
        &[
            ("bench", js("out_of_core_sum")),
            ("n", "8000".into()),
            ("peak_rss_mb", format!("{:.1}", rss as f64 / 1e6)),
            ("input_bytes", (8000u64 * 8000 * 8).to_string()),
            ("budget_bytes", budget.to_string()),
            ("median_s", t.as_secs_f64().to_string()),
            ("peak_rss_bytes", rss.to_string()),
        ],
        &format!(
            "sum of 512 MB under a 256 MB budget: {:.2} s, peak RSS {:.0} MB",
            t.as_secs_f64(),
            rss as f64 / 1e6
        ),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let json = json_requested();
    let repeats: usize = std::env::var("RASK_BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    match arg_value("--case").as_deref() {
        Some("linspace_sum") => linspace_sum(json, repeats),
        Some("normal_mean") => normal_mean(json, repeats.min(3)),
        Some("out_of_core_sum") => out_of_core_sum(json),
        Some(other) => anyhow::bail!(
            "unknown --case {other}; use linspace_sum, normal_mean or out_of_core_sum"
        ),
        None => {
            // Each case in its own process, so peak RSS figures do not mix.
            let exe = std::env::current_exe()?;
            for case in ["linspace_sum", "normal_mean", "out_of_core_sum"] {
                let mut cmd = std::process::Command::new(&exe);
                cmd.args(["--case", case]);
                if json {
                    cmd.arg("--json");
                }
                if let Some(n) = arg_value("--n") {
                    cmd.args(["--n", &n]);
                }
                let status = cmd.status()?;
                anyhow::ensure!(status.success(), "case {case} failed");
            }
            Ok(())
        }
    }
}
