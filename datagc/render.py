"""All output: rich on a terminal, one plain line per event otherwise, one JSON object with --json.

The renderer is given its streams and whether stdout is a terminal; nothing
else in datagc writes to stdout or stderr. Plain lines keep the prefixes the
service's operators already search for (``[janitor]``, ``[disk-audit]``).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from datagc import render_journal
from datagc.facts import DiskUsage
from datagc.limits import limit_json
from datagc.model import Action, Delete, FeedNull, FeedRestore, Rotate, RunReport, StepReport
from datagc.passes.audit import AuditReport, ProgressCallback
from datagc.text import escape, escape_json
from datagc.units import human_age, human_size
from datagc.wording import error_text, limits_with_thresholds, text

if TYPE_CHECKING:
    from datagc.history import HistoryReport

JSON_VERSION = 1
#: rows of actions shown in a rich table before "… and N more"
TABLE_ROWS = 30


size = human_size


def people_size(count: int) -> str:
    """``2.1 MB`` for the terminal views (humanize; they show a screenful, so its cost doesn't matter)."""
    import humanize

    return humanize.naturalsize(count)


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


# --- JSON ---------------------------------------------------------------------


def disk_json(disk: DiskUsage | None) -> dict[str, Any] | None:
    if disk is None:
        return None
    return {
        "total_bytes": disk.total_bytes,
        "used_bytes": disk.used_bytes,
        "free_bytes": disk.free_bytes,
        "used_fraction": round(disk.used_fraction, 6),
    }


def action_json(action: Action) -> dict[str, Any]:
    if isinstance(action, Delete):
        return {
            "kind": action.kind,
            "path": action.path,
            "bytes": action.bytes,
            "reason": action.reason,
            "age_seconds": round(action.age, 3),
            "detail": action.detail,
        }
    if isinstance(action, (FeedNull, FeedRestore)):
        document = {
            "kind": action.kind,
            "path": action.path,
            "field": action.field,
            "url": action.url,
            "post": action.post,
        }
        if isinstance(action, FeedNull) and action.reason is not None:
            document["reason"] = action.reason
        return document
    return {
        "kind": action.kind,
        "path": action.path,
        "bytes_before": action.bytes_before,
        "bytes_after": action.bytes_after,
        "lines_kept": action.lines_kept,
    }


def step_error(step: StepReport) -> str | None:
    return error_text(step.failures, step.first_failure)


def step_json(step: StepReport) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": step.name,
        "status": step.status,
        "reclaimed_bytes": step.reclaimed_bytes,
        "error": step_error(step),
        "actions": [action_json(action) for action in step.actions],
        "kept": [{"path": kept.path, "why": text(kept.why)} for kept in step.kept],
        "notes": [text(note) for note in step.notes],
    }
    if step.failures:
        document["errno"] = errno.errorcode.get(step.errno or 0, "")
    document.update(step.details)
    return document


def run_json(report: RunReport) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": report.command,
        "data_dir": report.data_dir,
        "dry_run": report.dry_run,
        "exit_code": report.exit_code,
        "reclaimed_bytes": report.reclaimed_bytes,
        "disk_before": disk_json(report.disk_before),
        "disk_after": disk_json(report.disk_after),
        "other_pass_running": report.other_pass_running,
        "steps": [step_json(step) for step in report.steps],
    }


def audit_json(report: AuditReport) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "audit",
        "data_dir": report.data_dir,
        "dry_run": False,
        "exit_code": int(report.flags),
        "total_bytes": report.total_bytes,
        "apparent_bytes": report.apparent_bytes,
        "files": report.files,
        "dirs": report.dirs,
        "breakdown": [{"path": e.path, "bytes": e.bytes, "files": e.files} for e in report.breakdown],
        "largest": [{"path": f.path, "bytes": f.bytes} for f in report.largest],
        "disk": disk_json(report.disk),
        "threshold": report.threshold,
        "limits": [limit_json(limit) for limit in report.limits],
        "mount_root": report.mount_root,
        "unaccounted_bytes": report.unaccounted_bytes,
        "deleted_open": [
            {"pid": d.pid, "command": d.command, "path": d.path, "bytes": d.bytes}
            for d in report.deleted_open
        ],
        "dangling_references": render_journal.dangling_json(report.dangling),
        "symlinks": [path for path in report.symlinks],
        "mounts": [path for path in report.mounts],
        "special_files": report.special_files,
        "errors": report.errors,
        "notes": report.notes,
    }


