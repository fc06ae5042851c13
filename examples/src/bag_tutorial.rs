//! The Bag tutorial's workloads: semi-structured data cleaned with a `rask::bag::Bag` before
//! it becomes a DataFrame.
//!
//! - [`write_accounts`] writes Dask's tutorial data, `accounts.N.jsonl[.gz]`: one JSON
//!   record per line with nested fields (an address, a list of transactions).
//!   [`accounts_to_parquet`] reads them, filters, plucks nested fields, counts frequencies,
//!   and converts the records to a DataFrame written as Parquet.
//! - [`write_corpus`] writes text files of made-up sentences; [`word_count`] counts words
//!   with a bag and [`word_count_loop`] does the same with a plain single-threaded loop
//!   (the oracle of the tests and the baseline of the benchmark).
//!
//! Every file depends only on the seed and its own index.

use std::cmp::Reverse;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use rask::Config;
use rask::bag::{JsonOptions, TextOptions, read_json_lines, read_text};
use rask::dataframe::polars::prelude::{DataType, Schema};
use rask::prelude::*;
use serde_json::{Value, json};

use crate::rng::SplitMix64;

fn stream(seed: u64, index: u64) -> SplitMix64 {
    let mut s = SplitMix64::new(seed ^ 0xba9_ba9);
    let base = s.next_u64();
    SplitMix64::new(base.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn pick<'a>(r: &mut SplitMix64, xs: &[&'a str]) -> &'a str {
    xs[(r.next_u64() % xs.len() as u64) as usize]
}

const NAMES: [&str; 12] = [
    "Alice", "Bob", "Charlie", "Dan", "Edith", "Frank", "George", "Hannah", "Ingrid", "Jerry",
    "Kevin", "Laura",
];
const CITIES: [&str; 8] = [
    "Paris", "Lima", "Oslo", "Austin", "Kyoto", "Accra", "Perth", "Quito",
];
const JOBS: [&str; 6] = ["engineer", "teacher", "nurse", "farmer", "artist", "pilot"];

/// Writes `files` files of `per_file` account records each into `dir`: `accounts.N.jsonl`,
/// or `accounts.N.jsonl.gz` when `gzip`.
pub fn write_accounts(
    dir: &Path,
    files: usize,
    per_file: usize,
    seed: u64,
    gzip: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for f in 0..files {
        let mut r = stream(seed, f as u64);
        let mut text = String::new();
        for i in 0..per_file {
            let ntx = (r.next_u64() % 5) as usize;
            let transactions: Vec<Value> = (0..ntx)
                .map(|t| {
                    let cents = 100 + r.next_u64() % 50_000;
                    json!({"id": t, "amount": cents as f64 / 100.0})
                })
                .collect();
            let rec = json!({
                "id": f * per_file + i,
                "name": pick(&mut r, &NAMES),
                "occupation": pick(&mut r, &JOBS),
                "address": {"city": pick(&mut r, &CITIES), "zip": format!("{:05}", r.next_u64() % 100_000)},
                "transactions": transactions,
            });
            text.push_str(&rec.to_string());
            text.push('\n');
        }
        let path = if gzip {
            let p = dir.join(format!("accounts.{f}.jsonl.gz"));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes())?;
            std::fs::write(&p, gz.finish()?)?;
            p
        } else {
            let p = dir.join(format!("accounts.{f}.jsonl"));
            std::fs::write(&p, text)?;
            p
        };
        out.push(path);
    }
    Ok(out)
}

/// What [`accounts_to_parquet`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountsSummary {
    pub records: u64,
    /// Records named Alice with at least one transaction.
    pub alices: u64,
    /// The 3 most common cities, most common first (ties by name).
    pub top_cities: Vec<(String, u64)>,
    /// Mean transaction amount over all records.
    pub mean_amount: f64,
    /// The Parquet files written.
    pub parquet: Vec<String>,
}

/// Reads account records, filters, plucks nested fields, counts frequencies, and writes one
/// flat row per account as Parquet into `out_dir`.
pub fn accounts_to_parquet(
    pattern: &str,
    out_dir: &str,
    opts: JsonOptions,
    config: &Config,
) -> anyhow::Result<AccountsSummary> {
    // 1. One record per line; a malformed line would name its file and line.
    let records = read_json_lines(pattern, opts)?.records;

    // 2. Filter records: Alices who spent something.
    let alices = records
        .filter(|r| {
            r["name"] == "Alice" && r["transactions"].as_array().is_some_and(|t| !t.is_empty())
        })
        .count();

    // 3. Pluck a nested field and count its values; the 3 most common.
    let top_cities = records
        .pluck("address.city")
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .frequencies()
        .topk(3, |(city, n)| (*n, Reverse(city.clone())));

    // 4. Flatten the nested lists: every transaction's amount.
    let mean_amount = records
        .pluck("transactions")
        .flat_map(|t| t.as_array().cloned().unwrap_or_default())
        .pluck("amount")
        .map(|a| a.as_f64().unwrap_or(f64::NAN))
        .mean();

    // 5. Flat rows to a DataFrame, then Parquet.
    let rows = records.map(|r| {
        let amounts: Vec<f64> = r["transactions"]
            .as_array()
            .map(|t| t.iter().filter_map(|x| x["amount"].as_f64()).collect())
            .unwrap_or_default();
        json!({
            "id": r["id"],
            "name": r["name"],
            "city": r["address"]["city"],
            "transactions": amounts.len(),
            "total": amounts.iter().sum::<f64>(),
        })
    });
    let schema = Schema::from_iter([
        ("id".into(), DataType::Int64),
        ("name".into(), DataType::String),
        ("city".into(), DataType::String),
        ("transactions".into(), DataType::Int64),
        ("total".into(), DataType::Float64),
    ]);
    let written = rows
        .to_dataframe(schema)?
        .to_parquet(out_dir, Default::default())?;

    // All five at once: one run of the scheduler.
    let (n, alices, top_cities, mean_amount, parquet) =
        (records.count(), alices, top_cities, mean_amount, written).compute_with(config)?;
    Ok(AccountsSummary {
        records: n,
        alices,
        top_cities,
        mean_amount,
        parquet,
    })
}

