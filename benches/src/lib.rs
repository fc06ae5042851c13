//! Shared helpers for rask's benchmarks: repeated timing with medians, and one JSON line per
//! measurement so `benches/compare.sh` can join them with the peers' figures.

use std::time::{Duration, Instant};

/// Runs `f` `repeats` times and returns the median wall time and the last result.
pub fn median_time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed());
        last = Some(out);
    }
    times.sort();
    (times[times.len() / 2], last.expect("at least one repeat"))
}

/// `RASK_BENCH_N`-style list of sizes (`100000,1000000`), or the default.
pub fn sizes_from_env(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|x| x.trim().replace('_', "").parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// True when the bench was asked for JSON lines (`-- --json`).
pub fn json_requested() -> bool {
    std::env::args().any(|a| a == "--json")
}

/// Peak resident set size of this process in bytes (Linux), for memory figures.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Prints one measurement as a JSON object (fields given as raw JSON values).
pub fn emit(json: bool, fields: &[(&str, String)], human: &str) {
    if json {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        println!("{{{}}}", body.join(","));
    } else {
        println!("{human}");
    }
}

/// A JSON string literal.
pub fn s(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}
