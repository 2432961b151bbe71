//! [`LinkProxy`]: one network link between two cluster nodes, as a TCP proxy on 127.0.0.1 that
//! a test can cut, delay or reset while traffic flows.
//!
//! ```text
//!   node A ──► LinkProxy (127.0.0.1:P, mode) ──► node B's port
//!                 Pass      bytes copied as they come
//!                 Delay(d)  each chunk forwarded d after it arrived, in order
//!                 Blackhole nothing forwarded either way; bytes wait in the kernel's buffers
//!                           (a partition: the sender's requests time out, the connection
//!                           stays open, and what waited flows again when the link heals)
//!                 Reset     every connection closed, new ones closed at once (a node gone)
//! ```
//!
//! A node reaches each peer through its own proxy (the harness gives each node its own view of
//! the peers' addresses), so one direction of one link can fail alone. Blocking sockets, a
//! reader and a writer thread per direction; everything stops when the proxy is dropped.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked threads look at the mode and the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// What the link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward everything at once.
    Pass,
    /// Forward each chunk this long after it arrived (order kept).
    Delay(Duration),
    /// Forward nothing, close nothing: a network partition.
    Blackhole,
    /// Close every connection, present and future: the peer looks down.
    Reset,
}

const PASS: u8 = 0;
const DELAY: u8 = 1;
const BLACKHOLE: u8 = 2;
const RESET: u8 = 3;

/// What the proxy's threads share.
struct Shared {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    /// Set on drop: every thread ends.
    stop: AtomicBool,
    /// Bumped on each switch to Reset; connections opened in an earlier generation close.
    generation: AtomicU64,
    /// Bytes forwarded (both directions), for tests of the proxy itself.
    forwarded: AtomicU64,
    /// Open sockets, shut down on reset and on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn mode(&self) -> LinkMode {
        match self.mode.load(Ordering::Acquire) {
            DELAY => LinkMode::Delay(Duration::from_millis(self.delay_ms.load(Ordering::Acquire))),
            BLACKHOLE => LinkMode::Blackhole,
            RESET => LinkMode::Reset,
            _ => LinkMode::Pass,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn close_all(&self) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A fault-injecting TCP proxy for one direction of one link (connections are made from the
/// `from` side; bytes flow both ways on them).
pub struct LinkProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl LinkProxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards every connection to `upstream`
    /// (which need not be listening yet: a refused upstream connection closes the client's).
    pub fn start(upstream: SocketAddr) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the link proxy");
        let addr = listener.local_addr().expect("link proxy address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(PASS),
            delay_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            sockets: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("link-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, s))
            .expect("spawn the link proxy");
        LinkProxy {
            addr,
            upstream,
            shared,
            accept: Some(accept),
        }
    }

    /// Where the `from` node connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> LinkMode {
        self.shared.mode()
    }

    /// Changes what the link does; takes effect on traffic already in flight.
    pub fn set(&self, mode: LinkMode) {
        let (code, delay) = match mode {
            LinkMode::Pass => (PASS, 0),
            LinkMode::Delay(d) => (DELAY, d.as_millis() as u64),
            LinkMode::Blackhole => (BLACKHOLE, 0),
            LinkMode::Reset => (RESET, 0),
        };
        self.shared.delay_ms.store(delay, Ordering::Release);
        self.shared.mode.store(code, Ordering::Release);
        if code == RESET {
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            self.shared.close_all();
        }
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Acquire)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.close_all();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.stopped() {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                thread::sleep(POLL);
                continue;
            }
        };
        if shared.mode() == LinkMode::Reset {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let server = match TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) {
            Ok(s) => s,
            Err(_) => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut sockets = shared.sockets.lock().unwrap_or_else(|p| p.into_inner());
            for s in [&client, &server] {
                if let Ok(c) = s.try_clone() {
                    sockets.push(c);
                }
            }
        }
        let generation = shared.generation.load(Ordering::Acquire);
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            pipe(from, to, Arc::clone(&shared), generation);
        }
    }
}

/// Chunks read and not yet written, with their arrival time, and the writer's wake-up.
type ChunkQueue = (Mutex<VecDeque<(Instant, Vec<u8>)>>, Condvar);

