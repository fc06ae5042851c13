//! Bags on the word-count and JSON-lines workloads: the rask `Bag` on the threaded executor,
//! the same work as a plain single-threaded Rust loop, and (in `peers/dask_bag.py`)
//! `dask.bag`, all over the same generated files.
//!
//! `cargo bench -p rask-benches --bench bag [-- --json]`. The data is written once into
//! `BAG_BENCH_DATA` (default `benches/data/bag`): `words/` (`BAG_BENCH_WORDS_MB`, default 128,
//! in 16 files) and `accounts/` (`BAG_BENCH_ACCOUNTS`, default 400000 records, in 16 files).
//! Repeats from `RASK_BENCH_REPEATS` (default 3). The peak RSS of each measurement is reported
//! (reset between measurements through `/proc/self/clear_refs`, so it includes what the
//! allocator kept from earlier ones). `BAG_BENCH_LIMIT=FRACTION` runs the bag under
//! `Config::with_memory_limit(FRACTION * input)`; off by default: the scheduler's budget
//! currently runs these tasks (whose output sizes are unknown before they run) one at a
//! time, which hides the parallelism (measured: 4 files of word count in debug, 6.3 s
//! sync, 4.5 s threads, 7.0 s threads under a 64 MB limit).

use std::cmp::Reverse;
use std::path::{Path, PathBuf};

use rask::Config;
use rask::bag::{JsonOptions, TextOptions, read_json_lines};
use rask::prelude::*;
use rask_benches::{emit, json_requested, median_time, peak_rss_bytes, s};
use rask_examples::bag_tutorial::{word_count, word_count_loop, write_accounts, write_corpus};
use serde_json::Value;

const FILES: usize = 16;

fn ensure_data(root: &Path, words_mb: usize, accounts: usize) -> anyhow::Result<()> {
    let stamp = format!("{words_mb} {accounts}");
    if std::fs::read_to_string(root.join(".params"))
        .ok()
        .as_deref()
        == Some(stamp.as_str())
    {
        return Ok(());
    }
    eprintln!("writing the bag data into {}", root.display());
    let _ = std::fs::remove_dir_all(root);
    write_corpus(&root.join("words"), FILES, (words_mb << 20) / FILES, 7)?;
    write_accounts(&root.join("accounts"), FILES, accounts / FILES, 42, false)?;
    std::fs::write(root.join(".params"), stamp)?;
    Ok(())
}

fn files(dir: &Path, ext: &str) -> anyhow::Result<(Vec<PathBuf>, u64)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    paths.sort();
    let bytes = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    Ok((paths, bytes))
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux >= 4.0), so each figure is its own peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The JSON workload (Dask tutorial's): Alice's mean transaction amount, one pass.
fn json_bag(pattern: &str, config: &Config) -> anyhow::Result<f64> {
    let records = read_json_lines(pattern, JsonOptions::default())?.records;
    let mean = records
        .filter(|r| r["name"] == "Alice")
        .pluck("transactions")
        .flat_map(|t| match t {
            Value::Array(a) => a,
            _ => Vec::new(),
        })
        .pluck("amount")
        .map(|a| a.as_f64().unwrap_or(f64::NAN))
        .mean();
    Ok(mean.compute_with(config)?)
}

/// The JSON workload's second query: the 3 most common cities, one pass.
fn cities_bag(pattern: &str, config: &Config) -> anyhow::Result<Vec<(String, u64)>> {
    let records = read_json_lines(pattern, JsonOptions::default())?.records;
    let top = records
        .pluck("address.city")
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .frequencies()
        .topk(3, |(c, n)| (*n, Reverse(c.clone())));
    Ok(top.compute_with(config)?)
}

fn json_loop(paths: &[PathBuf]) -> anyhow::Result<f64> {
    use std::io::BufRead;
    let (mut sum, mut n) = (0.0, 0u64);
    for p in paths {
        for line in std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(p)?).lines() {
            let r: Value = serde_json::from_str(&line?)?;
            if r["name"] == "Alice"
                && let Some(tx) = r["transactions"].as_array()
            {
                for t in tx {
                    sum += t["amount"].as_f64().unwrap_or(f64::NAN);
                    n += 1;
                }
            }
        }
    }
    Ok(sum / n as f64)
}

fn cities_loop(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, u64)>> {
    use std::io::BufRead;
    let mut counts: rustc_hash::FxHashMap<String, u64> = Default::default();
    for p in paths {
        for line in std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(p)?).lines() {
            let r: Value = serde_json::from_str(&line?)?;
            let city = r["address"]["city"].as_str().unwrap_or_default();
            match counts.get_mut(city) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(city.to_string(), 1);
                }
            }
        }
    }
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(3);
    Ok(all)
}

