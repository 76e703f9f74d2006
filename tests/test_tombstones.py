"""Tombstones (SPEC §9) against a real service process that rewrites the feed from an old copy.

The service's way of writing: read posts.json, work ~50 ms, write
posts.json.tmp.<ms>, rename it over. A copy read before datagc's pass puts
back the references datagc nulled; the next pass repairs them, and audit
tells the references datagc's deletions left from the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from datagc.exitcodes import Exit
from tests.helpers import run_datagc
from tests.sweep_support import node_json, post, posts, sample, write_file

#: read the feed (once, or per round), wait ~50 ms of "work", write it back by temp + rename.
#: With a "hold" file it keeps its first copy until the file disappears, then writes that old copy back.
REWRITER = r"""
import json, os, sys, time
root, rounds = sys.argv[1], int(sys.argv[2])
feed, hold = os.path.join(root, "posts.json"), os.path.join(root, "hold")
def write(document):
    temp = f"{feed}.tmp.{time.time_ns() // 1000000}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2, ensure_ascii=False))
    os.rename(temp, feed)
with open(feed, encoding="utf-8") as handle:
    old = json.load(handle)
open(os.path.join(root, "ready"), "w").close()
for i in range(rounds):
    with open(feed, encoding="utf-8") as handle:
        document = json.load(handle)
    time.sleep(0.05)
    document.append({"id": f"live-{i}", "text": "a new post", "imageUrl": None})
    write(document)
while os.path.exists(hold):
    time.sleep(0.01)
