"""A stress check of rotation under writers (SPEC §7 rules 5 and 15), shaped unlike the other rotate tests.

The installed ``datagc rotate --json`` (a whole process each time, as cron runs it) rotates the log every
few hundred milliseconds while two Node writers (``fs.appendFile``, one line at a time) and a Python writer
(``open(path, "a")``, write, close) append lines of very different sizes: a few bytes, a few KiB, and lines
larger than a pipe buffer or many pages (up to ~320 KiB), about a thousand a second each (a busy service,
not a flood that would make the check itself slow), each line's payload derived from its number so any
damage shows. Checked in every repetition, for every generation of the log (each inode, read in full through
a descriptor taken before it was rotated away):

- every line whole and undamaged, the log ending on a line boundary, no temp file left;
- per writer, inside a generation, consecutive numbers (none out of order, lost or doubled) wherever the
  report said each writer's order was kept (``writer_order`` ``kept``); elsewhere no number twice;
- together, the generations hold every number each writer wrote, from 0 to its last.

No timing is asserted: a loaded machine makes it slower, never wrong.
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
from pathlib import Path

import orjson
import pytest

from datagc.exitcodes import Exit
from tests.helpers import DATAGC, clean_env
from tests.rotate_support import leftovers

#: the size of line ``n``'s payload: mostly small, every 7th a few KiB, every 37th past 64 KiB (up to ~320 KiB)
SIZE_JS = "(n % 37 === 36 ? 65537 + (n * 7919) % 262144 : n % 7 === 6 ? 4096 + (n * 131) % 8192 : n % 211)"
SIZE_PY = "(65537 + (n * 7919) % 262144 if n % 37 == 36 else 4096 + (n * 131) % 8192 if n % 7 == 6 else n % 211)"

NODE = r"""
const fs = require("fs");
const [path, w, stop] = process.argv.slice(1);
let n = 0;
function next() {
  if (fs.existsSync(stop)) { process.stdout.write(String(n)); return; }
  const d = String.fromCharCode(97 + n % 26).repeat(SIZE);
  fs.appendFile(path, `{"w":${w},"n":${n},"d":"${d}"}\n`, (error) => {
    if (error) throw error;
    n++;
    setTimeout(next, 1);
  });
}
next();
""".replace("SIZE", SIZE_JS)

PYTHON = r"""
import os, sys, time
path, w, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = 0
while not os.path.exists(stop):
    with open(path, "a", encoding="ascii") as log:
        log.write('{"w":%d,"n":%d,"d":"%s"}\n' % (w, n, chr(97 + n % 26) * SIZE))
    n += 1
    time.sleep(0.001)
print(n, end="")
""".replace("SIZE", SIZE_PY)

LINE = re.compile(rb'\{"w":(\d+),"n":(\d+),"d":"([a-z]*)"\}')
REPETITIONS = 3
ROTATIONS = 6
#: how long the writers append between two rotations
PAUSE_S = 0.3
#: waiting for a process: a loaded machine is slow, never wrong
PATIENCE_S = 120.0


def payload(n: int) -> bytes:
    size = 65537 + (n * 7919) % 262144 if n % 37 == 36 else 4096 + (n * 131) % 8192 if n % 7 == 6 else n % 211
    return bytes([97 + n % 26]) * size


def start_writers(log: Path, stop: Path) -> list[subprocess.Popen[bytes]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the service's own writer (fs.appendFile) can't be run")
    commands = [[node, "-e", NODE], [node, "-e", NODE], [sys.executable, "-c", PYTHON]]
    return [subprocess.Popen([*command, str(log), str(writer), str(stop)], stdout=subprocess.PIPE)
            for writer, command in enumerate(commands)]


def rotate(root: Path) -> tuple[int, str | None]:
    """One ``datagc rotate --json``: its exit status and the log's writer_order (None if it did not rotate)."""
    result = subprocess.run(
        [DATAGC, "rotate", "--json", "--data-dir", str(root), "--max-bytes", "1MiB", "--keep-lines", "300",
         "--keep-bytes", "768KiB"], capture_output=True, env=clean_env(), timeout=PATIENCE_S, check=False)
    assert result.returncode in (0, Exit.ROTATED), result.stderr.decode(errors="replace")
    step = orjson.loads(result.stdout)["steps"][0]
    return result.returncode, step.get("writer_order", {}).get("events.jsonl")


