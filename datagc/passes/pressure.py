"""``datagc pressure``: when a pressure limit is crossed (the disk fraction, the data dir's budget,
the free floor, inodes: :mod:`datagc.limits`), evict media until every crossed limit is back at
its target (SPEC §2, §7.7).

``prepare`` measures the limits and, when one is crossed, reads the feed, finds
the files processes hold open (:mod:`datagc.openfiles`), walks the tree (:mod:`datagc.planwalk`: the
census shared with audit, :mod:`datagc.census`) into the pure planner (:mod:`datagc.eviction`) and, with
``cdn.verify``, asks the CDN about the published victims; the executor evicts;
``conclude`` measures again and explains the outcome.

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
- A file with other hard links frees nothing: never a victim, listed as kept. Nor
  does a file some process holds open (found in /proc once per pass, by device
  and inode): kept, reported with the holder, and the next file in order taken.
- With ``cdn.verify``, a copy ranks as published only once the CDN answered
  for it (200, same size). The published victims are checked; if some fail,
  the plan is made again with only the confirmed copies ranked first (the
  others rank with the local-only copies), so no unconfirmed copy goes early.
- ``protect.patterns`` match the file name; a pattern with a ``/`` matches the
  path relative to DATA_DIR (``veto.Protect``, the same matcher as every pass).
- The walk covers all of DATA_DIR (each file once, only media are
  candidates), so that when eviction is not enough the report can say which
  entries hold the space and how much of the disk DATA_DIR accounts for.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from datagc import cdn, leftovers, limits, openfiles
from datagc.cdn import is_media_path
from datagc.census import Census
from datagc.eviction import (
    CLASS_DETAILS,
    CLASS_NAMES,
    NO_BLOCKS,
    NOT_NEEDED,
    PUBLISHED,
    SPARED,
    TOO_YOUNG,
    PressurePlan,
    Tally,
    evictions,
    rank_pressure,
)
from datagc.facts import DiskUsage
from datagc.feed.index import FeedIndex, index_feeds
from datagc.limits import Figures, Limit, Need
from datagc.model import Detail, Failure, Note, PassContext, PassSpec, StepReport, note
from datagc.openfiles import OpenFiles
from datagc.planwalk import plan_on_walk
from datagc.safety.datadir import DataDir
from datagc.veto import Veto

#: entries of DATA_DIR named when the disk stays above the threshold
TOP_HOLDERS = 5


@dataclass
class PressurePass(PressurePlan):
    """The eviction plan with what the pass observed: the limits before, the census of the walk."""

    before: Figures | None = None
    #: every limit as the pass found it
    standing: list[Limit] = field(default_factory=list)
    census: Census = field(default_factory=Census)
    #: the feed could not be read: nothing may be evicted, the disk stays above the threshold
    blind: bool = False
    #: published victims the CDN confirmed (``cdn.verify``)
    verified: Container[str] = ()


def prepare(ctx: PassContext) -> PressurePass:
    """Measure the limits; when one is crossed read the feed, walk and plan (verify and plan again with
    ``cdn.verify``)."""
    config, data_dir, settings = ctx.config, ctx.data_dir, ctx.config.pressure
    details: dict[str, object] = {"threshold": settings.threshold, "target": settings.target,
                                  "min_age_seconds": settings.min_age, "cdn_enabled": config.cdn.enabled}
    try:
        before = limits.measure(data_dir, settings)
    except OSError as error:
        why = note("pressure-statfs-failed", data_dir=str(data_dir.path), error=error.strerror)
        return PressurePass(details=details, failures=[Failure(why, error.errno)])
    standing = limits.evaluate(before, settings)
    details["used_fraction_before"] = before.fs.usage.used_fraction
    details["limits"] = [limits.limit_json(limit, limit) for limit in standing]
    if not limits.crossed(standing):
        below = note("pressure-below", limits=standing)
        return PressurePass(details=details, notes=[below], skipped=True, before=before, standing=standing)
    index = index_feeds(data_dir, config)
    if not index.complete:
        why = note("pressure-feed-unreadable", problems=tuple(index.problems))
        return PressurePass(details=details, failures=[Failure(why, index.problems[0].errno)], before=before,
                            standing=standing, blind=True)
    found = leftovers.observe(data_dir, config.feed.files)
    open_files = openfiles.scan(data_dir.dev)
    plan = _plan(ctx, limits.need(standing), open_files, index)
    _list_kept(ctx, plan)
    plan.before, plan.standing = before, standing
    plan.details.update(details)
    # made as the executor takes them: a quarter of a million evictions are never all held as actions
    plan.actions = chain(leftovers.plan(found, ctx.now), evictions(plan, index.local_refs, ctx.now, plan.verified))
    if config.cdn.enabled and not config.cdn.public_url:
        plan.notes.append(note("no-public-url"))
    _report_walk_errors(plan, config.sweep.media_dirs)
    _report_unwalked_media_dirs(plan, data_dir, config.sweep.media_dirs)
    _report_held_open(plan, open_files)
    return plan


def _plan(ctx: PassContext, need: Need, open_files: OpenFiles, index: FeedIndex) -> PressurePass:
    """Observe and plan; with ``cdn.verify``, plan again if some published victims are not on the CDN."""
    plan = _observe_and_plan(ctx, need, open_files, index.published, index)
    if not ctx.config.cdn.verify or not (requests := _to_verify(plan, index)):
        return plan
    verdicts = cdn.verify_all(requests, ctx.config.cdn.public_url, cdn.VERIFY_TIMEOUT)
    confirmed = {path: index.published[path] for path, verdict in verdicts.items() if verdict.ok}
    if len(confirmed) < len(verdicts):
        unconfirmed = [note("cdn-local-only", path=path, verdict=verdict)
                       for path, verdict in verdicts.items() if not verdict.ok]
        plan = _observe_and_plan(ctx, need, open_files, confirmed, index)
        plan.notes.extend(unconfirmed)
    plan.verified = confirmed.keys()
    return plan


def _observe_and_plan(
    ctx: PassContext, need: Need, open_files: OpenFiles, published: Container[str], index: FeedIndex
) -> PressurePass:
    config = ctx.config
    plan, census = plan_on_walk(ctx.data_dir, config.sweep.media_dirs, functools.partial(
        rank_pressure,
        need=need,
        settings=config.pressure,
        spared=Veto(config).spares,
        published=published,
        local_refs=index.local_refs,
        cdn_enabled=config.cdn.enabled,
        now=ctx.now,
        open_files=open_files,
        list_kept=ctx.verbose,
    ), ctx.progress)
    values = {f.name: getattr(plan, f.name) for f in dataclasses.fields(PressurePlan)}
    return PressurePass(**values, census=census)


def _list_kept(ctx: PassContext, plan: PressurePlan) -> None:
    """--verbose: the first files kept for the ordinary reasons, each with its reason; the rest counted."""
    if plan.listing is None:
        return
    veto, min_age, now = Veto(ctx.config), ctx.config.pressure.min_age, ctx.now

    def why(path: str, mtime_ns: int, code: int) -> Note:
        age = now - mtime_ns / 1e9
        if code == TOO_YOUNG:
            return note("younger-than", what="media", age=age, key="pressure.min_age", limit=min_age)
        if code == SPARED:
            if veto.in_state_dir(path):
                return note("in-state-dir", state_dir=veto.state_dir or ".")
            return note("protected", pattern=veto.protect.which(path))
        if code == NO_BLOCKS:
            return note("no-blocks")
        return note("not-needed", rank=CLASS_DETAILS[code - NOT_NEEDED], age=age)

    listed, plan.kept_unlisted = plan.listing.settle(why, _kept_kind)
    plan.kept.extend(listed)
    plan.listing = None


def _kept_kind(code: int) -> str:
    return ("too_young", "protected", "no_blocks")[code] if code < NOT_NEEDED else "not_needed"


def _to_verify(plan: PressurePlan, index: FeedIndex) -> dict[str, tuple[str, int]]:
    """Victims chosen as published copies, with their CDN URL and local size, for ``cdn.verify``."""
    return {
        file.path: (index.published[file.path], file.size)
        for file, rank in plan.victims
        if rank == PUBLISHED
    }


def _report_walk_errors(plan: PressurePass, media_dirs: Sequence[str]) -> None:
    """Unreadable media directories fail the step (their files were kept); elsewhere they only blur the tally."""
    failed = False
    for path, error in plan.census.errors:
        if error.errno == errno.ENOENT:
            continue  # removed while the walk went on: nothing there to evict
        if is_media_path(path, media_dirs) or path in media_dirs:
            why = note("media-dir-unreadable-kept", path=path, error=error.strerror)
            if failed:
                plan.notes.append(why)
            else:
                plan.failures.append(Failure(why, error.errno))
                failed = True
        else:
            plan.notes.append(note("dir-unreadable-not-counted", path=path or ".", error=error.strerror))


def _report_unwalked_media_dirs(plan: PressurePass, data_dir: DataDir, media_dirs: Sequence[str]) -> None:
    """Name the media directories the walk did not enter: symlinks, non-directories, other filesystems."""
    for media_dir in media_dirs:
        try:
            os.close(data_dir.open_dir(media_dir))
        except FileNotFoundError:
            pass  # no such directory (yet): it holds nothing
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                plan.notes.append(note("media-dir-not-evicted", path=media_dir))


def _report_held_open(plan: PressurePass, open_files: OpenFiles) -> None:
    """Name the files kept because a process holds them open, and say when /proc could not tell."""
    plan.details["held_open"] = [
        {"path": file.path, "bytes": file.allocated, "pid": holder.pid, "command": holder.command}
        for file, holder in plan.held_open
    ]
    if plan.held_open:
        file, holder = plan.held_open[0]
        plan.notes.append(note("held-open-kept", path=file.path, more=len(plan.held_open) - 1,
                               pid=holder.pid, command=holder.command))
    if open_files.unavailable:
        plan.notes.append(note("open-files-unknown"))
    elif open_files.unreadable:
        plan.notes.append(note("open-files-unreadable", count=open_files.unreadable))


# --- conclude -------------------------------------------------------------------


def conclude(ctx: PassContext, plan: PressurePass, step: StepReport) -> None:
    """Measure again (project, dry-run), set the end state, and say what happened."""
    settings = ctx.config.pressure
    before = plan.before
    if before is None or plan.skipped:
        return
    headline: dict[str, object] = {"crossed": limits.crossed(plan.standing)}
    if plan.blind:
        step.still_above = True
        step.notes.insert(0, note("pressure-headline", **headline, outcome="nothing"))
        return
    files, freed = step.deleted("pressure")
    headline.update(files=files, bytes=freed, dry_run=ctx.dry_run)
    if ctx.dry_run:
        after_figures = limits.after_freeing(before, freed, files)
        step.details["used_fraction_projected"] = after_figures.fs.usage.used_fraction
    else:
        try:
            fs = limits.measure_fs(ctx.data_dir.fd)
        except OSError as error:
            step.notes.insert(0, note("pressure-headline", **headline, outcome="deleted"))
            step.fail(note("pressure-statfs-after-failed", error=error.strerror), error.errno)
            return
        # DATA_DIR's bytes as the planning walk counted them, less what went: no second walk
        held = None if before.data_dir_bytes is None else max(0, plan.census.total_bytes - freed)
        after_figures = Figures(fs, held)
        step.details["used_fraction_after"] = fs.usage.used_fraction
    after = limits.evaluate(after_figures, settings)
    step.details["limits"] = [limits.limit_json(limit, was) for limit, was in zip(after, plan.standing, strict=True)]
    step.notes.insert(0, note("pressure-headline", **headline, outcome="deleted", after=after))
    _describe_plan(step, plan, files, freed)
    if limits.crossed(after):
        step.still_above = True
        step.notes.append(_still_above(step, ctx, after_figures.fs.usage, after, plan))
    elif short := [limit for limit, was in zip(after, plan.standing, strict=True)
                   if was.crossed and not limit.at_target]:
        if plan.exhausted:
            step.notes.append(note("pressure-above-target-exhausted", short=short))
        elif not ctx.dry_run:
            step.notes.append(note("pressure-above-target", short=short))


def _describe_plan(step: StepReport, plan: PressurePlan, files: int, freed: int) -> None:
    """The machine-readable facts of the pass (merged into its JSON object)."""
    chosen = {name: Tally() for name in CLASS_NAMES}
    for (reason, detail), count in step.deleted_files.items():
        if reason == "pressure":
            tally = chosen[_class_of(detail)]
            tally.files += count
            tally.bytes += step.deleted_bytes[reason, detail]
    step.details.update(
        needed_bytes=plan.needed_bytes,
        needed_inodes=plan.needed_inodes,
        files=files,
        bytes=freed,
        victims=_tallies_json(chosen),
        eligible=_tallies_json(dict(zip(CLASS_NAMES, plan.eligible, strict=True))),
        spared=_tallies_json({"too_young": plan.too_young, "protected": plan.protected,
                              "hard_linked": plan.hard_linked, "held_open": _held_open_tally(plan)}),
        exhausted=plan.exhausted,
    )


def _held_open_tally(plan: PressurePlan) -> Tally:
    return Tally(len(plan.held_open), sum(file.allocated for file, _ in plan.held_open))


def _class_of(detail: Detail | None) -> str:
    code = detail.code if detail is not None else None
    return CLASS_NAMES[next(rank for rank, known in enumerate(CLASS_DETAILS) if known.code == code)]


def _tallies_json(tallies: Mapping[str, Tally]) -> dict[str, dict[str, int]]:
    return {name: {"files": tally.files, "bytes": tally.bytes} for name, tally in tallies.items()}


def _still_above(
    step: StepReport, ctx: PassContext, after: DiskUsage, standing: list[Limit], plan: PressurePass
) -> Note:
    """Who holds the space an operator must now free by hand: DATA_DIR's largest entries, and its share."""
    census = plan.census
    for name, freed in step.deleted_under.items():
        if name in census.entries:
            census.entries[name].bytes -= freed
    top = census.holders(TOP_HOLDERS)
    held = census.total_bytes
    share = held / after.used_bytes if after.used_bytes else 0.0
    step.details.update(
        holders=[{"path": name, "bytes": tally.bytes} for name, tally in top],
        data_dir_bytes=held,
        data_dir_share=share,
    )
    return note(
        "pressure-still-above",
        crossed=limits.crossed(standing),
        exhausted=plan.exhausted,
        holders=[(name, tally.bytes) for name, tally in top],
        data_dir=str(ctx.data_dir.path),
        held=held,
        used_bytes=after.used_bytes,
        share=share,
        too_young=(plan.too_young.files, plan.too_young.bytes),
        min_age=ctx.config.pressure.min_age,
        protected=(plan.protected.files, plan.protected.bytes),
        hard_linked=(plan.hard_linked.files, plan.hard_linked.bytes),
        held_open=(len(plan.held_open), _held_open_tally(plan).bytes),
    )


PASS = PassSpec("pressure", prepare, conclude)
