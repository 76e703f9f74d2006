"""The feed: URL matching, span-exact nulls that keep the formatting, the index, and rewrites on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datagc import cdn
from datagc.feed.index import FeedProblem, index_feeds
from datagc.feed.parse import FeedError, decode_feed, null_spans, scan_feed
from datagc.feed.rewrite import NullOutcome, null_references
from datagc.model import FeedNull
from datagc.safety.datadir import DataDir
from datagc.safety.rewrite import is_datagc_temp
from datagc.wording import feed_problem_text
from tests.sweep_support import make_config, node_json, post, posts, sample

MEDIA = ("images", "videos", "voice", "bid-images")
FIELDS = ("imageUrl", "videoUrl")


# --- URL matching (pure) -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/images/a.png", {"images/a.png"}),
        ("images/a.png", {"images/a.png"}),
        (".data/images/a.png", {"images/a.png"}),
        ("/app/.data/images/old/a.png", {"images/old/a.png"}),
        ("/bid-images/shared-name.png", {"bid-images/shared-name.png"}),
        ("/images/a%20b.png?v=2", {"images/a b.png", "images/a%20b.png", "images/a%20b.png?v=2"}),
        ("/images/videos/a.mp4", {"images/videos/a.mp4", "videos/a.mp4"}),  # either: both get nulled
        ("/images/", set()),
        ("/thumbnails/a.png", set()),
        ("https://cdn.example.com/images/a.png", set()),
        ("//cdn.example.com/images/a.png", set()),
        ("data:image/png;base64,AAAA", set()),
        ("http://[broken/images/a.png", set()),  # a host urlsplit refuses: still remote
        ("//[broken/images/a.png", {"images/a.png"}),  # refused by urlsplit: its text, read generously
        ("file://[broken/images/a.png", {"images/a.png"}),
        ("\t/images/a.png", {"images/a.png"}),  # urlsplit strips it; the URL as written names it too
        ("/ima\nges/a.png", {"images/a.png"}),  # urlsplit drops line breaks
    ],
)
def test_local_paths(url: str, expected: set[str]) -> None:
    assert cdn.local_paths(url, MEDIA) == expected


def test_a_basename_never_matches_across_media_dirs() -> None:
    assert cdn.local_paths("/images/shared-name.png", MEDIA) == {"images/shared-name.png"}
    assert cdn.local_paths("/bid-images/shared-name.png", MEDIA) == {"bid-images/shared-name.png"}
    assert cdn.local_paths("/videos/shared-name.mp4", MEDIA) == {"videos/shared-name.mp4"}
    assert cdn.local_paths("/my-images/shared-name.png", MEDIA) == set()


@pytest.mark.parametrize(
    ("url", "public_url", "expected"),
    [
        ("https://cdn.example.com/images/a.png", "https://cdn.example.com", {"images/a.png"}),
        ("https://cdn.example.com/images/a.png", "https://cdn.example.com/", {"images/a.png"}),
        ("https://cdn.example.com/images/old/a.png?x=1", "https://cdn.example.com", {"images/old/a.png"}),
        ("https://other.example.com/images/a.png", "https://cdn.example.com", set()),
        ("https://cdn.example.com/bucket/images/a.png", "https://cdn.example.com", set()),
        ("https://cdn.example.com/bucket/images/a.png", "https://cdn.example.com/bucket", {"images/a.png"}),
        ("https://cdn.example.com/bid-images/a.png", "https://cdn.example.com", {"bid-images/a.png"}),
        ("https://cdn.example.com/images/a.png", "", set()),  # rule 17: no public_url, no CDN copy
        ("https://cdn.example.com.evil.org/images/a.png", "https://cdn.example.com", set()),
        ("https://cdn.example.com:8443/images/a.png", "https://cdn.example.com", set()),
        ("http://cdn.example.com/images/a.png", "https://cdn.example.com", set()),
        ("/images/a.png", "", set()),
        ("/images/a.png", "https://cdn.example.com", set()),
        ("https://cdn.example.com//[broken/images/a.png", "https://cdn.example.com", set()),  # refused: no copy
        ("https://[broken/images/a.png", "https://cdn.example.com", set()),
        ("https://cdn.example.com/images/a%20b.png", "https://cdn.example.com", {"images/a b.png", "images/a%20b.png"}),
        ("https://cdn.example.com/images/../videos/a.mp4", "https://cdn.example.com", {"videos/a.mp4"}),
        ("HTTPS://CDN.example.com/images/a.png", "HTTPS://CDN.example.com", {"images/a.png"}),  # not plain: urlsplit
    ],
)
def test_cdn_paths(url: str, public_url: str, expected: set[str]) -> None:
    assert cdn.cdn_paths(url, public_url, MEDIA) == expected


# --- parsing and nulling (pure) ----------------------------------------------


def test_scan_finds_url_fields_with_their_post_ids() -> None:
    text = decode_feed(
        b'[{"id": "p1", "imageUrl": "/images/a.png", "nested": {"imageUrl": "/images/n.png"}},'
        b' "not a post", {"imageUrl": null, "videoUrl": "/videos/v.mp4", "id": 7}, {"imageUrl": 3}]'
    )
    refs = scan_feed(text, FIELDS)
    assert [(r.entry, r.post, r.field, r.url) for r in refs] == [
        (0, "p1", "imageUrl", "/images/a.png"),
        (2, "7", "videoUrl", "/videos/v.mp4"),
    ]
    assert all(text[r.start:r.end] == json.dumps(r.url) for r in refs)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "is not JSON"),
        (b"not json", "is not JSON"),
        (b'[{"id": 1},', "is not JSON"),
        (b'{"posts": []}', "is not a JSON array (its top level is an object)"),
        (b'"[]"', "is not a JSON array (its top level is a string)"),
        (b"null", "is not a JSON array (its top level is null)"),
        (b"\xff\xfe[]", "is not UTF-8 text"),
    ],
)
def test_a_feed_that_is_not_an_array_is_refused_with_the_reason(content: bytes, why: str) -> None:
    with pytest.raises(FeedError) as refused:
        decode_feed(content)
    assert feed_problem_text(FeedProblem("posts.json", "undecodable", decoding=refused.value.why)).startswith(
        f"feed posts.json {why}")


def test_nulling_changes_only_the_named_values_and_keeps_every_other_byte() -> None:
    document = [
        {"id": "p1", "text": "caf\u00e9 \u2014 \U0001f600 \"quoted\" \\ / \n", "imageUrl": "/images/a.png",
         "videoUrl": "/videos/a.mp4", "engagement": {"likes": 1}, "empty": [], "obj": {}},
        {"id": "p2", "imageUrl": "/images/b.png"},
    ]
    for original in (node_json(document), node_json(document) + "\n", json.dumps(document, separators=(",", ":")),
                     json.dumps(document, indent="\t", ensure_ascii=True)):
        text = decode_feed(original.encode())
        refs = [r for r in scan_feed(text, FIELDS) if r.url == "/images/a.png"]
        changed = null_spans(text, refs)
        expected = json.loads(original)
        expected[0]["imageUrl"] = None
        assert json.loads(changed) == expected
        assert changed.replace("null", '"/images/a.png"', 1) == original  # not one other byte moved


def test_node_formatting_survives_byte_for_byte() -> None:
    original = (Path(__file__).parent.parent / "datagc" / "sample" / "posts.json").read_text(encoding="utf-8")
    text = decode_feed(original.encode())
    refs = [r for r in scan_feed(text, FIELDS) if r.post == "p3"]
    changed = null_spans(text, refs)
    document = json.loads(original)
    document[2]["imageUrl"] = document[2]["videoUrl"] = None
    assert changed == node_json(document) + ("\n" if original.endswith("\n") else "")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.text(max_size=8))
posts_strategy = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=4)},
        optional={
            "imageUrl": st.one_of(st.none(), st.sampled_from(["/images/a.png", "/images/b.png", "https://c/images/a.png"])),
            "videoUrl": st.sampled_from(["/videos/a.mp4", "/images/a.png"]),
            "text": st.text(max_size=20),
            "engagement": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
        },
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(document=posts_strategy, indent=st.sampled_from([None, 2, 4, "\t"]), ascii_only=st.booleans())
def test_nulling_is_exactly_setting_the_fields_to_null(document: list[dict[str, object]], indent: object,
                                                       ascii_only: bool) -> None:
    original = json.dumps(document, indent=indent, ensure_ascii=ascii_only)  # type: ignore[arg-type]
    text = decode_feed(original.encode())
    targets = {"images/a.png"}
    refs = [r for r in scan_feed(text, FIELDS) if cdn.local_paths(r.url, MEDIA) & targets]
    expected = json.loads(original)
    for entry in expected:
        for name in FIELDS:
            if isinstance(entry.get(name), str) and cdn.local_paths(entry[name], MEDIA) & targets:
                entry[name] = None
    assert json.loads(null_spans(text, refs)) == expected


# --- the index and rewrites on real files ------------------------------------


def test_index_of_the_sample_feed(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    config = make_config(root, cdn__public_url="https://cdn.example.com")
    with DataDir(root) as data_dir:
        index = index_feeds(data_dir, config)
    assert index.complete
    assert index.local_refs == {
        "images/1763990000000-b2.png": [FeedNull("posts.json", "imageUrl", "/images/1763990000000-b2.png", "p2")],
        "images/shared-name.png": [FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3")],
        "videos/shared-name.mp4": [FeedNull("posts.json", "videoUrl", "/videos/shared-name.mp4", "p3")],
        "bid-images/shared-name.png": [FeedNull("posts.json", "imageUrl", "/bid-images/shared-name.png", "p4")],
    }
    assert index.published == {
        "images/1763900000000-a1.png": "https://cdn.example.com/images/1763900000000-a1.png",
        "images/1763400000000-f6.png": "https://cdn.example.com/images/1763400000000-f6.png",
        "videos/1763400000000-f6.mp4": "https://cdn.example.com/videos/1763400000000-f6.mp4",
    }


def test_index_with_a_public_url_counts_only_urls_under_it(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    with DataDir(root) as data_dir:
        index = index_feeds(data_dir, make_config(root, cdn__public_url="https://elsewhere.example.com"))
    assert index.published == {}
    assert len(index.local_refs) == 4


def test_a_missing_feed_references_nothing(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    (root / "posts.json").unlink()
    config = make_config(root)
    with DataDir(root) as data_dir:
        index = index_feeds(data_dir, config)
        outcome = null_references(data_dir, config, {"images/shared-name.png"})
    assert index.complete and not index.local_refs and not index.published
    assert outcome == NullOutcome()
    assert not (root / "posts.json").exists()


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'{"posts": [{"imageUrl": "/images/shared-name.png"}]}'])
def test_an_unparseable_feed_is_left_byte_for_byte_and_blocks_every_media_file(tmp_path: Path, content: bytes) -> None:
    root = sample(tmp_path / "data")
    (root / "posts.json").write_bytes(content)
    before = (root / "posts.json").stat()
    config = make_config(root)
    targets = {"images/shared-name.png", "voice/old/monologue-1763000000.mp3", "posts.json.tmp.1763000000000"}
    with DataDir(root) as data_dir:
        index = index_feeds(data_dir, config)
        outcome = null_references(data_dir, config, targets)
    assert not index.complete
    assert feed_problem_text(index.problems[0]).startswith("feed posts.json is not")
    assert set(outcome.blocked) == targets - {"posts.json.tmp.1763000000000"}  # a temp is never named by a URL
    assert not outcome.nulls
    assert (root / "posts.json").read_bytes() == content
    after = (root / "posts.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_feed_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    outside = tmp_path / "outside.json"
    (root / "posts.json").rename(outside)
    (root / "posts.json").symlink_to(outside)
    before = outside.read_bytes()
    config = make_config(root)
    with DataDir(root) as data_dir:
        outcome = null_references(data_dir, config, {"images/shared-name.png"})
    assert outcome.blocked and "symbolic link" in feed_problem_text(outcome.problems[0])
    assert outside.read_bytes() == before and (root / "posts.json").is_symlink()


def test_null_references_nulls_only_the_exact_file_on_a_segment_boundary(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    original = (root / "posts.json").read_bytes()
    mode = 0o640
    os.chmod(root / "posts.json", mode)
    config = make_config(root)
    with DataDir(root) as data_dir:
        outcome = null_references(data_dir, config, {"images/shared-name.png"})
    assert outcome.nulls == [FeedNull("posts.json", "imageUrl", "/images/shared-name.png", "p3")]
    assert outcome.nulled == {"images/shared-name.png"}
    assert post(root, "p3")["imageUrl"] is None
    assert post(root, "p3")["videoUrl"] == "/videos/shared-name.mp4"
    assert post(root, "p4")["imageUrl"] == "/bid-images/shared-name.png"
    changed = (root / "posts.json").read_bytes()
    assert changed == original.replace(b'"/images/shared-name.png"', b"null")
    assert (root / "posts.json").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in root.iterdir() if is_datagc_temp(p.name)) == []


def test_null_references_with_nothing_to_change_leaves_the_file_alone(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    before = (root / "posts.json").stat()
    config = make_config(root)
    with DataDir(root) as data_dir:
        outcome = null_references(data_dir, config, {"images/in-progress.png", "images/1763900000000-a1.png"})
    assert outcome == NullOutcome()
    assert (root / "posts.json").stat().st_ino == before.st_ino


def test_several_feed_files_in_subdirectories(tmp_path: Path) -> None:
    root = sample(tmp_path / "data")
    (root / "archive").mkdir()
    (root / "archive" / "old.json").write_text(node_json([{"id": "a1", "videoUrl": "/videos/shared-name.mp4"}]))
    config = make_config(root, feed__files="posts.json,archive/old.json")
    with DataDir(root) as data_dir:
        outcome = null_references(data_dir, config, {"videos/shared-name.mp4"})
    assert {(n.path, n.post) for n in outcome.nulls} == {("posts.json", "p3"), ("archive/old.json", "a1")}
    assert posts(root, "archive/old.json") == [{"id": "a1", "videoUrl": None}]
