//! `Delayed<T>`: a lazy value, the result of a task that has not run yet.

use std::marker::PhantomData;
use std::sync::Arc;

use rask_graph::{
    Collection, Data, GraphBuilder, Key, KeyName, Layer, Literal, Op, OpRegistry, TaskSpec, Token,
    Tokenizer, Value, decode_params,
};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::{RaskError, Result};

/// A value that a task will produce: the handle that calls to `#[delayed]` functions,
/// [`delayed`] functions, [`value`] and arithmetic on `Delayed`s return.
///
/// Nothing runs until it is computed (`compute` from [`crate::prelude`]). A `Delayed` is cheap
/// to clone: it holds its task's layer, which points at the layers of its inputs.
#[must_use = "a lazy value: nothing runs until it is computed (`.compute()`)"]
pub struct Delayed<T> {
    layer: Arc<Layer>,
    key: Key,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed {
            layer: self.layer.clone(),
            key: self.key.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed({})", self.key)
    }
}

impl<T: Data> Delayed<T> {
    /// The key of the task producing this value.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The layer holding this value's task (and, through it, all its inputs).
    pub fn layer(&self) -> &Arc<Layer> {
        &self.layer
    }

    pub(crate) fn from_layer(layer: Arc<Layer>, key: Key) -> Self {
        Delayed {
            layer,
            key,
            _type: PhantomData,
        }
    }

    /// Applies a closure to the value, lazily. Closures cannot be tokenized, so each call
    /// makes a new task (`pure = false`).
    pub fn map<R: Data>(&self, f: impl Fn(&T) -> R + Send + Sync + 'static) -> Delayed<R> {
        let what = self.key.clone();
        let func: ClosureFn =
            Arc::new(move |args: &[Value]| Ok(Value::new(f(args[0].get::<T>(&what)?))));
        let mut call = Call::new("rask.map", "map", Func::Closure(func), false);
        call.arg(self);
        call.finish()
    }

    /// Like [`Delayed::map`] for a fallible closure; an `Err` fails the task.
    pub fn try_map<R: Data, E: Into<rask_error::BoxError>>(
        &self,
        f: impl Fn(&T) -> std::result::Result<R, E> + Send + Sync + 'static,
    ) -> Delayed<R> {
        let what = self.key.clone();
        let func: ClosureFn = Arc::new(move |args: &[Value]| {
            let out = f(args[0].get::<T>(&what)?).map_err(RaskError::external)?;
            Ok(Value::new(out))
        });
        let mut call = Call::new("rask.try_map", "try_map", Func::Closure(func), false);
        call.arg(self);
        call.finish()
    }
}

impl<T: Data> Collection for Delayed<T> {
    type Output = T;
    fn add_layers(&self, builder: &mut GraphBuilder) {
        builder.add_layer(&self.layer);
    }
    fn output_keys(&self) -> Vec<Key> {
        vec![self.key.clone()]
    }
    fn finalize(&self, values: Vec<Value>) -> Result<T> {
        let v = values.into_iter().next().ok_or_else(|| {
            RaskError::InvalidGraph(format!("no value computed for {}", self.key))
        })?;
        v.take::<T>(&self.key)
    }
}

impl<T: Data> crate::compute::Persist for Delayed<T> {
    fn with_values(&self, values: Vec<Value>) -> Result<Self> {
        let v = values.into_iter().next().ok_or_else(|| {
            RaskError::InvalidGraph(format!("no value computed for {}", self.key))
        })?;
        let op: Arc<dyn Op> = Arc::new(Literal::new(v));
        let layer = Layer::single(TaskSpec::new(self.key.clone(), op, vec![]), vec![]);
        Ok(Delayed::from_layer(layer, self.key.clone()))
    }

