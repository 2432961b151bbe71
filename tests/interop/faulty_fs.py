#!/usr/bin/python3
"""A disk that fails on command, for the storage fault tests.

    faulty_fs.py BACKING MOUNT CONTROL

Mounts a passthrough FUSE filesystem of the directory BACKING at MOUNT (in the foreground, until
unmounted or killed). While the file CONTROL (outside the mount) names a fault, the filesystem
answers as a failing disk does, with EIO:

    fsync   every fsync and fdatasync of a file or directory
    write   every write too (reads keep working)

A fault may name a part of the path it hits, as `fsync:__cluster_metadata` (only the fsyncs of
files whose path holds `__cluster_metadata`). Empty or absent: healthy. The broker under test sees a real filesystem (its own files, locks,
sendfile), and a real EIO from the kernel, not a mock. Needs root and python3-fusepy (Debian's
`fusepy` module over libfuse2).
"""

import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class Faulty(Operations):
    def __init__(self, root, control):
        self.root = os.path.realpath(root)
        self.control = control

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _fault(self):
        try:
            with open(self.control) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def _fail_if(self, kind, path=""):
        for fault in self._fault():
            name, _, within = fault.partition(":")
            if name == kind and within in path:
                raise FuseOSError(errno.EIO)

    # Metadata.
    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size",
                "st_uid", "st_blocks")
        return {k: getattr(st, k) for k in keys}

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
                "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def chmod(self, path, mode):
        return os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        return os.utime(self._path(path), times)

    def mkdir(self, path, mode):
        self._fail_if("write")
        return os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._path(path))

    def unlink(self, path):
        return os.unlink(self._path(path))

    def rename(self, old, new):
        self._fail_if("write")
        return os.rename(self._path(old), self._path(new))

    def link(self, target, name):
        return os.link(self._path(name), self._path(target))

    def symlink(self, name, target):
        return os.symlink(target, self._path(name))

    def readlink(self, path):
        return os.readlink(self._path(path))

    # Files.
    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        self._fail_if("write")
        # fusepy does not pass the caller's flags here: open for reading too, or a file created
        # read-write (a log segment) could not be read through its first handle (EBADF).
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, data, offset, fh):
        self._fail_if("write", path)
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._fail_if("write")
        with open(self._path(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        self._fail_if("fsync", path)
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self._fail_if("fsync", path)
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    backing, mount, control = sys.argv[1:]
    FUSE(Faulty(backing, control), mount, foreground=True, nothreads=False,
         allow_other=False, default_permissions=False)


if __name__ == "__main__":
    main()
