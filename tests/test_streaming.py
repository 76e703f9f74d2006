"""Memory flat in the number of deletions (issue 16): plans taken in parts, reports written as the pass runs.

A sweep's deletions are planned as the executor takes them, ``executor.CHUNK``
at a time (here lowered to a few files, so that a small tree spans many
parts), and its report goes out action by action. Each part keeps every rule
of one whole plan: the feed nulled before its files go, a file that changed
since planning kept with its references put back, the outcomes in plan order,
the dry run the same plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from datagc import executor, parallel
from datagc.exitcodes import Exit
from datagc.model import Action, Delete, FeedNull, FeedRestore, StepReport
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.steps import run
from tests.sweep_support import NOW, context, make_config, write_file

OLD = [f"images/d{index % 3}/{index:02d}.png" for index in range(24)]
YOUNG = [f"images/d{index % 3}/young-{index}.png" for index in range(4)]
#: referenced by the feed, spread over the parts
REFERENCED = OLD[1::5]


def tree(root: Path, now: float = NOW) -> Path:
    for path in OLD:
        write_file(root / path, 3000, 9, now)
    for path in YOUNG:
        write_file(root / path, 3000, 1, now)
    posts = [{"id": f"p{index}", "imageUrl": f"/{path}"} for index, path in enumerate(REFERENCED)]
    (root / "posts.json").write_text(json.dumps(posts, indent=2))
    return root


def sweep(root: Path, *, dry_run: bool = False) -> StepReport:
    config = make_config(root, cdn__enabled=True, cdn__public_url="https://cdn.example.com")
    with context(root, config, dry_run=dry_run, now=NOW) as ctx:
        return run("sweep", ctx)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "CHUNK", 4)


@pytest.fixture(autouse=True, params=["serial", "split"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test both ways: the serial walk and unlinks, and the parallel paths forced on (threshold 0)."""
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "0" if request.param == "split" else "1000000")
    return str(request.param)


@pytest.mark.usefixtures("small_parts")
def test_a_plan_in_many_parts_deletes_what_one_plan_would_and_nulls_first(tmp_path: Path) -> None:
    root = tree(tmp_path / "data")
    dry = sweep(root, dry_run=True)
    planned = [action.path for action in dry.actions if isinstance(action, Delete)]
    assert sorted(planned) == sorted(OLD)

    step = sweep(root)

    deleted = [action.path for action in step.actions if isinstance(action, Delete)]
    assert deleted == planned, "the same plan, in plan order, across parts"
    assert step.deleted("age") == (len(OLD), step.reclaimed_bytes) and step.reclaimed_bytes > 0
    assert step.flags == Exit.SWEPT and step.status == "ok"
    assert not any((root / path).exists() for path in OLD)
    assert all((root / path).exists() for path in YOUNG)
    posts = orjson.loads((root / "posts.json").read_bytes())
    assert [post["imageUrl"] for post in posts] == [None] * len(REFERENCED)
    nulled = [action for action in step.actions if isinstance(action, FeedNull)]
    assert sorted(null.url for null in nulled) == sorted(f"/{path}" for path in REFERENCED)
    for null in nulled:  # each null precedes the deletion of its file
        index = step.actions.index(null)
        assert any(isinstance(later, Delete) and f"/{later.path}" == null.url for later in step.actions[index:])


@pytest.mark.usefixtures("small_parts")
def test_a_file_changed_in_a_later_part_is_kept_and_gets_its_reference_back(tmp_path: Path) -> None:
    root = tree(tmp_path / "data")
    changed = REFERENCED[-1]  # planned in the last part, after earlier parts were unlinked
    config = make_config(root, cdn__enabled=True, cdn__public_url="https://cdn.example.com")
    from datagc.passes import sweep as sweep_pass

    with context(root, config, now=NOW) as ctx:
        plan = sweep_pass.prepare(ctx)
        actions = iter(plan.actions)
        taken = [next(actions) for _ in range(3)]
        write_file(root / changed, 3001, 9)  # replaced after planning, before its part is applied
        step = StepReport("sweep")
        executor.apply(ctx, [*taken, *actions], step)

    assert (root / changed).exists()
    assert [kept.path for kept in step.kept] == [changed]
    restored = [action for action in step.actions if isinstance(action, FeedRestore)]
    assert [action.url for action in restored] == [f"/{changed}"]
    posts = orjson.loads((root / "posts.json").read_bytes())
    assert {post["imageUrl"] for post in posts} == {None, f"/{changed}"}
    assert not any((root / path).exists() for path in OLD if path != changed)


