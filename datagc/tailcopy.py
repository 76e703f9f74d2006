"""Lossless, order-keeping keep-the-tail rotation of an append-only log (SPEC §7 rules 4, 5 and 15).

One rotation, for writers that open the path, append one line and close
(Node's ``fs.appendFile``):

1. The cut is found by reading backwards from the end in blocks
   (:func:`find_cut`), so the cost follows the bytes kept, not the log's size.
2. The kept complete lines are copied into a temp file in the same directory
   (with the log's mode and owner) inside the kernel (``copy_file_range``), then
   the complete lines appended meanwhile, until the size stops growing. The
   temp always ends on a line boundary; a partial last line (a writer
   mid-append) waits until it is complete. A write lease is taken on the temp
   as soon as it exists (:mod:`datagc.carryover`).
3. The temp is fsynced and renamed over the log; the directory is fsynced
   in the background during step 4 (writers wait for step 4, not for the disk). Until this
   rename the log is untouched: any failure (ENOSPC included) removes the
   temp and leaves the log as it was.
4. Writers that opened the old path before the rename may still append to the
   old inode: :func:`datagc.carryover.carry_late_lines` appends what it gains
   to the new log while the lease holds every writer's next ``open()`` back,
   so each writer's lines stay in the order it wrote them.

A writer that keeps the log open for good (a long-lived descriptor) is not
waited for beyond ``max_wait``: what it writes afterwards goes to the unlinked
old inode. That limitation is reported, never hidden.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import NamedTuple

from datagc.carryover import (
    CHUNK,
    MAX_WAIT_S,
    ORDER_WAIT_S,
    SETTLE_S,
    Carried,
    NewLogLease,
    OrderRisk,
    carry_late_lines,
)
from datagc.model import Rotate
from datagc.safety.datadir import DataDir, split_path
from datagc.safety.rewrite import commit_temp, create_temp_like, discard_temp

#: Bytes read per step when searching backwards for line ends.
BLOCK = 256 * 1024
#: Rounds of copying what was appended before the rename (the rest is caught up after it).
PRE_RENAME_ROUNDS = 8
#: copy_file_range can't do it here: copy through user space instead.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS, errno.EBADF})

ReadAt = Callable[[int, int], bytes]


# --- the cut ------------------------------------------------------------------


class Cut(NamedTuple):
    """Where a log is cut: bytes ``[start, size)`` are kept.

    ``[start, lines_end)`` holds the ``lines_kept`` newest complete lines;
    ``[lines_end, size)`` is a partial last line (no final newline yet), kept
    as it is and not counted.
    """

    size: int
    start: int
    lines_end: int
    lines_kept: int
    #: fewer than keep_lines were kept because they did not fit in keep_bytes
    capped: bool

    @property
    def kept_bytes(self) -> int:
        return self.size - self.start

    @property
    def partial_bytes(self) -> int:
        return self.size - self.lines_end


def find_cut(read_at: ReadAt, size: int, keep_lines: int, keep_bytes: int, block: int = BLOCK) -> Cut | None:
    """Cut keeping the newest ``keep_lines`` complete lines, and at most ``keep_bytes`` bytes in all.

    Reads backwards from ``size`` in blocks of ``block`` bytes through
    ``read_at(offset, length)``, never further back than ``keep_bytes + 1``
    bytes. The line boundary is ``\\n`` (a ``\\r`` stays part of its line).
    When the newest ``keep_lines`` lines are larger than ``keep_bytes``, the
    newest lines that fit are kept (possibly none). The partial last line
    counts against ``keep_bytes``. Returns None when it alone is larger than
    ``keep_bytes`` (no line end in the last ``keep_bytes`` bytes): such a log
    can't be cut safely.
    """
    limit = max(0, size - keep_bytes - 1)
    wanted = keep_lines + 1  # the newline before the oldest kept line marks the cut
    found = 0
    last_newline = -1
    lowest_newline = -1
    end = size
    while end > limit:
        begin = max(limit, end - block)
        data = read_at(begin, end - begin)
        if len(data) != end - begin:
            raise _shrank()
        count = data.count(b"\n")
        if count:
            if last_newline < 0:
                last_newline = begin + data.rfind(b"\n")
            if found + count >= wanted:
                index = len(data)
                for _ in range(wanted - found):
                    index = data.rfind(b"\n", 0, index)
                return Cut(size, begin + index + 1, last_newline + 1, keep_lines, capped=False)
            found += count
            lowest_newline = begin + data.find(b"\n")
        end = begin
    lines_end = last_newline + 1
    if size <= keep_bytes:
        return Cut(size, 0, lines_end, found, capped=False)
    if found == 0:
        return None
    return Cut(size, lowest_newline + 1, lines_end, found - 1, capped=True)


def _shrank() -> OSError:
    return OSError(errno.EIO, "the log shrank while it was being read (truncated by another process?)")


# --- one rotation -------------------------------------------------------------


class Rotation(NamedTuple):
    """What one rotation did.

    This module's value types are NamedTuples: a frozen dataclass costs every
    start-up of a rotating command ~0.5 ms to build.
    """

    path: str
    cut: Cut
    #: False when the cut keeps everything: nothing was rewritten
    rotated: bool
    #: bytes appended to the old log during the rotation and carried into the new one
    carried_bytes: int = 0
    #: allocated bytes that come back once the old inode is closed
    reclaimed_bytes: int = 0
    #: a writer still held the old log open after ``max_wait``: what it writes later is not carried over
    writer_lingered: bool = False
    #: a failure after the rename while carrying appended lines over (the rotation itself stands)
    carry_error: str | None = None
    uncarried_bytes: int = 0
    #: None when each writer's order is kept; else why it may not be (see :data:`datagc.carryover.OrderRisk`)
    order_risk: OrderRisk | None = None
    #: why the new log could not be leased (with order_risk "no-lease")
    lease_error: str | None = None
    #: how long the service's appends were held back by the lease (from the rename to its release)
    held_seconds: float = 0.0

    @property
    def action(self) -> Rotate:
        return Rotate(self.path, self.cut.size, self.cut.kept_bytes, self.cut.lines_kept)


def failure_reason(error: OSError) -> str:
    """Why a rotation did not happen, in the operator's words."""
    if error.errno == errno.ENOSPC:
        return "no space left on the device for the kept tail"
    if error.errno == errno.EROFS:
        return "the filesystem is read-only"
    if error.errno == errno.ELOOP:
        return "it is a symlink now"
    return error.strerror or str(error)


