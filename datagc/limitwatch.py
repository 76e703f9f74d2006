"""Between ``watch``'s passes: is a pressure limit crossed now? (SPEC §2 ``watch``, ``watch.check_interval``)

A statfs answers the filesystem limits (disk, min_free, inodes) for next to
nothing, so it is made at every check. The budget needs DATA_DIR's allocated
bytes, i.e. a walk, whose cost grows with the tree; its frequency adapts to what
it costs so that an idle ``watch`` stays under 2% of one core: the next walk
waits ``IDLE_SHARE`` of a core's time per CPU second the last one took. Where the
filesystem grew since that walk by more than the budget's headroom (the data dir
may have crossed it), the walk comes sooner, at up to ``BURST_SHARE`` of a core:
a disk filling fast is worth the CPU.

After a pass that could not bring every limit back (nothing
more may be evicted), the next early pass waits twice as long each time, up to
``watch.interval``, so that a stuck limit does not make watch walk the tree
every few seconds; the scheduled passes go on as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

from datagc import limits
from datagc.config.schema import Config
from datagc.errors import DatagcError
from datagc.safety.datadir import DataDir

#: the share of one core the budget walks may take while nothing grows (the goal is < 2%)
IDLE_SHARE = 0.01
#: the share they may take while the filesystem grows past the budget's headroom
BURST_SHARE = 0.10


class LimitCheck:
    """The limits as watch sees them between passes; ``check()`` says which are crossed."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time) -> None:
        self.config = config
        self.settings = config.pressure
        self.clock = clock
        self.cpu = cpu
        self.interval = config.watch.check_interval
        #: the last budget walk: when, its CPU seconds, what it counted, the filesystem's used bytes then
        self.walked_at: float | None = None
        self.walk_cost = 0.0
        self.data_dir_bytes: int | None = None
        self.fs_used_at_walk = 0
        #: early passes: not before this instant; the wait after one that left a limit crossed
        self.quiet_until = 0.0
        self.backoff = self.interval

    def check(self) -> list[limits.Limit]:
        """The crossed limits now, empty when none is or when DATA_DIR can't be measured (the next pass says why)."""
        now = self.clock()
        if now < self.quiet_until:
            return []
        try:
            with DataDir(self.config.data_dir) as data_dir:
                fs = limits.measure_fs(data_dir.fd)
                if self.settings.budget is not None and self._walk_due(now, fs):
                    self._walk(data_dir, fs, now)
        except (OSError, DatagcError):
            return []
        crossed = limits.crossed(limits.evaluate(limits.Figures(fs, self.data_dir_bytes), self.settings))
        if not crossed:
            self.backoff = self.interval
        return crossed

    def passed(self, still_crossed: bool) -> None:
        """A pass ran: what the last walk counted is stale; if it left a limit crossed, hold off the
        next early pass (twice as long as the last time)."""
        self.walked_at = None
        self.data_dir_bytes = None
        if still_crossed:
            self.quiet_until = self.clock() + self.backoff
            self.backoff = min(self.backoff * 2, max(self.config.watch.interval, self.interval))

    def _walk_due(self, now: float, fs: limits.FsFigures) -> bool:
        if self.walked_at is None or self.data_dir_bytes is None or self.settings.budget is None:
            return True
        since = now - self.walked_at
        headroom = Fraction(repr(self.settings.threshold)) * self.settings.budget - self.data_dir_bytes
        if fs.used_bytes - self.fs_used_at_walk >= headroom:
            return since >= self.walk_cost / BURST_SHARE
        return since >= self.walk_cost / IDLE_SHARE

    def _walk(self, data_dir: DataDir, fs: limits.FsFigures, now: float) -> None:
        started = self.cpu()
        self.data_dir_bytes = limits.data_dir_bytes(data_dir)
        self.walk_cost = self.cpu() - started
        self.walked_at = now
        self.fs_used_at_walk = fs.used_bytes
