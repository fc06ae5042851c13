//! `+ - * / %` and unary `-` on `Delayed`s, with scalars on either side.

use rask::prelude::*;
use rask::{RaskError, value};

use crate::{assert_task_error, config, executors, within_deadline};

#[test]
fn integer_operators_match_plain_arithmetic() {
    let pairs: [(i64, i64); 5] = [(17, 5), (-17, 5), (17, -5), (0, 3), (1 << 40, 7)];
    for ex in executors() {
        let cfg = config(ex);
        for (x, y) in pairs {
            let (a, b) = (value(x), value(y));
            let owned = vec![
                a.clone() + b.clone(),
                a.clone() - b.clone(),
                a.clone() * value(3) - b.clone() * value(2),
                a.clone() / b.clone(),
                a.clone() % b.clone(),
                -a.clone(),
            ];
            let by_ref = vec![&a + &b, &a - &b, &a * &b, &a / &b, &a % &b];
            let scalar_right = vec![&a + 3, &a - 3, a.clone() * 3, &a / 3, a.clone() % 3];
            let scalar_left = vec![
                3 + a.clone(),
                3 - a.clone(),
                3 * a.clone(),
                100 / b.clone(),
                100 % b.clone(),
            ];
            let (o, r, sr, sl) = (owned, by_ref, scalar_right, scalar_left)
                .compute_with(&cfg)
                .unwrap();
            assert_eq!(
                o,
                vec![x + y, x - y, x * 3 - y * 2, x / y, x % y, -x],
                "{x} {y}"
            );
            assert_eq!(r, vec![x + y, x - y, x * y, x / y, x % y], "{x} {y}");
            assert_eq!(sr, vec![x + 3, x - 3, x * 3, x / 3, x % 3], "{x} {y}");
            assert_eq!(sl, vec![3 + x, 3 - x, 3 * x, 100 / y, 100 % y], "{x} {y}");
        }
    }
}

#[test]
fn float_operators_match_plain_arithmetic() {
    let (x, y) = (7.25f64, -1.5f64);
    let (a, b) = (value(x), value(y));
    for ex in executors() {
        let got = vec![
            &a + &b,
            &a - &b,
            &a * &b,
            &a / &b,
            &a % &b,
            -a.clone(),
            &a + 0.5,
            2.0 - b.clone(),
            a.clone() * 0.25,
            1.0 / b.clone(),
            10.0 % a.clone(),
            -(&a / 2.0),
        ]
        .compute_with(&config(ex))
        .unwrap();
        let oracle = vec![
            x + y,
            x - y,
            x * y,
            x / y,
            x % y,
            -x,
            x + 0.5,
            2.0 - y,
            x * 0.25,
            1.0 / y,
            10.0 % x,
            -(x / 2.0),
        ];
        assert_eq!(got, oracle);
    }
    // Division by zero in floats is infinity, not an error.
    let inf = (value(1.0f64) / value(0.0f64))
        .compute_with(&config(Executor::Sync))
        .unwrap();
    assert!(inf.is_infinite() && inf > 0.0);
}

#[test]
fn other_scalar_types() {
    let cfg = config(Executor::Sync);
    assert_eq!((value(200u8) + 55u8).compute_with(&cfg).unwrap(), 255u8);
    assert_eq!((7u64 * value(6u64)).compute_with(&cfg).unwrap(), 42);
    assert_eq!((value(9i32) % 4).compute_with(&cfg).unwrap(), 1);
    assert_eq!((value(1.5f32) * 2.0f32).compute_with(&cfg).unwrap(), 3.0f32);
    assert_eq!(
        (value(10usize) - 3usize).compute_with(&cfg).unwrap(),
        7usize
    );
}

#[test]
fn operators_compose_into_expressions() {
    // ((x + 1) * (x - 1)) / 2 + x % 3, for many x, against the plain formula.
    let xs: Vec<i64> = (-20..=20).collect();
    let exprs: Vec<Delayed<i64>> = xs
        .iter()
        .map(|&x| {
            let d = value(x);
            (&d + 1) * (&d - 1) / 2 + d.clone() % 3
        })
        .collect();
    let oracle: Vec<i64> = xs.iter().map(|&x| (x + 1) * (x - 1) / 2 + x % 3).collect();
    for ex in executors() {
        assert_eq!(exprs.compute_with(&config(ex)).unwrap(), oracle);
    }
}

