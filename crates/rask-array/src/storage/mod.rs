//! Storing arrays on disk and reading them back lazily, block by block.
//!
//! # Formats
//!
//! - `.npy` (NumPy's format, versions 1.0, 2.0 and 3.0 read, 1.0/2.0 written, little-endian,
//!   C order): one file for the whole array ([`read_npy`], [`to_npy`]) or one file per block
//!   plus an `info` file ([`read_npy_stack`], [`to_npy_stack`]). See the `npy` module docs for
//!   the byte layout and which bytes each task touches.
//! - Zarr v3 (a directory with `zarr.json` and one file per chunk; the `bytes` codec,
//!   optionally gzip): [`read_zarr`], [`to_zarr`], [`to_zarr_with`]. A small reader and
//!   writer of our own rather than the `zarrs` crate: `zarrs` 0.23 (even with only its
//!   `filesystem` and `ndarray` features) has an unconditional build dependency on `libz-sys`
//!   (zlib from C source when the system has none) and brings about 140 crates: a clean
//!   build of it alone took 2m40s on the 2 shared cores, more than all of `rask-array`. See
//!   the `zarr` module docs for the supported subset.
//!
//! # Object stores
//!
//! Every reader and writer also takes a URL (through `rask-io`): `s3://bucket/key`,
//! `http(s)://...`, and `file://` (which becomes a plain local path and keeps the local fast
//! path). Reads of one `.npy` object are ranged GETs per block (the runs of a block are
//! fetched with one coalesced `get_ranges`); a stack or Zarr chunk is one GET per block; writes
//! are one PUT per block (Zarr chunk or stack file) and no directories are created. An object
//! cannot be written at offsets, so [`to_npy`] to a URL is an error that suggests
//! [`to_npy_stack`] or [`to_zarr`]. Tasks carry only the URL, never credentials: the store
//! options come from `rask_io::set_default_options` or the `AWS_*` environment variables of
//! the process that runs the task.
//!
//! # Reading is lazy and block-wise
//!
//! A reader parses the file's header when the graph is built (so shape and dtype are known
//! and bad files fail early, naming the path), then adds one task per block that reads only
//! that block's bytes. Slicing the array before computing culls the tasks of blocks the slice
//! does not touch, so their bytes are never read.
//!
//! # Writing is a graph too: [`Store`]
//!
//! `to_npy` and `to_npy_stack` return a [`Store`]: a [`Collection`] whose output is `()` and
//! whose tasks write one block each (after one task that creates the file or directory).
//! Nothing is written until it is computed (`store.compute()?` with `rask`'s `ComputeExt`),
//! like Dask's `to_zarr(..., compute=False)` followed by `.compute()`. A dedicated type rather
//! than an `Array<u8>` "done" marker keeps the intent clear: a store has no shape, cannot be
//! fed into array math by mistake, and computing it returns nothing to assemble. Its output
//! keys are the block-writing tasks themselves (each returns a zero-byte `()`), so there is
//! no fan-in task and the scheduler can release each block as soon as it is written.

use std::any::TypeId;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{Collection, GraphBuilder, Key, Layer, Value};

use crate::{DType, Element};

mod npy;
mod zarr;

pub use npy::{read_npy, read_npy_stack, to_npy, to_npy_stack};
pub use zarr::{ZarrOptions, read_zarr, to_zarr, to_zarr_with};

/// Writes of an array to storage, run when computed: one task per block, plus the task
/// that creates the target. Computing it returns `()` once every block is written.
///
/// ```
/// use rask::prelude::*;
/// use rask::array;
///
/// let dir = std::env::temp_dir().join(format!("rask-doc-store-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("x.npy");
/// let x = array::arange::<f64>(0.0, 10.0, 1.0, 4)?;
/// let store = array::to_npy(&x, &path)?; // nothing written yet
/// store.compute()?; // one task per block writes its bytes
/// let y = array::read_npy::<f64>(&path, 3)?; // reads the header only
/// assert_eq!(y.compute()?, x.compute()?);
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rask::RaskError>(())
/// ```
#[derive(Clone)]
pub struct Store {
    layer: Arc<Layer>,
    outputs: Vec<Key>,
}

impl Store {
    /// The write graph every store shares: one task runs `create` (a header, metadata or
    /// directory), then one task per block of `array` runs `write(block index)`, reading
    /// that block and (for ordering) the create task's output.
    pub(crate) fn build<T: crate::Element>(
        array: &crate::Array<T>,
        prefix: &str,
        token: rask_graph::Token,
        create: Arc<dyn rask_graph::Op>,
        mut write: impl FnMut(&[usize]) -> Arc<dyn rask_graph::Op>,
    ) -> Store {
        let (create_layer, create_key) =
            npy::root_layer(&format!("{prefix}-create"), token, create);
        let name = rask_graph::KeyName::from_token(prefix, token);
        let mut tasks = Vec::with_capacity(array.npartitions());
        let mut outputs = Vec::with_capacity(array.npartitions());
        for idx in array.chunks().block_indices() {
            let key = crate::array::block_key(&name, &idx);
            // Inputs in the order of the layer's deps: the block, then the create task.
            tasks.push(rask_graph::TaskSpec::new(
                key.clone(),
                write(&idx),
                vec![array.block_key(&idx), create_key.clone()],
            ));
            outputs.push(key);
        }
        let layer = Layer::new(tasks, vec![array.layer().clone(), create_layer]);
        Store { layer, outputs }
    }

