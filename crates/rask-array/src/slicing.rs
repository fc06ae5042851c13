//! Basic indexing: integer indices and strided slices, as NumPy's `x[0, 1:5, ::2, ::-1]`.
//!
//! # Lowering
//!
//! Each axis's selection is normalized first (negative starts and stops count from the end,
//! out-of-range bounds are clipped, as Python's `slice.indices` does) into "element `k` of the
//! output is element `start + k * step` of the input". Then, per axis, every input block is
//! asked which output elements it holds; blocks holding none are left out. The output keeps
//! the input's block structure: each output block is the (strided) slice of exactly **one**
//! input block, so
//!
//! - the new layer references only the input blocks that contribute (culling then computes,
//!   or reads, nothing else: `x.slice(s![..;100])` of a huge array touches one block in a
//!   hundred when blocks are shorter than the step);
//! - each task holds one input block and its slice: memory cost at most twice the input block,
//!   usually much less; a whole-block selection with step 1 passes the block on without a copy.
//!
//! With a negative step the output walks the input's blocks in reverse order. A selection
//! that is empty along some axis gives a valid array with one 0-length block along it; its
//! tasks read nothing.
//!
//! # Example
//!
//! ```
//! use rask::prelude::*;
//! use rask::array::{self, s};
//!
//! let x = array::arange::<i64>(0.0, 20.0, 1.0, 6)?.reshape(&[4, 5])?;
//! let y = x.slice(&s![1.., ..;-2])?; // rows 1..4, columns 4, 2, 0
//! assert_eq!(y.shape(), &[3, 3]);
//! assert_eq!(y.compute()?.iter().take(3).copied().collect::<Vec<_>>(), vec![9, 7, 5]);
//! let row = x.slice(&s![-1])?; // the last row; the axis is dropped
//! assert_eq!(row.compute()?.into_raw_vec_and_offset().0, vec![15, 16, 17, 18, 19]);
//! # Ok::<(), rask::RaskError>(())
//! ```

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use rask_error::{RaskError, Result};
use rask_graph::{Key, Op, OpRegistry, Tokenizer, Value, decode_params, encode_params};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_nbytes, block_value, input_block};
use crate::{Array, Chunks, Element};

/// A NumPy slice `start:stop:step`; `None` bounds mean "from the beginning / to the end" in
/// the direction of `step`, negative bounds count from the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub start: Option<isize>,
    pub stop: Option<isize>,
    pub step: isize,
}

impl Slice {
    pub fn new(start: Option<isize>, stop: Option<isize>, step: isize) -> Self {
        Slice { start, stop, step }
    }

    /// The same bounds with another step.
    pub fn step_by(self, step: isize) -> Self {
        Slice { step, ..self }
    }
}

/// What to select along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceArg {
    /// One element; the axis is dropped. Negative counts from the end.
    Index(isize),
    /// A strided range; the axis is kept.
    Slice(Slice),
    /// The whole axis (`..`).
    Full,
}

impl SliceArg {
    /// `r` with `step`: what `s![a..b;step]` builds. An index stays an index.
    pub fn stepped(r: impl Into<SliceArg>, step: isize) -> SliceArg {
        match r.into() {
            SliceArg::Index(i) => SliceArg::Index(i),
            SliceArg::Full => SliceArg::Slice(Slice::new(None, None, step)),
            SliceArg::Slice(s) => SliceArg::Slice(s.step_by(step)),
        }
    }
}

impl From<Slice> for SliceArg {
    fn from(s: Slice) -> Self {
        SliceArg::Slice(s)
    }
}

impl From<std::ops::RangeFull> for SliceArg {
    fn from(_: std::ops::RangeFull) -> Self {
        SliceArg::Full
    }
}

