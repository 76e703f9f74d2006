"""The Prometheus textfile: written by the real CLI, parsed back with prometheus-client, checked against --json."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datagc.demo import build_sample
from datagc.exitcodes import Exit
from tests.helpers import run_datagc
from tests.mounts import MiB

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def read_metrics(path: Path) -> tuple[Samples, dict[str, str]]:
    """{metric: {sorted label pairs: value}} and {metric: its HELP text}."""
    samples: Samples = {}
    helps = {}
    for family in text_string_to_metric_families(path.read_text()):
        helps[family.name] = family.documentation
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples, helps


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root, real_bytes=True, scale=0.01, events_bytes=2 * MiB)
    return root


@pytest.fixture
def textfile(tmp_path: Path) -> Path:
    """Where node_exporter's textfile collector would look: outside DATA_DIR."""
    directory = tmp_path / "node-exporter-textfiles"
    directory.mkdir()
    return directory / "datagc.prom"


def run_all(sample: Path, textfile: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn", "--threshold", "1",
                        "--cdn-public-url", "https://cdn.example.com", "--metrics-textfile", str(textfile), "--json",
                        *args, env=env)
    return result.code, result.json()


def test_every_metric_of_a_pass_matches_the_json_report(sample: Path, textfile: Path) -> None:
    started = time.time()
    published = sample / "images" / "1763400000000-f6.png"  # on the CDN (the feed says so); now a day old
    os.utime(published, (started - 86400, started - 86400))
    code, report = run_all(sample, textfile)

    assert code == Exit.ROTATED | Exit.SWEPT
    assert sorted(path.name for path in textfile.parent.iterdir()) == ["datagc.prom"], "no temp file left"
    samples, helps = read_metrics(textfile)
    assert all(name.startswith("datagc_") for name in samples)
    assert all(helps[name] for name in helps), "every metric has a # HELP"
    steps = {step["name"]: step for step in report["steps"]}
    for name, step in steps.items():
        assert value(samples, "datagc_step_error", step=name) == 0
        assert value(samples, "datagc_step_reclaimed_bytes", step=name) == step["reclaimed_bytes"]
        assert started <= value(samples, "datagc_last_success_timestamp_seconds", step=name) <= time.time()
    deletes = [action for action in steps["sweep"]["actions"] if action["kind"] == "delete"]
    files, reclaimed = Counter(a["reason"] for a in deletes), Counter[str]()
    for action in deletes:
        reclaimed[action["reason"]] += action["bytes"]
    assert set(files) == {"age", "published", "temp"}
    for reason in files:
        assert value(samples, "datagc_files_deleted", step="sweep", reason=reason) == files[reason]
        assert value(samples, "datagc_reclaimed_bytes", step="sweep", reason=reason) == reclaimed[reason]
    rotation = steps["rotate"]["actions"][0]
    assert value(samples, "datagc_log_bytes_before", log="events.jsonl") == rotation["bytes_before"] >= 2 * MiB
    assert value(samples, "datagc_log_bytes_after", log="events.jsonl") == rotation["bytes_after"]
    assert value(samples, "datagc_reclaimed_bytes", step="rotate", reason="rotate") == steps["rotate"][
        "reclaimed_bytes"]
    for when in ("before", "after"):
        disk = report[f"disk_{when}"]
        assert value(samples, "datagc_disk_used_fraction", when=when) == pytest.approx(disk["used_fraction"], abs=1e-6)
        assert value(samples, "datagc_disk_free_bytes", when=when) == disk["free_bytes"]
    assert value(samples, "datagc_exit_code") == code
    assert value(samples, "datagc_enabled") == 1
    assert 0 < value(samples, "datagc_pass_duration_seconds") < time.time() - started
    assert started <= value(samples, "datagc_pass_timestamp_seconds") <= time.time()


def test_a_failing_step_keeps_its_last_success_time_from_the_previous_pass(sample: Path, textfile: Path) -> None:
    run_all(sample, textfile)
    first, _ = read_metrics(textfile)
    (sample / "events.jsonl").write_bytes(b"x" * (2 * MiB))  # past max_bytes with no line end: rotate fails

    code, _ = run_all(sample, textfile)

    assert code & Exit.STEP_FAILED
    second, _ = read_metrics(textfile)
    assert value(second, "datagc_step_error", step="rotate") == 1
    assert value(second, "datagc_step_error", step="sweep") == 0
    last_rotate = value(second, "datagc_last_success_timestamp_seconds", step="rotate")
    assert last_rotate == value(first, "datagc_last_success_timestamp_seconds", step="rotate")
    assert value(second, "datagc_last_success_timestamp_seconds", step="sweep") > last_rotate
    assert value(second, "datagc_exit_code") == code
    assert "datagc_log_bytes_before" not in second, "nothing was rotated in this pass"


def test_the_kill_switch_shows_as_enabled_0(sample: Path, textfile: Path) -> None:
    code, _ = run_all(sample, textfile, env={"GC_ENABLED": "false"})

    assert code == 0
    samples, _ = read_metrics(textfile)
    assert value(samples, "datagc_enabled") == 0
    assert value(samples, "datagc_step_error", step="rotate") == 0
    assert "datagc_last_success_timestamp_seconds" not in samples


def test_a_dry_run_writes_no_metrics(sample: Path, textfile: Path) -> None:
    code, _ = run_all(sample, textfile, "--dry-run")

    assert code == Exit.ROTATED | Exit.SWEPT
    assert not textfile.exists()


def test_the_textfile_path_can_come_from_the_environment(sample: Path, textfile: Path) -> None:
    result = run_datagc("sweep", "--data-dir", str(sample), env={"DATAGC_METRICS_TEXTFILE": str(textfile)})

    assert result.code == Exit.SWEPT
    samples, _ = read_metrics(textfile)
    assert value(samples, "datagc_files_deleted", step="sweep", reason="temp") == 1


def test_a_metrics_file_that_cannot_be_written_adds_bit_1_and_says_so(sample: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "datagc.prom"

    result = run_datagc("run-all", "--data-dir", str(sample), "--max-bytes", "1MiB", "--cdn", "--threshold", "1",
                        "--metrics-textfile", str(missing))

    assert result.code == Exit.STEP_FAILED | Exit.ROTATED | Exit.SWEPT
    assert f"datagc: metrics file {missing} not written: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (sample / "posts.json.tmp.1763000000000").exists(), "the pass itself was done"


def test_a_single_pass_command_keeps_the_other_steps_last_success(sample: Path, textfile: Path) -> None:
    run_all(sample, textfile)
    before, _ = read_metrics(textfile)

    result = run_datagc("sweep", "--data-dir", str(sample), "--metrics-textfile", str(textfile))

    assert result.code == 0, result.stderr
    after, _ = read_metrics(textfile)
    for name in ("rotate", "pressure"):
        assert value(after, "datagc_last_success_timestamp_seconds", step=name) == value(
            before, "datagc_last_success_timestamp_seconds", step=name)
    assert value(after, "datagc_last_success_timestamp_seconds", step="sweep") > value(
        before, "datagc_last_success_timestamp_seconds", step="sweep")
    assert set(after["datagc_step_error"]) == {(("step", "sweep"),)}, "the pass's own gauges: its steps only"
