"""The terminal views through a real pty: nothing cut, sizes and counts written one way, a dry run beside a real one."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from datagc.demo import build_sample
from tests.helpers import Result, holding_lock, run_datagc
from tests.sweep_support import write_file
from tests.terminal import run_on_terminal

#: two names alike for their first 90 characters: an ellipsis at 80 columns would make them one
LONG = ["images/" + "campaign-2026-spring-" * 4 + "a" * 6 + suffix for suffix in ("-first.png", "-second.png")]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root, real_bytes=True, scale=0.01, events_bytes=2 * 1024 * 1024)
    for name in LONG:
        write_file(root / name, 3000, 30, now=time.time())
    return root


def column(text: str, index: int) -> str:
    """The cells of one column of every rich table in ``text``, joined: folded cells come back whole."""
    return "".join(line.split("│")[index].strip() for line in text.splitlines()
                   if line.startswith("│") and line.count("│") > index)


def test_paths_are_folded_never_cut(sample: Path) -> None:
    screen = run_on_terminal("sweep", "--data-dir", str(sample), "--cdn", "--dry-run", columns=80)
    assert screen.code == 8, screen.text
    assert "…" not in screen.text
    paths = column(screen.text, 2)
    for name in LONG:
        assert name in paths
    assert max(len(line) for line in screen.text.splitlines() if line[:1] in "┏┃┡│└") <= 80


def test_audit_tables_fold_long_paths_too(sample: Path) -> None:
    screen = run_on_terminal("audit", "--data-dir", str(sample), "--top", "30", columns=60)
    assert "…" not in screen.text
    assert all(name in column(screen.text, 1) for name in LONG)


def test_sizes_are_written_one_way_and_counts_with_separators(sample: Path) -> None:
    screen = run_on_terminal("run-all", "--data-dir", str(sample), "--cdn", "--max-bytes", "1MiB", "--dry-run",
                             columns=120)
    text = screen.text
    assert re.search(r"would reclaim \d+\.\d (kB|MB); disk \d+\.\d% used, \d+\.\d [kMGT]B free; exit 12", text), text
    assert not re.search(r"\d(B|kB|MB|GB|TB)\b", text.replace(" B", "")), "a size without humanize's space"
    lines_kept = re.search(r"kept ([\d,]+) lines", text)
    assert lines_kept and ("," in lines_kept.group(1) or int(lines_kept.group(1)) < 1000)


def test_a_dry_run_does_not_wait_for_the_lock_and_says_another_pass_runs(sample: Path) -> None:
    args = ("run-all", "--data-dir", str(sample), "--cdn", "--max-bytes", "1MiB")
    alone = run_datagc(*args, "--dry-run", "--json")
    with holding_lock(sample):
        plain = run_datagc(*args, "--dry-run")
        document = run_datagc(*args, "--dry-run", "--json")
        screen = run_on_terminal(*args, "--dry-run", columns=200)
        real = run_datagc(*args)
    assert real.code == 75
    assert (plain.code, document.code, screen.code, alone.code) == (12, 12, 12, 12), plain.stdout + plain.stderr
    assert document.json()["other_pass_running"] is True and alone.json()["other_pass_running"] is False
    def planned(result: Result) -> list[tuple[str, str]]:
        return [(action["kind"], action["path"]) for step in result.json()["steps"] for action in step["actions"]]

    assert planned(document) == planned(alone) != []
    said = f"another datagc is working on {sample} (it holds the lock); this dry run did not wait for it"
    assert f"[janitor] {said}" in plain.stdout
    assert said in " ".join(screen.text.split())
    again = run_datagc(*args, "--dry-run", "--json")
    assert again.json()["other_pass_running"] is False  # the dry runs left no lock behind
    assert run_datagc(*args).code == 12
