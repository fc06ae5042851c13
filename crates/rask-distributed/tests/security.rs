//! Security on real TCP over loopback: every refusal the cluster makes, each logged, with the
//! scheduler still serving a well-behaved client afterwards. TLS with mutual authentication
//! and a token is the default; plain TCP only when asked for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rask_distributed::client::{Client, ClientOptions, KeyStatus};
use rask_distributed::codec;
use rask_distributed::comm;
use rask_distributed::logs;
use rask_distributed::protocol::{ClientTask, Hello, PROTOCOL_VERSION, ToClient, WireOp};
use rask_distributed::scheduler::{
    self, SchedulerHandle, SchedulerOptions, read_scheduler_file, write_scheduler_file,
};
use rask_distributed::tls::{CertificateAuthority, Credentials, Security, TlsContext};
use rask_distributed::worker::{WorkerOptions, run_worker};
use rask_error::RaskError;
use rask_graph::{Key, Literal, OpRegistry, Value};

const TOKEN: &str = "the-right-token";

/// Tests read the process-wide log ring: one at a time, so each sees its own lines.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    logs::init_logging("warn");
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

/// A scheduler whose CA the test holds (to issue good, expired and foreign certificates),
/// with one worker thread.
struct Cluster {
    sched: SchedulerHandle,
    ca: CertificateAuthority,
    tls: Arc<TlsContext>,
}

impl Cluster {
    fn start() -> Cluster {
        let ca = CertificateAuthority::new("security test CA").unwrap();
        let now = SystemTime::now();
        let tls = TlsContext::new(ca.issue(now - hour(), now + 24 * hour()).unwrap()).unwrap();
        let sched = scheduler::start(SchedulerOptions {
            security: Security::Tls(tls.clone()),
            token: Some(TOKEN.into()),
            ..Default::default()
        })
        .unwrap();
        let mut w = WorkerOptions::new(sched.address());
        w.tls = Some(tls.clone());
        w.token = Some(TOKEN.into());
        w.nthreads = 1;
        w.reconnect_for = Duration::from_millis(500);
        std::thread::spawn(move || run_worker(w));
        let c = Cluster { sched, ca, tls };
        c.wait_workers(1);
        c
    }