    fn with_remote_ops(&self, ops: Vec<Arc<dyn Op>>) -> Result<Self> {
        let op = ops
            .into_iter()
            .next()
            .ok_or_else(|| RaskError::InvalidGraph(format!("no op given for {}", self.key)))?;
        let layer = Layer::single(TaskSpec::new(self.key.clone(), op, vec![]), vec![]);
        Ok(Delayed::from_layer(layer, self.key.clone()))
    }
}

/// Wraps a plain value as a `Delayed` (Dask's `delayed(value)`). The key is deterministic
/// when the value can be tokenized.
pub fn value<T: Data>(v: T) -> Delayed<T> {
    let mut t = Tokenizer::new("rask.value");
    let token = if v.tokenize(&mut t) {
        t.finish()
    } else {
        Token::fresh()
    };
    let key = Key::single(KeyName::from_token("value", token));
    let op: Arc<dyn Op> = Arc::new(Literal::new(Value::new(v)));
    Delayed::from_layer(
        Layer::single(TaskSpec::new(key.clone(), op, vec![]), vec![]),
        key,
    )
}

/// Something that can be an argument of a delayed call: a plain value (embedded in the task)
/// or a `Delayed` (a dependency).
pub trait IntoArg<T> {
    #[doc(hidden)]
    fn into_arg(self, pure: bool) -> Arg;
}

#[doc(hidden)]
pub enum Arg {
    Literal { value: Value, token: Option<Token> },
    Delayed { key: Key, layer: Arc<Layer> },
}

impl<T: Data> IntoArg<T> for T {
    fn into_arg(self, pure: bool) -> Arg {
        let token = pure
            .then(|| {
                let mut t = Tokenizer::new("rask.literal");
                self.tokenize(&mut t).then(|| t.finish())
            })
            .flatten();
        Arg::Literal {
            value: Value::new(self),
            token,
        }
    }
}

impl<T: Data> IntoArg<T> for Delayed<T> {
    fn into_arg(self, _pure: bool) -> Arg {
        Arg::Delayed {
            key: self.key,
            layer: self.layer,
        }
    }
}

impl<T: Data> IntoArg<T> for &Delayed<T> {
    fn into_arg(self, _pure: bool) -> Arg {
        Arg::Delayed {
            key: self.key.clone(),
            layer: self.layer.clone(),
        }
    }
}

/// The function a call task runs: all arguments in parameter order.
pub type ClosureFn = Arc<dyn Fn(&[Value]) -> Result<Value> + Send + Sync>;

#[doc(hidden)]
#[derive(Clone)]
pub enum Func {
    /// A plain function (what `#[delayed]` generates): no allocation per call.
    Ptr(fn(&[Value]) -> Result<Value>),
    Closure(ClosureFn),
}

#[derive(Clone)]
enum Slot {
    Literal(Value),
    Input(u32),
}

/// A [`Slot`] on the wire: a literal in its portable form ([`Value::encode`]) or an input
/// position.
#[derive(Serialize, Deserialize)]
enum WireSlot<'a> {
    Literal {
        tag: &'a str,
        #[serde(borrow)]
        bytes: &'a [u8],
    },
    Input(u32),
}

/// The op of a delayed call: a function and where each argument comes from.
///
/// Portable when the function is a plain pointer registered under the op's name (what
/// `#[delayed]`, [`sum`] and the operators on built-in numbers register) and every literal
/// argument has a wire encoding: the params are the slots, the function is found by name.
/// Closures ([`delayed`], [`Delayed::map`], [`tree_reduce`]) stay in this process.
struct CallOp {
    name: &'static str,
    label: &'static str,
    func: Func,
    slots: SmallVec<[Slot; 2]>,
}

impl CallOp {
    fn local_error(&self, why: &str) -> RaskError {
        RaskError::Serialization {
            what: format!("op `{}`", self.name),
            message: format!("{why}; only `#[delayed]` functions can be sent to another process"),
        }
    }
}

