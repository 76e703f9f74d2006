"""``datagc pressure`` choosing and deleting a quarter of 10k, 40k and 200k media files, beside an oldest-first
``find`` pipeline (goals, SPEC §8: ≤ 0.9× at 200k, ≤ 1.5× at 10k where the fixed cost weighs; 40k is shown for
scale), and its peak memory evicting 250k of a million files (issue 16: < 200 MiB, flat in the evictions).

Both tools run on identical trees: the tree is built once in an ext4 image
(1 KiB blocks, so 200k small files stay a few hundred MiB), and every run gets
a fresh copy of the image, loop-mounted. datagc is given a target that leaves
exactly K files' worth of allocated bytes to free (computed from statfs of the
fresh copy); the anchor deletes the K oldest files:

    find DIR -type f -printf '%T@ %p\\n' | sort -n | head -n K | cut -d' ' -f2- | xargs -d '\\n' rm -f

The feed (posts.json) names a few thousand files, by CDN URL and by local
URL, as the service's does; datagc reads it, the anchor doesn't care.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.common import DATAGC, NO_GOAL, Row, count_files, drop_caches, run_once

FILES = 200_000
VICTIMS = 50_000
#: (files, victims at BENCH_SCALE 1, goal); None: the pass's goal (run.GOALS)
CASES = ((10_000, 2_500, 1.5), (40_000, 10_000, NO_GOAL), (FILES, VICTIMS, None))
MILLION = 1_000_000
MILLION_VICTIMS = 250_000
BLOCK = 1024
#: media directories and their share of the files; images/ is flat, as the service writes it
LAYOUT = (("images", 0.6, False), ("videos", 0.1, False), ("voice", 0.2, True), ("bid-images", 0.1, False))
PER_DAY_DIR = 1000
FEED_POSTS = 4000
DAY = 86400


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@contextlib.contextmanager
def mounted(image: Path, point: Path) -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-o", "loop", str(image), str(point)])
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False, capture_output=True)


def build_image(image: Path, point: Path, count: int) -> None:
    """An ext4 image holding DATA_DIR (``data/``) with ``count`` one-block media files of distinct ages."""
    image.unlink(missing_ok=True)
    inodes = count + count // 10 + 1000
    size = (count * BLOCK * 13) // 10 + inodes * 256 + 64 * 1024 * 1024
    with image.open("wb") as handle:
        handle.truncate(size)
    # large_dir: with 1 KiB blocks a two-level directory index holds only ~300k names; images/ is flat
    _run(["mkfs.ext4", "-q", "-F", "-b", str(BLOCK), "-N", str(inodes), "-m", "0", "-O", "large_dir",
          "-E", "lazy_itable_init=0", str(image)])
    with mounted(image, point) as root:
        data = root / "data"
        now = time.time()
        ages = list(range(count))
        random.Random(7).shuffle(ages)  # names and ages unrelated: oldest-first is not directory order
        made = 0
        paths: list[str] = []
        for media, share, nested in LAYOUT:
            quota = round(count * share) if media != LAYOUT[-1][0] else count - made
            for index in range(quota):
                directory = f"{media}/day-{index // PER_DAY_DIR:04d}" if nested else media
                paths.append(f"{directory}/{1763000000000 + made + index}-{index:x}.bin")
            made += quota
        for directory in sorted({path.rpartition("/")[0] for path in paths}):
            (data / directory).mkdir(parents=True, exist_ok=True)
        for path, age in zip(paths, ages, strict=True):
            target = data / path
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"m")
            os.close(fd)
            mtime = int((now - 2 * DAY - age * 7) * 1e9)
            os.utime(target, ns=(mtime, mtime))
        _write_feed(data, paths)
        os.sync()


def _write_feed(data: Path, paths: list[str]) -> None:
    """posts.json naming some files by CDN URL and some by local URL (the newest ones, as posts are recent)."""
    named = sorted(paths, key=lambda path: os.lstat(data / path).st_mtime_ns)[-FEED_POSTS:]
    posts = [
        {"id": f"p{index}", "text": "a cartoon", "type": "flagship",
         "imageUrl": f"https://cdn.example.com/{path}" if index % 2 else f"/{path}"}
        for index, path in enumerate(named)
    ]
    (data / "posts.json").write_text(json.dumps(posts, indent=2), encoding="utf-8")


def target_for(data: Path, victims: int) -> float:
    """A usage fraction that leaves exactly ``victims`` one-block files to free."""
    st = os.statvfs(data)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    capacity = used + st.f_bavail * st.f_frsize
    return (used - victims * BLOCK) / capacity


def timed_on_copy(
    template: Path, work: Path, argv_for: Callable[[Path], list[str]], ok_codes: Sequence[int]
) -> tuple[float, float, int]:
    """Run one command on a fresh copy of the image; (seconds, peak RSS MiB, files left)."""
    copy = work / "run.img"
    shutil.copyfile(template, copy)
    try:
        with mounted(copy, work / "mnt") as root:
            data = root / "data"
            argv = argv_for(data)
            drop_caches()
            elapsed, rss = run_once(argv, ok_codes)
            left = count_files(data)
    finally:
        copy.unlink(missing_ok=True)
    return elapsed, rss, left


def compare(
    template: Path, work: Path, files: int, victims: int, repeats: int, case: str, goal: float | None = None
) -> Row:
    def datagc(data: Path) -> list[str]:
        target = f"{target_for(data, victims):.12f}"
        # the journal goes outside the image: its blocks would keep the disk a hair above the exact target
        return ["env", f"DATAGC_STATE_DIR={work / 'state'}", DATAGC, "pressure", "--data-dir", str(data),
                "--threshold", target, "--target", target,
                "--min-age", "1d", "--cdn", "--cdn-public-url", "https://cdn.example.com"]

    def anchor(data: Path) -> list[str]:
        pipeline = (f"find {data} -type f -printf '%T@ %p\\n' | sort -n | head -n {victims} "
                    "| cut -d' ' -f2- | xargs -d '\\n' rm -f")
        return ["sh", "-c", pipeline]

    times: tuple[list[float], list[float]] = ([], [])
    peak = 0.0
    for _ in range(repeats):
        seconds, rss, left = timed_on_copy(template, work, datagc, (16,))
        assert abs(left - (files + 1 - victims)) <= 1, f"datagc left {left} files, expected {files + 1 - victims}"
        times[0].append(seconds)
        peak = max(peak, rss)
        seconds, _, left = timed_on_copy(template, work, anchor, (0,))
        assert left == files + 1 - victims, f"the anchor left {left} files"
        times[1].append(seconds)
    return Row("pressure", case, statistics.median(times[0]), "find|sort|head|rm", statistics.median(times[1]), peak,
               goal)


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    template = workdir / "template.img"
    point = workdir / "build"
    rows = []
    for count, evict, goal in CASES:
        files, victims = max(1000, round(count * scale)), max(250, round(evict * scale))
        build_image(template, point, files)
        rows.append(compare(template, workdir, files, victims, repeats, f"{victims:,} of {files:,} files", goal))
    many, many_victims = max(1000, round(MILLION * scale)), max(100, round(MILLION_VICTIMS * scale))
    build_image(template, point, many)
    rows.append(compare(template, workdir, many, many_victims, 1, f"{many_victims:,} of {many:,} files, memory"))
    template.unlink(missing_ok=True)
    return rows
