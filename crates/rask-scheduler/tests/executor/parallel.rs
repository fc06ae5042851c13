//! Parallelism shown without clocks: tasks that can only finish if they run at the same time.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rask_graph::Value;
use rask_scheduler::{Executor, RunOptions};

use crate::common::*;

/// Two tasks that each send a message to the other and wait (at most 10 s) for the other's:
/// both finish only if they ran concurrently.
#[test]
fn two_tasks_that_meet_run_concurrently_on_two_threads() {
    for ex in [Executor::Threads(2), Executor::Threads(4)] {
        for _ in 0..5 {
            let (to_b, from_a) = mpsc::channel::<()>();
            let (to_a, from_b) = mpsc::channel::<()>();
            let side = |name: &'static str, tx: mpsc::Sender<()>, rx: mpsc::Receiver<()>| {
                let tx = Mutex::new(tx);
                let rx = Mutex::new(rx);
                op(name, move |_| {
                    tx.lock().unwrap().send(()).map_err(|_| ext("peer gone"))?;
                    rx.lock()
                        .unwrap()
                        .recv_timeout(WAIT_TIMEOUT)
                        .map_err(|_| ext("the other task never ran alongside"))?;
                    Ok(Value::new(1i64))
                })
            };
            let mut s = Specs::default();
            s.add("a", side("test.meet_a", to_b, from_b), &[])
                .add("b", side("test.meet_b", to_a, from_a), &[])
                .add(
                    "both",
                    op("test.add", |i| Ok(Value::new(int(&i[0])? + int(&i[1])?))),
                    &["a", "b"],
                );
            let g = s.build();
            let out = run_guarded(ex, &g, &ids(&g, &["both"]), RunOptions::default())
                .unwrap_or_else(|e| panic!("{ex:?}: {e}"));
            assert_eq!(ints(&out), vec![2]);
        }
    }
}

/// Four tasks meeting at one rendezvous need four workers at once.
#[test]
fn four_tasks_that_meet_run_concurrently_on_four_threads() {
    for _ in 0..5 {
        let meet = Rendezvous::new(4);
        let mut s = Specs::default();
        for i in 0..4 {
            let meet = meet.clone();
            s.add(
                &format!("m{i}"),
                op("test.meet", move |_| {
                    meet.wait()?;
                    Ok(Value::new(i as i64))
                }),
                &[],
            );
        }
        s.add("sum", sum_op(0, &Arc::default()), &["m0", "m1", "m2", "m3"]);
        let g = s.build();
        let out = run_guarded(
            Executor::Threads(4),
            &g,
            &ids(&g, &["sum"]),
            RunOptions::default(),
        )
        .unwrap();
        assert_eq!(ints(&out), vec![6]);
    }
}
