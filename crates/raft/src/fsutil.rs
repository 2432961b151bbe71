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

/// A file of zeros kept beside the metadata log, given back to the file system when the disk is
/// full: the metadata log needs a few blocks to commit the very DeleteTopics that frees space
/// (a full disk must not stop the quorum for good).
pub(crate) const SPACE_RESERVE_FILE: &str = "space-reserve";
/// Its size: room for thousands of metadata records.
pub(crate) const SPACE_RESERVE_BYTES: usize = 1 << 20;

/// Creates the reserve if it is missing and the disk has room (a full disk is logged, not an
/// error: the node still starts).
pub(crate) fn ensure_space_reserve(dir: &Path) {
    let path = dir.join(SPACE_RESERVE_FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == SPACE_RESERVE_BYTES as u64) {
        return;
    }
    let made = File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; SPACE_RESERVE_BYTES])?;
        f.sync_all()
    });
    if let Err(e) = made {
        let _ = fs::remove_file(&path);
        tracing::warn!(dir = %dir.display(), error = %e, "cannot make the metadata log's space reserve");
    }
}

/// Runs `write`; if it fails because the disk is full, gives the reserve back to the file
/// system and runs `write` once more (`undo` first puts the target back as it was).
pub(crate) fn with_space_reserve<T>(
    dir: &Path,
    mut write: impl FnMut() -> io::Result<T>,
    mut undo: impl FnMut() -> io::Result<()>,
) -> io::Result<T> {
    match write() {
        Err(e) if is_disk_full(&e) => {
            let path = dir.join(SPACE_RESERVE_FILE);
            if fs::remove_file(&path).is_err() {
                return Err(e);
            }
            tracing::warn!(dir = %dir.display(),
                "disk full: the metadata log used its space reserve (it is made again at the next start with room)");
            undo()?;
            write()
        }
        other => other,
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_spends_the_reserve_once_and_retries() {
        let dir = tempfile::tempdir().expect("tempdir");
        ensure_space_reserve(dir.path());
        let reserve = dir.path().join(SPACE_RESERVE_FILE);
        assert_eq!(
            fs::metadata(&reserve).expect("reserve").len(),
            SPACE_RESERVE_BYTES as u64
        );
        let full = || io::Error::new(io::ErrorKind::StorageFull, "no space");
        let mut tries = 0;
        let mut undone = 0;
        let r = with_space_reserve(
            dir.path(),
            || {
                tries += 1;
                if tries == 1 {
                    Err(full())
                } else {
                    Ok(tries)
                }
            },
            || {
                undone += 1;
                Ok(())
            },
        );
        assert_eq!(r.expect("second try"), 2);
        assert_eq!(undone, 1);
        assert!(!reserve.exists(), "the reserve was given back");
        // No reserve left: a full disk is an error now.
        let r: io::Result<()> = with_space_reserve(dir.path(), || Err(full()), || Ok(()));
        assert_eq!(r.expect_err("full").kind(), io::ErrorKind::StorageFull);
        // Made again at the next start.
        ensure_space_reserve(dir.path());
        assert!(reserve.exists());
    }
}
