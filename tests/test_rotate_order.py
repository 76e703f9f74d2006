"""Rotation keeps each writer's order (SPEC §7 rule 15) and loses nothing (rule 5), on every filesystem the
service runs on, with and without file leases.

Three real writers (Node ``fs.appendFileSync``, Node ``fs.appendFile``, Python open-append-close) append as
fast as they can while the log is rotated every 200 ms, a fixed number of times; see ``tests/order_support``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import orjson
import pytest

from datagc import tailcopy
from datagc.exitcodes import Exit
from datagc.safety.datadir import DataDir
from tests.helpers import DATAGC, clean_env
from tests.mounts import MiB, loop_ext4, loop_xfs, overlay, tmpfs
from tests.order_support import RotateOnce, check_order_and_completeness, rotate_under_writers

pytestmark = pytest.mark.mount

KEEP_LINES = 400
#: rotate once the log is past this (a few thousand lines: the writers add that in well under 200 ms)
MIN_BYTES = 128 * 1024
ROTATIONS = 6
KEEP_BYTES = MIN_BYTES // 2


def in_process(root: Path) -> RotateOnce:
    """One rotation through :func:`tailcopy.rotate_path`, which must have kept every writer's order."""
    def once() -> tuple[int, bool]:
        with DataDir(root) as data_dir:
            # generous bounds: a loaded machine may deschedule a writer that has the old log open
            rotation = tailcopy.rotate_path(data_dir, "events.jsonl", KEEP_LINES, KEEP_BYTES,
                                            max_wait=10, order_wait=10)
        assert rotation.rotated and rotation.carry_error is None and not rotation.writer_lingered
        assert rotation.order_risk is None and rotation.lease_error is None
        return rotation.cut.start, True
    return once


#: Rotates DATA_DIR's events.jsonl for each line read on stdin; answers with what the rotation did, as JSON.
DRIVER = r"""
import json, sys
from pathlib import Path
from datagc import tailcopy
from datagc.safety.datadir import DataDir
root, keep_lines, keep_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for _ in sys.stdin:
    with DataDir(root) as data_dir:
        r = tailcopy.rotate_path(data_dir, "events.jsonl", keep_lines, keep_bytes)
    print(json.dumps({"start": r.cut.start, "rotated": r.rotated, "order": r.order_risk or "kept",
                      "lease_error": r.lease_error, "carry_error": r.carry_error}), flush=True)
"""


