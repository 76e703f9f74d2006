"""``datagc sweep``: old media, redundant local copies of published media, orphan temp files.

With the CDN enabled (it is the source of truth):

- a media file older than ``sweep.max_age`` goes (reason ``age``), anywhere
  under the media directories;
- a media file the feed already shows by its CDN URL goes once older than
  ``sweep.published_grace`` (reason ``published``): the local copy is
  redundant. With ``cdn.verify``, only after the CDN answered a HEAD with 200
  and the same Content-Length.

Always: a file at the top of DATA_DIR matching ``sweep.temp_patterns`` and
older than ``sweep.temp_max_age`` goes (reason ``temp``). With the CDN
disabled, media are never touched.

``protect.patterns`` veto anything (``veto.Protect``: the planner leaves
protected files out, and the executor would refuse them anyway). datagc's own
leftover temps next to the feed files go too (:mod:`datagc.leftovers`). Local
feed references to a deleted file are set to null first (the executor does
it). Where the spec is silent:

- a file the feed shows by CDN URL but that another post also names by a
  local URL is not redundant: it stays until ``max_age`` (and is kept, saying so);
- a feed that doesn't parse keeps every media file (any could be referenced)
  and makes the step an error; temp files still go.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import heapq
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from datagc import cdn, leftovers
from datagc.config.schema import Config
from datagc.facts import FileStat, FileStats
from datagc.feed.index import FeedIndex, index_feeds
from datagc.keptlist import KeptList
from datagc.model import (
    Action,
    Delete,
    Detail,
    Failure,
    FeedNull,
    Kept,
    Note,
    PassContext,
    PassSpec,
    Plan,
    Reason,
    StepReport,
    note,
)
from datagc.parallel import fold_walk
from datagc.progress import MASK, WalkProgress
from datagc.safety.datadir import DataDir
from datagc.safety.rewrite import is_datagc_temp
from datagc.safety.walk import FILE, Share, WalkEntry, WalkErrorHandler
from datagc.veto import Veto, pattern_matcher

_NS = 1_000_000_000
#: the details of sweep's deletions, one value each (a sweep may plan 100k)
_ORPHAN_TEMP, _ON_CDN, _UNREFERENCED = Detail("orphan-temp"), Detail("on-cdn"), Detail("unreferenced")
#: walk errors that are the safety rules at work, not failures
_NOT_ENTERED = {errno.ELOOP: "not-a-directory", errno.ENOTDIR: "not-a-directory", errno.EXDEV: "other-filesystem"}
#: why a file too young to go was kept (--verbose): what it is, and the setting it is younger than
YOUNG_MEDIA, YOUNG_ON_CDN, YOUNG_TEMP = 0, 1, 2
_YOUNG = (("media", "sweep.max_age"), ("on the CDN", "sweep.published_grace"), ("temp file", "sweep.temp_max_age"))


@dataclass
class SweepPlan(Plan):
    """What to delete (with the feed nulls it needs, in order), what was spared and why."""

    #: published deletions that wait for the CDN's word (cdn.verify): path -> (CDN URL, local size)
    to_verify: dict[str, tuple[str, int]] = field(default_factory=dict)
    scanned: int = 0


# --- observing ---------------------------------------------------------------


def _outermost(directories: Sequence[str]) -> list[str]:
    """The media directories that aren't inside another one (each file is walked once)."""
    unique = sorted(set(directories))
    return [d for d in unique if not any(d.startswith(other + "/") for other in unique if other != d)]


def media_files(
    data_dir: DataDir,
    media_dirs: Sequence[str],
    on_error: WalkErrorHandler,
    may_go: Callable[[str, int], bool] = lambda path, mtime_ns: True,
    *,
    young: KeptList | None = None,
    progress: WalkProgress | None = None,
) -> tuple[Iterable[FileStat], int]:
    """The regular files under the media directories that ``may_go(path, mtime_ns)`` (no symlink, no other
    filesystem), and how many files were seen. A large tree's walk is split across cores
    (``datagc.parallel``): each worker sends back only its files that may go. They come in path order, split
    or not (the split varies from run to run, the walk order from one filesystem to another), and are held
    compactly (``FileStats``): they may be most of a million files. The files that may not go are added to
    ``young`` (--verbose: each worker sends its bounded list back); the walk's count goes to ``progress``
    (a terminal)."""
    tops = _outermost(media_dirs)
    if not tops:
        return (), 0
    # one walk for them all: one probe, and one set of workers, per pass
    parts = fold_walk(data_dir, tops, lambda entries, share: _candidates(
        entries, share, may_go, young is not None, progress), on_error)
    if young is not None:
        for _, _, kept in parts:
            if kept is not None:
                young.merge(kept)
    found = heapq.merge(*(part for part, _, _ in parts)) if len(parts) > 1 else parts[0][0]
    return found, sum(seen for _, seen, _ in parts)