const WORDS: [&str; 40] = [
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
];

/// Writes `files` text files of about `bytes_per_file` bytes each, `text.N.txt`: sentences of
/// words from a skewed vocabulary (common words plus rarer made-up ones), capitalized and
/// punctuated, so counting needs the same normalization in every implementation.
pub fn write_corpus(
    dir: &Path,
    files: usize,
    bytes_per_file: usize,
    seed: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for f in 0..files {
        let mut r = stream(seed, 1000 + f as u64);
        let path = dir.join(format!("text.{f}.txt"));
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut written = 0;
        let mut word = String::new();
        while written < bytes_per_file {
            let n = 4 + (r.next_u64() % 16) as usize;
            let mut line = String::with_capacity(128);
            for i in 0..n {
                word.clear();
                let x = r.next_u64();
                if x.is_multiple_of(4) {
                    // A rarer word: 20k made-up ones, skewed towards small numbers.
                    let k = (x >> 8) % 20_000;
                    let k = k * k / 20_000;
                    word.push_str(&format!("w{k}"));
                } else {
                    word.push_str(WORDS[((x >> 8) % 40 * ((x >> 20) % 40) / 40) as usize]);
                }
                if i == 0 {
                    let first = word[..1].to_uppercase();
                    word.replace_range(..1, &first);
                }
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                if i == n - 1 {
                    line.push('.');
                } else if x.is_multiple_of(11) {
                    line.push(',');
                }
            }
            writeln!(w, "{line}")?;
            written += line.len() + 1;
        }
        w.flush()?;
        out.push(path);
    }
    Ok(out)
}

/// A word as counted: trimmed of ASCII punctuation, lowercased (Python's
/// `w.strip(string.punctuation).lower()` on this ASCII corpus).
pub fn normalize(word: &str) -> String {
    word.trim_matches(|c: char| c.is_ascii_punctuation())
        .to_lowercase()
}

/// The `k` most common words of the text files matching `pattern`, most common first (ties
/// by word), with a bag: lines, words, frequencies, top k.
pub fn word_count(
    pattern: &str,
    opts: TextOptions,
    k: usize,
    config: &Config,
) -> anyhow::Result<Vec<(String, u64)>> {
    let words = read_text(pattern, opts)?.flat_map(|line: String| {
        line.split_whitespace()
            .map(normalize)
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
    });
    let top = words
        .frequencies()
        .topk(k, |(w, n)| (*n, Reverse(w.clone())));
    Ok(top.compute_with(config)?)
}

/// [`word_count`] as a plain single-threaded loop over the files: the oracle and baseline.
pub fn word_count_loop(paths: &[PathBuf], k: usize) -> anyhow::Result<Vec<(String, u64)>> {
    // The hasher the bag's `frequencies` uses, so a comparison measures the parallelism.
    let mut counts: rustc_hash::FxHashMap<String, u64> = Default::default();
    for p in paths {
        let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(p)?);
        for line in f.lines() {
            for w in line?.split_whitespace() {
                let w = normalize(w);
                if !w.is_empty() {
                    *counts.entry(w).or_insert(0) += 1;
                }
            }
        }
    }
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    Ok(all)
}

/// [`accounts_to_parquet`]'s figures (without the Parquet) as a plain loop over the files.
pub fn accounts_loop(paths: &[PathBuf]) -> anyhow::Result<AccountsSummary> {
    let mut n = 0u64;
    let mut alices = 0u64;
    let mut cities: std::collections::HashMap<String, u64> = Default::default();
    let (mut sum, mut count) = (0.0f64, 0u64);
    for p in paths {
        let raw = std::fs::read(p)?;
        let text = if p.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::MultiGzDecoder::new(&raw[..]),
                &mut s,
            )?;
            s
        } else {
            String::from_utf8(raw)?
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Value = serde_json::from_str(line)?;
            n += 1;
            let tx = r["transactions"].as_array().cloned().unwrap_or_default();
            if r["name"] == "Alice" && !tx.is_empty() {
                alices += 1;
            }
            *cities
                .entry(
                    r["address"]["city"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
                .or_insert(0) += 1;
            for t in tx {
                sum += t["amount"].as_f64().unwrap_or(f64::NAN);
                count += 1;
            }
        }
    }
    let mut top: Vec<(String, u64)> = cities.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(3);
    Ok(AccountsSummary {
        records: n,
        alices,
        top_cities: top,
        mean_amount: sum / count as f64,
        parquet: Vec::new(),
    })
}
