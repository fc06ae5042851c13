//! Connections: frames over tokio TCP, and the handshake every connection starts with.
//!
//! A connection is split in two halves so that a task can read while another writes. Writers
//! send whole batches (one frame per batch of messages); readers hand back whole batches. A
//! frame that is oversized, truncated or malformed is an error for that connection only: the
//! caller logs it and drops the connection, nothing else.

use bytes::{Bytes, BytesMut};
use rask_error::{RaskError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::codec::{self, CodecError};
use crate::protocol::{CarriesValues, Fingerprint, Hello, PROTOCOL_VERSION, Welcome};
use crate::tls::TlsContext;

/// Frames below this size are copied into one buffer and written with one call; larger ones
/// are written part by part so big values are never copied.
const COALESCE_BELOW: usize = 1 << 20;

/// How long a handshake may take before the connection is dropped: a peer that connects and
/// says nothing must not hold a slot.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes this process read and wrote on its connections (frames and values), for the
/// dashboard's network figures.
pub mod traffic {
    use std::sync::atomic::{AtomicU64, Ordering};

    static READ: AtomicU64 = AtomicU64::new(0);
    static WRITTEN: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn read(n: usize) {
        READ.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn written(n: usize) {
        WRITTEN.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `(read, written)` bytes so far.
    pub fn totals() -> (u64, u64) {
        (
            READ.load(Ordering::Relaxed),
            WRITTEN.load(Ordering::Relaxed),
        )
    }
}

/// A connected stream: plain TCP (only with `--insecure`) or TLS over TCP.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// The reading half of a connection's stream.
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<tokio_rustls::TlsStream<TcpStream>>),
}

/// The writing half of a connection's stream.
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<tokio_rustls::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for ReadHalf {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => std::pin::Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for WriteHalf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => std::pin::Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// A connection handed to blocking code after its handshake (peer fetches read answers
/// straight into the values' memory, which needs a blocking reader).
pub enum BlockingConn {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl std::io::Read for BlockingConn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BlockingConn::Plain(s) => s.read(buf),
            BlockingConn::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for BlockingConn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            BlockingConn::Plain(s) => s.write(buf),
            BlockingConn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BlockingConn::Plain(s) => s.flush(),
            BlockingConn::Tls(s) => s.flush(),
        }
    }
}

/// The reading half of a connection.
pub struct FrameReader {
    inner: BufReader<ReadHalf>,
    peer: String,
    max_frame: u64,
}

/// The writing half of a connection.
pub struct FrameWriter {
    inner: WriteHalf,
    peer: String,
}

/// A failed read: a TLS alert from the other side (it rejected our certificate after the
/// handshake looked done, as TLS 1.3 allows) is a refusal, so callers do not retry it.
fn read_error(peer: &str, e: std::io::Error) -> RaskError {
    let tls_said_no = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls_said_no {
        RaskError::Refused {
            peer: peer.to_string(),
            reason: format!("TLS: {e} (is this side using the cluster's credentials?)"),
        }
    } else {
        comm_error(peer, e)
    }
}

fn comm_error(peer: &str, message: impl std::fmt::Display) -> RaskError {
    RaskError::Comm {
        peer: peer.to_string(),
        message: message.to_string(),
    }
}

/// Splits a connected stream into its two halves.
pub fn split(conn: Conn, max_frame: u64) -> (FrameReader, FrameWriter) {
    let tcp = match &conn {
        Conn::Plain(s) => s,
        Conn::Tls(s) => s.get_ref().0,
    };
    let peer = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown peer".into());
    // Small control messages must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let (r, w) = match conn {
        Conn::Plain(s) => {
            let (r, w) = s.into_split();
            (ReadHalf::Plain(r), WriteHalf::Plain(w))
        }
        Conn::Tls(s) => {
            let (r, w) = tokio::io::split(*s);
            (ReadHalf::Tls(r), WriteHalf::Tls(w))
        }
    };
    (
        FrameReader {
            inner: BufReader::with_capacity(64 * 1024, r),
            peer: peer.clone(),
            max_frame,
        },
        FrameWriter { inner: w, peer },
    )
}

