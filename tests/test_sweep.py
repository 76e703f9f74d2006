"""``datagc sweep`` on the sample data directory: file by file, in-process and through the real CLI."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagc.exitcodes import Exit
from datagc.model import Delete, FeedNull, StepReport
from datagc.passes import sweep
from datagc.safety.rewrite import temp_name
from datagc.safety.unlink import reclaimable_bytes
from datagc.wording import detail_text
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.steps import error, notes, run
from tests.sweep_support import (
    DAY,
    NOW,
    context,
    files,
    make_config,
    node_json,
    post,
    posts,
    sample,
    snapshot,
    write_file,
)

#: every file of the sample, for the survivor lists below
SAMPLE = {
    "posts.json", "cartoons.json", "events.jsonl", "cache-images.json", "agent-keypair.json",
    "posts.json.tmp.1763000000000", "posts.json.tmp.1764000000000",
    "images/1763900000000-a1.png", "images/1763900000000-a1-v2.png", "images/1763990000000-b2.png",
    "images/shared-name.png", "videos/shared-name.mp4", "bid-images/shared-name.png",
    "images/1763400000000-f6.png", "videos/1763400000000-f6.mp4", "voice/monologue-1764000000.mp3",
    "voice/old/monologue-1763000000.mp3", "images/in-progress.png",
}
#: CDN on, defaults: what goes and why
SWEPT_WITH_CDN = {
    "images/1763900000000-a1.png": "age",
    "images/1763900000000-a1-v2.png": "age",
    "images/shared-name.png": "age",
    "videos/shared-name.mp4": "age",
    "images/1763400000000-f6.png": "age",
    "videos/1763400000000-f6.mp4": "age",
    "voice/old/monologue-1763000000.mp3": "age",
    "posts.json.tmp.1763000000000": "temp",
}


def run_sweep(root: Path, *, dry_run: bool = False, **keys: object) -> StepReport:
    with context(root, make_config(root, **keys), dry_run=dry_run) as ctx:
        return run("sweep", ctx)


def swept(step: StepReport) -> dict[str, str]:
    return {a.path: a.reason for a in step.actions if isinstance(a, Delete)}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return sample(tmp_path / "data")


def test_cdn_enabled_sweeps_old_media_and_the_orphan_temp(data: Path) -> None:
    sizes = {path: reclaimable_bytes((data / path).lstat()) for path in SWEPT_WITH_CDN}
    original = (data / "posts.json").read_bytes()
    step = run_sweep(data, cdn__enabled=True)
    assert swept(step) == SWEPT_WITH_CDN
    assert files(data) == SAMPLE - set(SWEPT_WITH_CDN)
    assert step.reclaimed_bytes == sum(sizes.values()) > 0
    assert step.flags == Exit.SWEPT and step.status == "ok"
    # p3's two local references are gone; p4's same-named bid-image and p2's young image are still named
    assert [(a.field, a.post) for a in step.actions if isinstance(a, FeedNull)] == [("imageUrl", "p3"),
                                                                                   ("videoUrl", "p3")]
    assert (post(data, "p3")["imageUrl"], post(data, "p3")["videoUrl"]) == (None, None)
    assert post(data, "p4")["imageUrl"] == "/bid-images/shared-name.png"
    assert post(data, "p2")["imageUrl"] == "/images/1763990000000-b2.png"
    assert post(data, "p1")["imageUrl"] == "https://cdn.example.com/images/1763900000000-a1.png"
    expected = original.replace(b'"/images/shared-name.png"', b"null").replace(b'"/videos/shared-name.mp4"', b"null")
    assert (data / "posts.json").read_bytes() == expected


def test_published_copies_go_after_the_grace_even_when_young(data: Path) -> None:
    step = run_sweep(data, cdn__enabled=True, sweep__max_age="30d", cdn__public_url="https://cdn.example.com")
    assert swept(step) == {
        "images/1763900000000-a1.png": "published",
        "images/1763400000000-f6.png": "published",
        "videos/1763400000000-f6.mp4": "published",
        "posts.json.tmp.1763000000000": "temp",
    }
    assert not [a for a in step.actions if isinstance(a, FeedNull)]
    assert (data / "posts.json").read_bytes() == (Path(sweep.__file__).parents[1] / "sample/posts.json").read_bytes()


def test_cdn_disabled_sweeps_only_the_orphan_temp(data: Path) -> None:
    before = (data / "posts.json").read_bytes()
    step = run_sweep(data, cdn__enabled=False)
    assert swept(step) == {"posts.json.tmp.1763000000000": "temp"}
    assert files(data) == SAMPLE - {"posts.json.tmp.1763000000000"}
    assert (data / "posts.json").read_bytes() == before
    assert any("CDN disabled" in note for note in notes(step))
    assert step.flags == Exit.SWEPT


def test_dry_run_changes_nothing_and_reports_the_same_plan(data: Path) -> None:
    stale = data / "posts.json.datagc-tmp.1"  # another process's: this one's would be replaced by its own rewrite
    stale.write_text("[")
    os.utime(stale, (NOW - 60, NOW - 60))  # left by an earlier pass
    before = snapshot(data)
    dry = run_sweep(data, dry_run=True, cdn__enabled=True)
    assert snapshot(data) == before
    real = run_sweep(data, cdn__enabled=True)
    assert sorted(map(repr, dry.actions)) == sorted(map(repr, real.actions))  # a real run nulls first
    assert dry.reclaimed_bytes == real.reclaimed_bytes
    assert dry.flags == real.flags == Exit.SWEPT


def test_a_second_sweep_finds_nothing(data: Path) -> None:
    run_sweep(data, cdn__enabled=True)
    again = run_sweep(data, cdn__enabled=True)
    assert again.actions == [] and again.flags == Exit.OK and again.status == "skipped"


@pytest.mark.parametrize("content", [b"this is not json {", b'{"posts": []}\n'])
def test_an_unparseable_feed_keeps_every_media_file(data: Path, content: bytes) -> None:
    (data / "posts.json").write_bytes(content)
    step = run_sweep(data, cdn__enabled=True)
    assert swept(step) == {"posts.json.tmp.1763000000000": "temp"}
    assert files(data) == SAMPLE - {"posts.json.tmp.1763000000000"}
    assert (data / "posts.json").read_bytes() == content
    assert {kept.path for kept in step.kept} == set(SWEPT_WITH_CDN) - {"posts.json.tmp.1763000000000"}
    assert step.status == "error" and step.flags == Exit.SWEPT | Exit.STEP_FAILED
    assert "posts.json" in (error(step) or "")


def test_symlinks_in_media_dirs_are_never_followed_nor_removed(data: Path, tmp_path: Path) -> None:
    outside = write_file(tmp_path / "outside" / "precious.png", 1000, 30)
    outside_dir = outside.parent
    old = data / "images" / "old-link.png"
    old.symlink_to(outside)
    (data / "images" / "linked-dir").symlink_to(outside_dir, target_is_directory=True)
    os.utime(old, (NOW - 30 * DAY, NOW - 30 * DAY), follow_symlinks=False)
    run_sweep(data, cdn__enabled=True)
    assert old.is_symlink() and (data / "images" / "linked-dir").is_symlink()
    assert outside.exists() and files(outside_dir) == {"precious.png"}


def test_protect_patterns_inside_media_dirs(data: Path) -> None:
    for name in ("cache-x.json", "thumbs.json", "agent-keypair.bin", "signing.key"):
        write_file(data / "images" / name, 100, 30)
    step = run_sweep(data, cdn__enabled=True)
    protected = {"images/cache-x.json", "images/thumbs.json", "images/agent-keypair.bin", "images/signing.key"}
    assert protected <= files(data)
    assert {kept.path for kept in step.kept} >= {"images/cache-x.json", "images/signing.key"}


def test_nothing_outside_media_dirs_and_temp_patterns_is_touched(data: Path) -> None:
    for path in ("old-stuff/a.png", "thumbnails/b.png", "images.bak", "nested/posts.json.tmp.1"):
        write_file(data / path, 100, 60)
    os.utime(data / "cartoons.json", (NOW - 90 * DAY, NOW - 90 * DAY))
    run_sweep(data, cdn__enabled=True)
    outside = {"old-stuff/a.png", "thumbnails/b.png", "images.bak", "nested/posts.json.tmp.1", "cartoons.json"}
    assert outside <= files(data)


def test_nested_media_and_a_media_dir_that_is_missing(data: Path) -> None:
    write_file(data / "videos" / "a" / "b" / "c" / "deep.mp4", 100, 8)
    write_file(data / "extra" / "x.png", 100, 8)
    step = run_sweep(data, cdn__enabled=True, sweep__media_dirs="images,videos,voice,bid-images,missing,extra")
    assert "videos/a/b/c/deep.mp4" in swept(step) and "extra/x.png" in swept(step)
    assert (data / "videos" / "a" / "b" / "c").is_dir()  # directories are never removed
    assert step.status == "ok"


def test_stale_datagc_temps_next_to_the_feed_are_cleaned(data: Path) -> None:
    stale = data / temp_name("posts.json")
    stale.write_text("[")
    os.utime(stale, (NOW - 60, NOW - 60))  # left by an earlier pass
    young = data / "posts.json.datagc-tmp.9"
    young.write_text("[")  # as if this very pass were writing it: not a leftover yet
    step = run_sweep(data, cdn__enabled=False)
    assert not stale.exists() and young.exists()
    assert (stale.name, "temp", "left by an interrupted datagc") in {
        (a.path, a.reason, detail_text(a.detail)) for a in step.actions if isinstance(a, Delete)}


# --- a property on real trees -------------------------------------------------

tree_entries = st.lists(
    st.tuples(st.sampled_from(["images", "images/n", "videos", "voice/a/b", "bid-images"]),
              st.sampled_from(["a.png", "b.png", "shared-name.png", "c.mp4"]),
              st.floats(0, 12), st.sampled_from(["none", "local", "cdn"])),
    max_size=12,
    unique_by=lambda entry: (entry[0], entry[1]),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=tree_entries, temp_ages=st.lists(st.floats(0, 3), max_size=3))
def test_a_second_real_pass_does_nothing(entries: list[tuple[str, str, float, str]], temp_ages: list[float]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        document = []
        for index, (directory, name, age, ref) in enumerate(entries):
            write_file(root / directory / name, 10, age)
            if ref == "local":
                document.append({"id": f"p{index}", "imageUrl": f"/{directory}/{name}"})
            elif ref == "cdn":
                document.append({"id": f"p{index}", "imageUrl": f"https://cdn.example.com/{directory}/{name}"})
        for index, age in enumerate(temp_ages):
            write_file(root / f"posts.json.tmp.{index}", 10, age)
        (root / "posts.json").write_text(node_json(document))
        first = run_sweep(root, cdn__enabled=True)
        second = run_sweep(root, cdn__enabled=True)
        assert second.actions == [] and second.flags == Exit.OK
        gone = set(swept(first))
        for entry in posts(root):
            url = entry["imageUrl"]
            assert url is None or url.startswith("https://") or url.lstrip("/") not in gone


# --- the real CLI ------------------------------------------------------------


def test_cli_json_report_and_exit_codes(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    result = run_datagc("sweep", "--data-dir", str(data), "--max-age", "7d", "--cdn", "--json")
    assert result.code == 8, result.stderr
    report = result.json()
    step = report["steps"][0]
    assert report["command"] == "sweep" and report["exit_code"] == 8 and step["name"] == "sweep"
    assert {a["path"]: a["reason"] for a in step["actions"] if a["kind"] == "delete"} == SWEPT_WITH_CDN
    assert {(a["path"], a["field"], a["url"]) for a in step["actions"] if a["kind"] == "feed-null"} == {
        ("posts.json", "imageUrl", "/images/shared-name.png"), ("posts.json", "videoUrl", "/videos/shared-name.mp4")}
    assert report["reclaimed_bytes"] == step["reclaimed_bytes"] > 0
    assert files(data) == SAMPLE - set(SWEPT_WITH_CDN)
    again = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert again.code == 0 and again.json()["steps"][0]["actions"] == []


def test_cli_dry_run_plain_lines(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    before = snapshot(data)
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--dry-run")
    assert result.code == 8, result.stderr
    assert "[janitor] would sweep images/shared-name.png" in result.stdout
    assert "[janitor] would null imageUrl of p3 in posts.json (/images/shared-name.png)" in result.stdout
    assert snapshot(data) == before


def test_cli_unparseable_feed(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    (data / "posts.json").write_text("<html>502 Bad Gateway</html>")
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn")
    assert result.code == 9, (result.stdout, result.stderr)
    assert "posts.json is not JSON" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert files(data) == SAMPLE - {"posts.json.tmp.1763000000000"}


def test_cli_unreadable_subdirectory_is_an_error_and_the_rest_is_swept(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    private = write_file(data / "voice" / "private" / "old.mp3", 100, 30, now=time.time())
    os.chmod(private.parent, 0)
    try:
        process = subprocess.run(
            ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
             DATAGC, "sweep", "--data-dir", str(data), "--cdn", "--json"],
            capture_output=True, text=True, env=clean_env(), check=False,
        )
    finally:
        os.chmod(private.parent, 0o755)
    if "setpriv" in process.stderr:
        pytest.skip(f"cannot drop the permission-override capabilities: {process.stderr.strip()}")
    assert process.returncode == 9, process.stderr
    step = orjson.loads(process.stdout)["steps"][0]
    assert step["status"] == "error" and step["errno"] == "EACCES"
    assert "voice/private cannot be read (Permission denied)" in step["error"]
    assert private.exists()
    assert files(data) == (SAMPLE - set(SWEPT_WITH_CDN)) | {"voice/private/old.mp3"}


def test_a_media_dir_that_is_a_symlink_is_not_entered(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (data / "voice").rename(elsewhere)
    (data / "voice").symlink_to(elsewhere, target_is_directory=True)
    step = run_sweep(data, cdn__enabled=True)
    assert (elsewhere / "old" / "monologue-1763000000.mp3").exists()
    assert "voice is a symbolic link; not entered, nothing in it was touched" in notes(step)
    assert step.status == "ok"
