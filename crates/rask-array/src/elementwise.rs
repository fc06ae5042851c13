//! Elementwise operations: arithmetic, comparisons, logic, `where_`, unary math, `astype` and
//! `map_blocks`.
//!
//! # Lowering
//!
//! Every elementwise operation adds one layer with **one task per output block**; the task
//! reads the aligned block of each operand and nothing else, so chains of elementwise ops are
//! linear chains of tasks that the graph optimizer fuses into one task per block.
//!
//! Operands follow NumPy broadcasting: shapes are aligned from the right, and an axis of
//! length 1 (or a missing leading axis) is stretched to the other operands' length. Along an
//! axis where several operands have the full length their block boundaries must agree; when
//! they do not, every such operand is first [`rechunk`]ed to the *common refinement* of the
//! boundaries (Dask's `unify_chunks`): the output block boundaries are the union of the
//! operands' boundaries, so no output block straddles an input block boundary. A broadcast
//! axis (length 1) always reads its single block. Inside a task the blocks are combined with
//! `ndarray::Zip` over broadcast views: one pass, no per-element virtual calls (the kernel is
//! chosen once per block by matching on the op kind).
//!
//! Ops with a scalar (`&a * 2.0`) carry the scalar in their parameters, so they read one block.
//!
//! # Memory
//!
//! A task holds its input blocks plus one output block. Broadcast operands are never
//! materialized at the output's size: `Zip` reads them through stride-0 views. Unifying
//! mismatched chunks costs one rechunk per operand (its own blocks plus the pieces it reads).
//!
//! # Fallible and infallible forms
//!
//! Combining two arrays can fail (shapes that do not broadcast), and `std::ops` operators
//! cannot return errors without panicking. So:
//!
//! - `array op scalar`, `scalar op array` and `-array` / `!array` are infallible and return
//!   an [`Array`] directly;
//! - `array op array` is available as methods returning [`Result`] ([`Array::try_add`], ...)
//!   and also as operators on references whose output is `Result<Array<T>>`, so that
//!   `(&a + &b)?` reads naturally and nothing ever panics at graph-building time.
//!
//! Integer `/` and `%` follow NumPy's `//` and `%` (floor division, remainder with the
//! divisor's sign; by zero gives 0 where Rust would panic, and `MIN / -1` wraps), and integer
//! `+ - *`, `abs` and `neg` wrap on overflow, in debug builds too: no elementwise task panics.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Zip};
use rask_error::{RaskError, Result};
use rask_graph::{Key, Op, OpRegistry, Token, Tokenizer, Value, decode_params, encode_params};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_nbytes, block_value, input_block};
use crate::dtype::{parse_scalar, with_dtype};
use crate::{Array, Chunks, Element, FloatElement, NumElement, rechunk};

// ---------------------------------------------------------------------------------------------
// Broadcasting and chunk unification
// ---------------------------------------------------------------------------------------------

/// One operand of a broadcast operation, as far as planning is concerned.
struct Operand<'a> {
    arg: &'a str,
    shape: &'a [usize],
    chunks: &'a Chunks,
}

/// How the operands of one elementwise operation line up.
struct BroadcastPlan {
    shape: Vec<usize>,
    chunks: Vec<Vec<usize>>,
    /// Per operand: the chunks it must be rechunked to, or `None` when it already fits.
    targets: Vec<Option<Vec<Vec<usize>>>>,
    /// Per operand: its rank (axes are aligned from the right).
    ndims: Vec<usize>,
}

