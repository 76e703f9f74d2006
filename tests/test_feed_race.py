"""Feed rewrites against a service that rewrites the feed itself (read, modify, temp + rename).

The swap itself is tested step by step (the service's write landing between
datagc's check and its exchange, once and twice), then against a real writer
process appending posts as fast as it can.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagc.facts import FileIdentity
from datagc.feed import rewrite as feed_rewrite
from datagc.feed.rewrite import null_references
from datagc.safety.datadir import DataDir
from datagc.safety.rewrite import REPLACED, is_datagc_temp, rename_exchange, replace_if_unchanged, settle_exchange
from datagc.safety.unlink import CHANGED
from tests.sweep_support import make_config, node_json, posts

#: the service's way of writing the feed: read it, append a post, write posts.json.tmp.<ms>, rename over
WRITER = r"""
import json, os, sys, time
root, count = sys.argv[1], int(sys.argv[2])
feed = os.path.join(root, "posts.json")
for i in range(count):
    with open(feed, encoding="utf-8") as handle:
        document = json.load(handle)
    document.append({"id": f"w{i}", "text": "new post", "imageUrl": f"/images/new-{i}.png"})
    temp = f"{feed}.tmp.{time.time_ns()}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, ensure_ascii=False))
    os.rename(temp, feed)
    time.sleep(0.002)
"""


def identity(path: Path) -> FileIdentity:
    return FileIdentity.of(path.lstat())


def service_write(path: Path, content: str) -> None:
    temp = path.with_name(f"{path.name}.tmp.{time.time_ns()}")
    temp.write_text(content)
    temp.rename(path)


@pytest.fixture
def feed_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    (tmp_path / "posts.json").write_text("v0")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield tmp_path, fd
    os.close(fd)


def test_rename_exchange_swaps_two_names(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    (root / "other").write_text("other")
    rename_exchange(fd, "other", "posts.json")
    assert (root / "posts.json").read_text() == "other" and (root / "other").read_text() == "v0"


def test_replace_if_unchanged_replaces_and_keeps_mode(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    os.chmod(root / "posts.json", 0o604)
    like = (root / "posts.json").stat()
    assert replace_if_unchanged(fd, "posts.json", b"v1", identity(root / "posts.json"), like) == REPLACED
    assert (root / "posts.json").read_text() == "v1"
    assert (root / "posts.json").stat().st_mode & 0o777 == 0o604
    assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_replace_if_unchanged_refuses_a_file_changed_since_it_was_read(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    read = identity(root / "posts.json")
    like = (root / "posts.json").stat()
    service_write(root / "posts.json", "service v1")
    assert replace_if_unchanged(fd, "posts.json", b"datagc", read, like) == CHANGED
    assert (root / "posts.json").read_text() == "service v1"
    assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_a_write_between_the_check_and_the_exchange_is_put_back(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    read = identity(root / "posts.json")  # datagc read v0 ...
    temp = root / "ours"
    temp.write_text("datagc's v0 + nulls")
    ours = identity(temp)
    service_write(root / "posts.json", "service v1")  # ... the service wrote v1 after the check ...
    rename_exchange(fd, "ours", "posts.json")  # ... and datagc swapped
    assert settle_exchange(fd, "ours", "posts.json", ours, read) == CHANGED
    assert (root / "posts.json").read_text() == "service v1"
    assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_a_second_write_landing_during_the_put_back_wins(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    read = identity(root / "posts.json")
    temp = root / "ours"
    temp.write_text("datagc")
    ours = identity(temp)
    service_write(root / "posts.json", "service v1")
    rename_exchange(fd, "ours", "posts.json")  # displaced v1
    service_write(root / "posts.json", "service v2")  # replaced ours before it could be swapped back
    assert settle_exchange(fd, "ours", "posts.json", ours, read) == CHANGED
    assert (root / "posts.json").read_text() == "service v2"
    assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_no_write_in_between_keeps_ours(feed_dir: tuple[Path, int]) -> None:
    root, fd = feed_dir
    read = identity(root / "posts.json")
    (root / "ours").write_text("datagc")
    ours = identity(root / "ours")
    rename_exchange(fd, "ours", "posts.json")
    assert settle_exchange(fd, "ours", "posts.json", ours, read) == REPLACED
    assert (root / "posts.json").read_text() == "datagc"
    assert sorted(p.name for p in root.iterdir()) == ["posts.json"]


def test_null_references_redoes_the_change_on_a_feed_rewritten_meanwhile(tmp_path: Path) -> None:
    """A service write lands while datagc works: the nulls end up on the service's new content."""
    root = tmp_path / "data"
    root.mkdir()
    document = [{"id": "p1", "imageUrl": "/images/a.png"}]
    (root / "posts.json").write_text(node_json(document))
    config = make_config(root)
    real_replace = replace_if_unchanged
    calls = []

    def service_writes_first(dir_fd: int, name: str, content: bytes, expected: FileIdentity,
                             like: os.stat_result) -> str:
        calls.append(name)
        if len(calls) == 1:
            service_write(root / "posts.json", node_json([*document, {"id": "p2", "imageUrl": "/images/a.png"}]))
        return real_replace(dir_fd, name, content, expected, like)

    with DataDir(root) as data_dir, pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed_rewrite, "replace_if_unchanged", service_writes_first)
        outcome = null_references(data_dir, config, {"images/a.png"})
    assert len(calls) == 2
    assert posts(root) == [{"id": "p1", "imageUrl": None}, {"id": "p2", "imageUrl": None}]
    assert [n.post for n in outcome.nulls] == ["p1", "p2"]


def test_a_concurrent_writer_loses_no_post(tmp_path: Path) -> None:
    """A real process appends posts by temp + rename while datagc nulls references over and over."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    original = [{"id": f"p{i}", "text": "x" * 200, "imageUrl": f"/images/old-{i}.png"} for i in range(400)]
    (root / "posts.json").write_text(node_json(original))
    config = make_config(root)
    count = 150
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(count)])
    nulled: set[str] = set()
    try:
        with DataDir(root) as data_dir:
            index = 0
            while writer.poll() is None and index < len(original):
                outcome = null_references(data_dir, config, {f"images/old-{index}.png"})
                # a feed that never stays still long enough is left alone and says so; never half-done
                assert not outcome.problems or set(outcome.blocked) == {f"images/old-{index}.png"}
                nulled |= {n.post for n in outcome.nulls if n.post}
                index += 1
    finally:
        assert writer.wait(timeout=60) == 0
    final = posts(root)
    ids = [entry["id"] for entry in final]
    assert ids == [entry["id"] for entry in original] + [f"w{i}" for i in range(count)]  # nothing lost, in order
    assert nulled, "datagc never got a rewrite in"
    assert {entry["id"] for entry in final if entry.get("imageUrl") is None} <= nulled  # only what datagc nulled
    assert not [p.name for p in root.iterdir() if is_datagc_temp(p.name)]
    json.loads((root / "posts.json").read_text())  # and it is whole
