"""``datagc audit``: a read-only census of the data directory and its disk.

Walks the tree once (never following a symlink, never entering another
filesystem), counts allocated and apparent bytes the way ``du`` does (each
inode once), keeps the N largest files with a bounded heap, and compares the
walk with statfs to show space ``df`` counts but the walk can't see — notably
deleted files still held open, found in /proc.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from datagc.census import count_tree
from datagc.config.schema import Config
from datagc.exitcodes import Exit
from datagc.facts import DiskUsage
from datagc.limits import Figures, Limit, crossed, evaluate, measure_fs
from datagc.notes import Note, note
from datagc.safety.datadir import DataDir

if TYPE_CHECKING:
    from datagc.progress import WalkProgress
    from datagc.tombstones import Dangling


class EntryTotal(NamedTuple):
    """Allocated bytes and files under one top-level entry of DATA_DIR."""

    path: str
    bytes: int
    files: int


class LargeFile(NamedTuple):
    path: str
    bytes: int


class OpenDeleted(NamedTuple):
    """A deleted file on DATA_DIR's filesystem that a process still holds open."""

    pid: int
    command: str
    path: str
    bytes: int


@dataclass
class AuditReport:
    data_dir: str
    threshold: float
    total_bytes: int = 0
    apparent_bytes: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: list[str] = field(default_factory=list)
    special_files: int = 0
    mounts: list[str] = field(default_factory=list)
    breakdown: list[EntryTotal] = field(default_factory=list)
    largest: list[LargeFile] = field(default_factory=list)
    disk: DiskUsage | None = None
    #: whether DATA_DIR is the root of its filesystem (else ``unaccounted`` includes files outside it)
    mount_root: bool = False
    unaccounted_bytes: int | None = None
    deleted_open: list[OpenDeleted] = field(default_factory=list)
    #: local feed references naming a missing file (SPEC §9)
    dangling: list[Dangling] = field(default_factory=list)
    #: what kept the audit from seeing everything (exit bit 1)
    errors: list[Note] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: every pressure limit (disk, budget, min_free, inodes) and where it stands
    limits: list[Limit] = field(default_factory=list)

    @property
    def flags(self) -> Exit:
        flags = Exit.STILL_ABOVE_THRESHOLD if crossed(self.limits) else Exit.OK
        if self.errors:
            flags |= Exit.STEP_FAILED
        return flags


def audit(config: Config, data_dir: DataDir, progress: WalkProgress | None = None) -> AuditReport:
    """Walk DATA_DIR (its count to ``progress``, a terminal) and statfs its filesystem; change nothing, take no
    lock."""
    report = AuditReport(data_dir=str(data_dir.path), threshold=config.pressure.threshold)
    _walk_tree(data_dir, config.audit.top, report, progress)
    try:
        fs = measure_fs(data_dir.fd)
    except OSError as error:
        report.errors.append(note("audit-statfs-failed", error=error.strerror))
    else:
        report.disk = fs.usage
        held = report.total_bytes if config.pressure.budget is not None else None
        report.limits = evaluate(Figures(fs, held), config.pressure)
    report.mount_root = _is_mount_root(data_dir)
    if report.disk is not None:
        report.unaccounted_bytes = max(0, report.disk.used_bytes - report.total_bytes)
        if not report.mount_root:
            report.notes.append(note("audit-not-mount-root"))
    report.deleted_open = _deleted_open_files(data_dir, report.notes)
    if any(_exists(data_dir, feed) for feed in config.feed.files):  # else nothing can dangle (and no import)
        from datagc.tombstones import dangling_references

        check = dangling_references(data_dir, config)
        report.dangling = check.found
        report.notes.extend(check.notes)
        report.errors.extend(check.errors)
    return report


def _walk_tree(data_dir: DataDir, top: int, report: AuditReport, progress: WalkProgress | None) -> None:
    """The census of DATA_DIR (the walk pressure takes too: ``datagc.census``) into ``report``."""
    census = count_tree(data_dir, top, progress)
    report.errors.extend(note("audit-dir-unreadable", path=path or ".", error=error.strerror or str(error))
                         for path, error in census.errors)
    report.total_bytes, report.apparent_bytes, report.files = census.total_bytes, census.apparent_bytes, census.files
    report.dirs, report.special_files = census.dirs, census.special_files
    report.symlinks, report.mounts = census.symlinks, census.mounts
    report.breakdown = sorted(
        (EntryTotal(path, tally.bytes, tally.files) for path, tally in census.entries.items()),
        key=lambda entry: (-entry.bytes, entry.path),
    )
    report.largest = [LargeFile(_join(directory, name), size) for size, directory, name in census.largest_files()]


def _exists(data_dir: DataDir, path: str) -> bool:
    try:
        os.stat(path, dir_fd=data_dir.fd, follow_symlinks=False)
    except OSError as error:
        return error.errno != errno.ENOENT  # anything but "missing" is for the feed reader to report
    return True


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _is_mount_root(data_dir: DataDir) -> bool:
    try:
        parent = os.stat("..", dir_fd=data_dir.fd)
        here = os.fstat(data_dir.fd)
    except OSError:
        return False
    return parent.st_dev != here.st_dev or parent.st_ino == here.st_ino


def _deleted_open_files(data_dir: DataDir, notes: list[Note]) -> list[OpenDeleted]:
    """Files unlinked but held open by a process, on DATA_DIR's filesystem, from /proc."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        notes.append(note("audit-proc-unreadable"))
        return []
    found: dict[int, OpenDeleted] = {}
    unreadable = 0
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            unreadable += 1
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
                if not target.endswith(" (deleted)"):
                    continue
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_dev != data_dir.dev or st.st_nlink != 0 or st.st_blocks == 0 or st.st_ino in found:
                continue
            from datagc.openfiles import command  # only once one is found (audit's start-up is timed)

            found[st.st_ino] = OpenDeleted(pid, command(pid), target.removesuffix(" (deleted)"), st.st_blocks * 512)
    if unreadable:
        notes.append(note("audit-procs-unreadable", count=unreadable))
    return sorted(found.values(), key=lambda item: -item.bytes)
