//! rask-io against a real S3 server on loopback: `s3s-fs` (an S3 server over a local folder)
//! started in-process on `127.0.0.1:0` by `rask_testkit::S3TestServer`, with authentication on.
//! No network, no setup script.

use std::path::Path;

use rask_io::{IoStore, Location, StoreOptions, glob};
use rask_testkit::S3TestServer;

const AK: &str = "rask-test-key";
const SK: &str = "rask-test-secret";

/// This suite's view of the loopback server: its credentials and `s3://` bucket URLs.
trait S3ServerExt {
    fn options(&self) -> StoreOptions;
    /// Creates a bucket; its `s3://` URL.
    fn bucket(&self, name: &str) -> String;
}

impl S3ServerExt for S3TestServer {
    fn options(&self) -> StoreOptions {
        StoreOptions::s3_compatible(&self.endpoint(), AK, SK)
    }

    fn bucket(&self, name: &str) -> String {
        self.create_bucket(name);
        format!("s3://{name}")
    }
}

fn paths(v: Vec<rask_io::ObjectInfo>) -> Vec<String> {
    v.into_iter().map(|o| o.path).collect()
}

/// The same put/get/head/range/list/glob checks, on any store.
fn exercise(store: &IoStore) {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    store.put("a/x.bin", data.clone()).unwrap();
    store.put("a/y.csv", b"1,2\n".to_vec()).unwrap();
    store.put("a/deep/er/z.csv", b"3,4\n".to_vec()).unwrap();
    store.put("b/w.csv", b"5,6\n".to_vec()).unwrap();

    assert_eq!(&store.get("a/x.bin").unwrap()[..], &data[..]);
    assert_eq!(store.head("a/x.bin").unwrap(), 10_000);
    let st = store.stat("a/x.bin").unwrap();
    assert_eq!((st.path.as_str(), st.size), ("a/x.bin", 10_000));
    assert!(st.modified_ns > 0);
    assert_eq!(
        &store.get_range("a/x.bin", 300..310).unwrap()[..],
        &data[300..310]
    );
    assert_eq!(store.get_range("a/x.bin", 5..5).unwrap().len(), 0);
    let parts = store.get_ranges("a/x.bin", &[0..3, 9_990..10_000]).unwrap();
    assert_eq!(
        (&parts[0][..], &parts[1][..]),
        (&data[0..3], &data[9_990..])
    );
    assert!(store.exists("a/y.csv").unwrap());
    assert!(!store.exists("a/nope.csv").unwrap());

    assert_eq!(
        paths(store.list("a").unwrap()),
        ["a/deep/er/z.csv", "a/x.bin", "a/y.csv"]
    );
    assert_eq!(paths(store.list("").unwrap()).len(), 4);
    assert_eq!(paths(store.glob("a/*.csv").unwrap()), ["a/y.csv"]);
    assert_eq!(
        paths(store.glob("**/*.csv").unwrap()),
        ["a/deep/er/z.csv", "a/y.csv", "b/w.csv"]
    );
    assert_eq!(
        paths(store.glob("a/**").unwrap()),
        ["a/deep/er/z.csv", "a/x.bin", "a/y.csv"]
    );
    assert_eq!(paths(store.glob("*/w.csv").unwrap()), ["b/w.csv"]);
    assert!(store.glob("c/*.csv").unwrap().is_empty());

    // A child store sees paths relative to its own root.
    let a = store.child("a");
    assert_eq!(&a.get("y.csv").unwrap()[..], b"1,2\n");
    assert_eq!(paths(a.glob("*").unwrap()), ["x.bin", "y.csv"]);

    let err = store.get("a/missing.bin").unwrap_err().to_string();
    assert!(err.contains(&store.url("a/missing.bin")), "{err}");
    assert!(err.contains("no such object"), "{err}");
    let err = store.head("a/missing.bin").unwrap_err().to_string();
    assert!(err.contains("a/missing.bin"), "{err}");
}

#[test]
fn local_folder_round_trips_lists_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let store = IoStore::open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
    exercise(&store);
    // Through a file:// URL and the URL-level glob.
    let url = format!("file://{}/a/**/*.csv", dir.path().display());
    let found = glob(&url, &StoreOptions::default()).unwrap();
    let expect: Vec<String> = ["a/deep/er/z.csv", "a/y.csv"]
        .iter()
        .map(|p| format!("{}/{p}", dir.path().display()))
        .collect();
    assert_eq!(found, expect);
}

