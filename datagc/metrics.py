"""Prometheus textfile-collector output: one file per data directory, rewritten atomically after each pass.

node_exporter's textfile collector reads every ``*.prom`` file of its
directory on each scrape. The values describe the last pass (gauges), except
``datagc_last_success_timestamp_seconds``, carried over from the previous file
for a step that failed or did not run, so that "no success for 3 hours" can be
alerted on.
This file is the one write datagc makes outside DATA_DIR, and only where the
operator pointed ``metrics.textfile``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import Counter
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from datagc.config.load import not_a_regular_file
from datagc.model import RunReport, StepReport
from datagc.text import escape

LAST_SUCCESS = "datagc_last_success_timestamp_seconds"
#: a step with one of these statuses did its job (``skipped``: nothing to do)
SUCCEEDED = ("ok", "skipped")
#: the largest textfile read back for its last-success timestamps (ours are a few KiB)
_PREVIOUS_LIMIT = 1 << 20


def previous_successes(path: str) -> dict[str, float]:
    """The last-success timestamps per step in the file a previous pass wrote; empty if none is readable."""
    try:
        # O_NONBLOCK: a FIFO put there must not hang the pass (it is refused when writing)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}
            text = handle.read(_PREVIOUS_LIMIT).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[str, float] = {}
    with contextlib.suppress(ValueError):
        for family in text_string_to_metric_families(text):
            if family.name == LAST_SUCCESS:
                for sample in family.samples:
                    if "step" in sample.labels:
                        found[sample.labels["step"]] = float(sample.value)
    return found


def _step_reasons(step: StepReport) -> tuple[Counter[str], Counter[str]]:
    """(reclaimed bytes, files deleted) of one step, by reason; a rotation's reason is ``rotate``."""
    reclaimed: Counter[str] = Counter()
    deleted: Counter[str] = Counter()
    for (reason, detail), files in step.deleted_files.items():
        reclaimed[reason] += step.deleted_bytes[reason, detail]
        deleted[reason] += files
    if step.rotations:
        reclaimed["rotate"] += step.reclaimed_bytes - sum(reclaimed.values())
    return reclaimed, deleted


def build_registry(report: RunReport, previous: dict[str, float]) -> CollectorRegistry:
    """Every metric of one pass, in a registry of its own."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"datagc_{name}", documentation, labels, registry=registry)

    reclaimed = gauge("reclaimed_bytes", "Allocated bytes reclaimed by the last pass, per step and reason.",
                      ("step", "reason"))
    deleted = gauge("files_deleted", "Files deleted by the last pass, per step and reason.", ("step", "reason"))
    step_reclaimed = gauge("step_reclaimed_bytes", "Allocated bytes reclaimed by each step of the last pass.",
                           ("step",))
    log_before = gauge("log_bytes_before", "Size of each event log the last pass rotated, before rotation.", ("log",))
    log_after = gauge("log_bytes_after", "Size of each event log the last pass rotated, after rotation.", ("log",))
    errors = gauge("step_error", "1 if the step failed in the last pass, else 0.", ("step",))
    last_success = gauge(LAST_SUCCESS.removeprefix("datagc_"),
                         "When each step last finished without error (Unix time).", ("step",))
    finished = report.started_at + report.duration_seconds
    successes = dict(previous)  # steps this pass didn't run (a lone `datagc sweep`) keep theirs
    for step in report.steps:
        errors.labels(step.name).set(1 if step.status == "error" else 0)
        step_reclaimed.labels(step.name).set(step.reclaimed_bytes)
        by_reason, counts = _step_reasons(step)
        for reason, count in by_reason.items():
            reclaimed.labels(step.name, reason).set(count)
        for reason, count in counts.items():
            deleted.labels(step.name, reason).set(count)
        for rotation in step.rotations:
            log_before.labels(escape(rotation.path)).set(rotation.bytes_before)
            log_after.labels(escape(rotation.path)).set(rotation.bytes_after)
        if step.status in SUCCEEDED:
            successes[step.name] = finished
    for name, when in successes.items():
        last_success.labels(name).set(when)

    used = gauge("disk_used_fraction", "Used fraction of the filesystem holding DATA_DIR (df's Use%).", ("when",))
    free = gauge("disk_free_bytes", "Bytes available on the filesystem holding DATA_DIR.", ("when",))
    for when_label, disk in (("before", report.disk_before), ("after", report.disk_after)):
        if disk is not None:
            used.labels(when_label).set(disk.used_fraction)
            free.labels(when_label).set(disk.free_bytes)

    enabled = not report.steps or any(step.status != "disabled" for step in report.steps)
    gauge("enabled", "0 while the kill switch (enabled=false, GC_ENABLED=false) is set, else 1.").set(int(enabled))
    gauge("pass_duration_seconds", "How long the last pass ran.").set(report.duration_seconds)
    gauge("pass_timestamp_seconds", "When the last pass started (Unix time).").set(report.started_at)
    gauge("exit_code", "Exit status of the last pass (a bit mask: see the README).").set(report.exit_code)
    return registry


def write_metrics(path: str, report: RunReport, on_error: Callable[[str], None]) -> bool:
    """Write the textfile for ``report`` at ``path`` atomically (temp file in the same directory + rename).

    Whether it was written; if not, ``on_error`` was told why. Something
    other than a regular file at ``path`` (a FIFO, a directory) is refused,
    never opened.
    """
    problem = not_a_regular_file(path)
    if problem is None:
        try:
            write_to_textfile(path, build_registry(report, previous_successes(path)))
            return True
        except OSError as error:
            problem = error.strerror or str(error)
    else:
        problem = f"it {problem}"
    on_error(f"metrics file {path} not written: {problem}")
    return False
