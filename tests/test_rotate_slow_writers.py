"""Rotation under writers that a loaded machine is slow to run: none of their lines is lost (SPEC §7 rule 5).

A writer that opened the old log just before the rename and was then not
scheduled for a while holds the old log open past ``max_wait``. Given up on,
its line would go to the old, unlinked file: datagc tells it from a writer
that keeps the log open for good by its state in /proc (runnable or in disk
sleep: busy) and waits for it. Without leases, the quiet period alone can't
tell a slow writer from a finished one: /proc's open descriptors do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagc import tailcopy
from datagc.exitcodes import Exit
from tests.helpers import DATAGC, clean_env
from tests.rotate_support import context, rotate_config
from tests.test_rotate_order import NO_LEASES

#: Opens the log, appends half a line, says so, waits for the rotation's rename (so that a slow start of datagc
#: can't make it finish first), then spins (busy: runnable) or sleeps, appends the rest, closes.
SLOW = r"""
import os, sys, time
path, how, seconds, line = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].encode() + b"\n"
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(fd, line[:len(line) // 2])
print("open", flush=True)
while os.stat(path).st_ino == os.fstat(fd).st_ino:
    time.sleep(0.001)
until = time.monotonic() + seconds
if how == "spin":
    while time.monotonic() < until:
        pass
else:
    time.sleep(seconds)
os.write(fd, line[len(line) // 2:])
os.close(fd)
"""

OLD = b"".join(b"old %06d\n" % i for i in range(100_000))
KEPT = b"".join(b"old %06d\n" % i for i in range(99_990, 100_000))


def start_slow(log: Path, how: str, seconds: float, line: str) -> subprocess.Popen[str]:
    writer = subprocess.Popen([sys.executable, "-c", SLOW, str(log), how, str(seconds), line],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline() == "open\n"
    return writer


def test_a_writer_still_busy_past_max_wait_is_waited_for_and_its_line_carried(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(OLD)
    writer = start_slow(log, "spin", 1.5, "starved line")  # five times max_wait, runnable all along
    with context(tmp_path, rotate_config(tmp_path)) as ctx:
        rotation = tailcopy.rotate_path(ctx.data_dir, "events.jsonl", 10, 4096, max_wait=0.3, order_wait=0.2)
    assert writer.wait(60) == 0
    assert log.read_bytes() == KEPT + b"starved line\n"
    assert rotation.rotated and not rotation.writer_lingered and rotation.uncarried_bytes == 0
    assert rotation.order_risk == "held-open"  # the other writers were let in after order_wait


def test_a_writer_asleep_with_the_old_log_open_is_still_given_up_on_after_max_wait(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(OLD)
    writer = start_slow(log, "sleep", 60, "too late")
    try:
        with context(tmp_path, rotate_config(tmp_path)) as ctx:
            rotation = tailcopy.rotate_path(ctx.data_dir, "events.jsonl", 10, 4096, max_wait=0.3, order_wait=0.2)
    finally:
        writer.kill()
        writer.wait()
    assert rotation.writer_lingered and rotation.order_risk == "held-open"
    assert log.read_bytes() == KEPT + b"too "


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the seccomp filter refusing F_SETLEASE is for x86_64")
def test_without_leases_a_writer_slower_than_the_quiet_period_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(OLD)
    writer = start_slow(log, "sleep", 0.5, "slow line")  # five times the quiet period, within max_wait
    result = subprocess.run(
        [sys.executable, "-c", NO_LEASES, DATAGC, "rotate", "--data-dir", str(tmp_path), "--max-bytes", "256KiB",
         "--keep-lines", "10"], capture_output=True, text=True, env=clean_env(), timeout=120, check=False)
    assert writer.wait(60) == 0
    assert result.returncode == Exit.ROTATED, result.stderr
    assert log.read_bytes() == KEPT + b"slow line\n"
