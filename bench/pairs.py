"""Commands timed in alternation, so that load from other processes on a shared machine hits them alike."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.common import Timing, drop_caches, drop_page_cache, run_once


def alternate(
    first: Sequence[str], second: Sequence[str], repeats: int, warmups: int = 1, cold: bool = False
) -> tuple[Timing, Timing]:
    """``interleave`` of two commands."""
    one, two = interleave([first, second], repeats, warmups, cold)
    return one, two


def interleave(
    commands: Sequence[Sequence[str]], repeats: int, warmups: int = 1, cold: bool = False
) -> list[Timing]:
    """Median wall time and peak RSS of each command over ``repeats`` interleaved runs, after ``warmups``
    untimed runs of each (warm cache: none pays for the first read of the tree).

    ``cold``: no warm-up, and the page, dentry and inode caches are dropped
    before every run (``drop_page_cache``; the caller checks that it is permitted).
    """
    for _ in range(0 if cold else warmups):
        for argv in commands:
            run_once(argv)
    times: list[list[float]] = [[] for _ in commands]
    peaks = [0.0 for _ in commands]
    for _ in range(repeats):
        for index, argv in enumerate(commands):
            if cold:
                drop_page_cache()
            else:
                drop_caches()
            elapsed, rss = run_once(argv)
            times[index].append(elapsed)
            peaks[index] = max(peaks[index], rss)
    return [Timing(statistics.median(spent), peak) for spent, peak in zip(times, peaks, strict=True)]
