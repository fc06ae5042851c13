//! `groupby` through a hash shuffle.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rask_error::{RaskError, Result};
use rask_graph::{Key, KeyName, Layer, TaskSpec, Value};
use rustc_hash::{FxHashMap, FxHasher};

use crate::BagData;
use crate::bag::{Bag, TaskFn, fn_op, fresh_token, part_value};

fn bucket_of<K: Hash>(k: &K, n: usize) -> usize {
    // FxHash is deterministic (no per-process seed), so every task agrees on the bucket.
    let mut h = FxHasher::default();
    k.hash(&mut h);
    (h.finish() % n as u64) as usize
}

impl<T: BagData> Bag<T> {
    /// Groups the items by `key` (Dask's `Bag.groupby`): a bag of `(key, items)` with every
    /// item of one key in one group, items in bag order, groups in no set order, spread over
    /// `npartitions` partitions (the input's count when `None`).
    ///
    /// **Costly**, as in Dask: it is a full shuffle. Every input partition is split into one
    /// bucket per output partition (all items are held in memory, in tasks), and each output
    /// partition reads its bucket from every input: `n × m` edges. When the aim is one value
    /// per key (a count, a sum), [`Bag::foldby`] reduces in place and moves only one partial
    /// per key per partition: prefer it.
    pub fn groupby<K>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        npartitions: Option<usize>,
    ) -> Result<Bag<(K, Vec<T>)>>
    where
        K: BagData + Hash + Eq,
    {
        let nout = npartitions.unwrap_or(self.npartitions());
        if nout == 0 {
            return Err(RaskError::invalid_argument(
                "npartitions",
                "a bag needs at least one partition, got 0",
            ));
        }
        let token = fresh_token("rask.bag.groupby", self.token());
        let (mut tasks, split_keys) = self.per_partition_layer(
            "groupby-split",
            token,
            move |_, items| {
                let mut buckets: Vec<Vec<(K, T)>> = (0..nout).map(|_| Vec::new()).collect();
                for r in items {
                    let x = r?;
                    let k = key(&x);
                    buckets[bucket_of(&k, nout)].push((k, x));
                }
                Ok(buckets)
            },
            part_value::<Vec<(K, T)>>,
        );
        let name = KeyName::from_token("groupby", token);
        let run: TaskFn = Arc::new(move |j, vals: &[Value]| {
            let mut order: Vec<K> = Vec::new();
            let mut groups: FxHashMap<K, Vec<T>> = FxHashMap::default();
            for (i, v) in vals.iter().enumerate() {
                let buckets = v.get::<Vec<Vec<(K, T)>>>(&format_args!(
                    "groupby split {i} (read by output {j})"
                ))?;
                for (k, x) in &buckets[j] {
                    match groups.get_mut(k) {
                        Some(g) => g.push(x.clone()),
                        None => {
                            order.push(k.clone());
                            groups.insert(k.clone(), vec![x.clone()]);
                        }
                    }
                }
            }
            let out: Vec<(K, Vec<T>)> = order
                .into_iter()
                .map(|k| {
                    let g = groups.remove(&k).expect("every key in `order` has a group");
                    (k, g)
                })
                .collect();
            Ok(part_value(out))
        });
        let mut keys = Vec::with_capacity(nout);
        for j in 0..nout {
            let key = Key::new(name.clone(), [j as u32]);
            tasks.push(TaskSpec::new(
                key.clone(),
                fn_op("groupby", j, run.clone()),
                split_keys.clone(),
            ));
            keys.push(key);
        }
        let layer = Layer::new(tasks, self.inner.layers.clone());
        Ok(Bag::from_keys("groupby", token, keys, vec![layer]))
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;

    #[test]
    fn buckets_are_stable_and_in_range() {
        for n in 1..9 {
            for k in ["a", "b", "word", ""] {
                let b = bucket_of(&k, n);
                assert!(b < n);
                assert_eq!(b, bucket_of(&k, n));
            }
        }
    }
}
