//! [`Bag<T>`]: the handle, its per-partition streams, creation and element-wise operations.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use rask_error::{RaskError, Result};
use rask_graph::{Collection, GraphBuilder, Key, KeyName, Layer, Op, TaskSpec, Token, Value};

use crate::BagData;
use crate::data::vec_nbytes;

/// The items of one partition as they are produced: errors (a malformed line, a failing user
/// function) travel in the stream and fail the task that consumes it.
pub type Items<T> = Box<dyn Iterator<Item = Result<T>>>;

/// Builds the item stream of partition `i` from the values of its input tasks.
/// What a bag task runs: its partition number and its inputs' values to its output.
pub(crate) type TaskFn = Arc<dyn Fn(usize, &[Value]) -> Result<Value> + Send + Sync>;

pub(crate) type StreamFn<T> = Arc<dyn Fn(usize, &[Value]) -> Result<Items<T>> + Send + Sync>;

/// A lazy, partitioned sequence of items (Dask's `dask.bag.Bag`).
///
/// A bag is `npartitions` item streams. Element-wise operations (`map`, `filter`,
/// `flat_map`, `pluck`, ...) do not add tasks: they wrap the stream, so a chain of them runs
/// item by item inside the one task that consumes the partition (a reduction's per-partition
/// step, a write, or the materialization `compute` asks for), and no intermediate list is
/// built. Each partition's stream reads the values of zero or more input tasks (a literal
/// partition, a shuffle's output); readers have no inputs and read their file block in the
/// consuming task.
///
/// A consequence worth knowing (as with any lazy pipeline): two consumers of one bag each
/// run its stream. [`Bag::materialize`] makes a stage whose partitions are tasks, shared by
/// everything built on it.
#[must_use = "a lazy bag: nothing runs until it is computed (`.compute()`)"]
pub struct Bag<T> {
    pub(crate) inner: Arc<Inner<T>>,
}

pub(crate) struct Inner<T> {
    /// Readable prefix of keys made from this bag ("read-text", "map", ...).
    pub(crate) name: String,
    /// Identifies the pipeline: its source and every operation since (fresh for closures).
    pub(crate) token: Token,
    /// Per partition, the keys of the input tasks its stream reads.
    pub(crate) inputs: Vec<Vec<Key>>,
    /// The layers producing every input key.
    pub(crate) layers: Vec<Arc<Layer>>,
    pub(crate) stream: StreamFn<T>,
    /// True when the stream only replays one input `Vec<T>` per partition: materializing it
    /// again would copy it for nothing.
    pub(crate) identity: bool,
    /// The materialized stage, built once (its keys must be the same for every caller).
    pub(crate) materialized: OnceLock<Arc<Layer>>,
}

impl<T> Clone for Bag<T> {
    fn clone(&self) -> Self {
        Bag {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Bag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bag<{}>({}-{}, {} partitions)",
            std::any::type_name::<T>(),
            self.inner.name,
            self.inner.token.to_hex(),
            self.inner.inputs.len()
        )
    }
}

/// An op running a closure over a task's inputs. Bags are built from closures (user
/// functions and the streams they compose), so these ops report no params: on a cluster
/// they are refused at submit with an error naming the op, as `delayed` closures are.
pub(crate) struct FnOp {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) f: TaskFn,
}

impl Op for FnOp {
    fn name(&self) -> &str {
        &self.name
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        (self.f)(self.index, inputs)
    }
}

pub(crate) fn fn_op(name: &str, index: usize, f: TaskFn) -> Arc<dyn Op> {
    Arc::new(FnOp {
        name: name.to_string(),
        index,
        f,
    })
}

/// A materialized partition as a task value, sized for the memory budget.
pub(crate) fn part_value<T: BagData>(v: Vec<T>) -> Value {
    let n = vec_nbytes(&v);
    Value::with_nbytes(v, n)
}

/// A reduction's partial or final value, sized for the memory budget.
pub(crate) fn data_value<A: BagData>(a: A) -> Value {
    let n = a.nbytes();
    Value::with_nbytes(a, n)
}

