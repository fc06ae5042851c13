//! Changing the chunks of an array, optionally within a memory bound per task.
//!
//! # One stage
//!
//! Each output block is assembled from the pieces of the input blocks it overlaps (the
//! cartesian product, per axis, of the overlapping input blocks). **Memory cost per task:**
//! the output block plus every input block it reads, whole. Going from tall thin blocks to
//! short wide ones makes each output block read a whole row of input blocks, which can be far
//! more than either block.
//!
//! # Within a bound: [`rechunk_with`]
//!
//! With `max_task_bytes`, the plan is checked before anything is built, and intermediate
//! chunkings are tried, as Dask's `rechunk` planner does, until every stage's tasks fit:
//!
//! 1. one stage, when its largest task (output + inputs) fits;
//! 2. two stages through the per-axis geometric mean of the old and new block lengths
//!    (few tasks, each reading a moderate number of moderate blocks);
//! 3. two stages through the common refinement of old and new (on each axis, the blocks cut
//!    at every old and every new boundary). Every intermediate block then lies inside exactly
//!    one old and one new block, so stage one costs *one old block + one piece* per task and
//!    stage two costs *one new block + the pieces that make it up* = twice the new block.
//!    When one old block plus its largest piece still does not fit, the pieces are halved
//!    along their longest axis until they do.
//!
//! Step 3 is the least memory any plan can use: a task producing a new block holds it and
//! inputs covering it (so at least twice the block), and a task reading an old block holds it
//! and at least one element. When even that does not fit, `rechunk_with` fails with an error
//! naming `max_task_bytes`, before anything runs. Step 3 can make many small tasks (about as
//! many as the one-stage plan has edges), which is why it is tried last.

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use rask_error::{RaskError, Result};
use rask_graph::{Op, OpRegistry, Tokenizer, Value, decode_params, encode_params};

use crate::array::{ArrayBuilder, block_nbytes, block_value, input_block};
use crate::{Array, ChunkSpec, Chunks, Element};

/// A piece copied into an output block: from input `input`, the element ranges `src` (in
/// that block's coordinates) to `dst` (in the output block's).
#[derive(Clone, Debug)]
pub(crate) struct Piece {
    pub input: usize,
    pub src: Vec<Range<usize>>,
    pub dst: Vec<Range<usize>>,
}

/// Assembles one output block from pieces of input blocks.
pub(crate) struct Assemble<T> {
    pub shape: Vec<usize>,
    pub pieces: Vec<Piece>,
    pub _t: std::marker::PhantomData<fn() -> T>,
}

/// A piece's source must lie inside the block it reads (ndarray would panic otherwise; a
/// decoded op's ranges come from the wire).
fn check_source(p: &Piece, block: &[usize]) -> rask_error::Result<()> {
    if p.src.len() != block.len() || p.src.iter().zip(block).any(|(r, &n)| r.end > n) {
        return Err(rask_error::RaskError::ShapeMismatch(format!(
            "rechunk: piece {:?} of input {} does not fit its block of shape {block:?}",
            p.src, p.input
        )));
    }
    Ok(())
}

pub(crate) fn slice_info(ranges: &[Range<usize>]) -> Vec<SliceInfoElem> {
    ranges
        .iter()
        .map(|r| SliceInfoElem::Slice {
            start: r.start as isize,
            end: Some(r.end as isize),
            step: 1,
        })
        .collect()
}