macro_rules! impl_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for SliceArg {
            fn from(i: $t) -> Self {
                SliceArg::Index(i as isize)
            }
        }
        impl From<std::ops::Range<$t>> for SliceArg {
            fn from(r: std::ops::Range<$t>) -> Self {
                SliceArg::Slice(Slice::new(Some(r.start as isize), Some(r.end as isize), 1))
            }
        }
        impl From<std::ops::RangeFrom<$t>> for SliceArg {
            fn from(r: std::ops::RangeFrom<$t>) -> Self {
                SliceArg::Slice(Slice::new(Some(r.start as isize), None, 1))
            }
        }
        impl From<std::ops::RangeTo<$t>> for SliceArg {
            fn from(r: std::ops::RangeTo<$t>) -> Self {
                SliceArg::Slice(Slice::new(None, Some(r.end as isize), 1))
            }
        }
    )*};
}
impl_from_int!(isize, i32, i64, usize);

/// Builds an array of [`SliceArg`]s NumPy-style: `x.slice(&s![0, 1..5, ..;2, ..;-1, -3..])`.
///
/// Each element is an index, a range (`a..b`, `a..`, `..b`, `..`) or a range with a step
/// after `;`. Negative numbers count from the end, as in NumPy.
#[macro_export]
macro_rules! s {
    (@parse [$($acc:expr),*]) => { [$($acc),*] };
    (@parse [$($acc:expr),*] $r:expr ; $step:expr , $($rest:tt)*) => {
        $crate::s!(@parse [$($acc,)* $crate::SliceArg::stepped($r, $step)] $($rest)*)
    };
    (@parse [$($acc:expr),*] $r:expr ; $step:expr) => {
        $crate::s!(@parse [$($acc,)* $crate::SliceArg::stepped($r, $step)])
    };
    (@parse [$($acc:expr),*] $r:expr , $($rest:tt)*) => {
        $crate::s!(@parse [$($acc,)* $crate::SliceArg::from($r)] $($rest)*)
    };
    (@parse [$($acc:expr),*] $r:expr) => {
        $crate::s!(@parse [$($acc,)* $crate::SliceArg::from($r)])
    };
    ($($t:tt)*) => { $crate::s!(@parse [] $($t)*) };
}

/// One axis's selection after normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    Index(usize),
    /// Output element `k < len` is input element `start + k * step`.
    Range {
        start: isize,
        step: isize,
        len: usize,
    },
}

/// Normalizes `arg` against an axis of length `n` (Python's `slice.indices`).
fn normalize(arg: SliceArg, n: usize, axis: usize) -> Result<Axis> {
    let n_i = n as isize;
    match arg {
        SliceArg::Index(i) => {
            let j = if i < 0 { i + n_i } else { i };
            if j < 0 || j >= n_i {
                return Err(RaskError::invalid_argument(
                    "index",
                    format!(
                        "index {i} is out of bounds for axis {axis} with size {n} \
                         (valid: -{n}..{n})"
                    ),
                ));
            }
            Ok(Axis::Index(j as usize))
        }
        SliceArg::Full => Ok(Axis::Range {
            start: 0,
            step: 1,
            len: n,
        }),
        SliceArg::Slice(Slice { start, stop, step }) => {
            if step == 0 {
                return Err(RaskError::invalid_argument(
                    "step",
                    format!("slice step along axis {axis} must not be zero"),
                ));
            }
            let fix = |v: isize, lo: isize, hi: isize| {
                let v = if v < 0 { v.saturating_add(n_i) } else { v };
                v.clamp(lo, hi)
            };
            let (start, len) = if step > 0 {
                let b = start.map_or(0, |v| fix(v, 0, n_i));
                let e = stop.map_or(n_i, |v| fix(v, 0, n_i));
                // (e - b - 1) / step + 1 = ceil((e - b) / step), without overflow for huge steps.
                let len = if e > b { (e - b - 1) / step + 1 } else { 0 };
                (b, len)
            } else {
                let b = start.map_or(n_i - 1, |v| fix(v, -1, n_i - 1));
                let e = stop.map_or(-1, |v| fix(v, -1, n_i - 1));
                // In i128: -isize::MIN does not fit an isize.
                let s = -(step as i128);
                let len = if b > e {
                    ((b - e - 1) as i128 / s + 1) as isize
                } else {
                    0
                };
                (b, len)
            };
            Ok(Axis::Range {
                start,
                step,
                len: len as usize,
            })
        }
    }
}