/// One direction: a reader thread queues chunks with their arrival time, a writer thread sends
/// each when the mode lets it.
fn pipe(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>, generation: u64) {
    let queue: Arc<ChunkQueue> = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
    let done = Arc::new(AtomicBool::new(false));
    let alive = {
        let shared = Arc::clone(&shared);
        move || !shared.stopped() && shared.generation.load(Ordering::Acquire) == generation
    };
    {
        let queue = Arc::clone(&queue);
        let done = Arc::clone(&done);
        let shared = Arc::clone(&shared);
        let alive = alive.clone();
        let _ = from.set_read_timeout(Some(POLL));
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while alive() {
                // A partition: leave the bytes in the kernel, so the sender's buffer fills as
                // it would with packets dropped.
                if shared.mode() == LinkMode::Blackhole {
                    thread::sleep(POLL);
                    continue;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let (q, cv) = &*queue;
                        q.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_back((Instant::now(), buf[..n].to_vec()));
                        cv.notify_one();
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::Release);
            queue.1.notify_one();
        });
    }
    thread::spawn(move || {
        let (q, cv) = &*queue;
        loop {
            if !alive() {
                break;
            }
            let next = {
                let mut guard = q.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_empty() {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    let (g, _) = cv
                        .wait_timeout(guard, POLL)
                        .unwrap_or_else(|p| p.into_inner());
                    guard = g;
                }
                match shared.mode() {
                    LinkMode::Blackhole => None,
                    LinkMode::Delay(d) => match guard.front() {
                        Some((at, _)) if at.elapsed() >= d => guard.pop_front(),
                        _ => None,
                    },
                    _ => guard.pop_front(),
                }
            };
            match next {
                Some((_, bytes)) => {
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                    shared
                        .forwarded
                        .fetch_add(bytes.len() as u64, Ordering::AcqRel);
                }
                None => {
                    if !matches!(shared.mode(), LinkMode::Pass) {
                        thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1 that stops with the test.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(conn: &mut TcpStream, msg: &[u8], timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        conn.set_read_timeout(Some(timeout)).expect("timeout");
        conn.write_all(msg).ok()?;
        let mut got = vec![0u8; msg.len()];
        conn.read_exact(&mut got).ok()?;
        assert_eq!(got, msg);
        Some(start.elapsed())
    }

    #[test]
    fn pass_delay_blackhole_and_reset() {
        let proxy = LinkProxy::start(echo_server());
        let mut conn = TcpStream::connect(proxy.addr()).expect("connect");
        let fast = roundtrip(&mut conn, b"hello", Duration::from_secs(2)).expect("pass");
        assert!(fast < Duration::from_millis(500), "{fast:?}");

        proxy.set(LinkMode::Delay(Duration::from_millis(150)));
        let slow = roundtrip(&mut conn, b"slow", Duration::from_secs(3)).expect("delay");
        // Both directions are delayed.
        assert!(slow >= Duration::from_millis(300), "{slow:?}");

        proxy.set(LinkMode::Blackhole);
        assert!(
            roundtrip(&mut conn, b"lost?", Duration::from_millis(300)).is_none(),
            "a cut link forwards nothing"
        );
        proxy.set(LinkMode::Pass);
        // What waited during the cut arrives once the link heals, in order.
        let mut got = [0u8; 5];
        conn.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        conn.read_exact(&mut got).expect("healed");
        assert_eq!(&got, b"lost?");

        proxy.set(LinkMode::Reset);
        let mut buf = [0u8; 1];
        conn.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        assert!(
            matches!(conn.read(&mut buf), Ok(0) | Err(_)),
            "reset closes open connections"
        );
        let mut again = TcpStream::connect(proxy.addr()).expect("connect is accepted");
        assert!(roundtrip(&mut again, b"x", Duration::from_millis(500)).is_none());
        proxy.set(LinkMode::Pass);
        let mut fresh = TcpStream::connect(proxy.addr()).expect("connect");
        assert!(roundtrip(&mut fresh, b"back", Duration::from_secs(2)).is_some());
        assert!(proxy.forwarded() > 0);
    }
}
