"""Running passes as isolated steps: one step failing never stops the others.

``run_command`` is what every changing command (rotate, sweep, pressure,
run-all) goes through: honour the kill switch, open and lock DATA_DIR, measure
the disk before and after, run each step with its failures contained, and
return the report the renderer and the exit status are made from.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datagc.config import Config
from datagc.errors import DatagcError
from datagc.exitcodes import Exit
from datagc.model import PassContext, RunReport, StepReport
from datagc.safety import DataDir, DiskUsage, disk_usage, lock_data_dir

#: run-all's order: rotation first (cheap, frees the most predictable space), pressure last
RUN_ALL_STEPS: tuple[str, ...] = ("rotate", "sweep", "pressure")

StepFunction = Callable[[PassContext], StepReport]


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    wait_seconds: float | None = None
    verbose: bool = False


def step_function(name: str) -> StepFunction:
    """The ``run`` of ``datagc.passes.<name>``, imported only when the step runs."""
    module = importlib.import_module(f"datagc.passes.{name}")
    function: StepFunction = module.run
    return function


def run_step(name: str, ctx: PassContext, on_traceback: Callable[[str], None] | None = None) -> StepReport:
    """Run one step; any exception becomes that step's error, never the run's end."""
    try:
        return step_function(name)(ctx)
    except DatagcError as error:
        message = str(error)
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        message = f"{error.strerror or error}{where}; what it was working on was left as it was"
        report = StepReport(name, status="error", error=message, flags=Exit.STEP_FAILED)
        report.details["errno"] = errno.errorcode.get(error.errno or 0, "")
        return report
    except Exception as error:
        message = f"internal error {type(error).__name__}: {error}; what it was working on was left as it was"
        if on_traceback is not None:
            on_traceback(traceback.format_exc())
    return StepReport(name, status="error", error=message, flags=Exit.STEP_FAILED)


def failed_for_lack_of_space(step: StepReport) -> bool:
    return step.status == "error" and step.details.get("errno") == "ENOSPC"


def _disk(data_dir: DataDir) -> DiskUsage | None:
    try:
        return disk_usage(data_dir.fd)
    except OSError:
        return None


def disabled_report(command: str, config: Config, steps: Sequence[str], dry_run: bool) -> RunReport:
    """The kill switch: every step says it is disabled and nothing is touched."""
    source = config.sources["enabled"]
    report = RunReport(command=command, data_dir=str(config.data_dir), dry_run=dry_run, disk_before=None,
                       started_at=time.time())
    for name in steps:
        step = StepReport(name, status="disabled")
        step.notes.append(f"{name}: datagc is disabled (enabled=false from {source}); nothing was done")
        report.steps.append(step)
    return report


def run_command(
    command: str,
    steps: Sequence[str],
    config: Config,
    options: RunOptions,
    on_traceback: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``steps`` in order under the data directory lock.

    In run-all, a rotation that failed for lack of space is tried again after
    each later step, as soon as one freed some (SPEC §7 rule 9).
    """
    if not config.enabled:
        return disabled_report(command, config, steps, options.dry_run)
    with DataDir(config.data_dir) as data_dir:
        lock_data_dir(data_dir, options.wait_seconds)
        clock = time.monotonic()
        ctx = PassContext(config=config, data_dir=data_dir, dry_run=options.dry_run, now=time.time())
        report = RunReport(command, str(config.data_dir), options.dry_run, disk_before=_disk(data_dir),
                           started_at=ctx.now)
        for name in steps:
            report.steps.append(run_step(name, ctx, on_traceback))
            _retry_rotation_for_space(report, ctx, on_traceback)
        report.disk_after = _disk(data_dir)
        report.duration_seconds = time.monotonic() - clock
    return report


def _retry_rotation_for_space(
    report: RunReport, ctx: PassContext, on_traceback: Callable[[str], None] | None
) -> None:
    """Retry a rotation that hit ENOSPC right after the step that follows it.

    Right after the sweep, not at the end: a rotation frees the most, and
    pressure, run after it, then evicts only what is still needed (retried at
    the end instead, pressure deleted media the rotation would have spared).
    """
    last = report.steps[-1]
    failed = [i for i, step in enumerate(report.steps[:-1]) if step.name == "rotate" and failed_for_lack_of_space(step)]
    if not failed or last.name == "rotate":
        return
    again = run_step("rotate", dataclasses.replace(ctx, now=time.time()), on_traceback)
    again.notes.append(f"rotate was retried after {last.name} freed space")
    report.steps[failed[0]] = again
