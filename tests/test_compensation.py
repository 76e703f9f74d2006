"""A feed reference is only ever lost together with its file (SPEC §7 rule 14), attacked.

datagc nulls a file's references, then fails to delete it: an immutable file,
capabilities dropped, a file bind-mounted over it, or a file that changed
since it was planned. The references must be back in the same pass, and the
report must say so (``feed-restore``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc import executor
from datagc.exitcodes import Exit
from datagc.facts import FileIdentity
from datagc.feed import rewrite
from datagc.feed.rewrite import null_references, restore_references
from datagc.model import Action, Delete, FeedNull, FeedRestore, StepReport
from datagc.safety.datadir import DataDir
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.mounts import MiB, fill, loop_ext4
from tests.steps import notes
from tests.sweep_support import context, make_config, write_file

FEED: list[dict[str, str | None]] = [
    {"id": "p1", "text": "stays", "imageUrl": "/images/stuck.png"},
    {"id": "p2", "text": "goes", "imageUrl": "/images/free.png", "videoUrl": None},
    {"text": "no id", "imageUrl": "/images/stuck.png"},
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    now = time.time()
    write_file(root / "images" / "stuck.png", 4096, 30, now=now)
    write_file(root / "images" / "free.png", 4096, 30, now=now)
    (root / "posts.json").write_text(json.dumps(FEED, indent=2) + "\n")
    return root


def feed_now(root: Path) -> list[dict[str, object]]:
    document: list[dict[str, object]] = json.loads((root / "posts.json").read_text())
    return document


def assert_restored(root: Path, report: dict[str, object]) -> None:
    """stuck.png stayed and both its references are back; free.png went and its reference is null."""
    assert (root / "images" / "stuck.png").exists() and not (root / "images" / "free.png").exists()
    assert feed_now(root) == [FEED[0], {**FEED[1], "imageUrl": None}, FEED[2]]
    step = report["steps"][0]  # type: ignore[index]
    kinds = [(action["kind"], action["url"]) for action in step["actions"] if action["kind"].startswith("feed")]
    assert kinds.count(("feed-null", "/images/stuck.png")) == 2
    assert kinds.count(("feed-restore", "/images/stuck.png")) == 2
    assert any("put back 2 feed reference(s)" in note for note in step["notes"])


@pytest.fixture
def immutable(data: Path) -> Iterator[Path]:
    path = data / "images" / "stuck.png"
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_immutable_file_gets_its_references_back(data: Path, immutable: Path) -> None:
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert result.code == Exit.STEP_FAILED | Exit.SWEPT
    assert_restored(data, result.json())
    assert "could not delete images/stuck.png (Operation not permitted)" in result.stderr
    journal = [json.loads(line) for line in (data / ".datagc" / "journal.jsonl").read_text().splitlines()]
    stuck = [(e["kind"], e["reason"]) for e in journal if e.get("media", e["path"]) == "images/stuck.png"]
    nulls = len(stuck) // 2
    assert nulls and stuck == [("feed-null", "age")] * nulls + [("feed-restore", "age")] * nulls, \
        "the journal says the nulls and their restores, and no deletion"


def test_without_capabilities_the_unlink_fails_and_the_references_come_back(data: Path) -> None:
    """Root with every capability dropped can't unlink in a directory another user owns."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop capabilities")
    stuck = data / "images" / "locked"
    stuck.mkdir()
    (data / "images" / "stuck.png").rename(stuck / "stuck.png")
    os.chown(stuck, 4321, 4321)
    os.chmod(stuck, 0o755)
    document = json.loads((data / "posts.json").read_text().replace("/images/stuck.png", "/images/locked/stuck.png"))
    (data / "posts.json").write_text(json.dumps(document, indent=2) + "\n")
    before = (data / "posts.json").read_text()
    process = subprocess.run(
        [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--", DATAGC, "sweep", "--data-dir", str(data), "--cdn",
         "--json"], capture_output=True, text=True, env=clean_env(), check=False)
    assert process.returncode == Exit.STEP_FAILED | Exit.SWEPT, process.stderr
    assert (stuck / "stuck.png").exists() and not (data / "images" / "free.png").exists()
    assert "Permission denied" in process.stderr
    after = json.loads((data / "posts.json").read_text())
    assert after == [document[0], {**document[1], "imageUrl": None}, document[2]]
    assert (data / "posts.json").read_text() == before.replace('"/images/free.png"', "null")  # span-exact


