"""Pressure's ranking and planning, pure: which media files to evict, in which order, to bring every
crossed limit back to its target.

What to free, in bytes and inodes, is known before the walk (``limits.need``):
each evicted single-link file gives back its allocated bytes and one inode. A
file some process holds open frees nothing until it is closed: it is kept and
the next one in order taken. The planner streams
the observed files once and keeps only the ones it needs (a bounded heap over
the eviction order, SPEC §7 rule 7), so memory grows with the victims, not
with the tree.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from datagc.config.schema import PressureConfig
from datagc.facts import FileStat
from datagc.limits import Need
from datagc.model import Delete, Detail, FeedNull, Kept, Plan, note
from datagc.openfiles import Holder, OpenFiles

#: Eviction classes, in eviction order (SPEC §7.7).
PUBLISHED, UNREFERENCED, REFERENCED = 0, 1, 2
CLASS_NAMES = ("published", "unreferenced", "referenced")
#: each class's victims' detail
CLASS_DETAILS = (Detail("on-cdn"), Detail("unreferenced"), Detail("referenced"))


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
    """What to delete to bring every crossed limit to its target, and what was spared and why."""

    needed_bytes: int = 0
    needed_inodes: int = 0
    #: eligible files (old enough, unprotected, single link, some allocation) per class
    eligible: list[Tally] = field(default_factory=lambda: [Tally() for _ in CLASS_NAMES])
    #: chosen victims per class
    chosen: list[Tally] = field(default_factory=lambda: [Tally() for _ in CLASS_NAMES])
    too_young: Tally = field(default_factory=Tally)
    protected: Tally = field(default_factory=Tally)
    hard_linked: Tally = field(default_factory=Tally)
    #: eligible files that a process holds open (deleting them frees nothing until closed), with the holder
    held_open: list[tuple[FileStat, Holder]] = field(default_factory=list)

    @property
    def planned_bytes(self) -> int:
        return sum(total.bytes for total in self.chosen)

    @property
    def planned_files(self) -> int:
        return sum(total.files for total in self.chosen)

    @property
    def exhausted(self) -> bool:
        """Every eligible file is a victim and that is still not enough."""
        return self.planned_bytes < self.needed_bytes or self.planned_files < self.needed_inodes


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
    need: Need,
    settings: PressureConfig,
    *,
    spared: Callable[[str], bool],
    published: Container[str],
    local_refs: Mapping[str, Sequence[FeedNull]],
    cdn_enabled: bool,
    now: float,
    open_files: OpenFiles | None = None,
) -> PressurePlan:
    """Choose the fewest victims, first in eviction order, that free ``need``: its bytes (the victims'
    allocated bytes) and its inodes (one per victim).

    ``spared(path)`` says a file may never be evicted (``veto.Veto.spares``:
    protected, or under state.dir); ``published`` holds the media paths the
    feed shows by CDN URL, ``local_refs`` the feed fields naming each path by
    local URL, ``open_files`` the files some process holds open (kept).
    Pure: no disk, ``now`` given.
    """
    plan = PressurePlan(needed_bytes=need.bytes, needed_inodes=need.inodes)
    need_bytes, need_files = need.bytes, need.inodes
    # an empty file frees no byte, but it frees an inode: a candidate only when inodes are needed
    worth = 0 if need_files else 1
    held = open_files.holders if open_files is not None else {}
    cutoff_ns = int((now - settings.min_age) * 1e9)
    eligible_files = [0, 0, 0]
    eligible_bytes = [0, 0, 0]
    heap: list[_HeapEntry] = []
    chosen_bytes = chosen_files = 0
    for file in files:
        path = file.path
        if spared(path):
            plan.protected.add(file.allocated)
        elif file.mtime_ns > cutoff_ns:
            plan.too_young.add(file.allocated)
        elif file.nlink > 1:
            plan.hard_linked.add(file.allocated)
            plan.kept.append(Kept(path, note("hard-linked", others=file.nlink - 1)))
        elif file.allocated < worth:
            continue  # a file without allocated blocks frees no byte: not worth a placeholder
        elif held and (holder := held.get((file.dev, file.ino))) is not None:
            plan.held_open.append((file, holder))
            plan.kept.append(Kept(path, note("held-open", pid=holder.pid, command=holder.command)))
        else:
            if path in local_refs:
                rank = REFERENCED
            elif cdn_enabled and path in published:
                rank = PUBLISHED
            else:
                rank = UNREFERENCED
            eligible_files[rank] += 1
            eligible_bytes[rank] += file.allocated
            key = (rank << 64) + file.mtime_ns  # eviction order: class, then oldest first
            if not need or (chosen_bytes >= need_bytes and chosen_files >= need_files and key > -heap[0][0]):
                continue  # enough is chosen already, all of it before this file
            heapq.heappush(heap, (-key, _Later(path), rank, file))
            chosen_bytes += file.allocated
            chosen_files += 1
            while chosen_bytes - heap[0][3].allocated >= need_bytes and chosen_files > need_files:
                chosen_bytes -= heapq.heappop(heap)[3].allocated
                chosen_files -= 1
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
