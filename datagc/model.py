"""Plans and reports: plain dataclasses that every pass, the executor and every renderer share.

A pass observes the tree and returns a plan (a list of actions, each carrying
its reason); the executor applies it; ``--dry-run`` renders the same plan
unapplied. The report is what happened (or would happen) and is what the
renderers (rich, plain lines, JSON) read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from datagc.config import Config
from datagc.exitcodes import Exit
from datagc.safety import DataDir, DiskUsage, FileIdentity

Reason = Literal["age", "published", "temp", "pressure"]
StepStatus = Literal["ok", "error", "skipped", "disabled"]


@dataclass(frozen=True, slots=True)
class Delete:
    """Unlink one regular file, if it is still what was planned (``identity``)."""

    path: str
    bytes: int  # allocated bytes that come back (0 for a file with other hard links)
    reason: Reason
    age: float  # seconds since its mtime, at planning time
    identity: FileIdentity
    #: why this file and not another, for people: "on the CDN", "unreferenced", …
    detail: str = ""
    kind: Literal["delete"] = "delete"


@dataclass(frozen=True, slots=True)
class FeedNull:
    """Set ``field`` of the feed entry ``post`` to null because it names a file being deleted."""

    path: str  # the feed file, relative to DATA_DIR
    field: str
    url: str
    post: str | None = None  # the entry's "id", when it has one
    kind: Literal["feed-null"] = "feed-null"


@dataclass(frozen=True, slots=True)
class Rotate:
    """Keep only the tail of an event log."""

    path: str
    bytes_before: int
    bytes_after: int
    lines_kept: int
    kind: Literal["rotate"] = "rotate"


Action = Delete | FeedNull | Rotate


@dataclass(frozen=True, slots=True)
class Kept:
    """A file the plan or the executor chose to keep, and why (shown with --verbose)."""

    path: str
    why: str


@dataclass
class StepReport:
    """One step of a run: what it did (or, dry-run, would do), and the exit bits that follow."""

    name: str
    status: StepStatus = "ok"
    reclaimed_bytes: int = 0
    error: str | None = None
    actions: list[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    #: lines for people about the step as a whole (pressure's usage summary, …)
    notes: list[str] = field(default_factory=list)
    #: extra machine-readable facts of the step, merged into its JSON object
    details: dict[str, object] = field(default_factory=dict)
    flags: Exit = Exit.OK


@dataclass
class RunReport:
    """The whole report of one command that changes (or would change) the tree."""

    command: str
    data_dir: str
    dry_run: bool
    disk_before: DiskUsage | None
    disk_after: DiskUsage | None = None
    steps: list[StepReport] = field(default_factory=list)
    #: when the pass started (seconds since the epoch) and how long it ran, for metrics
    started_at: float = 0.0
    duration_seconds: float = 0.0

    @property
    def reclaimed_bytes(self) -> int:
        return sum(step.reclaimed_bytes for step in self.steps)

    @property
    def exit_code(self) -> int:
        code = Exit.OK
        for step in self.steps:
            code |= step.flags
        return int(code)


@dataclass(frozen=True)
class PassContext:
    """What every pass is given: the validated configuration, the open (and, except
    for audit, locked) data directory, whether to apply, and the clock."""

    config: Config
    data_dir: DataDir
    dry_run: bool
    now: float