fn main() -> anyhow::Result<()> {
    let json = json_requested();
    let root = std::env::var("BAG_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bag"));
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let words_mb = env("BAG_BENCH_WORDS_MB", 128);
    let accounts = env("BAG_BENCH_ACCOUNTS", 400_000);
    let repeats = env("RASK_BENCH_REPEATS", 3);
    ensure_data(&root, words_mb, accounts)?;
    let threads = Executor::Threaded.num_threads();

    let (word_files, word_bytes) = files(&root.join("words"), ".txt")?;
    let (acct_files, acct_bytes) = files(&root.join("accounts"), ".jsonl")?;

    let run = |bench: &str,
               bytes: u64,
               imp: &str,
               scheduler: Option<&str>,
               f: &mut dyn FnMut() -> anyhow::Result<String>|
     -> anyhow::Result<(f64, String)> {
        f()?; // warm the page cache and the allocator once
        reset_peak_rss();
        let (t, out) = median_time(repeats, &mut *f);
        let out = out?;
        let rss = peak_rss_bytes().unwrap_or(0);
        let mut fields = vec![
            ("bench", s(bench)),
            ("n", bytes.to_string()),
            ("impl", s(imp)),
            ("median_s", t.as_secs_f64().to_string()),
            (
                "peak_rss_mb",
                format!("{:.1}", rss as f64 / (1u64 << 20) as f64),
            ),
            (
                "input_mb",
                format!("{:.1}", bytes as f64 / (1u64 << 20) as f64),
            ),
            (
                "mb_per_s",
                format!(
                    "{:.1}",
                    bytes as f64 / (1u64 << 20) as f64 / t.as_secs_f64()
                ),
            ),
            ("check", s(&out)),
        ];
        if let Some(sch) = scheduler {
            fields.push(("scheduler", s(sch)));
            fields.push(("threads", threads.to_string()));
        }
        emit(
            json,
            &fields,
            &format!(
                "{bench:<16} {imp:<10} {:>8.3} s  {:>7.1} MB/s  peak RSS {:>6.1} MB (input {:.1} MB)  -> {out}",
                t.as_secs_f64(),
                bytes as f64 / (1u64 << 20) as f64 / t.as_secs_f64(),
                rss as f64 / (1u64 << 20) as f64,
                bytes as f64 / (1u64 << 20) as f64
            ),
        );
        Ok((t.as_secs_f64(), out))
    };

    let limit: Option<f64> = std::env::var("BAG_BENCH_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok());
    let cfg =
        |bytes: u64| Config::default().with_memory_limit(limit.map(|f| (f * bytes as f64) as u64));
    let words_cfg = cfg(word_bytes);
    let pattern = format!("{}/*.txt", root.join("words").display());
    let (bag_t, bag_out) = run(
        "bag_word_count",
        word_bytes,
        "rask",
        Some("threads"),
        &mut || {
            Ok(format!(
                "{:?}",
                word_count(&pattern, TextOptions::default(), 10, &words_cfg)?
            ))
        },
    )?;
    let (loop_t, loop_out) = run("bag_word_count", word_bytes, "rust_loop", None, &mut || {
        Ok(format!("{:?}", word_count_loop(&word_files, 10)?))
    })?;
    anyhow::ensure!(
        bag_out == loop_out,
        "word count: bag {bag_out} != loop {loop_out}"
    );
    if !json {
        println!(
            "word count: bag is {:.2}x the single-threaded loop",
            loop_t / bag_t
        );
    }

    let acct_cfg = cfg(acct_bytes);
    let pattern = format!("{}/*.jsonl", root.join("accounts").display());
    let (bag_t, bag_out) = run(
        "bag_json_mean",
        acct_bytes,
        "rask",
        Some("threads"),
        &mut || Ok(format!("{:.6}", json_bag(&pattern, &acct_cfg)?)),
    )?;
    let (loop_t, loop_out) = run("bag_json_mean", acct_bytes, "rust_loop", None, &mut || {
        Ok(format!("{:.6}", json_loop(&acct_files)?))
    })?;
    anyhow::ensure!(
        bag_out == loop_out,
        "json mean: bag {bag_out} != loop {loop_out}"
    );
    if !json {
        println!(
            "json mean: bag is {:.2}x the single-threaded loop",
            loop_t / bag_t
        );
    }
    let (bag_t, bag_out) = run(
        "bag_json_cities",
        acct_bytes,
        "rask",
        Some("threads"),
        &mut || Ok(format!("{:?}", cities_bag(&pattern, &acct_cfg)?)),
    )?;
    let (loop_t, loop_out) = run(
        "bag_json_cities",
        acct_bytes,
        "rust_loop",
        None,
        &mut || Ok(format!("{:?}", cities_loop(&acct_files)?)),
    )?;
    anyhow::ensure!(
        bag_out == loop_out,
        "json cities: bag {bag_out} != loop {loop_out}"
    );
    if !json {
        println!(
            "json cities: bag is {:.2}x the single-threaded loop",
            loop_t / bag_t
        );
    }
    Ok(())
}