def rotate_path(
    data_dir: DataDir,
    path: str,
    keep_lines: int,
    keep_bytes: int,
    *,
    settle: float = SETTLE_S,
    max_wait: float = MAX_WAIT_S,
    order_wait: float = ORDER_WAIT_S,
) -> Rotation:
    """Rotate the log at ``path`` (relative to DATA_DIR); see :func:`rotate_log`."""
    if path in data_dir.mount_points:
        raise OSError(errno.EXDEV, "is a mount point", path)
    head, name = split_path(path)
    dir_fd = data_dir.open_dir(head)
    try:
        return rotate_log(dir_fd, name, path, keep_lines, keep_bytes, dev=data_dir.dev,
                          settle=settle, max_wait=max_wait, order_wait=order_wait)
    finally:
        os.close(dir_fd)


def rotate_log(
    dir_fd: int,
    name: str,
    path: str,
    keep_lines: int,
    keep_bytes: int,
    *,
    dev: int,
    settle: float = SETTLE_S,
    max_wait: float = MAX_WAIT_S,
    order_wait: float = ORDER_WAIT_S,
) -> Rotation:
    """Keep only the tail of the log ``name`` in ``dir_fd``, losing no line appended meanwhile.

    ``path`` names it in messages; ``dev`` is the filesystem it must be on.
    Raises OSError, with the log untouched and no temp left, when it can't be
    rotated (not a regular file, a symlink, on another filesystem, no line end
    in its last ``keep_bytes`` bytes, replaced meanwhile, ENOSPC, EROFS, …).
    """
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        before = os.fstat(src)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", path)
        if before.st_dev != dev:
            raise OSError(errno.EXDEV, "is on another filesystem than the data directory", path)
        cut = find_cut(lambda offset, length: os.pread(src, length, offset), before.st_size, keep_lines, keep_bytes)
        if cut is None:
            raise OSError(errno.EINVAL, f"has no line end in its last {keep_bytes} bytes (rotate.keep_bytes)", path)
        if cut.start == 0:
            return Rotation(path, cut, rotated=False)
        lease = NewLogLease()
        temp, dst = create_temp_like(dir_fd, name, before, on_create=lease.take)
        try:
            try:
                pos = _copy_before_rename(src, dst, cut)
                os.fsync(dst)
                _check_same_file(dir_fd, name, before, path)
                commit_temp(dir_fd, temp, name, sync_dir=False)  # synced once writers are let in again
            except BaseException:
                discard_temp(dir_fd, temp)
                raise
            carried = carry_late_lines(src, dst, dir_fd, pos, lease, settle=settle, max_wait=max_wait,
                                       order_wait=order_wait)
            return _outcome(path, cut, carried, lease, os.fstat(src), os.fstat(dst))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_before_rename(src: int, dst: int, cut: Cut) -> int:
    """Fill the temp with the kept lines and the complete lines appended since; return where it stopped."""
    _copy_range(src, dst, cut.start, cut.lines_end)
    pos = cut.lines_end
    seen = cut.size
    for _ in range(PRE_RENAME_ROUNDS):
        size = os.fstat(src).st_size
        end = _last_line_end(src, pos, size)
        if end > pos:
            _copy_range(src, dst, pos, end)
            pos = end
        if size == seen:
            break
        seen = size
    return pos


