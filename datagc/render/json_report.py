"""The JSON documents of ``--json``: one per report, versioned (SPEC §6)."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from datagc.facts import DiskUsage
from datagc.wording import detail_text, error_text, text

if TYPE_CHECKING:  # the run reports' model: never imported for audit (its start-up is timed)
    from datagc.history import HistoryReport
    from datagc.model import Action, RunReport, StepReport
    from datagc.passes.audit import AuditReport  # annotations only: run commands never import audit
    from datagc.tombstones import Dangling

JSON_VERSION = 1


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
    if action.kind == "delete":
        return {
            "kind": action.kind,
            "path": action.path,
            "bytes": action.bytes,
            "reason": action.reason,
            "age_seconds": round(action.age, 3),
            "detail": detail_text(action.detail),
        }
    if action.kind == "feed-null" or action.kind == "feed-restore":
        document = {
            "kind": action.kind,
            "path": action.path,
            "field": action.field,
            "url": action.url,
            "post": action.post,
        }
        if action.kind == "feed-null" and action.reason is not None:
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


def step_json(step: StepReport, actions: bool = True) -> dict[str, Any]:
    """The step's JSON object; without its ``actions`` when they were written as they came (``render.stream``)."""
    document: dict[str, Any] = {
        "name": step.name,
        "status": step.status,
        "reclaimed_bytes": step.reclaimed_bytes,
        "error": step_error(step),
        **({"actions": [action_json(action) for action in step.actions]} if actions else {}),
        "kept": [{"path": kept.path, "why": text(kept.why)} for kept in step.kept],
        "notes": [text(note) for note in step.notes],
    }
    if step.kept_unlisted is not None:  # --verbose
        document["kept_not_listed"] = step.kept_unlisted
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
    from datagc.limits import limit_json  # audit only: run commands' start-up never imports the limits

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
        "dangling_references": dangling_json(report.dangling),
        "symlinks": [path for path in report.symlinks],
        "mounts": [path for path in report.mounts],
        "special_files": report.special_files,
        "errors": [text(error) for error in report.errors],
        "notes": [text(note) for note in report.notes],
    }


def dangling_json(found: Sequence[Dangling]) -> list[dict[str, Any]]:
    return [{"feed": d.feed, "post": d.post, "field": d.field, "url": d.url, "path": d.path,
             "deleted_by_datagc": d.deleted_by_datagc} for d in found]


def history_json(report: HistoryReport) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "history",
        "data_dir": report.data_dir,
        "journal": report.journal,
        "pattern": report.pattern,
        "since_seconds": report.since_seconds,
        "exit_code": 0,
        "entries": report.entries,
        "corrupt_lines": report.corrupt_lines,
        "corrupt_line_numbers": report.corrupt_line_numbers,
        "notes": report.notes,
    }
