"""``datagc watch`` as a real subprocess: its plain lines (what docker logs and journald see), signals, failures."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datagc.demo import build_sample
from tests.helpers import DATAGC, clean_env, holding_lock
from tests.process_lines import PATIENCE, Running

ORPHAN = "posts.json.tmp.1763000000000"
SUMMARY = "[janitor] run-all: "


def start(watches: list[Running], *args: str, env: dict[str, str] | None = None) -> Running:
    """Start ``datagc watch ARGS``."""
    watch = Running([DATAGC, "watch", *args], clean_env(env))
    watches.append(watch)
    return watch


def holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}") == str(path):
                return True
    return False


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root)
    return root


@pytest.fixture
def locked(sample: Path) -> Iterator[int]:
    with holding_lock(sample) as fd:
        yield fd


def test_passes_run_on_the_interval_as_plain_lines_until_sigterm(sample: Path, watches: list[Running]) -> None:
    watch = start(watches, "--data-dir", str(sample), "--initial-delay", "200ms", "--interval", "500ms",
                  "--threshold", "1", env={"TEST_MODE": "true"})

    watch.wait_for(watch.out, SUMMARY, count=2)
    code = watch.stop(signal.SIGTERM)

    assert code == 0, watch.err
    assert watch.out[0].startswith("[janitor] watch: first pass in 200ms, then every 500ms on ")
    assert watch.out[-1] == "[janitor] watch: stopped by SIGTERM"
    assert all(line.startswith("[janitor] ") for line in watch.out), "off a terminal: plain prefixed lines only"
    assert any(line.startswith(f"[janitor] swept {ORPHAN} (temp, age 3.0d") for line in watch.out)
    assert watch.count(watch.out, f"swept {ORPHAN}") == 1, "the second pass finds nothing more to sweep"
    assert not (sample / ORPHAN).exists()
    assert watch.err == []


def test_test_mode_defaults_and_a_signal_during_the_wait_ends_it_at_once(sample: Path, watches: list[Running]) -> None:
    watch = start(watches, "--data-dir", str(sample), env={"TEST_MODE": "true"})
    watch.wait_for(watch.out, "[janitor] watch: first pass in 2s, then every 5s")

    sent = time.monotonic()
    code = watch.stop(signal.SIGINT)

    assert code == 0
    assert time.monotonic() - sent < 1.5, "SIGINT during the 2 s initial delay must end watch at once"
    assert watch.out[-1] == "[janitor] watch: stopped by SIGINT"
    assert watch.count(watch.out, SUMMARY) == 0
    assert (sample / ORPHAN).exists()


def test_a_held_lock_skips_the_pass_and_the_loop_goes_on(sample: Path, locked: int, watches: list[Running]) -> None:
    watch = start(watches, "--data-dir", str(sample), "--initial-delay", "0", "--interval", "300ms",
                  "--threshold", "1")

    watch.wait_for(watch.err, "datagc: watch: pass skipped: another datagc is working on")
    assert (sample / ORPHAN).exists() and watch.count(watch.out, SUMMARY) == 0
    fcntl.flock(locked, fcntl.LOCK_UN)
    watch.wait_for(watch.out, SUMMARY)
    code = watch.stop(signal.SIGTERM)

    assert code == 0
    assert not (sample / ORPHAN).exists()


def test_a_missing_data_dir_fails_passes_until_it_appears(tmp_path: Path, watches: list[Running]) -> None:
    root = tmp_path / "not-yet-mounted"
    watch = start(watches, "--data-dir", str(root), "--initial-delay", "0", "--interval", "300ms",
                  "--threshold", "1")

    watch.wait_for(watch.err, f"datagc: watch: pass skipped: data directory {root} does not exist", count=2)
    build_sample(root)
    watch.wait_for(watch.out, f"[janitor] swept {ORPHAN}")
    code = watch.stop(signal.SIGTERM)

    assert code == 0
    assert "Traceback" not in "\n".join(watch.err)


def test_a_signal_during_a_pass_lets_the_pass_finish(sample: Path, locked: int, watches: list[Running]) -> None:
    """SIGTERM while the pass waits for the lock: the pass still runs to its end, then watch exits 0."""
    watch = start(watches, "--data-dir", str(sample), "--initial-delay", "0", "--interval", "1h", "--wait", "60s",
                  "--threshold", "1")
    watch.wait_for(watch.out, "[janitor] watch: first pass in 0s")
    deadline = time.monotonic() + PATIENCE
    while not holds_open(watch.process.pid, sample):  # the pass has opened the data dir: it waits for the lock
        assert watch.process.poll() is None and time.monotonic() < deadline, watch.err
        time.sleep(0.01)

    watch.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert watch.process.poll() is None, "watch ended in the middle of a pass"
    fcntl.flock(locked, fcntl.LOCK_UN)
    code = watch.finish()

    assert code == 0, watch.err
    assert watch.count(watch.out, SUMMARY) == 1
    assert watch.out[-2].startswith(SUMMARY) and watch.out[-1] == "[janitor] watch: stopped by SIGTERM"
    assert not (sample / ORPHAN).exists()


def test_each_pass_rewrites_the_metrics_textfile(sample: Path, tmp_path: Path, watches: list[Running]) -> None:
    textfile = tmp_path / "datagc.prom"
    watch = start(watches, "--data-dir", str(sample), "--initial-delay", "0", "--interval", "300ms",
                  "--threshold", "1", "--metrics-textfile", str(textfile))

    watch.wait_for(watch.out, SUMMARY, count=2)  # the first pass's file is written before the second pass starts
    first = pass_timestamp(textfile)  # of a pass whose summary line is already out
    watch.wait_for(watch.out, SUMMARY, count=watch.count(watch.out, SUMMARY) + 1)
    code = watch.stop(signal.SIGTERM)  # the last pass completes, metrics included, before watch exits

    assert code == 0
    assert pass_timestamp(textfile) > first
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "datagc.prom"]


def pass_timestamp(textfile: Path) -> float:
    for family in text_string_to_metric_families(textfile.read_text()):
        if family.name == "datagc_pass_timestamp_seconds":
            return float(family.samples[0].value)
    raise AssertionError(f"no datagc_pass_timestamp_seconds in {textfile}")
