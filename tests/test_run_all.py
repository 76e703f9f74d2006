"""``datagc run-all`` through the installed CLI: step isolation, the union of exit bits, the lock and the kill switch.

Failures are real ones of the service's data, not injected: an event log
with no line end at all (rotate can't cut it), a feed that is not JSON
(sweep can't tell which media it references). A full disk is a loop-mounted
ext4 filled to the last block.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datagc.demo import build_sample
from datagc.exitcodes import LOCKED, Exit
from tests.helpers import holding_lock, run_datagc
from tests.mounts import MiB, fill, loop_ext4
from tests.proof import DAY, datagc_temps, snapshot, write_media

PRODUCT = ("posts.json", "cartoons.json", "cache-images.json", "agent-keypair.json")
ORPHAN = "posts.json.tmp.1763000000000"  # the sample's 3-day-old temp left by a crashed feed write
FRESH_TEMP = "posts.json.tmp.1764000000000"


def steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert [step["name"] for step in report["steps"]] == ["rotate", "sweep", "pressure"]
    return {step["name"]: step for step in report["steps"]}


def deleted(step: dict[str, Any]) -> set[str]:
    return {action["path"] for action in step["actions"] if action["kind"] == "delete"}


def used_fraction(path: Path) -> float:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used / (used + st.f_bavail * st.f_frsize)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root, real_bytes=True, scale=0.01, events_bytes=2 * MiB)
    return root


def test_a_failing_rotation_leaves_sweep_and_pressure_running_and_the_exit_is_the_union(sample: Path) -> None:
    """rotate fails (a log past max_bytes with no line end); sweep and pressure still run, each adding its bits."""
    if used_fraction(sample) <= 0.001:
        pytest.skip("the filesystem of the temp dir is under 0.1% used: pressure would have nothing to do")
    (sample / "events.jsonl").write_bytes(b"x" * (2 * MiB))  # one 2 MiB line without an end
    before = snapshot(sample)

    result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--no-cdn",
                        "--threshold", "0.001", "--target", "0.001", "--json")

    assert result.code == Exit.STEP_FAILED | Exit.SWEPT | Exit.PRESSURE_DELETED | Exit.STILL_ABOVE_THRESHOLD
    report = result.json()
    assert report["exit_code"] == result.code and report["command"] == "run-all"
    by_name = steps(report)
    rotate, sweep, pressure = by_name["rotate"], by_name["sweep"], by_name["pressure"]
    assert rotate["status"] == "error" and "no line end" in rotate["error"]
    assert "datagc: rotate failed: events.jsonl is over rotate.max_bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert (sample / "events.jsonl").read_bytes() == b"x" * (2 * MiB), "the failed step left its file as it was"
    assert sweep["status"] == "ok" and deleted(sweep) == {ORPHAN}
    assert pressure["status"] == "ok" and deleted(pressure), pressure
    after = snapshot(sample)
    for path in deleted(sweep) | deleted(pressure):
        assert path in before and path not in after
    for path in ("cartoons.json", "cache-images.json", "agent-keypair.json", FRESH_TEMP):
        assert after[path] == before[path]
    assert report["reclaimed_bytes"] == sweep["reclaimed_bytes"] + pressure["reclaimed_bytes"] > 0


def test_a_failing_sweep_leaves_rotation_and_pressure_running(sample: Path) -> None:
    """sweep fails (the feed is not JSON: any media may be referenced); rotate before it and pressure after it run."""
    feed = b'{"posts": [truncated'
    (sample / "posts.json").write_bytes(feed)
    original_log = (sample / "events.jsonl").read_bytes()

    result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn",
                        "--threshold", "1", "--json")

    assert result.code == Exit.STEP_FAILED | Exit.ROTATED | Exit.SWEPT
    by_name = steps(result.json())
    assert by_name["rotate"]["status"] == "ok" and by_name["rotate"]["actions"][0]["kind"] == "rotate"
    rotated = (sample / "events.jsonl").read_bytes()
    assert len(rotated) < len(original_log) and original_log.endswith(rotated)
    assert by_name["sweep"]["status"] == "error" and "not JSON" in by_name["sweep"]["error"]
    assert deleted(by_name["sweep"]) == {ORPHAN}, "temp orphans don't depend on the feed; media all kept"
    assert by_name["pressure"]["status"] == "skipped"
    assert (sample / "posts.json").read_bytes() == feed, "a feed that doesn't parse is left byte for byte"
    assert (sample / "images" / "1763900000000-a1.png").exists()


def test_dry_run_reports_the_same_bits_and_files_as_the_real_run_and_changes_nothing(sample: Path) -> None:
    args = ("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn", "--threshold", "1", "--json")
    before = snapshot(sample)

    planned = run_datagc(*args, "--dry-run")

    assert snapshot(sample) == before
    assert planned.json()["dry_run"] is True
    done = run_datagc(*args)
    assert planned.code == done.code == Exit.ROTATED | Exit.SWEPT
    for name in ("rotate", "sweep"):
        assert deleted(steps(planned.json())[name]) == deleted(steps(done.json())[name])


def test_the_kill_switch_makes_every_step_a_no_op_that_says_so(sample: Path) -> None:
    before = snapshot(sample)
    args = ("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn")

    result = run_datagc(*args, "--json", env={"GC_ENABLED": "false"})

    assert result.code == 0
    report = result.json()
    assert [(step["name"], step["status"], step["actions"]) for step in report["steps"]] == [
        ("rotate", "disabled", []), ("sweep", "disabled", []), ("pressure", "disabled", [])]
    assert all("environment GC_ENABLED" in step["notes"][0] for step in report["steps"])
    plain = run_datagc(*args, env={"DATAGC_ENABLED": "0"})
    assert plain.code == 0
    assert ("[janitor] rotate: datagc is disabled (enabled=false from environment DATAGC_ENABLED); nothing was done"
            in plain.stdout.splitlines())
    assert snapshot(sample) == before


@pytest.fixture
def locked(sample: Path) -> Iterator[int]:
    with holding_lock(sample) as fd:
        yield fd


def test_another_datagc_holding_the_lock_means_exit_75_and_nothing_done(sample: Path, locked: int) -> None:
    before = snapshot(sample)

    result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn", "--json")

    assert result.code == LOCKED
    assert result.stdout == ""
    assert "another datagc is working on" in result.stderr and "--wait" in result.stderr
    assert snapshot(sample) == before


def test_wait_takes_the_lock_once_the_other_datagc_lets_go(sample: Path, locked: int) -> None:
    release = threading.Timer(1.0, fcntl.flock, (locked, fcntl.LOCK_UN))
    release.start()
    started = time.monotonic()
    try:
        result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn",
                            "--threshold", "1", "--wait", "30s", "--json")
    finally:
        release.join()
    assert time.monotonic() - started >= 1.0
    assert result.code == Exit.ROTATED | Exit.SWEPT, result.stderr
    assert not (sample / ORPHAN).exists()


@pytest.mark.mount
def test_run_all_on_a_full_disk_without_cdn_evicts_then_retries_the_rotation() -> None:
    """100% full, CDN off: only pressure may free space; the rotation that hit ENOSPC is retried after it."""
    with loop_ext4(16 * MiB) as mount:
        root = mount / "data"
        now = time.time()
        build_sample(root, now, real_bytes=True, scale=0.01, events_bytes=2 * MiB)
        original_log = (root / "events.jsonl").read_bytes()
        filler = fill(root / "images", name="filler.png")
        os.utime(filler, (now - 3 * DAY, now - 3 * DAY))
        with pytest.raises(OSError) as full:
            write_media(root / "images" / "one-more.png", 4096, 0, now)
            os.sync()
        assert full.value.errno == errno.ENOSPC, "the filesystem should be full to the last block"
        (root / "images" / "one-more.png").unlink(missing_ok=True)
        product = {path: state for path, state in snapshot(root).items() if path in PRODUCT}

        result = run_datagc("run-all", "--data-dir", str(root), "--max-bytes", "1MiB", "--no-cdn", "--json")

        report = result.json()
        by_name = steps(report)
        assert report["disk_before"]["free_bytes"] < 64 * 1024
        assert by_name["rotate"]["status"] == "ok", by_name["rotate"]
        assert any("retried" in note for note in by_name["rotate"]["notes"])
        assert deleted(by_name["sweep"]) == {ORPHAN}, "CDN off: sweep takes only the temp orphan, not media"
        assert "images/filler.png" in deleted(by_name["pressure"])
        assert result.code == Exit.ROTATED | Exit.SWEPT | Exit.PRESSURE_DELETED, result.stderr
        assert report["disk_after"]["used_fraction"] <= 0.60 < report["disk_before"]["used_fraction"]
        rotated = (root / "events.jsonl").read_bytes()
        assert rotated.endswith(b"\n") and original_log.endswith(rotated) and len(rotated) <= 512 * 1024
        assert {path: state for path, state in snapshot(root).items() if path in PRODUCT} == product
        assert datagc_temps(root) == []
