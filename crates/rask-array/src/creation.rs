//! Creating arrays: constants, ranges, the identity, from an `ndarray`, from one task's output.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{Key, Layer, Op, OpRegistry, Tokenizer, Value, decode_params, encode_params};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_nbytes, block_value};
use crate::dtype::{parse_scalar, with_dtype};
use crate::{Array, ChunkSpec, Chunks, Element, NumElement};

/// Writes a shape and its chunks into a token.
pub(crate) fn tokenize_shape(t: &mut Tokenizer, shape: &[usize], chunks: &Chunks) {
    t.write_u64(shape.len() as u64);
    for &s in shape {
        t.write_u64(s as u64);
    }
    for axis in chunks.sizes() {
        t.write_u64(axis.len() as u64);
        for &c in axis {
            t.write_u64(c as u64);
        }
    }
}

/// A block filled with one value.
struct Full<T> {
    value: T,
    shape: Vec<usize>,
}

#[derive(Serialize, Deserialize)]
struct FullParams {
    dtype: String,
    /// The value written with `{:?}`, which is exact (an `f64` would round large integers).
    value: String,
    shape: Vec<usize>,
}

const FULL: &str = "rask.array.full";

fn decode_full(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: FullParams = decode_params(FULL, params)?;
    with_dtype!(all: FULL, &p.dtype, |T| Ok(Arc::new(Full::<T> {
        value: parse_scalar(FULL, &p.value)?,
        shape: p.shape,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(FULL, decode_full);

impl<T: Element> Op for Full<T> {
    fn name(&self) -> &str {
        FULL
    }
    fn label(&self) -> &str {
        "full"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &FullParams {
                dtype: T::DTYPE.name().to_string(),
                value: format!("{:?}", self.value),
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(block_value(ArrayD::from_elem(
            IxDyn(&self.shape),
            self.value,
        )))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

/// An array of `shape` filled with `value`.
pub fn full<T: Element>(
    shape: &[usize],
    value: T,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    let chunks = Chunks::normalize(chunks, shape, std::mem::size_of::<T>())?;
    let mut t = Tokenizer::new("rask.array.full");
    t.write_str(T::DTYPE.name());
    value.tokenize(&mut t);
    tokenize_shape(&mut t, shape, &chunks);
    let mut b = ArrayBuilder::new("full", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(Full {
            value,
            shape: b.chunks().block_shape(&idx),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

pub fn zeros<T: NumElement>(shape: &[usize], chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
    full(shape, T::zero(), chunks)
}

pub fn ones<T: NumElement>(shape: &[usize], chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
    full(shape, T::one(), chunks)
}

/// One block of an evenly spaced range: element `i` is `start + (offset + i) * step`.
struct Range1d<T> {
    start: f64,
    step: f64,
    offset: usize,
    len: usize,
    /// For `linspace` with an endpoint, the last element is exactly `stop` (as NumPy does).
    last: Option<(usize, f64)>,
    _t: std::marker::PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct RangeParams {
    dtype: String,
    start: f64,
    step: f64,
    offset: usize,
    len: usize,
    last: Option<(usize, f64)>,
}

impl<T: Element> Op for Range1d<T> {
    fn name(&self) -> &str {
        "rask.array.range"
    }
    fn label(&self) -> &str {
        "range"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &RangeParams {
                dtype: T::DTYPE.name().to_string(),
                start: self.start,
                step: self.step,
                offset: self.offset,
                len: self.len,
                last: self.last,
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let mut v: Vec<T> = (0..self.len)
            .map(|i| T::from_f64(self.start + (self.offset + i) as f64 * self.step))
            .collect();
        if let Some((pos, value)) = self.last
            && pos >= self.offset
            && pos < self.offset + self.len
        {
            v[pos - self.offset] = T::from_f64(value);
        }
        Ok(block_value(
            ArrayD::from_shape_vec(IxDyn(&[self.len]), v)
                .map_err(|e| RaskError::ShapeMismatch(e.to_string()))?,
        ))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&[self.len]))
    }
}

const RANGE: &str = "rask.array.range";

fn decode_range(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: RangeParams = decode_params(RANGE, params)?;
    with_dtype!(all: RANGE, &p.dtype, |T| Ok(Arc::new(Range1d::<T> {
        start: p.start,
        step: p.step,
        offset: p.offset,
        len: p.len,
        last: p.last,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(RANGE, decode_range);

fn range_array<T: Element>(
    prefix: &str,
    start: f64,
    step: f64,
    len: usize,
    last: Option<(usize, f64)>,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    let chunks = Chunks::normalize(chunks, &[len], std::mem::size_of::<T>())?;
    let mut t = Tokenizer::new("rask.array.range");
    t.write_str(T::DTYPE.name());
    t.write_f64(start);
    t.write_f64(step);
    t.write_u64(len as u64);
    if let Some((p, v)) = last {
        t.write_u64(p as u64);
        t.write_f64(v);
    }
    tokenize_shape(&mut t, &[len], &chunks);
    let offsets = chunks.offsets(0);
    let mut b = ArrayBuilder::new(prefix, t.finish(), chunks, Vec::new());
    for (i, w) in offsets.windows(2).enumerate() {
        let op = Arc::new(Range1d::<T> {
            start,
            step,
            offset: w[0],
            len: w[1] - w[0],
            last,
            _t: std::marker::PhantomData,
        });
        b.task(&[i], op, Vec::new());
    }
    Ok(b.finish())
}

/// Values from `start` up to (not including) `stop` by `step`, as NumPy's `arange`.
pub fn arange<T: Element>(
    start: f64,
    stop: f64,
    step: f64,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    if step == 0.0 || !step.is_finite() {
        return Err(RaskError::invalid_argument(
            "step",
            format!("must be finite and non-zero, got {step}"),
        ));
    }
    if !start.is_finite() || !stop.is_finite() {
        return Err(RaskError::invalid_argument(
            "start",
            format!("start and stop must be finite, got {start} and {stop}"),
        ));
    }
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    range_array("arange", start, step, len, None, chunks)
}

/// `num` evenly spaced values from `start` to `stop` (inclusive when `endpoint`), as NumPy's
/// `linspace`.
pub fn linspace<T: Element>(
    start: f64,
    stop: f64,
    num: usize,
    endpoint: bool,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    if !start.is_finite() || !stop.is_finite() {
        return Err(RaskError::invalid_argument(
            "start",
            format!("start and stop must be finite, got {start} and {stop}"),
        ));
    }
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let step = if div > 0 {
        (stop - start) / div as f64
    } else {
        0.0
    };
    let last = (endpoint && num > 1).then(|| (num - 1, stop));
    range_array("linspace", start, step, num, last, chunks)
}

/// One block of the identity-like matrix with ones on diagonal `k`.
struct EyeBlock<T> {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    k: isize,
    _t: std::marker::PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct EyeParams {
    dtype: String,
    rows: (usize, usize),
    cols: (usize, usize),
    k: isize,
}

impl<T: NumElement> Op for EyeBlock<T> {
    fn name(&self) -> &str {
        "rask.array.eye"
    }
    fn label(&self) -> &str {
        "eye"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &EyeParams {
                dtype: T::DTYPE.name().to_string(),
                rows: (self.rows.start, self.rows.end),
                cols: (self.cols.start, self.cols.end),
                k: self.k,
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let mut a = ArrayD::<T>::zeros(IxDyn(&[self.rows.len(), self.cols.len()]));
        for (i, r) in self.rows.clone().enumerate() {
            let c = r as isize + self.k;
            if c >= self.cols.start as isize && c < self.cols.end as isize {
                a[[i, (c as usize) - self.cols.start]] = T::one();
            }
        }
        Ok(block_value(a))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&[self.rows.len(), self.cols.len()]))
    }
}

const EYE: &str = "rask.array.eye";

fn decode_eye(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: EyeParams = decode_params(EYE, params)?;
    with_dtype!(num: EYE, &p.dtype, |T| Ok(Arc::new(EyeBlock::<T> {
        rows: p.rows.0..p.rows.1,
        cols: p.cols.0..p.cols.1,
        k: p.k,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(EYE, decode_eye);

/// An `n x m` matrix with ones on diagonal `k` (0 the main one, positive above).
pub fn eye<T: NumElement>(
    n: usize,
    m: Option<usize>,
    k: isize,
    chunks: impl Into<ChunkSpec>,
) -> Result<Array<T>> {
    let m = m.unwrap_or(n);
    let shape = [n, m];
    let chunks = Chunks::normalize(chunks, &shape, std::mem::size_of::<T>())?;
    let mut t = Tokenizer::new("rask.array.eye");
    t.write_str(T::DTYPE.name());
    t.write_i64(k as i64);
    tokenize_shape(&mut t, &shape, &chunks);
    let mut b = ArrayBuilder::new("eye", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let r = b.chunks().block_ranges(&idx);
        let op = Arc::new(EyeBlock::<T> {
            rows: r[0].clone(),
            cols: r[1].clone(),
            k,
            _t: std::marker::PhantomData,
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

/// One block cut out of an in-memory `ndarray` shared by all blocks.
struct FromNdarray<T> {
    source: Arc<ArrayD<T>>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl<T: Element> Op for FromNdarray<T> {
    fn name(&self) -> &str {
        "rask.array.from_ndarray"
    }
    fn label(&self) -> &str {
        "array"
    }
    fn params(&self) -> Option<Vec<u8>> {
        // The block's own elements (not the whole shared source) in the value codec's
        // format: params as large as the block, which a task sends once.
        let (tag, bytes) = self.block_value().encode().ok()?;
        encode_params(self.name(), &(T::DTYPE.name(), tag, bytes))
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(self.block_value())
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(
            (self.ranges.iter().map(|r| r.len()).product::<usize>() * std::mem::size_of::<T>())
                as u64,
        )
    }
}

impl<T: Element> FromNdarray<T> {
    fn block_value(&self) -> Value {
        let info = crate::rechunk::slice_info(&self.ranges);
        block_value(self.source.slice(info.as_slice()).to_owned())
    }
}

const FROM_NDARRAY: &str = "rask.array.from_ndarray";

fn decode_from_ndarray(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (dtype, tag, bytes): (&str, &str, &[u8]) = decode_params(FROM_NDARRAY, params)?;
    with_dtype!(all: FROM_NDARRAY, dtype, |T| {
        let block: ArrayD<T> = Value::decode(tag, bytes)?.take(&FROM_NDARRAY)?;
        let ranges = block.shape().iter().map(|&n| 0..n).collect();
        Ok(Arc::new(FromNdarray::<T> {
            source: Arc::new(block),
            ranges,
        }) as Arc<dyn Op>)
    })
}
rask_graph::register_op!(FROM_NDARRAY, decode_from_ndarray);

/// A chunked array over an in-memory `ndarray` (Dask's `from_array`). The key is a hash of
/// the data, so the same data gives the same array name.
pub fn from_ndarray<T: Element>(data: ArrayD<T>, chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
    let shape = data.shape().to_vec();
    let chunks = Chunks::normalize(chunks, &shape, std::mem::size_of::<T>())?;
    let mut t = Tokenizer::new("rask.array.from_ndarray");
    t.write_str(T::DTYPE.name());
    tokenize_shape(&mut t, &shape, &chunks);
    for v in data.iter() {
        v.tokenize(&mut t);
    }
    let source = Arc::new(data);
    let mut b = ArrayBuilder::new("array", t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(FromNdarray {
            source: source.clone(),
            ranges: b.chunks().block_ranges(&idx),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

/// Checks that a task's output is a block of the declared shape and dtype.
struct CheckBlock<T> {
    shape: Vec<usize>,
    source: Key,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Op for CheckBlock<T> {
    fn name(&self) -> &str {
        "rask.array.from_delayed"
    }
    fn label(&self) -> &str {
        "from_delayed"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(self.name(), &(T::DTYPE.name(), &self.shape, &self.source))
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let v = &inputs[0];
        let Some(block) = v.downcast_ref::<ArrayD<T>>() else {
            return Err(RaskError::invalid_argument(
                "value",
                format!(
                    "from_delayed: {} produced a {}, declared an array of {}",
                    self.source,
                    v.type_name(),
                    T::DTYPE
                ),
            ));
        };
        if block.shape() != self.shape.as_slice() {
            return Err(RaskError::invalid_argument(
                "shape",
                format!(
                    "from_delayed: {} produced shape {:?}, declared {:?}",
                    self.source,
                    block.shape(),
                    self.shape
                ),
            ));
        }
        Ok(v.clone())
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

const FROM_DELAYED: &str = "rask.array.from_delayed";

fn decode_check_block(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (dtype, shape, source): (&str, Vec<usize>, Key) = decode_params(FROM_DELAYED, params)?;
    with_dtype!(all: FROM_DELAYED, dtype, |T| Ok(Arc::new(CheckBlock::<T> {
        shape,
        source,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(FROM_DELAYED, decode_check_block);

/// A one-block array whose block is the output of task `key` in `layer` (what a
/// `Delayed<ArrayD<T>>` holds), declared to have `shape`. Running checks the declaration:
/// another shape or type is an error naming the argument and the key.
pub fn from_task<T: Element>(layer: Arc<Layer>, key: Key, shape: &[usize]) -> Result<Array<T>> {
    let chunks = Chunks::normalize(
        ChunkSpec::PerAxis(vec![None; shape.len()]),
        shape,
        std::mem::size_of::<T>(),
    )?;
    let mut t = Tokenizer::new("rask.array.from_delayed");
    t.write_key(&key);
    t.write_str(T::DTYPE.name());
    tokenize_shape(&mut t, shape, &chunks);
    let mut b = ArrayBuilder::new("from_delayed", t.finish(), chunks, vec![layer]);
    let idx = vec![0; shape.len()];
    let op = Arc::new(CheckBlock::<T> {
        shape: shape.to_vec(),
        source: key.clone(),
        _t: std::marker::PhantomData,
    });
    b.task(&idx, op, vec![key]);
    Ok(b.finish())
}

/// An array whose blocks are already computed: each block a constant task under the key it
/// had in `like` (what `persist` builds, so later graphs start from the stored blocks).
/// Errors if a value is not a block of `T` with the expected shape.
pub fn from_computed_blocks<T: Element>(like: &Array<T>, values: Vec<Value>) -> Result<Array<T>> {
    if values.len() != like.npartitions() {
        return Err(RaskError::invalid_argument(
            "values",
            format!(
                "{} values for an array of {} blocks",
                values.len(),
                like.npartitions()
            ),
        ));
    }
    let mut tasks = Vec::with_capacity(values.len());
    for (idx, value) in like.chunks().block_indices().zip(values) {
        let key = like.block_key(&idx);
        let block = value.get::<ArrayD<T>>(&key)?;
        let want = like.chunks().block_shape(&idx);
        if block.shape() != want.as_slice() {
            return Err(RaskError::ShapeMismatch(format!(
                "block {key} has shape {:?}, expected {want:?}",
                block.shape()
            )));
        }
        let op: Arc<dyn Op> = Arc::new(rask_graph::Literal::new(value));
        tasks.push(rask_graph::TaskSpec::new(key, op, []));
    }
    Ok(Array::from_layer(
        like.name().clone(),
        like.chunks().clone(),
        Layer::new(tasks, Vec::new()),
    ))
}

/// An array with the keys, chunks and shape of `like` whose blocks come from `ops`, one op
/// without inputs per block in block order: how an array persisted on a cluster points at
/// blocks that stay on the workers. Errors if the count does not match the blocks.
pub fn from_block_ops<T: Element>(like: &Array<T>, ops: Vec<Arc<dyn Op>>) -> Result<Array<T>> {
    if ops.len() != like.npartitions() {
        return Err(RaskError::invalid_argument(
            "ops",
            format!(
                "{} ops for an array of {} blocks",
                ops.len(),
                like.npartitions()
            ),
        ));
    }
    let tasks = like
        .chunks()
        .block_indices()
        .zip(ops)
        .map(|(idx, op)| rask_graph::TaskSpec::new(like.block_key(&idx), op, []))
        .collect();
    Ok(Array::from_layer(
        like.name().clone(),
        like.chunks().clone(),
        Layer::new(tasks, Vec::new()),
    ))
}
