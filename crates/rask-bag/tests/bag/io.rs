//! Readers and writers over local files and a loopback S3 bucket (`s3s-fs` served
//! in-process by rask-testkit), against plain `std::fs` + iterator code.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use rask::bag::{
    Compression, JsonOptions, TextOptions, WriteOptions, read_json_lines, read_json_lines_as,
    read_text,
};
use rask::prelude::*;
use rask_io::{IoStore, StoreOptions};
use rask_testkit::S3TestServer;

const AK: &str = "rask-bag-key";
const SK: &str = "rask-bag-secret";
const BUCKET: &str = "bags";

fn server() -> &'static S3TestServer {
    static SERVER: OnceLock<S3TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = S3TestServer::start(AK, SK);
        server.create_bucket(BUCKET);
        server
    })
}

fn s3() -> StoreOptions {
    StoreOptions::s3_compatible(&server().endpoint(), AK, SK)
}

/// Lines of made-up text with long and short lines, blank lines and a CRLF.
fn text(seed: u64, lines: usize) -> String {
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    let mut s = String::new();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..lines {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (x >> 59) as usize; // 0..32 words
        for w in 0..n {
            if w > 0 {
                s.push(' ');
            }
            s.push_str(words[((x >> (w % 50)) as usize + w) % words.len()]);
        }
        s.push_str(if i % 17 == 3 { "\r\n" } else { "\n" });
    }
    s
}

fn oracle_lines(files: &[String]) -> Vec<String> {
    files
        .iter()
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

fn write_files(dir: &Path) -> Vec<String> {
    let texts: Vec<String> = (0..4).map(|i| text(i, 150 + 40 * i as usize)).collect();
    for (i, t) in texts.iter().enumerate() {
        std::fs::write(dir.join(format!("part{i}.txt")), t).unwrap();
    }
    texts
}

#[test]
fn read_text_matches_std_lines_under_any_blocksize() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write_files(dir.path());
    // The last file ends without a newline.
    let mut last = texts[3].clone();
    last.push_str("no newline at the end");
    std::fs::write(dir.path().join("part3.txt"), &last).unwrap();
    let texts = [texts[0].clone(), texts[1].clone(), texts[2].clone(), last];
    let want = oracle_lines(&texts);
    let pattern = format!("{}/part*.txt", dir.path().display());
    for bs in [None, Some(1), Some(7), Some(100), Some(1000), Some(1 << 20)] {
        let opts = TextOptions {
            blocksize: bs,
            ..Default::default()
        };
        let bag = read_text(&pattern, opts).unwrap();
        if bs == Some(100) {
            assert!(bag.npartitions() > 4 * 20);
        }
        assert_eq!(bag.compute().unwrap(), want, "blocksize {bs:?}");
    }
}

#[test]
fn compressed_files_read_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..3).map(|i| text(10 + i, 200)).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(texts[0].as_bytes()).unwrap();
    std::fs::write(dir.path().join("a.txt.gz"), gz.finish().unwrap()).unwrap();
    let zst = zstd::stream::encode_all(texts[1].as_bytes(), 3).unwrap();
    std::fs::write(dir.path().join("b.txt.zst"), zst).unwrap();
    std::fs::write(dir.path().join("c.txt"), &texts[2]).unwrap();
    // Blocks apply to the plain file only; each compressed file is one partition.
    let bag = read_text(
        &format!("{}/*", dir.path().display()),
        TextOptions::default().with_blocksize(500),
    )
    .unwrap();
    assert!(bag.npartitions() > 3);
    assert_eq!(bag.compute().unwrap(), oracle_lines(&texts));
}

