"""The census fold (``datagc.census``) against a plain recount: totals per top-level entry, each inode once at
its first path, and the largest files (ties by path), whatever the split into shares.

The fold is pure (it reads the walk's entries), so it is fed entries made here: stat snapshots with only the
fields it reads. The real walk, on real trees, split or not, is checked through the CLI in test_parallel.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import cast

from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc.census import Census, count_walk
from datagc.safety.walk import DIRECTORY, FILE, SYMLINK, WalkEntry

DIRS = ("", "a", "a/x", "a-b", "b/y/z")
NAMES = ("f", "g", "h", "k")

#: (directory index, name index, blocks, inode or None for a single-link file)
Spec = tuple[int, int, int, int | None]
files = st.lists(
    st.tuples(st.integers(0, len(DIRS) - 1), st.integers(0, len(NAMES) - 1), st.integers(0, 4),
              st.one_of(st.none(), st.integers(1, 3))),
    max_size=40,
    unique_by=lambda spec: (spec[0], spec[1]),
)


def entries_of(specs: list[Spec], mine: int = 0, shares: int = 1) -> list[WalkEntry]:
    """A walk of ``specs`` (a directory's entries together), or one share's part of it (by position)."""
    walked: list[WalkEntry] = []
    for index, spec in enumerate(sorted(specs)):
        if index % shares != mine:
            continue
        directory, name, blocks, ino = DIRS[spec[0]], NAMES[spec[1]], spec[2], spec[3]
        inode = 1000 + index if ino is None else ino
        st_ = SimpleNamespace(st_blocks=blocks, st_size=blocks * 500, st_nlink=1 if ino is None else 2, st_ino=inode,
                              st_dev=1, st_mtime_ns=0, st_ctime_ns=0)
        walked.append((FILE, directory, name, cast(os.stat_result, st_)))
    if mine == 0:
        walked.append((DIRECTORY, "", "a", None))
        walked.append((SYMLINK, "a", "link", None))
    return walked


def expected(specs: list[Spec], top: int) -> tuple[dict[str, tuple[int, int]], list[tuple[int, str, str]], int]:
    """Totals per entry (bytes, files), the largest in display order, apparent bytes: counted plainly."""
    counted: dict[object, tuple[str, str, int]] = {}
    for index, (d, n, blocks, ino) in enumerate(sorted(specs)):
        key = ("single", index) if ino is None else ino
        path = (DIRS[d], NAMES[n])
        if key not in counted or path < counted[key][:2]:
            counted[key] = (*path, blocks)
    totals: dict[str, tuple[int, int]] = {}
    for directory, name, blocks in counted.values():
        entry = directory.partition("/")[0] if directory else name
        size, count = totals.get(entry, (0, 0))
        totals[entry] = (size + blocks * 512, count + 1)
    everything = sorted(((blocks * 512, d, n) for d, n, blocks in counted.values()), reverse=True)[:top]
    apparent = sum(blocks * 500 for _, _, blocks in counted.values())
    return totals, sorted(everything, key=lambda item: (-item[0], item[1], item[2])), apparent


@settings(max_examples=300, deadline=None)
@given(files, st.integers(0, 6), st.integers(1, 3))
@example([(1, 0, 2, None), (1, 1, 2, None), (2, 0, 2, None), (3, 0, 2, None)], 2, 1)  # ties: the path decides
@example([(0, 3, 1, 1), (1, 0, 1, 1), (4, 0, 3, None)], 1, 2)  # a link at the top sorts first: counted there
@example([(2, 1, 0, None), (2, 2, 4, None), (1, 1, 4, None), (2, 0, 4, None)], 2, 1)  # a tie after the floor rose
def test_the_census_counts_what_a_plain_recount_does(specs: list[Spec], top: int, shares: int) -> None:
    census = Census(top, named=True)
    for mine in range(shares):
        part = Census(top, named=True)
        assert list(count_walk(iter(entries_of(specs, mine, shares)), part)) == []  # no media asked for
        census.add(part)
    census.settle()
    totals, largest, apparent = expected(specs, top)
    assert {name: (tally.bytes, tally.files) for name, tally in census.entries.items()} == totals
    assert census.largest_files() == largest
    assert census.apparent_bytes == apparent
    assert census.files == sum(count for _, count in totals.values())
    assert (census.dirs, census.symlinks) == (1, ["a/link"])


def test_the_media_files_are_streamed_with_their_stat_and_still_counted() -> None:
    specs: list[Spec] = [(1, 0, 1, None), (2, 1, 2, None), (3, 0, 3, None), (0, 2, 1, None)]
    census = Census()
    streamed = list(count_walk(iter(entries_of(specs)), census, ("a",)))
    assert [(file.path, file.allocated) for file in streamed] == [("a/f", 512), ("a/x/g", 1024)]
    assert {name: tally.bytes for name, tally in census.entries.items()} == {"a": 1536, "a-b": 1536, "h": 512}
    assert (census.symlinks, census.largest) == ([], [])  # pressure's census names nothing, keeps no heap
