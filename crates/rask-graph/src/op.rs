//! Ops: what a task does.
//!
//! An [`Op`] has a stable name, serializable parameters and an `execute` over its inputs'
//! values. Built-in ops register a decoder under their name in the [`OpRegistry`], so a
//! process that did not build a graph (a worker) can rebuild each op from `(name, params)`.
//! User closures are ops too, but only locally: they report [`Op::params`] as `None`.

use std::fmt;
use std::sync::Arc;

use rask_error::{RaskError, Result};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::Value;

/// How expensive an op is, which drives inlining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Cheaper than scheduling a task: a constant, a field access, a slice view. Cheap tasks
    /// are inlined into their dependents by [`crate::optimize::inline_cheap`].
    Cheap,
    Normal,
}

/// What a task runs.
pub trait Op: Send + Sync + 'static {
    /// Stable name, used in keys, error messages and the registry (`rask.sum`, `my_crate::inc`).
    fn name(&self) -> &str;

    /// Short label for pictures and progress (defaults to the name's last path segment).
    fn label(&self) -> &str {
        let name = self.name();
        name.rsplit("::").next().unwrap_or(name)
    }

    /// Serialized parameters, or `None` for an op that cannot leave this process (a closure).
    fn params(&self) -> Option<Vec<u8>> {
        None
    }

    /// [`Op::params`], or an error saying why this op cannot leave this process. Override it
    /// where the reason is worth more than "a closure" (a literal whose type has no wire
    /// encoding, a step of a composite); [`OpRegistry::encode`] reports it.
    fn try_params(&self) -> Result<Vec<u8>> {
        self.params().ok_or_else(|| RaskError::Serialization {
            what: format!("op `{}`", self.name()),
            message: "it is a local closure; register a named op to send it to another process"
                .into(),
        })
    }

    /// Runs the op. `inputs` are the values of the task's dependencies, in order.
    fn execute(&self, inputs: &[Value]) -> Result<Value>;

    /// The projected size of the output in bytes, given the inputs' sizes, when known before
    /// running. The scheduler uses it for memory planning.
    fn projected_nbytes(&self, _input_nbytes: &[u64]) -> Option<u64> {
        None
    }

    /// The most bytes the task allocates while it runs, beyond its inputs: its output, plus
    /// any intermediate it holds at the same time. Defaults to the projected output size;
    /// fused ops add up the steps alive together. The scheduler counts it against the
    /// budget while the task runs.
    fn transient_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        self.projected_nbytes(input_nbytes)
    }

    fn cost(&self) -> Cost {
        Cost::Normal
    }

    /// The steps of a fused op; `None` for an ordinary op.
    fn as_composite(&self) -> Option<&Composite> {
        None
    }
}

impl fmt::Debug for dyn Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Op({})", self.name())
    }
}

/// A constant: the op of persisted values and of literals that became their own task.
pub struct Literal {
    value: Value,
}

impl Literal {
    pub fn new(value: Value) -> Self {
        Literal { value }
    }
    pub fn value(&self) -> &Value {
        &self.value
    }
}

impl Op for Literal {
    fn name(&self) -> &str {
        LITERAL_OP
    }
    fn label(&self) -> &str {
        "literal"
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        // The value in its portable form; an error names the op and the value's type.
        let (tag, bytes) = self
            .value
            .encode()
            .map_err(|e| within(e, &format!("op `{LITERAL_OP}`")))?;
        postcard::to_stdvec(&(tag, bytes)).map_err(|e| RaskError::Serialization {
            what: format!("op `{LITERAL_OP}`"),
            message: e.to_string(),
        })
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(self.value.clone())
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        Some(self.value.nbytes() as u64)
    }
    fn cost(&self) -> Cost {
        Cost::Cheap
    }
}

/// A serialization error about a part (a value, a step) of `outer`: still a
/// `Serialization` error (callers match on it), its `what` naming both.
pub(crate) fn within(e: RaskError, outer: &str) -> RaskError {
    match e {
        RaskError::Serialization { what, message } => RaskError::Serialization {
            what: format!("{what} in {outer}"),
            message,
        },
        other => other.context(outer),
    }
}

