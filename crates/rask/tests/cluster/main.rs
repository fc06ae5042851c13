//! Futures on a real local cluster: a scheduler in this process, workers as child processes
//! of this very test binary (the same-binary model), talking TCP on loopback.
//!
//! The harness is our own (`harness = false`, libtest-mimic) because the worker processes
//! run this binary too: `main` first hands them their role, before any test runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use rask::distributed::{Client, LocalCluster, LocalClusterOptions, SchedulerOptions};

mod collections;
mod dashboard;
mod dataframe;
mod faults;
mod futures;
mod memory;
mod secrets;

type TestResult = Result<(), Failed>;

/// A local cluster of `n` single-threaded workers with short heartbeats, so fault tests
/// detect a hung worker in about a second.
pub fn cluster(n: usize) -> Arc<LocalCluster> {
    let opts = LocalClusterOptions {
        n_workers: n,
        threads_per_worker: 1,
        memory_limit: 0,
        heartbeat: Duration::from_millis(100),
        worker_reconnect: Duration::from_secs(20),
        scheduler: SchedulerOptions {
            heartbeat_timeout: Duration::from_millis(1500),
            ..Default::default()
        },
        ..Default::default()
    };
    Arc::new(LocalCluster::with_options(opts).expect("starting a local cluster"))
}

pub fn client(n: usize) -> (Client, Arc<LocalCluster>) {
    let c = cluster(n);
    (Client::on(c.clone()).expect("connecting"), c)
}

/// Fails the test with a message unless `cond`.
pub fn check(cond: bool, msg: impl std::fmt::Display) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg.to_string().into())
    }
}

/// Waits until `f` holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn main() {
    rask::distributed::init();
    let args = Arguments::from_args();
    let mut tests = Vec::new();
    tests.extend(futures::tests());
    tests.extend(collections::tests());
    tests.extend(dataframe::tests());
    tests.extend(faults::tests());
    tests.extend(memory::tests());
    tests.extend(dashboard::tests());
    tests.extend(secrets::tests());
    libtest_mimic::run(&args, tests).exit();
}

pub fn trial(name: &'static str, f: fn() -> TestResult) -> Trial {
    Trial::test(name, f)
}
