//! Task graphs for rask: keys, deterministic tokens, ops, tasks, layers, graphs and the
//! optimizations that run before scheduling.
//!
//! # The main types and how they relate
//!
//! - A [`Key`] names one task output: a [`KeyName`] (readable prefix plus a [`Token`]) and a
//!   block index (`[]` for a `Delayed`, `[i, j]` for an array chunk, `[p]` for a partition).
//!   Tokens are a stable hash of the op name, its parameters and its inputs' keys, computed
//!   with a [`Tokenizer`]: the same in every run, process and machine.
//! - An [`Op`] is what a task does: a name, serializable parameters, `execute` over input
//!   [`Value`]s, a projected output size and a [`Cost`]. Built-in ops register in the
//!   [`OpRegistry`] so a process that did not build a graph can rebuild them by name: a task
//!   crosses the wire as `(op name, params, input keys)` ([`OpRegistry::encode`] /
//!   [`OpRegistry::decode`]); ops that hold closures report no params and stay local.
//! - A [`Value`] is a type-erased, reference-counted task output that knows its size in bytes;
//!   types implement [`Data`] to be stored with their true size. Values cross the wire (and
//!   go to disk when spilled) in one format: a type tag plus the bytes [`Data::spill`] writes
//!   ([`Value::encode`] / [`Value::decode`]); types decodable by tag are registered with
//!   [`register_value!`] in the [`ValueRegistry`]. [`Literal`]s carry their value that way.
//! - A [`TaskSpec`] is a key, an op and the keys it reads. A [`Layer`] groups the tasks of one
//!   operation and points at the layers it reads; collections ([`Collection`]) hold layers.
//! - A [`Graph`] is the validated, flattened form: tasks in a dense vector addressed by
//!   [`TaskId`], built by a [`GraphBuilder`] or [`Graph::from_specs`].
//! - [`optimize`] culls, inlines cheap tasks and fuses linear chains; [`order()`] gives each task
//!   a static priority that keeps memory low.
//!
//! The scheduler (`rask-scheduler`) takes an optimized graph plus priorities and runs it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use rask_graph::{Graph, Key, Literal, Op, TaskSpec, Value, order, optimize};
//!
//! struct Add;
//! impl Op for Add {
//!     fn name(&self) -> &str { "add" }
//!     fn execute(&self, inputs: &[Value]) -> rask_error::Result<Value> {
//!         let a: &i64 = inputs[0].get(&"a")?;
//!         let b: &i64 = inputs[1].get(&"b")?;
//!         Ok(Value::new(a + b))
//!     }
//! }
//!
//! let lit = |v: i64| -> Arc<dyn Op> { Arc::new(Literal::new(Value::new(v))) };
//! let graph = Graph::from_specs([
//!     TaskSpec::new("x".into(), lit(1), vec![]),
//!     TaskSpec::new("y".into(), lit(2), vec![]),
//!     TaskSpec::new("z".into(), Arc::new(Add), vec!["x".into(), "y".into()]),
//! ])?;
//! let outputs = graph.ids_of(&["z".into()])?;
//! // The two literals are cheap, so they are inlined into `z`: one task is left.
//! let (graph, outputs) = optimize::optimize(graph, &outputs, Default::default());
//! assert_eq!(graph.len(), 1);
//! let priorities = order(&graph);
//! assert_eq!(priorities, vec![0]);
//! let z = graph.task(outputs[0]).op.execute(&[])?;
//! assert_eq!(*z.get::<i64>(&"z")?, 3);
//! # Ok::<(), rask_error::RaskError>(())
//! ```

mod codec;
mod graph;
mod key;
mod layer;
mod op;
pub mod optimize;
mod order;
pub mod secrets;
pub mod token;
mod value;
pub mod visualize;

pub use codec::{ValueDecoder, ValueRegistration, ValueRegistry};
pub use graph::{Adjacency, Graph, Task, TaskId, TaskSpec};
pub use key::{BlockIndex, Key, KeyName};
pub use layer::{Collection, GraphBuilder, Layer};
pub use op::{
    COMPOSITE_OP, Composite, Cost, LITERAL_OP, Literal, Op, OpDecoder, OpRegistration, OpRegistry,
    Step, StepArg, decode_params, encode_params,
};
pub use order::{breadth_first, max_live, order};
pub use rask_error::{RaskError, Result};
pub use token::{Token, Tokenizer, tokenize};
pub use value::{Data, SpillFns, SpillView, Value};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
