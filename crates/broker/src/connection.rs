//! One client connection: frames in, replies out, in request order.
//!
//! ```text
//!  socket ─► reader: FrameDecoder ─► router::dispatch ─► Reply ─┐   (bounded queue = back-pressure)
//!                                                              ▼
//!  socket ◄──────────────── writer: awaits each Reply in order ◄┘
//! ```
//! The reader handles requests as they arrive (produce appends happen in arrival order), while a
//! reply that must wait (acks=all fsync, long-poll fetch) is a future the writer awaits, so
//! pipelined requests keep flowing and replies still leave in order, as the protocol requires.
//! A protocol violation (bad frame size, unknown API key, undecodable request) closes the
//! connection, logged once at debug level since it is the peer's fault.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use gregor_protocol::frame::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::router::{self, Reply};
use crate::server::Broker;

/// Replies queued per connection before the reader stops reading (Kafka clients pipeline 5).
const MAX_IN_FLIGHT: usize = 64;

/// Serves one connection until the peer closes it, it violates the protocol, or shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Reply>(MAX_IN_FLIGHT);

    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let bytes = match reply {
                Reply::None => continue,
                Reply::Ready(b) => b,
                Reply::Pending(fut) => match fut.await {
                    Ok(b) => b,
                    Err(e) => {
                        debug!(%peer, error = %e, "closing connection");
                        return;
                    }
                },
                Reply::PendingChunks(fut) => {
                    let chunks = match fut.await {
                        Ok(c) => c,
                        Err(e) => {
                            debug!(%peer, error = %e, "closing connection");
                            return;
                        }
                    };
                    if let Err(e) = crate::response::write_chunks(&mut wr, &chunks).await {
                        debug!(%peer, error = %e, "closing connection");
                        return;
                    }
                    continue;
                }
            };
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });

    let decoder = FrameDecoder {
        max_frame: broker.config.socket_request_max_bytes,
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => match router::dispatch(&broker, peer, frame.freeze()) {
                    Ok(reply) => {
                        if tx.send(reply).await.is_err() {
                            break 'read;
                        }
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "protocol violation; closing connection");
                        break 'read;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "bad frame; closing connection");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            _ = shutdown.changed() => break,
            n = rd.read_buf(&mut buf) => n,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(tx);
    // Let replies already accepted go out (e.g. acks=all produce waiting for its fsync).
    let _ = writer.await;
}
