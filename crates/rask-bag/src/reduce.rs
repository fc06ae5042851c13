//! Reductions as trees (Dask's `Bag.reduction`): a per-partition step fused into the task
//! that reads the partition, combines of `split_every` partials at a time, and a finalize.

use std::cmp::Ordering;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use num_traits::ToPrimitive;
use rask_error::{RaskError, Result};
use rask_graph::{Collection, GraphBuilder, Key, KeyName, Layer, TaskSpec, Token, Value};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::BagData;
use crate::bag::{Bag, Items, TaskFn, data_value, derived_token, fn_op, fresh_token};

/// How many partials one combine task reads (Dask's `split_every` default for bags).
pub const SPLIT_EVERY: usize = 8;

/// A lazy single value computed from a bag (Dask's `dask.bag.Item`): the result of a
/// reduction. Computing it runs the tree; [`Bag::from_item`] turns an `Item<Vec<T>>` back
/// into a bag.
#[must_use = "a lazy value: nothing runs until it is computed (`.compute()`)"]
pub struct Item<R> {
    pub(crate) key: Key,
    pub(crate) layer: Arc<Layer>,
    _type: PhantomData<fn() -> R>,
}

impl<R> Clone for Item<R> {
    fn clone(&self) -> Self {
        Item {
            key: self.key.clone(),
            layer: self.layer.clone(),
            _type: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Item<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Item({})", self.key)
    }
}

impl<R> Item<R> {
    pub(crate) fn new(key: Key, layer: Arc<Layer>) -> Self {
        Item {
            key,
            layer,
            _type: PhantomData,
        }
    }

    /// The key of the task producing the value.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The layer holding that task (and, through it, everything it reads).
    pub fn layer(&self) -> &Arc<Layer> {
        &self.layer
    }
}

impl<R: BagData> Collection for Item<R> {
    type Output = R;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }
    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }
    fn finalize(&self, values: Vec<Value>) -> Result<R> {
        let v = values.into_iter().next().ok_or_else(|| {
            RaskError::InvalidGraph(format!("no value computed for {}", self.key))
        })?;
        v.take::<R>(&self.key)
    }
}

/// Runs `f` on every item, stopping at the first error in the stream.
fn each<T>(items: Items<T>, mut f: impl FnMut(T)) -> Result<()> {
    for r in items {
        f(r?);
    }
    Ok(())
}

type Combine<A> = Arc<dyn Fn(Vec<A>) -> Result<A> + Send + Sync>;

impl<T: BagData> Bag<T> {
    /// A bag of the items of `item`'s list, in one partition.
    pub fn from_item(item: &Item<Vec<T>>) -> Bag<T> {
        let token = derived_token("rask.bag.from_item", Token(0), |t| t.write_key(&item.key));
        Bag::from_keys(
            item.key.prefix(),
            token,
            vec![item.key.clone()],
            vec![item.layer.clone()],
        )
    }

    /// The general tree: `per_part` over each partition's stream, `combine` over groups of
    /// [`SPLIT_EVERY`] partials (and over the last group), `finalize` on the result.
    pub(crate) fn tree<A: BagData, R: BagData>(
        &self,
        prefix: &str,
        token: Token,
        per_part: impl Fn(Items<T>) -> Result<A> + Send + Sync + 'static,
        combine: impl Fn(Vec<A>) -> Result<A> + Send + Sync + 'static,
        finalize: impl Fn(A) -> Result<R> + Send + Sync + 'static,
    ) -> Item<R> {
        let (mut tasks, mut keys) = self.per_partition_layer(
            &format!("{prefix}-part"),
            token,
            move |_, items| per_part(items),
            data_value::<A>,
        );
        let combine: Combine<A> = Arc::new(combine);
        let gather = |vals: &[Value], what: &str| -> Result<Vec<A>> {
            vals.iter()
                .map(|v| v.get::<A>(&format_args!("{what} input")).cloned())
                .collect()
        };
        let mut level = 0u32;
        while keys.len() > SPLIT_EVERY {
            let name = KeyName::from_token(&format!("{prefix}-agg{level}"), token);
            let c = combine.clone();
            let label = format!("{prefix}-agg");
            let run: TaskFn = {
                let label = label.clone();
                Arc::new(move |_, vals: &[Value]| Ok(data_value(c(gather(vals, &label)?)?)))
            };
            let mut next = Vec::with_capacity(keys.len().div_ceil(SPLIT_EVERY));
            for (j, group) in keys.chunks(SPLIT_EVERY).enumerate() {
                let key = Key::new(name.clone(), [level, j as u32]);
                tasks.push(TaskSpec::new(
                    key.clone(),
                    fn_op(&label, j, run.clone()),
                    group.to_vec(),
                ));
                next.push(key);
            }
            keys = next;
            level += 1;
        }
        let key = Key::single(KeyName::from_token(prefix, token));
        let c = combine.clone();
        let label = prefix.to_string();
        let run: TaskFn =
            Arc::new(move |_, vals: &[Value]| Ok(data_value(finalize(c(gather(vals, &label)?)?)?)));
        tasks.push(TaskSpec::new(key.clone(), fn_op(prefix, 0, run), keys));
        Item::new(key, Layer::new(tasks, self.inner.layers.clone()))
    }