#[test]
fn same_operand_twice() {
    let x = value(21i64);
    let cfg = config(Executor::Sync);
    assert_eq!((x.clone() + x.clone()).compute_with(&cfg).unwrap(), 42);
    assert_eq!((&x + &x).compute_with(&cfg).unwrap(), 42);
    assert_eq!((&x * &x).compute_with(&cfg).unwrap(), 441);
    assert_eq!((&x - &x).compute_with(&cfg).unwrap(), 0);
    assert_eq!((&x / &x).compute_with(&cfg).unwrap(), 1);
    // One input task, read once per operand slot.
    let g = (&x + &x).graph().unwrap();
    assert_eq!(g.len(), 2);
    let add = g.tasks().iter().find(|t| t.op.label() == "add").unwrap();
    assert_eq!(add.deps.len(), 1, "the same dependency is listed once");
    // Threaded too, on a computed (not literal) operand.
    let y = x.map(|v| v + 1);
    for ex in executors() {
        assert_eq!(
            (y.clone() + y.clone()).compute_with(&config(ex)).unwrap(),
            44
        );
    }
}

#[test]
fn operator_keys_are_deterministic() {
    let a = value(3i64);
    let b = value(4i64);
    assert_eq!((&a + &b).key(), (a.clone() + b.clone()).key());
    assert_eq!((&a + &b).key(), (&a + &b).key());
    assert_eq!((&a + &b).key().prefix(), "add");
    assert_eq!((&a - &b).key().prefix(), "sub");
    assert_eq!((&a * &b).key().prefix(), "mul");
    assert_eq!((&a / &b).key().prefix(), "truediv");
    assert_eq!((&a % &b).key().prefix(), "mod");
    assert_eq!((-a.clone()).key().prefix(), "neg");
    assert_eq!((-a.clone()).key(), (-a.clone()).key());
    // Built from scratch twice (values have deterministic keys too).
    assert_eq!((value(3i64) + value(4i64)).key(), (&a + &b).key());
    assert_eq!((value(3i64) + 4).key(), (&a + &b).key());
    // Operand order, operator and operand types matter.
    assert_ne!((&a + &b).key(), (&b + &a).key());
    assert_ne!((&a + &b).key(), (&a * &b).key());
    assert_ne!(
        (value(3i64) + value(4i64)).key(),
        (value(3i32) + value(4i32)).key()
    );
    // Both built twice compute once: one task in the graph.
    let both = ((&a + &b), (&a + &b));
    let g = both.graph().unwrap();
    assert_eq!(g.len(), 3, "a, b and one add");
    assert_eq!(both.compute_with(&config(Executor::Sync)).unwrap(), (7, 7));
}

#[test]
fn integer_division_by_zero_is_a_task_error() {
    for ex in executors() {
        let q = value(1i64) / value(0i64);
        let key = q.key().clone();
        let cfg = config(ex);
        let err = within_deadline(move || q.compute_with(&cfg).unwrap_err());
        assert_task_error(&err, &key, "divide by zero");
        assert!(matches!(err, RaskError::TaskPanicked { .. }), "{err:?}");

        let r = value(5i64) % 0;
        let key = r.key().clone();
        let cfg = config(ex);
        let err = within_deadline(move || r.compute_with(&cfg).unwrap_err());
        assert_task_error(&err, &key, "remainder with a divisor of zero");

        // Inside a bigger graph: the division's consumers never run, the compute errs.
        let zero = value(3i64) - 3;
        let parts: Vec<Delayed<i64>> = (1..50i64).map(|i| value(i) * 2).collect();
        let mut all = parts;
        all.push(value(10i64) / zero);
        let total = rask::sum(all);
        let cfg = config(ex);
        let err = within_deadline(move || total.compute_with(&cfg).unwrap_err());
        assert!(err.to_string().contains("divide by zero"), "{err}");
    }
}
