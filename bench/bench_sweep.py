"""``datagc sweep`` deleting half of 10k, 40k and 200k media files beside ``find DIR -type f -mmin +N -delete``
(goals, SPEC §8: ≤ 0.8× at 200k, ≤ 1.5× at 10k where the fixed cost weighs; 40k is shown for scale), and its
peak memory deleting 700k of a million files (issue 16: < 200 MiB, flat in the number of deletions).

Half the files (seven in ten for the memory case) are older than the 7-day ``sweep.max_age`` (8 to 30 days), half
younger (0 to 6 days), spread over nested directories of the four media
directories. A feed (``posts.json``, fresh, so ``find`` keeps it too) names a
few hundred of the old files by local URL, so datagc also rewrites it. Both
tools delete, so the tree is rebuilt before every timed run, and the two are
timed in alternation so that load from other processes hits both alike.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from bench.common import DATAGC, NO_GOAL, Row, count_files, drop_caches, fresh_dir, run_once

FILES = 200_000
#: (files at BENCH_SCALE 1, goal); None: the pass's goal (run.GOALS)
CASES = ((10_000, 1.5), (40_000, NO_GOAL), (FILES, None))
MILLION = 1_000_000
#: the memory case deletes seven files in ten
MILLION_OLD_TENTHS = 7
SHARES = (("images", 0.5), ("videos", 0.1), ("voice", 0.2), ("bid-images", 0.2))
PER_DIR = 400
PER_PARENT = 25
MAX_BYTES = 4096
DAY = 86400
MAX_AGE_DAYS = 7
FEED_POSTS = 500


def build_tree(root: Path, count: int, now: float, old_tenths: int = 5) -> int:
    """``count`` small files under root/<media>/<shard>/<day>/, ``old_tenths`` in ten older than max_age.

    Returns how many are old (what both tools should delete).
    """
    fresh_dir(root)
    block = os.urandom(MAX_BYTES)
    made = old = 0
    referenced: list[str] = []
    for media, share in SHARES:
        quota = round(count * share) if media != SHARES[-1][0] else count - made
        for first in range(0, quota, PER_DIR):
            relative = f"{media}/shard-{first // (PER_DIR * PER_PARENT):03d}/day-{first // PER_DIR:05d}"
            (root / relative).mkdir(parents=True)
            dir_fd = os.open(root / relative, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for index in range(first, min(first + PER_DIR, quota)):
                    name = f"{index}.bin"
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
                    os.write(fd, block[: (index * 7919) % MAX_BYTES + 1])
                    if index % 10 < old_tenths:
                        age = (MAX_AGE_DAYS + 1 + index % 22) * DAY
                        old += 1
                        if len(referenced) < FEED_POSTS and index % 97 == 1:
                            referenced.append(f"/{relative}/{name}")
                    else:
                        age = (index % (MAX_AGE_DAYS - 1)) * DAY
                    os.utime(fd, (now - age, now - age))
                    os.close(fd)
            finally:
                os.close(dir_fd)
        made += quota
    posts = [{"id": f"p{i}", "text": "a post", "imageUrl": url} for i, url in enumerate(referenced)]
    (root / "posts.json").write_text(json.dumps(posts, indent=2))
    return old


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    rows = [compare(workdir / "tree", max(500, round(files * scale)), repeats, goal) for files, goal in CASES]
    many = max(1000, round(MILLION * scale))
    rows.append(compare(workdir / "tree", many, 1, None, MILLION_OLD_TENTHS))
    return rows


def compare(tree: Path, count: int, repeats: int, goal: float | None, old_tenths: int = 5) -> Row:
    sweep = [DATAGC, "sweep", "--data-dir", str(tree), "--max-age", f"{MAX_AGE_DAYS}d", "--cdn"]
    find = ["find", str(tree), "-type", "f", "-mmin", f"+{MAX_AGE_DAYS * 1440}", "-delete"]
    times: dict[str, list[float]] = {"datagc": [], "find": []}
    peak = 0.0
    for _ in range(repeats):
        for tool, argv in (("datagc", sweep), ("find", find)):
            old = build_tree(tree, count, time.time(), old_tenths)
            drop_caches()
            elapsed, rss = run_once(argv, ok_codes=(0, 8))
            left = count_files(tree)
            if left != count + 1 - old:  # the feed stays
                raise RuntimeError(f"{tool} left {left} files, expected {count + 1 - old}")
            times[tool].append(elapsed)
            if tool == "datagc":
                peak = max(peak, rss)
    case = f"delete {old:,} of {count:,} files" + (", memory" if old_tenths != 5 else "")
    return Row("sweep", case, statistics.median(times["datagc"]), "find -mmin -delete",
               statistics.median(times["find"]), peak, goal)
