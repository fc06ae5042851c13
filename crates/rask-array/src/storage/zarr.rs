//! Zarr v3 arrays in a directory: a small, dependency-light reader and writer for the common
//! case.
//!
//! # Why not the `zarrs` crate
//!
//! `zarrs` 0.23, even with only its `filesystem` and `ndarray` features, always builds
//! `libz-sys` (zlib from C source when the system has none) and about 140 crates: a clean
//! build of it alone took 2m40s on 2 cores, more than all of `rask-array`. The subset below
//! covers arrays written by `zarr-python` with `compressors=None` (or gzip) and everything
//! [`to_zarr`] writes, with `serde_json` for the metadata and `flate2` (its pure-Rust
//! `miniz_oxide` backend, no C) for gzip.
//!
//! # The supported subset of Zarr v3 (core specification 3.0)
//!
//! An array is a directory holding `zarr.json` and one file per chunk. `zarr.json` must have
//! - `zarr_format: 3` and `node_type: "array"` (groups are not read);
//! - `shape` and `data_type`: `bool`, `int8`..`int64`, `uint8`..`uint64`, `float32`,
//!   `float64`;
//! - `chunk_grid` `{"name": "regular", "configuration": {"chunk_shape": [...]}}`;
//! - `chunk_key_encoding` `{"name": "default", "configuration": {"separator": "/"}}` (or
//!   `"."`): chunk `(i, j)` is the file `c/i/j` (`c.i.j`), a 0-d array's chunk is `c`;
//! - `fill_value`: a number, `true`/`false`, or for floats `"NaN"`, `"Infinity"`,
//!   `"-Infinity"` or the raw bits as hex (`"0x7fc00000"`);
//! - `codecs`: exactly the `bytes` codec (`endian` `"little"` or `"big"`; it may be left out
//!   for one-byte types), optionally followed by one `gzip` codec. Anything else (`blosc`,
//!   `zstd`, `crc32c`, `transpose`, `sharding_indexed`, ...) is an error naming `zarr.json`
//!   and the codec;
//! - `storage_transformers` absent or empty; `attributes` and `dimension_names` are accepted
//!   and ignored; any other field is an error unless it is an object with
//!   `"must_understand": false`, as the specification asks.
//!
//! Every chunk file holds the whole chunk shape in C order, also at the edges of the array
//! (padded with the fill value). A missing chunk file means a chunk of fill values.
//!
//! # What each task reads and writes
//!
//! A block of the rask array is exactly one Zarr chunk (trimmed to the array at the edges).
//!
//! - [`read_zarr`] reads and checks `zarr.json` when the graph is built (shape, dtype and bad
//!   metadata fail early, naming the file), then adds one task per chunk that reads that
//!   chunk's file whole (decompressing it with gzip), trims an edge chunk to the array and
//!   decodes it. With `C` the bytes of a full chunk and `B` those of its block, a task holds
//!   at most `C + B` (the raw chunk and the trimmed block), `2C + B` with gzip (the compressed
//!   file too). A missing file is not an error: the block is the fill value.
//!   Slicing the array before computing culls the tasks of chunks it does not touch.
//! - [`to_zarr`] / [`to_zarr_with`] return a [`Store`]: a first task creates the directory
//!   and writes `zarr.json`, then one task per block encodes it, pads an edge block to the
//!   chunk shape with the fill value (zero), optionally gzips it, and writes its chunk file
//!   (creating `c/i/...` directories). Besides its input it holds the encoded block `B`, plus
//!   `C` for the padded chunk at an edge and `C` for the compressed bytes with gzip. Blocks
//!   with no elements (an axis of length 0) write nothing: such an array has no chunks.
//!
//! The token of a read array covers `zarr.json` (path, size, modification time), not the
//! chunk files: rewriting chunks in place without touching `zarr.json` keeps the old keys.
//! Local paths are local to the process that runs the task: on a cluster they must name a
//! shared file system, or be a URL into an object store (`s3://bucket/a.zarr`), where each
//! chunk is one object (for a URL the token covers `zarr.json`'s URL, size, modification time and entity tag).

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rask_error::{RaskError, Result};
use rask_graph::{Op, OpRegistry, Tokenizer, Value, decode_params, encode_params};
use serde_json::{Value as Json, json};

