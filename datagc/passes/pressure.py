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
- With ``cdn.verify``, a copy ranks as published only once the CDN answered
  for it (200, same size). The published victims are checked; if some fail,
  the plan is made again with only the confirmed copies ranked first (the
  others rank with the local-only copies), so no unconfirmed copy goes early.
- ``protect.patterns`` match the file name; a pattern with a ``/`` matches the
  path relative to DATA_DIR.
- The walk covers all of DATA_DIR (each file once, only media are
  candidates), so that when eviction is not enough the report can say which
  entries hold the space and how much of the disk DATA_DIR accounts for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import gc
import heapq
import math
import os
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from datagc import cdn, feed
from datagc.cdn import is_media_path
from datagc.config import PressureConfig
from datagc.executor import execute
from datagc.exitcodes import Exit
from datagc.model import Action, Delete, FeedNull, Kept, PassContext, StepReport
from datagc.safety import DataDir, DiskUsage, FileIdentity, disk_usage, iter_files
from datagc.units import human_age, human_size

#: Eviction classes, in eviction order (SPEC §7.7).
PUBLISHED, UNREFERENCED, REFERENCED = 0, 1, 2
CLASS_NAMES = ("published", "unreferenced", "referenced")
CLASS_DETAILS = ("on the CDN", "unreferenced", "referenced by the feed")
#: added to the detail of a published copy the CDN confirmed (``cdn.verify``)
VERIFIED = ", verified"
#: entries of DATA_DIR named when the disk stays above the threshold
TOP_HOLDERS = 5


class MediaFile(NamedTuple):
    """A regular file of a media directory, as the walk saw it."""

    path: str
    mtime_ns: int
    allocated: int  # st_blocks * 512
    nlink: int
    dev: int
    ino: int
    size: int
    ctime_ns: int = 0

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)


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


#: (-eviction key, reversed path, rank, file): heapq's smallest is the last victim in eviction order
_HeapEntry = tuple[int, _Later, int, MediaFile]


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


# --- observing the tree -------------------------------------------------------


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
            counted = entry if directory else holdings.entries.setdefault(name, Tally())
            counted.files += 1
            counted.bytes += allocated
        if in_media:
            yield MediaFile(
                f"{directory}/{name}", st.st_mtime_ns, allocated, st.st_nlink, st.st_dev, st.st_ino, st.st_size,
                st.st_ctime_ns,
            )


def _first_sight(holdings: Holdings, st: os.stat_result) -> bool:
    key = (st.st_dev, st.st_ino)
    if key in holdings._linked:
        return False
    holdings._linked.add(key)
    return True


# --- the pass -----------------------------------------------------------------