impl Op for CallOp {
    fn name(&self) -> &str {
        self.name
    }
    fn label(&self) -> &str {
        self.label
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        if let Func::Closure(_) = self.func {
            return Err(self.local_error("it is a closure"));
        }
        // Same binary on both sides: a name not registered here is not registered there
        // (a generic `sum` or operator over a type rask does not know).
        if !OpRegistry::global().contains(self.name) {
            return Err(self.local_error("no decoder is registered under its name"));
        }
        let encoded: Vec<Option<(&'static str, Vec<u8>)>> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Slot::Literal(v) => v.encode().map(Some).map_err(|e| match e {
                    // Still a serialization error, naming the argument, the op and the type.
                    RaskError::Serialization { what, message } => RaskError::Serialization {
                        what: format!("{what} (argument {i} of op `{}`)", self.name),
                        message,
                    },
                    other => other,
                }),
                Slot::Input(_) => Ok(None),
            })
            .collect::<Result<_>>()?;
        let wire: Vec<WireSlot<'_>> = self
            .slots
            .iter()
            .zip(&encoded)
            .map(|(s, e)| match (s, e) {
                (Slot::Input(i), _) => WireSlot::Input(*i),
                (Slot::Literal(_), Some((tag, bytes))) => WireSlot::Literal { tag, bytes },
                (Slot::Literal(_), None) => unreachable!("every literal was encoded above"),
            })
            .collect();
        postcard::to_stdvec(&wire).map_err(|e| RaskError::Serialization {
            what: format!("op `{}`", self.name),
            message: e.to_string(),
        })
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let args: SmallVec<[Value; 4]> = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Literal(v) => Ok(v.clone()),
                // A decoded op's positions come from the wire: a bad one is an error.
                Slot::Input(i) => inputs.get(*i as usize).cloned().ok_or_else(|| {
                    RaskError::invalid_argument(
                        "inputs",
                        format!(
                            "op `{}` reads input {i}, the task has {}",
                            self.name,
                            inputs.len()
                        ),
                    )
                }),
            })
            .collect::<Result<_>>()?;
        match &self.func {
            Func::Ptr(f) => f(&args),
            Func::Closure(f) => f(&args),
        }
    }
}

