//! End-to-end: the Bag tutorial's workloads against plain loops over the same files: the
//! JSON-lines accounts (plain and gzipped) to Parquet, and word count over local files and
//! the same files in a loopback S3 bucket.

use rask::Config;
use rask::bag::{JsonOptions, StoreOptions, TextOptions};
use rask::dataframe::polars::prelude::*;
use rask_examples::bag_tutorial::*;

#[test]
fn accounts_to_parquet_matches_a_plain_loop() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let input = dir.path().join(format!("in-{gzip}"));
        let paths = write_accounts(&input, 5, 700, 3, gzip).unwrap();
        let out = dir.path().join(format!("out-{gzip}"));
        let got = accounts_to_parquet(
            &format!("{}/accounts.*", input.display()),
            out.to_str().unwrap(),
            JsonOptions::default(),
            &Config::default(),
        )
        .unwrap();
        let want = accounts_loop(&paths).unwrap();
        assert_eq!(got.records, 3500);
        assert_eq!(got.records, want.records);
        assert_eq!(got.alices, want.alices);
        assert!(got.alices > 0);
        assert_eq!(got.top_cities, want.top_cities);
        assert!((got.mean_amount - want.mean_amount).abs() < 1e-9 * want.mean_amount);
        // The Parquet holds one flat row per record, totals as summed by hand.
        assert_eq!(got.parquet.len(), 5);
        let mut rows = 0;
        let mut total = 0.0;
        for url in &got.parquet {
            let path = url.strip_prefix("file://").unwrap_or(url);
            let df = ParquetReader::new(std::fs::File::open(path).unwrap())
                .finish()
                .unwrap();
            rows += df.height();
            total += df.column("total").unwrap().f64().unwrap().sum().unwrap();
        }
        assert_eq!(rows as u64, want.records);
        let want_total = want.mean_amount * {
            // The number of transactions, from the loop's figures: sum / mean.
            let mut n = 0usize;
            for p in &paths {
                let text = read_maybe_gz(p);
                for line in text.lines() {
                    let r: serde_json::Value = serde_json::from_str(line).unwrap();
                    n += r["transactions"].as_array().unwrap().len();
                }
            }
            n as f64
        };
        assert!(
            (total - want_total).abs() < 1e-6 * want_total,
            "{total} vs {want_total}"
        );
    }
}

fn read_maybe_gz(p: &std::path::Path) -> String {
    let raw = std::fs::read(p).unwrap();
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(raw).unwrap()
    }
}

#[test]
fn word_count_matches_a_plain_loop_locally_and_in_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_corpus(dir.path(), 4, 60_000, 11).unwrap();
    let want = word_count_loop(&paths, 10).unwrap();
    assert_eq!(want.len(), 10);
    assert_eq!(want[0].0, "the");
    let pattern = format!("{}/*.txt", dir.path().display());
    for opts in [
        TextOptions::default(),
        TextOptions::default().with_blocksize(7_000),
    ] {
        let got = word_count(&pattern, opts, 10, &Config::default()).unwrap();
        assert_eq!(got, want);
    }

    let server = rask_testkit::S3TestServer::start("bag-ak", "bag-sk");
    server.create_bucket("corpus");
    let storage = StoreOptions::s3_compatible(&server.endpoint(), "bag-ak", "bag-sk");
    let bucket = rask_io::IoStore::open("s3://corpus", &storage).unwrap();
    for p in &paths {
        let name = p.file_name().unwrap().to_str().unwrap();
        bucket
            .put(&format!("text/{name}"), std::fs::read(p).unwrap())
            .unwrap();
    }
    let got = word_count(
        "s3://corpus/text/*.txt",
        TextOptions::default()
            .with_blocksize(20_000)
            .with_storage(storage),
        10,
        &Config::default(),
    )
    .unwrap();
    assert_eq!(got, want);
}
