"""Plain lines, one per event, with the prefixes the service's operators search for (``[janitor]``,
``[disk-audit]``); and the sizes and fractions as they are shown."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from datagc.render.journal import dangling_lines
from datagc.units import human_age, human_size
from datagc.wording import detail_text, limits_with_thresholds, text

if TYPE_CHECKING:  # the run reports' model: never imported for audit (its start-up is timed)
    from datagc.model import Action, Delete, RunReport, StepReport
    from datagc.passes.audit import AuditReport  # annotations only: run commands never import audit

size = human_size


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def action_line(action: Action, dry_run: bool) -> str:
    would = "would " if dry_run else ""
    if action.kind == "rotate":
        verb = "rotate" if dry_run else "rotated"
        return (
            f"[janitor] {would}{verb} {action.path}: {action.bytes_before} -> {action.bytes_after} bytes "
            f"(kept {action.lines_kept} lines)"
        )
    if action.kind == "feed-null":
        post = f" of {action.post}" if action.post else ""
        verb = "null" if dry_run else "nulled"
        why = ", repair: a file deleted by an earlier pass" if action.reason == "repair" else ""
        return f"[janitor] {would}{verb} {action.field}{post} in {action.path} ({action.url}{why})"
    if action.kind == "feed-restore":
        post = f" of {action.post}" if action.post else ""
        return (f"[janitor] restored {action.field}{post} in {action.path} ({action.url}): "
                "its file was not deleted after all")
    head, why = _delete_head(action, dry_run)
    return f"{head}{action.path} ({why}age {human_age(action.age)}, {size(action.bytes)})"


def _delete_head(action: Delete, dry_run: bool) -> tuple[str, str]:
    """A deletion's line up to its path, and its facts before the age (each ending ``, ``, or empty)."""
    would = "would " if dry_run else ""
    if action.reason == "pressure":
        verb = "evict" if dry_run else "evicted"
        why = detail_text(action.detail) if action.detail else ""
    else:
        verb = "sweep" if dry_run else "swept"
        why = "" if action.reason == "age" else action.reason
    return f"[janitor] {would}{verb} ", f"{why}, " if why else ""


def delete_lines(actions: Iterable[Delete], dry_run: bool) -> Iterator[str]:
    """``action_line`` of each deletion (a pass may delete 100k files): the words a run of deletions shares
    (same reason and detail) and each size are worked out once."""
    reason, detail, head, why = "", None, "", ""
    sizes: dict[int, str] = {}
    for action in actions:
        if action.reason != reason or action.detail is not detail:
            reason, detail = action.reason, action.detail
            head, why = _delete_head(action, dry_run)
        shown = sizes.get(action.bytes)
        if shown is None:
            shown = sizes[action.bytes] = size(action.bytes)
        yield f"{head}{action.path} ({why}age {human_age(action.age)}, {shown})"


def step_lines(step: StepReport, dry_run: bool, verbose: bool, actions: bool = True) -> list[str]:
    """The step's lines; without its actions' when they were written as they came (``render.stream``)."""
    if step.status == "disabled":  # its note says where the kill switch came from
        return [f"[janitor] {text(note)}" for note in step.notes]
    lines = [action_line(action, dry_run) for action in step.actions] if actions else []
    lines += [f"[janitor] {text(note)}" for note in step.notes]
    if verbose:
        lines += [f"[janitor] kept {kept.path}: {text(kept.why)}" for kept in step.kept]
        if unlisted := unlisted_line(step):
            lines.append(f"[janitor] {unlisted}")
    return lines


def unlisted_line(step: StepReport) -> str | None:
    """--verbose: how many more files the step kept than it lists (``keptlist``), and why."""
    if not step.kept_unlisted:
        return None
    from datagc.keptlist import LISTED  # run reports only: audit's start-up never imports the model
    from datagc.model import note

    return text(note("kept-not-listed", step=step.name, counts=step.kept_unlisted, listed=LISTED))


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
    lines += dangling_lines(report.dangling)
    lines += [f"[disk-audit] mount (not walked) {path}" for path in report.mounts]
    if report.symlinks:
        lines.append(f"[disk-audit] symlinks (not followed) {len(report.symlinks)}")
    lines += [f"[disk-audit] note: {text(note)}" for note in report.notes]
    return lines
