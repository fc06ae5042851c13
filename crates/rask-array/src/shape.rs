//! Shape operations: transpose, squeeze, expand_dims, reshape, stack, concatenate,
//! broadcast_to.
//!
//! # Lowerings and their memory cost
//!
//! All of these are blockwise: every output block is computed from exactly one input block,
//! so each task holds one input block and one output block (at most twice a block) unless
//! noted.
//!
//! - **transpose**: the chunks are permuted with the axes; output block `j` is input block
//!   `j` permuted, with its elements copied into standard (row-major) order.
//! - **squeeze / expand_dims**: a size-1 axis has one block of length 1, so removing or adding
//!   one only reshapes each block; the block grid is otherwise unchanged.
//! - **reshape** (Dask's approach): the axes are split into groups whose sizes multiply to the
//!   same number in the old and the new shape (`(6, 4, 5) -> (24, 5)` has groups
//!   `(6, 4) -> (24)` and `(5) -> (5)`). Within a group, a block can be reshaped on its own
//!   when it is a contiguous run of the group's row-major order: that holds when every input
//!   axis of the group but the first is a single block and the first axis's block
//!   boundaries fall on multiples of the output's trailing size. So the input is first
//!   rechunked that way (a no-op when the chunks already line up: merging axes whose trailing
//!   axes are whole, or splitting an axis whose blocks are multiples of the new trailing
//!   size), then every block is reshaped on its own. **Memory cost:** the rechunk makes each
//!   block span the whole of the trailing axes of its group, so a block can grow by up to the
//!   product of those axes' block counts (plus the rounding of the first axis); the rechunk
//!   itself costs what [`rechunk`](crate::rechunk()) documents.
//! - **stack / concatenate**: the inputs are first rechunked to the first array's chunks on
//!   the axes that are not joined (a no-op when they agree); each output block is then one
//!   input block (expanded by one axis for `stack`, passed on as is for `concatenate`).
//! - **broadcast_to**: new leading axes and stretched size-1 axes get one block spanning the
//!   whole axis; every output block reads the one input block it broadcasts from. The output
//!   block is materialized, so its cost is the output block's size (it can be much larger than
//!   the input block: choose the input's chunks accordingly).

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{Key, Op, Tokenizer, Value, decode_params, encode_params};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_nbytes, block_value, input_block};
use crate::{Array, ChunkSpec, Chunks, Element};

fn tokenize_usizes(t: &mut Tokenizer, v: &[usize]) {
    t.write_u64(v.len() as u64);
    for &x in v {
        t.write_u64(x as u64);
    }
}

#[derive(Serialize, Deserialize)]
struct ShapeParams {
    dtype: String,
    shape: Vec<usize>,
    axes: Vec<usize>,
}

/// The decoder of one blockwise shape op: the kind is in the op's name.
fn decode_shape(kind: Kind, params: &[u8]) -> Result<Arc<dyn Op>> {
    let name = kind.op_name();
    let p: ShapeParams = decode_params(name, params)?;
    if kind == Kind::Transpose {
        // ndarray panics on an axis list that is not a permutation.
        let mut seen = vec![false; p.axes.len()];
        for &a in &p.axes {
            if a >= seen.len() || std::mem::replace(&mut seen[a], true) {
                return Err(RaskError::Serialization {
                    what: format!("parameters of op `{name}`"),
                    message: format!("{:?} is not a permutation of the axes", p.axes),
                });
            }
        }
    }
    crate::dtype::with_dtype!(all: name, &p.dtype, |T| Ok(
        ShapeBlock::<T>::new(kind, p.shape, p.axes) as Arc<dyn Op>
    ))
}
rask_graph::register_op!(Kind::Transpose.op_name(), |p, _| decode_shape(
    Kind::Transpose,
    p
));
rask_graph::register_op!(Kind::Reshape.op_name(), |p, _| decode_shape(
    Kind::Reshape,
    p
));
rask_graph::register_op!(Kind::Broadcast.op_name(), |p, _| decode_shape(
    Kind::Broadcast,
    p
));
rask_graph::register_op!(Kind::Alias.op_name(), |p, _| decode_shape(Kind::Alias, p));

