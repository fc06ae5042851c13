//! Blocked matrix products of 2-D arrays: [`matmul`] and [`Array::dot`].
//!
//! # Lowering
//!
//! For `a` (m x n, blocks `I x K`) and `b` (n x p, blocks `K x J`), the inner blocks must
//! line up: when `b`'s row chunks differ from `a`'s column chunks, `b` is first rechunked
//! along axis 0 to `a`'s column chunks (one stage, see [`crate::rechunk`]). Then:
//!
//! 1. **product** (`rask.array.matmul.block`): one task per `(i, k, j)` multiplies block
//!    `a[i, k]` by block `b[k, j]` with ndarray's `dot`.
//! 2. **sum over k**: the products of one `(i, j)` are added with the reductions' tree
//!    combine (fan-in [`DEFAULT_SPLIT_EVERY`](crate::DEFAULT_SPLIT_EVERY)), whose last level
//!    yields block `(i, j)` of the result. The result has `a`'s row chunks and `b`'s column
//!    chunks.
//!
//! # Memory
//!
//! A product task holds its two input blocks and one output-sized block (rows of `a[i, k]`
//! times columns of `b[k, j]`). A sum task holds at most `split_every` such blocks plus its
//! own. There are `I * K * J` product tasks; the tree keeps only a few of them alive per
//! output block at a time when the scheduler orders work depth-first.

use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, Ix2, LinalgScalar};
use rask_error::{RaskError, Result};
use rask_graph::{
    KeyName, Layer, Op, OpRegistry, TaskSpec, Tokenizer, Value, decode_params, encode_params,
};
use serde::{Deserialize, Serialize};

use crate::array::{block_key, block_nbytes, block_value, input_block};
use crate::reduction::{Combiner, DEFAULT_SPLIT_EVERY, Spec, TreeInput, tree_combine};
use crate::{Array, ChunkSpec, Chunks, NumElement};

/// Element types ndarray multiplies with `dot` (its `LinalgScalar`): f32, f64, i32, i64.
pub trait MatmulElement: NumElement + LinalgScalar {}
impl MatmulElement for f32 {}
impl MatmulElement for f64 {}
impl MatmulElement for i32 {}
impl MatmulElement for i64 {}

#[derive(Serialize, Deserialize)]
struct BlockProductParams {
    dtype: String,
    rows: usize,
    cols: usize,
}

const BLOCK_PRODUCT: &str = "rask.array.matmul.block";

fn decode_block_product(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: BlockProductParams = decode_params(BLOCK_PRODUCT, params)?;
    crate::dtype::with_dtype!(BLOCK_PRODUCT, &p.dtype, [f32, f64, i32, i64], |T| Ok(
        Arc::new(BlockProduct::<T> {
            rows: p.rows,
            cols: p.cols,
            _t: PhantomData,
        }) as Arc<dyn Op>
    ))
}
rask_graph::register_op!(BLOCK_PRODUCT, decode_block_product);

/// `a[i, k] . b[k, j]`.
struct BlockProduct<T> {
    rows: usize,
    cols: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: MatmulElement> Op for BlockProduct<T> {
    fn name(&self) -> &str {
        "rask.array.matmul.block"
    }
    fn label(&self) -> &str {
        "matmul"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &BlockProductParams {
                dtype: T::DTYPE.name().to_string(),
                rows: self.rows,
                cols: self.cols,
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let as_2d = |i: usize| -> Result<ndarray::ArrayView2<'_, T>> {
            input_block::<T>(inputs, i, self.name())?
                .view()
                .into_dimensionality::<Ix2>()
                .map_err(|e| {
                    RaskError::ShapeMismatch(format!("input {i} of `{}`: {e}", self.name()))
                })
        };
        let (a, b) = (as_2d(0)?, as_2d(1)?);
        if a.ncols() != b.nrows() {
            return Err(RaskError::ShapeMismatch(format!(
                "block product of shapes {:?} and {:?}",
                a.shape(),
                b.shape()
            )));
        }
        Ok(block_value(a.dot(&b).into_dyn()))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&[self.rows, self.cols]))
    }
}

