"""Rendering what the journal says: ``datagc history`` and audit's dangling references.

Plain lines for log pipelines (``[history] …``, ``[disk-audit] dangling …``)
and a rich table on a terminal; their ``--json`` documents are with the
others in ``render.json_report``. Journal text is the journal's (a person
could have edited it): like every name, it is escaped where it is written out
(``datagc.text``, SPEC §7 rule 16), so no entry can forge a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from datagc.text import escape
from datagc.units import human_size, people_size

if TYPE_CHECKING:
    from datagc.history import HistoryReport
    from datagc.tombstones import Dangling


def _who(entry: dict[str, Any]) -> str:
    command, step = entry.get("command"), entry.get("step")
    return str(command) if step in (None, command) else f"{command}/{step}"


def _bytes(entry: dict[str, Any], key: str = "bytes") -> int:
    value = entry.get(key)
    return value if isinstance(value, int) else 0


def describe(entry: dict[str, Any]) -> str:
    """One entry as a sentence: ``deleted images/a.png (age, 2.1MB)``."""
    kind, path, reason = entry["kind"], str(entry["path"]), entry.get("reason")
    if kind == "delete":
        return f"deleted {path} ({reason}, {human_size(_bytes(entry))})"
    if kind == "rotate":
        return (f"rotated {path}: {_bytes(entry, 'bytes_before')} -> {_bytes(entry, 'bytes_after')} bytes "
                f"(kept {_bytes(entry, 'lines_kept')} lines)")
    if kind in ("feed-null", "feed-restore"):
        verb = "nulled" if kind == "feed-null" else "restored"
        post = f" of {entry['post']}" if entry.get("post") is not None else ""
        media = entry.get("media")
        why = f"; {reason}" if reason else ""
        why += f" of {media}" if media else ""
        return f"{verb} {entry.get('field')}{post} in {path} ({entry.get('url')}{why})"
    return f"{kind} {path}"


def history_lines(report: HistoryReport) -> list[str]:
    lines = [f"[history] {entry['ts']} {_who(entry)}: {describe(entry)}" for entry in report.entries]
    if not report.entries:
        scope = f" for {report.pattern}" if report.pattern else ""
        lines.append(f"[history] no entries{scope}")
    lines += [f"[history] note: {note}" for note in report.notes]
    return lines


def corrupt_message(report: HistoryReport) -> str | None:
    if not report.corrupt_lines:
        return None
    numbers = ", ".join(str(number) for number in report.corrupt_line_numbers)
    more = ", …" if report.corrupt_lines > len(report.corrupt_line_numbers) else ""
    return (f"journal {report.journal}: {report.corrupt_lines} corrupt line(s) skipped "
            f"(line {numbers}{more})")


def history_table(report: HistoryReport) -> Any:
    from rich.table import Table

    title = "datagc history" + (f" of {report.pattern}" if report.pattern else "")
    table = Table(title=escape(title), title_justify="left")
    for column in ("when (UTC)", "by", "change", "path", "why", "size"):
        table.add_column(column, overflow="fold")
    for entry in report.entries:
        change, reason = entry["kind"], str(entry.get("reason") or "")
        detail = ""
        if change in ("feed-null", "feed-restore"):
            detail = f"{entry.get('field')}: {entry.get('url')}"
        size = people_size(_bytes(entry)) if _bytes(entry) else ""
        when = str(entry["ts"]).replace("T", " ")[:19]
        cells = (when, _who(entry), change, str(entry["path"]), f"{reason} {detail}".strip(), size)
        table.add_row(*(escape(cell) for cell in cells))
    return table


# --- audit's dangling references ----------------------------------------------


def dangling_lines(found: Sequence[Dangling]) -> list[str]:
    if not found:
        return []
    by_datagc = sum(d.deleted_by_datagc for d in found)
    lines = [f"[disk-audit] dangling references={len(found)} deleted_by_datagc={by_datagc} "
             f"other={len(found) - by_datagc}"]
    lines += [
        f"[disk-audit] dangling feed={d.feed} post={d.post} field={d.field} "
        f"url={d.url} path={d.path} deleted_by_datagc={'yes' if d.deleted_by_datagc else 'no'}"
        for d in found
    ]
    return lines