@contextlib.contextmanager
def driven(root: Path, wrapper: list[str], orders: list[str]) -> Iterator[RotateOnce]:
    """Rotations made by a process started under ``wrapper`` (fewer capabilities, a seccomp filter)."""
    driver = subprocess.Popen(
        [*wrapper, sys.executable, "-c", DRIVER, str(root), str(KEEP_LINES), str(KEEP_BYTES)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_env())
    assert driver.stdin is not None and driver.stdout is not None
    stdin, stdout = driver.stdin, driver.stdout

    def once() -> tuple[int, bool]:
        stdin.write("rotate\n")
        stdin.flush()
        answer = orjson.loads(stdout.readline())
        assert answer["rotated"] and answer["carry_error"] is None, answer
        orders.append(answer["order"])
        return int(answer["start"]), answer["order"] == "kept"

    try:
        yield once
    finally:
        stdin.close()
        assert driver.wait(timeout=120) == 0


Filesystem = Callable[[int], AbstractContextManager[Path]]


@pytest.mark.parametrize(("filesystem", "size", "repetitions"), [
    (tmpfs, 256 * MiB, 2), (loop_ext4, 256 * MiB, 1), (loop_xfs, 320 * MiB, 1), (overlay, 256 * MiB, 1),
], ids=["tmpfs", "ext4", "xfs", "overlayfs"])
def test_three_writers_keep_their_order_across_rotations(filesystem: Filesystem, size: int, repetitions: int) -> None:
    with filesystem(size) as root:
        for _ in range(repetitions):
            generations, final, counts = rotate_under_writers(root / "events.jsonl", ROTATIONS, in_process(root),
                                                              MIN_BYTES)
            check_order_and_completeness(generations, final, counts)
            assert min(counts) > 0


def test_without_cap_lease_on_another_owners_log_order_is_still_kept(tmp_path: Path) -> None:
    """A datagc without CAP_LEASE (a container's default) rotating a log another user owns.

    The new log's lease is taken while datagc still owns the temp, so writers are still held off; the old
    log can't be leased (another owner), so a quiet period tells when it is done.
    """
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: can't drop CAP_LEASE")
    log = tmp_path / "events.jsonl"
    log.touch()
    os.chown(log, 1000, 1000)
    orders: list[str] = []
    with driven(tmp_path, ["setpriv", "--inh-caps=-lease", "--bounding-set=-lease"], orders) as rotate_once:
        generations, final, counts = rotate_under_writers(log, ROTATIONS, rotate_once, MIN_BYTES)
    check_order_and_completeness(generations, final, counts)
    assert set(orders) <= {"kept", "held-open"} and orders.count("kept") >= ROTATIONS - 1, orders
    assert (log.stat().st_uid, log.stat().st_gid) == (1000, 1000)


#: F_SETLEASE refused with EINVAL, as on a filesystem without leases: a seccomp filter, then exec.
NO_LEASES = r"""
import ctypes, os, struct, sys
F_SETLEASE, NR_FCNTL, AUDIT_ARCH_X86_64, EINVAL = 1024, 72, 0xC000003E, 22
def op(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
LD, JEQ, RET = 0x20, 0x15, 0x06
prog = b"".join([
    op(LD, 4), op(JEQ, AUDIT_ARCH_X86_64, 0, 5),   # seccomp_data.arch
    op(LD, 0), op(JEQ, NR_FCNTL, 0, 3),            # .nr
    op(LD, 24), op(JEQ, F_SETLEASE, 0, 1),         # low half of .args[1]
    op(RET, 0x00050000 | EINVAL),                  # SECCOMP_RET_ERRNO
    op(RET, 0x7FFF0000),                           # SECCOMP_RET_ALLOW
])
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_without_leases_nothing_is_lost_and_the_report_says_order_is_not_guaranteed(tmp_path: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter that refuses F_SETLEASE is written for x86_64")
    orders: list[str] = []
    with driven(tmp_path, [sys.executable, "-c", NO_LEASES], orders) as rotate_once:
        generations, final, counts = rotate_under_writers(tmp_path / "events.jsonl", ROTATIONS, rotate_once,
                                                          MIN_BYTES)
    check_order_and_completeness(generations, final, counts, check_order=False)
    assert orders == ["no-lease"] * ROTATIONS


def test_the_report_names_a_rotation_without_leases(tmp_path: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter that refuses F_SETLEASE is written for x86_64")
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(b"old %06d\n" % i for i in range(100_000)))
    result = subprocess.run(
        [sys.executable, "-c", NO_LEASES, DATAGC, "rotate", "--data-dir", str(tmp_path), "--max-bytes", "256KiB",
         "--keep-lines", "10"], capture_output=True, text=True, env=clean_env(), timeout=120, check=False)
    assert result.returncode == Exit.ROTATED, result.stderr
    assert "events.jsonl: the new log could not be leased (Invalid argument)" in result.stdout + result.stderr
    assert log.read_bytes() == b"".join(b"old %06d\n" % i for i in range(99_990, 100_000))


@pytest.mark.parametrize("leases", [True, False], ids=["lease", "no-lease"])
def test_the_json_report_says_whether_each_writers_order_was_kept(tmp_path: Path, leases: bool) -> None:
    name = os.fsdecode(b"ev\xffents.jsonl")  # a hostile name: the report stays valid UTF-8
    log = tmp_path / name
    log.write_bytes(b"".join(b"old %06d\n" % i for i in range(100_000)))
    wrapper = [] if leases else [sys.executable, "-c", NO_LEASES]
    result = subprocess.run(
        [*wrapper, DATAGC, "rotate", "--json", "--data-dir", str(tmp_path), "--max-bytes", "256KiB",
         "--keep-lines", "10"], capture_output=True, text=True, env=clean_env({"DATAGC_ROTATE_LOGS": name}),
        timeout=120, check=False)
    assert result.returncode == Exit.ROTATED, result.stderr
    step = orjson.loads(result.stdout)["steps"][0]
    assert step["writer_order"] == {"ev\\xffents.jsonl": "kept" if leases else "no-lease"}
    assert any("could not be leased" in note for note in step["notes"]) != leases
