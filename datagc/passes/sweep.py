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

``protect.patterns`` (on the file name) veto anything. Local feed references
to a deleted file are set to null first (the executor does it). Where the
spec is silent:

- a file the feed shows by CDN URL but that another post also names by a
  local URL is not redundant: it stays until ``max_age`` (and is kept, saying so);
- a feed that doesn't parse keeps every media file (any could be referenced)
  and makes the step an error; temp files still go.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

from datagc import cdn, feed, safety
from datagc.config import Config
from datagc.executor import execute
from datagc.exitcodes import Exit
from datagc.feed import FeedIndex
from datagc.model import Action, Delete, Kept, PassContext, Reason, StepReport

#: seconds a CDN HEAD request may take before the file is kept as unverified
_NS = 1_000_000_000
#: walk errors that are the safety rules at work, not failures
_NOT_ENTERED = {
    errno.ELOOP: "is a symbolic link",
    errno.ENOTDIR: "is not a directory",
    errno.EXDEV: "is on another filesystem",
}


class SweepFile(NamedTuple):
    """A regular file the sweep may delete, as the walk saw it."""

    path: str  # relative to DATA_DIR
    is_temp: bool  # a top-level temp file (else: a media file)
    mtime_ns: int
    size: int
    allocated: int  # bytes that come back when it is unlinked (safety.reclaimable_bytes)
    dev: int
    ino: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, path: str, st: os.stat_result, is_temp: bool = False) -> SweepFile:
        return cls(path, is_temp, st.st_mtime_ns, st.st_size, safety.reclaimable_bytes(st), st.st_dev, st.st_ino,
                   st.st_ctime_ns)

    @property
    def identity(self) -> safety.FileIdentity:
        return safety.FileIdentity(self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)


@dataclass
class SweepPlan:
    """What to delete (with the feed nulls it needs, in order), what was spared and why."""

    actions: list[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    #: published deletions that wait for the CDN's word (cdn.verify): path -> (CDN URL, local size)
    to_verify: dict[str, tuple[str, int]] = field(default_factory=dict)
    scanned: int = 0


# --- observing ---------------------------------------------------------------


def _outermost(directories: Sequence[str]) -> list[str]:
    """The media directories that aren't inside another one (each file is walked once)."""
    unique = sorted(set(directories))
    return [d for d in unique if not any(d.startswith(other + "/") for other in unique if other != d)]


def media_files(
    data_dir: safety.DataDir, media_dirs: Sequence[str], on_error: safety.WalkErrorHandler
) -> Iterator[SweepFile]:
    """Every regular file under the media directories (no symlink, no other filesystem)."""
    for top in _outermost(media_dirs):
        for directory, name, st in safety.iter_files(data_dir, top, on_error):
            yield SweepFile.of(f"{directory}/{name}", st)


def temp_files(data_dir: safety.DataDir, patterns: Sequence[str]) -> list[SweepFile]:
    """Regular files at the top of DATA_DIR whose name matches ``patterns`` (not datagc's own temps)."""
    if not patterns:
        return []
    matches = _matcher(patterns).fullmatch
    found = []
    fd = data_dir.open_dir("")
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if matches(entry.name) and not safety.is_datagc_temp(entry.name):
                    try:
                        if entry.is_file(follow_symlinks=False):
                            found.append(SweepFile.of(entry.name, entry.stat(follow_symlinks=False), is_temp=True))
                    except FileNotFoundError:
                        pass  # vanished since readdir
    finally:
        os.close(fd)
    return found


def _matcher(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regex for a list of fnmatch patterns (case-sensitive, like fnmatchcase)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns) or "(?!)")


# --- planning (pure) ---------------------------------------------------------


def plan_sweep(files: Iterable[SweepFile], feed_index: FeedIndex, config: Config, now: float) -> SweepPlan:
    """Decide, for each observed file, whether it goes and why. No disk, no clock: ``now`` is given.

    Local references to a deleted file come as FeedNull actions just before
    its Delete. With ``cdn.verify``, published deletions are listed in
    ``to_verify`` (see ``drop_unverified``).
    """
    plan = SweepPlan()
    sweep = config.sweep
    now_ns = int(now * _NS)
    age_cutoff = now_ns - int(sweep.max_age * _NS)
    grace_cutoff = now_ns - int(sweep.published_grace * _NS)
    temp_cutoff = now_ns - int(sweep.temp_max_age * _NS)
    protected = _matcher(config.protect.patterns).fullmatch
    cdn_on = config.cdn.enabled
    published, local_refs = feed_index.published, feed_index.local_refs
    blocked_why = "; ".join(str(problem) for problem in feed_index.problems) + ", and may reference it"
    for file in files:
        plan.scanned += 1
        path = file.path
        reason: Reason
        if file.is_temp:
            if file.mtime_ns >= temp_cutoff:
                continue
            reason, detail = "temp", "orphan temp file"
        elif not cdn_on:
            continue
        elif file.mtime_ns < age_cutoff:
            reason = "age"
        elif path in published and file.mtime_ns < grace_cutoff:
            if path in local_refs:
                plan.kept.append(Kept(path, f"on the CDN, but {_referrers(local_refs[path])} also "
                                            "by a local URL; kept until it is older than sweep.max_age"))
                continue
            reason = "published"
        else:
            continue
        if protected(path.rpartition("/")[2]):
            plan.kept.append(Kept(path, "its name matches protect.patterns"))
            continue
        if not file.is_temp:
            if feed_index.problems:
                plan.kept.append(Kept(path, blocked_why))
                continue
            refs = local_refs.get(path, ())
            if refs:
                detail = f"referenced locally by {_referrers(refs)}"
                plan.actions.extend(refs)
            else:
                detail = "on the CDN" if path in published else "unreferenced"
            if reason == "published" and config.cdn.verify:
                plan.to_verify[path] = (published[path], file.size)
        plan.actions.append(
            Delete(
                path=path,
                bytes=file.allocated,
                reason=reason,
                age=now - file.mtime_ns / _NS,
                identity=file.identity,
                detail=detail,
            )
        )
    return plan


