//! The loopback S3 server (see the crate docs).

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// An S3-compatible server over a temp folder, listening on `127.0.0.1` (a free port), on its
/// own runtime threads. Dropping it stops the server (the runtime is dropped first) and then
/// deletes the folder.
///
/// `Send + Sync`, so one server can be shared by a whole test binary through a
/// `static std::sync::OnceLock<S3TestServer>`. Do not drop it from inside an async context
/// (dropping a tokio runtime there panics).
pub struct S3TestServer {
    // Field order is drop order: stop serving before the folder goes away.
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl S3TestServer {
    /// Starts a server with authentication on: requests must be signed (AWS SigV4) with this
    /// one access key / secret key pair; anything else is answered with an S3 error.
    pub fn start(access_key: &str, secret_key: &str) -> S3TestServer {
        S3TestServer::serve(Some(SimpleAuth::from_single(access_key, secret_key)))
    }

    /// Starts a server with authentication off: it answers anonymous requests, e.g. plain
    /// HTTP GETs of `{endpoint}/{bucket}/{key}` (for testing `http(s)://` URLs).
    pub fn start_anonymous() -> S3TestServer {
        S3TestServer::serve(None)
    }

    fn serve(auth: Option<SimpleAuth>) -> S3TestServer {
        let dir = tempfile::tempdir().expect("rask-testkit: create the S3 server's temp folder");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rask-testkit-s3")
            .enable_all()
            .build()
            .expect("rask-testkit: build the S3 server's tokio runtime");
        let fs = s3s_fs::FileSystem::new(dir.path())
            .expect("rask-testkit: serve the temp folder with s3s-fs");
        let mut b = S3ServiceBuilder::new(fs);
        if let Some(auth) = auth {
            b.set_auth(auth);
        }
        let service = b.build();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("rask-testkit: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("rask-testkit: the listener's address");
        rt.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3TestServer { _rt: rt, dir, addr }
    }

    /// The server's base URL, `http://127.0.0.1:PORT` (no trailing slash): the endpoint of an
    /// S3-compatible client, or the prefix of `/{bucket}/{key}` for plain HTTP GETs.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder the server serves: one sub-folder per bucket, one file per object (keys with
    /// `/` become nested folders).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the bucket `name` (s3s-fs keeps one folder per bucket); creating one that exists
    /// is a no-op.
    pub fn create_bucket(&self, name: &str) {
        let path = self.root().join(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| {
            panic!("rask-testkit: create bucket folder {}: {e}", path.display())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// One plain HTTP/1.1 GET over a fresh connection; the whole response as text.
    fn http_get(server: &S3TestServer, path: &str) -> String {
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn shareable_through_a_static() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<S3TestServer>();
    }

    #[test]
    fn anonymous_server_answers_plain_gets() {
        let server = S3TestServer::start_anonymous();
        assert!(server.endpoint().starts_with("http://127.0.0.1:"));
        server.create_bucket("pub");
        server.create_bucket("pub");
        std::fs::write(server.root().join("pub/hello.txt"), b"hello, rask").unwrap();
        let got = http_get(&server, "/pub/hello.txt");
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(got.ends_with("hello, rask"), "{got}");
        let got = http_get(&server, "/pub/missing.txt");
        assert!(got.starts_with("HTTP/1.1 404"), "{got}");
        assert!(got.contains("NoSuchKey"), "{got}");
    }

    #[test]
    fn authenticated_server_refuses_unsigned_requests() {
        let server = S3TestServer::start("key", "secret");
        server.create_bucket("locked");
        std::fs::write(server.root().join("locked/a.txt"), b"1").unwrap();
        let got = http_get(&server, "/locked/a.txt");
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    }

    #[test]
    fn drop_stops_the_server_then_removes_the_folder() {
        let server = S3TestServer::start_anonymous();
        let root = server.root().to_path_buf();
        assert!(root.is_dir());
        drop(server);
        assert!(!root.exists());
    }
}
