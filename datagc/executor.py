"""The one executor: every change any pass makes goes through ``apply``.

First the veto (:mod:`datagc.veto`, SPEC §7 rule 11): an action on a protected
path, outside the media dirs / rotated logs / temp patterns, or under
``state.dir`` is refused, kept and reported, whichever planner proposed it.
Then, with ``--dry-run``, the rest is recorded as what would be done;
otherwise it is applied. For deletions the order is the feed consistency
rule's (rule 6):

1. null, in the feed files, every local reference to a file about to be
   deleted (the feed is read again now, so references added since planning
   count too). Files a feed may reference but that couldn't be updated are
   kept, saying why;
2. unlink each file if it is still what was planned (``unlink_if_unchanged``),
   directory by directory. One failure never stops the others. When step 1
   failed for lack of space and step 2 freed some, step 1 is tried once more
   for the files it held back, and those are deleted if it succeeds;
3. read the feed once more and null again any reference to a file deleted
   here (the service may have written one back meanwhile);
4. references nulled for a file that then stayed (its unlink failed, or it
   changed and was kept) are put back where the feed still holds the null
   datagc wrote (rule 14, ``restore_references``), before step 3.

The FeedNull actions of the plan say what a dry run would change; a real run
reports the nulls (and restores) it actually wrote. Every change applied is
also appended to the journal (``ctx.journal``, SPEC §9); ``repair`` nulls the
feed's references to tombstones for the passes that read the feed.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Iterable, Iterator, Sequence

from datagc.model import Action, Delete, FeedNull, Kept, PassContext, Rotate, StepReport, note
from datagc.safety.unlink import CHANGED, UNLINKED, DirCache, unlink_each
from datagc.veto import Veto

#: its directory was replaced by a symlink, a file or a mount since planning: the file is not what was planned
_NOT_A_DIRECTORY_ANY_MORE = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EXDEV})


#: unlinked files journaled and recorded together (in plan order): a line at a time cost a call chain each
SETTLE_EVERY = 256
#: deletions applied (steps 1 to 4 above) together: a larger plan goes in parts of this many, in plan order
CHUNK = 16384
#: the first part is smaller: its unlinks start as soon as it is planned, and the next parts are planned meanwhile
FIRST_CHUNK = 2048


def apply(ctx: PassContext, plan: Iterable[Action], step: StepReport) -> None:
    """Apply ``plan`` (or, with ``ctx.dry_run``, record it as what would be done) into ``step``.

    The plan may be a stream: it is taken ``CHUNK`` deletions at a time (the
    first part ``FIRST_CHUNK``), each part vetted, its feed references nulled,
    unlinked, checked after and recorded before the next is applied, so that
    memory does not grow with the number of deletions. References put back
    into the feed after a part's check are the next pass's repair (SPEC §9)
    once the journal has them.
    """
    rotations: list[Rotate] = []
    feeds: dict[str, OSError | None] = {}
    veto = Veto(ctx.config)
    if ctx.dry_run:
        for part in _parts(plan):
            _record(ctx, vet(ctx, part, step, veto), step, feeds)
        return
    parts = _Ahead(_parts(plan), lambda part: _Vetted(ctx, part, step.name, veto))
    for vetted in parts:
        allowed = vetted.into(step)
        deletes = [action for action in allowed if isinstance(action, Delete)]
        if deletes:
            _apply_deletes(ctx, deletes, step, parts.plan_ahead)
        rotations += [action for action in allowed if isinstance(action, Rotate)]
    for rotation in rotations:
        _apply_rotation(ctx, rotation, step)


def _parts(plan: Iterable[Action]) -> Iterator[list[Action]]:
    """The plan in parts of ``CHUNK`` deletions (the first of ``FIRST_CHUNK``), each cut after a deletion
    (a Delete's FeedNulls precede it)."""
    part: list[Action] = []
    deletes = 0
    size = min(FIRST_CHUNK, CHUNK)
    for action in plan:
        part.append(action)
        if isinstance(action, Delete):
            deletes += 1
            if deletes >= size:
                yield part
                part, deletes, size = [], 0, CHUNK
    if part:
        yield part


class _Vetted:
    """One part of the plan, vetted (pure: done ahead, while the part before it unlinks); what the veto
    refused is the step's when the part is due (``into``), in plan order."""

    def __init__(self, ctx: PassContext, part: Sequence[Action], name: str, veto: Veto) -> None:
        self._refusals = StepReport(name)
        self.allowed = vet(ctx, part, self._refusals, veto)

    def into(self, step: StepReport) -> list[Action]:
        step.kept += self._refusals.kept
        for failure in self._refusals.failures:
            step.fail(failure.why, failure.errno)
        return self.allowed


class _Ahead:
    """The plan's parts, the next one planned (and vetted: ``prepare``) on demand (``plan_ahead``) while this
    one's unlinks run.

    Planning and vetting are pure (no disk) and the unlinks run in worker
    processes (``unlink_each``), so the two overlap. A planner's exception is
    raised when its part is due, after the current part's outcomes are all
    recorded and journaled.
    """

    def __init__(self, parts: Iterator[list[Action]], prepare: Callable[[list[Action]], _Vetted]) -> None:
        self._parts = parts
        self._prepare = prepare
        self._next: _Vetted | Exception | None = None

    def __iter__(self) -> _Ahead:
        return self

    def __next__(self) -> _Vetted:
        ahead, self._next = self._next, None
        if ahead is None:
            return self._prepare(next(self._parts))
        if isinstance(ahead, Exception):
            raise ahead
        return ahead

    def plan_ahead(self) -> None:
        if self._next is not None:
            return
        try:
            self._next = self._prepare(next(self._parts))
        except StopIteration:
            self._parts = iter(())
        except Exception as error:  # raised in its turn (``__next__``)
            self._next = error


def vet(ctx: PassContext, plan: Sequence[Action], step: StepReport, veto: Veto | None = None) -> list[Action]:
    """The actions every rule allows; each refused one is kept, and fails the step, saying which rule."""
    veto = Veto(ctx.config) if veto is None else veto
    allowed: list[Action] = []
    refused: set[str] = set()
    for action in plan:
        why = veto.refusal(action)
        if why is None:
            allowed.append(action)
            continue
        step.kept.append(Kept(action.path, why))
        step.fail(why)
        if isinstance(action, Delete):
            refused.add(action.path)
    if not refused:
        return allowed
    from datagc.cdn import local_paths  # refusals only: rotate's start-up never imports the CDN's threads

    media_dirs = ctx.config.sweep.media_dirs
    return [action for action in allowed
            if not (isinstance(action, FeedNull) and local_paths(action.url, media_dirs) <= refused)]


def _record(ctx: PassContext, plan: Sequence[Action], step: StepReport, feeds: dict[str, OSError | None]) -> None:
    """The plan as a real run would apply it, less what it can be seen to fail on (``foresight``).

    Those failures are the step's, as in a real run: kept, said why, exit bit 1
    (and no reclaim bit when nothing else would go). ``feeds``: what was found
    of each feed file, for the whole plan.
    """
    from datagc import foresight  # dry runs only: kept out of every command's start-up

    held_by: tuple[str, OSError] | None = None  # a feed null before this Delete that could not be written
    with DirCache(ctx.data_dir) as dirs:
        sight = foresight.Foresight(dirs)
        for action in plan:
            if isinstance(action, FeedNull):
                if action.path not in feeds:
                    feeds[action.path] = sight.obstacle(action.path)
                    if problem := feeds[action.path]:
                        step.fail(note("feed-would-fail", path=action.path, strerror=problem.strerror),
                                  problem.errno)
                if problem := feeds[action.path]:
                    held_by = (action.path, problem)
                else:
                    step.record(action)
                continue
            problem = None if held_by is not None else sight.obstacle(action.path)
            if isinstance(action, Delete) and held_by is not None:
                step.kept.append(Kept(action.path, note("feed-would-hold", feed=held_by[0],
                                                        strerror=held_by[1].strerror)))
            elif problem is not None:
                why = note("would-fail", kind=action.kind, path=action.path, strerror=problem.strerror)
                step.fail(why, problem.errno)
                step.kept.append(Kept(action.path, why))
            else:
                step.record(action)
                if isinstance(action, Delete):
                    step.reclaimed_bytes += action.bytes
                elif isinstance(action, Rotate):
                    step.reclaimed_bytes += max(0, action.bytes_before - action.bytes_after)
            held_by = None


def _apply_deletes(ctx: PassContext, deletes: list[Delete], step: StepReport,
                   meanwhile: Callable[[], None] = lambda: None) -> None:
    """Steps 1 to 4 of the module's docstring for one part of the plan; ``meanwhile`` runs while its unlinks do."""
    from datagc.feed.rewrite import null_references  # only deletions touch the feed (rotate's start-up stays lean)

    data_dir, config = ctx.data_dir, ctx.config
    reasons: dict[str, str] = {action.path: action.reason for action in deletes}
    before = null_references(data_dir, config, [action.path for action in deletes])
    _nulled(ctx, step, before.nulls, reasons)
    written = list(before.nulls)
    held = before.blocked
    nulled = set(before.nulled)
    deleted = _unlink_all(ctx, [action for action in deletes if action.path not in held], nulled, step, meanwhile)
    problems = before.problems
    if held and deleted and any(problem.errno == errno.ENOSPC for problem in problems):
        retry = null_references(data_dir, config, list(held))
        _nulled(ctx, step, retry.nulls, reasons)
        written += retry.nulls
        step.notes.append(note("feed-retried-after-space"))
        problems = retry.problems
        released = [action for action in deletes if action.path in held and action.path not in retry.blocked]
        held = retry.blocked
        nulled |= retry.nulled
        deleted += _unlink_all(ctx, released, nulled, step)
    for problem in problems:
        step.fail(note("feed-problem", problem=problem), problem.errno)
        step.notes.append(note("feed-problem-kept", problem=problem))
    step.kept.extend(Kept(path, note("feed-blocked", problem=problem)) for path, problem in held.items())
    _restore_for_files_that_stayed(ctx, written, nulled - set(deleted), reasons, step)
    if deleted:
        after = null_references(data_dir, config, deleted)
        _nulled(ctx, step, after.nulls, reasons)
        if after.nulls:
            step.notes.append(note("feed-nulled-again", count=len(after.nulled)))
        for problem in after.problems:
            step.fail(note("feed-problem", problem=problem), problem.errno)
            step.notes.append(note("feed-problem-after", problem=problem))


def _restore_for_files_that_stayed(
    ctx: PassContext, written: list[FeedNull], stayed: set[str], reasons: dict[str, str], step: StepReport
) -> None:
    """Rule 14: put back the references nulled for files that were not deleted after all.

    A URL is put back only if every planned file it may name stayed (one that
    names a deleted file too stays null). ``reasons``: each planned file's
    deletion reason, for the journal.
    """
    planned = reasons.keys()
    if not stayed:
        return
    from datagc.cdn import local_paths  # feed changes only (see vet)

    media_dirs = ctx.config.sweep.media_dirs
    restore = [null for null in written if (named := local_paths(null.url, media_dirs) & planned) <= stayed and named]
    if not restore:
        return
    from datagc.feed.rewrite import restore_references

    outcome = restore_references(ctx.data_dir, ctx.config, restore)
    for restored in outcome.restores:
        step.record(restored)
    if ctx.journal is not None:
        for restored in outcome.restores:
            ctx.journal.feed_change(step.name, restored, reasons)
    if outcome.restores:
        step.notes.append(note("feed-restored", count=len(outcome.restores)))
    if outcome.gone:
        step.notes.append(note("feed-restore-gone", count=len(outcome.gone), example=outcome.gone[0].url))
    for problem in outcome.problems:
        step.fail(note("feed-restore-failed", problem=problem), problem.errno)


def _nulled(ctx: PassContext, step: StepReport, nulls: list[FeedNull], reasons: dict[str, str]) -> None:
    """Report (and journal) feed references set to null (``reasons``: media path -> why it goes)."""
    for null in nulls:
        step.record(null)
    if ctx.journal is not None:
        for null in nulls:
            ctx.journal.feed_change(step.name, null, reasons)


def repair(ctx: PassContext, graves: set[str], step: StepReport) -> None:
    """Null every local feed reference to a tombstone (SPEC §9), reported and journaled with reason ``repair``.

    A feed that can't be rewritten fails the step; one that doesn't parse is
    left to the pass reading it, which already reports it.
    """
    from datagc.feed.rewrite import null_references

    outcome = null_references(ctx.data_dir, ctx.config, graves)
    _nulled(ctx, step, [dataclasses.replace(null, reason="repair") for null in outcome.nulls],
            dict.fromkeys(graves, "repair"))
    if outcome.nulls:
        step.notes.append(note("feed-repaired", count=len(outcome.nulled)))
    for problem in outcome.problems:
        if problem.errno is not None:
            step.fail(note("feed-repair-failed", problem=problem), problem.errno)


def _unlink_all(ctx: PassContext, deletes: list[Delete], nulled: set[str], step: StepReport,
                meanwhile: Callable[[], None] = lambda: None) -> list[str]:
    """Unlink each planned file that is still what was planned; returns the paths unlinked.

    What happened to each file is gathered, and reported, in plan order,
    whether the unlinks ran one after the other or overlapped (``unlink_each``,
    which runs ``meanwhile`` once its workers are started).
    """
    deleted: list[str] = []
    changed: list[str] = []
    done: list[Delete] = []  # unlinked, not yet journaled and recorded

    def settle() -> None:
        if ctx.journal is not None:
            ctx.journal.deletes(step.name, done)
        step.record_deletions(done)
        step.reclaimed_bytes += sum(action.bytes for action in done)
        deleted.extend(action.path for action in done)
        done.clear()

    with DirCache(ctx.data_dir) as dirs:
        outcomes = unlink_each(dirs, [(action.path, action.identity) for action in deletes], meanwhile)
        try:
            for action, outcome in zip(deletes, outcomes, strict=True):
                if outcome == UNLINKED:
                    done.append(action)
                    if len(done) >= SETTLE_EVERY:
                        settle()
                elif isinstance(outcome, FileNotFoundError):
                    continue  # its directory vanished: so did the file
                elif isinstance(outcome, OSError):
                    if outcome.errno in _NOT_A_DIRECTORY_ANY_MORE:
                        changed.append(action.path)
                        continue
                    why = note("delete-failed", path=action.path, strerror=outcome.strerror or str(outcome))
                    step.fail(why, outcome.errno)
                    step.kept.append(Kept(action.path, why))
                elif outcome == CHANGED:
                    changed.append(action.path)
        finally:  # what was unlinked is journaled and reported, whatever stopped the loop
            settle()
    for path in changed:
        step.kept.append(Kept(path, note("changed-since-planned", nulled=path in nulled)))
    if changed:
        step.notes.append(note("kept-changed", count=len(changed), example=changed[0]))
    return deleted


def _apply_rotation(ctx: PassContext, action: Rotate, step: StepReport) -> None:
    """Rotate one log now (its cut is computed again: it grew since the plan) and record what happened."""
    from datagc.tailcopy import ORDER_WAIT_S, failure_reason, rotate_path  # only rotations need the machinery

    settings = ctx.config.rotate
    try:
        rotation = rotate_path(ctx.data_dir, action.path, settings.keep_lines, settings.keep_bytes)
    except OSError as error:
        step.fail(note("rotate-failed", path=action.path, bytes=action.bytes_before, why=failure_reason(error)),
                  error.errno)
        return
    if not rotation.rotated:
        step.kept.append(Kept(rotation.path, note("rotate-fits-now")))
        return
    step.record(rotation.action)
    if ctx.journal is not None:
        ctx.journal.rotate(step.name, rotation.action)
    step.reclaimed_bytes += rotation.reclaimed_bytes
    if rotation.carried_bytes:
        carried = step.details.get("carried_bytes", 0)
        step.details["carried_bytes"] = (carried if isinstance(carried, int) else 0) + rotation.carried_bytes
    orders = step.details.setdefault("writer_order", {})
    if isinstance(orders, dict):
        orders[rotation.path] = rotation.order_risk or "kept"
    if rotation.order_risk == "no-lease":
        step.notes.append(note("order-no-lease", path=rotation.path, why=rotation.lease_error))
    elif rotation.order_risk == "held-open":
        step.notes.append(note("order-held-open", path=rotation.path, wait=ORDER_WAIT_S))
    if rotation.writer_lingered:
        step.notes.append(note("writer-lingered", path=rotation.path))
    if rotation.carry_error:
        step.notes.append(note("carry-error", path=rotation.path, bytes=rotation.uncarried_bytes,
                               error=rotation.carry_error))