time.sleep(0.05)
old.append({"id": "after", "text": "written from the old copy", "imageUrl": None})
write(old)
"""


def start_rewriter(root: Path, rounds: int) -> subprocess.Popen[bytes]:
    (root / "hold").touch()
    process = subprocess.Popen([sys.executable, "-c", REWRITER, str(root), str(rounds)])
    deadline = time.monotonic() + 120
    while not (root / "ready").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the rewriter did not start"
        time.sleep(0.01)
    return process


def finish(process: subprocess.Popen[bytes], root: Path) -> None:
    (root / "hold").unlink()
    assert process.wait(timeout=60) == 0
    (root / "ready").unlink()


def test_a_feed_written_back_from_an_old_copy_is_repaired_by_the_next_pass(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    rewriter = start_rewriter(data, rounds=10)  # rewrites while the sweep runs, then its old copy after it
    first = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    finish(rewriter, data)
    assert first.code == 8, first.stderr
    assert not (data / "images" / "shared-name.png").exists()
    assert post(data, "p3")["imageUrl"] == "/images/shared-name.png"  # the service put the reference back

    audit = run_datagc("audit", "--data-dir", str(data), "--json")
    dangling = {(d["post"], d["field"], d["path"], d["deleted_by_datagc"]) for d in audit.json()["dangling_references"]}
    assert dangling == {("p3", "imageUrl", "images/shared-name.png", True),
                        ("p3", "videoUrl", "videos/shared-name.mp4", True)}

    dry = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--dry-run", "--json")
    assert dry.code == 0 and post(data, "p3")["imageUrl"] == "/images/shared-name.png"
    assert {(a["field"], a["reason"]) for a in dry.json()["steps"][0]["actions"]} == {
        ("imageUrl", "repair"), ("videoUrl", "repair")}

    second = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert second.code == 0, second.stderr
    repaired = [a for a in second.json()["steps"][0]["actions"] if a["kind"] == "feed-null"]
    assert {(a["post"], a["field"], a["reason"]) for a in repaired} == {("p3", "imageUrl", "repair"),
                                                                         ("p3", "videoUrl", "repair")}
    assert post(data, "p3")["imageUrl"] is None and post(data, "p3")["videoUrl"] is None
    assert post(data, "after")["text"] == "written from the old copy"  # the service's own post survives
    assert run_datagc("audit", "--data-dir", str(data), "--json").json()["dangling_references"] == []
    lines = [json.loads(line) for line in (data / ".datagc" / "journal.jsonl").read_text().splitlines()]
    repairs = [e for e in lines if e["reason"] == "repair"]
    assert {(e["kind"], e["post"], e["field"], e["media"]) for e in repairs} == {
        ("feed-null", "p3", "imageUrl", "images/shared-name.png"),
        ("feed-null", "p3", "videoUrl", "videos/shared-name.mp4")}
    history = run_datagc("history", "images/shared-name.png", "--data-dir", str(data), "--json").json()["entries"]
    assert [(e["kind"], e["reason"]) for e in history][:1] == [("feed-null", "repair")]


def test_a_file_created_again_at_a_deleted_path_is_live_again(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    assert run_datagc("sweep", "--data-dir", str(data), "--cdn").code == 8
    (data / "images" / "shared-name.png").write_bytes(b"generated again")
    document = posts(data)
    document.append({"id": "new", "imageUrl": "/images/shared-name.png"})
    (data / "posts.json").write_text(node_json(document))
    again = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json")
    assert again.code == 0 and again.json()["steps"][0]["actions"] == []
    assert post(data, "new")["imageUrl"] == "/images/shared-name.png"
    assert run_datagc("audit", "--data-dir", str(data), "--json").json()["dangling_references"] == []


def test_tombstones_end_with_the_repair_window_and_audit_tells_others_apart(tmp_path: Path) -> None:
    data = sample(tmp_path / "data", now=time.time())
    assert run_datagc("sweep", "--data-dir", str(data), "--cdn").code == 8
    document = posts(data)
    document += [{"id": "back", "imageUrl": "/images/shared-name.png"},
                 {"id": "typo", "imageUrl": "/images/never-existed.png"}]
    (data / "posts.json").write_text(node_json(document))
    outside = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--json",
                         env={"DATAGC_JOURNAL_REPAIR_WINDOW": "0s"})
    assert outside.code == 0 and outside.json()["steps"][0]["actions"] == []
    assert post(data, "back")["imageUrl"] == "/images/shared-name.png"
    audit = run_datagc("audit", "--data-dir", str(data))
    assert audit.code == 0, audit.stderr
    assert "[disk-audit] dangling references=2 deleted_by_datagc=1 other=1" in audit.stdout
    assert ("dangling feed=posts.json post=typo field=imageUrl url=/images/never-existed.png "
            "path=images/never-existed.png deleted_by_datagc=no") in audit.stdout
    repaired = run_datagc("pressure", "--data-dir", str(data), "--json")  # pressure reads the feed too
    assert repaired.code == 0, repaired.stderr
    assert post(data, "back")["imageUrl"] is None
    assert post(data, "typo")["imageUrl"] == "/images/never-existed.png"  # not datagc's to repair
    assert os.path.exists(data / "images" / "in-progress.png")


#: writes back the copy of the feed it read at start, again and again (temp + rename, ~20 ms apart) until "hold"
#: disappears, then once more: a service instance that never re-reads the feed while datagc works.
STALE_LOOP = r"""
import json, os, sys, time
root = sys.argv[1]
feed, hold = os.path.join(root, "posts.json"), os.path.join(root, "hold")
with open(feed, encoding="utf-8") as handle:
    old = json.load(handle)
def write(n):
    temp = f"{feed}.tmp.{time.time_ns() // 1000000}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(old + [{"id": "stale", "text": f"written from the old copy {n}"}], indent=2))
    os.rename(temp, feed)
open(os.path.join(root, "ready"), "w").close()
n = 0
while os.path.exists(hold):
    n += 1
    write(n)
    time.sleep(0.02)
