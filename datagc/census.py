"""The tree census audit and pressure share: one walk of all of DATA_DIR, counted as ``du`` counts.

``count_walk`` counts every regular file's allocated and apparent bytes under
its top-level entry of DATA_DIR (each inode once: a file with other hard
links is counted when the walk is over, at its first path in path order),
keeps the largest files with a bounded heap, counts directories, symlinks,
mounts and special files (never followed or entered), and on the way streams
the files of the media directories to whoever asks: pressure's planner
(``datagc.planwalk``). Audit reports the census (``count_tree``); pressure,
when eviction is not enough, names the entries that hold the space.

The walk is split across cores when the tree is large (``datagc.parallel``):
each worker counts its share into a census of its own, and the parent adds
them up (``Census.add``) and settles the hard-linked inodes (``settle``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from datagc.facts import FileStat, Tally
from datagc.parallel import fold_walk
from datagc.progress import EVERY
from datagc.safety.walk import DIRECTORY, FILE, MOUNT, SYMLINK, Share, WalkEntry

if TYPE_CHECKING:
    from datagc.progress import Counter, WalkProgress
    from datagc.safety.datadir import DataDir

#: a FileStat from its fields, as ``tuple.__new__`` makes a named tuple
_new_stat = tuple.__new__

#: one of the largest files: (allocated bytes, directory, name), a total order whatever the walk's order
Large = tuple[int, str, str]


@dataclass
class Census:
    """What a walk of DATA_DIR (or one worker's share of it) counted."""

    #: how many of the largest files to keep (0: none)
    top: int = 0
    #: whether to list the symlinks and mounts met by path (audit names them; pressure only counts)
    named: bool = False
    apparent_bytes: int = 0
    dirs: int = 0
    special_files: int = 0
    symlinks: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    #: allocated bytes and files per top-level entry of DATA_DIR
    entries: dict[str, Tally] = field(default_factory=dict)
    #: min-heap of the ``top`` largest files
    largest: list[Large] = field(default_factory=list)
    #: files with other hard links, counted once by ``settle``: inode -> (directory, name, allocated, apparent)
    linked: dict[int, tuple[str, str, int, int]] = field(default_factory=dict)
    #: directories the walk couldn't read, with the error
    errors: list[tuple[str, OSError]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries.values())

    @property
    def files(self) -> int:
        return sum(entry.files for entry in self.entries.values())

    def holders(self, count: int) -> list[tuple[str, Tally]]:
        """The ``count`` top-level entries holding the most bytes (equal ones by name: the same split or not)."""
        return sorted(self.entries.items(), key=lambda item: (-item[1].bytes, item[0]))[:count]

    def largest_files(self) -> list[Large]:
        """The largest files kept, largest first (then in path order)."""
        return sorted(self.largest, key=lambda item: (-item[0], item[1], item[2]))

    def on_error(self, path: str, error: OSError) -> None:
        self.errors.append((path, error))

    def add(self, other: Census) -> None:
        """Count ``other`` (another share of the same walk) in."""
        self.apparent_bytes += other.apparent_bytes
        self.dirs += other.dirs
        self.special_files += other.special_files
        self.symlinks.extend(other.symlinks)
        self.mounts.extend(other.mounts)
        for name, tally in other.entries.items():
            mine = self.entries.get(name)
            if mine is None:
                self.entries[name] = Tally(tally.files, tally.bytes)
            else:
                mine.files += tally.files
                mine.bytes += tally.bytes
        for item in other.largest:
            _keep(self.largest, item, self.top)
        for ino, seen in other.linked.items():
            if ino not in self.linked or seen[:2] < self.linked[ino][:2]:
                self.linked[ino] = seen

    def settle(self) -> None:
        """Count each hard-linked inode once, at its first path in path order; sort what is listed by path."""
        for directory, name, allocated, apparent in self.linked.values():
            self.entries.setdefault(directory.partition("/")[0] if directory else name, Tally()).add(allocated)
            self.apparent_bytes += apparent
            _keep(self.largest, (allocated, directory, name), self.top)
        self.linked.clear()
        self.symlinks.sort()
        self.mounts.sort()


def _keep(heap: list[Large], item: Large, top: int) -> None:
    if len(heap) < top:
        heapq.heappush(heap, item)
    elif top and item > heap[0]:
        heapq.heapreplace(heap, item)


def count_walk(
    entries: Iterator[WalkEntry], census: Census, media_dirs: Sequence[str] = (), counter: Counter | None = None
) -> Iterator[FileStat]:
    """Count ``entries`` (a walk of DATA_DIR, or a share of it) into ``census``, the files walked to ``counter``
    (a terminal's progress); yield the regular files of ``media_dirs`` on the way.

    The walk yields a directory's entries together, under one ``directory``
    string: what depends on the directory is looked up once, and its files are
    summed before they are counted in. Only a file larger than the smallest of
    the largest kept so far (``floor``, in blocks), or as large and in a
    directory that sorts after it (``ties``), is offered to the heap.
    """
    totals, largest, linked, top, named = census.entries, census.largest, census.linked, census.top, census.named
    media = frozenset(media_dirs)
    prefixes = tuple(f"{directory}/" for directory in media_dirs)
    current: str | None = None
    in_media = False
    blocks = files = apparent = 0  # the current directory's files, not yet in its entry's tally
    counted = counted_blocks = 0  # files counted in before the current directory's, for progress
    next_report = EVERY
    floor, ties = _floor(largest, top, "")
    head = ""
    for kind, directory, name, st in entries:
        if kind is not FILE:
            if kind is DIRECTORY:
                census.dirs += 1
            elif kind is SYMLINK:
                if named:
                    census.symlinks.append(f"{directory}/{name}" if directory else name)
            elif kind is MOUNT:
                if named:
                    census.mounts.append(f"{directory}/{name}" if directory else name)
            else:
                census.special_files += 1
            continue
        assert st is not None
        if directory is not current:
            if files:
                _count_in(census, current, files, blocks, apparent)
                counted += files
                counted_blocks += blocks
                blocks = files = apparent = 0
                if counter is not None and counted >= next_report:
                    counter.seen(counted, counted_blocks * 512)
                    next_report = counted + EVERY
            current = directory
            in_media = directory in media or directory.startswith(prefixes)
            head = f"{directory}/"
            floor, ties = _floor(largest, top, directory)
        here = st.st_blocks
        if st.st_nlink > 1:
            seen = linked.get(st.st_ino)
            if seen is None or (directory, name) < seen[:2]:
                linked[st.st_ino] = (directory, name, here * 512, st.st_size)
        else:
            if directory:
                blocks += here
                files += 1
                apparent += st.st_size
            else:  # a file at the top of DATA_DIR is an entry of its own
                totals.setdefault(name, Tally()).add(here * 512)
                census.apparent_bytes += st.st_size
                counted += 1
                counted_blocks += here
            if here > floor or (ties and here == floor):
                _keep(largest, (here * 512, directory, name), top)
                floor, ties = _floor(largest, top, directory)
        if in_media:  # ``FileStat.of``, without its two calls per file
            yield _new_stat(FileStat, (head + name, st.st_mtime_ns, st.st_size, here * 512, st.st_nlink, st.st_dev,
                                       st.st_ino, st.st_ctime_ns))
    if files:
        _count_in(census, current, files, blocks, apparent)
    if counter is not None:
        counter.seen(counted + files, (counted_blocks + blocks) * 512)


#: a floor no file reaches: no heap of the largest
_NO_HEAP = 1 << 62


def _floor(heap: list[Large], top: int, directory: str) -> tuple[int, bool]:
    """The blocks a file of ``directory`` must exceed to be offered to the heap, and whether one with exactly as
    many may be (the heap decides by path)."""
    if len(heap) < top:
        return -1, False
    if not top:
        return _NO_HEAP, False
    smallest = heap[0]
    return smallest[0] // 512, directory >= smallest[1]


def _count_in(census: Census, directory: str | None, files: int, blocks: int, apparent: int) -> None:
    """One directory's single-link files, summed, counted under its top-level entry."""
    assert directory
    entry = directory.partition("/")[0]
    tally = census.entries.get(entry)
    if tally is None:
        tally = census.entries[entry] = Tally()
    tally.files += files
    tally.bytes += blocks * 512
    census.apparent_bytes += apparent


def count_tree(data_dir: DataDir, top: int, progress: WalkProgress | None = None) -> Census:
    """The census of all of DATA_DIR (audit's), keeping the ``top`` largest files and naming symlinks and
    mounts; the walk's count goes to ``progress`` (a terminal)."""
    census = Census(top, named=True)

    def fold(entries: Iterator[WalkEntry], share: Share | None) -> Census:
        part = Census(top, named=True)
        for _ in count_walk(entries, part, (), progress.counter(share) if progress is not None else None):
            pass  # no media asked for: nothing is yielded
        return part

    for part in fold_walk(data_dir, "", fold, census.on_error, cold_workers=True):
        census.add(part)
    census.settle()
    return census
