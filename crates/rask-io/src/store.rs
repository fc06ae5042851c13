//! The blocking facade over `object_store`.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rask_error::{RaskError, Result};

use crate::glob::{glob_match, has_wildcard};
use crate::location::{Location, Scheme};

/// Connection options for object stores. Unset fields fall back to the usual environment
/// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, ... through `AmazonS3Builder::from_env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// A custom S3 endpoint (MinIO, a local test server, ...), e.g. `http://127.0.0.1:9000`.
    /// Requests to a custom endpoint are path-style (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    /// The region; S3-compatible servers usually accept any.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints (off by default, as in object_store).
    pub allow_http: bool,
    /// Send no credentials at all (public buckets).
    pub skip_signature: bool,
    /// How many times a failed request is retried (object_store's default: 10, with
    /// exponential backoff). `Some(0)` fails at the first error.
    pub max_retries: Option<usize>,
    /// The longest a request is retried for (object_store's default: 3 minutes).
    pub retry_timeout: Option<std::time::Duration>,
    /// The longest a connection attempt may take.
    pub connect_timeout: Option<std::time::Duration>,
}

impl StoreOptions {
    /// Options for an S3-compatible server at `endpoint` with static credentials; plain HTTP is
    /// allowed when the endpoint starts with `http://`.
    pub fn s3_compatible(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        StoreOptions {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".to_string()),
            access_key_id: Some(access_key_id.to_string()),
            secret_access_key: Some(secret_access_key.to_string()),
            allow_http: endpoint.starts_with("http://"),
            ..StoreOptions::default()
        }
    }
}

/// One object found by [`IoStore::list`] or [`IoStore::glob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The path relative to the store's root (`/`-separated, no leading `/`).
    pub path: String,
    /// The full URL (or absolute local path) of the object.
    pub url: String,
    /// The size in bytes.
    pub size: u64,
    /// The store's entity tag, when it gives one.
    pub e_tag: Option<String>,
    /// The last modification time, in nanoseconds since the Unix epoch (0 when unknown).
    pub modified_ns: i64,
}

fn info(url: String, path: String, m: &object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        path,
        url,
        size: m.size,
        e_tag: m.e_tag.clone(),
        modified_ns: m.last_modified.timestamp_nanos_opt().unwrap_or(0),
    }
}

/// A blocking handle on one store (a bucket, an HTTP origin, or the local file system) rooted at
/// a prefix. Paths passed to its methods are relative to that root; `""` names the root itself.
///
/// Cloning is cheap (the store is shared).
#[derive(Debug, Clone)]
pub struct IoStore {
    store: Arc<dyn ObjectStore>,
    root: Location,
}

/// The one tokio runtime rask-io drives its requests on, created on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rask-io")
            .enable_all()
            .build()
            .expect("rask-io: cannot start the I/O runtime")
    })
}

/// Runs a future to completion from synchronous code. From inside a tokio runtime (where
/// `block_on` would panic) the future is driven from a helper thread instead.
fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        runtime().block_on(fut)
    }
}

/// The options [`IoStore::open_shared`] uses; see [`set_default_options`].
fn default_options() -> &'static Mutex<StoreOptions> {
    static OPTS: OnceLock<Mutex<StoreOptions>> = OnceLock::new();
    OPTS.get_or_init(|| Mutex::new(StoreOptions::default()))
}

type StoreCache = Mutex<HashMap<(Scheme, Option<String>), Arc<dyn ObjectStore>>>;

