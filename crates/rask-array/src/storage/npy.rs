//! NumPy's `.npy` format: one file per array, or one file per block.
//!
//! # The format
//!
//! A file is the magic `\x93NUMPY`, a major and minor version byte, the header length
//! (little-endian `u16` in version 1.0, `u32` in 2.0 and 3.0), the header, then the raw
//! elements. The header is a Python dict literal, e.g.
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, padded with spaces and a
//! final `\n` so that the data starts at a multiple of 64 bytes. Supported descrs are `|b1`,
//! `|i1`, `|u1`, `<i2`/`<i4`/`<i8`, `<u2`/`<u4`/`<u8` and `<f4`/`<f8` (`<` also accepted for
//! the one-byte ones); big-endian, Fortran-order, structured and other dtypes are errors that
//! name the file. We write exactly what `numpy.save` writes (including the spare spaces
//! NumPy leaves so the first axis can grow in place), as version 1.0 unless the header does
//! not fit in 64 KiB.
//!
//! # What each task reads and writes
//!
//! - [`read_npy`] parses the header when the graph is built. Each block task then opens the
//!   file and reads only its block: in C order a block is a set of contiguous runs (one per
//!   index of the axes outside the innermost partially covered axis; a block of whole rows is
//!   one run), each read with one positioned read (`read_exact_at`). It holds the raw bytes
//!   and the decoded block at once: twice the block's size.
//! - [`to_npy`] runs one task that writes the header and sizes the file (`set_len`: sparse
//!   where the file system allows), then one task per block that writes its runs at their
//!   offsets with `write_all_at`. Blocks are written in parallel into the same file, which
//!   positioned writes to disjoint ranges allow. Each holds the block's encoded bytes (one
//!   block size) besides its input.
//! - [`to_npy_stack`] writes `dir/{i}_{j}...npy` (a 0-d array's single block is `0.npy`), a
//!   complete `.npy` file per block, plus `dir/info` (dtype, shape, chunks) written by a first
//!   task; [`read_npy_stack`] reads `info` when the graph is built and each file in its own
//!   task (one block plus its bytes in memory).
//!
//! Paths are local to the process that runs the task: on a cluster they must name a shared
//! file system.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rask_error::{RaskError, Result};
use rask_graph::{
    Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Tokenizer, Value, decode_params, encode_params,
};
use serde::{Deserialize, Serialize};

use super::{
    Store, check_native, decode_block, dtype_from_wire, encode_block, for_each_run, path_from_wire,
    path_to_wire,
};
use crate::array::{ArrayBuilder, block_nbytes};
use crate::{Array, ChunkSpec, Chunks, DType, Element, input_block};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy aligns the data to this many bytes.
const ALIGN: usize = 64;
/// NumPy leaves room in the header for the first axis to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// NumPy's descr of a dtype, little-endian.
fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

fn parse_descr(s: &str) -> Option<DType> {
    Some(match s {
        "|b1" | "<b1" => DType::Bool,
        "|u1" | "<u1" => DType::U8,
        "|i1" | "<i1" => DType::I8,
        "<u2" => DType::U16,
        "<u4" => DType::U32,
        "<u8" => DType::U64,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        _ => return None,
    })
}

