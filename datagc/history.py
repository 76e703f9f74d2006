"""``datagc history``: what datagc did to this data directory, newest first, from its journal (SPEC §9).

Read-only: it takes no lock and creates nothing (no journal yet is an empty
history). ``PATTERN`` answers "where did this file go, and why": it is a path
or a glob relative to DATA_DIR (``fnmatch``: ``*`` also matches ``/``); a
directory matches everything under it. An entry matches by its ``path``, and a
feed change also by the media file its URL names (``media``), so
``history images/a.png`` shows the deletion and the feed fields nulled for it.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

from datagc.config.schema import Config
from datagc.errors import ConfigError
from datagc.journal import JOURNAL_NAME, read_journal, rfc3339
from datagc.safety.datadir import DataDir


@dataclass
class HistoryReport:
    """The journal entries asked for, newest first, and what was wrong with the journal."""

    data_dir: str
    journal: str
    pattern: str | None
    since_seconds: float | None
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: lines skipped because they are not journal entries: how many, and the first line numbers
    corrupt_lines: int = 0
    corrupt_line_numbers: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def normalise_pattern(pattern: str, data_dir: str) -> str:
    """``PATTERN`` relative to DATA_DIR: ``./images/a.png`` and ``/app/.data/images/a.png`` are ``images/a.png``."""
    if pattern.startswith("/"):
        for root in dict.fromkeys((os.path.abspath(data_dir), os.path.realpath(data_dir))):
            if pattern == root or pattern.startswith(root.rstrip("/") + "/"):
                pattern = pattern[len(root):]
                break
        else:
            raise ConfigError(f"PATTERN {pattern!r} is outside the data directory {data_dir}; "
                              "give a path or glob relative to it")
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    return "/".join(parts)


def matches(entry: dict[str, Any], pattern: str) -> bool:
    """Whether ``entry`` concerns ``pattern`` (a normalised path or glob; empty matches everything)."""
    if not pattern:
        return True
    for value in (entry.get("path"), entry.get("media")):
        if isinstance(value, str) and (fnmatch.fnmatchcase(value, pattern) or value.startswith(pattern + "/")):
            return True
    return False


def history(data_dir: DataDir, config: Config, pattern: str | None, since: float | None,
            now: float) -> HistoryReport:
    """The entries concerning ``pattern`` from the last ``since`` seconds (all when None), newest first.

    Raises StateDirError when the state dir or journal can't be read
    (a symlink, not a directory, EACCES).
    """
    wanted = normalise_pattern(pattern, str(data_dir.path)) if pattern is not None else ""
    report = HistoryReport(str(data_dir.path), f"{config.state.dir}/{JOURNAL_NAME}", pattern, since)
    read = read_journal(data_dir, config)
    if read.missing:
        report.notes.append(f"no journal yet at {report.journal}: datagc has changed nothing here since it "
                            "started keeping one")
    report.corrupt_lines, report.corrupt_line_numbers = read.bad_count, read.bad_lines
    cutoff = rfc3339(now - since) if since is not None else ""
    report.entries = [entry for entry in reversed(read.entries) if entry["ts"] >= cutoff and matches(entry, wanted)]
    return report
