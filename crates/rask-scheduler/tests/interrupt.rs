//! `interrupt()` cancels every computation in the process, so it has a binary of its own
//! with a single test: nothing else can run while the flag is raised.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rask_error::{RaskError, Result};
use rask_graph::{Graph, Key, Literal, Op, TaskSpec, Value, order};
use rask_scheduler::{Executor, RunOptions, RunOutput, clear_interrupt, interrupt, run};

struct Step {
    count: Arc<AtomicUsize>,
    interrupts: bool,
}

impl Op for Step {
    fn name(&self) -> &str {
        "test.step"
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.interrupts {
            interrupt();
        }
        Ok(Value::new(*inputs[0].get::<i64>(&"input")? + 1))
    }
}

/// `x = 0`, then ten `+1` steps; step `interrupt_at` raises the interrupt flag.
fn chain(count: &Arc<AtomicUsize>, interrupt_at: Option<usize>) -> Graph {
    let mut specs = vec![TaskSpec::new(
        Key::named("s0"),
        Arc::new(Literal::new(Value::new(0i64))),
        vec![],
    )];
    for i in 1..=10 {
        specs.push(TaskSpec::new(
            Key::named(format!("s{i}")),
            Arc::new(Step {
                count: count.clone(),
                interrupts: interrupt_at == Some(i),
            }),
            vec![Key::named(format!("s{}", i - 1))],
        ));
    }
    Graph::from_specs(specs).unwrap()
}

fn guarded(ex: Executor, graph: Graph) -> Result<RunOutput> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outs = graph.ids_of(&[Key::named("s10")]).unwrap();
        let _ = tx.send(run(
            ex,
            &graph,
            &outs,
            order(&graph),
            &RunOptions::default(),
        ));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("run hung or panicked")
}

fn value(out: &RunOutput) -> i64 {
    *out.values[0].get::<i64>(&"s10").unwrap()
}

#[test]
fn interrupt_cancels_runs_until_cleared() {
    for ex in [Executor::Sync, Executor::Threads(4)] {
        // Raised before the run: nothing runs.
        let count = Arc::new(AtomicUsize::new(0));
        interrupt();
        let r = guarded(ex, chain(&count, None));
        clear_interrupt();
        assert!(matches!(r, Err(RaskError::Cancelled(_))), "{ex:?}: {r:?}");
        assert_eq!(count.load(Ordering::SeqCst), 0);

        // Cleared: the same graph runs to the end.
        let count = Arc::new(AtomicUsize::new(0));
        let out = guarded(ex, chain(&count, None)).unwrap();
        assert_eq!(value(&out), 10, "{ex:?}");
        assert_eq!(count.load(Ordering::SeqCst), 10);

        // Raised by a task (what a Ctrl-C handler does mid-run): the steps after it never run.
        let count = Arc::new(AtomicUsize::new(0));
        let r = guarded(ex, chain(&count, Some(4)));
        clear_interrupt();
        assert!(matches!(r, Err(RaskError::Cancelled(_))), "{ex:?}: {r:?}");
        assert_eq!(count.load(Ordering::SeqCst), 4, "{ex:?}: steps 1..=4 ran");

        let count = Arc::new(AtomicUsize::new(0));
        assert_eq!(value(&guarded(ex, chain(&count, None)).unwrap()), 10);
    }
}
