//! Test ops, a naive sequential evaluator and a random-DAG generator shared by the modules.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use rask_graph::{Cost, Graph, Key, Literal, Op, Result, TaskId, TaskSpec, Value};

/// Reads input `i` as an `i64`.
pub fn int_input(inputs: &[Value], i: usize, op: &str) -> Result<i64> {
    Ok(*inputs[i].get::<i64>(&format_args!("input {i} of {op}"))?)
}

/// A source of normal cost producing a constant.
pub struct Const(pub i64);
impl Op for Const {
    fn name(&self) -> &str {
        "const"
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(Value::new(self.0))
    }
}

/// Wrapping sum of all (i64) inputs.
pub struct Add;
impl Op for Add {
    fn name(&self) -> &str {
        "add"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut s = 0i64;
        for i in 0..inputs.len() {
            s = s.wrapping_add(int_input(inputs, i, "add")?);
        }
        Ok(Value::new(s))
    }
}

/// Wrapping product of all (i64) inputs.
pub struct Mul;
impl Op for Mul {
    fn name(&self) -> &str {
        "mul"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut p = 1i64;
        for i in 0..inputs.len() {
            p = p.wrapping_mul(int_input(inputs, i, "mul")?);
        }
        Ok(Value::new(p))
    }
}

/// `x + 1` of its single input.
pub struct Inc;
impl Op for Inc {
    fn name(&self) -> &str {
        "inc"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        assert_eq!(inputs.len(), 1, "inc takes one input");
        Ok(Value::new(int_input(inputs, 0, "inc")?.wrapping_add(1)))
    }
}

/// `2 * x` of its single input.
pub struct Double;
impl Op for Double {
    fn name(&self) -> &str {
        "double"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        assert_eq!(inputs.len(), 1, "double takes one input");
        Ok(Value::new(int_input(inputs, 0, "double")?.wrapping_mul(2)))
    }
}

/// A source of normal cost producing a vector.
pub struct MakeVec(pub Vec<i64>);
impl Op for MakeVec {
    fn name(&self) -> &str {
        "make_vec"
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(Value::new(self.0.clone()))
    }
}

/// Cheap element access into a `Vec<i64>`, like Dask's `getitem`.
pub struct GetItem(pub usize);
impl Op for GetItem {
    fn name(&self) -> &str {
        "getitem"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        assert_eq!(inputs.len(), 1, "getitem takes one input");
        let v: &Vec<i64> = inputs[0].get(&"getitem input")?;
        Ok(Value::new(v[self.0]))
    }
    fn cost(&self) -> Cost {
        Cost::Cheap
    }
}

/// The op of random DAGs: wrapping sum of the inputs plus a constant, cheap or not.
pub struct SumConst {
    pub c: i64,
    pub cheap: bool,
}
impl Op for SumConst {
    fn name(&self) -> &str {
        "sum_const"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut s = self.c;
        for i in 0..inputs.len() {
            s = s.wrapping_add(int_input(inputs, i, "sum_const")?);
        }
        Ok(Value::new(s))
    }
    fn cost(&self) -> Cost {
        if self.cheap {
            Cost::Cheap
        } else {
            Cost::Normal
        }
    }
}

pub fn lit(v: i64) -> Arc<dyn Op> {
    Arc::new(Literal::new(Value::new(v)))
}

pub fn op<O: Op>(o: O) -> Arc<dyn Op> {
    Arc::new(o)
}

pub fn spec(key: &str, op: Arc<dyn Op>, deps: &[&str]) -> TaskSpec {
    TaskSpec::new(Key::named(key), op, deps.iter().map(|&d| Key::named(d)))
}

pub fn keys(names: &[&str]) -> Vec<Key> {
    names.iter().map(|&n| Key::named(n)).collect()
}

/// The keys of every task of a graph.
pub fn key_set(graph: &Graph) -> BTreeSet<String> {
    graph.tasks().iter().map(|t| t.key.to_string()).collect()
}

pub fn name_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Runs every task once, one at a time, in `graph.topological_order()`, feeding each op the
/// values of its dependencies. Panics if a task runs before one of its inputs.
pub fn evaluate(graph: &Graph) -> Vec<Value> {
    let order = graph.topological_order().expect("acyclic");
    evaluate_in(graph, order)
}

/// Like [`evaluate`] but in a given order of ids (`order[k]` runs k-th).
pub fn evaluate_in(graph: &Graph, order: &[TaskId]) -> Vec<Value> {
    let mut vals: Vec<Option<Value>> = vec![None; graph.len()];
    for &id in order {
        let t = graph.task(id);
        let inputs: Vec<Value> = t
            .deps
            .iter()
            .map(|&d| {
                vals[d as usize].clone().unwrap_or_else(|| {
                    panic!("{} runs before its input {}", t.key, graph.task(d).key)
                })
            })
            .collect();
        assert!(vals[id as usize].is_none(), "{} runs twice", t.key);
        let out =
            t.op.execute(&inputs)
                .unwrap_or_else(|e| panic!("{} failed: {e}", t.key));
        vals[id as usize] = Some(out);
    }
    vals.into_iter()
        .enumerate()
        .map(|(i, v)| v.unwrap_or_else(|| panic!("{} never ran", graph.task(i as TaskId).key)))
        .collect()
}

