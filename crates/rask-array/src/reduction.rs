//! Reductions: `sum`, `prod`, `min`, `max`, `mean`, `var`, `std`, `argmin`, `argmax`, `any`,
//! `all`, over one axis, several axes, or all of them.
//!
//! # Lowering
//!
//! A reduction becomes a tree of three kinds of task, as in Dask:
//!
//! 1. **chunk** (`rask.array.reduce.chunk`): one task per input block reduces that block
//!    along the reduced axes to a *partial* whose shape is the block's with every reduced axis
//!    of length 1 ("keepdims"). A partial is not always a plain block: `mean` keeps
//!    `(sums, count)`, `var`/`std` keep `(count, mean, M2)`, `argmin`/`argmax` keep
//!    `(values, global indices)`. Each partial type implements [`Data`] with its real size.
//! 2. **combine** (`rask.array.reduce.combine`): neighbouring partials along the reduced
//!    axes are merged in groups, `split_every` at a time in all (split evenly over the reduced
//!    axes that have more than one block, as Dask does: a fan-in of `f` per axis with
//!    `f^k <= split_every`, at least 2). Levels repeat until one partial remains along every
//!    reduced axis. Merging is elementwise, because all partials of a group share the shape
//!    of their non-reduced block.
//! 3. **finalize**: the last combine level also turns the merged partial into the output
//!    block (`mean = sum / count`, `var = M2 / (count - ddof)`, ...) and drops the reduced
//!    axes unless `keepdims`. There is always one such level, even when the input has a single
//!    block along the reduced axes, so every output block is produced the same way.
//!
//! # Memory
//!
//! A chunk task holds its input block plus one partial (the size of the output block for
//! that block: the input block with the reduced axes squeezed to 1; twice that for
//! `argmin`/`argmax` and `mean`'s f64 sums; three arrays' worth for `var`). A chunk task of
//! `var` also makes one f64 temporary the size of its input block (the deviations from the
//! block mean: a two-pass variance inside the block). A combine task holds at most
//! `split_every` partials plus the one it builds, so the peak along the tree is bounded by
//! the fan-in, never by the number of input blocks.
//!
//! # Numerics
//!
//! `var`/`std` never sum squares: each block computes its mean and `M2 = sum((x - mean)^2)`
//! in two passes, and blocks merge with Chan et al.'s parallel formula
//! (`delta = mean_b - mean_a`, `M2 = M2_a + M2_b + delta^2 * n_a * n_b / n`), which stays
//! accurate for data with a large offset (1e9 plus small noise). `argmin`/`argmax` carry
//! global indices, and break ties by the smaller index, so the result is the first occurrence
//! as in NumPy whatever the tree's shape. NaN propagates through `min`/`max` and is the
//! first extreme for `argmin`/`argmax`, as in NumPy.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayView1, Axis, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{
    Data, Key, KeyName, Layer, Op, OpRegistry, TaskSpec, Token, Tokenizer, Value, decode_params,
    encode_params,
};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_key, block_nbytes, block_value, input_block};
use crate::chunks::BlockIndices;
use crate::dtype::with_dtype;
use crate::{Array, Chunks, Element, NumElement};

/// Dask's default fan-in of the combine tree.
pub const DEFAULT_SPLIT_EVERY: usize = 4;

/// Which axes a reduction runs over.
///
/// Converts from one axis (`0`, `1usize`, `-1` for the last), a list of axes (`[0, 2]`,
/// `vec![0, 1]`, `&[0usize, 1][..]`), or [`Axes::All`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// Every axis: the result is 0-d (or all ones with `keepdims`).
    All,
    /// These axes; negative ones count from the end as in NumPy.
    Some(Vec<isize>),
}

