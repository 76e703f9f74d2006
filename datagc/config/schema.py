"""The resolved configuration: one immutable record per section of keys.

NamedTuples rather than frozen dataclasses: every command defines these
twelve classes, and a frozen dataclass costs some ten times as much to define
(its methods are compiled from source at import), a cost every run paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple


class CdnConfig(NamedTuple):
    enabled: bool
    public_url: str
    verify: bool


class RotateConfig(NamedTuple):
    logs: tuple[str, ...]
    max_bytes: int
    keep_lines: int
    keep_bytes: int


class SweepConfig(NamedTuple):
    media_dirs: tuple[str, ...]
    max_age: float
    published_grace: float
    temp_patterns: tuple[str, ...]
    temp_max_age: float


class PressureConfig(NamedTuple):
    threshold: float
    target: float
    min_age: float
    budget: int | None = None
    min_free: int | None = None
    min_free_target: int | None = None
    inode_threshold: float = 0.95
    inode_target: float = 0.90


class FeedConfig(NamedTuple):
    files: tuple[str, ...]
    url_fields: tuple[str, ...]


class ProtectConfig(NamedTuple):
    patterns: tuple[str, ...]


class WatchConfig(NamedTuple):
    interval: float
    initial_delay: float
    check_interval: float = 10.0


class MetricsConfig(NamedTuple):
    textfile: str
    listen: str


class AuditConfig(NamedTuple):
    top: int


class StateConfig(NamedTuple):
    dir: str


class JournalConfig(NamedTuple):
    max_bytes: int
    repair_window: float


class Config(NamedTuple):
    """The effective configuration; ``sources`` says where each key's value came from."""

    enabled: bool
    data_dir: Path
    cdn: CdnConfig
    rotate: RotateConfig
    sweep: SweepConfig
    pressure: PressureConfig
    feed: FeedConfig
    protect: ProtectConfig
    watch: WatchConfig
    metrics: MetricsConfig
    audit: AuditConfig
    state: StateConfig
    journal: JournalConfig
    sources: Mapping[str, str]

    def value(self, name: str) -> Any:
        """The value of a dotted key, e.g. ``value("rotate.max_bytes")``."""
        node: Any = self
        for part in name.split("."):
            node = getattr(node, part)
        return node


SECTIONS: dict[str, type] = {
    "cdn": CdnConfig,
    "rotate": RotateConfig,
    "sweep": SweepConfig,
    "pressure": PressureConfig,
    "feed": FeedConfig,
    "protect": ProtectConfig,
    "watch": WatchConfig,
    "metrics": MetricsConfig,
    "audit": AuditConfig,
    "state": StateConfig,
    "journal": JournalConfig,
}
