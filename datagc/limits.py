"""The pressure limits (SPEC §2, §3): which are crossed, where each stands, and what must be freed.

Four limits, each a threshold that starts eviction and a target where it stops:

- ``disk``: the filesystem's used fraction (df's Use%), ``pressure.threshold`` -> ``pressure.target``;
- ``budget``: the allocated bytes under DATA_DIR as a fraction of ``pressure.budget``
  (a quota, a Kubernetes emptyDir ``sizeLimit``), same threshold and target;
- ``min_free``: the bytes available on the filesystem, ``pressure.min_free`` -> ``pressure.min_free_target``;
- ``inodes``: the filesystem's used inode fraction, ``pressure.inode_threshold`` -> ``pressure.inode_target``.

Evicting a single-link file of ``b`` allocated bytes gives ``b`` back to every byte
limit and one inode to the inode limit, so what must be freed is known before the
walk: for each crossed limit the bytes (or inodes) that bring it to its target,
and for the pass the largest of each. Everything here but ``measure_fs`` and
``data_dir_bytes`` is pure arithmetic on given figures.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from datagc.config.schema import PressureConfig
from datagc.facts import DiskUsage
from datagc.safety.datadir import DataDir
from datagc.safety.walk import iter_files

LimitName = Literal["disk", "budget", "min_free", "inodes"]


class FsFigures(NamedTuple):
    """One statvfs of the filesystem holding DATA_DIR."""

    used_bytes: int
    #: available to unprivileged users, as df shows it
    free_bytes: int
    total_bytes: int
    inodes_used: int
    #: 0 when the filesystem does not count inodes (btrfs, some FUSE): no inode limit then
    inodes_total: int

    @property
    def usage(self) -> DiskUsage:
        capacity = self.used_bytes + self.free_bytes
        return DiskUsage(self.total_bytes, self.used_bytes, self.free_bytes,
                         self.used_bytes / capacity if capacity else 0.0)


class Figures(NamedTuple):
    """What the limits are measured on: the filesystem, and (with a budget) DATA_DIR's own allocated bytes."""

    fs: FsFigures
    data_dir_bytes: int | None = None


class Need(NamedTuple):
    """What eviction must free to bring every crossed limit back to its target."""

    bytes: int = 0
    inodes: int = 0

    def __bool__(self) -> bool:
        return self.bytes > 0 or self.inodes > 0


class Limit(NamedTuple):
    """Where one limit stands. ``value``, ``threshold`` and ``target`` share a unit: a fraction
    (``disk``, ``budget``, ``inodes``) or bytes (``min_free``, where lower is worse)."""

    name: LimitName
    value: float
    threshold: float
    target: float
    crossed: bool
    #: what must be freed to reach the target (0 once there)
    needed_bytes: int = 0
    needed_inodes: int = 0
    #: the measured quantity behind a fraction: DATA_DIR's bytes (budget), used inodes (inodes)
    amount: int | None = None
    #: what the fraction is of: the budget in bytes, the filesystem's inodes
    capacity: int | None = None

    @property
    def at_target(self) -> bool:
        return self.needed_bytes == 0 and self.needed_inodes == 0


def measure_fs(fd: int) -> FsFigures:
    """statvfs of the filesystem holding ``fd``; OSError propagates (never guessed)."""
    st = os.fstatvfs(fd)
    total_inodes = st.f_files
    return FsFigures(
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        total_bytes=st.f_blocks * st.f_frsize,
        inodes_used=max(0, total_inodes - st.f_ffree),
        inodes_total=total_inodes,
    )


def data_dir_bytes(data_dir: DataDir) -> int:
    """Allocated bytes under DATA_DIR (each inode once, no other filesystem), as ``du -s`` counts them."""
    total = 0
    linked: set[int] = set()
    for _, _, st in iter_files(data_dir):
        if st.st_nlink > 1:
            if st.st_ino in linked:
                continue
            linked.add(st.st_ino)
        total += st.st_blocks * 512
    return total


def measure(data_dir: DataDir, settings: PressureConfig) -> Figures:
    """The figures every configured limit needs: a statvfs, and a walk only when a budget is set."""
    fs = measure_fs(data_dir.fd)
    return Figures(fs, data_dir_bytes(data_dir) if settings.budget is not None else None)


def _ratio(fraction: float) -> tuple[int, int]:
    """The decimal the operator wrote, exactly, as (numerator, denominator): 0.6 is 3/5, not the float just
    below it. (Integers, not ``fractions``: audit's start-up is timed, and that import is a tenth of it.)"""
    mantissa, _, exponent = repr(fraction).partition("e")
    whole, _, digits = mantissa.partition(".")
    numerator, power = int(whole + digits), int(exponent or 0) - len(digits)
    return (numerator * 10**power, 1) if power >= 0 else (numerator, 10**-power)


