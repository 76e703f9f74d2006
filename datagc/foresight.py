"""What a dry run can see coming: the failures a real run would meet, predicted without changing anything.

An unlink needs write and search permission on the file's directory, a
writable filesystem, a directory that is neither immutable nor append-only,
a file that is neither (``chattr +i``/``+a``, read with ``FS_IOC_GETFLAGS``)
and, in a sticky directory (``/tmp``-like), to own the file or the directory.
A rewrite (rotation, feed) creates a temp in the directory and renames it
over the file: the same conditions. A condition that can't be read (a file
the user can't open for its flags) is not guessed: the dry run then says what
the real run would try. A step that would change something also journals it
(SPEC §9): the journal, or the state dir it would be created in, must be
writable too.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from datagc.config.schema import Config
from datagc.journal import JOURNAL_NAME
from datagc.safety.datadir import DataDir
from datagc.safety.unlink import DirCache
from datagc.statedir import StateDirError, open_state_dir, open_state_parent

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
    return _obstacle(dir_fd, ".", dir_fd, os.W_OK | os.X_OK, FS_IMMUTABLE_FL | FS_APPEND_FL, "its directory")


def _obstacle(fd: int, name: str, dir_fd: int, mode: int, refused: int, what: str) -> OSError | None:
    """Why ``name`` in ``dir_fd`` (open as ``fd``) can't be written: a read-only filesystem, no ``mode`` access
    for this user, or one of the inode flags ``refused`` set on it (``what`` names it)."""
    if os.fstatvfs(fd).f_flag & os.ST_RDONLY:
        return OSError(errno.EROFS, os.strerror(errno.EROFS))
    if not os.access(name, mode, dir_fd=dir_fd, effective_ids=True):
        return OSError(errno.EACCES, os.strerror(errno.EACCES))
    flags = _flags(fd)
    return None if flags is None else _locked(flags & refused, what)


def journal_obstacle(data_dir: DataDir, config: Config) -> str | None:
    """Why a real run could not write its journal now, in the words its flush would use; None if nothing says so.

    Appending needs the journal writable and not immutable; creating it, its state dir writable; creating the
    state dir (the first change ever journaled), the state dir's parent writable.
    """
    where = config.state.dir
    try:
        state_fd = open_state_dir(data_dir, config, create=False)
    except StateDirError as error:
        return str(error)
    if state_fd is None:
        try:
            parent, _ = open_state_parent(data_dir, config)
        except OSError:
            return None  # no parent to look at: the real run says itself what it meets
        try:
            problem = _not_creatable(parent)
        finally:
            os.close(parent)
        return None if problem is None else f"state dir {where} cannot be created ({problem.strerror})"
    try:
        problem = _not_appendable(state_fd)
    finally:
        os.close(state_fd)
    return None if problem is None else f"journal {where}/{JOURNAL_NAME} could not be written ({problem.strerror})"


def _not_creatable(dir_fd: int) -> OSError | None:
    """Why no entry could be created in the directory ``dir_fd`` (an append-only directory takes new ones)."""
    return _obstacle(dir_fd, ".", dir_fd, os.W_OK | os.X_OK, FS_IMMUTABLE_FL, "its directory")


def _not_appendable(state_fd: int) -> OSError | None:
    """Why the journal in ``state_fd`` could not be appended to (or, not there yet, created)."""
    try:
        fd = os.open(JOURNAL_NAME, _FILE_FLAGS, dir_fd=state_fd)
    except FileNotFoundError:
        return _not_creatable(state_fd)
    except OSError:
        return None  # not readable to us: nothing is guessed
    try:
        return _obstacle(fd, JOURNAL_NAME, state_fd, os.W_OK, FS_IMMUTABLE_FL, "the journal")
    finally:
        os.close(fd)
