//! `gregor perf floor` (hidden): what the kernel alone charges, per GB, for the work no broker
//! can skip, measured on the machine and in the conditions of a benchmark run, so that a
//! broker's CPU per GB can be quoted as a multiple of it (`benches/run.sh` does).
//!
//! ```text
//! produce  sender thread ──loopback TCP──► measured thread: read into a 1 MiB buffer,
//!                                          append it to a file (fdatasync every --sync-bytes)
//! direct   the same with the file opened O_DIRECT (1 MiB aligned writes, no page-cache copy)
//! consume  measured thread: sendfile(file → loopback TCP) ──► reader thread discards
//! ```
//! The direct figure is not a floor of the broker as it is (it writes through the page cache);
//! it prices the design change that would take the page-cache copy off the produce path.
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

/// Runs the measurements and prints one line:
/// `floor produce-nosync X s/GB produce-sync Y s/GB consume Z s/GB produce-direct-sync W s/GB`
/// (the last is `-` where the file system refuses O_DIRECT).
pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let line = tokio::task::spawn_blocking(move || measure(&args)).await??;
    println!("{line}");
    Ok(())
}

fn measure(args: &FloorArgs) -> anyhow::Result<String> {
    let nosync = args.dir.join("gregor-floor-nosync");
    let sync = args.dir.join("gregor-floor-sync");
    let direct = args.dir.join("gregor-floor-direct");
    let result = (|| -> anyhow::Result<String> {
        let produce_nosync = produce(&nosync, args.bytes, 0, false)?;
        let produce_sync = produce(&sync, args.bytes, args.sync_bytes, false)?;
        let consume = consume(&sync, args.bytes)?;
        let direct = match produce(&direct, args.bytes, args.sync_bytes, true) {
            Ok(v) => format!("{v:.3}"),
            Err(e) => {
                eprintln!("gregor perf floor: no O_DIRECT figure: {e:#}");
                "-".to_string()
            }
        };
        Ok(format!(
            "floor produce-nosync {produce_nosync:.3} s/GB produce-sync {produce_sync:.3} s/GB \
             consume {consume:.3} s/GB produce-direct-sync {direct} s/GB"
        ))
    })();
    for p in [&nosync, &sync, &direct] {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Alignment of O_DIRECT buffers, offsets and lengths (a page: every block size divides it).
const DIRECT_ALIGN: usize = 4096;
/// Size of one read-and-append step.
const CHUNK: usize = 1 << 20;

/// CPU seconds per GB the measured thread spent receiving `total` bytes and appending them to
/// `path`, with an fdatasync every `sync_bytes` (0: never). With `direct`, the file is opened
/// O_DIRECT and every write is a whole aligned 1 MiB chunk (`total` must be a multiple of it).
fn produce(path: &Path, total: u64, sync_bytes: u64, direct: bool) -> anyhow::Result<f64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.create(true).truncate(true).write(true);
    if direct {
        anyhow::ensure!(
            total.is_multiple_of(CHUNK as u64),
            "--bytes must be a multiple of 1 MiB"
        );
        let flag = rustix::fs::OFlags::DIRECT.bits();
        options.custom_flags(i32::try_from(flag).context("O_DIRECT flag")?);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        send_pattern(&mut TcpStream::connect(addr)?, total)
    });
    let (mut s, _) = listener.accept()?;
    // One chunk at an aligned address inside a slightly larger allocation (no unsafe needed).
    let mut backing = vec![0u8; CHUNK + DIRECT_ALIGN];
    let skew = backing.as_ptr() as usize % DIRECT_ALIGN;
    let at = (DIRECT_ALIGN - skew) % DIRECT_ALIGN;
    let buf = &mut backing[at..at + CHUNK];
    let start = thread_cpu_seconds()?;
    let (mut got, mut unsynced) = (0u64, 0u64);
    loop {
        let n = if direct {
            // O_DIRECT writes whole aligned chunks: fill one before writing it.
            let mut filled = 0;
            while filled < CHUNK {
                match s.read(&mut buf[filled..])? {
                    0 => break,
                    k => filled += k,
                }
            }
            filled
        } else {
            s.read(buf)?
        };
        if n == 0 {
            break;
        }
        anyhow::ensure!(
            !direct || n == CHUNK,
            "stream ended inside an O_DIRECT chunk"
        );
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
