//! Dask's array tutorial: the three array seed workloads, with sizes as parameters so that the
//! examples run them at the tutorial's sizes and the tests run them small.
//!
//! 1. [`linspace_sum`]: `linspace(1, 10, 1_000_000, chunks=1000).sum()`: a thousand tiny
//!    blocks, so this measures per-task overhead more than arithmetic.
//! 2. [`normal_mean`]: `normal(10, 0.1, (20000, 20000), chunks=(1000, 1000)).mean(axis=0)[::100]`:
//!    3.2 GB of samples, but each block is drawn, reduced to its column sums and dropped, so it
//!    runs in a few MB. [`normal_mean_eager`] computes the same numbers on one core with plain
//!    `ndarray`, drawing each block from the same per-block generator
//!    ([`fill_standard_normal`](rask::array::random::fill_standard_normal)), so the two agree
//!    to rounding.
//! 3. [`frames_sum`]: a stack of frames read lazily from `.npy` files: one `#[rask::delayed]`
//!    [`read_frame`] per file, [`from_delayed`](rask::array::from_delayed) with the known frame
//!    shape, `stack` along a new axis 0, `rechunk((10, 257, 257))` and `sum(axis=0)`. Nothing
//!    is read until compute, and the scheduler holds only a few frames at a time.
//!    [`write_frames`] generates the files deterministically (also `rask datasets frames`), and
//!    [`save_png`] writes the summed image as an 8-bit grayscale PNG.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Axis};
use rask::array::{self, Array, s};
use rask::prelude::*;

use crate::npy;
use crate::rng::SplitMix64;

/// The frame shape of the Dask tutorial.
pub const FRAME_SHAPE: (usize, usize) = (257, 257);

/// `linspace(1, 10, n, chunks=chunk).sum()`.
pub fn linspace_sum(n: usize, chunk: usize, config: &Config) -> rask::Result<f64> {
    let x = array::linspace::<f64>(1.0, 10.0, n, true, chunk)?;
    let total = x.sum(array::Axes::All)?.compute_with(config)?;
    // A full reduction gives a 0-d array.
    Ok(total.first().copied().unwrap_or(0.0))
}

/// The closed form of [`linspace_sum`]: `n` evenly spaced points average `(1 + 10) / 2`.
pub fn linspace_sum_exact(n: usize) -> f64 {
    if n == 1 { 1.0 } else { 5.5 * n as f64 }
}

/// The normal workload's parameters: the tutorial's mean and standard deviation.
pub const NORMAL_MEAN: f64 = 10.0;
pub const NORMAL_STD: f64 = 0.1;

/// `normal(10, 0.1, (n, n), chunks=(chunk, chunk), seed).mean(axis=0)[::step]`, lazily.
pub fn normal_mean_array(
    n: usize,
    chunk: usize,
    step: usize,
    seed: u64,
) -> rask::Result<Array<f64>> {
    let x = array::random::normal(NORMAL_MEAN, NORMAL_STD, &[n, n], (chunk, chunk), seed)?;
    let step = isize::try_from(step)
        .map_err(|_| RaskError::invalid_argument("step", format!("{step} is too large")))?;
    x.mean(0)?.slice(&s![..;step])
}

/// [`normal_mean_array`], computed.
pub fn normal_mean(
    n: usize,
    chunk: usize,
    step: usize,
    seed: u64,
    config: &Config,
) -> rask::Result<ArrayD<f64>> {
    normal_mean_array(n, chunk, step, seed)?.compute_with(config)
}

/// The same computation as [`normal_mean`] on one core with plain `ndarray`, from the same
/// random numbers: the random values depend on the chunking (each block has its own
/// generator, seeded from `(seed, block index)`), so `chunk` must match. Blocks are drawn one
/// at a time and folded into column sums, so memory stays at one block plus one row, as in
/// rask (NumPy's version holds the whole `n x n` array: 3.2 GB at n = 20000).
pub fn normal_mean_eager(n: usize, chunk: usize, step: usize, seed: u64) -> ArrayD<f64> {
    assert!(chunk > 0 && step > 0, "chunk and step must be positive");
    let mut col_sums = ndarray::Array1::<f64>::zeros(n);
    let mut buf = Vec::new();
    for (bi, r0) in (0..n).step_by(chunk).enumerate() {
        let rows = chunk.min(n - r0);
        for (bj, c0) in (0..n).step_by(chunk).enumerate() {
            let cols = chunk.min(n - c0);
            buf.resize(rows * cols, 0.0);
            array::random::fill_standard_normal(seed, &[bi, bj], &mut buf);
            // `mean + std * z`, the same expression rask's `normal` evaluates, so the samples
            // are bit-identical.
            let block = Array2::from_shape_vec((rows, cols), std::mem::take(&mut buf))
                .expect("block shape")
                .mapv_into(|z| NORMAL_MEAN + NORMAL_STD * z);
            let mut dst = col_sums.slice_mut(ndarray::s![c0..c0 + cols]);
            dst += &block.sum_axis(Axis(0));
            buf = block.into_raw_vec_and_offset().0;
        }
    }
    col_sums /= n as f64;
    col_sums.slice(ndarray::s![..;step]).to_owned().into_dyn()
}

