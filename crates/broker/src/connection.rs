//! One client connection: frames in, replies out, in request order.
//!
//! ```text
//!  socket ─► reader: RequestBuffer + FrameDecoder ─► router::dispatch ─► Reply ─┐ (bounded queue
//!              │ grows past BASE_BUFFER only with     = back-pressure)         │
//!              │ memory from the MemoryPool                                   ▼
//!  socket ◄──────────────── writer: awaits each Reply in order ◄───────────────┘
//! ```
//! The reader handles requests as they arrive (produce appends happen in arrival order), while a
//! reply that must wait (acks=all fsync, long-poll fetch) is a future the writer awaits, so
//! pipelined requests keep flowing and replies still leave in order, as the protocol requires.
//!
//! What a connection may cost is bounded: its read buffer starts at [`BASE_BUFFER`] and grows
//! (in steps, as a large request's bytes arrive, never on the size the peer announces) only with
//! memory lent by the broker's [`MemoryPool`] (`queued.max.request.bytes`); with the pool empty it
//! stops reading. A request must arrive whole within `socket.request.timeout.ms` of its first
//! byte, and a connection with nothing to do is closed after `connections.max.idle.ms`; both
//! closes are logged once at INFO with the peer's address.
//!
//! A Produce or Fetch over its client quota mutes the connection for the throttle time it
//! answers with ([`Mute`]): the reader takes no further request until then.
//!
//! A protocol violation (bad frame size, undecodable request) closes the connection, logged once
//! at debug level since it is the peer's fault; a request for an API or version gregor does not
//! serve is logged at INFO (client id, address, API, version), since it usually means a client
//! newer or older than the broker, which an operator wants to see.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gregor_protocol::frame::FrameDecoder;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::broker::Broker;
use crate::memory_pool::MemoryPool;
use crate::quota::Mute;
use crate::request::{ListenerName, Principal, ProtocolError, Reply};
use crate::response::ReplyWriter;
use crate::router;
use crate::sasl::Intercept;

/// Replies queued per connection before the reader stops reading (Kafka clients pipeline 5).
const MAX_IN_FLIGHT: usize = 64;

/// Bytes every connection may buffer without asking the memory pool: room for the requests most
/// clients send (metadata, fetch, heartbeats, offset commits, small produces), so that a pool
/// filled by stalled peers does not stall them. What connections hold in all is bounded by
/// `max.connections` × `BASE_BUFFER` + `queued.max.request.bytes`.
pub(crate) const BASE_BUFFER: usize = 16 * 1024;

/// A read smaller than this is not worth a syscall: make room first (within the buffer's size).
const MIN_READ: usize = 4096;

/// How long a grown buffer is kept while its connection sends nothing: long enough for a
/// producer's next request to reuse it (no regrowth, no copies on the hot path), short enough
/// that memory an idle connection holds goes back to the pool soon. It goes back at once when
/// other connections are waiting for memory.
const KEEP_GROWN: Duration = Duration::from_millis(500);

/// Longer timeouts are treated as this (about 30 years).
const MAX_TIMEOUT_MS: u64 = 1 << 40;

/// The read buffer of one connection and the pool memory it holds.
struct RequestBuffer {
    /// Received bytes not yet taken off as frames.
    buf: BytesMut,
    /// The allocation this connection pays for: `BASE_BUFFER` plus what the pool lent.
    /// Tracked here, not read from `buf.capacity()`, which moves as frames are split off.
    size: usize,
    /// Where the lent bytes go back (also on drop).
    pool: Arc<MemoryPool>,
}

/// What [`RequestBuffer::make_room`] found.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// There is room to read into.
    Ready,
    /// The buffer is full of one incomplete request: it must grow by this many bytes, lent by
    /// the pool, before anything more is read.
    Grow(usize),
}

impl RequestBuffer {
    fn new(pool: Arc<MemoryPool>) -> Self {
        RequestBuffer {
            buf: BytesMut::with_capacity(BASE_BUFFER),
            size: BASE_BUFFER,
            pool,
        }
    }