impl From<usize> for Axes {
    fn from(a: usize) -> Self {
        Axes::Some(vec![a as isize])
    }
}
impl From<isize> for Axes {
    fn from(a: isize) -> Self {
        Axes::Some(vec![a])
    }
}
impl From<i32> for Axes {
    fn from(a: i32) -> Self {
        Axes::Some(vec![a as isize])
    }
}
impl From<&[usize]> for Axes {
    fn from(a: &[usize]) -> Self {
        Axes::Some(a.iter().map(|&a| a as isize).collect())
    }
}
impl From<Vec<usize>> for Axes {
    fn from(a: Vec<usize>) -> Self {
        Axes::from(a.as_slice())
    }
}
impl From<&[isize]> for Axes {
    fn from(a: &[isize]) -> Self {
        Axes::Some(a.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Axes {
    fn from(a: [usize; N]) -> Self {
        Axes::from(&a[..])
    }
}
impl<const N: usize> From<[i32; N]> for Axes {
    fn from(a: [i32; N]) -> Self {
        Axes::Some(a.iter().map(|&a| a as isize).collect())
    }
}
impl From<Option<usize>> for Axes {
    /// `None` is all axes, as NumPy's `axis=None`.
    fn from(a: Option<usize>) -> Self {
        a.map_or(Axes::All, Axes::from)
    }
}

impl Axes {
    /// The axes as sorted, distinct indices into an array of `ndim` dimensions. Errors name
    /// `axis`: out of range, or repeated.
    pub fn resolve(&self, ndim: usize) -> Result<Vec<usize>> {
        let list = match self {
            Axes::All => return Ok((0..ndim).collect()),
            Axes::Some(list) => list,
        };
        let mut out = Vec::with_capacity(list.len());
        for &a in list {
            let resolved = if a < 0 { a + ndim as isize } else { a };
            if resolved < 0 || resolved >= ndim as isize {
                return Err(RaskError::invalid_argument(
                    "axis",
                    format!("axis {a} is out of range for an array of {ndim} dimensions"),
                ));
            }
            let resolved = resolved as usize;
            if out.contains(&resolved) {
                return Err(RaskError::invalid_argument(
                    "axis",
                    format!("axis {resolved} is repeated in {list:?}"),
                ));
            }
            out.push(resolved);
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// Options of a reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReduceOptions {
    /// Keep the reduced axes with length 1, so the result broadcasts against the input.
    pub keepdims: bool,
    /// Fan-in of the combine tree (at least 2); `None` is [`DEFAULT_SPLIT_EVERY`].
    pub split_every: Option<usize>,
}

impl ReduceOptions {
    fn split_every(&self) -> Result<usize> {
        match self.split_every {
            None => Ok(DEFAULT_SPLIT_EVERY),
            Some(n) if n >= 2 => Ok(n),
            Some(n) => Err(RaskError::invalid_argument(
                "split_every",
                format!("the fan-in of the combine tree must be at least 2, got {n}"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The combine / reduce traits and the generic ops of the tree.

/// What identifies a reduction in keys and op parameters.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Spec {
    pub kind: &'static str,
    pub dtype: &'static str,
    /// `var`/`std` only.
    pub ddof: Option<u64>,
    /// `argmin`/`argmax` over all axes: indices into the flattened array.
    pub flatten: bool,
}

impl Spec {
    fn tokenize(&self, t: &mut Tokenizer) {
        t.write_str(self.kind);
        t.write_str(self.dtype);
        t.write_u64(self.ddof.map_or(u64::MAX, |d| d));
        t.write_u8(self.flatten as u8);
    }
}

/// Merges partials and turns the last one into an output block.
pub(crate) trait Combiner: Send + Sync + 'static {
    type Partial: Data;
    type Out: Element;
    fn spec(&self) -> Spec;
    /// Merges `other` into `acc`; both cover the same output elements.
    fn merge(&self, acc: &mut Self::Partial, other: &Self::Partial);
    /// The output block of a fully merged partial (still with the reduced axes, length 1).
    fn finalize(&self, p: Self::Partial) -> ArrayD<Self::Out>;
    /// The bytes of a partial covering `elems` output elements.
    fn partial_nbytes(&self, elems: usize) -> u64;
}

/// Where a block sits, for reductions that need global positions (`argmin`/`argmax`).
pub(crate) struct BlockCtx<'a> {
    /// Sorted reduced axes.
    pub axes: &'a [usize],
    /// Global start of the block along every axis.
    pub offset: &'a [usize],
    /// The whole array's shape.
    pub shape: &'a [usize],
}

/// A combiner that also knows how to reduce one input block to a partial.
pub(crate) trait Reducer: Combiner {
    type In: Element;
    fn chunk(&self, block: &ArrayD<Self::In>, ctx: &BlockCtx<'_>) -> Self::Partial;
}

#[derive(Serialize)]
struct ChunkParams<'a> {
    spec: Spec,
    axes: &'a [usize],
    offset: &'a [usize],
    shape: &'a [usize],
    out_elems: usize,
}

/// [`Spec`] as decoded: owned strings.
#[derive(Deserialize)]
struct WireSpec {
    kind: String,
    dtype: String,
    ddof: Option<u64>,
    flatten: bool,
}

#[derive(Deserialize)]
struct WireChunkParams {
    spec: WireSpec,
    axes: Vec<usize>,
    offset: Vec<usize>,
    shape: Vec<usize>,
    out_elems: usize,
}

#[derive(Deserialize)]
struct WireCombineParams {
    spec: WireSpec,
    finalize: Option<Vec<usize>>,
    out_elems: usize,
}

const CHUNK: &str = "rask.array.reduce.chunk";
const COMBINE: &str = "rask.array.reduce.combine";

/// What a decoder does with the reducer a spec names: build a chunk or a combine op.
trait WithReducer {
    fn reducer<R: Reducer>(self, r: R) -> Result<Arc<dyn Op>>;
    /// Combine-only kinds (`matmul`'s block sums) have no chunk step.
    fn combiner<C: Combiner>(self, c: C) -> Result<Arc<dyn Op>>;
}

/// Builds the reducer (or combiner) a spec names, for the dtype it names, and hands it to
/// `w`: the one place that maps a spec back to a type, mirroring the public methods.
fn with_reducer(op: &'static str, spec: &WireSpec, w: impl WithReducer) -> Result<Arc<dyn Op>> {
    let bad = |why: String| RaskError::Serialization {
        what: format!("parameters of op `{op}`"),
        message: why,
    };
    let ddof = || {
        spec.ddof
            .map(|d| d as usize)
            .ok_or_else(|| bad(format!("`{}` needs ddof", spec.kind)))
    };
    let dtype = spec.dtype.as_str();
    match spec.kind.as_str() {
        "sum" => with_dtype!(num: op, dtype, |T| w.reducer(SumR::<T>::new())),
        "prod" => with_dtype!(num: op, dtype, |T| w.reducer(ProdR::<T>::new())),
        "any" => with_dtype!(all: op, dtype, |T| w.reducer(AnyR::<T>::new())),
        "all" => with_dtype!(all: op, dtype, |T| w.reducer(AllR::<T>::new())),
        "mean" => with_dtype!(all: op, dtype, |T| w.reducer(MeanR::<T>::new())),
        kind @ ("min" | "max") => with_dtype!(all: op, dtype, |T| w.reducer(ExtremeR::<T> {
            max: kind == "max",
            _t: PhantomData,
        })),
        kind @ ("var" | "std") => {
            let ddof = ddof()?;
            with_dtype!(all: op, dtype, |T| w.reducer(VarR::<T> {
                ddof,
                sqrt: kind == "std",
                _t: PhantomData,
            }))
        }
        kind @ ("argmin" | "argmax") => with_dtype!(all: op, dtype, |T| w.reducer(ArgR::<T> {
            max: kind == "argmax",
            flatten: spec.flatten,
            _t: PhantomData,
        })),
        "matmul" => with_dtype!(op, dtype, [f32, f64, i32, i64], |T| w
            .combiner(crate::linalg::BlockSum::<T>::new())),
        other => Err(bad(format!("unknown reduction `{other}`"))),
    }
}

fn decode_chunk(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: WireChunkParams = decode_params(CHUNK, params)?;
    struct Chunk {
        axes: Vec<usize>,
        offset: Vec<usize>,
        shape: Vec<usize>,
        out_elems: usize,
    }
    impl WithReducer for Chunk {
        fn reducer<R: Reducer>(self, r: R) -> Result<Arc<dyn Op>> {
            let n = self.shape.len();
            // `execute` indexes these by axis: lengths that do not fit are refused here.
            if self.offset.len() != n || self.axes.iter().any(|&a| a >= n) {
                return Err(RaskError::Serialization {
                    what: format!("parameters of op `{CHUNK}`"),
                    message: format!(
                        "axes {:?} and offset {:?} do not fit shape {:?}",
                        self.axes, self.offset, self.shape
                    ),
                });
            }
            let label = format!("{}-chunk", r.spec().kind);
            Ok(Arc::new(ChunkOp {
                r: Arc::new(r),
                label,
                axes: self.axes,
                offset: self.offset,
                shape: self.shape,
                out_elems: self.out_elems,
            }))
        }
        fn combiner<C: Combiner>(self, c: C) -> Result<Arc<dyn Op>> {
            Err(RaskError::Serialization {
                what: format!("parameters of op `{CHUNK}`"),
                message: format!("`{}` has no chunk step", c.spec().kind),
            })
        }
    }
    let WireChunkParams {
        spec,
        axes,
        offset,
        shape,
        out_elems,
    } = p;
    let chunk = Chunk {
        axes,
        offset,
        shape,
        out_elems,
    };
    with_reducer(CHUNK, &spec, chunk)
}
rask_graph::register_op!(CHUNK, decode_chunk);

fn decode_combine(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: WireCombineParams = decode_params(COMBINE, params)?;
    struct Combine(Option<Vec<usize>>, usize);
    impl WithReducer for Combine {
        fn reducer<R: Reducer>(self, r: R) -> Result<Arc<dyn Op>> {
            self.combiner(r)
        }
        fn combiner<C: Combiner>(self, c: C) -> Result<Arc<dyn Op>> {
            let kind = c.spec().kind;
            let label = match self.0 {
                Some(_) => format!("{kind}-aggregate"),
                None => format!("{kind}-combine"),
            };
            Ok(Arc::new(CombineOp {
                r: Arc::new(c),
                label,
                finalize: self.0,
                out_elems: self.1,
            }))
        }
    }
    with_reducer(COMBINE, &p.spec, Combine(p.finalize, p.out_elems))
}
rask_graph::register_op!(COMBINE, decode_combine);

/// Reduces one input block to a partial.
struct ChunkOp<R> {
    r: Arc<R>,
    label: String,
    axes: Vec<usize>,
    offset: Vec<usize>,
    shape: Vec<usize>,
    out_elems: usize,
}

impl<R: Reducer> Op for ChunkOp<R> {
    fn name(&self) -> &str {
        "rask.array.reduce.chunk"
    }
    fn label(&self) -> &str {
        &self.label
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &ChunkParams {
                spec: self.r.spec(),
                axes: &self.axes,
                offset: &self.offset,
                shape: &self.shape,
                out_elems: self.out_elems,
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let block = input_block::<R::In>(inputs, 0, self.name())?;
        let ctx = BlockCtx {
            axes: &self.axes,
            offset: &self.offset,
            shape: &self.shape,
        };
        Ok(Value::new(self.r.chunk(block, &ctx)))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(self.r.partial_nbytes(self.out_elems))
    }
}

#[derive(Serialize)]
struct CombineParams<'a> {
    spec: Spec,
    /// `Some(axes to drop)` on the last level, which finalizes.
    finalize: Option<&'a [usize]>,
    /// Output elements the task covers (its size projection).
    out_elems: usize,
}

/// Merges its inputs' partials; on the last level, finalizes to an output block.
struct CombineOp<R> {
    r: Arc<R>,
    label: String,
    /// `Some(array axes to drop after finalizing)` on the last level.
    finalize: Option<Vec<usize>>,
    /// Output elements this task covers.
    out_elems: usize,
}

impl<R: Combiner> Op for CombineOp<R> {
    fn name(&self) -> &str {
        "rask.array.reduce.combine"
    }
    fn label(&self) -> &str {
        &self.label
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &CombineParams {
                spec: self.r.spec(),
                finalize: self.finalize.as_deref(),
                out_elems: self.out_elems,
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let what = |i: usize| format!("input {i} of `{}`", self.name());
        let first = inputs.first().ok_or_else(|| {
            RaskError::invalid_argument("inputs", format!("op `{}` needs inputs", self.name()))
        })?;
        let mut acc = first.get::<R::Partial>(&what(0))?.clone();
        for (i, v) in inputs.iter().enumerate().skip(1) {
            self.r.merge(&mut acc, v.get::<R::Partial>(&what(i))?);
        }
        match &self.finalize {
            None => Ok(Value::new(acc)),
            Some(drop) => {
                let mut out = self.r.finalize(acc);
                // Descending, so earlier removals do not shift later axes.
                for &ax in drop.iter().rev() {
                    if ax >= out.ndim() || out.shape()[ax] != 1 {
                        return Err(RaskError::ShapeMismatch(format!(
                            "`{}` drops axis {ax} of a block of shape {:?}",
                            self.name(),
                            out.shape()
                        )));
                    }
                    out = out.index_axis_move(Axis(ax), 0);
                }
                Ok(block_value(out))
            }
        }
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(match self.finalize {
            Some(_) => (self.out_elems * std::mem::size_of::<R::Out>()) as u64,
            None => self.r.partial_nbytes(self.out_elems),
        })
    }
}

/// The per-axis fan-in: the largest `f >= 2` with `f^k <= split_every`, where `k` is the
/// number of reduced axes that still have more than one block (Dask splits `split_every`
/// over the reduced axes the same way).
fn per_axis_fan_in(split_every: usize, k: usize) -> usize {
    if k <= 1 {
        return split_every;
    }
    let mut f = 2usize;
    while (f + 1)
        .checked_pow(k as u32)
        .is_some_and(|p| p <= split_every)
    {
        f += 1;
    }
    f
}

/// A grid of partials to be merged along `reduced` grid axes.
pub(crate) struct TreeInput {
    pub layer: Arc<Layer>,
    pub name: KeyName,
    /// Blocks along each grid axis.
    pub counts: Vec<usize>,
}

/// Builds the combine levels over `input` and the final, finalizing level, which produces
/// the array with `out_chunks`.
///
/// `reduced` are grid axes; `keepdims` says whether they stay in the output block index;
/// `drop_axes` are the array axes the finalized block loses; `out_elems(grid index)` is the
/// number of output elements under one grid position.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tree_combine<C: Combiner, O: Element>(
    c: Arc<C>,
    input: TreeInput,
    reduced: &[usize],
    split_every: usize,
    keepdims: bool,
    drop_axes: Vec<usize>,
    out_chunks: Chunks,
    token: Token,
    out_elems: impl Fn(&[usize]) -> usize,
) -> Array<O> {
    let kind = c.spec().kind;
    let TreeInput {
        mut layer,
        mut name,
        mut counts,
    } = input;
    let mut level = 0u64;
    loop {
        let k = reduced.iter().filter(|&&ax| counts[ax] > 1).count();
        let f = per_axis_fan_in(split_every, k);
        let mut new_counts = counts.clone();
        for &ax in reduced {
            new_counts[ax] = counts[ax].div_ceil(f);
        }
        let last = reduced.iter().all(|&ax| new_counts[ax] == 1);
        let groups = BlockIndices::new(new_counts.clone()).map(|out_idx| {
            // The neighbours merged into `out_idx`: a box of at most `f` per reduced axis.
            let ranges: Vec<std::ops::Range<usize>> = (0..counts.len())
                .map(|ax| {
                    if reduced.contains(&ax) {
                        out_idx[ax] * f..((out_idx[ax] + 1) * f).min(counts[ax])
                    } else {
                        out_idx[ax]..out_idx[ax] + 1
                    }
                })
                .collect();
            let deps: Vec<Key> = BlockIndices::new(ranges.iter().map(|r| r.len()).collect())
                .map(|rel| {
                    let idx: Vec<usize> =
                        rel.iter().zip(&ranges).map(|(i, r)| r.start + i).collect();
                    block_key(&name, &idx)
                })
                .collect();
            (out_idx, deps)
        });
        if last {
            let mut b = ArrayBuilder::new(kind, token, out_chunks, vec![layer]);
            for (out_idx, deps) in groups {
                let op = Arc::new(CombineOp {
                    r: c.clone(),
                    label: format!("{kind}-aggregate"),
                    finalize: Some(drop_axes.clone()),
                    out_elems: out_elems(&out_idx),
                });
                let key_idx: Vec<usize> = if keepdims {
                    out_idx
                } else {
                    out_idx
                        .iter()
                        .enumerate()
                        .filter(|(ax, _)| !reduced.contains(ax))
                        .map(|(_, &i)| i)
                        .collect()
                };
                b.task(&key_idx, op, deps);
            }
            return b.finish();
        }
        let level_token = rask_graph::tokenize("rask.array.reduce.combine", |t| {
            t.write_token(token);
            t.write_u64(level);
        });
        let level_name = KeyName::from_token(&format!("{kind}-combine"), level_token);
        let tasks: Vec<TaskSpec> = groups
            .map(|(out_idx, deps)| {
                let op = Arc::new(CombineOp {
                    r: c.clone(),
                    label: format!("{kind}-combine"),
                    finalize: None,
                    out_elems: out_elems(&out_idx),
                });
                TaskSpec::new(block_key(&level_name, &out_idx), op, deps)
            })
            .collect();
        layer = Layer::new(tasks, vec![layer]);
        name = level_name;
        counts = new_counts;
        level += 1;
    }
}

/// Lowers reducer `r` over `axes` of `x`.
fn reduce<R: Reducer>(
    x: &Array<R::In>,
    r: R,
    axes: Vec<usize>,
    opts: &ReduceOptions,
) -> Result<Array<R::Out>> {
    let split_every = opts.split_every()?;
    let spec = r.spec();
    let r = Arc::new(r);
    let mut t = Tokenizer::new("rask.array.reduce");
    spec.tokenize(&mut t);
    t.write_str(x.name().as_str());
    t.write_u64(axes.len() as u64);
    for &a in &axes {
        t.write_u64(a as u64);
    }
    t.write_u8(opts.keepdims as u8);
    t.write_u64(split_every as u64);
    let token = t.finish();

    let chunks = x.chunks();
    let shape = x.shape().to_vec();
    // Output elements under a grid position: the non-reduced block lengths.
    let out_elems = |idx: &[usize]| -> usize {
        idx.iter()
            .enumerate()
            .filter(|(ax, _)| !axes.contains(ax))
            .map(|(ax, &i)| chunks.sizes()[ax][i])
            .product()
    };

    let chunk_name = KeyName::from_token(&format!("{}-chunk", spec.kind), token);
    let offsets: Vec<Vec<usize>> = (0..x.ndim()).map(|ax| chunks.offsets(ax)).collect();
    let tasks: Vec<TaskSpec> = chunks
        .block_indices()
        .map(|idx| {
            let op = Arc::new(ChunkOp {
                r: r.clone(),
                label: format!("{}-chunk", spec.kind),
                axes: axes.clone(),
                offset: idx
                    .iter()
                    .enumerate()
                    .map(|(ax, &i)| offsets[ax][i])
                    .collect(),
                shape: shape.clone(),
                out_elems: out_elems(&idx),
            });
            TaskSpec::new(block_key(&chunk_name, &idx), op, vec![x.block_key(&idx)])
        })
        .collect();
    let layer = Layer::new(tasks, vec![x.layer().clone()]);

    let out_sizes: Vec<Vec<usize>> = chunks
        .sizes()
        .iter()
        .enumerate()
        .filter(|(ax, _)| opts.keepdims || !axes.contains(ax))
        .map(|(ax, s)| {
            if axes.contains(&ax) {
                vec![1]
            } else {
                s.clone()
            }
        })
        .collect();
    let drop_axes = if opts.keepdims {
        Vec::new()
    } else {
        axes.clone()
    };
    Ok(tree_combine(
        r,
        TreeInput {
            layer,
            name: chunk_name,
            counts: x.numblocks(),
        },
        &axes,
        split_every,
        opts.keepdims,
        drop_axes,
        Chunks::from_sizes(out_sizes),
        token,
        out_elems,
    ))
}

/// Errors when a reduction without an identity would run over no elements.
fn check_nonempty<T: Element>(x: &Array<T>, axes: &[usize], what: &str) -> Result<()> {
    if axes.iter().any(|&ax| x.shape()[ax] == 0) {
        return Err(RaskError::invalid_argument(
            "axis",
            format!(
                "zero-size array to reduction operation {what} which has no identity \
                 (shape {:?}, axes {axes:?})",
                x.shape()
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Block kernels.

/// Reduces `block` along the sorted `axes`, keeping them with length 1. `first` folds a
/// lane of the input along the first (highest) axis; `rest` folds lanes of partial results
/// along the others.
fn reduce_block<T: Clone, A: Clone>(
    block: &ArrayD<T>,
    axes: &[usize],
    first: impl Fn(ArrayView1<'_, T>) -> A,
    rest: impl Fn(ArrayView1<'_, A>) -> A,
) -> ArrayD<A> {
    let Some((&top, others)) = axes.split_last() else {
        // No axes: every element is its own lane of length 1.
        return block.map(|x| first(ndarray::aview1(std::slice::from_ref(x))));
    };
    // Highest axis first, so the lower axes' indices stay valid.
    let mut out = block.map_axis(Axis(top), &first);
    for &ax in others.iter().rev() {
        out = out.map_axis(Axis(ax), &rest);
    }
    for &ax in axes {
        out.insert_axis_inplace(Axis(ax));
    }
    out
}

/// Reduces `block` along the sorted `axes` with an element-wise fold, keeping them with
/// length 1. Unlike [`reduce_block`], memory is visited in order: along the last axis the
/// lanes are contiguous and folded one by one; along any other axis whole sub-arrays are
/// folded into the accumulator row by row. (Walking a lane across rows touches a new cache
/// line per element, several times slower on big blocks.)
fn fold_block<T: Copy, A: Copy>(
    block: &ArrayD<T>,
    axes: &[usize],
    init: A,
    f: impl Fn(A, T) -> A + Copy,
    merge: impl Fn(A, A) -> A + Copy,
) -> ArrayD<A> {
    let Some((&top, others)) = axes.split_last() else {
        return block.mapv(|x| f(init, x));
    };
    let mut out: ArrayD<A> = if top + 1 == block.ndim() {
        block.map_axis(Axis(top), |lane| lane.iter().fold(init, |a, &x| f(a, x)))
    } else {
        block.fold_axis(Axis(top), init, |a, &x| f(*a, x))
    };
    for &ax in others.iter().rev() {
        out = if ax + 1 == out.ndim() {
            out.map_axis(Axis(ax), |lane| lane.iter().fold(init, |a, &x| merge(a, x)))
        } else {
            out.fold_axis(Axis(ax), init, |a, &x| merge(*a, x))
        };
    }
    for &ax in axes {
        out.insert_axis_inplace(Axis(ax));
    }
    out
}

/// True for NaN (the only value not equal to itself), without needing a float bound.
fn is_nan<T: PartialOrd>(x: &T) -> bool {
    x.partial_cmp(x).is_none()
}

/// Whether `x` replaces `acc` as the running maximum (or minimum when `!max`). NaN wins and
/// then stays, as NumPy propagates it.
fn replaces<T: PartialOrd>(x: &T, acc: &T, max: bool) -> bool {
    if is_nan(acc) {
        return false;
    }
    is_nan(x) || if max { x > acc } else { x < acc }
}

fn extreme_lane<T: Copy + PartialOrd + Default>(lane: ArrayView1<'_, T>, max: bool) -> T {
    let mut it = lane.iter();
    // Lanes are never empty: reductions without identity over no elements are refused
    // when the graph is built.
    let mut acc = it.next().copied().unwrap_or_default();
    for x in it {
        if replaces(x, &acc, max) {
            acc = *x;
        }
    }
    acc
}

fn merge_elementwise<A: Copy>(acc: &mut ArrayD<A>, other: &ArrayD<A>, f: impl Fn(A, A) -> A) {
    acc.zip_mut_with(other, |a, &b| *a = f(*a, b));
}

macro_rules! reducer_struct {
    ($name:ident) => {
        pub(crate) struct $name<T>(PhantomData<fn() -> T>);
        impl<T> $name<T> {
            fn new() -> Self {
                $name(PhantomData)
            }
        }
    };
}

reducer_struct!(SumR);
reducer_struct!(ProdR);
reducer_struct!(AnyR);
reducer_struct!(AllR);
reducer_struct!(MeanR);

fn spec_of<T: Element>(kind: &'static str) -> Spec {
    Spec {
        kind,
        dtype: T::DTYPE.name(),
        ddof: None,
        flatten: false,
    }
}

impl<T: NumElement> Combiner for SumR<T> {
    type Partial = ArrayD<T>;
    type Out = T;
    fn spec(&self) -> Spec {
        spec_of::<T>("sum")
    }
    fn merge(&self, acc: &mut ArrayD<T>, other: &ArrayD<T>) {
        merge_elementwise(acc, other, T::add_wrapping);
    }
    fn finalize(&self, p: ArrayD<T>) -> ArrayD<T> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<T>(&[elems])
    }
}
impl<T: NumElement> Reducer for SumR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArrayD<T> {
        fold_block(block, ctx.axes, T::zero(), T::add_wrapping, T::add_wrapping)
    }
}

impl<T: NumElement> Combiner for ProdR<T> {
    type Partial = ArrayD<T>;
    type Out = T;
    fn spec(&self) -> Spec {
        spec_of::<T>("prod")
    }
    fn merge(&self, acc: &mut ArrayD<T>, other: &ArrayD<T>) {
        merge_elementwise(acc, other, T::mul_wrapping);
    }
    fn finalize(&self, p: ArrayD<T>) -> ArrayD<T> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<T>(&[elems])
    }
}
impl<T: NumElement> Reducer for ProdR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArrayD<T> {
        fold_block(block, ctx.axes, T::one(), T::mul_wrapping, T::mul_wrapping)
    }
}

/// `min` (`max == false`) or `max`.
pub(crate) struct ExtremeR<T> {
    max: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Combiner for ExtremeR<T> {
    type Partial = ArrayD<T>;
    type Out = T;
    fn spec(&self) -> Spec {
        spec_of::<T>(if self.max { "max" } else { "min" })
    }
    fn merge(&self, acc: &mut ArrayD<T>, other: &ArrayD<T>) {
        let max = self.max;
        merge_elementwise(acc, other, |a, b| if replaces(&b, &a, max) { b } else { a });
    }
    fn finalize(&self, p: ArrayD<T>) -> ArrayD<T> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<T>(&[elems])
    }
}
impl<T: Element> Reducer for ExtremeR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArrayD<T> {
        let max = self.max;
        let f = |l: ArrayView1<'_, T>| extreme_lane(l, max);
        reduce_block(block, ctx.axes, f, f)
    }
}

impl<T: Element> Combiner for AnyR<T> {
    type Partial = ArrayD<bool>;
    type Out = bool;
    fn spec(&self) -> Spec {
        spec_of::<T>("any")
    }
    fn merge(&self, acc: &mut ArrayD<bool>, other: &ArrayD<bool>) {
        merge_elementwise(acc, other, |a, b| a || b);
    }
    fn finalize(&self, p: ArrayD<bool>) -> ArrayD<bool> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<bool>(&[elems])
    }
}
impl<T: Element> Reducer for AnyR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArrayD<bool> {
        let zero = T::default();
        reduce_block(
            block,
            ctx.axes,
            |l| l.iter().any(|x| *x != zero),
            |l| l.iter().any(|&b| b),
        )
    }
}

impl<T: Element> Combiner for AllR<T> {
    type Partial = ArrayD<bool>;
    type Out = bool;
    fn spec(&self) -> Spec {
        spec_of::<T>("all")
    }
    fn merge(&self, acc: &mut ArrayD<bool>, other: &ArrayD<bool>) {
        merge_elementwise(acc, other, |a, b| a && b);
    }
    fn finalize(&self, p: ArrayD<bool>) -> ArrayD<bool> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<bool>(&[elems])
    }
}
impl<T: Element> Reducer for AllR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArrayD<bool> {
        let zero = T::default();
        reduce_block(
            block,
            ctx.axes,
            |l| l.iter().all(|x| *x != zero),
            |l| l.iter().all(|&b| b),
        )
    }
}

/// The number of input elements behind each element of a block's partial.
fn reduced_count(shape: &[usize], axes: &[usize]) -> u64 {
    axes.iter().map(|&ax| shape[ax] as u64).product()
}

/// `mean`'s partial: f64 sums and how many elements each covers (the same for every output
/// element of a block, so one number).
#[derive(Clone, Debug)]
pub struct SumCount {
    pub sum: ArrayD<f64>,
    pub count: u64,
}

impl Data for SumCount {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.sum.len() * 8
    }
    // Partials cross the wire between combine levels on different workers, and spill.
    fn spill(&self, w: &mut dyn std::io::Write) -> std::io::Result<bool> {
        Ok(self.count.spill(w)? && self.sum.spill(w)?)
    }
    fn unspill(r: &mut dyn std::io::Read) -> std::io::Result<Self> {
        let count = u64::unspill(r)?;
        let sum = ArrayD::<f64>::unspill(r)?;
        Ok(SumCount { sum, count })
    }
}

impl<T: Element> Combiner for MeanR<T> {
    type Partial = SumCount;
    type Out = f64;
    fn spec(&self) -> Spec {
        spec_of::<T>("mean")
    }
    fn merge(&self, acc: &mut SumCount, other: &SumCount) {
        merge_elementwise(&mut acc.sum, &other.sum, |a, b| a + b);
        acc.count += other.count;
    }
    fn finalize(&self, p: SumCount) -> ArrayD<f64> {
        // 0 / 0 is NaN, NumPy's mean of nothing.
        let n = p.count as f64;
        p.sum.mapv(|s| s / n)
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        (std::mem::size_of::<SumCount>() + elems * 8) as u64
    }
}
impl<T: Element> Reducer for MeanR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> SumCount {
        SumCount {
            sum: fold_block(block, ctx.axes, 0.0, |a, x: T| a + x.to_f64(), |a, b| a + b),
            count: reduced_count(block.shape(), ctx.axes),
        }
    }
}

/// `var`/`std`'s partial: count, means and sums of squared deviations from the mean (M2).
#[derive(Clone, Debug)]
pub struct Moments {
    pub count: u64,
    pub mean: ArrayD<f64>,
    pub m2: ArrayD<f64>,
}

impl Data for Moments {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + (self.mean.len() + self.m2.len()) * 8
    }
    fn spill(&self, w: &mut dyn std::io::Write) -> std::io::Result<bool> {
        Ok(self.count.spill(w)? && self.mean.spill(w)? && self.m2.spill(w)?)
    }
    fn unspill(r: &mut dyn std::io::Read) -> std::io::Result<Self> {
        let count = u64::unspill(r)?;
        let mean = ArrayD::<f64>::unspill(r)?;
        let m2 = ArrayD::<f64>::unspill(r)?;
        if mean.shape() != m2.shape() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "moments: mean and M2 differ in shape",
            ));
        }
        Ok(Moments { count, mean, m2 })
    }
}

