//! Integration tests of the `rask` facade: `Delayed`, `#[rask::delayed]`, the function form,
//! operators, combinators, compute/persist/config and visualization.
//!
//! One test binary (submodules) keeps link time down. Every test checks values against a plain
//! Rust computation; none asserts on wall time.

mod combinators;
mod compute;
mod dataframe;
mod function_form;
mod large;
mod macro_form;
mod operators;
mod visualize;
mod wire;

use std::sync::mpsc;
use std::time::Duration;

use rask::{Config, Executor, RaskError};

/// The executors every value test runs under.
pub fn executors() -> [Executor; 3] {
    [Executor::Sync, Executor::Threads(3), Executor::Threaded]
}

pub fn config(executor: Executor) -> Config {
    Config::builtin()
        .with_executor(executor)
        .with_progress(rask::Progress::Never)
}

/// Runs `f` on its own thread and fails the test if it has not returned within 60 s: a hang
/// shows up as a failure instead of a stuck test run.
pub fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the computation did not finish within 60 s (hang?)")
}

/// Asserts that `err` is a task failure or panic naming `key`, with `text` in its message.
#[track_caller]
pub fn assert_task_error(err: &RaskError, key: &rask::Key, text: &str) {
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            RaskError::TaskFailed { .. } | RaskError::TaskPanicked { .. }
        ),
        "expected a task error, got {err:?}"
    );
    assert!(
        msg.contains(&key.to_string()),
        "error does not name key {key}: {msg}"
    );
    assert!(msg.contains(text), "error does not contain {text:?}: {msg}");
    assert!(!err.is_cancelled(), "a task error is not a cancellation");
}

/// Asserts that `err` is `InvalidArgument` naming argument `name`.
#[track_caller]
pub fn assert_invalid_argument(err: &RaskError, name: &str) {
    match err {
        RaskError::InvalidArgument { name: n, .. } => assert_eq!(n, name, "{err}"),
        other => panic!("expected InvalidArgument `{name}`, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
}
