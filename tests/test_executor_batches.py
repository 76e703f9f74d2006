"""The executor records, journals and reports deletions a batch at a time: the same result as one at a time,
in plan order, whatever fails in the middle of a part that is unlinked by several worker processes."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc import executor
from datagc.facts import FileIdentity
from datagc.journal import Journal, read_journal
from datagc.model import Action, Delete, Detail, RunReport, StepReport
from datagc.render.lines import action_line, delete_lines
from datagc.render.stream import ReportStream
from datagc.render.terminal import Renderer
from datagc.safety.unlink import PARALLEL_UNLINKS, reclaimable_bytes
from tests.steps import why
from tests.sweep_support import NOW, context, make_config, write_file

IDENTITY = FileIdentity(1, 2, 3, 4, 5)
DETAILS = st.sampled_from([None, Detail("on-cdn"), Detail("unreferenced"), Detail("on-cdn", verified=True),
                           Detail("referenced-locally", posts=("p1", "p2"))])
DELETES = st.lists(st.builds(
    Delete,
    path=st.sampled_from(["x.tmp.1", "x.tmp.10", "x.tmp.1/a", "images/a\n[janitor] b.png", "images/b.png",
                          "images2/c.png", "videos/d.mp4", os.fsdecode(b"images/\xff.png")]),
    bytes=st.sampled_from([0, 1, 999, 4096, 999_950, 5_000_000]),
    reason=st.sampled_from(["age", "published", "temp", "pressure"]),
    age=st.floats(min_value=0, max_value=1e8),
    identity=st.just(IDENTITY),
    detail=DETAILS,
), max_size=30)


def _report(step: StepReport, dry_run: bool) -> tuple[RunReport, io.StringIO, ReportStream]:
    """``step``'s actions written as plain lines as they are recorded."""
    out = io.StringIO()
    stream = ReportStream(Renderer(out=out, err=io.StringIO(), is_terminal=False))
    report = RunReport("sweep", "/data", dry_run, None, steps=[])
    stream.begin(report)
    step.outlet = stream
    return report, out, stream


@settings(max_examples=60, deadline=None)
@given(actions=DELETES, dry_run=st.booleans())
@example(actions=[Delete("x.tmp.1", 10, "temp", 1.0, IDENTITY), Delete("x.tmp.10", 20, "temp", 1.0, IDENTITY),
                  Delete("x.tmp.1", 30, "temp", 1.0, IDENTITY), Delete("images/a", 0, "age", 1.0, IDENTITY)],
         dry_run=False)
def test_a_batch_is_counted_and_written_as_each_of_its_deletions_would_be(actions: list[Delete], dry_run: bool) -> None:
    one, batch = StepReport("sweep"), StepReport("sweep")
    _, one_out, _ = _report(one, dry_run)
    _, batch_out, _ = _report(batch, dry_run)
    for action in actions:
        one.record(action)
    batch.record_deletions(actions[:7])
    batch.record_deletions(actions[7:])
    assert list(delete_lines(actions, dry_run)) == [action_line(action, dry_run) for action in actions]
    assert batch_out.getvalue() == one_out.getvalue()
    assert batch.action_count == one.action_count == len(actions)
    assert +batch.deleted_files == +one.deleted_files and +batch.deleted_bytes == +one.deleted_bytes
    assert batch.deleted_under == one.deleted_under
    assert batch.flags == one.flags


def test_failures_in_a_part_unlinked_in_parallel_leave_report_and_journal_in_plan_order(tmp_path: Path) -> None:
    root = tmp_path / "data"
    count = PARALLEL_UNLINKS + executor.SETTLE_EVERY + 50  # unlinked by workers, settled in several batches
    paths = [f"images/d{index // 300:02d}/f{index:05d}.png" for index in range(count)]
    for path in paths:
        write_file(root / path, 10, 9)
    immutable = [paths[index] for index in (3, executor.SETTLE_EVERY, count // 2, count - 1)]
    can_chattr = subprocess.run(["chattr", "+i", *(str(root / path) for path in immutable)],
                                capture_output=True).returncode == 0  # before planning: chattr moves the ctime
    plan: list[Action] = []
    for path in paths:
        st = (root / path).lstat()
        plan.append(Delete(path, reclaimable_bytes(st), "age", NOW - st.st_mtime, FileIdentity.of(st)))
    changed = [paths[index] for index in (0, 7, executor.SETTLE_EVERY + 1, count - 2)]
    for path in changed:
        (root / path).write_bytes(b"changed since planned")
    stays = set(changed) | (set(immutable) if can_chattr else set())
    step = StepReport("sweep")
    _, out, _ = _report(step, dry_run=False)  # written as it runs (the step is not in the report yet)
    try:
        with context(root, make_config(root)) as planned:
            with Journal(planned.data_dir, planned.config, "sweep") as journal:
                ctx = planned._replace(journal=journal)
                executor.apply(ctx, plan, step)
                assert journal.flush() is None
            entries = read_journal(planned.data_dir, planned.config).entries
    finally:
        if can_chattr:
            subprocess.run(["chattr", "-i", *(str(root / path) for path in immutable)], check=True)
    expected = [path for path in paths if path not in stays]
    assert [entry["path"] for entry in entries] == expected
    assert all(entry["kind"] == "delete" and entry["step"] == "sweep" for entry in entries)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == expected
    assert step.deleted() == (len(expected), sum(reclaimable_bytes_of(plan, expected)))
    assert step.reclaimed_bytes == step.deleted()[1]
    kept = {kept.path: why(kept) for kept in step.kept}
    assert set(kept) == stays
    assert all("changed" in kept[path] for path in changed)
    if can_chattr:
        assert step.status == "error" and all("could not delete" in kept[path] for path in immutable)
    assert sorted(str(path.relative_to(root)) for path in root.rglob("*.png")) == sorted(stays)


def reclaimable_bytes_of(plan: list[Action], paths: list[str]) -> list[int]:
    wanted = set(paths)
    return [action.bytes for action in plan if isinstance(action, Delete) and action.path in wanted]


def test_a_deletion_is_still_a_frozen_dataclass_of_its_fields() -> None:
    detail = Detail("on-cdn")
    action = Delete("images/a.png", 4096, "age", 2.5, IDENTITY, detail)
    assert (action.path, action.bytes, action.reason, action.age, action.identity, action.detail, action.kind) == (
        "images/a.png", 4096, "age", 2.5, IDENTITY, detail, "delete")
    assert action == Delete(path="images/a.png", bytes=4096, reason="age", age=2.5, identity=IDENTITY, detail=detail)
    assert hash(action) == hash(Delete("images/a.png", 4096, "age", 2.5, IDENTITY, detail))
    assert dataclasses.replace(action, reason="published").reason == "published"
    assert Delete("images/a.png", 1, "temp", 0.0, IDENTITY).detail is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.path = "elsewhere"  # type: ignore[misc]
    assert FileIdentity.of(os.stat("/")) == FileIdentity.of(os.stat("/"))
