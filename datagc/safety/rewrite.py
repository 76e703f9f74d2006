"""Atomic rewrites: datagc's temp names, temp + fsync + rename, and the conditional replace of a file
another process rewrites (rename-exchange)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from datagc.facts import FileIdentity
from datagc.safety.unlink import CHANGED

#: Marks datagc's own temp files; ``TEMP_MARK`` never appears in a service file name.
TEMP_MARK = ".datagc-tmp."


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
