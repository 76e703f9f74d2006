"""DATA_DIR opened once, and directories inside it opened fd-relative on its own mount (SPEC §7 rule 13)."""

from __future__ import annotations

import errno
import os
import re
from functools import cached_property
from pathlib import Path

from datagc.errors import DataDirError
from datagc.mountid import mount_id

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class DataDir:
    """DATA_DIR opened once; the root of every fd-relative operation.

    The data directory itself may be reached through a symlink (the operator
    named it); nothing inside it ever is.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DataDirError(f"data directory {path} does not exist; nothing was changed") from None
        except NotADirectoryError:
            raise DataDirError(f"data directory {path} is not a directory; nothing was changed") from None
        except OSError as error:
            raise DataDirError(
                f"data directory {path} cannot be opened ({error.strerror}); nothing was changed"
            ) from None
        self.dev = os.fstat(self.fd).st_dev
        self.mount_points = mount_points_inside(os.path.realpath(path))

    @cached_property
    def mount_id(self) -> int | None:
        """The mount DATA_DIR is on: every directory entered must be on it too (None: st_dev and mount_points only).

        Asked of the open descriptor when a directory is first entered (the same
        answer as at open), so a command that enters none never pays for it.
        """
        return mount_id(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open_dir(self, relpath: str) -> int:
        """Open a directory inside DATA_DIR, one component at a time.

        Raises OSError: ELOOP/ENOTDIR for a symlink or non-directory on the way,
        EXDEV for a component on another filesystem or mount (its mount id is
        checked as it is opened, so a bind mount made while a pass runs is not
        entered: SPEC §7 rule 13), ENOENT if missing. The caller closes the
        returned descriptor: always a file description of its own, never a
        ``dup`` of DATA_DIR's, whose directory offset every copy (a forked walk
        worker's too) would share and move.
        """
        fd = os.open(".", DIR_FLAGS, dir_fd=self.fd)
        walked = ""
        try:
            for part in _parts(relpath):
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                walked = join_path(walked, part)
                if not self.same_mount(fd) or walked in self.mount_points:
                    raise OSError(errno.EXDEV, "on another filesystem or mount point", relpath)
        except BaseException:
            os.close(fd)
            raise
        return fd


    def same_mount(self, fd: int) -> bool:
        """Whether the directory ``fd`` is on DATA_DIR's own mount (not another filesystem, not a bind mount)."""
        if self.mount_id is not None:
            return mount_id(fd) == self.mount_id
        return os.fstat(fd).st_dev == self.dev


def mount_points_inside(root: str) -> frozenset[str]:
    """Mount points strictly inside ``root``, relative to it, from /proc/self/mountinfo.

    Catches bind mounts of the same filesystem, which ``st_dev`` can't tell
    apart. Empty where /proc is unreadable (``st_dev`` checks still apply).
    """
    prefix = root.rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return frozenset()
    inside = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4]))
        if point.startswith(prefix):
            inside.add(point[len(prefix):])
    return frozenset(inside)


def _parts(relpath: str) -> list[str]:
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EINVAL, "path leaves the data directory", relpath)
    return parts


def split_path(relpath: str) -> tuple[str, str]:
    """``"images/old/a.png"`` -> ``("images/old", "a.png")``."""
    head, _, name = relpath.rpartition("/")
    return head, name


def join_path(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name
