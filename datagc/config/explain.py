"""Values as they would be written in the config file, with where each came from (``datagc config``)."""

from __future__ import annotations

from typing import Any

from datagc.config.keys import KEYS, Key
from datagc.config.schema import Config
from datagc.config.values import parse_duration_setting, parse_optional_size_setting, parse_size_setting
from datagc.units import format_duration, format_size


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
