"""What the feed says about the media files, and keeping it consistent when they go (SPEC §7 rule 6).

The feed files (``feed.files``, ``posts.json``) are JSON arrays of posts; each
post's ``feed.url_fields`` (``imageUrl``, ``videoUrl``) hold either a CDN URL
or a local URL of a media file (see ``datagc.cdn`` for how URLs name files).

- ``index_feeds`` reads every feed once into a ``FeedIndex``: per media file,
  the feed fields naming it by a local URL (as the ``FeedNull`` actions that
  would clear them) and the CDN URL the feed shows it by. A feed that is not
  JSON or not an array is listed in ``problems``; then nothing is known about
  any media file and callers keep them all.
- ``null_references`` sets to null every local reference to some files, in
  place: only the bytes of those string values change (formatting, key order,
  escapes and the trailing newline stay as they were), and the feed is
  replaced with ``safety.replace_if_unchanged``; if the service rewrote it
  meanwhile, the change is redone on its new content, so none of its posts
  is lost.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from datagc import safety
from datagc.cdn import cdn_paths, local_paths, media_prefixes
from datagc.config import Config
from datagc.model import FeedNull, FeedRestore

#: rewrites tried at least, and for how long, before giving up on a feed the service keeps changing
MIN_ATTEMPTS = 10
RETRY_SECONDS = 5.0
#: the longest pause between two attempts; each pause is random (up to this, growing with the attempts) so that
#: datagc falls out of step with a writer that rewrites the feed at a steady pace
MAX_PAUSE_SECONDS = 0.05

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class FeedError(ValueError):
    """The feed is not a JSON array; the message says what it is instead."""


class FieldRef(NamedTuple):
    """One URL field of one post, with the span of its JSON string in the feed's text."""

    entry: int  # index of the post in the array
    post: str | None  # the post's "id", when it has one
    field: str
    url: str
    start: int
    end: int


@dataclass(frozen=True)
class FeedProblem:
    """A feed file that couldn't be read, parsed or rewritten (``errno`` for OS errors)."""

    path: str
    why: str
    errno: int | None = None

    def __str__(self) -> str:
        return f"feed {self.path} {self.why}"


