"""The journal (SPEC §9) through the real CLI: what it records, where, how it is bounded, how it fails."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import orjson
import pytest

from tests.helpers import run_datagc
from tests.mounts import KiB, MiB, fill, tmpfs
from tests.sweep_support import files, sample, snapshot, write_file

#: what the sample loses to ``sweep --cdn`` (CDN on, defaults)
SWEPT = {
    "images/1763900000000-a1.png": "age", "images/1763900000000-a1-v2.png": "age",
    "images/shared-name.png": "age", "videos/shared-name.mp4": "age", "images/1763400000000-f6.png": "age",
    "videos/1763400000000-f6.mp4": "age", "voice/old/monologue-1763000000.mp3": "age",
    "posts.json.tmp.1763000000000": "temp",
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def journal(data: Path, state: str = ".datagc") -> list[dict[str, object]]:
    path = data / state / "journal.jsonl" if not state.startswith("/") else Path(state) / "journal.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def old_entry(path: str, ts: str = "2020-01-01T00:00:00.000Z", kind: str = "delete") -> bytes:
    entry = {"ts": ts, "command": "sweep", "step": "sweep", "kind": kind, "path": path, "bytes": 4096,
             "reason": "age"}
    return orjson.dumps(entry) + b"\n"


def test_a_sweep_journals_each_applied_change_and_history_answers_where_a_file_went(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert result.code == 8, result.stderr
    actions = result.json()["steps"][0]["actions"]
    state = data / ".datagc"
    assert stat.S_IMODE(state.lstat().st_mode) == 0o700 and stat.S_ISDIR(state.lstat().st_mode)
    entries = journal(data)
    assert all(TS.match(str(e["ts"])) and e["command"] == "sweep" and e["step"] == "sweep" for e in entries)
    deletes = {e["path"]: (e["reason"], e["bytes"]) for e in entries if e["kind"] == "delete"}
    assert deletes == {a["path"]: (a["reason"], a["bytes"]) for a in actions if a["kind"] == "delete"}
    assert {path: reason for path, (reason, _) in deletes.items()} == SWEPT
    nulls = {(e["path"], e["post"], e["field"], e["url"], e["media"], e["reason"])
             for e in entries if e["kind"] == "feed-null"}
    assert nulls == {("posts.json", "p3", "imageUrl", "/images/shared-name.png", "images/shared-name.png", "age"),
                     ("posts.json", "p3", "videoUrl", "/videos/shared-name.mp4", "videos/shared-name.mp4", "age")}

    where = run_datagc("history", "images/shared-name.png", "--data-dir", str(data), "--json")
    assert where.code == 0, where.stderr
    found = where.json()["entries"]
    assert [(e["kind"], e["path"]) for e in found] == [("delete", "images/shared-name.png"),
                                                      ("feed-null", "posts.json")]
    plain = run_datagc("history", str(data / "images"), "--data-dir", str(data))
    assert plain.code == 0 and plain.stderr == ""
    lines = plain.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("[history] ") for line in lines)
    assert any(re.search(r"sweep: deleted images/shared-name\.png \(age, ", line) for line in lines)
    everything = run_datagc("history", "--data-dir", str(data), "--json").json()["entries"]
    assert len(everything) == len(entries)
    assert [e["ts"] for e in everything] == sorted((e["ts"] for e in everything), reverse=True)


def test_a_dry_run_records_nothing_and_creates_no_state_dir(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    before = snapshot(data)
    assert run_datagc("run-all", "--data-dir", str(data), "--cdn", "--dry-run").code == 8
    assert snapshot(data) == before
    empty = run_datagc("history", "--data-dir", str(data), "--json")
    assert empty.code == 0 and empty.json()["entries"] == [] and "no journal yet" in empty.json()["notes"][0]
    assert snapshot(data) == before


def test_a_rotation_is_journaled(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.jsonl").write_bytes(b"".join(b'{"n":%d}\n' % i for i in range(20000)))
    result = run_datagc("rotate", "--data-dir", str(data), "--max-bytes", "100KiB", "--keep-lines", "100")
    assert result.code == 4, result.stderr
    (entry,) = journal(data)
    size = (data / "events.jsonl").stat().st_size
    assert entry["kind"] == "rotate" and entry["path"] == "events.jsonl" and entry["lines_kept"] == 100
    assert entry["bytes_after"] == size and entry["bytes"] == entry["bytes_before"] - size  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_state_dir_that_is_a_symlink_or_a_file_is_an_error_and_deletions_still_happen(
        tmp_path: Path, kind: str) -> None:
    data = sample(tmp_path / "data", now=time.time())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if kind == "symlink":
        (data / ".datagc").symlink_to(elsewhere)
    else:
        (data / ".datagc").write_text("not a directory")
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert result.code == 9, result.stderr
    step = result.json()["steps"][0]
    assert step["status"] == "error"
    problem = "is a symbolic link" if kind == "symlink" else "is not a directory"
    assert problem in step["error"] and problem in result.stderr
    assert "not in the journal" in " ".join([step["error"], *step["notes"]])
    assert not set(SWEPT) & files(data)  # the deletions happened
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    history = run_datagc("history", "--data-dir", str(data))
    assert history.code == 1 and problem in history.stderr and "Traceback" not in history.stderr


def test_the_state_dir_is_never_a_target(tmp_path: Path) -> None:
    """A state dir inside a media dir (named through a symlinked data dir, too): the veto keeps its old files."""
    data = sample(tmp_path / "data", now=time.time())
    (tmp_path / "link").symlink_to(data)
    old = data / "images" / "state" / "journal.jsonl"
    old.parent.mkdir()
    old.write_bytes(old_entry("images/gone.png"))
    os.utime(old, (time.time() - 60 * 86400, time.time() - 60 * 86400))
    result = run_datagc("sweep", "--data-dir", str(tmp_path / "link"), "--cdn", "--json", "-v",
                        env={"DATAGC_STATE_DIR": str(data / "images" / "state")})
    assert result.code == 8, result.stderr
    assert old.exists()
    kept = {k["path"]: k["why"] for k in result.json()["steps"][0]["kept"]}
    assert "state.dir" in kept["images/state/journal.jsonl"]
    assert any(e["path"] == "images/shared-name.png" for e in journal(data, str(data / "images" / "state")))


def test_the_journal_keeps_its_newest_entries_within_max_bytes(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    (data / ".datagc").mkdir(mode=0o700)
    filler = b"".join(old_entry(f"images/old-{i}.png") for i in range(1200))  # ~140 KB
    (data / ".datagc" / "journal.jsonl").write_bytes(filler)
    result = run_datagc("sweep", "--data-dir", str(data), "--cdn", env={"DATAGC_JOURNAL_MAX_BYTES": "64KiB"})
    assert result.code == 8, result.stderr
    content = (data / ".datagc" / "journal.jsonl").read_bytes()
    assert len(content) <= 32 * KiB and content.endswith(b"\n")
    entries = [orjson.loads(line) for line in content.splitlines()]  # every line whole
    assert {e["path"] for e in entries if e["kind"] == "delete" and e["command"] == "sweep"} >= set(SWEPT)
    assert entries[-1]["ts"] > "2020"  # the newest are the ones kept
    assert os.listdir(data / ".datagc") == ["journal.jsonl"]  # no temp left
    too_small = run_datagc("sweep", "--data-dir", str(data), env={"DATAGC_JOURNAL_MAX_BYTES": "1KiB"})
    assert too_small.code == 2 and "journal.max_bytes" in too_small.stderr


def test_a_corrupt_line_is_skipped_and_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / ".datagc").mkdir(parents=True)
    (data / ".datagc" / "journal.jsonl").write_bytes(
        old_entry("images/a.png") + b"{not json\n" + b'["an array"]\n' + old_entry("images/b.png")
        + b'{"ts": "2021-01-01T00:00:00.000Z", "kind": "delete", "path": "images/c')  # a write in progress
    result = run_datagc("history", "--data-dir", str(data), "--json")
    assert result.code == 0
    report = result.json()
    assert [e["path"] for e in report["entries"]] == ["images/b.png", "images/a.png"]
    assert report["corrupt_lines"] == 2 and report["corrupt_line_numbers"] == [2, 3]
    assert "2 corrupt line(s) skipped (line 2, 3)" in result.stderr
    since = run_datagc("history", "--data-dir", str(data), "--since", "1d", "--json")
    assert since.code == 0 and since.json()["entries"] == []
    bad = run_datagc("history", "--data-dir", str(data), "--since", "soon")
    assert bad.code == 2 and "--since" in bad.stderr


@pytest.mark.mount
def test_a_full_disk_journals_once_the_deletions_freed_room() -> None:
    """The data dir (and the state dir in it) on a full tmpfs: the sweep deletes, then the journal is written."""
    with tmpfs(8 * MiB) as root:
        data = sample(root / "data", now=time.time())
        fill(root, leave_bytes=0)
        result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
        assert result.code == 8, (result.stdout, result.stderr)
        assert not set(SWEPT) & files(data)
        assert {e["path"] for e in journal(data) if e["kind"] == "delete"} == set(SWEPT)


@pytest.mark.mount
def test_a_journal_on_a_full_filesystem_is_a_step_error_that_never_stops_a_deletion(tmp_path: Path) -> None:
    """The state dir on its own full filesystem: no line fits, the sweep still frees the data disk (exit 8|1)."""
    data = sample(tmp_path / "data", now=time.time())
    with tmpfs(1 * MiB) as state_fs:
        (state_fs / "state").mkdir()
        (state_fs / "state" / "journal.jsonl").write_bytes(b"")
        fill(state_fs, leave_bytes=0)
        result = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json",
                            env={"DATAGC_STATE_DIR": str(state_fs / "state")})
        assert result.code == 9, (result.stdout, result.stderr)
        step = result.json()["steps"][0]
        assert "No space left on device" in step["error"] and "10 change(s) of this pass are not" in step["error"]
        assert not set(SWEPT) & files(data)
        assert (state_fs / "state" / "journal.jsonl").read_bytes() == b""  # nothing torn left behind

        temps = tmp_path / "temps"  # a pass far bigger than the journal keeps: memory bounded, every change counted
        temps.mkdir()
        for i in range(1500):
            write_file(temps / f"posts.json.tmp.{i}", 1, age_days=2, now=time.time())
        many = run_datagc("sweep", "--data-dir", str(temps), "--json",
                          env={"DATAGC_STATE_DIR": str(state_fs / "state"), "DATAGC_JOURNAL_MAX_BYTES": "64KiB"})
        assert many.code == 9, many.stderr
        assert "1500 change(s) of this pass are not in the journal" in many.json()["steps"][0]["error"]
        assert list(temps.iterdir()) == []