def _check_same_file(dir_fd: int, name: str, before: os.stat_result, path: str) -> None:
    """Refuse to rename over a log that was replaced (another inode) while the temp was written."""
    now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        raise OSError(errno.EAGAIN, "was replaced by another file while being rotated", path)


def _outcome(path: str, cut: Cut, carried: Carried, lease: NewLogLease, old: os.stat_result,
             new: os.stat_result) -> Rotation:
    # renamed over, the old inode has no name left (nlink 0) unless the log had other hard links
    freed = old.st_blocks * 512 if old.st_nlink == 0 and not carried.lingered else 0
    return Rotation(
        path,
        cut,
        rotated=True,
        carried_bytes=max(0, carried.done - cut.size),
        reclaimed_bytes=max(0, freed - new.st_blocks * 512),
        writer_lingered=carried.lingered,
        carry_error=carried.error,
        uncarried_bytes=max(0, old.st_size - carried.done),
        order_risk=carried.order_risk,
        lease_error=lease.error,
        held_seconds=carried.held_s,
    )


# --- copying --------------------------------------------------------------------


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Append ``src[start:end)`` at ``dst``'s offset, inside the kernel where the filesystem allows."""
    pos = start
    while pos < end:
        try:
            copied = os.copy_file_range(src, dst, end - pos, pos)
        except OSError as error:
            if error.errno not in _NO_KERNEL_COPY:
                raise
            _copy_range_user(src, dst, pos, end)
            return
        if copied == 0:
            # not necessarily a shrink: overlayfs checks the range against its own inode's size, which lags
            # behind a write that just landed in the upper file; pread reads the real file and tells
            _copy_range_user(src, dst, pos, end)
            return
        pos += copied


def _copy_range_user(src: int, dst: int, pos: int, end: int) -> None:
    while pos < end:
        data = os.pread(src, min(CHUNK, end - pos), pos)
        if not data:
            raise _shrank()
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
        pos += len(data)


def _last_line_end(fd: int, start: int, end: int) -> int:
    """The offset just past the last ``\\n`` in ``fd[start:end)``, or ``start`` if there is none."""
    while end > start:
        begin = max(start, end - BLOCK)
        data = os.pread(fd, end - begin, begin)
        index = data.rfind(b"\n")
        if index >= 0:
            return begin + index + 1
        end = begin
    return start
