"""The feed's two parsers agree: ``load_feed`` (C decoder, every pass) lists exactly ``scan_feed``'s fields
(the span scanner, run to rewrite), in the same order, whatever the feed holds."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc.feed.parse import load_feed, scan_feed

FIELDS = frozenset({"imageUrl", "videoUrl"})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=6), st.sampled_from(["/images/a.png", "https://c/images/b.png", "\u2028é\\\""]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["imageUrl", "id", "x"]), inner,
                                                                       max_size=3)), max_leaves=6)
keys = st.sampled_from(["id", "imageUrl", "videoUrl", "text", "image\\u0055rl"])  # the last is imageUrl, escaped
#: an object as its pairs (duplicate keys allowed), or any other JSON value as an array entry
entries = st.one_of(st.lists(st.tuples(keys, values), max_size=5), values)
spaces = st.sampled_from(["", " ", "\n  ", "\t"])


def render(document: list[object], space: str) -> str:
    """JSON text of ``document`` with ``space`` around every token; a list of pairs is an object."""
    def value(item: object) -> str:
        if isinstance(item, list) and all(isinstance(pair, tuple) for pair in item) and item:
            members = (f'{space}"{key}"{space}:{space}{value(inner)}' for key, inner in item)
            return "{" + ",".join(members) + space + "}"
        if isinstance(item, list):
            return "[" + ",".join(space + value(inner) for inner in item) + space + "]"
        if isinstance(item, dict):
            return "{" + ",".join(f"{json.dumps(key)}:{value(inner)}" for key, inner in item.items()) + "}"
        return json.dumps(item)
    return space + "[" + ",".join(space + value(entry) for entry in document) + space + "]" + space


@settings(max_examples=150, deadline=None)
@given(document=st.lists(entries, max_size=5), space=spaces)
@example(document=[[("imageUrl", "/images/a.png"), ("imageUrl", "/images/b.png"), ("id", 7)]], space="")
@example(document=[[("id", True), ("imageUrl", "/a"), ("id", "p1")], "x", [("imageUrl", {"imageUrl": "/n"})]],
         space="\n")
@example(document=[[("image\\u0055rl", "/images/escaped.png")]], space=" ")
def test_load_feed_lists_exactly_what_scan_feed_finds(document: list[object], space: str) -> None:
    text = render(document, space)
    loaded_text, fields = load_feed(text.encode(), FIELDS)
    assert loaded_text == text
    assert fields == [ref[:4] for ref in scan_feed(text, FIELDS)]