/// The common refinement of several chunkings of one axis: the union of their boundaries.
fn refine(axes: &[&[usize]]) -> Vec<usize> {
    let mut bounds: Vec<usize> = Vec::new();
    for sizes in axes {
        let mut o = 0;
        for &s in sizes.iter() {
            o += s;
            bounds.push(o);
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    let mut out = Vec::with_capacity(bounds.len());
    let mut prev = 0;
    for b in bounds {
        if b > prev {
            out.push(b - prev);
            prev = b;
        }
    }
    out
}

impl BroadcastPlan {
    fn new(ops: &[Operand<'_>]) -> Result<BroadcastPlan> {
        let ndim = ops.iter().map(|o| o.shape.len()).max().unwrap_or(0);
        let mut shape = vec![1usize; ndim];
        // Which operand set the length of each output axis (for error messages).
        let mut set_by: Vec<Option<usize>> = vec![None; ndim];
        for (k, o) in ops.iter().enumerate() {
            let lead = ndim - o.shape.len();
            for (ax, &len) in o.shape.iter().enumerate() {
                let out_ax = lead + ax;
                if len == 1 {
                    continue;
                }
                match set_by[out_ax] {
                    None => {
                        shape[out_ax] = len;
                        set_by[out_ax] = Some(k);
                    }
                    Some(_) if shape[out_ax] == len => {}
                    Some(j) => {
                        return Err(RaskError::invalid_argument(
                            o.arg,
                            format!(
                                "shape {:?} of `{}` does not broadcast with shape {:?} of `{}` \
                                 (axis {out_ax} from the left after aligning from the right: \
                                 {len} vs {})",
                                o.shape, o.arg, ops[j].shape, ops[j].arg, shape[out_ax]
                            ),
                        ));
                    }
                }
            }
        }
        // Output chunks: along each axis, the refinement of every full-length operand's
        // boundaries; an axis every operand broadcasts has one block of length 1.
        let mut chunks = Vec::with_capacity(ndim);
        for (out_ax, &out_len) in shape.iter().enumerate() {
            let full: Vec<&[usize]> = ops
                .iter()
                .filter_map(|o| {
                    let lead = ndim - o.shape.len();
                    (out_ax >= lead && o.shape[out_ax - lead] == out_len)
                        .then(|| o.chunks.sizes()[out_ax - lead].as_slice())
                })
                .collect();
            chunks.push(if full.is_empty() {
                vec![1]
            } else if out_len == 0 {
                full[0].to_vec()
            } else {
                refine(&full)
            });
        }
        let targets = ops
            .iter()
            .map(|o| {
                let lead = ndim - o.shape.len();
                let want: Vec<Vec<usize>> = o
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(ax, &len)| {
                        if len == shape[lead + ax] {
                            chunks[lead + ax].clone()
                        } else {
                            o.chunks.sizes()[ax].clone()
                        }
                    })
                    .collect();
                (want.as_slice() != o.chunks.sizes()).then_some(want)
            })
            .collect();
        Ok(BroadcastPlan {
            ndims: ops.iter().map(|o| o.shape.len()).collect(),
            shape,
            chunks,
            targets,
        })
    }

    /// The block of operand `k` that output block `idx` reads.
    fn input_index(&self, k: usize, shape: &[usize], idx: &[usize]) -> Vec<usize> {
        let lead = idx.len() - self.ndims[k];
        shape
            .iter()
            .enumerate()
            .map(|(ax, &len)| {
                if len == self.shape[lead + ax] {
                    idx[lead + ax]
                } else {
                    0
                }
            })
            .collect()
    }
}

/// `a` rechunked to `target` when the plan asks for it.
fn align<T: Element>(a: &Array<T>, target: &Option<Vec<Vec<usize>>>) -> Result<Array<T>> {
    match target {
        None => Ok(a.clone()),
        Some(t) => rechunk(a, t.clone()),
    }
}

/// The key of an operand's block, given its index.
type KeyFn = Box<dyn Fn(&[usize]) -> Key>;

/// A type-erased, already aligned operand: what the layer builder needs.
struct Aligned {
    name: String,
    shape: Vec<usize>,
    layer: Arc<rask_graph::Layer>,
    keys: KeyFn,
}

impl Aligned {
    fn of<T: Element>(a: &Array<T>) -> Aligned {
        let a2 = a.clone();
        Aligned {
            name: a.name().as_str().to_string(),
            shape: a.shape().to_vec(),
            layer: a.layer().clone(),
            keys: Box::new(move |idx| a2.block_key(idx)),
        }
    }
}

/// Builds the layer of a broadcast operation: one task per output block, reading the aligned
/// block of every operand. `make_op` gets the output block's shape.
fn build_broadcast<U: Element>(
    prefix: &str,
    token: &mut Tokenizer,
    plan: &BroadcastPlan,
    inputs: &[Aligned],
    make_op: impl Fn(Vec<usize>) -> Arc<dyn Op>,
) -> Array<U> {
    token.write_str(U::DTYPE.name());
    for a in inputs {
        token.write_str(&a.name);
    }
    let chunks = Chunks::from_sizes(plan.chunks.clone());
    let mut deps_layers: Vec<Arc<rask_graph::Layer>> = Vec::new();
    for a in inputs {
        if !deps_layers.iter().any(|l| Arc::ptr_eq(l, &a.layer)) {
            deps_layers.push(a.layer.clone());
        }
    }
    let mut b = ArrayBuilder::new(prefix, token.finish(), chunks, deps_layers);
    for idx in b.chunks().block_indices() {
        let deps = inputs
            .iter()
            .enumerate()
            .map(|(k, a)| (a.keys)(&plan.input_index(k, &a.shape, &idx)))
            .collect();
        let op = make_op(b.chunks().block_shape(&idx));
        b.task(&idx, op, deps);
    }
    b.finish()
}

/// Plans, aligns and builds an operation over `arrays` (type-erased through `Aligned`).
macro_rules! broadcast_op {
    ($prefix:expr, $tok:expr, [$(($arg:expr, $a:expr)),+], $make:expr) => {{
        let plan = BroadcastPlan::new(&[$(Operand {
            arg: $arg,
            shape: $a.shape(),
            chunks: $a.chunks(),
        }),+])?;
        let mut k = 0usize;
        let aligned: Vec<Aligned> = vec![$({
            let x = align($a, &plan.targets[k])?;
            k += 1;
            Aligned::of(&x)
        }),+];
        let _ = k;
        Ok(build_broadcast($prefix, $tok, &plan, &aligned, $make))
    }};
}

// ---------------------------------------------------------------------------------------------
// Kinds of elementwise operations
// ---------------------------------------------------------------------------------------------

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    fn name(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
            ArithOp::Div => "div",
            ArithOp::Rem => "rem",
        }
    }
}

/// Comparisons giving booleans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// Every binary kind: arithmetic, comparison, logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum BinKind {
    Arith(ArithOp),
    Cmp(CmpOp),
    And,
    Or,
}

impl BinKind {
    fn name(self) -> &'static str {
        match self {
            BinKind::Arith(a) => a.name(),
            BinKind::Cmp(c) => c.name(),
            BinKind::And => "and",
            BinKind::Or => "or",
        }
    }
}

fn is_int<T: Element>() -> bool {
    !matches!(
        T::DTYPE,
        crate::DType::F32 | crate::DType::F64 | crate::DType::Bool
    )
}

/// Integer `a / b` as NumPy's `//`: rounded toward negative infinity (so that
/// `a == (a / b) * b + a % b` with `%`'s sign convention), `x / 0 == 0`, and `MIN / -1` wraps
/// to `MIN` (where Rust would panic).
#[inline(always)]
fn int_div<T: NumElement>(a: T, b: T, signed: bool) -> T {
    if b == T::zero() {
        T::zero()
    } else if signed && b == T::zero() - T::one() {
        // `0 - MIN` overflows; the only value where it matters is MIN, which NumPy keeps.
        if a == T::min_value() {
            a
        } else {
            T::zero() - a
        }
    } else {
        let q = a / b;
        if signed && (q * b != a) && ((a < T::zero()) != (b < T::zero())) {
            q - T::one()
        } else {
            q
        }
    }
}

/// `a % b` with NumPy's integer semantics where Rust would panic (`x % 0 == 0`), and the sign
/// of the divisor as NumPy's `%` (Python's modulo) has.
#[inline(always)]
fn int_rem<T: NumElement>(a: T, b: T, signed: bool) -> T {
    if b == T::zero() || (signed && b == T::zero() - T::one()) {
        T::zero()
    } else {
        let r = a % b;
        if signed && r != T::zero() && ((r < T::zero()) != (b < T::zero())) {
            r + b
        } else {
            r
        }
    }
}

/// Float `%` with NumPy's sign convention (the result has the sign of the divisor).
#[inline(always)]
fn float_rem<T: NumElement>(a: T, b: T) -> T {
    let r = a % b;
    if r != T::zero() && ((r < T::zero()) != (b < T::zero())) {
        r + b
    } else {
        r
    }
}

/// The arithmetic kernel on two (broadcast) blocks, chosen once per block.
fn arith_kernel<T: NumElement>(
    op: ArithOp,
    shape: &[usize],
    a: ndarray::ArrayViewD<'_, T>,
    b: ndarray::ArrayViewD<'_, T>,
) -> Result<ArrayD<T>> {
    let a = broadcast_view(&a, shape, "a")?;
    let b = broadcast_view(&b, shape, "b")?;
    let z = Zip::from(&a).and(&b);
    let int = is_int::<T>();
    let signed = T::min_value() < T::zero();
    Ok(match op {
        ArithOp::Add => z.map_collect(|&x, &y| x + y),
        ArithOp::Sub => z.map_collect(|&x, &y| x - y),
        ArithOp::Mul => z.map_collect(|&x, &y| x * y),
        ArithOp::Div if int => z.map_collect(|&x, &y| int_div(x, y, signed)),
        ArithOp::Div => z.map_collect(|&x, &y| x / y),
        ArithOp::Rem if int => z.map_collect(|&x, &y| int_rem(x, y, signed)),
        ArithOp::Rem => z.map_collect(|&x, &y| float_rem(x, y)),
    })
}

