"""End to end on real, small filesystems: the service's data directory filling a disk, and datagc bringing it back.

A 100 MiB tmpfs holds the sample data directory with an event log past the
rotation trigger and aged media past the pressure threshold; ``run-all`` (and
one ``watch`` cycle) must rotate, sweep and leave usage under the target
without touching the product. Then a loop-mounted ext4 filled to the last
block: rotation can't even write its temp, so the sweeps must free space and
the runner retry it. Every check compares the disk with what the generator
wrote and with what the JSON report says happened.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from datagc.demo import MEDIA, build_sample, write_event_log
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.mounts import MiB, fill, loop_ext4, tmpfs
from tests.proof import (
    DAY,
    FileState,
    actions,
    datagc_temps,
    deleted,
    exit_bits,
    expected_feed,
    local_refs,
    newest_lines,
    snapshot,
    step,
    used_fraction,
    write_media,
)

pytestmark = [pytest.mark.e2e, pytest.mark.mount]

MEDIA_DIRS = ("images", "videos", "voice", "bid-images")
PROTECT = ("*.json", "cache-*", "*.key", "*keypair*")
PRODUCT = ("cartoons.json", "cache-images.json", "agent-keypair.json")
CDN_PREFIX = "https://cdn.example.com/"
# the defaults every run here relies on (SPEC §3)
MAX_BYTES = 50 * MiB
KEEP_LINES = 10_000
MAX_AGE = 7 * DAY
GRACE = 15 * 60.0
TEMP_MAX_AGE = DAY
THRESHOLD = 0.70
TARGET = 0.60
MIN_AGE = DAY
SCALE = 0.25  # media sizes: the sample's real sizes would not fit next to the log
EVENTS_BYTES = 54_000_000  # > 50 MiB: past the rotation trigger


@dataclass
class Layout:
    """What the generator wrote: the data directory before datagc ran."""

    root: Path
    now: float
    log: bytes
    feed: bytes
    files: dict[str, FileState]
    ages: dict[str, float]  # media and temp files: age in seconds at ``now``
    cdn: bool = True  # the run's --cdn/--no-cdn
    target: float = TARGET  # the run's pressure.target


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An event log past the rotation trigger, generated once for the module."""
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    write_event_log(path, EVENTS_BYTES, time.time())
    return path


def lay_out(root: Path, log: Path | None, extra: list[tuple[str, int, float]], scale: float = SCALE) -> Layout:
    """The sample (real bytes, media at ``scale``) with ``log`` as its event log (the sample's 200 events if
    None), plus ``extra`` aged media (path, bytes, age in days)."""
    now = time.time()
    build_sample(root, now, real_bytes=True, scale=scale)
    if log is not None:
        shutil.copyfile(log, root / "events.jsonl")
    for path, size, age_days in extra:
        write_media(root / path, size, age_days, now)
    ages = {media.path: media.age_days * DAY for media in MEDIA}
    ages.update({path: age_days * DAY for path, _, age_days in extra})
    os.sync()
    return Layout(root, now, (root / "events.jsonl").read_bytes(), (root / "posts.json").read_bytes(),
                  snapshot(root), ages)


def in_media(path: str) -> bool:
    return path.split("/", 1)[0] in MEDIA_DIRS


def protected(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, pattern) for pattern in PROTECT)


def published(feed: list[dict[str, Any]]) -> set[str]:
    """Media the feed shows by their CDN URL."""
    return {
        post[field].removeprefix(CDN_PREFIX)
        for post in feed
        for field in ("imageUrl", "videoUrl")
        if isinstance(post.get(field), str) and post[field].startswith(CDN_PREFIX)
    }


# --- the checks ---------------------------------------------------------------


def check_exit(report: dict[str, Any], code: int) -> None:
    assert report["command"] == "run-all"
    assert report["dry_run"] is False
    assert code == report["exit_code"] == exit_bits(report, THRESHOLD), (code, report["exit_code"])


def check_rotation(layout: Layout, report: dict[str, Any]) -> None:
    """The log landed under the trigger holding exactly the newest KEEP_LINES lines the generator wrote."""
    rotated = (layout.root / "events.jsonl").read_bytes()
    if len(layout.log) <= MAX_BYTES:
        assert actions(report, "rotate") == []
        assert rotated == layout.log
        return
    (rotation,) = actions(report, "rotate")
    assert rotation["path"] == "events.jsonl"
    assert rotation["bytes_before"] == len(layout.log) > MAX_BYTES
    assert rotation["lines_kept"] == KEEP_LINES
    assert rotation["bytes_after"] == len(rotated) <= MAX_BYTES // 2
    assert rotated == newest_lines(layout.log, KEEP_LINES)


