//! `#[rask::delayed]`: argument kinds, fallible and panicking bodies, purity, names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask::prelude::*;
use rask::{RaskError, value};

use crate::{assert_task_error, config, executors, within_deadline};

#[rask::delayed(pure)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed]
fn affine(x: i64, scale: i64, offset: f64) -> f64 {
    (x * scale) as f64 + offset
}

#[test]
fn plain_and_delayed_arguments_mix() {
    for ex in executors() {
        let cfg = config(ex);
        // Every combination of literal and Delayed for the three parameters.
        for mask in 0..8u8 {
            let x = 7i64;
            let scale = 3i64;
            let offset = 0.5f64;
            let d = match mask {
                0 => affine(x, scale, offset),
                1 => affine(value(x), scale, offset),
                2 => affine(x, value(scale), offset),
                3 => affine(value(x), value(scale), offset),
                4 => affine(x, scale, value(offset)),
                5 => affine(value(x), scale, value(offset)),
                6 => affine(x, value(scale), value(offset)),
                _ => {
                    let (dx, ds, d_off) = (value(x), value(scale), value(offset));
                    affine(&dx, &ds, &d_off)
                }
            };
            assert_eq!(d.compute_with(&cfg).unwrap(), 21.5, "mask {mask}");
        }
        // A Delayed computed by another delayed call, passed by value and by reference.
        let a = inc(1);
        let b = affine(&a, inc(2), 1.0);
        let c = affine(a, 10, -1.0);
        assert_eq!((b, c).compute_with(&cfg).unwrap(), (2.0 * 3.0 + 1.0, 19.0));
    }
}

/// A value that counts its clones, to tell borrowed parameters from owned ones.
struct Counted {
    data: Vec<i64>,
    clones: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Counted {
            data: self.data.clone(),
            clones: self.clones.clone(),
        }
    }
}

impl rask::Data for Counted {}

#[rask::delayed]
fn counted_sum_ref(c: &Counted) -> i64 {
    c.data.iter().sum()
}

#[rask::delayed]
fn counted_sum_owned(c: Counted) -> i64 {
    c.data.iter().sum()
}

#[rask::delayed]
fn counted_len_slice(items: &[Counted]) -> usize {
    items.iter().map(|c| c.data.len()).sum()
}

/// The shared clone counter, as a task argument.
#[derive(Clone)]
struct Counter(Arc<AtomicUsize>);

impl rask::Data for Counter {}

#[rask::delayed]
fn make_counted(n: i64, clones: Counter) -> Counted {
    Counted {
        data: (0..n).collect(),
        clones: clones.0,
    }
}

#[test]
fn reference_parameters_borrow_the_input() {
    let clones = Arc::new(AtomicUsize::new(0));
    let n = 1000i64;
    let oracle: i64 = (0..n).sum();
    for ex in executors() {
        clones.store(0, Ordering::SeqCst);
        let src = make_counted(n, Counter(clones.clone()));
        // Two readers of one value, both borrowing: no clone at all.
        let (a, b) = (counted_sum_ref(&src), counted_sum_ref(&src))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((a, b), (oracle, oracle));
        assert_eq!(
            clones.load(Ordering::SeqCst),
            0,
            "{ex:?}: &T must not clone"
        );

        // An owned parameter clones the shared input (the control for the check above).
        let owned = counted_sum_owned(&src).compute_with(&config(ex)).unwrap();
        assert_eq!(owned, oracle);
        assert!(clones.load(Ordering::SeqCst) >= 1, "{ex:?}: T clones");

        // `&[T]` reads a `Vec<T>` without cloning its elements.
        clones.store(0, Ordering::SeqCst);
        let items: Vec<Counted> = (1..=4)
            .map(|k| Counted {
                data: vec![0; k],
                clones: clones.clone(),
            })
            .collect();
        let len = counted_len_slice(items).compute_with(&config(ex)).unwrap();
        assert_eq!(len, 1 + 2 + 3 + 4);
        assert_eq!(
            clones.load(Ordering::SeqCst),
            0,
            "{ex:?}: &[T] must not clone"
        );
    }
}

