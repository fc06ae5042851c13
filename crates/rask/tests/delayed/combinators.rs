//! `value`, `sum`, `tree_reduce`, `Delayed::map` and `Delayed::try_map`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask::prelude::*;
use rask::{sum, tree_reduce, value};

use crate::{assert_invalid_argument, assert_task_error, config, executors};

#[derive(Clone, Debug, PartialEq)]
struct Opaque(Vec<u8>);
impl rask::Data for Opaque {}

#[test]
fn value_wraps_plain_values() {
    let cfg = config(Executor::Sync);
    assert_eq!(value(5i64).compute_with(&cfg).unwrap(), 5);
    assert_eq!(
        value(String::from("text")).compute_with(&cfg).unwrap(),
        "text"
    );
    assert_eq!(
        value(vec![1.5f64, 2.5]).compute_with(&cfg).unwrap(),
        vec![1.5, 2.5]
    );
    assert_eq!(
        value((1u8, String::from("x"))).compute_with(&cfg).unwrap(),
        (1u8, String::from("x"))
    );
    assert_eq!(
        value(Opaque(vec![1, 2])).compute_with(&cfg).unwrap(),
        Opaque(vec![1, 2])
    );
    // Tokenizable values get deterministic keys, others fresh ones.
    assert_eq!(value(5i64).key(), value(5i64).key());
    assert_ne!(value(5i64).key(), value(6i64).key());
    assert_ne!(value(5i64).key(), value(5i32).key());
    assert_eq!(value(5i64).key().prefix(), "value");
    assert_ne!(value(Opaque(vec![1])).key(), value(Opaque(vec![1])).key());
}

#[test]
fn sum_of_many_and_of_none() {
    let xs: Vec<i64> = (1..=250).map(|i| i * i - 7 * i).collect();
    let oracle: i64 = xs.iter().sum();
    for ex in executors() {
        let cfg = config(ex);
        let total = sum(xs.iter().map(|&x| value(x)));
        assert_eq!(total.key().prefix(), "sum");
        assert_eq!(total.compute_with(&cfg).unwrap(), oracle);
        // Summing computed values, floats.
        let fs: Vec<Delayed<f64>> = (0..10).map(|i| value(i as f64) * 0.5).collect();
        let foracle: f64 = (0..10).map(|i| i as f64 * 0.5).sum();
        assert_eq!(sum(fs).compute_with(&cfg).unwrap(), foracle);
        // The sum of no items is the type's `Sum` of an empty iterator: zero.
        let none: Vec<Delayed<i64>> = Vec::new();
        assert_eq!(sum(none).compute_with(&cfg).unwrap(), 0);
        assert_eq!(
            sum(Vec::<Delayed<f64>>::new()).compute_with(&cfg).unwrap(),
            0.0
        );
        // One item, and the same item twice.
        let one = value(9u64);
        assert_eq!(sum(vec![one.clone()]).compute_with(&cfg).unwrap(), 9);
        assert_eq!(sum(vec![one.clone(), one]).compute_with(&cfg).unwrap(), 18);
    }
    // sum is pure: equal inputs give equal keys.
    let a: Vec<Delayed<i64>> = (0..5).map(value).collect();
    assert_eq!(sum(a.clone()).key(), sum(a.clone()).key());
    assert_ne!(sum(a.clone()).key(), sum(a[..4].to_vec()).key());
}

#[test]
fn sum_with_repeated_items_among_many() {
    // More distinct inputs than a linear search handles, each repeated: one dependency per
    // distinct input, every repeat counted in the value.
    let distinct: Vec<Delayed<i64>> = (0..40i64).map(|i| value(i) + 1000).collect();
    let mut items = Vec::new();
    let mut oracle = 0i64;
    for round in 0..3 {
        for (i, d) in distinct.iter().enumerate() {
            if (i + round) % 2 == 0 {
                items.push(d.clone());
                oracle += i as i64 + 1000;
            }
        }
    }
    let total = sum(items.clone());
    let g = total.graph().unwrap();
    let sum_task = g.task(g.id_of(total.key()).unwrap());
    assert_eq!(sum_task.deps.len(), 40);
    for ex in executors() {
        assert_eq!(total.compute_with(&config(ex)).unwrap(), oracle);
    }
    // The function form and tree_reduce see the same values.
    let three = rask::delayed(|a: i64, b: i64, c: i64| a + b + c);
    let d = &distinct;
    assert_eq!(
        three
            .call((&d[39], &d[0], &d[39]))
            .compute_with(&config(Executor::Sync))
            .unwrap(),
        1039 + 1000 + 1039
    );
}

