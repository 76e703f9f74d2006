"""audit's walk shows its progress on a terminal (stderr) as sweep's and pressure's do, and nothing anywhere else.

audit has no CDN check to hold it, and a walk of a test-sized tree ends before the line's half second: so the
test holds datagc back itself (SIGSTOP and SIGCONT to its process group) once its walk is seen under way. First
for longer than that half second, then letting it run a few milliseconds at a time until its line is on the
screen: wall time, which the display's timers count, passes while the walk hardly moves, on any machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from datagc.progress import SHOW_AFTER
from tests.helpers import run_datagc
from tests.mounts import MiB, tmpfs
from tests.terminal import Screen, run_on_terminal

SERIAL = {"DATAGC_PARALLEL_THRESHOLD": "1000000000"}
SPLIT = {"DATAGC_PARALLEL_THRESHOLD": "0", "DATAGC_WALK_WORKERS": "2"}
DIRS, PER_DIR = 200, 200
SHOWN = re.compile(r"audit(…|: [\d,]+ files walked)")


@contextlib.contextmanager
def tree() -> Iterator[Path]:
    """A data dir on its own tmpfs (quick to fill): DIRS directories of PER_DIR empty files under images/, a walk
    of some 200 ms, which the hold below stretches far past the moment the line is drawn."""
    with tmpfs(64 * MiB) as mount:
        root = mount / "data"
        for number in range(DIRS):
            directory = root / "images" / f"d{number:03d}"
            directory.mkdir(parents=True)
            for index in range(PER_DIR):
                os.close(os.open(directory / f"{index}.png", os.O_WRONLY | os.O_CREAT, 0o644))
        yield root


class Hold:
    """Holds datagc back once it has the tree's images/ open (its walk is starting or under way): stopped for
    ``SHOW_AFTER`` and a margin, then run ``RUN_S`` in every ``STOP_S + RUN_S`` until ``shown`` is set (or it
    ends). It is always let go on. Held a little before the step begins, it is drawn all the same: the walk
    still has nearly all its files to go when the line's half second has passed."""

    RUN_S, STOP_S = 0.002, 0.03

    def __init__(self, root: Path) -> None:
        self.walked = str(root / "images")
        self.held = threading.Event()
        self.shown = threading.Event()
        self._thread: threading.Thread | None = None

    def on_start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._hold, args=(pid,), daemon=True)
        self._thread.start()

    def on_screen(self, text: str) -> None:
        if SHOWN.search(text):
            self.shown.set()

    def _walking(self, pid: int) -> bool:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(self.walked):
                    return True
            except OSError:
                continue
        return False

    def _hold(self, pid: int) -> None:
        deadline = time.monotonic() + 60
        while not self._walking(pid):
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.0005)
        try:
            os.killpg(pid, signal.SIGSTOP)
            self.held.set()
            time.sleep(SHOW_AFTER + 0.5)
            while not self.shown.is_set() and time.monotonic() < deadline:
                os.killpg(pid, signal.SIGCONT)
                time.sleep(self.RUN_S)
                os.killpg(pid, signal.SIGSTOP)
                time.sleep(self.STOP_S)
        except ProcessLookupError:
            return  # it ended
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(120)


def held_on_terminal(root: Path, *args: str, env: dict[str, str], stdout: Path | None = None) -> Screen:
    hold = Hold(root)
    screen = run_on_terminal("audit", "--data-dir", str(root), *args, env=env, columns=120, stdout=stdout,
                             on_screen=hold.on_screen, on_start=hold.on_start)
    hold.join()
    assert hold.held.is_set(), "datagc's walk was never seen under way"
    return screen


@pytest.mark.parametrize("env", [SERIAL, SPLIT], ids=["serial", "split"])
def test_audit_shows_its_walk_on_the_terminal_and_erases_it_before_the_report(env: dict[str, str]) -> None:
    """stdout on the same terminal (--json): the line is drawn on it, and erased before the report is written."""
    with tree() as root:
        screen = held_on_terminal(root, "--json", env=env)
    assert screen.code in (0, 32), screen.text
    report = screen.raw[screen.raw.index("{"):]
    assert SHOWN.search(screen.raw[:screen.raw.index("{")]), screen.text
    assert "files walked" not in report and "\x1b" not in report, report  # no redraw nor erasure in it
    assert orjson.loads(report.replace("\r\n", "\n"))["files"] == DIRS * PER_DIR


def test_audit_progress_goes_to_stderr_only_on_a_terminal_and_not_with_quiet(tmp_path: Path) -> None:
    """stdout to a file: the file holds the report and nothing else, the terminal (stderr) the progress; stderr
    off a terminal, or -q: not a byte of it."""
    out = tmp_path / "stdout"
    with tree() as root:
        screen = held_on_terminal(root, "--json", env=SERIAL, stdout=out)
        piped = run_datagc("audit", "--data-dir", str(root), env=SERIAL)
        quiet = held_on_terminal(root, "-q", env=SERIAL)
    assert SHOWN.search(screen.text), screen.text
    assert orjson.loads(out.read_bytes())["files"] == DIRS * PER_DIR  # stdout holds the JSON and nothing else
    assert piped.stderr == "" and "files walked" not in piped.stdout and piped.stdout.startswith("[disk-audit] ")
    assert quiet.text.strip() == "" and quiet.code in (0, 32), quiet.text