    /// Bytes lent by the pool.
    fn lent(&self) -> usize {
        self.size - BASE_BUFFER
    }

    /// Makes room for the next read, reusing the allocation; `frame_len` is the length of the
    /// (incomplete) frame at the front, once its prefix is there.
    fn make_room(&mut self, frame_len: Option<usize>) -> Room {
        let len = self.buf.len();
        let want = self.size.saturating_sub(len).min(MIN_READ);
        if want == 0 {
            // Full, and the frame at the front is longer than the buffer (a complete one would
            // have been taken off): double, at most to the frame's length. The peer has sent
            // `size` bytes of it, so what it makes the broker hold is at most twice what it sent.
            let total = frame_len.unwrap_or(self.size + BASE_BUFFER);
            let target = total.min(self.size.saturating_mul(2)).max(self.size + 1);
            return Room::Grow(target - self.size);
        }
        if self.buf.capacity() - len >= want {
            return Room::Ready;
        }
        // The frames split off the front have been handled and dropped (a reply never keeps a
        // slice of its request), so the allocation is normally ours again: move the unread
        // bytes to its start. Otherwise copy them to a fresh allocation of the same size.
        if !self.buf.try_reclaim(self.size.saturating_sub(len)) {
            let mut fresh = BytesMut::with_capacity(self.size);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        Room::Ready
    }

    /// Grows the buffer by `n` bytes the pool has lent.
    fn grow(&mut self, n: usize) {
        self.size += n;
        let mut fresh = BytesMut::with_capacity(self.size);
        fresh.extend_from_slice(&self.buf);
        self.buf = fresh;
    }

    /// Back to `BASE_BUFFER`, giving the lent memory back; only with no bytes buffered.
    fn shrink(&mut self) {
        if self.lent() == 0 || !self.buf.is_empty() {
            return;
        }
        self.buf = BytesMut::with_capacity(BASE_BUFFER);
        self.pool.release(self.lent());
        self.size = BASE_BUFFER;
    }
}

impl Drop for RequestBuffer {
    fn drop(&mut self) {
        self.pool.release(self.lent());
    }
}

/// What the writer tells the reader's idle check: replies in flight, and when the last one left.
#[derive(Debug)]
struct Activity {
    /// Requests read whose replies are not written yet (a connection waiting for a long
    /// JoinGroup or fetch is not idle).
    in_flight: AtomicUsize,
    /// When the last reply was written, in ms since `since`.
    last_reply_ms: AtomicU64,
    /// The connection's start.
    since: Instant,
}

impl Activity {
    fn reply_done(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_reply_ms.store(ms, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request whose answer the writer reports to the request metrics once written.
#[derive(Debug, Clone, Copy)]
struct Answered {
    /// Its API, or which fetch.
    name: crate::stats::RequestKind,
    version: i16,
    /// When its last byte was read.
    received: std::time::Instant,
}

impl Answered {
    fn done(self) {
        crate::stats::request_done(self.name, self.version, self.received.elapsed());
    }
}

/// Who is on a connection: the listener it came in on, the principal it is known as (a client
/// certificate's subject, else ANONYMOUS) and, on a SASL listener, its SASL exchange, whose
/// user then becomes the principal.
#[derive(Debug, Default)]
pub struct Identity {
    pub listener: ListenerName,
    pub principal: Principal,
    pub sasl: Option<crate::sasl::SaslSession>,
    /// Marked at each request: which connection `max.connections` closes first for an
    /// inter-broker one (`connection_slots`).
    pub last_use: Option<crate::connection_slots::LastUse>,
}

/// A client's byte stream: plain TCP, or TLS over TCP from an SSL listener.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

pub async fn serve(
    broker: Arc<Broker>,
    pool: Arc<MemoryPool>,
    stream: ClientStream,
    peer: SocketAddr,
    identity: Identity,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut rd, mut wr): (Box<dyn AsyncRead + Unpin + Send>, ReplyWriter) = match stream {
        ClientStream::Plain(s) => {
            let _ = s.set_nodelay(true);
            let (rd, wr) = s.into_split();
            (Box::new(rd), ReplyWriter::Plain(wr))
        }
        ClientStream::Tls(s) => {
            let (rd, wr) = tokio::io::split(*s);
            (Box::new(rd), ReplyWriter::Tls(wr))
        }
    };
    let (tx, mut rx) = mpsc::channel::<(Reply, Option<Answered>)>(MAX_IN_FLIGHT);
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last_reply_ms: AtomicU64::new(0),
        since: Instant::now(),
    });

