//! The cluster examples end to end on a 2-worker local cluster whose workers run this test
//! binary (so `main` hands them their role before any test runs).

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use rask::array::{self, s};
use rask::distributed::{Client, LocalCluster, LocalClusterOptions};
use rask::prelude::*;
use rask_examples::cluster_tutorial::{futures_composed, pi_until_converged};
use rask_examples::delayed_tutorial::monte_carlo_pi_eager;
use rask_examples::emergency_lab::{
    GRID_FILE, GRID_SEED, PNG_FILE, PNG_HEIGHT, PNG_WIDTH, run_lab, run_lab_eager,
    write_traffic_grid,
};

fn client() -> Client {
    let cluster = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        memory_limit: 0,
        heartbeat: Duration::from_millis(200),
        ..Default::default()
    })
    .expect("local cluster");
    Client::on(Arc::new(cluster)).expect("client")
}

fn pi() -> Result<(), Failed> {
    let c = client();
    let est = pi_until_converged(&c, 100, 2000, 1e-4, 400)?;
    if !(100..=400).contains(&est.batches) || est.points != est.batches * 2000 {
        return Err(format!("{est:?}").into());
    }
    if (est.pi - std::f64::consts::PI).abs() > 0.02 {
        return Err(format!("pi estimate {} too far", est.pi).into());
    }
    // The batches are the tutorial's seeded ones: the first 100 alone match the eager sum.
    let eager100 = monte_carlo_pi_eager(100, 2000, 0);
    let futs = c.map(
        |s| rask_examples::delayed_tutorial::pi_batch(s, 2000),
        0..100,
    )?;
    let hits: u64 = c.gather(&futs)?.into_iter().sum();
    let pi100 = 4.0 * hits as f64 / 200_000.0;
    if pi100 != eager100 {
        return Err(format!("{pi100} != eager {eager100}").into());
    }
    // Bad arguments are refused by name.
    let err = pi_until_converged(&c, 0, 10, 1e-3, 10)
        .unwrap_err()
        .to_string();
    if !err.contains("first") {
        return Err(err.into());
    }
    Ok(())
}

fn composed() -> Result<(), Failed> {
    let c = client();
    let dir = tempfile::tempdir()?;
    let (combined, paths) = futures_composed(&c, &dir.path().to_string_lossy())?;
    // x = 3, y = 13: [3, 13, 100] and [-1, 13, 3], sorted together.
    if combined != vec![-1, 3, 3, 13, 13, 100] {
        return Err(format!("{combined:?}").into());
    }
    let first = std::fs::read_to_string(&paths[0])?;
    let second = std::fs::read_to_string(&paths[1])?;
    if first != "3\n13\n100" || second != "-1\n13\n3" {
        return Err(format!("{first:?} {second:?}").into());
    }
    Ok(())
}

fn normal_mean() -> Result<(), Failed> {
    let c = client();
    let x = array::random::normal(10.0, 0.1, &[2000, 2000], (250, 250), 42)?;
    let means = x.mean(0)?.slice(&s![..;100])?;
    let on_cluster = c.compute(&means)?;
    let local = means.compute_with(&Config::builtin())?;
    if on_cluster != local || on_cluster.len() != 20 {
        return Err("cluster and local means differ".into());
    }
    Ok(())
}

/// The flights groupby on the cluster: the same means as the local scheduler and as a
/// sequential loop over the files.
fn flights_groupby() -> Result<(), Failed> {
    use rask_examples::dataframe_tutorial::{
        differences, mean_delay_dataframe, mean_delay_sequential,
    };
    use rask_examples::datasets::{FlightsOptions, Format, write_flights};
    let dir = tempfile::tempdir()?;
    let opts = FlightsOptions {
        years: 1990..=1993,
        rows_per_year: 5_000,
        format: Format::Csv,
        ..Default::default()
    };
    write_flights(dir.path(), &opts)?;
    let c = client();
    let on_cluster = mean_delay_dataframe(dir.path(), &Config::default().with_client(Some(c)))?;
    let local = mean_delay_dataframe(dir.path(), &Config::default())?;
    let sequential = mean_delay_sequential(dir.path())?;
    let diff = [
        differences(&sequential, &on_cluster, 1e-9),
        differences(&local, &on_cluster, 1e-9),
    ]
    .concat();
    if !diff.is_empty() || on_cluster.is_empty() {
        return Err(format!("cluster and local disagree: {diff:?}").into());
    }
    Ok(())
}

fn emergency_lab() -> Result<(), Failed> {
    let c = client();
    // The same grid in two folders: the cluster's PNG and the oracle's must not overwrite
    // each other, so that they can be compared.
    let (on_cluster, eager) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for d in [&on_cluster, &eager] {
        write_traffic_grid(&d.path().join(GRID_FILE), GRID_SEED)?;
    }
    let lab = run_lab(&c, on_cluster.path())?;
    let oracle = run_lab_eager(eager.path())?;
    // Same inner functions, same seeds: equal to the last bit, not to a tolerance.
    if lab != oracle {
        return Err(format!("cluster {lab:?}\n!= eager {oracle:?}").into());
    }
    let means: Vec<f64> = lab.schemes.iter().map(|s| s.mean).collect();
    let zones: Vec<u32> = lab.schemes.iter().map(|s| s.zones).collect();
    if zones != [1, 4, 16] || !(means[0] > means[1] && means[1] > means[2]) {
        return Err(format!("mean response by zones {zones:?}: {means:?}").into());
    }
    for s in &lab.schemes {
        if s.responses.len() != s.zones as usize * 100 || s.p90 < s.mean {
            return Err(format!(
                "{} zones: {} responses, p90 {}",
                s.zones,
                s.responses.len(),
                s.p90
            )
            .into());
        }
    }
    // The histogram decodes, with the documented size, and is the oracle's byte for byte.
    let png_path = on_cluster.path().join(PNG_FILE);
    let bytes = std::fs::read(&png_path)?;
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info()?;
    let mut pixels = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut pixels)?;
    if (info.width, info.height) != (PNG_WIDTH, PNG_HEIGHT)
        || info.color_type != png::ColorType::Rgb
    {
        return Err(format!(
            "PNG is {}x{} {:?}",
            info.width, info.height, info.color_type
        )
        .into());
    }
    if bytes != std::fs::read(eager.path().join(PNG_FILE))? {
        return Err("cluster and eager PNGs differ".into());
    }
    // A missing grid fails the tasks that read it, and the error names the file.
    let empty = tempfile::tempdir()?;
    let missing = empty.path().join(GRID_FILE);
    let err = run_lab(&c, empty.path()).unwrap_err().to_string();
    if !err.contains(&*missing.to_string_lossy()) {
        return Err(format!("error does not name {}: {err}", missing.display()).into());
    }
    if empty.path().join(PNG_FILE).exists() {
        return Err("a failed lab wrote a PNG".into());
    }
    Ok(())
}

fn main() {
    rask::distributed::init();
    let args = Arguments::from_args();
    let tests = vec![
        Trial::test("cluster_monte_carlo_pi", pi),
        Trial::test("cluster_futures_composed", composed),
        Trial::test("cluster_normal_mean", normal_mean),
        Trial::test("cluster_flights_groupby", flights_groupby),
        Trial::test("emergency_lab", emergency_lab),
    ];
    libtest_mimic::run(&args, tests).exit();
}
