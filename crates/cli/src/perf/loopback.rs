//! `gregor perf loopback` (hidden): pumps bytes through one TCP connection on 127.0.0.1 with
//! blocking sockets on two threads and prints MB/s, the ceiling any local client/broker pair
//! can reach. `benches/run.sh` divides measured throughput by it.

use super::stats::MB;
use anyhow::Context;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Instant;

/// Flags of `gregor perf loopback`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopbackArgs {
    /// Bytes to stream.
    #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024)]
    pub bytes: u64,
}

/// Streams `--bytes` and prints `loopback N MB/s`.
pub async fn run(args: LoopbackArgs) -> anyhow::Result<()> {
    let mbs = tokio::task::spawn_blocking(move || pump(args.bytes)).await??;
    println!("loopback {mbs:.1} MB/s");
    Ok(())
}

/// A thread that accepts one connection on `listener` and reads it to the end in 1 MiB reads,
/// returning the byte count.
pub(super) fn spawn_drain(listener: TcpListener) -> JoinHandle<std::io::Result<u64>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(got),
                n => got += n as u64,
            }
        }
    })
}

/// Writes `total` bytes of a fixed pattern to `s` in 1 MiB writes.
pub(super) fn send_pattern(s: &mut TcpStream, total: u64) -> std::io::Result<()> {
    let chunk = vec![0x5au8; 1 << 20];
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        s.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    Ok(())
}

fn pump(total: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = spawn_drain(listener);
    let mut s = TcpStream::connect(addr).context("connecting to the loopback receiver")?;
    let start = Instant::now();
    send_pattern(&mut s, total)?;
    drop(s);
    let got = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("loopback receiver panicked"))??;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    anyhow::ensure!(got == total, "loopback received {got} of {total} bytes");
    Ok(got as f64 / MB / secs)
}