/// What one blockwise shape task does with its input block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Permute the axes by `axes`.
    Transpose,
    /// Same elements in row-major order, another shape.
    Reshape,
    /// Broadcast to `shape`.
    Broadcast,
    /// The input block as is.
    Alias,
}

impl Kind {
    const fn op_name(self) -> &'static str {
        match self {
            Kind::Transpose => "rask.array.transpose",
            Kind::Reshape => "rask.array.reshape",
            Kind::Broadcast => "rask.array.broadcast_to",
            Kind::Alias => "rask.array.alias",
        }
    }
}

/// One blockwise shape task.
struct ShapeBlock<T> {
    kind: Kind,
    /// The output block's shape.
    shape: Vec<usize>,
    /// The permutation, for `Transpose`.
    axes: Vec<usize>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> ShapeBlock<T> {
    fn new(kind: Kind, shape: Vec<usize>, axes: Vec<usize>) -> Arc<Self> {
        Arc::new(ShapeBlock {
            kind,
            shape,
            axes,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: Element> Op for ShapeBlock<T> {
    fn name(&self) -> &str {
        self.kind.op_name()
    }
    fn label(&self) -> &str {
        match self.kind {
            Kind::Transpose => "transpose",
            Kind::Reshape => "reshape",
            Kind::Broadcast => "broadcast_to",
            Kind::Alias => "alias",
        }
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &ShapeParams {
                dtype: T::DTYPE.name().to_string(),
                shape: self.shape.clone(),
                axes: self.axes.clone(),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let block = input_block::<T>(inputs, 0, self.name())?;
        let mismatch = |what: &str| {
            RaskError::ShapeMismatch(format!(
                "{}: input block of shape {:?} {what} {:?}",
                self.name(),
                block.shape(),
                self.shape
            ))
        };
        let out: ArrayD<T> = match self.kind {
            Kind::Alias => {
                if block.shape() != self.shape.as_slice() {
                    return Err(mismatch("is not the expected"));
                }
                return Ok(inputs[0].clone());
            }
            Kind::Reshape => {
                if block.len() != self.shape.iter().product::<usize>() {
                    return Err(mismatch("cannot be reshaped to"));
                }
                // `iter` walks the logical row-major order whatever the memory layout.
                ArrayD::from_shape_vec(IxDyn(&self.shape), block.iter().copied().collect())
                    .map_err(|e| RaskError::ShapeMismatch(e.to_string()))?
            }
            Kind::Transpose => {
                if block.ndim() != self.axes.len() {
                    return Err(mismatch("cannot be transposed to"));
                }
                let v = block.view().permuted_axes(IxDyn(&self.axes));
                v.as_standard_layout().into_owned()
            }
            Kind::Broadcast => {
                let v = block
                    .broadcast(IxDyn(&self.shape))
                    .ok_or_else(|| mismatch("cannot be broadcast to"))?;
                v.as_standard_layout().into_owned()
            }
        };
        Ok(block_value(out))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

/// Builds a blockwise layer: every output block from one input block of one of `inputs`.
/// `source(out_idx)` gives (which input, its block index); `kind`/`axes` describe the op.
fn blockwise<T: Element>(
    prefix: &str,
    token: rask_graph::Token,
    chunks: Chunks,
    inputs: &[&Array<T>],
    kind: Kind,
    axes: &[usize],
    source: impl Fn(&[usize]) -> (usize, Vec<usize>),
) -> Array<T> {
    let deps = inputs.iter().map(|a| a.layer().clone()).collect();
    let mut b = ArrayBuilder::new(prefix, token, chunks, deps);
    for idx in b.chunks().block_indices() {
        let (which, in_idx) = source(&idx);
        let key: Key = inputs[which].block_key(&in_idx);
        let op = ShapeBlock::<T>::new(kind, b.chunks().block_shape(&idx), axes.to_vec());
        b.task(&idx, op, vec![key]);
    }
    b.finish()
}

fn check_axis(axis: usize, limit: usize, what: &str) -> Result<()> {
    if axis >= limit {
        return Err(RaskError::invalid_argument(
            "axis",
            format!("axis {axis} is out of bounds for {what}"),
        ));
    }
    Ok(())
}

impl<T: Element> Array<T> {
    /// Permutes the axes (`None` reverses them, as NumPy's default). Errors name `axes` when
    /// it is not a permutation of `0..ndim`.
    pub fn transpose(&self, axes: Option<&[usize]>) -> Result<Array<T>> {
        let n = self.ndim();
        let axes: Vec<usize> = match axes {
            Some(a) => a.to_vec(),
            None => (0..n).rev().collect(),
        };
        let mut seen = vec![false; n];
        let valid = axes.len() == n
            && axes
                .iter()
                .all(|&a| a < n && !std::mem::replace(&mut seen[a], true));
        if !valid {
            return Err(RaskError::invalid_argument(
                "axes",
                format!(
                    "{axes:?} is not a permutation of the {n} axes of an array of shape {:?}",
                    self.shape()
                ),
            ));
        }
        if axes.iter().enumerate().all(|(i, &a)| i == a) {
            return Ok(self.clone());
        }
        let sizes = self.chunks().sizes();
        let chunks = Chunks::from_sizes(axes.iter().map(|&a| sizes[a].clone()).collect());
        let mut t = Tokenizer::new("rask.array.transpose");
        t.write_str(self.name().as_str());
        tokenize_usizes(&mut t, &axes);
        let perm = axes.clone();
        Ok(blockwise(
            "transpose",
            t.finish(),
            chunks,
            &[self],
            Kind::Transpose,
            &axes,
            move |out| {
                let mut in_idx = vec![0; out.len()];
                for (i, &a) in perm.iter().enumerate() {
                    in_idx[a] = out[i];
                }
                (0, in_idx)
            },
        ))
    }

    /// The transpose with the axes reversed (NumPy's `.T`; for 2-D, rows become columns).
    pub fn t(&self) -> Result<Array<T>> {
        self.transpose(None)
    }

    /// Removes axis `axis`, which must have length 1 (error naming `axis` otherwise).
    pub fn squeeze(&self, axis: usize) -> Result<Array<T>> {
        check_axis(
            axis,
            self.ndim(),
            &format!("an array of shape {:?}", self.shape()),
        )?;
        if self.shape()[axis] != 1 {
            return Err(RaskError::invalid_argument(
                "axis",
                format!(
                    "cannot squeeze axis {axis} of length {} (shape {:?}): only length-1 axes",
                    self.shape()[axis],
                    self.shape()
                ),
            ));
        }
        let mut sizes = self.chunks().sizes().to_vec();
        sizes.remove(axis);
        let mut t = Tokenizer::new("rask.array.squeeze");
        t.write_str(self.name().as_str());
        t.write_u64(axis as u64);
        Ok(blockwise(
            "squeeze",
            t.finish(),
            Chunks::from_sizes(sizes),
            &[self],
            Kind::Reshape,
            &[],
            |out| {
                let mut idx = out.to_vec();
                idx.insert(axis, 0);
                (0, idx)
            },
        ))
    }

    /// Inserts a new axis of length 1 at `axis` (`0..=ndim`; error naming `axis` otherwise).
    pub fn expand_dims(&self, axis: usize) -> Result<Array<T>> {
        check_axis(
            axis,
            self.ndim() + 1,
            &format!("inserting into an array of shape {:?}", self.shape()),
        )?;
        let mut sizes = self.chunks().sizes().to_vec();
        sizes.insert(axis, vec![1]);
        let mut t = Tokenizer::new("rask.array.expand_dims");
        t.write_str(self.name().as_str());
        t.write_u64(axis as u64);
        Ok(blockwise(
            "expand_dims",
            t.finish(),
            Chunks::from_sizes(sizes),
            &[self],
            Kind::Reshape,
            &[],
            |out| {
                let mut idx = out.to_vec();
                idx.remove(axis);
                (0, idx)
            },
        ))
    }

    /// The same elements in row-major order with another shape; one entry may be `-1` (inferred).
    /// See the module docs for the lowering. Errors name `shape`.
    pub fn reshape(&self, new_shape: &[isize]) -> Result<Array<T>> {
        let shape = resolve_shape(self.shape(), new_shape)?;
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let mut t = Tokenizer::new("rask.array.reshape");
        t.write_str(self.name().as_str());
        tokenize_usizes(&mut t, &shape);
        if self.size() == 0 {
            // Nothing to move: one (empty) block in, one out.
            let single = self.rechunk(ChunkSpec::PerAxis(vec![None; self.ndim()]))?;
            let chunks = Chunks::from_sizes(shape.iter().map(|&n| vec![n]).collect());
            let nd = self.ndim();
            return Ok(blockwise(
                "reshape",
                t.finish(),
                chunks,
                &[&single],
                Kind::Reshape,
                &[],
                move |_| (0, vec![0; nd]),
            ));
        }
        let plan = reshape_plan(self.shape(), &shape, self.chunks().sizes());
        let x = self.rechunk(ChunkSpec::Explicit(plan.in_chunks))?;
        let groups = plan.groups;
        let nd = self.ndim();
        Ok(blockwise(
            "reshape",
            t.finish(),
            Chunks::from_sizes(plan.out_chunks),
            &[&x],
            Kind::Reshape,
            &[],
            move |out| {
                let mut idx = vec![0; nd];
                for g in &groups {
                    if let (Some(&i), Some(&o)) = (g.0.first(), g.1.first()) {
                        idx[i] = out[o];
                    }
                }
                (0, idx)
            },
        ))
    }

    /// Broadcasts to `shape` by NumPy's rules (trailing axes aligned; each either equal or 1
    /// in the input). Errors name `shape`. See the module docs for chunks and memory.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Array<T>> {
        let n = self.ndim();
        let bad = || {
            RaskError::invalid_argument(
                "shape",
                format!(
                    "cannot broadcast an array of shape {:?} to shape {shape:?}",
                    self.shape()
                ),
            )
        };
        if shape.len() < n {
            return Err(bad());
        }
        let lead = shape.len() - n;
        for (i, &s) in self.shape().iter().enumerate() {
            if s != shape[lead + i] && s != 1 {
                return Err(bad());
            }
        }
        if lead == 0 && shape == self.shape() {
            return Ok(self.clone());
        }
        let in_sizes = self.chunks().sizes();
        let sizes: Vec<Vec<usize>> = (0..shape.len())
            .map(|ax| {
                if ax >= lead && self.shape()[ax - lead] == shape[ax] {
                    in_sizes[ax - lead].clone()
                } else {
                    vec![shape[ax]]
                }
            })
            .collect();
        let mut t = Tokenizer::new("rask.array.broadcast_to");
        t.write_str(self.name().as_str());
        tokenize_usizes(&mut t, shape);
        let in_shape = self.shape().to_vec();
        let out_shape = shape.to_vec();
        Ok(blockwise(
            "broadcast_to",
            t.finish(),
            Chunks::from_sizes(sizes),
            &[self],
            Kind::Broadcast,
            &[],
            move |out| {
                let idx = (0..n)
                    .map(|i| {
                        if in_shape[i] == out_shape[lead + i] {
                            out[lead + i]
                        } else {
                            0
                        }
                    })
                    .collect();
                (0, idx)
            },
        ))
    }
}

/// Resolves a requested shape with at most one `-1` against `old`'s element count.
fn resolve_shape(old: &[usize], new: &[isize]) -> Result<Vec<usize>> {
    let size: usize = old.iter().product();
    let bad = |why: &str| {
        RaskError::invalid_argument(
            "shape",
            format!("cannot reshape an array of shape {old:?} to {new:?}: {why}"),
        )
    };
    if new.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(bad("only one dimension can be -1"));
    }
    if new.iter().any(|&d| d < -1) {
        return Err(bad("dimensions must be non-negative or -1"));
    }
    let known: usize = new
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| bad("the size overflows"))?;
    let mut out = Vec::with_capacity(new.len());
    for &d in new {
        if d == -1 {
            if known == 0 || size % known != 0 {
                return Err(bad("the -1 dimension cannot be inferred"));
            }
            out.push(size / known);
        } else {
            out.push(d as usize);
        }
    }
    if out.iter().product::<usize>() != size {
        return Err(bad(&format!(
            "{} elements do not fit {} elements",
            size,
            out.iter().product::<usize>()
        )));
    }
    Ok(out)
}

/// Groups of (input axes, output axes) with equal products, and the chunks before and after.
struct ReshapePlan {
    groups: Vec<(Vec<usize>, Vec<usize>)>,
    in_chunks: Vec<Vec<usize>>,
    out_chunks: Vec<Vec<usize>>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Plans a reshape of a non-empty array (see the module docs).
fn reshape_plan(old: &[usize], new: &[usize], chunks: &[Vec<usize>]) -> ReshapePlan {
    // Minimal groups of axes with equal products, left to right; a lone length-1 axis on one
    // side is its own group (dropped or inserted).
    let (mut i, mut o) = (0, 0);
    let mut groups = Vec::new();
    while i < old.len() || o < new.len() {
        if i < old.len() && old[i] == 1 && (o >= new.len() || new[o] != 1) {
            groups.push((vec![i], vec![]));
            i += 1;
            continue;
        }
        if o < new.len() && new[o] == 1 && (i >= old.len() || old[i] != 1) {
            groups.push((vec![], vec![o]));
            o += 1;
            continue;
        }
        let (i0, o0) = (i, o);
        let (mut pi, mut po) = (old[i], new[o]);
        i += 1;
        o += 1;
        // The products are equal overall and non-zero, so this ends within bounds.
        while pi != po {
            if pi < po {
                pi *= old[i];
                i += 1;
            } else {
                po *= new[o];
                o += 1;
            }
        }
        groups.push(((i0..i).collect(), (o0..o).collect()));
    }

    let mut in_chunks = chunks.to_vec();
    let mut out_chunks = vec![Vec::new(); new.len()];
    for (ins, outs) in &groups {
        match (ins.as_slice(), outs.as_slice()) {
            (_, []) => {}
            ([], [o]) => out_chunks[*o] = vec![1],
            ([i], [o]) if old[*i] == new[*o] => out_chunks[*o] = chunks[*i].clone(),
            _ => {
                let r_in: usize = ins[1..].iter().map(|&a| old[a]).product();
                let r_out: usize = outs[1..].iter().map(|&a| new[a]).product();
                let lcm = r_in / gcd(r_in, r_out) * r_out;
                // Block boundaries on the first input axis must fall on multiples of `unit`
                // so that each block's flat range is whole rows of the output's trailing axes.
                let unit = lcm / r_in;
                let first = ins[0];
                let mut bounds = Vec::new();
                let mut acc = 0;
                for &c in &chunks[first] {
                    acc += c;
                    let b = acc / unit * unit;
                    if b > *bounds.last().unwrap_or(&0) {
                        bounds.push(b);
                    }
                }
                let mut prev = 0;
                let sizes: Vec<usize> = bounds
                    .iter()
                    .map(|&b| {
                        let s = b - prev;
                        prev = b;
                        s
                    })
                    .collect();
                for &a in &ins[1..] {
                    in_chunks[a] = vec![old[a]];
                }
                out_chunks[outs[0]] = sizes.iter().map(|&s| s * r_in / r_out).collect();
                in_chunks[first] = sizes;
                for &a in &outs[1..] {
                    out_chunks[a] = vec![new[a]];
                }
            }
        }
    }
    ReshapePlan {
        groups,
        in_chunks,
        out_chunks,
    }
}

/// Checks the arrays to join and unifies their chunks on every axis but `skip` to the first
/// array's. Errors name `arrays`.
fn unify<T: Element>(arrays: &[Array<T>], skip: Option<usize>, op: &str) -> Result<Vec<Array<T>>> {
    let first = arrays.first().ok_or_else(|| {
        RaskError::invalid_argument("arrays", format!("{op} needs at least one array"))
    })?;
    let shapes: Vec<&[usize]> = arrays.iter().map(|a| a.shape()).collect();
    for a in arrays {
        let agree = a.ndim() == first.ndim()
            && a.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(ax, (x, y))| Some(ax) == skip || x == y);
        if !agree {
            let what = match skip {
                Some(ax) => format!("except along axis {ax}"),
                None => "exactly".to_string(),
            };
            return Err(RaskError::invalid_argument(
                "arrays",
                format!("{op}: the shapes must agree {what}, got {shapes:?}"),
            ));
        }
    }
    arrays
        .iter()
        .map(|a| {
            let sizes: Vec<Vec<usize>> = (0..a.ndim())
                .map(|ax| {
                    if Some(ax) == skip {
                        a.chunks().sizes()[ax].clone()
                    } else {
                        first.chunks().sizes()[ax].clone()
                    }
                })
                .collect();
            a.rechunk(ChunkSpec::Explicit(sizes))
        })
        .collect()
}

/// Joins arrays of equal shape along a new axis `axis` (`0..=ndim`). Chunks follow the first
/// array's; the new axis has one block per array. Errors name `arrays` or `axis`.
pub fn stack<T: Element>(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
    let xs = unify(arrays, None, "stack")?;
    let nd = xs[0].ndim();
    check_axis(
        axis,
        nd + 1,
        &format!("stacking arrays of shape {:?}", xs[0].shape()),
    )?;
    let mut sizes = xs[0].chunks().sizes().to_vec();
    sizes.insert(axis, vec![1; xs.len()]);
    let mut t = Tokenizer::new("rask.array.stack");
    t.write_u64(axis as u64);
    for x in &xs {
        t.write_str(x.name().as_str());
    }
    let refs: Vec<&Array<T>> = xs.iter().collect();
    Ok(blockwise(
        "stack",
        t.finish(),
        Chunks::from_sizes(sizes),
        &refs,
        Kind::Reshape,
        &[],
        |out| {
            let mut idx = out.to_vec();
            let which = idx.remove(axis);
            (which, idx)
        },
    ))
}

/// Joins arrays along the existing axis `axis`; the shapes must agree on every other axis.
/// Chunks on the other axes follow the first array's; along `axis` each array keeps its own
/// blocks. Errors name `arrays` or `axis`.
pub fn concatenate<T: Element>(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
    if let Some(a) = arrays.first() {
        check_axis(
            axis,
            a.ndim(),
            &format!("concatenating arrays of shape {:?}", a.shape()),
        )?;
    }
    let xs = unify(arrays, Some(axis), "concatenate")?;
    if xs.len() == 1 {
        return Ok(xs[0].clone());
    }
    // Arrays empty along the axis contribute no blocks (unless all are empty).
    let nonempty: Vec<usize> = (0..xs.len()).filter(|&k| xs[k].shape()[axis] > 0).collect();
    let parts: Vec<usize> = if nonempty.is_empty() {
        vec![0]
    } else {
        nonempty
    };
    // Output block along the axis -> (array, its block).
    let mut along = Vec::new();
    let mut sizes_axis = Vec::new();
    for &k in &parts {
        for (bi, &c) in xs[k].chunks().sizes()[axis].iter().enumerate() {
            along.push((k, bi));
            sizes_axis.push(c);
        }
    }
    let mut sizes = xs[0].chunks().sizes().to_vec();
    sizes[axis] = sizes_axis;
    let mut t = Tokenizer::new("rask.array.concatenate");
    t.write_u64(axis as u64);
    for x in &xs {
        t.write_str(x.name().as_str());
    }
    let refs: Vec<&Array<T>> = xs.iter().collect();
    Ok(blockwise(
        "concatenate",
        t.finish(),
        Chunks::from_sizes(sizes),
        &refs,
        Kind::Alias,
        &[],
        |out| {
            let (which, bi) = along[out[axis]];
            let mut idx = out.to_vec();
            idx[axis] = bi;
            (which, idx)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_plan_merge_and_split() {
        // Merge (4, 6) -> (24): trailing axis made whole, first keeps its blocks.
        let p = reshape_plan(&[4, 6], &[24], &[vec![2, 2], vec![3, 3]]);
        assert_eq!(p.in_chunks, vec![vec![2, 2], vec![6]]);
        assert_eq!(p.out_chunks, vec![vec![12, 12]]);
        // Split (24) -> (4, 6): blocks rounded to multiples of 6.
        let p = reshape_plan(&[24], &[4, 6], &[vec![10, 10, 4]]);
        assert_eq!(p.in_chunks, vec![vec![6, 12, 6]]);
        assert_eq!(p.out_chunks, vec![vec![1, 2, 1], vec![6]]);
        // Mixed (6, 4) -> (4, 6): units of lcm(4, 6) = 12 elements = 3 input rows.
        let p = reshape_plan(&[6, 4], &[4, 6], &[vec![2, 2, 2], vec![4]]);
        assert_eq!(p.in_chunks, vec![vec![3, 3], vec![4]]);
        assert_eq!(p.out_chunks, vec![vec![2, 2], vec![6]]);
    }
}
