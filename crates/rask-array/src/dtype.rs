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
