"""Matching feed URLs to media files, and asking the CDN whether it really has a file.

A media file is named by its path relative to DATA_DIR, ``media_dir/relative/path``
(``images/old/a.png``). A URL names it when that whole path ends the URL's path
on a segment boundary: ``/images/a.png``, ``.data/images/a.png`` and
``https://cdn.example.com/images/a.png`` name ``images/a.png``;
``/bid-images/a.png`` and ``/videos/a.png`` don't. Where a URL's path holds
several media directories (``/images/videos/a.png``), it names every file it
could (``images/videos/a.png`` and ``videos/a.png``): the feed is then nulled
for either, never left pointing at a deleted one.
"""

from __future__ import annotations

import contextlib
import functools
import posixpath
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple
from urllib.parse import quote, unquote, urlsplit

#: seconds a HEAD request to the CDN may take, in all, before the copy is kept
VERIFY_TIMEOUT = 10.0

#: how many HEAD requests run at once
VERIFY_WORKERS = 8
#: after this many requests without an answer (timeouts, refused connections) the rest are not sent
VERIFY_GIVE_UP_AFTER = 3


def is_media_path(path: str, media_dirs: Sequence[str]) -> bool:
    """Whether ``path`` (relative to DATA_DIR) lies inside one of the media directories."""
    return path.startswith(media_prefixes(media_dirs))


def media_prefixes(media_dirs: Sequence[str]) -> tuple[str, ...]:
    """``("images/", "videos/", …)``: ``path.startswith(prefixes)`` tests many paths fast."""
    return tuple(media_dir + "/" for media_dir in media_dirs)


