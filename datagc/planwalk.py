"""Pressure's plan made on the census walk (``datagc.census``), split across cores.

``plan_on_walk`` walks all of DATA_DIR once: the census counts it, and the
media files it streams go to the eviction planner. Split across cores
(``datagc.parallel``), each worker counts its share and plans over its
share's media files; the parent adds the counts up and merges the workers'
victims in eviction order. That union holds every victim of a plan over the
whole tree (the victims a worker contributes are a prefix of its own share's
eviction order, and its own plan took the shortest prefix that frees what is
needed), so the shortest prefix of the merge that frees what is needed is the
plan a serial walk makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from datagc.census import Census, count_walk
from datagc.eviction import PressurePlan, Tally, take_merged
from datagc.facts import FileStat
from datagc.keptlist import KeptList
from datagc.parallel import fold_walk
from datagc.progress import WalkProgress
from datagc.safety.datadir import DataDir
from datagc.safety.walk import Share, WalkEntry

Planner = Callable[[Iterable[FileStat]], PressurePlan]


@dataclass
class _Part:
    """What one worker sends back: its census, and its plan (its victims compactly, in eviction order)."""

    census: Census
    plan: PressurePlan


def plan_on_walk(
    data_dir: DataDir, media_dirs: Sequence[str], planner: Planner, progress: WalkProgress | None = None
) -> tuple[PressurePlan, Census]:
    """Walk all of DATA_DIR (split across cores when it is large), count it and plan with ``planner``
    (``eviction.rank_pressure``); the walk's count goes to ``progress`` (a terminal)."""
    census = Census()

    def fold(entries: Iterator[WalkEntry], share: Share | None) -> _Part:
        part = Census()
        counter = progress.counter(share) if progress is not None else None
        return _Part(part, planner(count_walk(entries, part, media_dirs, counter)))

    parts = fold_walk(data_dir, "", fold, census.on_error)
    for part in parts:
        census.add(part.census)
    census.settle()
    if len(parts) == 1:
        return parts[0].plan, census
    return _merged([part.plan for part in parts]), census


def _merged(parts: Sequence[PressurePlan]) -> PressurePlan:
    """The plan over the whole tree from the plans of its shares: the shortest prefix, in eviction order, of
    the shares' victims merged, that frees what is needed; what the shares counted and spared, added up."""
    first = parts[0]
    plan = PressurePlan(needed_bytes=first.needed_bytes, needed_inodes=first.needed_inodes,
                        listing=None if first.listing is None else KeptList())
    take_merged(plan, [part.victims for part in parts])
    _add_spared(plan, parts)
    return plan


def _add_spared(plan: PressurePlan, parts: Sequence[PressurePlan]) -> None:
    """The second plan saw only victims: what the workers counted and spared is theirs, added up."""
    plan.eligible = [Tally(sum(part.eligible[rank].files for part in parts),
                           sum(part.eligible[rank].bytes for part in parts)) for rank in range(len(plan.eligible))]
    for name in ("too_young", "protected", "hard_linked"):
        tallies = [getattr(part, name) for part in parts]
        setattr(plan, name, Tally(sum(t.files for t in tallies), sum(t.bytes for t in tallies)))
    plan.kept = sorted((kept for part in parts for kept in part.kept), key=lambda kept: kept.path)
    if plan.listing is not None:  # --verbose: the merge's (victims it let go) and every worker's
        for part in parts:
            if part.listing is not None:
                plan.listing.merge(part.listing)
    plan.held_open = sorted((held for part in parts for held in part.held_open), key=lambda held: held[0].path)