    /// Dask's `Bag.reduction(perpartition, aggregate)`: `per_partition` over each whole
    /// partition, `aggregate` over lists of partials, at every level of the tree (so its
    /// output must be a valid input to itself, as in Dask).
    pub fn reduction<A: BagData>(
        &self,
        per_partition: impl Fn(Vec<T>) -> A + Send + Sync + 'static,
        aggregate: impl Fn(Vec<A>) -> A + Send + Sync + 'static,
    ) -> Item<A> {
        self.tree(
            "reduction",
            fresh_token("rask.bag.reduction", self.token()),
            move |items| Ok(per_partition(items.collect::<Result<Vec<T>>>()?)),
            move |parts| Ok(aggregate(parts)),
            Ok,
        )
    }

    /// The number of items.
    pub fn count(&self) -> Item<u64> {
        self.tree(
            "count",
            derived_token("rask.bag.count", self.token(), |_| {}),
            |items| {
                let mut n = 0u64;
                each(items, |_| n += 1)?;
                Ok(n)
            },
            |parts| Ok(parts.into_iter().sum()),
            Ok,
        )
    }

    /// Dask's `Bag.fold(binop, combine, initial)`: `binop` folds each partition's items into
    /// an accumulator starting from `initial`; `combine` merges two accumulators.
    pub fn fold<A: BagData>(
        &self,
        initial: A,
        binop: impl Fn(A, T) -> A + Send + Sync + 'static,
        combine: impl Fn(A, A) -> A + Send + Sync + 'static,
    ) -> Item<A> {
        let init = initial.clone();
        self.tree(
            "fold",
            fresh_token("rask.bag.fold", self.token()),
            move |items| {
                let mut acc = Some(init.clone());
                each(items, |x| acc = Some(binop(acc.take().expect("set"), x)))?;
                Ok(acc.expect("set"))
            },
            move |parts| {
                let mut it = parts.into_iter();
                let first = it.next().unwrap_or_else(|| initial.clone());
                Ok(it.fold(first, &combine))
            },
            Ok,
        )
    }

    /// True when `pred` holds for some item; each partition stops at its first match.
    pub fn any(&self, pred: impl Fn(&T) -> bool + Send + Sync + 'static) -> Item<bool> {
        self.tree(
            "any",
            fresh_token("rask.bag.any", self.token()),
            move |mut items| {
                for r in items.by_ref() {
                    if pred(&r?) {
                        return Ok(true);
                    }
                }
                Ok(false)
            },
            |parts| Ok(parts.into_iter().any(|b| b)),
            Ok,
        )
    }