pub(crate) fn get_part<'a, T: 'static>(
    v: &'a Value,
    key: &dyn std::fmt::Display,
) -> Result<&'a [T]> {
    Ok(v.get::<Vec<T>>(key)?.as_slice())
}

/// Replays a materialized `Vec<T>` item by item. The value is shared (other tasks may read
/// it), so items are cloned one at a time as they are consumed, never the whole vector.
struct Replay<T> {
    value: Value,
    at: usize,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: BagData> Iterator for Replay<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        if self.at >= self.len {
            return None;
        }
        let v = self.value.downcast_ref::<Vec<T>>()?;
        let item = v[self.at].clone();
        self.at += 1;
        Some(Ok(item))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len - self.at;
        (n, Some(n))
    }
}

pub(crate) fn replay<T: BagData>(value: &Value, what: &dyn std::fmt::Display) -> Result<Items<T>> {
    let len = value.get::<Vec<T>>(what)?.len();
    Ok(Box::new(Replay::<T> {
        value: value.clone(),
        at: 0,
        len,
        _t: PhantomData,
    }))
}

/// Flattens one item into many while passing errors through.
enum Flat<I, E> {
    Items(I),
    Err(Option<E>),
}

impl<I: Iterator, E> Iterator for Flat<I, E> {
    type Item = std::result::Result<I::Item, E>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Flat::Items(it) => it.next().map(Ok),
            Flat::Err(e) => e.take().map(Err),
        }
    }
}

pub(crate) fn fresh_token(op: &str, parent: Token) -> Token {
    // Closures cannot be hashed, so every call is a new computation (as for impure delayed
    // calls); the parent's token is mixed in only for readability of the derivation.
    let mut t = rask_graph::Tokenizer::new(op);
    t.write_token(parent);
    t.write_token(Token::fresh());
    t.finish()
}

pub(crate) fn derived_token(
    op: &str,
    parent: Token,
    f: impl FnOnce(&mut rask_graph::Tokenizer),
) -> Token {
    let mut t = rask_graph::Tokenizer::new(op);
    t.write_token(parent);
    f(&mut t);
    t.finish()
}

impl<T: BagData> Bag<T> {
    pub(crate) fn from_stream(
        name: &str,
        token: Token,
        inputs: Vec<Vec<Key>>,
        layers: Vec<Arc<Layer>>,
        stream: StreamFn<T>,
    ) -> Bag<T> {
        Bag {
            inner: Arc::new(Inner {
                name: name.to_string(),
                token,
                inputs,
                layers,
                stream,
                identity: false,
                materialized: OnceLock::new(),
            }),
        }
    }

    /// A bag whose partition `i` replays the `Vec<T>` that task `keys[i]` produces.
    pub(crate) fn from_keys(
        name: &str,
        token: Token,
        keys: Vec<Key>,
        layers: Vec<Arc<Layer>>,
    ) -> Bag<T> {
        let stream: StreamFn<T> = Arc::new(|i, vals: &[Value]| {
            let v = vals.first().ok_or_else(|| {
                RaskError::InvalidGraph(format!("bag partition {i} has no input"))
            })?;
            replay::<T>(v, &format_args!("bag partition {i}"))
        });
        Bag {
            inner: Arc::new(Inner {
                name: name.to_string(),
                token,
                inputs: keys.into_iter().map(|k| vec![k]).collect(),
                layers,
                stream,
                identity: true,
                materialized: OnceLock::new(),
            }),
        }
    }

