"""``datagc audit`` over 200k files beside ``du -s`` (goal ≤ 1.3×), and a million-file memory check (< 200 MiB).

The tree is laid out like the service's media: four media directories, each
sharded into nested subdirectories of a few hundred small files. The tree is
built once and read warm by both tools (audit only reads).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import DATAGC, Row, fresh_dir
from bench.pairs import alternate

FILES = 200_000
MILLION = 1_000_000
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


def compare(root: Path, repeats: int, case: str) -> Row:
    audit = [DATAGC, "audit", "--json", "--data-dir", str(root)]
    datagc, du = alternate(audit, ["du", "-s", str(root)], repeats)
    return Row("audit", case, datagc.median_s, "du -s", du.median_s, datagc.peak_rss_mib)


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    tree = workdir / "tree"
    files = max(1000, round(FILES * scale))
    build_tree(tree, files)
    rows = [compare(tree, repeats, f"{files:,} files, warm")]
    many = max(1000, round(MILLION * scale))
    build_tree(tree, many)
    rows.append(compare(tree, 1, f"{many:,} files, memory"))
    return rows
