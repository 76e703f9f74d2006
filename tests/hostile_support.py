"""Helpers for the hostile-input tests: reading escapes back, a pty runner, a loopback HTTP server."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers import DATAGC, clean_env

DAY = 86400.0
#: what a forged line would start with: every hostile name carries one of these after a line break
FORGED = ("[janitor] FORGED", "[disk-audit] FORGED", "datagc: FORGED")


def unescape(text: str) -> bytes:
    """The bytes ``datagc.text.escape`` was given (UTF-8, undecodable bytes restored): its inverse."""
    out = bytearray()
    position = 0
    while position < len(text):
        char = text[position]
        if char != "\\":
            out += char.encode("utf-8")
            position += 1
            continue
        kind = text[position + 1]
        if kind in "\\nrt":
            out += {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}[kind]
            position += 2
        elif kind == "x":
            out.append(int(text[position + 2:position + 4], 16))
            position += 4
        else:
            width = 4 if kind == "u" else 8
            out += chr(int(text[position + 2:position + 2 + width], 16)).encode("utf-8", "surrogatepass")
            position += 2 + width
    return bytes(out)


def forged_lines(text: str) -> list[str]:
    """Lines of ``text`` (split as str.splitlines does: CR, NEL, U+2028 … too) that a name forged."""
    return [line for line in text.splitlines() if line.lstrip(" │┃").startswith(FORGED)]


def write_media(root: Path, relative: bytes, age_days: float, size: int = 3000) -> None:
    """A media file with a name of arbitrary bytes, ``age_days`` old."""
    path = os.fsencode(root) + b"/" + relative
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * size)
    mtime = time.time() - age_days * DAY
    os.utime(path, (mtime, mtime))


def tree(root: Path) -> dict[bytes, bytes]:
    """Every regular file under ``root`` (relative bytes path) with its content."""
    found: dict[bytes, bytes] = {}
    base = os.fsencode(root)
    for directory, _, names in os.walk(base):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, base)] = handle.read()
    return found


@dataclass(frozen=True)
class PtyResult:
    code: int
    output: bytes
    stderr: bytes


def run_in_pty(*args: str | bytes, env: Mapping[str, str] | None = None, timeout: float = 60) -> PtyResult:
    """Run the installed ``datagc`` with stdout on a pseudo-terminal (its rich view); stderr captured."""
    master, slave = pty.openpty()
    process = subprocess.Popen([DATAGC, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                               env=clean_env({"COLUMNS": "120", "TERM": "xterm", **(env or {})}))
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return PtyResult(process.returncode, bytes(output), stderr)


@dataclass
class Origin:
    """One loopback HTTP server and the requests it received."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)


Answer = Callable[[BaseHTTPRequestHandler, "Origin"], None]


@contextlib.contextmanager
def http_origin(answer: Answer) -> Iterator[Origin]:
    """A server on 127.0.0.1 (only loopback) that records each request and lets ``answer`` reply."""
    origin = Origin("")

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            origin.requests.append((self.command, self.path))
            with contextlib.suppress(OSError):
                answer(self, origin)

        do_HEAD = do_GET = handle_one

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    origin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def answer_with(status: int, length: int | None = None, location: str | None = None) -> Answer:
    def answer(handler: BaseHTTPRequestHandler, origin: Origin) -> None:
        handler.send_response(status)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        if location is not None:
            handler.send_header("Location", location)
        handler.end_headers()

    return answer