#[rask::delayed(pure)]
fn shout(s: &str, times: usize) -> String {
    s.to_uppercase().repeat(times)
}

#[rask::delayed(pure)]
fn word_lengths(words: &[String]) -> Vec<usize> {
    words.iter().map(|w| w.len()).collect()
}

#[rask::delayed(pure)]
fn dot(a: &Vec<f64>, b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[rask::delayed(pure)]
fn greeting(name: String) -> String {
    format!("hello {name}")
}

#[test]
fn str_and_slice_parameters() {
    let words: Vec<String> = ["alpha", "be", "gam"].map(String::from).to_vec();
    let a = vec![1.0, 2.0, 3.0];
    let b = vec![4.0, -5.0, 0.5];
    let oracle_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    for ex in executors() {
        let cfg = config(ex);
        // `&str` from a literal String and from a Delayed<String>.
        assert_eq!(
            shout(String::from("ab"), 3).compute_with(&cfg).unwrap(),
            "ABABAB"
        );
        let g = greeting(String::from("rask"));
        assert_eq!(
            shout(&g, 2).compute_with(&cfg).unwrap(),
            "HELLO RASKHELLO RASK"
        );
        // `&[T]` from a literal Vec and from a Delayed<Vec<T>>.
        assert_eq!(
            word_lengths(words.clone()).compute_with(&cfg).unwrap(),
            vec![5, 2, 3]
        );
        assert_eq!(
            word_lengths(value(words.clone()))
                .compute_with(&cfg)
                .unwrap(),
            vec![5, 2, 3]
        );
        // `&Vec<T>` and `&[T]` both read a Vec<T>.
        assert_eq!(
            dot(value(a.clone()), b.clone()).compute_with(&cfg).unwrap(),
            oracle_dot
        );
    }
}

#[derive(Debug)]
struct ParseFailure(String);

impl std::fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot parse {:?}", self.0)
    }
}

impl std::error::Error for ParseFailure {}

#[rask::delayed]
fn parse_number(s: &str) -> Result<i64, ParseFailure> {
    s.trim().parse().map_err(|_| ParseFailure(s.to_string()))
}