# --- plain lines --------------------------------------------------------------


def action_line(action: Action, dry_run: bool) -> str:
    would = "would " if dry_run else ""
    if isinstance(action, Rotate):
        verb = "rotate" if dry_run else "rotated"
        return (
            f"[janitor] {would}{verb} {action.path}: {action.bytes_before} -> {action.bytes_after} bytes "
            f"(kept {action.lines_kept} lines)"
        )
    if isinstance(action, FeedNull):
        post = f" of {action.post}" if action.post else ""
        verb = "null" if dry_run else "nulled"
        why = ", repair: a file deleted by an earlier pass" if action.reason == "repair" else ""
        return f"[janitor] {would}{verb} {action.field}{post} in {action.path} ({action.url}{why})"
    if isinstance(action, FeedRestore):
        post = f" of {action.post}" if action.post else ""
        return (f"[janitor] restored {action.field}{post} in {action.path} ({action.url}): "
                "its file was not deleted after all")
    if action.reason == "pressure":
        verb = "evict" if dry_run else "evicted"
        facts = [action.detail] if action.detail else []
    else:
        verb = "sweep" if dry_run else "swept"
        facts = [] if action.reason == "age" else [action.reason]
    facts += [f"age {human_age(action.age)}", size(action.bytes)]
    return f"[janitor] {would}{verb} {action.path} ({', '.join(facts)})"


def step_lines(step: StepReport, dry_run: bool, verbose: bool) -> list[str]:
    if step.status == "disabled":  # its note says where the kill switch came from
        return [f"[janitor] {text(note)}" for note in step.notes]
    lines = [action_line(action, dry_run) for action in step.actions]
    lines += [f"[janitor] {text(note)}" for note in step.notes]
    if verbose:
        lines += [f"[janitor] kept {kept.path}: {text(kept.why)}" for kept in step.kept]
    return lines


def busy_line(report: RunReport) -> str | None:
    """What a dry run says when another datagc was working on the data directory."""
    if not report.other_pass_running:
        return None
    return (f"another datagc is working on {report.data_dir} (it holds the lock); this dry run did not "
            "wait for it, so a real pass run after it may find less to do")


def summary_line(report: RunReport, sized: Callable[[int], str] = size) -> str:
    """The last line; sizes ``sized`` as the rest of its view writes them (``2.1MB`` plain, ``2.1 MB`` rich)."""
    verb = "would reclaim" if report.dry_run else "reclaimed"
    parts = [f"[janitor] {report.command}: {verb} {sized(report.reclaimed_bytes)}"]
    disk = report.disk_after or report.disk_before
    if disk is not None:
        parts.append(f"disk {percent(disk.used_fraction)} used, {sized(disk.free_bytes)} free")
    parts.append(f"exit {report.exit_code}")
    return "; ".join(parts)


def audit_lines(report: AuditReport) -> list[str]:
    top_dirs = ",".join(f"{e.path}:{size(e.bytes)}" for e in report.breakdown[:5])
    largest = ",".join(f"{f.path}:{size(f.bytes)}" for f in report.largest)
    lines = [
        f"[disk-audit] total={size(report.total_bytes)} files={report.files} "
        f"top_dirs={top_dirs} largest={largest}"
    ]
    if report.disk is not None:
        unaccounted = size(report.unaccounted_bytes or 0)
        lines.append(
            f"[disk-audit] disk used={percent(report.disk.used_fraction)} total={size(report.disk.total_bytes)} "
            f"free={size(report.disk.free_bytes)} threshold={percent(report.threshold)} "
            f"unaccounted={unaccounted} apparent={size(report.apparent_bytes)} dirs={report.dirs}"
        )
    if report.limits:
        lines.append("[disk-audit] limits " + "; ".join(
            limits_with_thresholds([limit]) + (" CROSSED" if limit.crossed else "") for limit in report.limits))
    lines += [
        f"[disk-audit] deleted-open pid={d.pid} command={d.command} bytes={size(d.bytes)} path={d.path}"
        for d in report.deleted_open
    ]
    lines += render_journal.dangling_lines(report.dangling)
    lines += [f"[disk-audit] mount (not walked) {path}" for path in report.mounts]
    if report.symlinks:
        lines.append(f"[disk-audit] symlinks (not followed) {len(report.symlinks)}")
    lines += [f"[disk-audit] note: {note}" for note in report.notes]
    return lines


# --- the renderer -------------------------------------------------------------


