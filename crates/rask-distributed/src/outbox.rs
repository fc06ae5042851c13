//! The client's sending side: messages are written to the socket from the calling thread
//! when the socket can take them at once, so a `submit` reaches the scheduler without first
//! waking the client's I/O thread (a thread hand-off costs tens of microseconds on a loaded
//! machine, a good part of a round trip). What cannot be written at once, and what is sent
//! in bulk (releases of dropped futures), is queued in order and flushed by one task on the
//! I/O thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rask_error::{RaskError, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::comm::WriteHalf;

use crate::codec;
use crate::protocol::ToScheduler;

#[derive(Default)]
struct Queue {
    /// Encoded frames waiting, in order.
    frames: VecDeque<Vec<Bytes>>,
    /// Messages to batch into one frame before anything sent after them.
    deferred: Vec<ToScheduler>,
    /// The flusher task owns the socket until the queue is empty.
    flushing: bool,
    /// Why the connection can no longer be written to.
    closed: Option<String>,
}

/// Turns the deferred messages into one frame at the back of the queue.
fn seal_deferred(q: &mut Queue) {
    if q.deferred.is_empty() {
        return;
    }
    let mut msgs = std::mem::take(&mut q.deferred);
    match codec::encode(&mut msgs) {
        Ok(f) => q.frames.push_back(f.parts),
        Err(e) => tracing::error!("encoding deferred messages: {e}"),
    }
}

/// A connection's writing half shared by the caller's threads and the flusher task.
/// How frames reach the socket.
enum Half {
    /// A plain TCP half: any thread may `try_write` it.
    Direct(OwnedWriteHalf),
    /// A TLS half: only the flusher writes it.
    Flushed(tokio::sync::Mutex<WriteHalf>),
}

