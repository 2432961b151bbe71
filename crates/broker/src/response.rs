//! Responses as a list of chunks: encoded bytes, and byte ranges of segment files that go from
//! the page cache to the socket with `sendfile(2)`, never through user space.
//!
//! ```text
//!  [size|header|topic|partition fields|len] [segment file range ....] [next partition fields|len] [file range] ...
//!            Chunk::Bytes                        Chunk::File                 Chunk::Bytes          Chunk::File
//! ```
//!
//! Over TLS the bytes must be encrypted in user space, so a file range is read (pread) in
//! pieces of [`TLS_READ_CHUNK`] and written through the TLS stream ([`ReplyWriter::Tls`]).

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How much of a file range a TLS connection reads into memory at a time.
const TLS_READ_CHUNK: usize = 256 * 1024;

/// The writing half of a client connection.
pub enum ReplyWriter {
    /// Plain TCP: file ranges go out with sendfile.
    Plain(OwnedWriteHalf),
    /// TLS over TCP (an SSL listener).
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

impl ReplyWriter {
    /// Writes one encoded response.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            ReplyWriter::Plain(w) => w.write_all(bytes).await,
            ReplyWriter::Tls(w) => {
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }

    /// Writes a chunked response (a Fetch's encoded fields and file ranges).
    pub async fn write_chunks(&mut self, chunks: &[Chunk]) -> io::Result<()> {
        match self {
            ReplyWriter::Plain(w) => write_chunks(w, chunks).await,
            ReplyWriter::Tls(w) => {
                let mut buf = Vec::new();
                for c in chunks {
                    match c {
                        Chunk::Bytes(b) => w.write_all(b).await?,
                        Chunk::File(f) => {
                            let mut done = 0;
                            while done < f.len {
                                let n = (f.len - done).min(TLS_READ_CHUNK);
                                buf.resize(n, 0);
                                read_exact_at(f, &mut buf, done)?;
                                w.write_all(&buf).await?;
                                done += n;
                            }
                        }
                    }
                }
                w.flush().await
            }
        }
    }

    /// Closes the sending side (TLS: with a close_notify alert).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ReplyWriter::Plain(w) => w.shutdown().await,
            ReplyWriter::Tls(w) => w.shutdown().await,
        }
    }
}

/// Reads `buf.len()` bytes of `slice` from `skip` bytes into it (pread: the page cache, as
/// sendfile reads it).
fn read_exact_at(slice: &FileSlice, buf: &mut [u8], skip: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    slice.file.read_exact_at(buf, slice.position + skip as u64)
}

/// A piece of a response.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Encoded protocol bytes.
    Bytes(Bytes),
    /// Record batches read from a segment file.
    File(FileSlice),
}

/// A size-prefixed response being assembled.
#[derive(Debug, Default)]
pub struct ChunkedResponse {
    chunks: Vec<Chunk>,
    current: BytesMut,
    total: usize,
}

impl ChunkedResponse {
    /// Starts a response; the 4-byte size prefix is filled in by [`ChunkedResponse::finish`].
    pub fn new() -> Self {
        let mut current = BytesMut::with_capacity(256);
        current.put_i32(0);
        ChunkedResponse {
            chunks: Vec::new(),
            current,
            total: 0,
        }
    }

    /// The buffer encoded fields go into.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    /// Appends a file range after the bytes written so far.
    pub fn push_file(&mut self, slice: FileSlice) {
        if slice.len == 0 {
            return;
        }
        let bytes = self.current.split().freeze();
        self.total += bytes.len();
        self.chunks.push(Chunk::Bytes(bytes));
        self.total += slice.len;
        self.chunks.push(Chunk::File(slice));
    }

    /// Completes the response, patching the size prefix; `None` when the response would not fit
    /// the protocol's `int32` size (callers bound responses well below that, so this is a bug
    /// guard: the connection is closed instead of sending a wrapped size).
    pub fn finish(mut self) -> Option<Vec<Chunk>> {
        let tail = self.current.split().freeze();
        self.total += tail.len();
        if !tail.is_empty() {
            self.chunks.push(Chunk::Bytes(tail));
        }
        let size = i32::try_from(self.total.checked_sub(4)?).ok()?;
        if let Some(Chunk::Bytes(first)) = self.chunks.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[0..4].copy_from_slice(&size.to_be_bytes());
            *first = patched.freeze();
        }
        Some(self.chunks)
    }
}

/// Reads every chunk into one buffer (tests compare it with the reference encoder).
#[cfg(test)]
pub fn flatten(chunks: &[Chunk]) -> io::Result<Bytes> {
    let mut out = BytesMut::new();
    for c in chunks {
        match c {
            Chunk::Bytes(b) => out.extend_from_slice(b),
            Chunk::File(f) => out.extend_from_slice(&f.read_to_vec()?),
        }
    }
    Ok(out.freeze())
}

/// Writes the chunks to the socket: bytes with `write_all`, file ranges with `sendfile`.
pub async fn write_chunks(wr: &mut OwnedWriteHalf, chunks: &[Chunk]) -> io::Result<()> {
    for c in chunks {
        match c {
            Chunk::Bytes(b) => wr.write_all(b).await?,
            Chunk::File(f) => send_file(wr, f).await?,
        }
    }
    Ok(())
}

async fn send_file(wr: &mut OwnedWriteHalf, slice: &FileSlice) -> io::Result<()> {
    let mut offset = slice.position;
    let end = slice.position + slice.len as u64;
    let stream = wr.as_ref();
    while offset < end {
        stream.writable().await?;
        let remaining = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*slice.file, Some(&mut offset), remaining)
                .map_err(io::Error::from)
        });
        match sent {
            // The file ended early (truncated under us): the response cannot be completed.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the range being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
