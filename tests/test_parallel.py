"""The walk split across forked workers, and the unlinks across worker processes: the same answers and the same safety
rules as the serial paths, on real trees with symlinks, FIFOs, hard links and real mounts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc import executor, parallel
from datagc.facts import FileIdentity
from datagc.model import Action, Delete, StepReport
from datagc.safety.datadir import DataDir, join_path
from datagc.safety.unlink import reclaimable_bytes
from datagc.safety.walk import MOUNT, SPECIAL, Share, WalkEntry, count_entries, walk
from tests.helpers import run_datagc
from tests.mounts import MiB, bind, loop_ext4, tmpfs
from tests.sweep_support import NOW, context, make_config, write_file

Seen = tuple[str, str, str]


def build(root: Path, outside: Path) -> None:
    """Files at every depth (the shared levels and the owned ones), a wide flat directory, FIFOs, symlinks to a
    file and to a directory outside, and hard links across top-level entries."""
    outside.mkdir(parents=True)
    (outside / "precious.png").write_bytes(b"precious")
    for top in ("images", "voice", "videos"):
        for shard in range(3):
            for day in range(4):
                leaf = root / top / f"s{shard}" / f"d{day}" / "deep"
                leaf.mkdir(parents=True)
                for index in range(5):
                    (leaf.parent / f"{index}.bin").write_bytes(b"x" * (index + 1) * 700)
                    (leaf / f"{index}.bin").write_bytes(b"y" * (index + 1))
    flat = root / "images" / "flat"
    flat.mkdir()
    for index in range(300):
        (flat / f"{index}.png").write_bytes(b"z" * index)
    (root / "posts.json").write_text("[]")
    os.mkfifo(root / "images" / "s0" / "pipe")
    os.mkfifo(root / "voice" / "s1" / "d2" / "deep" / "pipe")
    (root / "images" / "s1" / "to-file.png").symlink_to(outside / "precious.png")
    (root / "videos" / "s2" / "d3" / "deep" / "to-dir").symlink_to(outside)
    (root / "to-outside").symlink_to(outside)
    os.link(root / "images" / "flat" / "299.png", root / "voice" / "s0" / "d0" / "linked.png")
    os.link(root / "images" / "flat" / "299.png", root / "videos" / "linked.png")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build(root, tmp_path / "outside")
    return root


def collect(entries: Iterator[WalkEntry], _: Share | None) -> list[Seen]:
    return [(kind, directory, name) for kind, directory, name, _st in entries]


def serial(root: Path, top: str = "") -> list[Seen]:
    with DataDir(root) as data_dir:
        return collect(walk(data_dir, top), None)


def split(root: Path, workers: int, monkeypatch: pytest.MonkeyPatch, top: str = "") -> tuple[list[Seen], list[str]]:
    """Every worker's entries (all of them, duplicates kept) and the errors reported."""
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "0")
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    errors: list[str] = []
    with DataDir(root) as data_dir:
        parts = parallel.fold_walk(data_dir, top, collect, lambda path, error: errors.append(path))
    assert len(parts) == workers
    return [entry for part in parts for entry in part], errors


