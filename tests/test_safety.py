"""The safety primitives on real files: no symlink followed, no mount entered, re-check before unlink."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc.errors import DataDirError, LockHeld
from datagc.facts import FileIdentity
from datagc.safety.datadir import DataDir, join_path
from datagc.safety.disk import disk_usage
from datagc.safety.lock import lock_data_dir
from datagc.safety.rewrite import atomic_rewrite
from datagc.safety.unlink import CHANGED, UNLINKED, VANISHED, unlink_if_unchanged
from datagc.safety.walk import DIRECTORY, FILE, MOUNT, SYMLINK, iter_files, walk
from tests.mounts import MiB, tmpfs


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A data dir with media, and a directory outside it holding a precious file."""
    root = tmp_path / "data"
    outside = tmp_path / "outside"
    (root / "images" / "nested").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious.png").write_bytes(b"precious")
    (root / "images" / "a.png").write_bytes(b"a" * 10)
    (root / "images" / "nested" / "b.png").write_bytes(b"b" * 20)
    (root / "images" / "link-to-file.png").symlink_to(outside / "precious.png")
    (root / "images" / "link-to-dir").symlink_to(outside)
    yield root, outside


def walked(root: Path, kind: str, top: str = "") -> list[str]:
    with DataDir(root) as data_dir:
        return sorted(join_path(directory, name) for k, directory, name, _ in walk(data_dir, top) if k == kind)


def test_walk_lists_regular_files_and_never_follows_symlinks(data: tuple[Path, Path]) -> None:
    root, _ = data
    assert walked(root, FILE) == ["images/a.png", "images/nested/b.png"]
    assert walked(root, SYMLINK) == ["images/link-to-dir", "images/link-to-file.png"]
    assert walked(root, DIRECTORY) == ["images", "images/nested"]
    with DataDir(root) as data_dir:
        assert sorted(join_path(d, n) for d, n, _ in iter_files(data_dir, "images")) == walked(root, FILE)


def test_walk_reports_a_symlinked_top_instead_of_following_it(data: tuple[Path, Path]) -> None:
    root, _ = data
    errors: list[tuple[str, int]] = []
    with DataDir(root) as data_dir:
        entries = list(walk(data_dir, "images/link-to-dir", on_error=lambda p, e: errors.append((p, e.errno or 0))))
    assert entries == []
    assert errors == [("images/link-to-dir", errno.ELOOP)] or errors[0][1] in (errno.ELOOP, errno.ENOTDIR)


def test_open_dir_refuses_symlinks_and_parent_escapes(data: tuple[Path, Path]) -> None:
    root, _ = data
    with DataDir(root) as data_dir:
        with pytest.raises(OSError) as caught:
            data_dir.open_dir("images/link-to-dir")
        assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
        with pytest.raises(OSError):
            data_dir.open_dir("images/../../outside")


def test_missing_or_non_directory_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match="does not exist; nothing was changed"):
        DataDir(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError, match="is not a directory"):
        DataDir(tmp_path / "file")


def test_walk_does_not_enter_a_tmpfs_mounted_inside(data: tuple[Path, Path]) -> None:
    root, _ = data
    with tmpfs(1 * MiB) as mounted:
        (mounted / "inside-mount.png").write_bytes(b"m")
        target = root / "images" / "mnt"
        target.mkdir()
        subprocess.run(["mount", "--bind", str(mounted), str(target)], check=True)
        try:
            mounts = walked(root, MOUNT)
            files = walked(root, FILE)
            with DataDir(root) as data_dir:
                with pytest.raises(OSError) as caught:
                    data_dir.open_dir("images/mnt")
                assert caught.value.errno == errno.EXDEV
        finally:
            subprocess.run(["umount", str(target)], check=True)
    assert mounts == ["images/mnt"]
    assert "images/mnt/inside-mount.png" not in files


