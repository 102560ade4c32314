"""Making writes durable: fsync of a directory after a rename, and the atomic
replacement of a small file (write a temporary, fsync, rename, fsync the
directory). Every fault point of these steps is here (see `faults`)."""

from __future__ import annotations

import errno
import os

from squirrel.plumbing import faults


def fsync_dir(path: str) -> None:
    faults.point("fsync")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:  # some FUSE filesystems refuse fsync on directories
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def write_file_atomic(path: str, data: bytes) -> None:
    """Write via a temporary name, fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        faults.point("fsync")
        os.fsync(f.fileno())
    faults.point("rename")
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))