fn cmp_kernel<T: Element>(
    op: CmpOp,
    shape: &[usize],
    a: ndarray::ArrayViewD<'_, T>,
    b: ndarray::ArrayViewD<'_, T>,
) -> Result<ArrayD<bool>> {
    let a = broadcast_view(&a, shape, "a")?;
    let b = broadcast_view(&b, shape, "b")?;
    let z = Zip::from(&a).and(&b);
    Ok(match op {
        CmpOp::Eq => z.map_collect(|x, y| x == y),
        CmpOp::Ne => z.map_collect(|x, y| x != y),
        CmpOp::Lt => z.map_collect(|x, y| x < y),
        CmpOp::Le => z.map_collect(|x, y| x <= y),
        CmpOp::Gt => z.map_collect(|x, y| x > y),
        CmpOp::Ge => z.map_collect(|x, y| x >= y),
    })
}

/// A block viewed at the output block's shape (stride 0 along broadcast axes).
fn broadcast_view<'a, T>(
    a: &'a ndarray::ArrayViewD<'a, T>,
    shape: &[usize],
    what: &str,
) -> Result<ndarray::ArrayViewD<'a, T>> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        RaskError::ShapeMismatch(format!(
            "block of operand `{what}` with shape {:?} does not broadcast to the output block {shape:?}",
            a.shape()
        ))
    })
}

/// A block-level kernel on two operands. Chosen when the graph is built (where the element
/// type's bounds are known), so the op itself only needs `Element`.
type BinFn<A, U> = fn(BinKind, &[usize], &ArrayD<A>, &ArrayD<A>) -> Result<ArrayD<U>>;

/// One output block of a binary operation on two arrays.
struct Binary<A, U> {
    kind: BinKind,
    shape: Vec<usize>,
    kernel: BinFn<A, U>,
}

#[derive(Serialize, Deserialize)]
struct BinaryParams {
    dtype: String,
    kind: BinKind,
    shape: Vec<usize>,
}

const BINARY: &str = "rask.array.binary";

/// Rebuilds a binary op with the kernel its kind and dtype select, as the public methods do.
fn decode_binary(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: BinaryParams = decode_params(BINARY, params)?;
    let (kind, shape) = (p.kind, p.shape);
    match kind {
        BinKind::Arith(_) => with_dtype!(num: BINARY, &p.dtype, |T| Ok(Arc::new(Binary::<T, T> {
            kind,
            shape,
            kernel: arith_fn::<T>,
        }) as Arc<dyn Op>)),
        BinKind::Cmp(_) => with_dtype!(all: BINARY, &p.dtype, |T| Ok(Arc::new(
            Binary::<T, bool> {
                kind,
                shape,
                kernel: cmp_fn::<T>,
            }
        ) as Arc<dyn Op>)),
        BinKind::And | BinKind::Or => with_dtype!(BINARY, &p.dtype, [bool], |T| Ok(Arc::new(
            Binary::<T, bool> {
                kind,
                shape,
                kernel: logic_fn,
            }
        )
            as Arc<dyn Op>)),
    }
}
rask_graph::register_op!(BINARY, decode_binary);

impl<A: Element, U: Element> Op for Binary<A, U> {
    fn name(&self) -> &str {
        "rask.array.binary"
    }
    fn label(&self) -> &str {
        self.kind.name()
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &BinaryParams {
                dtype: A::DTYPE.name().to_string(),
                kind: self.kind,
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let a = input_block::<A>(inputs, 0, self.name())?;
        let b = input_block::<A>(inputs, 1, self.name())?;
        Ok(block_value((self.kernel)(self.kind, &self.shape, a, b)?))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<U>(&self.shape))
    }
}