use super::npy::{bad_file, tokenize_chunks, tokenize_file};
use super::{
    Store, check_native, decode_block, dtype_from_wire, encode_block, for_each_run, path_from_wire,
    path_to_wire,
};
use crate::array::{ArrayBuilder, block_nbytes};
use crate::{Array, ChunkSpec, Chunks, DType, Element, input_block};

const DTYPES: [DType; 11] = [
    DType::Bool,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
];

/// Top-level fields of array metadata that we understand (or accept and ignore).
const KNOWN_FIELDS: [&str; 11] = [
    "zarr_format",
    "node_type",
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "attributes",
    "dimension_names",
    "storage_transformers",
];

/// How [`to_zarr_with`] writes an array.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZarrOptions {
    /// Compress each chunk with the `gzip` codec at this level (0 to 9); `None` (the default)
    /// stores the raw little-endian bytes.
    pub gzip: Option<u32>,
    /// Names of the axes, written as `dimension_names` (one per axis).
    pub dimension_names: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

/// The supported subset of an array's `zarr.json`.
#[derive(Clone, Debug)]
struct Meta {
    shape: Vec<usize>,
    dtype: DType,
    chunk_shape: Vec<usize>,
    separator: char,
    /// One element, little-endian.
    fill: Vec<u8>,
    endian: Endian,
    gzip: bool,
}

/// The file name of chunk `idx` under the default chunk key encoding.
fn chunk_key(idx: &[usize], separator: char) -> String {
    let mut key = String::from("c");
    for i in idx {
        key.push(separator);
        key.push_str(&i.to_string());
    }
    key
}

fn dtype_of(name: &str) -> Option<DType> {
    DTYPES.iter().copied().find(|d| d.name() == name)
}

/// The little-endian bytes of one element of `dtype` given as a JSON `fill_value`.
fn fill_bytes(dtype: DType, v: &Json) -> Option<Vec<u8>> {
    macro_rules! int {
        ($t:ty) => {
            v.as_i64()
                .and_then(|n| <$t>::try_from(n).ok())
                .or_else(|| v.as_u64().and_then(|n| <$t>::try_from(n).ok()))
                .map(|x| x.to_le_bytes().to_vec())
        };
    }
    macro_rules! float {
        ($t:ty, $bits:ty) => {
            match v {
                Json::Number(n) => n.as_f64().map(|x| (x as $t).to_le_bytes().to_vec()),
                Json::String(s) => match s.as_str() {
                    "NaN" => Some(<$t>::NAN.to_le_bytes().to_vec()),
                    "Infinity" => Some(<$t>::INFINITY.to_le_bytes().to_vec()),
                    "-Infinity" => Some(<$t>::NEG_INFINITY.to_le_bytes().to_vec()),
                    s => s
                        .strip_prefix("0x")
                        .filter(|h| h.len() == 2 * std::mem::size_of::<$t>())
                        .and_then(|h| <$bits>::from_str_radix(h, 16).ok())
                        .map(|b| <$t>::from_bits(b).to_le_bytes().to_vec()),
                },
                _ => None,
            }
        };
    }
    match dtype {
        DType::Bool => v.as_bool().map(|b| vec![b as u8]),
        DType::U8 => int!(u8),
        DType::U16 => int!(u16),
        DType::U32 => int!(u32),
        DType::U64 => int!(u64),
        DType::I8 => int!(i8),
        DType::I16 => int!(i16),
        DType::I32 => int!(i32),
        DType::I64 => int!(i64),
        DType::F32 => float!(f32, u32),
        DType::F64 => float!(f64, u64),
    }
}

/// The `fill_value` rask writes: the dtype's zero (`T::default()`).
fn zero_fill(dtype: DType) -> Json {
    match dtype {
        DType::Bool => json!(false),
        DType::F32 | DType::F64 => json!(0.0),
        _ => json!(0),
    }
}

