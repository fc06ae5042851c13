//! The DataFrame tutorial's groupby, `read_csv("flights/*.csv").groupby(["Origin"])
//! .col("DepDelay").mean()`, computed on a 2-worker local cluster (the CSV partitions are read
//! by the workers, the partial aggregates combined across them) and checked against the local
//! scheduler and a sequential loop.
//!
//! `cargo run --release -p rask-examples --example cluster_flights_groupby [DIR]`: DIR holds
//! yearly flights `*.csv` files (`rask datasets flights --format csv`); without it, ten small
//! years are generated into a temporary folder from a fixed seed.

use std::sync::Arc;
use std::time::Instant;

use rask::Config;
use rask::distributed::{Client, LocalCluster, LocalClusterOptions};
use rask_examples::dataframe_tutorial::{differences, mean_delay_dataframe, mean_delay_sequential};
use rask_examples::datasets::{FlightsOptions, Format, write_flights};

fn main() -> anyhow::Result<()> {
    rask::distributed::init();
    let generated;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            generated = tempfile::tempdir()?;
            let opts = FlightsOptions {
                rows_per_year: 100_000,
                format: Format::Csv,
                ..Default::default()
            };
            write_flights(generated.path(), &opts)?;
            generated.path().to_path_buf()
        }
    };
    let cluster = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        ..Default::default()
    })?;
    let client = Client::on(Arc::new(cluster))?;

    let t = Instant::now();
    let on_cluster =
        mean_delay_dataframe(&dir, &Config::default().with_client(Some(client.clone())))?;
    let cluster_t = t.elapsed();
    let t = Instant::now();
    let local = mean_delay_dataframe(&dir, &Config::default())?;
    let local_t = t.elapsed();
    let sequential = mean_delay_sequential(&dir)?;

    println!("{:<8} {:>12}", "Origin", "mean delay");
    for (origin, mean) in &on_cluster {
        println!("{origin:<8} {mean:>12.4}");
    }
    let diff = [
        differences(&sequential, &on_cluster, 1e-9),
        differences(&local, &on_cluster, 1e-9),
    ]
    .concat();
    anyhow::ensure!(diff.is_empty(), "cluster and local disagree on {diff:?}");
    println!(
        "{} airports agree; cluster {:.2} s, local {:.2} s",
        on_cluster.len(),
        cluster_t.as_secs_f64(),
        local_t.as_secs_f64()
    );
    Ok(())
}