@dataclass
class Renderer:
    """Writes every report in the form its reader wants."""

    out: TextIO
    err: TextIO
    is_terminal: bool
    json: bool = False
    quiet: bool = False
    verbose: bool = False
    #: one compact JSON object per line (``watch --json``: a report per pass, for log pipelines)
    json_lines: bool = False

    @property
    def rich(self) -> bool:
        return self.is_terminal and not self.json

    def _console(self, stream: TextIO) -> Any:
        from rich.console import Console

        return Console(file=stream, highlight=False, soft_wrap=True)

    def error(self, message: str) -> None:
        """One ``datagc: …`` line on stderr, whatever the mode."""
        self.err.write(f"datagc: {escape(message)}\n")
        self.err.flush()

    def traceback(self, text: str) -> None:
        """A traceback (``--verbose``) on stderr, each of its lines escaped."""
        self.err.writelines(f"datagc: {escape(line)}\n" for line in text.splitlines())
        self.err.flush()

    def lines(self, lines: Iterable[str]) -> None:
        """Plain lines on stdout, each escaped: one event is always one line."""
        self.out.writelines(f"{escape(line)}\n" for line in lines)
        self.out.flush()

    def message(self, text: str) -> None:
        """A sentence for people (not in JSON or quiet mode)."""
        if not self.json and not self.quiet:
            self.lines([text])

    def write_json(self, document: dict[str, Any]) -> None:
        option = 0 if self.json_lines else orjson.OPT_INDENT_2
        self.out.write(orjson.dumps(escape_json(document), option=option).decode() + "\n")
        self.out.flush()

    def run_report(self, report: RunReport) -> None:
        for step in report.steps:
            error = step_error(step)
            if error:
                self.error(f"{step.name} failed: {error}")
        if self.json:
            self.write_json(run_json(report))
        elif self.quiet:
            return
        elif self.rich:
            self._rich_run_report(report)
        else:
            for step in report.steps:
                self.lines(step_lines(step, report.dry_run, self.verbose))
            if busy := busy_line(report):
                self.lines([f"[janitor] {busy}"])
            self.lines([summary_line(report)])

    def audit_report(self, report: AuditReport) -> None:
        for error in report.errors:
            self.error(f"audit: {error}")
        if self.json:
            self.write_json(audit_json(report))
        elif self.quiet:
            return
        elif self.rich:
            self._rich_audit(report)
        else:
            self.lines(audit_lines(report))

    def history_report(self, report: HistoryReport) -> None:
        if (corrupt := render_journal.corrupt_message(report)) is not None:
            self.error(corrupt)
        if self.json:
            self.write_json(render_journal.history_json(report))
        elif self.quiet:
            return
        elif self.rich:
            console = self._console(self.out)
            console.print(render_journal.history_table(report))
            for note in report.notes:
                console.print(escape(f"note: {note}"), markup=False)
        else:
            self.lines(render_journal.history_lines(report))

    def config_table(self, rows: Sequence[tuple[str, str, str]], explained: Sequence[str] = ()) -> None:
        """The effective configuration; ``explained``: lines that say what some keys mean together."""
        if self.json:
            self.write_json({key: {"value": value, "source": source} for key, value, source in rows})
            return
        if self.rich:
            from rich.table import Table

            table = Table(title="datagc effective configuration")
            for column in ("key", "value", "source"):
                table.add_column(column)
            for key, value, source in rows:
                table.add_row(*map(_cell, (key, value, source)))
            console = self._console(self.out)
            console.print(table)
            for line in explained:
                console.print(line, markup=False)
            return
        self.lines(f"{key} = {value}  # {source}" for key, value, source in rows)
        self.lines(f"# {line}" for line in explained)

    @contextlib.contextmanager
    def walk_progress(self, label: str) -> Iterator[ProgressCallback | None]:
        """A live count of files walked, on a terminal only; a no-op callback elsewhere."""
        if not self.rich or self.quiet:
            yield None
            return
        console = self._console(self.err)
        with console.status(label) as status:

            def update(files: int, total: int) -> None:
                status.update(f"{label} {files:,} files, {people_size(total)}")

            yield update

    # --- rich ---

    def _rich_run_report(self, report: RunReport) -> None:
        from rich.table import Table

        console = self._console(self.out)
        title = f"datagc {report.command}" + (" (dry run: nothing changed)" if report.dry_run else "")
        for step in report.steps:
            table = Table(title=f"{step.name}: {step.status}", title_justify="left", expand=False)
            table.add_column("action")
            table.add_column("path", overflow="fold")  # never cut: two long names must stay apart
            table.add_column("why / what", overflow="fold")
            table.add_column("size", justify="right")
            for action in step.actions[:TABLE_ROWS]:
                table.add_row(*map(_cell, _rich_row(action, report.dry_run)))
            if len(step.actions) > TABLE_ROWS:
                table.add_row("…", f"and {len(step.actions) - TABLE_ROWS:,} more", "", "")
            if step.actions:
                console.print(table)
            else:
                console.print(f"[bold]{step.name}[/bold]: {step.status}")
            for note in step.notes:
                console.print(escape(f"  {text(note)}"), markup=False)
            if self.verbose:
                for kept in step.kept:
                    console.print(escape(f"  kept {kept.path}: {text(kept.why)}"), markup=False)
        console.print(f"[bold]{title}[/bold]")
        if busy := busy_line(report):
            console.print(escape(busy), markup=False)
        console.print(summary_line(report, people_size).removeprefix("[janitor] "), markup=False)

    def _rich_audit(self, report: AuditReport) -> None:
        from rich.table import Table

        console = self._console(self.out)
        console.print("[bold]datagc audit[/bold] of", _cell(report.data_dir))
        console.print(
            f"{people_size(report.total_bytes)} allocated ({people_size(report.apparent_bytes)} apparent) in "
            f"{report.files:,} files and {report.dirs:,} directories",
            markup=False,
        )
        if report.disk is not None:
            disk = report.disk
            state = "[red]above[/red]" if disk.used_fraction > report.threshold else "below"
            console.print(
                f"disk: {percent(disk.used_fraction)} used of {people_size(disk.total_bytes)}, "
                f"{people_size(disk.free_bytes)} free — {state} the pressure threshold {percent(report.threshold)}"
            )
        for limit in report.limits:
            state = "[red]crossed[/red]" if limit.crossed else "ok"
            console.print(f"pressure limit {limit.name}: {limits_with_thresholds([limit])} — {state}")
        breakdown = Table(title="by top-level entry", title_justify="left")
        breakdown.add_column("entry", overflow="fold")
        breakdown.add_column("size", justify="right")
        breakdown.add_column("files", justify="right")
        for entry in report.breakdown[:TABLE_ROWS]:
            breakdown.add_row(_cell(entry.path), people_size(entry.bytes), f"{entry.files:,}")
        console.print(breakdown)
        largest = Table(title="largest files", title_justify="left")
        largest.add_column("path", overflow="fold")
        largest.add_column("size", justify="right")
        for large in report.largest:
            largest.add_row(_cell(large.path), people_size(large.bytes))
        console.print(largest)
        if report.unaccounted_bytes is not None:
            console.print(f"space df counts but the walk can't see: {people_size(report.unaccounted_bytes)}")
        for held in report.deleted_open:
            holder = f"held by pid {held.pid} ({held.command})"
            line = f"  deleted but open: {held.path} {people_size(held.bytes)} {holder}"
            console.print(escape(line), markup=False)
        for line in render_journal.dangling_lines(report.dangling):
            console.print(escape("  " + line.removeprefix("[disk-audit] ")), markup=False)
        for path in report.mounts:
            console.print(escape(f"  other filesystem (not walked): {path}"), markup=False)
        if report.symlinks:
            console.print(f"  {len(report.symlinks)} symlinks (reported, never followed)")
        for note in report.notes:
            console.print(escape(f"  note: {note}"), markup=False)


def _cell(text: str) -> Any:
    """A table cell showing ``text`` escaped, never read as rich markup."""
    from rich.text import Text

    return Text(escape(text))


def _rich_row(action: Action, dry_run: bool) -> tuple[str, str, str, str]:
    if isinstance(action, Rotate):
        sizes = f"{people_size(action.bytes_before)} -> {people_size(action.bytes_after)}"
        what = f"{sizes}, kept {action.lines_kept:,} lines"
        return ("rotate", action.path, what, people_size(action.bytes_before - action.bytes_after))
    if isinstance(action, (FeedNull, FeedRestore)):
        post = f" of {action.post}" if action.post else ""
        return (action.kind, action.path, f"{action.field}{post}: {action.url}", "")
    detail = f" ({action.detail})" if action.detail else ""
    why = f"{action.reason}{detail}, {human_age(action.age)} old"
    return ("delete", action.path, why, people_size(action.bytes))