/// The name `Literal` registers under.
pub const LITERAL_OP: &str = "rask.literal";

fn decode_literal(params: &[u8], _registry: &OpRegistry) -> Result<Arc<dyn Op>> {
    let (tag, bytes): (&str, &[u8]) = decode_params(LITERAL_OP, params)?;
    Ok(Arc::new(Literal::new(Value::decode(tag, bytes)?)))
}

crate::register_op!(LITERAL_OP, decode_literal);

/// Where a step of a [`Composite`] takes an argument from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepArg {
    /// The composite's own input number `i`.
    Input(u32),
    /// The output of an earlier step.
    Step(u32),
}

/// One op inside a [`Composite`].
#[derive(Clone)]
pub struct Step {
    pub op: Arc<dyn Op>,
    pub args: SmallVec<[StepArg; 2]>,
}

/// Several ops run as one task: what fusing a linear chain or inlining a cheap task produces.
/// The last step's output is the composite's output; intermediate values are dropped as soon
/// as the composite returns.
#[derive(Clone)]
pub struct Composite {
    steps: Vec<Step>,
    n_inputs: usize,
    /// For each step, the last step reading its output (its own index when none does; the
    /// final step's is past the end): outputs are dropped as soon as they are read for the
    /// last time, so a fused chain holds two values at a time, not all of them.
    last_use: Vec<u32>,
    name: String,
}