/// Adds block products.
pub(crate) struct BlockSum<T>(PhantomData<fn() -> T>);

impl<T> BlockSum<T> {
    pub(crate) fn new() -> Self {
        BlockSum(PhantomData)
    }
}

impl<T: MatmulElement> Combiner for BlockSum<T> {
    type Partial = ArrayD<T>;
    type Out = T;
    fn spec(&self) -> Spec {
        Spec {
            kind: "matmul",
            dtype: T::DTYPE.name(),
            ddof: None,
            flatten: false,
        }
    }
    fn merge(&self, acc: &mut ArrayD<T>, other: &ArrayD<T>) {
        acc.zip_mut_with(other, |a, &b| *a += b);
    }
    fn finalize(&self, p: ArrayD<T>) -> ArrayD<T> {
        p
    }
    fn partial_nbytes(&self, elems: usize) -> u64 {
        block_nbytes::<T>(&[elems])
    }
}

/// The matrix product of two 2-D arrays. Errors name `a`/`b` for a rank other than 2 and
/// give both shapes when the inner dimensions differ.
pub fn matmul<T: MatmulElement>(a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    for (name, x) in [("a", a), ("b", b)] {
        if x.ndim() != 2 {
            return Err(RaskError::invalid_argument(
                name,
                format!("matmul needs 2-D arrays, got shape {:?}", x.shape()),
            ));
        }
    }
    if a.shape()[1] != b.shape()[0] {
        return Err(RaskError::ShapeMismatch(format!(
            "matmul: shapes {:?} and {:?} not aligned: {} (dim 1) != {} (dim 0)",
            a.shape(),
            b.shape(),
            a.shape()[1],
            b.shape()[0]
        )));
    }
    // The inner blocks must pair up one to one.
    let b = if a.chunks().sizes()[1] != b.chunks().sizes()[0] {
        b.rechunk(ChunkSpec::from(vec![
            a.chunks().sizes()[1].clone(),
            b.chunks().sizes()[1].clone(),
        ]))?
    } else {
        b.clone()
    };

    let mut t = Tokenizer::new("rask.array.matmul");
    t.write_str(T::DTYPE.name());
    t.write_str(a.name().as_str());
    t.write_str(b.name().as_str());
    let token = t.finish();

    let (rows, inner, cols) = (
        &a.chunks().sizes()[0],
        &a.chunks().sizes()[1],
        &b.chunks().sizes()[1],
    );
    let prod_name = KeyName::from_token("matmul-block", token);
    let mut tasks = Vec::with_capacity(rows.len() * inner.len() * cols.len());
    for (i, &r) in rows.iter().enumerate() {
        for k in 0..inner.len() {
            for (j, &c) in cols.iter().enumerate() {
                let op = Arc::new(BlockProduct::<T> {
                    rows: r,
                    cols: c,
                    _t: PhantomData,
                });
                tasks.push(TaskSpec::new(
                    block_key(&prod_name, &[i, k, j]),
                    op,
                    vec![a.block_key(&[i, k]), b.block_key(&[k, j])],
                ));
            }
        }
    }
    let layer = Layer::new(tasks, vec![a.layer().clone(), b.layer().clone()]);
    let out_chunks = Chunks::from_sizes(vec![rows.clone(), cols.clone()]);
    Ok(tree_combine(
        Arc::new(BlockSum::<T>::new()),
        TreeInput {
            layer,
            name: prod_name,
            counts: vec![rows.len(), inner.len(), cols.len()],
        },
        &[1],
        DEFAULT_SPLIT_EVERY,
        false,
        Vec::new(),
        out_chunks,
        token,
        |idx: &[usize]| rows[idx[0]] * cols[idx[2]],
    ))
}

impl<T: MatmulElement> Array<T> {
    /// The matrix product `self . other` of 2-D arrays; see [`matmul`].
    pub fn dot(&self, other: &Array<T>) -> Result<Array<T>> {
        matmul(self, other)
    }

    /// Same as [`Array::dot`].
    pub fn matmul(&self, other: &Array<T>) -> Result<Array<T>> {
        matmul(self, other)
    }
}