    let writer_activity = Arc::clone(&activity);
    let writer = tokio::spawn(async move {
        while let Some((reply, answered)) = rx.recv().await {
            let written = match reply {
                Reply::None => true,
                Reply::Ready(b) => wr.write_all(&b).await.is_ok(),
                Reply::Pending(fut) => match fut.await {
                    Ok(b) => wr.write_all(&b).await.is_ok(),
                    Err(e) => {
                        debug!(%peer, error = %e, "closing connection");
                        false
                    }
                },
                Reply::PendingChunks(fut) => match fut.await {
                    Ok(chunks) => match wr.write_chunks(&chunks).await {
                        Ok(()) => true,
                        Err(e) => {
                            debug!(%peer, error = %e, "closing connection");
                            false
                        }
                    },
                    Err(e) => {
                        debug!(%peer, error = %e, "closing connection");
                        false
                    }
                },
            };
            if !written {
                return;
            }
            writer_activity.reply_done();
            if let Some(a) = answered {
                a.done();
            }
        }
        let _ = wr.shutdown().await;
    });

    let net = &broker.config.net;
    let failed_authentication_delay =
        Duration::from_millis(net.failed_authentication_delay_ms.min(MAX_TIMEOUT_MS));
    // Capped so that `Instant + Duration` cannot overflow, whatever the config says.
    let limits = Limits {
        idle: Duration::from_millis(net.connections_max_idle_ms.min(MAX_TIMEOUT_MS)),
        request: Duration::from_millis(net.socket_request_timeout_ms.min(MAX_TIMEOUT_MS)),
    };
    let decoder = FrameDecoder {
        max_frame: broker.config.socket_request_max_bytes,
    };
    let mut rb = RequestBuffer::new(pool);
    // Timers: the first byte of the request being read (None between requests) and the last
    // read. The sleep is armed at the earliest deadline and only re-armed when one comes
    // earlier than it, so a busy connection does not touch the timer wheel on every read.
    let mut partial_since: Option<Instant> = None;
    let mut last_read = Instant::now();
    let mut armed = last_read + limits.idle.min(KEEP_GROWN);
    let timer = tokio::time::sleep_until(armed);
    tokio::pin!(timer);

    let mute = Mute::default();
    let connection = crate::request::ConnectionId::next();
    let Identity {
        listener,
        mut principal,
        mut sasl,
        last_use,
    } = identity;

