"""``datagc watch``: run-all on a schedule, for hosts without cron (containers, mostly).

Passes run one after the other in this loop and each takes the data
directory lock, so they never overlap with each other or with a cron-started
datagc. A pass that fails in any way is reported and the loop goes on: the
next pass is the retry. SIGTERM and SIGINT end the loop between passes: a
signal that arrives during a pass lets it finish; one during the wait ends it
at once. The wait blocks the two signals and collects them with
``sigtimedwait``, so no signal is lost between "is a stop pending?" and
"sleep".
"""

from __future__ import annotations

import signal
import time
import traceback
from types import FrameType

from datagc.config import Config
from datagc.errors import DatagcError
from datagc.render import Renderer
from datagc.runner import RUN_ALL_STEPS, RunOptions, run_command
from datagc.units import format_duration

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Remembers the first stop signal that arrived while a pass was running."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)

    def wait(self, seconds: float) -> signal.Signals | None:
        """Sleep ``seconds`` unless a stop signal is pending or arrives; the signal if one did."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if self.signal is None and seconds > 0:
                received = signal.sigtimedwait(STOP_SIGNALS, seconds)
                if received is not None:
                    self.signal = signal.Signals(received.si_signo)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return self.signal


def run_pass(config: Config, options: RunOptions, renderer: Renderer) -> None:
    """One run-all pass, reported, its metrics written; no failure escapes."""
    on_traceback = renderer.error if options.verbose else None
    try:
        report = run_command("run-all", RUN_ALL_STEPS, config, options, on_traceback)
    except DatagcError as error:  # the lock is held, the data directory is missing, …
        renderer.error(f"watch: pass skipped: {error}")
        return
    except Exception as error:
        renderer.error(f"watch: pass failed with internal error {type(error).__name__}: {error}; "
                       "the next pass will try again")
        if on_traceback is not None:
            on_traceback(traceback.format_exc())
        return
    renderer.run_report(report)
    if config.metrics.textfile and not options.dry_run:
        from datagc.metrics import write_metrics

        try:
            write_metrics(config.metrics.textfile, report)
        except OSError as error:
            renderer.error(f"metrics file {config.metrics.textfile} not written: {error.strerror or error}")


def run_watch(config: Config, options: RunOptions, renderer: Renderer) -> int:
    """Run passes until SIGTERM or SIGINT; exit status 0 when stopped by one."""
    stop = StopRequest()
    previous = {signum: signal.signal(signum, stop.handle) for signum in STOP_SIGNALS}
    try:
        interval = config.watch.interval
        renderer.message(
            f"[janitor] watch: first pass in {format_duration(config.watch.initial_delay)}, "
            f"then every {format_duration(interval)} on {config.data_dir}"
            + (" (dry run: nothing will change)" if options.dry_run else "")
        )
        delay = config.watch.initial_delay
        while (received := stop.wait(delay)) is None:
            started = time.monotonic()
            run_pass(config, options, renderer)
            delay = max(0.0, interval - (time.monotonic() - started))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    renderer.message(f"[janitor] watch: stopped by {received.name}")
    return 0
