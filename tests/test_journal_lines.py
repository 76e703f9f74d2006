"""Journal lines in-process: any name round-trips into valid JSON, and no entry can forge an output line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datagc.config.load import load_config
from datagc.facts import FileIdentity
from datagc.history import history, matches, normalise_pattern
from datagc.journal import Journal, json_text, read_journal
from datagc.model import Delete, FeedNull
from datagc.render.journal import history_lines
from datagc.render.terminal import Renderer
from datagc.safety.datadir import DataDir

#: file names as the kernel hands them over: any bytes but / and NUL, decoded with surrogateescape
NAMES = st.binary(min_size=1, max_size=40).filter(lambda raw: b"/" not in raw and b"\0" not in raw).map(os.fsdecode)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, url_tail=st.text(max_size=20))
@example(name="a\n[janitor] swept everything (age", url_tail="\x1b[31m")
@example(name=os.fsdecode(b"\xff\xfe.png"), url_tail="\ud800")
@example(name='quote".png', url_tail="\\")
def test_any_name_round_trips_and_renders_on_one_line(tmp_path: Path, name: str, url_tail: str) -> None:
    data = tmp_path / "data"
    for entry in data.glob(".datagc/*"):
        entry.unlink()
    (data / "images").mkdir(parents=True, exist_ok=True)
    config = load_config({}, {"DATAGC_DATA_DIR": str(data)})
    path = f"images/{name}"
    with DataDir(data) as data_dir:
        with Journal(data_dir, config, "sweep") as journal:
            journal.deletes("sweep", [Delete(path, 4096, "age", 1.0, FileIdentity(1, 2, 3, 4, 5))])
            null = FeedNull("posts.json", "imageUrl", f"/{path}{url_tail}", post=name)
            journal.feed_change("sweep", null, {path: "age"})
            assert journal.flush() is None
        read = read_journal(data_dir, config)
        report = history(data_dir, config, None, None, 0.0)
    assert read.bad_count == 0 and len(read.entries) == 2
    assert read.entries[0]["path"] == json_text(path)
    assert read.entries[1]["url"] == json_text(f"/{path}{url_tail}")
    assert len(history_lines(report)) == 2
    out = io.StringIO()
    Renderer(out=out, err=io.StringIO(), is_terminal=False).history_report(report)
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 3 and all(line.startswith("[history] ") for line in lines[:2])
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_patterns_are_relative_to_the_data_dir_and_match_feed_changes_by_their_media_file() -> None:
    assert normalise_pattern("./images/a.png", "/app/.data") == "images/a.png"
    assert normalise_pattern("/app/.data/images/", "/app/.data") == "images"
    delete = {"kind": "delete", "path": "images/old/a.png"}
    null = {"kind": "feed-null", "path": "posts.json", "media": "images/old/a.png"}
    assert all(matches(entry, "images") for entry in (delete, null))
    assert all(matches(entry, "images/*.png") for entry in (delete, null))
    assert not matches(delete, "images/old/b.png") and not matches(delete, "image")
    assert matches(null, "posts.json") and not matches(delete, "posts.json")


def test_the_terminal_view_is_a_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a terminal wide enough that no cell is folded
    data = tmp_path / "data"
    data.mkdir()
    config = load_config({}, {"DATAGC_DATA_DIR": str(data)})
    with DataDir(data) as data_dir:
        with Journal(data_dir, config, "run-all") as journal:
            journal.deletes("pressure", [Delete("videos/big.mp4", 5_000_000, "pressure", 1.0,
                                                FileIdentity(1, 2, 3, 4, 5))])
            assert journal.flush() is None
        report = history(data_dir, config, "videos", None, 0.0)
    out = io.StringIO()
    Renderer(out=out, err=io.StringIO(), is_terminal=True).history_report(report)
    text = out.getvalue()
    assert "datagc history of videos" in text and "videos/big.mp4" in text and "pressure" in text
    assert "5.0 MB" in text  # as every terminal view writes sizes (humanize)
