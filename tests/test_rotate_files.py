"""The rotate pass on real files: what is kept, what is left alone, and what a dry run changes (nothing)."""

from __future__ import annotations

import os
import re
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from datagc.executor import apply
from datagc.exitcodes import Exit
from datagc.model import Action, Delete, Rotate, StepReport
from datagc.passes import rotate
from datagc.tailcopy import rotate_path
from datagc.wording import detail_text
from tests.helpers import run_datagc
from tests.rotate_support import TS, MiB, context, events, leftovers, rotate_config, snapshot, write_log
from tests.steps import error, notes, run


def run_pass(root: Path, *, dry_run: bool = False, **keys: object) -> StepReport:
    with context(root, rotate_config(root, **keys), dry_run=dry_run) as ctx:
        return run("rotate", ctx)


def rotation(actions: Sequence[Action]) -> Rotate:
    """The first of ``actions``: the log's rotation."""
    assert isinstance(actions[0], Rotate), actions
    return actions[0]


def test_a_log_over_50_mib_keeps_exactly_its_newest_10000_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    tail = events(12_000)
    write_log(log, 51 * MiB, tail)
    os.chmod(log, 0o640)
    os.chown(log, 1234, 5678)
    before = log.stat()
    assert before.st_size > 50 * MiB

    tracemalloc.start()
    step = run_pass(tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    kept = b"".join(tail[-10_000:])
    assert log.read_bytes() == kept
    assert step.status == "ok" and error(step) is None
    assert step.flags == Exit.ROTATED
    assert step.actions == [Rotate("events.jsonl", before.st_size, len(kept), 10_000)]
    after = log.stat()
    assert (after.st_mode & 0o7777, after.st_uid, after.st_gid) == (0o640, 1234, 5678)
    assert after.st_ino != before.st_ino
    assert step.reclaimed_bytes >= before.st_size - len(kept) - MiB
    assert leftovers(tmp_path) == []
    assert peak < 4 * MiB, f"rotation held {peak} bytes of Python memory"


def test_dry_run_reports_the_same_cut_and_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    tail = events(500)
    write_log(log, 2 * MiB, tail)
    stale = tmp_path / "events.jsonl.datagc-tmp.99999"
    stale.write_bytes(b"left by a crash")
    unchanged = snapshot(log)

    step = run_pass(tmp_path, dry_run=True, max_bytes="1MiB", keep_lines=100)

    assert snapshot(log) == unchanged
    assert stale.exists()
    kept = b"".join(tail[-100:])
    assert step.actions == [Rotate("events.jsonl", unchanged[1], len(kept), 100)]
    assert step.flags == Exit.ROTATED and step.status == "ok"
    assert step.reclaimed_bytes == unchanged[1] - len(kept)

    real = run_pass(tmp_path, max_bytes="1MiB", keep_lines=100)
    assert real.actions == step.actions
    assert log.read_bytes() == kept


def test_a_second_pass_has_nothing_to_do(tmp_path: Path) -> None:
    write_log(tmp_path / "events.jsonl", 3 * MiB, events(5000))
    first = run_pass(tmp_path, max_bytes="1MiB", keep_lines=20_000)
    assert first.flags == Exit.ROTATED
    assert rotation(first.actions).bytes_after <= 512 * 1024  # keep_bytes: half of max_bytes
    second = run_pass(tmp_path, max_bytes="1MiB", keep_lines=20_000)
    assert (second.status, second.flags, second.actions) == ("skipped", Exit.OK, [])


def test_a_log_at_or_under_the_trigger_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"x\n" * 512)
    unchanged = snapshot(log)
    step = run_pass(tmp_path, max_bytes=1024, keep_lines=1)
    assert snapshot(log) == unchanged
    assert (step.status, step.flags, step.actions) == ("skipped", Exit.OK, [])
    assert [kept.path for kept in step.kept] == ["events.jsonl"]


def test_a_missing_log_is_skipped_not_an_error(tmp_path: Path) -> None:
    step = run_pass(tmp_path, logs="events.jsonl,logs/other.jsonl")
    assert (step.status, step.flags, error(step)) == ("skipped", Exit.OK, None)
    assert {kept.path for kept in step.kept} == {"events.jsonl", "logs/other.jsonl"}