impl Composite {
    /// Builds a composite from steps. Each step may only refer to inputs and earlier steps.
    pub fn new(steps: Vec<Step>, n_inputs: usize) -> Result<Self> {
        if steps.is_empty() {
            return Err(RaskError::invalid_argument(
                "steps",
                "a composite needs at least one step",
            ));
        }
        for (i, step) in steps.iter().enumerate() {
            for arg in &step.args {
                match *arg {
                    StepArg::Input(k) if (k as usize) < n_inputs => {}
                    StepArg::Step(j) if (j as usize) < i => {}
                    other => {
                        return Err(RaskError::invalid_argument(
                            "steps",
                            format!(
                                "step {i} ({}) refers to {other:?}, which does not exist before it",
                                step.op.name()
                            ),
                        ));
                    }
                }
            }
        }
        let mut labels: Vec<&str> = steps.iter().map(|s| s.op.label()).collect();
        labels.dedup();
        // Long fused chains would get names as long as the chain.
        let name = if labels.len() > 4 {
            format!(
                "{}+...+{} ({} steps)",
                labels[0],
                labels[labels.len() - 1],
                steps.len()
            )
        } else {
            labels.join("+")
        };
        let n = steps.len();
        let mut last_use: Vec<u32> = (0..n as u32).collect();
        for (i, step) in steps.iter().enumerate() {
            for a in &step.args {
                if let StepArg::Step(j) = *a {
                    last_use[j as usize] = last_use[j as usize].max(i as u32);
                }
            }
        }
        last_use[n - 1] = n as u32;
        Ok(Composite {
            steps,
            n_inputs,
            last_use,
            name,
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The steps of `op`: its own if it is a composite, else one step reading inputs `0..n`.
    pub fn steps_of(op: &Arc<dyn Op>, n_inputs: usize) -> Vec<Step> {
        match op.as_composite() {
            Some(c) => c.steps.clone(),
            None => vec![Step {
                op: op.clone(),
                args: (0..n_inputs as u32).map(StepArg::Input).collect(),
            }],
        }
    }
}

impl Op for Composite {
    fn name(&self) -> &str {
        &self.name
    }
    fn label(&self) -> &str {
        &self.name
    }
    fn params(&self) -> Option<Vec<u8>> {
        self.try_params().ok()
    }
    fn try_params(&self) -> Result<Vec<u8>> {
        // Portable only when every step is; the error names the first step that is not.
        let mut wire = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            // A step that is itself a composite goes under `COMPOSITE_OP`, not its own name.
            let (name, params) = OpRegistry::encode(&*s.op)
                .map_err(|e| within(e, &format!("fused op `{}`", self.name)))?;
            wire.push(WireStep {
                name,
                params,
                args: s.args.to_vec(),
            });
        }
        postcard::to_stdvec(&wire).map_err(|e| RaskError::Serialization {
            what: format!("fused op `{}`", self.name),
            message: e.to_string(),
        })
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        if inputs.len() < self.n_inputs {
            return Err(RaskError::invalid_argument(
                "inputs",
                format!(
                    "fused op `{}` reads {} inputs, got {}",
                    self.name,
                    self.n_inputs,
                    inputs.len()
                ),
            ));
        }
        let mut outputs: Vec<Option<Value>> = Vec::with_capacity(self.steps.len());
        let mut args: Vec<Value> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            args.clear();
            for arg in &step.args {
                args.push(match *arg {
                    StepArg::Input(k) => inputs[k as usize].clone(),
                    StepArg::Step(j) => outputs[j as usize]
                        .clone()
                        .expect("a step's output is kept until its last reader"),
                });
            }
            let out = step
                .op
                .execute(&args)
                .map_err(|e| e.context(format!("in fused step `{}`", step.op.name())))?;
            for arg in &step.args {
                if let StepArg::Step(j) = *arg
                    && self.last_use[j as usize] == i as u32
                {
                    outputs[j as usize] = None;
                }
            }
            outputs.push(Some(out));
        }
        Ok(outputs
            .pop()
            .flatten()
            .expect("composite has at least one step"))
    }
    fn projected_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        let mut sizes: Vec<u64> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let ins: Option<Vec<u64>> = step
                .args
                .iter()
                .map(|a| match *a {
                    StepArg::Input(i) => input_nbytes.get(i as usize).copied(),
                    StepArg::Step(j) => sizes.get(j as usize).copied(),
                })
                .collect();
            sizes.push(step.op.projected_nbytes(&ins?)?);
        }
        sizes.pop()
    }
    fn transient_nbytes(&self, input_nbytes: &[u64]) -> Option<u64> {
        // Each step's output lives from its step to its last reader (the last step's output
        // to the end); the peak of the live outputs plus each step's own transient is the
        // composite's.
        let n = self.steps.len();
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, step) in self.steps.iter().enumerate() {
            for a in &step.args {
                if let StepArg::Step(j) = *a {
                    last_use[j as usize] = last_use[j as usize].max(i);
                }
            }
        }
        last_use[n - 1] = n;
        let mut sizes: Vec<u64> = Vec::with_capacity(n);
        let mut peak = 0u64;
        for (i, step) in self.steps.iter().enumerate() {
            let ins: Option<Vec<u64>> = step
                .args
                .iter()
                .map(|a| match *a {
                    StepArg::Input(k) => input_nbytes.get(k as usize).copied(),
                    StepArg::Step(j) => sizes.get(j as usize).copied(),
                })
                .collect();
            let ins = ins?;
            let out = step.op.projected_nbytes(&ins)?;
            let own = step.op.transient_nbytes(&ins)?.max(out);
            // Earlier outputs still needed after this step, plus this step's own peak.
            let held: u64 = (0..i).filter(|&j| last_use[j] > i).map(|j| sizes[j]).sum();
            let reading: u64 = step
                .args
                .iter()
                .filter_map(|a| match *a {
                    StepArg::Step(j) if last_use[j as usize] == i => Some(sizes[j as usize]),
                    _ => None,
                })
                .sum();
            peak = peak.max(held + reading + own);
            sizes.push(out);
        }
        Some(peak)
    }

    fn cost(&self) -> Cost {
        if self.steps.iter().all(|s| s.op.cost() == Cost::Cheap) {
            Cost::Cheap
        } else {
            Cost::Normal
        }
    }
    fn as_composite(&self) -> Option<&Composite> {
        Some(self)
    }
}

