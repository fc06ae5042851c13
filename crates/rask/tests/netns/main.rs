//! The cluster across hosts: each host a network namespace (`ip netns`) on one bridge,
//! joined by veth pairs, so scheduler, workers and client talk real TCP over separate
//! network stacks, and a link can be cut like a pulled cable.
//!
//! Layout per test: a switch namespace holding the bridge, host 1 running the scheduler,
//! hosts 2 and 3 one worker each, host 4 the client. Every process is this test binary in a
//! role chosen by environment variables (the same-binary model), started with
//! `ip netns exec`. TLS is on (the default): the scheduler writes fresh credentials into a
//! scheduler file that the other hosts read. The test needs root and iproute2; `.ci/run` runs as root and installs
//! iproute2. Without them the tests fail saying so; they never pass by skipping.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use rask::distributed::{Client, Future, SchedulerOptions};
use rask::prelude::*;

const ROLE: &str = "RASK_NETNS_ROLE";
const SCENARIO: &str = "RASK_NETNS_SCENARIO";
const SWITCH: &str = "RASK_NETNS_SWITCH";
const HOST: &str = "RASK_NETNS_HOST";
/// The scheduler file every host reads (the namespaces share the filesystem, as cluster
/// hosts share a network filesystem): address, token and TLS credentials.
const SCHEDULER_FILE: &str = "RASK_NETNS_SCHEDULER_FILE";
const SCHEDULER_PORT: u16 = 8786;

fn host_ip(i: usize) -> String {
    format!("10.77.0.{i}")
}

fn scheduler_address() -> String {
    format!("{}:{SCHEDULER_PORT}", host_ip(1))
}

// ------------------------------------------------------------------ the tasks

/// `x²` and the host that computed it; slow enough that a run spans a link cut.
#[rask::delayed]
fn square_on(x: i64, ms: u64) -> (i64, i64) {
    std::thread::sleep(Duration::from_millis(ms));
    let host: i64 = std::env::var(HOST)
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(-1);
    (x * x, host)
}

#[rask::delayed(pure)]
fn first(p: (i64, i64)) -> i64 {
    p.0
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// A tree sum over the squares, so that most additions read inputs held on both hosts.
fn tree_sum(squares: &[Future<(i64, i64)>]) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = squares.iter().map(first).collect();
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
    level.pop().expect("at least one square")
}

// ------------------------------------------------------------------ roles

