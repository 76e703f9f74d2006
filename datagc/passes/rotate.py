"""``datagc rotate``: keep only the newest lines of each event log that grew past ``rotate.max_bytes``.

``observe`` looks at each configured log without changing anything (and
finds its cut, reading backwards from the end) and at datagc's leftover temps
next to them; ``plan`` decides, from those facts alone, what to rotate, what
to leave and why; the runner hands the plan to the executor (which rotates
through :mod:`datagc.tailcopy`, or with ``--dry-run`` records it), and
``conclude`` sets the step's status.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from datagc import leftovers
from datagc.config.schema import RotateConfig
from datagc.facts import FileStat
from datagc.model import Action, Failure, Kept, Note, PassContext, PassSpec, Plan, Rotate, StepReport, note
from datagc.safety.datadir import DataDir, join_path, split_path
from datagc.tailcopy import Cut, find_cut

LogState = Literal["regular", "missing", "symlink", "directory", "special", "elsewhere", "unreadable"]

#: States of a log that is not a regular file of DATA_DIR's filesystem: left alone, saying why.
_REFUSED = frozenset({"symlink", "directory", "special", "elsewhere"})


class LogFacts(NamedTuple):
    """What ``observe`` saw of one configured log (a NamedTuple: cheaper to define than a dataclass)."""

    path: str
    state: LogState
    size: int = 0
    #: where it would be cut, found only for a regular log over the trigger (None: no line end to cut at)
    cut: Cut | None = None
    #: why it could not be looked at (state "unreadable"): the OS error, and whether opening its directory failed
    errno: int | None = None
    in_dir: bool = False


@dataclass
class RotatePlan(Plan):
    """The decision for every configured log (and datagc's leftovers next to them), before anything is touched.

    Logs over the trigger that can't be rotated are ``failures``: the step fails and says why.
    """

    actions: list[Action] = field(default_factory=list)


# --- observe ----------------------------------------------------------------------


def observe(data_dir: DataDir, settings: RotateConfig) -> list[LogFacts]:
    """Look at each configured log (once, in order) without changing anything."""
    return [observe_log(data_dir, path, settings) for path in dict.fromkeys(settings.logs)]


def observe_log(data_dir: DataDir, path: str, settings: RotateConfig) -> LogFacts:
    head, name = split_path(path)
    try:
        dir_fd = data_dir.open_dir(head)
    except FileNotFoundError:
        return LogFacts(path, "missing")
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            return LogFacts(path, _blocked_by(data_dir, head))
        if error.errno == errno.EXDEV:
            return LogFacts(path, "elsewhere")
        return LogFacts(path, "unreadable", errno=error.errno, in_dir=True)
    try:
        return _observe_in(dir_fd, name, path, data_dir, settings)
    except FileNotFoundError:
        return LogFacts(path, "missing")
    except OSError as error:
        return LogFacts(path, "unreadable", errno=error.errno)
    finally:
        os.close(dir_fd)


def _blocked_by(data_dir: DataDir, head: str) -> LogState:
    """Why ``head`` can't be opened as a directory: a symlink on the way, or a missing one."""
    walked = ""
    for part in head.split("/"):
        try:
            dir_fd = data_dir.open_dir(walked)
        except OSError:
            return "missing"
        try:
            st = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return "missing"
        finally:
            os.close(dir_fd)
        if stat.S_ISLNK(st.st_mode):
            return "symlink"
        if not stat.S_ISDIR(st.st_mode):
            return "missing"
        walked = join_path(walked, part)
    return "missing"


def _observe_in(dir_fd: int, name: str, path: str, data_dir: DataDir, settings: RotateConfig) -> LogFacts:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return LogFacts(path, "symlink")
    if stat.S_ISDIR(st.st_mode):
        return LogFacts(path, "directory")
    if not stat.S_ISREG(st.st_mode):
        return LogFacts(path, "special")
    if st.st_dev != data_dir.dev or path in data_dir.mount_points:
        return LogFacts(path, "elsewhere")
    if st.st_size <= settings.max_bytes:
        return LogFacts(path, "regular", st.st_size)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        size = os.fstat(fd).st_size
        cut = find_cut(lambda offset, length: os.pread(fd, length, offset), size,
                       settings.keep_lines, settings.keep_bytes)
    finally:
        os.close(fd)
    return LogFacts(path, "regular", size, cut)


# --- plan (pure) ------------------------------------------------------------------


def plan(facts: Sequence[LogFacts], settings: RotateConfig, leftover: Sequence[FileStat] = (),
         now: float = 0.0) -> RotatePlan:
    """Decide for each observed log: rotate it (and how), or leave it and say why; and which leftovers go.

    Only sizes and line ends decide a rotation; ``now`` only tells leftovers of earlier passes.
    """
    decided = RotatePlan()
    decided.actions.extend(leftovers.plan(leftover, now))
    for log in facts:
        if log.state == "missing":
            decided.kept.append(Kept(log.path, note("log-missing")))
        elif log.state == "unreadable":
            why = note("log-unreadable", path=log.path, errno=log.errno, in_dir=log.in_dir)
            decided.failures.append(Failure(why, log.errno))
        elif log.state in _REFUSED:
            why = note("log-refused", path=log.path, state=log.state)
            decided.kept.append(Kept(log.path, why))
            decided.notes.append(why)
        elif log.size <= settings.max_bytes:
            decided.kept.append(Kept(log.path, note("log-under-trigger", size=log.size, max_bytes=settings.max_bytes)))
        elif log.cut is None:
            why = note("log-no-line-end", path=log.path, max_bytes=settings.max_bytes,
                       keep_bytes=settings.keep_bytes)
            decided.kept.append(Kept(log.path, why))
            decided.failures.append(Failure(why))
        else:
            decided.actions.append(Rotate(log.path, log.size, log.cut.kept_bytes, log.cut.lines_kept))
            decided.notes.extend(_cut_notes(log.path, log.cut, settings))
    return decided


def _cut_notes(path: str, cut: Cut, settings: RotateConfig) -> list[Note]:
    notes = []
    if cut.capped:
        notes.append(note("rotate-capped", path=path, lines=cut.lines_kept, keep_lines=settings.keep_lines,
                          keep_bytes=settings.keep_bytes))
    if cut.partial_bytes:
        notes.append(note("rotate-partial-line", path=path, bytes=cut.partial_bytes))
    return notes


# --- the pass -----------------------------------------------------------------------


def prepare(ctx: PassContext) -> RotatePlan:
    """Observe the configured logs and datagc's leftovers next to them, and plan."""
    settings = ctx.config.rotate
    found = leftovers.observe(ctx.data_dir, settings.logs)
    return plan(observe(ctx.data_dir, settings), settings, found, ctx.now)


def conclude(ctx: PassContext, decided: RotatePlan, step: StepReport) -> None:
    """A pass that rotated nothing and failed at nothing was skipped."""
    if step.status == "ok" and not step.action_count:
        step.status = "skipped"


PASS = PassSpec("rotate", prepare, conclude)
