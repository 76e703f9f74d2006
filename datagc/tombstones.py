"""Tombstones and dangling references (SPEC §9): what the journal says about the feed.

A tombstone is a media path datagc deleted within ``journal.repair_window``
that does not exist now. The service rewrites its feed from copies it read
earlier, so it can put back a reference to one; every pass that reads the
feed (sweep, pressure) nulls those again (``repair_tombstones``, reason
``repair``). A file created again at that path is live again: it exists, so
it is no tombstone. ``dangling_references`` is audit's view: every local
reference naming a missing file, and whether datagc deleted it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from datagc import executor
from datagc.config.schema import Config
from datagc.feed.index import FeedIndex, index_feeds
from datagc.journal import JournalRead, read_journal, rfc3339
from datagc.model import FeedNull, Note, PassContext, StepReport, note
from datagc.safety.datadir import DataDir, split_path
from datagc.safety.unlink import DirCache
from datagc.statedir import StateDirError

#: a path that can't be looked at for these reasons is gone (its directory is gone or is a file now)
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR})


def deleted_paths(read: JournalRead, since: float | None = None) -> set[str]:
    """Paths the journal records as deleted (since ``since``, seconds since the epoch, if given)."""
    cutoff = rfc3339(since) if since is not None else ""
    return {entry["path"] for entry in read.entries if entry["kind"] == "delete" and entry["ts"] >= cutoff}


def missing(data_dir: DataDir, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` (relative to DATA_DIR) that don't exist now.

    Looked at without following a symlink; a name no file can have (from a
    hostile feed URL) is missing. A path that can't be looked at for
    another reason (EACCES, a symlinked or mounted directory on the way) may
    exist: it is not missing.
    """
    gone: set[str] = set()
    broken: dict[str, int] = {}
    with DirCache(data_dir) as dirs:
        for path in sorted(paths):
            directory, name = split_path(path)
            code = broken.get(directory)
            if code is None:
                try:
                    dir_fd = dirs.get(directory)
                except OSError as error:
                    code = broken[directory] = error.errno or 0
                except ValueError:  # a name no file can have (a lone surrogate, a NUL): nothing is there
                    code = broken[directory] = errno.ENOENT
            if code is None:
                try:
                    os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    continue
                except OSError as error:
                    code = error.errno or 0
                except ValueError:
                    code = errno.ENOENT
            if code in _GONE:
                gone.add(path)
    return gone


def tombstones(data_dir: DataDir, config: Config, now: float) -> tuple[set[str], JournalRead | None]:
    """The tombstones the feed references: media paths it names by a local URL that are missing now and
    were deleted within ``journal.repair_window`` before ``now``; and the journal, if it had to be read.

    The feed is read first and only its missing files are looked up in the
    journal, so a healthy feed costs no journal read. Raises StateDirError.
    """
    index = index_feeds(data_dir, config)
    gone = missing(data_dir, index.local_refs.keys())
    if not gone:
        return set(), None
    read = read_journal(data_dir, config)
    return gone & deleted_paths(read, now - config.journal.repair_window), read


def repair_plan(index: FeedIndex, graves: set[str]) -> list[FeedNull]:
    """The nulls a repair would write: every local reference to a tombstone (for ``--dry-run``)."""
    seen: set[FeedNull] = set()
    plan = []
    for path in sorted(graves & index.local_refs.keys()):
        for null in index.local_refs[path]:
            if null not in seen:
                seen.add(null)
                plan.append(dataclasses.replace(null, reason="repair"))
    return plan


@dataclass(frozen=True)
class Dangling:
    """A local feed reference naming a file that does not exist."""

    feed: str
    post: str | None
    field: str
    url: str
    path: str
    deleted_by_datagc: bool


@dataclass
class DanglingCheck:
    """Audit's findings about the feed: dangling references, and why the check may be incomplete."""

    found: list[Dangling] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    errors: list[Note] = field(default_factory=list)


def dangling_references(data_dir: DataDir, config: Config) -> DanglingCheck:
    """Every local feed reference whose file is missing, and whether the journal records deleting it.

    Read-only. The journal is read only when something dangles.
    """
    check = DanglingCheck()
    index = index_feeds(data_dir, config)
    check.notes += [note("dangling-feed-unchecked", problem=problem) for problem in index.problems]
    candidates: dict[FeedNull, set[str]] = {}
    for path, nulls in index.local_refs.items():
        for null in nulls:
            candidates.setdefault(null, set()).add(path)
    gone = missing(data_dir, index.local_refs.keys())
    if not any(named <= gone for named in candidates.values()):
        return check
    try:
        read = read_journal(data_dir, config)
    except StateDirError as error:
        check.errors.append(note("dangling-journal-unreadable", problem=str(error)))
        read = JournalRead()
    if read.bad_count:
        check.notes.append(note("journal-corrupt", count=read.bad_count, first=read.bad_lines[0]))
    deleted = deleted_paths(read) & gone
    for null, named in sorted(candidates.items(), key=lambda item: (item[0].path, item[0].post or "", item[0].url)):
        if named <= gone:  # every file the URL may name is missing
            path = min(named, key=lambda path: (path not in deleted, len(path), path))
            check.found.append(Dangling(null.path, null.post, null.field, null.url, path, path in deleted))
    return check


def repair_tombstones(ctx: PassContext, step: StepReport) -> None:
    """The tombstone repair of one sweep or pressure pass, into its report (applied by the executor).

    A dry run lists the nulls it would write. A state dir or journal that
    can't be read fails the step (the tombstones are unknown).
    """
    try:
        graves, read = tombstones(ctx.data_dir, ctx.config, ctx.now)
    except StateDirError as error:
        step.fail(note("tombstones-unchecked", problem=str(error)))
        return
    if read is not None and read.bad_count:
        step.notes.append(note("journal-corrupt", count=read.bad_count, first=read.bad_lines[0]))
    if not graves:
        return
    if ctx.dry_run:
        for null in repair_plan(index_feeds(ctx.data_dir, ctx.config), graves):
            step.record(null)
    else:
        executor.repair(ctx, graves, step)
    if step.status == "skipped" and step.action_count:
        step.status = "ok"
