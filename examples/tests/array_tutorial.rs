//! End-to-end tests of the array tutorial's workloads on small generated data: results against
//! closed forms or plain `ndarray`, the PNG output, and errors naming the file for missing or
//! truncated frames.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::{Array2, ArrayD, Axis};
use rask::prelude::*;
use rask_examples::array_tutorial::{self as t, FRAME_SHAPE};
use rask_examples::npy;

fn configs() -> [Config; 2] {
    [
        Config::builtin().with_executor(Executor::Sync),
        Config::builtin().with_executor(Executor::Threaded),
    ]
}

#[test]
fn linspace_sum_matches_closed_form() {
    for config in configs() {
        for (n, chunk) in [(1_000_000, 1000), (10_001, 333), (1, 1)] {
            let got = t::linspace_sum(n, chunk, &config).unwrap();
            let want = t::linspace_sum_exact(n);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "n={n} chunk={chunk}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn normal_mean_equals_eager_ndarray_on_the_same_numbers() {
    let (n, chunk, step, seed) = (300, 64, 7, 42);
    let eager = t::normal_mean_eager(n, chunk, step, seed);
    assert_eq!(eager.shape(), &[n.div_ceil(step)]);
    for config in configs() {
        let lazy = t::normal_mean(n, chunk, step, seed, &config).unwrap();
        let diff = t::max_rel_diff(&lazy, &eager);
        assert!(diff <= 1e-12, "relative difference {diff}");
    }
    // And both agree with the mean taken directly over the computed random array.
    let x =
        rask::array::random::normal(t::NORMAL_MEAN, t::NORMAL_STD, &[n, n], (chunk, chunk), seed)
            .unwrap()
            .compute()
            .unwrap();
    let direct = x
        .mean_axis(Axis(0))
        .unwrap()
        .slice_move(ndarray::s![..;step])
        .into_dyn();
    assert!(t::max_rel_diff(&direct, &eager) <= 1e-12);
    // The samples are N(10, 0.1): a column mean of 300 is within a few 0.1/sqrt(300) of 10.
    assert!(eager.iter().all(|m| (m - 10.0).abs() < 0.03), "{eager}");
}

/// The frames summed directly with `ndarray`, reading the files with the same reader.
fn sum_frames_eagerly(dir: &Path, n_frames: usize, shape: (usize, usize)) -> ArrayD<f64> {
    let mut total = Array2::<f64>::zeros(shape);
    for i in 0..n_frames {
        total += &npy::read_f64_2d(&t::frame_path(dir, i), shape).unwrap();
    }
    total.into_dyn()
}

fn decode_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
    let decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

#[test]
fn frames_sum_matches_ndarray_and_writes_a_png() {
    let dir = t::scratch_dir("rask-test-frames").unwrap();
    let (n_frames, shape) = (12, (17, 17));
    let paths = t::write_frames(&dir, n_frames, shape.0, shape.1, 3).unwrap();
    assert_eq!(paths.len(), n_frames);
    let want = sum_frames_eagerly(&dir, n_frames, shape);
    for config in configs() {
        let got = t::frames_sum(&dir, n_frames, shape, 5, &config).unwrap();
        assert_eq!(got.shape(), &[17, 17]);
        let diff = t::max_rel_diff(&got, &want);
        assert!(diff <= 1e-12, "relative difference {diff}");
    }
    // The lazy array has the tutorial's structure: 12 frames in blocks of 5, 5, 2.
    let lazy = t::frames_sum_array(&dir, n_frames, shape, 5).unwrap();
    assert_eq!(lazy.shape(), &[17, 17]);

    let png_path = dir.join("frames_sum.png");
    t::save_png(&want, &png_path).unwrap();
    let (info, pixels) = decode_png(&png_path);
    assert_eq!((info.width, info.height), (17, 17));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert_eq!(pixels.len(), 17 * 17);
    assert_eq!(pixels.iter().min(), Some(&0));
    assert_eq!(pixels.iter().max(), Some(&255));
    // The brightest pixel of the PNG is the largest sum.
    let argmax = want.iter().enumerate().fold(0, |b, (i, v)| {
        if *v > want.as_slice().unwrap()[b] {
            i
        } else {
            b
        }
    });
    assert_eq!(pixels[argmax], 255);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn frames_are_deterministic_and_valid_npy() {
    let a = t::scratch_dir("rask-test-frames-a").unwrap();
    let b = t::scratch_dir("rask-test-frames-b").unwrap();
    t::write_frames(&a, 3, 9, 11, 5).unwrap();
    t::write_frames(&b, 3, 9, 11, 5).unwrap();
    for i in 0..3 {
        let (x, y) = (t::frame_path(&a, i), t::frame_path(&b, i));
        assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
        let bytes = std::fs::read(&x).unwrap();
        assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes.len(), 10 + header_len + 9 * 11 * 8);
    }
    // A different seed gives different noise.
    t::write_frames(&b, 1, 9, 11, 6).unwrap();
    assert_ne!(
        std::fs::read(t::frame_path(&a, 0)).unwrap(),
        std::fs::read(t::frame_path(&b, 0)).unwrap()
    );
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

/// Computing fails (no panic) with an error whose message names `file`.
fn assert_fails_naming(
    dir: &Path,
    n_frames: usize,
    shape: (usize, usize),
    file: &Path,
    what: &str,
) {
    for config in configs() {
        let err = t::frames_sum(dir, n_frames, shape, 5, &config).expect_err(what);
        let msg = format!("{err}");
        let chain = {
            let mut s = msg.clone();
            let mut src = std::error::Error::source(&err);
            while let Some(e) = src {
                s.push_str(&format!(" / {e}"));
                src = e.source();
            }
            s
        };
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            chain.contains(&*name),
            "{what}: error {chain:?} does not name {name}"
        );
        assert!(chain.contains(what), "{what}: error {chain:?}");
    }
}

#[test]
fn missing_and_truncated_frames_are_errors_naming_the_file() {
    let dir = t::scratch_dir("rask-test-frames-bad").unwrap();
    let (n_frames, shape) = (12, (17, 17));
    t::write_frames(&dir, n_frames, shape.0, shape.1, 1).unwrap();

    let missing = t::frame_path(&dir, 7);
    let saved = std::fs::read(&missing).unwrap();
    std::fs::remove_file(&missing).unwrap();
    assert_fails_naming(&dir, n_frames, shape, &missing, "read");

    let truncated = t::frame_path(&dir, 7);
    std::fs::write(&truncated, &saved[..saved.len() - 100]).unwrap();
    assert_fails_naming(&dir, n_frames, shape, &truncated, "truncated");

    // A frame of the wrong shape is caught by the reader, again naming the file.
    let other = t::scratch_dir("rask-test-frames-other").unwrap();
    t::write_frames(&other, 1, 16, 17, 1).unwrap();
    std::fs::copy(t::frame_path(&other, 0), &truncated).unwrap();
    assert_fails_naming(&dir, n_frames, shape, &truncated, "shape");

    // Restored, the same directory computes again.
    std::fs::write(&truncated, &saved).unwrap();
    assert!(t::frames_sum(&dir, n_frames, shape, 5, &Config::builtin()).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn tutorial_frame_shape_is_257_square() {
    assert_eq!(FRAME_SHAPE, (257, 257));
}