/// Rebuilds a call op from its params: what the decoders `#[delayed]`, [`sum`] and the
/// operators register call, with their function pointer.
#[doc(hidden)]
pub fn decode_call(
    name: &'static str,
    label: &'static str,
    f: fn(&[Value]) -> Result<Value>,
    params: &[u8],
) -> Result<Arc<dyn Op>> {
    let wire: Vec<WireSlot<'_>> = decode_params(name, params)?;
    let slots = wire
        .into_iter()
        .enumerate()
        .map(|(i, w)| match w {
            WireSlot::Input(p) => Ok(Slot::Input(p)),
            WireSlot::Literal { tag, bytes } => Value::decode(tag, bytes)
                .map(Slot::Literal)
                .map_err(|e| e.context(format!("argument {i} of op `{name}`"))),
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(CallOp {
        name,
        label,
        func: Func::Ptr(f),
        slots,
    }))
}

/// Builds one call task. Used by `#[delayed]`'s expansion and by the function form.
#[doc(hidden)]
pub struct Call {
    name: &'static str,
    label: &'static str,
    func: Func,
    pure: bool,
    deterministic: bool,
    tokenizer: Option<Tokenizer>,
    slots: SmallVec<[Slot; 2]>,
    deps: SmallVec<[Key; 2]>,
    dep_layers: SmallVec<[Arc<Layer>; 2]>,
    /// Position of each dependency in `deps`, once there are too many to search linearly
    /// (`sum` of a million items would otherwise compare keys a million times per item).
    dep_index: Option<std::collections::HashMap<Key, u32>>,
}

/// Above this many distinct dependencies, [`Call::arg`] looks repeats up in a hash map.
const LINEAR_DEP_SEARCH: usize = 16;

impl Call {
    pub fn new(name: &'static str, label: &'static str, func: Func, pure: bool) -> Self {
        Call {
            name,
            label,
            func,
            pure,
            deterministic: pure,
            tokenizer: pure.then(|| Tokenizer::new(name)),
            slots: SmallVec::new(),
            deps: SmallVec::new(),
            dep_layers: SmallVec::new(),
            dep_index: None,
        }
    }

    /// Mixes `salt` into a pure call's key. `#[delayed]` passes where the function is
    /// defined, so two functions with one path (nested in different functions) never share
    /// keys.
    pub fn salt(&mut self, salt: &str) {
        if let Some(t) = self.tokenizer.as_mut() {
            t.write_str(salt);
        }
    }

    pub fn arg<T>(&mut self, a: impl IntoArg<T>) {
        match a.into_arg(self.pure) {
            Arg::Literal { value, token } => {
                match (token, self.tokenizer.as_mut()) {
                    (Some(tok), Some(t)) => {
                        t.write_u8(0);
                        t.write_token(tok);
                    }
                    _ => self.deterministic = false,
                }
                self.slots.push(Slot::Literal(value));
            }
            Arg::Delayed { key, layer } => {
                if let Some(t) = self.tokenizer.as_mut() {
                    t.write_u8(1);
                    t.write_key(&key);
                }
                let found = match &self.dep_index {
                    Some(index) => index.get(&key).copied(),
                    None => self.deps.iter().position(|k| *k == key).map(|p| p as u32),
                };
                let pos = match found {
                    Some(p) => p,
                    None => {
                        let p = self.deps.len() as u32;
                        if let Some(index) = &mut self.dep_index {
                            index.insert(key.clone(), p);
                        } else if self.deps.len() >= LINEAR_DEP_SEARCH {
                            let mut index: std::collections::HashMap<Key, u32> = self
                                .deps
                                .iter()
                                .enumerate()
                                .map(|(i, k)| (k.clone(), i as u32))
                                .collect();
                            index.insert(key.clone(), p);
                            self.dep_index = Some(index);
                        }
                        self.deps.push(key);
                        self.dep_layers.push(layer);
                        p
                    }
                };
                self.slots.push(Slot::Input(pos));
            }
        }
    }

    pub fn finish<R: Data>(self) -> Delayed<R> {
        let token = match (&self.tokenizer, self.deterministic) {
            (Some(t), true) => t.finish(),
            _ => Token::fresh(),
        };
        let key = Key::single(KeyName::from_token(self.label, token));
        let op: Arc<dyn Op> = Arc::new(CallOp {
            name: self.name,
            label: self.label,
            func: self.func,
            slots: self.slots,
        });
        let layer = Layer::single(TaskSpec::new(key.clone(), op, self.deps), self.dep_layers);
        Delayed::from_layer(layer, key)
    }
}

/// The function form of `delayed`: wraps a function or closure so that calling it builds a
/// task. Calls take a tuple of arguments, each a plain value or a `Delayed`.
///
/// ```
/// use rask::prelude::*;
/// let inc = rask::delayed(|x: i64| x + 1);
/// let add = rask::delayed(|x: i64, y: i64| x + y);
/// let total = add.call((inc.call((1,)), inc.call((2,))));
/// assert_eq!(total.compute()?, 5);
/// # Ok::<(), rask::RaskError>(())
/// ```
pub fn delayed<F>(f: F) -> DelayedFn<F> {
    DelayedFn {
        f: Arc::new(f),
        label: short_type_name::<F>(),
        pure: false,
    }
}

/// Like [`delayed`] for a function returning `Result`: an `Err` fails the task.
pub fn try_delayed<F>(f: F) -> TryDelayedFn<F> {
    TryDelayedFn(delayed(f))
}

fn short_type_name<F>() -> &'static str {
    let full = std::any::type_name::<F>();
    let base = full.split('<').next().unwrap_or(full);
    let last = base
        .rsplit("::")
        .find(|s| !s.starts_with('{'))
        .unwrap_or(base);
    if full.contains("{{closure}}") {
        "lambda"
    } else {
        last
    }
}

