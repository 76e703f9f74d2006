"""No mount is crossed, even one that appears while a pass runs (SPEC §7 rule 13), attacked.

A bind mount of DATA_DIR's own filesystem has the same ``st_dev``, and the
mount list read at start-up doesn't know it: only the mount id of each
directory, checked as it is entered, keeps the walk out of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc import mountid
from datagc.exitcodes import Exit
from datagc.safety.datadir import DataDir
from datagc.safety.walk import FILE, MOUNT, walk
from tests.helpers import DATAGC, clean_env
from tests.sweep_support import write_file

PRECIOUS = [f"precious-{index}.png" for index in range(5)]


@contextlib.contextmanager
def bind(source: Path, target: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    if not mountid.can_tell():
        pytest.skip("this system gives no mount ids (statx STATX_MNT_ID, /proc/self/fdinfo)")
    result = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        pytest.skip(f"mount --bind was refused: {result.stderr.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def precious(tmp_path: Path) -> Path:
    """Old files outside DATA_DIR, on the same filesystem: what a sweep must never reach."""
    now = time.time()
    for name in PRECIOUS:
        write_file(tmp_path / "precious" / name, 4096, 60, now=now)
    return tmp_path / "precious"


@contextlib.contextmanager
def holding_the_lock(root: Path, command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``datagc`` running ``command`` on ``root``, yielded once it holds the data directory's lock (its start-up
    mount list is read by then); killed on the way out if it is still running."""
    lock = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    process = subprocess.Popen([DATAGC, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
            except BlockingIOError:
                break
            assert process.poll() is None and time.monotonic() < deadline, "datagc never took the lock"
            time.sleep(0.001)
        yield process
    finally:
        os.close(lock)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_walk_does_not_enter_a_bind_mount_made_after_it_started(tmp_path: Path) -> None:
    root = tmp_path / "data"
    now = time.time()
    for letter in "abcdefgh":
        write_file(root / "images" / letter / "old.png", 100, 30, now=now)
    source = precious(tmp_path)
    with DataDir(root) as data_dir:  # the start-up mount list is read here: no mount yet
        entries = walk(data_dir, "images")
        seen: list[tuple[str, str, str]] = []
        for kind, directory, name, _ in entries:
            seen.append((kind, directory, name))
            if kind == FILE:
                break  # inside the first subdirectory: the others are listed, not entered yet
        entered = {directory for _, directory, _ in seen}
        target = next(f"images/{letter}" for letter in "hgfedcba" if f"images/{letter}" not in entered)
        with bind(source, root / target):
            assert os.stat(root / target).st_dev == data_dir.dev  # st_dev can't tell
            rest = [(kind, directory, name) for kind, directory, name, _ in entries]
    assert not [entry for entry in rest if entry[1] == target], "the walk entered the bind mount"
    head, _, name = target.rpartition("/")
    assert (MOUNT, head, name) in rest


def test_a_sweep_never_deletes_under_a_bind_mount_made_while_it_walks(tmp_path: Path) -> None:
    """A real ``datagc sweep`` walking thousands of directories; once it holds the lock, the precious
    directory is bind-mounted into a media directory it walks last."""
    root = tmp_path / "data"
    now = time.time()
    for index in range(3000):
        write_file(root / "images" / f"d{index:04d}" / "old.png", 10, 30, now=now)
    (root / "voice" / "late").mkdir(parents=True)
    (root / "posts.json").write_text("[]")
    source = precious(tmp_path)
    command = ["sweep", "--data-dir", str(root), "--cdn", "--json"]
    with holding_the_lock(root, command, clean_env()) as process, bind(source, root / "voice" / "late"):
        _, err = process.communicate(timeout=120)
        assert sorted(os.listdir(root / "voice" / "late")) == PRECIOUS
    assert process.returncode == Exit.SWEPT, err
    assert sorted(os.listdir(source)) == PRECIOUS
    assert not list((root / "images").rglob("*.png"))  # the walk itself went on


@pytest.mark.parametrize("walk_env", [{"DATAGC_PARALLEL_THRESHOLD": str(10**9)},
                                      {"DATAGC_PARALLEL_THRESHOLD": "0", "DATAGC_WALK_WORKERS": "2"}],
                         ids=["serial", "forked-workers"])
def test_a_bind_mount_made_deep_in_the_tree_mid_pass_is_not_entered(tmp_path: Path, walk_env: dict[str, str]) -> None:
    """The mount appears at depth 3 of a media dir (``voice/a/b/late``): below the depth where a split walk's
    workers stop sharing directories and each owns a subtree whole. Neither walk enters it."""
    root = tmp_path / "data"
    now = time.time()
    for index in range(1500):
        write_file(root / "images" / f"d{index:04d}" / "e" / "old.png", 10, 30, now=now)
    write_file(root / "voice" / "a" / "b" / "old.mp3", 10, 30, now=now)
    (root / "voice" / "a" / "b" / "late").mkdir()
    (root / "posts.json").write_text("[]")
    source = precious(tmp_path)
    command = ["pressure", "--data-dir", str(root), "--threshold", "0.000001", "--target", "0.000001",
               "--min-age", "0s", "--json"]
    late = root / "voice" / "a" / "b" / "late"
    with holding_the_lock(root, command, {**clean_env(), **walk_env}) as process, bind(source, late):
        out, err = process.communicate(timeout=120)
        assert sorted(os.listdir(late)) == PRECIOUS
    assert sorted(os.listdir(source)) == PRECIOUS, out
    assert not (root / "voice" / "a" / "b" / "old.mp3").exists(), out  # the walk itself went on
    assert not list((root / "images").rglob("*.png")), err
