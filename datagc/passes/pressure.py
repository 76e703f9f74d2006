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
import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from datagc.config import PressureConfig
from datagc.model import Action, Delete, FeedNull, Kept
from datagc.safety import DiskUsage, FileIdentity

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
    identity: FileIdentity


@dataclass
class ClassTotal:
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
    eligible: list[ClassTotal] = field(default_factory=lambda: [ClassTotal() for _ in CLASS_NAMES])
    #: chosen victims per class
    chosen: list[ClassTotal] = field(default_factory=lambda: [ClassTotal() for _ in CLASS_NAMES])
    too_young: ClassTotal = field(default_factory=ClassTotal)
    protected: ClassTotal = field(default_factory=ClassTotal)
    hard_linked: ClassTotal = field(default_factory=ClassTotal)

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


def protect_matcher(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex for ``protect.patterns``; a pattern with ``/`` matches the relative path, others the name."""
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        translated = fnmatch.translate(pattern)
        parts.append(translated if "/" in pattern else f"(?:.*/)?{translated}")
    return re.compile("|".join(f"(?:{part})" for part in parts))


class _Chosen:
    """A victim in a heap whose top is the last one in eviction order, the first to give back."""

    __slots__ = ("file", "key", "rank")

    def __init__(self, key: tuple[int, int, str], rank: int, file: MediaFile) -> None:
        self.key = key
        self.rank = rank
        self.file = file

    def __lt__(self, other: _Chosen) -> bool:
        return self.key > other.key


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
    is_protected = protect_matcher(protect)
    heap: list[_Chosen] = []
    chosen_bytes = 0
    for file in files:
        if is_protected is not None and is_protected.fullmatch(file.path):
            plan.protected.add(file.allocated)
            continue
        if file.mtime_ns > cutoff_ns:
            plan.too_young.add(file.allocated)
            continue
        if file.nlink > 1:
            plan.hard_linked.add(file.allocated)
            plan.kept.append(Kept(file.path, f"has {file.nlink - 1} other hard link(s): deleting it frees nothing"))
            continue
        if file.allocated == 0:
            continue  # frees nothing either; not worth a placeholder
        if file.path in local_refs:
            rank = REFERENCED
        elif cdn_enabled and file.path in published:
            rank = PUBLISHED
        else:
            rank = UNREFERENCED
        plan.eligible[rank].add(file.allocated)
        if need == 0:
            continue
        key = (rank, file.mtime_ns, file.path)
        if heap and chosen_bytes >= need and key > heap[0].key:
            continue  # enough is chosen already, all of it before this file
        heapq.heappush(heap, _Chosen(key, rank, file))
        chosen_bytes += file.allocated
        while chosen_bytes - heap[0].file.allocated >= need:
            chosen_bytes -= heapq.heappop(heap).file.allocated
    for victim in sorted(heap, key=lambda chosen: chosen.key):
        file = victim.file
        plan.chosen[victim.rank].add(file.allocated)
        plan.actions.extend(local_refs.get(file.path, ()))
        plan.actions.append(
            Delete(
                path=file.path,
                bytes=file.allocated,
                reason="pressure",
                age=now - file.mtime_ns / 1e9,
                identity=file.identity,
                detail=CLASS_DETAILS[victim.rank],
            )
        )
    return plan


def victims(plan: PressurePlan) -> Iterator[Delete]:
    return (action for action in plan.actions if isinstance(action, Delete))
