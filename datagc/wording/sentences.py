"""The sentences: every note, kept-file reason and failure of a step, from its code and fields.

Passes, the executor and the runner say what happened as a ``model.Note``
(a code and its facts); ``SENTENCES`` is the one place that says it in English,
for every renderer (plain lines, rich, the JSON ``notes``/``error``/``why``).
The values inside them are worded by :mod:`datagc.wording.phrases`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from datagc.units import format_duration, format_size, human_age
from datagc.units import shown_count as _count
from datagc.units import shown_size as _size
from datagc.wording.phrases import (
    detail_text,
    feed_problem_text,
    limit_crossed,
    limit_target,
    limit_value,
    limits_with_thresholds,
    percent,
    referrers,
    strerror_text,
    verdict_text,
)

if TYPE_CHECKING:  # annotations only: audit never imports the run reports' model (its start-up is timed)
    from datagc.model import Failure, Note

Fields = Mapping[str, Any]

_LOG_REFUSED = {
    "symlink": "is a symlink or lies under one (datagc never follows symlinks); left alone",
    "directory": "is a directory, not a log; left alone",
    "special": "is not a regular file (FIFO, socket or device); left alone",
    "elsewhere": "is on another filesystem or a mount point; left alone",
}
_NOT_ENTERED = {
    "symlink": "is a symbolic link",
    "not-a-directory": "is not a directory",
    "other-filesystem": "is on another filesystem",
}


def _problem(f: Fields) -> str:
    return feed_problem_text(f["problem"])


def _problems(f: Fields) -> str:
    return "; ".join(feed_problem_text(problem) for problem in f["problems"])


# --- the pressure headlines ------------------------------------------------------


def _headline(f: Fields) -> str:
    text = "pressure: " + "; ".join(limit_crossed(limit) for limit in f["crossed"])
    files = f.get("files", 0)
    evicted = f"{_count(files)} files ({_size(f['bytes'])})" if files else "nothing"
    if "after" not in f:
        return f"{text}; deleted {evicted}"
    standing = ", ".join(limit_value(limit) for limit in f["after"])
    if f.get("dry_run"):
        return f"{text}; would delete {evicted}; projected {standing}"
    return f"{text}; deleted {evicted}; now {standing}"


def _still_above(f: Fields) -> str:
    kinds = (("too_young", f"younger than {human_age(f['min_age'])}"), ("protected", "protected"),
             ("hard_linked", "hard-linked"), ("held_open", "held open by a process"))
    spared = []
    for key, what in kinds:
        files, size = f[key]
        if files:
            spared.append(f"{_count(files)} {what} ({_size(size)})")
    why = "after deleting every media file it may" if f["exhausted"] else "after this pass"
    still = "; ".join(limit_crossed(limit) for limit in f["crossed"])
    parts = [
        f"pressure: still {still} {why}",
        "the rest is held by " + ", ".join(f"{name} {_size(size)}" for name, size in f["holders"]),
        f"{f['data_dir']} holds {_size(f['held'])} of the {_size(f['used_bytes'])} used "
        f"({percent(f['share'])})",
    ]
    if spared:
        parts.append("media spared: " + ", ".join(spared))
    parts.append("an operator must free space or grow the disk")
    return "; ".join(parts)


SENTENCES: dict[str, Callable[[Fields], str]] = {
    # the veto (executor)
    "refused-not-normal": lambda f: f"refused {f['path']}: not a plain path inside the data directory",
    "refused-state-dir": lambda f: f"refused {f['path']}: it is under state.dir ({f['state_dir']}), "
                                   "datagc's own state, never a target",
    "refused-not-a-feed": lambda f: f"refused to rewrite {f['path']}: not one of feed.files",
    "refused-protected": lambda f: f"refused to {'rotate' if f['kind'] == 'rotate' else 'delete'} {f['path']}: "
                                   f"protect.patterns ({f['pattern']!r}) protects it; left as it was",
    "refused-not-a-log": lambda f: f"refused to rotate {f['path']}: not one of rotate.logs",
    "refused-product": lambda f: f"refused to delete {f['path']}: it is a configured event log or feed",
    "refused-out-of-root": lambda f: f"refused to delete {f['path']}: outside the media directories, the temp "
                                     "patterns and datagc's own leftovers; left as it was",
    # applying
    "feed-retried-after-space": lambda f: "the feed could not be rewritten for lack of space before the "
                                          "deletions; it was tried again once they had freed some",
    "feed-problem": _problem,
    "feed-problem-kept": lambda f: f"{_problem(f)}; the files it may reference were kept",
    "feed-blocked": lambda f: f"{_problem(f)}, and may reference it",
    "feed-nulled-again": lambda f: f"the feed named {f['count']} deleted file(s) again after the deletions "
                                   "(the service rewrote it meanwhile); those references were set to null again",
    "feed-problem-after": lambda f: f"{_problem(f)}; it could not be checked for references to the files "
                                    "just deleted",
    "feed-restored": lambda f: f"put back {f['count']} feed reference(s) nulled for files that were not deleted "
                               "after all (they stay, so their posts keep their media)",
    "feed-restore-gone": lambda f: f"{f['count']} reference(s) nulled for files that stayed were no longer null in "
                                   f"the feed (the service rewrote them), e.g. {f['example']}; nothing to put back",
    "feed-restore-failed": lambda f: f"{_problem(f)}: references nulled for files that were kept could not be "
                                     "put back",
    "would-fail": lambda f: f"could not {'delete' if f['kind'] == 'delete' else 'rotate'} {f['path']} "
                            f"({f['strerror']}); it would be left as it was",
    "feed-would-fail": lambda f: f"the feed {f['path']} could not be rewritten ({f['strerror']}); the files it "
                                 "references would be kept",
    "feed-would-hold": lambda f: f"the feed {f['feed']} could not be rewritten ({f['strerror']}); kept as it may "
                                 "reference it",
    "delete-failed": lambda f: f"could not delete {f['path']} ({f['strerror']}); it was left as it was",
    "changed-since-planned": lambda f: "changed since it was planned"
                                       + (" (its local feed reference had already been set to null)"
                                          if f["nulled"] else ""),
    "kept-changed": lambda f: f"kept {_count(f['count'])} file(s) that changed since they were planned, "
                              f"e.g. {f['example']}",
    "rotate-failed": lambda f: f"could not rotate {f['path']} ({_count(f['bytes'])} bytes): {f['why']}; "
                               "the log was left as it was",
    "rotate-fits-now": lambda f: "fits within rotate.keep_lines and rotate.keep_bytes now; left alone",
    "writer-lingered": lambda f: f"{f['path']}: a process still held the old log open for writing; what it writes "
                                 "from now on goes to the old, unlinked file and is lost to the new log (restart "
                                 "that writer; see README, 'Writers that keep the log open')",
    "order-no-lease": lambda f: f"{f['path']}: the new log could not be leased ({f['why']}), so writers were not "
                                "held back while the old log's last lines were carried over: a line appended just "
                                "before the rotation may follow the same writer's next line (see README, 'Each "
                                "writer's order')",
    "order-held-open": lambda f: f"{f['path']}: a process kept the old log open for writing, so writers were let "
                                 f"in after {f['wait']:g}s: lines carried over after that may follow newer lines of "
                                 "the same writer",
    "carry-error": lambda f: f"{f['path']}: rotated, but {_count(f['bytes'])} bytes appended during the rotation "
                             f"could not be carried into the new log ({f['error']})",
    # running
    "step-error": lambda f: f["message"],
    "os-error": lambda f: f"{f['error']}" + (f" ({f['filename']})" if f["filename"] else "")
                          + "; what it was working on was left as it was",
    "internal-error": lambda f: f"internal error {f['type']}: {f['error']}; what it was working on was left as it was",
    "disabled": lambda f: f"{f['step']}: datagc is disabled (enabled=false from {f['source']}); nothing was done",
    "rotate-retried": lambda f: f"rotate was retried after {f['after']} freed space",
    # the journal and tombstones (SPEC §9)
    "journal-failed": lambda f: f["problem"],
    "journal-would-fail": lambda f: f"{f['problem']}; the changes of this pass would not be in the journal",
    "journal-corrupt": lambda f: f"journal: {f['count']} corrupt line(s) skipped (line {f['first']} first)",
    "tombstones-unchecked": lambda f: f"{f['problem']}; references to files deleted by earlier passes were not "
                                      "checked",
    "feed-repaired": lambda f: f"the feed named {f['count']} file(s) deleted by an earlier pass again (the service "
                               "wrote back an old copy); those references were set to null again",
    "feed-repair-failed": lambda f: f"{_problem(f)}; references to files deleted by earlier passes remain",
    # rotate
    "log-missing": lambda f: "does not exist; nothing to rotate",
    "log-unreadable": lambda f: f"{f['path']} {'its directory cannot be opened' if f['in_dir'] else 'cannot be read'} "
                                f"({strerror_text(f['errno'])}); left as it was",
    "log-refused": lambda f: f"{f['path']} {_LOG_REFUSED[f['state']]}",
    "log-under-trigger": lambda f: f"{_count(f['size'])} bytes, not over rotate.max_bytes "
                                   f"({format_size(f['max_bytes'])})",
    "log-no-line-end": lambda f: f"{f['path']} is over rotate.max_bytes ({format_size(f['max_bytes'])}) but has no "
                                 f"line end in its last {format_size(f['keep_bytes'])} (rotate.keep_bytes): a line "
                                 "longer than that, or not a line-per-event log; left as it was",
    "rotate-capped": lambda f: f"{f['path']}: keeping {f['lines']} lines, not {f['keep_lines']}: the newest "
                               f"{f['keep_lines']} lines are larger than rotate.keep_bytes "
                               f"({format_size(f['keep_bytes'])})",
    "rotate-partial-line": lambda f: f"{f['path']}: its last line is still being written ({f['bytes']} bytes, "
                                     "no newline yet); carried over as it is",
    # sweep
    "feed-unreadable-kept": lambda f: f"{_problems(f)}, and may reference it",
    "published-but-local": lambda f: f"on the CDN, but {referrers(f['posts'])} also by a local URL; kept until it "
                                     "is older than sweep.max_age",
    "cdn-unconfirmed": lambda f: verdict_text(f["verdict"]),
    "not-entered": lambda f: f"{f['path']} {_NOT_ENTERED[f['what']]}; not entered, nothing in it was touched",
    "media-dir-unreadable": lambda f: f"{f['path']} cannot be read ({f['error']}); its files were left as they were",
    "feed-unreadable-all-kept": lambda f: f"{_problem(f)}; every media file was kept, since it may reference any",
    "cdn-disabled": lambda f: f"CDN disabled (cdn.enabled from {f['source']}): media are never swept, only orphan "
                              "temp files",
    "no-public-url": lambda f: "cdn.public_url is not set, so no URL counts as a CDN copy: published deletion and "
                               "the CDN eviction class are off (set cdn.public_url to the CDN's base URL to turn "
                               "them on)",
    "cdn-unconfirmed-kept": lambda f: f"kept {f['path']} although the feed shows it on the CDN: "
                                      f"{verdict_text(f['verdict'])}",
    "nothing-to-sweep": lambda f: f"nothing to sweep among {_count(f['scanned'])} file(s)",
    "kept-not-listed": lambda f: f"{f['step']}: kept {_count(sum(f['counts'].values()))} more files, not listed ("
                                 + ", ".join(f"{_count(count)} {kind.replace('_', ' ')}"
                                             for kind, count in f["counts"].items())
                                 + f"); the first {_count(f['listed'])} by path are",
    "younger-than": lambda f: f"{f['what']}, {human_age(f['age'])} old: younger than {f['key']} "
                              f"({format_duration(f['limit'])})",
    # pressure
    "hard-linked": lambda f: f"has {f['others']} other hard link(s): deleting it frees nothing",
    "protected": lambda f: f"protect.patterns ({f['pattern']!r}) protects it: never evicted",
    "in-state-dir": lambda f: f"under state.dir ({f['state_dir']}), datagc's own state: never evicted",
    "no-blocks": lambda f: "has no allocated blocks: evicting it would free no byte",
    "not-needed": lambda f: f"{detail_text(f['rank'])}, {human_age(f['age'])} old: not needed, the files before "
                            "it in eviction order free enough",
    "pressure-statfs-failed": lambda f: f"cannot measure the disk holding {f['data_dir']} (statfs: {f['error']}); "
                                        "pressure was skipped for this run and nothing was deleted",
    "pressure-below": lambda f: f"pressure: {limits_with_thresholds(f['limits'])}; nothing to do",
    "pressure-feed-unreadable": lambda f: f"{_problems(f)}: any media file may be referenced by it, so every "
                                          "media file was kept and the disk is still above the threshold; repair "
                                          "the feed or free space by hand",
    "cdn-local-only": lambda f: f"{f['path']} ranked as a local-only copy although the feed shows it on the CDN: "
                                f"{verdict_text(f['verdict'])}",
    "media-dir-unreadable-kept": lambda f: f"{f['path']} cannot be read ({f['error']}); its files were kept",
    "dir-unreadable-not-counted": lambda f: f"{f['path']} cannot be read ({f['error']}); its size is not counted "
                                            "below",
    "media-dir-not-evicted": lambda f: f"{f['path']} is a symbolic link, not a directory or on another filesystem; "
                                       "not entered, nothing in it was evicted",
    "pressure-headline": _headline,
    "pressure-still-above": _still_above,
    "pressure-statfs-after-failed": lambda f: f"cannot measure the disk again after the deletions "
                                              f"(statfs: {f['error']})",
    "pressure-above-target-exhausted": lambda f: "pressure: below every threshold but short of "
                                                 + ", ".join(limit_target(limit) for limit in f["short"])
                                                 + ": no other media file may be evicted",
    "pressure-above-target": lambda f: "pressure: short of " + ", ".join(limit_target(limit) for limit in f["short"])
                                       + ": some planned files were kept, or deleted files are still held open by a "
                                       "process (datagc audit lists those)",
    "held-open": lambda f: f"held open by pid {f['pid']} ({f['command']}): deleting it would free nothing until it "
                           "is closed",
    "held-open-kept": lambda f: f"kept {f['path']}" + (f" and {_count(f['more'])} more" if f["more"] else "")
                                + f": held open by pid {f['pid']} ({f['command']}) (deleting a file held open "
                                "frees nothing until it is closed)",
    "open-files-unknown": lambda f: "/proc is unreadable: files held open by a process could not be recognised "
                                    "and kept",
    "open-files-unreadable": lambda f: f"{_count(f['count'])} processes' open files could not be read: a file one "
                                       "of them holds open may be evicted (run as root to see them)",
    # audit
    "audit-statfs-failed": lambda f: f"statfs failed: {f['error']}",
    "audit-dir-unreadable": lambda f: f"{f['path']}: {f['error']} (not counted)",
    "audit-not-mount-root": lambda f: "the data directory is not the root of its filesystem: unaccounted space "
                                      "includes files outside it",
    "audit-proc-unreadable": lambda f: "/proc is unreadable: deleted files still held open can't be listed",
    "audit-procs-unreadable": lambda f: f"{f['count']} processes' open files could not be read (run as root to see "
                                        "them)",
    "dangling-feed-unchecked": lambda f: f"{_problem(f)}; its references were not checked for missing files",
    "dangling-journal-unreadable": lambda f: f"{f['problem']}; dangling references can't be told apart by who "
                                             "deleted the file",
}


def text(note: Note) -> str:
    """The sentence for ``note``."""
    return SENTENCES[note.code](note.fields)


def error_text(failures: Sequence[Failure], first: Failure | None) -> str | None:
    """A step's error: its first failure (ENOSPC first), and how many more there were."""
    if first is None:
        return None
    more = len(failures) - 1
    return text(first.why) if more == 0 else f"{text(first.why)} (and {_count(more)} more problem{'s' * (more > 1)})"
