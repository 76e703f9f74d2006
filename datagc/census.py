"""The tree census pressure takes on its walk: what each top-level entry of DATA_DIR holds.

One walk of all of DATA_DIR (each file once) streams the media files to the
eviction planner and, on the way, counts the allocated bytes of every
top-level entry (each inode once), so that when eviction is not enough the
report can say which entries hold the space.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from datagc.eviction import Tally
from datagc.facts import FileStat
from datagc.safety import DataDir, iter_files


@dataclass
class Holdings:
    """Allocated bytes per top-level entry of DATA_DIR, counted by the walk (each inode once),
    to say what holds the space when eviction is not enough; and what the walk couldn't read."""

    entries: dict[str, Tally] = field(default_factory=dict)
    errors: list[tuple[str, OSError]] = field(default_factory=list)
    _linked: set[tuple[int, int]] = field(default_factory=set)

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries.values())

    def largest(self, count: int) -> list[tuple[str, Tally]]:
        return sorted(self.entries.items(), key=lambda item: item[1].bytes, reverse=True)[:count]

    def on_error(self, path: str, error: OSError) -> None:
        self.errors.append((path, error))


def walk_media(data_dir: DataDir, media_dirs: Sequence[str], holdings: Holdings) -> Iterator[FileStat]:
    """Walk all of DATA_DIR once, streaming the regular files of the media directories.

    Every file's allocated bytes are added to ``holdings`` on the way.
    """
    media = frozenset(media_dirs)
    prefixes = tuple(f"{directory}/" for directory in media_dirs)
    current: str | None = None
    in_media = False
    entry = Tally()
    for directory, name, st in iter_files(data_dir, on_error=holdings.on_error):
        if directory is not current:
            current = directory
            in_media = directory in media or directory.startswith(prefixes)
            if directory:
                entry = holdings.entries.setdefault(directory.partition("/")[0], Tally())
        allocated = st.st_blocks * 512
        if st.st_nlink == 1 or _first_sight(holdings, st):
            counted = entry if directory else holdings.entries.setdefault(name, Tally())
            counted.files += 1
            counted.bytes += allocated
        if in_media:
            yield FileStat(
                f"{directory}/{name}", st.st_mtime_ns, st.st_size, allocated, st.st_nlink, st.st_dev, st.st_ino,
                st.st_ctime_ns,
            )


def _first_sight(holdings: Holdings, st: os.stat_result) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in holdings._linked:
        return False
    holdings._linked.add(key)
    return True