/// The header bytes `numpy.save` writes for an array of `dtype` and `shape`.
pub(crate) fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_repr}, }}",
        descr(dtype)
    );
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.extend(std::iter::repeat_n(
            ' ',
            GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
        ));
    }
    // As NumPy's `_wrap_header`: the dict, spaces, then '\n', so that the prefix plus header
    // is a multiple of 64; a header that already aligns still gets 64 spaces.
    let hlen = dict.len() + 1;
    // Version 1.0 unless the padded header length does not fit its `u16`.
    let pad_v1 = ALIGN - (8 + 2 + hlen) % ALIGN;
    let (major, len_bytes) = if hlen + pad_v1 <= u16::MAX as usize {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let pad = ALIGN - (8 + len_bytes + hlen) % ALIGN;
    let total = hlen + pad;
    let mut out = Vec::with_capacity(8 + len_bytes + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// What a file's header says.
#[derive(Debug, Clone)]
struct Header {
    dtype: DType,
    shape: Vec<usize>,
    /// Where the elements start.
    data_offset: u64,
}

impl Header {
    fn data_len(&self) -> u64 {
        self.shape.iter().map(|&n| n as u64).product::<u64>() * self.dtype.itemsize() as u64
    }
}

/// An error about the contents of a file: names the path.
pub(super) fn bad_file(path: &Path, message: impl std::fmt::Display) -> RaskError {
    RaskError::io(
        path.display(),
        std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string()),
    )
}

/// Bytes to read a `.npy` file from: a local file, an object in a store (read by ranged
/// GETs), or bytes already in memory.
enum Blob {
    File(File),
    Remote { store: rask_io::IoStore, len: u64 },
    Mem(Vec<u8>),
}

impl Blob {
    fn len(&self, path: &Path) -> Result<u64> {
        match self {
            Blob::File(f) => Ok(f
                .metadata()
                .map_err(|e| RaskError::io(path.display(), e))?
                .len()),
            Blob::Remote { len, .. } => Ok(*len),
            Blob::Mem(b) => Ok(b.len() as u64),
        }
    }
}

fn open(path: &Path) -> Result<Blob> {
    match super::remote(path)? {
        Some(store) => {
            let len = store.head("")?;
            Ok(Blob::Remote { store, len })
        }
        None => Ok(Blob::File(
            File::open(path).map_err(|e| RaskError::io(path.display(), e))?,
        )),
    }
}

/// Reads `buf.len()` bytes at `offset`, naming the path and the sizes when the file is short.
fn read_at(file: &Blob, path: &Path, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
    let needed = offset + buf.len() as u64;
    let truncated = |actual: u64| {
        bad_file(
            path,
            format!("truncated .npy file: {what} needs {needed} bytes, the file has {actual}"),
        )
    };
    match file {
        Blob::File(f) => f.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                truncated(f.metadata().map(|m| m.len()).unwrap_or(0))
            } else {
                RaskError::io(path.display(), e)
            }
        }),
        Blob::Remote { store, len } => {
            let end = offset + buf.len() as u64;
            if end > *len {
                return Err(truncated(*len));
            }
            let bytes = store.get_range("", offset..end)?;
            if bytes.len() != buf.len() {
                return Err(truncated(offset + bytes.len() as u64));
            }
            buf.copy_from_slice(&bytes);
            Ok(())
        }
        Blob::Mem(b) => {
            let end = offset as usize + buf.len();
            if end > b.len() {
                return Err(truncated(b.len() as u64));
            }
            buf.copy_from_slice(&b[offset as usize..end]);
            Ok(())
        }
    }
}

