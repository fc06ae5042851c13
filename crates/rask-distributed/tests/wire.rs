//! The scheduler, workers and clients over real TCP on loopback, in one process (workers on
//! threads): graphs run, and bad peers (a wrong build, garbage, oversized or truncated frames)
//! lose their own connection only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rask_distributed::client::{Client, ClientOptions, KeyStatus, SubmitOptions};
use rask_distributed::codec;
use rask_distributed::comm;
use rask_distributed::protocol::{ClientTask, Hello, PROTOCOL_VERSION, WireOp};
use rask_distributed::scheduler::{self, SchedulerHandle, SchedulerOptions};
use rask_distributed::tls::Security;
use rask_distributed::worker::{WorkerOptions, run_worker};
use rask_error::{RaskError, Result};
use rask_graph::{Key, Literal, Op, OpRegistry, Value, register_op};

/// Adds its `i64` inputs: a portable op registered by name, as a user's would be.
struct AddAll;
impl Op for AddAll {
    fn name(&self) -> &str {
        "wire_test.add_all"
    }
    fn params(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut total = 0i64;
        for (i, v) in inputs.iter().enumerate() {
            total += *v.get::<i64>(&format_args!("input {i}"))?;
        }
        Ok(Value::new(total))
    }
}
fn decode_add_all(_: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(AddAll))
}
register_op!("wire_test.add_all", decode_add_all);

/// Fails with a message naming its parameter.
struct Fail;
impl Op for Fail {
    fn name(&self) -> &str {
        "wire_test.fail"
    }
    fn params(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn execute(&self, _: &[Value]) -> Result<Value> {
        Err(RaskError::msg("this op always fails"))
    }
}
fn decode_fail(_: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(Fail))
}
register_op!("wire_test.fail", decode_fail);

fn wire_op(op: &dyn Op) -> Arc<WireOp> {
    let (name, params) = OpRegistry::encode(op).unwrap();
    Arc::new(WireOp { name, params })
}

fn literal(key: &str, v: i64) -> ClientTask {
    ClientTask {
        key: Key::named(key),
        op: wire_op(&Literal::new(Value::new(v))),
        deps: vec![],
        order: 0,
        projected_nbytes: Some(8),
    }
}

fn add(key: &str, deps: &[&str], order: u32) -> ClientTask {
    ClientTask {
        key: Key::named(key),
        op: wire_op(&AddAll),
        deps: deps.iter().map(|d| Key::named(*d)).collect(),
        order,
        projected_nbytes: Some(8),
    }
}

/// A scheduler (TLS with fresh credentials, the default) and `n` workers on threads.
fn cluster(n: usize) -> SchedulerHandle {
    cluster_with(n, SchedulerOptions::default())
}

/// A plain-TCP (`--insecure`) scheduler and `n` workers: for tests of the framing itself.
fn insecure_cluster(n: usize) -> SchedulerHandle {
    cluster_with(
        n,
        SchedulerOptions {
            security: Security::Insecure,
            ..Default::default()
        },
    )
}

