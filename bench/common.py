"""Timing whole processes side by side: medians of wall time and peak memory per command."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATAGC = str(Path(sys.executable).with_name("datagc"))
#: GNU time, for the peak memory of one command (optional: without it the peak is not measured)
TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class Timing:
    median_s: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table: a pass beside its anchor tool on identical input."""

    pass_name: str
    case: str
    datagc_s: float
    anchor_name: str
    anchor_s: float
    peak_rss_mib: float
    #: this row's goal as a ratio, if it isn't its pass's (``run.GOALS``); ``NO_GOAL`` for a row shown for scale
    goal: float | None = None

    @property
    def ratio(self) -> float:
        return self.datagc_s / self.anchor_s if self.anchor_s else float("inf")


#: the goal of a row that is measured for scale only
NO_GOAL = float("inf")


def drop_caches() -> None:
    """Flush dirty pages so one run's writeback doesn't land in the next one's timing."""
    os.sync()


def drop_page_cache() -> bool:
    """Write back, then drop the page, dentry and inode caches (a cold cache, as at boot).

    Needs root and a writable /proc/sys (not in every container); returns
    whether the caches were dropped. This affects everything on the machine.
    """
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as handle:
            handle.write("3\n")
    except OSError:
        return False
    return True


def child_env() -> dict[str, str]:
    """The environment of the timed commands: bytecode caches used, as in an installed package.

    A session that exports PYTHONDONTWRITEBYTECODE would otherwise make every
    datagc run compile its modules from source, which no installed datagc does.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_datagc() -> None:
    """Write datagc's bytecode once (pip does so on install; an editable checkout may not have it yet)."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "datagc"), quiet=1)


def run_once(argv: Sequence[str], ok_codes: Sequence[int] = (0,)) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, peak RSS MiB of that process alone).

    The peak comes from GNU time (``%M``), not from this process's wait4: a
    child's ru_maxrss also counts the memory of the fork it was exec'd from.
    """
    with tempfile.NamedTemporaryFile("r") as memory:
        command = [TIME, "-f", "%M", "-o", memory.name, *argv] if TIME else list(argv)
        start = time.perf_counter()
        process = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
                                 env=child_env())
        elapsed = time.perf_counter() - start
        if process.returncode not in ok_codes:
            error = process.stderr.decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {error[-2000:]}")
        lines = memory.read().split()
    peak_kib = float(lines[-1]) if lines and lines[-1].isdigit() else float("nan")
    return elapsed, peak_kib / 1024


def time_command(
    argv: Sequence[str],
    setup: Callable[[], None] | None = None,
    repeats: int = 5,
    ok_codes: Sequence[int] = (0,),
) -> Timing:
    """Median wall time of ``repeats`` runs, each after ``setup()`` (which rebuilds the input)."""
    times = []
    peak = 0.0
    for _ in range(repeats):
        if setup is not None:
            setup()
        drop_caches()
        elapsed, rss = run_once(argv, ok_codes)
        times.append(elapsed)
        peak = max(peak, rss)
    return Timing(statistics.median(times), peak)


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def count_files(root: Path) -> int:
    """Files under ``root``, leaving out datagc's own state dir (``.datagc``: its journal is not the tree's)."""
    total = 0
    for _, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name != ".datagc"]
        total += len(files)
    return total
