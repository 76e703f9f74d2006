"""The fd-relative walk: every entry under a directory, no symlink followed, no mount entered."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from datagc.safety.datadir import DIR_FLAGS, DataDir, join_path

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
