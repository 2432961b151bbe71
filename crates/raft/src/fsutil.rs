//! Small durable files: written whole (tmp, fsync, rename, fsync dir) with a CRC-32C, and the
//! directory lock that keeps two processes off one metadata directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `payload` to `dir/name` so a crash leaves either the old file or the new one: the
/// bytes go to `name.tmp`, which is fsynced, renamed over `name`, and the directory fsynced.
/// The file holds a CRC-32C of the payload, then the payload.
pub(crate) fn write_checked(dir: &Path, name: &str, payload: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&crc32c::crc32c(payload).to_be_bytes())?;
        f.write_all(payload)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads a file written by [`write_checked`]: `None` if it does not exist, `InvalidData` if its
/// checksum does not match.
pub(crate) fn read_checked(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 4 {
        return Err(invalid(format!("{} is truncated", path.display())));
    }
    let (crc, payload) = bytes.split_at(4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(payload);
    if stored != computed {
        return Err(invalid(format!(
            "{}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})",
            path.display()
        )));
    }
    Ok(Some(payload.to_vec()))
}

/// Fsyncs a directory, so a file created or renamed in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// An exclusive `flock` on `dir/lock`, held while the value lives.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The lock is the open file description; closing it releases the lock.
    _file: File,
}

/// Locks `dir`; `WouldBlock` when another process (or another quorum in this one) holds it.
pub(crate) fn lock_dir(dir: &Path) -> io::Result<DirLock> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(io::Error::from)?;
    Ok(DirLock { _file: file })
}