    'read: loop {
        loop {
            // A throttled Produce or Fetch muted the connection (client quotas, KIP-219): its
            // response went out at once; the next request waits for the throttle time.
            if let Some(until) = mute.muted_until() {
                tokio::select! {
                    _ = shutdown.changed() => break 'read,
                    _ = tokio::time::sleep_until(until) => {}
                }
                // Time muted is not the peer's: the request and idle timeouts start again.
                last_read = Instant::now();
                partial_since = partial_since.map(|_| last_read);
                continue;
            }
            match decoder.decode(&mut rb.buf) {
                Ok(Some(frame)) => {
                    let frame = frame.freeze();
                    if let Some(last_use) = &last_use {
                        last_use.mark();
                    }
                    // A SASL listener answers the exchange itself until the client is
                    // authenticated, and lets nothing but ApiVersions through before that.
                    if let Some(session) = sasl.as_mut() {
                        let reply = match session.intercept(&frame, std::time::Instant::now()) {
                            Ok(Intercept::Pass) => None,
                            Ok(Intercept::Reply(bytes)) => Some(bytes),
                            Ok(Intercept::Authenticated(bytes, login)) => {
                                let (user, lifetime_ms) = (&login.user, login.session_lifetime_ms);
                                let what = if login.reauthentication {
                                    crate::stats::reauthentication(listener.as_str(), true);
                                    "SASL re-authenticated"
                                } else {
                                    "SASL authenticated"
                                };
                                debug!(%peer, %user, lifetime_ms, "{what}");
                                principal = if session.token_authenticated() {
                                    Principal::token_owner(&login.user)
                                } else {
                                    Principal::user(&login.user)
                                };
                                Some(bytes)
                            }
                            Ok(Intercept::ReplyAndClose(bytes, why)) => {
                                // Kafka logs a failed authentication at INFO with the address.
                                let reauthentication = session.user().is_some();
                                if reauthentication {
                                    crate::stats::reauthentication(listener.as_str(), false);
                                }
                                log_failed_authentication(peer, &why, reauthentication);
                                // KIP-306: the failure's answer, and the close, wait a moment.
                                tokio::time::sleep(failed_authentication_delay).await;
                                activity.in_flight.fetch_add(1, Ordering::Relaxed);
                                let _ = tx.send((Reply::Ready(bytes), None)).await;
                                break 'read;
                            }
                            Ok(Intercept::Close(why)) if session.user().is_some() => {
                                // A re-authentication that broke off (a bare token refused, a
                                // request in its middle, another mechanism).
                                crate::stats::reauthentication(listener.as_str(), false);
                                log_failed_authentication(peer, &why, true);
                                break 'read;
                            }
                            Ok(Intercept::Close(why)) => {
                                info!(%peer, reason = %why, "closing connection");
                                break 'read;
                            }
                            Ok(Intercept::Expired(why)) => {
                                // KIP-368: the client let its session lapse. As Kafka's
                                // SocketServer, close at once, dropping replies in flight.
                                crate::stats::expired_connection_killed(listener.as_str());
                                info!(%peer, reason = %why, "closing connection: session expired");
                                writer.abort();
                                break 'read;
                            }
                            Err(e) => {
                                log_refused(peer, &e);
                                break 'read;
                            }
                        };
                        if let Some(bytes) = reply {
                            activity.in_flight.fetch_add(1, Ordering::Relaxed);
                            if tx.send((Reply::Ready(bytes), None)).await.is_err() {
                                break 'read;
                            }
                            partial_since = None;
                            continue;
                        }
                    }
                    let received = std::time::Instant::now();
                    // A frame too short for a header is refused by the router.
                    let version = match frame.get(2..4) {
                        Some(&[hi, lo]) => i16::from_be_bytes([hi, lo]),
                        _ => -1,
                    };
                    match router::dispatch_muted(
                        &broker,
                        peer,
                        frame,
                        mute.clone(),
                        listener.clone(),
                        principal.clone(),
                        connection,
                    ) {
                        Ok((reply, name)) => {
                            activity.in_flight.fetch_add(1, Ordering::Relaxed);
                            let answered = Answered {
                                name,
                                version,
                                received,
                            };
                            if tx.send((reply, Some(answered))).await.is_err() {
                                break 'read;
                            }
                        }
                        Err(e) => {
                            log_refused(peer, &e);
                            break 'read;
                        }
                    }
                    partial_since = None;
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "bad frame; closing connection");
                    break 'read;
                }
            }
        }
        if rb.buf.is_empty() {
            partial_since = None;
            if rb.pool.has_waiters() {
                // Other connections wait for memory this one does not use right now.
                rb.shrink();
            }
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        let deadline = limits.deadline(partial_since, last_read, rb.lent() > 0);
        if deadline < armed {
            armed = deadline;
            timer.as_mut().reset(armed);
        }

        // `decode` has checked the prefix already.
        let frame_len = decoder.frame_len(&rb.buf).ok().flatten();
        if let Room::Grow(n) = rb.make_room(frame_len) {
            // Stop reading until the pool lends the next step (Kafka mutes the channel).
            let pool = Arc::clone(&rb.pool);
            tokio::select! {
                _ = shutdown.changed() => break 'read,
                _ = pool.acquire_or_wait(n) => rb.grow(n),
                _ = &mut timer => {
                    // Only the request timeout can be due: a request is partly read.
                    if limits.check(&mut rb, partial_since, last_read, &activity, peer) {
                        break 'read;
                    }
                    armed = limits.rearm(partial_since, last_read, rb.lent() > 0);
                    timer.as_mut().reset(armed);
                }
            }
            continue;
        }

        // A large request is read up to its last byte and no further: once it is taken off, the
        // buffer is empty and the next one starts at the front of the same allocation, with no
        // partial request to move (produce frames of a megabyte would otherwise cost a memmove
        // each). Small requests are read as they come, several per read.
        let limit = match frame_len {
            Some(len) if len > BASE_BUFFER => (len - rb.buf.len()) as u64,
            _ => u64::MAX,
        };
        let mut reader = (&mut rd).take(limit);
        let n = tokio::select! {
            _ = shutdown.changed() => break,
            n = reader.read_buf(&mut rb.buf) => n,
            _ = &mut timer => {
                if limits.check(&mut rb, partial_since, last_read, &activity, peer) {
                    break;
                }
                armed = limits.rearm(partial_since, last_read, rb.lent() > 0);
                timer.as_mut().reset(armed);
                continue;
            }
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => last_read = Instant::now(),
        }
    }
    drop(rb);
    drop(tx);
    // Let replies already accepted go out (e.g. acks=all produce waiting for its fsync).
    let _ = writer.await;
    // State bound to the connection ends with it (after the replies, so that records a last
    // ShareFetch acquired for the member are released too).
    broker
        .share_partitions
        .connection_closed(&broker, connection)
        .await;
}

