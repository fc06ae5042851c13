use rask::prelude::*;

#[rask::delayed(pure)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[test]
fn smoke() {
    let n = 1000;
    let mut level: Vec<Delayed<i64>> = (0..n).map(inc).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                if p.len() == 2 {
                    add(&p[0], &p[1])
                } else {
                    p[0].clone()
                }
            })
            .collect();
    }
    let total = level.pop().unwrap();
    let expect: i64 = (0..n).map(|i| i + 1).sum();
    assert_eq!(total.compute().unwrap(), expect);
    assert_eq!(
        total
            .compute_with(&Config::default().with_executor(Executor::Sync))
            .unwrap(),
        expect
    );
}
