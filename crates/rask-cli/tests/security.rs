//! The `rask` binary's security defaults, as a user meets them: TLS needs a way to hand out
//! its fresh credentials, `--insecure` says so loudly, and a worker reaches a TLS scheduler
//! through the scheduler file but not with a bare address.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn rask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rask"))
}

/// Kills the process when dropped, so a failed assertion leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, and reads its standard output until a line contains `needle` (bounded).
fn start_until(mut cmd: Command, needle: &str) -> (Running, String) {
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rask"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return (child, seen);
            }
        }
    }
    panic!("no line with `{needle}` within 20 s; output: {seen}");
}

#[test]
fn tls_without_a_scheduler_file_or_files_is_refused_with_the_ways_out() {
    let out = rask().args(["scheduler", "--port", "0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--scheduler-file") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn insecure_is_said_loudly() {
    let mut cmd = rask();
    cmd.args(["scheduler", "--port", "0", "--insecure"]);
    let (mut child, _) = start_until(cmd, "listening at");
    let _ = child.0.kill();
    let out = child.0.wait_with_output_stderr();
    assert!(out.contains("WARNING: --insecure"), "{out}");
    assert!(out.contains("INSECURE"), "{out}");
}

trait StderrAfterKill {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrAfterKill for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

#[test]
fn a_worker_joins_through_the_scheduler_file_but_not_by_bare_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scheduler");
    let mut cmd = rask();
    cmd.args(["scheduler", "--port", "0", "--scheduler-file"])
        .arg(&file);
    let (_scheduler, seen) = start_until(cmd, "listening at");
    let address = seen
        .lines()
        .find_map(|l| l.split("listening at ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    // The file is private: it holds the cluster's key and token.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("tls_ca = ") && text.contains("token = "));

    // A bare address carries no credentials: refused before connecting, naming the ways.
    let out = rask()
        .args(["worker", &address, "--nthreads", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no TLS credentials"), "{err}");

    // Through the file it joins (and, once joined, stays until it is stopped).
    let mut worker = Running(
        rask()
            .args([
                "--log",
                "info",
                "worker",
                "--nthreads",
                "1",
                "--scheduler-file",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = worker.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    let joined = loop {
        if Instant::now() > deadline {
            break false;
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("joined") {
                break true;
            }
        }
    };
    assert!(joined, "the worker did not join: {log}");
    assert!(worker.0.try_wait().unwrap().is_none(), "{log}");
}
