//! Dask array tutorial: a stack of frames read lazily from files.
//!
//! Generates `n_frames` frames of 257x257 `f64` as `.npy` files (the same generator as
//! `rask datasets frames`), then builds the tutorial's graph: one delayed `read_frame` per
//! file, `from_delayed` with the known shape, `stack` along axis 0, `rechunk((10, 257, 257))`
//! and `sum(axis=0)`. Nothing is read until compute. The summed image (a bright ring: each
//! frame has a spot that travels around a circle) is scaled to 0..255 and saved as an 8-bit
//! grayscale `frames_sum.png`.
//!
//! `cargo run --release -p rask-examples --example array_frames [n_frames] [dir]`
//! (default 1000 frames in a fresh temporary directory, removed afterwards; a given `dir`
//! is kept, and frames already there are overwritten). The PNG goes to `dir`, or to the
//! current directory when the frames are temporary.

use std::path::PathBuf;
use std::time::Instant;

use rask::Config;
use rask_examples::array_tutorial::{
    FRAME_SHAPE, frames_sum, peak_rss_bytes, save_png, scratch_dir, write_frames,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n_frames: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let given = args.next().map(PathBuf::from);
    let (dir, png_dir, temporary) = match given {
        Some(d) => (d.clone(), d, false),
        None => (scratch_dir("rask-frames")?, PathBuf::from("."), true),
    };
    let (rows, cols) = FRAME_SHAPE;

    let t = Instant::now();
    write_frames(&dir, n_frames, rows, cols, 0)?;
    println!(
        "wrote {n_frames} frames of {rows}x{cols} to {} in {:.2} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let total = frames_sum(&dir, n_frames, FRAME_SHAPE, 10, &Config::default());
    let elapsed = t.elapsed();
    if temporary {
        // Remove the frames whatever the outcome.
        std::fs::remove_dir_all(&dir)?;
    }
    let total = total?;
    let (lo, hi) = total
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    println!(
        "stack + rechunk((10, {rows}, {cols})) + sum(axis=0): {:.3} s; pixel sums in [{lo:.1}, {hi:.1}]",
        elapsed.as_secs_f64()
    );
    if let Some(b) = peak_rss_bytes() {
        println!("peak RSS: {:.1} MB", b as f64 / 1e6);
    }
    let png = png_dir.join("frames_sum.png");
    save_png(&total, &png)?;
    println!("wrote {}", png.display());
    Ok(())
}