/// `var`, or `std` when `sqrt`.
pub(crate) struct VarR<T> {
    ddof: usize,
    sqrt: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Combiner for VarR<T> {
    type Partial = Moments;
    type Out = f64;
    fn spec(&self) -> Spec {
        Spec {
            ddof: Some(self.ddof as u64),
            ..spec_of::<T>(if self.sqrt { "std" } else { "var" })
        }
    }
    fn merge(&self, a: &mut Moments, b: &Moments) {
        if b.count == 0 {
            return;
        }
        if a.count == 0 {
            *a = b.clone();
            return;
        }
        // Chan, Golub & LeVeque's pairwise update.
        let (na, nb) = (a.count as f64, b.count as f64);
        let n = na + nb;
        ndarray::Zip::from(&mut a.mean)
            .and(&mut a.m2)
            .and(&b.mean)
            .and(&b.m2)
            .for_each(|ma, m2a, &mb, &m2b| {
                let delta = mb - *ma;
                *ma += delta * nb / n;
                *m2a += m2b + delta * delta * na * nb / n;
            });
        a.count += b.count;
    }
    fn finalize(&self, p: Moments) -> ArrayD<f64> {
        // NumPy divides by max(n - ddof, 0).
        let denom = (p.count as f64 - self.ddof as f64).max(0.0);
        let sqrt = self.sqrt;
        p.m2.mapv(|m2| {
            let v = m2 / denom;
            if sqrt { v.sqrt() } else { v }
        })
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        (std::mem::size_of::<Moments>() + elems * 16) as u64
    }
}
impl<T: Element> Reducer for VarR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> Moments {
        let count = reduced_count(block.shape(), ctx.axes);
        let sum = |l: ArrayView1<'_, f64>| l.sum();
        let values = block.mapv(|x| x.to_f64());
        let mut mean = reduce_block(&values, ctx.axes, sum, sum);
        if count > 0 {
            let n = count as f64;
            mean.mapv_inplace(|s| s / n);
        }
        // Second pass: squared deviations from the block mean (broadcast over the reduced
        // axes, which `mean` keeps with length 1).
        let dev = (&values - &mean).mapv(|d| d * d);
        let m2 = reduce_block(&dev, ctx.axes, sum, sum);
        Moments { count, mean, m2 }
    }
}

