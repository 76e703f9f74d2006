"""``datagc pressure``: when the disk holding DATA_DIR is fuller than ``pressure.threshold``,
evict media down to ``pressure.target`` (SPEC §7.7).

Usage is df's Use% (``safety.disk_usage``). Deleting a file of ``b`` allocated
bytes moves ``b`` from used to available, so the bytes to free are known
before the walk: ``used - target * (used + available)``. The walk streams every
file once; the planner keeps only the files it needs (a bounded heap over the
eviction order), so memory grows with the victims, not with the tree.

Where the spec is silent:

- With the CDN disabled pressure still evicts: a full disk stops the service
  (no new post, no event), which is worse than an old post showing a
  placeholder. There is no "published" class then; a file the feed shows only
  by CDN URL is "unreferenced" (no local URL names it).
- A file the feed shows by CDN URL *and* names by a local URL ranks as
  "referenced by the feed": deleting it leaves a placeholder in a post.
- If a feed file doesn't parse, nothing is known about any media file (which
  are published, which are referenced), so every media file is kept, the
  step is an error and the disk stays above the threshold.
- A file with other hard links frees nothing: never a victim, listed as kept.
"""

from __future__ import annotations

import fnmatch
import heapq
import math
import os
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from datagc.config import PressureConfig
from datagc.model import Action, Delete, FeedNull, Kept
from datagc.safety import DataDir, DiskUsage, FileIdentity, iter_files

#: Eviction classes, in eviction order (SPEC §7.7).
PUBLISHED, UNREFERENCED, REFERENCED = 0, 1, 2
CLASS_NAMES = ("published", "unreferenced", "referenced")
CLASS_DETAILS = ("on the CDN", "unreferenced", "referenced by the feed")


class MediaFile(NamedTuple):
    """A regular file of a media directory, as the walk saw it."""

    path: str
    mtime_ns: int
    allocated: int  # st_blocks * 512
    nlink: int
    dev: int
    ino: int
    size: int

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.dev, self.ino, self.size, self.mtime_ns)


@dataclass
class Tally:
    """A count of files and their allocated bytes."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass
class PressurePlan:
    """What to delete to reach the target, and what was spared and why."""

    needed_bytes: int
    actions: list[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    #: eligible files (old enough, unprotected, single link, some allocation) per class
    eligible: list[Tally] = field(default_factory=lambda: [Tally() for _ in CLASS_NAMES])
    #: chosen victims per class
    chosen: list[Tally] = field(default_factory=lambda: [Tally() for _ in CLASS_NAMES])
    too_young: Tally = field(default_factory=Tally)
    protected: Tally = field(default_factory=Tally)
    hard_linked: Tally = field(default_factory=Tally)

    @property
    def planned_bytes(self) -> int:
        return sum(total.bytes for total in self.chosen)

    @property
    def planned_files(self) -> int:
        return sum(total.files for total in self.chosen)

    @property
    def exhausted(self) -> bool:
        """Every eligible file is a victim and that is still not enough."""
        return self.planned_bytes < self.needed_bytes


def is_under_pressure(usage: DiskUsage, threshold: float) -> bool:
    return usage.used_fraction > threshold


def bytes_to_free(usage: DiskUsage, target: float) -> int:
    """Allocated bytes whose deletion brings df's Use% to ``target`` or below."""
    capacity = usage.used_bytes + usage.free_bytes
    exact_target = Fraction(repr(target))  # the decimal the operator wrote: 0.6 is 3/5, not the float below it
    return max(0, math.ceil(usage.used_bytes - exact_target * capacity))


def after_freeing(usage: DiskUsage, freed: int) -> DiskUsage:
    """The usage df would show once ``freed`` allocated bytes came back."""
    used = max(0, usage.used_bytes - freed)
    free = usage.free_bytes + (usage.used_bytes - used)
    return DiskUsage(usage.total_bytes, used, free, used / (used + free) if used + free else 0.0)


Matcher = Callable[[str], object]


def protect_matchers(patterns: Sequence[str]) -> tuple[Matcher, Matcher]:
    """``protect.patterns`` as (match a file name, match a relative path): a pattern with ``/`` is a path."""

    def compile_any(chosen: list[str]) -> Matcher:
        if not chosen:
            return lambda _: False
        return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in chosen)).fullmatch

    return (
        compile_any([pattern for pattern in patterns if "/" not in pattern]),
        compile_any([pattern for pattern in patterns if "/" in pattern]),
    )