impl<T: Element> Op for Assemble<T> {
    fn name(&self) -> &str {
        "rask.array.assemble"
    }
    fn label(&self) -> &str {
        "rechunk"
    }
    fn params(&self) -> Option<Vec<u8>> {
        type R = (usize, usize);
        let pieces: Vec<(usize, Vec<R>, Vec<R>)> = self
            .pieces
            .iter()
            .map(|p| {
                let f = |v: &[Range<usize>]| v.iter().map(|r| (r.start, r.end)).collect();
                (p.input, f(&p.src), f(&p.dst))
            })
            .collect();
        encode_params(self.name(), &(T::DTYPE.name(), &self.shape, pieces))
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        // A single piece covering a whole input block is a plain copy of it.
        if let [p] = self.pieces.as_slice() {
            let block = input_block::<T>(inputs, p.input, self.name())?;
            if block.shape() == self.shape.as_slice() {
                return Ok(inputs[p.input].clone());
            }
            check_source(p, block.shape())?;
            return Ok(block_value(
                block.slice(slice_info(&p.src).as_slice()).to_owned(),
            ));
        }
        let mut out = ArrayD::<T>::default(IxDyn(&self.shape));
        for p in &self.pieces {
            let block = input_block::<T>(inputs, p.input, self.name())?;
            check_source(p, block.shape())?;
            out.slice_mut(slice_info(&p.dst).as_slice())
                .assign(&block.slice(slice_info(&p.src).as_slice()));
        }
        Ok(block_value(out))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

const ASSEMBLE: &str = "rask.array.assemble";

/// A piece on the wire: (input, src ranges, dst ranges), ranges as (start, end).
type WirePiece = (usize, Vec<(usize, usize)>, Vec<(usize, usize)>);

fn decode_assemble(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (dtype, shape, pieces): (String, Vec<usize>, Vec<WirePiece>) =
        decode_params(ASSEMBLE, params)?;
    let ranges = |v: Vec<(usize, usize)>| -> Vec<Range<usize>> {
        v.into_iter().map(|(a, b)| a..b).collect()
    };
    let pieces: Vec<Piece> = pieces
        .into_iter()
        .map(|(input, src, dst)| Piece {
            input,
            src: ranges(src),
            dst: ranges(dst),
        })
        .collect();
    // `execute` slices with these ranges, and ndarray panics on one out of bounds: check
    // each destination against the output block (sources are checked against the blocks
    // when they arrive).
    for p in &pieces {
        let fits = p.dst.len() == shape.len()
            && p.src.len() == shape.len()
            && p.dst
                .iter()
                .zip(&shape)
                .all(|(r, &n)| r.start <= r.end && r.end <= n)
            && p.src
                .iter()
                .zip(&p.dst)
                .all(|(s, d)| s.start <= s.end && s.len() == d.len());
        if !fits {
            return Err(rask_error::RaskError::Serialization {
                what: format!("parameters of op `{ASSEMBLE}`"),
                message: format!("piece {p:?} does not fit a block of shape {shape:?}"),
            });
        }
    }
    crate::dtype::with_dtype!(all: ASSEMBLE, &dtype, |T| Ok(Arc::new(Assemble::<T> {
        shape,
        pieces,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(ASSEMBLE, decode_assemble);

/// One overlap along an axis: (input block, range in it, range in the output block).
pub(crate) type Overlap = (usize, Range<usize>, Range<usize>);

/// For each output block along one axis: the input blocks it overlaps, with the overlap in
/// input-block and output-block coordinates.
pub(crate) fn axis_overlaps(old: &[usize], new: &[usize]) -> Vec<Vec<Overlap>> {
    let mut out = Vec::with_capacity(new.len());
    let mut old_start = 0usize;
    let mut oi = 0usize;
    let mut new_start = 0usize;
    for &n in new {
        let new_end = new_start + n;
        let mut parts = Vec::new();
        // Skip input blocks entirely before this output block.
        while oi < old.len() && old_start + old[oi] <= new_start && old[oi] > 0 {
            old_start += old[oi];
            oi += 1;
        }
        let (mut j, mut js) = (oi, old_start);
        while j < old.len() && js < new_end {
            let je = js + old[j];
            let lo = js.max(new_start);
            let hi = je.min(new_end);
            if hi > lo {
                parts.push((j, lo - js..hi - js, lo - new_start..hi - new_start));
            }
            js = je;
            j += 1;
        }
        out.push(parts);
        new_start = new_end;
    }
    out
}

/// The same array with other chunks, in one stage (no memory bound; see the module docs).
/// Errors name `chunks` when they do not fit the shape.
pub fn rechunk<T: Element>(a: &Array<T>, chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
    rechunk_with(a, chunks, None)
}

/// The same array with other chunks, every task holding at most `max_task_bytes` (its output
/// plus the input blocks it reads) when given: intermediate stages are planned as the module
/// docs describe. Errors name `chunks` when they do not fit the shape and `max_task_bytes`
/// when no plan fits the bound; both before anything runs.
pub fn rechunk_with<T: Element>(
    a: &Array<T>,
    chunks: impl Into<ChunkSpec>,
    max_task_bytes: Option<usize>,
) -> Result<Array<T>> {
    let itemsize = std::mem::size_of::<T>();
    let new = Chunks::normalize(chunks, a.shape(), itemsize)?;
    if &new == a.chunks() {
        return Ok(a.clone());
    }
    if new.ndim() != a.ndim() {
        return Err(RaskError::invalid_argument(
            "chunks",
            "rank differs from the array's",
        ));
    }
    let stages = match max_task_bytes {
        None => vec![new],
        Some(limit) => plan_rechunk(a.chunks(), &new, itemsize as u64, limit as u64)?,
    };
    let mut x = a.clone();
    for c in stages {
        if &c != x.chunks() {
            x = rechunk_stage(&x, c)?;
        }
    }
    Ok(x)
}

/// Per axis, for each new block: (its length, the summed length of the old blocks it reads).
fn axis_costs(old: &[usize], new: &[usize]) -> Vec<(u64, u64)> {
    let overlaps = axis_overlaps(old, new);
    let mut pairs: Vec<(u64, u64)> = new
        .iter()
        .zip(&overlaps)
        .map(|(&n, parts)| (n as u64, parts.iter().map(|p| old[p.0] as u64).sum()))
        .collect();
    // Only the Pareto-maximal pairs can give the largest task: keeps the search below small.
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    pairs.dedup();
    let mut front: Vec<(u64, u64)> = Vec::new();
    for p in pairs {
        if front.iter().all(|f| p.1 > f.1) {
            front.push(p);
        }
    }
    front
}

/// The largest task of a one-stage rechunk `old -> new`, in bytes: output plus inputs.
fn stage_cost(old: &Chunks, new: &Chunks, itemsize: u64) -> u64 {
    let fronts: Vec<Vec<(u64, u64)>> = (0..old.ndim())
        .map(|ax| axis_costs(&old.sizes()[ax], &new.sizes()[ax]))
        .collect();
    let mut best = 0u64;
    for combo in crate::chunks::BlockIndices::new(fronts.iter().map(|f| f.len()).collect()) {
        let (mut out, mut inp) = (1u64, 1u64);
        for (ax, &k) in combo.iter().enumerate() {
            out = out.saturating_mul(fronts[ax][k].0);
            inp = inp.saturating_mul(fronts[ax][k].1);
        }
        best = best.max(out.saturating_add(inp).saturating_mul(itemsize));
    }
    best
}

fn plan_cost(old: &Chunks, stages: &[Chunks], itemsize: u64) -> u64 {
    let mut prev = old;
    let mut worst = 0;
    for s in stages {
        worst = worst.max(stage_cost(prev, s, itemsize));
        prev = s;
    }
    worst
}

fn regular(len: usize, n: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let n = n.clamp(1, len);
    let mut v = vec![n; len / n];
    if len % n != 0 {
        v.push(len % n);
    }
    v
}

/// On each axis, blocks cut at every old and every new boundary.
fn refinement(old: &Chunks, new: &Chunks) -> Chunks {
    let sizes = (0..old.ndim())
        .map(|ax| {
            let mut bounds: Vec<usize> = old.offsets(ax);
            bounds.extend(new.offsets(ax));
            bounds.sort_unstable();
            bounds.dedup();
            let v: Vec<usize> = bounds.windows(2).map(|w| w[1] - w[0]).collect();
            if v.is_empty() { vec![0] } else { v }
        })
        .collect();
    Chunks::from_sizes(sizes)
}

/// Plans the stages of a bounded rechunk (see the module docs); the last stage is `new`.
fn plan_rechunk(old: &Chunks, new: &Chunks, itemsize: u64, limit: u64) -> Result<Vec<Chunks>> {
    let single = vec![new.clone()];
    if plan_cost(old, &single, itemsize) <= limit {
        return Ok(single);
    }
    let max_new = new.max_block_len() as u64 * itemsize;
    let max_old = old.max_block_len() as u64 * itemsize;
    if max_new.saturating_mul(2) > limit {
        return Err(RaskError::invalid_argument(
            "max_task_bytes",
            format!(
                "{limit} bytes cannot hold a task building an output block of {max_new} bytes: \
                 it needs at least {} (the block and the inputs covering it)",
                max_new.saturating_mul(2)
            ),
        ));
    }
    if max_old.saturating_add(itemsize) > limit {
        return Err(RaskError::invalid_argument(
            "max_task_bytes",
            format!(
                "{limit} bytes cannot hold a task reading an input block of {max_old} bytes: \
                 it needs at least {}",
                max_old + itemsize
            ),
        ));
    }
    // Geometric mean of the mean block lengths, axis by axis.
    let geo = Chunks::from_sizes(
        (0..old.ndim())
            .map(|ax| {
                let len: usize = old.sizes()[ax].iter().sum();
                let mean = |s: &[usize]| len as f64 / s.len().max(1) as f64;
                let g = (mean(&old.sizes()[ax]) * mean(&new.sizes()[ax]))
                    .sqrt()
                    .round();
                regular(len, g as usize)
            })
            .collect(),
    );
    let two = vec![geo, new.clone()];
    if plan_cost(old, &two, itemsize) <= limit {
        return Ok(two);
    }
    // The refinement, its pieces halved along their longest axis until stage one fits.
    let mut mid = refinement(old, new);
    while stage_cost(old, &mid, itemsize) > limit {
        let (ax, longest) = (0..mid.ndim())
            .map(|ax| (ax, mid.sizes()[ax].iter().copied().max().unwrap_or(0)))
            .max_by_key(|&(_, m)| m)
            .unwrap_or((0, 0));
        if longest <= 1 {
            break;
        }
        let mut sizes = mid.sizes().to_vec();
        sizes[ax] = sizes[ax]
            .iter()
            .flat_map(|&c| {
                if c > 1 {
                    vec![c.div_ceil(2), c / 2]
                } else {
                    vec![c]
                }
            })
            .collect();
        mid = Chunks::from_sizes(sizes);
    }
    let two = vec![mid, new.clone()];
    let cost = plan_cost(old, &two, itemsize);
    if cost > limit {
        // Not expected given the checks above; never build a plan that breaks the bound.
        return Err(RaskError::invalid_argument(
            "max_task_bytes",
            format!("no rechunk plan fits {limit} bytes per task (the best needs {cost})"),
        ));
    }
    Ok(two)
}

/// One stage: every output block assembled from the input blocks it overlaps.
fn rechunk_stage<T: Element>(a: &Array<T>, new: Chunks) -> Result<Array<T>> {
    let mut t = Tokenizer::new("rask.array.rechunk");
    t.write_str(a.name().as_str());
    for axis in new.sizes() {
        t.write_u64(axis.len() as u64);
        for &c in axis {
            t.write_u64(c as u64);
        }
    }
    let overlaps: Vec<_> = (0..a.ndim())
        .map(|ax| axis_overlaps(&a.chunks().sizes()[ax], &new.sizes()[ax]))
        .collect();
    let mut b = ArrayBuilder::new("rechunk", t.finish(), new, vec![a.layer().clone()]);
    for idx in b.chunks().block_indices() {
        // The cartesian product of the per-axis overlaps.
        let per_axis: Vec<&Vec<Overlap>> = idx
            .iter()
            .enumerate()
            .map(|(ax, &i)| &overlaps[ax][i])
            .collect();
        let mut deps = Vec::new();
        let mut pieces = Vec::new();
        for combo in crate::chunks::BlockIndices::new(per_axis.iter().map(|v| v.len()).collect()) {
            let parts: Vec<&Overlap> = combo
                .iter()
                .enumerate()
                .map(|(ax, &k)| &per_axis[ax][k])
                .collect();
            let in_idx: Vec<usize> = parts.iter().map(|p| p.0).collect();
            deps.push(a.block_key(&in_idx));
            pieces.push(Piece {
                input: pieces.len(),
                src: parts.iter().map(|p| p.1.clone()).collect(),
                dst: parts.iter().map(|p| p.2.clone()).collect(),
            });
        }
        let op = Arc::new(Assemble::<T> {
            shape: b.chunks().block_shape(&idx),
            pieces,
            _t: std::marker::PhantomData,
        });
        b.task(&idx, op, deps);
    }
    Ok(b.finish())
}

impl<T: Element> Array<T> {
    /// See [`rechunk`].
    pub fn rechunk(&self, chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
        rechunk(self, chunks)
    }

    /// See [`rechunk_with`].
    pub fn rechunk_with(
        &self,
        chunks: impl Into<ChunkSpec>,
        max_task_bytes: Option<usize>,
    ) -> Result<Array<T>> {
        rechunk_with(self, chunks, max_task_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_cover_each_output_block() {
        let o = axis_overlaps(&[4, 4, 2], &[3, 3, 3, 1]);
        assert_eq!(o[0], vec![(0, 0..3, 0..3)]);
        assert_eq!(o[1], vec![(0, 3..4, 0..1), (1, 0..2, 1..3)]);
        assert_eq!(o[2], vec![(1, 2..4, 0..2), (2, 0..1, 2..3)]);
        assert_eq!(o[3], vec![(2, 1..2, 0..1)]);
    }

    #[test]
    fn tall_to_wide_needs_an_intermediate() {
        let old = Chunks::from_sizes(vec![vec![100], vec![1; 100]]);
        let new = Chunks::from_sizes(vec![vec![1; 100], vec![100]]);
        // One stage: each row block reads all 100 column blocks.
        assert_eq!(stage_cost(&old, &new, 8), (100 + 100 * 100) * 8);
        let plan = plan_rechunk(&old, &new, 8, 4000).unwrap();
        assert_eq!(plan.len(), 2);
        assert!(plan_cost(&old, &plan, 8) <= 4000);
        let e = plan_rechunk(&old, &new, 8, 1000).unwrap_err().to_string();
        assert!(e.contains("`max_task_bytes`"), "{e}");
    }
}
