//! Property tests: a bag computed under any partitioning equals the same pipeline written
//! as iterator code over a `Vec`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rask::prelude::*;
use rask_bag::Bag;

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn element_wise_and_reductions_match_iterators(
        items in proptest::collection::vec(-1000i64..1000, 0..300),
        nparts in 1usize..12,
    ) {
        let bag = Bag::from_sequence(items.clone(), nparts).unwrap();
        prop_assert!(bag.npartitions() >= 1 && bag.npartitions() <= nparts);

        // map / filter / flat_map, in order.
        let piped = bag
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| vec![x; (x.unsigned_abs() % 3) as usize]);
        let want: Vec<i64> = items
            .iter()
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| vec![x; (x.unsigned_abs() % 3) as usize])
            .collect();
        prop_assert_eq!(piped.compute().unwrap(), want.clone());

        // Several reductions computed together share the partitions.
        let (count, sum, any_big, all_small) = (
            bag.count(),
            bag.sum(),
            bag.any(|x| *x > 900),
            bag.all(|x| *x < 990),
        )
            .compute()
            .unwrap();
        prop_assert_eq!(count, items.len() as u64);
        prop_assert_eq!(sum, items.iter().sum::<i64>());
        prop_assert_eq!(any_big, items.iter().any(|x| *x > 900));
        prop_assert_eq!(all_small, items.iter().all(|x| *x < 990));

        if items.is_empty() {
            prop_assert!(bag.min().compute().is_err());
            prop_assert!(bag.mean().compute().is_err());
        } else {
            prop_assert_eq!(bag.min().compute().unwrap(), *items.iter().min().unwrap());
            prop_assert_eq!(bag.max().compute().unwrap(), *items.iter().max().unwrap());
            let n = items.len() as f64;
            let mean = items.iter().sum::<i64>() as f64 / n;
            let var0 = items.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            prop_assert!(close(bag.mean().compute().unwrap(), mean));
            prop_assert!(close(bag.std(0).compute().unwrap(), var0.sqrt()));
            if items.len() > 1 {
                let var1 = var0 * n / (n - 1.0);
                prop_assert!(close(bag.var(1).compute().unwrap(), var1));
            }
        }

        // frequencies / distinct (no set order: compared sorted).
        let mut freq: BTreeMap<i64, u64> = BTreeMap::new();
        for &x in &items {
            *freq.entry(x % 7).or_default() += 1;
        }
        let got = sorted(bag.map(|x| x % 7).frequencies().compute().unwrap());
        prop_assert_eq!(got, freq.into_iter().collect::<Vec<_>>());
        let distinct: BTreeSet<i64> = items.iter().map(|x| x / 10).collect();
        prop_assert_eq!(
            sorted(bag.map(|x| x / 10).distinct().compute().unwrap()),
            distinct.into_iter().collect::<Vec<_>>()
        );

        // topk equals a stable sort of the whole sequence, cut to k (ties in bag order).
        for k in [0usize, 1, 5, 40] {
            let mut want: Vec<(usize, i64)> = items.iter().copied().enumerate().collect();
            want.sort_by_key(|&(_, x)| Reverse(x / 50));
            want.truncate(k);
            let got = Bag::from_sequence(items.iter().copied().enumerate().collect::<Vec<_>>(), nparts)
                .unwrap()
                .topk(k, |&(_, x)| x / 50)
                .compute()
                .unwrap();
            prop_assert_eq!(got, want);
        }

        // fold and foldby.
        let folded = bag.fold(0i64, |a, x| a + x * x, |a, b| a + b).compute().unwrap();
        prop_assert_eq!(folded, items.iter().map(|x| x * x).sum::<i64>());
        let mut by: BTreeMap<i64, i64> = BTreeMap::new();
        for &x in &items {
            *by.entry(x.rem_euclid(5)).or_default() += x;
        }
        let got = sorted(
            bag.foldby(|x| x.rem_euclid(5), 0i64, |a, x| a + x, |a, b| a + b)
                .compute()
                .unwrap(),
        );
        prop_assert_eq!(got, by.into_iter().collect::<Vec<_>>());

        // reduction(per_partition, aggregate), Dask's general form.
        let longest = bag
            .reduction(|part: Vec<i64>| part.len() as u64, |parts: Vec<u64>| parts.into_iter().sum())
            .compute()
            .unwrap();
        prop_assert_eq!(longest, items.len() as u64);
    }

    #[test]
    fn reshaping_matches_iterators(
        items in proptest::collection::vec(0u32..500, 0..200),
        nparts in 1usize..9,
        nout in 1usize..15,
        n in 0usize..250,
    ) {
        let bag = Bag::from_sequence(items.clone(), nparts).unwrap();

        // repartition keeps order and items, to any count.
        let re = bag.map(|x| x + 1).repartition(nout).unwrap();
        prop_assert_eq!(re.npartitions(), nout);
        prop_assert_eq!(re.compute().unwrap(), items.iter().map(|x| x + 1).collect::<Vec<_>>());

        // take reads the first n in order.
        prop_assert_eq!(
            bag.take(n).compute().unwrap(),
            items.iter().copied().take(n).collect::<Vec<_>>()
        );

        // groupby: every item of a key in one group, in bag order.
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &x in &items {
            groups.entry(x % 11).or_default().push(x);
        }
        let got = sorted(bag.groupby(|x| x % 11, Some(nout)).unwrap().compute().unwrap());
        prop_assert_eq!(got, groups.into_iter().collect::<Vec<_>>());

        // zip with a bag of the same partitioning.
        let other = Bag::from_sequence(items.iter().map(|x| x.to_string()).collect::<Vec<_>>(), nparts).unwrap();
        let zipped = bag.zip(&other).unwrap().starmap(|a, b| format!("{a}:{b}"));
        prop_assert_eq!(
            zipped.compute().unwrap(),
            items.iter().map(|x| format!("{x}:{x}")).collect::<Vec<_>>()
        );

        // join with a small in-memory sequence (inner join, every match).
        let small: Vec<(u32, &'static str)> = vec![(0, "zero"), (1, "one"), (1, "uno"), (3, "three")];
        let joined = bag.join(small.clone(), |x| x % 4, |p| p.0).compute().unwrap();
        let want: Vec<(u32, (u32, &'static str))> = items
            .iter()
            .flat_map(|&x| small.iter().filter(move |p| p.0 == x % 4).map(move |&p| (x, p)))
            .collect();
        prop_assert_eq!(joined, want);
    }
}
