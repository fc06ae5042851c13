//! Word count with a bag: the lines of a folder of text files, split into words, counted,
//! the 10 most common printed (and checked against a plain single-threaded loop).
//!
//! `cargo run --release -p rask-examples --example bag_word_count -- [DIR]`
//! (without an argument it writes 8 files of 4 MB of generated text into a temp folder).

use rask::Config;
use rask::bag::TextOptions;
use rask_examples::bag_tutorial::{word_count, word_count_loop, write_corpus};

fn main() -> anyhow::Result<()> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let d = std::env::temp_dir().join(format!("rask-bag-words-{}", std::process::id()));
            write_corpus(&d, 8, 4 << 20, 7)?;
            d
        }
    };
    let t = std::time::Instant::now();
    let top = word_count(
        &format!("{}/*.txt", dir.display()),
        TextOptions::default().with_blocksize(8 << 20),
        10,
        &Config::default(),
    )?;
    let bag_s = t.elapsed().as_secs_f64();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    let t = std::time::Instant::now();
    let want = word_count_loop(&paths, 10)?;
    let loop_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(top == want, "bag {top:?} != loop {want:?}");
    for (w, n) in &top {
        println!("{n:>10}  {w}");
    }
    println!("bag {bag_s:.3} s, single-threaded loop {loop_s:.3} s");
    Ok(())
}
