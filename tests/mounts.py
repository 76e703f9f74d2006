"""Real, small filesystems for tests: size-limited tmpfs, loop-mounted ext4, read-only bind mounts.

Each helper is a context manager that mounts on a fresh temporary directory,
yields it, and unmounts and removes everything on exit (also when the test
fails). Where mounting is refused (not root, no loop devices, no mkfs.ext4),
the test is skipped with the reason; it never passes silently.

    with tmpfs(4 * MiB) as root: ...
    with loop_ext4(16 * MiB) as root: ...
    with loop_xfs(320 * MiB) as root: ...     # xfs wants 300 MiB at least
    with overlay(64 * MiB) as root: ...       # overlayfs over a tmpfs, as a container's root
    with readonly_bind(some_dir) as view: ...   # same files, writes fail with EROFS
    with bind(source, existing_target): ...    # a file or directory mounted over another
    fill(root, leave_bytes=64 * KiB)           # make the filesystem (almost) full
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

KiB = 1024
MiB = 1024 * KiB


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _mount_or_skip(argv: list[str], what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"cannot mount {what}: mounting needs root (euid {os.geteuid()})")
    if shutil.which(argv[0]) is None:
        pytest.skip(f"cannot mount {what}: {argv[0]} is not installed")
    result = _run(argv)
    if result.returncode != 0:
        pytest.skip(f"cannot mount {what}: {' '.join(argv)} failed: {result.stderr.strip() or result.returncode}")


def _unmount(point: Path) -> None:
    """Unmount ``point``; lazily if something in the test still holds it open."""
    if _run(["umount", str(point)]).returncode != 0:
        _run(["umount", "-l", str(point)])


@contextlib.contextmanager
def _mount_point(prefix: str) -> Iterator[Path]:
    point = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield point
    finally:
        with contextlib.suppress(OSError):
            point.rmdir()


@contextlib.contextmanager
def tmpfs(size_bytes: int, nr_inodes: int | None = None) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` (a hard limit, also for root): writes past it fail with ENOSPC.

    ``nr_inodes`` caps its inodes (the root directory takes one): creating a file past it fails with ENOSPC.
    """
    options = f"size={size_bytes},mode=0755" + (f",nr_inodes={nr_inodes}" if nr_inodes is not None else "")
    with _mount_point("datagc-tmpfs-") as point:
        _mount_or_skip(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                       f"a {size_bytes}-byte tmpfs" + (f" of {nr_inodes} inodes" if nr_inodes else ""))
        try:
            yield point
        finally:
            _unmount(point)


@contextlib.contextmanager
def loop_ext4(size_bytes: int) -> Iterator[Path]:
    """An ext4 filesystem in a ``size_bytes`` image, loop-mounted.

    Made with no reserved blocks (``-m 0``) so that root hits ENOSPC at the same
    point as anyone else. ext4 needs roughly 1 MiB for itself; ask for 4 MiB or more.
    """
    with _loop("ext4", size_bytes, ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0"],
               "e2fsprogs") as point:
        shutil.rmtree(point / "lost+found", ignore_errors=True)
        yield point


@contextlib.contextmanager
def loop_xfs(size_bytes: int) -> Iterator[Path]:
    """An xfs filesystem in a ``size_bytes`` image (xfs wants 300 MiB at least), loop-mounted."""
    with _loop("xfs", size_bytes, ["mkfs.xfs", "-q", "-f"], "xfsprogs") as point:
        yield point


@contextlib.contextmanager
def _loop(kind: str, size_bytes: int, mkfs: list[str], package: str) -> Iterator[Path]:
    """A ``kind`` filesystem made by ``mkfs`` (the image's path appended) in a ``size_bytes`` image, loop-mounted;
    the image is removed on exit."""
    if shutil.which(mkfs[0]) is None:
        pytest.skip(f"cannot make an {kind} image: {mkfs[0]} is not installed (Debian package {package})")
    with _mount_point(f"datagc-{kind}-") as point:
        image_fd, image_name = tempfile.mkstemp(prefix=f"datagc-{kind}-", suffix=".img")
        image = Path(image_name)
        try:
            with os.fdopen(image_fd, "wb") as handle:
                handle.truncate(size_bytes)
            made = _run([*mkfs, str(image)])
            if made.returncode != 0:
                pytest.skip(f"cannot make an {kind} image: {mkfs[0]} failed: {made.stderr.strip()}")
            _mount_or_skip(["mount", "-o", "loop", str(image), str(point)], f"a {size_bytes}-byte {kind} loop image")
            try:
                yield point
            finally:
                _unmount(point)
        finally:
            image.unlink(missing_ok=True)


@contextlib.contextmanager
def overlay(size_bytes: int) -> Iterator[Path]:
    """An overlayfs whose lower and upper directories are on a tmpfs of ``size_bytes`` (a container's root)."""
    with tmpfs(size_bytes) as base:
        for part in ("lower", "upper", "work", "merged"):
            (base / part).mkdir()
        options = f"lowerdir={base / 'lower'},upperdir={base / 'upper'},workdir={base / 'work'}"
        _mount_or_skip(["mount", "-t", "overlay", "overlay", "-o", options, str(base / "merged")], "an overlayfs")
        try:
            yield base / "merged"
        finally:
            _unmount(base / "merged")


@contextlib.contextmanager
def readonly_bind(source: Path) -> Iterator[Path]:
    """``source`` bind-mounted read-only on a new directory: the same files, every write fails with EROFS."""
    with _mount_point("datagc-ro-") as point:
        _mount_or_skip(["mount", "--bind", str(source), str(point)], f"a bind mount of {source}")
        try:
            remounted = _run(["mount", "-o", "remount,bind,ro", str(point)])
            if remounted.returncode != 0:
                pytest.skip(f"cannot make a read-only bind mount of {source}: {remounted.stderr.strip()}")
            yield point
        finally:
            _unmount(point)


@contextlib.contextmanager
def bind(source: Path, target: Path) -> Iterator[Path]:
    """``source`` (a file or a directory) bind-mounted over the existing ``target``; unmounted on exit."""
    _mount_or_skip(["mount", "--bind", str(source), str(target)], f"{source} on {target}")
    try:
        yield target
    finally:
        _unmount(target)


def fill(directory: Path, leave_bytes: int = 0, name: str = "filler") -> Path:
    """Fill the filesystem holding ``directory`` with one file until at most ``leave_bytes`` are free.

    Returns the filler file (delete it to give the space back).
    """
    filler = directory / name
    block = b"\0" * (64 * KiB)
    with filler.open("wb", buffering=0) as handle:
        while True:
            st = os.statvfs(directory)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            chunk = block[: max(st.f_frsize, min(len(block), free - leave_bytes))]
            try:
                handle.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        os.fsync(handle.fileno())
    return filler
