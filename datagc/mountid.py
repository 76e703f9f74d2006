"""Which mount an open directory is on, asked at the moment it is entered (SPEC §7 rule 13).

``st_dev`` tells filesystems apart but not a bind mount of DATA_DIR's own
filesystem, and /proc/self/mountinfo read at start-up misses mounts that
appear while a pass runs. The mount id of the descriptor itself does both:
``statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID)`` (Linux 5.8, glibc 2.28; ~4 µs
through ctypes), else the ``mnt_id:`` line of /proc/self/fdinfo/FD (~20 µs).
Where neither answers, ``mount_id`` returns None and callers fall back on
``st_dev`` and the start-up mount list.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_AT_EMPTY_PATH = 0x1000
_STATX_MNT_ID = 0x1000
#: offsets in struct statx: stx_mask (u32) at 0, stx_mnt_id (u64) at 144; the struct is 256 bytes
_MNT_ID_OFFSET = 144
_STATX_SIZE = 256


def _statx_reader() -> Callable[[int], int | None] | None:
    import ctypes  # on first use: a command that enters no directory (rotate) never loads it

    try:
        statx = ctypes.CDLL(None, use_errno=True).statx
    except (AttributeError, OSError):
        return None
    statx.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)
    statx.restype = ctypes.c_int

    def read(fd: int) -> int | None:
        buffer = ctypes.create_string_buffer(_STATX_SIZE)
        if statx(fd, b"", _AT_EMPTY_PATH, _STATX_MNT_ID, buffer) != 0:
            return None
        if not ctypes.c_uint32.from_buffer(buffer, 0).value & _STATX_MNT_ID:
            return None  # an older kernel: the field is not filled in
        return ctypes.c_uint64.from_buffer(buffer, _MNT_ID_OFFSET).value

    return read


def _fdinfo(fd: int) -> int | None:
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as handle:
            for line in handle:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_reader: Callable[[int], int | None] | None = None
_probed = False


def mount_id(fd: int) -> int | None:
    """The id of the mount ``fd`` is on, or None where the system can't say."""
    global _reader, _probed
    if not _probed:
        _reader, _probed = _statx_reader(), True
    if _reader is not None:
        found = _reader(fd)
        if found is not None:
            return found
        _reader = None  # not supported here: use fdinfo from now on
    return _fdinfo(fd)


def can_tell() -> bool:
    """Whether mount ids are available on this system (for tests that need them)."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return mount_id(fd) is not None
    finally:
        os.close(fd)
