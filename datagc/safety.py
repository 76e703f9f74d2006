"""Every primitive that touches the disk: the only module that unlinks or renames.

Rules (SPEC §7): everything is relative to directory file descriptors opened
from DATA_DIR's own descriptor; no symlink is ever followed (``O_NOFOLLOW``,
``follow_symlinks=False``); no directory on another filesystem than DATA_DIR's
is entered (``st_dev``); a file is re-checked against what was planned right
before it is unlinked; rewrites go through a temp file in the same directory
that is fsynced and renamed over the original, then the directory is fsynced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from datagc.errors import DataDirError, LockHeld
from datagc.facts import DiskUsage, FileIdentity
from datagc.mountid import mount_id

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Marks datagc's own temp files; ``TEMP_MARK`` never appears in a service file name.
TEMP_MARK = ".datagc-tmp."


# --- the data directory -------------------------------------------------------


class DataDir:
    """DATA_DIR opened once; the root of every fd-relative operation.

    The data directory itself may be reached through a symlink (the operator
    named it); nothing inside it ever is.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DataDirError(f"data directory {path} does not exist; nothing was changed") from None
        except NotADirectoryError:
            raise DataDirError(f"data directory {path} is not a directory; nothing was changed") from None
        except OSError as error:
            raise DataDirError(
                f"data directory {path} cannot be opened ({error.strerror}); nothing was changed"
            ) from None
        self.dev = os.fstat(self.fd).st_dev
        self.mount_points = mount_points_inside(os.path.realpath(path))
        #: the mount DATA_DIR is on: every directory entered must be on it too (None: st_dev and mount_points only)
        self.mount_id = mount_id(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open_dir(self, relpath: str) -> int:
        """Open a directory inside DATA_DIR, one component at a time.

        Raises OSError: ELOOP/ENOTDIR for a symlink or non-directory on the way,
        EXDEV for a component on another filesystem or mount (its mount id is
        checked as it is opened, so a bind mount made while a pass runs is not
        entered: SPEC §7 rule 13), ENOENT if missing. The caller closes the
        returned descriptor: always a file description of its own, never a
        ``dup`` of DATA_DIR's, whose directory offset every copy (a forked walk
        worker's too) would share and move.
        """
        fd = os.open(".", DIR_FLAGS, dir_fd=self.fd)
        walked = ""
        try:
            for part in _parts(relpath):
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                walked = join_path(walked, part)
                if not self.same_mount(fd) or walked in self.mount_points:
                    raise OSError(errno.EXDEV, "on another filesystem or mount point", relpath)
        except BaseException:
            os.close(fd)
            raise
        return fd


    def same_mount(self, fd: int) -> bool:
        """Whether the directory ``fd`` is on DATA_DIR's own mount (not another filesystem, not a bind mount)."""
        if self.mount_id is not None:
            return mount_id(fd) == self.mount_id
        return os.fstat(fd).st_dev == self.dev


def mount_points_inside(root: str) -> frozenset[str]:
    """Mount points strictly inside ``root``, relative to it, from /proc/self/mountinfo.

    Catches bind mounts of the same filesystem, which ``st_dev`` can't tell
    apart. Empty where /proc is unreadable (``st_dev`` checks still apply).
    """
    prefix = root.rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return frozenset()
    inside = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4]))
        if point.startswith(prefix):
            inside.add(point[len(prefix):])
    return frozenset(inside)


def _parts(relpath: str) -> list[str]:
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EINVAL, "path leaves the data directory", relpath)
    return parts


def split_path(relpath: str) -> tuple[str, str]:
    """``"images/old/a.png"`` -> ``("images/old", "a.png")``."""
    head, _, name = relpath.rpartition("/")
    return head, name


