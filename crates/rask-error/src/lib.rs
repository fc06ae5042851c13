//! The one error type shared by every rask crate.
//!
//! [`RaskError`] is returned by graph construction, optimization, scheduling and every
//! collection. Each variant carries the context a user needs to find the fault: the key of a
//! failing task and its op, the argument that was out of range, the file that could not be read.
//! [`ResultExt::context`] wraps an error with one more layer of context, in the spirit of
//! Polars' `PolarsError::context`.
//!
//! ```
//! use rask_error::{RaskError, ResultExt, Result};
//!
//! fn read_config(path: &str) -> Result<String> {
//!     std::fs::read_to_string(path).map_err(|e| RaskError::io(path, e))
//! }
//! let err = read_config("/no/such/file").context("loading the scheduler config").unwrap_err();
//! assert!(err.to_string().contains("/no/such/file"));
//! assert!(err.to_string().starts_with("loading the scheduler config"));
//! ```

use std::fmt;

/// Result alias used throughout rask.
pub type Result<T, E = RaskError> = std::result::Result<T, E>;

/// A boxed error from user code (a delayed function, a closure passed to `map_blocks`, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every error rask returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaskError {
    /// A graph built from user input is not a valid DAG (cycle, missing dependency, duplicate
    /// key). The message names the keys at fault.
    #[error("invalid graph: {0}")]
    InvalidGraph(String),

    /// A function argument is out of range or inconsistent with the others.
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument { name: String, message: String },

    /// Shapes or chunks that do not fit together.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),

    /// A value had another type than the task consuming it expected.
    #[error("type mismatch for {key}: expected {expected}, found {found}")]
    TypeMismatch {
        key: String,
        expected: String,
        found: String,
    },

    /// A task returned an error. `key` and `op` name the task.
    #[error("task {key} (op `{op}`) failed: {source}")]
    TaskFailed {
        key: String,
        op: String,
        #[source]
        source: Box<RaskError>,
    },

    /// A task panicked. The panic was caught; the rest of the graph was cancelled.
    #[error("task {key} (op `{op}`) panicked: {message}")]
    TaskPanicked {
        key: String,
        op: String,
        message: String,
    },

    /// The computation was cancelled (by the user, by dropping its handle, or by Ctrl-C).
    #[error("computation cancelled{}", reason_suffix(.0))]
    Cancelled(Option<String>),

    /// The memory budget cannot hold what the computation needs.
    #[error("memory budget exceeded: {0}")]
    MemoryBudget(String),

    /// An op name that no registry entry can decode (e.g. on a worker that did not link it).
    #[error("unknown op `{0}`: it is not registered in this process")]
    UnknownOp(String),

    /// Serialization or deserialization of op parameters or values failed.
    #[error("serialization failed for {what}: {message}")]
    Serialization { what: String, message: String },

    /// A file or stream could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// An object store (a bucket, an HTTP server, a local folder reached through a URL) could not
    /// serve a request. `url` names the object or prefix at fault (bucket and key included).
    #[error("object store error on {url}: {message}")]
    ObjectStore { url: String, message: String },

    /// A connection to a scheduler, worker or client failed, or the other side sent
    /// something this side cannot read. `peer` names the other side (its address or role).
    #[error("connection to {peer}: {message}")]
    Comm { peer: String, message: String },

    /// The other side refused the connection (a build or version mismatch, a bad token);
    /// `reason` names both sides.
    #[error("{peer} refused the connection: {reason}")]
    Refused { peer: String, reason: String },

    /// Workers kept dying while running a task (Dask's `KilledWorker`): names the task, its op,
    /// and each worker with how it died.
    #[error("task {key} (op `{op}`) was running on workers that died {deaths} times: {message}")]
    KilledWorker {
        key: String,
        op: String,
        deaths: u32,
        message: String,
    },

    /// An error returned by user code.
    #[error("{0}")]
    External(#[source] BoxError),

    /// Any error with one more layer of context, outermost first.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<RaskError>,
    },
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}

impl RaskError {
    /// An invalid-argument error naming the argument.
    pub fn invalid_argument(name: impl Into<String>, message: impl fmt::Display) -> Self {
        RaskError::InvalidArgument {
            name: name.into(),
            message: message.to_string(),
        }
    }

    /// An I/O error naming the path.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        RaskError::Io {
            path: path.to_string(),
            source,
        }
    }

    /// An object-store error naming the URL at fault.
    pub fn object_store(url: impl fmt::Display, message: impl fmt::Display) -> Self {
        RaskError::ObjectStore {
            url: url.to_string(),
            message: message.to_string(),
        }
    }

    /// Wraps an error from user code.
    pub fn external(err: impl Into<BoxError>) -> Self {
        RaskError::External(err.into())
    }

    /// A plain message from user code.
    pub fn msg(message: impl fmt::Display) -> Self {
        RaskError::External(message.to_string().into())
    }

    /// Adds one layer of context.
    pub fn context(self, context: impl fmt::Display) -> Self {
        RaskError::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }

    /// True when this error (under any context layers) is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        match self {
            RaskError::Cancelled(_) => true,
            RaskError::Context { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// The innermost error under context layers and task wrappers.
    pub fn root_cause(&self) -> &RaskError {
        match self {
            RaskError::Context { source, .. } | RaskError::TaskFailed { source, .. } => {
                source.root_cause()
            }
            other => other,
        }
    }
}

/// Adds context to any `Result` whose error converts into [`RaskError`].
pub trait ResultExt<T> {
    /// Wraps the error with a fixed context message.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    /// Wraps the error with a context message computed only on failure.
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<RaskError>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// Returns early with an [`RaskError::InvalidArgument`].
#[macro_export]
macro_rules! bail_argument {
    ($name:expr, $($fmt:tt)+) => {
        return Err($crate::RaskError::invalid_argument($name, format!($($fmt)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_layers_print_outermost_first() {
        let err = RaskError::msg("disk full")
            .context("writing chunk (0, 1)")
            .context("to_npy");
        assert_eq!(err.to_string(), "to_npy: writing chunk (0, 1): disk full");
        assert!(matches!(err.root_cause(), RaskError::External(_)));
    }

    #[test]
    fn task_failure_names_key_and_op() {
        let err = RaskError::TaskFailed {
            key: "inc-abc".into(),
            op: "inc".into(),
            source: Box::new(RaskError::msg("boom")),
        };
        let text = err.to_string();
        assert!(text.contains("inc-abc") && text.contains("`inc`") && text.contains("boom"));
        assert!(!err.is_cancelled());
        assert!(RaskError::Cancelled(None).context("compute").is_cancelled());
    }

    #[test]
    fn bail_argument_names_the_argument() {
        fn check(n: i64) -> Result<i64> {
            if n < 0 {
                bail_argument!("n", "must be non-negative, got {n}");
            }
            Ok(n)
        }
        let err = check(-2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument `n`: must be non-negative, got -2"
        );
    }
}