/// Parses the header of an open `.npy` file.
fn read_header(file: &Blob, path: &Path) -> Result<Header> {
    let mut prefix = [0u8; 12];
    let file_len = file.len(path)?;
    let n = (file_len as usize).min(12);
    read_at(file, path, &mut prefix[..n], 0, "the header")?;
    if n < 10 || &prefix[..6] != MAGIC {
        return Err(bad_file(
            path,
            "not a .npy file (it does not start with \\x93NUMPY)",
        ));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
        2 | 3 if n >= 12 => (
            u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize,
            12,
        ),
        2 | 3 => {
            return Err(bad_file(path, "truncated .npy file: header length missing"));
        }
        _ => {
            return Err(bad_file(
                path,
                format!("unsupported .npy format version {major}.{minor}"),
            ));
        }
    };
    let mut text = vec![0u8; hlen];
    read_at(file, path, &mut text, start as u64, "the header")?;
    // Version 1.0 and 2.0 headers are latin-1; only ASCII appears in the keys we read.
    let text = String::from_utf8_lossy(&text);
    let dict = match PyLit::parse(&text) {
        Some(PyLit::Dict(d)) => d,
        _ => return Err(bad_file(path, format!("malformed .npy header {text:?}"))),
    };
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let dtype = match get("descr") {
        Some(PyLit::Str(s)) => parse_descr(s).ok_or_else(|| {
            let why = if s.starts_with('>') {
                "big-endian data is not supported"
            } else {
                "supported are |b1, |i1, |u1, <i2, <i4, <i8, <u2, <u4, <u8, <f4 and <f8"
            };
            bad_file(path, format!("unsupported dtype descr '{s}': {why}"))
        })?,
        Some(other) => {
            return Err(bad_file(
                path,
                format!("unsupported dtype descr {other:?}: structured dtypes are not supported"),
            ));
        }
        None => return Err(bad_file(path, "the .npy header has no 'descr'")),
    };
    match get("fortran_order") {
        Some(PyLit::Bool(false)) => {}
        Some(PyLit::Bool(true)) => {
            return Err(bad_file(
                path,
                "fortran_order is True: only C-order .npy files can be read by block",
            ));
        }
        _ => return Err(bad_file(path, "the .npy header has no 'fortran_order'")),
    }
    let shape = match get("shape") {
        Some(PyLit::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                PyLit::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or_else(|| {
        bad_file(
            path,
            format!("the .npy header has no valid 'shape': {text:?}"),
        )
    })?;
    let header = Header {
        dtype,
        shape,
        data_offset: (start + hlen) as u64,
    };
    let need = header.data_offset + header.data_len();
    if file_len < need {
        return Err(bad_file(
            path,
            format!(
                "truncated .npy file: shape {:?} of {} needs {need} bytes, the file has {file_len}",
                header.shape, header.dtype
            ),
        ));
    }
    Ok(header)
}

/// A value in a `.npy` header: the subset of Python literals NumPy writes.
#[derive(Debug, PartialEq)]
enum PyLit {
    Str(String),
    Int(u64),
    Bool(bool),
    Tuple(Vec<PyLit>),
    Dict(Vec<(String, PyLit)>),
}

impl PyLit {
    fn parse(text: &str) -> Option<PyLit> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        (p.i == p.s.len()).then_some(v)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Items up to `close`, separated by commas, a trailing comma allowed.
    fn seq<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(item(self)?);
            if !self.eat(b',') {
                return self.eat(close).then_some(out);
            }
        }
    }

    fn value(&mut self) -> Option<PyLit> {
        match self.peek()? {
            q @ (b'\'' | b'"') => {
                self.i += 1;
                let start = self.i;
                while *self.s.get(self.i)? != q {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                self.i += 1;
                Some(PyLit::Str(s.to_string()))
            }
            b'(' | b'[' => {
                let close = if self.s[self.i] == b'(' { b')' } else { b']' };
                self.i += 1;
                self.seq(close, |p| p.value()).map(PyLit::Tuple)
            }
            b'{' => {
                self.i += 1;
                self.seq(b'}', |p| {
                    let PyLit::Str(k) = p.value()? else {
                        return None;
                    };
                    p.eat(b':').then_some(())?;
                    Some((k, p.value()?))
                })
                .map(PyLit::Dict)
            }
            c if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let n = std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()?;
                // Python 2 wrote longs with an `L` suffix.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Some(PyLit::Int(n))
            }
            _ => {
                for (word, v) in [("True", true), ("False", false)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Some(PyLit::Bool(v));
                    }
                }
                None
            }
        }
    }
}

fn check_dtype<T: Element>(path: &Path, found: DType) -> Result<()> {
    if found != T::DTYPE {
        return Err(RaskError::invalid_argument(
            "T",
            format!(
                "{} holds {found} ('{}'), but {} ('{}') was requested",
                path.display(),
                descr(found),
                T::DTYPE,
                descr(T::DTYPE)
            ),
        ));
    }
    Ok(())
}

pub(super) fn tokenize_file(t: &mut Tokenizer, path: &Path) -> Result<()> {
    if let Some(store) = super::remote(path)? {
        // An object's URL, size, modification time and entity tag: rewriting it gives new keys.
        let info = store.stat("")?;
        t.write_str(&path.to_string_lossy());
        t.write_u64(info.size);
        t.write_u128(info.modified_ns as u128);
        t.write_str(info.e_tag.as_deref().unwrap_or(""));
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| RaskError::io(path.display(), e))?;
    t.write_str(&path.to_string_lossy());
    t.write_u64(meta.len());
    // The modification time: rewriting the file gives the array new keys, so no cached
    // or persisted result of the old contents is reused.
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    t.write_u128(mtime);
    Ok(())
}

pub(super) fn tokenize_chunks(t: &mut Tokenizer, chunks: &Chunks) {
    for axis in chunks.sizes() {
        t.write_u64(axis.len() as u64);
        for &c in axis {
            t.write_u64(c as u64);
        }
    }
}

fn ranges_params(ranges: &[Range<usize>]) -> Vec<(usize, usize)> {
    ranges.iter().map(|r| (r.start, r.end)).collect()
}

/// Reads one block of a C-order `.npy` file run by run.
struct ReadBlock {
    path: Arc<PathBuf>,
    dtype: DType,
    data_offset: u64,
    /// The whole array's shape.
    shape: Arc<Vec<usize>>,
    ranges: Vec<Range<usize>>,
}

#[derive(Serialize, Deserialize)]
struct ReadBlockParams {
    path: Vec<u8>,
    dtype: String,
    data_offset: u64,
    shape: Vec<usize>,
    ranges: Vec<(usize, usize)>,
}