def test_walk_does_not_enter_a_bind_mount_of_the_same_filesystem(data: tuple[Path, Path]) -> None:
    """st_dev can't tell a same-filesystem bind mount apart; the mount table can."""
    root, outside = data
    target = root / "videos"
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(outside), str(target)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount inside the data dir: {mounted.stderr.strip()}")
    try:
        assert os.stat(target).st_dev == os.stat(root).st_dev
        assert walked(root, MOUNT) == ["videos"]
        assert all(not path.startswith("videos/") for path in walked(root, FILE))
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_unlink_if_unchanged(data: tuple[Path, Path]) -> None:
    root, outside = data
    target = root / "images" / "a.png"
    identity = FileIdentity.of(os.lstat(target))
    with DataDir(root) as data_dir:
        fd = data_dir.open_dir("images")
        try:
            os.utime(target, (1, 1))
            assert unlink_if_unchanged(fd, "a.png", identity) == CHANGED
            assert target.exists()
            identity = FileIdentity.of(os.lstat(target))
            assert unlink_if_unchanged(fd, "a.png", identity) == UNLINKED
            assert not target.exists()
            assert unlink_if_unchanged(fd, "a.png", identity) == VANISHED
            link_identity = FileIdentity.of(os.stat(outside / "precious.png"))
            assert unlink_if_unchanged(fd, "link-to-file.png", link_identity) == CHANGED
        finally:
            os.close(fd)
    assert (outside / "precious.png").read_bytes() == b"precious"
    assert (root / "images" / "link-to-file.png").is_symlink()


def test_unlink_keeps_a_file_replaced_by_another(data: tuple[Path, Path]) -> None:
    root, _ = data
    target = root / "images" / "a.png"
    identity = FileIdentity.of(os.lstat(target))
    target.unlink()
    target.write_bytes(b"a" * 10)
    with DataDir(root) as data_dir:
        fd = data_dir.open_dir("images")
        try:
            assert unlink_if_unchanged(fd, "a.png", identity) == CHANGED
        finally:
            os.close(fd)
    assert target.exists()


def test_atomic_rewrite_keeps_mode_and_owner(tmp_path: Path) -> None:
    feed = tmp_path / "posts.json"
    feed.write_text("[]")
    os.chmod(feed, 0o640)
    os.chown(feed, 1234, 5678)
    with DataDir(tmp_path) as data_dir:
        atomic_rewrite(data_dir.fd, "posts.json", b'[{"id": 1}]', os.lstat(feed))
    st = os.lstat(feed)
    assert feed.read_bytes() == b'[{"id": 1}]'
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts.json"]


def test_atomic_rewrite_on_a_full_disk_leaves_the_original_and_no_temp() -> None:
    with tmpfs(256 * 1024) as root:
        feed = root / "posts.json"
        original = b"[" + b'"x",' * 1000 + b'"x"]'
        feed.write_bytes(original)
        with DataDir(root) as data_dir, pytest.raises(OSError) as caught:
            atomic_rewrite(data_dir.fd, "posts.json", b"y" * (1024 * 1024), os.lstat(feed))
        assert caught.value.errno == errno.ENOSPC
        assert feed.read_bytes() == original
        assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_lock_is_exclusive_per_data_dir(tmp_path: Path) -> None:
    with DataDir(tmp_path) as first, DataDir(tmp_path) as second:
        lock_data_dir(first)
        with pytest.raises(LockHeld, match="another datagc is working on"):
            lock_data_dir(second, wait_seconds=0.1)
        first.close()
        lock_data_dir(second, wait_seconds=1)


def test_disk_usage_matches_df_use_percent() -> None:
    with tmpfs(4 * MiB) as root:
        (root / "half").write_bytes(b"\1" * (2 * MiB))
        with DataDir(root) as data_dir:
            usage = disk_usage(data_dir.fd)
        df = subprocess.run(["df", "--output=pcent", str(root)], capture_output=True, text=True, check=True)
        percent = int(df.stdout.splitlines()[1].strip().rstrip("%"))
    assert usage.total_bytes == 4 * MiB
    assert usage.used_bytes >= 2 * MiB
    assert abs(usage.used_fraction * 100 - percent) <= 1