def join_path(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


# --- walking ------------------------------------------------------------------


#: kinds of entry the walk reports
FILE = "file"
SYMLINK = "symlink"
SPECIAL = "special"  # FIFOs, sockets, devices: never touched, counted by audit
MOUNT = "mount"  # a directory on another filesystem or a mount point: reported, never entered
DIRECTORY = "directory"  # reported as it is entered

WalkEntry = tuple[str, str, str, "os.stat_result | None"]
WalkErrorHandler = Callable[[str, OSError], None]


@dataclass(frozen=True)
class Share:
    """One worker's part of a walk split across ``count`` forked workers (``datagc.parallel``).

    Directories less than ``depth`` levels below the walk's top are listed by
    every worker, and their entries are split by name; each deeper directory
    belongs, whole, to the one worker its path falls to. Every worker applies
    the same rules as the serial walk to everything it opens or enters. The
    split uses ``hash``, the same in every worker because they are forks of
    one process.
    """

    index: int
    count: int
    depth: int = 3

    def mine(self, key: str) -> bool:
        return hash(key) % self.count == self.index


def walk(
    data_dir: DataDir, top: str = "", on_error: WalkErrorHandler | None = None, share: Share | None = None
) -> Iterator[WalkEntry]:
    """Stream every entry under ``top`` as (kind, directory relpath, name, lstat of a FILE else None).

    No symlink is followed, no other filesystem or mount point is entered; an
    unreadable or missing directory is passed to ``on_error`` with its relative
    path and skipped, and the walk goes on. No directory listing is held, so
    memory stays flat for a directory of a million files; a directory's
    entries come before its subdirectories' (entered depth first). With
    ``share``, only that worker's part of the entries (``Share``).
    """

    def report(path: str, error: OSError) -> None:
        if on_error is not None:
            on_error(path, error)

    try:
        fd = data_dir.open_dir(top)
    except OSError as error:
        if share is None or share.mine(top):
            report(top, error)
        return
    yield from _walk_fd(data_dir, top, fd, report, share)


def iter_files(
    data_dir: DataDir, top: str = "", on_error: WalkErrorHandler | None = None, share: Share | None = None
) -> Iterator[tuple[str, str, os.stat_result]]:
    """The regular files of ``walk``, as (directory relpath, name, lstat)."""
    for kind, directory, name, st in walk(data_dir, top, on_error, share):
        if kind is FILE:
            yield directory, name, st  # type: ignore[misc]


def count_entries(data_dir: DataDir, top: str, limit: int) -> int:
    """How many entries the tree under ``top`` has, counting up to ``limit`` (names only, no stat of files).

    The parallel walk's probe: only a tree of ``limit`` entries or more is
    split across workers. Same rules as the walk: fd-relative, no symlink
    followed, no other filesystem or mount point entered; what can't be
    opened counts as empty.
    """
    try:
        pending = [(top, data_dir.open_dir(top))]
    except OSError:
        return 0
    seen = 0
    while pending:
        path, fd = pending.pop()
        try:
            with os.scandir(fd) as entries:
                subdirs = []
                for entry in entries:
                    seen += 1
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
            for name in subdirs:
                if seen >= limit:
                    break
                with contextlib.suppress(OSError):
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                    child_path = join_path(path, name)
                    if not data_dir.same_mount(child) or child_path in data_dir.mount_points:
                        os.close(child)
                    else:
                        pending.append((child_path, child))
        except OSError:
            pass
        finally:
            os.close(fd)
        if seen >= limit:
            break
    for _, fd in pending:
        os.close(fd)
    return seen


def _walk_fd(
    data_dir: DataDir, top: str, top_fd: int, report: WalkErrorHandler, share: Share | None
) -> Iterator[WalkEntry]:
    # An explicit stack, not recursion: every entry is yielded from this one
    # frame (a chain of ``yield from`` costs per entry and per level), and only
    # one directory is open at a time, however wide the tree. Each item is
    # (path, fd or None, depth below top, or -1 in a directory that is wholly this walk's).
    whole = -1
    pending: list[tuple[str, int | None, int]] = [(top, top_fd, whole if share is None else 0)]
    split = share or Share(0, 1)  # without a share every directory is wholly this walk's: never consulted
    while pending:
        path, fd, depth = pending.pop()
        shared = depth != whole
        if fd is None:
            try:
                fd = data_dir.open_dir(path)
            except OSError as error:
                if not shared or split.mine(path):  # a shared directory is reported by one worker
                    if error.errno == errno.EXDEV:  # a mount appeared on it since it was listed: not entered
                        head, _, name = path.rpartition("/")
                        yield MOUNT, head, name, None
                    else:
                        report(path, error)
                continue
        subdirs = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.name)
                        elif shared and not split.mine(entry.name):
                            continue  # another worker's
                        elif entry.is_file(follow_symlinks=False):
                            yield FILE, path, entry.name, entry.stat(follow_symlinks=False)
                        elif entry.is_symlink():
                            yield SYMLINK, path, entry.name, None
                        else:
                            yield SPECIAL, path, entry.name, None
                    except FileNotFoundError:
                        pass  # vanished between readdir and stat
            children = []
            for name in subdirs:
                child_path = join_path(path, name)
                child_depth = whole
                if shared:
                    child_depth = depth + 1
                    if child_depth >= split.depth:
                        if not split.mine(child_path):
                            continue  # another worker's, whole
                        child_depth = whole
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                # a shared directory is listed by every worker, and reported by one
                reported = child_depth == whole or split.mine(child_path)
                if st.st_dev != data_dir.dev or child_path in data_dir.mount_points:
                    if reported:
                        yield MOUNT, path, name, None
                    continue
                if reported:
                    yield DIRECTORY, path, name, None
                children.append((child_path, None, child_depth))
            pending.extend(reversed(children))
        except OSError as error:
            if not shared or split.mine(path):
                report(path, error)
        finally:
            os.close(fd)