def test_a_file_bind_mounted_over_is_kept_and_its_references_come_back(data: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    other = write_file(tmp_path / "other.png", 4096, 30, now=time.time())
    target = data / "images" / "stuck.png"
    if subprocess.run(["mount", "--bind", str(other), str(target)], capture_output=True, check=False).returncode:
        pytest.skip("mount --bind was refused here")
    try:
        result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert other.exists()
    assert result.code & Exit.SWEPT
    assert_restored(data, result.json())


def test_a_file_that_changed_after_its_references_were_nulled_gets_them_back(data: Path) -> None:
    """Planned, then rewritten before the unlink: kept, and what was nulled for it is put back."""
    stuck, free = data / "images" / "stuck.png", data / "images" / "free.png"
    plan: list[Action] = []
    for path in (stuck, free):
        st = path.lstat()
        plan.append(Delete(str(path.relative_to(data)), st.st_blocks * 512, "age", 30.0, FileIdentity.of(st)))
    real_null = null_references

    def null_then_touch(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = real_null(*args, **kwargs)
        with stuck.open("ab") as handle:  # the service writes it again between datagc's null and its unlink
            handle.write(b"more")
        return outcome

    step = StepReport("sweep")
    with context(data, make_config(data, cdn__enabled=True)) as ctx:
        rewrite.null_references = null_then_touch  # the executor imports it when it deletes
        try:
            executor.apply(ctx, plan, step)
        finally:
            rewrite.null_references = real_null
    assert stuck.exists() and not free.exists()
    assert feed_now(data) == [FEED[0], {**FEED[1], "imageUrl": None}, FEED[2]]
    restores = [action for action in step.actions if isinstance(action, FeedRestore)]
    assert [(r.post, r.url) for r in restores] == [("p1", "/images/stuck.png"), (None, "/images/stuck.png")]
    assert any("put back 2" in note for note in notes(step))


def test_a_service_rewrite_in_between_keeps_its_posts_and_the_restore_finds_the_null(data: Path) -> None:
    """The service re-orders and adds posts after datagc's null: the null is found again by post id."""
    root = data
    nulls = [FeedNull("posts.json", "imageUrl", "/images/stuck.png", "p1")]
    rewritten = [{"id": "new", "imageUrl": "/images/new.png"}, {**FEED[0], "imageUrl": None}, FEED[1]]
    (root / "posts.json").write_text(json.dumps(rewritten))
    config = make_config(root, cdn__enabled=True)
    with DataDir(root) as data_dir:
        outcome = restore_references(data_dir, config, nulls)
    assert [r.post for r in outcome.restores] == ["p1"] and not outcome.gone and not outcome.problems
    assert feed_now(root) == [rewritten[0], FEED[0], FEED[1]]
    with DataDir(root) as data_dir:
        again = restore_references(data_dir, config, nulls)
    assert again.gone == nulls and not again.restores  # no null left there: nothing is written


def test_on_a_full_loop_ext4_an_immutable_victim_of_pressure_gets_its_references_back() -> None:
    """Pressure on a full ext4: the first nulling fails for lack of space, the unreferenced victims free some,
    the nulls are written on the retry, then the referenced victim turns out immutable (EPERM): its two
    references come back in the same pass, on the same full disk, and audit finds nothing dangling."""
    with loop_ext4(16 * MiB) as root:
        now = time.time()
        write_file(root / "images" / "stuck.png", 4096, 30, now=now)
        write_file(root / "images" / "free.png", 4096, 30, now=now)
        for index in range(8):
            write_file(root / "images" / f"unreferenced-{index}.png", 64 * 1024, 40, now=now)
        (root / "posts.json").write_text(json.dumps(FEED, indent=2) + "\n")
        stuck = root / "images" / "stuck.png"
        content = stuck.read_bytes()
        if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, check=False).returncode != 0:
            pytest.skip("chattr +i is not supported on this ext4 image")
        try:
            fill(root)  # not a media file: nothing may take it
            result = run_datagc("pressure", "--data-dir", str(root), "--threshold", "0.5", "--target", "0.000001",
                                "--min-age", "0s", "--json")
            audit = run_datagc("audit", "--data-dir", str(root), "--json")
        finally:
            subprocess.run(["chattr", "-i", str(stuck)], check=True)
        assert result.code & Exit.STEP_FAILED and result.code & Exit.PRESSURE_DELETED, result.stderr
        assert "could not delete images/stuck.png (Operation not permitted)" in result.stderr
        assert stuck.read_bytes() == content
        assert not (root / "images" / "free.png").exists() and not list((root / "images").glob("unreferenced-*"))
        assert feed_now(root) == [FEED[0], {**FEED[1], "imageUrl": None}, FEED[2]]
        notes = result.json()["steps"][0]["notes"]
        assert any("tried again once they had freed some" in note for note in notes), notes
        assert any("put back 2 feed reference(s)" in note for note in notes), notes
        assert audit.json()["dangling_references"] == []
