"""The journal of every change datagc applied (SPEC §9), in the state dir (``datagc.statedir``).

``journal.jsonl`` holds one JSON line per change actually applied (a dry run
writes nothing). ``Journal`` buffers the lines of a pass and appends them
with O_APPEND in batches; ``flush`` writes what is left and fsyncs, once per
pass. A write that fails (ENOSPC, EACCES, a broken state dir) is undone
(truncated back to the last whole line), kept in memory and tried again at
the next batch and at ``flush``: a full disk never stops the deletions that
free it, and their lines are written as soon as they have freed the room.
What still can't be written at ``flush`` is that step's error. Over
``journal.max_bytes`` the journal keeps its newest half, by the lossless
keep-the-tail rotation of event logs (``tailcopy.rotate_log``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from datagc.config.schema import Config
from datagc.model import Delete, FeedNull, FeedRestore, Rotate
from datagc.safety.datadir import DataDir
from datagc.safety.rewrite import TEMP_MARK, discard_temp
from datagc.statedir import StateDirError, open_state_dir

JOURNAL_NAME = "journal.jsonl"
#: buffered bytes that trigger an append (the rest waits for ``flush``)
BATCH_BYTES = 64 * 1024
#: how many bad line numbers a reader lists (the count is always exact)
LISTED_BAD_LINES = 20


# --- entries ------------------------------------------------------------------


#: the last millisecond formatted, and its text: a pass stamps dozens of entries per millisecond
_STAMP: list[Any] = [None, ""]


def rfc3339(seconds: float) -> str:
    """``2026-11-26T12:00:00.123Z``: UTC, milliseconds; sorts as text in time order."""
    millis = int(seconds * 1000)
    if millis != _STAMP[0]:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"
        _STAMP[:] = [millis, text]
    text = _STAMP[1]
    return text


def entry_line(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry) + b"\n"


# --- writing ------------------------------------------------------------------


@dataclass
class Journal:
    """The journal of one command: ``record`` each change as it is applied, ``flush`` at the end of each step."""

    data_dir: DataDir
    config: Config
    command: str
    _pending: deque[bytes] = field(default_factory=deque)
    _prefixes: dict[str, bytes] = field(default_factory=dict)
    _pending_bytes: int = 0
    _state_fd: int = -1
    _fd: int = -1
    _dirty: bool = False
    #: the last failure, until a write succeeds again
    _problem: str | None = None
    #: the journal file was created by this run: its directory entry needs an fsync too
    _created: bool = False
    #: oldest unwritten lines given up while the journal could not be written (beyond what it keeps)
    _dropped: int = 0
    #: lines recorded since the last ``flush``: the current step's changes
    _step_lines: int = 0

    def record(self, step: str, kind: str, path: str, nbytes: int, reason: str | None, **extra: Any) -> None:
        """Append one applied change (``extra``: post, field, url, media, lines_kept)."""
        entry = {"ts": rfc3339(time.time()), "command": self.command, "step": step, "kind": kind,
                 "path": json_text(path), "bytes": nbytes, "reason": reason}
        entry.update((key, json_text(value) if isinstance(value, str) else value) for key, value in extra.items())
        self._append(entry_line(entry))

    def deletes(self, step: str, actions: Iterable[Delete]) -> None:
        """One line per deletion, in order, stamped now: the hot path (a pass may delete 100k files), each
        line built directly, as ``record`` would."""
        prefix = self._prefixes.get(step)
        if prefix is None:
            prefix = self._prefixes[step] = orjson.dumps({"command": self.command, "step": step,
                                                          "kind": "delete"})[1:-1] + b","
        head = b'{"ts":"%b",%b"path":' % (rfc3339(time.time()).encode(), prefix)
        reasons: dict[str, bytes] = {}
        lines = []
        for action in actions:
            reason = reasons.get(action.reason)
            if reason is None:
                reason = reasons[action.reason] = orjson.dumps(action.reason)
            lines.append(b'%b%b,"bytes":%d,"reason":%b}\n' % (head, orjson.dumps(json_text(action.path)),
                                                               action.bytes, reason))
        self._step_lines += len(lines)
        self._pending.extend(lines)
        self._pending_bytes += sum(map(len, lines))
        self._flush_batch()

    def _append(self, line: bytes) -> None:
        self._step_lines += 1
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._flush_batch()

    def _flush_batch(self) -> None:
        if self._pending_bytes < BATCH_BYTES:
            return
        self._write_pending()
        if self._pending_bytes > self.config.journal.max_bytes:
            # Still failing: keep only what a trimmed journal would keep (memory stays bounded on a huge pass).
            keep = self.config.journal.max_bytes // 2
            while self._pending_bytes > keep:
                self._pending_bytes -= len(self._pending.popleft())
                self._dropped += 1

    def rotate(self, step: str, action: Rotate) -> None:
        self.record(step, "rotate", action.path, max(0, action.bytes_before - action.bytes_after), None,
                    bytes_before=action.bytes_before, bytes_after=action.bytes_after, lines_kept=action.lines_kept)

    def feed_change(self, step: str, change: FeedNull | FeedRestore, reasons: Mapping[str, str]) -> None:
        """A feed field set to null, or restored (rule 14); ``reasons``: media path -> why it was to go."""
        from datagc.cdn import local_paths  # feed changes only: keeps `history` and `audit` start-up lean

        named = local_paths(change.url, self.config.sweep.media_dirs)
        media = next((path for path in sorted(named) if path in reasons), None)
        reason: str | None = change.reason if isinstance(change, FeedNull) else None
        if reason is None and media is not None:
            reason = reasons[media]
        self.record(step, change.kind, change.path, 0, reason, post=change.post, field=change.field, url=change.url,
                    media=media)

    def flush(self) -> str | None:
        """Write what is pending and fsync; trim the journal if it outgrew its bound.

        Returns what went wrong, for the step's report: None, or a sentence.
        Lines that could not be written stay pending for the next ``flush``;
        a step that recorded nothing is not told again of an earlier step's
        failure (that step's report said it).
        """
        own = self._step_lines
        self._step_lines = 0
        self._write_pending()
        if self._problem is not None:
            # the newest pending lines are this step's (the oldest may have been given up)
            lost = min(own, len(self._pending) + self._dropped)
            return f"{self._problem}; {lost} change(s) of this pass are not in the journal" if own else None
        if not self._dirty:
            return None
        try:
            os.fsync(self._fd)
            if self._created:
                os.fsync(self._state_fd)
                self._created = False
        except OSError as error:
            return f"journal {JOURNAL_NAME} could not be synced ({error.strerror})" if own else None
        self._dirty = False
        return self._trim()

    def close(self) -> None:
        for fd in (self._fd, self._state_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._state_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> None:
        if self._state_fd < 0:
            state_fd = open_state_dir(self.data_dir, self.config, create=True)
            assert state_fd is not None
            self._state_fd = state_fd
            with contextlib.suppress(OSError):
                _clean_trim_leftovers(self._state_fd)
        if self._fd < 0:
            self._fd, self._created = _open_for_append(self._state_fd)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        size = -1
        try:
            self._open()
            size = os.fstat(self._fd).st_size
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except (OSError, StateDirError) as error:
            if size >= 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)  # no torn line: the whole batch is tried again later
            self._problem = str(error) if isinstance(error, StateDirError) else (
                f"journal {self.config.state.dir}/{JOURNAL_NAME} could not be written ({error.strerror or error})")
            return
        self._pending.clear()
        self._pending_bytes = 0
        self._dirty = True
        self._problem = None

    def _trim(self) -> str | None:
        """Keep the newest half of ``journal.max_bytes`` once the journal is over it (lossless, line-aligned)."""
        from datagc.tailcopy import failure_reason, rotate_log

        limit = self.config.journal.max_bytes
        if os.fstat(self._fd).st_size <= limit:
            return None
        os.close(self._fd)  # its own writer must not hold the old inode open during the rotation
        self._fd = -1
        try:
            rotate_log(self._state_fd, JOURNAL_NAME, JOURNAL_NAME, keep_lines=1 << 62, keep_bytes=limit // 2,
                       dev=os.fstat(self._state_fd).st_dev)
        except OSError as error:
            return (f"journal {JOURNAL_NAME} is over journal.max_bytes and could not be trimmed "
                    f"({failure_reason(error)})")
        return None


def _clean_trim_leftovers(state_fd: int) -> None:
    """Remove the temp of a trim interrupted by a crash (the state dir is datagc's own; the lock is held)."""
    with os.scandir(state_fd) as entries:
        leftovers = [entry.name for entry in entries if entry.name.startswith(JOURNAL_NAME + TEMP_MARK)]
    for name in leftovers:
        discard_temp(state_fd, name)


def _open_for_append(state_fd: int) -> tuple[int, bool]:
    """The journal opened for appending, and whether it was created now."""
    # O_NONBLOCK: a FIFO planted there fails (ENXIO) instead of blocking the pass.
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd, created = os.open(JOURNAL_NAME, flags, dir_fd=state_fd), False
    except FileNotFoundError:
        fd, created = os.open(JOURNAL_NAME, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=state_fd), True
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "is not a regular file", JOURNAL_NAME)
    return fd, created


def json_text(value: str) -> str:
    """``value`` as valid UTF-8: non-UTF-8 names (surrogate escapes) as ``\\xNN``, lone surrogates as ``\\udNNN``."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


# --- reading ------------------------------------------------------------------


@dataclass
class JournalRead:
    """The journal's entries oldest first, and the lines that were not entries."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    #: line numbers (1-based) of lines skipped as corrupt; the first ``LISTED_BAD_LINES``
    bad_lines: list[int] = field(default_factory=list)
    bad_count: int = 0
    #: the state dir or journal doesn't exist yet (nothing was ever journaled)
    missing: bool = False


def read_journal(data_dir: DataDir, config: Config) -> JournalRead:
    """Every entry of the journal, without creating or locking anything. Raises StateDirError."""
    state_fd = open_state_dir(data_dir, config, create=False)
    if state_fd is None:
        return JournalRead(missing=True)
    try:
        fd = os.open(JOURNAL_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=state_fd)
    except FileNotFoundError:
        return JournalRead(missing=True)
    except OSError as error:
        raise StateDirError(error.errno, f"journal {config.state.dir}/{JOURNAL_NAME} cannot be read "
                                         f"({'a symbolic link' if error.errno == errno.ELOOP else error.strerror})"
                            ) from None
    finally:
        os.close(state_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateDirError(errno.EINVAL, f"journal {config.state.dir}/{JOURNAL_NAME} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return parse_lines(handle)
    finally:
        os.close(fd)


def parse_lines(lines: Iterator[bytes] | Any) -> JournalRead:
    """Entries from journal lines; a line that is not a journal entry is counted and skipped.

    A last line without its newline is a write in progress, not corruption: it is ignored.
    """
    read = JournalRead()
    for number, line in enumerate(lines, 1):
        if not line.endswith(b"\n"):
            break
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            entry = None
        if (isinstance(entry, dict) and isinstance(entry.get("ts"), str) and isinstance(entry.get("kind"), str)
                and isinstance(entry.get("path"), str)):
            read.entries.append(entry)
            continue
        read.bad_count += 1
        if len(read.bad_lines) < LISTED_BAD_LINES:
            read.bad_lines.append(number)
    return read
