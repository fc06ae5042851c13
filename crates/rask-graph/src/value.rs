//! Type-erased values that know their size in bytes.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use rask_error::{RaskError, Result};

use crate::token::Tokenizer;

/// A type that can be the output of a task.
///
/// `nbytes` is what the scheduler charges against the memory budget, so implement it for
/// anything holding heap data. `tokenize` lets a value passed as a literal argument to a pure
/// task take part in the task's key; the default says "cannot tokenize", and a pure call with
/// such an argument then gets a fresh key (as Dask does for objects it cannot hash).
///
/// ```
/// #[derive(Clone)]
/// struct Point { x: f64, y: f64 }
/// impl rask_graph::Data for Point {}
/// ```
pub trait Data: Any + Send + Sync + Clone {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    /// Writes the value into `t` and returns true, or returns false if it cannot.
    fn tokenize(&self, _t: &mut Tokenizer) -> bool {
        false
    }
}

macro_rules! data_int {
    ($($t:ty),*) => {$(
        impl Data for $t {
            fn tokenize(&self, t: &mut Tokenizer) -> bool {
                t.write_str(stringify!($t));
                t.write_u128(*self as u128);
                true
            }
        }
    )*};
}
data_int!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, char, bool
);

impl Data for f32 {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("f32");
        t.write_u64(self.to_bits() as u64);
        true
    }
}

impl Data for f64 {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("f64");
        t.write_f64(*self);
        true
    }
}

impl Data for () {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("()");
        true
    }
}

impl Data for std::time::Duration {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("Duration");
        t.write_u128(self.as_nanos());
        true
    }
}

impl Data for String {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.capacity()
    }
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("str");
        t.write_str(self);
        true
    }
}

impl Data for &'static str {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("str");
        t.write_str(self);
        true
    }
}

impl<T: Data> Data for Vec<T> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.iter().map(Data::nbytes).sum::<usize>()
            + (self.capacity() - self.len()) * std::mem::size_of::<T>()
    }
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("Vec");
        t.write_u64(self.len() as u64);
        self.iter().all(|v| v.tokenize(t))
    }
}

impl<T: Data> Data for Option<T> {
    fn nbytes(&self) -> usize {
        // The payload's inline part is already inside `size_of::<Self>()`.
        std::mem::size_of::<Self>()
            + self
                .as_ref()
                .map_or(0, |v| v.nbytes().saturating_sub(std::mem::size_of::<T>()))
    }
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        match self {
            None => {
                t.write_u8(0);
                true
            }
            Some(v) => {
                t.write_u8(1);
                v.tokenize(t)
            }
        }
    }
}

impl<T: Data> Data for Arc<T> {
    fn nbytes(&self) -> usize {
        (**self).nbytes()
    }
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        (**self).tokenize(t)
    }
}

macro_rules! data_tuple {
    ($($n:ident),+) => {
        impl<$($n: Data),+> Data for ($($n,)+) {
            fn nbytes(&self) -> usize {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                0 $(+ $n.nbytes())+
            }
            fn tokenize(&self, t: &mut Tokenizer) -> bool {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                t.write_str("tuple");
                true $(&& $n.tokenize(t))+
            }
        }
    };
}
data_tuple!(A);
data_tuple!(A, B);
data_tuple!(A, B, C);
data_tuple!(A, B, C, D);
data_tuple!(A, B, C, D, E);

#[cfg(feature = "ndarray")]
impl<T: Data, D: ndarray::Dimension + 'static> Data for ndarray::Array<T, D> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.len() * std::mem::size_of::<T>()
    }
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("ndarray");
        t.write_u64(self.ndim() as u64);
        for &d in self.shape() {
            t.write_u64(d as u64);
        }
        self.iter().all(|v| v.tokenize(t))
    }
}

/// The object-safe face of a stored value.
trait AnyData: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn type_name(&self) -> &'static str;
}

struct Stored<T> {
    value: T,
}

