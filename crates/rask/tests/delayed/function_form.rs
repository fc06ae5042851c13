//! The function form: `rask::delayed(f).call((args,))`, `try_delayed`, `.pure()`, `.name()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rask::prelude::*;
use rask::{try_delayed, value};

use crate::{assert_task_error, config, executors};

fn plain_add(x: i64, y: i64) -> i64 {
    x + y
}

#[test]
fn call_with_literals_and_delayeds() {
    let add = rask::delayed(|x: i64, y: i64| x + y);
    let inc = rask::delayed(|x: i64| x + 1);
    for ex in executors() {
        let cfg = config(ex);
        assert_eq!(add.call((2, 3)).compute_with(&cfg).unwrap(), 5);
        let a = inc.call((1,));
        let b = inc.call((value(2),));
        assert_eq!(add.call((&a, &b)).compute_with(&cfg).unwrap(), 5);
        assert_eq!(add.call((a.clone(), 40)).compute_with(&cfg).unwrap(), 42);
        assert_eq!(add.call((40, &b)).compute_with(&cfg).unwrap(), 43);
        // Same Delayed twice.
        assert_eq!(add.call((&a, &a)).compute_with(&cfg).unwrap(), 4);
    }
}

#[test]
fn arities_zero_to_six() {
    let f0 = rask::delayed(|| 7i64);
    let f1 = rask::delayed(|a: i64| a);
    let f3 = rask::delayed(|a: i64, b: i64, c: i64| a * 100 + b * 10 + c);
    let f6 = rask::delayed(|a: i64, b: i64, c: i64, d: i64, e: i64, f: i64| {
        [a, b, c, d, e, f]
            .iter()
            .enumerate()
            .map(|(i, v)| v << i)
            .sum::<i64>()
    });
    let oracle6: i64 = [1i64, 2, 3, 4, 5, 6]
        .iter()
        .enumerate()
        .map(|(i, v)| v << i)
        .sum();
    let cfg = config(Executor::Sync);
    assert_eq!(f0.call(()).compute_with(&cfg).unwrap(), 7);
    assert_eq!(f1.call((f0.call(()),)).compute_with(&cfg).unwrap(), 7);
    assert_eq!(
        f3.call((1, value(2), f1.call((3,))))
            .compute_with(&cfg)
            .unwrap(),
        123
    );
    assert_eq!(
        f6.call((1, value(2), 3, f1.call((4,)), 5, value(6)))
            .compute_with(&cfg)
            .unwrap(),
        oracle6
    );
    // Types other than i64, and mixed.
    let describe = rask::delayed(|name: String, n: usize, x: f64| format!("{name}:{n}:{x}"));
    assert_eq!(
        describe
            .call((String::from("a"), value(3usize), 0.5))
            .compute_with(&cfg)
            .unwrap(),
        "a:3:0.5"
    );
}

#[test]
fn pure_dedupes_and_impure_does_not() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let pure_sq = rask::delayed(move |x: i64| {
        r.fetch_add(1, Ordering::SeqCst);
        x * x
    })
    .pure();
    assert_eq!(pure_sq.call((4,)).key(), pure_sq.call((4,)).key());
    assert_ne!(pure_sq.call((4,)).key(), pure_sq.call((5,)).key());

    let impure_runs = Arc::new(AtomicUsize::new(0));
    let r = impure_runs.clone();
    let impure_sq = rask::delayed(move |x: i64| {
        r.fetch_add(1, Ordering::SeqCst);
        x * x
    });
    assert_ne!(impure_sq.call((4,)).key(), impure_sq.call((4,)).key());

    for ex in executors() {
        runs.store(0, Ordering::SeqCst);
        let out = vec![pure_sq.call((4,)), pure_sq.call((4,)), pure_sq.call((5,))]
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!(out, vec![16, 16, 25]);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{ex:?}: 4 once, 5 once");

        impure_runs.store(0, Ordering::SeqCst);
        let out = vec![impure_sq.call((4,)), impure_sq.call((4,))]
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!(out, vec![16, 16]);
        assert_eq!(impure_runs.load(Ordering::SeqCst), 2, "{ex:?}");
    }
}

#[test]
fn different_pure_closures_never_share_keys() {
    let double = rask::delayed(|x: i64| x * 2).pure();
    let triple = rask::delayed(|x: i64| x * 3).pure();
    let (a, b) = (double.call((5,)), triple.call((5,)));
    assert_ne!(a.key(), b.key());
    assert_eq!(
        (a, b).compute_with(&config(Executor::Sync)).unwrap(),
        (10, 15)
    );
}

#[test]
fn name_sets_the_prefix() {
    let f = rask::delayed(|x: i64| x).name("foo");
    assert_eq!(f.call((1,)).key().prefix(), "foo");
    let g = rask::delayed(|x: i64| x).pure().name("bar");
    assert_eq!(g.call((1,)).key().prefix(), "bar");
    assert_eq!(g.call((1,)).key(), g.call((1,)).key());
    // Defaults: closures are `lambda`, named functions keep their name.
    assert_eq!(
        rask::delayed(|x: i64| x).call((1,)).key().prefix(),
        "lambda"
    );
    let named = rask::delayed(plain_add).call((1, 2));
    assert_eq!(named.key().prefix(), "plain_add");
    assert_eq!(named.compute_with(&config(Executor::Sync)).unwrap(), 3);
    let t = try_delayed(|x: i64| Ok::<i64, String>(x)).name("checked");
    assert_eq!(t.call((1,)).key().prefix(), "checked");
}

#[test]
fn try_delayed_ok_and_err() {
    let half = try_delayed(|x: i64| {
        if x % 2 == 0 {
            Ok(x / 2)
        } else {
            Err(format!("{x} is odd"))
        }
    });
    for ex in executors() {
        let cfg = config(ex);
        assert_eq!(half.call((8,)).compute_with(&cfg).unwrap(), 4);
        assert_eq!(half.call((half.call((8,)),)).compute_with(&cfg).unwrap(), 2);
        let bad = half.call((3,));
        let err = bad.compute_with(&cfg).unwrap_err();
        assert_task_error(&err, bad.key(), "3 is odd");
        // A failing input fails its dependents' compute.
        let bad_input = half.call((5,));
        let err = half.call((&bad_input,)).compute_with(&cfg).unwrap_err();
        assert!(err.to_string().contains("5 is odd"), "{err}");
    }
    // Pure try_delayed dedupes like the infallible form.
    let p = try_delayed(|x: i64| Ok::<_, std::io::Error>(x)).pure();
    assert_eq!(p.call((1,)).key(), p.call((1,)).key());
}

#[test]
fn closures_capture_state() {
    let factor = 7i64;
    let offsets = [10i64, 20, 30];
    let f = rask::delayed(move |i: usize, x: i64| x * factor + offsets[i]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let record = rask::delayed(move |x: i64| {
        l.lock().unwrap().push(x);
        x
    });
    for ex in executors() {
        log.lock().unwrap().clear();
        let outs: Vec<Delayed<i64>> = (0..3)
            .map(|i| record.call((f.call((i, i as i64 + 1)),)))
            .collect();
        let got = outs.compute_with(&config(ex)).unwrap();
        let oracle: Vec<i64> = (0..3)
            .map(|i| (i as i64 + 1) * 7 + [10, 20, 30][i])
            .collect();
        assert_eq!(got, oracle);
        let mut seen = log.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, oracle, "{ex:?}: each recording ran once");
    }
}