/// `argmin`/`argmax`'s partial: the extreme values so far and their global indices.
#[derive(Clone, Debug)]
pub struct ArgPartial<T> {
    pub value: ArrayD<T>,
    pub index: ArrayD<i64>,
}

impl<T: Element> Data for ArgPartial<T> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.value.len() * (std::mem::size_of::<T>() + 8)
    }
    fn spill(&self, w: &mut dyn std::io::Write) -> std::io::Result<bool> {
        Ok(self.value.spill(w)? && self.index.spill(w)?)
    }
    fn unspill(r: &mut dyn std::io::Read) -> std::io::Result<Self> {
        let value = ArrayD::<T>::unspill(r)?;
        let index = ArrayD::<i64>::unspill(r)?;
        if value.shape() != index.shape() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "arg partial: values and indices differ in shape",
            ));
        }
        Ok(ArgPartial { value, index })
    }
}

/// `argmin` (`max == false`) or `argmax`, along one axis or over the flattened array.
pub(crate) struct ArgR<T> {
    max: bool,
    flatten: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> ArgR<T> {
    /// Whether `(x, i)` beats the current `(acc, j)`: a stricter extreme, or an equal one at a
    /// smaller index (NumPy's first occurrence), NaN counting as the most extreme. Being a
    /// total order on (value, index), the tree's grouping cannot change the result.
    fn better(&self, x: &T, i: i64, acc: &T, j: i64) -> bool {
        if j < 0 {
            return true;
        }
        match (is_nan(x), is_nan(acc)) {
            (true, true) => i < j,
            (true, false) => true,
            (false, true) => false,
            (false, false) => {
                if self.max {
                    x > acc || (x == acc && i < j)
                } else {
                    x < acc || (x == acc && i < j)
                }
            }
        }
    }
}

impl<T: Element> Combiner for ArgR<T> {
    type Partial = ArgPartial<T>;
    type Out = i64;
    fn spec(&self) -> Spec {
        Spec {
            flatten: self.flatten,
            ..spec_of::<T>(if self.max { "argmax" } else { "argmin" })
        }
    }
    fn merge(&self, acc: &mut ArgPartial<T>, other: &ArgPartial<T>) {
        ndarray::Zip::from(&mut acc.value)
            .and(&mut acc.index)
            .and(&other.value)
            .and(&other.index)
            .for_each(|v, j, x, &i| {
                if self.better(x, i, v, *j) {
                    *v = *x;
                    *j = i;
                }
            });
    }
    fn finalize(&self, p: ArgPartial<T>) -> ArrayD<i64> {
        p.index
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        (std::mem::size_of::<ArgPartial<T>>() + elems * (std::mem::size_of::<T>() + 8)) as u64
    }
}
impl<T: Element> Reducer for ArgR<T> {
    type In = T;
    fn chunk(&self, block: &ArrayD<T>, ctx: &BlockCtx<'_>) -> ArgPartial<T> {
        let mut out_shape = block.shape().to_vec();
        for &ax in ctx.axes {
            out_shape[ax] = 1;
        }
        let mut value = ArrayD::<T>::default(IxDyn(&out_shape));
        let mut index = ArrayD::<i64>::from_elem(IxDyn(&out_shape), -1);
        let mut pos = IxDyn(&out_shape);
        for (idx, x) in block.indexed_iter() {
            let global = if self.flatten {
                // Row-major position in the whole array.
                (0..block.ndim()).fold(0i64, |acc, ax| {
                    acc * ctx.shape[ax] as i64 + (ctx.offset[ax] + idx[ax]) as i64
                })
            } else {
                let ax = ctx.axes[0];
                (ctx.offset[ax] + idx[ax]) as i64
            };
            for ax in 0..block.ndim() {
                pos[ax] = if ctx.axes.contains(&ax) { 0 } else { idx[ax] };
            }
            if self.better(x, global, &value[&pos], index[&pos]) {
                value[&pos] = *x;
                index[&pos] = global;
            }
        }
        ArgPartial { value, index }
    }
}

// ---------------------------------------------------------------------------------------
// The public methods.

impl<T: NumElement> Array<T> {
    /// Sum over `axes`, in the array's dtype (integers wrap like NumPy's only in release
    /// builds; debug builds check overflow).
    ///
    /// ```
    /// use rask::prelude::*;
    /// use rask::array::{self, Axes, ReduceOptions};
    ///
    /// let x = array::ones::<i64>(&[4, 6], 3)?;
    /// assert_eq!(x.sum(Axes::All)?.compute()?[[]], 24);
    /// assert_eq!(x.sum(0)?.shape(), &[6]);
    /// let opts = ReduceOptions { keepdims: true, split_every: Some(2) };
    /// assert_eq!(x.sum_with([0, 1], opts)?.shape(), &[1, 1]);
    /// assert_eq!(x.mean(-1)?.compute()?.as_slice(), Some(&[1.0; 4][..]));
    /// # Ok::<(), rask::RaskError>(())
    /// ```
    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Array<T>> {
        self.sum_with(axes, ReduceOptions::default())
    }
    pub fn sum_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<T>> {
        let axes = axes.into().resolve(self.ndim())?;
        reduce(self, SumR::new(), axes, &opts)
    }
    /// Product over `axes`, in the array's dtype.
    pub fn prod(&self, axes: impl Into<Axes>) -> Result<Array<T>> {
        self.prod_with(axes, ReduceOptions::default())
    }
    pub fn prod_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<T>> {
        let axes = axes.into().resolve(self.ndim())?;
        reduce(self, ProdR::new(), axes, &opts)
    }
}

impl<T: Element> Array<T> {
    /// Minimum over `axes`; NaN propagates. Errors (naming `axis`) over no elements.
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Array<T>> {
        self.min_with(axes, ReduceOptions::default())
    }
    pub fn min_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<T>> {
        self.extreme(axes.into(), opts, false)
    }
    /// Maximum over `axes`; NaN propagates. Errors (naming `axis`) over no elements.
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Array<T>> {
        self.max_with(axes, ReduceOptions::default())
    }
    pub fn max_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<T>> {
        self.extreme(axes.into(), opts, true)
    }

