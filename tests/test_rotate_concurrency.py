"""Rotation while the service writes: every event appended during a rotation ends up in the new log exactly once.

Writers are real processes appending the way the service does (open with
O_APPEND, write one line, close), while the rotate pass runs again and again;
lines caught half-written, and writers that keep the log open. Each writer's
order, under three writers and on every filesystem, is in test_rotate_order.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from datagc import tailcopy
from datagc.exitcodes import Exit
from tests.rotate_support import context, leftovers, rotate_config
from tests.steps import error, notes, run

WRITER = r"""
import os, sys, time
path, writer, count, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "big"
for seq in range(count):
    pad = 256 * 1024 if big and seq % 40 == 39 else seq % 97  # a big line can be seen half-written
    line = b'{"w":%d,"seq":%d,"pad":"%s"}\n' % (writer, seq, b"x" * pad)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line)  # one write per line, as Node's fs.appendFile does
    os.close(fd)
    time.sleep(0.00005)  # keep writing while the rotations run
"""

HOLDER = r"""
import os, sys, time
path, hold, line = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode() + b"\n"
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(fd, line[:len(line) // 2])  # mid-append: half a line, then a pause
print("open", flush=True)
time.sleep(hold)
os.write(fd, line[len(line) // 2:])
os.close(fd)
"""

LINE = re.compile(rb'\{"w":(\d+),"seq":(\d+),"pad":"(x*)"\}')


def start_writers(log: Path, writers: int, count: int, big: bool = False) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(writer), str(count), "big" if big else "small"])
        for writer in range(writers)
    ]


def pad_of(seq: int, big: bool) -> int:
    return 256 * 1024 if big and seq % 40 == 39 else seq % 97


@dataclass(frozen=True)
class Generation:
    """One inode of the log, all it ever held (read through a descriptor taken before its rotation), and what the
    rotation that replaced it said (its writer_order and notes)."""

    content: bytes
    order: str
    notes: list[str]


def rotate_while_writing(root: Path, writers: list[subprocess.Popen[bytes]],
                         max_bytes: str = "96KiB") -> list[Generation]:
    """Run the rotate pass until the writers are done (and once more); return each rotated generation of the log."""
    config = rotate_config(root, max_bytes=max_bytes, keep_lines=200)
    generations = []
    with context(root, config) as ctx:
        while True:
            done = all(writer.poll() is not None for writer in writers)
            old = os.open(root / "events.jsonl", os.O_RDONLY)
            try:
                step = run("rotate", ctx)
                assert step.status in ("ok", "skipped"), error(step)
                if step.actions:
                    order = step.details["writer_order"]
                    assert isinstance(order, dict)
                    generations.append(Generation(os.pread(old, os.fstat(old).st_size, 0),
                                                  order["events.jsonl"], notes(step)))
            finally:
                os.close(old)
            if done:
                break
    assert all(writer.returncode == 0 for writer in writers)
    return generations


def numbers(content: bytes, big: bool) -> dict[int, list[int]]:
    """Each writer's numbers in the order their lines appear; every line must be whole."""
    assert content == b"" or content.endswith(b"\n"), f"ends in a torn line: {content[-120:]!r}"
    seen: dict[int, list[int]] = defaultdict(list)
    for line in content.split(b"\n")[:-1]:
        match = LINE.fullmatch(line)
        assert match, f"torn or glued line: {line[:120]!r}"
        writer, seq = int(match.group(1)), int(match.group(2))
        assert len(match.group(3)) == pad_of(seq, big), f"line of writer {writer} #{seq} is damaged"
        seen[writer].append(seq)
    return seen


def check_generations(generations: list[Generation], final: bytes, writers: int, count: int, big: bool) -> None:
    """Every line whole; together the generations hold each number of each writer; inside a generation, each
    writer's numbers follow one another (order and nothing lost there) unless the rotation that filled it
    reported that order could not be kept."""
    every: dict[int, set[int]] = defaultdict(set)
    for index, content in enumerate([generation.content for generation in generations] + [final]):
        ordered = index == 0 or generations[index - 1].order == "kept"
        why = "" if index == 0 else f" (after a rotation with notes {generations[index - 1].notes})"
        for writer, seqs in numbers(content, big).items():
            gaps = [(a, b) for a, b in itertools.pairwise(seqs if ordered else sorted(seqs)) if b != a + 1]
            assert not gaps, f"generation {index}, writer {writer}: out of order or missing: {gaps[:5]}{why}"
            every[writer] |= set(seqs)
    for writer in range(writers):
        lost = sorted(set(range(count)) - every[writer])
        notes_seen = [generation.notes for generation in generations if generation.notes]
        assert not lost, f"writer {writer}: {len(lost)} lines lost, e.g. {lost[:5]}; rotation notes: {notes_seen}"


def test_big_lines_caught_mid_append_are_never_split(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    writers, count = 2, 2000
    generations = rotate_while_writing(tmp_path, start_writers(log, writers, count, big=True), max_bytes="4MiB")
    assert len(generations) >= 2
    check_generations(generations, log.read_bytes(), writers, count, big=True)
    assert leftovers(tmp_path) == []


def start_holder(log: Path, hold: float, line: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(log), str(hold), line],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    return holder


def test_a_line_finished_in_the_old_log_after_the_rename_is_carried_over_whole(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(b"old %06d\n" % i for i in range(100_000)))
    holder = start_holder(log, 0.3, "late line")  # "late " is in the log, "line\n" comes after the rename
    with context(tmp_path, rotate_config(tmp_path)) as ctx:
        rotation = tailcopy.rotate_path(ctx.data_dir, "events.jsonl", 10, 4096, max_wait=5.0, order_wait=5.0)
    assert holder.wait(5) == 0
    assert log.read_bytes() == b"".join(b"old %06d\n" % i for i in range(99_990, 100_000)) + b"late line\n"
    assert rotation.cut.partial_bytes == len(b"late ")
    assert (rotation.carried_bytes, rotation.writer_lingered) == (len(b"line\n"), False)
    assert rotation.order_risk is None  # writers were held off until the late line was in


APPENDER = r"""
import os, sys, time
path, worst = sys.argv[1], 0.0
while not os.path.exists(path + ".stop"):
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"appended\n")
    os.close(fd)
    worst = max(worst, time.monotonic() - started)
    time.sleep(0.01)
print(worst)
"""


def test_a_writer_that_keeps_the_old_log_open_is_reported_and_others_are_let_in(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(b"old %06d\n" % i for i in range(100_000)))
    holder = start_holder(log, 30, "too late")
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        with context(tmp_path, rotate_config(tmp_path, max_bytes="256KiB", keep_lines=10)) as ctx:
            step = run("rotate", ctx)
        # the holder keeps the old log open 30 s: the rotation gave up on it (after MAX_WAIT_S) long before that;
        # the bound leaves a loaded machine's fsyncs room
        assert time.monotonic() - started < 15
    finally:
        holder.kill()
        holder.wait()
        log.with_name(log.name + ".stop").touch()
        worst = float(appender.communicate(timeout=60)[0])
    assert step.flags == Exit.ROTATED and step.status == "ok"
    kept = b"".join(b"old %06d\n" % i for i in range(99_990, 100_000))
    content = log.read_bytes()
    # the holder's half line is carried over as it is: the appender's next line completes it
    assert content.startswith(kept) and content.count(b"too ") == 1
    assert any("still held the old log open for writing" in note for note in notes(step))
    assert step.details["writer_order"] == {"events.jsonl": "held-open"}
    assert any("writers were let in after 0.5s" in note for note in notes(step))
    # held off for ORDER_WAIT_S, not for the whole MAX_WAIT_S the holder is waited for
    assert worst < tailcopy.MAX_WAIT_S, worst
    assert step.reclaimed_bytes == 0