/// A function wrapped by [`delayed`].
pub struct DelayedFn<F> {
    f: Arc<F>,
    label: &'static str,
    pure: bool,
}

/// A fallible function wrapped by [`try_delayed`].
pub struct TryDelayedFn<F>(DelayedFn<F>);

impl<F> DelayedFn<F> {
    /// Deterministic keys: calls with equal arguments share one task. Only for functions
    /// without side effects or randomness.
    pub fn pure(mut self) -> Self {
        self.pure = true;
        self
    }

    /// The key prefix and label (defaults to the function's name, or `lambda`).
    pub fn name(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// Calls the function lazily with a tuple of arguments.
    pub fn call<Args, M>(&self, args: Args) -> Delayed<<Self as CallWith<Args, M>>::Output>
    where
        Self: CallWith<Args, M>,
    {
        self.call_with(args)
    }

    fn op_name(&self) -> &'static str {
        // Closures are told apart by their type: the same closure called twice with equal
        // arguments shares a key when pure, two different closures never do.
        std::any::type_name::<F>()
    }
}

impl<F> TryDelayedFn<F> {
    pub fn pure(self) -> Self {
        TryDelayedFn(self.0.pure())
    }
    pub fn name(self, label: &'static str) -> Self {
        TryDelayedFn(self.0.name(label))
    }
    pub fn call<Args, M>(&self, args: Args) -> Delayed<<Self as CallWith<Args, M>>::Output>
    where
        Self: CallWith<Args, M>,
    {
        self.call_with(args)
    }
}

/// Calling a wrapped function with a tuple of arguments; implemented for arities 0 to 6.
pub trait CallWith<Args, Marker> {
    type Output: Data;
    fn call_with(&self, args: Args) -> Delayed<Self::Output>;
}

fn type_id_token<F: 'static>(t: &mut Tokenizer) {
    // TypeId is unique per closure type within this process; closures never leave it.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::any::TypeId::of::<F>().hash(&mut h);
    t.write_u64(h.finish());
}

macro_rules! impl_call_with {
    ($($a:ident $x:ident $i:tt),*) => {
        impl<F, R, $($a, $x),*> CallWith<($($x,)*), ($($a,)*)> for DelayedFn<F>
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: Data,
            $($a: Data, $x: IntoArg<$a>,)*
        {
            type Output = R;
            #[allow(unused_variables, non_snake_case)]
            fn call_with(&self, args: ($($x,)*)) -> Delayed<R> {
                let f = self.f.clone();
                let func: ClosureFn = Arc::new(move |vals: &[Value]| {
                    let _ = vals;
                    Ok(Value::new(f($(vals[$i].get::<$a>(&concat!("argument ", stringify!($i)))?.clone()),*)))
                });
                let mut call = Call::new(self.op_name(), self.label, Func::Closure(func), self.pure);
                if let Some(t) = call.tokenizer.as_mut() {
                    type_id_token::<F>(t);
                }
                $(call.arg::<$a>(args.$i);)*
                call.finish()
            }
        }

        impl<F, R, E, $($a, $x),*> CallWith<($($x,)*), ($($a,)*)> for TryDelayedFn<F>
        where
            F: Fn($($a),*) -> std::result::Result<R, E> + Send + Sync + 'static,
            E: Into<rask_error::BoxError>,
            R: Data,
            $($a: Data, $x: IntoArg<$a>,)*
        {
            type Output = R;
            #[allow(unused_variables, non_snake_case)]
            fn call_with(&self, args: ($($x,)*)) -> Delayed<R> {
                let f = self.0.f.clone();
                let func: ClosureFn = Arc::new(move |vals: &[Value]| {
                    let _ = vals;
                    let out = f($(vals[$i].get::<$a>(&concat!("argument ", stringify!($i)))?.clone()),*)
                        .map_err(RaskError::external)?;
                    Ok(Value::new(out))
                });
                let mut call = Call::new(self.0.op_name(), self.0.label, Func::Closure(func), self.0.pure);
                if let Some(t) = call.tokenizer.as_mut() {
                    type_id_token::<F>(t);
                }
                $(call.arg::<$a>(args.$i);)*
                call.finish()
            }
        }
    };
}
impl_call_with!();
impl_call_with!(A0 X0 0);
impl_call_with!(A0 X0 0, A1 X1 1);
impl_call_with!(A0 X0 0, A1 X1 1, A2 X2 2);
impl_call_with!(A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3);
impl_call_with!(A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3, A4 X4 4);
impl_call_with!(A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3, A4 X4 4, A5 X5 5);

