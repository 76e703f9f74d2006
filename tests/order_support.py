"""Three writers appending by path as fast as they can while a log is rotated again and again, and the check
that each writer's lines stay complete and in order (SPEC §7 rules 5 and 15).

The writers are the service's two ways and Python's: Node's ``fs.appendFileSync`` and ``fs.appendFile`` (each
call opens the path with O_APPEND, writes, closes) and ``open``/``write``/``close``. Each appends numbered lines
``{"w":W,"seq":N,"pad":"xx…"}`` until a stop file appears, then prints how many it wrote.

Every generation of the log (each inode, read in full through a descriptor taken before it was rotated away)
is checked: per writer its numbers are consecutive (so none is out of order, lost inside the generation or
doubled), everything at or after the rotation's cut is in the next generation, and together the generations
hold every number each writer wrote, from 0 to its last.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

NODE_SYNC = r"""
const fs = require("fs");
const [path, w, stop] = process.argv.slice(1);
let seq = 0;
for (;;) {
  if (seq % 32 === 0 && fs.existsSync(stop)) break;
  fs.appendFileSync(path, `{"w":${w},"seq":${seq},"pad":"${"x".repeat(seq % 97)}"}\n`);
  seq++;
}
process.stdout.write(String(seq));
"""

NODE_ASYNC = r"""
const fs = require("fs");
const [path, w, stop] = process.argv.slice(1);
let seq = 0;
function next() {
  if (seq % 32 === 0 && fs.existsSync(stop)) { process.stdout.write(String(seq)); return; }
  fs.appendFile(path, `{"w":${w},"seq":${seq},"pad":"${"x".repeat(seq % 97)}"}\n`, (error) => {
    if (error) throw error;
    seq++;
    next();
  });
}
next();
"""

PYTHON = r"""
import os, sys
path, w, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seq = 0
while not (seq % 32 == 0 and os.path.exists(stop)):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'{"w":%d,"seq":%d,"pad":"%s"}\n' % (w, seq, b"x" * (seq % 97)))
    os.close(fd)
    seq += 1
print(seq, end="")
"""

LINE = re.compile(rb'\{"w":(\d+),"seq":(\d+),"pad":"(x*)"\}')
#: how long to wait for the writers to get going or to stop (a loaded machine is slow, never wrong)
PATIENCE_S = 60.0


def writer_commands() -> list[list[str]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the service's own writer (fs.appendFile) can't be run")
    return [[node, "-e", NODE_SYNC], [node, "-e", NODE_ASYNC], [sys.executable, "-c", PYTHON]]


class Writers:
    """The three writers, appending to ``log`` until :meth:`stop`."""

    def __init__(self, log: Path, stop_file: Path) -> None:
        self.stop_file = stop_file
        self.processes = [
            subprocess.Popen([*command, str(log), str(writer), str(stop_file)], stdout=subprocess.PIPE)
            for writer, command in enumerate(writer_commands())
        ]

    def stop(self) -> list[int]:
        """Stop them; how many lines each wrote."""
        self.stop_file.touch()
        counts = []
        for writer, process in enumerate(self.processes):
            out, _ = process.communicate(timeout=PATIENCE_S)
            assert process.returncode == 0, f"writer {writer} failed"
            counts.append(int(out))
        return counts

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Generation:
    """One inode of the log: all it ever held, where its rotation cut it, and whether order was promised."""

    content: bytes
    cut_start: int
    ordered: bool


#: rotates the log once; returns (the cut's start offset, whether each writer's order was promised)
RotateOnce = Callable[[], tuple[int, bool]]


def rotate_under_writers(log: Path, rotations: int, rotate_once: RotateOnce, min_bytes: int,
                         pause: float = 0.2) -> tuple[list[Generation], bytes, list[int]]:
    """Rotate ``log`` ``rotations`` times while the three writers append, each time after it grew past
    ``min_bytes`` and ``pause`` seconds; returns the rotated generations, the final log and the writers' counts."""
    log.write_bytes(b"")
    stop_file = log.with_name("stop-writers")
    stop_file.unlink(missing_ok=True)
    writers = Writers(log, stop_file)
    generations = []
    try:
        for _ in range(rotations):
            _wait_for_size(log, min_bytes)
            time.sleep(pause)
            old = os.open(log, os.O_RDONLY)  # this inode, to read all it ever held once rotated away
            try:
                start, ordered = rotate_once()
                generations.append(Generation(_read_all(old), start, ordered))
            finally:
                os.close(old)
        counts = writers.stop()
    finally:
        writers.kill()
    return generations, log.read_bytes(), counts


def _wait_for_size(log: Path, size: int) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while log.stat().st_size <= size:
        assert time.monotonic() < deadline, f"the writers did not write {size} bytes in {PATIENCE_S:g}s"
        time.sleep(0.01)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)


def numbers(content: bytes) -> dict[int, list[int]]:
    """Each writer's numbers in the order their lines appear; every line must be whole."""
    assert content == b"" or content.endswith(b"\n"), f"ends in a torn line: {content[-120:]!r}"
    seen: dict[int, list[int]] = defaultdict(list)
    for line in content.split(b"\n")[:-1]:
        match = LINE.fullmatch(line)
        assert match, f"torn or glued line: {line[:120]!r}"
        writer, seq = int(match.group(1)), int(match.group(2))
        assert len(match.group(3)) == seq % 97, f"line of writer {writer} #{seq} is damaged"
        seen[writer].append(seq)
    return seen


def check_order_and_completeness(generations: list[Generation], final: bytes, counts: list[int],
                                 check_order: bool = True) -> None:
    """The checks of the module doc; with ``check_order`` False (no order promised), order is not required."""
    contents = [generation.content for generation in generations] + [final]
    runs: dict[int, list[list[int]]] = defaultdict(list)
    for index, content in enumerate(contents):
        for writer, seqs in numbers(content).items():
            ordered = check_order and (index == 0 or generations[index - 1].ordered)
            if ordered:
                gaps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
                assert not gaps, f"generation {index}, writer {writer}: out of order or missing: {gaps[:5]}"
            else:
                assert len(seqs) == len(set(seqs)), f"generation {index}, writer {writer}: a line appears twice"
                assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1)), \
                    f"generation {index}, writer {writer}: lines lost"
            runs[writer].append(sorted(seqs))
    for index, generation in enumerate(generations):
        carried = generation.content[generation.cut_start:]
        following = contents[index + 1]
        if generation.ordered:  # nothing got into the new log before the old one's last line
            assert following.startswith(carried), f"generation {index + 1} does not start with the kept tail"
        nxt = numbers(following)
        for writer, seqs in numbers(carried).items():
            missing = set(seqs) - set(nxt.get(writer, []))
            assert not missing, f"writer {writer}: lines past generation {index}'s cut lost: {sorted(missing)[:5]}"
    for writer, count in enumerate(counts):
        every = set().union(*map(set, runs[writer])) if runs[writer] else set()
        assert every == set(range(count)), f"writer {writer}: {len(set(range(count)) - every)} lines lost"
