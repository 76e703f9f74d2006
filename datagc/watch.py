"""``datagc watch``: run-all on a schedule, for hosts without cron (containers, mostly).

Passes run one after the other in this loop and each takes the data
directory lock, so they never overlap with each other or with a cron-started
datagc. A pass that fails in any way is reported and the loop goes on: the
next pass is the retry. Between passes the pressure limits are checked every
``watch.check_interval`` (``datagc.limitwatch``) and a crossed one runs pressure
at once. SIGTERM and SIGINT end the loop between passes: a signal that arrives
during a pass lets it finish; one during the wait ends it at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from datagc.config.schema import Config
from datagc.endpoint import serve_metrics
from datagc.errors import DatagcError
from datagc.exitcodes import Exit
from datagc.limitwatch import LimitCheck
from datagc.model import RunReport
from datagc.render.terminal import Renderer
from datagc.runner import RUN_ALL_STEPS, RunOptions, run_and_report
from datagc.units import format_duration
from datagc.wording import limit_crossed

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """SIGTERM/SIGINT handling for the loop: remembered during a pass, ending the wait at once.

    The signals' handler records the first one; ``signal.set_wakeup_fd`` makes
    the interpreter also write the signal's number to a pipe that the wait
    selects on, so a signal arriving just before the wait (or delivered to
    another thread) still wakes it. Use as a context manager in the main thread.
    """

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_wakeup = -1
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._previous_handlers = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._note(signum)

    def _note(self, signum: int) -> None:
        if self.signal is None and signum in STOP_SIGNALS:
            self.signal = signal.Signals(signum)

    def wait(self, seconds: float) -> signal.Signals | None:
        """Sleep ``seconds`` unless a stop signal is pending or arrives; the signal if one did."""
        deadline = time.monotonic() + seconds
        while self.signal is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    for signum in os.read(self._read_fd, 512):
                        self._note(signum)
        return self.signal


def run_pass(config: Config, options: RunOptions, renderer: Renderer,
             command: str = "run-all", steps: Sequence[str] = RUN_ALL_STEPS) -> RunReport | None:
    """One pass (run-all, or pressure when a limit is crossed between passes), reported, its metrics
    written (``runner.run_and_report``); no failure escapes. Its report, if it ran."""
    try:
        report, _ = run_and_report(command, steps, config, options, renderer)
    except DatagcError as error:  # the lock is held, the data directory is missing, …
        renderer.error(f"watch: pass skipped: {error}")
        return None
    except Exception as error:
        renderer.error(f"watch: pass failed with internal error {type(error).__name__}: {error}; "
                       "the next pass will try again")
        if options.verbose:
            renderer.traceback(traceback.format_exc())
        return None
    return report


def run_watch(config: Config, options: RunOptions, renderer: Renderer) -> int:
    """Run passes until SIGTERM or SIGINT; exit status 0 when stopped by one."""
    with StopRequest() as stop, serve_metrics(config) as endpoint:
        interval = config.watch.interval
        checks = LimitCheck(config)
        renderer.message(
            f"[janitor] watch: first pass in {format_duration(config.watch.initial_delay)}, "
            f"then every {format_duration(interval)} on {config.data_dir}; pressure limits checked every "
            f"{format_duration(checks.interval)}" + (" (dry run: nothing will change)" if options.dry_run else "")
        )
        if endpoint is not None:
            renderer.message(f"[janitor] watch: serving metrics on {endpoint.url}"
                             + (" (dry run: passes are not published)" if options.dry_run else ""))

        def run(command: str = "run-all", steps: Sequence[str] = RUN_ALL_STEPS) -> None:
            report = run_pass(config, options, renderer, command, steps)
            if endpoint is not None and report is not None and not options.dry_run:
                endpoint.publish(report)
            checks.passed(options.dry_run or _still_crossed(report))  # a dry run leaves every limit as it was

        # the initial delay lets the service start: a plain wait; the checks begin after the first pass
        received = stop.wait(config.watch.initial_delay)
        while received is None:
            started = time.monotonic()
            run()
            received = _wait_checking(stop, started + interval, checks, renderer, run)
    renderer.message(f"[janitor] watch: stopped by {received.name}")
    return 0


def _wait_checking(stop: StopRequest, due: float, checks: LimitCheck, renderer: Renderer,
                   run: Callable[[str, Sequence[str]], None]) -> signal.Signals | None:
    """Wait until ``due``, checking the pressure limits every check interval and running pressure at once
    when one is crossed; the stop signal if one came."""
    while (remaining := due - time.monotonic()) > 0:
        if stop.wait(min(remaining, checks.interval)) is not None:
            break
        if time.monotonic() >= due or not (crossed := checks.check()):
            continue
        renderer.message(f"[janitor] watch: {'; '.join(limit_crossed(limit) for limit in crossed)}: "
                         "running pressure now")
        run("pressure", ("pressure",))
    return stop.signal


def _still_crossed(report: RunReport | None) -> bool:
    return report is None or bool(report.exit_code & Exit.STILL_ABOVE_THRESHOLD)
