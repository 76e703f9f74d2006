"""The executor on real trees: plan, then change the tree under it, then execute."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from datagc import executor
from datagc.exitcodes import Exit
from datagc.facts import FileIdentity
from datagc.feed.rewrite import NullOutcome, null_references
from datagc.model import Action, Delete, FeedNull, Rotate, StepReport
from datagc.safety.unlink import reclaimable_bytes
from tests.mounts import MiB, fill, readonly_bind, tmpfs
from tests.steps import errno_name, error, notes, why
from tests.sweep_support import NOW, context, files, make_config, node_json, post, posts, sample, snapshot, write_file


def delete_of(root: Path, path: str, reason: str = "age") -> Delete:
    st = (root / path).lstat()
    return Delete(path, reclaimable_bytes(st), reason, NOW - st.st_mtime, FileIdentity.of(st))  # type: ignore[arg-type]


def deleted(step: StepReport) -> list[str]:
    return [action.path for action in step.actions if isinstance(action, Delete)]


def nulls(step: StepReport) -> list[FeedNull]:
    return [action for action in step.actions if isinstance(action, FeedNull)]


def test_files_that_vanish_or_change_after_planning_are_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("gone", "touched", "grown", "replaced", "now-a-link", "fine-1", "fine-2"):
        write_file(root / "images" / "old" / f"{name}.png", 5000, 9)
    outside = write_file(tmp_path / "outside.png", 5000, 9)
    plan: list[Action] = [delete_of(root, f"images/old/{name}.png") for name in
                          ("gone", "touched", "grown", "replaced", "now-a-link", "fine-1", "fine-2")]
    old = root / "images" / "old"
    (old / "gone.png").unlink()
    os.utime(old / "touched.png")  # written again: younger now
    with (old / "grown.png").open("ab") as handle:
        handle.write(b"more")
    os.utime(old / "grown.png", ((old / "fine-1.png").stat().st_atime, (old / "fine-1.png").stat().st_mtime))
    (old / "replaced.png").unlink()
    write_file(old / "replaced.png", 5000, 9)  # same size and mtime; the inode number may well be reused
    _later_ctime(old / "replaced.png", plan[3])
    (old / "now-a-link.png").unlink()
    (old / "now-a-link.png").symlink_to(outside)
    expected_bytes = sum(a.bytes for a in plan if isinstance(a, Delete) and "fine" in a.path)

    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert deleted(step) == ["images/old/fine-1.png", "images/old/fine-2.png"]
    assert step.reclaimed_bytes == expected_bytes > 0
    assert {kept.path for kept in step.kept} == {f"images/old/{n}.png" for n in ("touched", "grown", "replaced",
                                                                                  "now-a-link")}
    assert all(why(kept) == "changed since it was planned" for kept in step.kept)
    assert files(root) == {f"images/old/{n}.png" for n in ("touched", "grown", "replaced")}
    assert (old / "now-a-link.png").is_symlink() and outside.exists()
    assert step.status == "ok" and step.flags == Exit.SWEPT


def _later_ctime(path: Path, planned: Action) -> None:
    """Make sure ``path``'s ctime moved past the planned one (a coarse clock can give both the same tick),
    as it has in life when a file is replaced after planning."""
    assert isinstance(planned, Delete)
    while path.stat().st_ctime_ns <= planned.identity.ctime_ns:
        time.sleep(0.002)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))  # moves only the ctime


def test_a_file_rewritten_in_place_with_size_and_mtime_restored_is_kept(tmp_path: Path) -> None:
    """Same inode, same size, same mtime (``cp -p`` over it, ``rsync -t --inplace``): only the ctime tells."""
    root = tmp_path / "data"
    path = write_file(root / "images" / "old" / "a.png", 5000, 9)
    plan: list[Action] = [delete_of(root, "images/old/a.png")]
    before = path.stat()
    new_content = os.urandom(5000)
    with path.open("r+b") as handle:
        handle.write(new_content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _later_ctime(path, plan[0])
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert path.read_bytes() == new_content
    assert [(kept.path, why(kept)) for kept in step.kept] == [("images/old/a.png", "changed since it was planned")]
    assert not step.actions


def test_a_directory_replaced_by_a_symlink_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_file(root / "images" / "sub" / "a.png", 100, 9)
    plan: list[Action] = [delete_of(root, "images/sub/a.png")]
    elsewhere = tmp_path / "elsewhere"
    (root / "images" / "sub").rename(elsewhere)
    (root / "images" / "sub").symlink_to(elsewhere)
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert (elsewhere / "a.png").exists()
    assert [(kept.path, why(kept)) for kept in step.kept] == [("images/sub/a.png", "changed since it was planned")]
    assert not step.actions


def test_dry_run_records_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    plan: list[Action] = [
        FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3"),
        delete_of(root, "images/shared-name.png"),
        delete_of(root, "posts.json.tmp.1763000000000", "temp"),
        Rotate("events.jsonl", 1000, 400, 10),
    ]
    before = snapshot(root)
    step = StepReport("sweep")
    with context(root, make_config(root), dry_run=True) as ctx:
        executor.apply(ctx, plan, step)
    assert step.actions == plan
    assert step.reclaimed_bytes == sum(a.bytes for a in plan if isinstance(a, Delete)) + 600
    assert snapshot(root) == before


def test_the_feed_is_nulled_before_and_checked_again_after_the_unlinks(tmp_path: Path) -> None:
    """The service rewrites the feed from an old copy right after datagc's unlinks: the reference comes back
    and is nulled again; the service's new post survives."""
    root = sample(tmp_path / "data")
    stale_copy = posts(root)  # what the service holds in memory: still names images/shared-name.png
    plan: list[Action] = [delete_of(root, "images/shared-name.png"), delete_of(root, "images/1763900000000-a1-v2.png")]
    real_unlink_all = executor._unlink_all

    def unlink_then_service_writes(*args: object) -> list[str]:
        done = real_unlink_all(*args)  # type: ignore[arg-type]
        assert post(root, "p3")["imageUrl"] is None  # nulled before the unlink
        service = root / "posts.json.tmp.1764000000001"
        service.write_text(node_json([*stale_copy, {"id": "p7", "imageUrl": "/images/new.png"}]))
        service.rename(root / "posts.json")
        return done

    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx, pytest.MonkeyPatch.context() as patch:
        patch.setattr(executor, "_unlink_all", unlink_then_service_writes)
        executor.apply(ctx, plan, step)
    assert not (root / "images" / "shared-name.png").exists()
    assert post(root, "p3")["imageUrl"] is None
    assert post(root, "p3")["videoUrl"] == "/videos/shared-name.mp4"
    assert post(root, "p7")["imageUrl"] == "/images/new.png"
    assert nulls(step) == [FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3")] * 2
    assert any("again" in note for note in notes(step))
    assert step.status == "ok"


def test_a_feed_broken_after_planning_keeps_the_media_but_not_the_temps(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    plan: list[Action] = [
        FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3"),
        delete_of(root, "images/shared-name.png"),
        delete_of(root, "voice/old/monologue-1763000000.mp3"),
        delete_of(root, "posts.json.tmp.1763000000000", "temp"),
    ]
    (root / "posts.json").write_bytes(b'[{"id": "p3", "imageUrl": "/images/shared-name.png"')  # torn by hand
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert deleted(step) == ["posts.json.tmp.1763000000000"]
    assert (root / "images" / "shared-name.png").exists() and (root / "voice/old/monologue-1763000000.mp3").exists()
    assert {kept.path for kept in step.kept} == {"images/shared-name.png", "voice/old/monologue-1763000000.mp3"}
    assert all("is not JSON" in why(kept) for kept in step.kept)
    assert (root / "posts.json").read_bytes() == b'[{"id": "p3", "imageUrl": "/images/shared-name.png"'
    assert step.status == "error" and step.flags & Exit.STEP_FAILED
    assert not nulls(step)


def test_one_failing_unlink_never_stops_the_others(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("a", "b", "c"):
        write_file(root / "images" / f"{name}.png", 100, 9)
    if subprocess.run(["chattr", "+i", str(root / "images" / "b.png")], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file immutable here (chattr +i refused)")
    plan: list[Action] = [delete_of(root, f"images/{name}.png") for name in ("a", "b", "c")]  # chattr moves ctime
    try:
        step = StepReport("sweep")
        with context(root, make_config(root)) as ctx:
            executor.apply(ctx, plan, step)
    finally:
        subprocess.run(["chattr", "-i", str(root / "images" / "b.png")], check=True)
    assert deleted(step) == ["images/a.png", "images/c.png"]
    assert files(root) == {"images/b.png"}
    assert [(kept.path, why(kept)) for kept in step.kept] == [
        ("images/b.png", "could not delete images/b.png (Operation not permitted); it was left as it was")]
    assert step.status == "error" and step.flags == Exit.STEP_FAILED | Exit.SWEPT and errno_name(step) == "EPERM"


@pytest.mark.mount
def test_a_read_only_filesystem_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    source = sample(tmp_path / "data")
    with readonly_bind(source) as root:
        before = snapshot(root)
        plan: list[Action] = [delete_of(root, "images/shared-name.png"),
                              delete_of(root, "images/1763900000000-a1-v2.png")]
        step = StepReport("sweep")
        with context(root, make_config(root)) as ctx:
            executor.apply(ctx, plan, step)
        assert snapshot(root) == before
    assert not deleted(step) and not nulls(step)
    assert {kept.path for kept in step.kept} == {"images/shared-name.png", "images/1763900000000-a1-v2.png"}
    assert step.status == "error" and errno_name(step) == "EROFS"
    assert "Read-only file system" in (error(step) or "")


@pytest.mark.mount
def test_a_full_disk_frees_space_first_then_rewrites_the_feed(tmp_path: Path) -> None:
    """ENOSPC on the feed rewrite: unreferenced files go first, then the feed is rewritten and the rest goes."""
    with tmpfs(2 * MiB) as root:
        shutil.copy(Path(__file__).parent.parent / "datagc" / "sample" / "posts.json", root / "posts.json")
        write_file(root / "images" / "shared-name.png", 64 * 1024, 10)
        write_file(root / "images" / "unreferenced.png", 64 * 1024, 10)
        plan: list[Action] = [delete_of(root, "images/shared-name.png"), delete_of(root, "images/unreferenced.png")]
        filler = fill(root)
        step = StepReport("sweep")
        with context(root, make_config(root)) as ctx:
            executor.apply(ctx, plan, step)
        assert files(root) == {"posts.json", filler.name}
        assert post(root, "p3")["imageUrl"] is None
    assert deleted(step) == ["images/unreferenced.png", "images/shared-name.png"]
    assert nulls(step) == [FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3")]
    assert any("lack of space" in note for note in notes(step))
    assert step.status == "ok" and not step.kept


def test_references_added_after_planning_are_nulled_too(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    plan: list[Action] = [delete_of(root, "voice/old/monologue-1763000000.mp3")]  # unreferenced when planned
    document = posts(root)
    document.append({"id": "p8", "videoUrl": "/voice/old/monologue-1763000000.mp3"})
    (root / "posts.json").write_text(node_json(document))
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert post(root, "p8")["videoUrl"] is None
    assert nulls(step) == [FeedNull("posts.json", "videoUrl", "/voice/old/monologue-1763000000.mp3", "p8")]


def test_hard_links_and_many_directories(tmp_path: Path) -> None:
    root = tmp_path / "data"
    plan: list[Action] = []
    for index in range(300):
        path = f"images/{index % 7}/{index % 3}/f{index}.png"
        write_file(root / path, 1000, 9)
        plan.append(delete_of(root, path))
    os.link(root / "images/0/0/f0.png", tmp_path / "elsewhere-link")
    plan[0] = delete_of(root, "images/0/0/f0.png")  # two links now: frees nothing
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    assert files(root) == set()
    assert len(deleted(step)) == 300
    assert plan[0].bytes == 0  # type: ignore[union-attr]
    assert step.reclaimed_bytes == sum(a.bytes for a in plan if isinstance(a, Delete))
    assert (tmp_path / "elsewhere-link").exists()


def test_feed_module_is_what_the_executor_uses(tmp_path: Path) -> None:
    """null_references on an empty set reads nothing (temps only)."""
    root = sample(tmp_path / "data")
    (root / "posts.json").write_bytes(b"broken")
    with context(root, make_config(root)) as ctx:
        assert null_references(ctx.data_dir, ctx.config, ["posts.json.tmp.1763000000000"]) == NullOutcome()