fn sum_values<T: Data + std::iter::Sum<T>>(args: &[Value]) -> Result<Value> {
    let mut items = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        items.push(a.get::<T>(&format_args!("item {i} of sum"))?.clone());
    }
    Ok(Value::new(items.into_iter().sum::<T>()))
}

/// Sums many `Delayed`s in one task (Dask's `delayed(sum)(values)`). Over the built-in
/// numbers the op is `rask.sum<T>` and portable; over other types it is `rask.sum`, local.
pub fn sum<T>(items: impl IntoIterator<Item = Delayed<T>>) -> Delayed<T>
where
    T: Data + std::iter::Sum<T>,
{
    let name = typed_op_name::<T>("sum").unwrap_or("rask.sum");
    let mut call = Call::new(name, "sum", Func::Ptr(sum_values::<T>), true);
    if let Some(t) = call.tokenizer.as_mut() {
        t.write_str(std::any::type_name::<T>());
    }
    for item in items {
        call.arg(item);
    }
    call.finish()
}

/// Reduces many `Delayed`s pairwise (or `fan_in` at a time) in a tree: depth
/// `log_fan_in(n)` instead of one task reading everything. Errors if `items` is empty or
/// `fan_in < 2`.
pub fn tree_reduce<T: Data>(
    items: Vec<Delayed<T>>,
    fan_in: usize,
    combine: impl Fn(&[&T]) -> T + Send + Sync + 'static,
) -> Result<Delayed<T>> {
    if fan_in < 2 {
        return Err(RaskError::invalid_argument(
            "fan_in",
            format!("must be at least 2, got {fan_in}"),
        ));
    }
    if items.is_empty() {
        return Err(RaskError::invalid_argument(
            "items",
            "cannot reduce an empty list",
        ));
    }
    let combine = Arc::new(combine);
    let mut level = items;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(fan_in));
        for group in level.chunks(fan_in) {
            if group.len() == 1 {
                next.push(group[0].clone());
                continue;
            }
            let c = combine.clone();
            let func: ClosureFn = Arc::new(move |vals: &[Value]| {
                let refs: Vec<&T> = vals
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.get::<T>(&format_args!("input {i} of tree_reduce")))
                    .collect::<Result<_>>()?;
                Ok(Value::new(c(&refs)))
            });
            let mut call = Call::new("rask.tree_reduce", "reduce", Func::Closure(func), false);
            for d in group {
                call.arg(d);
            }
            next.push(call.finish());
        }
        level = next;
    }
    Ok(level.pop().expect("non-empty"))
}

/// The value of argument `i` of an operator task (an error, not a panic, when a decoded op
/// reads too few).
fn operand<'a, T: 'static>(args: &'a [Value], i: usize, what: &'static str) -> Result<&'a T> {
    args.get(i)
        .ok_or_else(|| RaskError::invalid_argument("inputs", format!("missing {what}")))?
        .get::<T>(&what)
}

