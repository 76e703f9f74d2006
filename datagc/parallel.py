"""The walk on every core: one tree split across forked worker processes.

Processes, not threads: a thread releases the GIL only inside ``getdents``
and ``fstatat``, and the Python work around each entry (the stat result, the
pass's tally) then runs one thread at a time; measured on 2 cores, two threads
were slower than one. Each worker walks its ``Share`` of the tree (``datagc.safety.walk``) with
the serial walk itself (``walk``: the same fd-relative opens, no
symlink followed, the per-directory ``st_dev`` and mount point checks), folds
what it sees into a compact result (tallies, candidates) and sends that back
pickled; the parent walks share 0 itself and merges. Workers are forked:
nothing is imported or configured again, and the feed index and configuration
the pass already holds are theirs too.

A tree smaller than ``threshold()`` entries is walked serially (forking costs
more than it saves). ``DATAGC_PARALLEL_THRESHOLD`` sets the threshold (0: every
walk is split, even on one core; the test suite runs this way), and
``DATAGC_WALK_WORKERS`` the number of workers (default: the usable cores, or
twice as many when the probe had to read the disk, ``COLD_FACTOR``, for a fold
whose result stays small whatever its share: ``cold_workers``).

A walk on a cold cache (the boot audit) waits on the disk for each directory
and inode, and workers that wait don't use their core: more workers than cores
overlap more of that waiting (measured on 2 cores, 200k files, caches dropped:
2 workers 1.27-1.32 s, 4 workers 1.02-1.04 s, 8 1.10-1.34), while on a warm
cache they only add forks and switches (4 workers: ~10% more CPU time than 2).
Whether the cache is cold is measured, not guessed: the probe's blocks read
from storage (``/proc/self/io``'s ``read_bytes``: 0 on a warm cache, ~1 MiB
for 4000 entries of a cold one).
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn, TypeVar

from datagc.safety.datadir import DataDir
from datagc.safety.walk import Share, WalkEntry, WalkErrorHandler, count_entries, walk

R = TypeVar("R")
#: folds one walk (all of it, or a worker's share) into a result; the share is None for a serial walk
Fold = Callable[[Iterator[WalkEntry], Share | None], R]

THRESHOLD_ENV = "DATAGC_PARALLEL_THRESHOLD"
WORKERS_ENV = "DATAGC_WALK_WORKERS"
#: below this many entries a tree is walked serially (a fork and a pipe cost about what ~2000 stats do)
DEFAULT_THRESHOLD = 4000
#: more workers than this stop paying on one disk
MAX_WORKERS = 8
#: workers per core when the probe read from the disk (a cold cache)
COLD_FACTOR = 2


def threshold() -> int:
    return _env_int(THRESHOLD_ENV, DEFAULT_THRESHOLD)


def worker_count(cold: bool = False) -> int:
    """How many workers share a walk (the parent is one): the usable cores, ``COLD_FACTOR`` times as many on a
    ``cold`` cache, at most ``MAX_WORKERS``; ``DATAGC_WALK_WORKERS`` overrides."""
    cores = len(os.sched_getaffinity(0))
    count = _env_int(WORKERS_ENV, min(cores * (COLD_FACTOR if cold else 1), MAX_WORKERS))
    return max(2, count) if threshold() == 0 else max(1, count)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return max(0, int(value)) if value else default
    except ValueError:
        return default


def fold_walk(
    data_dir: DataDir, tops: str | Sequence[str], fold: Fold[R], on_error: WalkErrorHandler | None = None,
    cold_workers: bool = False,
) -> list[R]:
    """``fold`` applied to the walk of ``tops`` (one directory, or several walked one after the other): one
    result from a serial walk, or one per worker's share (one probe and one set of workers for them all).

    ``cold_workers``: the fold's result is as small whatever the share (audit's census), so a cold cache may
    be walked by more workers than cores. A fold whose result grows with each share (pressure's victims: each
    worker sends up to all that the whole plan needs) keeps one worker per core, and its memory bound.

    ``on_error`` receives every directory the walk couldn't read, once (split:
    in the parent, afterwards, in path order). A worker that fails raises here, after every
    other worker has been reaped.
    """
    tops = (tops,) if isinstance(tops, str) else tuple(tops)
    limit = threshold()
    cold = False
    if limit:
        read_before = _read_bytes()
        if _count(data_dir, tops, limit) < limit:
            return [fold(_walks(data_dir, tops, on_error, None), None)]
        cold = cold_workers and _read_bytes() > read_before
    workers = worker_count(cold)
    if workers < 2:
        return [fold(_walks(data_dir, tops, on_error, None), None)]
    return _forked(data_dir, tops, fold, workers, on_error)


def _read_bytes() -> int:
    """The bytes this process has had read from storage (not from the page cache); 0 where the kernel doesn't say."""
    try:
        with open("/proc/self/io", "rb") as io:
            for line in io:
                if line.startswith(b"read_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _count(data_dir: DataDir, tops: tuple[str, ...], limit: int) -> int:
    seen = 0
    for top in tops:
        seen += count_entries(data_dir, top, limit - seen)
        if seen >= limit:
            break
    return seen


def _walks(
    data_dir: DataDir, tops: tuple[str, ...], on_error: WalkErrorHandler | None, share: Share | None
) -> Iterator[WalkEntry]:
    for top in tops:
        yield from walk(data_dir, top, on_error, share)


def _forked(
    data_dir: DataDir, tops: tuple[str, ...], fold: Fold[R], workers: int, on_error: WalkErrorHandler | None
) -> list[R]:
    import pickle  # noqa: F401 - imported once here, before the fork; a serial walk never needs it

    children: list[tuple[int, int]] = []
    try:
        for index in range(1, workers):
            work = functools.partial(_child, data_dir, tops, fold, Share(index, workers))
            children.append(fork_worker(children, work))
        errors: list[tuple[str, OSError]] = []
        mine = Share(0, workers)
        results = [fold(_walks(data_dir, tops, lambda path, error: errors.append((path, error)), mine), mine)]
        outcomes: list[tuple[R, list[tuple[str, OSError]]]] = []
        while children:
            pid, read_end = children.pop(0)
            outcomes.append(_collect(pid, read_end))
    finally:
        for pid, read_end in children:  # the parent failed: stop the others
            os.close(read_end)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    for result, worker_errors in outcomes:
        results.append(result)
        errors.extend(worker_errors)
    if on_error is not None:
        for path, error in sorted(errors, key=lambda item: item[0]):  # workers' shares vary from run to run
            on_error(path, error)
    return results


def fork_worker(earlier: Sequence[tuple[int, int]], work: Callable[[int], NoReturn]) -> tuple[int, int]:
    """Fork a worker that runs ``work(write_end)`` and never returns; (its pid, the read end of its pipe).

    The worker closes the read ends of the ``earlier`` workers (pid, read end)
    it inherited: only the parent holds any, so that when the parent stops
    reading (or dies) every worker sees it at its next write (EPIPE), not only
    the last one forked.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns (measured through the parent)
        for _, other in earlier:
            os.close(other)
        os.close(read_end)
        work(write_end)
    os.close(write_end)
    return pid, read_end


def _child(data_dir: DataDir, tops: tuple[str, ...], fold: Fold[R], share: Share, write_end: int) -> NoReturn:
    """Walk ``share``, send (result, errors) or the failure, and leave without running the parent's exit code."""
    import pickle

    status = 1
    try:
        errors: list[tuple[str, OSError]] = []
        result = fold(_walks(data_dir, tops, lambda path, error: errors.append((path, error)), share), share)
        payload = pickle.dumps((True, (result, errors)), pickle.HIGHEST_PROTOCOL)
        status = 0
    except BaseException as error:  # everything goes back to the parent, which raises it
        payload = pickle.dumps((False, f"{type(error).__name__}: {error}"))
    try:
        with open(write_end, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(status)


def _collect(pid: int, read_end: int) -> tuple[R, list[tuple[str, OSError]]]:
    """The answer of one worker, which is reaped whatever happens."""
    import pickle

    try:
        with open(read_end, "rb") as pipe:
            payload = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    if not payload:
        raise RuntimeError(f"a walk worker ended without an answer (wait status {status})")
    ok, body = pickle.loads(payload)
    if not ok:
        raise RuntimeError(f"a walk worker failed: {body}")
    return body  # type: ignore[no-any-return]