/// A list of non-negative integers.
fn usizes(v: Option<&Json>) -> Option<Vec<usize>> {
    v?.as_array()?
        .iter()
        .map(|n| n.as_u64().and_then(|n| usize::try_from(n).ok()))
        .collect()
}

/// The name and configuration of an extension point (an object, or a bare name).
fn named(v: &Json) -> Option<(&str, Option<&Json>)> {
    match v {
        Json::String(s) => Some((s, None)),
        Json::Object(o) => Some((o.get("name")?.as_str()?, o.get("configuration"))),
        _ => None,
    }
}

/// Parses and checks the metadata in `text`, read from `path`.
fn parse_meta(path: &Path, text: &str) -> Result<Meta> {
    let bad = |m: String| bad_file(path, m);
    let json: Json =
        serde_json::from_str(text).map_err(|e| bad(format!("zarr.json is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("zarr.json is not a JSON object".into()))?;
    for (k, v) in obj {
        let optional = v.get("must_understand") == Some(&Json::Bool(false));
        if !KNOWN_FIELDS.contains(&k.as_str()) && !optional {
            return Err(bad(format!(
                "unsupported metadata field '{k}' (not marked \"must_understand\": false)"
            )));
        }
    }
    match obj.get("zarr_format").and_then(Json::as_u64) {
        Some(3) => {}
        other => {
            return Err(bad(format!(
                "zarr_format is {other:?}: only Zarr v3 (zarr_format 3) is supported"
            )));
        }
    }
    match obj.get("node_type").and_then(Json::as_str) {
        Some("array") => {}
        other => {
            return Err(bad(format!(
                "node_type is {other:?}: only arrays (\"array\") can be read"
            )));
        }
    }
    let shape = usizes(obj.get("shape"))
        .ok_or_else(|| bad("'shape' must be a list of non-negative integers".into()))?;
    let dtype_name = obj.get("data_type").and_then(Json::as_str);
    let dtype = dtype_name.and_then(dtype_of).ok_or_else(|| {
        let names: Vec<&str> = DTYPES.iter().map(|d| d.name()).collect();
        bad(format!(
            "unsupported data_type {}: supported are {}",
            obj.get("data_type").unwrap_or(&Json::Null),
            names.join(", ")
        ))
    })?;
    let chunk_shape = match obj.get("chunk_grid").and_then(named) {
        Some(("regular", Some(config))) => usizes(config.get("chunk_shape"))
            .filter(|c| c.len() == shape.len() && c.iter().all(|&n| n > 0))
            .ok_or_else(|| {
                bad(format!(
                    "the regular chunk grid needs a chunk_shape of {} positive integers, got {}",
                    shape.len(),
                    config.get("chunk_shape").unwrap_or(&Json::Null)
                ))
            })?,
        _ => {
            return Err(bad(format!(
                "unsupported chunk_grid {}: only \"regular\" grids are supported",
                obj.get("chunk_grid").unwrap_or(&Json::Null)
            )));
        }
    };
    let separator = match obj.get("chunk_key_encoding").and_then(named) {
        Some(("default", config)) => {
            match config.and_then(|c| c.get("separator")).map(Json::as_str) {
                None | Some(Some("/")) => '/',
                Some(Some(".")) => '.',
                Some(other) => {
                    return Err(bad(format!(
                        "unsupported chunk key separator {other:?}: \"/\" or \".\""
                    )));
                }
            }
        }
        _ => {
            return Err(bad(format!(
                "unsupported chunk_key_encoding {}: only \"default\" is supported",
                obj.get("chunk_key_encoding").unwrap_or(&Json::Null)
            )));
        }
    };
    let fill_json = obj.get("fill_value").unwrap_or(&Json::Null);
    let fill = fill_bytes(dtype, fill_json)
        .ok_or_else(|| bad(format!("fill_value {fill_json} is not a valid {dtype}")))?;
    let (endian, gzip) = parse_codecs(path, obj.get("codecs"), dtype)?;
    match obj.get("storage_transformers") {
        None => {}
        Some(Json::Array(v)) if v.is_empty() => {}
        Some(v) => {
            return Err(bad(format!("unsupported storage_transformers {v}")));
        }
    }
    Ok(Meta {
        shape,
        dtype,
        chunk_shape,
        separator,
        fill,
        endian,
        gzip,
    })
}

/// Checks the codec pipeline: `bytes`, then at most one `gzip`.
fn parse_codecs(path: &Path, codecs: Option<&Json>, dtype: DType) -> Result<(Endian, bool)> {
    let bad = |m: String| bad_file(path, m);
    let list = codecs
        .and_then(Json::as_array)
        .ok_or_else(|| bad("'codecs' must be a list".into()))?;
    let (mut endian, mut gzip) = (None, false);
    for codec in list {
        let (name, config) = named(codec).ok_or_else(|| bad(format!("malformed codec {codec}")))?;
        match name {
            "bytes" if endian.is_none() => {
                let e = config.and_then(|c| c.get("endian"));
                endian = Some(match e.map(Json::as_str) {
                    Some(Some("little")) => Endian::Little,
                    Some(Some("big")) => Endian::Big,
                    None if dtype.itemsize() == 1 => Endian::Little,
                    None => {
                        return Err(bad(format!("the bytes codec needs an endian for {dtype}")));
                    }
                    Some(_) => {
                        return Err(bad(format!(
                            "unsupported endian {} in the bytes codec",
                            e.unwrap_or(&Json::Null)
                        )));
                    }
                });
            }
            "gzip" if endian.is_some() && !gzip => gzip = true,
            "bytes" | "gzip" => {
                return Err(bad(format!(
                    "unsupported codec pipeline {codecs}: expected `bytes` then at most one `gzip`",
                    codecs = Json::Array(list.clone())
                )));
            }
            other => {
                return Err(bad(format!(
                    "unsupported codec '{other}': rask reads only the `bytes` codec, optionally \
                     followed by `gzip` (rewrite the array uncompressed, e.g. zarr-python's \
                     `codecs=[BytesCodec()]` / `compressors=None`)"
                )));
            }
        }
    }
    let endian = endian.ok_or_else(|| {
        bad(format!(
            "the codecs {} have no `bytes` codec",
            Json::Array(list.clone())
        ))
    })?;
    Ok((endian, gzip))
}

/// The block lengths of the regular grid `chunk_shape` over `shape` (a trailing partial
/// chunk where the shape is not a multiple; one empty block for an axis of length 0).
fn grid_sizes(shape: &[usize], chunk_shape: &[usize]) -> Vec<Vec<usize>> {
    shape
        .iter()
        .zip(chunk_shape)
        .map(|(&n, &c)| {
            if n == 0 {
                return vec![0];
            }
            let mut v = vec![c; n / c];
            if n % c != 0 {
                v.push(n % c);
            }
            v
        })
        .collect()
}

/// The chunk shape of an array whose chunks are regular, or an error suggesting `rechunk`.
fn regular_chunk_shape(chunks: &Chunks) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(chunks.ndim());
    for (axis, sizes) in chunks.sizes().iter().enumerate() {
        let first = sizes.first().copied().unwrap_or(0);
        let (last, inner) = sizes.split_last().unwrap_or((&0, &[]));
        if inner.iter().any(|&c| c != first) || *last > first {
            return Err(RaskError::invalid_argument(
                "chunks",
                format!(
                    "Zarr needs a regular chunk grid (equal blocks along each axis, the last \
                     one possibly smaller), but axis {axis} has blocks {sizes:?}: rechunk the \
                     array first (`array::rechunk`), e.g. to {first} along that axis"
                ),
            ));
        }
        // A chunk shape must be positive: an axis of length 0 has no chunks at all.
        out.push(first.max(1));
    }
    Ok(out)
}

/// The ranges `0..len` of a block inside its chunk.
fn within(block_shape: &[usize]) -> Vec<Range<usize>> {
    block_shape.iter().map(|&n| 0..n).collect()
}

/// The text of `zarr.json` for an array of `dtype` and `shape`.
fn meta_json(dtype: DType, shape: &[usize], chunk_shape: &[usize], opts: &ZarrOptions) -> String {
    let mut codecs = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
    if let Some(level) = opts.gzip {
        codecs.push(json!({"name": "gzip", "configuration": {"level": level}}));
    }
    let mut meta = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype.name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": zero_fill(dtype),
        "codecs": codecs,
        "attributes": {},
        "storage_transformers": [],
    });
    if let Some(names) = &opts.dimension_names {
        meta["dimension_names"] = json!(names);
    }
    let mut text = serde_json::to_string_pretty(&meta).expect("JSON values serialize");
    text.push('\n');
    text
}

