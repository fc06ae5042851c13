//! The value codec: how a [`Value`] crosses a process boundary.
//!
//! One format serves spilling to disk and the wire: a value's bytes are what [`Data::spill`]
//! writes, and its type travels as a **tag**, `std::any::type_name::<T>()`. Type names are
//! not stable across compilers or builds, but they are within one build, and the cluster
//! handshake refuses peers whose build (and registries) differ, so a tag always means the same
//! type on both sides.
//!
//! A type can be decoded by tag once it is registered with [`register_value!`](crate::register_value);
//! rask registers the built-in types here (numbers, `bool`, `char`, `String`, `()`,
//! `Duration`, `Vec` and `Option` of those, pairs, and `ndarray` arrays behind the `ndarray`
//! feature), `rask-array` its blocks and partials, and `#[rask::delayed]` the parameter and
//! return types of every function it wraps.
//!
//! Decoding never trusts the bytes: an unknown tag, a truncated value, trailing bytes or a
//! malformed field is a [`RaskError::Serialization`] naming the tag, and lengths read from the
//! bytes never allocate more than the input can fill (see [`Data::unspill_vec`]).

use std::io::{self, Read};

use rask_error::{RaskError, Result};

use crate::{Data, Value};

/// Reads a value of one registered type back from its spill bytes.
pub type ValueDecoder = fn(&mut dyn Read) -> io::Result<Value>;

/// A registration of a value type, collected at link time with [`inventory`]. Built by
/// [`ValueRegistration::of`]; use [`register_value!`](crate::register_value).
pub struct ValueRegistration {
    /// The type's tag (its `type_name`, which is not a `const fn` on stable Rust, hence a
    /// function).
    pub tag: fn() -> &'static str,
    pub decode: ValueDecoder,
}

impl ValueRegistration {
    /// The registration of `T`. Compiles for every [`Data`] type: one without a spill
    /// implementation registers fine and fails when a value of it is encoded, with an error
    /// naming the type.
    pub const fn of<T: Data>() -> Self {
        fn decode<T: Data>(r: &mut dyn Read) -> io::Result<Value> {
            T::unspill(r).map(Value::new)
        }
        ValueRegistration {
            tag: std::any::type_name::<T>,
            decode: decode::<T>,
        }
    }
}

inventory::collect!(ValueRegistration);

/// Registers a [`Data`] type so values of it can be decoded by tag ([`Value::decode`]).
/// Expands to an `inventory::submit!`, so it may appear at module level or inside a function
/// body; registering a type twice is harmless.
///
/// ```
/// #[derive(Clone, Debug, PartialEq)]
/// struct Meters(f64);
/// impl rask_graph::Data for Meters {
///     fn spill(&self, w: &mut dyn std::io::Write) -> std::io::Result<bool> {
///         self.0.spill(w)
///     }
///     fn unspill(r: &mut dyn std::io::Read) -> std::io::Result<Self> {
///         f64::unspill(r).map(Meters)
///     }
/// }
/// rask_graph::register_value!(Meters);
///
/// let (tag, bytes) = rask_graph::Value::new(Meters(2.5)).encode()?;
/// let back = rask_graph::Value::decode(tag, &bytes)?;
/// assert_eq!(back.get::<Meters>(&"m")?, &Meters(2.5));
/// # Ok::<(), rask_graph::RaskError>(())
/// ```
#[macro_export]
macro_rules! register_value {
    ($t:ty) => {
        $crate::__private::inventory::submit! {
            $crate::ValueRegistration::of::<$t>()
        }
    };
}

/// Every value type registered in this binary, by tag.
pub struct ValueRegistry {
    decoders: rustc_hash::FxHashMap<&'static str, ValueDecoder>,
}

