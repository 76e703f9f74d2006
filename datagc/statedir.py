"""datagc's state directory (``state.dir``, SPEC §9), opened without ever following a symlink.

It is opened relative to a parent descriptor (inside DATA_DIR: component by
component, like every directory datagc enters), the state dir itself with
O_NOFOLLOW: a state dir that is a symlink or not a directory is an error,
never followed. It is created (mode 0700) only by a pass that writes the
journal (``datagc.journal``); ``history`` and ``audit`` only read it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from datagc.config.schema import Config
from datagc.errors import DatagcError
from datagc.safety.datadir import DIR_FLAGS, DataDir, split_path
from datagc.veto import state_dir

STATE_MODE = 0o700


class StateDirError(DatagcError):
    """The state dir or the journal can't be used; the message says why, in the operator's words."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = code


def _describe(error: OSError, where: str, parent: int | None = None, name: str = "") -> str:
    if parent is not None and error.errno in (errno.ENOTDIR, errno.ELOOP):
        with contextlib.suppress(OSError):  # O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a symlink: tell them apart
            if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                return f"state dir {where} is a symbolic link (never followed)"
    if error.errno == errno.ELOOP:
        return f"state dir {where} is a symbolic link (never followed)"
    if error.errno == errno.ENOTDIR:
        return f"state dir {where} is not a directory"
    if error.errno == errno.EXDEV:
        return f"state dir {where} is behind another filesystem or mount point"
    return f"state dir {where} cannot be opened ({error.strerror or error})"


def open_state_dir(data_dir: DataDir, config: Config, create: bool) -> int | None:
    """A descriptor of the state dir; None if it doesn't exist and ``create`` is False.

    The parent is opened as usual (inside DATA_DIR: component by component,
    never through a symlink); the state dir itself with O_NOFOLLOW. Raises
    StateDirError.
    """
    where = config.state.dir
    try:
        parent, name = open_state_parent(data_dir, config)
    except OSError as error:
        if error.errno == errno.ENOENT and not create:
            return None
        raise StateDirError(error.errno, _describe(error, where)) from None
    try:
        return _open_or_create(parent, name, create, where)
    finally:
        os.close(parent)


def open_state_parent(data_dir: DataDir, config: Config) -> tuple[int, str]:
    """A descriptor of the state dir's parent, and the state dir's name in it. Raises OSError."""
    relative = state_dir(config)
    if relative is not None:
        head, name = split_path(relative)
        return data_dir.open_dir(head), name
    head, name = os.path.split(config.state.dir.rstrip("/"))
    return os.open(head or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), name


def _open_or_create(parent: int, name: str, create: bool, where: str) -> int | None:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as error:
        raise StateDirError(error.errno, _describe(error, where, parent, name)) from None
    try:
        os.mkdir(name, STATE_MODE, dir_fd=parent)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        os.fchmod(fd, STATE_MODE)  # whatever the umask
        os.fsync(parent)
        return fd
    except OSError as error:
        raise StateDirError(error.errno, f"state dir {where} cannot be created ({error.strerror})") from None
