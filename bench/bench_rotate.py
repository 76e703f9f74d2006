"""``datagc rotate`` keeping 10,000 lines of a 1 GiB and a 4 GiB log, beside ``tail -n 10000 LOG > T && mv T LOG``.

Goals (SPEC §8): at most 2× the anchor, the same time for 4 GiB as for
1 GiB, and a few MiB of memory for the rotation itself.

The log is recreated before every run of either tool: a real copy (made in
the kernel from a master written once, lines shaped like the service's
``events.jsonl``, 100-200 bytes each), synced. In the "cold" cases its pages are
then dropped from the page cache (``posix_fadvise DONTNEED``, this file only),
as for a log written over days; in the "warm" case they stay cached, and both
tools pay the kernel's freeing of the cached pages when the old log goes.
Each run is checked: exactly the newest 10,000 lines are left.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from bench.common import DATAGC, Row, drop_caches, fresh_dir, run_once

GiB = 1024**3
KEEP = 10_000
#: (case, bytes at BENCH_SCALE 1, pages cached when the tool starts)
CASES = (("1 GiB, cold", GiB, False), ("4 GiB, cold", 4 * GiB, False), ("1 GiB, warm", GiB, True))
#: runs per tool and case at most: every run rewrites up to 4 GiB first
MAX_REPEATS = 3


def event(index: int) -> bytes:
    """One event line of 100-200 bytes in the service's shape."""
    text = "x" * (index * 7919 % 90)
    return (b'{"type":"monologue","text":"thinking about item %d %s","state":"monologuing","ts":%d}\n'
            % (index, text.encode(), 1_763_999_800_000 + index))


def write_master(path: Path, size: int) -> int:
    """A log of about ``size`` bytes of distinct numbered events; returns its line count."""
    count = 0
    written = 0
    with path.open("wb") as log:
        while written < size:
            block = b"".join(event(index) for index in range(count, count + 20_000))
            log.write(block)
            written += len(block)
            count += 20_000
    return count


def copy_fresh(master: Path, log: Path, cached: bool) -> None:
    """Recreate ``log`` as a real copy of ``master``, synced; evict its pages unless ``cached``."""
    log.unlink(missing_ok=True)
    src = os.open(master, os.O_RDONLY)
    dst = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        size = os.fstat(src).st_size
        copied = 0
        while copied < size:
            copied += os.copy_file_range(src, dst, size - copied, copied)
        os.fsync(dst)
        if not cached:
            os.posix_fadvise(dst, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(src)
        os.close(dst)


def check(log: Path, lines: int) -> None:
    data = log.read_bytes()
    expected = b"".join(event(index) for index in range(lines - KEEP, lines))
    if data != expected:
        raise RuntimeError(f"{log} does not hold exactly the newest {KEEP} lines after the run")


def compare(workdir: Path, case: str, size: int, cached: bool, repeats: int) -> Row:
    data_dir = fresh_dir(workdir / "data")
    master = workdir / "master.jsonl"
    lines = write_master(master, size)
    log = data_dir / "events.jsonl"
    datagc = [DATAGC, "rotate", "--data-dir", str(data_dir), "--max-bytes", "50MiB", "--keep-lines", str(KEEP),
              "--json"]
    anchor = ["sh", "-c", f"tail -n {KEEP} {log} > {data_dir}/T && mv {data_dir}/T {log}"]
    times: dict[str, list[float]] = {"datagc": [], "anchor": []}
    peak = 0.0
    try:
        for _ in range(repeats):
            for name, argv, ok in (("datagc", datagc, (4,)), ("anchor", anchor, (0,))):
                copy_fresh(master, log, cached)
                drop_caches()
                elapsed, rss = run_once(argv, ok)
                check(log, lines)
                times[name].append(elapsed)
                if name == "datagc":
                    peak = max(peak, rss)
    finally:
        master.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
    return Row("rotate", case, statistics.median(times["datagc"]), "tail -n 10000 > T && mv T LOG",
               statistics.median(times["anchor"]), peak)


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    repeats = max(1, min(repeats, MAX_REPEATS))
    rows = []
    for case, size, cached in CASES:
        scaled = max(64 * 1024**2, round(size * scale))
        label = case if scale == 1 else f"{case} (scaled to {scaled / 1024**2:.0f} MiB)"
        rows.append(compare(workdir, label, scaled, cached, repeats))
    return rows
