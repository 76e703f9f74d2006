"""The one executor: applies a plan, or with ``--dry-run`` records it unapplied.

Every pass hands its plan here. For deletions the order is the feed
consistency rule's (SPEC §7 rule 6):

1. null, in the feed files, every local reference to a file about to be
   deleted (the feed is read again now, so references added since planning
   count too). Files a feed may reference but that couldn't be updated are
   kept, saying why;
2. unlink each file if it is still what was planned (``safety.unlink_if_unchanged``),
   directory by directory. One failure never stops the others. When step 1
   failed for lack of space and step 2 freed some, step 1 is tried once more
   for the files it held back, and those are deleted if it succeeds;
3. read the feed once more and null again any reference to a file deleted
   here (the service may have written one back meanwhile).

The FeedNull actions of the plan say what a dry run would change; a real run
reports the nulls it actually wrote. ``step`` receives what happened: actions,
kept files with why, reclaimed bytes, notes, and on failures status "error",
``error``, ``Exit.STEP_FAILED`` and ``details["errno"]`` (ENOSPC lets run-all
retry a rotation).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field

from datagc import feed, safety
from datagc.exitcodes import Exit
from datagc.model import Action, Delete, Kept, PassContext, Rotate, StepReport

#: its directory was replaced by a symlink, a file or a mount since planning: the file is not what was planned
_NOT_A_DIRECTORY_ANY_MORE = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EXDEV})


def execute(ctx: PassContext, plan: Sequence[Action], step: StepReport) -> None:
    """Apply ``plan`` (or, with ``ctx.dry_run``, record it as what would be done) into ``step``."""
    if ctx.dry_run:
        _record(plan, step)
        return
    failures = _Failures()
    deletes = [action for action in plan if isinstance(action, Delete)]
    if deletes:
        _apply_deletes(ctx, deletes, step, failures)
    for action in plan:
        if isinstance(action, Rotate):
            _apply_rotation(ctx, action, step, failures)
    failures.report(step)


def _record(plan: Sequence[Action], step: StepReport) -> None:
    for action in plan:
        step.actions.append(action)
        if isinstance(action, Delete):
            step.reclaimed_bytes += action.bytes
        elif isinstance(action, Rotate):
            step.reclaimed_bytes += max(0, action.bytes_before - action.bytes_after)


@dataclass
class _Failures:
    """OS errors met along the way: per errno, how many and one example."""

    counts: dict[int, int] = field(default_factory=dict)
    first: str | None = None
    first_errno: int | None = None

    def add(self, code: int | None, message: str) -> None:
        # ENOSPC is the one run-all acts on (it retries the step once space was freed): it is reported first.
        if self.first is None or (code == errno.ENOSPC and self.first_errno != errno.ENOSPC):
            self.first, self.first_errno = message, code
        self.counts[code or 0] = self.counts.get(code or 0, 0) + 1

    def report(self, step: StepReport) -> None:
        if self.first is None:
            return
        step.status = "error"
        total = sum(self.counts.values())
        step.error = self.first if total == 1 else f"{self.first} (and {total - 1} more problems)"
        step.flags |= Exit.STEP_FAILED
        step.details.setdefault("errno", errno.errorcode.get(self.first_errno or 0, ""))


def _apply_deletes(ctx: PassContext, deletes: list[Delete], step: StepReport, failures: _Failures) -> None:
    data_dir, config = ctx.data_dir, ctx.config
    before = feed.null_references(data_dir, config, [action.path for action in deletes])
    step.actions.extend(before.nulls)
    held = before.blocked
    deleted = _unlink_all(data_dir, [action for action in deletes if action.path not in held], before.nulled,
                          step, failures)
    problems = before.problems
    if held and deleted and any(problem.errno == errno.ENOSPC for problem in problems):
        retry = feed.null_references(data_dir, config, list(held))
        step.actions.extend(retry.nulls)
        step.notes.append("the feed could not be rewritten for lack of space before the deletions; "
                          "it was tried again once they had freed some")
        problems = retry.problems
        released = [action for action in deletes if action.path in held and action.path not in retry.blocked]
        held = retry.blocked
        deleted += _unlink_all(data_dir, released, retry.nulled, step, failures)
    for problem in problems:
        failures.add(problem.errno, str(problem))
        step.notes.append(f"{problem}; the files it may reference were kept")
    step.kept.extend(Kept(path, why) for path, why in held.items())
    if deleted:
        after = feed.null_references(data_dir, config, deleted)
        step.actions.extend(after.nulls)
        if after.nulls:
            step.notes.append(f"the feed named {len(after.nulled)} deleted file(s) again after the deletions "
                              "(the service rewrote it meanwhile); those references were set to null again")
        for problem in after.problems:
            failures.add(problem.errno, str(problem))
            step.notes.append(f"{problem}; it could not be checked for references to the files just deleted")


def _unlink_all(
    data_dir: safety.DataDir, deletes: list[Delete], nulled: set[str], step: StepReport, failures: _Failures
) -> list[str]:
    """Unlink each planned file that is still what was planned; returns the paths unlinked."""
    deleted: list[str] = []
    changed: list[str] = []
    broken_dirs: dict[str, OSError] = {}
    with safety.DirCache(data_dir) as dirs:
        for action in deletes:
            directory, _, name = action.path.rpartition("/")
            try:
                if directory in broken_dirs:
                    raise broken_dirs[directory]
                try:
                    dir_fd = dirs.get(directory)
                except OSError as error:
                    broken_dirs[directory] = error
                    raise
                result = safety.unlink_if_unchanged(dir_fd, name, action.identity)
            except FileNotFoundError:
                continue  # its directory vanished: so did the file
            except OSError as error:
                if error.errno in _NOT_A_DIRECTORY_ANY_MORE:
                    changed.append(action.path)
                    continue
                message = f"could not delete {action.path} ({error.strerror}); it was left as it was"
                failures.add(error.errno, message)
                step.kept.append(Kept(action.path, message))
                continue
            if result == safety.UNLINKED:
                step.actions.append(action)
                step.reclaimed_bytes += action.bytes
                deleted.append(action.path)
            elif result == safety.CHANGED:
                changed.append(action.path)
    for path in changed:
        also = " (its local feed reference had already been set to null)" if path in nulled else ""
        step.kept.append(Kept(path, f"changed since it was planned{also}"))
    if changed:
        step.notes.append(f"kept {len(changed)} file(s) that changed since they were planned, e.g. {changed[0]}")
    return deleted


def _apply_rotation(ctx: PassContext, action: Rotate, step: StepReport, failures: _Failures) -> None:
    """Rotate one log now (its cut is computed again: it grew since the plan) and record what happened."""
    from datagc.tailcopy import failure_reason, rotate_path  # only rotations need the rotation machinery

    settings = ctx.config.rotate
    try:
        rotation = rotate_path(ctx.data_dir, action.path, settings.keep_lines, settings.keep_bytes)
    except OSError as error:
        failures.add(error.errno, f"could not rotate {action.path} ({action.bytes_before} bytes): "
                                  f"{failure_reason(error)}; the log was left as it was")
        return
    if not rotation.rotated:
        step.kept.append(Kept(rotation.path, "fits within rotate.keep_lines and rotate.keep_bytes now; left alone"))
        return
    step.actions.append(rotation.action)
    step.reclaimed_bytes += rotation.reclaimed_bytes
    if rotation.carried_bytes:
        carried = step.details.get("carried_bytes", 0)
        step.details["carried_bytes"] = (carried if isinstance(carried, int) else 0) + rotation.carried_bytes
    if rotation.writer_lingered:
        step.notes.append(
            f"{rotation.path}: a process still held the old log open for writing; what it writes from now on "
            "goes to the old, unlinked file and is lost to the new log (restart that writer; see README, "
            "'Writers that keep the log open')")
    if rotation.carry_error:
        step.notes.append(
            f"{rotation.path}: rotated, but {rotation.uncarried_bytes} bytes appended during the rotation could "
            f"not be carried into the new log ({rotation.carry_error})")
