"""``datagc audit`` beside ``du -s`` (and gdu, a parallel Go ``du``, where installed).

Rows (SPEC §8): an empty data dir beside ``datagc --version`` (goal ≤ 1.5×:
the fixed cost); 10k and 40k files warm (for scale); 200k files warm (goal
≤ 1.3× ``du -s``) and cold (the boot audit, goal ≤ 0.9×: page, dentry and
inode caches dropped before every run of every tool, where /proc/sys permits;
otherwise the row says so); a million files for memory (< 200 MiB).

The tree is laid out like the service's media: four media directories, each
sharded into nested subdirectories of a few hundred small files. Each tree is
built once and read by every tool (audit only reads). gdu runs as
``gdu -n -s -p -x`` (non-interactive, total only, no progress, one filesystem).
The 200k rows also show the bare Python walk (``floor_walk.py``): scandir and
stat over one forked process per core and nothing else, the floor of datagc's walk.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.common import DATAGC, NO_GOAL, Row, drop_page_cache, fresh_dir
from bench.pairs import interleave

FILES = 200_000
#: smaller trees, where the fixed cost weighs (shown for scale)
SMALL = (10_000, 40_000)
MILLION = 1_000_000
#: the cold cache goal (SPEC §8: ahead of du, as gdu is)
COLD_GOAL = 0.9
#: the empty data dir's goal, against ``datagc --version``
EMPTY_GOAL = 1.5
#: an empty data dir is audited in well under a second: many runs for a stable median
EMPTY_RUNS = 20
GDU = shutil.which("gdu")
#: the bare Python walk (``floor_walk.py``), one process per usable core: the floor of any walk in Python
FLOOR = [sys.executable, "-S", str(Path(__file__).with_name("floor_walk.py"))]
FLOOR_NAME = f"bare Python walk, {len(os.sched_getaffinity(0))} processes"
#: share of the files in each media directory
SHARES = (("images", 0.5), ("videos", 0.1), ("voice", 0.2), ("bid-images", 0.2))
PER_DIR = 400
PER_PARENT = 25
MAX_BYTES = 4096


def build_tree(root: Path, count: int) -> None:
    """``count`` small files (1..MAX_BYTES bytes, real data) under root/<media>/<shard>/<day>/."""
    fresh_dir(root)
    block = os.urandom(MAX_BYTES)
    made = 0
    for media, share in SHARES:
        quota = round(count * share) if media != SHARES[-1][0] else count - made
        for first in range(0, quota, PER_DIR):
            leaf = root / media / f"shard-{first // (PER_DIR * PER_PARENT):03d}" / f"day-{first // PER_DIR:05d}"
            leaf.mkdir(parents=True)
            dir_fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for index in range(first, min(first + PER_DIR, quota)):
                    fd = os.open(f"{index}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
                    os.write(fd, block[: (index * 7919) % MAX_BYTES + 1])
                    os.close(fd)
            finally:
                os.close(dir_fd)
        made += quota
    os.sync()


def audit_argv(root: Path) -> list[str]:
    return [DATAGC, "audit", "--json", "--data-dir", str(root)]


def compare(
    root: Path, repeats: int, case: str, cold: bool = False, goal: float | None = None, floor: bool = False
) -> list[Row]:
    """Audit beside ``du -s`` (and gdu, if installed, and with ``floor`` the bare Python walk), interleaved; one
    row per anchor."""
    anchors = [("du -s", ["du", "-s", str(root)])]
    if GDU:
        anchors.append(("gdu -n -s -x", [GDU, "-n", "-s", "-p", "-x", str(root)]))
    if floor:
        anchors.append((FLOOR_NAME, [*FLOOR, str(root)]))
    datagc, *timings = interleave([audit_argv(root), *(argv for _, argv in anchors)], repeats, cold=cold)
    rows = []
    for (name, _), timing in zip(anchors, timings, strict=True):
        row_goal = goal if name == "du -s" else NO_GOAL  # gdu is shown beside, not aimed at
        rows.append(Row("audit", case, datagc.median_s, name, timing.median_s, datagc.peak_rss_mib, row_goal))
    return rows


def empty(workdir: Path, repeats: int) -> Row:
    root = fresh_dir(workdir / "empty")
    runs = max(repeats, round(EMPTY_RUNS * min(1.0, float(os.environ.get("BENCH_SCALE", "1")))), 3)
    datagc, version = interleave([audit_argv(root), [DATAGC, "--version"]], runs, warmups=2)
    return Row("audit", f"empty data dir, {runs} runs", datagc.median_s, "datagc --version", version.median_s,
               datagc.peak_rss_mib, EMPTY_GOAL)


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    tree = workdir / "tree"
    rows = [empty(workdir, repeats)]
    for small in SMALL:
        count = max(500, round(small * scale))
        build_tree(tree, count)
        rows.extend(compare(tree, repeats, f"{count:,} files, warm", goal=NO_GOAL))
    files = max(1000, round(FILES * scale))
    build_tree(tree, files)
    rows.extend(compare(tree, repeats, f"{files:,} files, warm", floor=True))
    if drop_page_cache():
        rows.extend(compare(tree, repeats, f"{files:,} files, cold cache", cold=True, goal=COLD_GOAL, floor=True))
    else:
        print("  audit: the cold-cache row is left out: /proc/sys/vm/drop_caches is not writable here "
              "(needs root outside a read-only /proc/sys)", flush=True)
    many = max(1000, round(MILLION * scale))
    build_tree(tree, many)
    rows.append(compare(tree, 1, f"{many:,} files, memory")[0])
    return rows
