//! Operations with fixed inputs: plucking, partition functions, conversions, executors and
//! the errors of bad arguments.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rask::bag::{Bag, from_delayed, item_to_delayed};
use rask::dataframe::polars::prelude::*;
use rask::prelude::*;
use serde_json::json;

fn records() -> Vec<serde_json::Value> {
    (0..40)
        .map(|i| {
            let city = ["Paris", "Lima", "Oslo"][i % 3];
            json!({
                "id": i,
                "name": format!("user{}", i % 6),
                "address": {"city": city, "zip": 1000 + i},
                "transactions": (0..(i % 4)).map(|t| json!({"amount": 10 * t + i})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[test]
fn pluck_nested_fields_and_indices() {
    let recs = records();
    let bag = Bag::from_sequence(recs.clone(), 3).unwrap();
    let cities = bag.pluck("address.city").compute().unwrap();
    let want: Vec<serde_json::Value> = recs.iter().map(|r| r["address"]["city"].clone()).collect();
    assert_eq!(cities, want);
    // An index inside a path; records without it are an error naming the path...
    let err = bag
        .pluck("transactions.0.amount")
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("transactions.0.amount"), "{err}");
    // ...or nulls when asked.
    let first = bag
        .pluck_or_null("transactions.0.amount")
        .compute()
        .unwrap();
    let want: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| {
            r["transactions"]
                .get(0)
                .map_or(serde_json::Value::Null, |t| t["amount"].clone())
        })
        .collect();
    assert_eq!(first, want);
    let lists = Bag::from_sequence(vec![vec![1, 2, 3], vec![4, 5]], 2).unwrap();
    assert_eq!(lists.pluck_index(1).compute().unwrap(), [2, 5]);
    let err = lists.pluck_index(2).compute().unwrap_err().to_string();
    assert!(err.contains("index 2") && err.contains("length 2"), "{err}");
    assert_eq!(lists.flatten().compute().unwrap(), [1, 2, 3, 4, 5]);
}

#[test]
fn partitions_starmap_and_fallible_maps() {
    let bag = Bag::from_sequence(0..10i64, 3).unwrap();
    let sums = bag
        .map_partitions(|p| vec![p.iter().sum::<i64>()])
        .compute()
        .unwrap();
    assert_eq!(sums, [3, 12, 30]);
    let tagged = bag.map_with_partition(|p, x| (p, x)).compute().unwrap();
    assert_eq!(tagged[0], (0, 0));
    assert_eq!(tagged[9], (2, 9));
    let triples = Bag::from_sequence(vec![(1, 2, 3), (4, 5, 6)], 2).unwrap();
    assert_eq!(
        triples.starmap(|a, b, c| a * b + c).compute().unwrap(),
        [5, 26]
    );
    let err = bag
        .try_map(|x| {
            if x == 7 {
                Err("seven is bad".to_string())
            } else {
                Ok(x)
            }
        })
        .count()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("seven is bad"), "{err}");
}

#[test]
fn zero_partitions_and_mismatched_zips_are_errors() {
    let err = Bag::from_sequence(vec![1, 2], 0).unwrap_err().to_string();
    assert!(err.contains("npartitions"), "{err}");
    let bag = Bag::from_sequence(0..10, 2).unwrap();
    assert!(
        bag.repartition(0)
            .unwrap_err()
            .to_string()
            .contains("npartitions")
    );
    assert!(
        bag.groupby(|x| x % 2, Some(0))
            .unwrap_err()
            .to_string()
            .contains("npartitions")
    );
    let three = Bag::from_sequence(0..10, 3).unwrap();
    let err = bag.zip(&three).unwrap_err().to_string();
    assert!(err.contains("2 partitions and 3"), "{err}");
    // Same partition count, different lengths: the task fails, naming the partition.
    let a = Bag::from_sequence(0..4, 2).unwrap();
    let b = Bag::from_sequence(0..6, 2).unwrap();
    let err = a.zip(&b).unwrap().compute().unwrap_err().to_string();
    assert!(err.contains("different lengths"), "{err}");
    // An empty sequence is one empty partition.
    let empty = Bag::from_sequence(Vec::<i64>::new(), 4).unwrap();
    assert_eq!(empty.npartitions(), 1);
    assert_eq!(empty.count().compute().unwrap(), 0);
    assert_eq!(empty.sum().compute().unwrap(), 0);
}

#[test]
fn streams_run_once_per_consumer_unless_materialized() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let bag = Bag::from_sequence(0..100i64, 4).unwrap().map(move |x| {
        c.fetch_add(1, Ordering::Relaxed);
        x
    });
    let (n, s) = (bag.count(), bag.sum()).compute().unwrap();
    assert_eq!((n, s), (100, 4950));
    assert_eq!(
        calls.load(Ordering::Relaxed),
        200,
        "two consumers, two passes"
    );
    calls.store(0, Ordering::Relaxed);
    let shared = bag.materialize();
    let (n, s) = (shared.count(), shared.sum()).compute().unwrap();
    assert_eq!((n, s), (100, 4950));
    assert_eq!(calls.load(Ordering::Relaxed), 100, "materialized: one pass");
}

#[test]
fn executors_agree() {
    let bag = Bag::from_sequence((0..5000u64).map(|i| i * 7919 % 1013), 16)
        .unwrap()
        .map(|x| x % 97)
        .frequencies();
    let mut seq = bag
        .compute_with(&Config::default().with_executor(Executor::Sync))
        .unwrap();
    let mut thr = bag
        .compute_with(&Config::default().with_executor(Executor::Threads(4)))
        .unwrap();
    seq.sort();
    thr.sort();
    assert_eq!(seq, thr);
    assert_eq!(seq.iter().map(|p| p.1).sum::<u64>(), 5000);
}

#[test]
fn delayed_partitions_in_and_items_out() {
    let parts: Vec<Delayed<Vec<i64>>> = (0..3)
        .map(|p| delayed(move || (p * 10..p * 10 + 5).collect::<Vec<i64>>()).call(()))
        .collect();
    let bag = from_delayed(&parts).unwrap();
    assert_eq!(bag.npartitions(), 3);
    let total = item_to_delayed(&bag.sum());
    let doubled = total.map(|t| t * 2);
    assert_eq!(
        doubled.compute().unwrap(),
        2 * (0..5).chain(10..15).chain(20..25).sum::<i64>()
    );
}

#[test]
fn records_to_a_dataframe() {
    #[derive(Clone, serde::Serialize)]
    struct Rec {
        name: String,
        amount: f64,
        n: Option<i64>,
    }
    impl rask::bag::BagData for Rec {}
    let recs: Vec<Rec> = (0..25)
        .map(|i| Rec {
            name: format!("n{}", i % 4),
            amount: i as f64 * 1.5,
            n: (i % 3 != 0).then_some(i),
        })
        .collect();
    let schema = Schema::from_iter([
        ("name".into(), DataType::String),
        ("amount".into(), DataType::Float64),
        ("n".into(), DataType::Int64),
    ]);
    let frame = Bag::from_sequence(recs.clone(), 4)
        .unwrap()
        .to_dataframe(schema)
        .unwrap();
    assert_eq!(frame.npartitions(), 4);
    let df = frame.compute().unwrap();
    assert_eq!(df.height(), 25);
    let amounts: Vec<f64> = df
        .column("amount")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(amounts, recs.iter().map(|r| r.amount).collect::<Vec<_>>());
    let nulls = df.column("n").unwrap().null_count();
    assert_eq!(nulls, recs.iter().filter(|r| r.n.is_none()).count());
    // Tuples map by position; a wrong type names the column.
    let pairs = Bag::from_sequence(vec![("a".to_string(), 1i64), ("b".to_string(), 2)], 1).unwrap();
    let schema = Schema::from_iter([
        ("k".into(), DataType::String),
        ("v".into(), DataType::Int64),
    ]);
    let df = pairs
        .to_dataframe(schema.clone())
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(df.column("v").unwrap().i64().unwrap().get(1), Some(2));
    let flipped = Bag::from_sequence(vec![(1i64, "x".to_string())], 1).unwrap();
    let err = flipped
        .to_dataframe(schema)
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `k`"), "{err}");
}

#[test]
fn persisted_bags_start_from_their_partitions() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let bag = Bag::from_sequence(0..50i64, 5).unwrap().map(move |x| {
        c.fetch_add(1, Ordering::Relaxed);
        x * 2
    });
    let kept = bag.persist().unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 50);
    assert_eq!(kept.npartitions(), 5);
    assert_eq!(kept.sum().compute().unwrap(), 2 * (0..50).sum::<i64>());
    assert_eq!(
        kept.compute().unwrap(),
        (0..50).map(|x| x * 2).collect::<Vec<_>>()
    );
    assert_eq!(calls.load(Ordering::Relaxed), 50, "nothing ran again");
}
