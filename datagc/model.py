"""Plans and reports: the plain values every pass, the executor and every renderer share.

A pass observes the tree and makes a :class:`Plan` (actions, each carrying its
reason; files kept and why; notes); the runner hands the actions to the one
executor, which applies them or, with ``--dry-run``, records them; the pass
then concludes the :class:`StepReport`. Nothing here is English: a
:class:`Note` is a code with fields, and :mod:`datagc.wording` turns it into a
sentence for the renderers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from errno import ENOSPC
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, Protocol, TypeVar

from datagc.config.schema import Config
from datagc.exitcodes import Exit
from datagc.facts import DiskUsage, FileIdentity
from datagc.notes import Note as Note
from datagc.notes import note as note
from datagc.safety.datadir import DataDir

if TYPE_CHECKING:
    from datagc.journal import Journal
    from datagc.progress import WalkProgress

Reason = Literal["age", "published", "temp", "pressure", "repair"]
StepStatus = Literal["ok", "error", "skipped", "disabled"]


#: why this file and not another (``wording.detail_text`` says it): a temp file past sweep.temp_max_age,
#: datagc's own leftover, a media file with a CDN copy, one no post names, one the feed references (pressure's
#: last class), one whose local references are nulled first (sweep)
DetailCode = Literal["orphan-temp", "leftover", "on-cdn", "unreferenced", "referenced", "referenced-locally"]


@dataclass(frozen=True, slots=True)
class Detail:
    """Why this file was chosen: a code and its facts; no English (``wording.detail_text``)."""

    code: DetailCode
    #: the CDN confirmed the copy it is deleted for (``cdn.verify``)
    verified: bool = False
    #: ``referenced-locally``: the ids of the posts naming it (empty: posts without an id)
    posts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, init=False)
class Delete:
    """Unlink one regular file, if it is still what was planned (``identity``)."""

    path: str
    bytes: int  # allocated bytes that come back (0 for a file with other hard links)
    reason: Reason
    age: float  # seconds since its mtime, at planning time
    identity: FileIdentity
    #: why this file and not another
    detail: Detail | None = None
    kind: Literal["delete"] = "delete"

    def __init__(self, path: str, bytes: int, reason: Reason, age: float, identity: FileIdentity,
                 detail: Detail | None = None, kind: Literal["delete"] = "delete") -> None:
        # The frozen dataclass's own __init__, through the slots' setters: half its cost (one per deleted file).
        set_path, set_bytes, set_reason, set_age, set_identity, set_detail, set_kind = _DELETE_SETTERS
        set_path(self, path)
        set_bytes(self, bytes)
        set_reason(self, reason)
        set_age(self, age)
        set_identity(self, identity)
        set_detail(self, detail)
        set_kind(self, kind)


_DELETE_SETTERS = tuple(getattr(Delete, field.name).__set__ for field in dataclasses.fields(Delete))


@dataclass(frozen=True, slots=True)
class FeedNull:
    """Set ``field`` of the feed entry ``post`` to null because it names a file being deleted."""

    path: str  # the feed file, relative to DATA_DIR
    field: str
    url: str
    post: str | None = None  # the entry's "id", when it has one
    #: ``repair``: it named a tombstone (a file deleted by an earlier pass, SPEC §9); else None
    reason: Reason | None = None
    kind: Literal["feed-null"] = "feed-null"
    #: the entry's position in the array, when datagc wrote this null (to find a post without an id again)
    entry: int | None = dataclasses.field(default=None, compare=False, repr=False)


class FeedRestore(NamedTuple):
    """Put back a URL datagc nulled in this pass, because its file was not deleted after all (rule 14)."""

    path: str  # the feed file, relative to DATA_DIR
    field: str
    url: str
    post: str | None = None
    kind: Literal["feed-restore"] = "feed-restore"


class Rotate(NamedTuple):
    """Keep only the tail of an event log."""

    path: str
    bytes_before: int
    bytes_after: int
    lines_kept: int
    kind: Literal["rotate"] = "rotate"


Action = Delete | FeedNull | FeedRestore | Rotate


class Kept(NamedTuple):
    """A file the plan or the executor chose to keep, and why (shown with --verbose)."""

    path: str
    why: Note


class Failure(NamedTuple):
    """Why a step failed: what to tell, and the OS error behind it (run-all retries a rotation on ENOSPC)."""

    why: Note
    errno: int | None = None


@dataclass
class Plan:
    """What a pass decided before anything was touched; passes extend it with their own facts.

    ``actions`` may be a stream (a large sweep's deletions are planned as the
    executor takes them): it is consumed once, and what the planner finds on
    the way (kept files) is complete only then.
    """

    actions: Iterable[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: failures known before applying (a feed that doesn't parse, an unreadable directory)
    failures: list[Failure] = field(default_factory=list)
    #: extra machine-readable facts of the step, merged into its JSON object
    details: dict[str, object] = field(default_factory=dict)
    #: nothing applies (pressure below its threshold, …): the step reports "skipped"
    skipped: bool = False
    #: --verbose: kept files beyond the listed ones, counted by kind (``keptlist``); None without --verbose
    kept_unlisted: dict[str, int] | None = None
    #: --verbose: the files kept for the ordinary reasons, listed (``keptlist.KeptList.settle``) once the
    #: executor has taken the actions: a streamed plan meets them as it is taken. The runner calls it.
    list_kept: Callable[[], tuple[list[Kept], dict[str, int]]] | None = field(default=None, repr=False)


class Outlet(Protocol):
    """Where a step's actions go as they are applied (the report written as the pass runs), instead of
    ``StepReport.actions``: a pass deleting a million files holds none of them."""

    def begin(self, report: RunReport) -> None: ...

    def action(self, step: StepReport, action: Action) -> None: ...

    def deletions(self, step: StepReport, actions: Sequence[Delete]) -> None:
        """``action`` for each of ``actions``, in order (a large pass's deletions, a batch at a time)."""

    def settle(self, report: RunReport, hold: int | None = None) -> None:
        """The steps of ``report`` so far are complete, except ``hold`` (its index: it will be replaced)."""


@dataclass
class StepReport:
    """One step of a run: what it did (or, dry-run, would do), and the exit bits that follow.

    Every action goes through ``record``, which counts it (the exit bits, the
    metrics and the passes' conclusions read the counts) and keeps it in
    ``actions``, or hands it to ``outlet`` when there is one.
    """

    name: str
    status: StepStatus = "ok"
    reclaimed_bytes: int = 0
    #: the actions recorded (those the outlet kept, when there is one)
    actions: list[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: extra machine-readable facts of the step, merged into its JSON object
    details: dict[str, object] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    #: the disk is still above the pressure threshold at the end of the step (exit bit 32)
    still_above: bool = False
    #: how many actions were recorded
    action_count: int = 0
    #: files deleted and their bytes, by (reason, detail)
    deleted_files: Counter[tuple[str, Detail | None]] = field(default_factory=Counter)
    deleted_bytes: Counter[tuple[str, Detail | None]] = field(default_factory=Counter)
    #: bytes deleted under each top-level entry of DATA_DIR
    deleted_under: Counter[str] = field(default_factory=Counter)
    rotations: list[Rotate] = field(default_factory=list)
    #: --verbose: kept files not listed in ``kept``, by kind; None without --verbose
    kept_unlisted: dict[str, int] | None = None
    outlet: Outlet | None = field(default=None, repr=False, compare=False)

    def record(self, action: Action) -> None:
        """One action applied (or, dry-run, that would be): counted, then kept or handed to the outlet."""
        self.action_count += 1
        if isinstance(action, Delete):
            key = (action.reason, action.detail)
            self.deleted_files[key] += 1
            self.deleted_bytes[key] += action.bytes
            self.deleted_under[action.path.partition("/")[0]] += action.bytes
        elif isinstance(action, Rotate):
            self.rotations.append(action)
        if self.outlet is None:
            self.actions.append(action)
        else:
            self.outlet.action(self, action)

    def record_deletions(self, actions: Sequence[Delete]) -> None:
        """``record`` for each of ``actions`` (deletions, in order): the hot path of a pass deleting 100k files.

        Counted a run at a time: consecutive deletions mostly share their
        reason, detail and top-level directory, so each counter is updated
        once per run, not once per file.
        """
        self.action_count += len(actions)
        files, nbytes, under = self.deleted_files, self.deleted_bytes, self.deleted_under
        reason = ""
        detail: Detail | None = None
        top: str | None = None
        count = total = top_total = 0
        for action in actions:
            if action.reason != reason or action.detail is not detail:
                if count:
                    files[(reason, detail)] += count
                    nbytes[(reason, detail)] += total
                reason, detail, count, total = action.reason, action.detail, 0, 0
            count += 1
            total += action.bytes
            path = action.path
            if top is None or not path.startswith(top) or path[len(top):len(top) + 1] not in ("/", ""):
                if top is not None:
                    under[top] += top_total
                top, top_total = path.partition("/")[0], 0
            top_total += action.bytes
        if count:
            files[(reason, detail)] += count
            nbytes[(reason, detail)] += total
        if top is not None:
            under[top] += top_total
        if self.outlet is None:
            self.actions.extend(actions)
        else:
            self.outlet.deletions(self, actions)

    def deleted(self, reason: str | None = None) -> tuple[int, int]:
        """(files, bytes) deleted, for one reason or all."""
        keys = [key for key in self.deleted_files if reason is None or key[0] == reason]
        return sum(self.deleted_files[key] for key in keys), sum(self.deleted_bytes[key] for key in keys)

    def fail(self, why: Note, errno: int | None = None) -> None:
        """Record a failure (once): the step's status becomes "error"."""
        self.failures.append(Failure(why, errno))
        self.status = "error"

    @property
    def first_failure(self) -> Failure | None:
        """The failure the step is reported by: ENOSPC first (run-all acts on it), else the first met."""
        for failure in self.failures:
            if failure.errno == ENOSPC:
                return failure
        return self.failures[0] if self.failures else None

    @property
    def errno(self) -> int | None:
        first = self.first_failure
        return first.errno if first is not None else None

    @property
    def flags(self) -> Exit:
        """The exit bits of this step, derived from its status, actions and end state (SPEC §4).

        Each bit is set once, not once per action: a pass may report 100k deletions.
        """
        flags = Exit.STEP_FAILED if self.status == "error" else Exit.OK
        reasons = {reason for reason, _ in self.deleted_files}
        if reasons - {"pressure"}:
            flags |= Exit.SWEPT
        if "pressure" in reasons:
            flags |= Exit.PRESSURE_DELETED
        if self.rotations:
            flags |= Exit.ROTATED
        if self.still_above:
            flags |= Exit.STILL_ABOVE_THRESHOLD
        return flags



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
    #: a dry run found another datagc's lock held (it planned anyway, without waiting)
    other_pass_running: bool = False

    @property
    def reclaimed_bytes(self) -> int:
        return sum(step.reclaimed_bytes for step in self.steps)

    @property
    def exit_code(self) -> int:
        code = Exit.OK
        for step in self.steps:
            code |= step.flags
        return int(code)


class PassContext(NamedTuple):
    """What every pass is given: the validated configuration, the open (and, except
    for audit, locked) data directory, whether to apply, and the clock."""

    config: Config
    data_dir: DataDir
    dry_run: bool
    now: float
    #: where applied changes are recorded (None for a dry run)
    journal: Journal | None = None
    #: where each step's actions go as they happen (None: kept in ``StepReport.actions``)
    outlet: Outlet | None = None
    #: --verbose: also list the files kept for the ordinary reasons (too young, protected, not needed)
    verbose: bool = False
    #: the walk's count for the progress display (a terminal only)
    progress: WalkProgress | None = None


PlanT = TypeVar("PlanT", bound=Plan)


class PassSpec(NamedTuple, Generic[PlanT]):
    """A pass as the runner drives it: ``prepare`` observes and plans (changing nothing), the
    executor applies the plan's actions, ``conclude`` completes the step report from what happened."""

    name: str
    prepare: Callable[[PassContext], PlanT]
    conclude: Callable[[PassContext, PlanT, StepReport], None]