macro_rules! binary_op {
    ($trait:ident, $method:ident, $apply:ident, $label:literal, $scalars:tt) => {
        fn $apply<T, U>(args: &[Value]) -> Result<Value>
        where
            T: Data + std::ops::$trait<U>,
            U: Data,
            <T as std::ops::$trait<U>>::Output: Data,
        {
            let a = operand::<T>(args, 0, concat!("left operand of ", $label))?.clone();
            let b = operand::<U>(args, 1, concat!("right operand of ", $label))?.clone();
            Ok(Value::new(std::ops::$trait::$method(a, b)))
        }

        impl<T, U> std::ops::$trait<Delayed<U>> for Delayed<T>
        where
            T: Data + std::ops::$trait<U>,
            U: Data,
            <T as std::ops::$trait<U>>::Output: Data,
        {
            type Output = Delayed<<T as std::ops::$trait<U>>::Output>;
            fn $method(self, rhs: Delayed<U>) -> Self::Output {
                // Both operands of one built-in number type: a named, portable op.
                let name = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>() {
                    typed_op_name::<T>($label)
                } else {
                    None
                };
                let name = name.unwrap_or(concat!("rask.", $label));
                binary_call::<T, U, _>(name, $label, $apply::<T, U>, self, rhs)
            }
        }

        impl<T, U> std::ops::$trait<&Delayed<U>> for &Delayed<T>
        where
            T: Data + std::ops::$trait<U>,
            U: Data,
            <T as std::ops::$trait<U>>::Output: Data,
        {
            type Output = Delayed<<T as std::ops::$trait<U>>::Output>;
            fn $method(self, rhs: &Delayed<U>) -> Self::Output {
                std::ops::$trait::$method(self.clone(), rhs.clone())
            }
        }

        binary_op!(@scalars $trait, $method, $label, $scalars);
    };
    (@scalars $trait:ident, $method:ident, $label:literal, [$($s:ty),*]) => {$(
        impl std::ops::$trait<$s> for Delayed<$s> {
            type Output = Delayed<$s>;
            fn $method(self, rhs: $s) -> Delayed<$s> {
                std::ops::$trait::$method(self, value(rhs))
            }
        }
        impl std::ops::$trait<$s> for &Delayed<$s> {
            type Output = Delayed<$s>;
            fn $method(self, rhs: $s) -> Delayed<$s> {
                std::ops::$trait::$method(self.clone(), value(rhs))
            }
        }
        impl std::ops::$trait<Delayed<$s>> for $s {
            type Output = Delayed<$s>;
            fn $method(self, rhs: Delayed<$s>) -> Delayed<$s> {
                std::ops::$trait::$method(value(self), rhs)
            }
        }
    )*};
}

/// Builds a pure binary-operator task: keys depend on the operator, both operand types and
/// both operand keys, so `a + b` written twice is one task.
fn binary_call<T: Data, U: Data, O: Data>(
    name: &'static str,
    label: &'static str,
    f: fn(&[Value]) -> Result<Value>,
    lhs: Delayed<T>,
    rhs: Delayed<U>,
) -> Delayed<O> {
    let mut call = Call::new(name, label, Func::Ptr(f), true);
    if let Some(t) = call.tokenizer.as_mut() {
        t.write_str(std::any::type_name::<T>());
        t.write_str(std::any::type_name::<U>());
    }
    // Each operand is its own slot even when both are the same Delayed (`x + x`).
    call.arg::<T>(lhs);
    call.arg::<U>(rhs);
    call.finish()
}

binary_op!(
    Add,
    add,
    apply_add,
    "add",
    [
        i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
    ]
);
binary_op!(
    Sub,
    sub,
    apply_sub,
    "sub",
    [
        i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
    ]
);
binary_op!(
    Mul,
    mul,
    apply_mul,
    "mul",
    [
        i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
    ]
);
binary_op!(
    Div,
    div,
    apply_div,
    "truediv",
    [
        i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
    ]
);
binary_op!(
    Rem,
    rem,
    apply_rem,
    "mod",
    [
        i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
    ]
);

fn apply_neg<T>(args: &[Value]) -> Result<Value>
where
    T: Data + std::ops::Neg,
    <T as std::ops::Neg>::Output: Data,
{
    Ok(Value::new(
        -operand::<T>(args, 0, "operand of neg")?.clone(),
    ))
}