def _candidates(
    entries: Iterator[WalkEntry],
    share: Share | None,
    may_go: Callable[[str, int], bool],
    list_young: bool,
    progress: WalkProgress | None,
) -> tuple[FileStats, int, KeptList | None]:
    """A walk's regular files that may go, in path order, its count, and (``list_young``) the others."""
    found = FileStats()
    young = KeptList() if list_young else None
    counter = progress.counter(share) if progress is not None else None
    scanned = 0
    for kind, directory, name, st in entries:
        if kind is not FILE:
            continue
        assert st is not None
        scanned += 1
        if counter is not None and not scanned & MASK:
            counter.seen(scanned)
        path = f"{directory}/{name}"
        if may_go(path, st.st_mtime_ns):
            found.add(path, st)
        elif young is not None:
            young.add(path, st.st_mtime_ns, YOUNG_MEDIA)
    if counter is not None:
        counter.seen(scanned)
    return found.in_path_order(), scanned, young


def temp_files(data_dir: DataDir, patterns: Sequence[str]) -> list[FileStat]:
    """Regular files at the top of DATA_DIR whose name matches ``patterns`` (not datagc's own temps)."""
    if not patterns:
        return []
    matches = pattern_matcher(patterns).fullmatch
    found = []
    fd = data_dir.open_dir("")
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if matches(entry.name) and not is_datagc_temp(entry.name):
                    try:
                        if entry.is_file(follow_symlinks=False):
                            found.append(FileStat.of(entry.name, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        pass  # vanished since readdir
    finally:
        os.close(fd)
    return found


# --- planning (pure) ---------------------------------------------------------


def plan_sweep(
    files: Iterable[FileStat], feed_index: FeedIndex, config: Config, now: float, young: KeptList | None = None
) -> SweepPlan:
    """Decide, for each observed file, whether it goes and why. No disk, no clock: ``now`` is given.

    A file at the top of DATA_DIR (no ``/`` in its path) is a temp file, any
    other a media file. Local references to a deleted file come as FeedNull
    actions just before its Delete. With ``cdn.verify``, published deletions
    are listed in ``to_verify`` (see ``drop_unverified``). The files too young
    to go are added to ``young`` (--verbose).
    """
    files = list(files)
    plan = SweepPlan(scanned=len(files))
    plan.actions = list(decide(files, feed_index, config, now, plan, young))
    return plan


def decide(files: Iterable[FileStat], feed_index: FeedIndex, config: Config, now: float,
           plan: SweepPlan, young: KeptList | None = None) -> Iterator[Action]:
    """``plan_sweep``'s actions as a stream, each file decided as it comes; what is kept, and what awaits
    the CDN's word, go into ``plan`` on the way (the files too young to go into ``young``, --verbose)."""
    sweep = config.sweep
    now_ns = int(now * _NS)
    age_cutoff = now_ns - int(sweep.max_age * _NS)
    grace_cutoff = now_ns - int(sweep.published_grace * _NS)
    temp_cutoff = now_ns - int(sweep.temp_max_age * _NS)
    veto = Veto(config)
    cdn_on = config.cdn.enabled
    published, local_refs = feed_index.published, feed_index.local_refs
    blocked_why = note("feed-unreadable-kept", problems=tuple(feed_index.problems))
    for file in files:
        path = file.path
        is_temp = "/" not in path
        reason: Reason
        if is_temp:
            if file.mtime_ns >= temp_cutoff:
                if young is not None:
                    young.add(path, file.mtime_ns, YOUNG_TEMP)
                continue
            reason, detail = "temp", _ORPHAN_TEMP
        elif not cdn_on:
            continue
        elif file.mtime_ns < age_cutoff:
            reason = "age"
        elif path in published and file.mtime_ns < grace_cutoff:
            if path in local_refs:
                plan.kept.append(Kept(path, note("published-but-local", posts=_referrers(local_refs[path]))))
                continue
            reason = "published"
        else:
            if young is not None:
                on_cdn = path in published and path not in local_refs
                young.add(path, file.mtime_ns, YOUNG_ON_CDN if on_cdn else YOUNG_MEDIA)
            continue
        refused = veto.delete_refusal(path)
        if refused is not None:
            plan.kept.append(Kept(path, refused))
            continue
        if not is_temp:
            if feed_index.problems:
                plan.kept.append(Kept(path, blocked_why))
                continue
            refs = local_refs.get(path, ())
            if refs:
                detail = Detail("referenced-locally", posts=_referrers(refs))
                yield from refs
            else:
                detail = _ON_CDN if path in published else _UNREFERENCED
            if reason == "published" and config.cdn.verify:
                plan.to_verify[path] = (published[path], file.size)
        yield Delete(
            path=path,
            bytes=file.reclaimable,
            reason=reason,
            age=now - file.mtime_ns / _NS,
            identity=file.identity,
            detail=detail,
        )


def _referrers(refs: Sequence[FeedNull]) -> tuple[str, ...]:
    """The ids of the posts naming a file (empty: only posts without an id)."""
    return tuple(sorted({ref.post for ref in refs if ref.post}))


def drop_unverified(plan: SweepPlan, verdicts: Mapping[str, cdn.Verdict]) -> SweepPlan:
    """The plan without the published deletions the CDN didn't confirm (kept, with the CDN's answer)."""
    actions: list[Action] = []
    kept = list(plan.kept)
    for action in plan.actions:
        verdict = verdicts.get(action.path) if isinstance(action, Delete) and action.path in plan.to_verify else None
        if verdict is None or not isinstance(action, Delete):
            actions.append(action)
        elif verdict.ok:
            verified = dataclasses.replace(action.detail or _ON_CDN, verified=True)
            actions.append(dataclasses.replace(action, detail=verified))
        else:
            kept.append(Kept(action.path, note("cdn-unconfirmed", verdict=verdict)))
    return dataclasses.replace(plan, actions=actions, kept=kept, to_verify={})


# --- the pass ----------------------------------------------------------------


def prepare(ctx: PassContext) -> SweepPlan:
    """Observe (datagc's leftovers, temp files, and with the CDN on the feed and the media), plan, and
    with ``cdn.verify`` keep the published copies the CDN doesn't confirm."""
    config, data_dir = ctx.config, ctx.data_dir
    notes: list[Note] = []
    failures: list[Failure] = []

    def walk_error(path: str, error: OSError) -> None:
        if error.errno == errno.ENOENT:
            return  # a media directory that doesn't exist (yet) holds nothing
        if error.errno in _NOT_ENTERED:
            what = "symlink" if _is_symlink(data_dir, path) else _NOT_ENTERED[error.errno]
            notes.append(note("not-entered", path=path or ".", what=what))
            return
        failures.append(Failure(note("media-dir-unreadable", path=path or ".", error=error.strerror), error.errno))

    leftover = leftovers.observe(data_dir, config.feed.files)
    temps = temp_files(data_dir, config.sweep.temp_patterns)
    young = KeptList() if ctx.verbose else None
    if config.cdn.enabled:
        index = index_feeds(data_dir, config)
        age_cutoff, published = int(ctx.now * _NS) - int(config.sweep.max_age * _NS), index.published
        media, scanned = media_files(data_dir, config.sweep.media_dirs, walk_error,
                                     lambda path, mtime_ns: mtime_ns < age_cutoff or path in published,
                                     young=young, progress=ctx.progress)
        files: Iterable[FileStat] = chain(temps, media)
        failures.extend(Failure(note("feed-unreadable-all-kept", problem=problem), problem.errno)
                        for problem in index.problems)
        if not config.cdn.public_url:
            notes.append(note("no-public-url"))
    else:
        index = FeedIndex()  # no media is touched, so the feed needs no reading
        files, scanned = temps, 0
        notes.append(note("cdn-disabled", source=config.sources.get("cdn.enabled", "default")))
    plan = SweepPlan(scanned=len(temps) + scanned)  # every file seen, not only those that may go
    if young is not None:  # listed when the executor has taken the plan: decide() adds to it on the way
        plan.list_kept = functools.partial(young.settle, functools.partial(_younger, config, ctx.now), _too_young)
    # planned as the executor takes them: a million deletions are never all held (with cdn.verify, they are)
    actions = chain(leftovers.plan(leftover, ctx.now), decide(files, index, config, ctx.now, plan, young))
    plan.actions = list(actions) if config.cdn.enabled and config.cdn.verify else actions
    if plan.to_verify:
        verdicts = cdn.verify_all(plan.to_verify, config.cdn.public_url, cdn.VERIFY_TIMEOUT)
        plan = drop_unverified(plan, verdicts)
        notes.extend(note("cdn-unconfirmed-kept", path=path, verdict=verdict)
                     for path, verdict in verdicts.items() if not verdict.ok)
    plan.notes.extend(notes)
    plan.failures.extend(failures)
    plan.details["scanned_files"] = plan.scanned
    return plan


def _younger(config: Config, now: float, path: str, mtime_ns: int, code: int) -> Note:
    what, key = _YOUNG[code]
    limit = getattr(config.sweep, key.removeprefix("sweep."))
    return note("younger-than", what=what, age=now - mtime_ns / _NS, key=key, limit=limit)


def _too_young(code: int) -> str:
    return "too_young"


def _is_symlink(data_dir: DataDir, path: str) -> bool:
    """For the note only: open_dir reports a symlinked directory as ENOTDIR."""
    try:
        return stat.S_ISLNK(os.stat(path or ".", dir_fd=data_dir.fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def conclude(ctx: PassContext, plan: SweepPlan, step: StepReport) -> None:
    """Say so when there was nothing to sweep."""
    if step.status == "ok" and not step.deleted_files:
        step.status = "skipped"
        step.notes.append(note("nothing-to-sweep", scanned=plan.scanned))


PASS = PassSpec("sweep", prepare, conclude)
