//! Element types.

use std::fmt;

use rask_graph::Tokenizer;
use serde::{Deserialize, Serialize};

/// The element type of an array, as data (for errors, pictures and the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl DType {
    /// NumPy's name for it.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    pub fn itemsize(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A type that can be an array element.
pub trait Element:
    rask_graph::Data + Copy + Default + PartialOrd + fmt::Debug + Send + Sync + 'static
{
    const DTYPE: DType;
    /// Converts to `f64` (for means, variances and `astype`); `true` is 1.
    fn to_f64(self) -> f64;
    /// Converts from `f64` with Rust's `as` semantics (saturating, truncating toward zero).
    fn from_f64(v: f64) -> Self;
    fn tokenize(self, t: &mut Tokenizer);
}

/// Elements with arithmetic: every dtype but `bool`.
pub trait NumElement:
    Element
    + num_traits::Num
    + num_traits::NumCast
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + std::iter::Product
{
    /// The smallest and largest values (identities of max and min).
    fn min_value() -> Self;
    fn max_value() -> Self;
    /// Addition and multiplication as NumPy does them: integers wrap on overflow (instead of
    /// panicking in debug builds), floats are plain IEEE arithmetic.
    fn add_wrapping(self, other: Self) -> Self;
    fn mul_wrapping(self, other: Self) -> Self;
}

/// Floating-point elements.
pub trait FloatElement: NumElement + num_traits::Float {}

macro_rules! element {
    (@base $t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn tokenize(self, t: &mut Tokenizer) {
                t.write_bytes(&self.to_le_bytes());
            }
        }
    };
    ($t:ty, $d:ident, float) => {
        element!(@base $t, $d);
        impl NumElement for $t {
            fn min_value() -> Self {
                <$t>::MIN
            }
            fn max_value() -> Self {
                <$t>::MAX
            }
            fn add_wrapping(self, other: Self) -> Self {
                self + other
            }
            fn mul_wrapping(self, other: Self) -> Self {
                self * other
            }
        }
    };
    ($t:ty, $d:ident) => {
        element!(@base $t, $d);
        impl NumElement for $t {
            fn min_value() -> Self {
                <$t>::MIN
            }
            fn max_value() -> Self {
                <$t>::MAX
            }
            fn add_wrapping(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn mul_wrapping(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
        }
    };
}
element!(u8, U8);
element!(u16, U16);
element!(u32, U32);
element!(u64, U64);
element!(i8, I8);
element!(i16, I16);
element!(i32, I32);
element!(i64, I64);
element!(f32, F32, float);
element!(f64, F64, float);

impl FloatElement for f32 {}
impl FloatElement for f64 {}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn tokenize(self, t: &mut Tokenizer) {
        t.write_u8(self as u8);
    }
}

impl DType {
    /// The dtype with NumPy's name `name` (what op parameters carry).
    pub fn from_name(name: &str) -> Option<DType> {
        [
            DType::Bool,
            DType::U8,
            DType::U16,
            DType::U32,
            DType::U64,
            DType::I8,
            DType::I16,
            DType::I32,
            DType::I64,
            DType::F32,
            DType::F64,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }
}

/// The error of an op decoder given a dtype it has no instance for.
pub(crate) fn unknown_dtype(op: &str, dtype: &str) -> rask_error::RaskError {
    rask_error::RaskError::Serialization {
        what: format!("parameters of op `{op}`"),
        message: format!("no instance of the op for dtype `{dtype}`"),
    }
}

/// Runs `$body` with the type alias `$T` bound to the element type named `$dtype` (NumPy's
/// name) among the listed types, or returns the `unknown_dtype` error naming `$op`. Op
/// decoders use it to pick the generic instance that built the op: the wire carries the
/// dtype's name, never a type.
macro_rules! with_dtype {
    ($op:expr, $dtype:expr, [$($t:ty),* $(,)?], |$T:ident| $body:expr) => {{
        let dtype: &str = $dtype;
        $(
            if dtype == <$t as $crate::Element>::DTYPE.name() {
                #[allow(dead_code)]
                type $T = $t;
                return $body;
            }
        )*
        Err($crate::dtype::unknown_dtype($op, dtype))
    }};
    (all: $op:expr, $dtype:expr, |$T:ident| $body:expr) => {
        $crate::dtype::with_dtype!(
            $op, $dtype, [bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64], |$T| $body
        )
    };
    (num: $op:expr, $dtype:expr, |$T:ident| $body:expr) => {
        $crate::dtype::with_dtype!(
            $op, $dtype, [u8, u16, u32, u64, i8, i16, i32, i64, f32, f64], |$T| $body
        )
    };
}
pub(crate) use with_dtype;

/// Parses a scalar written with `{:?}` (exact for integers and floats, NaN and infinities
/// included), naming the op when it does not parse.
pub(crate) fn parse_scalar<T: std::str::FromStr>(op: &str, s: &str) -> rask_error::Result<T> {
    s.parse::<T>()
        .map_err(|_| rask_error::RaskError::Serialization {
            what: format!("parameters of op `{op}`"),
            message: format!("`{s}` is not a {}", std::any::type_name::<T>()),
        })
}

/// Element blocks and reduction partials cross the wire in the value codec's format.
macro_rules! register_blocks {
    ($($t:ty),*) => {$(
        rask_graph::register_value!(ndarray::ArrayD<$t>);
        rask_graph::register_value!(crate::reduction::ArgPartial<$t>);
    )*};
}
register_blocks!(bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
rask_graph::register_value!(crate::reduction::SumCount);
rask_graph::register_value!(crate::reduction::Moments);
