//! Deterministic tokens and keys: equal inputs give equal keys, in this process and in
//! another one, and one token's value is pinned.

use std::process::Command;

use rask_graph::{Data, Key, KeyName, Token, Tokenizer, tokenize};

const CHILD_ENV: &str = "RASK_TOKEN_CHILD";
const CHILD_TEST: &str = "tokens::child_prints_tokens";
const LINE_PREFIX: &str = "RASK-TOKEN ";

/// The key of `inc(x)` with a constant, built the way a collection builds one: the op name,
/// the parameters and the inputs' keys go into the token.
fn inc_key(input: &Key, amount: i64) -> Key {
    let token = tokenize("inc", |t| {
        t.write_i64(amount);
        t.write_key(input);
    });
    Key::new(
        KeyName::from_token("inc", token),
        input.index().iter().copied(),
    )
}

fn data_token<D: Data>(value: &D) -> Token {
    let mut t = Tokenizer::new("rask.literal");
    assert!(value.tokenize(&mut t), "the value can be tokenized");
    t.finish()
}

/// Tokens that must come out the same in every process.
fn sample_tokens() -> Vec<(&'static str, Token)> {
    let x = Key::new(KeyName::new("x"), [2, 3]);
    vec![
        ("inc", tokenize("inc", |t| t.write_i64(1))),
        ("vec_f64", data_token(&vec![1.5f64, 2.0])),
        ("string", data_token(&String::from("hello, rask"))),
        ("tuple", data_token(&(7u32, -1i64, Some(0.25f32), 'z'))),
        ("key", tokenize("k", |t| t.write_key(&x))),
        (
            "inc_key",
            tokenize("name", |t| t.write_str(inc_key(&x, 5).name())),
        ),
    ]
}

/// The child half of `tokens_match_in_a_child_process`: prints the sample tokens (and a fresh
/// one) when run with `RASK_TOKEN_CHILD` set; does nothing in an ordinary test run.
#[test]
fn child_prints_tokens() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    for (name, token) in sample_tokens() {
        println!("{LINE_PREFIX}{name} {token}");
    }
    println!("{LINE_PREFIX}fresh {}", Token::fresh());
}

#[test]
fn tokens_match_in_a_child_process() {
    let exe = std::env::current_exe().expect("path of the test binary");
    let out = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("child test process starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran exactly the one test:\n{stdout}"
    );

    let mut child: Vec<(String, Token)> = Vec::new();
    for line in stdout.lines() {
        // With --nocapture the harness's own "test ... ok" may share a line with ours.
        let Some(at) = line.find(LINE_PREFIX) else {
            continue;
        };
        let rest = &line[at + LINE_PREFIX.len()..];
        let (name, hex) = rest.split_once(' ').expect("name and token");
        let hex = &hex[..32];
        let value = u128::from_str_radix(hex, 16).expect("32 hex digits");
        child.push((name.to_string(), Token(value)));
    }
    let fresh_here = Token::fresh();
    let (fresh_name, fresh_child) = child.pop().expect("child printed tokens");
    assert_eq!(fresh_name, "fresh");
    assert_ne!(
        fresh_child, fresh_here,
        "fresh tokens of two processes differ"
    );

    let here: Vec<(String, Token)> = sample_tokens()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(child, here);
}

#[test]
fn pinned_token_value() {
    // XXH3-128 with seed 0x7261736b ("rask") over the documented encoding of ("inc", 1i64):
    // 03 00 00 00 00 00 00 00 'i' 'n' 'c' 01 00 00 00 00 00 00 00. The value was checked
    // against xxhash-rust's `xxh3_128_with_seed` over those bytes, outside this crate. If it
    // changes, every persisted or distributed key changes with it.
    let t = tokenize("inc", |t| t.write_i64(1));
    assert_eq!(t.to_hex(), "be41a976c2c366478a9f33f456ac8307");
    assert_eq!(t.to_string(), t.to_hex());
    assert_eq!(t, Token(0xbe41a976c2c366478a9f33f456ac8307));
    let key = Key::single(KeyName::from_token("inc", t));
    assert_eq!(key.name(), "inc-be41a976c2c366478a9f33f456ac8307");
    assert_eq!(key.prefix(), "inc");
}

#[test]
fn keys_built_twice_are_equal() {
    let x = Key::new(KeyName::new("x"), [0, 1]);
    let a = inc_key(&inc_key(&x, 1), 2);
    let b = inc_key(&inc_key(&x.clone(), 1), 2);
    assert_eq!(a, b);
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(a.index(), [0, 1]);
    assert_eq!(a.prefix(), "inc");
    // Any change of parameter, input name or input block changes the key.
    assert_ne!(a, inc_key(&inc_key(&x, 1), 3));
    assert_ne!(a, inc_key(&inc_key(&x, 2), 2));
    assert_ne!(
        a.name(),
        inc_key(&inc_key(&Key::new(KeyName::new("x"), [1, 0]), 1), 2).name()
    );
    assert_ne!(
        a.name(),
        inc_key(&inc_key(&Key::new(KeyName::new("y"), [0, 1]), 1), 2).name()
    );
    // Equal data literals give equal tokens; different types or values do not.
    assert_eq!(
        data_token(&vec![1.5f64, 2.0]),
        data_token(&vec![1.5f64, 2.0])
    );
    assert_ne!(
        data_token(&vec![1.5f64, 2.0]),
        data_token(&vec![2.0f64, 1.5])
    );
    assert_ne!(data_token(&vec![1.5f64]), data_token(&vec![1.5f32]));
    assert_ne!(data_token(&0.0f64), data_token(&-0.0f64));
    assert_ne!(data_token(&1i64), data_token(&1u64));
    assert_ne!(
        data_token(&String::from("ab")),
        data_token(&vec![String::from("a"), String::from("b")])
    );
    // Block indices are length-prefixed: [1, 23] and [12, 3] differ, so do [] and [0].
    let k = |idx: &[u32]| {
        tokenize("k", |t| {
            t.write_key(&Key::new(KeyName::new("n"), idx.iter().copied()))
        })
    };
    assert_ne!(k(&[1, 23]), k(&[12, 3]));
    assert_ne!(k(&[]), k(&[0]));
}