def test_partial_last_line_is_carried_over_whole_and_not_counted(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    tail = events(300)
    write_log(log, 2 * MiB, tail, partial=b'{"type":"metric","na')
    step = run_pass(tmp_path, max_bytes="1MiB", keep_lines=100)
    assert log.read_bytes() == b"".join(tail[-100:]) + b'{"type":"metric","na'
    assert rotation(step.actions).lines_kept == 100
    assert any("still being written (20 bytes" in note for note in notes(step))


def test_crlf_lines_are_kept_intact(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    lines = [line[:-1] + b"\r\n" for line in events(40_000)]
    log.write_bytes(b"".join(lines))
    run_pass(tmp_path, max_bytes="1MiB", keep_lines=1000)
    assert log.read_bytes() == b"".join(lines[-1000:])


def test_keep_bytes_caps_what_is_kept_on_a_line_boundary(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    tail = events(20_000)
    write_log(log, 2 * MiB, tail)
    step = run_pass(tmp_path, max_bytes="1MiB", keep_lines=10_000, keep_bytes="64KiB")
    content = log.read_bytes()
    assert 64 * 1024 - 200 < len(content) <= 64 * 1024
    kept = rotation(step.actions).lines_kept
    assert b"".join(tail).endswith(content) and tail[-kept] == content.split(b"\n")[0] + b"\n"
    assert kept < 10_000
    assert any("keeping" in note and "rotate.keep_bytes (64KiB)" in note for note in notes(step))


def test_a_log_without_any_newline_is_refused_untouched(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"z" * (2 * MiB))
    unchanged = snapshot(log)
    step = run_pass(tmp_path, max_bytes="1MiB")
    assert snapshot(log) == unchanged
    assert step.status == "error" and step.flags == Exit.STEP_FAILED
    message = error(step)
    assert message is not None and "no line end in its last 512KiB" in message
    assert leftovers(tmp_path) == []


def test_newest_line_longer_than_keep_bytes_leaves_an_empty_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, MiB, [b'{"type":"huge","blob":"' + b"q" * (700 * 1024) + b'"}\n'])
    step = run_pass(tmp_path, max_bytes="1MiB")
    assert log.read_bytes() == b""
    assert rotation(step.actions).lines_kept == 0 and step.flags == Exit.ROTATED
    assert any("keeping 0 lines" in note for note in notes(step))


def test_a_symlinked_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "real.jsonl"
    write_log(target, 2 * MiB, events(100))
    root = tmp_path / "data"
    root.mkdir()
    (root / "events.jsonl").symlink_to(target)
    (root / "logs").symlink_to(outside)
    unchanged = snapshot(target)

    step = run_pass(root, max_bytes="1MiB", logs="events.jsonl,logs/real.jsonl")

    assert snapshot(target) == unchanged
    assert (root / "events.jsonl").is_symlink()
    assert (step.status, step.flags) == ("skipped", Exit.OK)
    assert [kept.path for kept in step.kept] == ["events.jsonl", "logs/real.jsonl"]
    assert all("symlink" in note for note in notes(step)) and len(notes(step)) == 2


def test_a_directory_or_fifo_named_like_the_log_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()
    (tmp_path / "events.jsonl" / "inside").write_bytes(b"a\n" * MiB)
    os.mkfifo(tmp_path / "pipe.jsonl")
    step = run_pass(tmp_path, max_bytes=10, logs="events.jsonl,pipe.jsonl")
    assert (step.status, step.flags) == ("skipped", Exit.OK)
    assert "is a directory" in notes(step)[0] and "FIFO" in notes(step)[1]
    assert (tmp_path / "events.jsonl" / "inside").stat().st_size == 2 * MiB


def test_a_log_in_a_subdirectory_and_its_leftover_temp(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "events.jsonl"
    tail = events(200)
    write_log(log, 2 * MiB, tail)
    (tmp_path / "logs" / "events.jsonl.datagc-tmp.4242").write_bytes(b"torn")
    os.utime(tmp_path / "logs" / "events.jsonl.datagc-tmp.4242", (TS / 1000 - 60, TS / 1000 - 60))
    step = run_pass(tmp_path, max_bytes="1MiB", keep_lines=50, logs="logs/events.jsonl")
    assert log.read_bytes() == b"".join(tail[-50:])
    assert leftovers(tmp_path / "logs") == []
    (leftover,) = [action for action in step.actions if isinstance(action, Delete)]
    assert (leftover.path, leftover.reason, detail_text(leftover.detail)) == (
        "logs/events.jsonl.datagc-tmp.4242", "temp", "left by an interrupted datagc")


def test_a_hard_linked_log_is_rotated_and_its_other_name_keeps_the_old_content(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, 2 * MiB, events(100))
    os.link(log, tmp_path / "archive.jsonl")
    old = snapshot(log)
    step = run_pass(tmp_path, max_bytes="1MiB", keep_lines=10)
    assert snapshot(tmp_path / "archive.jsonl")[1:] == old[1:]
    assert log.read_bytes() == b"".join(events(100)[-10:])
    assert step.reclaimed_bytes == 0  # the old inode lives on under its other name


def test_the_executor_cuts_the_log_as_it_is_when_applied(tmp_path: Path) -> None:
    """The executor rotates what the log is when it gets there; the report says what was really kept."""
    log = tmp_path / "events.jsonl"
    write_log(log, 2 * MiB, events(100))
    config = rotate_config(tmp_path, max_bytes="1MiB", keep_lines=10)
    with context(tmp_path, config) as ctx:
        planned = rotation(rotate.plan(rotate.observe(ctx.data_dir, config.rotate), config.rotate).actions)
        with log.open("ab") as writer:
            writer.write(b"".join(events(5, first=100)))
        step = StepReport("rotate")
        apply(ctx, [planned], step)
    [done] = step.actions
    assert isinstance(done, Rotate)
    assert done.bytes_before == planned.bytes_before + len(b"".join(events(5, first=100)))
    assert log.read_bytes() == b"".join(events(105)[-10:])
    assert (done.bytes_after, done.lines_kept) == (len(log.read_bytes()), 10)


def test_rotating_a_log_that_fits_rewrites_nothing(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(events(10)))
    unchanged = snapshot(log)
    with context(tmp_path, rotate_config(tmp_path)) as ctx:
        rotation = rotate_path(ctx.data_dir, "events.jsonl", 100, 1 * MiB)
    assert not rotation.rotated and rotation.action.bytes_after == unchanged[1]
    assert snapshot(log) == unchanged


def test_cli_rotate_json_and_plain_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    tail = events(300)
    write_log(log, 2 * MiB, tail)
    size = log.stat().st_size
    common = ("--data-dir", str(tmp_path), "--max-bytes", "1MiB", "--keep-lines", "100")

    dry = run_datagc("rotate", *common, "--dry-run")
    assert dry.code == 4, dry.stderr
    assert log.stat().st_size == size

    result = run_datagc("rotate", *common, "--json")
    assert result.code == 4, result.stderr
    kept = len(b"".join(tail[-100:]))
    (step,) = result.json()["steps"]
    assert step["status"] == "ok"
    assert step["actions"] == [{"kind": "rotate", "path": "events.jsonl", "bytes_before": size,
                                "bytes_after": kept, "lines_kept": 100}]

    write_log(log, 2 * MiB, tail)
    plain = run_datagc("rotate", *common)
    assert plain.code == 4, plain.stderr
    assert re.search(rf"^\[janitor\] rotated events\.jsonl: {size} -> {kept} bytes \(kept 100 lines\)$",
                     plain.stdout, re.MULTILINE), plain.stdout


def test_cli_exit_1_when_a_log_cannot_be_cut(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_bytes(b"z" * (2 * MiB))
    result = run_datagc("rotate", "--data-dir", str(tmp_path), "--max-bytes", "1MiB")
    assert result.code == 1
    assert "no line end" in result.stdout + result.stderr
    assert (tmp_path / "events.jsonl").read_bytes() == b"z" * (2 * MiB)
