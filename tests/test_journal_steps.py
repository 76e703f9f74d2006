"""A journal that can't be written, across the steps of one run: each step answers for its own changes only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import run_datagc
from tests.sweep_support import sample

#: what sweep --cdn changes in the sample: 8 deletions and 2 feed fields nulled
SWEPT_CHANGES = 10


def broken_state(data: Path, how: str) -> None:
    if how == "state-dir-is-a-file":
        (data / ".datagc").write_text("not a directory")
    else:
        (data / ".datagc" / "journal.jsonl").mkdir(parents=True)


@pytest.mark.parametrize("how", ["state-dir-is-a-file", "journal-is-a-directory"])
def test_a_journal_failure_is_reported_once_on_the_step_whose_changes_it_lost(tmp_path: Path, how: str) -> None:
    """run-all: sweep's changes can't be journaled; pressure, after it, changed nothing and is not failed."""
    data = sample(tmp_path / "data", now=time.time())
    broken_state(data, how)
    plain = run_datagc("run-all", "--data-dir", str(data), "--cdn")
    assert plain.code == 8 | 1, (plain.stdout, plain.stderr)
    failed = [line for line in plain.stderr.splitlines() if "not in the journal" in line]
    assert len(failed) == 1 and failed[0].startswith("datagc: sweep failed: "), plain.stderr
    assert f"; {SWEPT_CHANGES} change(s) of this pass are not in the journal" in failed[0]
    assert "pressure failed" not in plain.stderr

    again = sample(tmp_path / "again", now=time.time())
    broken_state(again, how)
    report = run_datagc("run-all", "--data-dir", str(again), "--cdn", "--json")
    assert report.code == 8 | 1, report.stderr
    steps = {step["name"]: step for step in report.json()["steps"]}
    assert steps["sweep"]["status"] == "error" and "not in the journal" in steps["sweep"]["error"]
    assert {name: (step["status"], step["error"]) for name, step in steps.items() if name != "sweep"} == {
        "rotate": ("skipped", None), "pressure": ("skipped", None)}


def test_each_step_that_changed_something_counts_only_its_own_unjournaled_changes(tmp_path: Path) -> None:
    """rotate and sweep both change something and neither can journal it: two failures, 1 and 10 changes."""
    data = sample(tmp_path / "data", now=time.time())
    (data / "events.jsonl").write_bytes(b"".join(b'{"n":%d}\n' % i for i in range(20_000)))
    broken_state(data, "state-dir-is-a-file")
    result = run_datagc("run-all", "--data-dir", str(data), "--cdn", "--json", "--max-bytes", "100KiB",
                        "--keep-lines", "100")
    assert result.code == 4 | 8 | 1, result.stderr
    steps = {step["name"]: step for step in result.json()["steps"]}
    assert steps["rotate"]["status"] == "error" and "; 1 change(s) of this pass" in steps["rotate"]["error"]
    assert steps["sweep"]["status"] == "error"
    assert f"; {SWEPT_CHANGES} change(s) of this pass" in steps["sweep"]["error"]
    assert steps["pressure"]["status"] == "skipped" and steps["pressure"]["error"] is None
    assert len((data / "events.jsonl").read_bytes().splitlines()) == 100  # the rotation itself stands
