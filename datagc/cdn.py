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

import posixpath
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

#: seconds a HEAD request to the CDN may take before the copy is kept
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
    normal = posixpath.normpath("/" + path)
    return [part for part in normal.split("/") if part]


def media_suffixes(path: str, media_dirs: Sequence[str]) -> list[str]:
    """Every ``media_dir/rest`` that ends ``path`` on a segment boundary (``rest`` non-empty)."""
    parts = _segments(path)
    found = []
    for media_dir in media_dirs:
        wanted = media_dir.split("/")
        width = len(wanted)
        for start in range(len(parts) - width):
            if parts[start:start + width] == wanted:
                found.append("/".join(parts[start:]))
    return found


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


def local_paths(url: str, media_dirs: Sequence[str]) -> set[str]:
    """The media files a local URL (``/images/a.png``, ``.data/images/a.png``) may name.

    Read generously, since a miss would leave the feed pointing at a deleted
    file: the URL as written, its path without query or fragment, and both
    percent-decoded. Empty for http(s) URLs and other schemes (``data:``).
    """
    if is_remote(url):
        return set()
    split = urlsplit(url)
    if split.scheme not in ("", "file"):
        return set()
    variants = _path_variants(split.path) | ({url} if not split.scheme else set())
    return {found for variant in variants for found in media_suffixes(variant, media_dirs)}


def cdn_paths(url: str, public_url: str, media_dirs: Sequence[str]) -> set[str]:
    """The media files an http(s) URL shows on the CDN.

    With ``public_url`` set, the URL must be ``public_url/<media_dir>/<path>``
    exactly (query and fragment aside). Without it, any http(s) URL whose path
    ends in ``/<media_dir>/<path>`` counts.
    """
    if not is_remote(url):
        return set()
    if public_url:
        base = public_url.rstrip("/") + "/"
        if not url.startswith(base):
            return set()
        rest = urlsplit("/" + url[len(base):]).path
        return {found for variant in _path_variants(rest) if (found := _under_media_dir(variant, media_dirs))}
    path = urlsplit(url).path
    return {found for variant in _path_variants(path) for found in media_suffixes(variant, media_dirs)}


# --- verification ------------------------------------------------------------


class Verdict(NamedTuple):
    """Whether the CDN holds the file (``ok``), and why, in words for people."""

    ok: bool
    why: str
    #: the CDN gave an HTTP answer (False: timeout, refused, unreachable)
    answered: bool = True


def verify(url: str, local_size: int, timeout: float) -> Verdict:
    """HEAD ``url``: ok only on a 200 whose Content-Length equals ``local_size``.

    Any other answer, a timeout or a network error is not ok, with the reason.
    Unpacks as ``(ok, why)``-first; redirects are followed.
    """
    import urllib.error  # only when cdn.verify is on: urllib costs ~50 ms of start-up
    import urllib.request

    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "datagc"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as error:
        return Verdict(False, f"the CDN answered {error.code} {error.reason} for {url}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return Verdict(False, f"the CDN did not answer for {url} ({reason})", answered=False)
    if status != 200:
        return Verdict(False, f"the CDN answered {status} for {url}")
    if length is None or not length.strip().isdigit():
        return Verdict(False, f"the CDN answered 200 without a usable Content-Length for {url}")
    if int(length) != local_size:
        return Verdict(False, f"the CDN has {int(length)} bytes at {url}, the local copy {local_size}")
    return Verdict(True, f"the CDN answered 200 with the same {local_size} bytes")


def verify_all(requests: Mapping[str, tuple[str, int]], timeout: float) -> dict[str, Verdict]:
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
                return key, Verdict(False, f"not verified: the CDN left {unanswered[0]} requests unanswered, "
                                           "so no more were sent in this pass", answered=False)
        verdict = verify(url, size, timeout)
        if not verdict.answered:
            with lock:
                unanswered[0] += 1
        return key, verdict

    if not requests:
        return {}
    with ThreadPoolExecutor(max_workers=min(VERIFY_WORKERS, len(requests))) as pool:
        return dict(pool.map(one, requests.items()))