#[derive(Serialize, Deserialize)]
struct WireStep {
    name: String,
    params: Vec<u8>,
    args: Vec<StepArg>,
}

/// The name `Composite` registers under.
pub const COMPOSITE_OP: &str = "rask.composite";

/// Decodes an op from its parameters; one per registered op name.
pub type OpDecoder = fn(params: &[u8], registry: &OpRegistry) -> Result<Arc<dyn Op>>;

/// A registration of a portable op, collected at link time with [`inventory`].
pub struct OpRegistration {
    pub name: &'static str,
    pub decode: OpDecoder,
}

inventory::collect!(OpRegistration);

/// Registers a decoder for a portable op name. Expands to an `inventory::submit!`.
#[macro_export]
macro_rules! register_op {
    ($name:expr, $decode:expr) => {
        $crate::__private::inventory::submit! {
            $crate::OpRegistration { name: $name, decode: $decode }
        }
    };
}

/// Every op decoder linked into this binary, by name.
pub struct OpRegistry {
    decoders: rustc_hash::FxHashMap<&'static str, OpDecoder>,
    /// Names registered more than once (two `#[delayed]` functions of one name nested in
    /// different functions of one module): decoding them would pick one at random, so it is
    /// refused.
    ambiguous: rustc_hash::FxHashSet<&'static str>,
}

