"""The one escaping rule for text that reaches any output (SPEC §7 rule 16).

File names are whatever bytes other programs wrote, and feed strings whatever
the feed's JSON said (a ``\\ud800`` escape decodes to a lone surrogate). Every
line, table cell, JSON string and metrics label datagc writes goes through
``escape``, so that its output is always valid UTF-8, one event is always one
line (no name can forge a ``[janitor]`` line or move the terminal's cursor),
and the exact bytes of a name can be read back:

- ``\\\\`` is a backslash;
- ``\\n``, ``\\r``, ``\\t`` are those characters;
- ``\\xNN`` is one byte: an ASCII control character (``\\x1b`` ESC, ``\\x7f``
  DEL, ``\\x00`` …) or, for ``NN`` 80–ff, a byte of a name that is not UTF-8
  (Python's surrogateescape ``\\udc80``–``\\udcff``, which is how datagc holds
  such names);
- ``\\uXXXX`` / ``\\UXXXXXXXX`` is any other character that is not printable
  (C1 controls, line and paragraph separators, bidi overrides, other lone
  surrogates, unassigned code points);
- every other character is itself.
"""

from __future__ import annotations

from typing import Any

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char.isprintable():
        return char
    point = ord(char)
    if point < 0x80:
        return f"\\x{point:02x}"
    if 0xDC80 <= point <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{point - 0xDC00:02x}"
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def escape(text: str) -> str:
    """``text`` with every backslash and every non-printable character escaped (see the module)."""
    if text.isprintable() and "\\" not in text:
        return text  # the common case, at C speed
    return "".join(_escape_char(char) for char in text)


def escape_json(document: Any) -> Any:
    """A JSON document with every string in it (keys included) escaped.

    Most reports hold nothing to escape: one fast serialisation finds out
    (orjson refuses lone surrogates; it writes a backslash for a backslash or
    a control character), and only otherwise is the document walked.
    """
    import orjson  # JSON output only (see ``Renderer.write_json``)

    try:
        raw = orjson.dumps(document)
    except TypeError:  # a lone surrogate
        return _escape_all(document)
    if b"\\" not in raw and raw.decode().isprintable():
        return document
    return _escape_all(document)


def _escape_all(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(key)): _escape_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_all(item) for item in value]
    return value

