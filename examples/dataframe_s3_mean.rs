//! Mean `passenger_count` over Parquet files in an S3 bucket: only that column's chunks are
//! fetched, with ranged GETs, after one footer read per file.
//!
//! `cargo run --release -p rask-examples --example dataframe_s3_mean -- s3://BUCKET/taxi/*.parquet`
//!
//! Credentials, region and endpoint come from the usual variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`; `AWS_ALLOW_HTTP=true` for a plain
//! HTTP endpoint). To try it without a cloud account, start a local S3-compatible server, for
//! example the moto server from PyPI:
//!
//! ```sh
//! python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]'
//! /tmp/moto/bin/moto_server -H 127.0.0.1 -p 9000 &
//! export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
//!        AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true
//! cargo run --release -p rask-cli -- datasets taxi --dir /tmp/taxi
//! # upload with any S3 client, e.g. `aws s3 cp --recursive /tmp/taxi s3://nyc-taxi/taxi`,
//! # or pass a local glob to this example: it reads folders the same way.
//! ```
//!
//! (rask's own tests run the same reads against an in-process S3 server: see
//! `crates/rask-dataframe/tests/dataframe/object_store.rs`.)

use rask::Config;
use rask::dataframe::ParquetOptions;
use rask_examples::dataframe_tutorial::mean_of_column;

fn main() -> anyhow::Result<()> {
    let pattern = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: dataframe_s3_mean s3://BUCKET/PATH/*.parquet (or a local glob)")
    })?;
    let column = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "passenger_count".into());
    let t = std::time::Instant::now();
    let mean = mean_of_column(
        &pattern,
        &column,
        ParquetOptions::default(),
        &Config::default(),
    )?;
    println!(
        "mean {column} over {pattern}: {mean:.6} ({:.2} s)",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