def check_files(layout: Layout, report: dict[str, Any]) -> set[str]:
    """Files listed as deleted are gone; every other file is there, unchanged (but the log and the feed)."""
    gone = deleted(report)
    after = snapshot(layout.root)
    for path in gone:
        assert path in layout.files, f"report lists {path}, which the generator never wrote"
        assert path not in after, f"report lists {path} as deleted but it is still there"
        assert not protected(path), f"protected {path} was deleted"
        assert in_media(path) or fnmatch.fnmatch(path, "*.tmp.*"), f"{path} is outside media and temp patterns"
    for path, state in layout.files.items():
        if path in gone:
            continue
        assert path in after, f"{path} vanished but the report doesn't list it"
        if path not in ("events.jsonl", "posts.json"):
            assert after[path] == state, f"{path} was changed"
    assert set(after) - set(layout.files) <= {".datagc/journal.jsonl"}, "datagc left new files behind"
    if gone:  # the journal (SPEC §9) lists exactly the deletions the report lists
        journal = (layout.root / ".datagc" / "journal.jsonl").read_bytes().splitlines()
        assert {orjson.loads(line)["path"] for line in journal if b'"kind":"delete"' in line} == gone
    assert datagc_temps(layout.root) == []
    for name in PRODUCT:
        assert after[name] == layout.files[name], f"{name} changed"
    return gone


def check_sweep(layout: Layout, report: dict[str, Any]) -> None:
    """CDN on: media past max_age or published past the grace; always orphan temps past a day. Nothing else."""
    on_cdn = published(orjson.loads(layout.feed))
    swept = deleted(report) - deleted(report, "pressure")
    expected = {
        path
        for path, age in layout.ages.items()
        if not protected(path)
        and (
            (layout.cdn and in_media(path) and (age > MAX_AGE or (path in on_cdn and age > GRACE)))
            or (fnmatch.fnmatch(path, "*.tmp.*") and "/" not in path and age > TEMP_MAX_AGE)
        )
    }
    assert swept == expected
    assert {a["path"] for a in actions(report, "delete") if a["reason"] == "temp"} == {
        path for path in expected if not in_media(path)
    }


def check_feed(layout: Layout, report: dict[str, Any], gone: set[str]) -> None:
    """Nulls exactly where a locally referenced file was removed; every other byte as the service wrote it."""
    nulled = {(field, url) for field, url in local_refs(orjson.loads(layout.feed)) if url[1:] in gone}
    reported = {(action["field"], action["url"]) for action in actions(report, "feed-null")}
    assert reported == nulled
    assert all(action["path"] == "posts.json" for action in actions(report, "feed-null"))
    assert (layout.root / "posts.json").read_bytes() == expected_feed(layout.feed, nulled)


def check_pressure(layout: Layout, report: dict[str, Any]) -> None:
    """Eviction order: published, then unreferenced, then locally referenced; oldest first in each; none young."""
    evicted = deleted(report, "pressure")
    if not evicted:
        assert step(report, "pressure")["status"] in ("skipped", "ok")
        return
    feed = orjson.loads(layout.feed)
    swept = deleted(report) - evicted
    still_local = {url[1:] for field, url in local_refs(feed) if url[1:] not in swept}
    on_cdn = published(feed) if layout.cdn else set()

    def rank(path: str) -> tuple[int, float]:
        klass = 0 if path in on_cdn else 2 if path in still_local else 1
        return klass, -layout.ages[path]

    candidates = {
        path for path in layout.ages
        if in_media(path) and not protected(path) and path not in swept and layout.ages[path] >= MIN_AGE
    }
    assert evicted <= candidates, f"evicted outside the candidates: {sorted(evicted - candidates)}"
    kept = candidates - evicted
    if kept:
        assert max(rank(path) for path in evicted) <= min(rank(path) for path in kept), (
            sorted(evicted, key=rank), sorted(kept, key=rank))
    for action in actions(report, "delete"):
        if action["reason"] == "pressure":
            assert action["age_seconds"] >= MIN_AGE


def check_usage(layout: Layout, report: dict[str, Any]) -> None:
    assert report["disk_before"]["used_fraction"] > THRESHOLD
    assert report["disk_after"]["used_fraction"] <= layout.target
    assert used_fraction(layout.root) <= layout.target


def check_pass(layout: Layout, report: dict[str, Any], code: int) -> None:
    check_exit(report, code)
    check_rotation(layout, report)
    gone = check_files(layout, report)
    check_sweep(layout, report)
    check_feed(layout, report, gone)
    check_pressure(layout, report)
    check_usage(layout, report)


# --- tmpfs: run-all and one watch cycle --------------------------------------

TMPFS_BYTES = 100 * MiB
#: unreferenced media, younger than max_age: only pressure may take them
TMPFS_EXTRA = [(f"images/gen/{i:02d}.png", 1_600_000, 1.5 + i / 2) for i in range(11)]