fn cluster_with(n: usize, opts: SchedulerOptions) -> SchedulerHandle {
    let sched = scheduler::start(opts).unwrap();
    for i in 0..n {
        let mut o = WorkerOptions::new(sched.address());
        o.tls = sched.tls();
        o.insecure = o.tls.is_none();
        o.token = sched.token().map(String::from);
        o.nthreads = 1;
        o.name = format!("thread-worker-{i}");
        o.reconnect_for = Duration::from_millis(500);
        std::thread::spawn(move || run_worker(o));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sched
        .stats()
        .workers
        .load(std::sync::atomic::Ordering::Relaxed)
        < n
    {
        assert!(std::time::Instant::now() < deadline, "workers did not join");
        std::thread::sleep(Duration::from_millis(10));
    }
    sched
}

fn client(s: &SchedulerHandle) -> Client {
    let mut o = ClientOptions::new(s.address());
    o.tls = s.tls();
    o.insecure = o.tls.is_none();
    o.token = s.token().map(String::from);
    Client::connect(o).unwrap()
}

fn get_i64(c: &Client, key: &str) -> Result<i64> {
    let v = c.result(&Key::named(key))?;
    Ok(*v.get::<i64>(&key)?)
}

#[test]
fn a_diamond_runs_across_two_workers() {
    let s = cluster(2);
    let c = client(&s);
    let tasks = vec![
        literal("a", 1),
        literal("b", 2),
        add("c", &["a", "b"], 2),
        add("d", &["a", "a"], 3),
        add("e", &["c", "d"], 4),
    ];
    let h = c
        .submit(tasks, &[Key::named("e")], SubmitOptions::default())
        .unwrap();
    // 1 + 2 + (1 + 1)
    assert_eq!(get_i64(&c, "e").unwrap(), 5);
    assert_eq!(h[0].status().name(), "finished");
}

#[test]
fn an_erring_task_reaches_its_dependents_but_not_unrelated_work() {
    let s = cluster(2);
    let c = client(&s);
    let mut bad = add("bad", &[], 0);
    bad.op = wire_op(&Fail);
    let tasks = vec![
        bad,
        add("after-bad", &["bad"], 1),
        literal("x", 40),
        add("good", &["x", "x"], 2),
    ];
    let wants = [Key::named("after-bad"), Key::named("good")];
    let _h = c.submit(tasks, &wants, SubmitOptions::default()).unwrap();
    assert_eq!(get_i64(&c, "good").unwrap(), 80);
    let err = get_i64(&c, "after-bad").unwrap_err().to_string();
    assert!(err.contains("bad"), "{err}");
    match c.status(&Key::named("after-bad")) {
        KeyStatus::Erred(e) => assert!(e.message.contains("always fails"), "{e:?}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_client_with_another_build_is_refused_naming_both_sides() {
    let s = cluster(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut theirs = comm::local_fingerprint();
    theirs.registry_hash ^= 1;
    theirs.program = "other-program".into();
    let hello = Hello::Client {
        version: PROTOCOL_VERSION,
        fingerprint: theirs,
        name: "mismatched".into(),
        token: s.token().map(String::from),
    };
    let tls = s.tls();
    let err = rt
        .block_on(comm::connect(
            s.address(),
            hello,
            codec::DEFAULT_MAX_FRAME,
            tls.as_deref(),
        ))
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(matches!(err, RaskError::Refused { .. }), "{msg}");
    assert!(
        msg.contains("build mismatch") && msg.contains("other-program"),
        "{msg}"
    );
    let ours = comm::local_fingerprint();
    assert!(msg.contains(&ours.program), "{msg}");
    // And an old protocol version is refused by name.
    let hello = Hello::Client {
        version: PROTOCOL_VERSION + 1,
        fingerprint: ours,
        name: "future".into(),
        token: s.token().map(String::from),
    };
    let err = rt
        .block_on(comm::connect(
            s.address(),
            hello,
            codec::DEFAULT_MAX_FRAME,
            tls.as_deref(),
        ))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("protocol version"), "{err}");
}

/// Writes raw bytes to the scheduler and checks it hangs up; then a real client still works.
fn assert_connection_dropped_and_scheduler_serves(s: &SchedulerHandle, bytes: &[u8]) {
    let mut raw = TcpStream::connect(s.address()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = raw.write_all(bytes);
    let _ = raw.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    // The scheduler closes its side: read returns (EOF or reset), it never hangs.
    let _ = raw.read_to_end(&mut buf);
    let c = client(s);
    let _h = c
        .submit(
            vec![literal("still-serving", 7)],
            &[Key::named("still-serving")],
            Default::default(),
        )
        .unwrap();
    assert_eq!(get_i64(&c, "still-serving").unwrap(), 7);
}

#[test]
fn garbage_oversized_and_truncated_frames_close_only_their_connection() {
    // Plain TCP, so the bytes reach the framing layer (tests/security.rs sends the same
    // frames inside an authenticated TLS session).
    let s = insecure_cluster(1);
    // Oversized: a length prefix of 1 TiB.
    assert_connection_dropped_and_scheduler_serves(&s, &(1u64 << 40).to_le_bytes());
    // Garbage body: a plausible length, then noise.
    let mut garbage = 64u64.to_le_bytes().to_vec();
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    assert_connection_dropped_and_scheduler_serves(&s, &garbage);
    // Truncated: a valid Hello frame cut in half.
    let mut hello = [Hello::Peer {
        version: PROTOCOL_VERSION,
        fingerprint: comm::local_fingerprint(),
        token: None,
    }];
    let frame = codec::encode(&mut hello).unwrap().to_bytes();
    assert_connection_dropped_and_scheduler_serves(&s, &frame[..frame.len() / 2]);
    // A valid handshake followed by a malformed message batch.
    let mut hello = [Hello::Client {
        version: PROTOCOL_VERSION,
        fingerprint: comm::local_fingerprint(),
        name: "then garbage".into(),
        token: None,
    }];
    let mut bytes = codec::encode(&mut hello).unwrap().to_bytes().to_vec();
    bytes.extend_from_slice(&garbage);
    assert_connection_dropped_and_scheduler_serves(&s, &bytes);
}

#[test]
fn a_dropped_client_releases_its_keys() {
    let s = cluster(1);
    {
        let c = client(&s);
        let _h = c
            .submit(
                vec![literal("p", 1), add("q", &["p"], 1)],
                &[Key::named("q")],
                Default::default(),
            )
            .unwrap();
        assert_eq!(get_i64(&c, "q").unwrap(), 1);
        assert!(s.stats().tasks.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Another client's activity refreshes the published figures.
        let c = client(&s);
        let _h = c
            .submit(vec![literal("tick", 0)], &[], Default::default())
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let n = s.stats().tasks.load(std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} tasks still held");
    }
}

#[test]
fn a_dependency_nobody_holds_refuses_the_submission() {
    let s = cluster(1);
    let c = client(&s);
    let _h = c
        .submit(
            vec![add("orphan", &["nowhere"], 0)],
            &[Key::named("orphan")],
            Default::default(),
        )
        .unwrap();
    let err = get_i64(&c, "orphan").unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn connecting_to_nothing_names_the_address() {
    let mut o = ClientOptions::new("127.0.0.1:1");
    o.insecure = true;
    let err = Client::connect(o).unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