    /// The layer of block-writing tasks (its dependencies hold the array and the create task).
    pub fn layer(&self) -> &Arc<Layer> {
        &self.layer
    }

    /// The keys of the block-writing tasks.
    pub fn keys(&self) -> &[Key] {
        &self.outputs
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rask.Store<{} block writes>", self.outputs.len())
    }
}

impl Collection for Store {
    type Output = ();

    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.outputs.clone()
    }

    fn finalize(&self, values: Vec<Value>) -> Result<()> {
        if values.len() != self.outputs.len() {
            return Err(RaskError::invalid_argument(
                "values",
                format!(
                    "a store of {} block writes got {} results",
                    self.outputs.len(),
                    values.len()
                ),
            ));
        }
        Ok(())
    }
}

/// A path as op parameters carry it: its raw bytes, exact for every Unix path (UTF-8 or
/// not; a lossy string would point a worker at another file).
pub(super) fn path_to_wire(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// The path [`path_to_wire`] wrote.
pub(super) fn path_from_wire(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// The dtype an op's parameters name.
pub(super) fn dtype_from_wire(op: &str, name: &str) -> Result<crate::DType> {
    crate::DType::from_name(name).ok_or_else(|| crate::dtype::unknown_dtype(op, name))
}

/// Turns what the user passed into the path the ops carry: `file://` URLs become local
/// paths, other URLs (`s3://`, `http(s)://`, ...) are kept as they are (a `PathBuf` holding a
/// URL joins with `/` like a path), plain paths are unchanged.
pub(super) fn resolve(path: &Path) -> Result<PathBuf> {
    let s = path.to_string_lossy();
    if s.contains("://") && !rask_io::is_remote_url(&s) {
        let loc = rask_io::Location::parse(&s)?;
        return Ok(loc.local_path().unwrap_or_else(|| path.to_path_buf()));
    }
    if rask_io::is_remote_url(&s) {
        // Parse now so a malformed URL or an unsupported scheme fails when the graph is built.
        rask_io::Location::parse(&s)?;
    }
    Ok(path.to_path_buf())
}

/// The object store behind `path` when it is a remote URL, rooted at that object.
pub(super) fn remote(path: &Path) -> Result<Option<rask_io::IoStore>> {
    let s = path.to_string_lossy();
    if rask_io::is_remote_url(&s) {
        Ok(Some(rask_io::IoStore::open_shared(&s)?))
    } else {
        Ok(None)
    }
}

/// Writes a whole file or object.
pub(super) fn write_all(path: &Path, bytes: Vec<u8>) -> Result<()> {
    match remote(path)? {
        Some(store) => store.put("", bytes),
        None => std::fs::write(path, bytes).map_err(|e| RaskError::io(path.display(), e)),
    }
}

/// Reads a whole file or object; `None` when it does not exist.
pub(super) fn read_all_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match remote(path)? {
        Some(store) => Ok(store.get_opt("")?.map(|b| b.to_vec())),
        None => match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RaskError::io(path.display(), e)),
        },
    }
}

/// Reads a whole file or object; missing is an error naming it.
pub(super) fn read_all(path: &Path) -> Result<Vec<u8>> {
    match remote(path)? {
        Some(store) => Ok(store.get("")?.to_vec()),
        None => std::fs::read(path).map_err(|e| RaskError::io(path.display(), e)),
    }
}

/// Creates a local directory; object stores have no directories, so nothing to do there.
pub(super) fn create_dir_all(path: &Path) -> Result<()> {
    if rask_io::is_remote_url(&path.to_string_lossy()) {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| RaskError::io(path.display(), e))
}

/// Plain-old-data element types with a fixed little-endian encoding.
trait Le: Element {
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

impl Le for bool {
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        // NumPy writes 0 and 1; any other byte reads as true, as NumPy's `astype(bool)`.
        bytes[0] != 0
    }
}

