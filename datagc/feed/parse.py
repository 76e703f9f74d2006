"""Parsing a feed's text: the URL fields of its posts, their spans, and edits that keep every other byte.

``load_feed`` reads the URL fields with the C JSON decoder (every pass needs
them); ``scan_feed`` finds their spans in the text with a scanner written
here, several times slower, and is run only to rewrite the feed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


#: what a feed's bytes are instead of UTF-8 JSON whose top level is an array
DecodeCode = Literal["not-utf8", "not-json", "too-deep", "not-array"]


@dataclass(frozen=True)
class Undecodable:
    """Why a feed is not UTF-8 JSON whose top level is an array: a code and the decoder's facts, no English of
    datagc's (``wording.feed_problem_text``)."""

    code: DecodeCode
    #: the decoder's own words (``UnicodeDecodeError.reason``, ``JSONDecodeError.msg``)
    reason: str = ""
    #: where: the byte offset (not-utf8); the line and column (not-json)
    byte: int = 0
    line: int = 0
    column: int = 0
    #: not-array: the top level's JSON type ("object", "string", "null", "boolean", "number")
    found: str = ""


class FeedError(ValueError):
    """The feed is not a JSON array; ``why`` says what it is instead."""

    def __init__(self, why: Undecodable) -> None:
        super().__init__(why)
        self.why = why


class FieldRef(NamedTuple):
    """One URL field of one post, with the span of its JSON string in the feed's text."""

    entry: int  # index of the post in the array
    post: str | None  # the post's "id", when it has one
    field: str
    url: str
    start: int
    end: int


class URLField(NamedTuple):
    """One URL field of one post, as ``scan_feed`` lists it but without its span."""

    entry: int  # index of the post in the array
    post: str | None  # the post's "id", when it has one
    field: str
    url: str


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs, in order, duplicate keys included."""


def decode_feed(content: bytes) -> str:
    """The feed's text; FeedError unless it is UTF-8 JSON whose top level is an array."""
    return load_feed(content, ())[0]


def load_feed(content: bytes, url_fields: Collection[str]) -> tuple[str, list[URLField]]:
    """The feed's text and every string-valued ``url_fields`` field of every object in its array, in order:
    ``scan_feed``'s fields without their spans. FeedError unless it is UTF-8 JSON whose top level is an array."""
    try:
        text = content.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_Pairs)
    except UnicodeDecodeError as error:
        raise FeedError(Undecodable("not-utf8", error.reason, byte=error.start)) from None
    except json.JSONDecodeError as error:
        raise FeedError(Undecodable("not-json", error.msg, line=error.lineno, column=error.colno)) from None
    except RecursionError:
        raise FeedError(Undecodable("too-deep")) from None
    if type(document) is not list:
        raise FeedError(Undecodable("not-array", found=_json_type(document)))
    fields: list[URLField] = []
    if not url_fields:
        return text, fields
    for entry, value in enumerate(document):
        if type(value) is not _Pairs:
            continue
        post: str | None = None
        found = []
        for key, item in value:
            if key in url_fields and isinstance(item, str):
                found.append((key, item))
            elif key == "id" and isinstance(item, (str, int)) and not isinstance(item, bool):
                post = str(item)
        fields.extend(URLField(entry, post, key, url) for key, url in found)
    return text, fields


def _json_type(value: object) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def scan_feed(text: str, url_fields: Collection[str], *, nulls: bool = False) -> list[FieldRef]:
    """Every string-valued ``url_fields`` field of every object in the array ``text``, with its span.

    ``text`` must have passed ``decode_feed``. Non-object entries and nested
    values are skipped; with duplicate keys every occurrence is listed. With
    ``nulls``, the fields whose value is null instead (their ``url`` is empty).
    """
    refs: list[FieldRef] = []
    position = _skip(text, 0) + 1  # past "["
    position = _skip(text, position)
    entry = 0
    while text[position] != "]":
        if text[position] == "{":
            position = _scan_object(text, position, entry, url_fields, refs, nulls)
        else:
            _, position = _DECODER.raw_decode(text, position)
        position = _skip(text, position)
        if text[position] == ",":
            position = _skip(text, position + 1)
            entry += 1
    return refs


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _scan_object(
    text: str, position: int, entry: int, url_fields: Collection[str], refs: list[FieldRef], nulls: bool
) -> int:
    post: str | None = None
    found: list[tuple[str, str, int, int]] = []
    position = _skip(text, position + 1)
    while text[position] != "}":
        key, position = _DECODER.raw_decode(text, position)
        position = _skip(text, _skip(text, position) + 1)  # past ":"
        start = position
        value, position = _DECODER.raw_decode(text, position)
        if key in url_fields and (value is None if nulls else isinstance(value, str)):
            found.append((key, value or "", start, position))
        elif key == "id" and isinstance(value, (str, int)) and not isinstance(value, bool):
            post = str(value)
        position = _skip(text, position)
        if text[position] == ",":
            position = _skip(text, position + 1)
    refs.extend(FieldRef(entry, post, key, value, start, end) for key, value, start, end in found)
    return position + 1


def null_spans(text: str, refs: Sequence[FieldRef]) -> str:
    """``text`` with the string literal of each ref replaced by ``null``; every other byte kept."""
    return replace_spans(text, [(ref, "null") for ref in refs])


def replace_spans(text: str, edits: Sequence[tuple[FieldRef, str]]) -> str:
    """``text`` with the value of each ref replaced by the given JSON; every other byte kept."""
    pieces = []
    position = 0
    for ref, value in sorted(edits, key=lambda edit: edit[0].start):
        pieces.append(text[position:ref.start])
        pieces.append(value)
        position = ref.end
    pieces.append(text[position:])
    return "".join(pieces)