/// Integer `+ - *` wrapping on overflow as NumPy does (Rust's operators panic in debug
/// builds). The concrete type is found once per block through `Any`; `None` for floats.
fn wrapping_arith<T: NumElement>(
    op: ArithOp,
    shape: &[usize],
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Option<Result<ArrayD<T>>> {
    macro_rules! ints {
        ($($t:ty),*) => {$(
            if let (Some(a), Some(b)) = (
                (a as &dyn Any).downcast_ref::<ArrayD<$t>>(),
                (b as &dyn Any).downcast_ref::<ArrayD<$t>>(),
            ) {
                let (av, bv) = (a.view(), b.view());
                let out = broadcast_view(&av, shape, "a").and_then(|av| {
                    let bv = broadcast_view(&bv, shape, "b")?;
                    let z = Zip::from(&av).and(&bv);
                    Ok(match op {
                        ArithOp::Add => z.map_collect(|x, y| x.wrapping_add(*y)),
                        ArithOp::Sub => z.map_collect(|x, y| x.wrapping_sub(*y)),
                        _ => z.map_collect(|x, y| x.wrapping_mul(*y)),
                    })
                });
                return Some(out.map(|o| same_type::<$t, T>(o).expect("same type")));
            }
        )*};
    }
    ints!(u8, u16, u32, u64, i8, i16, i32, i64);
    None
}

/// [`wrapping_arith`] with a scalar.
fn wrapping_scalar<T: NumElement>(
    op: ArithOp,
    s: T,
    scalar_left: bool,
    a: &ArrayD<T>,
) -> Option<ArrayD<T>> {
    macro_rules! ints {
        ($($t:ty),*) => {$(
            if let (Some(a), Some(&s)) = (
                (a as &dyn Any).downcast_ref::<ArrayD<$t>>(),
                (&s as &dyn Any).downcast_ref::<$t>(),
            ) {
                let out = match (op, scalar_left) {
                    (ArithOp::Add, _) => a.mapv(|x| x.wrapping_add(s)),
                    (ArithOp::Sub, false) => a.mapv(|x| x.wrapping_sub(s)),
                    (ArithOp::Sub, true) => a.mapv(|x| s.wrapping_sub(x)),
                    _ => a.mapv(|x| x.wrapping_mul(s)),
                };
                return Some(same_type::<$t, T>(out).expect("same type"));
            }
        )*};
    }
    ints!(u8, u16, u32, u64, i8, i16, i32, i64);
    None
}

fn arith_fn<T: NumElement>(
    kind: BinKind,
    shape: &[usize],
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<ArrayD<T>> {
    match kind {
        BinKind::Arith(op @ (ArithOp::Add | ArithOp::Sub | ArithOp::Mul)) if is_int::<T>() => {
            match wrapping_arith(op, shape, a, b) {
                Some(out) => out,
                None => arith_kernel(op, shape, a.view(), b.view()),
            }
        }
        BinKind::Arith(op) => arith_kernel(op, shape, a.view(), b.view()),
        _ => Err(RaskError::invalid_argument("kind", "not arithmetic")),
    }
}

fn cmp_fn<T: Element>(
    kind: BinKind,
    shape: &[usize],
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<ArrayD<bool>> {
    match kind {
        BinKind::Cmp(op) => cmp_kernel(op, shape, a.view(), b.view()),
        _ => Err(RaskError::invalid_argument("kind", "not a comparison")),
    }
}

fn logic_fn(
    kind: BinKind,
    shape: &[usize],
    a: &ArrayD<bool>,
    b: &ArrayD<bool>,
) -> Result<ArrayD<bool>> {
    let av = a.view();
    let bv = b.view();
    let a = broadcast_view(&av, shape, "a")?;
    let b = broadcast_view(&bv, shape, "b")?;
    let z = Zip::from(&a).and(&b);
    match kind {
        BinKind::And => Ok(z.map_collect(|&x, &y| x & y)),
        BinKind::Or => Ok(z.map_collect(|&x, &y| x | y)),
        _ => Err(RaskError::invalid_argument("kind", "not a logical op")),
    }
}

fn binary<A: Element, U: Element>(
    kind: BinKind,
    a: &Array<A>,
    b: &Array<A>,
    kernel: BinFn<A, U>,
) -> Result<Array<U>> {
    let mut t = Tokenizer::new("rask.array.binary");
    t.write_str(kind.name());
    broadcast_op!(kind.name(), &mut t, [("self", a), ("other", b)], |shape| {
        Arc::new(Binary::<A, U> {
            kind,
            shape,
            kernel,
        }) as Arc<dyn Op>
    })
}

// ---------------------------------------------------------------------------------------------
// Ops with one array operand: scalars, unary math, casts
// ---------------------------------------------------------------------------------------------

/// The kinds of one-operand elementwise ops; scalars travel in the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum MapKind {
    /// `block op scalar`, or `scalar op block` when `scalar_left`.
    Arith {
        op: ArithOp,
        scalar_left: bool,
    },
    Cmp(CmpOp),
    Abs,
    Neg,
    Not,
    Sqrt,
    Exp,
    Ln,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Round,
    Powf(f64),
    Powi(i32),
    Clip,
    AsType,
}

impl MapKind {
    fn name(&self) -> &'static str {
        match self {
            MapKind::Arith { op, .. } => op.name(),
            MapKind::Cmp(c) => c.name(),
            MapKind::Abs => "abs",
            MapKind::Neg => "neg",
            MapKind::Not => "not",
            MapKind::Sqrt => "sqrt",
            MapKind::Exp => "exp",
            MapKind::Ln => "log",
            MapKind::Sin => "sin",
            MapKind::Cos => "cos",
            MapKind::Tan => "tan",
            MapKind::Floor => "floor",
            MapKind::Ceil => "ceil",
            MapKind::Round => "round",
            MapKind::Powf(_) => "pow",
            MapKind::Powi(_) => "pow",
            MapKind::Clip => "clip",
            MapKind::AsType => "astype",
        }
    }
}

/// A block-level kernel on one operand with up to two scalars of the input type.
type MapFn<T, U> = fn(&MapKind, &[T], &ArrayD<T>) -> Result<ArrayD<U>>;

/// One output block of a one-operand op.
struct Map<T, U> {
    kind: MapKind,
    scalars: Vec<T>,
    shape: Vec<usize>,
    kernel: MapFn<T, U>,
}

#[derive(Serialize, Deserialize)]
struct MapParams {
    dtype: String,
    out_dtype: String,
    kind: MapKind,
    /// The scalars written exactly (`Debug` of integers and floats round-trips).
    scalars: Vec<String>,
    shape: Vec<usize>,
}

const MAP: &str = "rask.array.map";

fn map_op_of<T: Element + std::str::FromStr, U: Element>(
    p: &MapParams,
    kernel: MapFn<T, U>,
) -> Result<Arc<dyn Op>> {
    if p.out_dtype != U::DTYPE.name() {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{MAP}`"),
            message: format!(
                "`{}` of {} gives {}, the parameters say {}",
                p.kind.name(),
                T::DTYPE,
                U::DTYPE,
                p.out_dtype
            ),
        });
    }
    let scalars = p
        .scalars
        .iter()
        .map(|s| parse_scalar::<T>(MAP, s))
        .collect::<Result<Vec<T>>>()?;
    // The kernels index their scalars: a count that does not fit the kind is refused here,
    // not a panic in the task.
    let want = match p.kind {
        MapKind::Arith { .. } | MapKind::Cmp(_) | MapKind::Powf(_) => 1,
        MapKind::Clip => 2,
        _ => 0,
    };
    if scalars.len() != want {
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{MAP}`"),
            message: format!(
                "`{}` takes {want} scalars, got {}",
                p.kind.name(),
                scalars.len()
            ),
        });
    }
    Ok(Arc::new(Map::<T, U> {
        kind: p.kind,
        scalars,
        shape: p.shape.clone(),
        kernel,
    }))
}

/// Rebuilds a one-operand op with the kernel its kind and dtypes select, as the public
/// methods do.
fn decode_map(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: MapParams = decode_params(MAP, params)?;
    match p.kind {
        MapKind::Arith { .. } => {
            with_dtype!(num: MAP, &p.dtype, |T| map_op_of::<T, T>(&p, scalar_arith_fn::<T>))
        }
        MapKind::Cmp(_) => {
            with_dtype!(all: MAP, &p.dtype, |T| map_op_of::<T, bool>(&p, scalar_cmp_fn::<T>))
        }
        MapKind::Abs | MapKind::Neg => with_dtype!(
            MAP,
            &p.dtype,
            [i8, i16, i32, i64, f32, f64],
            |T| map_op_of::<T, T>(&p, signed_fn::<T>)
        ),
        MapKind::Not => with_dtype!(MAP, &p.dtype, [bool], |T| map_op_of::<T, bool>(&p, not_fn)),
        MapKind::Sqrt
        | MapKind::Exp
        | MapKind::Ln
        | MapKind::Sin
        | MapKind::Cos
        | MapKind::Tan
        | MapKind::Floor
        | MapKind::Ceil
        | MapKind::Round
        | MapKind::Powf(_)
        | MapKind::Powi(_) => {
            with_dtype!(MAP, &p.dtype, [f32, f64], |T| map_op_of::<T, T>(
                &p,
                float_fn::<T>
            ))
        }
        MapKind::Clip => with_dtype!(all: MAP, &p.dtype, |T| map_op_of::<T, T>(&p, clip_fn::<T>)),
        MapKind::AsType => with_dtype!(all: MAP, &p.dtype, |T| decode_cast::<T>(&p)),
    }
}

