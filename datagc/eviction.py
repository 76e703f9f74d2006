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

import dataclasses
import heapq
import struct
import sys
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from datagc.config.schema import PressureConfig
from datagc.facts import FileIdentity, FileStat, Tally
from datagc.keptlist import KeptList
from datagc.limits import Need
from datagc.model import Action, Delete, Detail, FeedNull, Kept, Plan, note
from datagc.openfiles import Holder, OpenFiles

#: Eviction classes, in eviction order (SPEC §7.7).
PUBLISHED, UNREFERENCED, REFERENCED = 0, 1, 2
CLASS_NAMES = ("published", "unreferenced", "referenced")
#: each class's victims' detail
CLASS_DETAILS = (Detail("on-cdn"), Detail("unreferenced"), Detail("referenced"))
#: a published copy the CDN confirmed (``cdn.verify``)
_VERIFIED = dataclasses.replace(CLASS_DETAILS[PUBLISHED], verified=True)
#: why a file was kept, for --verbose's list (``keptlist``): not needed is NOT_NEEDED + its class
TOO_YOUNG, SPARED, NO_BLOCKS, NOT_NEEDED = 0, 1, 2, 3


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
    #: the victims in eviction order, each with its class
    victims: Victims = field(default_factory=lambda: Victims())
    #: --verbose: the files kept for the ordinary reasons (too young, spared, no blocks, not needed)
    listing: KeptList | None = None

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


# A victim is held as one bytes object, an entry (about 140 bytes): its eviction key and path complemented (so that
# bytes order is the reverse of eviction order: a min-heap has the last victim on top), the complemented NUL that
# ends the path, then its numbers (``rank_pressure`` makes them).
_PACKED = struct.Struct("qqqqQQq")  # a FileStat's numbers: mtime_ns, size, allocated, nlink, dev, ino, ctime_ns
_ALLOCATED = struct.Struct("q")
_ALLOCATED_AT = -_PACKED.size + 2 * 8
#: every byte complemented: a complemented string sorts in the reverse order of the original
_FLIP = bytes(range(255, -1, -1))
_MTIME_OFFSET = 1 << 63  # an mtime before 1970 is negative
#: a key's 16 bytes complemented: the key xor this
_KEY_FLIP = (1 << 128) - 1
#: how a path is written in an entry (``os.fsencode``'s, without a call per file)
_ENCODING, _ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _entry_key(entry: bytes) -> int:
    return int.from_bytes(entry[:16], "big") ^ _KEY_FLIP


def _allocated(entry: bytes) -> int:
    value: int = _ALLOCATED.unpack_from(entry, len(entry) + _ALLOCATED_AT)[0]
    return value


def _path(entry: bytes) -> str:
    return entry[16:-_PACKED.size - 1].translate(_FLIP).decode(_ENCODING, _ERRORS)


def victim(entry: bytes) -> tuple[FileStat, int]:
    """The file and class of a victim entry."""
    return FileStat(_path(entry), *_PACKED.unpack_from(entry, len(entry) - _PACKED.size)), _entry_key(entry) >> 64


class Victims:
    """A plan's victims in eviction order, each with its class, as compact entries."""

    def __init__(self, entries: list[bytes] | None = None) -> None:
        self.entries = entries if entries is not None else []

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[FileStat, int]]:
        return map(victim, self.entries)


def plan_pressure(files: Iterable[FileStat], need: Need, settings: PressureConfig, **options: Any) -> PressurePlan:
    """``rank_pressure``'s plan (the same arguments) with its actions (``evictions``) listed."""
    plan = rank_pressure(files, need, settings, **options)
    plan.actions = list(evictions(plan, options["local_refs"], options["now"]))
    return plan