/// Creates the array's directory and writes `zarr.json`.
struct CreateArray {
    dir: Arc<PathBuf>,
    meta: String,
}

impl Op for CreateArray {
    fn name(&self) -> &str {
        "rask.array.to_zarr.create"
    }
    fn label(&self) -> &str {
        "to_zarr-create"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(self.name(), &(path_to_wire(&self.dir), &self.meta))
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        super::create_dir_all(&self.dir)?;
        super::write_all(&self.dir.join("zarr.json"), self.meta.clone().into_bytes())?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
}

/// Writes one block as a chunk file, padded to the chunk shape at the edges.
struct WriteChunk<T> {
    path: PathBuf,
    chunk_shape: Arc<Vec<usize>>,
    block_shape: Vec<usize>,
    gzip: Option<u32>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> WriteChunk<T> {
    fn edge(&self) -> bool {
        self.block_shape != *self.chunk_shape
    }
}

impl<T: Element> Op for WriteChunk<T> {
    fn name(&self) -> &str {
        "rask.array.to_zarr"
    }
    fn label(&self) -> &str {
        "to_zarr"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &(
                T::DTYPE.name(),
                path_to_wire(&self.path),
                &*self.chunk_shape,
                &self.block_shape,
                self.gzip,
            ),
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let block = input_block::<T>(inputs, 0, self.name())?;
        if block.shape() != self.block_shape.as_slice() {
            return Err(RaskError::ShapeMismatch(format!(
                "to_zarr {}: block has shape {:?}, expected {:?}",
                self.path.display(),
                block.shape(),
                self.block_shape
            )));
        }
        if block.is_empty() {
            return Ok(Value::new(()));
        }
        let io = |e| RaskError::io(self.path.display(), e);
        let mut bytes = encode_block(block, &self.path.display())?;
        if self.edge() {
            // Pad with the fill value, T's zero: all-zero bytes for every supported dtype.
            let item = T::DTYPE.itemsize();
            let n: usize = self.chunk_shape.iter().product();
            let mut full = vec![0u8; n * item];
            let mut pos = 0;
            for_each_run(
                &self.chunk_shape,
                &within(&self.block_shape),
                |start, len| {
                    let (start, len) = (start as usize * item, len as usize * item);
                    full[start..start + len].copy_from_slice(&bytes[pos..pos + len]);
                    pos += len;
                    Ok(())
                },
            )?;
            bytes = full;
        }
        if let Some(level) = self.gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(bytes.len() / 2),
                flate2::Compression::new(level),
            );
            enc.write_all(&bytes).map_err(io)?;
            bytes = enc.finish().map_err(io)?;
        }
        if let Some(parent) = self.path.parent() {
            super::create_dir_all(parent)?;
        }
        super::write_all(&self.path, bytes)?;
        Ok(Value::new(()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(0)
    }
    fn transient_nbytes(&self, _: &[u64]) -> Option<u64> {
        // The encoded block, the padded chunk at an edge, the compressed bytes with gzip.
        let block = block_nbytes::<T>(&self.block_shape);
        let chunk = block_nbytes::<T>(&self.chunk_shape);
        Some(block + chunk * (self.edge() as u64 + self.gzip.is_some() as u64))
    }
}

/// Writes `array` as a Zarr v3 array in the directory `path` (uncompressed, little-endian,
/// fill value zero) when the returned [`Store`] is computed: one task creates the directory
/// and writes `zarr.json`, then each block's task writes its chunk file `c/i/j/...`. The
/// chunk grid is the array's block shape, so its chunks must be regular (equal blocks along
/// each axis, the last possibly smaller): otherwise `rechunk` first.
///
/// ```
/// use rask::prelude::*;
/// use rask::array;
///
/// let dir = std::env::temp_dir().join(format!("rask-doc-zarr-{}", std::process::id()));
/// let x = array::arange::<f32>(0.0, 10.0, 1.0, 4)?;
/// array::to_zarr(&x, &dir)?.compute()?; // zarr.json, c/0, c/1, c/2 (padded to 4)
/// let y = array::read_zarr::<f32>(&dir)?; // reads zarr.json only
/// assert_eq!(y.chunks().sizes(), &[vec![4, 4, 2]]);
/// assert_eq!(y.compute()?, x.compute()?);
/// assert!(array::read_zarr::<f64>(&dir).is_err()); // it holds float32
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rask::RaskError>(())
/// ```
pub fn to_zarr<T: Element>(array: &Array<T>, path: impl AsRef<Path>) -> Result<Store> {
    to_zarr_with(array, path, &ZarrOptions::default())
}

/// [`to_zarr`] with options: gzip compression and dimension names.
pub fn to_zarr_with<T: Element>(
    array: &Array<T>,
    path: impl AsRef<Path>,
    options: &ZarrOptions,
) -> Result<Store> {
    check_native::<T>("to_zarr")?;
    let chunk_shape = Arc::new(regular_chunk_shape(array.chunks())?);
    if let Some(level) = options.gzip.filter(|&l| l > 9) {
        return Err(RaskError::invalid_argument(
            "gzip",
            format!("gzip level {level} is not in 0..=9"),
        ));
    }
    if let Some(names) = options
        .dimension_names
        .as_ref()
        .filter(|n| n.len() != array.ndim())
    {
        return Err(RaskError::invalid_argument(
            "dimension_names",
            format!(
                "{} names for an array of {} axes",
                names.len(),
                array.ndim()
            ),
        ));
    }
    let dir = Arc::new(super::resolve(path.as_ref())?);
    let meta = meta_json(T::DTYPE, array.shape(), &chunk_shape, options);
    let mut t = Tokenizer::new("rask.array.to_zarr");
    t.write_str(array.name().as_str());
    t.write_str(&dir.to_string_lossy());
    t.write_str(&meta);
    let token = t.finish();
    let create = Arc::new(CreateArray {
        dir: dir.clone(),
        meta,
    });
    Ok(Store::build(array, "to_zarr", token, create, |idx| {
        Arc::new(WriteChunk::<T> {
            path: dir.join(chunk_key(idx, '/')),
            chunk_shape: chunk_shape.clone(),
            block_shape: array.chunks().block_shape(idx),
            gzip: options.gzip,
            _t: std::marker::PhantomData,
        })
    }))
}

const TO_ZARR_CREATE: &str = "rask.array.to_zarr.create";

fn decode_create_array(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (dir, meta): (Vec<u8>, String) = decode_params(TO_ZARR_CREATE, params)?;
    Ok(Arc::new(CreateArray {
        dir: Arc::new(path_from_wire(dir)),
        meta,
    }))
}
rask_graph::register_op!(TO_ZARR_CREATE, decode_create_array);

/// A block that is not inside its chunk would index past the chunk's bytes.
fn check_block_in_chunk(op: &str, chunk: &[usize], block: &[usize]) -> Result<()> {
    if chunk.len() != block.len() || block.iter().zip(chunk).any(|(b, c)| b > c) {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{op}`"),
            message: format!("block shape {block:?} does not fit chunk shape {chunk:?}"),
        });
    }
    Ok(())
}

const TO_ZARR: &str = "rask.array.to_zarr";

fn decode_write_chunk(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    type P = (String, Vec<u8>, Vec<usize>, Vec<usize>, Option<u32>);
    let (dtype, path, chunk_shape, block_shape, gzip): P = decode_params(TO_ZARR, params)?;
    check_block_in_chunk(TO_ZARR, &chunk_shape, &block_shape)?;
    let (path, chunk_shape) = (path_from_wire(path), Arc::new(chunk_shape));
    crate::dtype::with_dtype!(all: TO_ZARR, &dtype, |T| Ok(Arc::new(WriteChunk::<T> {
        path,
        chunk_shape,
        block_shape,
        gzip,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(TO_ZARR, decode_write_chunk);

const READ_ZARR: &str = "rask.array.read_zarr";

fn decode_read_chunk(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    type P = (Vec<u8>, String, bool, bool, Vec<u8>, Vec<usize>, Vec<usize>);
    let (path, dtype, big, gzip, fill, chunk_shape, block_shape): P =
        decode_params(READ_ZARR, params)?;
    let dtype = dtype_from_wire(READ_ZARR, &dtype)?;
    check_block_in_chunk(READ_ZARR, &chunk_shape, &block_shape)?;
    if fill.len() != dtype.itemsize() {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{READ_ZARR}`"),
            message: format!("a fill value of {} bytes for {dtype}", fill.len()),
        });
    }
    Ok(Arc::new(ReadChunk {
        path: path_from_wire(path),
        dtype,
        endian: if big { Endian::Big } else { Endian::Little },
        gzip,
        fill: Arc::new(fill),
        chunk_shape: Arc::new(chunk_shape),
        block_shape,
    }))
}
rask_graph::register_op!(READ_ZARR, decode_read_chunk);