impl OpRegistry {
    /// The registry of everything registered with [`register_op!`] in this binary.
    pub fn global() -> &'static OpRegistry {
        static REG: std::sync::OnceLock<OpRegistry> = std::sync::OnceLock::new();
        REG.get_or_init(|| {
            let mut decoders = rustc_hash::FxHashMap::default();
            let mut ambiguous = rustc_hash::FxHashSet::default();
            for r in inventory::iter::<OpRegistration> {
                // Each `register_op!` is one registration, so a repeated name is always a
                // second, different op (comparing function pointers would not tell).
                if decoders.insert(r.name, r.decode).is_some() {
                    ambiguous.insert(r.name);
                }
            }
            OpRegistry {
                decoders,
                ambiguous,
            }
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.decoders.contains_key(name)
    }

    /// Every registered op name, sorted (for fingerprints and messages).
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.decoders.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Rebuilds an op from its wire form.
    pub fn decode(&self, name: &str, params: &[u8]) -> Result<Arc<dyn Op>> {
        self.decode_nested(name, params, 0)
    }

    fn decode_nested(&self, name: &str, params: &[u8], depth: usize) -> Result<Arc<dyn Op>> {
        if name == COMPOSITE_OP {
            // Our optimizer flattens composites, so honest graphs nest at most once; a deep
            // nesting is a malformed (or hostile) message and must not exhaust the stack.
            if depth >= MAX_COMPOSITE_NESTING {
                return Err(RaskError::Serialization {
                    what: "composite op".into(),
                    message: format!("nested more than {MAX_COMPOSITE_NESTING} levels deep"),
                });
            }
            return decode_composite(params, self, depth + 1);
        }
        let decode = self
            .decoders
            .get(name)
            .ok_or_else(|| RaskError::UnknownOp(name.to_string()))?;
        if self.ambiguous.contains(name) {
            return Err(RaskError::Serialization {
                what: format!("op `{name}`"),
                message: "several ops are registered under this name in this binary (two \
                          `#[delayed]` functions of one name in one module?): rename one"
                    .into(),
            });
        }
        decode(params, self)
    }

    /// The wire form of an op: `(registered name, params)`, or an error naming the op when it
    /// cannot leave this process.
    pub fn encode(op: &dyn Op) -> Result<(String, Vec<u8>)> {
        let params = op.try_params()?;
        let name = if op.as_composite().is_some() {
            COMPOSITE_OP.to_string()
        } else {
            op.name().to_string()
        };
        Ok((name, params))
    }
}

/// How deeply composites may nest in a decoded op.
const MAX_COMPOSITE_NESTING: usize = 32;

fn decode_composite(params: &[u8], registry: &OpRegistry, depth: usize) -> Result<Arc<dyn Op>> {
    let wire: Vec<WireStep> =
        postcard::from_bytes(params).map_err(|e| RaskError::Serialization {
            what: "composite op".into(),
            message: e.to_string(),
        })?;
    let n_inputs = wire
        .iter()
        .flat_map(|s| s.args.iter())
        .filter_map(|a| match a {
            StepArg::Input(i) => Some(*i as usize + 1),
            StepArg::Step(_) => None,
        })
        .max()
        .unwrap_or(0);
    let mut steps = Vec::with_capacity(wire.len());
    for s in wire {
        steps.push(Step {
            op: registry.decode_nested(&s.name, &s.params, depth)?,
            args: s.args.into_iter().collect(),
        });
    }
    Ok(Arc::new(Composite::new(steps, n_inputs)?))
}

/// Serializes op parameters with postcard, naming the op on failure.
pub fn encode_params<T: Serialize>(op: &str, params: &T) -> Option<Vec<u8>> {
    postcard::to_stdvec(params).ok().or_else(|| {
        debug_assert!(false, "params of {op} failed to serialize");
        None
    })
}

/// Deserializes op parameters with postcard, naming the op on failure.
pub fn decode_params<'a, T: Deserialize<'a>>(op: &str, bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| RaskError::Serialization {
        what: format!("parameters of op `{op}`"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicIsize, Ordering};

    use super::*;

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    /// A value counting how many of its kind are alive.
    struct Tracked;
    impl Tracked {
        fn new() -> Self {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Tracked
        }
    }
    impl Clone for Tracked {
        fn clone(&self) -> Self {
            Tracked::new()
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    impl crate::Data for Tracked {}

    /// Makes a new tracked value and records how many were alive when it ran.
    struct Step1(std::sync::Mutex<Vec<isize>>);
    impl Op for Step1 {
        fn name(&self) -> &str {
            "step"
        }
        fn execute(&self, _inputs: &[Value]) -> Result<Value> {
            self.0.lock().unwrap().push(LIVE.load(Ordering::SeqCst));
            Ok(Value::new(Tracked::new()))
        }
    }

    #[test]
    fn a_fused_chain_drops_each_intermediate_after_its_last_reader() {
        let probe = Arc::new(Step1(std::sync::Mutex::new(Vec::new())));
        let op: Arc<dyn Op> = probe.clone();
        let n = 50;
        let steps: Vec<Step> = (0..n)
            .map(|i| Step {
                op: op.clone(),
                args: if i == 0 {
                    SmallVec::new()
                } else {
                    smallvec::smallvec![StepArg::Step(i - 1)]
                },
            })
            .collect();
        let c = Composite::new(steps, 0).unwrap();
        assert!(c.name().len() < 40, "{}", c.name());
        let before = LIVE.load(Ordering::SeqCst);
        let out = c.execute(&[]).unwrap();
        // When each step ran, at most its input (plus the input's clone in the argument
        // list) was alive: never the whole chain.
        let seen = probe.0.lock().unwrap().clone();
        assert_eq!(seen.len(), n as usize);
        assert!(seen.iter().all(|&live| live - before <= 2), "{seen:?}");
        drop(out);
        assert_eq!(LIVE.load(Ordering::SeqCst), before);
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn deeply_nested_composites_are_refused_not_recursed() {
        // Build a composite wire message nested 1000 deep by hand: each level is one step
        // whose op is the level below.
        let mut params = postcard::to_stdvec(&Vec::<WireStep>::new()).unwrap();
        for _ in 0..1000 {
            let wire = vec![WireStep {
                name: COMPOSITE_OP.to_string(),
                params,
                args: Vec::new(),
            }];
            params = postcard::to_stdvec(&wire).unwrap();
        }
        let err = OpRegistry::global()
            .decode(COMPOSITE_OP, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than 32"), "{err}");
    }
}