    fn extreme(&self, axes: Axes, opts: ReduceOptions, max: bool) -> Result<Array<T>> {
        let axes = axes.resolve(self.ndim())?;
        check_nonempty(self, &axes, if max { "maximum" } else { "minimum" })?;
        let r = ExtremeR {
            max,
            _t: PhantomData,
        };
        reduce(self, r, axes, &opts)
    }

    /// Arithmetic mean over `axes`, in f64 (NaN over no elements, as NumPy).
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Array<f64>> {
        self.mean_with(axes, ReduceOptions::default())
    }
    pub fn mean_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<f64>> {
        let axes = axes.into().resolve(self.ndim())?;
        reduce(self, MeanR::new(), axes, &opts)
    }

    /// Variance over `axes` with `ddof` delta degrees of freedom (divides by `n - ddof`), in
    /// f64, merged with a numerically stable parallel formula.
    pub fn var(&self, axes: impl Into<Axes>, ddof: usize) -> Result<Array<f64>> {
        self.var_with(axes, ddof, ReduceOptions::default())
    }
    pub fn var_with(
        &self,
        axes: impl Into<Axes>,
        ddof: usize,
        opts: ReduceOptions,
    ) -> Result<Array<f64>> {
        self.moments(axes.into(), ddof, opts, false)
    }
    /// Standard deviation: the square root of [`Array::var`].
    pub fn std(&self, axes: impl Into<Axes>, ddof: usize) -> Result<Array<f64>> {
        self.std_with(axes, ddof, ReduceOptions::default())
    }
    pub fn std_with(
        &self,
        axes: impl Into<Axes>,
        ddof: usize,
        opts: ReduceOptions,
    ) -> Result<Array<f64>> {
        self.moments(axes.into(), ddof, opts, true)
    }

