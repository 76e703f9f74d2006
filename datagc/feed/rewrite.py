"""Rewriting the feeds: references nulled before their files go (SPEC §7 rule 6), and restored for files that
stayed (rule 14); a concurrent rewrite by the service is re-read and the change redone."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from datagc.cdn import local_paths, media_prefixes
from datagc.config.schema import Config
from datagc.facts import FileIdentity
from datagc.feed.index import FeedProblem, open_feed_dir, parse_feed, read_feed
from datagc.feed.parse import FieldRef, URLField, null_spans, replace_spans, scan_feed
from datagc.model import FeedNull, FeedRestore
from datagc.safety.datadir import DataDir, split_path
from datagc.safety.rewrite import REPLACED, replace_if_unchanged

#: rewrites tried at least, and for how long, before giving up on a feed the service keeps changing
MIN_ATTEMPTS = 10
RETRY_SECONDS = 5.0
#: the longest pause between two attempts; each pause is random (up to this, growing with the attempts) so that
#: datagc falls out of step with a writer that rewrites the feed at a steady pace
MAX_PAUSE_SECONDS = 0.05


@dataclass
class NullOutcome:
    """What ``null_references`` did: the nulls written, and the files that must stay."""

    nulls: list[FeedNull] = field(default_factory=list)
    #: the given paths whose references were nulled
    nulled: set[str] = field(default_factory=set)
    #: media path -> why it must be kept: a feed that may reference it could not be updated
    blocked: dict[str, FeedProblem] = field(default_factory=dict)
    problems: list[FeedProblem] = field(default_factory=list)


def null_references(data_dir: DataDir, config: Config, paths: Collection[str]) -> NullOutcome:
    """Set to null, in every feed file, each local URL naming one of ``paths``.

    Call it before unlinking ``paths`` (and once more after, since the service
    may have put a reference back). Each feed is re-read now, so references
    added since planning are caught too. A feed that can't be read, parsed or
    rewritten (ENOSPC, EACCES, a service that never stops writing) is left as
    it was, and the files it may reference are returned in ``blocked`` with
    the reason: every media path for a feed that can't be read, the named ones
    for one that can't be written. Paths outside the media directories (temp
    files) are never named by a URL and never blocked.
    """
    outcome = NullOutcome()
    prefixes = media_prefixes(config.sweep.media_dirs)
    targets = {path for path in paths if path.startswith(prefixes)}
    if not targets:
        return outcome
    for feed in config.feed.files:
        dir_fd = open_feed_dir(data_dir, feed)
        if dir_fd is None:
            continue
        if isinstance(dir_fd, FeedProblem):
            _block(outcome, dir_fd, targets)
            continue
        try:
            _null_in_feed(dir_fd, feed, config, targets, outcome)
        finally:
            os.close(dir_fd)
    return outcome


def _null_in_feed(dir_fd: int, feed: str, config: Config, targets: set[str], outcome: NullOutcome) -> None:
    media_dirs = config.sweep.media_dirs
    named: set[str] = set()  # the targets the last attempt's rewrite names

    def attempt() -> _Edit | None:
        read = parse_feed(dir_fd, feed, config.feed.url_fields)
        if read is None:
            return None
        if isinstance(read, FeedProblem):
            _block(outcome, read, targets)
            return None
        text, st, refs = read
        chosen = []
        named.clear()
        for position, ref in enumerate(refs):
            hits = local_paths(ref.url, media_dirs) & targets
            if hits:
                chosen.append(position)
                named.update(hits)
        if not chosen:
            return None
        edits = _spans(text, config.feed.url_fields, refs, chosen)

        def written() -> None:
            outcome.nulls.extend(FeedNull(path=feed, field=ref.field, url=ref.url, post=ref.post, entry=ref.entry)
                                 for ref in edits)
            outcome.nulled.update(named)

        return _Edit(null_spans(text, edits).encode("utf-8"), st, written)

    ended = _rewrite(dir_fd, feed, attempt)
    if isinstance(ended, OSError):
        _block(outcome, FeedProblem(feed, "rewrite-failed", ended.errno), named)
    elif ended is not None:
        _block(outcome, FeedProblem(feed, "kept-changing", attempts=ended, seconds=RETRY_SECONDS), named)


def _spans(text: str, url_fields: Collection[str], refs: Sequence[URLField], chosen: Sequence[int]) -> list[FieldRef]:
    """The ``chosen`` of ``refs`` (``load_feed``'s fields of ``text``) with their spans, from ``scan_feed``.

    The two read the same fields in the same order; should they ever disagree, nothing is rewritten.
    """
    spanned = scan_feed(text, url_fields)
    if [ref[:4] for ref in spanned] != list(refs):
        raise RuntimeError("the feed's two parsers disagree on its URL fields; it was left as it was")
    return [spanned[position] for position in chosen]


@dataclass(frozen=True)
class _Edit:
    """One attempt's rewrite: the feed's new ``content``, the ``st`` of the text it was made from, and what to
    record once it is written."""

    content: bytes
    st: os.stat_result
    written: Callable[[], None]


def _rewrite(dir_fd: int, feed: str, attempt: Callable[[], _Edit | None]) -> OSError | int | None:
    """Write what ``attempt`` (re-reading the feed each time) makes of it, if the feed is still as it was read.

    A concurrent rewrite by the service means another attempt: at least ``MIN_ATTEMPTS``, for up to
    ``RETRY_SECONDS``, random pauses between. Returns None once written (``written`` called) or once ``attempt``
    has nothing to write; the OSError the write failed with; or the number of attempts made when the feed kept
    changing.
    """
    count = 0
    deadline = time.monotonic() + RETRY_SECONDS
    while count < MIN_ATTEMPTS or time.monotonic() < deadline:
        if count:
            time.sleep(random.uniform(0, min(MAX_PAUSE_SECONDS, 0.005 * count)))
        count += 1
        edit = attempt()
        if edit is None:
            return None
        try:
            done = replace_if_unchanged(dir_fd, split_path(feed)[1], edit.content, FileIdentity.of(edit.st), edit.st)
        except OSError as error:
            return error
        if done == REPLACED:
            edit.written()
            return None
    return count


def _block(outcome: NullOutcome, problem: FeedProblem, paths: Collection[str]) -> None:
    outcome.problems.append(problem)
    for path in paths:
        outcome.blocked.setdefault(path, problem)


@dataclass
class RestoreOutcome:
    """What ``restore_references`` did: the URLs put back, and the nulls it no longer found."""

    restores: list[FeedRestore] = field(default_factory=list)
    #: nulls datagc wrote that the feed no longer holds (the service rewrote that field or post)
    gone: list[FeedNull] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)


def restore_references(data_dir: DataDir, config: Config, nulls: Sequence[FeedNull]) -> RestoreOutcome:
    """Put back each URL of ``nulls`` (written by this pass) where its field still holds null.

    For files whose references were nulled and that then stayed (their unlink
    failed, or they changed and were kept). A field is found by its post's
    ``id`` (by its position in the array for a post without one). Rewritten
    like ``null_references``: only those values change, a concurrent rewrite
    of the service is re-read and the change redone.
    """
    outcome = RestoreOutcome()
    by_feed: dict[str, list[FeedNull]] = {}
    for null in nulls:
        by_feed.setdefault(null.path, []).append(null)
    for feed, wanted in by_feed.items():
        dir_fd = open_feed_dir(data_dir, feed)
        if not isinstance(dir_fd, int):
            outcome.problems.append(dir_fd or FeedProblem(feed, "vanished"))
            continue
        try:
            _restore_in_feed(dir_fd, feed, config, wanted, outcome)
        finally:
            os.close(dir_fd)
    return outcome


def _restore_in_feed(dir_fd: int, feed: str, config: Config, wanted: list[FeedNull], outcome: RestoreOutcome) -> None:
    def attempt() -> _Edit | None:
        read = read_feed(dir_fd, feed)
        if read is None or isinstance(read, FeedProblem):
            outcome.problems.append(read or FeedProblem(feed, "vanished"))
            return None
        text, st = read
        free = scan_feed(text, config.feed.url_fields, nulls=True)
        edits: list[tuple[FieldRef, str]] = []
        found: list[FeedNull] = []
        for null in wanted:
            match = next((ref for ref in free if ref.field == null.field and (
                ref.post == null.post if null.post is not None else ref.post is None and ref.entry == null.entry)),
                None)
            if match is not None:
                free.remove(match)
                edits.append((match, json.dumps(null.url, ensure_ascii=False)))
                found.append(null)
        if not edits:
            outcome.gone.extend(wanted)
            return None

        def written() -> None:
            outcome.restores.extend(FeedRestore(feed, null.field, null.url, null.post) for null in found)
            outcome.gone.extend(null for null in wanted if null not in found)

        return _Edit(replace_spans(text, edits).encode("utf-8"), st, written)

    ended = _rewrite(dir_fd, feed, attempt)
    if isinstance(ended, OSError):
        outcome.problems.append(FeedProblem(feed, "restore-failed", ended.errno))
    elif ended is not None:
        outcome.problems.append(FeedProblem(feed, "restore-kept-changing", attempts=ended))