    fn wait_workers(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.workers() != n {
            assert!(std::time::Instant::now() < deadline, "expected {n} workers");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn workers(&self) -> usize {
        self.sched
            .stats()
            .workers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn options(&self, tls: Option<Arc<TlsContext>>, token: Option<&str>) -> ClientOptions {
        let mut o = ClientOptions::new(self.sched.address());
        o.insecure = tls.is_none();
        o.tls = tls;
        o.token = token.map(String::from);
        o
    }

    /// A client with the right credentials still gets results.
    fn assert_serves(&self) {
        let c = Client::connect(self.options(Some(self.tls.clone()), Some(TOKEN))).unwrap();
        let key = Key::named(format!("still-serving-{}", rand_suffix()));
        let _f = c
            .submit(
                vec![literal(key.clone(), 7)],
                std::slice::from_ref(&key),
                Default::default(),
            )
            .unwrap();
        let v = c.result(&key).unwrap();
        assert_eq!(*v.get::<i64>(&"result").unwrap(), 7);
    }

    /// Credentials whose trust root is this cluster's CA but whose certificate is `cert`'s.
    fn with_cert(&self, cert: Credentials) -> Arc<TlsContext> {
        TlsContext::new(Credentials {
            ca_pem: self.ca.ca_pem(),
            ..cert
        })
        .unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn literal(key: Key, v: i64) -> ClientTask {
    let (name, params) = OpRegistry::encode(&Literal::new(Value::new(v))).unwrap();
    ClientTask {
        key,
        op: Arc::new(WireOp { name, params }),
        deps: vec![],
        order: 0,
        projected_nbytes: Some(8),
    }
}

/// Waits (bounded) for a log line containing every one of `needles`.
fn assert_logged(cursor: &mut u64, needles: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        seen.extend(logs::take_new(cursor));
        if seen.iter().any(|l| needles.iter().all(|n| l.contains(n))) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with {needles:?}; lines: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cursor_now() -> u64 {
    let mut c = 0;
    logs::take_new(&mut c);
    c
}

#[test]
fn a_plain_tcp_client_is_refused_and_logged() {
    let _s = serial();
    let c = Cluster::start();
    let mut cur = cursor_now();
    let err = Client::connect(c.options(None, Some(TOKEN))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("expect TLS"), "{msg}");
    assert_logged(&mut cur, &["refused a connection", "TLS handshake failed"]);
    c.assert_serves();
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_logged() {
    let _s = serial();
    let c = Cluster::start();
    let mut cur = cursor_now();
    for token in [Some("not-the-token"), None] {
        let err = Client::connect(c.options(Some(c.tls.clone()), token)).unwrap_err();
        assert!(matches!(err, RaskError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("authentication failed"), "{err}");
        assert_logged(&mut cur, &["refused a connection", "authentication failed"]);
    }
    c.assert_serves();
}

#[test]
fn a_certificate_from_another_ca_is_refused_both_ways() {
    let _s = serial();
    let c = Cluster::start();
    let other = CertificateAuthority::new("someone else's CA").unwrap();
    let now = SystemTime::now();
    let foreign = other.issue(now - hour(), now + hour()).unwrap();
    // A client trusting only the other CA rejects the scheduler's certificate.
    let mut cur = cursor_now();
    let err =
        Client::connect(c.options(Some(TlsContext::new(foreign.clone()).unwrap()), Some(TOKEN)))
            .unwrap_err();
    assert!(matches!(err, RaskError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    assert_logged(&mut cur, &["refused a connection", "TLS handshake failed"]);
    // A client that trusts the scheduler but presents the other CA's certificate is
    // rejected by the scheduler.
    let err = Client::connect(c.options(Some(c.with_cert(foreign)), Some(TOKEN))).unwrap_err();
    assert!(matches!(err, RaskError::Refused { .. }), "{err}");
    assert_logged(&mut cur, &["refused a connection", "TLS handshake failed"]);
    c.assert_serves();
}

#[test]
fn an_expired_certificate_is_refused_and_logged() {
    let _s = serial();
    let c = Cluster::start();
    let now = SystemTime::now();
    let expired = c.ca.issue(now - 48 * hour(), now - 24 * hour()).unwrap();
    let mut cur = cursor_now();
    let err = Client::connect(c.options(Some(c.with_cert(expired)), Some(TOKEN))).unwrap_err();
    assert!(matches!(err, RaskError::Refused { .. }), "{err}");
    assert_logged(
        &mut cur,
        &["refused a connection", "TLS handshake failed", "xpired"],
    );
    // Not yet valid is refused the same way.
    let future = c.ca.issue(now + 24 * hour(), now + 48 * hour()).unwrap();
    let err = Client::connect(c.options(Some(c.with_cert(future)), Some(TOKEN))).unwrap_err();
    assert!(matches!(err, RaskError::Refused { .. }), "{err}");
    c.assert_serves();
}

#[test]
fn a_worker_with_foreign_credentials_cannot_join() {
    let _s = serial();
    let c = Cluster::start();
    let other = CertificateAuthority::new("rogue CA").unwrap();
    let now = SystemTime::now();
    let mut w = WorkerOptions::new(c.sched.address());
    w.tls = Some(c.with_cert(other.issue(now - hour(), now + hour()).unwrap()));
    w.token = Some(TOKEN.into());
    w.reconnect_for = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let err = run_worker(w).unwrap_err();
    // A refusal is final: the worker does not spend its reconnect window retrying it.
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert!(matches!(err, RaskError::Refused { .. }), "{err}");
    assert_eq!(c.workers(), 1);
    // And a worker that asks for plain TCP is refused by the TLS scheduler.
    let mut w = WorkerOptions::new(c.sched.address());
    w.insecure = true;
    w.token = Some(TOKEN.into());
    w.reconnect_for = Duration::from_millis(300);
    assert!(run_worker(w).is_err());
    assert_eq!(c.workers(), 1);
    c.assert_serves();
}

#[test]
fn a_plain_connection_to_a_workers_data_port_is_refused() {
    let _s = serial();
    let c = Cluster::start();
    let client = Client::connect(c.options(Some(c.tls.clone()), Some(TOKEN))).unwrap();
    let info = client.scheduler_info().unwrap();
    let data_port = info[0].address.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hello = Hello::Peer {
        version: PROTOCOL_VERSION,
        fingerprint: comm::local_fingerprint(),
        token: Some(TOKEN.into()),
    };
    let err = rt
        .block_on(comm::connect(
            &data_port,
            hello.clone(),
            codec::DEFAULT_MAX_FRAME,
            None,
        ))
        .err()
        .expect("refused");
    assert!(err.to_string().contains(&data_port), "{err}");
    // With the credentials, the same handshake is accepted.
    rt.block_on(comm::connect(
        &data_port,
        hello,
        codec::DEFAULT_MAX_FRAME,
        Some(&c.tls),
    ))
    .unwrap();
}

#[test]
fn a_task_naming_an_unregistered_op_is_refused_and_logged() {
    let _s = serial();
    let c = Cluster::start();
    let mut cur = cursor_now();
    let client = Client::connect(c.options(Some(c.tls.clone()), Some(TOKEN))).unwrap();
    let key = Key::named("forged");
    let forged = ClientTask {
        key: key.clone(),
        op: Arc::new(WireOp {
            name: "no.such.op".into(),
            params: vec![1, 2, 3],
        }),
        deps: vec![],
        order: 0,
        projected_nbytes: None,
    };
    let _f = client
        .submit(
            vec![literal(Key::named("honest"), 1), forged],
            std::slice::from_ref(&key),
            Default::default(),
        )
        .unwrap();
    let err = client.result(&key).unwrap_err().to_string();
    assert!(
        err.contains("no.such.op") && err.contains("not registered"),
        "{err}"
    );
    assert!(
        matches!(client.status(&key), KeyStatus::Erred(_)),
        "{:?}",
        client.status(&key)
    );
    assert_logged(&mut cur, &["refused a graph", "no.such.op"]);
    // The whole submission was refused: its honest task did not run either.
    assert!(
        c.sched
            .stats()
            .tasks
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    );
    c.assert_serves();
}

/// Raw bytes inside an authenticated TLS session: the scheduler drops that connection and
/// keeps serving.
fn send_inside_tls(c: &Cluster, bytes: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = comm::open(c.sched.address(), None, Some(&c.tls))
            .await
            .unwrap();
        let (mut r, mut w) = comm::split(conn, codec::DEFAULT_MAX_FRAME);
        let _ = w.send_frame(vec![Bytes::from(bytes)]).await;
        w.shutdown().await;
        // The scheduler closes its side: the read ends (EOF or an error), never hangs.
        let got = tokio::time::timeout(Duration::from_secs(15), r.recv::<ToClient>()).await;
        assert!(got.is_ok(), "the scheduler did not close the connection");
    });
}

#[test]
fn malformed_truncated_and_oversized_frames_inside_tls_close_only_their_connection() {
    let _s = serial();
    let c = Cluster::start();
    let mut cur = cursor_now();
    // Larger than the limit: a length prefix of 1 TiB.
    send_inside_tls(&c, (1u64 << 40).to_le_bytes().to_vec());
    assert_logged(&mut cur, &["refused a connection"]);
    c.assert_serves();
    // Malformed: a plausible length, then noise.
    let mut garbage = 64u64.to_le_bytes().to_vec();
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    send_inside_tls(&c, garbage.clone());
    assert_logged(&mut cur, &["refused a connection"]);
    // Truncated: a valid Hello frame cut in half.
    let mut hello = [Hello::Client {
        version: PROTOCOL_VERSION,
        fingerprint: comm::local_fingerprint(),
        name: "cut".into(),
        token: Some(TOKEN.into()),
    }];
    let frame = codec::encode(&mut hello).unwrap().to_bytes();
    send_inside_tls(&c, frame[..frame.len() / 2].to_vec());
    // A valid handshake, then a malformed batch.
    let mut bytes = frame.to_vec();
    bytes.extend_from_slice(&garbage);
    send_inside_tls(&c, bytes);
    assert_logged(&mut cur, &["closing the connection"]);
    c.assert_serves();
}

#[test]
fn a_tls_client_of_an_insecure_scheduler_is_told_so() {
    let _s = serial();
    let sched = scheduler::start(SchedulerOptions {
        security: Security::Insecure,
        ..Default::default()
    })
    .unwrap();
    let mut o = ClientOptions::new(sched.address());
    o.tls = Some(TlsContext::new(Credentials::generate().unwrap()).unwrap());
    let err = Client::connect(o).unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    // A client with neither credentials nor `insecure` does not silently go plain.
    let err = Client::connect(ClientOptions::new(sched.address())).unwrap_err();
    assert!(err.to_string().contains("no TLS credentials"), "{err}");
}

#[test]
fn the_scheduler_file_holds_credentials_privately_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler");
    let creds = Credentials::generate().unwrap();
    write_scheduler_file(&path, "10.0.0.1:8786", Some("tok"), Some(&creds)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let f = read_scheduler_file(&path).unwrap();
    assert_eq!(f.address, "10.0.0.1:8786");
    assert_eq!(f.token.as_deref(), Some("tok"));
    assert_eq!(f.tls.as_ref(), Some(&creds));
    f.tls_context().unwrap().expect("a TLS context");
    // Insecure is said in the file, not implied by silence.
    write_scheduler_file(&path, "10.0.0.1:8786", None, None).unwrap();
    assert_eq!(read_scheduler_file(&path).unwrap().tls, None);
    std::fs::write(&path, "address = 10.0.0.1:8786\n").unwrap();
    let e = read_scheduler_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("no TLS credentials") && e.contains("scheduler"),
        "{e}"
    );
    std::fs::write(&path, "address = a:1\ntls_ca = Zm9v\n").unwrap();
    let e = read_scheduler_file(&path).unwrap_err().to_string();
    assert!(e.contains("all three"), "{e}");
    std::fs::write(&path, "address = a:1\ntls_ca = !!!\n").unwrap();
    let e = read_scheduler_file(&path).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("base64"), "{e}");
}

#[test]
fn a_default_scheduler_generates_credentials_and_a_token() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler");
    let sched = scheduler::start(SchedulerOptions {
        scheduler_file: Some(path.clone()),
        ..Default::default()
    })
    .unwrap();
    let f = read_scheduler_file(&path).unwrap();
    assert!(f.tls.is_some());
    assert_eq!(f.token.as_deref(), sched.token());
    assert_eq!(f.token.as_ref().map(String::len), Some(64));
    // A client built from the file alone connects.
    let mut o = ClientOptions::new(f.address.clone());
    o.tls = f.tls_context().unwrap();
    o.token = f.token.clone();
    Client::connect(o).unwrap();
}

#[test]
fn a_port_probe_is_not_a_warning() {
    let _s = serial();
    let c = Cluster::start();
    let mut cur = cursor_now();
    // Connect and close without a byte, as Kubernetes' TCP probes do.
    drop(std::net::TcpStream::connect(c.sched.address()).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    c.assert_serves();
    let lines = logs::take_new(&mut cur);
    assert!(
        !lines.iter().any(|l| l.contains("refused a connection")),
        "{lines:#?}"
    );
}
