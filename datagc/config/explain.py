"""``datagc config``: values as they would be written in the config file, where each came from, and the pressure
limits in words."""

from __future__ import annotations

from typing import Any

from datagc.config.keys import KEYS, Key
from datagc.config.schema import Config, PressureConfig
from datagc.config.values import parse_duration_setting, parse_optional_size_setting, parse_size_setting
from datagc.units import format_duration, format_size
from datagc.wording import percent


def display_value(key: Key, value: Any) -> str:
    """A value as it would be written in the config file: ``7d``, ``50MiB``, ``a,b``."""
    if key.parse is parse_duration_setting:
        return format_duration(value)
    if key.parse in (parse_size_setting, parse_optional_size_setting):
        return "off" if value is None else format_size(value)
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def effective_values(config: Config) -> list[tuple[str, str, str]]:
    """(key, value as written, source) for every key, in declaration order, for ``datagc config``."""
    return [(key.name, display_value(key, config.value(key.name)), config.sources[key.name]) for key in KEYS]


def explain_limits(settings: PressureConfig) -> list[str]:
    """The limits in words, with their effective values, for ``datagc config``."""
    budget = ("off (pressure.budget is not set)" if settings.budget is None else
              f"DATA_DIR's own allocated bytes above {percent(settings.threshold, exact=True)} of "
              f"{format_size(settings.budget)} -> evict until {percent(settings.target, exact=True)} of it")
    min_free = ("off (pressure.min_free is not set)" if settings.min_free is None else
                f"less than {format_size(settings.min_free)} free on the filesystem -> evict until "
                f"{format_size(settings.min_free_target or settings.min_free)} is free")
    return [
        "pressure acts when any limit is crossed and evicts media until every crossed limit is back at its target:",
        f"  disk: the filesystem more than {percent(settings.threshold, exact=True)} used (df's Use%) -> "
        f"evict until {percent(settings.target, exact=True)}",
        f"  budget: {budget}",
        f"  min_free: {min_free}",
        f"  inodes: more than {percent(settings.inode_threshold, exact=True)} of the filesystem's inodes used -> "
        f"evict until {percent(settings.inode_target, exact=True)} (each evicted file frees one)",
    ]