#[rask::delayed]
fn checked_half(x: i64) -> Result<i64, String> {
    if x % 2 == 0 {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[rask::delayed]
fn rask_result(x: i64) -> rask::Result<i64> {
    if x < 0 {
        Err(RaskError::msg(format!("negative input {x}")))
    } else {
        Ok(x * 10)
    }
}

#[test]
fn result_functions_ok_and_err() {
    for ex in executors() {
        let cfg = config(ex);
        assert_eq!(
            parse_number(String::from(" 42 "))
                .compute_with(&cfg)
                .unwrap(),
            42
        );
        assert_eq!(checked_half(10).compute_with(&cfg).unwrap(), 5);
        assert_eq!(rask_result(4).compute_with(&cfg).unwrap(), 40);

        let bad = parse_number(String::from("4x2"));
        assert_eq!(bad.key().prefix(), "parse_number");
        let err = bad.compute_with(&cfg).unwrap_err();
        assert_task_error(&err, bad.key(), "cannot parse \"4x2\"");
        assert!(
            matches!(err.root_cause(), RaskError::External(_)),
            "{err:?}"
        );

        let odd = checked_half(7);
        assert_eq!(odd.key().prefix(), "checked_half");
        let err = odd.compute_with(&cfg).unwrap_err();
        assert_task_error(&err, odd.key(), "7 is odd");

        let neg = rask_result(-3);
        let err = neg.compute_with(&cfg).unwrap_err();
        assert_task_error(&err, neg.key(), "negative input -3");
    }
}

#[test]
fn error_in_an_intermediate_task_fails_the_whole_compute() {
    // With optimizations off every task runs under its own key, so the failing one is named.
    let no_opt = rask::graph::optimize::OptimizeOptions {
        cull: false,
        inline: false,
        fuse: false,
    };
    for ex in executors() {
        let odd = checked_half(9);
        let downstream = inc(inc(&odd));
        let other = inc(100);
        let err = (downstream.clone(), other)
            .compute_with(&config(ex).with_optimize(no_opt))
            .unwrap_err();
        assert_task_error(&err, odd.key(), "9 is odd");
        // With the default optimizations the chain may be fused; the error still says why.
        let err = downstream.compute_with(&config(ex)).unwrap_err();
        assert!(err.to_string().contains("9 is odd"), "{err}");
    }
}

#[rask::delayed]
fn explode(x: i64) -> i64 {
    if x == 13 {
        panic!("unlucky number {x}");
    }
    x
}

#[test]
fn panicking_task_is_an_error_naming_key_and_message() {
    for ex in executors() {
        let bad = explode(13);
        assert_eq!(bad.key().prefix(), "explode");
        let key = bad.key().clone();
        // Many healthy siblings around the panicking task; the run must end, not hang.
        let mut parts: Vec<Delayed<i64>> = (0..200).map(explode).collect();
        parts.push(bad.clone());
        let total = rask::sum(parts);
        let cfg = config(ex);
        let err = within_deadline(move || total.compute_with(&cfg).unwrap_err());
        assert_task_error(&err, &key, "unlucky number 13");
        assert!(matches!(err, RaskError::TaskPanicked { .. }), "{err:?}");

        // The output itself panicking.
        let cfg = config(ex);
        let err = within_deadline(move || bad.compute_with(&cfg).unwrap_err());
        assert_task_error(&err, &key, "unlucky number 13");
        // The executor is still usable afterwards.
        assert_eq!(explode(12).compute_with(&config(ex)).unwrap(), 12);
    }
}

static PURE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed(pure)]
fn pure_square(x: i64) -> i64 {
    PURE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[test]
fn pure_calls_with_equal_arguments_share_one_task() {
    let a = pure_square(12);
    let b = pure_square(12);
    assert_eq!(a.key(), b.key());
    assert_eq!(a.key().prefix(), "pure_square");
    assert_ne!(a.key(), pure_square(13).key());
    // Equal literal args given as a Delayed are a different call (the key depends on the
    // argument's key, not its value).
    assert_ne!(a.key(), pure_square(value(12)).key());

    for ex in executors() {
        PURE_RUNS.store(0, Ordering::SeqCst);
        let (x, y) = (pure_square(12), pure_square(12))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((x, y), (144, 144));
        assert_eq!(PURE_RUNS.load(Ordering::SeqCst), 1, "{ex:?}");

        // Shared through dependents too: both `inc`s read the one square.
        PURE_RUNS.store(0, Ordering::SeqCst);
        let (x, y) = (inc(pure_square(5)), inc(inc(pure_square(5))))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((x, y), (26, 27));
        assert_eq!(PURE_RUNS.load(Ordering::SeqCst), 1, "{ex:?}");
    }
}

static IMPURE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed]
fn impure_square(x: i64) -> i64 {
    IMPURE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[rask::delayed(pure = false)]
fn explicitly_impure(x: i64) -> i64 {
    x
}

#[test]
fn impure_calls_get_fresh_keys_and_all_run() {
    let a = impure_square(3);
    let b = impure_square(3);
    assert_ne!(a.key(), b.key());
    assert_eq!(a.key().prefix(), "impure_square");
    assert_eq!(b.key().prefix(), "impure_square");
    assert_ne!(explicitly_impure(1).key(), explicitly_impure(1).key());

    for ex in executors() {
        IMPURE_RUNS.store(0, Ordering::SeqCst);
        let (x, y) = (impure_square(3), impure_square(3))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((x, y), (9, 9));
        assert_eq!(IMPURE_RUNS.load(Ordering::SeqCst), 2, "{ex:?}");

        // One impure call read by two dependents runs once: it is one task.
        IMPURE_RUNS.store(0, Ordering::SeqCst);
        let shared = impure_square(4);
        let (x, y) = (inc(&shared), inc(inc(&shared)))
            .compute_with(&config(ex))
            .unwrap();
        assert_eq!((x, y), (17, 18));
        assert_eq!(IMPURE_RUNS.load(Ordering::SeqCst), 1, "{ex:?}");
    }
}

#[rask::delayed(name = "load")]
fn read_source(n: i64) -> Vec<i64> {
    (0..n).collect()
}

#[rask::delayed(pure, name = "total")]
fn sum_slice(v: &[i64]) -> i64 {
    v.iter().sum()
}

#[test]
fn name_option_sets_the_key_prefix() {
    let src = read_source(10);
    assert_eq!(src.key().prefix(), "load");
    let t = sum_slice(&src);
    assert_eq!(t.key().prefix(), "total");
    // `name` with `pure`: equal calls share the key.
    assert_eq!(t.key(), sum_slice(&src).key());
    assert_eq!(t.compute_with(&config(Executor::Sync)).unwrap(), 45);
    // The label shows up in the graph.
    let g = t.graph().unwrap();
    let mut labels: Vec<String> = g
        .tasks()
        .iter()
        .map(|task| task.op.label().to_string())
        .collect();
    labels.sort();
    assert_eq!(labels, ["load", "total"]);
}

static UNIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rask::delayed]
fn side_effect() {
    UNIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[rask::delayed(pure)]
fn answer() -> i64 {
    42
}

#[rask::delayed]
fn fresh_answer() -> i64 {
    42
}

#[rask::delayed]
fn takes_unit(_u: (), x: i64) -> i64 {
    x * 2
}

#[test]
fn zero_arguments_and_unit_return() {
    for ex in executors() {
        UNIT_RUNS.store(0, Ordering::SeqCst);
        let d: Delayed<()> = side_effect();
        assert_eq!(
            UNIT_RUNS.load(Ordering::SeqCst),
            0,
            "nothing runs before compute"
        );
        d.compute_with(&config(ex)).unwrap();
        assert_eq!(UNIT_RUNS.load(Ordering::SeqCst), 1);
        // A unit result can feed another task.
        assert_eq!(
            takes_unit(side_effect(), 21)
                .compute_with(&config(ex))
                .unwrap(),
            42
        );
        assert_eq!(UNIT_RUNS.load(Ordering::SeqCst), 2);
        assert_eq!(answer().compute_with(&config(ex)).unwrap(), 42);
    }
    assert_eq!(answer().key(), answer().key());
    assert_eq!(answer().key().prefix(), "answer");
    assert_ne!(fresh_answer().key(), fresh_answer().key());
}

fn nested_plus_one(x: i64) -> Delayed<i64> {
    #[rask::delayed(pure)]
    fn step(x: i64) -> i64 {
        x + 1
    }
    step(x)
}

fn nested_times_100(x: i64) -> Delayed<i64> {
    #[rask::delayed(pure)]
    fn step(x: i64) -> i64 {
        x * 100
    }
    step(x)
}

#[test]
fn pure_functions_sharing_a_path_do_not_share_keys() {
    // Both nested functions are `<this module>::step`; they must still be different tasks.
    let (a, b) = (nested_plus_one(1), nested_times_100(1));
    assert_eq!(a.key().prefix(), "step");
    assert_eq!(b.key().prefix(), "step");
    assert_ne!(a.key(), b.key());
    // Each stays pure on its own.
    assert_eq!(a.key(), nested_plus_one(1).key());
    assert_eq!(b.key(), nested_times_100(1).key());
    for ex in executors() {
        assert_eq!(
            (a.clone(), b.clone()).compute_with(&config(ex)).unwrap(),
            (2, 100)
        );
    }
}
