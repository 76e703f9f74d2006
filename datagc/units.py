"""Parsing and formatting of the durations and sizes used in configuration.

Durations: ``500ms``, ``90s``, ``15m``, ``1h``, ``7d``, ``2w`` and combinations
(``1h30m``); a bare number is seconds. Sizes: ``B``, ``KB``/``MB``/``GB``/``TB``
(powers of 1000) and ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024); a bare
number is bytes. Listen addresses: ``HOST:PORT``, an IPv6 host in brackets.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator
from contextvars import ContextVar

DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_BARE_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")
_SIZE = re.compile(rf"\s*({_NUMBER})\s*([kmgt]i?b|b)?\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Return the duration ``text`` names, in seconds; ValueError if malformed."""
    bare = _BARE_NUMBER.fullmatch(text)
    if bare:
        return float(bare.group(1))
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or text[position:].strip():
        raise ValueError(
            f"not a duration: {text!r} (use e.g. 500ms, 90s, 15m, 1h30m, 7d, 2w)"
        )
    return total


def parse_size(text: str) -> int:
    """Return the byte count ``text`` names; ValueError if malformed."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(
            f"not a size: {text!r} (use e.g. 500, 10KB, 50MiB, 1.5GB)"
        )
    unit = (match.group(2) or "b").lower()
    return int(float(match.group(1)) * SIZE_UNITS[unit])


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def parse_host_port(text: str) -> tuple[str, int]:
    """``127.0.0.1:9109``, ``[::1]:9109``, ``localhost:9109`` -> (host, port); ValueError if malformed.

    The host must be named: an empty one (``:9109``) would silently mean every
    address, and a metrics endpoint is only exposed where the operator says.
    """
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"not HOST:PORT: {text!r} (use e.g. 127.0.0.1:9109, 0.0.0.0:9109 or [::1]:9109)")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port_text} is not between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), port
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
    if not host:
        raise ValueError(f"no host in {text!r}: name the address to listen on "
                         "(127.0.0.1 for this machine only, 0.0.0.0 for every IPv4 address)")
    if ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets: [{host}]:{port}")
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not an IP address or a host name")
    return host, port


def format_duration(seconds: float) -> str:
    """Render seconds in the shortest exact form ``parse_duration`` reads back."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, scale in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, scale)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(size: int) -> str:
    """Render a byte count exactly, in the largest binary unit that divides it."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def human_size(count: int) -> str:
    """``2.1MB``: decimal units as operators grep for them (humanize's naturalsize, without the space).

    Written out because it runs once per deleted file: naturalsize cost ~4 µs a
    line, most of the plain-line rendering of a 100k-file sweep. Like
    naturalsize, a count that rounds up to 1000 of one unit is written in the
    next (999,950 bytes is ``1.0MB``, not ``1000.0kB``).
    """
    if count < 1000:
        return f"{count}B"
    scale = 1000
    for unit in _DECIMAL_UNITS:
        text = f"{float(count) / scale:.1f}"  # float first, as naturalsize divides
        if unit == _DECIMAL_UNITS[-1] or float(text) < 1000:
            return text + unit
        scale *= 1000
    raise AssertionError("unreachable")


def people_size(count: int) -> str:
    """``2.1 MB`` for the terminal views (humanize; they show a screenful, so its cost doesn't matter)."""
    import humanize

    return humanize.naturalsize(count)


_DECIMAL_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB", "RB", "QB")


def human_age(seconds: float) -> str:
    """A short approximate age for people: ``8.2d``, ``3.5h``, ``12m``, ``40s``."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


#: set while a terminal view is written: sizes as humanize writes them (``2.1 MB``), counts with separators
_FOR_PEOPLE: ContextVar[bool] = ContextVar("for_people", default=False)


@contextlib.contextmanager
def for_people() -> Iterator[None]:
    """Sizes and counts written inside (``shown_size``, ``shown_count``) are for a terminal view, as its tables
    write them. Outside, the compact forms the plain lines keep for grep (``2.1MB``, ``48211``)."""
    token = _FOR_PEOPLE.set(True)
    try:
        yield
    finally:
        _FOR_PEOPLE.reset(token)


def shown_size(count: int) -> str:
    return people_size(count) if _FOR_PEOPLE.get() else human_size(count)


def shown_count(count: int) -> str:
    return f"{count:,}" if _FOR_PEOPLE.get() else str(count)
