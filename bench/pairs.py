"""Two commands timed in alternation, so that load from other processes on a shared machine hits both alike."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.common import Timing, drop_caches, run_once


def alternate(
    first: Sequence[str], second: Sequence[str], repeats: int, warmups: int = 1
) -> tuple[Timing, Timing]:
    """Median wall time and peak RSS of each command over ``repeats`` interleaved runs, after ``warmups``
    untimed runs of each (warm cache: neither pays for the first read of the tree)."""
    for _ in range(warmups):
        run_once(first)
        run_once(second)
    times: tuple[list[float], list[float]] = ([], [])
    peaks = [0.0, 0.0]
    for _ in range(repeats):
        for index, argv in enumerate((first, second)):
            drop_caches()
            elapsed, rss = run_once(argv)
            times[index].append(elapsed)
            peaks[index] = max(peaks[index], rss)
    return Timing(statistics.median(times[0]), peaks[0]), Timing(statistics.median(times[1]), peaks[1])