# --- checked deletion ---------------------------------------------------------


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
    if not stat.S_ISREG(st.st_mode) or FileIdentity.of(st) != expected:
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


# --- atomic rewrite -----------------------------------------------------------


def temp_name(name: str) -> str:
    """The name of datagc's temp file for ``name`` in the same directory."""
    return f"{name}{TEMP_MARK}{os.getpid()}"


def is_datagc_temp(name: str) -> bool:
    return TEMP_MARK in name


def create_temp_like(
    dir_fd: int, name: str, like: os.stat_result, on_create: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Create datagc's temp for ``name`` with ``like``'s mode and owner.

    Returns (temp name, read-write fd). A stale temp of the same name (a crashed
    datagc with a recycled pid) is replaced. ``on_create`` is called with the fd
    while the temp is still datagc's own, before it gets ``like``'s owner (the
    moment a file lease can be taken without CAP_LEASE).
    """
    temp = temp_name(name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=dir_fd)
    fd = os.open(
        temp,
        os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    try:
        if on_create is not None:
            on_create(fd)
        os.fchmod(fd, stat.S_IMODE(like.st_mode))
        if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):  # not root: the file stays ours
                os.fchown(fd, like.st_uid, like.st_gid)
    except BaseException:
        os.close(fd)
        discard_temp(dir_fd, temp)
        raise
    return temp, fd


def discard_temp(dir_fd: int, temp: str) -> None:
    """Remove a temp of ours; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp, dir_fd=dir_fd)


def commit_temp(dir_fd: int, temp: str, name: str, *, sync_dir: bool = True) -> None:
    """Rename the (already fsynced) temp over ``name``, then fsync the directory (unless the caller will)."""
    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    if sync_dir:
        os.fsync(dir_fd)


def atomic_rewrite(dir_fd: int, name: str, content: bytes, like: os.stat_result) -> None:
    """Replace ``name`` by ``content`` so that a crash leaves the old or the new file.

    On any error (ENOSPC included) the temp is removed, the original is as it
    was, and the error propagates.
    """
    temp, fd = create_temp_like(dir_fd, name, like)
    try:
        try:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        commit_temp(dir_fd, temp, name)
    except BaseException:
        discard_temp(dir_fd, temp)
        raise


# --- reading and conditional replacement (feed rewrites) ----------------------

#: errnos of renameat2(RENAME_EXCHANGE) where the kernel, libc or filesystem can't exchange
_NO_EXCHANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})
#: swaps ``settle_exchange`` makes before leaving a hopelessly busy file to the caller's retry
_MAX_SWAPS = 8
REPLACED = "replaced"


def read_regular(dir_fd: int, name: str) -> tuple[bytes, os.stat_result]:
    """Read the whole regular file ``name`` in ``dir_fd`` without following a symlink.

    Returns (content, fstat of the descriptor read). Raises OSError: ENOENT if
    missing, ELOOP for a symlink, EINVAL for anything but a regular file (a
    FIFO never blocks: it is opened non-blocking and refused).
    """
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        chunks = []
        while chunk := os.read(fd, max(1 << 20, st.st_size + 1)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), st


def identity_at(dir_fd: int, name: str) -> FileIdentity | None:
    """The identity of whatever ``name`` is now (its ``lstat``), None if it doesn't exist."""
    try:
        return FileIdentity.of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        return None


def rename_exchange(dir_fd: int, a: str, b: str) -> None:
    """Swap the names ``a`` and ``b`` in ``dir_fd`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Nothing is destroyed: whatever ``b`` named is afterwards named ``a``.
    Raises OSError; ENOSYS, EINVAL or EOPNOTSUPP where it isn't supported.
    """
    import ctypes  # only feed rewrites need it; keeps start-up lean

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:
        raise OSError(errno.ENOSYS, "renameat2 is not available in this C library", b) from None
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if renameat2(dir_fd, os.fsencode(a), dir_fd, os.fsencode(b), 2) != 0:  # 2 = RENAME_EXCHANGE
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), b)