/// `astype` from `T`: the second dtype dispatch, on the output.
fn decode_cast<T: Element + std::str::FromStr>(p: &MapParams) -> Result<Arc<dyn Op>> {
    with_dtype!(all: MAP, &p.out_dtype, |U| map_op_of::<T, U>(p, cast_fn::<T, U>))
}

rask_graph::register_op!(MAP, decode_map);

impl<T: Element, U: Element> Op for Map<T, U> {
    fn name(&self) -> &str {
        "rask.array.map"
    }
    fn label(&self) -> &str {
        self.kind.name()
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &MapParams {
                dtype: T::DTYPE.name().to_string(),
                out_dtype: U::DTYPE.name().to_string(),
                kind: self.kind,
                scalars: self.scalars.iter().map(|s| format!("{s:?}")).collect(),
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let a = input_block::<T>(inputs, 0, self.name())?;
        Ok(block_value((self.kernel)(&self.kind, &self.scalars, a)?))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<U>(&self.shape))
    }
}

fn map_op<T: Element, U: Element>(
    a: &Array<T>,
    kind: MapKind,
    scalars: Vec<T>,
    kernel: MapFn<T, U>,
) -> Array<U> {
    let mut t = Tokenizer::new("rask.array.map");
    t.write_str(T::DTYPE.name());
    t.write_str(U::DTYPE.name());
    // `MapKind` serializes deterministically (postcard), scalars through their own tokens.
    t.write_bytes(&encode_params("rask.array.map", &kind).unwrap_or_default());
    for s in &scalars {
        s.tokenize(&mut t);
    }
    t.write_str(a.name().as_str());
    let mut b = ArrayBuilder::new(
        kind.name(),
        t.finish(),
        a.chunks().clone(),
        vec![a.layer().clone()],
    );
    for idx in b.chunks().block_indices() {
        let op = Arc::new(Map::<T, U> {
            kind,
            scalars: scalars.clone(),
            shape: b.chunks().block_shape(&idx),
            kernel,
        });
        b.task(&idx, op, vec![a.block_key(&idx)]);
    }
    b.finish()
}

fn scalar_arith_fn<T: NumElement>(kind: &MapKind, s: &[T], a: &ArrayD<T>) -> Result<ArrayD<T>> {
    let MapKind::Arith { op, scalar_left } = *kind else {
        return Err(RaskError::invalid_argument("kind", "not arithmetic"));
    };
    let s = s[0];
    let int = is_int::<T>();
    if int
        && matches!(op, ArithOp::Add | ArithOp::Sub | ArithOp::Mul)
        && let Some(out) = wrapping_scalar(op, s, scalar_left, a)
    {
        return Ok(out);
    }
    let signed = T::min_value() < T::zero();
    Ok(match (op, scalar_left) {
        (ArithOp::Add, _) => a.mapv(|x| x + s),
        (ArithOp::Sub, false) => a.mapv(|x| x - s),
        (ArithOp::Sub, true) => a.mapv(|x| s - x),
        (ArithOp::Mul, _) => a.mapv(|x| x * s),
        (ArithOp::Div, false) if int => a.mapv(|x| int_div(x, s, signed)),
        (ArithOp::Div, true) if int => a.mapv(|x| int_div(s, x, signed)),
        (ArithOp::Div, false) => a.mapv(|x| x / s),
        (ArithOp::Div, true) => a.mapv(|x| s / x),
        (ArithOp::Rem, false) if int => a.mapv(|x| int_rem(x, s, signed)),
        (ArithOp::Rem, true) if int => a.mapv(|x| int_rem(s, x, signed)),
        (ArithOp::Rem, false) => a.mapv(|x| float_rem(x, s)),
        (ArithOp::Rem, true) => a.mapv(|x| float_rem(s, x)),
    })
}

fn scalar_cmp_fn<T: Element>(kind: &MapKind, s: &[T], a: &ArrayD<T>) -> Result<ArrayD<bool>> {
    let MapKind::Cmp(op) = *kind else {
        return Err(RaskError::invalid_argument("kind", "not a comparison"));
    };
    let s = &s[0];
    Ok(match op {
        CmpOp::Eq => a.map(|x| x == s),
        CmpOp::Ne => a.map(|x| x != s),
        CmpOp::Lt => a.map(|x| x < s),
        CmpOp::Le => a.map(|x| x <= s),
        CmpOp::Gt => a.map(|x| x > s),
        CmpOp::Ge => a.map(|x| x >= s),
    })
}

fn float_fn<T: FloatElement>(kind: &MapKind, s: &[T], a: &ArrayD<T>) -> Result<ArrayD<T>> {
    Ok(match *kind {
        MapKind::Sqrt => a.mapv(|x| x.sqrt()),
        MapKind::Exp => a.mapv(|x| x.exp()),
        MapKind::Ln => a.mapv(|x| x.ln()),
        MapKind::Sin => a.mapv(|x| x.sin()),
        MapKind::Cos => a.mapv(|x| x.cos()),
        MapKind::Tan => a.mapv(|x| x.tan()),
        MapKind::Floor => a.mapv(|x| x.floor()),
        MapKind::Ceil => a.mapv(|x| x.ceil()),
        // NumPy rounds halves to even.
        MapKind::Round => a.mapv(round_half_even),
        MapKind::Powf(_) => {
            let p = s[0];
            a.mapv(|x| x.powf(p))
        }
        MapKind::Powi(n) => a.mapv(|x| x.powi(n)),
        _ => return Err(RaskError::invalid_argument("kind", "not a float op")),
    })
}

fn round_half_even<T: FloatElement>(x: T) -> T {
    let r = x.round();
    let half = T::one() / (T::one() + T::one());
    if (x - x.trunc()).abs() == half {
        // A tie: `round` went away from zero; step back when that made it odd.
        let two = T::one() + T::one();
        if (r % two) != T::zero() {
            return r - x.signum();
        }
    }
    r
}

fn signed_fn<T: NumElement + num_traits::Signed>(
    kind: &MapKind,
    _s: &[T],
    a: &ArrayD<T>,
) -> Result<ArrayD<T>> {
    // `abs` and `neg` wrap at MIN for integers, as NumPy does (Rust would panic in debug).
    let signed_int = is_int::<T>();
    Ok(match *kind {
        MapKind::Abs if signed_int => a.mapv(|x| if x == T::min_value() { x } else { x.abs() }),
        MapKind::Abs => a.mapv(|x| x.abs()),
        MapKind::Neg if signed_int => a.mapv(|x| if x == T::min_value() { x } else { -x }),
        MapKind::Neg => a.mapv(|x| -x),
        _ => return Err(RaskError::invalid_argument("kind", "not abs or neg")),
    })
}