/// The `i64` values of the given tasks.
pub fn int_values(graph: &Graph, ids: &[TaskId]) -> Vec<i64> {
    let vals = evaluate(graph);
    ids.iter()
        .map(|&id| *vals[id as usize].get::<i64>(&graph.task(id).key).unwrap())
        .collect()
}

/// Rebuilds a graph from its own tasks through `Graph::from_specs`: checks that keys are
/// unique, every dependency exists and there is no cycle, and that `id_of` agrees with ids.
pub fn assert_valid(graph: &Graph) {
    for (i, t) in graph.tasks().iter().enumerate() {
        assert_eq!(graph.id_of(&t.key), Some(i as TaskId), "index of {}", t.key);
        for &d in &t.deps {
            assert!((d as usize) < graph.len(), "{} has dangling dep {d}", t.key);
        }
    }
    let specs = graph.tasks().iter().map(|t| {
        TaskSpec::new(
            t.key.clone(),
            t.op.clone(),
            t.deps.iter().map(|&d| graph.task(d).key.clone()),
        )
    });
    let rebuilt = Graph::from_specs(specs).expect("optimized graph is a valid DAG");
    assert_eq!(rebuilt.len(), graph.len());
}

// ---------------------------------------------------------------------------------------------
// Random DAGs.

/// One task of a random DAG: `value = c + sum(values of deps)` (wrapping).
#[derive(Clone, Debug)]
pub struct RTask {
    /// Logical indices of the inputs, all smaller than the task's own (repeats allowed).
    pub deps: Vec<usize>,
    pub c: i64,
    pub cheap: bool,
}

#[derive(Clone, Debug)]
pub struct RandomDag {
    pub tasks: Vec<RTask>,
    /// Requested outputs (logical indices, repeats allowed).
    pub outputs: Vec<usize>,
    /// The order in which the tasks are handed to `Graph::from_specs` (not topological).
    pub perm: Vec<usize>,
}

impl RandomDag {
    pub fn key(i: usize) -> Key {
        Key::named(format!("t{i}"))
    }

    pub fn specs(&self) -> Vec<TaskSpec> {
        self.perm
            .iter()
            .map(|&i| {
                let t = &self.tasks[i];
                TaskSpec::new(
                    Self::key(i),
                    Arc::new(SumConst {
                        c: t.c,
                        cheap: t.cheap,
                    }),
                    t.deps.iter().map(|&d| Self::key(d)),
                )
            })
            .collect()
    }

    pub fn output_keys(&self) -> Vec<Key> {
        self.outputs.iter().map(|&o| Self::key(o)).collect()
    }

    /// The value of every task by logical index, computed directly from the description.
    pub fn oracle(&self) -> Vec<i64> {
        let mut vals: Vec<i64> = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            let v = t.deps.iter().fold(t.c, |s, &d| s.wrapping_add(vals[d]));
            vals.push(v);
        }
        vals
    }

    pub fn expected_outputs(&self) -> Vec<i64> {
        let vals = self.oracle();
        self.outputs.iter().map(|&o| vals[o]).collect()
    }

    /// Number of dependency edges leaving each task (its dependents, counted with repeats).
    pub fn out_degree(&self) -> Vec<usize> {
        let mut deg = vec![0; self.tasks.len()];
        for t in &self.tasks {
            for &d in &t.deps {
                deg[d] += 1;
            }
        }
        deg
    }

    /// Logical indices of the outputs and everything they transitively depend on.
    pub fn ancestors_of_outputs(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = self.outputs.clone();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.tasks[i].deps.iter().copied());
            }
        }
        seen
    }

    pub fn graph(&self) -> Graph {
        Graph::from_specs(self.specs()).expect("random DAG is valid")
    }
}

/// Random DAGs of 1..=max_n tasks. Half of the dependencies point at one of the four
/// previous tasks (so there are chains to fuse), half anywhere earlier; about a third of the
/// ops are cheap; tasks are handed to the graph in a shuffled order.
pub fn random_dag(max_n: usize) -> impl Strategy<Value = RandomDag> {
    (1..=max_n)
        .prop_flat_map(|n| {
            let task = (
                prop::collection::vec(any::<u32>(), 0..4),
                prop::bool::weighted(0.35),
                -5i64..=5,
            );
            (
                prop::collection::vec(task, n),
                prop::collection::vec(0..n, 1..5),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            )
        })
        .prop_map(|(raw, outputs, perm)| {
            let tasks = raw
                .into_iter()
                .enumerate()
                .map(|(i, (raw_deps, cheap, c))| {
                    let deps = if i == 0 {
                        Vec::new()
                    } else {
                        raw_deps
                            .into_iter()
                            .map(|r| {
                                let r = r as usize;
                                if r & 1 == 0 {
                                    i - 1 - (r >> 1) % i.min(4)
                                } else {
                                    (r >> 1) % i
                                }
                            })
                            .collect()
                    };
                    RTask { deps, c, cheap }
                })
                .collect();
            RandomDag {
                tasks,
                outputs,
                perm,
            }
        })
}