/// What one output block takes from its input block along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Take {
    /// One element (the axis is dropped).
    Index(usize),
    /// `len` elements from `first` by `step`, in block coordinates.
    Range {
        first: usize,
        step: isize,
        len: usize,
    },
}

/// For one kept axis: the output pieces, in output order, as (input block, what to take).
fn axis_pieces(start: isize, step: isize, len: usize, chunks: &[usize]) -> Vec<(usize, Take)> {
    // In i128 so that huge steps and offsets cannot overflow.
    let (start, step_w, m) = (start as i128, step as i128, len as i128);
    let mut out = Vec::new();
    let mut b0 = 0i128;
    for (bi, &c) in chunks.iter().enumerate() {
        let b1 = b0 + c as i128;
        // The output elements k with b0 <= start + k * step < b1.
        let (lo, hi) = if step_w > 0 {
            let k = |b: i128| {
                if b <= start {
                    0
                } else {
                    (b - start - 1) / step_w + 1
                }
            };
            (k(b0), k(b1))
        } else {
            let s = -step_w;
            let lo = if start < b1 { 0 } else { (start - b1) / s + 1 };
            let hi = if start < b0 { 0 } else { (start - b0) / s + 1 };
            (lo, hi)
        };
        let (lo, hi) = (lo.clamp(0, m), hi.clamp(0, m));
        if hi > lo {
            let first = (start + lo * step_w - b0) as usize;
            out.push((
                bi,
                Take::Range {
                    first,
                    step,
                    len: (hi - lo) as usize,
                },
            ));
        }
        b0 = b1;
    }
    if step < 0 {
        out.reverse();
    }
    out
}