impl ValueRegistry {
    /// The registry of everything registered with [`register_value!`](crate::register_value) in this binary.
    pub fn global() -> &'static ValueRegistry {
        static REG: std::sync::OnceLock<ValueRegistry> = std::sync::OnceLock::new();
        REG.get_or_init(|| {
            let mut decoders = rustc_hash::FxHashMap::default();
            for r in inventory::iter::<ValueRegistration> {
                // Registrations of one tag are the same type, so any of them will do.
                decoders.insert((r.tag)(), r.decode);
            }
            ValueRegistry { decoders }
        })
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.decoders.contains_key(tag)
    }

    /// Every registered tag, sorted (for fingerprints and messages).
    pub fn tags(&self) -> Vec<&'static str> {
        let mut tags: Vec<&'static str> = self.decoders.keys().copied().collect();
        tags.sort_unstable();
        tags
    }

    fn decoder(&self, tag: &str) -> Option<ValueDecoder> {
        self.decoders.get(tag).copied()
    }
}

fn serialization(tag: &str, message: impl Into<String>) -> RaskError {
    RaskError::Serialization {
        what: format!("value of type `{tag}`"),
        message: message.into(),
    }
}

impl Value {
    /// The tag [`Value::encode`] uses: the stored type's `type_name`.
    pub fn type_tag(&self) -> &'static str {
        self.type_name()
    }

    /// The portable form of this value: its type tag and its bytes (the spill format).
    ///
    /// An error names the Rust type when the value cannot cross the wire: it was stored
    /// without [`Data`] ([`Value::with_nbytes`]), its type is not registered
    /// ([`register_value!`](crate::register_value)), or it has no spill implementation.
    pub fn encode(&self) -> Result<(&'static str, Vec<u8>)> {
        let tag = self.type_tag();
        if !self.can_spill() {
            return Err(serialization(
                tag,
                "it was stored without a `Data` implementation, so it cannot leave this process",
            ));
        }
        if !ValueRegistry::global().contains(tag) {
            return Err(serialization(
                tag,
                "the type is not registered for the wire: add `rask_graph::register_value!(..)` \
                 for it (with `Data::spill`/`unspill` implemented)",
            ));
        }
        // Sized up front from the value's own estimate, so a large block is written once
        // instead of through a chain of doubling reallocations.
        let mut bytes = Vec::with_capacity(self.nbytes().saturating_add(64).min(1 << 36));
        match self.spill(&mut bytes) {
            Ok(Some(_)) => Ok((tag, bytes)),
            Ok(None) => Err(serialization(
                tag,
                "the type cannot be spilled: implement `Data::spill` and `Data::unspill` to \
                 send it to another process",
            )),
            Err(e) => Err(serialization(tag, e.to_string())),
        }
    }

    /// Rebuilds a value from [`Value::encode`]'s output through the global
    /// [`ValueRegistry`]. An unknown tag, truncated or malformed bytes, or bytes left over
    /// are a [`RaskError::Serialization`] naming the tag.
    pub fn decode(type_tag: &str, bytes: &[u8]) -> Result<Value> {
        let mut rest = bytes;
        let value = Self::decode_from(type_tag, &mut rest, bytes.len() as u64)?;
        if !rest.is_empty() {
            return Err(serialization(
                type_tag,
                format!(
                    "{} bytes left over after the value ({} read)",
                    rest.len(),
                    bytes.len() - rest.len()
                ),
            ));
        }
        Ok(value)
    }

    /// Reads one value of type `type_tag` from `r`, which holds `len` bytes of it (for the
    /// message when they end early). The caller checks that nothing is left over. Large values
    /// are read straight into their final memory, with no intermediate buffer.
    pub fn decode_from(type_tag: &str, r: &mut dyn Read, len: u64) -> Result<Value> {
        let decode = ValueRegistry::global().decoder(type_tag).ok_or_else(|| {
            serialization(
                type_tag,
                "unknown type tag: no such type is registered in this binary (a different \
                 build, or a type without `register_value!`)",
            )
        })?;
        crate::value::with_known_length(len, || decode(r)).map_err(|e| {
            let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                format!("truncated: {len} bytes end before the value does")
            } else {
                e.to_string()
            };
            serialization(type_tag, why)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The built-in registrations.

macro_rules! register_each {
    ($($t:ty),* $(,)?) => {$( register_value!($t); )*};
}

/// Registers `T`, `Vec<T>`, `Option<T>` and `(T, T)` for each type.
macro_rules! register_with_containers {
    ($($t:ty),* $(,)?) => {$(
        register_value!($t);
        register_value!(Vec<$t>);
        register_value!(Option<$t>);
        register_value!(($t, $t));
    )*};
}

register_with_containers!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, String
);
register_each!(
    (),
    std::time::Duration,
    Vec<Vec<f64>>,
    Vec<Vec<i64>>,
    Vec<(String, i64)>,
    Vec<(String, f64)>,
    (String, i64),
    (String, f64),
    (i64, f64),
);

#[cfg(feature = "ndarray")]
macro_rules! register_arrays {
    ($($t:ty),* $(,)?) => {$(
        register_value!(ndarray::ArrayD<$t>);
        register_value!(ndarray::Array1<$t>);
        register_value!(ndarray::Array2<$t>);
    )*};
}
#[cfg(feature = "ndarray")]
register_arrays!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, bool);

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place view (head + borrowed body) is byte for byte the spill format.
    fn view_matches_spill<T: Data>(v: T) {
        let value = Value::new(v);
        let (_, bytes) = value.encode().unwrap();
        let (head, body) = value.spill_view().expect("a view");
        let mut joined = head.clone();
        joined.extend_from_slice(body);
        assert_eq!(joined, bytes);
        // The streaming decoder reads the same bytes back.
        let mut r = &joined[..];
        let back = Value::decode_from(value.type_tag(), &mut r, joined.len() as u64).unwrap();
        assert!(r.is_empty());
        assert_eq!(back.encode().unwrap().1, bytes);
    }

    #[test]
    fn number_vecs_and_arrays_have_in_place_views_equal_to_their_spill_bytes() {
        view_matches_spill((0..100_000).map(|i| i as f64 * 0.5).collect::<Vec<f64>>());
        view_matches_spill((0..1000).map(|i| i - 500).collect::<Vec<i32>>());
        view_matches_spill(Vec::<u8>::new());
        #[cfg(feature = "ndarray")]
        {
            let a = ndarray::Array2::from_shape_fn((30, 7), |(i, j)| (i * 7 + j) as f32);
            view_matches_spill(a.clone().into_dyn());
            view_matches_spill(a);
            // A transposed array has no contiguous body: no view, but it still encodes.
            let t = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| (i + j) as f64).reversed_axes();
            assert!(Value::new(t.clone()).spill_view().is_none());
            round_trip(t);
        }
        // Types without a numeric body have none.
        assert!(Value::new(vec!["a".to_string()]).spill_view().is_none());
        assert!(Value::new(3.5f64).spill_view().is_none());
    }

    #[test]
    fn a_vector_of_known_length_is_read_whole_and_a_lying_count_still_fails() {
        let v: Vec<f64> = (0..300_000).map(|i| i as f64).collect();
        let value = Value::new(v.clone());
        let (tag, bytes) = value.encode().unwrap();
        let mut r = &bytes[..];
        let back = Value::decode_from(tag, &mut r, bytes.len() as u64).unwrap();
        let got = back.get::<Vec<f64>>(&"back").unwrap();
        assert_eq!(got, &v);
        assert_eq!(
            got.capacity(),
            v.len(),
            "no spare capacity: nbytes counts it"
        );
        // The count says 300k numbers, the stated length allows them, the input ends early.
        let cut = &bytes[..bytes.len() - 8];
        let mut r = cut;
        let err = Value::decode_from(tag, &mut r, bytes.len() as u64).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // A stated length too short for the count falls back to growing, and still fails
        // at the end of the input.
        let mut r = cut;
        assert!(Value::decode_from(tag, &mut r, 64).is_err());
    }

    fn round_trip<T: Data + PartialEq + std::fmt::Debug>(v: T) {
        let value = Value::new(v.clone());
        let (tag, bytes) = value.encode().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tag, std::any::type_name::<T>());
        assert_eq!(tag, value.type_tag());
        let back = Value::decode(tag, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.get::<T>(&"back").unwrap(), &v);
        // Every strict prefix is an error naming the tag, never a panic.
        for cut in 0..bytes.len() {
            let err = Value::decode(tag, &bytes[..cut]).unwrap_err().to_string();
            assert!(err.contains(tag), "{err}");
        }
        // So are bytes left over.
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Value::decode(tag, &longer).unwrap_err().to_string();
        assert!(err.contains("left over"), "{err}");
    }

    macro_rules! round_trip_numbers {
        ($($t:ty),*) => {$(
            round_trip::<$t>(<$t>::MIN);
            round_trip::<$t>(<$t>::MAX);
            round_trip::<Vec<$t>>(vec![<$t>::MIN, <$t>::MAX, 1 as $t]);
            round_trip::<Vec<$t>>(Vec::new());
            round_trip::<Option<$t>>(Some(3 as $t));
            round_trip::<Option<$t>>(None);
            round_trip::<($t, $t)>((1 as $t, 2 as $t));
        )*};
    }

    #[test]
    fn every_registered_kind_round_trips() {
        round_trip_numbers!(
            u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
        );
        round_trip(true);
        round_trip(vec![true, false]);
        round_trip(Some(false));
        round_trip('é');
        round_trip(vec!['a', '\u{1F600}']);
        round_trip(String::from("héllo"));
        round_trip(vec![String::new(), String::from("x")]);
        round_trip(Some(String::from("y")));
        round_trip((String::from("a"), String::from("b")));
        round_trip(());
        round_trip(std::time::Duration::new(5, 999_999_999));
        round_trip(vec![vec![1.5f64], vec![]]);
        round_trip(vec![vec![1i64, 2], vec![3]]);
        round_trip((String::from("n"), 4i64));
        round_trip((String::from("n"), 4.5f64));
        round_trip((1i64, 2.5f64));
        round_trip(vec![(String::from("k"), 1i64)]);
        round_trip(vec![(String::from("k"), 1.0f64)]);
        // NaN does not equal itself: compare bits.
        let (tag, bytes) = Value::new(f64::NAN).encode().unwrap();
        let back = Value::decode(tag, &bytes).unwrap();
        assert_eq!(
            back.get::<f64>(&"nan").unwrap().to_bits(),
            f64::NAN.to_bits()
        );
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn arrays_round_trip() {
        use ndarray::{Array1, Array2, ArrayD, IxDyn};
        macro_rules! arrays {
            ($($t:ty),*) => {$(
                let d = ArrayD::<$t>::from_shape_fn(IxDyn(&[2, 3, 2]), |i| (i[0] * 6 + i[1] * 2 + i[2]) as $t);
                round_trip(d.clone());
                // A non-contiguous view made owned in another layout encodes its elements
                // in logical order.
                round_trip(d.clone().reversed_axes().as_standard_layout().into_owned());
                round_trip(Array1::<$t>::from_vec(vec![1 as $t, 2 as $t]));
                round_trip(Array2::<$t>::from_shape_fn((2, 2), |(i, j)| (i + j) as $t));
                round_trip(ArrayD::<$t>::zeros(IxDyn(&[0, 4])));
                round_trip(ArrayD::<$t>::from_elem(IxDyn(&[]), 7 as $t));
            )*};
        }
        arrays!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
        round_trip(ArrayD::from_elem(IxDyn(&[2, 2]), true));
        // A transposed (Fortran-order) array keeps its logical element order.
        let t = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64).reversed_axes();
        let (tag, bytes) = Value::new(t.clone()).encode().unwrap();
        let back = Value::decode(tag, &bytes).unwrap();
        assert_eq!(back.get::<Array2<f64>>(&"t").unwrap(), &t);
        // A 3-d array under the 2-d tag is an error, not a panic.
        let (_, bytes3) = Value::new(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 1])))
            .encode()
            .unwrap();
        let tag2 = std::any::type_name::<Array2<f64>>();
        assert!(Value::decode(tag2, &bytes3).is_err());
    }

    #[test]
    fn unknown_tags_are_errors_naming_the_tag() {
        let err = Value::decode("my_crate::Nope", &[1, 2, 3]).unwrap_err();
        assert!(matches!(err, RaskError::Serialization { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("my_crate::Nope") && msg.contains("unknown type tag"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_bytes_are_errors() {
        let (tag, bytes) = Value::new(vec![1.5f64; 100]).encode().unwrap();
        let err = Value::decode(tag, &bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated") && err.contains(tag), "{err}");
        let err = Value::decode(std::any::type_name::<i64>(), &[1, 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn hostile_lengths_fail_without_allocating() {
        let huge = (1u64 << 60).to_le_bytes();
        for tag in [
            std::any::type_name::<Vec<f64>>(),
            std::any::type_name::<Vec<u8>>(),
            std::any::type_name::<Vec<String>>(),
            std::any::type_name::<Vec<bool>>(),
            std::any::type_name::<String>(),
            std::any::type_name::<Vec<Vec<i64>>>(),
        ] {
            let mut bytes = huge.to_vec();
            bytes.extend_from_slice(&[0; 16]);
            let err = Value::decode(tag, &bytes).unwrap_err().to_string();
            assert!(err.contains(tag), "{err}");
        }
        // `usize::MAX` elements and a shape whose product overflows.
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert!(Value::decode(std::any::type_name::<Vec<i64>>(), &bytes).is_err());
        #[cfg(feature = "ndarray")]
        {
            let tag = std::any::type_name::<ndarray::ArrayD<f64>>();
            let mut bytes = 2u64.to_le_bytes().to_vec();
            bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
            bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
            bytes.extend_from_slice(&[0; 8]);
            assert!(Value::decode(tag, &bytes).is_err());
            let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
            bytes.extend_from_slice(&[1; 64]);
            assert!(Value::decode(tag, &bytes).is_err());
        }
        // A `Vec<()>` of 2^60 units ends at the end of the input: each unit is one byte.
        let tag = std::any::type_name::<Vec<()>>();
        let _ = tag; // not registered by default; exercise the type's unspill directly
        let mut r: &[u8] = &huge;
        let mut with_units = r.to_vec();
        with_units.extend_from_slice(&[0; 3]);
        r = &with_units;
        assert!(<Vec<()> as Data>::unspill(&mut r).is_err());
    }

    #[test]
    fn malformed_fields_are_errors() {
        let tag = std::any::type_name::<bool>();
        assert!(Value::decode(tag, &[2]).is_err());
        let tag = std::any::type_name::<Option<i64>>();
        assert!(Value::decode(tag, &[7, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        let tag = std::any::type_name::<char>();
        assert!(Value::decode(tag, &0xD800u32.to_le_bytes()).is_err());
        let tag = std::any::type_name::<std::time::Duration>();
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2_000_000_000u32.to_le_bytes());
        assert!(Value::decode(tag, &bytes).is_err());
        let tag = std::any::type_name::<String>();
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert!(Value::decode(tag, &bytes).is_err());
    }

    #[test]
    fn values_that_cannot_cross_say_why_naming_the_type() {
        #[derive(Clone)]
        struct NoSpill;
        impl Data for NoSpill {}
        register_value!(NoSpill);
        let err = Value::new(NoSpill).encode().unwrap_err().to_string();
        assert!(err.contains("NoSpill") && err.contains("spill"), "{err}");

        #[derive(Clone)]
        struct Unregistered;
        impl Data for Unregistered {
            fn spill(&self, _w: &mut dyn std::io::Write) -> io::Result<bool> {
                Ok(true)
            }
        }
        let err = Value::new(Unregistered).encode().unwrap_err().to_string();
        assert!(
            err.contains("Unregistered") && err.contains("register_value"),
            "{err}"
        );

        let err = Value::with_nbytes(1u8, 1).encode().unwrap_err().to_string();
        assert!(err.contains("u8") && err.contains("Data"), "{err}");
    }

    #[test]
    fn the_registry_lists_sorted_tags() {
        let reg = ValueRegistry::global();
        let tags = reg.tags();
        assert!(tags.windows(2).all(|w| w[0] < w[1]));
        assert!(reg.contains(std::any::type_name::<Vec<f64>>()));
        assert!(reg.contains(std::any::type_name::<String>()));
        assert!(!reg.contains("nope"));
    }
}
