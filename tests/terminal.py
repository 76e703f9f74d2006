"""Run the installed ``datagc`` on a real pseudo-terminal, as an operator at a shell would see it."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import DATAGC, clean_env

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@dataclass
class Screen:
    code: int
    raw: str  # everything written to the terminal (stdout and stderr), escapes included
    #: (seconds since start, text) of each chunk read, to tell output during the run from output at its end
    chunks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return _ESCAPES.sub("", self.raw)


def run_on_terminal(*args: str, env: Mapping[str, str] | None = None, columns: int = 80,
                    timeout: float = 120, stdout: Path | None = None,
                    on_screen: Callable[[str], None] | None = None,
                    on_start: Callable[[int], None] | None = None) -> Screen:
    """``datagc ARGS`` with stdin, stdout and stderr on a pty ``columns`` wide.

    ``stdout``: a file for stdout instead (stdin and stderr stay on the terminal); ``on_screen`` is called
    with the text drawn so far (escapes removed) after each read, for a test that acts on what it sees;
    ``on_start`` with the pid of datagc (the leader of its own process group) once it is started.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = clean_env({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "50", **(env or {})})
    environment.pop("NO_COLOR", None)
    started = time.monotonic()
    out = slave if stdout is None else os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    process = subprocess.Popen([DATAGC, *args], stdin=slave, stdout=out, stderr=slave, env=environment,
                               start_new_session=True)
    os.close(slave)
    if out != slave:
        os.close(out)
    if on_start is not None:
        on_start(process.pid)
    chunks: list[tuple[float, str]] = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic() - started, data.decode("utf-8", "replace")))
            if on_screen is not None:
                on_screen(_ESCAPES.sub("", "".join(text for _, text in chunks)))
            if time.monotonic() - started > timeout:
                process.kill()
        code = process.wait(timeout=timeout)
    finally:
        os.close(master)
    return Screen(code, "".join(text for _, text in chunks), chunks)