    /// A bag over the items of `items`, split into `npartitions` contiguous parts of nearly
    /// equal length (Dask's `db.from_sequence(seq, npartitions=)`). Fewer items than
    /// partitions gives one partition per item; no items gives one empty partition.
    pub fn from_sequence(items: impl IntoIterator<Item = T>, npartitions: usize) -> Result<Bag<T>> {
        if npartitions == 0 {
            return Err(RaskError::invalid_argument(
                "npartitions",
                "a bag needs at least one partition, got 0",
            ));
        }
        let items: Vec<T> = items.into_iter().collect();
        let n = npartitions.min(items.len()).max(1);
        let len = items.len();
        let mut parts: Vec<Vec<T>> = Vec::with_capacity(n);
        let mut it = items.into_iter();
        for p in 0..n {
            let size = len * (p + 1) / n - len * p / n;
            parts.push(it.by_ref().take(size).collect());
        }
        let token = Token::fresh();
        let name = KeyName::from_token("from-sequence", token);
        let tasks: Vec<TaskSpec> = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let op: Arc<dyn Op> = Arc::new(rask_graph::Literal::new(part_value(p)));
                TaskSpec::new(Key::new(name.clone(), [i as u32]), op, vec![])
            })
            .collect();
        let keys = tasks.iter().map(|t| t.key.clone()).collect();
        let layer = Layer::new(tasks, vec![]);
        Ok(Bag::from_keys("from-sequence", token, keys, vec![layer]))
    }

    /// A bag whose partition `i` is the `Vec<T>` that task `parts[i].1` (in layer
    /// `parts[i].0`) produces: the building block of `rask::bag::from_delayed`.
    pub fn from_parts(parts: Vec<(Arc<Layer>, Key)>) -> Result<Bag<T>> {
        if parts.is_empty() {
            return Err(RaskError::invalid_argument(
                "parts",
                "a bag needs at least one partition",
            ));
        }
        let mut t = rask_graph::Tokenizer::new("rask.bag.from_delayed");
        for (_, k) in &parts {
            t.write_key(k);
        }
        let (layers, keys) = parts.into_iter().unzip();
        Ok(Bag::from_keys("from-delayed", t.finish(), keys, layers))
    }

    pub fn npartitions(&self) -> usize {
        self.inner.inputs.len()
    }

    /// The readable name and token this bag's keys are made of.
    pub fn name(&self) -> String {
        format!("{}-{}", self.inner.name, self.inner.token.to_hex())
    }

    pub(crate) fn token(&self) -> Token {
        self.inner.token
    }

    /// The stream of partition `i` (an error if it cannot start, e.g. a missing file).
    pub(crate) fn stream(&self) -> StreamFn<T> {
        self.inner.stream.clone()
    }

    /// A new bag with the same partitions and inputs and another stream.
    pub(crate) fn derive<R: BagData>(
        &self,
        name: &str,
        token: Token,
        stream: StreamFn<R>,
    ) -> Bag<R> {
        Bag::from_stream(
            name,
            token,
            self.inner.inputs.clone(),
            self.inner.layers.clone(),
            stream,
        )
    }

    /// Tasks reading each partition's inputs and running `f` on its stream; a layer of them
    /// and the keys, `(prefix-token, i)`.
    pub(crate) fn per_partition_layer<A: Send + Sync + 'static>(
        &self,
        prefix: &str,
        token: Token,
        f: impl Fn(usize, Items<T>) -> Result<A> + Send + Sync + 'static,
        wrap: fn(A) -> Value,
    ) -> (Vec<TaskSpec>, Vec<Key>) {
        let name = KeyName::from_token(prefix, token);
        let stream = self.stream();
        let f = Arc::new(f);
        let run: TaskFn = Arc::new(move |i, vals: &[Value]| Ok(wrap(f(i, stream(i, vals)?)?)));
        let mut tasks = Vec::with_capacity(self.npartitions());
        for (i, inputs) in self.inner.inputs.iter().enumerate() {
            tasks.push(TaskSpec::new(
                Key::new(name.clone(), [i as u32]),
                fn_op(prefix, i, run.clone()),
                inputs.clone(),
            ));
        }
        let keys = tasks.iter().map(|t| t.key.clone()).collect();
        (tasks, keys)
    }

    /// The materialized stage: one task per partition producing its `Vec<T>`.
    fn materialized_layer(&self) -> Arc<Layer> {
        self.inner
            .materialized
            .get_or_init(|| {
                let (tasks, _) = self.per_partition_layer(
                    &self.inner.name,
                    self.inner.token,
                    |_, items| items.collect::<Result<Vec<T>>>(),
                    part_value::<T>,
                );
                Layer::new(tasks, self.inner.layers.clone())
            })
            .clone()
    }

    /// The keys of the materialized partitions (each a `Vec<T>`).
    pub(crate) fn materialized_keys(&self) -> (Vec<Key>, Vec<Arc<Layer>>) {
        if self.inner.identity {
            let keys = self.inner.inputs.iter().map(|k| k[0].clone()).collect();
            return (keys, self.inner.layers.clone());
        }
        let layer = self.materialized_layer();
        let keys = layer.tasks().iter().map(|t| t.key.clone()).collect();
        (keys, vec![layer])
    }

    /// A bag whose partitions are tasks holding their items: everything built on it shares
    /// them instead of re-running this bag's stream (Dask's bags share upstream tasks the
    /// same way). Costs memory: each partition is held as a list until its readers are done.
    pub fn materialize(&self) -> Bag<T> {
        if self.inner.identity {
            return self.clone();
        }
        let (keys, layers) = self.materialized_keys();
        Bag::from_keys(&self.inner.name, self.inner.token, keys, layers)
    }

    /// This bag with its partitions replaced by tasks running `ops` (one per partition,
    /// each producing the partition's `Vec<T>`, under the keys `compute` reads): what
    /// persisting a bag builds, with literals holding the computed partitions.
    pub fn with_partition_ops(&self, ops: Vec<Arc<dyn Op>>) -> Result<Bag<T>> {
        let keys = self.output_keys_of_materialized();
        if ops.len() != keys.len() {
            return Err(RaskError::invalid_argument(
                "ops",
                format!("{} ops for {} partitions", ops.len(), keys.len()),
            ));
        }
        let tasks = keys
            .iter()
            .zip(ops)
            .map(|(k, op)| TaskSpec::new(k.clone(), op, vec![]))
            .collect();
        Ok(Bag::from_keys(
            &self.inner.name,
            self.inner.token,
            keys,
            vec![Layer::new(tasks, vec![])],
        ))
    }

    fn output_keys_of_materialized(&self) -> Vec<Key> {
        self.materialized_keys().0
    }

    // ------------------------------------------------------------ element-wise

    /// Applies `f` to every item (Dask's `Bag.map`).
    pub fn map<R: BagData>(&self, f: impl Fn(T) -> R + Send + Sync + 'static) -> Bag<R> {
        let s = self.stream();
        let f = Arc::new(f);
        self.derive(
            "map",
            fresh_token("rask.bag.map", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let f = f.clone();
                Ok(Box::new(s(i, vals)?.map(move |r| r.map(|x| f(x)))))
            }),
        )
    }

    /// Applies a fallible `f` to every item; an `Err` fails the partition's task, naming it.
    pub fn try_map<R: BagData, E: Into<rask_error::BoxError>>(
        &self,
        f: impl Fn(T) -> std::result::Result<R, E> + Send + Sync + 'static,
    ) -> Bag<R> {
        let s = self.stream();
        let f = Arc::new(f);
        self.derive(
            "try-map",
            fresh_token("rask.bag.try_map", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let f = f.clone();
                Ok(Box::new(s(i, vals)?.map(move |r| {
                    r.and_then(|x| f(x).map_err(RaskError::external))
                })))
            }),
        )
    }

    /// Keeps the items for which `pred` is true (Dask's `Bag.filter`).
    pub fn filter(&self, pred: impl Fn(&T) -> bool + Send + Sync + 'static) -> Bag<T> {
        let s = self.stream();
        let pred = Arc::new(pred);
        self.derive(
            "filter",
            fresh_token("rask.bag.filter", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let pred = pred.clone();
                Ok(Box::new(s(i, vals)?.filter(move |r| match r {
                    Ok(x) => pred(x),
                    Err(_) => true,
                })))
            }),
        )
    }

    /// Maps each item to any number of items (Dask's `map(f).flatten()`).
    pub fn flat_map<R: BagData, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Bag<R>
    where
        I: IntoIterator<Item = R>,
        I::IntoIter: 'static,
    {
        let s = self.stream();
        let f = Arc::new(f);
        self.derive(
            "flat-map",
            fresh_token("rask.bag.flat_map", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let f = f.clone();
                Ok(Box::new(s(i, vals)?.flat_map(move |r| match r {
                    Ok(x) => Flat::Items(f(x).into_iter()),
                    Err(e) => Flat::Err(Some(e)),
                })))
            }),
        )
    }

    /// Runs `f` over each whole partition (Dask's `map_partitions`): the partition's items
    /// are collected first, so `f` sees them all at once.
    pub fn map_partitions<R: BagData>(
        &self,
        f: impl Fn(Vec<T>) -> Vec<R> + Send + Sync + 'static,
    ) -> Bag<R> {
        let s = self.stream();
        let f = Arc::new(f);
        self.derive(
            "map-partitions",
            fresh_token("rask.bag.map_partitions", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let items = s(i, vals)?.collect::<Result<Vec<T>>>()?;
                Ok(Box::new(f(items).into_iter().map(Ok)))
            }),
        )
    }

    /// Applies `f` to every item with its partition number (for partition-aware keys or
    /// seeds, where Dask users reach for `map_partitions` with `partition_info`).
    pub fn map_with_partition<R: BagData>(
        &self,
        f: impl Fn(usize, T) -> R + Send + Sync + 'static,
    ) -> Bag<R> {
        let s = self.stream();
        let f = Arc::new(f);
        self.derive(
            "map",
            fresh_token("rask.bag.map_with_partition", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let f = f.clone();
                Ok(Box::new(s(i, vals)?.map(move |r| r.map(|x| f(i, x)))))
            }),
        )
    }

    /// Pairs the items of two bags with the same partitioning, partition by partition
    /// (Dask's `db.zip`). Partitions of different lengths fail the task, naming it.
    pub fn zip<U: BagData>(&self, other: &Bag<U>) -> Result<Bag<(T, U)>> {
        if self.npartitions() != other.npartitions() {
            return Err(RaskError::invalid_argument(
                "other",
                format!(
                    "zip needs equally partitioned bags: {} partitions and {}",
                    self.npartitions(),
                    other.npartitions()
                ),
            ));
        }
        let a = self.stream();
        let b = other.stream();
        let split: Vec<usize> = self.inner.inputs.iter().map(Vec::len).collect();
        let inputs = self
            .inner
            .inputs
            .iter()
            .zip(&other.inner.inputs)
            .map(|(x, y)| x.iter().chain(y).cloned().collect())
            .collect();
        let mut layers = self.inner.layers.clone();
        layers.extend(other.inner.layers.iter().cloned());
        let token = derived_token("rask.bag.zip", self.token(), |t| {
            t.write_token(other.token())
        });
        Ok(Bag::from_stream(
            "zip",
            token,
            inputs,
            layers,
            Arc::new(move |i, vals: &[Value]| {
                let (va, vb) = vals.split_at(split[i]);
                let mut ia = a(i, va)?;
                let mut ib = b(i, vb)?;
                Ok(Box::new(std::iter::from_fn(move || {
                    match (ia.next(), ib.next()) {
                        (None, None) => None,
                        (Some(Ok(x)), Some(Ok(y))) => Some(Ok((x, y))),
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(Err(e)),
                        _ => Some(Err(RaskError::ShapeMismatch(format!(
                            "zip: partition {i} of the two bags have different lengths"
                        )))),
                    }
                })))
            }),
        ))
    }

    /// Joins each item with the items of a small in-memory sequence that have the same key
    /// (Dask's `Bag.join`): an inner join giving `(item, other_item)` pairs. `other` is
    /// indexed once and shared by every partition.
    pub fn join<U: BagData, K: std::hash::Hash + Eq + Send + Sync + 'static>(
        &self,
        other: Vec<U>,
        on_self: impl Fn(&T) -> K + Send + Sync + 'static,
        on_other: impl Fn(&U) -> K,
    ) -> Bag<(T, U)> {
        let mut index: rustc_hash::FxHashMap<K, Vec<U>> = Default::default();
        for u in other {
            index.entry(on_other(&u)).or_default().push(u);
        }
        let index = Arc::new(index);
        let s = self.stream();
        let on_self = Arc::new(on_self);
        self.derive(
            "join",
            fresh_token("rask.bag.join", self.token()),
            Arc::new(move |i, vals: &[Value]| {
                let index = index.clone();
                let on_self = on_self.clone();
                Ok(Box::new(s(i, vals)?.flat_map(move |r| {
                    let x = match r {
                        Ok(x) => x,
                        Err(e) => return Flat::Err(Some(e)),
                    };
                    let matches: Vec<(T, U)> = match index.get(&on_self(&x)) {
                        Some(us) => us.iter().map(|u| (x.clone(), u.clone())).collect(),
                        None => Vec::new(),
                    };
                    Flat::Items(matches.into_iter())
                })))
            }),
        )
    }

    /// Changes the number of partitions (Dask's `Bag.repartition`). Fewer partitions chain
    /// neighbouring streams without materializing anything; more partitions split each
    /// materialized partition into nearly equal slices.
    pub fn repartition(&self, npartitions: usize) -> Result<Bag<T>> {
        if npartitions == 0 {
            return Err(RaskError::invalid_argument(
                "npartitions",
                "a bag needs at least one partition, got 0",
            ));
        }
        let n = self.npartitions();
        let token = derived_token("rask.bag.repartition", self.token(), |t| {
            t.write_u64(npartitions as u64)
        });
        if npartitions <= n {
            // Output j chains inputs [n*j/m, n*(j+1)/m).
            let groups: Vec<std::ops::Range<usize>> = (0..npartitions)
                .map(|j| n * j / npartitions..n * (j + 1) / npartitions)
                .collect();
            let inputs: Vec<Vec<Key>> = groups
                .iter()
                .map(|g| {
                    g.clone()
                        .flat_map(|p| self.inner.inputs[p].clone())
                        .collect()
                })
                .collect();
            let counts: Vec<usize> = self.inner.inputs.iter().map(Vec::len).collect();
            let s = self.stream();
            return Ok(Bag::from_stream(
                "repartition",
                token,
                inputs,
                self.inner.layers.clone(),
                Arc::new(move |j, vals: &[Value]| {
                    let mut streams = Vec::with_capacity(groups[j].len());
                    let mut at = 0;
                    for p in groups[j].clone() {
                        streams.push(s(p, &vals[at..at + counts[p]])?);
                        at += counts[p];
                    }
                    Ok(Box::new(streams.into_iter().flatten()))
                }),
            ));
        }
        // More partitions: output j is slice k of m of input p.
        let (keys, layers) = self.materialized_keys();
        let mut pieces = Vec::with_capacity(npartitions);
        for p in 0..n {
            let m = npartitions * (p + 1) / n - npartitions * p / n;
            for k in 0..m {
                pieces.push((p, k, m));
            }
        }
        let inputs = pieces
            .iter()
            .map(|&(p, _, _)| vec![keys[p].clone()])
            .collect();
        Ok(Bag::from_stream(
            "repartition",
            token,
            inputs,
            layers,
            Arc::new(move |j, vals: &[Value]| {
                let (_, k, m) = pieces[j];
                let what = format_args!("repartitioned piece {j}");
                let len = get_part::<T>(&vals[0], &what)?.len();
                let (lo, hi) = (len * k / m, len * (k + 1) / m);
                let value = vals[0].clone();
                Ok(Box::new((lo..hi).map(move |x| {
                    Ok(value.downcast_ref::<Vec<T>>().expect("checked above")[x].clone())
                })))
            }),
        ))
    }
}

