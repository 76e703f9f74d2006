"""The report of a changing command, written while the pass runs: memory stays flat however much it deletes.

Every action a step records reaches ``ReportStream.action``: a plain line or
a JSON action is written at once (into stdout's buffer, flushed when it fills
and when the step ends: a flush per line cost a system call per deleted file)
and nothing of it is kept (a rich terminal
keeps only the rows its table shows; ``--quiet`` keeps nothing). When a step
ends (``settle``) its notes, kept files and facts follow; ``finish`` writes
the end of the report (the run's exit code, the disk after, the summary line).

The JSON report stays one document with the same fields; it is written in
the order things become known: a step's ``actions`` before its ``status``,
the run's ``steps`` before its ``exit_code``. Steps appear in the report's
order: a rotation that failed for lack of space in ``run-all`` is held back
(and the steps after it buffered) until it is retried, so that its retry
takes its place.

A report that can't be written (stdout closed, a full disk under a
redirection) never stops the pass: writing stops, and ``finish`` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from datagc.model import Action, Delete, RunReport, StepReport
from datagc.render.json_report import JSON_VERSION, action_json, disk_json, step_error, step_json
from datagc.render.lines import action_line, busy_line, delete_lines, step_lines, summary_line
from datagc.render.terminal import TABLE_ROWS, Renderer
from datagc.text import escape, escape_json


class ReportStream:
    """An ``Outlet`` (``model.Outlet``) writing one run's report through ``renderer``'s streams."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.json = renderer.json
        #: JSON (even with --quiet) or plain lines: written as they come
        self.live = renderer.json or not (renderer.quiet or renderer.rich)
        self._report: RunReport | None = None
        #: steps of the report written in full
        self._written = 0
        #: the step being written live (its head is out), and whether an action of it was
        self._open: StepReport | None = None
        self._open_actions = False
        #: index of a step held back for a retry: it and the steps after it are not written yet
        self._hold: int | None = None
        self._head_done = False
        self.failure: OSError | None = None

    # --- the outlet ---

    def begin(self, report: RunReport) -> None:
        self._report = report

    def action(self, step: StepReport, action: Action) -> None:
        if not self.live:
            if not self.renderer.quiet and len(step.actions) < TABLE_ROWS:
                step.actions.append(action)  # the rich table shows these; the rest is counted
            return
        report = self._report
        if report is None or self._hold is not None or self._written != len(report.steps):
            step.actions.append(action)  # an earlier step isn't written yet: this one waits for it
            return
        if self._open is not step:
            self._open_step(step)
        self._write_action(action)

    def deletions(self, step: StepReport, actions: Sequence[Delete]) -> None:
        """``action`` for each of ``actions``; plain lines in one call (their words shared, ``delete_lines``)."""
        report = self._report
        if self.json or not self.live or report is None or self._hold is not None or self._written != len(
                report.steps):
            for action in actions:
                self.action(step, action)
            return
        if self._open is not step:
            self._open_step(step)
        if actions:
            lines = [f"{escape(line)}\n" for line in delete_lines(actions, report.dry_run)]
            self._guarded(lambda: self.renderer.out.writelines(lines))  # a line per write: ``shared_stdout``
            self._open_actions = True

    def settle(self, report: RunReport, hold: int | None = None) -> None:
        """The steps of ``report`` so far are complete, except ``hold`` (to be replaced): write them."""
        self._report = report
        self._hold = hold
        end = len(report.steps) if hold is None else hold
        while self._written < end:
            self._write_step(report.steps[self._written])
            self._written += 1

    def finish(self, report: RunReport) -> bool:
        """Write what is left of ``report``; False if the report could not be written."""
        self.settle(report)
        for step in report.steps:
            if error := step_error(step):
                self.renderer.error(f"{step.name} failed: {error}")
        if self.renderer.json:
            self._write_json_tail(report)
        elif self.renderer.quiet:
            pass
        elif self.renderer.rich:
            self._guarded(lambda: self.renderer.run_report(report, errors=False))
        else:
            tail = [f"[janitor] {busy}"] if (busy := busy_line(report)) else []
            self._lines([*tail, summary_line(report)])
        if self.failure is not None:
            self.renderer.error(f"the report could not be written in full ({self.failure.strerror or self.failure}); "
                                "the pass itself ran to its end")
            return False
        return True

    # --- writing ---

    def _guarded(self, write: Any) -> None:
        if self.failure is not None:
            return
        try:
            write()
        except OSError as error:
            self.failure = error

    def _out(self, text: str) -> None:
        self._guarded(lambda: self.renderer.out.write(text))

    def _lines(self, lines: list[str]) -> None:
        self._guarded(lambda: self.renderer.lines(lines))

    def _dump(self, value: Any, indent: int) -> str:
        if self.renderer.json_lines:
            return orjson.dumps(escape_json(value)).decode()
        text = orjson.dumps(escape_json(value), option=orjson.OPT_INDENT_2).decode()
        return text.replace("\n", "\n" + " " * indent)

    def _sep(self, indent: int) -> str:
        return "" if self.renderer.json_lines else "\n" + " " * indent

    def _member(self, key: str, value: Any, indent: int) -> str:
        colon = ":" if self.renderer.json_lines else ": "
        return f"{self._dump(key, indent)}{colon}{self._dump(value, indent)}"

    def _write_head(self) -> None:
        if self._head_done or not self.json:
            return
        self._head_done = True
        report = self._report
        assert report is not None
        head = {"version": JSON_VERSION, "command": report.command, "data_dir": report.data_dir,
                "dry_run": report.dry_run, "disk_before": disk_json(report.disk_before)}
        members = [self._member(key, value, 2) for key, value in head.items()]
        self._out("{" + self._sep(2) + ("," + self._sep(2)).join(members) + "," + self._sep(2) + '"steps":'
                  + ("" if self.renderer.json_lines else " ") + "[")

    def _open_step(self, step: StepReport) -> None:
        self._open, self._open_actions = step, False
        if not self.json:
            return
        self._write_head()
        comma = "," if self._written else ""
        self._out(f"{comma}{self._sep(4)}{{{self._sep(6)}{self._member('name', step.name, 6)},{self._sep(6)}"
                  f"{self._dump('actions', 6)}{':' if self.renderer.json_lines else ': '}[")

    def _write_action(self, action: Action) -> None:
        if self.json:
            comma = "," if self._open_actions else ""
            self._out(f"{comma}{self._sep(8)}{self._dump(action_json(action), 8)}")
        else:
            assert self._open is not None and self._report is not None
            line = action_line(action, self._report.dry_run)
            self._guarded(lambda: self.renderer.lines([line], flush=False))
        self._open_actions = True

    def _write_step(self, step: StepReport) -> None:
        """The rest of ``step``: the actions it buffered, then its notes, kept files and facts."""
        if not self.live:
            return
        if self._open is not step:
            self._open_step(step)
        for action in step.actions:
            self._write_action(action)
        assert self._report is not None
        if self.json:
            document = step_json(step, actions=False)
            del document["name"]
            close = (self._sep(6) if self._open_actions else "") + "]"
            members = "".join("," + self._sep(6) + self._member(key, value, 6) for key, value in document.items())
            self._out(f"{close}{members}{self._sep(4)}}}")
        else:
            self._lines(step_lines(step, self._report.dry_run, self.renderer.verbose, actions=False))
        self._open = None

    def _write_json_tail(self, report: RunReport) -> None:
        self._write_head()
        tail = {"exit_code": report.exit_code, "reclaimed_bytes": report.reclaimed_bytes,
                "disk_after": disk_json(report.disk_after), "other_pass_running": report.other_pass_running}
        members = "".join("," + self._sep(2) + self._member(key, value, 2) for key, value in tail.items())
        close = self._sep(2) if self._written else ""
        self._out(f"{close}]{members}{self._sep(0)}}}\n")
        self._guarded(self.renderer.out.flush)