impl<T: Any + Send + Sync> AnyData for Stored<T> {
    fn as_any(&self) -> &dyn Any {
        &self.value
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// A task's output: a reference-counted, type-erased value with its size in bytes.
///
/// Cloning a `Value` is a reference-count increment, so several dependents share one output.
#[derive(Clone)]
pub struct Value {
    inner: Arc<dyn AnyData>,
    nbytes: usize,
}

impl Value {
    pub fn new<T: Data>(value: T) -> Self {
        let nbytes = value.nbytes();
        Value {
            inner: Arc::new(Stored { value }),
            nbytes,
        }
    }

    /// Stores a value of a type that does not implement [`Data`], with its size given.
    pub fn with_nbytes<T: Any + Send + Sync>(value: T, nbytes: usize) -> Self {
        Value {
            inner: Arc::new(Stored { value }),
            nbytes,
        }
    }

    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// The Rust type name of the stored value, for error messages.
    pub fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }

    pub fn is<T: Any>(&self) -> bool {
        self.inner.as_any().is::<T>()
    }

    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref::<T>()
    }

    /// A reference to the value, or a type-mismatch error naming `what` (a key or argument).
    pub fn get<T: Any>(&self, what: &dyn fmt::Display) -> Result<&T> {
        self.downcast_ref::<T>()
            .ok_or_else(|| RaskError::TypeMismatch {
                key: what.to_string(),
                expected: std::any::type_name::<T>().to_string(),
                found: self.type_name().to_string(),
            })
    }

    /// The value itself: moved out when this is the last reference, cloned otherwise.
    pub fn take<T: Any + Send + Sync + Clone>(self, what: &dyn fmt::Display) -> Result<T> {
        let found = self.type_name();
        let any = self.inner.into_any();
        match any.downcast::<Stored<T>>() {
            Ok(stored) => Ok(match Arc::try_unwrap(stored) {
                Ok(s) => s.value,
                Err(shared) => shared.value.clone(),
            }),
            Err(_) => Err(RaskError::TypeMismatch {
                key: what.to_string(),
                expected: std::any::type_name::<T>().to_string(),
                found: found.to_string(),
            }),
        }
    }

    /// True when both handles point to the same stored value.
    pub fn ptr_eq(&self, other: &Value) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value<{}>({} bytes)", self.type_name(), self.nbytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_heap_data() {
        let v = Value::new(vec![1.0f64; 1000]);
        assert!(v.nbytes() >= 8000);
        assert_eq!(Value::new(3i64).nbytes(), 8);
        let s = Value::new(String::from("hello"));
        assert!(s.nbytes() >= 5);
    }

    #[test]
    fn take_moves_or_clones() {
        let v = Value::new(vec![1, 2, 3]);
        let w = v.clone();
        assert_eq!(w.take::<Vec<i32>>(&"k").unwrap(), vec![1, 2, 3]);
        assert_eq!(v.take::<Vec<i32>>(&"k").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn wrong_type_names_key_and_types() {
        let v = Value::new(1i64);
        let err = v.get::<f64>(&"inc-1").unwrap_err().to_string();
        assert!(
            err.contains("inc-1") && err.contains("f64") && err.contains("i64"),
            "{err}"
        );
        let err = v.take::<String>(&"inc-2").unwrap_err().to_string();
        assert!(err.contains("inc-2") && err.contains("String"), "{err}");
    }

    #[test]
    fn tokenize_literals() {
        let tok = |v: &dyn Fn(&mut Tokenizer) -> bool| {
            let mut t = Tokenizer::new("x");
            assert!(v(&mut t));
            t.finish()
        };
        assert_eq!(tok(&|t| 1i64.tokenize(t)), tok(&|t| 1i64.tokenize(t)));
        assert_ne!(tok(&|t| 1i64.tokenize(t)), tok(&|t| 1i32.tokenize(t)));
        assert_ne!(tok(&|t| 1i64.tokenize(t)), tok(&|t| 1.0f64.tokenize(t)));
        assert_eq!(
            tok(&|t| vec![String::from("a")].tokenize(t)),
            tok(&|t| vec![String::from("a")].tokenize(t))
        );
    }
}