def _above(amount: int, fraction: float, whole: int) -> bool:
    """``amount > fraction * whole``, exactly."""
    numerator, denominator = _ratio(fraction)
    return amount * denominator > numerator * whole


def _beyond(amount: int, fraction: float, whole: int) -> int:
    """``ceil(amount - fraction * whole)``, exactly, and at least 0: what to free to get down to the fraction."""
    numerator, denominator = _ratio(fraction)
    return max(0, -((numerator * whole - amount * denominator) // denominator))


def evaluate(figures: Figures, settings: PressureConfig) -> list[Limit]:
    """Every configured limit, in a fixed order: disk, budget, min_free, inodes."""
    fs = figures.fs
    limits = []
    capacity = fs.used_bytes + fs.free_bytes
    limits.append(Limit(
        "disk", fs.usage.used_fraction, settings.threshold, settings.target,
        crossed=_above(fs.used_bytes, settings.threshold, capacity),
        needed_bytes=_beyond(fs.used_bytes, settings.target, capacity),
    ))
    if settings.budget is not None and figures.data_dir_bytes is not None:
        held, budget = figures.data_dir_bytes, settings.budget
        limits.append(Limit(
            "budget", held / budget, settings.threshold, settings.target,
            crossed=_above(held, settings.threshold, budget),
            needed_bytes=_beyond(held, settings.target, budget),
            amount=held, capacity=budget,
        ))
    if settings.min_free is not None:
        target = settings.min_free_target if settings.min_free_target is not None else settings.min_free
        limits.append(Limit(
            "min_free", fs.free_bytes, settings.min_free, target,
            crossed=fs.free_bytes < settings.min_free,
            needed_bytes=max(0, target - fs.free_bytes),
        ))
    if fs.inodes_total > 0:
        limits.append(Limit(
            "inodes", fs.inodes_used / fs.inodes_total, settings.inode_threshold, settings.inode_target,
            crossed=_above(fs.inodes_used, settings.inode_threshold, fs.inodes_total),
            needed_inodes=_beyond(fs.inodes_used, settings.inode_target, fs.inodes_total),
            amount=fs.inodes_used, capacity=fs.inodes_total,
        ))
    return limits


def crossed(limits: list[Limit]) -> list[Limit]:
    return [limit for limit in limits if limit.crossed]


def need(limits: list[Limit]) -> Need:
    """What brings every crossed limit to its target (a limit not crossed asks for nothing)."""
    acting = crossed(limits)
    return Need(max((limit.needed_bytes for limit in acting), default=0),
                max((limit.needed_inodes for limit in acting), default=0))


def after_freeing(figures: Figures, freed_bytes: int, freed_files: int) -> Figures:
    """The figures once ``freed_files`` single-link files of ``freed_bytes`` allocated bytes are gone."""
    fs = figures.fs
    freed = min(freed_bytes, fs.used_bytes)
    return Figures(
        FsFigures(fs.used_bytes - freed, fs.free_bytes + freed, fs.total_bytes,
                  max(0, fs.inodes_used - freed_files), fs.inodes_total),
        None if figures.data_dir_bytes is None else max(0, figures.data_dir_bytes - freed_bytes),
    )


# --- for JSON -----------------------------------------------------------------


def limit_json(limit: Limit, before: Limit | None = None) -> dict[str, object]:
    """One entry of ``limits`` in the JSON reports (SPEC §5): where the limit stands and what it asks.

    ``triggered`` (with ``value_before``) says whether it was crossed when the pass began.
    """
    document: dict[str, object] = {
        "name": limit.name,
        "unit": "bytes" if limit.name == "min_free" else "fraction",
        "value": round(limit.value, 6) if limit.name != "min_free" else int(limit.value),
        "threshold": limit.threshold if limit.name != "min_free" else int(limit.threshold),
        "target": limit.target if limit.name != "min_free" else int(limit.target),
        "crossed": limit.crossed,
        "needed_bytes": limit.needed_bytes,
        "needed_inodes": limit.needed_inodes,
    }
    if limit.amount is not None:
        document["amount"] = limit.amount
        document["capacity"] = limit.capacity
    if before is not None:
        document["triggered"] = before.crossed
        document["value_before"] = round(before.value, 6) if limit.name != "min_free" else int(before.value)
    return document
