//! The socket sizes Kafka's configs set, on a server's listeners (`socket.send.buffer.bytes`,
//! `socket.receive.buffer.bytes`, `socket.listen.backlog.size`) and on a client's connections
//! (`send.buffer.bytes`, `receive.buffer.bytes`; a follower's `replica.socket.receive.buffer.bytes`).
//! A buffer size of -1 ([`OS_DEFAULT`]) leaves the operating system's (which tunes it as the
//! connection goes); Linux doubles a size it is given, for its own bookkeeping.
//!
//! Sizes are set before `listen` and `connect`: the TCP window scale is agreed in the handshake,
//! so a receive buffer set later cannot grow past what it allowed, and the connections a
//! listener accepts take its buffer sizes with them.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Kafka's `Selectable.USE_DEFAULT_BUFFER_SIZE`: the operating system's size.
pub const OS_DEFAULT: i32 = -1;

/// How a listener's sockets are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// `socket.send.buffer.bytes`: SO_SNDBUF of every accepted connection; -1: the OS's.
    pub send_buffer_bytes: i32,
    /// `socket.receive.buffer.bytes`: SO_RCVBUF of every accepted connection; -1: the OS's.
    pub receive_buffer_bytes: i32,
    /// `socket.listen.backlog.size`: how many connections the kernel holds, handshake done,
    /// before the server accepts them; past it a client's SYN goes unanswered until there is
    /// room.
    pub backlog: u32,
}

impl Default for ListenOptions {
    /// gregor's defaults: the operating system's buffers, which it grows as a connection needs
    /// (Kafka's 102400 bytes cost about a fifth of the produce throughput on loopback), and a
    /// backlog of 1024 (Kafka's 50 drops the handshakes of a burst of clients past it, which
    /// try again a second later).
    fn default() -> Self {
        ListenOptions {
            send_buffer_bytes: OS_DEFAULT,
            receive_buffer_bytes: OS_DEFAULT,
            backlog: 1024,
        }
    }
}

fn new_socket(addr: &SocketAddr) -> io::Result<TcpSocket> {
    if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// The size to give the kernel, if any: a positive size; -1 (or any other size below 1, as
/// Kafka takes them) leaves the OS's.
fn given(size: i32) -> Option<u32> {
    u32::try_from(size).ok().filter(|&s| s > 0)
}

/// Binds a listener at `addr` (port 0 picks a free one) with `options`. Must run within a
/// tokio runtime.
pub fn bind(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
    let socket = new_socket(&addr)?;
    // As tokio's own `TcpListener::bind`: a restarted server binds its port again at once.
    socket.set_reuseaddr(true)?;
    if let Some(size) = given(options.send_buffer_bytes) {
        socket.set_send_buffer_size(size)?;
    }
    if let Some(size) = given(options.receive_buffer_bytes) {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(addr)?;
    socket.listen(options.backlog.max(1))
}

/// Opens a TCP connection to `addr` (`host:port`, each address it resolves to in turn), with
/// the given buffer sizes (-1: the OS's).
pub async fn connect(
    addr: &str,
    send_buffer_bytes: i32,
    receive_buffer_bytes: i32,
) -> io::Result<TcpStream> {
    let (send, receive) = (given(send_buffer_bytes), given(receive_buffer_bytes));
    if send.is_none() && receive.is_none() {
        return TcpStream::connect(addr).await;
    }
    let mut last = None;
    for to in tokio::net::lookup_host(addr).await? {
        let attempt = async {
            let socket = new_socket(&to)?;
            if let Some(size) = send {
                socket.set_send_buffer_size(size)?;
            }
            if let Some(size) = receive {
                socket.set_recv_buffer_size(size)?;
            }
            socket.connect(to).await
        };
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What the kernel says a connection's buffers are, (send, receive): Linux reports twice
    /// the size set.
    fn sizes(stream: &TcpStream) -> (u32, u32) {
        use std::os::fd::AsFd;
        let fd = stream.as_fd().try_clone_to_owned().expect("dup");
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        (
            socket.send_buffer_size().expect("SO_SNDBUF"),
            socket.recv_buffer_size().expect("SO_RCVBUF"),
        )
    }

    #[tokio::test]
    async fn accepted_connections_take_the_listeners_buffer_sizes() {
        let options = ListenOptions {
            send_buffer_bytes: 40_000,
            receive_buffer_bytes: 50_000,
            backlog: 50,
        };
        let listener = bind("127.0.0.1:0".parse().expect("addr"), &options).expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let client = connect(&addr, 30_000, 20_000).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        assert_eq!(
            sizes(&server),
            (80_000, 100_000),
            "the server side, doubled"
        );
        assert_eq!(sizes(&client), (60_000, 40_000), "the client side, doubled");

        // -1 leaves the OS's sizes, which are not the ones set above.
        let plain = bind(
            "127.0.0.1:0".parse().expect("addr"),
            &ListenOptions {
                send_buffer_bytes: OS_DEFAULT,
                receive_buffer_bytes: OS_DEFAULT,
                backlog: 50,
            },
        )
        .expect("bind");
        let addr = plain.local_addr().expect("addr").to_string();
        let client = connect(&addr, OS_DEFAULT, OS_DEFAULT)
            .await
            .expect("connect");
        let (server, _) = plain.accept().await.expect("accept");
        for (side, (send, receive)) in [("server", sizes(&server)), ("client", sizes(&client))] {
            assert_ne!(send, 80_000, "{side}");
            assert_ne!(receive, 100_000, "{side}");
            assert_ne!(send, 60_000, "{side}");
            assert_ne!(receive, 40_000, "{side}");
        }
    }

    /// Connections that finished their handshake, up to what the listener's backlog holds
    /// while nothing accepts them (Linux holds one more than the backlog).
    async fn held(backlog: u32) -> usize {
        let options = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        let listener = bind("127.0.0.1:0".parse().expect("addr"), &options).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut open = Vec::new();
        for _ in 0..8 {
            // A SYN the full queue drops is sent again only a second later.
            match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => open.push(s),
                _ => break,
            }
        }
        open.len()
    }

    #[tokio::test]
    async fn the_backlog_bounds_the_connections_waiting_to_be_accepted() {
        assert_eq!(held(1).await, 2);
        assert_eq!(held(3).await, 4);
        assert_eq!(held(50).await, 8);
        assert_eq!(held(ListenOptions::default().backlog).await, 8);
    }
}