def test_each_directory_descriptor_reads_from_its_own_offset(tree: Path) -> None:
    """Workers forked from one process list the top directory at once: a ``dup`` of DATA_DIR's descriptor would
    share one directory offset among them (each would see part of it, or all of it twice)."""
    with DataDir(tree) as data_dir:
        first, second = data_dir.open_dir(""), data_dir.open_dir("")
        try:
            with os.scandir(first) as entries:
                next(entries)  # reads the whole small directory: a shared offset would now be at its end
                assert sorted(entry.name for entry in os.scandir(second)) == sorted(os.listdir(tree))
        finally:
            os.close(first)
            os.close(second)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_every_entry_is_seen_by_exactly_one_worker(tree: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(5):  # each run splits the tree differently (hash seeds, scheduling)
        entries, errors = split(tree, workers, monkeypatch)
        assert Counter(entries) == Counter(serial(tree))  # nothing missed, nothing twice
    assert errors == []
    names = {name for _, _, name in entries}
    assert "precious.png" not in names  # no symlink followed
    assert (SPECIAL, "images/s0", "pipe") in entries


def test_workers_never_enter_a_mount_at_a_shared_or_an_owned_level(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmpfs at depth 1 (listed by every worker) and at depth 4 (inside one worker's subtree), and a bind mount
    of the same filesystem (same st_dev: only the mount table tells) at depth 3: none is entered, each reported once."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "not-ours.png").write_bytes(b"keep")
    (tree / "mnt-shallow").mkdir()
    (tree / "images" / "s2" / "d1" / "deep" / "mnt-deep").mkdir()
    (tree / "voice" / "s2" / "bound").mkdir()
    with contextlib.ExitStack() as mounts:
        for point in (tree / "mnt-shallow", tree / "images" / "s2" / "d1" / "deep" / "mnt-deep"):
            mounts.enter_context(_tmpfs_on(point))
            (point / "inside.png").write_bytes(b"m")
        mounts.enter_context(bind(other, tree / "voice" / "s2" / "bound"))
        expected = serial(tree)
        for workers in (2, 3):
            entries, _ = split(tree, workers, monkeypatch)
            assert Counter(entries) == Counter(expected)
        mounted = sorted(join_path(directory, name) for kind, directory, name in entries if kind == MOUNT)
        assert mounted == ["images/s2/d1/deep/mnt-deep", "mnt-shallow", "voice/s2/bound"]
        assert not {"inside.png", "not-ours.png"} & {name for _, _, name in entries}


@contextlib.contextmanager
def _tmpfs_on(point: Path) -> Iterator[Path]:
    """A small tmpfs mounted on an existing directory of the tree (``bind`` of a fresh tmpfs)."""
    with tmpfs(1 * MiB) as scratch, bind(scratch, point):
        yield point


def test_a_top_that_cannot_be_opened_is_reported_once(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "videos/nowhere"
    entries, errors = split(tree, 3, monkeypatch, top=missing)
    assert entries == [] and errors == [missing]


def test_a_failing_worker_fails_the_walk_and_leaves_no_child(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fold(entries: Iterator[WalkEntry], share: Share | None) -> int:
        if share is not None and share.index == 1:
            raise ValueError("worker 1 broke")
        return sum(1 for _ in entries)

    monkeypatch.setenv(parallel.THRESHOLD_ENV, "0")
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    with DataDir(tree) as data_dir, pytest.raises(RuntimeError, match="worker 1 broke"):
        parallel.fold_walk(data_dir, "", fold)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every worker was reaped


def test_a_small_tree_is_walked_serially_and_the_probe_stops_at_its_limit(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(parallel.WORKERS_ENV, "4")
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "100000")
    with DataDir(tree) as data_dir:
        assert len(parallel.fold_walk(data_dir, "", collect)) == 1
        total = len(serial(tree))
        assert count_entries(data_dir, "", 10**9) == total  # symlinks counted, never followed
        assert 50 <= count_entries(data_dir, "", 50) < total
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "50")
    with DataDir(tree) as data_dir:
        assert len(parallel.fold_walk(data_dir, "", collect)) == 4



def test_a_cold_cache_gets_twice_as_many_workers_as_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe reads the disk only on a cold cache: a loop ext4 remounted (its caches gone with it) is walked
    by ``COLD_FACTOR`` workers per core for a fold that asks for them (audit's census), the same tree warm by one
    per core; a fold whose result grows with each share (pressure's victims) keeps one per core even cold, so
    its memory stays bounded. The answers are the same."""
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "200")
    cores = len(os.sched_getaffinity(0))
    with loop_ext4(16 * MiB) as point:
        for index in range(600):
            leaf = point / "images" / f"day-{index % 6}"
            leaf.mkdir(parents=True, exist_ok=True)
            (leaf / f"{index}.bin").write_bytes(b"x" * (index % 9 + 1))
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(point)], capture_output=True, text=True,
                                check=True).stdout.strip()
        image = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", "-l", source], capture_output=True,
                               text=True, check=True).stdout.strip()

        def remounted_cold() -> None:
            os.sync()
            subprocess.run(["umount", str(point)], check=True)
            subprocess.run(["mount", "-o", "loop", image, str(point)], check=True)

        remounted_cold()
        with DataDir(point) as data_dir:
            cold_growing = parallel.fold_walk(data_dir, "", collect)
        remounted_cold()
        with DataDir(point) as data_dir:
            cold = parallel.fold_walk(data_dir, "", collect, cold_workers=True)
            warm = parallel.fold_walk(data_dir, "", collect, cold_workers=True)
    assert len(cold) == min(cores * parallel.COLD_FACTOR, parallel.MAX_WORKERS)
    assert len(warm) == min(cores, parallel.MAX_WORKERS)
    assert len(cold_growing) == min(cores, parallel.MAX_WORKERS)
    assert sorted(entry for part in cold for entry in part) == sorted(entry for part in warm for entry in part)
    assert sorted(entry for part in cold_growing for entry in part) == sorted(entry for part in warm for entry in part)


def test_audit_answers_the_same_split_or_not(tree: Path) -> None:
    """Through the real CLI: the census, the largest files, the symlinks and mounts, and the hard-linked inode
    counted once, under its first path in path order, whichever worker saw which name."""
    serial_report = run_datagc("audit", "--json", "--data-dir", str(tree), env={parallel.WORKERS_ENV: "1"})
    reports = [run_datagc("audit", "--json", "--data-dir", str(tree),
                          env={parallel.THRESHOLD_ENV: "0", parallel.WORKERS_ENV: str(workers)})
               for workers in (2, 3)]
    expected = serial_report.json()
    for report in reports:
        assert report.code == serial_report.code
        answer = report.json()
        for volatile in ("disk", "unaccounted_bytes", "deleted_open", "notes", "limits"):
            answer.pop(volatile, None)
            expected.pop(volatile, None)
        assert answer == expected
    assert expected["files"] == 3 * 3 * 4 * 10 + 300 + 1  # the linked inode once
    breakdown = {entry["path"]: entry["files"] for entry in expected["breakdown"]}
    assert breakdown["images"] == 3 * 4 * 10 + 300 and breakdown["voice"] == breakdown["videos"] == 3 * 4 * 10


def test_parallel_unlinks_recheck_every_file_and_report_in_plan_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    paths = [f"images/d{index % 7}/{index}.png" for index in range(1500)]
    for path in paths:
        write_file(root / path, 1000, 9)
    plan: list[Action] = []
    for path in paths:
        st = (root / path).lstat()
        plan.append(Delete(path, reclaimable_bytes(st), "age", NOW - st.st_mtime, FileIdentity.of(st)))
    changed = set(paths[100::97])
    for path in changed:
        write_file(root / path, 1001, 9)  # another size: not the file planned
    (root / paths[5]).unlink()  # vanished: skipped silently
    monkeypatch.setenv(parallel.THRESHOLD_ENV, "0")
    step = StepReport("sweep")
    with context(root, make_config(root)) as ctx:
        executor.apply(ctx, plan, step)
    gone = [path for path in paths if path not in changed and path != paths[5]]
    assert [action.path for action in step.actions if isinstance(action, Delete)] == gone  # plan order
    assert [kept.path for kept in step.kept] == [path for path in paths if path in changed]
    assert all(not (root / path).exists() for path in gone)
    assert all((root / path).stat().st_size == 1001 for path in changed)


def test_pressure_chooses_the_same_victims_split_or_not() -> None:
    """Several hundred files of distinct ages, some referenced or shown on the CDN by the feed, some protected,
    one hard-linked across top-level entries: the split walk plans exactly what the serial one does."""
    now = time.time()
    with tmpfs(16 * MiB) as root:
        files = []
        for index in range(600):
            directory = ("images", "videos", "voice/old", "bid-images")[index % 4]
            name = f"cache-{index}.png" if index % 50 == 7 else f"{index}.bin"
            path = root / directory / f"day-{index % 9}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"m" * 3000)
            age = 2 * 86400 + (index * 7919 % 600) * 60
            os.utime(path, (now - age, now - age))
            files.append(path.relative_to(root).as_posix())
        os.link(root / files[3], root / "archive-linked.bin")
        posts = [{"id": f"p{i}", "imageUrl": f"/{files[i]}" if i % 2 else f"https://cdn.example.com/{files[i]}"}
                 for i in range(0, 600, 11)]
        (root / "posts.json").write_text(json.dumps(posts, indent=2))
        st = os.statvfs(root)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        target = (used - 150 * 4096) / (used + st.f_bavail * st.f_frsize)
        argv = ("pressure", "--dry-run", "--json", "--data-dir", str(root), "--threshold", f"{target:.9f}",
                "--target", f"{target:.9f}", "--min-age", "1d", "--cdn")

        def plan(env: dict[str, str]) -> tuple[int, list[dict[str, object]], list[object], list[object]]:
            result = run_datagc(*argv, env=env)
            step = result.json()["steps"][0]
            actions = [{key: value for key, value in action.items() if key != "age_seconds"}
                       for action in step["actions"]]  # the clock moves between runs
            facts = [step.get(key) for key in ("needed_bytes", "victims", "eligible", "spared", "holders")]
            return result.code, actions, sorted(step["kept"], key=str), facts

        serial_plan = plan({parallel.WORKERS_ENV: "1"})
        assert 100 < len(serial_plan[1]) < 300
        for workers in ("2", "3"):
            assert plan({parallel.THRESHOLD_ENV: "0", parallel.WORKERS_ENV: workers}) == serial_plan
