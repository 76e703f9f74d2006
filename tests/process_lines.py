"""A long-running subprocess whose output lines are collected as they come, to wait on and assert against."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO

#: how long to wait for what a process should say, before failing: it bounds only a failure (waits end as soon as
#: the line comes), so it is generous: two cores shared by several suites and benchmarks (30 s was once too short)
PATIENCE = 120.0


def _default_signals() -> None:
    """Every signal as a container runtime or service manager leaves it for what it starts: default, none blocked.

    A test runner started as a background job (``make test &``) inherits SIGINT
    ignored, one started with ``nohup`` SIGHUP ignored, and every child with it;
    a non-interactive shell can't trap a signal ignored on entry, so the
    entrypoint would never see the signal the test sends.
    """
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):  # those the C library keeps for itself
                signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


class Running:
    """``argv`` started with stdout and stderr read line by line (``merge``: stderr into ``out``)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], merge: bool = False) -> None:
        self.process = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            text=True, env=env, preexec_fn=_default_signals,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        streams = [(self.process.stdout, self.out), (self.process.stderr, self.err)]
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in streams if stream is not None]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def count(self, lines: list[str], text: str) -> int:
        with self._changed:
            return sum(text in line for line in lines)

    def wait_for(self, lines: list[str], text: str, count: int = 1, timeout: float = PATIENCE) -> None:
        """Until ``count`` lines contain ``text``; fails (with what was seen) on timeout or exit."""
        with self._changed:
            self._changed.wait_for(
                lambda: sum(text in line for line in lines) >= count or self.process.poll() is not None, timeout)
            found = sum(text in line for line in lines)
        assert found >= count, f"waited for {count}x {text!r}; stdout={self.out} stderr={self.err}"

    def finish(self, timeout: float = PATIENCE) -> int:
        """Wait for the exit and for every line of output (the readers are given the same patience: on a loaded
        machine a reader can lag its process's exit by seconds, and a last line not yet read is not a line lost)."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return code

    def stop(self, signum: signal.Signals, timeout: float = PATIENCE) -> int:
        self.process.send_signal(signum)
        return self.finish(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
