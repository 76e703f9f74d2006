"""The feed is parsed once per pass while it stays the same file, and read again as soon as its identity changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from datagc.feed import index as feed_index
from datagc.feed.index import index_feeds
from datagc.feed.parse import URLField, load_feed
from datagc.feed.rewrite import null_references
from datagc.safety.datadir import DataDir
from tests.sweep_support import make_config, node_json, write_file


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a feed's text was parsed."""
    calls = [0]
    load = load_feed

    def counting(content: bytes, url_fields: object) -> tuple[str, list[URLField]]:
        calls[0] += 1
        return load(content, url_fields)  # type: ignore[arg-type]

    monkeypatch.setattr(feed_index, "load_feed", counting)
    return calls


def make_tree(root: Path) -> None:
    for name in ("aaaa", "bbbb", "cccc"):
        write_file(root / "images" / f"{name}.png", 100, 30)
    posts = [{"id": "p1", "imageUrl": "/images/aaaa.png"}, {"id": "p2", "imageUrl": "/images/bbbb.png"}]
    (root / "posts.json").write_text(node_json(posts))


def test_an_unchanged_feed_is_parsed_once_for_the_index_and_the_nulling(tmp_path: Path, counted: list[int]) -> None:
    root = tmp_path / "data"
    make_tree(root)
    config = make_config(root, cdn__enabled=True)
    with DataDir(root) as data_dir:
        index = index_feeds(data_dir, config)
        assert set(index.local_refs) == {"images/aaaa.png", "images/bbbb.png"}
        assert null_references(data_dir, config, ["images/cccc.png"]).nulls == []  # named nowhere
        assert index_feeds(data_dir, config).local_refs.keys() == index.local_refs.keys()
    assert counted == [1]


def test_a_feed_rewritten_in_place_with_its_size_and_mtime_kept_is_read_again(
    tmp_path: Path, counted: list[int]
) -> None:
    """The same inode, the same size, the mtime put back: only the ctime tells, and it is enough (a write in the
    same clock tick as the read is the limit of every identity check, the re-check before an unlink too)."""
    root = tmp_path / "data"
    make_tree(root)
    config = make_config(root, cdn__enabled=True)
    path = root / "posts.json"
    with DataDir(root) as data_dir:
        assert "images/bbbb.png" in index_feeds(data_dir, config).local_refs
        before = path.stat()
        time.sleep(0.05)  # past the filesystem's timestamp granularity
        with path.open("r+b") as handle:  # in place: same inode
            handle.write(path.read_bytes().replace(b"bbbb", b"cccc"))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = path.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
        refs = index_feeds(data_dir, config).local_refs
        assert "images/cccc.png" in refs and "images/bbbb.png" not in refs
        outcome = null_references(data_dir, config, ["images/cccc.png"])
        assert outcome.nulled == {"images/cccc.png"}
    assert counted[0] == 2
    assert b'"imageUrl": null' in path.read_bytes() and b"aaaa" in path.read_bytes()


def test_a_feed_replaced_by_rename_is_read_again(tmp_path: Path, counted: list[int]) -> None:
    root = tmp_path / "data"
    make_tree(root)
    config = make_config(root, cdn__enabled=True)
    with DataDir(root) as data_dir:
        index_feeds(data_dir, config)
        temp = root / "posts.json.tmp"
        temp.write_text(node_json([{"id": "p3", "imageUrl": "/images/cccc.png"}]))
        temp.rename(root / "posts.json")
        assert set(index_feeds(data_dir, config).local_refs) == {"images/cccc.png"}
    assert counted == [2]


def test_an_unchanged_feed_is_indexed_once_and_a_change_of_feed_or_settings_indexes_again(tmp_path: Path) -> None:
    """The pass's planner and its tombstone repair share one index; the index is never stale."""
    root = tmp_path / "data"
    make_tree(root)
    config = make_config(root, cdn__enabled=True)
    with DataDir(root) as data_dir:
        first = index_feeds(data_dir, config)
        assert index_feeds(data_dir, config) is first
        other = make_config(root, cdn__enabled=True, cdn__public_url="https://cdn.example.com")
        assert index_feeds(data_dir, other) is not first
        temp = root / "posts.json.tmp"
        temp.write_text(node_json([{"id": "p3", "imageUrl": "/images/cccc.png"}]))
        temp.rename(root / "posts.json")
        assert set(index_feeds(data_dir, config).local_refs) == {"images/cccc.png"}
