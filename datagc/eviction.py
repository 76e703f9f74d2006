"""Pressure's ranking and planning, pure: which media files to evict, in which order, to reach the target.

Usage is df's Use% (``facts.DiskUsage``). Deleting a file of ``b`` allocated
bytes moves ``b`` from used to available, so the bytes to free are known
before the walk: ``used - target * (used + available)``. The planner streams
the observed files once and keeps only the ones it needs (a bounded heap over
the eviction order, SPEC §7 rule 7), so memory grows with the victims, not
with the tree.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from datagc.config import PressureConfig
from datagc.facts import DiskUsage, FileStat
from datagc.model import Delete, FeedNull, Kept, Plan, note

#: Eviction classes, in eviction order (SPEC §7.7).
PUBLISHED, UNREFERENCED, REFERENCED = 0, 1, 2
CLASS_NAMES = ("published", "unreferenced", "referenced")
CLASS_DETAILS = ("on the CDN", "unreferenced", "referenced by the feed")
#: added to the detail of a published copy the CDN confirmed (``cdn.verify``)
VERIFIED = ", verified"


@dataclass
class Tally:
    """A count of files and their allocated bytes."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass
class PressurePlan(Plan):
    """What to delete to reach the target, and what was spared and why."""

    needed_bytes: int = 0
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


class _Later:
    """A path that sorts in reverse, so that a min-heap of negated keys has the last victim on top."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __lt__(self, other: _Later) -> bool:
        return self.path > other.path


#: (-eviction key, reversed path, rank, file): heapq's smallest is the last victim in eviction order
_HeapEntry = tuple[int, _Later, int, FileStat]


def plan_pressure(
    files: Iterable[FileStat],
    usage: DiskUsage,
    settings: PressureConfig,
    *,
    spared: Callable[[str], bool],
    published: Container[str],
    local_refs: Mapping[str, Sequence[FeedNull]],
    cdn_enabled: bool,
    now: float,
) -> PressurePlan:
    """Choose the fewest victims, first in eviction order, whose allocated bytes reach the target.

    ``spared(path)`` says a file may never be evicted (``veto.Veto.spares``:
    protected, or under state.dir); ``published`` holds the media paths the
    feed shows by CDN URL, ``local_refs`` the feed fields naming each path by
    local URL. Pure: no disk, ``now`` given.
    """
    plan = PressurePlan(needed_bytes=bytes_to_free(usage, settings.target))
    need = plan.needed_bytes
    cutoff_ns = int((now - settings.min_age) * 1e9)
    eligible_files = [0, 0, 0]
    eligible_bytes = [0, 0, 0]
    heap: list[_HeapEntry] = []
    chosen_bytes = 0
    for file in files:
        path = file.path
        if spared(path):
            plan.protected.add(file.allocated)
        elif file.mtime_ns > cutoff_ns:
            plan.too_young.add(file.allocated)
        elif file.nlink > 1:
            plan.hard_linked.add(file.allocated)
            plan.kept.append(Kept(path, note("hard-linked", others=file.nlink - 1)))
        elif file.allocated:  # a file without allocated blocks frees nothing: not worth a placeholder
            if path in local_refs:
                rank = REFERENCED
            elif cdn_enabled and path in published:
                rank = PUBLISHED
            else:
                rank = UNREFERENCED
            eligible_files[rank] += 1
            eligible_bytes[rank] += file.allocated
            key = (rank << 64) + file.mtime_ns  # eviction order: class, then oldest first
            if need == 0 or (chosen_bytes >= need and key > -heap[0][0]):
                continue  # enough is chosen already, all of it before this file
            heapq.heappush(heap, (-key, _Later(path), rank, file))
            chosen_bytes += file.allocated
            while chosen_bytes - heap[0][3].allocated >= need:
                chosen_bytes -= heapq.heappop(heap)[3].allocated
    plan.eligible = [Tally(files, size) for files, size in zip(eligible_files, eligible_bytes, strict=True)]
    heap.sort()  # the last victim first: pop() yields them in eviction order, each entry freed as it goes
    while heap:
        _, _, rank, file = heap.pop()
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
