"""What the passes observe of the disk, as plain values: a file's identity and stat snapshot, df's numbers.

No I/O here: :mod:`datagc.safety` and the walks make these; planners, the
executor and the renderers read them.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple


class FileIdentity(NamedTuple):  # a NamedTuple: every command loads it, and a dataclass costs ~0.5 ms to define
    """What a file was when it was planned; any difference means it changed.

    ``ctime_ns`` catches what the others can't: a file replaced by a same-size
    copy with its mtime preserved (``cp -p``, ``rsync -t``, ``tar x``) that
    reuses the inode number. No one can set the ctime (utime moves it to now).
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def matches(self, st: os.stat_result) -> bool:
        """``st`` is of this file still (``FileIdentity.of(st) == self``, without building one: asked right
        before each unlink, by the unlink workers, for each of up to a million files)."""
        return (st.st_ino == self.ino and st.st_dev == self.dev and st.st_size == self.size
                and st.st_mtime_ns == self.mtime_ns and st.st_ctime_ns == self.ctime_ns)

    def moved(self, other: FileIdentity | None) -> bool:
        """``other`` is this file, renamed since (a rename moves the ctime, so it is not compared)."""
        return other is not None and (self.dev, self.ino, self.size, self.mtime_ns) == (
            other.dev, other.ino, other.size, other.mtime_ns)


class FileStat(NamedTuple):
    """A regular file a pass may delete, as the walk saw it (sweep and pressure share it)."""

    path: str  # relative to DATA_DIR
    mtime_ns: int
    size: int
    allocated: int  # st_blocks * 512
    nlink: int
    dev: int
    ino: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, path: str, st: os.stat_result) -> FileStat:
        return cls(path, st.st_mtime_ns, st.st_size, st.st_blocks * 512, st.st_nlink, st.st_dev, st.st_ino,
                   st.st_ctime_ns)

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)

    @property
    def reclaimable(self) -> int:
        """Allocated bytes that come back when this name is unlinked (0 while other links remain)."""
        return self.allocated if self.nlink == 1 else 0


@dataclass
class Tally:
    """A count of files and their allocated bytes."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


_NUMBERS = 7  # FileStat's fields after the path
_WRAP = 1 << 64


class FileStats:
    """Many ``FileStat`` held compactly: the paths in a list, their numbers in one array of 64-bit integers.

    A sweep may plan to delete most of a million files: as FileStat tuples
    (their numbers as Python ints) they would take some 400 bytes each, here
    about 150. Each is made a FileStat again when iterated. Pickles compactly
    (a parallel walk's worker sends its files as one).
    """

    __slots__ = ("numbers", "paths")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.numbers = array("q")

    def add(self, path: str, st: os.stat_result) -> None:
        self.paths.append(path)
        # device and inode numbers are unsigned 64-bit: those above the signed range are wrapped
        self.numbers.extend((st.st_mtime_ns, st.st_size, st.st_blocks * 512, st.st_nlink,
                             _signed(st.st_dev), _signed(st.st_ino), st.st_ctime_ns))

    def append(self, file: FileStat) -> None:
        self.paths.append(file.path)
        self.numbers.extend((*file[1:5], _signed(file.dev), _signed(file.ino), file.ctime_ns))

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[FileStat]:
        numbers = self.numbers
        for index, path in enumerate(self.paths):
            at = index * _NUMBERS
            mtime_ns, size, allocated, nlink, dev, ino, ctime_ns = numbers[at:at + _NUMBERS]
            yield FileStat(path, mtime_ns, size, allocated, nlink, dev % _WRAP, ino % _WRAP, ctime_ns)

    def in_path_order(self) -> FileStats:
        """These files sorted by path (this store is emptied: only one copy of the numbers at a time)."""
        order = sorted(range(len(self.paths)), key=self.paths.__getitem__)
        ordered = FileStats()
        ordered.paths = [self.paths[index] for index in order]
        self.paths = []
        numbers = self.numbers
        for index in order:
            ordered.numbers.extend(numbers[index * _NUMBERS:(index + 1) * _NUMBERS])
        self.numbers = array("q")
        return ordered


def _signed(number: int) -> int:
    return number - _WRAP if number >= 1 << 63 else number


class DiskUsage(NamedTuple):  # a NamedTuple, as FileIdentity
    """What ``df`` shows for the filesystem holding DATA_DIR.

    ``used_fraction`` is df's Use%: used / (used + available to unprivileged users).
    """

    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_fraction: float