fn clip_fn<T: Element>(_kind: &MapKind, s: &[T], a: &ArrayD<T>) -> Result<ArrayD<T>> {
    let (lo, hi) = (s[0], s[1]);
    // NaN stays NaN: both comparisons are false.
    Ok(a.mapv(|x| {
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }))
}

fn not_fn(_kind: &MapKind, _s: &[bool], a: &ArrayD<bool>) -> Result<ArrayD<bool>> {
    Ok(a.mapv(|x| !x))
}

// ---------------------------------------------------------------------------------------------
// astype
// ---------------------------------------------------------------------------------------------

/// Moves an `ArrayD<X>` into an `ArrayD<U>` when they are the same type.
fn same_type<X: 'static, U: 'static>(a: ArrayD<X>) -> Option<ArrayD<U>> {
    let boxed: Box<dyn Any> = Box::new(a);
    boxed.downcast::<ArrayD<U>>().ok().map(|b| *b)
}

/// Casts a block with NumPy's semantics: integer to integer wraps (two's complement), float
/// to integer truncates toward zero (out-of-range values saturate and NaN becomes 0, where
/// NumPy's result is undefined), anything to `bool` is `!= 0`, `bool` is 0 or 1. One direct
/// `as` per element: the concrete pair is found once per block through `TypeId`s.
fn cast_fn<T: Element, U: Element>(_k: &MapKind, _s: &[T], a: &ArrayD<T>) -> Result<ArrayD<U>> {
    let any = a as &dyn Any;
    macro_rules! to {
        ($x:expr, $src:ty; $($dst:ty),*) => {
            $(
                if TypeId::of::<U>() == TypeId::of::<$dst>() {
                    return Ok(same_type::<$dst, U>($x.mapv(|v: $src| v as $dst)).expect("same type"));
                }
            )*
            if TypeId::of::<U>() == TypeId::of::<bool>() {
                return Ok(same_type::<bool, U>($x.mapv(|v: $src| v != (0 as $src))).expect("same type"));
            }
        };
    }
    macro_rules! from {
        ($($src:ty),*) => {
            $(
                if let Some(x) = any.downcast_ref::<ArrayD<$src>>() {
                    to!(x, $src; u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
                }
            )*
        };
    }
    from!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
    if let Some(x) = any.downcast_ref::<ArrayD<bool>>() {
        macro_rules! from_bool {
            ($($dst:ty),*) => {
                $(
                    if TypeId::of::<U>() == TypeId::of::<$dst>() {
                        return Ok(same_type::<$dst, U>(x.mapv(|v| v as u8 as $dst)).expect("same type"));
                    }
                )*
            };
        }
        from_bool!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
        if let Some(out) = same_type::<bool, U>(x.clone()) {
            return Ok(out);
        }
    }
    // An element type defined outside this crate: through f64.
    Ok(a.mapv(|v| U::from_f64(v.to_f64())))
}

// ---------------------------------------------------------------------------------------------
// where_
// ---------------------------------------------------------------------------------------------

struct Where<T> {
    shape: Vec<usize>,
    _t: PhantomData<fn() -> T>,
}

#[derive(Serialize, Deserialize)]
struct WhereParams {
    dtype: String,
    shape: Vec<usize>,
}

const WHERE: &str = "rask.array.where";

fn decode_where(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: WhereParams = decode_params(WHERE, params)?;
    with_dtype!(all: WHERE, &p.dtype, |T| Ok(Arc::new(Where::<T> {
        shape: p.shape,
        _t: PhantomData,
    }) as Arc<dyn Op>))
}
rask_graph::register_op!(WHERE, decode_where);

impl<T: Element> Op for Where<T> {
    fn name(&self) -> &str {
        "rask.array.where"
    }
    fn label(&self) -> &str {
        "where"
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &WhereParams {
                dtype: T::DTYPE.name().to_string(),
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let c = input_block::<bool>(inputs, 0, self.name())?.view();
        let a = input_block::<T>(inputs, 1, self.name())?.view();
        let b = input_block::<T>(inputs, 2, self.name())?.view();
        let c = broadcast_view(&c, &self.shape, "cond")?;
        let a = broadcast_view(&a, &self.shape, "a")?;
        let b = broadcast_view(&b, &self.shape, "b")?;
        Ok(block_value(
            Zip::from(&c)
                .and(&a)
                .and(&b)
                .map_collect(|&c, &x, &y| if c { x } else { y }),
        ))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<T>(&self.shape))
    }
}

/// `a` where `cond` holds, `b` elsewhere, with all three broadcast together (NumPy's
/// `where(cond, a, b)`). Errors name the argument whose shape does not broadcast.
///
/// ```
/// use rask::prelude::*;
/// use rask::array;
///
/// let x = array::arange::<f64>(0.0, 6.0, 1.0, 4)?;           // [0, 1, 2, 3, 4, 5]
/// let col = array::ones::<f64>(&[2, 1], 1)?;                  // shape (2, 1)
/// let grid = (&x + &col)?;                                    // broadcast to (2, 6)
/// let big = grid.gt_scalar(3.0);
/// let y = array::where_(&big, &grid, &(&grid * -1.0))?;
/// let v = y.compute()?;
/// assert_eq!(v.shape(), &[2, 6]);
/// let first_row: Vec<f64> = v.iter().take(6).copied().collect();
/// assert_eq!(first_row, vec![-1.0, -2.0, -3.0, 4.0, 5.0, 6.0]);
/// # Ok::<(), rask::RaskError>(())
/// ```
pub fn where_<T: Element>(cond: &Array<bool>, a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    let mut t = Tokenizer::new("rask.array.where");
    broadcast_op!(
        "where",
        &mut t,
        [("cond", cond), ("a", a), ("b", b)],
        |shape| Arc::new(Where::<T> {
            shape,
            _t: PhantomData,
        }) as Arc<dyn Op>
    )
}

// ---------------------------------------------------------------------------------------------
// map_blocks
// ---------------------------------------------------------------------------------------------

type BlockFn<T, U> = dyn Fn(&ArrayD<T>) -> ArrayD<U> + Send + Sync;

/// One block of `map_blocks`: runs the user's closure and checks the block's shape. Local
/// only: a closure cannot cross the wire, so it reports no params (wrap the function in a
/// `#[rask::delayed]` call per block to send it to a cluster).
struct MapBlocks<T, U> {
    f: Arc<BlockFn<T, U>>,
    key: Key,
    shape: Vec<usize>,
}

impl<T: Element, U: Element> Op for MapBlocks<T, U> {
    fn name(&self) -> &str {
        "rask.array.map_blocks"
    }
    fn label(&self) -> &str {
        "map_blocks"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let a = input_block::<T>(inputs, 0, self.name())?;
        let out = (self.f)(a);
        if out.shape() != self.shape.as_slice() {
            return Err(RaskError::ShapeMismatch(format!(
                "map_blocks: the function returned shape {:?} for block {}, declared {:?}",
                out.shape(),
                self.key,
                self.shape
            )));
        }
        Ok(block_value(out))
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(block_nbytes::<U>(&self.shape))
    }
}

// ---------------------------------------------------------------------------------------------
// The public methods
// ---------------------------------------------------------------------------------------------

impl<T: NumElement> Array<T> {
    /// `self + other` with broadcasting; errors name the argument whose shape does not fit.
    pub fn try_add(&self, other: &Array<T>) -> Result<Array<T>> {
        binary(BinKind::Arith(ArithOp::Add), self, other, arith_fn::<T>)
    }
    /// `self - other` with broadcasting.
    pub fn try_sub(&self, other: &Array<T>) -> Result<Array<T>> {
        binary(BinKind::Arith(ArithOp::Sub), self, other, arith_fn::<T>)
    }
    /// `self * other` with broadcasting.
    pub fn try_mul(&self, other: &Array<T>) -> Result<Array<T>> {
        binary(BinKind::Arith(ArithOp::Mul), self, other, arith_fn::<T>)
    }
    /// `self / other` with broadcasting (integers: NumPy's floor division `//`, `x / 0 == 0`).
    pub fn try_div(&self, other: &Array<T>) -> Result<Array<T>> {
        binary(BinKind::Arith(ArithOp::Div), self, other, arith_fn::<T>)
    }
    /// `self % other` with broadcasting and NumPy's sign convention (the divisor's sign).
    pub fn try_rem(&self, other: &Array<T>) -> Result<Array<T>> {
        binary(BinKind::Arith(ArithOp::Rem), self, other, arith_fn::<T>)
    }

    /// `self op scalar` (or `scalar op self` when `scalar_left`), the scalar carried in the
    /// op's parameters. What the operators with scalars call.
    pub fn scalar_op(&self, op: ArithOp, scalar: T, scalar_left: bool) -> Array<T> {
        map_op(
            self,
            MapKind::Arith { op, scalar_left },
            vec![scalar],
            scalar_arith_fn::<T>,
        )
    }

    /// Limits values to `[min, max]` (NaN stays NaN). Errors name `min` when `min > max`.
    pub fn clip(&self, min: T, max: T) -> Result<Array<T>> {
        if min > max {
            return Err(RaskError::invalid_argument(
                "min",
                format!("must not exceed max, got min={min:?} max={max:?}"),
            ));
        }
        Ok(map_op(self, MapKind::Clip, vec![min, max], clip_fn::<T>))
    }
}

impl<T: NumElement + num_traits::Signed> Array<T> {
    /// Absolute value (integers: `abs(MIN) == MIN`, as NumPy).
    pub fn abs(&self) -> Array<T> {
        map_op(self, MapKind::Abs, Vec::new(), signed_fn::<T>)
    }
    /// Negation (integers wrap at MIN, as NumPy).
    pub fn neg(&self) -> Array<T> {
        map_op(self, MapKind::Neg, Vec::new(), signed_fn::<T>)
    }
}

impl<T: FloatElement> Array<T> {
    fn float_map(&self, kind: MapKind, scalars: Vec<T>) -> Array<T> {
        map_op(self, kind, scalars, float_fn::<T>)
    }
    pub fn sqrt(&self) -> Array<T> {
        self.float_map(MapKind::Sqrt, Vec::new())
    }
    pub fn exp(&self) -> Array<T> {
        self.float_map(MapKind::Exp, Vec::new())
    }
    /// Natural logarithm.
    pub fn log(&self) -> Array<T> {
        self.float_map(MapKind::Ln, Vec::new())
    }
    pub fn sin(&self) -> Array<T> {
        self.float_map(MapKind::Sin, Vec::new())
    }
    pub fn cos(&self) -> Array<T> {
        self.float_map(MapKind::Cos, Vec::new())
    }
    pub fn tan(&self) -> Array<T> {
        self.float_map(MapKind::Tan, Vec::new())
    }
    pub fn floor(&self) -> Array<T> {
        self.float_map(MapKind::Floor, Vec::new())
    }
    pub fn ceil(&self) -> Array<T> {
        self.float_map(MapKind::Ceil, Vec::new())
    }
    /// Rounds to the nearest integer, halves to even (as NumPy's `round`).
    pub fn round(&self) -> Array<T> {
        self.float_map(MapKind::Round, Vec::new())
    }
    /// Every element to the power `p`.
    pub fn powf(&self, p: T) -> Array<T> {
        self.float_map(MapKind::Powf(p.to_f64()), vec![p])
    }
    /// Every element to the integer power `n`.
    pub fn powi(&self, n: i32) -> Array<T> {
        self.float_map(MapKind::Powi(n), Vec::new())
    }
}

macro_rules! cmp_methods {
    ($($name:ident, $sname:ident, $op:ident, $doc:literal;)*) => {
        impl<T: Element> Array<T> {
            $(
                #[doc = concat!("`self ", $doc, " other` elementwise, with broadcasting.")]
                pub fn $name(&self, other: &Array<T>) -> Result<Array<bool>> {
                    binary(BinKind::Cmp(CmpOp::$op), self, other, cmp_fn::<T>)
                }
                #[doc = concat!("`self ", $doc, " scalar` elementwise.")]
                pub fn $sname(&self, scalar: T) -> Array<bool> {
                    map_op(self, MapKind::Cmp(CmpOp::$op), vec![scalar], scalar_cmp_fn::<T>)
                }
            )*
        }
    };
}

cmp_methods! {
    eq, eq_scalar, Eq, "==";
    ne, ne_scalar, Ne, "!=";
    lt, lt_scalar, Lt, "<";
    le, le_scalar, Le, "<=";
    gt, gt_scalar, Gt, ">";
    ge, ge_scalar, Ge, ">=";
}

impl Array<bool> {
    /// Elementwise `and`, with broadcasting.
    pub fn logical_and(&self, other: &Array<bool>) -> Result<Array<bool>> {
        binary(BinKind::And, self, other, logic_fn)
    }
    /// Elementwise `or`, with broadcasting.
    pub fn logical_or(&self, other: &Array<bool>) -> Result<Array<bool>> {
        binary(BinKind::Or, self, other, logic_fn)
    }
    /// Elementwise `not`.
    pub fn logical_not(&self) -> Array<bool> {
        map_op(self, MapKind::Not, Vec::new(), not_fn)
    }
}

impl<T: Element> Array<T> {
    /// The array with elements of type `U` (NumPy's `astype` with `casting="unsafe"`): integer
    /// to integer wraps, float to integer truncates toward zero (saturating; NaN becomes 0),
    /// to `bool` is `!= 0`. Casting to the same type returns the array itself.
    pub fn astype<U: Element>(&self) -> Array<U> {
        if TypeId::of::<T>() == TypeId::of::<U>() {
            let any: Box<dyn Any> = Box::new(self.clone());
            if let Ok(same) = any.downcast::<Array<U>>() {
                return *same;
            }
        }
        map_op(self, MapKind::AsType, Vec::new(), cast_fn::<T, U>)
    }

    /// Applies `f` to every block; each output block must have the input block's shape
    /// (checked when it runs: another shape is an error naming the block's key).
    ///
    /// A closure cannot be hashed or sent to another process, so the result gets a fresh
    /// (unique) name and its tasks run only in this process.
    pub fn map_blocks<U: Element>(
        &self,
        f: impl Fn(&ArrayD<T>) -> ArrayD<U> + Send + Sync + 'static,
    ) -> Array<U> {
        self.map_blocks_impl(self.chunks().clone(), Arc::new(f))
    }

    /// [`map_blocks`](Array::map_blocks) whose output blocks have the lengths `chunks`
    /// (one list per output axis, as many blocks per axis as the input has). Errors name
    /// `chunks` when the block counts do not match; a block of another shape at run time is
    /// an error naming its key.
    pub fn map_blocks_with_chunks<U: Element>(
        &self,
        chunks: Vec<Vec<usize>>,
        f: impl Fn(&ArrayD<T>) -> ArrayD<U> + Send + Sync + 'static,
    ) -> Result<Array<U>> {
        let counts: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        if counts != self.numblocks() {
            return Err(RaskError::invalid_argument(
                "chunks",
                format!(
                    "map_blocks output chunks {chunks:?} have {counts:?} blocks per axis; the input has {:?}",
                    self.numblocks()
                ),
            ));
        }
        let shape: Vec<usize> = chunks.iter().map(|c| c.iter().sum()).collect();
        let chunks = Chunks::normalize(chunks, &shape, std::mem::size_of::<U>())?;
        Ok(self.map_blocks_impl(chunks, Arc::new(f)))
    }

    fn map_blocks_impl<U: Element>(&self, chunks: Chunks, f: Arc<BlockFn<T, U>>) -> Array<U> {
        let mut b = ArrayBuilder::new(
            "map_blocks",
            Token::fresh(),
            chunks,
            vec![self.layer().clone()],
        );
        for idx in b.chunks().block_indices() {
            let op = Arc::new(MapBlocks::<T, U> {
                f: f.clone(),
                key: b.key(&idx),
                shape: b.chunks().block_shape(&idx),
            });
            b.task(&idx, op, vec![self.block_key(&idx)]);
        }
        b.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// std::ops
// ---------------------------------------------------------------------------------------------

macro_rules! ops_traits {
    ($($trait:ident, $method:ident, $try:ident, $op:ident;)*) => {$(
        /// `&a op &b`: broadcasting can fail, so the output is a `Result`.
        impl<T: NumElement> std::ops::$trait<&Array<T>> for &Array<T> {
            type Output = Result<Array<T>>;
            fn $method(self, rhs: &Array<T>) -> Result<Array<T>> {
                self.$try(rhs)
            }
        }
        impl<T: NumElement> std::ops::$trait<Array<T>> for Array<T> {
            type Output = Result<Array<T>>;
            fn $method(self, rhs: Array<T>) -> Result<Array<T>> {
                self.$try(&rhs)
            }
        }
        impl<T: NumElement> std::ops::$trait<T> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                self.scalar_op(ArithOp::$op, rhs, false)
            }
        }
        impl<T: NumElement> std::ops::$trait<T> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                self.scalar_op(ArithOp::$op, rhs, false)
            }
        }
    )*};
}