    /// True when `pred` holds for every item (true for an empty bag).
    pub fn all(&self, pred: impl Fn(&T) -> bool + Send + Sync + 'static) -> Item<bool> {
        self.tree(
            "all",
            fresh_token("rask.bag.all", self.token()),
            move |mut items| {
                for r in items.by_ref() {
                    if !pred(&r?) {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
            |parts| Ok(parts.into_iter().all(|b| b)),
            Ok,
        )
    }

    /// The `k` items with the largest `key`, largest first (Dask's `Bag.topk(k, key)`);
    /// equal keys keep the bag's order. Use `std::cmp::Reverse` in `key` for the smallest.
    pub fn topk<K: Ord + 'static>(
        &self,
        k: usize,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Bag<T> {
        let key = Arc::new(key);
        let k1 = key.clone();
        // Keeping the best `k` of a buffer twice that size: a stable sort then a cut, so
        // ties keep their order and the result equals a stable sort of the whole bag.
        fn best<T, K: Ord>(v: &mut Vec<T>, k: usize, key: &dyn Fn(&T) -> K) {
            v.sort_by_key(|x| std::cmp::Reverse(key(x)));
            v.truncate(k);
        }
        let item = self.tree(
            "topk",
            fresh_token("rask.bag.topk", self.token()),
            move |items| {
                let mut buf: Vec<T> = Vec::new();
                each(items, |x| {
                    buf.push(x);
                    if buf.len() >= 2 * k.max(16) {
                        best(&mut buf, k, &*k1);
                    }
                })?;
                best(&mut buf, k, &*k1);
                Ok(buf)
            },
            move |parts| {
                let mut all: Vec<T> = parts.into_iter().flatten().collect();
                best(&mut all, k, &*key);
                Ok(all)
            },
            Ok,
        );
        Bag::from_item(&item)
    }

    /// Per key, `binop` folds the items into an accumulator starting from `initial`, and
    /// `combine` merges the accumulators of one key from different partitions (Dask's
    /// `Bag.foldby`): a bag of `(key, accumulator)` in one partition, in no set order.
    pub fn foldby<K, A>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        initial: A,
        binop: impl Fn(A, T) -> A + Send + Sync + 'static,
        combine: impl Fn(A, A) -> A + Send + Sync + 'static,
    ) -> Bag<(K, A)>
    where
        K: BagData + Hash + Eq,
        A: BagData,
    {
        let item = self.tree(
            "foldby",
            fresh_token("rask.bag.foldby", self.token()),
            move |items| {
                let mut acc: FxHashMap<K, A> = FxHashMap::default();
                each(items, |x| {
                    let k = key(&x);
                    match acc.get_mut(&k) {
                        Some(a) => {
                            // `binop` takes the accumulator by value.
                            let prev = std::mem::replace(a, initial.clone());
                            *a = binop(prev, x);
                        }
                        None => {
                            let a = binop(initial.clone(), x);
                            acc.insert(k, a);
                        }
                    }
                })?;
                Ok(acc)
            },
            move |parts| Ok(merge_maps(parts, &combine)),
            |m: FxHashMap<K, A>| Ok(m.into_iter().collect::<Vec<(K, A)>>()),
        );
        Bag::from_item(&item)
    }

    /// Distinct items, in one partition, in no set order (Dask's `Bag.distinct`).
    pub fn distinct(&self) -> Bag<T>
    where
        T: Hash + Eq,
    {
        let item = self.tree(
            "distinct",
            derived_token("rask.bag.distinct", self.token(), |_| {}),
            |items| {
                let mut set: FxHashSet<T> = FxHashSet::default();
                each(items, |x| {
                    set.insert(x);
                })?;
                Ok(set)
            },
            |parts| {
                let mut parts = parts;
                // Grow the largest set rather than copying it into a new one.
                let biggest = (0..parts.len())
                    .max_by_key(|&i| parts[i].len())
                    .unwrap_or(0);
                if parts.is_empty() {
                    return Ok(FxHashSet::default());
                }
                let mut out = parts.swap_remove(biggest);
                for p in parts {
                    out.extend(p);
                }
                Ok(out)
            },
            |s: FxHashSet<T>| Ok(s.into_iter().collect::<Vec<T>>()),
        );
        Bag::from_item(&item)
    }

    /// How often each distinct item occurs: a bag of `(item, count)` in one partition, in no
    /// set order (Dask's `Bag.frequencies`). Chain `.topk(10, |p| p.1)` for the most common.
    pub fn frequencies(&self) -> Bag<(T, u64)>
    where
        T: Hash + Eq,
    {
        let item = self.tree(
            "frequencies",
            derived_token("rask.bag.frequencies", self.token(), |_| {}),
            |items| {
                let mut counts: FxHashMap<T, u64> = FxHashMap::default();
                each(items, |x| *counts.entry(x).or_insert(0) += 1)?;
                Ok(counts)
            },
            |parts| Ok(merge_maps(parts, &|a: u64, b: u64| a + b)),
            |m: FxHashMap<T, u64>| Ok(m.into_iter().collect::<Vec<(T, u64)>>()),
        );
        Bag::from_item(&item)
    }

    /// The first `n` items, in order (Dask's `Bag.take`), reading only the partitions it
    /// needs: partition `i` is read only when the first `i` gave fewer than `n` items, and
    /// its stream stops after the items still missing.
    pub fn take(&self, n: usize) -> Item<Vec<T>> {
        let token = derived_token("rask.bag.take", self.token(), |t| t.write_u64(n as u64));
        let name = KeyName::from_token("take", token);
        let stream = self.stream();
        let counts: Vec<usize> = self.inner.inputs.iter().map(Vec::len).collect();
        let run: TaskFn = Arc::new(move |i, vals: &[Value]| {
            // Inputs: the items so far (after the first link), then the partition's own.
            let (mut have, own) = if i == 0 {
                (Vec::new(), vals)
            } else {
                let prev = vals[0].get::<Vec<T>>(&format_args!("take, link {i}"))?;
                (prev.clone(), &vals[1..])
            };
            debug_assert_eq!(own.len(), counts[i]);
            if have.len() < n {
                let missing = n - have.len();
                for r in stream(i, own)?.take(missing) {
                    have.push(r?);
                }
            }
            Ok(crate::bag::part_value(have))
        });
        let mut tasks = Vec::with_capacity(self.npartitions());
        let mut prev: Option<Key> = None;
        for (i, inputs) in self.inner.inputs.iter().enumerate() {
            let key = Key::new(name.clone(), [i as u32]);
            let mut deps: Vec<Key> = prev.iter().cloned().collect();
            deps.extend(inputs.iter().cloned());
            tasks.push(TaskSpec::new(
                key.clone(),
                fn_op("take", i, run.clone()),
                deps,
            ));
            prev = Some(key);
        }
        let key = prev.expect("a bag has at least one partition");
        Item::new(key, Layer::new(tasks, self.inner.layers.clone()))
    }
}

fn merge_maps<K: Hash + Eq, A>(
    parts: Vec<FxHashMap<K, A>>,
    combine: &dyn Fn(A, A) -> A,
) -> FxHashMap<K, A> {
    let mut parts = parts;
    if parts.is_empty() {
        return FxHashMap::default();
    }
    // Merging into the largest map touches the fewest entries.
    let biggest = (0..parts.len())
        .max_by_key(|&i| parts[i].len())
        .unwrap_or(0);
    let mut out = parts.swap_remove(biggest);
    for p in parts {
        for (k, a) in p {
            match out.remove(&k) {
                Some(b) => {
                    out.insert(k, combine(b, a));
                }
                None => {
                    out.insert(k, a);
                }
            }
        }
    }
    out
}

/// Count, mean and sum of squared deviations of a partition (Welford), merged pairwise
/// with Chan's formula: stable where summing squares would cancel.
type Moments = (u64, f64, f64);

fn merge_moments(a: Moments, b: Moments) -> Moments {
    let (na, ma, sa) = a;
    let (nb, mb, sb) = b;
    if na == 0 {
        return b;
    }
    if nb == 0 {
        return a;
    }
    let n = na + nb;
    let d = mb - ma;
    let mean = ma + d * nb as f64 / n as f64;
    let m2 = sa + sb + d * d * (na as f64) * (nb as f64) / n as f64;
    (n, mean, m2)
}

impl<T: BagData + std::iter::Sum> Bag<T> {
    /// The sum of the items (zero for an empty bag).
    pub fn sum(&self) -> Item<T> {
        self.tree(
            "sum",
            derived_token("rask.bag.sum", self.token(), |_| {}),
            |items| items.sum::<Result<T>>(),
            |parts| Ok(parts.into_iter().sum()),
            Ok,
        )
    }
}

impl<T: BagData + PartialOrd> Bag<T> {
    fn extreme(&self, name: &'static str, want: Ordering) -> Item<T> {
        let pick = move |best: Option<T>, x: T| match best {
            Some(b) if x.partial_cmp(&b) != Some(want) => Some(b),
            _ => Some(x),
        };
        self.tree(
            name,
            derived_token(name, self.token(), |_| {}),
            move |items| {
                let mut best = None;
                each(items, |x| best = pick(best.take(), x))?;
                Ok(best)
            },
            move |parts| Ok(parts.into_iter().flatten().fold(None, pick)),
            move |best: Option<T>| {
                best.ok_or_else(|| {
                    RaskError::invalid_argument("bag", format!("{name} of an empty bag"))
                })
            },
        )
    }

    /// The smallest item; an empty bag is an error.
    pub fn min(&self) -> Item<T> {
        self.extreme("min", Ordering::Less)
    }

    /// The largest item; an empty bag is an error.
    pub fn max(&self) -> Item<T> {
        self.extreme("max", Ordering::Greater)
    }
}

impl<T: BagData + ToPrimitive> Bag<T> {
    fn moments(&self, name: &'static str) -> Item<Moments> {
        self.tree(
            name,
            derived_token("rask.bag.moments", self.token(), |_| {}),
            |items| {
                let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
                for r in items {
                    let x = r?.to_f64().ok_or_else(|| {
                        RaskError::invalid_argument("bag", "an item does not convert to f64")
                    })?;
                    n += 1;
                    let d = x - mean;
                    mean += d / n as f64;
                    m2 += d * (x - mean);
                }
                Ok((n, mean, m2))
            },
            |parts| Ok(parts.into_iter().fold((0, 0.0, 0.0), merge_moments)),
            Ok,
        )
    }

    fn moments_to(
        &self,
        name: &'static str,
        f: impl Fn(Moments) -> Result<f64> + Send + Sync + 'static,
    ) -> Item<f64> {
        let m = self.moments(name);
        let token = derived_token(name, self.token(), |t| t.write_key(&m.key));
        let key = Key::single(KeyName::from_token(name, token));
        let op = fn_op(
            name,
            0,
            Arc::new(move |_, vals: &[Value]| {
                let mom = *vals[0].get::<Moments>(&format_args!("{name} moments"))?;
                if mom.0 == 0 {
                    return Err(RaskError::invalid_argument(
                        "bag",
                        format!("{name} of an empty bag"),
                    ));
                }
                Ok(data_value(f(mom)?))
            }),
        );
        let layer = Layer::single(
            TaskSpec::new(key.clone(), op, vec![m.key.clone()]),
            [m.layer],
        );
        Item::new(key, layer)
    }

    /// The mean of the items; an empty bag is an error.
    pub fn mean(&self) -> Item<f64> {
        self.moments_to("mean", |(_, mean, _)| Ok(mean))
    }

    /// The variance with `ddof` delta degrees of freedom (Dask's `Bag.var(ddof=0)`).
    pub fn var(&self, ddof: u64) -> Item<f64> {
        self.moments_to("var", move |(n, _, m2)| {
            if n <= ddof {
                return Err(RaskError::invalid_argument(
                    "ddof",
                    format!("{n} items leave no degrees of freedom with ddof = {ddof}"),
                ));
            }
            Ok(m2 / (n - ddof) as f64)
        })
    }

    /// The standard deviation with `ddof` delta degrees of freedom (Dask's `Bag.std`).
    pub fn std(&self, ddof: u64) -> Item<f64> {
        self.moments_to("std", move |(n, _, m2)| {
            if n <= ddof {
                return Err(RaskError::invalid_argument(
                    "ddof",
                    format!("{n} items leave no degrees of freedom with ddof = {ddof}"),
                ));
            }
            Ok((m2 / (n - ddof) as f64).sqrt())
        })
    }
}