/// Joins the two halves of a connection this side opened back into one blocking stream (to
/// hand it to blocking code after its handshake). Fails if the reader holds bytes it has not
/// handed out.
pub fn reunite(r: FrameReader, w: FrameWriter) -> std::result::Result<BlockingConn, String> {
    if !r.inner.buffer().is_empty() {
        return Err("bytes after the handshake".into());
    }
    let blocking = |s: TcpStream| -> std::result::Result<std::net::TcpStream, String> {
        let s = s.into_std().map_err(|e| e.to_string())?;
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        Ok(s)
    };
    match (r.inner.into_inner(), w.inner) {
        (ReadHalf::Plain(r), WriteHalf::Plain(w)) => Ok(BlockingConn::Plain(blocking(
            r.reunite(w).map_err(|e| e.to_string())?,
        )?)),
        (ReadHalf::Tls(r), WriteHalf::Tls(w)) => match r.unsplit(w) {
            tokio_rustls::TlsStream::Client(s) => {
                let (tcp, session) = s.into_inner();
                Ok(BlockingConn::Tls(Box::new(rustls::StreamOwned::new(
                    session,
                    blocking(tcp)?,
                ))))
            }
            tokio_rustls::TlsStream::Server(_) => {
                Err("only connections this side opened can be handed to blocking code".into())
            }
        },
        _ => Err("halves of different connections".into()),
    }
}

impl FrameReader {
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The next batch, or `None` when the other side closed the connection cleanly between
    /// frames.
    pub async fn recv<M: DeserializeOwned + CarriesValues>(&mut self) -> Result<Option<Vec<M>>> {
        let mut prefix = [0u8; 8];
        // A clean close is EOF before the first byte of a frame; EOF inside one is truncation.
        let mut got = 0;
        while got < 8 {
            let n = match self.inner.read(&mut prefix[got..]).await {
                Ok(n) => n,
                // A peer process that exits closes TCP without TLS's close_notify; between
                // frames that is an ordinary close (a cut inside a frame still errs below).
                Err(e) if got == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(read_error(&self.peer, e)),
            };
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(comm_error(
                    &self.peer,
                    CodecError::Truncated("length prefix"),
                ));
            }
            got += n;
        }
        let len = codec::body_len(prefix, self.max_frame).map_err(|e| comm_error(&self.peer, e))?;
        // Read into uninitialized capacity: zeroing a large frame first would cost a whole
        // pass over its memory.
        let len = len as usize;
        let mut body = BytesMut::with_capacity(len);
        while body.len() < len {
            let mut limited = (&mut self.inner).take((len - body.len()) as u64);
            let n = limited.read_buf(&mut body).await.map_err(|e| {
                comm_error(&self.peer, format!("frame of {len} bytes cut short: {e}"))
            })?;
            if n == 0 {
                return Err(comm_error(
                    &self.peer,
                    format!("frame of {len} bytes cut short after {} bytes", body.len()),
                ));
            }
        }
        traffic::read(8 + len);
        let msgs = codec::decode(body.freeze()).map_err(|e| comm_error(&self.peer, e))?;
        Ok(Some(msgs))
    }

    /// Like [`FrameReader::recv`], but the other side closing is an error too.
    pub async fn recv_some<M: DeserializeOwned + CarriesValues>(&mut self) -> Result<Vec<M>> {
        self.recv()
            .await?
            .ok_or_else(|| comm_error(&self.peer, "connection closed"))
    }
}