@pytest.fixture
def full_tmpfs(big_log: Path) -> Iterator[Layout]:
    with tmpfs(TMPFS_BYTES) as root:
        layout = lay_out(root / "data", big_log, TMPFS_EXTRA)
        assert used_fraction(root) > THRESHOLD
        yield layout


def test_run_all_on_a_tmpfs_past_the_threshold(full_tmpfs: Layout) -> None:
    result = run_datagc("run-all", "--cdn", "--cdn-public-url", CDN_PREFIX, "--json",
                        "--data-dir", str(full_tmpfs.root))
    assert result.stderr == ""
    check_pass(full_tmpfs, result.json(), result.code)
    assert result.code & 4 and result.code & 8


def read_json_documents(stream: Any, into: list[dict[str, Any]]) -> None:
    """Collect the JSON reports ``watch --json`` prints: one line per pass."""
    for line in stream:
        into.append(orjson.loads(line))


def test_watch_one_cycle_then_sigterm(full_tmpfs: Layout) -> None:
    process = subprocess.Popen(
        [DATAGC, "watch", "--cdn", "--cdn-public-url", CDN_PREFIX, "--json", "--data-dir", str(full_tmpfs.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env({"TEST_MODE": "true"}),
    )
    reports: list[dict[str, Any]] = []
    reader = threading.Thread(target=read_json_documents, args=(process.stdout, reports), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while not reports and time.monotonic() - started < 30 and process.poll() is None:
            time.sleep(0.05)
        assert reports, "watch did not report a pass within 30 s"
        first_pass = time.monotonic() - started
        assert first_pass >= 2.0, "TEST_MODE's initial delay is 2 s"
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    assert code == 0, process.stderr.read() if process.stderr else ""
    assert len(reports) == 1, "SIGTERM within the 5 s interval: one pass only"
    report = reports[0]
    check_pass(full_tmpfs, report, report["exit_code"])


PRESSURE_TARGET = 0.3
PRESSURE_EXTRA = [(f"images/gen/{i:02d}.png", 2_000_000, 2 + i / 2) for i in range(10)]


def test_pressure_evicts_in_order_without_a_cdn() -> None:
    """No CDN: sweep leaves media alone and pressure takes unreferenced media, oldest first, before referenced ones."""
    with tmpfs(TMPFS_BYTES) as root:
        layout = lay_out(root / "data", None, PRESSURE_EXTRA, scale=0.7)
        layout.cdn, layout.target = False, PRESSURE_TARGET
        assert used_fraction(root) > THRESHOLD
        result = run_datagc("run-all", "--no-cdn", "--target", str(PRESSURE_TARGET), "--json",
                            "--data-dir", str(layout.root))
        report = result.json()
        check_pass(layout, report, result.code)
        evicted = deleted(report, "pressure")
        assert "videos/shared-name.mp4" in evicted, "the unreferenced media did not suffice: a local one goes too"
        assert {"images/1763990000000-b2.png", "bid-images/shared-name.png"}.isdisjoint(evicted)
        assert result.code == 8 | 16


# --- ext4 filled to the last block ------------------------------------------

EXT4_BYTES = 128 * MiB
EXT4_EXTRA = [(f"images/gen/{i:02d}.png", 2_000_000, age) for i, age in enumerate((1.5, 2, 3, 3.5, 4, 5, 6))]
FILLER = "images/filler.png"
FILLER_AGE_DAYS = 2.5


def test_run_all_on_a_full_ext4_frees_space_then_rotates(big_log: Path) -> None:
    with loop_ext4(EXT4_BYTES) as mount:
        root = mount / "data"
        layout = lay_out(root, big_log, EXT4_EXTRA)
        filler = fill(root / "images", name=Path(FILLER).name)
        with pytest.raises(OSError) as full, (root / "images" / "one-more.png").open("wb") as more:
            more.write(b"x" * 4096)
            more.flush()
            os.fsync(more.fileno())
        assert full.value.errno == errno.ENOSPC, "the filesystem should be full to the last block"
        (root / "images" / "one-more.png").unlink()
        mtime = layout.now - FILLER_AGE_DAYS * DAY
        os.utime(filler, (mtime, mtime))
        layout.files = snapshot(root)
        layout.ages[FILLER] = FILLER_AGE_DAYS * DAY

        result = run_datagc("run-all", "--cdn", "--cdn-public-url", CDN_PREFIX, "--json", "--data-dir", str(root))

        report = result.json()
        rotate = step(report, "rotate")
        assert rotate["status"] == "ok", rotate
        assert "rotate was retried after sweep freed space" in rotate["notes"], rotate["notes"]
        assert deleted(report, "pressure") == set(), "the retried rotation freed enough: pressure had nothing to do"
        assert report["disk_before"]["free_bytes"] < 65536
        check_pass(layout, report, result.code)
        assert result.code & 4 and result.code & 8