ops_traits! {
    Add, add, try_add, Add;
    Sub, sub, try_sub, Sub;
    Mul, mul, try_mul, Mul;
    Div, div, try_div, Div;
    Rem, rem, try_rem, Rem;
}

// `scalar op array` needs one impl per concrete scalar type (the orphan rule forbids a
// generic `impl<T> Add<Array<T>> for T`).
macro_rules! scalar_left {
    ($($t:ty),*) => {$(
        scalar_left!(@one $t, Add, add, Add);
        scalar_left!(@one $t, Sub, sub, Sub);
        scalar_left!(@one $t, Mul, mul, Mul);
        scalar_left!(@one $t, Div, div, Div);
        scalar_left!(@one $t, Rem, rem, Rem);
    )*};
    (@one $t:ty, $trait:ident, $method:ident, $op:ident) => {
        impl std::ops::$trait<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn $method(self, rhs: &Array<$t>) -> Array<$t> {
                rhs.scalar_op(ArithOp::$op, self, true)
            }
        }
        impl std::ops::$trait<Array<$t>> for $t {
            type Output = Array<$t>;
            fn $method(self, rhs: Array<$t>) -> Array<$t> {
                rhs.scalar_op(ArithOp::$op, self, true)
            }
        }
    };
}

scalar_left!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

