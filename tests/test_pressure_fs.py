"""``datagc pressure`` on real, size-limited filesystems (tmpfs, loop-mounted ext4).

Each test fills a small filesystem past the threshold with media of known
ages, sizes and feed references, runs the pass (through ``run(ctx)`` or the
installed ``datagc`` as a subprocess) and checks the watermark, the eviction
order, what was spared and the feed's nulled fields.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc.config.load import FlagValue, load_config
from datagc.exitcodes import Exit
from datagc.model import Delete, PassContext, StepReport
from datagc.safety.datadir import DataDir
from datagc.wording import detail_text
from tests.helpers import run_datagc
from tests.mounts import MiB, loop_ext4, tmpfs
from tests.pressure_tree import (
    CDN_BASE,
    LINKED,
    ORDER_CDN_OFF,
    ORDER_CDN_ON,
    SPARED,
    allocated,
    build_tree,
    expected_victims,
    feed_after,
    fill_to,
    snapshot,
    usage,
)
from tests.proof import used_fraction as df_used_fraction
from tests.steps import error, notes, run

pytestmark = pytest.mark.mount


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    with tmpfs(100 * MiB) as root:
        yield root


def run_pass(data: Path, *, cdn: bool, threshold: float = 0.7, target: float = 0.6,
             dry_run: bool = False, extra: dict[str, object] | None = None) -> StepReport:
    flags = {
        "data_dir": FlagValue("--data-dir", str(data)),
        "cdn.enabled": FlagValue("--cdn", cdn),
        "cdn.public_url": FlagValue("--cdn-public-url", CDN_BASE),
        "pressure.threshold": FlagValue("--threshold", threshold),
        "pressure.target": FlagValue("--target", target),
        "pressure.min_age": FlagValue("--min-age", "1d"),
    }
    flags.update({key: FlagValue(key, value) for key, value in (extra or {}).items()})
    config = load_config(flags, env={})
    with DataDir(data) as data_dir:
        return run("pressure", PassContext(config, data_dir, dry_run, time.time()))


def deleted(step: StepReport) -> list[str]:
    return [action.path for action in step.actions if isinstance(action, Delete)]


def used_fraction(directory: Path) -> float:
    used, capacity = usage(directory)
    return used / capacity


def assert_spared(data: Path, victims: list[str]) -> None:
    for path in SPARED:
        assert (data / path).exists(), f"{path} must never be evicted"
    assert (data / LINKED[1]).exists()
    for path in ORDER_CDN_ON:
        assert (data / path).exists() == (path not in victims), path


def test_cdn_on_evicts_published_then_unreferenced_then_referenced_to_the_target(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    posts = build_tree(data)
    cartoons = (data / "cartoons.json").read_bytes()
    fill_to(small_tmpfs, 0.86, "data/db/store.bin")
    victims = expected_victims(data, ORDER_CDN_ON, 0.6)
    assert victims[-1] in ORDER_CDN_ON[6:], "the scenario must reach into the referenced class"
    freed = sum(allocated(data / path) for path in victims)
    before = used_fraction(data)

    result = run_datagc("pressure", "--data-dir", str(data), "--threshold", "0.7", "--target", "0.6",
                        "--min-age", "1d", "--cdn", "--cdn-public-url", CDN_BASE, "--json")

    assert result.code == Exit.PRESSURE_DELETED, result.stderr
    report = result.json()
    (step,) = report["steps"]
    deletes = [action for action in step["actions"] if action["kind"] == "delete"]
    assert [action["path"] for action in deletes] == victims
    assert {action["reason"] for action in deletes} == {"pressure"}
    details = {action["path"]: action["detail"] for action in deletes}
    assert details["images/pub-1.png"] == "on the CDN"
    assert details["images/unref-1.png"] == "unreferenced"
    assert details["images/both.png"] == "referenced by the feed"
    assert step["status"] == "ok"
    assert step["reclaimed_bytes"] == freed == step["bytes"]
    assert step["files"] == len(victims)
    assert step["used_fraction_before"] == pytest.approx(before)
    assert step["used_fraction_after"] == pytest.approx(used_fraction(data))
    assert used_fraction(data) <= 0.6
    assert_spared(data, victims)
    assert json.loads((data / "posts.json").read_text()) == feed_after(posts, victims)
    nulls = {(a["field"], a["url"]) for a in step["actions"] if a["kind"] == "feed-null"}
    assert nulls == {(f, f"/{p}") for p in victims for f in ("imageUrl", "videoUrl")
                     if any(post.get(f) == f"/{p}" for post in posts)}
    assert (data / "cartoons.json").read_bytes() == cartoons
    assert any("hard link" in kept["why"] for kept in step["kept"] if kept["path"] == LINKED[0])
    assert step["notes"][0].startswith("pressure: ") and f"deleted {len(victims)} files" in step["notes"][0]
    # disk_after is measured at the end, so it includes the journal written after the evictions (SPEC §9)
    assert report["disk_after"]["used_fraction"] == pytest.approx(df_used_fraction(data), abs=1e-6)


def test_cdn_off_has_no_published_class_but_still_evicts(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    posts = build_tree(data)
    fill_to(small_tmpfs, 0.86, "data/db/store.bin")
    victims = expected_victims(data, ORDER_CDN_OFF, 0.6)
    assert victims != expected_victims(data, ORDER_CDN_ON, 0.6)

    step = run_pass(data, cdn=False)

    assert deleted(step) == victims
    assert step.flags == Exit.PRESSURE_DELETED
    details = {detail_text(a.detail) for a in step.actions if isinstance(a, Delete)}
    assert details <= {"unreferenced", "referenced by the feed"}
    assert used_fraction(data) <= 0.6
    assert_spared(data, victims)
    assert json.loads((data / "posts.json").read_text()) == feed_after(posts, victims)


def test_below_the_threshold_nothing_happens(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    build_tree(data)
    fill_to(small_tmpfs, 0.65, "data/db/store.bin")
    files, feed = snapshot(data), (data / "posts.json").read_bytes()

    result = run_datagc("pressure", "--data-dir", str(data), "--cdn", "--cdn-public-url", CDN_BASE, "--json")

    assert result.code == 0, result.stderr
    (step,) = result.json()["steps"]
    assert step["status"] == "skipped" and step["actions"] == []
    assert "threshold 70%" in step["notes"][0] and "nothing to do" in step["notes"][0]
    assert snapshot(data) == files and (data / "posts.json").read_bytes() == feed


def test_when_every_eligible_file_is_not_enough_all_go_and_bit_32_says_so(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    posts = build_tree(data)
    fill_to(small_tmpfs, 0.97, "outside-the-data-dir.bin")

    step = run_pass(data, cdn=True, threshold=0.5, target=0.4)

    assert step.flags == Exit.PRESSURE_DELETED | Exit.STILL_ABOVE_THRESHOLD
    assert deleted(step) == list(ORDER_CDN_ON)
    assert used_fraction(data) > 0.5
    assert step.details["exhausted"] is True
    assert_spared(data, list(ORDER_CDN_ON))
    assert json.loads((data / "posts.json").read_text()) == feed_after(posts, list(ORDER_CDN_ON))
    (message,) = [note for note in notes(step) if note.startswith("pressure: still")]
    assert "an operator must" in message and str(data) in message
    assert "younger than 1.0d" in message and "protected" in message and "hard-linked" in message
    # the data dir is a small share of what is used: the filler outside it holds the rest
    share = step.details["data_dir_share"]
    assert isinstance(share, float) and share < 0.5
    holders = step.details["holders"]
    assert isinstance(holders, list) and holders[0]["path"] in ("images", "videos")


def test_dry_run_shows_the_victims_and_the_projection_and_changes_nothing(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    build_tree(data)
    fill_to(small_tmpfs, 0.86, "data/db/store.bin")
    files, feed = snapshot(data), (data / "posts.json").read_bytes()
    victims = expected_victims(data, ORDER_CDN_ON, 0.6)

    dry = run_datagc("pressure", "--data-dir", str(data), "--cdn", "--cdn-public-url", CDN_BASE, "--dry-run", "--json")

    assert dry.code == Exit.PRESSURE_DELETED, dry.stderr
    (planned,) = dry.json()["steps"]
    assert snapshot(data) == files and (data / "posts.json").read_bytes() == feed
    assert [a["path"] for a in planned["actions"] if a["kind"] == "delete"] == victims
    assert {a["url"] for a in planned["actions"] if a["kind"] == "feed-null"} == {
        f"/{p}" for p in victims if p in ORDER_CDN_ON[6:]}
    projected = planned["used_fraction_projected"]

    real = run_pass(data, cdn=True)

    assert deleted(real) == victims
    assert used_fraction(data) == pytest.approx(projected, abs=1e-9)  # tmpfs gives back exactly st_blocks


def test_plain_output_is_one_janitor_line_per_eviction_and_a_summary(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    build_tree(data)
    fill_to(small_tmpfs, 0.86, "data/db/store.bin")
    victims = expected_victims(data, ORDER_CDN_ON, 0.6)

    result = run_datagc("pressure", "--data-dir", str(data), "--cdn", "--cdn-public-url", CDN_BASE)

    assert result.code == Exit.PRESSURE_DELETED, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("[janitor] evicted ") for line in lines) == len(victims)
    (summary,) = [line for line in lines if line.startswith("[janitor] pressure: ") and "> 70%" in line]
    assert f"deleted {len(victims)} files (" in summary and "; now " in summary


def test_a_feed_that_does_not_parse_keeps_every_media_file(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    build_tree(data)
    (data / "posts.json").write_text('[{"id": "p1", "imageUrl": "/images/unref-1.png"', encoding="utf-8")
    fill_to(small_tmpfs, 0.86, "data/db/store.bin")
    files, feed = snapshot(data), (data / "posts.json").read_bytes()

    result = run_datagc("pressure", "--data-dir", str(data), "--cdn", "--cdn-public-url", CDN_BASE, "--json")

    assert result.code == Exit.STEP_FAILED | Exit.STILL_ABOVE_THRESHOLD
    assert "posts.json" in result.stderr and "every media file was kept" in result.stderr
    (step,) = result.json()["steps"]
    assert step["status"] == "error" and step["actions"] == []
    assert snapshot(data) == files and (data / "posts.json").read_bytes() == feed


def test_a_statfs_failure_skips_the_pass_without_guessing(tmp_path: Path) -> None:
    build_tree(tmp_path)
    config = load_config({"data_dir": FlagValue("--data-dir", str(tmp_path))}, env={})
    files = snapshot(tmp_path)
    data_dir = DataDir(tmp_path)
    data_dir.close()  # statfs on a closed descriptor: EBADF, a real failure of the call

    step = run("pressure", PassContext(config, data_dir, False, time.time()))

    assert step.status == "error" and step.flags == Exit.STEP_FAILED
    message = error(step)
    assert message is not None and "statfs" in message and "nothing was deleted" in message
    assert snapshot(tmp_path) == files


def test_ext4_reaches_the_target_in_eviction_order() -> None:
    with loop_ext4(128 * MiB) as root:
        data = root / "data"
        posts = build_tree(data)
        fill_to(root, 0.85, "data/db/store.bin")
        victims = expected_victims(data, ORDER_CDN_ON, 0.6)

        step = run_pass(data, cdn=True)

        assert deleted(step) == victims
        assert step.flags == Exit.PRESSURE_DELETED
        os.sync()
        assert used_fraction(data) <= 0.6
        assert step.details["used_fraction_after"] == pytest.approx(used_fraction(data), abs=0.005)
        assert_spared(data, victims)
        assert json.loads((data / "posts.json").read_text()) == feed_after(posts, victims)


def test_ext4_still_above_the_threshold_exits_48_through_the_cli() -> None:
    with loop_ext4(128 * MiB) as root:
        data = root / "data"
        build_tree(data)
        fill_to(root, 0.95, "data/db/store.bin")

        result = run_datagc("pressure", "--data-dir", str(data), "--threshold", "0.5", "--target", "0.4",
                            "--no-cdn", "--json")

        assert result.code == Exit.PRESSURE_DELETED | Exit.STILL_ABOVE_THRESHOLD, result.stderr
        (step,) = result.json()["steps"]
        assert [a["path"] for a in step["actions"] if a["kind"] == "delete"] == list(ORDER_CDN_OFF)
        assert step["holders"][0] == {"path": "db", "bytes": allocated(data / "db/store.bin")}
        assert step["data_dir_share"] > 0.9
        assert_spared(data, list(ORDER_CDN_OFF))
