"""The tree census pressure takes on its walk: what each top-level entry of DATA_DIR holds.

One walk of all of DATA_DIR (each file once) streams the media files to the
eviction planner and, on the way, counts the allocated bytes of every
top-level entry (each inode once), so that when eviction is not enough the
report can say which entries hold the space.

``plan_on_walk`` splits that walk across cores (``datagc.parallel``): each
worker counts its share and plans over its share's media files; the parent
adds the counts up and merges the workers' victims in eviction order. That
union holds every victim of a plan over the whole tree (the victims a worker
contributes are a prefix of its own share's eviction order, and its own plan
took the shortest prefix that frees what is needed), so the shortest prefix
of the merge that frees what is needed is the plan a serial walk makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

from datagc.eviction import PressurePlan, Tally, Victims, list_not_needed, victim
from datagc.facts import FileStat
from datagc.keptlist import KeptList
from datagc.parallel import fold_walk
from datagc.progress import MASK, Counter, WalkProgress
from datagc.safety.datadir import DataDir
from datagc.safety.walk import FILE, Share, WalkEntry

Planner = Callable[[Iterable[FileStat]], PressurePlan]


@dataclass
class Holdings:
    """Allocated bytes per top-level entry of DATA_DIR, counted by the walk (each inode once),
    to say what holds the space when eviction is not enough; and what the walk couldn't read."""

    entries: dict[str, Tally] = field(default_factory=dict)
    errors: list[tuple[str, OSError]] = field(default_factory=list)
    #: files with other hard links, counted once when the walk is over: (dev, inode) -> (entry, allocated)
    linked: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.entries.values())

    def largest(self, count: int) -> list[tuple[str, Tally]]:
        return sorted(self.entries.items(), key=lambda item: item[1].bytes, reverse=True)[:count]

    def on_error(self, path: str, error: OSError) -> None:
        self.errors.append((path, error))

    def add(self, other: Holdings) -> None:
        """Count ``other`` (another share of the same walk) in."""
        for name, tally in other.entries.items():
            mine = self.entries.setdefault(name, Tally())
            mine.files += tally.files
            mine.bytes += tally.bytes
        for key, seen in other.linked.items():
            if key not in self.linked or seen < self.linked[key]:
                self.linked[key] = seen

    def settle(self) -> None:
        """Count each hard-linked inode once, under the first entry (in name order) that holds a link to it."""
        for name, allocated in self.linked.values():
            self.entries.setdefault(name, Tally()).add(allocated)
        self.linked.clear()


def media_of(
    entries: Iterator[WalkEntry], media_dirs: Sequence[str], holdings: Holdings, counter: Counter | None = None
) -> Iterator[FileStat]:
    """The regular files of the media directories among ``entries``; every file is counted in ``holdings``
    (files with other hard links in ``holdings.linked``, until ``settle``) and, for the progress display,
    by ``counter``."""
    media = frozenset(media_dirs)
    seen = seen_bytes = 0
    prefixes = tuple(f"{directory}/" for directory in media_dirs)
    current: str | None = None
    in_media = False
    entry = Tally()
    for kind, directory, name, st in entries:
        if kind is not FILE:
            continue
        assert st is not None
        allocated = st.st_blocks * 512
        if counter is not None:
            seen += 1
            seen_bytes += allocated
            if not seen & MASK:
                counter.seen(seen, seen_bytes)
        if directory is not current:
            current = directory
            in_media = directory in media or directory.startswith(prefixes)
            if directory:
                entry = holdings.entries.setdefault(directory.partition("/")[0], Tally())
        top = directory.partition("/")[0] if directory else name
        if st.st_nlink == 1:
            counted = entry if directory else holdings.entries.setdefault(name, Tally())
            counted.files += 1
            counted.bytes += allocated
        else:
            key = (st.st_dev, st.st_ino)
            if key not in holdings.linked or (top, allocated) < holdings.linked[key]:
                holdings.linked[key] = (top, allocated)
        if in_media:
            yield FileStat.of(f"{directory}/{name}", st)
    if counter is not None:
        counter.seen(seen, seen_bytes)


@dataclass
class _Part:
    """What one worker sends back: its census, and its plan (its victims compactly, in eviction order)."""

    holdings: Holdings
    plan: PressurePlan


def plan_on_walk(
    data_dir: DataDir, media_dirs: Sequence[str], planner: Planner, progress: WalkProgress | None = None
) -> tuple[PressurePlan, Holdings]:
    """Walk all of DATA_DIR (split across cores when it is large), count it and plan with ``planner``
    (``eviction.rank_pressure``); the walk's count goes to ``progress`` (a terminal)."""
    census = Holdings()

    def fold(entries: Iterator[WalkEntry], share: Share | None) -> _Part:
        holdings = Holdings()
        counter = progress.counter(share) if progress is not None else None
        return _Part(holdings, planner(media_of(entries, media_dirs, holdings, counter)))

    parts = fold_walk(data_dir, "", fold, census.on_error)
    for part in parts:
        census.add(part.holdings)
    census.settle()
    if len(parts) == 1:
        return parts[0].plan, census
    return _merged([part.plan for part in parts]), census


def _merged(parts: Sequence[PressurePlan]) -> PressurePlan:
    """The plan over the whole tree from the plans of its shares: the shortest prefix, in eviction order, of
    the shares' victims merged, that frees what is needed; what the shares counted and spared, added up."""
    first = parts[0]
    plan = PressurePlan(needed_bytes=first.needed_bytes, needed_inodes=first.needed_inodes,
                        victims=Victims(parts=[part.victims for part in parts]),
                        listing=None if first.listing is None else KeptList())
    entries = plan.victims.merged()
    for entry in entries:
        if plan.planned_bytes >= plan.needed_bytes and plan.planned_files >= plan.needed_inodes:
            if plan.listing is not None:  # --verbose: the shares' victims after the prefix are not needed
                for rest in chain((entry,), entries):
                    list_not_needed(plan.listing, rest)
            break
        file, rank = victim(entry)
        plan.chosen[rank].add(file.allocated)
        plan.victims.count += 1
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