impl<T: BagData, I: BagData> Bag<T>
where
    T: IntoIterator<Item = I>,
    T::IntoIter: 'static,
{
    /// Concatenates the items of nested sequences (Dask's `Bag.flatten`).
    pub fn flatten(&self) -> Bag<I> {
        self.flat_map(|x| x)
    }
}

impl<A: BagData, B: BagData> Bag<(A, B)> {
    /// Calls `f` with the fields of each pair (Dask's `Bag.starmap`).
    pub fn starmap<R: BagData>(&self, f: impl Fn(A, B) -> R + Send + Sync + 'static) -> Bag<R> {
        self.map(move |(a, b)| f(a, b))
    }
}

impl<A: BagData, B: BagData, C: BagData> Bag<(A, B, C)> {
    /// Calls `f` with the fields of each triple (Dask's `Bag.starmap`).
    pub fn starmap<R: BagData>(&self, f: impl Fn(A, B, C) -> R + Send + Sync + 'static) -> Bag<R> {
        self.map(move |(a, b, c)| f(a, b, c))
    }
}

impl<U: BagData> Bag<Vec<U>> {
    /// Item `index` of each list (Dask's `pluck` with an integer); a shorter list fails the
    /// task, naming the index and its length.
    pub fn pluck_index(&self, index: usize) -> Bag<U> {
        self.try_map(move |v: Vec<U>| {
            let len = v.len();
            v.into_iter().nth(index).ok_or_else(|| {
                RaskError::invalid_argument(
                    "index",
                    format!("pluck: index {index} of a list of length {len}"),
                )
            })
        })
    }
}