/// The connection's time limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// `connections.max.idle.ms`.
    idle: Duration,
    /// `socket.request.timeout.ms`.
    request: Duration,
}

impl Limits {
    /// The earliest moment something may be due: the request timeout while a request is partly
    /// read; otherwise the idle timeout, or giving back a grown buffer.
    fn deadline(&self, partial_since: Option<Instant>, last_read: Instant, grown: bool) -> Instant {
        match partial_since {
            Some(t) => t + self.request,
            None if grown => last_read + self.idle.min(KEEP_GROWN),
            None => last_read + self.idle,
        }
    }

    /// The next deadline after a check that closed nothing; never in the past.
    fn rearm(&self, partial_since: Option<Instant>, last_read: Instant, grown: bool) -> Instant {
        let now = Instant::now();
        let d = self.deadline(partial_since, last_read, grown);
        if d > now {
            d
        } else {
            // Not idle because replies are in flight: look again later.
            now + self.idle.min(KEEP_GROWN.max(Duration::from_millis(100)))
        }
    }

    /// Runs when the timer fires: closes a connection whose request is overdue or which has been
    /// idle too long (logged once, at INFO; returns true), gives back a grown buffer nobody uses.
    fn check(
        &self,
        rb: &mut RequestBuffer,
        partial_since: Option<Instant>,
        last_read: Instant,
        activity: &Activity,
        peer: SocketAddr,
    ) -> bool {
        let now = Instant::now();
        if let Some(t) = partial_since {
            if now >= t + self.request {
                info!(
                    %peer,
                    received = rb.buf.len(),
                    expected = %FrameDecoder { max_frame: usize::MAX }
                        .frame_len(&rb.buf)
                        .ok()
                        .flatten()
                        .map_or_else(|| "?".to_string(), |n| n.to_string()),
                    timeout_ms = self.request.as_millis() as u64,
                    "closing connection: request not received whole within socket.request.timeout.ms"
                );
                return true;
            }
            return false;
        }
        if now >= last_read + KEEP_GROWN {
            rb.shrink();
        }
        if activity.in_flight.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let last_reply =
            activity.since + Duration::from_millis(activity.last_reply_ms.load(Ordering::Relaxed));
        let last = last_read.max(last_reply);
        if now >= last + self.idle {
            info!(
                %peer,
                idle_ms = self.idle.as_millis() as u64,
                "closing idle connection (connections.max.idle.ms)"
            );
            return true;
        }
        false
    }
}