def rank_pressure(
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
    list_kept: bool = False,
) -> PressurePlan:
    """Choose the fewest victims, first in eviction order, that free ``need``: its bytes (the victims'
    allocated bytes) and its inodes (one per victim).

    ``spared(path)`` says a file may never be evicted (``veto.Veto.spares``:
    protected, or under state.dir); ``published`` holds the media paths the
    feed shows by CDN URL, ``local_refs`` the feed fields naming each path by
    local URL, ``open_files`` the files some process holds open (kept).
    Pure: no disk, ``now`` given. The victims are ``plan.victims`` (in
    eviction order, compactly: a pass may evict a quarter of a million files);
    ``evictions`` makes their actions. ``list_kept`` (--verbose): every other
    file kept goes to ``plan.listing`` too (too young, spared, no blocks, not needed).
    """
    plan = PressurePlan(needed_bytes=need.bytes, needed_inodes=need.inodes)
    listing = plan.listing = KeptList() if list_kept else None
    need_bytes, need_files, needed = need.bytes, need.inodes, bool(need)
    # an empty file frees no byte, but it frees an inode: a candidate only when inodes are needed
    worth = 0 if need_files else 1
    held = open_files.holders if open_files is not None else {}
    cutoff_ns = int((now - settings.min_age) * 1e9)
    eligible_files = [0, 0, 0]
    eligible_bytes = [0, 0, 0]
    spared_files = spared_bytes = young_files = young_bytes = 0
    heap: list[bytes] = []  # entries: the smallest is the last victim in eviction order
    push, pop = heapq.heappush, heapq.heappop
    pack, allocated_at, from_bytes = _PACKED.pack, _ALLOCATED.unpack_from, int.from_bytes
    last = 0  # the eviction key of the last victim chosen so far (heap[0])
    chosen_bytes = chosen_files = 0
    for file in files:
        path, mtime_ns, size, allocated, nlink, dev, ino, ctime_ns = file
        if spared(path):
            spared_files += 1
            spared_bytes += allocated
            if listing is not None:
                listing.add(path, mtime_ns, SPARED)
        elif mtime_ns > cutoff_ns:
            young_files += 1
            young_bytes += allocated
            if listing is not None:
                listing.add(path, mtime_ns, TOO_YOUNG)
        elif nlink > 1:
            plan.hard_linked.add(allocated)
            plan.kept.append(Kept(path, note("hard-linked", others=nlink - 1)))
        elif allocated < worth:  # a file without allocated blocks frees no byte: not worth a placeholder
            if listing is not None:
                listing.add(path, mtime_ns, NO_BLOCKS)
        elif held and (holder := held.get((dev, ino))) is not None:
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
            eligible_bytes[rank] += allocated
            # the eviction order: class, then oldest first (non-negative: it is written as 16 unsigned bytes)
            key = (rank << 64) + mtime_ns + _MTIME_OFFSET
            if not needed or (chosen_bytes >= need_bytes and chosen_files >= need_files and key > last):
                if listing is not None:  # enough is chosen already, all of it before this file
                    listing.add(path, mtime_ns, NOT_NEEDED + rank)
                continue
            # the entry made, ``_allocated`` and ``_entry_key`` written out: this runs for most files of a large tree
            push(heap, (key ^ _KEY_FLIP).to_bytes(16, "big") + path.encode(_ENCODING, _ERRORS).translate(_FLIP)
                 + b"\xff" + pack(mtime_ns, size, allocated, nlink, dev, ino, ctime_ns))
            chosen_bytes += allocated
            chosen_files += 1
            top = heap[0]
            while chosen_bytes - allocated_at(top, len(top) + _ALLOCATED_AT)[0] >= need_bytes \
                    and chosen_files > need_files:
                dropped = pop(heap)
                chosen_bytes -= _allocated(dropped)
                chosen_files -= 1
                if listing is not None:
                    list_not_needed(listing, dropped)
                top = heap[0]
            last = from_bytes(top[:16], "big") ^ _KEY_FLIP
    plan.protected, plan.too_young = Tally(spared_files, spared_bytes), Tally(young_files, young_bytes)
    plan.eligible = [Tally(files, size) for files, size in zip(eligible_files, eligible_bytes, strict=True)]
    heap.sort(reverse=True)  # in eviction order, in place
    plan.victims = Victims(heap)
    for entry in heap:
        plan.chosen[_entry_key(entry) >> 64].add(_allocated(entry))
    return plan


def take_merged(plan: PressurePlan, shares: Sequence[Victims]) -> None:
    """``plan``'s victims: the shortest prefix, in eviction order, of the victims of a walk's shares merged that
    frees what ``plan`` needs (each share's are a prefix of its own eviction order: ``datagc.planwalk``); with
    --verbose (``plan.listing``) the shares' victims after it are kept as not needed."""
    entries = sorted(chain.from_iterable(share.entries for share in shares), reverse=True)  # runs: merged
    need_bytes, need_files = plan.needed_bytes, plan.needed_inodes
    chosen_bytes = [0, 0, 0]
    chosen_files = [0, 0, 0]
    taken = total_bytes = 0
    for entry in entries:
        if total_bytes >= need_bytes and taken >= need_files:
            break
        rank, allocated = _entry_key(entry) >> 64, _allocated(entry)
        chosen_files[rank] += 1
        chosen_bytes[rank] += allocated
        total_bytes += allocated
        taken += 1
    if plan.listing is not None:
        for entry in entries[taken:]:
            list_not_needed(plan.listing, entry)
    del entries[taken:]
    plan.victims = Victims(entries)
    plan.chosen = [Tally(files, size) for files, size in zip(chosen_files, chosen_bytes, strict=True)]


def list_not_needed(listing: KeptList, entry: bytes) -> None:
    """--verbose: a victim entry let go (the victims before it free enough) is kept as not needed."""
    file, rank = victim(entry)
    listing.add(file.path, file.mtime_ns, NOT_NEEDED + rank)


def evictions(plan: PressurePlan, local_refs: Mapping[str, Sequence[FeedNull]], now: float,
              verified: Container[str] = ()) -> Iterator[Action]:
    """The plan's actions, made as they are taken: each victim's feed nulls, then its Delete (``verified``:
    published copies the CDN confirmed)."""
    unpack, cut = _PACKED.unpack_from, _PACKED.size
    for entry in plan.victims.entries:
        path = _path(entry)
        mtime_ns, size, allocated, _, dev, ino, ctime_ns = unpack(entry, len(entry) - cut)
        rank = _entry_key(entry) >> 64
        if path in local_refs:
            yield from local_refs[path]
        yield Delete(
            path=path,
            bytes=allocated,
            reason="pressure",
            age=now - mtime_ns / 1e9,
            identity=FileIdentity(dev, ino, size, mtime_ns, ctime_ns),
            detail=_VERIFIED if rank == PUBLISHED and path in verified else CLASS_DETAILS[rank],
        )
