"""Issue 15's items, tried again with cases their first tests did not write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datagc.demo import build_sample
from tests.helpers import run_datagc
from tests.terminal import run_on_terminal

#: a size written without humanize's space (``2.1MB``), as only the plain lines write them
COMPACT_SIZE = re.compile(r"\d(kB|MB|GB|TB)\b")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root, real_bytes=True, scale=0.01, events_bytes=2 * 1024 * 1024)
    return root


def test_pressure_sentences_on_a_terminal_write_sizes_and_counts_as_its_tables_do(sample: Path) -> None:
    """The headline and the still-above note carry sizes and counts too: on a terminal as humanize writes
    them, in the plain lines compact as before."""
    args = ("pressure", "--data-dir", str(sample), "--budget", "1MiB", "--dry-run")
    screen = run_on_terminal(*args, columns=400)
    assert screen.code & 16 and screen.code & 32, screen.text
    text = screen.text
    assert re.search(r"would delete \d+ files \(\d+\.\d kB\)", text), text
    assert re.search(r"the rest is held by events\.jsonl 2\.1 MB", text), text
    assert not COMPACT_SIZE.search(text.replace(" B", "")), text
    plain = run_datagc(*args)
    assert re.search(r"would delete \d+ files \(\d+\.\dkB\)", plain.stdout) and "events.jsonl 2.1MB" in plain.stdout


def test_rotate_on_a_terminal_writes_its_byte_count_with_separators(sample: Path) -> None:
    args = ("rotate", "--data-dir", str(sample), "--dry-run", "-v")
    screen = run_on_terminal(*args, columns=200)
    assert re.search(r"kept events\.jsonl: 2,\d{3},\d{3} bytes, not over rotate\.max_bytes \(50MiB\)", screen.text)
    plain = run_datagc(*args)
    assert re.search(r"^\[janitor\] kept events\.jsonl: 2\d{6} bytes, not over", plain.stdout, re.M), plain.stdout


def test_every_problem_of_the_configuration_is_named_at_once(tmp_path: Path) -> None:
    """Unknown keys, values that don't parse, from the file and the environment: one run names them all (and
    touches nothing), rather than one per run."""
    config = tmp_path / "datagc.toml"
    config.write_text('[sweep]\nmax_age = "soon"\ntemp_max_age = "later"\nmax_agee = "7d"\n[pressur]\nx = 1\n')
    orphan = tmp_path / "posts.json.tmp.1"
    orphan.write_text("old")
    result = run_datagc("sweep", "--data-dir", str(tmp_path), "--config", str(config), "--temp-max-age", "0s",
                        env={"DATAGC_PRESSURE_THRESHOLD": "2", "TEST_MODE": "maybe"})
    assert result.code == 2 and result.stdout == ""
    message = result.stderr
    assert message.startswith(f"datagc: config file {config}: unknown keys 'pressur.x', 'sweep.max_agee' ")
    for said in ("TEST_MODE = 'maybe' (from environment TEST_MODE): not a boolean",
                 f"sweep.max_age = 'soon' (from file {config}): not a duration",
                 "pressure.threshold = '2' (from environment DATAGC_PRESSURE_THRESHOLD): must be above 0"):
        assert said in message, message
    assert "temp_max_age = 'later'" not in message, "the flag given wins: the file's value is not read"
    assert len(message.splitlines()) == 1 and orphan.exists()