def _segments(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    if "." in parts or ".." in parts:  # else normpath would change nothing but the slashes
        normal = posixpath.normpath("/" + path)
        return [part for part in normal.split("/") if part]
    return parts


def media_suffixes(path: str, media_dirs: Sequence[str]) -> list[str]:
    """Every ``media_dir/rest`` that ends ``path`` on a segment boundary (``rest`` non-empty)."""
    parts = _segments(path)
    found = []
    for wanted in _split_dirs(tuple(media_dirs)):
        width = len(wanted)
        first = wanted[0]
        for start in range(len(parts) - width):
            if parts[start] == first and parts[start:start + width] == wanted:
                found.append("/".join(parts[start:]))
    return found


@functools.lru_cache(maxsize=8)
def _split_dirs(media_dirs: tuple[str, ...]) -> tuple[list[str], ...]:
    """Each media dir's segments (one configuration per pass, asked of every feed URL; never mutated)."""
    return tuple(media_dir.split("/") for media_dir in media_dirs)


def _under_media_dir(path: str, media_dirs: Sequence[str]) -> str | None:
    """``path`` normalised, if it is ``<media_dir>/<something>``."""
    parts = _segments(path)
    for media_dir in media_dirs:
        wanted = media_dir.split("/")
        if len(parts) > len(wanted) and parts[:len(wanted)] == wanted:
            return "/".join(parts)
    return None


def is_remote(url: str) -> bool:
    """An http(s) URL (or a protocol-relative ``//host/…``): served by someone else, not from DATA_DIR."""
    split = urlsplit(url)
    return split.scheme in ("http", "https") or (not split.scheme and url.startswith("//"))


def _path_variants(path: str) -> set[str]:
    return {path, unquote(path)}


#: a URL that ``urlsplit`` reads as a path and nothing else, the path being the URL itself: no scheme (no ``:``),
#: no authority (no leading ``//``), no query or fragment, no leading control or space character (it strips those)
#: and no tab or line break (it drops those). Most local URLs are such paths; this spares them ``urlsplit``.
_PATH_ONLY = re.compile(r"(?!//)[^\x00-\x20:?#][^:?#\t\n\r]*")
#: a ``cdn.public_url`` every URL under which has its origin (``urlsplit`` reads scheme and host from the prefix
#: alone): http(s), a plain host name, a port, a path without query, fragment, space or control character
_PLAIN_BASE = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[^\x00-\x20\x7f?#]*)?")


#: URLs whose files are remembered: a pass asks about each feed URL several times (its index, the nulls
#: before and after the unlinks, the tombstone repair), and the answer depends on the URL and settings only
_REMEMBERED = 1 << 16


def local_paths(url: str, media_dirs: Sequence[str]) -> frozenset[str]:
    """The media files a local URL (``/images/a.png``, ``.data/images/a.png``) may name.

    Read generously, since a miss would leave the feed pointing at a deleted
    file: the URL as written, its path without query or fragment, and both
    percent-decoded (a URL ``urlsplit`` refuses, as written). Empty for http(s) URLs and other schemes (``data:``).
    """
    return _local_paths(url, tuple(media_dirs))


@functools.lru_cache(maxsize=_REMEMBERED)
def _local_paths(url: str, media_dirs: tuple[str, ...]) -> frozenset[str]:
    if _PATH_ONLY.fullmatch(url):
        variants = _path_variants(url)
    elif url.startswith(("https://", "http://")):
        return frozenset()
    else:
        try:
            split = urlsplit(url)
        except ValueError:  # a broken host (``//[x/images/a.png``): its text may still name a file
            split = None
        if split is None:
            variants = _path_variants(url)
        elif split.scheme == "file":
            variants = _path_variants(split.path)
        elif not split.scheme and not url.startswith("//"):
            variants = _path_variants(split.path) | {url}
        else:  # remote (``is_remote``) or another scheme
            return frozenset()
    return frozenset(found for variant in variants for found in media_suffixes(variant, media_dirs))


def cdn_paths(url: str, public_url: str, media_dirs: Sequence[str]) -> frozenset[str]:
    """The media files an http(s) URL shows on the CDN.

    The CDN is only what ``public_url`` names: the URL must be
    ``public_url/<media_dir>/<path>`` exactly (query and fragment aside), on
    the same origin. Without ``public_url`` no URL is a CDN copy.
    """
    if not public_url:
        return frozenset()
    return _cdn_paths(url, public_url, tuple(media_dirs))


@functools.lru_cache(maxsize=_REMEMBERED)
def _cdn_paths(url: str, public_url: str, media_dirs: tuple[str, ...]) -> frozenset[str]:
    base = public_url.rstrip("/") + "/"
    if not url.startswith(base):
        return frozenset()
    if not _PLAIN_BASE.fullmatch(public_url) and (not is_remote(url) or origin(url) != _origin_of(public_url)):
        return frozenset()
    rest = "/" + url[len(base):]
    if not _PATH_ONLY.fullmatch(rest):
        try:
            rest = urlsplit(rest).path
        except ValueError:  # ``public_url//[x/…``: no file of ours (a CDN copy is only ever claimed exactly)
            return frozenset()
    return frozenset(found for variant in _path_variants(rest) if (found := _under_media_dir(variant, media_dirs)))


class Origin(NamedTuple):
    """Scheme, host and port: the only place ``cdn.verify`` may send a request."""

    scheme: str
    host: str
    port: int


@functools.lru_cache(maxsize=8)
def _origin_of(public_url: str) -> Origin | None:
    """``origin`` of the configured ``cdn.public_url`` (one per configuration, asked of every feed URL)."""
    return origin(public_url)


def origin(url: str) -> Origin | None:
    """The origin of an http(s) URL with a host; None for anything else (or a malformed port)."""
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    if split.scheme not in ("http", "https") or not split.hostname:
        return None
    return Origin(split.scheme, split.hostname.lower(), port or (443 if split.scheme == "https" else 80))


# --- verification ------------------------------------------------------------


#: why the CDN does or doesn't hold a file: the same size (the one ok), a URL on another origin or not valid text
#: (nothing requested), no answer or none in time, a redirect, another status, no usable Content-Length, another
#: size, or too many requests unanswered already (not sent)
VerdictCode = Literal["same-size", "off-cdn", "bad-url", "no-answer", "timed-out", "redirect", "status", "no-length",
                      "size-differs", "gave-up"]


class Verdict(NamedTuple):
    """Whether the CDN holds the file (``ok``), and why: a code and its facts (``wording.verdict_text``)."""

    ok: bool
    code: VerdictCode
    url: str = ""
    #: the HTTP status, the CDN's Content-Length and the local size, where a redirect pointed
    status: int = 0
    length: int = 0
    local_size: int = 0
    location: str | None = None
    #: no-answer: the error as the network library gave it; timed-out: the timeout; gave-up: the requests unanswered
    error: str = ""
    seconds: float = 0.0
    unanswered: int = 0
    #: off-cdn: the configured cdn.public_url
    public_url: str = ""
    #: the CDN gave an HTTP answer (False: timeout, refused, unreachable)
    answered: bool = True


#: characters left as they are in the request target (the rest is percent-encoded)
_TARGET_SAFE = "/%?=&;:@!$'()*+,~-._"


def verify(url: str, local_size: int, timeout: float, public_url: str) -> Verdict:
    """HEAD ``url``: ok only on a 200 whose Content-Length equals ``local_size``.

    Only ``public_url``'s scheme, host and port are ever contacted: a URL on
    another origin is not requested. No redirect is followed (a 3xx is not a
    200). ``timeout`` bounds the whole request from the connection on (the
    resolver's lookup keeps its own timeouts). Any other answer, a timeout or
    a network error is not ok, with the reason.
    """
    cdn = origin(public_url)
    if cdn is None or origin(url) != cdn:
        return Verdict(False, "off-cdn", url, public_url=public_url)
    split = urlsplit(url)
    try:
        target = quote(split.path or "/", safe=_TARGET_SAFE) + (f"?{quote(split.query, safe=_TARGET_SAFE)}"
                                                                 if split.query else "")
    except UnicodeError:
        return Verdict(False, "bad-url", url)
    import http.client  # only when cdn.verify is on

    connection_class = http.client.HTTPSConnection if cdn.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(cdn.host, cdn.port, timeout=timeout)
    expired = threading.Event()
    timer = threading.Timer(timeout, _abort, (connection, expired))
    timer.daemon = True
    timer.start()
    try:
        connection.request("HEAD", target, headers={"User-Agent": "datagc"})
        response = connection.getresponse()
        status, length = response.status, response.getheader("Content-Length")
        location = response.getheader("Location")
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = str(error) or type(error).__name__
    else:
        reason = ""
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        return Verdict(False, "timed-out", url, seconds=timeout, answered=False)
    if reason:
        return Verdict(False, "no-answer", url, error=reason, answered=False)
    if 300 <= status < 400:
        return Verdict(False, "redirect", url, status=status, location=location)
    if status != 200:
        return Verdict(False, "status", url, status=status)
    if length is None or not (length.isascii() and length.isdigit()):
        return Verdict(False, "no-length", url, status=status)
    if int(length) != local_size:
        return Verdict(False, "size-differs", url, status=status, length=int(length), local_size=local_size)
    return Verdict(True, "same-size", url, status=status, length=local_size, local_size=local_size)


def _abort(connection: object, expired: threading.Event) -> None:
    """The whole-request deadline: shut the socket down, so that a read blocked on it returns."""
    import socket

    expired.set()
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def verify_all(requests: Mapping[str, tuple[str, int]], public_url: str, timeout: float) -> dict[str, Verdict]:
    """Verify many files at once: ``{key: (url, local_size)}`` -> ``{key: Verdict}``.

    Requests run ``VERIFY_WORKERS`` at a time. Once ``VERIFY_GIVE_UP_AFTER``
    requests went unanswered, the CDN is taken as unreachable and the rest are
    not sent (not ok, saying so), so a dead CDN costs a few timeouts, not one
    per file.
    """
    lock = threading.Lock()
    unanswered = [0]

    def one(item: tuple[str, tuple[str, int]]) -> tuple[str, Verdict]:
        key, (url, size) = item
        with lock:
            if unanswered[0] >= VERIFY_GIVE_UP_AFTER:
                return key, Verdict(False, "gave-up", url, unanswered=unanswered[0], answered=False)
        verdict = verify(url, size, timeout, public_url)
        if not verdict.answered:
            with lock:
                unanswered[0] += 1
        return key, verdict

    if not requests:
        return {}
    from concurrent.futures import ThreadPoolExecutor  # only a verifying sweep needs it (and its logging)

    with ThreadPoolExecutor(max_workers=min(VERIFY_WORKERS, len(requests))) as pool:
        return dict(pool.map(one, requests.items()))