def numbers(content: bytes) -> dict[int, list[int]]:
    """Each writer's numbers in the order their lines appear; every line must be whole and undamaged."""
    assert content == b"" or content.endswith(b"\n"), f"ends in a torn line: {content[-80:]!r}"
    seen: dict[int, list[int]] = defaultdict(list)
    for line in content.split(b"\n")[:-1]:
        match = LINE.fullmatch(line)
        assert match, f"torn or glued line: {line[:80]!r}…{line[-40:]!r} ({len(line)} bytes)"
        writer, n = int(match.group(1)), int(match.group(2))
        assert match.group(3) == payload(n), f"line {n} of writer {writer} is damaged"
        seen[writer].append(n)
    return seen


def one_repetition(root: Path) -> list[str]:
    """Rotate under the writers ``ROTATIONS`` times and check every generation; the rotations' writer_order."""
    log = root / "events.jsonl"
    log.write_bytes(b"")
    stop = root / "stop"
    stop.unlink(missing_ok=True)
    writers = start_writers(log, stop)
    generations: list[tuple[bytes, str]] = []
    try:
        deadline = time.monotonic() + PATIENCE_S
        while len(generations) < ROTATIONS:
            assert time.monotonic() < deadline, f"only {len(generations)} rotations in {PATIENCE_S:g}s"
            time.sleep(PAUSE_S)
            old = os.open(log, os.O_RDONLY)  # this inode, to read all it ever held once rotated away
            try:
                code, order = rotate(root)
                if code == Exit.ROTATED:
                    assert order is not None
                    generations.append((os.pread(old, os.fstat(old).st_size, 0), order))
            finally:
                os.close(old)
        stop.touch()
        counts = []
        for index, writer in enumerate(writers):
            out, _ = writer.communicate(timeout=PATIENCE_S)
            assert writer.returncode == 0, f"writer {index} failed"
            counts.append(int(out))
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    check(generations, log.read_bytes(), counts)
    assert leftovers(root) == []
    return [order for _, order in generations]


def check(generations: list[tuple[bytes, str]], final: bytes, counts: list[int]) -> None:
    every: dict[int, set[int]] = defaultdict(set)
    contents = [content for content, _ in generations] + [final]
    for index, content in enumerate(contents):
        ordered = index == 0 or generations[index - 1][1] == "kept"
        for writer, seen in numbers(content).items():
            assert len(seen) == len(set(seen)), f"generation {index}, writer {writer}: a line appears twice"
            gaps = [(a, b) for a, b in itertools.pairwise(seen if ordered else sorted(seen)) if b != a + 1]
            assert not gaps, f"generation {index}, writer {writer}: out of order or missing: {gaps[:5]}"
            every[writer] |= set(seen)
    for writer, count in enumerate(counts):
        lost = sorted(set(range(count)) - every[writer])
        assert not lost, f"writer {writer}: {len(lost)} of {count} lines lost, e.g. {lost[:5]}"
        assert count > 0, f"writer {writer} wrote nothing"


def test_rotations_under_node_and_python_writers_of_mixed_line_sizes_keep_order_and_lose_nothing(
        tmp_path: Path) -> None:
    orders = []
    for repetition in range(REPETITIONS):
        root = tmp_path / f"r{repetition}"
        root.mkdir()
        orders += one_repetition(root)
    # order can only be given up when a writer held the old log open past 0.5 s: never for most rotations
    assert set(orders) <= {"kept", "held-open"} and orders.count("kept") > len(orders) // 2, orders