impl<T> std::ops::Neg for Delayed<T>
where
    T: Data + std::ops::Neg,
    <T as std::ops::Neg>::Output: Data,
{
    type Output = Delayed<<T as std::ops::Neg>::Output>;
    fn neg(self) -> Self::Output {
        let name = typed_op_name::<T>("neg").unwrap_or("rask.neg");
        let mut call = Call::new(name, "neg", Func::Ptr(apply_neg::<T>), true);
        if let Some(t) = call.tokenizer.as_mut() {
            t.write_str(std::any::type_name::<T>());
        }
        call.arg::<T>(self);
        call.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Named ops over the built-in numbers.
//
// `sum` and the operators are generic functions, so their pointers cannot be found by one name:
// over each built-in number type they get a name of their own (`rask.add<i64>`) with a decoder
// that rebuilds the call with that instantiation. Over any other type the name stays generic
// (`rask.add`) and unregistered, so the op is local (its `params` say so).

macro_rules! typed_ops {
    (signed: [$($s:ty),*], unsigned: [$($u:ty),*]) => {
        /// The registered name of `op` (`sum`, `add`, `sub`, `mul`, `truediv`, `mod`, `neg`)
        /// over `T`, when `T` is a built-in number.
        fn typed_op_name<T: 'static>(op: &str) -> Option<&'static str> {
            let id = std::any::TypeId::of::<T>();
            $(
                if id == std::any::TypeId::of::<$s>() {
                    return typed_ops!(@names op, $s, [sum, add, sub, mul, truediv, mod, neg]);
                }
            )*
            $(
                if id == std::any::TypeId::of::<$u>() {
                    return typed_ops!(@names op, $u, [sum, add, sub, mul, truediv, mod]);
                }
            )*
            None
        }
        $(
            typed_ops!(@register $s, sum_values, sum);
            typed_ops!(@register $s, apply_add, add);
            typed_ops!(@register $s, apply_sub, sub);
            typed_ops!(@register $s, apply_mul, mul);
            typed_ops!(@register $s, apply_div, truediv);
            typed_ops!(@register $s, apply_rem, mod);
            typed_ops!(@register1 $s, apply_neg, neg);
        )*
        $(
            typed_ops!(@register $u, sum_values, sum);
            typed_ops!(@register $u, apply_add, add);
            typed_ops!(@register $u, apply_sub, sub);
            typed_ops!(@register $u, apply_mul, mul);
            typed_ops!(@register $u, apply_div, truediv);
            typed_ops!(@register $u, apply_rem, mod);
        )*
    };
    (@name $op:ident, $t:ty) => {
        concat!("rask.", stringify!($op), "<", stringify!($t), ">")
    };
    (@names $op:ident, $t:ty, [$($name:ident),*]) => {
        match $op {
            $(stringify!($name) => Some(typed_ops!(@name $name, $t)),)*
            _ => None,
        }
    };
    // `sum` takes one type parameter, the operators two (both operands the same type).
    (@register $t:ty, sum_values, $op:ident) => {
        rask_graph::register_op!(typed_ops!(@name $op, $t), |params, _| {
            decode_call(typed_ops!(@name $op, $t), stringify!($op), sum_values::<$t>, params)
        });
    };
    (@register $t:ty, $apply:ident, $op:ident) => {
        rask_graph::register_op!(typed_ops!(@name $op, $t), |params, _| {
            decode_call(typed_ops!(@name $op, $t), stringify!($op), $apply::<$t, $t>, params)
        });
    };
    (@register1 $t:ty, $apply:ident, $op:ident) => {
        rask_graph::register_op!(typed_ops!(@name $op, $t), |params, _| {
            decode_call(typed_ops!(@name $op, $t), stringify!($op), $apply::<$t>, params)
        });
    };
}

typed_ops!(
    signed: [i8, i16, i32, i64, i128, isize, f32, f64],
    unsigned: [u8, u16, u32, u64, u128, usize]
);
