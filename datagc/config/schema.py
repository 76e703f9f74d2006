"""The resolved configuration: one frozen dataclass per section of keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CdnConfig:
    enabled: bool
    public_url: str
    verify: bool


@dataclass(frozen=True)
class RotateConfig:
    logs: tuple[str, ...]
    max_bytes: int
    keep_lines: int
    keep_bytes: int


@dataclass(frozen=True)
class SweepConfig:
    media_dirs: tuple[str, ...]
    max_age: float
    published_grace: float
    temp_patterns: tuple[str, ...]
    temp_max_age: float


@dataclass(frozen=True)
class PressureConfig:
    threshold: float
    target: float
    min_age: float
    budget: int | None = None
    min_free: int | None = None
    min_free_target: int | None = None
    inode_threshold: float = 0.95
    inode_target: float = 0.90


@dataclass(frozen=True)
class FeedConfig:
    files: tuple[str, ...]
    url_fields: tuple[str, ...]


@dataclass(frozen=True)
class ProtectConfig:
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class WatchConfig:
    interval: float
    initial_delay: float
    check_interval: float = 10.0


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str
    listen: str


@dataclass(frozen=True)
class AuditConfig:
    top: int


@dataclass(frozen=True)
class StateConfig:
    dir: str


@dataclass(frozen=True)
class JournalConfig:
    max_bytes: int
    repair_window: float


@dataclass(frozen=True)
class Config:
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