    fn moments(
        &self,
        axes: Axes,
        ddof: usize,
        opts: ReduceOptions,
        sqrt: bool,
    ) -> Result<Array<f64>> {
        let axes = axes.resolve(self.ndim())?;
        let r = VarR {
            ddof,
            sqrt,
            _t: PhantomData,
        };
        reduce(self, r, axes, &opts)
    }

    /// Global indices (i64) of the minimum along one axis, or into the flattened array for
    /// [`Axes::All`]; ties give the first occurrence. More than one axis is an error naming
    /// `axis`, as in NumPy.
    pub fn argmin(&self, axes: impl Into<Axes>) -> Result<Array<i64>> {
        self.argmin_with(axes, ReduceOptions::default())
    }
    pub fn argmin_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<i64>> {
        self.arg(axes.into(), opts, false)
    }
    /// Like [`Array::argmin`], for the maximum.
    pub fn argmax(&self, axes: impl Into<Axes>) -> Result<Array<i64>> {
        self.argmax_with(axes, ReduceOptions::default())
    }
    pub fn argmax_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<i64>> {
        self.arg(axes.into(), opts, true)
    }

    fn arg(&self, axes: Axes, opts: ReduceOptions, max: bool) -> Result<Array<i64>> {
        let what = if max { "argmax" } else { "argmin" };
        let flatten = axes == Axes::All;
        let resolved = axes.resolve(self.ndim())?;
        if !flatten && resolved.len() != 1 {
            return Err(RaskError::invalid_argument(
                "axis",
                format!("{what} takes one axis or all axes, got {resolved:?}"),
            ));
        }
        // Like NumPy: an error only when some output would come from no elements.
        if (flatten && self.size() == 0) || resolved.iter().any(|&ax| self.shape()[ax] == 0) {
            return Err(RaskError::invalid_argument(
                "axis",
                format!(
                    "attempt to get {what} of an empty sequence (shape {:?})",
                    self.shape()
                ),
            ));
        }
        let r = ArgR {
            max,
            flatten,
            _t: PhantomData,
        };
        reduce(self, r, resolved, &opts)
    }

