"""Running passes: the one protocol every changing command (and ``watch``) goes through.

``run_step`` drives one pass: ``prepare`` (observe and plan, changing
nothing), the executor (apply, or with ``--dry-run`` record), ``conclude``
(the step report from what happened); any failure stays that step's, never
the run's end. ``run_command`` honours the kill switch, opens and locks
DATA_DIR, measures the disk before and after and runs the steps in order.
``run_and_report`` is what the CLI and ``watch`` both call: the run, its
report, its metrics and the exit status, so the two cannot drift.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from errno import ENOSPC
from typing import TYPE_CHECKING, Any, NamedTuple

from datagc import executor
from datagc.config.schema import Config
from datagc.errors import DatagcError
from datagc.exitcodes import Exit
from datagc.facts import DiskUsage
from datagc.journal import Journal
from datagc.model import Outlet, PassContext, PassSpec, RunReport, StepReport, note
from datagc.safety.datadir import DataDir
from datagc.safety.disk import disk_usage
from datagc.safety.lock import lock_data_dir, lock_held

if TYPE_CHECKING:
    from datagc.progress import WalkProgress
    from datagc.render.terminal import Renderer

#: run-all's order: rotation first (cheap, frees the most predictable space), pressure last
RUN_ALL_STEPS: tuple[str, ...] = ("rotate", "sweep", "pressure")
#: the steps that read the feed, and so also repair its references to tombstones (SPEC §9)
FEED_STEPS = frozenset({"sweep", "pressure"})

TracebackHandler = Callable[[str], None]


class RunOptions(NamedTuple):
    dry_run: bool = False
    wait_seconds: float | None = None
    verbose: bool = False


def pass_spec(name: str) -> PassSpec[Any]:
    """The ``PASS`` of ``datagc.passes.<name>``, imported only when the step runs."""
    spec: PassSpec[Any] = importlib.import_module(f"datagc.passes.{name}").PASS
    return spec


def run_step(name: str, ctx: PassContext, on_traceback: TracebackHandler | None = None) -> StepReport:
    """Run one pass as a step; any exception becomes that step's failure (what was applied stays reported)."""
    step = StepReport(name, outlet=ctx.outlet)
    try:
        with _cyclic_gc_paused():
            spec = pass_spec(name)
            try:
                plan = spec.prepare(ctx)
            finally:
                if ctx.progress is not None:  # the walk is over: its line goes before the step's report
                    ctx.progress.end()
            for failure in plan.failures:
                step.fail(failure.why, failure.errno)
            executor.apply(ctx, plan.actions, step)
            if plan.list_kept is not None:  # --verbose: the ordinary kept files, met as the plan was taken
                listed, plan.kept_unlisted = plan.list_kept()
                plan.kept += listed
            # after: a streamed plan finds what it keeps as the executor takes its actions (the plan's come first)
            step.kept[:0] = plan.kept
            step.kept_unlisted = plan.kept_unlisted if plan.kept_unlisted is not None or not ctx.verbose else {}
            step.notes[:0] = plan.notes
            step.details = {**plan.details, **step.details}
            if plan.skipped and step.status == "ok" and not step.action_count:
                step.status = "skipped"
            spec.conclude(ctx, plan, step)
            if name in FEED_STEPS:
                from datagc.tombstones import repair_tombstones  # reads the feed: only the passes that do

                repair_tombstones(ctx, step)
    except DatagcError as error:
        step.fail(note("step-error", message=str(error)))
    except OSError as error:
        step.fail(note("os-error", error=error.strerror or str(error), filename=error.filename), error.errno)
    except Exception as error:
        step.fail(note("internal-error", type=type(error).__name__, error=str(error)))
        if on_traceback is not None:
            on_traceback(traceback.format_exc())
    if ctx.journal is not None and (problem := ctx.journal.flush()) is not None:
        step.fail(note("journal-failed", problem=problem))
    elif ctx.dry_run and step.action_count:
        from datagc.foresight import journal_obstacle  # dry runs only

        if (problem := journal_obstacle(ctx.data_dir, ctx.config)) is not None:
            step.fail(note("journal-would-fail", problem=problem))
    return step


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a pass.

    A pass allocates hundreds of thousands of acyclic objects, many long-lived
    (observed files, actions); the collector would traverse them again and
    again for nothing (a fifth of pressure's CPU over 200k files). Reference
    counting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def failed_for_lack_of_space(step: StepReport) -> bool:
    return step.status == "error" and step.errno == ENOSPC



def _disk(data_dir: DataDir) -> DiskUsage | None:
    try:
        return disk_usage(data_dir.fd)
    except OSError:
        return None


def disabled_report(command: str, config: Config, steps: Sequence[str], dry_run: bool) -> RunReport:
    """The kill switch: every step says it is disabled and nothing is touched."""
    report = RunReport(command=command, data_dir=str(config.data_dir), dry_run=dry_run, disk_before=None,
                       started_at=time.time())
    for name in steps:
        step = StepReport(name, status="disabled")
        step.notes.append(note("disabled", step=name, source=config.sources["enabled"]))
        report.steps.append(step)
    return report


def run_command(
    command: str,
    steps: Sequence[str],
    config: Config,
    options: RunOptions,
    on_traceback: TracebackHandler | None = None,
    outlet: Outlet | None = None,
    progress: WalkProgress | None = None,
) -> RunReport:
    """Run ``steps`` in order under the data directory lock; ``outlet`` receives the report as it is made.

    In run-all, a rotation that failed for lack of space is tried again after
    each later step, as soon as one freed some (SPEC §7 rule 9). ``progress``
    (a terminal) is told each step and counts its walk.
    """
    if not config.enabled:
        return disabled_report(command, config, steps, options.dry_run)
    with DataDir(config.data_dir) as data_dir, Journal(data_dir, config, command) as journal:
        busy = options.dry_run and lock_held(data_dir)  # a dry run only reads: it takes no lock
        if not options.dry_run:
            lock_data_dir(data_dir, options.wait_seconds)
        clock = time.monotonic()
        ctx = PassContext(config=config, data_dir=data_dir, dry_run=options.dry_run, now=time.time(),
                          journal=None if options.dry_run else journal, outlet=outlet, verbose=options.verbose,
                          progress=progress)
        report = RunReport(command, str(config.data_dir), options.dry_run, disk_before=_disk(data_dir),
                           started_at=ctx.now, other_pass_running=busy)
        if outlet is not None:
            outlet.begin(report)
        for number, name in enumerate(steps, 1):
            if progress is not None:
                progress.begin(name)
            report.steps.append(run_step(name, ctx._replace(now=time.time()), on_traceback))
            _retry_rotation_for_space(report, ctx, on_traceback)
            if outlet is not None:
                outlet.settle(report, _awaiting_retry(report) if number < len(steps) else None)
        report.disk_after = _disk(data_dir)
        report.duration_seconds = time.monotonic() - clock
    return report


def _retry_rotation_for_space(report: RunReport, ctx: PassContext, on_traceback: TracebackHandler | None) -> None:
    """Retry a rotation that hit ENOSPC right after the step that follows it.

    Right after the sweep, not at the end: a rotation frees the most, and
    pressure, run after it, then evicts only what is still needed (retried at
    the end instead, pressure deleted media the rotation would have spared).
    """
    last = report.steps[-1]
    failed = [i for i, step in enumerate(report.steps[:-1]) if step.name == "rotate" and failed_for_lack_of_space(step)]
    if not failed or last.name == "rotate":
        return
    again = run_step("rotate", ctx._replace(now=time.time()), on_traceback)
    again.notes.append(note("rotate-retried", after=last.name))
    report.steps[failed[0]] = again


def _awaiting_retry(report: RunReport) -> int | None:
    """The index of a rotation that failed for lack of space: the next step is followed by its retry."""
    return next((i for i, step in enumerate(report.steps) if step.name == "rotate" and failed_for_lack_of_space(step)),
                None)


def run_and_report(command: str, steps: Sequence[str], config: Config, options: RunOptions,
                   renderer: Renderer) -> tuple[RunReport, int]:
    """Run, write the report as it is made (``render.stream``), write the metrics; the report and exit status.
    The CLI and ``watch`` both call this.

    DatagcError (the lock is held, DATA_DIR is missing) propagates: the caller says it in its own way.
    """
    from datagc.render.stream import ReportStream

    on_traceback = renderer.traceback if options.verbose else None
    stream = ReportStream(renderer)
    with renderer.pass_progress() as progress:
        report = run_command(command, steps, config, options, on_traceback, stream, progress)
    code = report.exit_code
    if config.metrics.textfile and not options.dry_run:  # before the report's end: whatever writing it meets
        from datagc.metrics import write_metrics

        if not write_metrics(config.metrics.textfile, report, renderer.error):
            code |= Exit.STEP_FAILED
    if not stream.finish(report):
        code |= Exit.STEP_FAILED
    return report, code
