//! The emergency-services lab with futures on a local cluster: a 16x16 city with traffic, cut
//! into 1, 4 or 16 zones with a station each; 100 simulated incidents per zone show how much
//! more stations cut response times. Writes the traffic grid and a histogram PNG to `dir`
//! (a fresh temporary directory when not given) and prints the table.
//!
//! `cargo run --release -p rask-examples --example emergency_lab [dir]`

use std::path::PathBuf;
use std::time::Instant;

use rask::distributed::Client;
use rask_examples::array_tutorial::scratch_dir;
use rask_examples::emergency_lab::{
    GRID_FILE, GRID_SEED, INCIDENTS_PER_ZONE, PNG_FILE, run_lab, write_traffic_grid,
};

fn main() -> anyhow::Result<()> {
    // In the worker processes the local cluster starts (this same binary), this runs the
    // worker and never returns.
    rask::distributed::init();
    let dir = match std::env::args().nth(1) {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            PathBuf::from(d)
        }
        None => scratch_dir("emergency-lab")?,
    };
    write_traffic_grid(&dir.join(GRID_FILE), GRID_SEED)?;
    let client = Client::local()?;
    let t = Instant::now();
    let lab = run_lab(&client, &dir)?;
    println!("zones  incidents  mean (min)  p90 (min)");
    for s in &lab.schemes {
        println!(
            "{:>5}  {:>9}  {:>10.2}  {:>9.2}",
            s.zones,
            s.zones * INCIDENTS_PER_ZONE,
            s.mean,
            s.p90
        );
    }
    println!(
        "histogram: {} (in {:.2} s)",
        dir.join(PNG_FILE).display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