#[test]
fn word_count_local_and_in_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write_files(dir.path());
    let bucket = IoStore::open(&format!("s3://{BUCKET}"), &s3()).unwrap();
    for (i, t) in texts.iter().enumerate() {
        bucket
            .put(&format!("words/part{i}.txt"), t.clone().into_bytes())
            .unwrap();
    }
    let mut want: std::collections::HashMap<String, u64> = Default::default();
    for t in &texts {
        for w in t.split_whitespace() {
            *want.entry(w.to_string()).or_default() += 1;
        }
    }
    let mut want: Vec<(String, u64)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(5);
    let count = |pattern: &str, opts: TextOptions| {
        read_text(pattern, opts)
            .unwrap()
            .flat_map(|l: String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .frequencies()
            .topk(5, |(w, n)| (*n, std::cmp::Reverse(w.clone())))
            .compute()
            .unwrap()
    };
    let local = count(
        &format!("{}/*.txt", dir.path().display()),
        TextOptions::default().with_blocksize(300),
    );
    let remote = count(
        &format!("s3://{BUCKET}/words/*.txt"),
        TextOptions::default()
            .with_blocksize(300)
            .with_storage(s3()),
    );
    assert_eq!(local, want);
    assert_eq!(remote, want);
}

#[test]
fn missing_files_and_buckets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}/nope.txt", dir.path().display());
    let err = read_text(&missing, TextOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.txt"), "{err}");
    let err = read_text(
        &format!("{}/*.log", dir.path().display()),
        TextOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no files match") && err.contains("*.log"),
        "{err}"
    );
    let err = read_text(
        "s3://no-such-bucket-here/logs/*.txt",
        TextOptions::default().with_storage(s3()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no-such-bucket-here"), "{err}");
    let err = read_json_lines(
        &format!("s3://{BUCKET}/missing/records.jsonl"),
        JsonOptions::default().with_storage(s3()),
    )
    .err()
    .expect("a missing object is an error")
    .to_string();
    assert!(err.contains("missing/records.jsonl"), "{err}");
    let err = read_text(&missing, TextOptions::default().with_blocksize(0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope.txt") || err.contains("blocksize"),
        "{err}"
    );
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Rec {
    id: u64,
    name: String,
    score: f64,
}
impl rask::bag::BagData for Rec {}

fn jsonl(dir: &Path, name: &str, first_id: u64, n: u64, bad_at: &[u64]) -> Vec<Rec> {
    let mut s = String::new();
    let mut recs = Vec::new();
    for i in 0..n {
        let line = i + 1;
        if bad_at.contains(&line) {
            s.push_str("{\"id\": 1, \"name\": \"broken\"\n");
            continue;
        }
        let r = Rec {
            id: first_id + i,
            name: format!("n{}", i % 5),
            score: i as f64 / 4.0,
        };
        s.push_str(&format!(
            "{{\"id\":{},\"name\":\"{}\",\"score\":{}}}\n",
            r.id, r.name, r.score
        ));
        recs.push(r);
    }
    std::fs::write(dir.join(name), s).unwrap();
    recs
}

#[test]
fn json_lines_typed_and_untyped_match_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = jsonl(dir.path(), "a.jsonl", 0, 120, &[]);
    want.extend(jsonl(dir.path(), "b.jsonl", 1000, 80, &[]));
    let pattern = format!("{}/*.jsonl", dir.path().display());
    for opts in [
        JsonOptions::default(),
        JsonOptions::default().with_blocksize(256),
    ] {
        let typed = read_json_lines_as::<Rec>(&pattern, opts.clone()).unwrap();
        assert_eq!(typed.records.compute().unwrap(), want);
        assert_eq!(typed.malformed.compute().unwrap(), 0);
        let names = read_json_lines(&pattern, opts)
            .unwrap()
            .records
            .pluck("name")
            .frequencies();
        let mut got = names.compute().unwrap();
        got.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for r in &want {
            *counts.entry(r.name.clone()).or_default() += 1;
        }
        let got: Vec<(String, u64)> = got
            .into_iter()
            .map(|(v, n)| (v.as_str().unwrap().to_string(), n))
            .collect();
        assert_eq!(got, counts.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn malformed_lines_name_file_and_line_or_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut good = jsonl(dir.path(), "a.jsonl", 0, 50, &[]);
    good.extend(jsonl(dir.path(), "b.jsonl", 100, 60, &[37, 52]));
    let pattern = format!("{}/*.jsonl", dir.path().display());
    // Whole files and small blocks both give the line number in the file.
    for opts in [
        JsonOptions::default(),
        JsonOptions::default().with_blocksize(300),
    ] {
        let err = read_json_lines_as::<Rec>(&pattern, opts.clone())
            .unwrap()
            .records
            .count()
            .compute()
            .unwrap_err()
            .to_string();
        // Two blocks hold a bad line each and run in parallel: whichever fails first is
        // reported, named by file and its line number in the file.
        assert!(
            err.contains("b.jsonl line 37") || err.contains("b.jsonl line 52"),
            "{err}"
        );
        let lenient = read_json_lines_as::<Rec>(&pattern, opts.skip_malformed()).unwrap();
        let (recs, bad) = (lenient.records.clone(), lenient.malformed.clone())
            .compute()
            .unwrap();
        assert_eq!(recs, good);
        assert_eq!(bad, 2);
    }
    // A line that is JSON but not a `Rec` is malformed for the typed reader only.
    std::fs::write(dir.path().join("c.jsonl"), "{\"id\": \"x\"}\n").unwrap();
    let err = read_json_lines_as::<Rec>(
        &format!("{}/c.jsonl", dir.path().display()),
        JsonOptions::default(),
    )
    .unwrap()
    .records
    .compute()
    .unwrap_err()
    .to_string();
    assert!(err.contains("c.jsonl line 1"), "{err}");
    let any = read_json_lines(
        &format!("{}/c.jsonl", dir.path().display()),
        JsonOptions::default(),
    )
    .unwrap();
    assert_eq!(any.records.count().compute().unwrap(), 1);
}

#[test]
fn take_reads_only_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let good = jsonl(dir.path(), "a.jsonl", 0, 30, &[]);
    // Every line of the second file is malformed: reading it at all would fail.
    std::fs::write(dir.path().join("b.jsonl"), "not json\n".repeat(10)).unwrap();
    let recs = read_json_lines_as::<Rec>(
        &format!("{}/*.jsonl", dir.path().display()),
        JsonOptions::default(),
    )
    .unwrap()
    .records;
    assert_eq!(recs.take(5).compute().unwrap(), good[..5].to_vec());
    assert_eq!(recs.take(30).compute().unwrap(), good);
    assert!(
        recs.take(31)
            .compute()
            .unwrap_err()
            .to_string()
            .contains("b.jsonl line 1")
    );
}

#[test]
fn text_files_round_trip_locally_and_in_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<String> = (0..500)
        .map(|i| format!("line {i} {}", "x".repeat(i % 13)))
        .collect();
    let bag = rask::bag::Bag::from_sequence(items.clone(), 4).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let out = dir.path().join(format!("{c:?}"));
        let urls = bag
            .to_text_files(
                out.to_str().unwrap(),
                WriteOptions::default().with_compression(c),
            )
            .unwrap()
            .compute()
            .unwrap();
        assert_eq!(urls.len(), 4);
        let back = read_text(&format!("{}/part-*", out.display()), TextOptions::default())
            .unwrap()
            .compute()
            .unwrap();
        assert_eq!(back, items, "{c:?}");
    }
    let urls = bag
        .to_text_files(
            &format!("s3://{BUCKET}/out"),
            WriteOptions::default()
                .with_compression(Compression::Gzip)
                .with_storage(s3()),
        )
        .unwrap()
        .compute()
        .unwrap();
    assert!(
        urls[0].starts_with("s3://") && urls[0].ends_with("part-00000.txt.gz"),
        "{urls:?}"
    );
    let back = read_text(
        &format!("s3://{BUCKET}/out/*.gz"),
        TextOptions::default().with_storage(s3()),
    )
    .unwrap()
    .compute()
    .unwrap();
    assert_eq!(back, items);
}
