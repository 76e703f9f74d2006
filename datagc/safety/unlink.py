"""Checked deletion: a file is unlinked only if it is still the one planned."""

from __future__ import annotations

import os
import stat

from datagc.facts import FileIdentity
from datagc.safety.datadir import DataDir


def reclaimable_bytes(st: os.stat_result) -> int:
    """Allocated bytes that come back when this name is unlinked (0 if other links remain)."""
    return st.st_blocks * 512 if st.st_nlink == 1 else 0


UNLINKED = "unlinked"
VANISHED = "vanished"
CHANGED = "changed"


def unlink_if_unchanged(dir_fd: int, name: str, expected: FileIdentity) -> str:
    """Unlink ``name`` in ``dir_fd`` only if it is still the regular file planned.

    Returns ``UNLINKED``, ``VANISHED`` (ENOENT: skipped silently) or ``CHANGED``
    (not a regular file any more, another inode, size, mtime or ctime: kept).
    Other OSErrors propagate.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return VANISHED
    if not stat.S_ISREG(st.st_mode) or not expected.matches(st):
        return CHANGED
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return VANISHED
    return UNLINKED


class DirCache:
    """Directory descriptors opened once for a batch of fd-relative operations."""

    def __init__(self, data_dir: DataDir) -> None:
        self._data_dir = data_dir
        self._fds: dict[str, int] = {}

    def get(self, relpath: str) -> int:
        fd = self._fds.get(relpath)
        if fd is None:
            fd = self._fds[relpath] = self._data_dir.open_dir(relpath)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> DirCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