/// Kafka logs a failed authentication at INFO with the address; gregor logs the same
/// refusal (address and reason) once a minute, with the count of those it did not log
/// (`refusal_log`): a follower without its SCRAM credential retries several times a second.
fn log_failed_authentication(peer: SocketAddr, why: &str, reauthentication: bool) {
    let closing = "failed authentication; closing";
    match crate::refusal_log::admit(peer.ip(), why) {
        crate::refusal_log::Verdict::Quiet => {
            debug!(%peer, reason = %why, reauthentication, "{closing}")
        }
        crate::refusal_log::Verdict::Log { repeated: 0 } => {
            info!(%peer, reason = %why, reauthentication, "{closing}")
        }
        crate::refusal_log::Verdict::Log { repeated } => info!(
            %peer,
            reason = %why,
            reauthentication,
            repeats_not_logged = repeated,
            "{closing}"
        ),
    }
}

/// Logs why a request closes the connection: at INFO for an API or version gregor does not
/// serve (an operator wants to know which client is too new or too old), at debug otherwise.
fn log_refused(peer: SocketAddr, e: &ProtocolError) {
    match e {
        ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id,
        } => info!(
            %peer,
            client_id = client_id.as_deref().unwrap_or(""),
            api = ?api,
            version,
            "closing connection: unsupported API version"
        ),
        ProtocolError::UnknownApiKey { key, client_id } => info!(
            %peer,
            client_id = client_id.as_deref().unwrap_or(""),
            api_key = key,
            "closing connection: unknown API key"
        ),
        _ => debug!(%peer, error = %e, "protocol violation; closing connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(body_len: usize) -> Vec<u8> {
        let mut f = (body_len as i32).to_be_bytes().to_vec();
        f.resize(4 + body_len, 7);
        f
    }

    /// Feeds `bytes` as reads of at most `chunk`, honouring `make_room` and lending from the
    /// pool; returns the frames decoded, or None when the pool refused a step.
    fn feed(rb: &mut RequestBuffer, bytes: &[u8], chunk: usize) -> Option<Vec<usize>> {
        let d = FrameDecoder {
            max_frame: 200 << 20,
        };
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            while let Some(f) = d.decode(&mut rb.buf).expect("valid frames") {
                frames.push(f.len());
            }
            if at == bytes.len() {
                return Some(frames);
            }
            let len = d.frame_len(&rb.buf).expect("valid");
            if let Room::Grow(n) = rb.make_room(len) {
                if !rb.pool.try_acquire(n) {
                    return None;
                }
                rb.grow(n);
                continue;
            }
            let spare = rb.buf.capacity() - rb.buf.len();
            let n = spare.min(chunk).min(bytes.len() - at);
            assert!(n > 0, "make_room left no room");
            rb.buf.extend_from_slice(&bytes[at..at + n]);
            at += n;
            assert!(
                rb.buf.capacity() <= rb.size,
                "buffer beyond what is paid for"
            );
        }
    }

    #[test]
    fn small_requests_never_touch_the_pool() {
        let pool = Arc::new(MemoryPool::new(Some(0)));
        let mut rb = RequestBuffer::new(Arc::clone(&pool));
        let mut bytes = Vec::new();
        for n in [10, 100, 5000, BASE_BUFFER - 4, 3] {
            bytes.extend(frame(n));
        }
        let got = feed(&mut rb, &bytes, 1500).expect("no pool needed");
        assert_eq!(got, vec![10, 100, 5000, BASE_BUFFER - 4, 3]);
        assert_eq!(rb.size, BASE_BUFFER);
    }

    #[test]
    fn a_large_request_grows_the_buffer_in_steps_as_bytes_arrive() {
        let pool = Arc::new(MemoryPool::new(Some(4 << 20)));
        let mut rb = RequestBuffer::new(Arc::clone(&pool));
        // The announcement alone costs nothing.
        let big = frame(1 << 20);
        assert_eq!(feed(&mut rb, &big[..8], 4096), Some(vec![]));
        assert_eq!(rb.size, BASE_BUFFER);
        assert_eq!(pool.available(), 4 << 20);
        // Half of it: at most twice what was sent is held.
        let mut rb2 = RequestBuffer::new(Arc::clone(&pool));
        assert_eq!(feed(&mut rb2, &big[..300_000], 65536), Some(vec![]));
        assert!(rb2.size <= 2 * 300_000, "size {}", rb2.size);
        drop(rb2);
        assert_eq!(pool.available(), 4 << 20, "dropping gives the memory back");
        // Whole, then more of the same size: the buffer is reused, the pool untouched.
        let mut bytes = big[8..].to_vec();
        bytes.extend(frame(1 << 20));
        bytes.extend(frame(1 << 20));
        assert_eq!(
            feed(&mut rb, &bytes, 65536),
            Some(vec![1 << 20, 1 << 20, 1 << 20])
        );
        assert_eq!(rb.size, 4 + (1 << 20));
        assert_eq!(pool.available(), (4 << 20) - rb.lent());
        rb.shrink();
        assert_eq!(rb.size, BASE_BUFFER);
        assert_eq!(pool.available(), 4 << 20);
    }

    #[test]
    fn an_empty_pool_stops_growth() {
        let pool = Arc::new(MemoryPool::new(Some(100 << 10)));
        let mut rb = RequestBuffer::new(Arc::clone(&pool));
        assert_eq!(feed(&mut rb, &frame(1 << 20), 65536), None);
        assert!(rb.lent() <= 100 << 10);
        assert!(rb.buf.len() <= rb.size);
    }

    /// A broker over a temporary directory with `net` settings, and a connection to it served
    /// by [`serve`]: returns the client's end and the directory.
    async fn served(net: crate::config::NetConfig) -> (TcpStream, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            net,
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        let broker = crate::broker::test_broker(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let (tx, rx) = watch::channel(false);
        let pool = Arc::new(MemoryPool::new(Some(1 << 20)));
        tokio::spawn(async move {
            serve(
                broker,
                pool,
                ClientStream::Plain(stream),
                peer,
                Identity::default(),
                rx,
            )
            .await;
            drop(tx);
        });
        (client, dir)
    }

    /// Reads until EOF; how long it took. (Real time, short timeouts: the workspace's tokio has
    /// no `test-util` for a paused clock.)
    async fn time_to_close(client: &mut TcpStream) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return t.elapsed(),
                Ok(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn an_idle_connection_closes_after_connections_max_idle_ms() {
        let (mut client, _dir) = served(crate::config::NetConfig {
            connections_max_idle_ms: 300,
            ..Default::default()
        })
        .await;
        let waited = time_to_close(&mut client).await;
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_partial_request_closes_after_socket_request_timeout_ms() {
        let (mut client, _dir) = served(crate::config::NetConfig {
            socket_request_timeout_ms: 300,
            ..Default::default()
        })
        .await;
        // 8 bytes of a 100-byte request, then nothing: closed soon after the first byte, long
        // before the 10-minute idle timeout.
        client
            .write_all(&[0, 0, 0, 100, 0, 18, 0, 3])
            .await
            .expect("write");
        let waited = time_to_close(&mut client).await;
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[test]
    fn deadlines_follow_the_state() {
        let l = Limits {
            idle: Duration::from_secs(600),
            request: Duration::from_secs(30),
        };
        let t = Instant::now();
        assert_eq!(l.deadline(None, t, false), t + Duration::from_secs(600));
        assert_eq!(l.deadline(None, t, true), t + KEEP_GROWN);
        assert_eq!(
            l.deadline(Some(t), t + Duration::from_secs(1), false),
            t + Duration::from_secs(30)
        );
    }
}