class _Later:
    """A path that sorts in reverse, so that a min-heap of negated keys has the last victim on top."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __lt__(self, other: _Later) -> bool:
        return self.path > other.path


#: (-rank, -mtime_ns, reversed path, rank, file): heapq's smallest is the last victim in eviction order
_HeapEntry = tuple[int, int, _Later, int, MediaFile]


def plan_pressure(
    files: Iterable[MediaFile],
    usage: DiskUsage,
    settings: PressureConfig,
    *,
    protect: Sequence[str],
    published: Container[str],
    local_refs: Mapping[str, Sequence[FeedNull]],
    cdn_enabled: bool,
    now: float,
) -> PressurePlan:
    """Choose the fewest victims, first in eviction order, whose allocated bytes reach the target.

    ``published`` holds the media paths the feed shows by CDN URL, ``local_refs``
    the feed fields naming each path by local URL. Pure: no disk, ``now`` given.
    """
    plan = PressurePlan(bytes_to_free(usage, settings.target))
    need = plan.needed_bytes
    cutoff_ns = int((now - settings.min_age) * 1e9)
    protected_name, protected_path = protect_matchers(protect)
    eligible_files = [0, 0, 0]
    eligible_bytes = [0, 0, 0]
    heap: list[_HeapEntry] = []
    chosen_bytes = 0
    for file in files:
        path = file.path
        if protected_name(path[path.rfind("/") + 1 :]) or protected_path(path):
            plan.protected.add(file.allocated)
        elif file.mtime_ns > cutoff_ns:
            plan.too_young.add(file.allocated)
        elif file.nlink > 1:
            plan.hard_linked.add(file.allocated)
            plan.kept.append(Kept(path, f"has {file.nlink - 1} other hard link(s): deleting it frees nothing"))
        elif file.allocated:  # a file without allocated blocks frees nothing: not worth a placeholder
            if path in local_refs:
                rank = REFERENCED
            elif cdn_enabled and path in published:
                rank = PUBLISHED
            else:
                rank = UNREFERENCED
            eligible_files[rank] += 1
            eligible_bytes[rank] += file.allocated
            if need == 0 or (chosen_bytes >= need and (-rank, -file.mtime_ns) < heap[0][:2]):
                continue  # enough is chosen already, all of it before this file
            heapq.heappush(heap, (-rank, -file.mtime_ns, _Later(path), rank, file))
            chosen_bytes += file.allocated
            while chosen_bytes - heap[0][4].allocated >= need:
                chosen_bytes -= heapq.heappop(heap)[4].allocated
    plan.eligible = [Tally(files, size) for files, size in zip(eligible_files, eligible_bytes, strict=True)]
    for *_, rank, file in sorted(heap, reverse=True):
        plan.chosen[rank].add(file.allocated)
        plan.actions.extend(local_refs.get(file.path, ()))
        plan.actions.append(
            Delete(
                path=file.path,
                bytes=file.allocated,
                reason="pressure",
                age=now - file.mtime_ns / 1e9,
                identity=file.identity,
                detail=CLASS_DETAILS[rank],
            )
        )
    return plan


# --- observing the tree -------------------------------------------------------


@dataclass
class Holdings:
    """Allocated bytes per top-level entry of DATA_DIR, counted by the walk (each inode once),
    to say what holds the space when eviction is not enough; and what the walk couldn't read."""

    entries: dict[str, Tally] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _linked: set[tuple[int, int]] = field(default_factory=set)

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries.values())

    def largest(self, count: int) -> list[tuple[str, Tally]]:
        return sorted(self.entries.items(), key=lambda item: item[1].bytes, reverse=True)[:count]

    def on_error(self, path: str, error: OSError) -> None:
        self.errors.append(f"{path or '.'}: {error.strerror or error}")


def walk_media(data_dir: DataDir, media_dirs: Sequence[str], holdings: Holdings) -> Iterator[MediaFile]:
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
            (entry if directory else holdings.entries.setdefault(name, Tally())).add(allocated)
        if in_media:
            yield MediaFile(
                f"{directory}/{name}", st.st_mtime_ns, allocated, st.st_nlink, st.st_dev, st.st_ino, st.st_size
            )


def _first_sight(holdings: Holdings, st: os.stat_result) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in holdings._linked:
        return False
    holdings._linked.add(key)
    return True
