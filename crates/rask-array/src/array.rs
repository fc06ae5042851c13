//! `Array<T>`: the chunked array handle.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{Collection, GraphBuilder, Key, KeyName, Layer, Op, TaskSpec, Token, Value};

use crate::{Chunks, DType, Element};

/// A lazy n-dimensional array cut into blocks ("chunks"), each an `ndarray::ArrayD<T>`
/// produced by one task keyed `('name', i, j, ...)`.
///
/// Shape, chunks and dtype are known before anything runs, so every task's output size is
/// known too. Cloning is cheap (reference counted).
#[must_use = "a lazy array: nothing runs until it is computed (`.compute()`)"]
pub struct Array<T: Element> {
    inner: Arc<Inner>,
    _type: PhantomData<fn() -> T>,
}

struct Inner {
    name: KeyName,
    shape: Vec<usize>,
    chunks: Chunks,
    layer: Arc<Layer>,
}

impl<T: Element> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rask.Array<{}, shape={:?}, chunks={:?}, name={}>",
            T::DTYPE,
            self.inner.shape,
            self.inner.chunks.sizes(),
            self.inner.name
        )
    }
}

/// Builds the layer of a new array: one task per output block.
pub(crate) struct ArrayBuilder {
    name: KeyName,
    chunks: Chunks,
    tasks: Vec<TaskSpec>,
    deps: Vec<Arc<Layer>>,
}

impl ArrayBuilder {
    /// A new array named `prefix-<token>` with the given chunks, reading the layers `deps`.
    pub(crate) fn new(prefix: &str, token: Token, chunks: Chunks, deps: Vec<Arc<Layer>>) -> Self {
        ArrayBuilder {
            name: KeyName::from_token(prefix, token),
            tasks: Vec::with_capacity(chunks.nblocks()),
            chunks,
            deps,
        }
    }

    #[allow(dead_code)] // for operations that derive keys from the new name
    pub(crate) fn name(&self) -> &KeyName {
        &self.name
    }

    pub(crate) fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    pub(crate) fn key(&self, index: &[usize]) -> Key {
        block_key(&self.name, index)
    }

    /// Adds the task producing block `index`.
    pub(crate) fn task(&mut self, index: &[usize], op: Arc<dyn Op>, deps: Vec<Key>) {
        let key = self.key(index);
        self.tasks.push(TaskSpec::new(key, op, deps));
    }

    pub(crate) fn finish<T: Element>(self) -> Array<T> {
        let shape = self.chunks.shape();
        let layer = Layer::new(self.tasks, self.deps);
        Array {
            inner: Arc::new(Inner {
                name: self.name,
                shape,
                chunks: self.chunks,
                layer,
            }),
            _type: PhantomData,
        }
    }
}

pub(crate) fn block_key(name: &KeyName, index: &[usize]) -> Key {
    Key::new(name.clone(), index.iter().map(|&i| i as u32))
}

impl<T: Element> Array<T> {
    /// An array over an existing layer whose tasks produce the blocks `('name', i, ...)`.
    pub(crate) fn from_layer(name: KeyName, chunks: Chunks, layer: Arc<Layer>) -> Self {
        Array {
            inner: Arc::new(Inner {
                shape: chunks.shape(),
                name,
                chunks,
                layer,
            }),
            _type: PhantomData,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }

    pub fn ndim(&self) -> usize {
        self.inner.shape.len()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.inner.shape.iter().product()
    }

    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Bytes of the whole array.
    pub fn nbytes(&self) -> usize {
        self.size() * std::mem::size_of::<T>()
    }

    pub fn chunks(&self) -> &Chunks {
        &self.inner.chunks
    }

    /// Blocks along each axis.
    pub fn numblocks(&self) -> Vec<usize> {
        self.inner.chunks.numblocks()
    }

    /// Total number of blocks.
    pub fn npartitions(&self) -> usize {
        self.inner.chunks.nblocks()
    }

    /// The name all block keys share.
    pub fn name(&self) -> &KeyName {
        &self.inner.name
    }

    /// The key of block `index`.
    pub fn block_key(&self, index: &[usize]) -> Key {
        block_key(&self.inner.name, index)
    }

    pub fn layer(&self) -> &Arc<Layer> {
        &self.inner.layer
    }

    /// Checks that `index` names a block, naming the argument when not.
    #[allow(dead_code)] // for block-level access (`blocks`, `to_delayed`)
    pub(crate) fn check_block_index(&self, index: &[usize]) -> Result<()> {
        let nb = self.numblocks();
        if index.len() != nb.len() || index.iter().zip(&nb).any(|(&i, &n)| i >= n) {
            return Err(RaskError::invalid_argument(
                "index",
                format!("block {index:?} does not exist; the array has {nb:?} blocks"),
            ));
        }
        Ok(())
    }
}

/// The bytes a block of `shape` takes.
pub(crate) fn block_nbytes<T>(shape: &[usize]) -> u64 {
    (shape.iter().product::<usize>() * std::mem::size_of::<T>()) as u64
}

/// Wraps a block as a task output, sized by its elements.
pub fn block_value<T: Element>(block: ArrayD<T>) -> Value {
    Value::new(block)
}

/// Reads input `i` of a task as a block of `T`.
pub fn input_block<'a, T: Element>(
    inputs: &'a [Value],
    i: usize,
    op: &str,
) -> Result<&'a ArrayD<T>> {
    inputs
        .get(i)
        .ok_or_else(|| {
            RaskError::invalid_argument("inputs", format!("op `{op}` expects input {i}"))
        })?
        .get::<ArrayD<T>>(&format_args!("input {i} of `{op}`"))
}

impl<T: Element> Collection for Array<T> {
    type Output = ArrayD<T>;

    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.inner.layer);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.inner
            .chunks
            .block_indices()
            .map(|idx| self.block_key(&idx))
            .collect()
    }

    /// Assembles the blocks into one `ndarray`.
    fn finalize(&self, values: Vec<Value>) -> Result<ArrayD<T>> {
        let chunks = &self.inner.chunks;
        if chunks.nblocks() == 1 && values.len() == 1 {
            let key = self.block_key(&vec![0; self.ndim()]);
            let block = values
                .into_iter()
                .next()
                .expect("one value")
                .take::<ArrayD<T>>(&key)?;
            return check_block_shape(block, self.shape(), &key);
        }
        let mut out = ArrayD::<T>::default(IxDyn(self.shape()));
        for (idx, value) in chunks.block_indices().zip(values) {
            let key = self.block_key(&idx);
            let block = value.get::<ArrayD<T>>(&key)?;
            let ranges = chunks.block_ranges(&idx);
            let want: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
            if block.shape() != want.as_slice() {
                return Err(RaskError::ShapeMismatch(format!(
                    "block {key} has shape {:?}, expected {want:?}",
                    block.shape()
                )));
            }
            let info = crate::rechunk::slice_info(&ranges);
            out.slice_mut(info.as_slice()).assign(block);
        }
        Ok(out)
    }
}

fn check_block_shape<T: Element>(block: ArrayD<T>, want: &[usize], key: &Key) -> Result<ArrayD<T>> {
    if block.shape() != want {
        return Err(RaskError::ShapeMismatch(format!(
            "block {key} has shape {:?}, expected {want:?}",
            block.shape()
        )));
    }
    Ok(block)
}
