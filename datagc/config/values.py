"""Value parsers: each turns a TOML value, an environment string or a flag value into a setting's value."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from datagc.units import format_duration, parse_duration, parse_host_port, parse_size

Parser = Callable[[Any], Any]

#: the largest whole number or byte count a setting may hold (a signed 64-bit integer)
MAX_INT = 2**63 - 1
#: the longest duration a setting may hold: 100 years (longer ones overflow timers)
MAX_SECONDS = 100 * 365.25 * 86400


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (use true or false)")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a whole number")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise ValueError("not a whole number") from None
    if abs(number) > MAX_INT:
        raise ValueError(f"too large (at most {MAX_INT})")
    return number


def parse_fraction(value: Any) -> float:
    """A fraction of the disk: ``0.7`` or ``70%``."""
    if isinstance(value, bool):
        raise ValueError("not a fraction")
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError("not a fraction (use e.g. 0.7 or 70%)") from None
    if not 0 < number <= 1 or math.isnan(number):
        raise ValueError("must be above 0 and at most 1 (e.g. 0.7 or 70%)")
    return number


def parse_duration_setting(value: Any) -> float:
    """A duration setting (``7d``, ``90s``, a bare number of seconds): finite, zero or more, at most 100 years."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
    return _check_seconds(seconds, "duration")


def _check_seconds(seconds: float, what: str) -> float:
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"must be a finite {what} of zero or more")
    if seconds > MAX_SECONDS:
        raise ValueError(f"too long (at most {format_duration(MAX_SECONDS)})")
    return seconds


def parse_millis(value: Any) -> float:
    """The service's own ``GC_*_MS`` settings: a number of milliseconds."""
    try:
        millis = float(str(value).strip())
    except ValueError:
        raise ValueError("not a number of milliseconds") from None
    return _check_seconds(millis / 1000, "number of milliseconds")


def parse_size_setting(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a size")
    size = value if isinstance(value, int) else parse_size(str(value))
    if size < 0:
        raise ValueError("must not be negative")
    if size > MAX_INT:
        raise ValueError(f"too large (at most {MAX_INT} bytes)")
    return size


def parse_optional_size_setting(value: Any) -> int | None:
    """A size that may be switched off: ``off`` or an empty string (in a file or on a flag) is off."""
    if isinstance(value, str) and value.strip().lower() in ("", "off"):
        return None
    size = parse_size_setting(value)
    if size < 1:
        raise ValueError("must be at least 1 byte (or off)")
    return size


def parse_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def parse_listen(value: Any) -> str:
    """``HOST:PORT``, checked here so a typo is a configuration error, not a failure at bind time."""
    text = parse_string(value).strip()
    if text:
        parse_host_port(text)
    return text


def parse_base_url(value: Any) -> str:
    """``cdn.public_url``: empty, or an http(s) URL with a host and nothing that could hide another one."""
    text = parse_string(value).strip()
    if not text:
        return ""
    problem = "must be an http(s) URL with a host and no user, query or fragment (e.g. https://cdn.example.com)"
    if not text.isprintable() or " " in text:
        raise ValueError(problem)
    try:
        split = urlsplit(text)
        split.port  # noqa: B018 (validates it)
    except ValueError as error:
        raise ValueError(f"{problem}: {error}") from None
    if split.scheme not in ("http", "https") or not split.hostname or "@" in split.netloc or split.query \
            or split.fragment or "?" in text or "#" in text:
        raise ValueError(problem)
    return text


def parse_list(value: Any) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (environment, flags)."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return tuple(item for item in items if item)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("not a list of strings")


def parse_relative_paths(value: Any) -> tuple[str, ...]:
    """Paths inside DATA_DIR, normalised once (SPEC §7 rule 12): ``./images``, ``images/``, ``images/.``
    are ``images``. An absolute path, a ``..`` or an empty name is an error; duplicates are dropped."""
    if isinstance(value, (list, tuple)) and any(isinstance(item, str) and not item.strip() for item in value):
        raise ValueError("an empty name is not a path inside the data directory")
    normalised: dict[str, None] = {}
    for path in parse_list(value):
        if path.startswith("/"):
            raise ValueError(f"{path!r} is absolute; it must be a relative path inside the data directory")
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise ValueError(f"{path!r} leaves the data directory ('..'); it must be a relative path inside it")
        if not parts:
            raise ValueError(f"{path!r} names the data directory itself, not a path inside it")
        normalised["/".join(parts)] = None
    return tuple(normalised)


def parse_patterns(value: Any) -> tuple[str, ...]:
    """``protect.patterns``: fnmatch patterns; one with ``/`` is a path inside DATA_DIR, normalised like the path
    settings (SPEC §7 rule 12) so that it can match: ``./images/keep/*`` and ``images//keep/*`` are
    ``images/keep/*``, and ``images/keep/`` (a directory) is ``images/keep/*``, everything under it. An absolute
    pattern or one with ``..`` could never match a path inside the data directory: an error, not a silent no-op."""
    normalised: dict[str, None] = {}
    for pattern in parse_list(value):
        if "/" in pattern:
            if pattern.startswith("/"):
                raise ValueError(f"{pattern!r} is absolute; a pattern with '/' matches the path relative to the "
                                 "data directory (e.g. 'images/keep/*')")
            parts = [part for part in pattern.split("/") if part not in ("", ".")]
            if ".." in parts:
                raise ValueError(f"{pattern!r} leaves the data directory ('..'); it could never match")
            if not parts:
                raise ValueError(f"{pattern!r} names the data directory itself, not files in it")
            pattern = "/".join(parts) + ("/*" if pattern.endswith("/") else "")
        normalised[pattern] = None
    return tuple(normalised)


def parse_state_dir(value: Any) -> str:
    """An absolute path, or one relative to DATA_DIR (normalised: ``./.datagc/`` is ``.datagc``)."""
    text = parse_string(value)
    if not text or "\0" in text:
        raise ValueError("must be a directory path")
    if text.startswith("/"):
        return text
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("a relative state dir must stay inside the data directory (no '..')")
    if not parts:
        raise ValueError("must not be the data directory itself")
    return "/".join(parts)
