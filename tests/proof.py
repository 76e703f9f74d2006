"""What the real-filesystem proofs check: file snapshots, rotated-log tails, feed nulls, reports against the disk.

Used by the end-to-end, concurrent-writer and crash-injection tests; every
check compares what datagc did (on disk) with what it said (its JSON report)
and with what the generator wrote.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from datagc.safety.rewrite import TEMP_MARK

DAY = 86400.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    digest: str


def regular_files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def snapshot(root: Path) -> dict[str, FileState]:
    """Every regular file under ``root`` (relative path with ``/``) with its size, mtime and content hash."""
    states = {}
    for path in regular_files(root):
        st = path.stat()
        digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        states[path.relative_to(root).as_posix()] = FileState(st.st_size, st.st_mtime_ns, digest)
    return states


def datagc_temps(root: Path) -> list[str]:
    """datagc's own temp files (``TEMP_MARK`` in the name) anywhere under ``root``."""
    return sorted(path.relative_to(root).as_posix() for path in regular_files(root) if TEMP_MARK in path.name)


def write_media(path: Path, size: int, age_days: float, now: float) -> None:
    """A media file of ``size`` real (allocated) bytes whose mtime is ``age_days`` before ``now``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, MiB)) if size else b""
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            handle.write(block[:remaining])
            remaining -= len(block)
    mtime = now - age_days * DAY
    os.utime(path, (mtime, mtime))


# --- event logs ---------------------------------------------------------------


def assert_rotated_tail(original: bytes, rotated: bytes, keep_lines: int, keep_bytes: int) -> int:
    """``rotated`` is the newest complete lines of ``original``, at most ``keep_lines`` and ``keep_bytes``.

    Returns the number of lines kept.
    """
    assert rotated.endswith(b"\n"), "the rotated log does not end with a complete line"
    assert original.endswith(rotated), "the rotated log is not the tail of the original, byte for byte"
    cut = len(original) - len(rotated)
    assert cut == 0 or original[cut - 1:cut] == b"\n", "the rotated log starts inside a line"
    lines = rotated.count(b"\n")
    assert lines <= keep_lines, f"kept {lines} lines, more than keep_lines={keep_lines}"
    assert len(rotated) <= keep_bytes, f"kept {len(rotated)} bytes, more than keep_bytes={keep_bytes}"
    return lines


def newest_lines(data: bytes, count: int) -> bytes:
    """The last ``count`` newline-terminated lines of ``data``."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:]) if count else b""


# --- the feed -----------------------------------------------------------------


def expected_feed(original: bytes, nulls: Iterable[tuple[str, str]]) -> bytes:
    """The feed as datagc must leave it: each ``"field": "url"`` in ``nulls`` becomes ``"field": null``.

    Byte-exact: the service's formatting and every other byte stay as they were.
    """
    expected = original
    for field, url in nulls:
        token = b'"' + field.encode() + b'": ' + orjson.dumps(url)
        assert token in expected, f"{field} {url} is not in the feed"
        expected = expected.replace(token, b'"' + field.encode() + b'": null')
    return expected


def local_refs(feed: list[dict[str, Any]], fields: Iterable[str] = ("imageUrl", "videoUrl")) -> set[tuple[str, str]]:
    """(field, url) of every local media URL in the feed (``/images/a.png``, not ``https://…``)."""
    return {
        (field, post[field])
        for post in feed
        for field in fields
        if isinstance(post.get(field), str) and post[field].startswith("/")
    }


# --- reports ------------------------------------------------------------------


def actions(report: dict[str, Any], kind: str, step: str | None = None) -> list[dict[str, Any]]:
    return [
        action
        for each in report["steps"]
        if step is None or each["name"] == step
        for action in each["actions"]
        if action["kind"] == kind
    ]


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(each for each in report["steps"] if each["name"] == name)


def deleted(report: dict[str, Any], reason: str | None = None) -> set[str]:
    return {action["path"] for action in actions(report, "delete") if reason is None or action["reason"] == reason}


def exit_bits(report: dict[str, Any], threshold: float) -> int:
    """The exit status the report's own actions call for (SPEC §4)."""
    code = 0
    if any(each["status"] == "error" for each in report["steps"]):
        code |= 1
    if actions(report, "rotate"):
        code |= 4
    if any(action["reason"] in ("age", "published", "temp") for action in actions(report, "delete")):
        code |= 8
    if deleted(report, "pressure"):
        code |= 16
    if report["disk_after"]["used_fraction"] > threshold:
        code |= 32
    return code


def used_fraction(root: Path) -> float:
    """df's Use%: used / (used + available)."""
    st = os.statvfs(root)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used / (used + st.f_bavail * st.f_frsize)