/// Runs `$body` with `$U` bound to the Rust type of `$dtype`.
macro_rules! with_dtype {
    ($dtype:expr, $U:ident => $body:expr) => {
        match $dtype {
            DType::Bool => {
                type $U = bool;
                $body
            }
            DType::U8 => {
                type $U = u8;
                $body
            }
            DType::U16 => {
                type $U = u16;
                $body
            }
            DType::U32 => {
                type $U = u32;
                $body
            }
            DType::U64 => {
                type $U = u64;
                $body
            }
            DType::I8 => {
                type $U = i8;
                $body
            }
            DType::I16 => {
                type $U = i16;
                $body
            }
            DType::I32 => {
                type $U = i32;
                $body
            }
            DType::I64 => {
                type $U = i64;
                $body
            }
            DType::F32 => {
                type $U = f32;
                $body
            }
            DType::F64 => {
                type $U = f64;
                $body
            }
        }
    };
}

/// Checks that `T` is the built-in Rust type of its `DTYPE`: readers produce blocks of that
/// type, so an `Element` implemented for another type (a newtype claiming `f64`) cannot be
/// read or written through raw bytes.
fn check_native<T: Element>(what: &str) -> Result<()> {
    let native = with_dtype!(T::DTYPE, U => TypeId::of::<U>());
    if native != TypeId::of::<T>() {
        return Err(RaskError::invalid_argument(
            "T",
            format!(
                "{what}: element type {} declares dtype {} but is not its built-in type",
                std::any::type_name::<T>(),
                T::DTYPE
            ),
        ));
    }
    Ok(())
}

/// Decodes little-endian bytes into a block of `dtype` with `shape` (C order).
fn decode_block(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Value> {
    with_dtype!(dtype, U => {
        let size = std::mem::size_of::<U>();
        let v: Vec<U> = bytes.chunks_exact(size).map(U::get).collect();
        let a = ArrayD::from_shape_vec(IxDyn(shape), v)
            .map_err(|e| RaskError::ShapeMismatch(e.to_string()))?;
        Ok(crate::block_value(a))
    })
}

/// Encodes a block (any memory layout) as little-endian bytes in C order.
fn encode_block<T: Element>(block: &ArrayD<T>, what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    with_dtype!(T::DTYPE, U => {
        let any: &dyn std::any::Any = block;
        let block = any.downcast_ref::<ArrayD<U>>().ok_or_else(|| {
            RaskError::invalid_argument(
                "T",
                format!("{what}: element type {} is not {}", std::any::type_name::<T>(), T::DTYPE),
            )
        })?;
        let mut out = Vec::with_capacity(block.len() * std::mem::size_of::<U>());
        for &x in block.iter() {
            x.put(&mut out);
        }
        Ok(out)
    })
}

/// Calls `f(start, len)` for each contiguous run of elements (offsets in elements from the
/// start of the data) that the block `ranges` covers in a C-order array of `shape`, in the
/// block's own C order. A run spans the block's extent along the outermost axis `k` whose
/// inner axes the block covers fully, so a block of whole rows is a single run.
fn for_each_run(
    shape: &[usize],
    ranges: &[Range<usize>],
    mut f: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let ndim = shape.len();
    if ranges.iter().any(|r| r.is_empty()) {
        return Ok(());
    }
    if ndim == 0 {
        return f(0, 1);
    }
    // Element strides of the C-order array.
    let mut strides = vec![1u64; ndim];
    for a in (0..ndim - 1).rev() {
        strides[a] = strides[a + 1] * shape[a + 1] as u64;
    }
    // The run axis: inner axes are covered fully.
    let mut k = ndim - 1;
    while k > 0 && ranges[k].start == 0 && ranges[k].end == shape[k] {
        k -= 1;
    }
    let run = ranges[k].len() as u64 * strides[k];
    // Odometer over the block's indices along the outer axes 0..k.
    let mut idx: Vec<usize> = ranges[..k].iter().map(|r| r.start).collect();
    loop {
        let start: u64 = idx
            .iter()
            .zip(&strides)
            .map(|(&i, &s)| i as u64 * s)
            .sum::<u64>()
            + ranges[k].start as u64 * strides[k];
        f(start, run)?;
        let mut a = k;
        loop {
            if a == 0 {
                return Ok(());
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < ranges[a].end {
                break;
            }
            idx[a] = ranges[a].start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(shape: &[usize], ranges: &[Range<usize>]) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        for_each_run(shape, ranges, |s, l| {
            v.push((s, l));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn runs_of_c_order_blocks() {
        assert_eq!(runs(&[], &[]), vec![(0, 1)]);
        let one_axis = vec![Range { start: 3, end: 7 }];
        assert_eq!(runs(&[10], &one_axis), vec![(3, 4)]);
        // Whole rows are one run.
        assert_eq!(runs(&[4, 5], &[1..3, 0..5]), vec![(5, 10)]);
        // Part of each row: one run per row.
        assert_eq!(runs(&[4, 5], &[1..3, 2..4]), vec![(7, 2), (12, 2)]);
        assert_eq!(runs(&[2, 3, 4], &[0..2, 1..2, 0..4]), vec![(4, 4), (16, 4)]);
        assert!(runs(&[0, 3], &[0..0, 0..3]).is_empty());
    }
}