pub(crate) struct Outbox {
    half: Half,
    peer: String,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Outbox {
    pub(crate) fn new(half: WriteHalf, peer: String) -> Arc<Outbox> {
        let half = match half {
            WriteHalf::Plain(h) => Half::Direct(h),
            tls => Half::Flushed(tokio::sync::Mutex::new(tls)),
        };
        Arc::new(Outbox {
            half,
            peer,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed_error(&self, why: &str) -> RaskError {
        RaskError::Comm {
            peer: self.peer.clone(),
            message: format!("the client's connection is closed: {why}"),
        }
    }

    /// Sends one message now: written from this thread if nothing is queued before it and
    /// the socket takes it; otherwise queued behind what is waiting.
    pub(crate) fn send(&self, msg: ToScheduler) -> Result<()> {
        let frame = codec::encode(&mut [msg]).map_err(|e| RaskError::Comm {
            peer: self.peer.clone(),
            message: e.to_string(),
        })?;
        let mut q = self.lock();
        if let Some(why) = &q.closed {
            return Err(self.closed_error(why));
        }
        let direct = match &self.half {
            // Something is waiting (deferred messages were sent before this one, so they go
            // first), or only the flusher may write: queue behind it.
            Half::Direct(h) if !q.flushing && q.frames.is_empty() && q.deferred.is_empty() => h,
            _ => {
                seal_deferred(&mut q);
                q.frames.push_back(frame.parts);
                if !q.flushing {
                    q.flushing = true;
                    drop(q);
                    self.wake.notify_one();
                }
                return Ok(());
            }
        };
        // The lock stays held while writing, so no other sender can slip in between.
        let mut parts: VecDeque<Bytes> = frame.parts.into();
        while let Some(part) = parts.front_mut() {
            match direct.try_write(part) {
                Ok(n) if n == part.len() => {
                    parts.pop_front();
                }
                Ok(n) => {
                    let _ = part.split_to(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = e.to_string();
                    q.closed = Some(why.clone());
                    return Err(self.closed_error(&why));
                }
            }
        }
        if !parts.is_empty() {
            q.frames.push_back(parts.into());
            q.flushing = true;
            drop(q);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues a message to go out with others in one frame, soon (releases of dropped
    /// futures: many at once must not cost a write each).
    pub(crate) fn defer(&self, msg: ToScheduler) {
        let mut q = self.lock();
        if q.closed.is_some() {
            return;
        }
        // Releases in a row become one message.
        match (q.deferred.last_mut(), msg) {
            (Some(ToScheduler::Release { keys }), ToScheduler::Release { keys: more }) => {
                keys.extend(more)
            }
            (_, msg) => q.deferred.push(msg),
        }
        if !q.flushing {
            q.flushing = true;
            drop(q);
            self.wake.notify_one();
        }
    }

    /// Marks the connection closed (the reader saw it end).
    pub(crate) fn close(&self, why: &str) {
        self.lock().closed.get_or_insert_with(|| why.to_string());
    }

    /// The flusher: writes queued frames in order whenever there are any. Runs on the
    /// client's I/O thread until the connection fails or the runtime stops.
    pub(crate) async fn flush_loop(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                let next = {
                    let mut q = self.lock();
                    // Deferred messages came after every frame waiting (a frame sent after
                    // them seals them first), so they go last.
                    seal_deferred(&mut q);
                    match q.frames.pop_front() {
                        Some(parts) => parts,
                        None => {
                            q.flushing = false;
                            break;
                        }
                    }
                };
                if let Err(e) = self.write_parts(next).await {
                    tracing::debug!("writing to {}: {e}", self.peer);
                    let mut q = self.lock();
                    q.closed.get_or_insert_with(|| e.to_string());
                    q.frames.clear();
                    q.deferred.clear();
                    q.flushing = false;
                    return;
                }
            }
        }
    }

    async fn write_parts(&self, parts: Vec<Bytes>) -> std::io::Result<()> {
        let half = match &self.half {
            Half::Direct(h) => h,
            Half::Flushed(h) => {
                let mut h = h.lock().await;
                for part in parts {
                    h.write_all(&part).await?;
                }
                return h.flush().await;
            }
        };
        for mut part in parts {
            while !part.is_empty() {
                half.writable().await?;
                match half.try_write(&part) {
                    Ok(n) => {
                        let _ = part.split_to(n);
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rask_graph::Key;

    use super::*;
    use crate::protocol::WireValue;

    fn release(k: &str) -> ToScheduler {
        ToScheduler::Release {
            keys: vec![Key::named(k)],
        }
    }

    /// Direct writes, partial writes of a frame larger than the socket buffer, and deferred
    /// releases all reach the other side whole and in the order they were sent.
    #[test]
    fn messages_arrive_whole_and_in_order() {
        arrive_whole_and_in_order(false);
    }

    /// The same over TLS, where every frame goes through the flusher.
    #[test]
    fn messages_arrive_whole_and_in_order_over_tls() {
        arrive_whole_and_in_order(true);
    }

    fn arrive_whole_and_in_order(tls: bool) {
        use crate::comm::{Conn, accept_stream, split};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ctx = tls.then(|| {
            crate::tls::TlsContext::new(crate::tls::Credentials::generate().unwrap()).unwrap()
        });
        let (outbox, mut reader) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let (client, server) = match &ctx {
                None => (Conn::Plain(client), Conn::Plain(server)),
                Some(ctx) => {
                    let name = crate::tls::TlsContext::server_name();
                    let (c, s) = tokio::join!(
                        ctx.connector.connect(name, client),
                        accept_stream(server, Some(ctx))
                    );
                    let c = tokio_rustls::TlsStream::Client(c.unwrap());
                    (Conn::Tls(Box::new(c)), s.unwrap().expect("a TLS stream"))
                }
            };
            let (_, w) = split(client, u64::MAX);
            let (half, peer) = w.into_parts();
            let (r, _) = split(server, u64::MAX);
            (Outbox::new(half, peer), r)
        });
        rt.spawn(outbox.clone().flush_loop());
        let big = vec![7u8; 16 << 20];
        let sent = [
            ToScheduler::Info,
            ToScheduler::Scatter {
                values: vec![(Key::named("big"), WireValue::new("bytes", big.clone()))],
            },
            ToScheduler::Info,
        ];
        outbox.send(sent[0].clone()).unwrap();
        outbox.defer(release("a"));
        outbox.defer(release("b"));
        outbox.send(sent[1].clone()).unwrap();
        outbox.defer(release("c"));
        outbox.send(sent[2].clone()).unwrap();
        let got: Vec<ToScheduler> = rt.block_on(async {
            let mut got = Vec::new();
            while got
                .iter()
                .filter(|m| matches!(m, ToScheduler::Info))
                .count()
                < 2
            {
                got.extend(reader.recv_some::<ToScheduler>().await.unwrap());
            }
            got
        });
        // Whether `a` and `b` share one message depends on whether the flusher ran between
        // the two calls; the order of everything does not.
        let mut merged: Vec<ToScheduler> = Vec::new();
        for m in got {
            match (merged.last_mut(), m) {
                (Some(ToScheduler::Release { keys }), ToScheduler::Release { keys: more }) => {
                    keys.extend(more)
                }
                (_, m) => merged.push(m),
            }
        }
        let expected = vec![
            ToScheduler::Info,
            ToScheduler::Release {
                keys: vec![Key::named("a"), Key::named("b")],
            },
            sent[1].clone(),
            release("c"),
            ToScheduler::Info,
        ];
        assert_eq!(merged, expected);
    }
}