#[test]
fn s3_bucket_round_trips_lists_and_globs() {
    let server = S3TestServer::start(AK, SK);
    let bucket = server.bucket("rask-data");
    let store = IoStore::open(&bucket, &server.options()).unwrap();
    exercise(&store);

    // The URL-level glob over the bucket.
    let found = glob(&format!("{bucket}/**/*.csv"), &server.options()).unwrap();
    assert_eq!(
        found,
        [
            "s3://rask-data/a/deep/er/z.csv",
            "s3://rask-data/a/y.csv",
            "s3://rask-data/b/w.csv"
        ]
    );
    // A store rooted at a prefix.
    let sub = IoStore::open(&format!("{bucket}/a/deep"), &server.options()).unwrap();
    assert_eq!(&sub.get("er/z.csv").unwrap()[..], b"3,4\n");
    // Without wildcards: the object itself, or an error naming it.
    let one = glob("s3://rask-data/b/w.csv", &server.options()).unwrap();
    assert_eq!(one, ["s3://rask-data/b/w.csv"]);
    let err = glob("s3://rask-data/b/none.csv", &server.options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://rask-data/b/none.csv"), "{err}");
    // The bytes are in the server's folder, as written.
    assert!(Path::new(&server.root().join("rask-data/a/y.csv")).exists());
}

#[test]
fn missing_bucket_is_named() {
    let server = S3TestServer::start(AK, SK);
    let store = IoStore::open("s3://no-such-bucket/k", &server.options()).unwrap();
    let err = store.get("x.csv").unwrap_err().to_string();
    assert!(err.contains("s3://no-such-bucket/k/x.csv"), "{err}");
    assert!(err.contains("bucket `no-such-bucket`"), "{err}");
    let err = store.list("").unwrap_err().to_string();
    assert!(err.contains("s3://no-such-bucket/k"), "{err}");
    eprintln!("{err}");
    // (s3s-fs creates a bucket's folder on PUT, so a PUT there is not an error on this server.)
}

#[test]
fn wrong_credentials_are_reported() {
    let server = S3TestServer::start(AK, SK);
    let bucket = server.bucket("locked");
    let opts = StoreOptions::s3_compatible(&server.endpoint(), AK, "not-the-secret");
    let store = IoStore::open(&bucket, &opts).unwrap();
    let err = store.put("a.txt", b"1".to_vec()).unwrap_err().to_string();
    assert!(err.contains("s3://locked/a.txt"), "{err}");
    assert!(err.contains("access denied"), "{err}");
    eprintln!("{err}");
    let err = store.get("a.txt").unwrap_err().to_string();
    assert!(err.contains("s3://locked/a.txt"), "{err}");
}

#[test]
fn connection_refused_names_the_url() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = StoreOptions::s3_compatible(&format!("http://127.0.0.1:{port}"), AK, SK);
    opts.max_retries = Some(1);
    let store = IoStore::open("s3://b", &opts).unwrap();
    let err = store.head("k.bin").unwrap_err().to_string();
    assert!(err.contains("s3://b/k.bin"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    eprintln!("{err}");
}

#[test]
fn unsupported_and_malformed_urls_are_named() {
    let o = StoreOptions::default();
    let err = IoStore::open("ftp://host/x", &o).unwrap_err().to_string();
    assert!(
        err.contains("unsupported URL scheme `ftp`") && err.contains("ftp://host/x"),
        "{err}"
    );
    let err = IoStore::open("s3:///key-without-bucket", &o)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3:///key-without-bucket") && err.contains("bucket"),
        "{err}"
    );
    let err = IoStore::open("http://[::1", &o).unwrap_err().to_string();
    assert!(err.contains("malformed URL"), "{err}");
    #[cfg(not(feature = "gcp"))]
    {
        let err = IoStore::open("gs://b/k", &o).unwrap_err().to_string();
        assert!(
            err.contains("gs://b/k") && err.contains("not enabled"),
            "{err}"
        );
    }
    #[cfg(not(feature = "azure"))]
    {
        let err = IoStore::open("az://c/k", &o).unwrap_err().to_string();
        assert!(
            err.contains("az://c/k") && err.contains("not enabled"),
            "{err}"
        );
    }
    assert_eq!(
        Location::parse("s3a://b/k").unwrap().to_string(),
        "s3://b/k"
    );
}

#[test]
fn http_urls_read_objects() {
    let server = S3TestServer::start_anonymous();
    let dir = server.root().join("pub");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello, rask").unwrap();
    let url = format!("{}/pub", server.endpoint());
    let store = IoStore::open(&url, &StoreOptions::default()).unwrap();
    assert_eq!(&store.get("hello.txt").unwrap()[..], b"hello, rask");
    assert_eq!(store.head("hello.txt").unwrap(), 11);
    assert_eq!(&store.get_range("hello.txt", 7..11).unwrap()[..], b"rask");
    let err = store.get("missing.txt").unwrap_err().to_string();
    assert!(err.contains(&format!("{url}/missing.txt")), "{err}");
}

#[test]
fn blocking_calls_work_inside_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A synchronous task called from async code: no "cannot block_on inside a runtime" panic.
    let got = rt.block_on(async move {
        let store = IoStore::open(&root, &StoreOptions::default()).unwrap();
        store.put("x", b"42".to_vec()).unwrap();
        store.get("x").unwrap()
    });
    assert_eq!(&got[..], b"42");
}
