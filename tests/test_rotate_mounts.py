"""Rotation on real small filesystems: a full disk, a read-only mount, a log on another filesystem."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from datagc.exitcodes import Exit
from datagc.model import StepReport
from tests.helpers import run_datagc
from tests.mounts import KiB, MiB, bind, fill, loop_ext4, readonly_bind, tmpfs
from tests.rotate_support import TS, context, events, leftovers, rotate_config, snapshot, write_log
from tests.steps import errno_name, error, notes, run, why

pytestmark = pytest.mark.mount

SmallFilesystem = Callable[[int], AbstractContextManager[Path]]


def run_pass(root: Path, **keys: object) -> StepReport:
    with context(root, rotate_config(root, **keys)) as ctx:
        return run("rotate", ctx)


@pytest.mark.parametrize("filesystem", [tmpfs, loop_ext4], ids=["tmpfs", "ext4"])
def test_enospc_while_writing_the_temp_leaves_the_log_untouched(filesystem: SmallFilesystem) -> None:
    with filesystem(8 * MiB) as root:
        log = root / "events.jsonl"
        tail = events(20_000)
        write_log(log, 2 * MiB, tail)
        unchanged = snapshot(log)
        filler = fill(root, leave_bytes=64 * KiB)

        step = run_pass(root, max_bytes="1MiB", keep_lines=10_000)

        assert snapshot(log) == unchanged
        assert leftovers(root) == []
        assert step.status == "error" and step.flags == Exit.STEP_FAILED
        assert errno_name(step) == "ENOSPC"
        message = error(step)
        assert message is not None and "no space left" in message and "left as it was" in message

        filler.unlink()
        again = run_pass(root, max_bytes="1MiB", keep_lines=10_000)
        assert again.flags == Exit.ROTATED
        assert b"".join(tail).endswith(log.read_bytes())


def test_run_all_retries_a_rotation_that_failed_for_lack_of_space_after_the_sweep() -> None:
    with tmpfs(8 * MiB) as root:
        log = root / "events.jsonl"
        tail = events(20_000)
        write_log(log, 2 * MiB, tail)
        orphan = fill(root, leave_bytes=64 * KiB, name="posts.json.tmp.1700000000000")
        two_days_ago = time.time() - 2 * 86400
        os.utime(orphan, (two_days_ago, two_days_ago))

        result = run_datagc("run-all", "--data-dir", str(root), "--max-bytes", "1MiB", "--no-cdn", "--json")

        report = result.json()
        steps = {step["name"]: step for step in report["steps"]}
        assert steps["sweep"]["actions"][0]["path"] == orphan.name
        assert steps["rotate"]["status"] == "ok", steps["rotate"]
        assert any("retried" in note for note in steps["rotate"]["notes"])
        assert result.code & (Exit.ROTATED | Exit.SWEPT) == Exit.ROTATED | Exit.SWEPT
        assert not result.code & Exit.STEP_FAILED
        assert b"".join(tail).endswith(log.read_bytes())


def test_a_read_only_filesystem_fails_the_step_and_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, 2 * MiB, events(100))
    (tmp_path / "events.jsonl.datagc-tmp.77").write_bytes(b"stale")
    os.utime(tmp_path / "events.jsonl.datagc-tmp.77", (TS / 1000 - 60, TS / 1000 - 60))
    unchanged = snapshot(log)
    with readonly_bind(tmp_path) as view:
        step = run_pass(view, max_bytes="1MiB")
    assert snapshot(log) == unchanged
    assert (tmp_path / "events.jsonl.datagc-tmp.77").exists()
    assert step.status == "error" and step.flags == Exit.STEP_FAILED
    message = error(step)
    assert message is not None and "Read-only" in message and "left as it was" in message
    assert errno_name(step) == "EROFS"
    assert any(kept.path == "events.jsonl.datagc-tmp.77" and "could not delete" in why(kept) for kept in step.kept)


def test_a_log_on_another_filesystem_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    target = tmp_path / "events.jsonl"
    target.write_bytes(b"")
    with tmpfs(8 * MiB) as other:
        write_log(other / "events.jsonl", 2 * MiB, events(100))
        unchanged = snapshot(other / "events.jsonl")
        with bind(other, tmp_path / "logs"), bind(other / "events.jsonl", target):
            step = run_pass(tmp_path, max_bytes="1MiB", logs="logs/events.jsonl,events.jsonl")
        assert snapshot(other / "events.jsonl") == unchanged
    assert (step.status, step.flags) == ("skipped", Exit.OK)
    assert [kept.path for kept in step.kept] == ["logs/events.jsonl", "events.jsonl"]
    assert all("another filesystem or a mount point" in note for note in notes(step))
