//! A disk that fails on command: `tests/interop/faulty_fs.py`, a passthrough FUSE filesystem
//! over a temporary directory, mounted on another. While failing, the kernel answers the
//! broker's fsyncs (or writes too) with a real EIO, as a dying disk does.
//!
//! Needs root, `/dev/fuse` and Debian's `python3-fusepy` (`scripts/test` installs it); without
//! them [`FaultyDisk::mount`] fails saying which is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The system Python, which has Debian's `fusepy` module (the venv does not).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A mounted faulty filesystem. Dropping it unmounts it and removes both directories.
pub struct FaultyDisk {
    root: TempDir,
    child: Option<Child>,
}

impl FaultyDisk {
    /// Mounts a healthy one.
    pub fn mount() -> FaultyDisk {
        assert!(
            Path::new("/dev/fuse").exists(),
            "the faulty-disk tests need /dev/fuse (FUSE in the kernel)"
        );
        let probe = Command::new(SYSTEM_PYTHON)
            .args(["-c", "import fusepy"])
            .output()
            .unwrap_or_else(|e| panic!("{SYSTEM_PYTHON}: {e}"));
        assert!(
            probe.status.success(),
            "the faulty-disk tests need Debian's python3-fusepy (apt-get install python3-fusepy; \
             scripts/test installs it): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let root = tempfile::Builder::new()
            .prefix("gregor-faulty-disk-")
            .tempdir()
            .expect("tempdir");
        for d in ["backing", "mount"] {
            std::fs::create_dir(root.path().join(d)).expect("mkdir");
        }
        let child = Command::new(SYSTEM_PYTHON)
            .arg(crate::repo_root().join("tests/interop/faulty_fs.py"))
            .arg(root.path().join("backing"))
            .arg(root.path().join("mount"))
            .arg(root.path().join("control"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start faulty_fs.py");
        let mut disk = FaultyDisk {
            root,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !disk.is_mounted() {
            if let Some(Ok(Some(status))) = disk.child.as_mut().map(|c| c.try_wait()) {
                panic!("faulty_fs.py exited before mounting: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "faulty_fs.py did not mount in 10 s"
            );
            thread::sleep(Duration::from_millis(50));
        }
        disk
    }

    fn is_mounted(&self) -> bool {
        let mount = self.path().display().to_string();
        std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(mount.as_str()))
        })
    }

    /// Where the filesystem is mounted: give this to the broker.
    pub fn path(&self) -> PathBuf {
        self.root.path().join("mount")
    }

    /// The files as stored underneath, seen without the filesystem in between.
    pub fn backing(&self) -> PathBuf {
        self.root.path().join("backing")
    }

    /// From now on, fail every fsync (`"fsync"`), or every fsync and write (`"fsync write"`);
    /// `"fsync:__cluster_metadata"` fails only the fsyncs of paths that hold
    /// `__cluster_metadata`.
    pub fn fail(&self, what: &str) {
        std::fs::write(self.root.path().join("control"), what).expect("write the control file");
    }

    /// Healthy again.
    pub fn heal(&self) {
        std::fs::write(self.root.path().join("control"), "").expect("write the control file");
    }
}

impl Drop for FaultyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
