"""``datagc rotate``: keep only the newest lines of each event log that grew past ``rotate.max_bytes``.

``observe`` looks at each configured log without changing anything (and
finds its cut, reading backwards from the end); ``plan`` decides, from those
facts alone, what to rotate and what to leave and why; ``run`` applies the
plan through :mod:`datagc.tailcopy`, or, with ``--dry-run``, reports it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from datagc.config import RotateConfig
from datagc.executor import execute
from datagc.exitcodes import Exit
from datagc.model import Kept, PassContext, Rotate, StepReport
from datagc.safety import DataDir, clean_stale_temps, join_path, split_path
from datagc.tailcopy import Cut, find_cut
from datagc.units import format_size

LogState = Literal["regular", "missing", "symlink", "directory", "special", "elsewhere", "unreadable"]

#: Why a log that is not a regular file of DATA_DIR's filesystem is left alone.
_REFUSED: dict[str, str] = {
    "symlink": "is a symlink or lies under one (datagc never follows symlinks); left alone",
    "directory": "is a directory, not a log; left alone",
    "special": "is not a regular file (FIFO, socket or device); left alone",
    "elsewhere": "is on another filesystem or a mount point; left alone",
}


@dataclass(frozen=True)
class LogFacts:
    """What ``observe`` saw of one configured log."""

    path: str
    state: LogState
    size: int = 0
    #: where it would be cut, found only for a regular log over the trigger (None: no line end to cut at)
    cut: Cut | None = None
    #: why it could not be looked at (state "unreadable")
    error: str = ""


@dataclass
class RotatePlan:
    """The decision for every configured log, before anything is touched."""

    actions: list[Rotate] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: logs over the trigger that can't be rotated: the step fails and says why
    problems: list[str] = field(default_factory=list)


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
        return LogFacts(path, "unreadable", error=f"its directory cannot be opened ({error.strerror})")
    try:
        return _observe_in(dir_fd, name, path, data_dir, settings)
    except FileNotFoundError:
        return LogFacts(path, "missing")
    except OSError as error:
        return LogFacts(path, "unreadable", error=f"cannot be read ({error.strerror})")
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


def plan(facts: Sequence[LogFacts], settings: RotateConfig) -> RotatePlan:
    """Decide for each observed log: rotate it (and how), or leave it and say why.

    Rotation has no clock: only sizes and line ends decide.
    """
    decided = RotatePlan()
    limit = format_size(settings.max_bytes)
    for log in facts:
        if log.state == "missing":
            decided.kept.append(Kept(log.path, "does not exist; nothing to rotate"))
        elif log.state == "unreadable":
            decided.problems.append(f"{log.path} {log.error}; left as it was")
        elif log.state in _REFUSED:
            why = _REFUSED[log.state]
            decided.kept.append(Kept(log.path, why))
            decided.notes.append(f"{log.path} {why}")
        elif log.size <= settings.max_bytes:
            decided.kept.append(Kept(log.path, f"{log.size} bytes, not over rotate.max_bytes ({limit})"))
        elif log.cut is None:
            why = (f"is over rotate.max_bytes ({limit}) but has no line end in its last "
                   f"{format_size(settings.keep_bytes)} (rotate.keep_bytes): a line longer than that, "
                   "or not a line-per-event log; left as it was")
            decided.kept.append(Kept(log.path, why))
            decided.problems.append(f"{log.path} {why}")
        else:
            decided.actions.append(Rotate(log.path, log.size, log.cut.kept_bytes, log.cut.lines_kept))
            decided.notes.extend(_cut_notes(log.path, log.cut, settings))
    return decided


def _cut_notes(path: str, cut: Cut, settings: RotateConfig) -> list[str]:
    notes = []
    if cut.capped:
        notes.append(f"{path}: keeping {cut.lines_kept} lines, not {settings.keep_lines}: the newest "
                     f"{settings.keep_lines} lines are larger than rotate.keep_bytes "
                     f"({format_size(settings.keep_bytes)})")
    if cut.partial_bytes:
        notes.append(f"{path}: its last line is still being written ({cut.partial_bytes} bytes, no newline yet); "
                     "carried over as it is")
    return notes


# --- run ----------------------------------------------------------------------------


def run(ctx: PassContext) -> StepReport:
    """One rotate pass over the configured logs (applied, or with ``ctx.dry_run`` only reported)."""
    step = StepReport("rotate")
    settings = ctx.config.rotate
    if not ctx.dry_run:
        _clean_leftovers(ctx.data_dir, settings, step)
    decided = plan(observe(ctx.data_dir, settings), settings)
    step.kept.extend(decided.kept)
    step.notes.extend(decided.notes)
    execute(ctx, decided.actions, step)
    if step.actions:
        step.flags |= Exit.ROTATED
    if decided.problems:
        step.status = "error"
        step.error = "; ".join(filter(None, [step.error, *decided.problems]))
        step.flags |= Exit.STEP_FAILED
    elif step.status != "error" and not step.actions:
        step.status = "skipped"
    return step


def _clean_leftovers(data_dir: DataDir, settings: RotateConfig, step: StepReport) -> None:
    """Remove temps of an interrupted rotation: under the data-dir lock, any datagc temp there is stale."""
    for head in dict.fromkeys(split_path(path)[0] for path in settings.logs):
        try:
            dir_fd = data_dir.open_dir(head)
        except OSError:
            continue  # the log's directory is missing or refused: observe says so
        try:
            removed = clean_stale_temps(dir_fd)
        except OSError as error:
            step.notes.append(f"could not remove leftover datagc temp files in {head or '.'}: {error.strerror}")
            continue
        finally:
            os.close(dir_fd)
        for name in removed:
            step.notes.append(f"removed {'/'.join(filter(None, (head, name)))}, left by an interrupted datagc")