fn wire_ranges(
    op: &str,
    shape: &[usize],
    ranges: Vec<(usize, usize)>,
) -> Result<Vec<Range<usize>>> {
    // The block must lie inside the array: the run walk indexes by these.
    if ranges.len() != shape.len() || ranges.iter().zip(shape).any(|(&(a, b), &n)| a > b || b > n) {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{op}`"),
            message: format!("ranges {ranges:?} do not fit shape {shape:?}"),
        });
    }
    Ok(ranges.into_iter().map(|(a, b)| a..b).collect())
}

const READ_NPY: &str = "rask.array.read_npy";

fn decode_read_block(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: ReadBlockParams = decode_params(READ_NPY, params)?;
    Ok(Arc::new(ReadBlock {
        path: Arc::new(path_from_wire(p.path)),
        dtype: dtype_from_wire(READ_NPY, &p.dtype)?,
        data_offset: p.data_offset,
        ranges: wire_ranges(READ_NPY, &p.shape, p.ranges)?,
        shape: Arc::new(p.shape),
    }))
}
rask_graph::register_op!(READ_NPY, decode_read_block);

impl ReadBlock {
    fn block_shape(&self) -> Vec<usize> {
        self.ranges.iter().map(|r| r.len()).collect()
    }
    fn nbytes(&self) -> u64 {
        self.block_shape().iter().product::<usize>() as u64 * self.dtype.itemsize() as u64
    }
}

impl Op for ReadBlock {
    fn name(&self) -> &str {
        "rask.array.read_npy"
    }
    fn label(&self) -> &str {
        "read_npy"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &ReadBlockParams {
                path: path_to_wire(&self.path),
                dtype: self.dtype.name().to_string(),
                data_offset: self.data_offset,
                shape: self.shape.to_vec(),
                ranges: ranges_params(&self.ranges),
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let block_shape = self.block_shape();
        let item = self.dtype.itemsize() as u64;
        let mut buf = vec![0u8; self.nbytes() as usize];
        if !buf.is_empty()
            && let Some(store) = super::remote(&self.path)?
        {
            // One ranged request per run, coalesced by the store where runs are close.
            let mut ranges = Vec::new();
            for_each_run(&self.shape, &self.ranges, |start, len| {
                let s = self.data_offset + start * item;
                ranges.push(s..s + len * item);
                Ok(())
            })?;
            let parts = store.get_ranges("", &ranges)?;
            let mut pos = 0usize;
            for (part, r) in parts.iter().zip(&ranges) {
                let n = (r.end - r.start) as usize;
                if part.len() != n {
                    return Err(bad_file(
                        &self.path,
                        format!(
                            "truncated .npy file: the block needs {} bytes, the object has fewer",
                            r.end
                        ),
                    ));
                }
                buf[pos..pos + n].copy_from_slice(part);
                pos += n;
            }
        } else if !buf.is_empty() {
            let file = open(&self.path)?;
            let mut pos = 0usize;
            for_each_run(&self.shape, &self.ranges, |start, len| {
                let n = (len * item) as usize;
                read_at(
                    &file,
                    &self.path,
                    &mut buf[pos..pos + n],
                    self.data_offset + start * item,
                    "the block",
                )?;
                pos += n;
                Ok(())
            })?;
        }
        decode_block(self.dtype, &block_shape, &buf)
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(self.nbytes())
    }
    fn transient_nbytes(&self, _: &[u64]) -> Option<u64> {
        // The raw bytes and the decoded block.
        Some(2 * self.nbytes())
    }
}

/// A lazy array over a `.npy` file, cut into `chunks`: the header is read now (errors name
/// the file: missing, truncated, unsupported or big-endian descr, Fortran order, a dtype other
/// than `T`), and each block's task reads only that block's bytes.
///
/// ```
/// use rask::prelude::*;
/// use rask::array;
///
/// let dir = std::env::temp_dir().join(format!("rask-doc-read-npy-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("m.npy");
/// let x = array::arange::<i32>(0.0, 12.0, 1.0, 5)?;
/// array::to_npy(&x, &path)?.compute()?;
/// let y = array::read_npy::<i32>(&path, 4)?;
/// assert_eq!(y.chunks().sizes(), &[vec![4, 4, 4]]);
/// assert_eq!(y.compute()?, x.compute()?);
/// assert!(array::read_npy::<f64>(&path, 4).is_err()); // the file holds int32
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rask::RaskError>(())
/// ```
pub fn read_npy<T: Element>(
    path: impl AsRef<Path>,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    let path = &super::resolve(path.as_ref())?;
    check_native::<T>("read_npy")?;
    let file = open(path)?;
    let header = read_header(&file, path)?;
    check_dtype::<T>(path, header.dtype)?;
    let chunks = Chunks::normalize(chunks, &header.shape, header.dtype.itemsize())?;
    let mut t = Tokenizer::new("rask.array.read_npy");
    tokenize_file(&mut t, path)?;
    t.write_str(T::DTYPE.name());
    t.write_u64(header.shape.len() as u64);
    for &s in &header.shape {
        t.write_u64(s as u64);
    }
    tokenize_chunks(&mut t, &chunks);
    let path = Arc::new(path.to_path_buf());
    let shape = Arc::new(header.shape.clone());
    let mut b = ArrayBuilder::new("read_npy", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(ReadBlock {
            path: path.clone(),
            dtype: header.dtype,
            data_offset: header.data_offset,
            shape: shape.clone(),
            ranges: b.chunks().block_ranges(&idx),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

/// Creates (or truncates) a `.npy` file, writes its header and sizes it for the data.
struct CreateFile {
    path: Arc<PathBuf>,
    header: Vec<u8>,
    data_len: u64,
}

#[derive(Serialize, Deserialize)]
struct CreateFileParams {
    path: Vec<u8>,
    header: Vec<u8>,
    data_len: u64,
}

const TO_NPY_CREATE: &str = "rask.array.to_npy.create";

fn decode_create_file(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: CreateFileParams = decode_params(TO_NPY_CREATE, params)?;
    Ok(Arc::new(CreateFile {
        path: Arc::new(path_from_wire(p.path)),
        header: p.header,
        data_len: p.data_len,
    }))
}
rask_graph::register_op!(TO_NPY_CREATE, decode_create_file);

impl Op for CreateFile {
    fn name(&self) -> &str {
        "rask.array.to_npy.create"
    }
    fn label(&self) -> &str {
        "to_npy-create"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &CreateFileParams {
                path: path_to_wire(&self.path),
                header: self.header.clone(),
                data_len: self.data_len,
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let io = |e| RaskError::io(self.path.display(), e);
        let mut f = File::create(&*self.path).map_err(io)?;
        f.write_all(&self.header).map_err(io)?;
        f.set_len(self.header.len() as u64 + self.data_len)
            .map_err(io)?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
}

/// Writes one block into a pre-sized `.npy` file, run by run.
struct WriteBlock<T> {
    path: Arc<PathBuf>,
    data_offset: u64,
    shape: Arc<Vec<usize>>,
    ranges: Vec<Range<usize>>,
    _t: std::marker::PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct WriteBlockParams {
    path: Vec<u8>,
    dtype: String,
    data_offset: u64,
    shape: Vec<usize>,
    ranges: Vec<(usize, usize)>,
}

const TO_NPY: &str = "rask.array.to_npy";

fn decode_write_block(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: WriteBlockParams = decode_params(TO_NPY, params)?;
    let ranges = wire_ranges(TO_NPY, &p.shape, p.ranges)?;
    let path = Arc::new(path_from_wire(p.path));
    let shape = Arc::new(p.shape);
    crate::dtype::with_dtype!(all: TO_NPY, &p.dtype, |T| Ok(Arc::new(WriteBlock::<T> {
        path,
        data_offset: p.data_offset,
        shape,
        ranges,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(TO_NPY, decode_write_block);

impl<T: Element> Op for WriteBlock<T> {
    fn name(&self) -> &str {
        "rask.array.to_npy"
    }
    fn label(&self) -> &str {
        "to_npy"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &WriteBlockParams {
                path: path_to_wire(&self.path),
                dtype: T::DTYPE.name().to_string(),
                data_offset: self.data_offset,
                shape: self.shape.to_vec(),
                ranges: ranges_params(&self.ranges),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let block = input_block::<T>(inputs, 0, self.name())?;
        let want: Vec<usize> = self.ranges.iter().map(|r| r.len()).collect();
        if block.shape() != want.as_slice() {
            return Err(RaskError::ShapeMismatch(format!(
                "to_npy {}: block has shape {:?}, expected {want:?}",
                self.path.display(),
                block.shape()
            )));
        }
        if block.is_empty() {
            return Ok(Value::new(()));
        }
        let bytes = encode_block(block, &self.path.display())?;
        let file = OpenOptions::new()
            .write(true)
            .open(&*self.path)
            .map_err(|e| RaskError::io(self.path.display(), e))?;
        let item = T::DTYPE.itemsize() as u64;
        let mut pos = 0usize;
        for_each_run(&self.shape, &self.ranges, |start, len| {
            let n = (len * item) as usize;
            file.write_all_at(&bytes[pos..pos + n], self.data_offset + start * item)
                .map_err(|e| RaskError::io(self.path.display(), e))?;
            pos += n;
            Ok(())
        })?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
    fn transient_nbytes(&self, _: &[u64]) -> Option<u64> {
        // The encoded bytes of the block.
        let shape: Vec<usize> = self.ranges.iter().map(|r| r.len()).collect();
        Some(block_nbytes::<T>(&shape))
    }
}

/// A single-task layer whose task runs `op` with no inputs.
pub(super) fn root_layer(
    prefix: &str,
    token: rask_graph::Token,
    op: Arc<dyn Op>,
) -> (Arc<Layer>, Key) {
    let key = Key::single(KeyName::from_token(prefix, token));
    let layer = Layer::single(TaskSpec::new(key.clone(), op, Vec::new()), Vec::new());
    (layer, key)
}

/// Writes `array` to a `.npy` file at `path` when the returned [`Store`] is computed: one
/// task writes the header and sizes the file, then each block's task writes its bytes at
/// their offsets. The file is what `numpy.save` writes for the same data.
///
/// The first task truncates the file, so do not write an array to the file it is read from
/// (as with Dask, the reads may not have run yet): write to a new path and rename.
pub fn to_npy<T: Element>(array: &Array<T>, path: impl AsRef<Path>) -> Result<Store> {
    check_native::<T>("to_npy")?;
    let path = Arc::new(super::resolve(path.as_ref())?);
    if rask_io::is_remote_url(&path.to_string_lossy()) {
        return Err(RaskError::invalid_argument(
            "path",
            format!(
                "to_npy cannot write {}: an object in an object store cannot be written at \
                 offsets, block by block; use to_npy_stack (one object per block) or to_zarr",
                path.display()
            ),
        ));
    }
    let header = header_bytes(T::DTYPE, array.shape());
    let data_len = array.nbytes() as u64;
    let mut t = Tokenizer::new("rask.array.to_npy");
    t.write_str(array.name().as_str());
    t.write_str(&path.to_string_lossy());
    let token = t.finish();
    let shape = Arc::new(array.shape().to_vec());
    let data_offset = header.len() as u64;
    let create = Arc::new(CreateFile {
        path: path.clone(),
        header,
        data_len,
    });
    Ok(Store::build(array, "to_npy", token, create, |idx| {
        Arc::new(WriteBlock::<T> {
            path: path.clone(),
            data_offset,
            shape: shape.clone(),
            ranges: array.chunks().block_ranges(idx),
            _t: std::marker::PhantomData,
        })
    }))
}

/// The file name of block `idx` in a stack directory.
fn stack_file_name(idx: &[usize]) -> String {
    if idx.is_empty() {
        return "0.npy".to_string();
    }
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    format!("{}.npy", parts.join("_"))
}

/// The text of a stack's `info` file.
fn stack_info(dtype: DType, chunks: &Chunks) -> String {
    let shape: Vec<String> = chunks.shape().iter().map(|n| n.to_string()).collect();
    let axes: Vec<String> = chunks
        .sizes()
        .iter()
        .map(|axis| {
            let v: Vec<String> = axis.iter().map(|n| n.to_string()).collect();
            v.join(",")
        })
        .collect();
    format!(
        "rask npy stack 1\ndtype {}\nshape {}\nchunks {}\n",
        descr(dtype),
        shape.join(" "),
        axes.join(" ")
    )
}

fn parse_stack_info(path: &Path, text: &str) -> Result<(DType, Chunks)> {
    let bad = |m: &str| bad_file(path, format!("malformed npy stack info: {m}"));
    let mut lines = text.lines();
    if lines.next() != Some("rask npy stack 1") {
        return Err(bad("the first line is not `rask npy stack 1`"));
    }
    let (mut dtype, mut shape, mut sizes) = (None, None, None);
    for line in lines {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        let nums = |s: &str| -> Result<Vec<usize>> {
            s.split(',')
                .map(|n| {
                    n.parse()
                        .map_err(|_| bad(&format!("bad number in {line:?}")))
                })
                .collect()
        };
        match k {
            "dtype" => {
                dtype = Some(parse_descr(v).ok_or_else(|| {
                    bad_file(
                        path,
                        format!("unsupported dtype descr '{v}' in npy stack info"),
                    )
                })?)
            }
            "shape" => {
                shape = Some(
                    v.split_whitespace()
                        .map(|n| nums(n).map(|x| x[0]))
                        .collect::<Result<Vec<usize>>>()?,
                )
            }
            "chunks" => {
                sizes = Some(
                    v.split_whitespace()
                        .map(nums)
                        .collect::<Result<Vec<Vec<usize>>>>()?,
                )
            }
            _ => {}
        }
    }
    let (Some(dtype), Some(shape), Some(sizes)) = (dtype, shape, sizes) else {
        return Err(bad("it needs `dtype`, `shape` and `chunks` lines"));
    };
    let chunks = Chunks::normalize(ChunkSpec::Explicit(sizes), &shape, dtype.itemsize())
        .map_err(|e| bad(&e.to_string()))?;
    Ok((dtype, chunks))
}

/// Creates a stack directory and writes its `info` file.
struct CreateStack {
    dir: Arc<PathBuf>,
    info: String,
}

#[derive(Serialize, Deserialize)]
struct CreateStackParams {
    dir: Vec<u8>,
    info: String,
}

const TO_NPY_STACK_CREATE: &str = "rask.array.to_npy_stack.create";

fn decode_create_stack(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: CreateStackParams = decode_params(TO_NPY_STACK_CREATE, params)?;
    Ok(Arc::new(CreateStack {
        dir: Arc::new(path_from_wire(p.dir)),
        info: p.info,
    }))
}
rask_graph::register_op!(TO_NPY_STACK_CREATE, decode_create_stack);

const TO_NPY_STACK: &str = "rask.array.to_npy_stack";

fn decode_write_file(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (dtype, path): (String, Vec<u8>) = decode_params(TO_NPY_STACK, params)?;
    let path = path_from_wire(path);
    crate::dtype::with_dtype!(all: TO_NPY_STACK, &dtype, |T| Ok(Arc::new(WriteFile::<T> {
        path,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(TO_NPY_STACK, decode_write_file);

const READ_NPY_STACK: &str = "rask.array.read_npy_stack";

fn decode_read_file(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (path, dtype, shape): (Vec<u8>, String, Vec<usize>) =
        decode_params(READ_NPY_STACK, params)?;
    Ok(Arc::new(ReadFile {
        path: path_from_wire(path),
        dtype: dtype_from_wire(READ_NPY_STACK, &dtype)?,
        shape,
    }))
}
rask_graph::register_op!(READ_NPY_STACK, decode_read_file);

impl Op for CreateStack {
    fn name(&self) -> &str {
        "rask.array.to_npy_stack.create"
    }
    fn label(&self) -> &str {
        "to_npy_stack-create"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &CreateStackParams {
                dir: path_to_wire(&self.dir),
                info: self.info.clone(),
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        super::create_dir_all(&self.dir)?;
        super::write_all(&self.dir.join("info"), self.info.clone().into_bytes())?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
}

/// Writes one block as a complete `.npy` file.
struct WriteFile<T> {
    path: PathBuf,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Op for WriteFile<T> {
    fn name(&self) -> &str {
        "rask.array.to_npy_stack"
    }
    fn label(&self) -> &str {
        "to_npy_stack"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(self.name(), &(T::DTYPE.name(), path_to_wire(&self.path)))
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let block = input_block::<T>(inputs, 0, self.name())?;
        let mut bytes = header_bytes(T::DTYPE, block.shape());
        bytes.extend(encode_block(block, &self.path.display())?);
        super::write_all(&self.path, bytes)?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
}

/// Writes `array` as one `.npy` file per block, `dir/{i}_{j}...npy`, plus `dir/info` with the
/// dtype, shape and chunks, when the returned [`Store`] is computed. The directory is created
/// if needed; files of an earlier stack with more blocks are left in place.
pub fn to_npy_stack<T: Element>(array: &Array<T>, dir: impl AsRef<Path>) -> Result<Store> {
    check_native::<T>("to_npy_stack")?;
    let dir = Arc::new(super::resolve(dir.as_ref())?);
    let mut t = Tokenizer::new("rask.array.to_npy_stack");
    t.write_str(array.name().as_str());
    t.write_str(&dir.to_string_lossy());
    let token = t.finish();
    let create = Arc::new(CreateStack {
        dir: dir.clone(),
        info: stack_info(T::DTYPE, array.chunks()),
    });
    Ok(Store::build(array, "to_npy_stack", token, create, |idx| {
        Arc::new(WriteFile::<T> {
            path: dir.join(stack_file_name(idx)),
            _t: std::marker::PhantomData,
        })
    }))
}

/// Reads one block's whole `.npy` file of a stack, checking its dtype and shape.
struct ReadFile {
    path: PathBuf,
    dtype: DType,
    shape: Vec<usize>,
}

impl Op for ReadFile {
    fn name(&self) -> &str {
        "rask.array.read_npy_stack"
    }
    fn label(&self) -> &str {
        "read_npy_stack"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &(path_to_wire(&self.path), self.dtype.name(), &self.shape),
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        // Remote: one GET of the whole object, then parse it in memory.
        let file = match super::remote(&self.path)? {
            Some(store) => Blob::Mem(store.get("")?.to_vec()),
            None => open(&self.path)?,
        };
        let header = read_header(&file, &self.path)?;
        if header.dtype != self.dtype || header.shape != self.shape {
            return Err(bad_file(
                &self.path,
                format!(
                    "the stack's info says {} ('{}') of shape {:?} for this block, the file holds {} ('{}') of shape {:?}",
                    self.dtype,
                    descr(self.dtype),
                    self.shape,
                    header.dtype,
                    descr(header.dtype),
                    header.shape
                ),
            ));
        }
        let mut buf = vec![0u8; header.data_len() as usize];
        read_at(&file, &self.path, &mut buf, header.data_offset, "the block")?;
        decode_block(self.dtype, &self.shape, &buf)
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(self.shape.iter().product::<usize>() as u64 * self.dtype.itemsize() as u64)
    }
    fn transient_nbytes(&self, inputs: &[u64]) -> Option<u64> {
        self.projected_nbytes(inputs).map(|n| 2 * n)
    }
}

/// A lazy array over a directory written by [`to_npy_stack`]: `dir/info` is read now (its
/// dtype must be `T`; errors name the file), and each block's task reads its own file.
pub fn read_npy_stack<T: Element>(dir: impl AsRef<Path>) -> Result<Array<T>> {
    check_native::<T>("read_npy_stack")?;
    let dir = &super::resolve(dir.as_ref())?;
    let info_path = dir.join("info");
    let text = String::from_utf8_lossy(&super::read_all(&info_path)?).into_owned();
    let (dtype, chunks) = parse_stack_info(&info_path, &text)?;
    check_dtype::<T>(&info_path, dtype)?;
    let mut t = Tokenizer::new("rask.array.read_npy_stack");
    tokenize_file(&mut t, &info_path)?;
    t.write_str(T::DTYPE.name());
    tokenize_chunks(&mut t, &chunks);
    let mut b = ArrayBuilder::new("read_npy_stack", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(ReadFile {
            path: dir.join(stack_file_name(&idx)),
            dtype,
            shape: b.chunks().block_shape(&idx),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parser_reads_numpy_headers() {
        let d =
            PyLit::parse("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }  ").unwrap();
        assert_eq!(
            d,
            PyLit::Dict(vec![
                ("descr".into(), PyLit::Str("<f8".into())),
                ("fortran_order".into(), PyLit::Bool(false)),
                (
                    "shape".into(),
                    PyLit::Tuple(vec![PyLit::Int(3), PyLit::Int(4)])
                ),
            ])
        );
        assert_eq!(
            PyLit::parse("{\"shape\": (5L,), \"descr\": [('a', '<i4')]}"),
            Some(PyLit::Dict(vec![
                ("shape".into(), PyLit::Tuple(vec![PyLit::Int(5)])),
                (
                    "descr".into(),
                    PyLit::Tuple(vec![PyLit::Tuple(vec![
                        PyLit::Str("a".into()),
                        PyLit::Str("<i4".into())
                    ])])
                ),
            ]))
        );
        assert_eq!(PyLit::parse("{'shape': (3, 4}"), None);
        assert_eq!(PyLit::parse("{'shape': ()} x"), None);
    }

    #[test]
    fn header_bytes_align_to_64() {
        for shape in [vec![], vec![5], vec![3, 4], vec![123456789, 2, 3, 4, 5, 6]] {
            let h = header_bytes(DType::F64, &shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
        assert_eq!(header_bytes(DType::F64, &[3, 4]).len(), 128);
    }
}
