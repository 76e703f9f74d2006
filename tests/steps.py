"""Reading step reports in tests: their notes, reasons and errors as the renderers word them."""

from __future__ import annotations

import errno
from typing import Any

from datagc.model import Kept, PassContext, StepReport
from datagc.render.json_report import step_error
from datagc.runner import run_step
from datagc.wording import text


def notes(report: Any) -> list[str]:
    """The notes of a step report or a plan, as sentences."""
    return [text(note) for note in report.notes]


def why(kept: Kept) -> str:
    return text(kept.why)


def error(step: StepReport) -> str | None:
    return step_error(step)


def errno_name(step: StepReport) -> str:
    return errno.errorcode.get(step.errno or 0, "")


def run(name: str, ctx: PassContext) -> StepReport:
    """One pass through the runner's protocol (prepare, the executor, conclude), as a step."""
    return run_step(name, ctx)