@pytest.mark.usefixtures("small_parts")
def test_a_planner_failing_in_a_later_part_fails_after_the_part_before_it_is_recorded(tmp_path: Path) -> None:
    """The next part is planned while this one's workers unlink: a failure there waits for this part's outcomes."""
    root = tree(tmp_path / "data")
    config = make_config(root, cdn__enabled=True, cdn__public_url="https://cdn.example.com")
    from datagc.passes import sweep as sweep_pass

    with context(root, config, now=NOW) as ctx:
        plan = list(sweep_pass.prepare(ctx).actions)
        first_part = [action.path for action in plan if isinstance(action, Delete)][:executor.CHUNK]

        def breaking() -> Iterator[Action]:
            for action in plan:
                if isinstance(action, Delete) and action.path not in first_part:
                    raise RuntimeError("the planner broke")
                yield action

        step = StepReport("sweep")
        with pytest.raises(RuntimeError, match="the planner broke"):
            executor.apply(ctx, breaking(), step)

    assert [action.path for action in step.actions if isinstance(action, Delete)] == first_part
    assert [path for path in OLD if not (root / path).exists()] == sorted(first_part, key=OLD.index)


@pytest.mark.parametrize("quiet", [(), ("--quiet",)], ids=["", "quiet"])
def test_the_json_report_written_as_it_runs_is_one_document_with_every_field(
    tmp_path: Path, quiet: tuple[str, ...]
) -> None:
    root = tree(tmp_path / "data", time.time())
    result = run_datagc("sweep", "--data-dir", str(root), "--cdn", "--cdn-public-url", "https://cdn.example.com",
                        "--json", *quiet)
    report = result.json()
    assert result.code == Exit.SWEPT == report["exit_code"], result.stderr
    assert list(report) == ["version", "command", "data_dir", "dry_run", "disk_before", "steps", "exit_code",
                            "reclaimed_bytes", "disk_after", "other_pass_running"]
    (step,) = report["steps"]
    assert {"name", "status", "reclaimed_bytes", "error", "actions", "kept", "notes", "scanned_files"} <= set(step)
    assert sorted(action["path"] for action in step["actions"] if action["kind"] == "delete") == sorted(OLD)
    assert step["reclaimed_bytes"] == report["reclaimed_bytes"] > 0


def test_a_report_that_cannot_be_written_never_stops_the_pass(tmp_path: Path) -> None:
    root = tree(tmp_path / "data", time.time())
    with open("/dev/full", "w") as full:
        process = subprocess.run([DATAGC, "sweep", "--data-dir", str(root), "--cdn", "--cdn-public-url",
                                  "https://cdn.example.com"], stdout=full, stderr=subprocess.PIPE, text=True,
                                 env=clean_env(), timeout=120, check=False)
    assert process.returncode == Exit.SWEPT | Exit.STEP_FAILED, process.stderr
    assert "the report could not be written in full" in process.stderr
    assert "Traceback" not in process.stderr
    assert not any((root / path).exists() for path in OLD), "every deletion still happened"
    assert all((root / path).exists() for path in YOUNG)
    assert os.path.getsize(root / ".datagc" / "journal.jsonl") > 0, "and is journaled"


def test_quiet_plain_output_is_empty_and_the_pass_complete(tmp_path: Path) -> None:
    root = tree(tmp_path / "data", time.time())
    result = run_datagc("sweep", "--data-dir", str(root), "--cdn", "--cdn-public-url", "https://cdn.example.com",
                        "--quiet")
    assert (result.code, result.stdout, result.stderr) == (Exit.SWEPT, "", "")
    assert not any((root / path).exists() for path in OLD)