impl FrameWriter {
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The socket's writing half and the peer's name (for writers that share it between
    /// threads).
    pub(crate) fn into_parts(self) -> (WriteHalf, String) {
        (self.inner, self.peer)
    }

    /// Sends a batch as one frame.
    pub async fn send<M: Serialize + CarriesValues>(&mut self, msgs: &mut [M]) -> Result<()> {
        let frame = codec::encode(msgs).map_err(|e| comm_error(&self.peer, e))?;
        self.send_frame(frame.parts).await
    }

    /// Writes an encoded frame's parts.
    pub async fn send_frame(&mut self, parts: Vec<Bytes>) -> Result<()> {
        let total: usize = parts.iter().map(Bytes::len).sum();
        traffic::written(total);
        let res = if total < COALESCE_BELOW || parts.len() == 1 {
            if parts.len() == 1 {
                self.inner.write_all(&parts[0]).await
            } else {
                let mut buf = Vec::with_capacity(total);
                for p in &parts {
                    buf.extend_from_slice(p);
                }
                self.inner.write_all(&buf).await
            }
        } else {
            let mut r = Ok(());
            for p in &parts {
                r = self.inner.write_all(p).await;
                if r.is_err() {
                    break;
                }
            }
            r
        };
        // TLS holds back what it could not write yet; plain TCP's flush does nothing.
        let res = match res {
            Ok(()) => self.inner.flush().await,
            e => e,
        };
        res.map_err(|e| comm_error(&self.peer, e))
    }

    pub async fn shutdown(&mut self) {
        let _ = self.inner.shutdown().await;
    }
}

/// This process's fingerprint: the protocol version and every op name and value type
/// registered in the binary.
pub fn local_fingerprint() -> Fingerprint {
    use std::sync::OnceLock;
    static FP: OnceLock<Fingerprint> = OnceLock::new();
    FP.get_or_init(|| {
        let ops = rask_graph::OpRegistry::global().names();
        let tags = rask_graph::ValueRegistry::global().tags();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&PROTOCOL_VERSION.to_le_bytes());
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        for n in &ops {
            h.update(&(n.len() as u64).to_le_bytes());
            h.update(n.as_bytes());
        }
        h.update(b"|values|");
        for t in &tags {
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown program".into());
        Fingerprint {
            rask_version: env!("CARGO_PKG_VERSION").to_string(),
            program,
            registry_hash: h.digest(),
            n_ops: ops.len() as u32,
            n_value_types: tags.len() as u32,
        }
    })
    .clone()
}

/// Connects to `addr` (over TLS when `tls` is given), sends `hello` and waits for the
/// answer. A refusal is `RaskError::Refused` with the other side's reason.
pub async fn connect(
    addr: &str,
    hello: Hello,
    max_frame: u64,
    tls: Option<&TlsContext>,
) -> Result<(FrameReader, FrameWriter, u64)> {
    connect_with(addr, hello, max_frame, None, tls).await
}

/// [`connect`], and when `user_timeout` is given the connection is watched with
/// [`set_liveness`]: a cut link or a vanished peer then fails it within about that long
/// (a worker starts reconnecting, a fetch tries the next holder), instead of hanging for
/// TCP's retransmission backoff (many minutes).
pub async fn connect_with(
    addr: &str,
    hello: Hello,
    max_frame: u64,
    user_timeout: Option<std::time::Duration>,
    tls: Option<&TlsContext>,
) -> Result<(FrameReader, FrameWriter, u64)> {
    let conn = open(addr, user_timeout, tls).await?;
    let plain = tls.is_none();
    let (mut r, mut w) = split(conn, max_frame);
    w.send(&mut [hello]).await?;
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, r.recv_some::<Welcome>())
        .await
        .map_err(|_| comm_error(addr, "no answer to the handshake"))?
        .map_err(|e| {
            if plain {
                // A TLS server drops a plain connection without a word.
                comm_error(
                    addr,
                    format!("{e} (this side is --insecure; does the other side expect TLS?)"),
                )
            } else {
                e
            }
        })?;
    match answer.into_iter().next() {
        Some(Welcome::Accepted { id }) => Ok((r, w, id)),
        Some(Welcome::Refused { reason }) => Err(RaskError::Refused {
            peer: addr.to_string(),
            reason,
        }),
        None => Err(comm_error(addr, "empty handshake answer")),
    }
}

/// Opens a connection to `addr`: TCP, then the TLS handshake when `tls` is given (before
/// any of rask's own handshake). A certificate either side rejects is `RaskError::Refused`.
pub async fn open(
    addr: &str,
    user_timeout: Option<std::time::Duration>,
    tls: Option<&TlsContext>,
) -> Result<Conn> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| comm_error(addr, "timed out connecting"))?
        .map_err(|e| comm_error(addr, e))?;
    if let Some(t) = user_timeout {
        set_liveness(&stream, t);
    }
    let conn = match tls {
        None => Conn::Plain(stream),
        Some(tls) => {
            let s = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                tls.connector.connect(TlsContext::server_name(), stream),
            )
            .await
            .map_err(|_| comm_error(addr, "no answer to the TLS handshake"))?
            .map_err(|e| {
                let reason = format!(
                    "TLS handshake failed: {e} (is the other side using the same cluster \
                     credentials, and not --insecure?)"
                );
                // A certificate the other side rejects (or we reject) will be rejected again:
                // a refusal, so callers do not retry it.
                let tls_said_no = e
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
                if tls_said_no {
                    RaskError::Refused {
                        peer: addr.to_string(),
                        reason,
                    }
                } else {
                    comm_error(addr, reason)
                }
            })?;
            Conn::Tls(Box::new(tokio_rustls::TlsStream::Client(s)))
        }
    };
    Ok(conn)
}

