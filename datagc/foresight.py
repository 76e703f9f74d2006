"""What a dry run can see coming: the failures a real run would meet, predicted without changing anything.

An unlink needs write and search permission on the file's directory, a
writable filesystem, a directory that is neither immutable nor append-only,
a file that is neither (``chattr +i``/``+a``, read with ``FS_IOC_GETFLAGS``)
and, in a sticky directory (``/tmp``-like), to own the file or the directory.
A rewrite (rotation, feed) creates a temp in the directory and renames it
over the file: the same conditions. A condition that can't be read (a file
the user can't open for its flags) is not guessed: the dry run then says what
the real run would try.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from datagc.safety.unlink import DirCache

#: _IOR('f', 1, long); the kernel reads and writes an int there
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x10
FS_APPEND_FL = 0x20
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _flags(fd: int) -> int | None:
    """The inode flags of ``fd`` (``lsattr``), or None where the filesystem doesn't say."""
    try:
        result = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return None
    flags: int = struct.unpack("i", result[:4])[0]
    return flags


def _locked(flags: int | None, what: str) -> OSError | None:
    if flags is not None and flags & (FS_IMMUTABLE_FL | FS_APPEND_FL):
        kind = "immutable" if flags & FS_IMMUTABLE_FL else "append-only"
        return OSError(errno.EPERM, f"{os.strerror(errno.EPERM)}: {what} is {kind}")
    return None


class Foresight:
    """Predicts, file by file, the failures of a real run; directory facts are read once per directory."""

    def __init__(self, dirs: DirCache) -> None:
        self._dirs = dirs
        self._directories: dict[str, tuple[int, OSError | None, os.stat_result] | None] = {}

    def _directory(self, directory: str) -> tuple[int, OSError | None, os.stat_result] | None:
        if directory not in self._directories:
            try:
                fd = self._dirs.get(directory)
                self._directories[directory] = (fd, _directory_obstacle(fd), os.fstat(fd))
            except OSError:
                self._directories[directory] = None  # unreachable: the real run says so itself
        return self._directories[directory]

    def obstacle(self, path: str) -> OSError | None:
        """Why unlinking or replacing ``path`` (relative to DATA_DIR) would fail now, or None if nothing says so."""
        directory, _, name = path.rpartition("/")
        known = self._directory(directory)
        if known is None:
            return None
        dir_fd, problem, dir_st = known
        if problem is not None:
            return problem
        euid = os.geteuid()
        if dir_st.st_mode & stat.S_ISVTX and euid != 0:
            try:
                owner = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid
            except OSError:
                return None
            if euid not in (owner, dir_st.st_uid):
                return OSError(errno.EPERM, f"{os.strerror(errno.EPERM)}: a sticky directory, and not the owner")
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None  # gone, or not readable to us: its flags can't be read, nothing is guessed
        try:
            return _locked(_flags(fd), "the file")
        finally:
            os.close(fd)


def _directory_obstacle(dir_fd: int) -> OSError | None:
    if os.fstatvfs(dir_fd).f_flag & os.ST_RDONLY:
        return OSError(errno.EROFS, os.strerror(errno.EROFS))
    if not os.access(".", os.W_OK | os.X_OK, dir_fd=dir_fd, effective_ids=True):
        return OSError(errno.EACCES, os.strerror(errno.EACCES))
    return _locked(_flags(dir_fd), "its directory")
