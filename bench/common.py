"""Timing whole processes side by side: medians of wall time and peak memory per command."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATAGC = str(Path(sys.executable).with_name("datagc"))


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

    @property
    def ratio(self) -> float:
        return self.datagc_s / self.anchor_s if self.anchor_s else float("inf")


def drop_caches() -> None:
    """Flush dirty pages so one run's writeback doesn't land in the next one's timing."""
    os.sync()


def run_once(argv: Sequence[str], ok_codes: Sequence[int] = (0,)) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, peak RSS MiB) of that process alone (wait4 rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code not in ok_codes:
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {error[-2000:]}")
    if process.stderr:
        process.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


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
