"""datagc's own leftovers: the temp file an interrupted rotation or feed rewrite leaves next to its target.

A leftover is ``<log or feed>.datagc-tmp.<pid>`` (``datagc.safety.rewrite.temp_name``) in the
target's directory. ``observe`` lists them; ``plan`` makes each one older
than the pass a ``temp`` deletion, so ``--dry-run`` shows it and the
executor's veto and re-check apply to it as to any other target.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from datagc.facts import FileStat
from datagc.model import Delete, Detail
from datagc.safety.datadir import DataDir, join_path, split_path
from datagc.safety.rewrite import TEMP_MARK

#: the detail of a leftover's deletion
DETAIL = Detail("leftover")


def observe(data_dir: DataDir, targets: Sequence[str]) -> list[FileStat]:
    """Regular files named ``<target>.datagc-tmp.<digits>`` next to each of ``targets``.

    A directory that can't be opened or read is skipped: the pass that reads
    its target reports it.
    """
    wanted: dict[str, set[str]] = {}
    for target in targets:
        head, name = split_path(target)
        wanted.setdefault(head, set()).add(name)
    found = []
    for head, names in wanted.items():
        try:
            dir_fd = data_dir.open_dir(head)
        except OSError:
            continue
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    base, mark, pid = entry.name.rpartition(TEMP_MARK)
                    if mark and pid.isdigit() and base in names and entry.is_file(follow_symlinks=False):
                        found.append(FileStat.of(join_path(head, entry.name), entry.stat(follow_symlinks=False)))
        except OSError:
            continue
        finally:
            os.close(dir_fd)
    return found


def plan(files: Iterable[FileStat], now: float) -> list[Delete]:
    """A ``temp`` deletion for each leftover older than ``now`` (one this pass is writing is never one)."""
    now_ns = int(now * 1_000_000_000)
    return [
        Delete(file.path, file.reclaimable, "temp", now - file.mtime_ns / 1e9, file.identity, DETAIL)
        for file in files
        if file.mtime_ns < now_ns
    ]