fn main() {
    rask::distributed::init();
    match std::env::var(ROLE).as_deref() {
        Ok("scheduler") => run_scheduler(),
        Ok("client") => {
            let scenario = std::env::var(SCENARIO).unwrap_or_default();
            let result = match scenario.as_str() {
                "spread" => client_spread(),
                "link_cut" => client_link_cut(),
                other => Err(format!("unknown scenario `{other}`")),
            };
            match result {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    eprintln!("scenario {scenario}: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {}
    }
    let args = Arguments::from_args();
    let tests = vec![
        Trial::test("netns::work_spreads_across_hosts", || {
            run_scenario(1, "spread")
        }),
        Trial::test(
            "netns::a_cut_link_is_survived_and_the_worker_rejoins",
            || run_scenario(2, "link_cut"),
        ),
    ];
    libtest_mimic::run(&args, tests).exit();
}

fn run_scheduler() {
    // TLS with fresh credentials (the default), handed out through the scheduler file.
    let opts = SchedulerOptions {
        listen: scheduler_address(),
        heartbeat_timeout: Duration::from_millis(1500),
        scheduler_file: std::env::var_os(SCHEDULER_FILE).map(Into::into),
        ..Default::default()
    };
    match rask::distributed::start_scheduler(opts) {
        Ok(handle) => {
            handle.join();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("netns scheduler: {e}");
            std::process::exit(1);
        }
    }
}

// ------------------------------------------------------------------ client scenarios

type Outcome = Result<(), String>;

fn ensure(cond: bool, msg: impl std::fmt::Display) -> Outcome {
    if cond { Ok(()) } else { Err(msg.to_string()) }
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn connect() -> Result<Client, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let file = std::env::var(SCHEDULER_FILE).map_err(|_| format!("{SCHEDULER_FILE} not set"))?;
    loop {
        match Client::connect(&file) {
            Ok(c) => {
                // Every connection of this run is TLS: the file held credentials, and the
                // client reached the scheduler with them.
                let f = rask::distributed::read_scheduler_file(file.as_ref())
                    .map_err(|e| e.to_string())?;
                ensure(f.tls.is_some(), "the scheduler file holds TLS credentials")?;
                ensure(
                    f.address == scheduler_address(),
                    format!("the scheduler file's address {}", f.address),
                )?;
                return Ok(c);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!("connecting through {file}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn n_workers(client: &Client) -> usize {
    client.scheduler_info().map(|w| w.len()).unwrap_or(0)
}

fn wait_workers(client: &Client, n: usize, secs: u64) -> Outcome {
    ensure(
        eventually(Duration::from_secs(secs), || n_workers(client) == n),
        format!(
            "expected {n} workers within {secs} s, the scheduler has {:?}",
            client.scheduler_info()
        ),
    )
}

fn result_within<T: rask::Data>(f: &Future<T>, secs: u64) -> Result<T, String> {
    match f.result_timeout(Duration::from_secs(secs)) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(format!("{} did not finish within {secs} s", f.key())),
        Err(e) => Err(format!("{}: {e}", f.key())),
    }
}

/// 40 squares mapped over two worker hosts, summed in a tree: the total is the closed form,
/// both hosts did work, and each worker advertises its own host's address (the default
/// listen address is the interface that routes to the scheduler, not loopback).
fn client_spread() -> Outcome {
    let client = connect()?;
    wait_workers(&client, 2, 20)?;
    let info = client.scheduler_info().map_err(|e| e.to_string())?;
    let mut hosts: Vec<&str> = info
        .iter()
        .map(|w| w.address.rsplit_once(':').map_or("", |(h, _)| h))
        .collect();
    hosts.sort();
    ensure(
        hosts == [host_ip(2), host_ip(3)],
        format!("workers advertise their hosts' addresses: {hosts:?}"),
    )?;
    let n = 40i64;
    let squares = client
        .map(|i| square_on(i, 20), 0..n)
        .map_err(|e| e.to_string())?;
    let total = client
        .submit(&tree_sum(&squares))
        .map_err(|e| e.to_string())?;
    let want = (n - 1) * n * (2 * n - 1) / 6;
    let got = result_within(&total, 60)?;
    ensure(
        got == want,
        format!("sum of squares: got {got}, want {want}"),
    )?;
    let mut ran_on: Vec<i64> = Vec::new();
    for (i, f) in squares.iter().enumerate() {
        let (sq, host) = result_within(f, 30)?;
        ensure(sq == (i * i) as i64, format!("square {i}: {sq}"))?;
        ran_on.push(host);
    }
    ran_on.sort();
    ran_on.dedup();
    ensure(ran_on == [2, 3], format!("squares ran on hosts {ran_on:?}"))
}

/// Slow squares spread over two hosts; host 3's link is cut mid-run. The scheduler drops
/// that worker after its heartbeat timeout, recomputes what only it held on host 2, and the
/// total is right. When the link comes back the worker rejoins and takes work again.
fn client_link_cut() -> Outcome {
    let switch = std::env::var(SWITCH).map_err(|_| format!("{SWITCH} is not set"))?;
    let client = connect()?;
    wait_workers(&client, 2, 20)?;
    let n = 48i64;
    let squares = client
        .map(|i| square_on(i, 100), 0..n)
        .map_err(|e| e.to_string())?;
    let total = client
        .submit(&tree_sum(&squares))
        .map_err(|e| e.to_string())?;
    ensure(
        eventually(Duration::from_secs(30), || {
            squares.iter().filter(|f| f.done()).count() >= 8
        }),
        "some squares finished before the cut",
    )?;
    ip(&["-n", &switch, "link", "set", "port3", "down"])?;
    let cut_at = Instant::now();
    wait_workers(&client, 1, 10)?;
    let detected = cut_at.elapsed();
    let want = (n - 1) * n * (2 * n - 1) / 6;
    let got = result_within(&total, 90)?;
    ensure(
        got == want,
        format!("sum of squares after the cut: got {got}, want {want}"),
    )?;

    ip(&["-n", &switch, "link", "set", "port3", "up"])?;
    wait_workers(&client, 2, 40)?;
    // The rejoined worker takes work again.
    let again = client
        .map(|i| square_on(i, 50), 100..140)
        .map_err(|e| e.to_string())?;
    let mut hosts = Vec::new();
    for f in &again {
        hosts.push(result_within(f, 60)?.1);
    }
    hosts.sort();
    hosts.dedup();
    ensure(
        hosts == [2, 3],
        format!("after rejoining, work ran on hosts {hosts:?}"),
    )?;
    eprintln!("link cut detected after {:.1} s", detected.as_secs_f64());
    Ok(())
}

// ------------------------------------------------------------------ the network

fn ip(args: &[&str]) -> Outcome {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!(
            "running `ip {}`: {e} (is iproute2 installed?)",
            args.join(" ")
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces and processes of one test, removed on drop (processes first).
struct Net {
    prefix: String,
    hosts: usize,
    /// Each process writes its output to a file here (a pipe nobody drains could block it).
    logs: tempfile::TempDir,
    children: Vec<(String, std::path::PathBuf, Child)>,
}

impl Net {
    fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    fn host(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// A switch namespace with a bridge and `hosts` host namespaces cabled to it.
    fn build(id: usize, hosts: usize) -> Result<Net, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the netns tests need root (ip netns); `.ci/run` runs as root".into());
        }
        let net = Net {
            prefix: format!("rask{}t{id}", std::process::id()),
            hosts,
            logs: tempfile::tempdir().map_err(|e| format!("a log directory: {e}"))?,
            children: Vec::new(),
        };
        let sw = net.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 1..=hosts {
            let h = net.host(i);
            let port = format!("port{i}");
            ip(&["netns", "add", &h])?;
            ip(&["-n", &h, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &h,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{}/24", host_ip(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &h, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// Starts this binary on host `i` with `env`.
    fn spawn(&mut self, i: usize, what: &str, env: &[(&str, String)]) -> Outcome {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let log = self
            .logs
            .path()
            .join(format!("{}.log", self.children.len()));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(i)])
            .arg(&exe)
            .env(HOST, i.to_string())
            .env(SWITCH, self.switch())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting the {what} on host {i}: {e}"))?;
        self.children.push((what.to_string(), log, child));
        Ok(())
    }

    fn scheduler_file(&self) -> String {
        self.logs.path().join("scheduler").display().to_string()
    }

    fn start_cluster(&mut self) -> Outcome {
        let file = self.scheduler_file();
        self.spawn(
            1,
            "scheduler",
            &[(ROLE, "scheduler".into()), (SCHEDULER_FILE, file.clone())],
        )?;
        // Workers read the file at start: wait until the scheduler wrote it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::path::Path::new(&file).exists() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the scheduler wrote no scheduler file within 20 s\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for i in [2, 3] {
            self.spawn(
                i,
                &format!("worker on host {i}"),
                &[
                    ("RASK_WORKER_SCHEDULER_FILE", file.clone()),
                    ("RASK_WORKER_NAME", format!("host{i}")),
                    ("RASK_WORKER_NTHREADS", "1".into()),
                    ("RASK_WORKER_HEARTBEAT_MS", "100".into()),
                    ("RASK_WORKER_RECONNECT_MS", "60000".into()),
                ],
            )?;
        }
        Ok(())
    }

    /// Runs a client scenario on host 4 and waits for it (bounded).
    fn run_client(&mut self, scenario: &str, limit: Duration) -> Outcome {
        let file = self.scheduler_file();
        self.spawn(
            4,
            "client",
            &[
                (ROLE, "client".into()),
                (SCENARIO, scenario.into()),
                (SCHEDULER_FILE, file),
            ],
        )?;
        let (_, _, child) = self.children.last_mut().expect("just spawned");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the {scenario} client did not finish within {limit:?}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "the {scenario} client failed ({status})\n{}",
                self.logs()
            ))
        }
    }

    /// Everything the processes printed (after stopping them), for a failure message.
    fn logs(&mut self) -> String {
        self.stop();
        let mut out = String::new();
        for (what, log, _) in &self.children {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            out.push_str(&format!("--- {what}:\n{}\n", text.trim_end()));
        }
        out
    }

    fn stop(&mut self) {
        for (_, _, child) in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop();
        for i in 1..=self.hosts {
            let _ = ip(&["netns", "del", &self.host(i)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
    }
}

fn run_scenario(id: usize, scenario: &str) -> Result<(), Failed> {
    let mut net = Net::build(id, 4)?;
    net.start_cluster()?;
    net.run_client(scenario, Duration::from_secs(180))?;
    Ok(())
}