write(n + 1)
"""


def test_a_service_writing_a_stale_copy_throughout_a_pressure_pass_is_repaired_by_one_more_pass(
    tmp_path: Path,
) -> None:
    """The stale copy lands before, between and after pressure's nulls and its final re-check; once the service
    stops, one more pass (below every threshold: nothing evicted) leaves no dangling reference."""
    data = tmp_path / "data"
    now = time.time()
    for index in range(200):
        write_file(data / "images" / f"old-{index:03d}.png", 4096, 30, now=now)
    document = [{"id": f"p{index}", "imageUrl": f"/images/old-{index:03d}.png"} for index in range(0, 200, 10)]
    (data / "posts.json").write_text(node_json(document))
    (data / "hold").touch()
    rewriter = subprocess.Popen([sys.executable, "-c", STALE_LOOP, str(data)])
    deadline = time.monotonic() + 30
    while not (data / "ready").exists():
        assert rewriter.poll() is None and time.monotonic() < deadline, "the rewriter did not start"
        time.sleep(0.01)
    first = run_datagc("pressure", "--data-dir", str(data), "--threshold", "0.000001", "--target", "0.000001",
                       "--min-age", "0s", "--json")
    (data / "hold").unlink()
    assert rewriter.wait(timeout=60) == 0
    (data / "ready").unlink()
    assert first.code & Exit.PRESSURE_DELETED, first.stderr
    assert not list((data / "images").glob("*.png"))
    assert post(data, "p0")["imageUrl"] == "/images/old-000.png"  # the stale copy put every reference back

    second = run_datagc("pressure", "--data-dir", str(data), "--threshold", "0.99", "--json")
    assert second.code == 0, second.stderr
    assert {(a["post"], a["reason"]) for a in second.json()["steps"][0]["actions"]} == {
        (entry["id"], "repair") for entry in document}
    assert [entry["imageUrl"] for entry in posts(data) if entry["id"] != "stale"] == [None] * len(document)
    assert post(data, "stale")["text"].startswith("written from the old copy")  # the service's own post stays
    assert run_datagc("audit", "--data-dir", str(data), "--json").json()["dangling_references"] == []


def test_audit_says_why_its_dangling_check_is_incomplete(tmp_path: Path) -> None:
    """A feed that doesn't parse, a journal with a corrupt line, a state dir that can't be read: each is told
    once, in the same words in the plain lines and the JSON, and the state dir fails the audit (bit 1)."""
    data = tmp_path / "data"
    write_file(data / "images" / "here.png", 100, 0)
    (data / "posts.json").write_text(json.dumps([{"id": "p1", "imageUrl": "/images/gone.png"}]))
    (data / "broken.json").write_text("[{")
    (data / ".datagc").mkdir()
    (data / ".datagc" / "journal.jsonl").write_text("{not json\n")
    config = tmp_path / "datagc.toml"
    config.write_text('[feed]\nfiles = ["posts.json", "broken.json"]\n')
    args = ("--data-dir", str(data), "--config", str(config))
    report = run_datagc("audit", *args, "--json")
    assert report.code == 0, report.stderr
    answer = report.json()
    assert answer["notes"][-2:] == [  # after the notes about the disk and /proc
        "feed broken.json is not JSON (Expecting property name enclosed in double quotes at line 1 column 3); "
        "its references were not checked for missing files",
        "journal: 1 corrupt line(s) skipped (line 1 first)",
    ]
    assert [(d["path"], d["deleted_by_datagc"]) for d in answer["dangling_references"]] == [("images/gone.png", False)]
    plain = run_datagc("audit", *args)
    assert f"[disk-audit] note: {answer['notes'][-1]}" in plain.stdout.splitlines()

    (data / ".datagc" / "journal.jsonl").unlink()
    (data / ".datagc").rmdir()
    (data / ".datagc").write_text("not a directory")
    failed = run_datagc("audit", *args, "--json")
    assert failed.code & Exit.STEP_FAILED
    [error] = failed.json()["errors"]
    assert error.endswith("; dangling references can't be told apart by who deleted the file")
    assert failed.stderr.splitlines() == [f"datagc: audit: {error}"]
