//! A tiny NumPy `.npy` writer and reader for 2-D `f64` arrays: just enough for the frames
//! workload's files, so that the examples need no NumPy crate and the files open in NumPy
//! (`np.load("frame-00000.npy")`).
//!
//! # The format (version 1.0)
//!
//! `\x93NUMPY`, the version bytes `1 0`, a little-endian `u16` header length, then the header:
//! a Python dict literal such as `{'descr': '<f8', 'fortran_order': False, 'shape': (257, 257), }`
//! padded with spaces and ended by `\n` so that the data starts at a multiple of 64 bytes
//! (NumPy aligns it so that it can be memory-mapped), then the values in C order.
//!
//! The reader accepts exactly what the writer writes (version 1.0, `<f8`, C order, 2-D) and
//! rejects anything else with an [`NpyError`] naming the file: a missing file, a bad magic, an
//! unexpected header, a shape other than the one asked for, or data that is truncated or has
//! trailing bytes.

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::Array2;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Magic, two version bytes and the `u16` header length.
const PREAMBLE: usize = 10;
/// NumPy aligns the data to this many bytes.
const ALIGN: usize = 64;

/// What went wrong with one `.npy` file; the message starts with the file's path.
#[derive(Debug)]
pub struct NpyError {
    pub path: PathBuf,
    pub message: String,
}

impl NpyError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        NpyError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for NpyError {}

/// The header dict for a C-order `<f8` array of `shape`, padded so that preamble + header is
/// a multiple of 64 bytes (the trailing `\n` included).
fn header(shape: (usize, usize)) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.0, shape.1
    );
    let unpadded = PREAMBLE + dict.len() + 1;
    let padding = unpadded.next_multiple_of(ALIGN) - unpadded;
    let mut h = dict.into_bytes();
    h.resize(h.len() + padding, b' ');
    h.push(b'\n');
    h
}

/// The bytes of a `.npy` file holding `a`.
pub fn encode_f64_2d(a: &Array2<f64>) -> Vec<u8> {
    let h = header(a.dim());
    let len = u16::try_from(h.len()).expect("a 2-D header is far below 64 KiB");
    let mut out = Vec::with_capacity(PREAMBLE + h.len() + a.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h);
    // `iter` walks in logical C order whatever the memory layout of `a`.
    for v in a.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `a` to `path` as a `.npy` file.
pub fn write_f64_2d(path: &Path, a: &Array2<f64>) -> Result<(), NpyError> {
    std::fs::write(path, encode_f64_2d(a)).map_err(|e| NpyError::new(path, format!("write: {e}")))
}

/// Reads a `.npy` file written by [`write_f64_2d`], checking that its shape is `expected`.
pub fn read_f64_2d(path: &Path, expected: (usize, usize)) -> Result<Array2<f64>, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError::new(path, format!("read: {e}")))?;
    decode_f64_2d(&bytes, expected).map_err(|m| NpyError::new(path, m))
}

/// Decodes the bytes of a `.npy` file; the error is a message without the path.
pub fn decode_f64_2d(bytes: &[u8], expected: (usize, usize)) -> Result<Array2<f64>, String> {
    if bytes.len() < PREAMBLE || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    if bytes[6..8] != [1, 0] {
        return Err(format!(
            "unsupported .npy version {}.{} (expected 1.0)",
            bytes[6], bytes[7]
        ));
    }
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let data_start = PREAMBLE + header_len;
    let header = bytes
        .get(PREAMBLE..data_start)
        .ok_or_else(|| format!("truncated header ({} bytes in all)", bytes.len()))?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not ASCII".to_string())?;
    let shape = parse_header(header)?;
    if shape != expected {
        return Err(format!(
            "shape {shape:?} does not match the expected {expected:?}"
        ));
    }
    let data = &bytes[data_start..];
    let want = shape.0 * shape.1 * 8;
    if data.len() != want {
        return Err(format!(
            "{} bytes of data for shape {shape:?}, expected {want} ({})",
            data.len(),
            if data.len() < want {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    let values = data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect();
    Array2::from_shape_vec(shape, values).map_err(|e| e.to_string())
}

/// Checks the header dict says `<f8`, C order, and returns its 2-D shape. Only the spelling
/// NumPy (and our writer) produce is accepted: keys in any order, single-quoted.
fn parse_header(h: &str) -> Result<(usize, usize), String> {
    let h = h.trim_end_matches(['\n', ' ']);
    let field = |key: &str| -> Result<&str, String> {
        let pat = format!("'{key}':");
        let at = h
            .find(&pat)
            .ok_or_else(|| format!("header {h:?} has no {key:?}"))?;
        Ok(h[at + pat.len()..].trim_start())
    };
    if !field("descr")?.starts_with("'<f8'") {
        return Err(format!(
            "header {h:?}: only little-endian f64 ('<f8') is supported"
        ));
    }
    if !field("fortran_order")?.starts_with("False") {
        return Err(format!("header {h:?}: only C order is supported"));
    }
    let shape = field("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split_once(')'))
        .map(|(inner, _)| inner)
        .ok_or_else(|| format!("header {h:?}: shape is not a tuple"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("header {h:?}: shape is not a tuple of integers"))?;
    match dims[..] {
        [r, c] => Ok((r, c)),
        _ => Err(format!("header {h:?}: expected a 2-D shape, got {dims:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_round_trips() {
        let a = Array2::from_shape_fn((3, 5), |(i, j)| i as f64 * 10.0 + j as f64 - 0.5);
        let bytes = encode_f64_2d(&a);
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((PREAMBLE + header_len) % ALIGN, 0);
        assert_eq!(bytes[PREAMBLE + header_len - 1], b'\n');
        let dict = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), }";
        assert_eq!(&bytes[PREAMBLE..PREAMBLE + dict.len()], dict);
        assert_eq!(decode_f64_2d(&bytes, (3, 5)).unwrap(), a);
    }

    #[test]
    fn bad_bytes_are_errors() {
        let a = Array2::<f64>::zeros((4, 4));
        let bytes = encode_f64_2d(&a);
        assert!(
            decode_f64_2d(&bytes[..bytes.len() - 3], (4, 4))
                .unwrap_err()
                .contains("truncated")
        );
        assert!(decode_f64_2d(&bytes, (4, 5)).unwrap_err().contains("shape"));
        assert!(
            decode_f64_2d(&bytes[..20], (4, 4))
                .unwrap_err()
                .contains("truncated header")
        );
        assert!(
            decode_f64_2d(b"hello world", (4, 4))
                .unwrap_err()
                .contains("magic")
        );
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(
            decode_f64_2d(&extra, (4, 4))
                .unwrap_err()
                .contains("trailing")
        );
        let mut fortran = bytes.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(
            decode_f64_2d(&fortran, (4, 4))
                .unwrap_err()
                .contains("C order")
        );
    }
}