/// How many combine tasks `tree_reduce` makes for `n` items: groups of `fan_in` per level,
/// a lone leftover passing through.
fn combine_tasks(mut n: usize, fan_in: usize) -> usize {
    let mut tasks = 0;
    while n > 1 {
        let full = n / fan_in;
        let rest = n % fan_in;
        tasks += full + usize::from(rest > 1);
        n = full + usize::from(rest > 0);
    }
    tasks
}

#[test]
fn tree_reduce_sums_1_to_100() {
    let oracle: i64 = (1..=100).sum();
    for fan_in in [2, 3, 7, 100, 1000] {
        let leaves: Vec<Delayed<i64>> = (1..=100).map(value).collect();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let total = tree_reduce(leaves, fan_in, move |xs: &[&i64]| {
            assert!(xs.len() >= 2, "every combine reads at least two values");
            c.fetch_add(1, Ordering::SeqCst);
            xs.iter().copied().sum()
        })
        .unwrap();
        assert_eq!(total.key().prefix(), "reduce");
        let expected_tasks = combine_tasks(100, fan_in);
        assert_eq!(
            total.graph().unwrap().len(),
            100 + expected_tasks,
            "fan_in {fan_in}"
        );
        for ex in executors() {
            calls.store(0, Ordering::SeqCst);
            assert_eq!(
                total.compute_with(&config(ex)).unwrap(),
                oracle,
                "fan_in {fan_in}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                expected_tasks,
                "fan_in {fan_in}"
            );
        }
    }
    assert_eq!(combine_tasks(100, 2), 99);
}

#[test]
fn tree_reduce_with_a_non_commutative_combine_keeps_order() {
    // Concatenation is associative but not commutative: the result shows the leaves' order.
    let words: Vec<String> = (0..23).map(|i| format!("{i},")).collect();
    let oracle: String = words.concat();
    for fan_in in [2, 3, 4] {
        let leaves: Vec<Delayed<String>> = words.iter().cloned().map(value).collect();
        let joined = tree_reduce(leaves, fan_in, |xs: &[&String]| {
            xs.iter().map(|s| s.as_str()).collect()
        })
        .unwrap();
        for ex in executors() {
            assert_eq!(joined.compute_with(&config(ex)).unwrap(), oracle);
        }
    }
}

#[test]
fn tree_reduce_of_one_item_is_that_item() {
    let x = value(5i64) * 3;
    let r = tree_reduce(vec![x.clone()], 2, |xs: &[&i64]| xs.iter().copied().sum()).unwrap();
    assert_eq!(r.key(), x.key());
    assert_eq!(r.compute_with(&config(Executor::Sync)).unwrap(), 15);
}

#[test]
fn tree_reduce_argument_errors() {
    let add = |xs: &[&i64]| xs.iter().copied().sum::<i64>();
    for fan_in in [0, 1] {
        let leaves: Vec<Delayed<i64>> = (1..=10).map(value).collect();
        let err = tree_reduce(leaves, fan_in, add).unwrap_err();
        assert_invalid_argument(&err, "fan_in");
        assert!(err.to_string().contains(&format!("got {fan_in}")), "{err}");
    }
    let err = tree_reduce(Vec::<Delayed<i64>>::new(), 2, add).unwrap_err();
    assert_invalid_argument(&err, "items");
}

#[test]
fn map_applies_a_closure_lazily() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let x = value(vec![3i64, 1, 2]);
    let sorted = x.map(move |v: &Vec<i64>| {
        r.fetch_add(1, Ordering::SeqCst);
        let mut v = v.clone();
        v.sort();
        v
    });
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(sorted.key().prefix(), "map");
    let len = sorted.map(|v| v.len());
    let first = sorted.map(|v| v[0]);
    for ex in executors() {
        runs.store(0, Ordering::SeqCst);
        let (s, l, f) = (sorted.clone(), len.clone(), first.clone())
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((s, l, f), (vec![1, 2, 3], 3usize, 1i64));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{ex:?}: shared map ran once"
        );
    }
    // Closures are never tokenized: each map call is a new task.
    assert_ne!(x.map(|v| v.len()).key(), x.map(|v| v.len()).key());
}

#[test]
fn try_map_ok_and_err() {
    let parse = |s: &String| {
        s.parse::<i64>()
            .map_err(|e| format!("bad number {s:?}: {e}"))
    };
    for ex in executors() {
        let cfg = config(ex);
        let ok = value(String::from("123")).try_map(parse);
        assert_eq!(ok.key().prefix(), "try_map");
        assert_eq!(ok.compute_with(&cfg).unwrap(), 123);
        let bad = value(String::from("12x")).try_map(parse);
        let err = bad.compute_with(&cfg).unwrap_err();
        assert_task_error(&err, bad.key(), "bad number \"12x\"");
        // Dependents of a failed try_map do not produce a value.
        let err = bad.map(|v| v + 1).compute_with(&cfg).unwrap_err();
        assert!(err.to_string().contains("bad number"), "{err}");
    }
}