/// Slices one input block.
struct SliceBlock<T> {
    takes: Vec<Take>,
    /// The output block's shape (for size projections and the no-copy check).
    shape: Vec<usize>,
    _t: std::marker::PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct SliceParams {
    dtype: String,
    takes: Vec<Take>,
    shape: Vec<usize>,
}

const GETITEM: &str = "rask.array.getitem";

fn decode_slice(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: SliceParams = decode_params(GETITEM, params)?;
    // `execute` checks every take against the block it gets, so nothing more to check here.
    crate::dtype::with_dtype!(all: GETITEM, &p.dtype, |T| Ok(Arc::new(SliceBlock::<T> {
        takes: p.takes,
        shape: p.shape,
        _t: std::marker::PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(GETITEM, decode_slice);

impl<T: Element> Op for SliceBlock<T> {
    fn name(&self) -> &str {
        "rask.array.getitem"
    }
    fn label(&self) -> &str {
        "getitem"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &SliceParams {
                dtype: T::DTYPE.name().to_string(),
                takes: self.takes.clone(),
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        if self.shape.contains(&0) {
            // An empty selection reads nothing.
            return Ok(block_value(ArrayD::<T>::default(IxDyn(&self.shape))));
        }
        let block = input_block::<T>(inputs, 0, self.name())?;
        if block.ndim() != self.takes.len() {
            return Err(RaskError::ShapeMismatch(format!(
                "getitem: input block has {} dimensions, expected {}",
                block.ndim(),
                self.takes.len()
            )));
        }
        let whole = self
            .takes
            .iter()
            .zip(block.shape())
            .all(|(t, &n)| matches!(*t, Take::Range { first: 0, step: 1, len } if len == n));
        if whole {
            return Ok(inputs[0].clone());
        }
        let info: Vec<SliceInfoElem> = self
            .takes
            .iter()
            .zip(block.shape())
            .map(|(t, &n)| match *t {
                Take::Index(i) if i < n => Ok(SliceInfoElem::Index(i as isize)),
                Take::Range { first, step, len } if len > 0 && first < n => {
                    // The last element taken, in i128 so that bad parameters cannot overflow.
                    let last = first as i128 + (len as i128 - 1) * step as i128;
                    if last < 0 || last >= n as i128 {
                        return Err(RaskError::ShapeMismatch(format!(
                            "getitem: selection {t:?} does not fit a block of length {n}"
                        )));
                    }
                    let last = last as isize;
                    // ndarray slices [start, end) then walks it from the far end for a
                    // negative step, so give it the covered range.
                    let (lo, hi) = if step > 0 {
                        (first as isize, last + 1)
                    } else {
                        (last, first as isize + 1)
                    };
                    Ok(SliceInfoElem::Slice {
                        start: lo,
                        end: Some(hi),
                        step,
                    })
                }
                _ => Err(RaskError::ShapeMismatch(format!(
                    "getitem: selection {t:?} does not fit a block of length {n}"
                ))),
            })
            .collect::<Result<_>>()?;
        let view = block.slice(info.as_slice());
        // A negative step gives negative strides: make the block standard again.
        Ok(block_value(view.as_standard_layout().into_owned()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

/// `a[args]` with NumPy's basic indexing; see the module docs. Missing trailing arguments
/// select whole axes. Errors name `index` (an out-of-range index, more arguments than axes)
/// or `step` (a zero step).
pub fn slice<T: Element>(a: &Array<T>, args: &[SliceArg]) -> Result<Array<T>> {
    if args.len() > a.ndim() {
        return Err(RaskError::invalid_argument(
            "index",
            format!(
                "too many indices: {} given for an array of {} dimensions (shape {:?})",
                args.len(),
                a.ndim(),
                a.shape()
            ),
        ));
    }
    let axes: Vec<Axis> = (0..a.ndim())
        .map(|ax| {
            normalize(
                args.get(ax).copied().unwrap_or(SliceArg::Full),
                a.shape()[ax],
                ax,
            )
        })
        .collect::<Result<_>>()?;
    let identity = axes
        .iter()
        .zip(a.shape())
        .all(|(ax, &n)| matches!(*ax, Axis::Range { start: 0, step: 1, len } if len == n));
    if identity {
        return Ok(a.clone());
    }

    let mut t = Tokenizer::new("rask.array.getitem");
    t.write_str(a.name().as_str());
    for ax in &axes {
        match *ax {
            Axis::Index(i) => {
                t.write_u8(0);
                t.write_u64(i as u64);
            }
            Axis::Range { start, step, len } => {
                t.write_u8(1);
                t.write_i64(start as i64);
                t.write_i64(step as i64);
                t.write_u64(len as u64);
            }
        }
    }

    // Per input axis: the pieces (input block, take); an index is one piece, dropped from
    // the output's axes.
    let sizes = a.chunks().sizes();
    let empty = axes
        .iter()
        .any(|ax| matches!(ax, Axis::Range { len: 0, .. }));
    let mut per_axis: Vec<Vec<(usize, Take)>> = Vec::with_capacity(axes.len());
    let mut out_sizes: Vec<Vec<usize>> = Vec::new();
    for (ax, sel) in axes.iter().enumerate() {
        match *sel {
            Axis::Index(i) => {
                let offsets = a.chunks().offsets(ax);
                // The block holding element i: the last offset <= i.
                let bi = offsets.partition_point(|&o| o <= i) - 1;
                per_axis.push(vec![(bi, Take::Index(i - offsets[bi]))]);
            }
            Axis::Range { len: 0, .. } => {
                per_axis.push(vec![(
                    0,
                    Take::Range {
                        first: 0,
                        step: 1,
                        len: 0,
                    },
                )]);
                out_sizes.push(vec![0]);
            }
            Axis::Range { start, step, len } => {
                let pieces = axis_pieces(start, step, len, &sizes[ax]);
                out_sizes.push(
                    pieces
                        .iter()
                        .map(|(_, t)| match t {
                            Take::Range { len, .. } => *len,
                            Take::Index(_) => 1,
                        })
                        .collect(),
                );
                per_axis.push(pieces);
            }
        }
    }

    let chunks = Chunks::from_sizes(out_sizes);
    let deps = if empty {
        Vec::new()
    } else {
        vec![a.layer().clone()]
    };
    let mut b = ArrayBuilder::new("getitem", t.finish(), chunks, deps);
    let numblocks: Vec<usize> = per_axis.iter().map(|p| p.len()).collect();
    for combo in crate::chunks::BlockIndices::new(numblocks) {
        let mut in_idx = Vec::with_capacity(combo.len());
        let mut out_idx = Vec::new();
        let mut takes = Vec::with_capacity(combo.len());
        for (ax, &k) in combo.iter().enumerate() {
            let (bi, take) = per_axis[ax][k];
            in_idx.push(bi);
            takes.push(take);
            if !matches!(axes[ax], Axis::Index(_)) {
                out_idx.push(k);
            }
        }
        let shape = b.chunks().block_shape(&out_idx);
        let dep_keys: Vec<Key> = if empty {
            Vec::new()
        } else {
            vec![a.block_key(&in_idx)]
        };
        let op = Arc::new(SliceBlock::<T> {
            takes,
            shape,
            _t: std::marker::PhantomData,
        });
        b.task(&out_idx, op, dep_keys);
    }
    Ok(b.finish())
}

impl<T: Element> Array<T> {
    /// `self[args]`; see [`slice`](fn@slice) and the [`s!`](crate::s) macro.
    pub fn slice(&self, args: &[SliceArg]) -> Result<Array<T>> {
        slice(self, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_like_python() {
        let r = |s, e, st| normalize(SliceArg::Slice(Slice::new(s, e, st)), 10, 0).unwrap();
        assert_eq!(
            r(None, None, -1),
            Axis::Range {
                start: 9,
                step: -1,
                len: 10
            }
        );
        assert_eq!(
            r(Some(-3), None, 1),
            Axis::Range {
                start: 7,
                step: 1,
                len: 3
            }
        );
        assert_eq!(
            r(Some(0), Some(5), -2),
            Axis::Range {
                start: 0,
                step: -2,
                len: 0
            }
        );
        assert_eq!(
            r(Some(100), Some(-100), -3),
            Axis::Range {
                start: 9,
                step: -3,
                len: 4
            }
        );
    }

    #[test]
    fn huge_steps_and_bounds_do_not_overflow() {
        for step in [isize::MAX, isize::MIN, isize::MIN + 1] {
            for (start, stop) in [(None, None), (Some(isize::MIN), Some(isize::MAX))] {
                let ax = normalize(SliceArg::Slice(Slice::new(start, stop, step)), 10, 0).unwrap();
                let Axis::Range { start, step, len } = ax else {
                    unreachable!()
                };
                assert!(len <= 1, "{ax:?}");
                let p = axis_pieces(start, step, len, &[4, 4, 2]);
                assert_eq!(p.len(), len);
            }
        }
        assert!(normalize(SliceArg::Index(isize::MIN), 10, 0).is_err());
        assert!(normalize(SliceArg::Index(isize::MAX), 10, 0).is_err());
    }

    #[test]
    fn pieces_follow_blocks() {
        // [0..10) in blocks 4,4,2, every third element from 1: 1,4,7 -> blocks 0,1,1.
        let p = axis_pieces(1, 3, 3, &[4, 4, 2]);
        assert_eq!(
            p,
            vec![
                (
                    0,
                    Take::Range {
                        first: 1,
                        step: 3,
                        len: 1
                    }
                ),
                (
                    1,
                    Take::Range {
                        first: 0,
                        step: 3,
                        len: 2
                    }
                ),
            ]
        );
        // Reversed: 9,7,5,3,1 -> block 2 (9), block 1 (7,5), block 0 (3,1).
        let p = axis_pieces(9, -2, 5, &[4, 4, 2]);
        let lens: Vec<(usize, usize)> = p
            .iter()
            .map(|(b, t)| match t {
                Take::Range { len, .. } => (*b, *len),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(lens, vec![(2, 1), (1, 2), (0, 2)]);
    }
}