@dataclass
class FeedIndex:
    """What all the feed files say about the media files, at one moment.

    ``local_refs[path]``: the feed fields naming media file ``path`` (relative
    to DATA_DIR) by a local URL, as the ``FeedNull`` actions that clear them;
    deleting the file needs them applied first. ``published[path]``: the CDN
    URL by which the feed shows it (whether the CDN is enabled is the caller's
    business). A file in neither is unreferenced. ``problems``: feeds that
    couldn't be read or parsed; while there are any (``complete`` is False)
    any media file may be referenced and none may be deleted.
    """

    local_refs: dict[str, list[FeedNull]] = field(default_factory=dict)
    published: dict[str, str] = field(default_factory=dict)
    problems: list[FeedProblem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every feed file was read and parsed (a missing one counts: it references nothing)."""
        return not self.problems


@dataclass
class NullOutcome:
    """What ``null_references`` did: the nulls written, and the files that must stay."""

    nulls: list[FeedNull] = field(default_factory=list)
    #: the given paths whose references were nulled
    nulled: set[str] = field(default_factory=set)
    #: media path -> why it must be kept: a feed that may reference it could not be updated
    blocked: dict[str, str] = field(default_factory=dict)
    problems: list[FeedProblem] = field(default_factory=list)


# --- parsing -----------------------------------------------------------------


def decode_feed(content: bytes) -> str:
    """The feed's text; FeedError unless it is UTF-8 JSON whose top level is an array."""
    try:
        text = content.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError as error:
        raise FeedError(f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise FeedError(f"is not JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise FeedError("is nested too deeply to parse") from None
    if not isinstance(document, list):
        raise FeedError(f"is not a JSON array (its top level is {_json_type(document)})")
    return text


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def scan_feed(text: str, url_fields: Collection[str], *, nulls: bool = False) -> list[FieldRef]:
    """Every string-valued ``url_fields`` field of every object in the array ``text``, with its span.

    ``text`` must have passed ``decode_feed``. Non-object entries and nested
    values are skipped; with duplicate keys every occurrence is listed. With
    ``nulls``, the fields whose value is null instead (their ``url`` is empty).
    """
    refs: list[FieldRef] = []
    position = _skip(text, 0) + 1  # past "["
    position = _skip(text, position)
    entry = 0
    while text[position] != "]":
        if text[position] == "{":
            position = _scan_object(text, position, entry, url_fields, refs, nulls)
        else:
            _, position = _DECODER.raw_decode(text, position)
        position = _skip(text, position)
        if text[position] == ",":
            position = _skip(text, position + 1)
            entry += 1
    return refs


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _scan_object(
    text: str, position: int, entry: int, url_fields: Collection[str], refs: list[FieldRef], nulls: bool
) -> int:
    post: str | None = None
    found: list[tuple[str, str, int, int]] = []
    position = _skip(text, position + 1)
    while text[position] != "}":
        key, position = _DECODER.raw_decode(text, position)
        position = _skip(text, _skip(text, position) + 1)  # past ":"
        start = position
        value, position = _DECODER.raw_decode(text, position)
        if key in url_fields and (value is None if nulls else isinstance(value, str)):
            found.append((key, value or "", start, position))
        elif key == "id" and isinstance(value, (str, int)) and not isinstance(value, bool):
            post = str(value)
        position = _skip(text, position)
        if text[position] == ",":
            position = _skip(text, position + 1)
    refs.extend(FieldRef(entry, post, key, value, start, end) for key, value, start, end in found)
    return position + 1


def null_spans(text: str, refs: Sequence[FieldRef]) -> str:
    """``text`` with the string literal of each ref replaced by ``null``; every other byte kept."""
    return replace_spans(text, [(ref, "null") for ref in refs])


def replace_spans(text: str, edits: Sequence[tuple[FieldRef, str]]) -> str:
    """``text`` with the value of each ref replaced by the given JSON; every other byte kept."""
    pieces = []
    position = 0
    for ref, value in sorted(edits, key=lambda edit: edit[0].start):
        pieces.append(text[position:ref.start])
        pieces.append(value)
        position = ref.end
    pieces.append(text[position:])
    return "".join(pieces)


# --- reading the feed files --------------------------------------------------


def _describe_os_error(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "is a symbolic link (not followed)"
    if error.errno == errno.EINVAL:
        return "is not a regular file"
    return f"cannot be read ({error.strerror})"


def _open_feed_dir(data_dir: safety.DataDir, feed: str) -> int | FeedProblem | None:
    """The descriptor of the feed's directory, a FeedProblem, or None if the directory doesn't exist."""
    try:
        return data_dir.open_dir(safety.split_path(feed)[0])
    except FileNotFoundError:
        return None
    except OSError as error:
        return FeedProblem(feed, f"is in a directory that cannot be opened ({error.strerror})", error.errno)


def _read_feed(dir_fd: int, feed: str) -> tuple[str, os.stat_result] | FeedProblem | None:
    """(text, stat) of one feed, a FeedProblem, or None if the feed doesn't exist."""
    try:
        content, st = safety.read_regular(dir_fd, safety.split_path(feed)[1])
    except FileNotFoundError:
        return None
    except OSError as error:
        return FeedProblem(feed, _describe_os_error(error), error.errno)
    try:
        return decode_feed(content), st
    except FeedError as error:
        return FeedProblem(feed, str(error))


#: the last parse of each feed file (by its path in DATA_DIR): reused while the file keeps its identity
_PARSED: dict[str, tuple[safety.FileIdentity, frozenset[str], str, os.stat_result, list[FieldRef]]] = {}


def _parse_feed(
    dir_fd: int, feed: str, url_fields: Collection[str]
) -> tuple[str, os.stat_result, list[FieldRef]] | FeedProblem | None:
    """(text, stat, URL fields) of one feed, a FeedProblem, or None if the feed doesn't exist.

    A feed is read and parsed again only when its identity (device, inode,
    size, mtime, ctime: ``lstat`` of its name) differs from the one last
    parsed: within a pass the planner, the nulling before the deletions and
    the check after them read one unchanged feed once. The service replaces
    the feed by rename (a new inode), and any write moves its ctime.
    """
    fields = frozenset(url_fields)
    cached = _PARSED.get(feed)
    name = safety.split_path(feed)[1]
    if cached is not None and cached[1] == fields and safety.identity_at(dir_fd, name) == cached[0]:
        return cached[2], cached[3], cached[4]
    read = _read_feed(dir_fd, feed)
    if not isinstance(read, tuple):
        _PARSED.pop(feed, None)
        return read
    text, st = read
    refs = scan_feed(text, fields)
    _PARSED[feed] = (safety.FileIdentity.of(st), fields, text, st, refs)
    return text, st, refs


def index_feeds(data_dir: safety.DataDir, config: Config) -> FeedIndex:
    """Read every feed file once and index what it says about each media file."""
    index = FeedIndex()
    media_dirs = config.sweep.media_dirs
    public_url = config.cdn.public_url
    for feed in config.feed.files:
        dir_fd = _open_feed_dir(data_dir, feed)
        if isinstance(dir_fd, int):
            try:
                read = _parse_feed(dir_fd, feed, config.feed.url_fields)
            finally:
                os.close(dir_fd)
        else:
            read = dir_fd
        if read is None:
            continue
        if isinstance(read, FeedProblem):
            index.problems.append(read)
            continue
        for ref in read[2]:
            null = FeedNull(path=feed, field=ref.field, url=ref.url, post=ref.post)
            for path in local_paths(ref.url, media_dirs):
                index.local_refs.setdefault(path, []).append(null)
            for path in cdn_paths(ref.url, public_url, media_dirs):
                index.published.setdefault(path, ref.url)
    return index


# --- nulling references ------------------------------------------------------


def null_references(data_dir: safety.DataDir, config: Config, paths: Collection[str]) -> NullOutcome:
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
        dir_fd = _open_feed_dir(data_dir, feed)
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
    named: set[str] = set()
    attempts = _Attempts()
    for _ in attempts:
        read = _parse_feed(dir_fd, feed, config.feed.url_fields)
        if read is None:
            return
        if isinstance(read, FeedProblem):
            _block(outcome, read, targets)
            return
        text, st, refs = read
        edits = []
        named = set()
        for ref in refs:
            hits = local_paths(ref.url, media_dirs) & targets
            if hits:
                edits.append(ref)
                named |= hits
        if not edits:
            return
        content = null_spans(text, edits).encode("utf-8")
        try:
            done = safety.replace_if_unchanged(
                dir_fd, safety.split_path(feed)[1], content, safety.FileIdentity.of(st), st
            )
        except OSError as error:
            problem = FeedProblem(feed, f"could not be rewritten ({error.strerror}); it was left as it was",
                                  error.errno)
            _block(outcome, problem, named)
            return
        if done == safety.REPLACED:
            outcome.nulls.extend(FeedNull(path=feed, field=ref.field, url=ref.url, post=ref.post, entry=ref.entry)
                                 for ref in edits)
            outcome.nulled |= named
            return
    problem = FeedProblem(feed, f"kept changing while datagc updated it ({attempts.count} attempts in "
                                f"{RETRY_SECONDS:g} s); it was left as the service last wrote it")
    _block(outcome, problem, named)


class _Attempts:
    """Rewrite attempts: at least ``MIN_ATTEMPTS``, for up to ``RETRY_SECONDS``, random pauses between;
    ``count`` says how many were made."""

    def __init__(self) -> None:
        self.count = 0

    def __iter__(self) -> Iterator[int]:
        deadline = time.monotonic() + RETRY_SECONDS
        while self.count < MIN_ATTEMPTS or time.monotonic() < deadline:
            if self.count:
                time.sleep(random.uniform(0, min(MAX_PAUSE_SECONDS, 0.005 * self.count)))
            self.count += 1
            yield self.count


def _block(outcome: NullOutcome, problem: FeedProblem, paths: Collection[str]) -> None:
    outcome.problems.append(problem)
    for path in paths:
        outcome.blocked.setdefault(path, f"{problem}, and may reference it")


# --- restoring references (SPEC §7 rule 14) ------------------------------------


@dataclass
class RestoreOutcome:
    """What ``restore_references`` did: the URLs put back, and the nulls it no longer found."""

    restores: list[FeedRestore] = field(default_factory=list)
    #: nulls datagc wrote that the feed no longer holds (the service rewrote that field or post)
    gone: list[FeedNull] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)


def restore_references(data_dir: safety.DataDir, config: Config, nulls: Sequence[FeedNull]) -> RestoreOutcome:
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
        dir_fd = _open_feed_dir(data_dir, feed)
        if not isinstance(dir_fd, int):
            outcome.problems.append(dir_fd or FeedProblem(feed, "has vanished"))
            continue
        try:
            _restore_in_feed(dir_fd, feed, config, wanted, outcome)
        finally:
            os.close(dir_fd)
    return outcome


def _restore_in_feed(dir_fd: int, feed: str, config: Config, wanted: list[FeedNull], outcome: RestoreOutcome) -> None:
    attempts = _Attempts()
    for _ in attempts:
        read = _read_feed(dir_fd, feed)
        if read is None or isinstance(read, FeedProblem):
            outcome.problems.append(read or FeedProblem(feed, "has vanished"))
            return
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
            return
        content = replace_spans(text, edits).encode("utf-8")
        try:
            done = safety.replace_if_unchanged(
                dir_fd, safety.split_path(feed)[1], content, safety.FileIdentity.of(st), st
            )
        except OSError as error:
            outcome.problems.append(FeedProblem(feed, f"could not be rewritten ({error.strerror}) to restore "
                                                      "references; it was left as it was", error.errno))
            return
        if done == safety.REPLACED:
            outcome.restores.extend(FeedRestore(feed, null.field, null.url, null.post) for null in found)
            outcome.gone.extend(null for null in wanted if null not in found)
            return
    outcome.problems.append(FeedProblem(feed, f"kept changing while datagc restored references in it "
                                              f"({attempts.count} attempts)"))
