"""How far a step's walk has got, for the progress display on a terminal.

A walk may be split across forked workers (``datagc.parallel``), so the
counts live in one anonymous shared mapping made before the fork: each walker
(the parent's share or a serial walk in slot 0, worker ``i`` in slot ``i``)
writes its own running totals (files, and bytes where the walk counts them)
into its own slot every ``EVERY`` files, and once more when its walk ends. The display reads the sum whenever it
redraws. No lock, no pipe, no message per file: a walker pays one integer
store per ``EVERY`` files. Without a terminal there is no ``WalkProgress`` and
the walk counts nothing at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datagc.safety.walk import Share

#: a walker publishes its count every this many files (a power of two: ``count & MASK`` is cheap)
EVERY = 1024
MASK = EVERY - 1
#: walkers beyond this many (DATAGC_WALK_WORKERS) are not counted: the display shows less than was walked
SLOTS = 512
#: seconds a step runs before its progress is drawn
SHOW_AFTER = 0.5


class WalkProgress:
    """The files a step's walk has seen so far, summed over every process walking it."""

    def __init__(self) -> None:
        import mmap  # only a terminal's run counts (start-up is timed)

        # (files, bytes) per walker; MAP_SHARED: the forked workers write into it
        self._slots = memoryview(mmap.mmap(-1, SLOTS * 2 * 8)).cast("q")
        self.step = ""
        #: the status line drawing it (``drawn_on``)
        self.display: _Display | None = None

    def begin(self, step: str) -> None:
        """A new step: its walk starts from 0 (and is drawn from ``SHOW_AFTER`` seconds on)."""
        self.step = step
        for slot in range(SLOTS * 2):
            self._slots[slot] = 0
        if self.display is not None:
            self.display.start()

    def end(self) -> None:
        """The step's walk (and what it checks after, the CDN) is over: its line is erased before the step's
        report is written (``render.stream`` writes it as the pass runs)."""
        if self.display is not None:
            self.display.stop()

    def files(self) -> int:
        return sum(self._slots[0::2])

    def bytes(self) -> int:
        return sum(self._slots[1::2])

    def counter(self, share: Share | None) -> Counter | None:
        """What one walker writes through; None when its slot is out of range."""
        slot = 0 if share is None else share.index
        return Counter(self._slots, slot) if slot < SLOTS else None


class Counter:
    """One walker's slot. A step may walk several trees (sweep's media directories, each split again):
    the slot keeps the total of the walks before."""

    __slots__ = ("_base", "_base_bytes", "_slot", "_slots")

    def __init__(self, slots: memoryview, slot: int) -> None:
        self._slots, self._slot = slots, 2 * slot
        self._base, self._base_bytes = slots[2 * slot], slots[2 * slot + 1]

    def seen(self, files: int, allocated: int = 0) -> None:
        """This walker has seen ``files`` files (of ``allocated`` bytes, where it counts them) so far in this walk."""
        self._slots[self._slot] = self._base + files
        self._slots[self._slot + 1] = self._base_bytes + allocated


@contextlib.contextmanager
def drawn_on(console: Any, delay: float = SHOW_AFTER) -> Iterator[WalkProgress]:
    """A ``WalkProgress`` drawn on ``console`` (stderr, a terminal) as one transient status line, from
    ``delay`` seconds into each step (``begin``) until its walk ends (``end``): a quick step draws nothing.
    Redrawn 4 times a second by rich's own thread, which reads the counts; the walk never waits for the
    display."""
    progress = WalkProgress()
    progress.display = _Display(progress, console, delay)
    try:
        yield progress
    finally:
        progress.display.stop()


class _Display:
    """The status line of one step at a time: started ``delay`` seconds after ``start``, erased by ``stop``."""

    def __init__(self, progress: WalkProgress, console: Any, delay: float) -> None:
        import threading

        self._progress, self._console, self._delay = progress, console, delay
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._live: Any = None
        self._wanted = False

    def start(self) -> None:
        import threading

        self.stop()
        with self._lock:
            self._wanted = True
        self._timer = threading.Timer(self._delay, self._show)
        self._timer.daemon = True
        self._timer.start()

    def _show(self) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        with self._lock:
            if self._wanted and self._live is None:
                self._live = Live(Spinner("dots", text=_Line(self._progress)), console=self._console,
                                  refresh_per_second=4, transient=True, redirect_stdout=False, redirect_stderr=False)
                self._live.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            self._wanted = False
            if self._live is not None:
                self._live.stop()
                self._live = None


class _Line:
    """The status line, read afresh at each redraw."""

    def __init__(self, progress: WalkProgress) -> None:
        self.progress = progress

    def __rich__(self) -> Any:
        from rich.text import Text

        from datagc.units import people_size

        files, allocated = self.progress.files(), self.progress.bytes()
        if not files:
            return Text(f"{self.progress.step}…")
        size = f", {people_size(allocated)}" if allocated else ""
        return Text(f"{self.progress.step}: {files:,} files walked{size}")
