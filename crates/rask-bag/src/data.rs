//! [`BagData`]: what a bag may hold, and how big it is.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

/// An item of a bag, or the partial result of a bag reduction.
///
/// Bags hold arbitrary items (log lines, JSON records, tuples), so this is deliberately a
/// weaker bound than `rask_graph::Data`: no spill or wire format is required, only a size.
/// The size is what the scheduler charges against the memory budget for a materialized
/// partition, so types holding heap data should count it; the default counts the inline size
/// only. A user type needs one line:
///
/// ```
/// #[derive(Clone)]
/// struct Account { id: u64, name: String }
/// impl rask_bag::BagData for Account {
///     fn nbytes(&self) -> usize { std::mem::size_of::<Self>() + self.name.capacity() }
/// }
/// ```
pub trait BagData: Clone + Send + Sync + 'static {
    fn nbytes(&self) -> usize {
        size_of::<Self>()
    }
}

macro_rules! inline_only {
    ($($t:ty),*) => {$( impl BagData for $t {} )*};
}
inline_only!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    (),
    &'static str
);

impl BagData for String {
    fn nbytes(&self) -> usize {
        size_of::<Self>() + self.capacity()
    }
}

impl BagData for Arc<str> {
    fn nbytes(&self) -> usize {
        size_of::<Self>() + self.len()
    }
}

impl<T: BagData> BagData for Vec<T> {
    fn nbytes(&self) -> usize {
        size_of::<Self>()
            + self.iter().map(BagData::nbytes).sum::<usize>()
            + (self.capacity() - self.len()) * size_of::<T>()
    }
}

impl<T: BagData> BagData for Box<T> {
    fn nbytes(&self) -> usize {
        size_of::<Self>() + (**self).nbytes()
    }
}

impl<T: BagData> BagData for Arc<T> {
    fn nbytes(&self) -> usize {
        size_of::<Self>() + (**self).nbytes()
    }
}

impl<T: BagData> BagData for Option<T> {
    fn nbytes(&self) -> usize {
        size_of::<Self>()
            + self
                .as_ref()
                .map_or(0, |v| v.nbytes().saturating_sub(size_of::<T>()))
    }
}

macro_rules! tuple {
    ($($n:ident),+) => {
        impl<$($n: BagData),+> BagData for ($($n,)+) {
            fn nbytes(&self) -> usize {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                0 $(+ $n.nbytes())+
            }
        }
    };
}
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);

impl<K: BagData, V: BagData, S: BuildHasher + Clone + Send + Sync + 'static> BagData
    for HashMap<K, V, S>
{
    fn nbytes(&self) -> usize {
        // The table's slots plus what the entries own on the heap.
        size_of::<Self>()
            + self.capacity() * (size_of::<K>() + size_of::<V>() + 1)
            + self
                .iter()
                .map(|(k, v)| {
                    k.nbytes().saturating_sub(size_of::<K>())
                        + v.nbytes().saturating_sub(size_of::<V>())
                })
                .sum::<usize>()
    }
}

impl<K: BagData, S: BuildHasher + Clone + Send + Sync + 'static> BagData for HashSet<K, S> {
    fn nbytes(&self) -> usize {
        size_of::<Self>()
            + self.capacity() * (size_of::<K>() + 1)
            + self
                .iter()
                .map(|k| k.nbytes().saturating_sub(size_of::<K>()))
                .sum::<usize>()
    }
}

impl<K: BagData, V: BagData> BagData for BTreeMap<K, V> {
    fn nbytes(&self) -> usize {
        size_of::<Self>()
            + self
                .iter()
                .map(|(k, v)| k.nbytes() + v.nbytes())
                .sum::<usize>()
    }
}

impl<K: BagData> BagData for BTreeSet<K> {
    fn nbytes(&self) -> usize {
        size_of::<Self>() + self.iter().map(BagData::nbytes).sum::<usize>()
    }
}

impl BagData for serde_json::Value {
    fn nbytes(&self) -> usize {
        use serde_json::Value as J;
        size_of::<Self>()
            + match self {
                J::Null | J::Bool(_) | J::Number(_) => 0,
                J::String(s) => s.capacity(),
                J::Array(a) => a.iter().map(BagData::nbytes).sum(),
                // Keys plus a few words of map overhead per entry.
                J::Object(m) => m
                    .iter()
                    .map(|(k, v)| size_of::<String>() + k.capacity() + v.nbytes() + 16)
                    .sum(),
            }
    }
}

/// The size of a partition: the vector and every item's heap data.
pub(crate) fn vec_nbytes<T: BagData>(v: &[T]) -> usize {
    size_of::<Vec<T>>() + v.iter().map(BagData::nbytes).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_heap_data() {
        let s = String::from("hello world");
        assert!(s.nbytes() >= size_of::<String>() + 11);
        let v = vec![s.clone(), s.clone()];
        assert!(v.nbytes() >= 2 * s.nbytes());
        let j: serde_json::Value =
            serde_json::from_str(r#"{"name":"a long enough name","xs":[1,2,3]}"#).unwrap();
        assert!(j.nbytes() > size_of::<serde_json::Value>() + 17);
        let mut m = HashMap::new();
        m.insert(String::from("key"), 1u64);
        assert!(m.nbytes() > size_of::<HashMap<String, u64>>());
        assert_eq!(3u64.nbytes(), 8);
        assert_eq!((1u8, 2u64).nbytes(), 9);
    }
}
