//! `gregor perf floor` (hidden): what the kernel alone charges, per GB, for the work no broker
//! can skip, measured on the machine and in the conditions of a benchmark run, so that a
//! broker's CPU per GB can be quoted as a multiple of it (`benches/run.sh` does).
//!
//! ```text
//! produce  sender thread ──loopback TCP──► measured thread: read into a 1 MiB buffer,
//!                                          append it to a file (fdatasync every --sync-bytes)
//! consume  measured thread: sendfile(file → loopback TCP) ──► reader thread discards
//! ```
//! Only the measured thread's CPU (user + sys, from `/proc/thread-self/stat`) is counted, as the
//! benchmark counts only the broker's: on loopback the sender of a stream also pays for the
//! receiving side's TCP processing, here as for a broker and its clients. No protocol work, no
//! CRC, no index: a broker's CPU above these figures is its own overhead.

use super::loopback::{send_pattern, spawn_drain};
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// Flags of `gregor perf floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Directory for the scratch files (the broker's data directory's file system).
    #[arg(long)]
    pub dir: PathBuf,
    /// Bytes to stream in each measurement.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub bytes: u64,
    /// fdatasync after every this many bytes in the durable produce measurement.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub sync_bytes: u64,
}

/// Runs the three measurements and prints one line:
/// `floor produce-nosync X s/GB produce-sync Y s/GB consume Z s/GB`.
pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let line = tokio::task::spawn_blocking(move || measure(&args)).await??;
    println!("{line}");
    Ok(())
}

fn measure(args: &FloorArgs) -> anyhow::Result<String> {
    let nosync = args.dir.join("gregor-floor-nosync");
    let sync = args.dir.join("gregor-floor-sync");
    let result = (|| -> anyhow::Result<String> {
        let produce_nosync = produce(&nosync, args.bytes, 0)?;
        let produce_sync = produce(&sync, args.bytes, args.sync_bytes)?;
        let consume = consume(&sync, args.bytes)?;
        Ok(format!(
            "floor produce-nosync {produce_nosync:.3} s/GB produce-sync {produce_sync:.3} s/GB \
             consume {consume:.3} s/GB"
        ))
    })();
    for p in [&nosync, &sync] {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// CPU seconds per GB the measured thread spent receiving `total` bytes and appending them to
/// `path`, with an fdatasync every `sync_bytes` (0: never).
fn produce(path: &Path, total: u64, sync_bytes: u64) -> anyhow::Result<f64> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        send_pattern(&mut TcpStream::connect(addr)?, total)
    });
    let (mut s, _) = listener.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let start = thread_cpu_seconds()?;
    let (mut got, mut unsynced) = (0u64, 0u64);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        got += n as u64;
        unsynced += n as u64;
        if sync_bytes > 0 && unsynced >= sync_bytes {
            file.sync_data()?;
            unsynced = 0;
        }
    }
    if sync_bytes > 0 && unsynced > 0 {
        file.sync_data()?;
    }
    let cpu = thread_cpu_seconds()? - start;
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("floor sender panicked"))??;
    anyhow::ensure!(got == total, "received {got} of {total} bytes");
    Ok(cpu / (got as f64 / 1e9))
}

/// CPU seconds per GB the measured thread spent sending `total` bytes of `path` with sendfile.
fn consume(path: &Path, total: u64) -> anyhow::Result<f64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = spawn_drain(listener);
    let s = TcpStream::connect(addr).context("connecting to the floor reader")?;
    let start = thread_cpu_seconds()?;
    let mut offset = 0u64;
    while offset < total {
        let want = usize::try_from(total - offset)
            .unwrap_or(usize::MAX)
            .min(8 << 20);
        let n = rustix::fs::sendfile(&s, &file, Some(&mut offset), want)
            .map_err(std::io::Error::from)?;
        anyhow::ensure!(n > 0, "sendfile stopped at byte {offset} of {total}");
    }
    let cpu = thread_cpu_seconds()? - start;
    drop(s);
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("floor reader panicked"))??;
    anyhow::ensure!(got == total, "the reader got {got} of {total} bytes");
    Ok(cpu / (total as f64 / 1e9))
}

/// This thread's user + system CPU time, in seconds.
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")
        .context("reading /proc/thread-self/stat")?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/thread-self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/thread-self/stat")?
            .parse::<u64>()
            .context("bad tick count in /proc/thread-self/stat")
    };
    // `rest` starts at field 3, so field k is at index k - 3.
    let total = ticks(14 - 3)? + ticks(15 - 3)?;
    let hz = rustix::param::clock_ticks_per_second();
    Ok(total as f64 / hz as f64)
}