/// Reads one chunk file (a missing one is all fill value), trimmed to its block.
struct ReadChunk {
    path: PathBuf,
    dtype: DType,
    endian: Endian,
    gzip: bool,
    fill: Arc<Vec<u8>>,
    chunk_shape: Arc<Vec<usize>>,
    block_shape: Vec<usize>,
}

impl ReadChunk {
    fn nbytes(&self, shape: &[usize]) -> u64 {
        shape.iter().product::<usize>() as u64 * self.dtype.itemsize() as u64
    }

    /// The chunk's bytes, trimmed to the block, little-endian; `None` when the file is missing.
    fn read(&self) -> Result<Option<Vec<u8>>> {
        let item = self.dtype.itemsize();
        let Some(raw) = super::read_all_opt(&self.path)? else {
            return Ok(None);
        };
        let want = self.nbytes(&self.chunk_shape) as usize;
        let raw = if self.gzip {
            let mut out = Vec::with_capacity(want);
            flate2::read::GzDecoder::new(&raw[..])
                .take(want as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad_file(&self.path, format!("corrupt gzip chunk: {e}")))?;
            out
        } else {
            raw
        };
        if raw.len() != want {
            return Err(bad_file(
                &self.path,
                format!(
                    "{} chunk file: a chunk of shape {:?} of {} needs {want} bytes{}, the file has {}",
                    if raw.len() < want {
                        "truncated"
                    } else {
                        "oversized"
                    },
                    self.chunk_shape,
                    self.dtype,
                    if self.gzip { " (after gzip)" } else { "" },
                    raw.len()
                ),
            ));
        }
        let mut bytes = if self.block_shape == *self.chunk_shape {
            raw
        } else {
            let mut out = Vec::with_capacity(self.nbytes(&self.block_shape) as usize);
            for_each_run(
                &self.chunk_shape,
                &within(&self.block_shape),
                |start, len| {
                    let (start, len) = (start as usize * item, len as usize * item);
                    out.extend_from_slice(&raw[start..start + len]);
                    Ok(())
                },
            )?;
            out
        };
        if self.endian == Endian::Big && item > 1 {
            for x in bytes.chunks_exact_mut(item) {
                x.reverse();
            }
        }
        Ok(Some(bytes))
    }
}

