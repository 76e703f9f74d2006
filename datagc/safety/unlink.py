"""Checked deletion: a file is unlinked only if it is still the one planned; many from several threads."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence

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


#: a plan deleting at least this many files unlinks them from several threads
PARALLEL_UNLINKS = 1000
#: threads unlinking at once: the kernel's work on one filesystem overlaps well beyond the cores
UNLINK_THREADS = 4
#: what became of one file: UNLINKED, VANISHED, CHANGED or an OSError
Outcome = str | OSError


def unlink_each(
    dirs: DirCache, targets: Sequence[tuple[str, FileIdentity]], meanwhile: Callable[[], None] = lambda: None
) -> Iterator[Outcome]:
    """``unlink_if_unchanged`` for every (path, planned identity) (its re-check, then its unlink), in order:
    each outcome is UNLINKED, VANISHED, CHANGED or the OSError met (its directory's, when it can't be opened).

    Directories are opened here, one thread, each once; for a large plan the
    checks and unlinks then run from ``UNLINK_THREADS`` threads (both release
    the GIL), in contiguous slices, and the outcomes are yielded in plan order
    as their slice completes. ``DATAGC_PARALLEL_THRESHOLD`` lowers the size
    from which they do (0: always). ``meanwhile`` runs once the threads are
    started, before the first outcome is yielded.
    """
    tasks: list[tuple[int, str, FileIdentity] | OSError] = []
    opened: dict[str, int | OSError] = {}
    for path, identity in targets:
        directory, _, name = path.rpartition("/")
        dir_fd = opened.get(directory)
        if dir_fd is None:
            try:
                dir_fd = opened[directory] = dirs.get(directory)
            except OSError as error:
                dir_fd = opened[directory] = error
        tasks.append(dir_fd if isinstance(dir_fd, OSError) else (dir_fd, name, identity))
    from datagc import parallel  # it loads the walk machinery: kept out of commands that delete nothing

    threshold = min(PARALLEL_UNLINKS, parallel.threshold())
    if len(tasks) < max(threshold, 2):
        yield from _run_tasks(tasks)
        return
    from concurrent.futures import ThreadPoolExecutor  # only large plans need it

    size = max(64, len(tasks) // (UNLINK_THREADS * 8))
    slices = [tasks[start:start + size] for start in range(0, len(tasks), size)]
    pool = ThreadPoolExecutor(UNLINK_THREADS, thread_name_prefix="datagc-unlink")
    try:
        outcomes = pool.map(_run_tasks, slices)
        meanwhile()
        for part in outcomes:
            yield from part
    finally:  # a caller that stops early: the slices not started are never unlinked (nor reported)
        pool.shutdown(wait=True, cancel_futures=True)


def _run_tasks(tasks: Sequence[tuple[int, str, FileIdentity] | OSError]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for task in tasks:
        if isinstance(task, OSError):
            outcomes.append(task)
            continue
        try:
            outcomes.append(unlink_if_unchanged(*task))
        except OSError as error:
            outcomes.append(error)
    return outcomes