    /// Whether any element over `axes` is nonzero (`true`, nonzero numbers).
    pub fn any(&self, axes: impl Into<Axes>) -> Result<Array<bool>> {
        self.any_with(axes, ReduceOptions::default())
    }
    pub fn any_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<bool>> {
        let axes = axes.into().resolve(self.ndim())?;
        reduce(self, AnyR::new(), axes, &opts)
    }
    /// Whether every element over `axes` is nonzero (true over no elements).
    pub fn all(&self, axes: impl Into<Axes>) -> Result<Array<bool>> {
        self.all_with(axes, ReduceOptions::default())
    }
    pub fn all_with(&self, axes: impl Into<Axes>, opts: ReduceOptions) -> Result<Array<bool>> {
        let axes = axes.into().resolve(self.ndim())?;
        reduce(self, AllR::new(), axes, &opts)
    }
}

impl fmt::Display for Axes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Axes::All => f.write_str("all"),
            Axes::Some(v) => write!(f, "{v:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_splits_over_axes() {
        assert_eq!(per_axis_fan_in(4, 1), 4);
        assert_eq!(per_axis_fan_in(4, 2), 2);
        assert_eq!(per_axis_fan_in(9, 2), 3);
        assert_eq!(per_axis_fan_in(8, 3), 2);
        assert_eq!(per_axis_fan_in(2, 3), 2);
    }

    #[test]
    fn axes_resolve() {
        assert_eq!(Axes::from(-1).resolve(3).unwrap(), vec![2]);
        assert_eq!(Axes::from([2, 0]).resolve(3).unwrap(), vec![0, 2]);
        assert!(Axes::from(3usize).resolve(2).is_err());
        assert!(Axes::from([1, 1]).resolve(2).is_err());
    }
}