def run(ctx: PassContext, *, verify_timeout: float = cdn.VERIFY_TIMEOUT) -> StepReport:
    """One pressure pass: measure, and above the threshold observe, plan, execute (or record), measure again."""
    with _cyclic_gc_paused():
        return _run(ctx, verify_timeout)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the pass.

    The pass allocates hundreds of thousands of acyclic objects, many long-lived
    (chosen victims, actions); the collector would traverse them again and again
    for nothing (a fifth of the pass's CPU over 200k files). Reference counting
    still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run(ctx: PassContext, verify_timeout: float) -> StepReport:
    config, data_dir, settings = ctx.config, ctx.data_dir, ctx.config.pressure
    step = StepReport("pressure")
    step.details.update(threshold=settings.threshold, target=settings.target, min_age_seconds=settings.min_age,
                        cdn_enabled=config.cdn.enabled)
    try:
        before = disk_usage(data_dir.fd)
    except OSError as error:
        return _failed(step, f"cannot measure the disk holding {data_dir.path} (statfs: {error.strerror}); "
                             "pressure was skipped for this run and nothing was deleted", error.errno)
    step.details["used_fraction_before"] = before.used_fraction
    headline = f"pressure: {_percent(before.used_fraction)} used"
    if not is_under_pressure(before, settings.threshold):
        step.status = "skipped"
        step.notes.append(f"{headline}, threshold {_percent(settings.threshold, exact=True)}; nothing to do")
        return step
    headline += f" > {_percent(settings.threshold, exact=True)}"

    index = feed.index_feeds(data_dir, config)
    if not index.complete:
        step.flags |= Exit.STILL_ABOVE_THRESHOLD
        problems = "; ".join(str(problem) for problem in index.problems)
        step.notes.append(f"{headline}; deleted nothing")
        return _failed(step, f"{problems}: any media file may be referenced by it, so every media file was kept "
                             "and the disk is still above the threshold; repair the feed or free space by hand",
                       index.problems[0].errno)

    plan, holdings = _plan(ctx, before, index, step, verify_timeout)
    _report_walk_errors(step, holdings, config.sweep.media_dirs)
    _report_unwalked_media_dirs(step, data_dir, config.sweep.media_dirs)
    step.kept.extend(plan.kept)
    if not ctx.dry_run:
        for path in feed.clean_stale_feed_temps(data_dir, config):
            step.notes.append(f"removed {path}, left by an interrupted datagc feed rewrite")
    execute(ctx, plan.actions, step)
    return _conclude(step, ctx, before, plan, holdings, headline)


def _plan(
    ctx: PassContext, before: DiskUsage, index: feed.FeedIndex, step: StepReport, verify_timeout: float
) -> tuple[PressurePlan, Holdings]:
    """Observe and plan; with ``cdn.verify``, plan again if some published victims are not on the CDN."""
    plan, holdings = _observe_and_plan(ctx, before, index.published, index)
    if not ctx.config.cdn.verify or not (requests := _to_verify(plan, index)):
        return plan, holdings
    verdicts = cdn.verify_all(requests, verify_timeout)
    confirmed = {path: index.published[path] for path, verdict in verdicts.items() if verdict.ok}
    if len(confirmed) < len(verdicts):
        step.notes.extend(f"{path} ranked as a local-only copy although the feed shows it on the CDN: "
                          f"{verdict.why}" for path, verdict in verdicts.items() if not verdict.ok)
        plan, holdings = _observe_and_plan(ctx, before, confirmed, index)
    plan.actions = [_verified(action, confirmed) for action in plan.actions]
    return plan, holdings


def _conclude(
    step: StepReport, ctx: PassContext, before: DiskUsage, plan: PressurePlan, holdings: Holdings, headline: str
) -> StepReport:
    """Measure again (project, dry-run), set the exit bits, and say what happened."""
    settings = ctx.config.pressure
    deleted = [action for action in step.actions if isinstance(action, Delete)]
    if deleted:
        step.flags |= Exit.PRESSURE_DELETED
    evicted = f"{len(deleted)} files ({_size(step.reclaimed_bytes)})" if deleted else "nothing"
    if ctx.dry_run:
        after = after_freeing(before, step.reclaimed_bytes)
        step.details["used_fraction_projected"] = after.used_fraction
        outcome = f"would delete {evicted}; projected {_percent(after.used_fraction)}"
    else:
        try:
            after = disk_usage(ctx.data_dir.fd)
        except OSError as error:
            step.notes.insert(0, f"{headline}; deleted {evicted}")
            return _failed(step, f"cannot measure the disk again after the deletions (statfs: {error.strerror})",
                           error.errno)
        step.details["used_fraction_after"] = after.used_fraction
        outcome = f"deleted {evicted}; now {_percent(after.used_fraction)}"
    step.notes.insert(0, f"{headline}; {outcome}")
    _describe_plan(step, plan, deleted)
    if is_under_pressure(after, settings.threshold):
        step.flags |= Exit.STILL_ABOVE_THRESHOLD
        _still_above(step, ctx, after, plan, holdings, deleted)
    elif after.used_fraction > settings.target:
        target = _percent(settings.target, exact=True)
        if plan.exhausted:
            step.notes.append(f"pressure: below the threshold but above the target {target}: "
                              "no other media file may be evicted")
        elif not ctx.dry_run:
            step.notes.append(f"pressure: still above the target {target}: some planned files were kept, or "
                              "deleted files are still held open by a process (datagc audit lists those)")
    return step


def _observe_and_plan(
    ctx: PassContext, before: DiskUsage, published: Container[str], index: feed.FeedIndex
) -> tuple[PressurePlan, Holdings]:
    config = ctx.config
    holdings = Holdings()
    plan = plan_pressure(
        walk_media(ctx.data_dir, config.sweep.media_dirs, holdings),
        before,
        config.pressure,
        protect=config.protect.patterns,
        published=published,
        local_refs=index.local_refs,
        cdn_enabled=config.cdn.enabled,
        now=ctx.now,
    )
    return plan, holdings


def _to_verify(plan: PressurePlan, index: feed.FeedIndex) -> dict[str, tuple[str, int]]:
    """Victims chosen as published copies, with their CDN URL and local size, for ``cdn.verify``."""
    return {
        action.path: (index.published[action.path], action.identity.size)
        for action in plan.actions
        if isinstance(action, Delete) and action.detail == CLASS_DETAILS[PUBLISHED]
    }


def _verified(action: Action, confirmed: Container[str]) -> Action:
    if isinstance(action, Delete) and action.detail == CLASS_DETAILS[PUBLISHED] and action.path in confirmed:
        return dataclasses.replace(action, detail=action.detail + VERIFIED)
    return action


def _report_walk_errors(step: StepReport, holdings: Holdings, media_dirs: Sequence[str]) -> None:
    """Unreadable media directories fail the step (their files were kept); elsewhere they only blur the tally."""
    for path, error in holdings.errors:
        if error.errno == errno.ENOENT:
            continue  # removed while the walk went on: nothing there to evict
        if is_media_path(path, media_dirs) or path in media_dirs:
            message = f"{path} cannot be read ({error.strerror}); its files were kept"
            step.notes.append(message)
            if step.error is None:
                step.status, step.error = "error", message
                step.flags |= Exit.STEP_FAILED
                step.details.setdefault("errno", errno.errorcode.get(error.errno or 0, ""))
        else:
            step.notes.append(f"{path or '.'} cannot be read ({error.strerror}); its size is not counted below")


def _report_unwalked_media_dirs(step: StepReport, data_dir: DataDir, media_dirs: Sequence[str]) -> None:
    """Name the media directories the walk did not enter: symlinks, non-directories, other filesystems."""
    for media_dir in media_dirs:
        try:
            os.close(data_dir.open_dir(media_dir))
        except FileNotFoundError:
            pass  # no such directory (yet): it holds nothing
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                step.notes.append(f"{media_dir} is a symbolic link, not a directory or on another filesystem; "
                                  "not entered, nothing in it was evicted")


def _describe_plan(step: StepReport, plan: PressurePlan, deleted: Sequence[Delete]) -> None:
    """The machine-readable facts of the pass (merged into its JSON object)."""
    chosen = {name: Tally() for name in CLASS_NAMES}
    for action in deleted:
        chosen[_class_of(action)].add(action.bytes)
    step.details.update(
        needed_bytes=plan.needed_bytes,
        files=len(deleted),
        bytes=step.reclaimed_bytes,
        victims=_tallies_json(chosen),
        eligible=_tallies_json(dict(zip(CLASS_NAMES, plan.eligible, strict=True))),
        spared=_tallies_json({"too_young": plan.too_young, "protected": plan.protected,
                              "hard_linked": plan.hard_linked}),
        exhausted=plan.exhausted,
    )


def _class_of(action: Delete) -> str:
    return CLASS_NAMES[CLASS_DETAILS.index(action.detail.removesuffix(VERIFIED))]


def _tallies_json(tallies: Mapping[str, Tally]) -> dict[str, dict[str, int]]:
    return {name: {"files": tally.files, "bytes": tally.bytes} for name, tally in tallies.items()}


def _still_above(
    step: StepReport,
    ctx: PassContext,
    after: DiskUsage,
    plan: PressurePlan,
    holdings: Holdings,
    deleted: Sequence[Delete],
) -> None:
    """Say who holds the space an operator must now free by hand: DATA_DIR's largest entries, and its share."""
    for action in deleted:
        holdings.entries[action.path.partition("/")[0]].bytes -= action.bytes
    top = holdings.largest(TOP_HOLDERS)
    held = holdings.total_bytes
    share = held / after.used_bytes if after.used_bytes else 0.0
    step.details.update(
        holders=[{"path": name, "bytes": tally.bytes} for name, tally in top],
        data_dir_bytes=held,
        data_dir_share=share,
    )
    spared = []
    if plan.too_young.files:
        spared.append(f"{plan.too_young.files} younger than {human_age(ctx.config.pressure.min_age)} "
                      f"({_size(plan.too_young.bytes)})")
    if plan.protected.files:
        spared.append(f"{plan.protected.files} protected ({_size(plan.protected.bytes)})")
    if plan.hard_linked.files:
        spared.append(f"{plan.hard_linked.files} hard-linked ({_size(plan.hard_linked.bytes)})")
    why = "after deleting every media file it may" if plan.exhausted else "after this pass"
    parts = [
        f"pressure: still {_percent(after.used_fraction)} used > "
        f"{_percent(ctx.config.pressure.threshold, exact=True)} {why}",
        "the rest is held by " + ", ".join(f"{name} {_size(tally.bytes)}" for name, tally in top),
        f"{ctx.data_dir.path} holds {_size(held)} of the {_size(after.used_bytes)} used ({_percent(share)})",
    ]
    if spared:
        parts.append("media spared: " + ", ".join(spared))
    parts.append("an operator must free space or grow the disk")
    step.notes.append("; ".join(parts))


def _failed(step: StepReport, message: str, code: int | None) -> StepReport:
    step.status, step.error = "error", message
    step.flags |= Exit.STEP_FAILED
    step.details.setdefault("errno", errno.errorcode.get(code or 0, ""))
    return step


def _percent(fraction: float, exact: bool = False) -> str:
    """``73.1%``; ``exact`` for configured values: ``70%``, ``65.5%``."""
    if exact:
        return f"{fraction * 100:.6f}".rstrip("0").rstrip(".") + "%"
    return f"{fraction * 100:.1f}%"


_size = human_size
