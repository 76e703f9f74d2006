"""Checked deletion: a file is unlinked only if it is still the one planned; many from several processes."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, NoReturn

from datagc.facts import FileIdentity

if TYPE_CHECKING:
    import signal
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


#: a plan deleting at least this many files unlinks them from several worker processes
PARALLEL_UNLINKS = 1000
#: processes unlinking at once: an unlink waits on the disk (a discard, a journal block), so several overlap
#: beyond the cores
UNLINK_WORKERS = 4
#: outcomes a worker sends back at a time (each send is one pipe write; they come in plan order)
FRAME = 512
#: what became of one file: UNLINKED, VANISHED, CHANGED or an OSError
Outcome = str | OSError
Task = tuple[int, str, FileIdentity] | OSError


def unlink_each(
    dirs: DirCache, targets: Sequence[tuple[str, FileIdentity]], meanwhile: Callable[[], None] = lambda: None
) -> Generator[Outcome, None, None]:
    """``unlink_if_unchanged`` for every (path, planned identity) (its re-check, then its unlink), in order:
    each outcome is UNLINKED, VANISHED, CHANGED or the OSError met (its directory's, when it can't be opened).

    Directories are opened here, each once; for a large plan the checks and
    unlinks then run in ``UNLINK_WORKERS`` forked processes, each taking a
    contiguous share (``_forked``), and the outcomes are yielded in plan order
    as they come back. ``DATAGC_PARALLEL_THRESHOLD`` lowers the size from
    which they do (0: always). ``meanwhile`` runs once the workers are started,
    before the first outcome is yielded.
    """
    tasks: list[Task] = []
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
    yield from _forked(tasks, meanwhile)


def _forked(tasks: Sequence[Task], meanwhile: Callable[[], None]) -> Generator[Outcome, None, None]:
    """``_run_tasks`` over ``tasks`` split among ``UNLINK_WORKERS`` forked processes, the outcomes in order.

    Processes, not threads: the unlinks run on every core and the parent's own
    work meanwhile (planning the next part, journaling and reporting this one)
    never waits for a lock held by them. With threads it waited for the GIL
    after each of its writes (a pressure pass evicting 50k files of 200k: 1.1 s
    of its 4.4 s of unlinking spent writing its report lines to /dev/null).

    Each worker sends its outcomes a ``FRAME`` at a time, without waiting for
    the caller to take them. A caller that stops early closes the pipes: each
    worker stops at its next send, and is reaped before this returns; what the
    workers had done that the caller had not taken is unlinked but not
    reported (the caller has stopped reporting). The workers ignore SIGINT
    and SIGTERM: the parent decides when to stop (``watch`` ends between
    passes); a parent killed by one leaves its workers to stop at their next send.
    """
    import functools
    import pickle  # noqa: F401 - imported before the fork: the workers use it
    import signal

    from datagc import parallel

    stop = {signal.SIGINT, signal.SIGTERM}  # the parent's to act on (``watch`` ends between passes)
    size = -(-len(tasks) // UNLINK_WORKERS)
    workers: list[tuple[int, int]] = []
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # over the forks: no worker dies of one before ignoring it
        try:
            for start in range(0, len(tasks), size):
                work = functools.partial(_worker, tasks[start:start + size], stop=stop)
                workers.append(parallel.fork_worker(workers, work))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)
        meanwhile()
        for index, (_, read_end) in enumerate(workers):
            yield from _outcomes(read_end, min(size, len(tasks) - index * size))
    finally:
        for _, read_end in workers:
            os.close(read_end)
        for pid, _ in workers:
            os.waitpid(pid, 0)


def _worker(tasks: Sequence[Task], write_end: int, stop: set[signal.Signals]) -> NoReturn:
    """Check and unlink ``tasks``, sending the outcomes back a frame at a time; never returns. The ``stop``
    signals are ignored (they came blocked from the parent)."""
    import pickle
    import signal

    status = 0
    try:
        for signum in stop:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)
        with open(write_end, "wb") as pipe:
            for start in range(0, len(tasks), FRAME):
                frame = pickle.dumps(_run_tasks(tasks[start:start + FRAME]), pickle.HIGHEST_PROTOCOL)
                pipe.write(len(frame).to_bytes(4, "little") + frame)
                pipe.flush()
    except BaseException:  # the parent stopped reading (EPIPE), or worse: it sees the frames missing
        status = 1
    finally:
        os._exit(status)


def _outcomes(read_end: int, expected: int) -> Iterator[Outcome]:
    """One worker's outcomes, frame by frame, until ``expected`` are read."""
    import pickle

    got = 0
    with open(read_end, "rb", closefd=False) as pipe:
        while got < expected:
            header = pipe.read(4)
            frame = pipe.read(int.from_bytes(header, "little")) if len(header) == 4 else b""
            if not frame:
                raise RuntimeError(f"an unlink worker stopped after {got} of {expected} files")
            outcomes: list[Outcome] = pickle.loads(frame)
            got += len(outcomes)
            yield from outcomes


def _run_tasks(tasks: Sequence[Task]) -> list[Outcome]:
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
