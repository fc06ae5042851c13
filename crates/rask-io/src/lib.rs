//! rask-io: reading and writing bytes wherever they live — local folders, S3 (and any
//! S3-compatible server), HTTP(S), and, behind features, Google Cloud Storage and Azure —
//! behind one small blocking API.
//!
//! rask tasks are synchronous functions, so this crate wraps the async
//! [`object_store`](https://docs.rs/object_store/0.13) crate in a blocking facade:
//!
//! - [`Location`] parses a plain path or a URL (`file://`, `s3://bucket/key`, `http(s)://`,
//!   `gs://`, `az://`) into a [`Scheme`], a bucket and a key.
//! - [`StoreOptions`] carries the endpoint, region and credentials; unset fields come from the
//!   usual `AWS_*` environment variables. Custom endpoints use path-style requests.
//! - [`IoStore`] is a handle on one store rooted at a location, with `get`, `get_range`,
//!   `head`, `put`, `list` and `glob`. Requests run on one small shared tokio runtime that is
//!   started on first use; calling from inside another tokio runtime is safe (the request is
//!   driven from a helper thread rather than blocking on a runtime worker).
//! - [`glob`] expands `data/**/*.csv` or `s3://bucket/year=*/part-*.parquet` to URLs;
//!   [`glob_match`] is the matcher (`*`, `?`, `[a-z]` within a segment, `**` across segments).
//!
//! Every error is a [`rask_error::RaskError::ObjectStore`] naming the URL at fault (and the
//! bucket and key), with a short diagnosis: no such object, the bucket does not exist, access
//! denied, cannot connect.
//!
//! ```
//! use rask_io::{IoStore, StoreOptions, glob};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let root = dir.path().to_str().unwrap();
//! let store = IoStore::open(root, &StoreOptions::default()).unwrap();
//! store.put("flights/2001.csv", b"a,b\n1,2\n".to_vec()).unwrap();
//! store.put("flights/2002.csv", b"a,b\n3,4\n".to_vec()).unwrap();
//! store.put("flights/raw/2003.json", b"{}".to_vec()).unwrap();
//!
//! assert_eq!(store.head("flights/2001.csv").unwrap(), 8);
//! assert_eq!(&store.get_range("flights/2002.csv", 4..5).unwrap()[..], b"3");
//! let csvs: Vec<String> = store.glob("flights/*.csv").unwrap().into_iter().map(|o| o.path).collect();
//! assert_eq!(csvs, ["flights/2001.csv", "flights/2002.csv"]);
//! assert_eq!(store.glob("**/*.json").unwrap().len(), 1);
//!
//! // The same through one URL pattern:
//! let urls = glob(&format!("file://{root}/flights/*.csv"), &StoreOptions::default()).unwrap();
//! assert_eq!(urls.len(), 2);
//!
//! // Errors name the URL.
//! let err = store.get("flights/1999.csv").unwrap_err().to_string();
//! assert!(err.contains("flights/1999.csv") && err.contains("no such object"), "{err}");
//! ```

mod glob;
mod location;
mod store;

pub use glob::glob_match;
pub use location::{Location, Scheme};
pub use store::{IoStore, ObjectInfo, StoreOptions, glob, set_default_options};

/// True when `s` is a URL naming a remote store (anything with `://` except `file://`).
pub fn is_remote_url(s: &str) -> bool {
    s.contains("://") && !s.trim_start().to_ascii_lowercase().starts_with("file://")
}

pub use bytes::Bytes;
