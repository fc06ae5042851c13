//! Bucket credentials on a cluster: workers (child processes whose environment has no
//! credentials) read Parquet files from a real S3 server on loopback with the credentials the
//! client gave, and the graph the client sends does not contain the secret key: it reaches
//! the workers in a message of its own, on their encrypted connections.

use libtest_mimic::Trial;
use rask::dataframe::polars::prelude::*;
use rask::dataframe::{Agg, ParquetOptions};
use rask_io::{IoStore, StoreOptions};
use rask_testkit::S3TestServer;

use crate::dataframe::{close, flights};
use crate::{TestResult, check, client, trial};

const ACCESS_KEY: &str = "cluster-access-key";
const SECRET: &str = "cluster-secret-7f3a9c1e5b";
const BUCKET: &str = "secrets";

pub fn tests() -> Vec<Trial> {
    vec![trial(
        "secrets::workers_read_a_bucket_and_the_graph_holds_no_secret",
        bucket_credentials,
    )]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn bucket_credentials() -> TestResult {
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
    ] {
        // The workers inherit this environment: it must not be how they get the secret.
        check(
            std::env::var_os(var).is_none(),
            format!("{var} is set in the test environment"),
        )?;
    }
    let server = S3TestServer::start(ACCESS_KEY, SECRET);
    server.create_bucket(BUCKET);
    let storage = StoreOptions::s3_compatible(&server.endpoint(), ACCESS_KEY, SECRET);
    let bucket = IoStore::open(&format!("s3://{BUCKET}"), &storage)?;
    let all = flights(3000, 11);
    for y in 1990..1994i64 {
        let mut part = all
            .clone()
            .lazy()
            .filter(col("Year").eq(lit(y)))
            .collect()?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut part)?;
        bucket.put(&format!("flights/{y}.parquet"), buf)?;
    }
    let frame = rask::dataframe::read_parquet(
        &format!("s3://{BUCKET}/flights/*.parquet"),
        ParquetOptions::default().with_storage(storage),
    )?;
    let g = frame
        .groupby(["Origin"])
        .agg([Agg::mean("DepDelay").alias("mean"), Agg::size()])?;

    // What a submission sends: every task's op in its wire form, encoded as the frame the
    // scheduler receives. The secret is not in it (the access key id, not a secret, is).
    let plan = rask::Plan::new(&g, Default::default())?;
    let tasks = rask_distributed::client::tasks_from_graph(&plan.graph, &plan.priorities)?;
    let mut msg = [rask_distributed::protocol::ToScheduler::UpdateGraph {
        tasks,
        wants: vec![],
        priority: 0,
        retries: 0,
        fire_and_forget: false,
    }];
    let frame_bytes = rask_distributed::codec::encode(&mut msg)?.to_bytes();
    check(
        contains(&frame_bytes, ACCESS_KEY.as_bytes()),
        "the graph names the bucket's access key id (so the test looks in the right bytes)",
    )?;
    check(
        !contains(&frame_bytes, SECRET.as_bytes()),
        "the secret key is inside the graph's bytes",
    )?;

    // And the workers still read the bucket: they got the secret on the side.
    let (client, _cluster) = client(2);
    let got = client.compute(&g)?;
    let want = all
        .clone()
        .lazy()
        .group_by([col("Origin")])
        .agg([col("DepDelay").mean().alias("mean"), len()])
        .collect()?;
    close(&got, &want, "groupby over the bucket on the cluster")
}