impl Bag<serde_json::Value> {
    /// A field of each record (Dask's `pluck`): `"name"`, or a dotted path into nested
    /// records and lists, `"address.city"`, `"transactions.0.amount"`. A record without it
    /// fails the task, naming the path and the record; see [`Bag::pluck_or_null`].
    pub fn pluck(&self, path: &str) -> Bag<serde_json::Value> {
        let path: Arc<[String]> = path.split('.').map(str::to_string).collect();
        self.try_map(move |v| {
            lookup(&v, &path).cloned().ok_or_else(|| {
                let mut shown = v.to_string();
                if shown.len() > 200 {
                    let mut cut = 200;
                    while !shown.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    shown.truncate(cut);
                    shown.push_str("...");
                }
                RaskError::invalid_argument(
                    "path",
                    format!("pluck: no `{}` in {shown}", path.join(".")),
                )
            })
        })
    }

    /// Like [`Bag::pluck`], with `null` for records that lack the path (Dask's
    /// `pluck(key, default=None)`).
    pub fn pluck_or_null(&self, path: &str) -> Bag<serde_json::Value> {
        let path: Arc<[String]> = path.split('.').map(str::to_string).collect();
        self.map(move |v| {
            lookup(&v, &path)
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        })
    }
}

fn lookup<'a>(v: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut at = v;
    for seg in path {
        at = match at {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

impl<T: BagData> Collection for Bag<T> {
    type Output = Vec<T>;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        let (_, layers) = self.materialized_keys();
        for l in &layers {
            builder.add_layer(l);
        }
    }
    fn output_keys(&self) -> Vec<Key> {
        self.materialized_keys().0
    }
    fn finalize(&self, values: Vec<Value>) -> Result<Vec<T>> {
        let keys = self.output_keys();
        let mut out = Vec::new();
        for (v, k) in values.into_iter().zip(&keys) {
            let part = v.take::<Vec<T>>(k)?;
            if out.is_empty() {
                out = part;
            } else {
                out.extend(part);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_tasks_are_local_and_say_so() {
        // Bags are built from closures: encoding a task for another process is refused,
        // naming the op (what a cluster submit reports).
        let bag = Bag::from_sequence(0..10i64, 2).unwrap().map(|x| x + 1);
        let (keys, layers) = bag.materialized_keys();
        assert_eq!(keys.len(), 2);
        let op = layers[0].tasks()[0].op.clone();
        let err = rask_graph::OpRegistry::encode(&*op)
            .unwrap_err()
            .to_string();
        assert!(err.contains("map") && err.contains("closure"), "{err}");
    }

    #[test]
    fn materializing_twice_gives_the_same_keys() {
        let bag = Bag::from_sequence(0..10i64, 3)
            .unwrap()
            .filter(|x| x % 2 == 0);
        assert_eq!(bag.materialized_keys().0, bag.materialized_keys().0);
        // A materialized bag replays its partitions: no second copy stage.
        let m = bag.materialize();
        assert_eq!(m.materialized_keys().0, bag.materialized_keys().0);
    }
}