fn store_cache() -> &'static StoreCache {
    static CACHE: OnceLock<StoreCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Sets the options that [`IoStore::open_shared`] (and so the array readers and writers given
/// URLs) use in this process, and forgets the stores opened with the previous ones. Graph tasks
/// carry only URLs, never credentials: each process (each worker) sets its own options or
/// relies on the `AWS_*` environment variables.
pub fn set_default_options(options: StoreOptions) {
    *default_options().lock().unwrap_or_else(|p| p.into_inner()) = options;
    store_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

impl IoStore {
    /// Like [`IoStore::open`] with the process-wide options ([`set_default_options`]), sharing
    /// one client (one connection pool) per bucket across calls.
    pub fn open_shared(url: &str) -> Result<IoStore> {
        let root = Location::parse(url)?;
        let key = (root.scheme(), root.bucket().map(str::to_string));
        let mut cache = store_cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = cache.get(&key) {
            return Ok(IoStore {
                store: store.clone(),
                root,
            });
        }
        let opts = default_options()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let store = build_store(&root, &opts)?;
        cache.insert(key, store.clone());
        Ok(IoStore { store, root })
    }

    /// Opens the store behind `url` (a plain path or any URL [`Location::parse`] accepts), rooted
    /// at that location.
    pub fn open(url: &str, options: &StoreOptions) -> Result<IoStore> {
        IoStore::from_location(Location::parse(url)?, options)
    }

    /// Opens the store behind a parsed location, rooted at it.
    pub fn from_location(root: Location, options: &StoreOptions) -> Result<IoStore> {
        let store = build_store(&root, options)?;
        Ok(IoStore { store, root })
    }

    /// The root location.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The same store rooted at `rel` under this root.
    pub fn child(&self, rel: &str) -> IoStore {
        IoStore {
            store: self.store.clone(),
            root: self.root.join(rel),
        }
    }

    /// The full URL of `rel` under the root.
    pub fn url(&self, rel: &str) -> String {
        self.root.join(rel).to_string()
    }

    /// The underlying `object_store` (for async callers).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn path(&self, rel: &str) -> Result<ObjPath> {
        let key = self.root.join(rel).key().to_string();
        ObjPath::parse(&key)
            .map_err(|e| RaskError::invalid_argument("path", format!("`{}`: {e}", self.url(rel))))
    }

    fn err(&self, rel: &str, e: object_store::Error) -> RaskError {
        object_store_error(&self.root.join(rel), e)
    }

    /// Reads a whole object.
    pub fn get(&self, rel: &str) -> Result<Bytes> {
        let p = self.path(rel)?;
        block_on(async { self.store.get(&p).await?.bytes().await }).map_err(|e| self.err(rel, e))
    }

    /// Reads a whole object; `None` when it does not exist (a missing bucket is still an error).
    pub fn get_opt(&self, rel: &str) -> Result<Option<Bytes>> {
        let p = self.path(rel)?;
        match block_on(async { self.store.get(&p).await?.bytes().await }) {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { source, .. })
                if !source
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("nosuchbucket") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Reads the bytes `range` of an object (one ranged GET).
    pub fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        let p = self.path(rel)?;
        let (s, e) = (range.start, range.end);
        if s > e {
            return Err(RaskError::invalid_argument(
                "range",
                format!("{s}..{e} is decreasing (reading {})", self.url(rel)),
            ));
        }
        if s == e {
            return Ok(Bytes::new());
        }
        block_on(self.store.get_range(&p, range)).map_err(|e| self.err(rel, e))
    }

    /// Reads several byte ranges of one object (coalesced into few requests).
    pub fn get_ranges(&self, rel: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let p = self.path(rel)?;
        block_on(self.store.get_ranges(&p, ranges)).map_err(|e| self.err(rel, e))
    }

    /// The size of an object in bytes.
    pub fn head(&self, rel: &str) -> Result<u64> {
        let p = self.path(rel)?;
        block_on(self.store.head(&p))
            .map(|m| m.size)
            .map_err(|e| self.err(rel, e))
    }

    /// The size, entity tag and modification time of an object.
    pub fn stat(&self, rel: &str) -> Result<ObjectInfo> {
        let p = self.path(rel)?;
        block_on(self.store.head(&p))
            .map(|m| info(self.url(rel), rel.trim_matches('/').to_string(), &m))
            .map_err(|e| self.err(rel, e))
    }

    /// True when the object exists.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        let p = self.path(rel)?;
        match block_on(self.store.head(&p)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Writes (creates or replaces) a whole object.
    pub fn put(&self, rel: &str, bytes: impl Into<Bytes>) -> Result<()> {
        let p = self.path(rel)?;
        let payload = PutPayload::from_bytes(bytes.into());
        block_on(self.store.put(&p, payload))
            .map(|_| ())
            .map_err(|e| self.err(rel, e))
    }

    /// Deletes an object.
    pub fn delete(&self, rel: &str) -> Result<()> {
        let p = self.path(rel)?;
        block_on(self.store.delete(&p)).map_err(|e| self.err(rel, e))
    }

    /// Lists every object under `prefix` (relative to the root; `""` for everything),
    /// recursively, sorted by path.
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let base = self.root.join(prefix);
        let p = if base.key().is_empty() {
            None
        } else {
            Some(self.path(prefix)?)
        };
        let metas: Vec<object_store::ObjectMeta> =
            block_on(async { self.store.list(p.as_ref()).try_collect().await })
                .map_err(|e| self.err(prefix, e))?;
        let root_key = self.root.key();
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref();
                let rel = if root_key.is_empty() {
                    key
                } else {
                    key.strip_prefix(root_key)?.strip_prefix('/')?
                };
                Some(info(self.url(rel), rel.to_string(), &m))
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The objects under the root whose relative path matches `pattern` (`*`, `?`, `[..]`
    /// within a segment, `**` across segments), sorted by path. Only the literal prefix of the
    /// pattern is listed.
    pub fn glob(&self, pattern: &str) -> Result<Vec<ObjectInfo>> {
        let pattern = pattern.trim_start_matches('/');
        let literal: Vec<&str> = pattern
            .split('/')
            .take_while(|s| !has_wildcard(s))
            .collect();
        let prefix = if literal.len() == pattern.split('/').count() {
            // No wildcard at all: the pattern names one object (or a folder's contents).
            pattern.to_string()
        } else {
            literal.join("/")
        };
        let mut found = self.list(&prefix)?;
        found.retain(|o| glob_match(pattern, &o.path));
        Ok(found)
    }
}

/// Expands a URL or path with wildcards (`s3://bucket/data/**/*.parquet`, `flights/*.csv`)
/// into the matching objects' URLs, sorted. A URL without wildcards is returned as is when the
/// object exists, otherwise it is an error naming it.
pub fn glob(url_pattern: &str, options: &StoreOptions) -> Result<Vec<String>> {
    let loc = Location::parse(url_pattern)?;
    let key = loc.key().to_string();
    let segs: Vec<&str> = key.split('/').collect();
    let n_literal = segs.iter().take_while(|s| !has_wildcard(s)).count();
    let root_key = segs[..n_literal].join("/");
    let pattern = segs[n_literal..].join("/");
    let root = loc.with_key(&root_key);
    let store = IoStore::from_location(root, options)?;
    if pattern.is_empty() {
        store.head("")?;
        return Ok(vec![store.url("")]);
    }
    Ok(store.glob(&pattern)?.into_iter().map(|o| o.url).collect())
}

/// Builds the `object_store` for a location's bucket (or origin, or the local file system).
fn build_store(loc: &Location, o: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let bucket = loc.bucket().unwrap_or_default();
    let fail = |e: object_store::Error| object_store_error(loc, e);
    match loc.scheme() {
        Scheme::Local => Ok(Arc::new(object_store::local::LocalFileSystem::new())),
        Scheme::S3 => {
            use object_store::aws::AmazonS3Builder;
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(ep) = &o.endpoint {
                // Custom endpoints (MinIO, test servers) want path-style requests.
                b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
            }
            if let Some(r) = &o.region {
                b = b.with_region(r);
            }
            if let Some(k) = &o.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = &o.secret_access_key {
                b = b.with_secret_access_key(s);
            }
            if let Some(t) = &o.session_token {
                b = b.with_token(t);
            }
            if o.allow_http {
                b = b.with_allow_http(true);
            }
            if o.skip_signature {
                b = b.with_skip_signature(true);
            }
            if let Some(r) = retry_config(o) {
                b = b.with_retry(r);
            }
            if let Some(t) = o.connect_timeout {
                // Through the config key, so client settings from the environment are kept.
                let key = object_store::aws::AmazonS3ConfigKey::Client(
                    object_store::ClientConfigKey::ConnectTimeout,
                );
                b = b.with_config(key, format!("{}ms", t.as_millis()));
            }
            Ok(Arc::new(b.build().map_err(fail)?))
        }
        Scheme::Http => {
            let mut b = object_store::http::HttpBuilder::new()
                .with_url(bucket)
                .with_client_options(client_options(o).with_allow_http(true));
            if let Some(r) = retry_config(o) {
                b = b.with_retry(r);
            }
            Ok(Arc::new(b.build().map_err(fail)?))
        }
        Scheme::Gcs => build_gcs(loc, bucket),
        Scheme::Azure => build_azure(loc, bucket),
    }
}

fn retry_config(o: &StoreOptions) -> Option<object_store::RetryConfig> {
    if o.max_retries.is_none() && o.retry_timeout.is_none() {
        return None;
    }
    let mut r = object_store::RetryConfig::default();
    if let Some(n) = o.max_retries {
        r.max_retries = n;
    }
    if let Some(t) = o.retry_timeout {
        r.retry_timeout = t;
    }
    Some(r)
}

fn client_options(o: &StoreOptions) -> object_store::ClientOptions {
    let mut c = object_store::ClientOptions::new().with_allow_http(o.allow_http);
    if let Some(t) = o.connect_timeout {
        c = c.with_connect_timeout(t);
    }
    c
}

#[cfg(feature = "gcp")]
fn build_gcs(loc: &Location, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    Ok(Arc::new(b.build().map_err(|e| object_store_error(loc, e))?))
}

#[cfg(not(feature = "gcp"))]
fn build_gcs(loc: &Location, _bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    Err(RaskError::object_store(
        loc,
        "Google Cloud Storage (gs://) is not enabled in this build: enable the `gcp` feature of rask-io",
    ))
}

#[cfg(feature = "azure")]
fn build_azure(loc: &Location, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let b = object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(bucket);
    Ok(Arc::new(b.build().map_err(|e| object_store_error(loc, e))?))
}

#[cfg(not(feature = "azure"))]
fn build_azure(loc: &Location, _bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    Err(RaskError::object_store(
        loc,
        "Azure Blob Storage (az://) is not enabled in this build: enable the `azure` feature of rask-io",
    ))
}

/// Turns an `object_store` error into a [`RaskError::ObjectStore`] naming the URL (bucket and
/// key), with a short diagnosis first and the whole source chain after it.
pub(crate) fn object_store_error(loc: &Location, e: object_store::Error) -> RaskError {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !chain.contains(&t) {
            chain.push_str(": ");
            chain.push_str(&t);
        }
        src = s.source();
    }
    let lc = chain.to_ascii_lowercase();
    let where_ = match (loc.scheme(), loc.bucket()) {
        (Scheme::Local, _) => String::new(),
        (_, Some(b)) => format!(" (bucket `{b}`, key `{}`)", loc.key()),
        _ => String::new(),
    };
    let diagnosis = if lc.contains("nosuchbucket") || lc.contains("bucket does not exist") {
        "the bucket does not exist"
    } else if matches!(e, object_store::Error::NotFound { .. }) {
        "no such object"
    } else if lc.contains("connection refused")
        || lc.contains("(connect)")
        || lc.contains("dns error")
    {
        "cannot connect to the server"
    } else if matches!(
        e,
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. }
    ) || lc.contains("signaturedoesnotmatch")
        || lc.contains("invalidaccesskeyid")
        || lc.contains("accessdenied")
        || lc.contains("403 forbidden")
    {
        "access denied (check the credentials)"
    } else {
        "request failed"
    };
    RaskError::object_store(format!("{loc}{where_}"), format!("{diagnosis}: {chain}"))
}
