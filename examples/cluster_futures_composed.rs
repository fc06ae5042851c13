//! The futures tutorial's composition on a local cluster: futures passed into later submits,
//! mixed with literals; two lists written to files and combined.
//!
//! `cargo run -p rask-examples --example cluster_futures_composed [dir]`

use rask::distributed::Client;
use rask_examples::cluster_tutorial::futures_composed;

fn main() -> anyhow::Result<()> {
    rask::distributed::init();
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join("rask-futures-composed"),
    };
    std::fs::create_dir_all(&dir)?;
    let client = Client::local()?;
    let (combined, paths) = futures_composed(&client, &dir.to_string_lossy())?;
    println!("combined: {combined:?}");
    for p in paths {
        println!("wrote {p}");
    }
    Ok(())
}