impl<T: NumElement + num_traits::Signed> std::ops::Neg for &Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        Array::neg(self)
    }
}

impl<T: NumElement + num_traits::Signed> std::ops::Neg for Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        Array::neg(&self)
    }
}

impl std::ops::Not for &Array<bool> {
    type Output = Array<bool>;
    fn not(self) -> Array<bool> {
        self.logical_not()
    }
}

impl std::ops::Not for Array<bool> {
    type Output = Array<bool>;
    fn not(self) -> Array<bool> {
        self.logical_not()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refinement_is_the_union_of_boundaries() {
        assert_eq!(refine(&[&[4, 4, 2], &[3, 3, 3, 1]]), vec![3, 1, 2, 2, 1, 1]);
        assert_eq!(refine(&[&[5], &[5]]), vec![5]);
        assert_eq!(refine(&[&[2, 3], &[5]]), vec![2, 3]);
    }

    #[test]
    fn int_division_follows_numpy() {
        assert_eq!(int_div(7i64, 0, true), 0);
        assert_eq!(int_div(i64::MIN, -1, true), i64::MIN);
        assert_eq!(int_div(-7i64, 2, true), -4);
        assert_eq!(int_div(7i64, -2, true), -4);
        assert_eq!(int_div(-8i64, 2, true), -4);
        assert_eq!(int_rem(-7i64, 2, true), 1);
        assert_eq!(int_rem(7i64, -2, true), -1);
        assert_eq!(int_rem(7u8, 0, false), 0);
        assert_eq!(float_rem(-7.0f64, 2.0), 1.0);
    }

    #[test]
    fn round_is_half_to_even() {
        let v: Vec<f64> = [0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6]
            .into_iter()
            .map(round_half_even)
            .collect();
        assert_eq!(v, vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0, 3.0]);
    }
}