/// The largest relative difference between two arrays of equal shape (0 when both are empty).
pub fn max_rel_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// The path of frame `i` in `dir`.
pub fn frame_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("frame-{i:05}.npy"))
}

/// Writes `n_frames` deterministic frames of `rows x cols` `f64` as `frame-00000.npy`, ...
/// into `dir` (created if needed) and returns their paths.
///
/// Frame `i` is a Gaussian spot of height 1 (sigma a twelfth of the frame) whose centre
/// travels once around a circle over the frames, plus uniform noise in `[0, 0.25)` from a
/// SplitMix64 generator whose start is a hash of `seed + i`. The sum over all frames is a bright ring on
/// a grey background: easy to recognize in the PNG, and never constant.
pub fn write_frames(
    dir: &Path,
    n_frames: usize,
    rows: usize,
    cols: usize,
    seed: u64,
) -> Result<Vec<PathBuf>, npy::NpyError> {
    std::fs::create_dir_all(dir).map_err(|e| npy::NpyError {
        path: dir.to_path_buf(),
        message: format!("create directory: {e}"),
    })?;
    let (cy, cx) = (rows as f64 / 2.0, cols as f64 / 2.0);
    let radius = rows.min(cols) as f64 / 3.0;
    let sigma = rows.min(cols).max(1) as f64 / 12.0;
    (0..n_frames)
        .map(|i| {
            let angle = std::f64::consts::TAU * i as f64 / n_frames as f64;
            let (py, px) = (cy + radius * angle.sin(), cx + radius * angle.cos());
            // One generator per frame, so any frame can be regenerated on its own. Its start
            // is a hash of (seed, i): seeding with `seed ^ i * gamma` would make frame i's
            // stream frame 0's shifted by i draws (SplitMix64 steps its state by gamma), and
            // the summed noise would show as streaks.
            let start = SplitMix64::new(seed.wrapping_add(i as u64)).next_u64();
            let mut rng = SplitMix64::new(start);
            let frame = Array2::from_shape_fn((rows, cols), |(y, x)| {
                let d2 = (y as f64 - py).powi(2) + (x as f64 - px).powi(2);
                (-d2 / (2.0 * sigma * sigma)).exp() + 0.25 * rng.next_f64()
            });
            let path = frame_path(dir, i);
            npy::write_f64_2d(&path, &frame)?;
            Ok(path)
        })
        .collect()
}

/// Reads one frame, checking it has the expected shape; every error names the file.
#[rask::delayed(pure)]
pub fn read_frame(path: String, rows: usize, cols: usize) -> Result<ArrayD<f64>, npy::NpyError> {
    Ok(npy::read_f64_2d(Path::new(&path), (rows, cols))?.into_dyn())
}

/// The lazy frames workload: `stack([from_delayed(read_frame(f), shape) for f in files])`,
/// rechunked to `frames_per_chunk` frames a block and summed over axis 0.
pub fn frames_sum_array(
    dir: &Path,
    n_frames: usize,
    shape: (usize, usize),
    frames_per_chunk: usize,
) -> rask::Result<Array<f64>> {
    let frames = (0..n_frames)
        .map(|i| {
            let path = frame_path(dir, i).to_string_lossy().into_owned();
            array::from_delayed(&read_frame(path, shape.0, shape.1), &[shape.0, shape.1])
        })
        .collect::<rask::Result<Vec<_>>>()?;
    // One block per frame after `stack`; the rechunk groups `frames_per_chunk` frames per
    // block so the sum's tree has fewer, larger tasks (Dask's `rechunk((10, 257, 257))`).
    array::stack(&frames, 0)?
        .rechunk((frames_per_chunk, shape.0, shape.1))?
        .sum(0)
}

/// [`frames_sum_array`], computed: the per-pixel sum over all frames.
pub fn frames_sum(
    dir: &Path,
    n_frames: usize,
    shape: (usize, usize),
    frames_per_chunk: usize,
    config: &Config,
) -> rask::Result<ArrayD<f64>> {
    frames_sum_array(dir, n_frames, shape, frames_per_chunk)?.compute_with(config)
}

/// Scales a 2-D image linearly to 0..=255 (its minimum to 0, its maximum to 255; a constant
/// image becomes all 0) and writes it as an 8-bit grayscale PNG.
pub fn save_png(image: &ArrayD<f64>, path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        image.ndim() == 2,
        "a PNG needs a 2-D image, got shape {:?}",
        image.shape()
    );
    let (h, w) = (image.shape()[0], image.shape()[1]);
    let lo = image.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = image.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    // `iter` is C order: row by row, as PNG scanlines are.
    let pixels: Vec<u8> = image
        .iter()
        .map(|&v| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8)
        .collect();
    let file =
        File::create(path).map_err(|e| anyhow::anyhow!("{}: create: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), u32::try_from(w)?, u32::try_from(h)?);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let write = || -> Result<(), png::EncodingError> {
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()
    };
    write().map_err(|e| anyhow::anyhow!("{}: writing PNG: {e}", path.display()))
}

/// The peak resident set size of this process in bytes (`VmHWM` in `/proc/self/status`), where
/// the platform has it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A fresh, empty directory under the system's temporary directory, unique to this process and
/// call (the examples and tests need no `tempfile` crate for it). The caller removes it.
pub fn scratch_dir(prefix: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