impl Op for ReadChunk {
    fn name(&self) -> &str {
        "rask.array.read_zarr"
    }
    fn label(&self) -> &str {
        "read_zarr"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &(
                path_to_wire(&self.path),
                self.dtype.name(),
                self.endian == Endian::Big,
                self.gzip,
                &*self.fill,
                &*self.chunk_shape,
                &self.block_shape,
            ),
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let n: usize = self.block_shape.iter().product();
        if n == 0 {
            return decode_block(self.dtype, &self.block_shape, &[]);
        }
        let bytes = match self.read()? {
            Some(b) => b,
            None => self.fill.repeat(n),
        };
        decode_block(self.dtype, &self.block_shape, &bytes)
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(self.nbytes(&self.block_shape))
    }
    fn transient_nbytes(&self, _: &[u64]) -> Option<u64> {
        // The raw chunk and the trimmed block (then the block and its decoded copy); with
        // gzip also the compressed file.
        let chunk = self.nbytes(&self.chunk_shape);
        Some(chunk * (1 + self.gzip as u64) + self.nbytes(&self.block_shape))
    }
}

/// A lazy array over the Zarr v3 array in the directory `path`: `zarr.json` is read and
/// checked now (errors name it: missing, not v3, not an array, an unsupported grid, key
/// encoding or codec, a `data_type` other than `T`'s), and each chunk's task reads its own
/// file, which may be missing (fill value). The blocks are the chunks, trimmed at the edges.
pub fn read_zarr<T: Element>(path: impl AsRef<Path>) -> Result<Array<T>> {
    check_native::<T>("read_zarr")?;
    let dir = &super::resolve(path.as_ref())?;
    let meta_path = dir.join("zarr.json");
    let text = String::from_utf8_lossy(&super::read_all(&meta_path)?).into_owned();
    let meta = parse_meta(&meta_path, &text)?;
    if meta.dtype != T::DTYPE {
        return Err(RaskError::invalid_argument(
            "T",
            format!(
                "{} holds data_type {}, but {} was requested",
                meta_path.display(),
                meta.dtype,
                T::DTYPE
            ),
        ));
    }
    let sizes = grid_sizes(&meta.shape, &meta.chunk_shape);
    let chunks = Chunks::normalize(
        ChunkSpec::Explicit(sizes),
        &meta.shape,
        meta.dtype.itemsize(),
    )
    .map_err(|e| bad_file(&meta_path, e))?;
    let mut t = Tokenizer::new("rask.array.read_zarr");
    tokenize_file(&mut t, &meta_path)?;
    t.write_str(T::DTYPE.name());
    tokenize_chunks(&mut t, &chunks);
    let fill = Arc::new(meta.fill);
    let chunk_shape = Arc::new(meta.chunk_shape);
    let mut b = ArrayBuilder::new("read_zarr", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(ReadChunk {
            path: dir.join(chunk_key(&idx, meta.separator)),
            dtype: meta.dtype,
            endian: meta.endian,
            gzip: meta.gzip,
            fill: fill.clone(),
            chunk_shape: chunk_shape.clone(),
            block_shape: b.chunks().block_shape(&idx),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_and_grids() {
        assert_eq!(chunk_key(&[], '/'), "c");
        assert_eq!(chunk_key(&[0, 12], '/'), "c/0/12");
        assert_eq!(chunk_key(&[3, 1], '.'), "c.3.1");
        assert_eq!(
            grid_sizes(&[10, 4, 0], &[4, 4, 3]),
            vec![vec![4, 4, 2], vec![4], vec![0]]
        );
        assert_eq!(grid_sizes(&[3], &[5]), vec![vec![3]]);
    }

    #[test]
    fn fill_values() {
        let f = |d, v: Json| fill_bytes(d, &v);
        assert_eq!(f(DType::Bool, json!(true)), Some(vec![1]));
        assert_eq!(
            f(DType::I16, json!(-2)),
            Some((-2i16).to_le_bytes().to_vec())
        );
        assert_eq!(f(DType::U8, json!(256)), None);
        assert_eq!(f(DType::U64, json!(u64::MAX)), Some(vec![255; 8]));
        assert_eq!(
            f(DType::F32, json!(1.5)),
            Some(1.5f32.to_le_bytes().to_vec())
        );
        let nan = f(DType::F64, json!("NaN")).unwrap();
        assert!(f64::from_le_bytes(nan.try_into().unwrap()).is_nan());
        assert_eq!(
            f(DType::F32, json!("-Infinity")),
            Some(f32::NEG_INFINITY.to_le_bytes().to_vec())
        );
        assert_eq!(
            f(DType::F32, json!("0x3fc00000")),
            Some(1.5f32.to_le_bytes().to_vec())
        );
        assert_eq!(f(DType::F64, json!("nan")), None);
        assert_eq!(f(DType::I32, json!(1.5)), None);
        assert_eq!(f(DType::Bool, json!(0)), None);
    }
}
