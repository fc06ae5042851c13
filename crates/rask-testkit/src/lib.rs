//! Test support shared by rask's own test suites (never a dependency of a library crate).
//!
//! - [`S3TestServer`] (feature `s3`, on by default): a real S3-compatible server on loopback.
//! - [`browser::Browser`]: a real headless Chromium driven over WebDriver, for the
//!   dashboard's pages (`.ci/run` installs `chromium` and `chromium-driver`).
//! - [`http`]: a minimal blocking HTTP/1.1 client (pages, JSON APIs, WebDriver, event
//!   streams).
//!
//! [`S3TestServer`] is a real S3-compatible server, not a mock: [`s3s-fs`](s3s_fs) (the S3
//! protocol of the [`s3s`] crate over a local folder) served with hyper-util on
//! `127.0.0.1:0`, in the test process itself, on a small tokio runtime of its own. Requests go
//! through the real object-store client (signing, ranged GETs, LIST pagination, error codes)
//! over a loopback socket, so the object-store tests of `rask-io`, `rask-array` and
//! `rask-dataframe` need no network, no cloud account, no Docker and no setup script:
//! `cargo test --workspace` starts every server it uses and stops it on drop.
//!
//! This crate does not depend on `rask-io` (which tests with it), so there is no dependency
//! cycle; a test builds its own client options from [`S3TestServer::endpoint`] and the keys it
//! started the server with.
//!
//! Quirks of s3s-fs worth knowing when writing tests: a bucket is a folder under
//! [`S3TestServer::root`] ([`S3TestServer::create_bucket`] makes one), a PUT into a missing
//! bucket creates it, and a GET in a missing bucket answers `NoSuchKey` (a LIST answers
//! `NoSuchBucket`).
//!
//! ```
//! use rask_testkit::S3TestServer;
//!
//! const AK: &str = "my-test-key";
//! const SK: &str = "my-test-secret";
//!
//! let server = S3TestServer::start(AK, SK);
//! server.create_bucket("data");
//! assert!(server.endpoint().starts_with("http://127.0.0.1:"));
//! assert!(server.root().join("data").is_dir());
//! // A test then opens the bucket with the real client, e.g. in rask-io's tests:
//! // let opts = StoreOptions::s3_compatible(&server.endpoint(), AK, SK);
//! // let store = IoStore::open("s3://data", &opts)?;
//! // Objects written through the server are plain files under `server.root()`.
//! ```

pub mod browser;
pub mod http;
#[cfg(feature = "s3")]
mod s3;

#[cfg(feature = "s3")]
pub use s3::S3TestServer;
