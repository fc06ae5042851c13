//! Changing the chunks of an array.
//!
//! Each output block is assembled from the pieces of the input blocks it overlaps. This is
//! the one-stage plan; its memory cost per task is the output block plus the input blocks it
//! touches.

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use rask_error::{RaskError, Result};
use rask_graph::{Op, Tokenizer, Value};

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
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        // A single piece covering a whole input block is a plain copy of it.
        if let [p] = self.pieces.as_slice() {
            let block = input_block::<T>(inputs, p.input, self.name())?;
            if block.shape() == self.shape.as_slice() {
                return Ok(inputs[p.input].clone());
            }
            return Ok(block_value(
                block.slice(slice_info(&p.src).as_slice()).to_owned(),
            ));
        }
        let mut out = ArrayD::<T>::default(IxDyn(&self.shape));
        for p in &self.pieces {
            let block = input_block::<T>(inputs, p.input, self.name())?;
            out.slice_mut(slice_info(&p.dst).as_slice())
                .assign(&block.slice(slice_info(&p.src).as_slice()));
        }
        Ok(block_value(out))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

/// For each output block along one axis: the input blocks it overlaps, with the overlap in
/// input-block and output-block coordinates.
pub(crate) fn axis_overlaps(
    old: &[usize],
    new: &[usize],
) -> Vec<Vec<(usize, Range<usize>, Range<usize>)>> {
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

/// The same array with other chunks. Errors name `chunks` when they do not fit the shape.
pub fn rechunk<T: Element>(a: &Array<T>, chunks: impl Into<ChunkSpec>) -> Result<Array<T>> {
    let new = Chunks::normalize(chunks, a.shape(), std::mem::size_of::<T>())?;
    if &new == a.chunks() {
        return Ok(a.clone());
    }
    if new.ndim() != a.ndim() {
        return Err(RaskError::invalid_argument(
            "chunks",
            "rank differs from the array's",
        ));
    }
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
        let per_axis: Vec<&Vec<(usize, Range<usize>, Range<usize>)>> = idx
            .iter()
            .enumerate()
            .map(|(ax, &i)| &overlaps[ax][i])
            .collect();
        let mut deps = Vec::new();
        let mut pieces = Vec::new();
        for combo in crate::chunks::BlockIndices::new(per_axis.iter().map(|v| v.len()).collect()) {
            let parts: Vec<&(usize, Range<usize>, Range<usize>)> = combo
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
}