/// The server side of the TLS handshake on an accepted stream (or nothing, without TLS).
/// Plain TCP to a TLS listener, a certificate from another CA and an expired certificate all
/// fail here; the caller logs the error and drops the connection. `Ok(None)`: the peer closed
/// without sending a byte (a port probe, such as Kubernetes' TCP probes), not worth a warning.
pub async fn accept_stream(stream: TcpStream, tls: Option<&TlsContext>) -> Result<Option<Conn>> {
    let Some(tls) = tls else {
        return Ok(Some(Conn::Plain(stream)));
    };
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown peer".into());
    let mut first = [0u8; 1];
    // Waits for the first byte without taking it.
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Err(_) => return Err(comm_error(&peer, "no TLS handshake within 10 s")),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(comm_error(&peer, e)),
    }
    let s = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream))
        .await
        .map_err(|_| comm_error(&peer, "no TLS handshake within 10 s"))?
        .map_err(|e| {
            let hint = if e.to_string().contains("InvalidContentType") {
                " (a plain-TCP client? it needs the cluster's credentials, or the scheduler \
                 --insecure)"
            } else {
                ""
            };
            comm_error(&peer, format!("TLS handshake failed: {e}{hint}"))
        })?;
    Ok(Some(Conn::Tls(Box::new(tokio_rustls::TlsStream::Server(
        s,
    )))))
}

/// Makes a dead connection fail within about `timeout`: keepalive probes after a second
/// of silence (so a reader waiting for an answer notices a peer that vanished), and
/// `TCP_USER_TIMEOUT` (data or probes unacknowledged that long abort the connection). A
/// live peer's kernel answers probes even while the peer is busy, so slow answers are fine.
#[cfg(target_os = "linux")]
pub fn set_liveness(stream: &TcpStream, timeout: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    let opts: [(libc::c_int, libc::c_int, libc::c_int); 5] = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms),
    ];
    for (level, name, value) in opts {
        // SAFETY: setsockopt on a socket this stream owns, with a c_int value of the size
        // passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::warn!(
                "socket option {name} not set: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_liveness(_stream: &TcpStream, _timeout: std::time::Duration) {}

/// How long a peer connection (a fetch, or a data-port answer) may go unanswered by a
/// peer's kernel before it counts as dead.
pub const PEER_LIVENESS: std::time::Duration = std::time::Duration::from_secs(5);

/// The server side of a handshake: reads the first frame, which must hold exactly one
/// `Hello`, and checks the version and fingerprint. On a mismatch the refusal is sent (naming
/// both sides) and returned as an error; the caller logs it and drops the connection.
pub async fn accept(
    r: &mut FrameReader,
    w: &mut FrameWriter,
    expected_token: Option<&str>,
) -> Result<Hello> {
    let msgs = tokio::time::timeout(HANDSHAKE_TIMEOUT, r.recv_some::<Hello>())
        .await
        .map_err(|_| comm_error(r.peer(), "no handshake within 10 s"))??;
    let mut it = msgs.into_iter();
    let (Some(hello), None) = (it.next(), it.next()) else {
        return Err(comm_error(r.peer(), "the handshake must be one Hello"));
    };
    let (version, fingerprint, token) = match &hello {
        Hello::Client {
            version,
            fingerprint,
            token,
            ..
        }
        | Hello::Worker {
            version,
            fingerprint,
            token,
            ..
        }
        | Hello::Peer {
            version,
            fingerprint,
            token,
        } => (*version, fingerprint, token),
    };
    let ours = local_fingerprint();
    let refusal = if version != PROTOCOL_VERSION {
        Some(format!(
            "protocol version mismatch: this side speaks {PROTOCOL_VERSION}, the other side {version}"
        ))
    } else if let Some(m) = Fingerprint::mismatch(&ours, fingerprint) {
        Some(m)
    } else if expected_token.is_some() && token.as_deref() != expected_token {
        Some("authentication failed: wrong or missing token".to_string())
    } else {
        None
    };
    if let Some(reason) = refusal {
        let _ = w
            .send(&mut [Welcome::Refused {
                reason: reason.clone(),
            }])
            .await;
        return Err(RaskError::Refused {
            peer: r.peer().to_string(),
            reason,
        });
    }
    Ok(hello)
}
