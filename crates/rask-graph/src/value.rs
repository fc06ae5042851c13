//! Type-erased values that know their size in bytes.

use std::any::Any;
use std::fmt;
use std::io::{self, Read, Write};
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

    /// Writes the value to `w` so the scheduler can drop it from memory when over its
    /// budget. `Ok(false)`, the default, means this type cannot be spilled.
    fn spill(&self, _w: &mut dyn Write) -> io::Result<bool> {
        Ok(false)
    }

    /// Reads back a value written by [`Data::spill`].
    fn unspill(_r: &mut dyn Read) -> io::Result<Self>
    where
        Self: Sized,
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            std::any::type_name::<Self>(),
        ))
    }

    /// The spill bytes as a small owned head and a body borrowed from the value's own memory,
    /// when the value can be written that way (`Vec`s and standard-layout arrays of numbers).
    /// `head ++ body` must equal what [`Data::spill`] writes. The wire sends a large value's
    /// body straight from its memory instead of copying it into a buffer first.
    fn spill_view(&self) -> Option<(Vec<u8>, &[u8])> {
        None
    }

    /// The spill bytes of a slice as a view of its memory, where they are the same bytes
    /// (numbers on little-endian targets).
    fn slice_view(_items: &[Self]) -> Option<&[u8]>
    where
        Self: Sized,
    {
        None
    }

    /// Spills many values at once; numbers override this with one bulk copy.
    fn spill_slice(items: &[Self], w: &mut dyn Write) -> io::Result<bool>
    where
        Self: Sized,
    {
        for item in items {
            if !item.spill(w)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads back `n` values written by [`Data::spill_slice`].
    ///
    /// `n` may come from untrusted bytes (a value decoded off the wire): implementations must
    /// not allocate for `n` items before reading them.
    fn unspill_vec(r: &mut dyn Read, n: usize) -> io::Result<Vec<Self>>
    where
        Self: Sized,
    {
        let mut out = Vec::with_capacity(n.min(PREALLOC_ITEMS));
        for _ in 0..n {
            grow_exact(&mut out, n, 1);
            out.push(Self::unspill(r)?);
        }
        Ok(out)
    }
}

/// A value's spill bytes as a small owned head and a body borrowed from the value
/// ([`Data::spill_view`]).
pub type SpillView<'a> = (Vec<u8>, &'a [u8]);

/// The most items a `Vec` is given up front when reading `n` of them back: beyond it, the
/// vector grows as items actually arrive.
const PREALLOC_ITEMS: usize = 1 << 16;