def _referrers(refs: Sequence[feed.FeedNull]) -> str:
    posts = sorted({ref.post for ref in refs if ref.post})
    return ", ".join(posts) if posts else "a post"


def drop_unverified(plan: SweepPlan, verdicts: Mapping[str, cdn.Verdict]) -> SweepPlan:
    """The plan without the published deletions the CDN didn't confirm (kept, with the CDN's answer)."""
    actions: list[Action] = []
    kept = list(plan.kept)
    for action in plan.actions:
        verdict = verdicts.get(action.path) if isinstance(action, Delete) and action.path in plan.to_verify else None
        if verdict is None or not isinstance(action, Delete):
            actions.append(action)
        elif verdict.ok:
            actions.append(dataclasses.replace(action, detail=f"{action.detail}, verified"))
        else:
            kept.append(Kept(action.path, verdict.why))
    return SweepPlan(actions, kept, {}, plan.scanned)


# --- the pass ----------------------------------------------------------------


def run(ctx: PassContext, *, verify_timeout: float = cdn.VERIFY_TIMEOUT) -> StepReport:
    """One sweep: observe, plan, verify published copies if asked, execute (or record, dry-run)."""
    config, data_dir = ctx.config, ctx.data_dir
    step = StepReport("sweep")
    errors: list[tuple[int | None, str]] = []

    def walk_error(path: str, error: OSError) -> None:
        if error.errno == errno.ENOENT:
            return  # a media directory that doesn't exist (yet) holds nothing
        if error.errno in _NOT_ENTERED:
            what = "is a symbolic link" if _is_symlink(data_dir, path) else _NOT_ENTERED[error.errno]
            step.notes.append(f"{path or '.'} {what}; not entered, nothing in it was touched")
            return
        message = f"{path or '.'} cannot be read ({error.strerror}); its files were left as they were"
        errors.append((error.errno, message))

    if not ctx.dry_run:
        for path in feed.clean_stale_feed_temps(data_dir, config):
            step.notes.append(f"removed {path}, left by an interrupted datagc feed rewrite")
    temps = temp_files(data_dir, config.sweep.temp_patterns)
    if config.cdn.enabled:
        index = feed.index_feeds(data_dir, config)
        files: Iterable[SweepFile] = chain(temps, media_files(data_dir, config.sweep.media_dirs, walk_error))
        for problem in index.problems:
            errors.append((problem.errno, f"{problem}; every media file was kept, since it may reference any"))
    else:
        index = FeedIndex()  # no media is touched, so the feed needs no reading
        files = temps
        step.notes.append(f"CDN disabled (cdn.enabled from {config.sources.get('cdn.enabled', 'default')}): "
                          "media are never swept, only orphan temp files")
    plan = plan_sweep(files, index, config, ctx.now)
    if plan.to_verify:
        verdicts = cdn.verify_all(plan.to_verify, verify_timeout)
        plan = drop_unverified(plan, verdicts)
        step.notes.extend(f"kept {path} although the feed shows it on the CDN: {verdict.why}"
                          for path, verdict in verdicts.items() if not verdict.ok)
    step.kept.extend(plan.kept)
    execute(ctx, plan.actions, step)
    _finish(step, errors, plan.scanned)
    return step


def _is_symlink(data_dir: safety.DataDir, path: str) -> bool:
    """For the note only: open_dir reports a symlinked directory as ENOTDIR."""
    try:
        return stat.S_ISLNK(os.stat(path or ".", dir_fd=data_dir.fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _finish(step: StepReport, errors: list[tuple[int | None, str]], scanned: int) -> None:
    for _, message in errors:
        step.notes.append(message)
    if errors:
        step.status = "error"
        step.error = step.error or errors[0][1]
        step.flags |= Exit.STEP_FAILED
        step.details.setdefault("errno", errno.errorcode.get(errors[0][0] or 0, ""))
    if any(isinstance(action, Delete) for action in step.actions):
        step.flags |= Exit.SWEPT
    elif step.status == "ok":
        step.status = "skipped"
        step.notes.append(f"nothing to sweep among {scanned} file(s)")
    step.details["scanned_files"] = scanned
