"""Reading the feed files (each parsed once while unchanged) and indexing what they say about each media file."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from datagc.cdn import cdn_paths, local_paths
from datagc.config.schema import Config
from datagc.facts import FileIdentity
from datagc.feed.parse import FeedError, Undecodable, URLField, decode_feed, load_feed
from datagc.model import FeedNull
from datagc.safety.datadir import DataDir, split_path
from datagc.safety.rewrite import identity_at, read_regular

#: what went wrong with a feed file: reading it (``errno``: ELOOP a symlink, EINVAL not a regular file, …), opening
#: its directory, decoding it, rewriting it to null references or to restore them (``errno``), a service that kept
#: rewriting it (``attempts``), or it vanished before references could be restored
ProblemCode = Literal["unreadable", "dir-unopenable", "undecodable", "rewrite-failed", "kept-changing",
                      "restore-failed", "restore-kept-changing", "vanished"]


@dataclass(frozen=True)
class FeedProblem:
    """A feed file that couldn't be read, parsed or rewritten: a code and its facts, no English
    (``wording.feed_problem_text``)."""

    path: str
    code: ProblemCode
    errno: int | None = None
    #: undecodable: why
    decoding: Undecodable | None = None
    #: kept-changing, restore-kept-changing: the rewrites tried, and (kept-changing) for how many seconds
    attempts: int = 0
    seconds: float = 0.0


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


def open_feed_dir(data_dir: DataDir, feed: str) -> int | FeedProblem | None:
    """The descriptor of the feed's directory, a FeedProblem, or None if the directory doesn't exist."""
    try:
        return data_dir.open_dir(split_path(feed)[0])
    except FileNotFoundError:
        return None
    except OSError as error:
        return FeedProblem(feed, "dir-unopenable", error.errno)


def read_feed(dir_fd: int, feed: str) -> tuple[str, os.stat_result] | FeedProblem | None:
    """(text, stat) of one feed, a FeedProblem, or None if the feed doesn't exist."""
    read = _read(dir_fd, feed)
    if not isinstance(read, tuple):
        return read
    try:
        return decode_feed(read[0]), read[1]
    except FeedError as error:
        return FeedProblem(feed, "undecodable", decoding=error.why)


def _read(dir_fd: int, feed: str) -> tuple[bytes, os.stat_result] | FeedProblem | None:
    try:
        return read_regular(dir_fd, split_path(feed)[1])
    except FileNotFoundError:
        return None
    except OSError as error:
        return FeedProblem(feed, "unreadable", error.errno)


#: the last parse of each feed file (by its path in DATA_DIR): reused while the file keeps its identity
_PARSED: dict[str, tuple[FileIdentity, frozenset[str], str, os.stat_result, list[URLField]]] = {}


def parse_feed(
    dir_fd: int, feed: str, url_fields: Collection[str]
) -> tuple[str, os.stat_result, list[URLField]] | FeedProblem | None:
    """(text, stat, URL fields) of one feed, a FeedProblem, or None if the feed doesn't exist.

    A feed is read and parsed again only when its identity (device, inode,
    size, mtime, ctime: ``lstat`` of its name) differs from the one last
    parsed: within a pass the planner, the nulling before the deletions and
    the check after them read one unchanged feed once. The service replaces
    the feed by rename (a new inode), and any write moves its ctime.
    """
    fields = frozenset(url_fields)
    cached = _PARSED.get(feed)
    name = split_path(feed)[1]
    if cached is not None and cached[1] == fields and identity_at(dir_fd, name) == cached[0]:
        return cached[2], cached[3], cached[4]
    read = _read(dir_fd, feed)
    if not isinstance(read, tuple):
        _PARSED.pop(feed, None)
        return read
    content, st = read
    try:
        text, refs = load_feed(content, fields)
    except FeedError as error:
        _PARSED.pop(feed, None)
        return FeedProblem(feed, "undecodable", decoding=error.why)
    _PARSED[feed] = (FileIdentity.of(st), fields, text, st, refs)
    return text, st, refs


#: the last index made, with what it was made from (the settings it depends on, and each feed's parse, or None):
#: the same parses (``parse_feed`` returns the very objects while a feed keeps its identity) make the same index
_INDEXED: list[tuple[tuple[object, ...], tuple[list[URLField] | None, ...], FeedIndex]] = []


def index_feeds(data_dir: DataDir, config: Config) -> FeedIndex:
    """Read every feed file (parsed again only if it changed: ``parse_feed``) and index what it says about each media
    file. While no feed changed, the index made last is returned again: callers only read it."""
    settings = (config.feed.files, frozenset(config.feed.url_fields), config.sweep.media_dirs, config.cdn.public_url)
    problems: list[FeedProblem] = []
    parses: list[list[URLField] | None] = []
    for feed in config.feed.files:
        dir_fd = open_feed_dir(data_dir, feed)
        if isinstance(dir_fd, int):
            try:
                read = parse_feed(dir_fd, feed, config.feed.url_fields)
            finally:
                os.close(dir_fd)
        else:
            read = dir_fd
        if isinstance(read, FeedProblem):
            problems.append(read)
        parses.append(read[2] if isinstance(read, tuple) else None)
    if problems:  # never remembered: the feeds that parsed are indexed, for audit's check of their references
        index = _index(config, parses)
        index.problems = problems
        return index
    if _INDEXED:
        known, parsed, index = _INDEXED[0]
        if known == settings and all(mine is theirs for mine, theirs in zip(parses, parsed, strict=True)):
            return index
    index = _index(config, parses)
    _INDEXED[:] = [(settings, tuple(parses), index)]
    return index


def _index(config: Config, parses: list[list[URLField] | None]) -> FeedIndex:
    index = FeedIndex()
    media_dirs = tuple(config.sweep.media_dirs)
    public_url = config.cdn.public_url
    # ``cdn_paths`` names nothing unless the URL starts so (its own first test), and a URL that names local files
    # (no scheme but ``file:``, no ``//`` authority) is never a CDN URL: most refs skip the call
    base = public_url.rstrip("/") + "/" if public_url else None
    local_refs, published = index.local_refs, index.published
    for feed, refs in zip(config.feed.files, parses, strict=True):
        for ref in refs or ():
            url = ref.url
            named = local_paths(url, media_dirs)
            if named:
                null = FeedNull(path=feed, field=ref.field, url=url, post=ref.post)
                for path in named:
                    local_refs.setdefault(path, []).append(null)
            elif base is not None and url.startswith(base):
                for path in cdn_paths(url, public_url, media_dirs):
                    published.setdefault(path, url)
    return index