thread_local! {
    /// Bytes the input being decoded on this thread is known to hold at most (set by
    /// [`with_known_length`]; 0 when unknown).
    static KNOWN_LEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f` (a decode) knowing its input holds at most `len` bytes: a vector of numbers whose
/// length fits is then allocated whole, zeroed by the allocator (fresh pages, no pass over
/// them) and read in one go, instead of growing as bytes arrive. A length that does not fit
/// still fails at the end of the input, as without it.
pub(crate) fn with_known_length<R>(len: u64, f: impl FnOnce() -> R) -> R {
    let before = KNOWN_LEN.with(|k| k.replace(len));
    let out = f();
    KNOWN_LEN.with(|k| k.set(before));
    out
}

/// Takes `bytes` from the known length when they fit in it.
fn take_known(bytes: u64) -> bool {
    KNOWN_LEN.with(|k| {
        let left = k.get();
        let fits = bytes <= left;
        if fits {
            k.set(left - bytes);
        }
        fits
    })
}

/// Makes room for `k` more items in a vector that will hold `n` in all, doubling (never past
/// `n`, so a complete read ends with no spare capacity: `nbytes` counts capacity).
fn grow_exact<T>(v: &mut Vec<T>, n: usize, k: usize) {
    if v.capacity() - v.len() < k {
        let target = (v.capacity() * 2).max(v.len() + k).min(n.max(v.len() + k));
        v.reserve_exact(target - v.len());
    }
}

/// Numbers spill as little-endian bytes, in bulk for slices.
macro_rules! spill_number {
    ($t:ty) => {
        fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
            w.write_all(&self.to_le_bytes())?;
            Ok(true)
        }
        fn unspill(r: &mut dyn Read) -> io::Result<Self> {
            let mut b = [0u8; std::mem::size_of::<$t>()];
            r.read_exact(&mut b)?;
            Ok(<$t>::from_le_bytes(b))
        }
        fn slice_view(items: &[Self]) -> Option<&[u8]> {
            #[cfg(target_endian = "little")]
            {
                // Little-endian memory is already the spill format.
                // SAFETY: a number type has no padding and every byte of it is initialized;
                // the byte view covers exactly the slice's memory and borrows it.
                Some(unsafe {
                    std::slice::from_raw_parts(
                        items.as_ptr().cast::<u8>(),
                        std::mem::size_of_val(items),
                    )
                })
            }
            #[cfg(not(target_endian = "little"))]
            {
                let _ = items;
                None
            }
        }
        fn spill_slice(items: &[Self], w: &mut dyn Write) -> io::Result<bool> {
            #[cfg(target_endian = "little")]
            {
                // One write, no copy.
                w.write_all(Self::slice_view(items).expect("little-endian view"))?;
            }
            #[cfg(not(target_endian = "little"))]
            {
                const SIZE: usize = std::mem::size_of::<$t>();
                let mut buf = Vec::with_capacity(SIZE * items.len().min(8192));
                for chunk in items.chunks(8192) {
                    buf.clear();
                    for v in chunk {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                    w.write_all(&buf)?;
                }
            }
            Ok(true)
        }
        fn unspill_vec(r: &mut dyn Read, n: usize) -> io::Result<Vec<Self>> {
            const SIZE: usize = std::mem::size_of::<$t>();
            // `n` may come from the wire: the vector grows with the bytes actually read, so a
            // hostile length fails at the end of the input instead of allocating up front.
            // Reads go straight into the vector in steps of up to 8 MiB.
            const STEP: usize = (8 << 20) / SIZE;
            if n.checked_mul(SIZE).is_some_and(|b| take_known(b as u64)) {
                // The input holds these bytes: one zeroed allocation (fresh pages from the
                // allocator, not written twice) read in one go.
                let mut out: Vec<$t> = vec![<$t>::default(); n];
                // SAFETY: the byte view covers the `n` initialized numbers; any bit pattern
                // is a valid number of this type.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), n * SIZE)
                };
                r.read_exact(bytes)?;
                #[cfg(not(target_endian = "little"))]
                for v in &mut out {
                    *v = <$t>::from_le_bytes(v.to_ne_bytes());
                }
                return Ok(out);
            }
            let mut out: Vec<$t> = Vec::with_capacity(n.min(PREALLOC_ITEMS));
            let mut left = n;
            while left > 0 {
                let k = left.min(STEP);
                grow_exact(&mut out, n, k);
                let start = out.len();
                out.resize(start + k, <$t>::default());
                // SAFETY: the byte view covers the `k` numbers just added, which are
                // initialized; any bit pattern is a valid number of this type.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(out[start..].as_mut_ptr().cast::<u8>(), k * SIZE)
                };
                r.read_exact(bytes)?;
                #[cfg(not(target_endian = "little"))]
                for v in &mut out[start..] {
                    *v = <$t>::from_le_bytes(v.to_ne_bytes());
                }
                left -= k;
            }
            Ok(out)
        }
    };
}

macro_rules! data_int {
    ($($t:ty),*) => {$(
        impl Data for $t {
            fn tokenize(&self, t: &mut Tokenizer) -> bool {
                t.write_str(stringify!($t));
                t.write_u128(*self as u128);
                true
            }
            spill_number!($t);
        }
    )*};
}
data_int!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl Data for char {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("char");
        t.write_u64(*self as u64);
        true
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&(*self as u32).to_le_bytes())?;
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        char::from_u32(u32::from_le_bytes(b))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a char"))
    }
}

impl Data for bool {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("bool");
        t.write_u8(*self as u8);
        true
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&[*self as u8])?;
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        match b[0] {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{other} is not a bool (0 or 1)"),
            )),
        }
    }
}

impl Data for f32 {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("f32");
        t.write_u64(self.to_bits() as u64);
        true
    }
    spill_number!(f32);
}

impl Data for f64 {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("f64");
        t.write_f64(*self);
        true
    }
    spill_number!(f64);
}

impl Data for () {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("()");
        true
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        // One byte, not none: every spilled item then costs at least a byte, so a hostile
        // `Vec<()>` length runs out of input instead of looping 2^60 times.
        w.write_all(&[0])?;
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        if b[0] != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a ()"));
        }
        Ok(())
    }
}

impl Data for std::time::Duration {
    fn tokenize(&self, t: &mut Tokenizer) -> bool {
        t.write_str("Duration");
        t.write_u128(self.as_nanos());
        true
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&self.as_secs().to_le_bytes())?;
        w.write_all(&self.subsec_nanos().to_le_bytes())?;
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let secs = u64::unspill(r)?;
        let nanos = u32::unspill(r)?;
        if nanos >= 1_000_000_000 {
            // `Duration::new` would carry them into the seconds and could overflow (panic).
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{nanos} nanoseconds is not a fraction of a second"),
            ));
        }
        Ok(std::time::Duration::new(secs, nanos))
    }
}

impl Data for String {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.capacity()
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&(self.len() as u64).to_le_bytes())?;
        w.write_all(self.as_bytes())?;
        Ok(true)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let n = read_len(r)?;
        let bytes = u8::unspill_vec(r, n)?;
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&(self.len() as u64).to_le_bytes())?;
        T::spill_slice(self, w)
    }
    fn spill_view(&self) -> Option<(Vec<u8>, &[u8])> {
        let body = T::slice_view(self)?;
        Some(((self.len() as u64).to_le_bytes().to_vec(), body))
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let n = read_len(r)?;
        T::unspill_vec(r, n)
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
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        match self {
            None => {
                w.write_all(&[0])?;
                Ok(true)
            }
            Some(v) => {
                w.write_all(&[1])?;
                v.spill(w)
            }
        }
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        match b[0] {
            0 => Ok(None),
            1 => T::unspill(r).map(Some),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{other} is not an Option tag (0 or 1)"),
            )),
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
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        (**self).spill(w)
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        T::unspill(r).map(Arc::new)
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
            fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                Ok(true $(&& $n.spill(w)?)+)
            }
            fn unspill(r: &mut dyn Read) -> io::Result<Self> {
                Ok(($($n::unspill(r)?,)+))
            }
        }
    };
}
data_tuple!(A);
data_tuple!(A, B);
data_tuple!(A, B, C);
data_tuple!(A, B, C, D);
data_tuple!(A, B, C, D, E);

/// Reads a length written as a little-endian `u64`.
fn read_len(r: &mut dyn Read) -> io::Result<usize> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    usize::try_from(u64::from_le_bytes(b))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(feature = "ndarray")]
impl<T: Data, D: ndarray::Dimension + 'static> Data for ndarray::Array<T, D> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.len() * std::mem::size_of::<T>()
    }
    fn spill(&self, w: &mut dyn Write) -> io::Result<bool> {
        w.write_all(&(self.ndim() as u64).to_le_bytes())?;
        for &d in self.shape() {
            w.write_all(&(d as u64).to_le_bytes())?;
        }
        match self.as_slice() {
            Some(s) => T::spill_slice(s, w),
            None => T::spill_slice(&self.iter().cloned().collect::<Vec<T>>(), w),
        }
    }
    fn spill_view(&self) -> Option<(Vec<u8>, &[u8])> {
        let body = T::slice_view(self.as_slice()?)?;
        let mut head = Vec::with_capacity(8 * (1 + self.ndim()));
        head.extend_from_slice(&(self.ndim() as u64).to_le_bytes());
        for &d in self.shape() {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        Some((head, body))
    }
    fn unspill(r: &mut dyn Read) -> io::Result<Self> {
        let ndim = read_len(r)?;
        let mut shape = Vec::with_capacity(ndim.min(64));
        for _ in 0..ndim {
            shape.push(read_len(r)?);
        }
        let n = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let n = n.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "shape overflows"))?;
        let data = T::unspill_vec(r, n)?;
        let dyn_array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        dyn_array
            .into_dimensionality::<D>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
    spill: Option<SpillFns>,
}

/// How to write a value's type to disk and read it back: the scheduler's spill path, without
/// knowing the type.
#[derive(Clone, Copy)]
pub struct SpillFns {
    encode: fn(&dyn Any, &mut dyn Write) -> io::Result<bool>,
    decode: fn(&mut dyn Read) -> io::Result<Value>,
    view: for<'a> fn(&'a dyn Any) -> Option<SpillView<'a>>,
}

impl SpillFns {
    fn of<T: Data>() -> Self {
        fn encode<T: Data>(v: &dyn Any, w: &mut dyn Write) -> io::Result<bool> {
            match v.downcast_ref::<T>() {
                Some(v) => v.spill(w),
                None => Ok(false),
            }
        }
        fn decode<T: Data>(r: &mut dyn Read) -> io::Result<Value> {
            T::unspill(r).map(Value::new)
        }
        fn view<T: Data>(v: &dyn Any) -> Option<(Vec<u8>, &[u8])> {
            v.downcast_ref::<T>()?.spill_view()
        }
        SpillFns {
            encode: encode::<T>,
            decode: decode::<T>,
            view: view::<T>,
        }
    }

    /// Reads back a value that [`Value::spill`] wrote.
    pub fn decode(&self, r: &mut dyn Read) -> io::Result<Value> {
        (self.decode)(r)
    }
}

impl Value {
    pub fn new<T: Data>(value: T) -> Self {
        let nbytes = value.nbytes();
        Value {
            inner: Arc::new(Stored { value }),
            nbytes,
            spill: Some(SpillFns::of::<T>()),
        }
    }

    /// Stores a value of a type that does not implement [`Data`], with its size given. Such
    /// values cannot be spilled.
    pub fn with_nbytes<T: Any + Send + Sync>(value: T, nbytes: usize) -> Self {
        Value {
            inner: Arc::new(Stored { value }),
            nbytes,
            spill: None,
        }
    }

    /// Writes the value to `w` for spilling. Returns how to read it back, or `None` when its
    /// type cannot be spilled (nothing useful was written then).
    pub fn spill(&self, w: &mut dyn Write) -> io::Result<Option<SpillFns>> {
        match self.spill {
            Some(fns) if (fns.encode)(self.inner.as_any(), w)? => Ok(Some(fns)),
            _ => Ok(None),
        }
    }

    /// The spill bytes as an owned head and a body borrowed from the value's memory, when its
    /// type offers that ([`Data::spill_view`]): what the wire sends without copying.
    pub fn spill_view(&self) -> Option<(Vec<u8>, &[u8])> {
        (self.spill?.view)(self.inner.as_any())
    }

    /// True when the value's type can be spilled to disk.
    pub fn can_spill(&self) -> bool {
        self.spill.is_some()
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

    fn roundtrip(v: Value) -> Value {
        let mut buf = Vec::new();
        let fns = v.spill(&mut buf).unwrap().expect("spillable");
        fns.decode(&mut buf.as_slice()).unwrap()
    }

    #[test]
    fn spill_roundtrips() {
        let data: Vec<f64> = (0..20_000).map(|i| i as f64 * 0.5 - 3.0).collect();
        let back = roundtrip(Value::new(data.clone()));
        assert_eq!(back.get::<Vec<f64>>(&"v").unwrap(), &data);
        let s = String::from("héllo");
        assert_eq!(
            roundtrip(Value::new(s.clone()))
                .get::<String>(&"s")
                .unwrap(),
            &s
        );
        let nested = vec![vec![1u8, 2], vec![], vec![3]];
        assert_eq!(
            roundtrip(Value::new(nested.clone()))
                .get::<Vec<Vec<u8>>>(&"n")
                .unwrap(),
            &nested
        );
        assert!(*roundtrip(Value::new(true)).get::<bool>(&"b").unwrap());
        assert_eq!(*roundtrip(Value::new(-7i32)).get::<i32>(&"i").unwrap(), -7);
    }

    #[test]
    fn types_without_spill_say_so() {
        #[derive(Clone)]
        struct Opaque;
        impl Data for Opaque {}
        let mut buf = Vec::new();
        assert!(Value::new(Opaque).spill(&mut buf).unwrap().is_none());
        assert!(
            Value::with_nbytes(1u8, 1)
                .spill(&mut buf)
                .unwrap()
                .is_none()
        );
        // A truncated spill file is an error, not a panic.
        let mut full = Vec::new();
        let fns = Value::new(vec![1.0f64; 10])
            .spill(&mut full)
            .unwrap()
            .unwrap();
        assert!(fns.decode(&mut &full[..full.len() - 3]).is_err());
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
