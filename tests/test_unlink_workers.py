"""A large plan's files are checked and unlinked by forked worker processes (``datagc.safety.unlink``): their
outcomes come back in plan order, a stop signal meant for the pass doesn't stop them half way, and nothing is
unlinked once the caller has stopped taking outcomes."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from datagc.facts import FileIdentity
from datagc.safety.datadir import DataDir
from datagc.safety.unlink import CHANGED, FRAME, UNLINK_WORKERS, UNLINKED, DirCache, unlink_each


def _tree(root: Path, count: int) -> list[tuple[str, FileIdentity]]:
    targets = []
    for index in range(count):
        path = root / f"d{index // 250:02d}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (index % 7))
        targets.append((str(path.relative_to(root)), FileIdentity.of(path.lstat())))
    return targets


def _children() -> list[int]:
    """This process's children (its workers while ``unlink_each`` runs)."""
    pids: list[int] = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children", encoding="ascii") as listing:
            pids += [int(pid) for pid in listing.read().split()]
    return pids


def _left(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*.bin")}


def test_outcomes_come_in_plan_order_and_a_changed_file_stays(tmp_path: Path) -> None:
    targets = _tree(tmp_path, UNLINK_WORKERS * FRAME + 3)  # every worker sends several frames
    changed = {targets[1][0], targets[FRAME][0], targets[-1][0]}
    for path in changed:
        (tmp_path / path).write_bytes(b"rewritten since planned")
    with DataDir(tmp_path) as data_dir, DirCache(data_dir) as dirs:
        outcomes = list(unlink_each(dirs, targets))
    assert outcomes == [CHANGED if path in changed else UNLINKED for path, _ in targets]
    assert _left(tmp_path) == changed
    assert _children() == []


def test_stop_signals_for_the_pass_do_not_stop_the_workers_half_way(tmp_path: Path) -> None:
    """``watch`` ends between passes: a SIGTERM or SIGINT sent to the whole group reaches the workers too."""
    targets = _tree(tmp_path, 4000)
    signalled: list[int] = []

    def signal_workers() -> None:
        for pid in _children():
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGINT)
            signalled.append(pid)

    with DataDir(tmp_path) as data_dir, DirCache(data_dir) as dirs:
        outcomes = list(unlink_each(dirs, targets, signal_workers))
    assert len(signalled) == UNLINK_WORKERS
    assert outcomes == [UNLINKED] * len(targets)
    assert _left(tmp_path) == set()


def test_nothing_is_unlinked_once_the_caller_has_stopped(tmp_path: Path) -> None:
    targets = _tree(tmp_path, 8000)
    with DataDir(tmp_path) as data_dir, DirCache(data_dir) as dirs:
        outcomes = unlink_each(dirs, targets)
        assert next(outcomes) == UNLINKED
        outcomes.close()  # as when the executor's loop ends in an exception
        assert _children() == []  # every worker reaped
        left = _left(tmp_path)
    time.sleep(0.3)
    assert _left(tmp_path) == left  # no worker still at work
    assert targets[0][0] not in left and len(left) < len(targets)


def _pipes(pid: int) -> set[str]:
    """The pipes ``pid`` has open (``pipe:[inode]``); none once it has exited."""
    pipes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if (link := os.readlink(f"/proc/{pid}/fd/{fd}")).startswith("pipe:"):
                    pipes.add(link)
    return pipes


def test_each_worker_holds_only_its_own_pipe(tmp_path: Path) -> None:
    """A worker that kept another's read end open would keep that one from seeing the parent stop (or die):
    it would go on unlinking its whole share, unreported."""
    targets = _tree(tmp_path, UNLINK_WORKERS * 2000)
    shared: dict[int, int] = {}
    before = _pipes(os.getpid())  # pytest's own: the workers inherit those too

    def inspect_workers() -> None:
        workers = _children()
        firsts = [tmp_path / path for path, _ in targets[::2000]]  # each worker's first file: once it is gone,
        deadline = time.monotonic() + 60                             # that worker is past its start
        while any(path.exists() for path in firsts) and time.monotonic() < deadline:
            time.sleep(0.001)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            read_ends = _pipes(os.getpid()) - before  # one per worker, in the parent
            for pid in workers:
                if held := _pipes(pid):  # a worker already done has none left
                    shared[pid] = len(held & read_ends)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)

    with DataDir(tmp_path) as data_dir, DirCache(data_dir) as dirs:
        outcomes = list(unlink_each(dirs, targets, inspect_workers))
    assert outcomes == [UNLINKED] * len(targets)
    assert shared, "no worker was still running to be inspected"
    assert set(shared.values()) == {1}, shared