def replace_if_unchanged(
    dir_fd: int, name: str, content: bytes, expected: FileIdentity, like: os.stat_result
) -> str:
    """Replace ``name`` by ``content`` only if it is still the file ``expected`` (read earlier).

    For files another process rewrites by temp + rename (the service's feed).
    The new content is written to a temp (``like``'s mode and owner) and
    fsynced, the identity is checked, and the temp is *exchanged* with
    ``name`` (``rename_exchange``) rather than renamed over it: a write that
    lands between the check and the swap is not destroyed but comes back
    under the temp name, is seen, and is put back in place
    (``settle_exchange``). Returns ``REPLACED``, or ``CHANGED`` when ``name``
    changed on disk (the other process's newest version is then in place,
    untouched: read it again and redo the change). Where exchange isn't
    supported, a plain rename follows the check (a window of microseconds).

    On an error before the swap (ENOSPC included) the temp is removed, the
    original is as it was, and the error propagates.
    """
    temp, fd = create_temp_like(dir_fd, name, like)
    try:
        try:
            _write_all(fd, content)
            os.fsync(fd)
            ours = FileIdentity.of(os.fstat(fd))
        finally:
            os.close(fd)
        if identity_at(dir_fd, name) != expected:
            discard_temp(dir_fd, temp)
            return CHANGED
        try:
            rename_exchange(dir_fd, temp, name)
        except OSError as error:
            if error.errno == errno.ENOENT:  # ``name`` vanished since the check
                discard_temp(dir_fd, temp)
                return CHANGED
            if error.errno not in _NO_EXCHANGE:
                raise
            commit_temp(dir_fd, temp, name)
            return REPLACED
    except BaseException:
        discard_temp(dir_fd, temp)
        raise
    outcome = settle_exchange(dir_fd, temp, name, ours, expected)
    os.fsync(dir_fd)
    return outcome


def settle_exchange(dir_fd: int, temp: str, name: str, ours: FileIdentity, expected: FileIdentity) -> str:
    """After ``ours`` was exchanged into ``name``, ``temp`` holds what it displaced: deal with it.

    If that is ``expected`` (the version read), nobody wrote in between: it is
    removed and ours stays (``REPLACED``). Otherwise another writer's newer
    version was displaced; it is swapped back into ``name`` (repeatedly, if the
    writer keeps landing in between) and the superseded file left under
    ``temp`` is removed (``CHANGED``). A writer that never settles leaves the
    last displaced version under ``temp`` for the next pass (``datagc.leftovers``).
    """
    held = ours
    for _ in range(_MAX_SWAPS):
        displaced = identity_at(dir_fd, temp)
        if displaced is None or expected.moved(displaced):
            discard_temp(dir_fd, temp)
            return REPLACED if held == ours else CHANGED
        rename_exchange(dir_fd, temp, name)
        expected, held = held, displaced
    return CHANGED


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


# --- lock ---------------------------------------------------------------------


def lock_data_dir(data_dir: DataDir, wait_seconds: float | None = None) -> None:
    """Take an exclusive ``flock`` on the data directory itself (no lock file on a full disk).

    Held until the descriptor is closed (the process ends). Raises LockHeld if
    another datagc holds it, after waiting up to ``wait_seconds``.
    """
    deadline = time.monotonic() + (wait_seconds or 0.0)
    while True:
        try:
            fcntl.flock(data_dir.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
                raise LockHeld(
                    f"another datagc is working on {data_dir.path}{waited}; nothing was changed "
                    "(use --wait DURATION to wait for it)"
                ) from None
            time.sleep(0.05)


def lock_held(data_dir: DataDir) -> bool:
    """Whether another datagc holds the lock now, without taking it (a dry run only reads).

    A shared lock is tried and at once released: it is refused only while an
    exclusive one is held, and holding it would make a real run exit 75.
    """
    try:
        fcntl.flock(data_dir.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(data_dir.fd, fcntl.LOCK_UN)
    return False


# --- disk usage ---------------------------------------------------------------


def disk_usage(fd: int) -> DiskUsage:
    """statfs of the filesystem holding ``fd``; OSError propagates (never guessed)."""
    st = os.fstatvfs(fd)
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    fraction = used / (used + available) if used + available else 0.0
    return DiskUsage(total, used, available, fraction)
