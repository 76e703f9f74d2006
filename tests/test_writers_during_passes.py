"""The service keeps writing while datagc runs: no event line lost or doubled, no post lost.

Two real processes write as the service does — one appends numbered events
to ``events.jsonl`` (open, append one line, close: Node's ``fs.appendFile``),
the other adds posts to the feed (read, append a post whose fresh media file
is already old enough to sweep, write a temp, rename) — while ``datagc
run-all`` runs again and again with a rotation trigger small enough that it
rotates every time and a sweep that rewrites the feed every time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from datagc.demo import build_sample
from tests.helpers import run_datagc
from tests.proof import datagc_temps, deleted

pytestmark = pytest.mark.e2e

RUNS = 8
MAX_BYTES = 32 * 1024
KEEP_LINES = 200
KEEP_BYTES = 16 * 1024
URL_FIELDS = ("imageUrl", "videoUrl")

#: the service's event writer: one open-append-close per line, each line numbered
LOG_WRITER = r"""
import os, sys
path, stop = sys.argv[1:3]
seq = 0
while not os.path.exists(stop):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'{"type":"metric","name":"writer","seq":%d,"pad":"%s"}\n' % (seq, b"x" * 40))
    os.close(fd)
    seq += 1
print(seq)
"""

#: the service's feed writer: a new media file (old enough for the sweep), then read, append a post, temp + rename.
#: Ten posts a second, far past the service's pace (it posts minutes apart). A writer that rewrites the feed again
#: before each of datagc's attempts can finish (read, null, write, fsync) makes datagc give up after
#: feed.RETRY_SECONDS (the step fails and the feed is left as the service wrote it): on a loaded machine an attempt
#: takes over 100 ms, so a faster writer would test the machine's load, not datagc.
FEED_WRITER = r"""
import json, os, sys, time
root, stop = sys.argv[1:3]
count = 0
while not os.path.exists(stop):
    media = os.path.join(root, "images", f"w{count}.png")
    with open(media, "wb") as handle:
        handle.write(b"png" * 100)
    old = time.time() - 8 * 86400
    os.utime(media, (old, old))
    with open(os.path.join(root, "posts.json"), encoding="utf-8") as handle:
        posts = json.load(handle)
    posts.append({"id": f"w{count}", "text": f"post {count}", "imageUrl": f"/images/w{count}.png"})
    temp = os.path.join(root, f"posts.json.tmp.{int(time.time() * 1000)}")
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(posts, handle, indent=2)
    os.rename(temp, os.path.join(root, "posts.json"))
    count += 1
    time.sleep(0.1)
print(count)
"""


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> int:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"writer failed: {err}"
    return int(out)


def wait_for_growth(log: Path, size: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while log.stat().st_size <= size:
        assert time.monotonic() < deadline, f"the event writer did not grow {log} past {size} bytes"
        time.sleep(0.01)


def check_log(log: Path, written: int) -> None:
    """Every line complete and unique; every writer line from the oldest kept to the last one present."""
    seqs = []
    for line in log.read_bytes().splitlines(keepends=True):
        assert line.endswith(b"\n"), "a partial line"
        event = orjson.loads(line)  # every line is a complete event
        if event.get("name") == "writer":
            seqs.append(event["seq"])
    assert len(seqs) == len(set(seqs)), "an event line was written twice"
    assert max(seqs) == written - 1, "the newest events are missing"
    # A line the writer opened the old log for just before a rename is carried over after lines it
    # appended to the new log: at the newest cut, one line may sit on the dropped side out of order.
    missing = set(range(min(seqs), written)) - set(seqs)
    assert all(seq <= min(seqs) + 1 for seq in missing), f"events lost after the last cut: {sorted(missing)[:20]}"


def check_feed(root: Path, original: list[dict[str, Any]], added: int, gone: set[str]) -> None:
    """Every post survives every rewrite, unchanged but for nulls, and only where datagc deleted the file."""
    written = original + [{"id": f"w{i}", "text": f"post {i}", "imageUrl": f"/images/w{i}.png"} for i in range(added)]
    feed = orjson.loads((root / "posts.json").read_bytes())
    assert [post["id"] for post in feed] == [post["id"] for post in written], "a post was lost or doubled"
    for post, before in zip(feed, written, strict=True):
        for field, value in before.items():
            if post[field] != value:
                assert field in URL_FIELDS and post[field] is None, f"{post['id']} {field} changed"
                assert value[1:] in gone, f"{post['id']} {field} was nulled but {value} was never deleted"
        assert post.keys() == before.keys()


def test_writers_during_repeated_run_all(tmp_path: Path) -> None:
    root = tmp_path / "data"
    build_sample(root, time.time())
    original = orjson.loads((root / "posts.json").read_bytes())
    log, stop = root / "events.jsonl", tmp_path / "stop"
    writers = [start(LOG_WRITER, str(log), str(stop)), start(FEED_WRITER, str(root), str(stop))]
    reports = []
    try:
        for _ in range(RUNS):
            wait_for_growth(log, MAX_BYTES)
            result = run_datagc("run-all", "--cdn", "--json", "--data-dir", str(root), "--max-bytes", str(MAX_BYTES),
                                "--keep-lines", str(KEEP_LINES), "--keep-bytes", str(KEEP_BYTES))
            assert result.code & 1 == 0, result.stdout + result.stderr
            report = result.json()
            assert [a["path"] for a in report["steps"][0]["actions"]] == ["events.jsonl"], "no rotation this run"
            reports.append(report)
    finally:
        stop.touch()
        written, added = (finish(writer) for writer in writers)

    assert datagc_temps(root) == []
    check_log(log, written)
    gone = set().union(*(deleted(report) for report in reports))
    assert sum(path.startswith("images/w") for path in gone) >= RUNS, "the sweeps did not rewrite the feed each time"
    check_feed(root, original, added, gone)
