//! Secrets that ops need but must never carry: bucket credentials, above all.
//!
//! An op's wire form (its parameters) travels inside task graphs: to the scheduler, which
//! keeps it; to workers; into logs and dashboards. So an op that needs a secret encodes only
//! a reference to it (an id such as `s3:<endpoint>:<access key id>`), and [`remember`]s the
//! secret here, in this process. A cluster client sends what was remembered since its last
//! submission ([`since`]) in a message of its own, on its encrypted connection, before the
//! graph that needs it; the scheduler keeps them in memory and hands them to every worker,
//! which [`remember`]s them in turn. When the op is rebuilt on the worker it [`lookup`]s the
//! id; a worker that was given nothing falls back to its own environment.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One secret: an id the op's wire form names, and the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub id: String,
    pub value: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value never goes to logs.
        f.debug_struct("Secret")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Every secret remembered, in order (a replaced one is appended again, so [`since`] hands
/// the new value on).
static STORE: Mutex<Vec<Secret>> = Mutex::new(Vec::new());

fn store() -> std::sync::MutexGuard<'static, Vec<Secret>> {
    STORE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `value` under `id` in this process (replacing an older value).
pub fn remember(id: impl Into<String>, value: impl Into<String>) {
    let (id, value) = (id.into(), value.into());
    let mut s = store();
    if s.iter().rev().find(|x| x.id == id).map(|x| &x.value) == Some(&value) {
        return;
    }
    s.push(Secret { id, value });
}

/// The newest value under `id`.
pub fn lookup(id: &str) -> Option<String> {
    store()
        .iter()
        .rev()
        .find(|x| x.id == id)
        .map(|x| x.value.clone())
}

/// The secrets remembered after the first `seen`, and the count to pass next time.
pub fn since(seen: usize) -> (Vec<Secret>, usize) {
    let s = store();
    (s.get(seen..).unwrap_or_default().to_vec(), s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_secrets_are_found_handed_on_once_and_kept_out_of_debug() {
        let (_, start) = since(0);
        remember("test:a", "one");
        remember("test:a", "one"); // the same again adds nothing
        remember("test:b", "two");
        assert_eq!(lookup("test:a").as_deref(), Some("one"));
        let (new, next) = since(start);
        let ours: Vec<_> = new.iter().filter(|s| s.id.starts_with("test:")).collect();
        assert_eq!(ours.len(), 2);
        remember("test:a", "three");
        assert_eq!(lookup("test:a").as_deref(), Some("three"));
        let (new, _) = since(next);
        assert!(new.iter().any(|s| s.id == "test:a" && s.value == "three"));
        assert!(!format!("{:?}", new).contains("three"));
        assert_eq!(lookup("test:none"), None);
    }
}
