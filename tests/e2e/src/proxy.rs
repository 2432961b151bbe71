//! [`RecordingProxy`]: a TCP proxy on 127.0.0.1 between real clients and a broker that records
//! every request frame the clients send, so a test can replay or mutate a realistic session.
//!
//! ```text
//!   client ──► proxy (127.0.0.1:P) ──► broker
//!                 │  client→broker bytes are split into size-prefixed frames and recorded
//!                 └─ broker→client bytes are copied as they are
//! ```
//!
//! Clients follow the broker's advertised address after their bootstrap, so the broker must
//! advertise the proxy: bind the proxy first, start the broker with
//! `advertised.listeners=PLAINTEXT://<proxy addr>`, then [`RecordingProxy::set_upstream`].
//! One thread pair per connection, blocking sockets; everything stops when the proxy is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Recording stops after this many bytes of frames, so a long session cannot exhaust memory.
const MAX_RECORDED_BYTES: usize = 16 << 20;
/// A frame claiming more than this is not recorded (and the rest of that stream is not either).
const MAX_FRAME: usize = 8 << 20;

/// What the proxy threads share.
#[derive(Default)]
struct Shared {
    /// Where connections are forwarded; accepted connections wait for it.
    upstream: Mutex<Option<SocketAddr>>,
    /// Request frames (without size prefix), in the order their last byte arrived, and their
    /// total size.
    frames: Mutex<(Vec<Vec<u8>>, usize)>,
    /// Set on drop: the accept loop and the copy threads stop.
    stop: AtomicBool,
}

/// A recording TCP proxy. Dropping it stops accepting and closes every proxied connection.
pub struct RecordingProxy {
    /// The address clients connect to.
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop; joined on drop.
    accept: Option<JoinHandle<()>>,
    /// Open sockets (both sides of every connection), shut down on drop to end the copy threads.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl RecordingProxy {
    /// Listens on an ephemeral 127.0.0.1 port. Connections are accepted right away and forwarded
    /// once an upstream is set.
    pub fn bind() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared::default());
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let shared = Arc::clone(&shared);
            let sockets = Arc::clone(&sockets);
            thread::spawn(move || accept_loop(listener, shared, sockets))
        };
        RecordingProxy {
            addr,
            shared,
            accept: Some(accept),
            sockets,
        }
    }

    /// The address clients (and the broker's advertised listener) use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `HOST:PORT` of the proxy, as a bootstrap-servers string.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Forwards connections to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = Some(upstream);
    }

    /// The request frames recorded so far (size prefix removed).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.frames).0.clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in lock(&self.sockets).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, sockets: Arc<Mutex<Vec<TcpStream>>>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let shared = Arc::clone(&shared);
                let sockets = Arc::clone(&sockets);
                thread::spawn(move || proxy_connection(client, shared, sockets));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Connects `client` to the upstream and copies both ways until either side closes.
fn proxy_connection(client: TcpStream, shared: Arc<Shared>, sockets: Arc<Mutex<Vec<TcpStream>>>) {
    let _ = client.set_nonblocking(false);
    let upstream = loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Some(a) = *lock(&shared.upstream) {
            break a;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let Ok(server) = TcpStream::connect(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let clones = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    );
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
        return;
    };
    lock(&sockets).extend([c3, s3]);
    let back = thread::spawn(move || copy(s2, c2, None));
    copy(client, server, Some(&shared));
    let _ = back.join();
}

/// Copies `from` → `to`; with `record`, splits the bytes into frames and records them.
fn copy(mut from: TcpStream, mut to: TcpStream, record: Option<&Shared>) {
    let mut buf = [0u8; 64 << 10];
    let mut pending: Vec<u8> = Vec::new();
    let mut recording = record.is_some();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let (Some(shared), true) = (record, recording) {
            pending.extend_from_slice(&buf[..n]);
            recording = take_frames(&mut pending, shared);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Moves every whole frame at the front of `pending` into the recording. Returns false once
/// recording must stop (a frame too large, or the byte budget spent).
fn take_frames(pending: &mut Vec<u8>, shared: &Shared) -> bool {
    loop {
        if pending.len() < 4 {
            return true;
        }
        let size = i32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]);
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        if size > MAX_FRAME {
            return false;
        }
        if pending.len() < 4 + size {
            return true;
        }
        let frame = pending[4..4 + size].to_vec();
        pending.drain(..4 + size);
        let mut recorded = lock(&shared.frames);
        if recorded.1 + frame.len() > MAX_RECORDED_BYTES {
            return false;
        }
        recorded.1 += frame.len();
        recorded.0.push(frame);
    }
}
