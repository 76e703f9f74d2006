"""The renderer: writes every report in the form its reader wants (rich on a terminal, plain lines, JSON)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from datagc.render.journal import corrupt_message, dangling_lines, history_lines, history_table
from datagc.render.json_report import audit_json, history_json, run_json, step_error
from datagc.render.lines import audit_lines, busy_line, percent, step_lines, summary_line, unlisted_line
from datagc.text import escape, escape_json
from datagc.units import for_people, human_age, people_size
from datagc.wording import detail_text, limits_with_thresholds, text

if TYPE_CHECKING:  # the run reports' model: never imported for audit (its start-up is timed)
    from datagc.history import HistoryReport
    from datagc.model import Action, RunReport
    from datagc.passes.audit import AuditReport  # annotations only: run commands never import audit
    from datagc.progress import WalkProgress

#: rows of actions shown in a rich table before "… and N more"
TABLE_ROWS = 30


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
    #: stderr is a terminal: long walks show their progress there
    err_is_terminal: bool = False

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

    def lines(self, lines: Iterable[str], flush: bool = True) -> None:
        """Plain lines on stdout, each escaped: one event is always one line.

        ``flush=False``: left in the stream's buffer (a pass's action lines, as
        its JSON actions: one write per buffer, not per line; the rest of the
        report, or the interpreter's exit, flushes them).
        """
        self.out.writelines(f"{escape(line)}\n" for line in lines)
        if flush:
            self.out.flush()

    def message(self, text: str) -> None:
        """A sentence for people (not in JSON or quiet mode)."""
        if not self.json and not self.quiet:
            self.lines([text])

    def write_json(self, document: dict[str, Any]) -> None:
        import orjson  # JSON output only: audit's plain lines never load it (nor the json module it imports)

        option = 0 if self.json_lines else orjson.OPT_INDENT_2
        self.out.write(orjson.dumps(escape_json(document), option=option).decode() + "\n")
        self.out.flush()

    def run_report(self, report: RunReport, errors: bool = True) -> None:
        """The whole report at once (``render.stream`` writes it as the pass runs, and the rich view at its end)."""
        for step in report.steps:
            error = step_error(step)
            if error and errors:
                self.error(f"{step.name} failed: {error}")
        if self.json:
            self.write_json(run_json(report))
        elif self.quiet:
            return
        elif self.rich:
            with for_people():
                self._rich_run_report(report)
        else:
            for step in report.steps:
                self.lines(step_lines(step, report.dry_run, self.verbose))
            if busy := busy_line(report):
                self.lines([f"[janitor] {busy}"])
            self.lines([summary_line(report)])

    def audit_report(self, report: AuditReport) -> None:
        for error in report.errors:
            self.error(f"audit: {text(error)}")
        if self.json:
            self.write_json(audit_json(report))
        elif self.quiet:
            return
        elif self.rich:
            with for_people():
                self._rich_audit(report)
        else:
            self.lines(audit_lines(report))

    def history_report(self, report: HistoryReport) -> None:
        if (corrupt := corrupt_message(report)) is not None:
            self.error(corrupt)
        if self.json:
            self.write_json(history_json(report))
        elif self.quiet:
            return
        elif self.rich:
            console = self._console(self.out)
            console.print(history_table(report))
            for note in report.notes:
                console.print(escape(f"note: {note}"), markup=False)
        else:
            self.lines(history_lines(report))

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

    @property
    def shows_progress(self) -> bool:
        """Progress is drawn on stderr when it is a terminal (whatever stdout is), never with -q."""
        return self.err_is_terminal and not self.quiet

    @contextlib.contextmanager
    def pass_progress(self) -> Iterator[WalkProgress | None]:
        """What the steps' walks count, drawn on a terminal (``progress.drawn_on``); None elsewhere."""
        if not self.shows_progress:
            yield None
            return
        from datagc.progress import drawn_on

        with drawn_on(self._console(self.err)) as progress:
            yield progress

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
            if (shown := min(len(step.actions), TABLE_ROWS)) < step.action_count:
                table.add_row("…", f"and {step.action_count - shown:,} more", "", "")
            if step.actions:
                console.print(table)
            else:
                console.print(f"[bold]{step.name}[/bold]: {step.status}")
            for note in step.notes:
                console.print(escape(f"  {text(note)}"), markup=False)
            if self.verbose:
                for kept in step.kept:
                    console.print(escape(f"  kept {kept.path}: {text(kept.why)}"), markup=False)
                if unlisted := unlisted_line(step):
                    console.print(f"  {unlisted}", markup=False)
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
        for line in dangling_lines(report.dangling):
            console.print(escape("  " + line.removeprefix("[disk-audit] ")), markup=False)
        for path in report.mounts:
            console.print(escape(f"  other filesystem (not walked): {path}"), markup=False)
        if report.symlinks:
            console.print(f"  {len(report.symlinks)} symlinks (reported, never followed)")
        for note in report.notes:
            console.print(escape(f"  note: {text(note)}"), markup=False)


def _cell(text: str) -> Any:
    """A table cell showing ``text`` escaped, never read as rich markup."""
    from rich.text import Text

    return Text(escape(text))


def _rich_row(action: Action, dry_run: bool) -> tuple[str, str, str, str]:
    if action.kind == "rotate":
        sizes = f"{people_size(action.bytes_before)} -> {people_size(action.bytes_after)}"
        what = f"{sizes}, kept {action.lines_kept:,} lines"
        return ("rotate", action.path, what, people_size(action.bytes_before - action.bytes_after))
    if action.kind == "feed-null" or action.kind == "feed-restore":
        post = f" of {action.post}" if action.post else ""
        return (action.kind, action.path, f"{action.field}{post}: {action.url}", "")
    detail = f" ({detail_text(action.detail)})" if action.detail else ""
    why = f"{action.reason}{detail}, {human_age(action.age)} old"
    return ("delete", action.path, why, people_size(action.bytes))
