"""kill -9 at many instants of a rotation and of a feed rewrite: the file is always the old or the new version.

Each case starts the real ``datagc`` on a fresh copy of the input, SIGKILLs it
after a delay, and checks the file on disk: the event log is the original or
one of its valid tails, the feed is the original with some (possibly none or
all) of the planned nulls and not one other byte changed, and no file the feed
still points at is gone. If a temp file was left, the next pass must clean it.
Kills land at fractions of an uninterrupted run on this machine, and at offsets
after datagc's temp file appears, where a rewrite is in flight.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from datagc.demo import build_sample, write_event_log
from datagc.safety.rewrite import TEMP_MARK
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.proof import DAY, MiB, assert_rotated_tail, datagc_temps, expected_feed, local_refs

pytestmark = pytest.mark.e2e

#: kills at these fractions of an uninterrupted run's time: start-up, reading and planning, after the end
RUN_FRACTIONS = (0.0, 0.3, 0.6, 1.5)


@dataclass
class Outcomes:
    seen: dict[str, int] = field(default_factory=dict)

    def add(self, what: str) -> None:
        self.seen[what] = self.seen.get(what, 0) + 1


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())


def has_temp(directory: Path) -> bool:
    return any(TEMP_MARK in name for name in os.listdir(directory))


def run_time(argv: list[str]) -> float:
    began = time.monotonic()
    start(argv).wait()
    return time.monotonic() - began


def kill_after(argv: list[str], delay: float) -> None:
    process = start(argv)
    time.sleep(delay)
    process.kill()
    process.wait()


def kill_after_temp(argv: list[str], directory: Path, offset: float) -> None:
    """SIGKILL ``offset`` seconds after datagc's temp file shows up in ``directory`` (at the end if it never does).

    The temp lives for milliseconds of a run of seconds: watching for it puts the kills where a rewrite is
    in flight (writing, fsyncing, renaming, and just after), which delays from the start would mostly miss.
    """
    process = start(argv)
    while process.poll() is None and not has_temp(directory):
        pass
    time.sleep(offset)
    process.kill()
    process.wait()


def crash_sweep(
    argv: list[str],
    directory: Path,
    offsets: tuple[float, ...],
    prepare: Callable[[], None],
    check: Callable[[Outcomes], None],
    clean_up: Callable[[], None],
) -> Outcomes:
    """Kill ``argv`` at points through its run and ``offsets`` after its temp appears; ``check`` the file after
    each, and when a temp was left, ``clean_up`` (the next pass), which must remove it."""
    prepare()
    duration = run_time(argv)
    kills: list[Callable[[], None]] = [
        *(functools.partial(kill_after, argv, duration * fraction) for fraction in RUN_FRACTIONS),
        *(functools.partial(kill_after_temp, argv, directory, offset) for offset in offsets),
    ]
    outcomes = Outcomes()
    for kill in kills:
        prepare()
        kill()
        check(outcomes)
        if datagc_temps(directory):
            outcomes.add("temp left")
            clean_up()
            assert datagc_temps(directory) == [], "the next pass left datagc's temp file"
    return outcomes


# --- rotation -------------------------------------------------------------------

LOG_BYTES = 60_000_000
KEEP_LINES = 100_000
KEEP_BYTES = 8 * MiB


def test_kill_9_during_rotation(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    pristine = tmp_path / "events.pristine"
    write_event_log(pristine, LOG_BYTES, time.time())
    original = pristine.read_bytes()
    log = root / "events.jsonl"
    flags = ["--data-dir", str(root), "--max-bytes", "16MiB", "--keep-lines", str(KEEP_LINES),
             "--keep-bytes", str(KEEP_BYTES)]

    def prepare() -> None:
        if not log.exists() or log.stat().st_size != len(original):
            shutil.copyfile(pristine, log)

    def check(outcomes: Outcomes) -> None:
        now = log.read_bytes()
        if now == original:
            outcomes.add("old")
        else:
            assert_rotated_tail(original, now, KEEP_LINES, KEEP_BYTES)
            outcomes.add("new")

    def clean_up() -> None:
        result = run_datagc("rotate", *flags)
        assert result.code in (0, 4, 8, 12), result.stderr  # 8: it swept the leftover temp
        assert_rotated_tail(original, log.read_bytes(), KEEP_LINES, KEEP_BYTES)

    offsets = (0.0, 0.002, 0.01, 0.03, 0.06, 0.1, 0.15, 0.25)
    outcomes = crash_sweep([DATAGC, "rotate", *flags], root, offsets, prepare, check, clean_up)
    assert {"old", "new", "temp left"} <= outcomes.seen.keys(), outcomes.seen


# --- feed rewrite ---------------------------------------------------------------

FEED_POSTS = 4_000
AGED_MEDIA = 300  # locally referenced, past max_age: each one a null in the rewrite


def big_feed(sample_feed: bytes) -> bytes:
    """The sample's posts, then many more in the service's format: most on the CDN, some local and old."""
    posts = orjson.loads(sample_feed)
    for i in range(FEED_POSTS):
        url = f"/images/gen/{i}.png" if i < AGED_MEDIA else f"https://cdn.example.com/images/gen-{i}.png"
        posts.append({"id": f"g{i}", "tweetId": str(1_900_000_000_000_000_000 + i), "text": f"post number {i}",
                      "imageUrl": url, "type": "quickhit", "postedAt": 1763000000000 + i,
                      "engagement": {"likes": i % 50, "retweets": i % 7, "views": i * 3}})
    return orjson.dumps(posts, option=orjson.OPT_INDENT_2)


def test_kill_9_during_feed_rewrite(tmp_path: Path) -> None:
    root = tmp_path / "data"
    feed_path = root / "posts.json"
    build_sample(root, time.time())
    original = big_feed(feed_path.read_bytes())
    planned = {ref for ref in local_refs(orjson.loads(original)) if ref[1].startswith("/images/gen/")}
    flags = ["--data-dir", str(root), "--cdn", "--cdn-public-url", "https://cdn.example.com"]

    def prepare() -> None:
        shutil.rmtree(root)
        now = time.time()
        build_sample(root, now)
        feed_path.write_bytes(original)
        (root / "images" / "gen").mkdir()
        for i in range(AGED_MEDIA):
            media = root / "images" / "gen" / f"{i}.png"
            media.write_bytes(b"png")
            os.utime(media, (now - 8 * DAY, now - 8 * DAY))

    def check(outcomes: Outcomes) -> None:
        now = feed_path.read_bytes()
        current = orjson.loads(now)  # never torn: it parses
        nulled = {ref for ref in local_refs(orjson.loads(original)) if ref not in local_refs(current)}
        assert now == expected_feed(original, nulled), "the feed differs from the original by more than nulls"
        for _, url in local_refs(current):
            assert (root / url[1:]).exists(), f"the feed still points at {url}, which is gone"
        outcomes.add("old" if not nulled & planned else "new" if planned <= nulled else "partial")

    def clean_up() -> None:
        result = run_datagc("sweep", *flags)
        assert result.code in (0, 8), result.stderr
        assert feed_path.read_bytes() == expected_feed(original, {
            ref for ref in local_refs(orjson.loads(original)) if not (root / ref[1][1:]).exists()})

    offsets = (0.0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.05)
    outcomes = crash_sweep([DATAGC, "sweep", *flags], root, offsets, prepare, check, clean_up)
    assert {"old", "new", "temp left"} <= outcomes.seen.keys(), outcomes.seen
