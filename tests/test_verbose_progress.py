"""``-v`` lists what was kept and why (plain, terminal, JSON), bounded; long walks show their progress on a
terminal (stderr), counted across the split walk's workers, and nothing anywhere else."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc.keptlist import LISTED, KeptList
from datagc.model import Note
from tests.helpers import run_datagc
from tests.terminal import run_on_terminal

DAY = 86400
SPLIT = {"DATAGC_PARALLEL_THRESHOLD": "0", "DATAGC_WALK_WORKERS": "3"}
SERIAL = {"DATAGC_PARALLEL_THRESHOLD": "1000000000"}


def write(path: Path, age: float, size: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age  # ages as of now: the test runs long after this module was collected
    os.utime(path, (when, when))


def feed(root: Path, *urls: str) -> None:
    posts = [{"id": f"p{number}", "imageUrl": url} for number, url in enumerate(urls, start=1)]
    (root / "posts.json").write_bytes(orjson.dumps(posts))


def tree(root: Path) -> Path:
    """Old and young media, a young and an old temp, a young published copy, a protected and an empty file."""
    write(root / "images/old.png", 10 * DAY)
    write(root / "images/young.png", 2 * DAY)
    write(root / "videos/recent.mp4", 120)
    write(root / "images/cache-thumb.png", 3 * DAY)  # protect.patterns' cache-*
    write(root / "images/empty.png", 3 * DAY, size=0)
    write(root / "images/on-cdn.png", 300)  # younger than published_grace (15m)
    write(root / "posts.json.tmp.1", 3600)
    write(root / "posts.json.tmp.2", 3 * DAY)
    feed(root, "https://cdn.example.com/images/on-cdn.png", "/images/young.png")
    return root


def kept_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("[janitor] kept ", "kept "))]


CDN_ENV = {"DATAGC_CDN_PUBLIC_URL": "https://cdn.example.com"}


@pytest.mark.parametrize("command", ["sweep", "run-all"])
def test_verbose_says_what_was_kept_and_why(tmp_path: Path, command: str) -> None:
    root = tree(tmp_path / "data")
    args = (command, "--data-dir", str(root), "--cdn", "--dry-run")
    plain, verbose = run_datagc(*args, env=CDN_ENV), run_datagc(*args, "-v", env=CDN_ENV)
    assert plain.code == verbose.code == 8, plain.stdout + plain.stderr
    assert [line for line in kept_lines(plain.stdout) if "younger than" in line] == []
    expected = {
        "images/young.png": r"media, 2\.0d old: younger than sweep\.max_age \(7d\)",
        "videos/recent.mp4": r"media, [23]m old: younger than sweep\.max_age \(7d\)",
        "images/on-cdn.png": r"on the CDN, [56]m old: younger than sweep\.published_grace \(15m\)",
        "posts.json.tmp.1": r"temp file, 1\.0h old: younger than sweep\.temp_max_age \(1d\)",
    }
    for path, why in expected.items():
        assert re.search(rf"^\[janitor\] kept {re.escape(path)}: {why}$", verbose.stdout, re.M), verbose.stdout
    document = run_datagc(*args, "-v", "--json", env=CDN_ENV).json()
    sweep = next(step for step in document["steps"] if step["name"] == "sweep")
    kept = {entry["path"]: entry["why"] for entry in sweep["kept"]}
    assert all(re.fullmatch(why, kept[path]) for path, why in expected.items()), kept
    assert sweep["kept_not_listed"] == {}
    quiet_document = run_datagc(*args, "--json", env=CDN_ENV).json()
    quiet_sweep = next(step for step in quiet_document["steps"] if step["name"] == "sweep")
    assert "kept_not_listed" not in quiet_sweep and not set(expected) & {e["path"] for e in quiet_sweep["kept"]}
    if command != "sweep":
        return  # the terminal view is the same code for every command
    screen = run_on_terminal(*args, "-v", columns=160, env=CDN_ENV)
    for path, why in expected.items():
        assert re.search(rf"kept {re.escape(path)}: {why}", screen.text), screen.text
    assert not [line for line in kept_lines(run_on_terminal(*args, columns=160, env=CDN_ENV).text)
                if "younger than" in line]


def test_verbose_pressure_says_why_each_file_stayed(tmp_path: Path) -> None:
    root = tree(tmp_path / "data")
    for number in range(5):
        write(root / f"images/spare-{number}.png", (4 + number) * DAY, size=8192)
    # a budget that one eviction brings back to its target: the other eligible files are not needed
    args = ("pressure", "--data-dir", str(root), "--budget", "48KiB", "--threshold", "90%", "--target", "80%",
            "--dry-run", "-v", "--json")
    for env in (SERIAL, SPLIT):
        document = run_datagc(*args, env=env).json()
        step = document["steps"][0]
        victims = [action["path"] for action in step["actions"] if action["kind"] == "delete"]
        kept = {entry["path"]: entry["why"] for entry in step["kept"]}
        assert victims and "images/cache-thumb.png" not in victims, step
        assert kept["images/cache-thumb.png"] == "protect.patterns ('cache-*') protects it: never evicted"
        assert re.fullmatch(r"media, [23]m old: younger than pressure\.min_age \(1d\)", kept["videos/recent.mp4"])
        not_needed = {path for path, why in kept.items() if "not needed" in why}
        media = {f"images/spare-{n}.png" for n in range(5)} | {"images/old.png", "images/young.png"}
        assert not_needed and not_needed == media - set(victims), kept
        assert all(re.fullmatch(r"(unreferenced|referenced by the feed), \d\.\dd old: not needed, the files before "
                                r"it in eviction order free enough", kept[path]) for path in not_needed)
        assert kept["images/empty.png"] == "has no allocated blocks: evicting it would free no byte"
        assert step["kept_not_listed"] == {}


@pytest.mark.parametrize("env", [SERIAL, SPLIT], ids=["serial", "split"])
def test_a_million_kept_files_are_counted_not_listed(tmp_path: Path, env: dict[str, str]) -> None:
    """The list is bounded (the first LISTED by path, the same split or not); the rest are counted and said."""
    root = tmp_path / "data"
    young = [f"images/bulk-{number % 7}/{number:05d}.png" for number in range(LISTED + 700)]
    for path in young:
        write(root / path, 3600, size=1)
    write(root / "images/old.png", 10 * DAY)
    feed(root)
    args = ("sweep", "--data-dir", str(root), "--cdn", "--dry-run", "-v")
    document = run_datagc(*args, "--json", env=env).json()
    step = document["steps"][0]
    assert [entry["path"] for entry in step["kept"]] == sorted(young)[:LISTED]
    assert step["kept_not_listed"] == {"too_young": 700}
    plain = run_datagc(*args, env=env)
    assert len(kept_lines(plain.stdout)) == LISTED
    assert (f"[janitor] sweep: kept 700 more files, not listed (700 too young); the first {LISTED} by path are"
            in plain.stdout.splitlines())


# --- progress -----------------------------------------------------------------


class HeldCdn(BaseHTTPRequestHandler):
    """Answers a HEAD (200, the length asked for in the path) only once the test lets it: the pass waits in
    its CDN check, after its walk, while the test looks at the terminal."""

    release = threading.Event()

    def do_HEAD(self) -> None:
        self.release.wait(60)
        self.send_response(200)
        self.send_header("Content-Length", self.path.rsplit("-", 1)[-1].removesuffix(".png"))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def held_cdn() -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()
    handler = type("Held", (HeldCdn,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", release
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def bulk(root: Path, count: int, age: float) -> None:
    directory = root / "images" / "bulk"
    directory.mkdir(parents=True)
    when = time.time() - age
    for number in range(count):
        path = directory / f"{number}.png"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x")
        os.close(fd)
        os.utime(path, (when, when))


def published_behind(server: str, root: Path, files: int, size: int = 50,
                     env: dict[str, str] = SPLIT) -> dict[str, str]:
    """``files`` old files, and ``images/pub-<size>.png`` published (old enough to be checked on the held CDN
    ``server``, which answers once released): a sweep of ``root`` waits on the CDN. Its settings, with ``env``."""
    bulk(root, files, 3 * DAY)
    write(root / f"images/pub-{size}.png", 2 * DAY, size=size)
    feed(root, f"{server}/images/pub-{size}.png")
    return {"DATAGC_CDN_PUBLIC_URL": server, "DATAGC_CDN_VERIFY": "true", "DATAGC_SWEEP_PUBLISHED_GRACE": "1h", **env}


def regular_files(root: Path, under: str = "") -> int:
    return sum(len(files) for _, _, files in os.walk(root / under))


@pytest.mark.parametrize(("command", "env"), [("sweep", SERIAL), ("sweep", SPLIT), ("pressure", SPLIT),
                                              ("run-all", SPLIT)], ids=["sweep-serial", "sweep-split",
                                                                        "pressure-split", "run-all-split"])
def test_a_long_pass_shows_its_walk_on_the_terminal(tmp_path: Path, held_cdn: tuple[str, threading.Event],
                                                    command: str, env: dict[str, str]) -> None:
    server, release = held_cdn
    root = tmp_path / "data"
    settings = {**published_behind(server, root, 1500, size=123, env=env), "DATAGC_PRESSURE_BUDGET": "64KiB",
                "DATAGC_PRESSURE_MIN_AGE": "1h"}
    step = "pressure" if command == "pressure" else "sweep"  # run-all: its first walk
    walked = regular_files(root, "images") if step == "sweep" else regular_files(root)
    shown = f"{step}: {walked:,} files walked"
    seen = threading.Event()

    def on_screen(text: str) -> None:
        if shown in text:
            seen.set()
            release.set()  # the pass may go on: its CDN check is answered

    args = (command, "--data-dir", str(root), "--cdn", "--dry-run")
    screen = run_on_terminal(*args, env=settings, columns=120, on_screen=on_screen)
    assert seen.is_set(), screen.text
    counts = [int(n.replace(",", "")) for n in re.findall(rf"{step}: ([\d,]+) files walked", screen.text)]
    assert counts and max(counts) == walked, screen.text  # every worker's files, none twice
    assert screen.code & 8 or screen.code & 16, screen.text


def test_progress_goes_to_stderr_only_on_a_terminal(tmp_path: Path, held_cdn: tuple[str, threading.Event]) -> None:
    """stdout elsewhere (a file): the file gets what it would get anyway, the terminal the progress; stderr
    elsewhere or -q: not a byte more."""
    server, release = held_cdn
    root = tmp_path / "data"
    settings = published_behind(server, root, 2000)
    args = ("sweep", "--data-dir", str(root), "--cdn", "--dry-run")
    release.set()
    piped = run_datagc(*args, env=settings)
    assert piped.stderr == "" and "files walked" not in piped.stdout
    release.clear()
    out = tmp_path / "stdout"

    def on_screen(text: str) -> None:
        if "sweep: 2,001 files walked" in text:
            release.set()

    screen = run_on_terminal(*args, "--json", env=settings, stdout=out, on_screen=on_screen)
    assert release.is_set() and "sweep: 2,001 files walked" in screen.text
    document = orjson.loads(out.read_bytes())  # stdout holds the JSON and nothing else
    assert document["steps"][0]["scanned_files"] == 2001
    quiet = run_on_terminal(*args, "-q", env=settings, on_screen=on_screen)
    assert quiet.text.strip() == "" and quiet.code == 8


def test_the_progress_line_is_gone_before_the_report_is_written_to_the_same_terminal(
        tmp_path: Path, held_cdn: tuple[str, threading.Event]) -> None:
    """The report is written as the pass runs (``render.stream``): with stdout on the terminal too (``--json``),
    the step's line is erased when its walk and CDN check end, before its first action is written."""
    server, release = held_cdn
    root = tmp_path / "data"
    settings = published_behind(server, root, 1500)

    def on_screen(text: str) -> None:
        if "sweep: 1,501 files walked" in text:
            release.set()

    screen = run_on_terminal("sweep", "--data-dir", str(root), "--cdn", "--dry-run", "--json", env=settings,
                             columns=120, on_screen=on_screen)
    assert release.is_set() and screen.code == 8, screen.text
    report = screen.raw[screen.raw.index("{"):]
    assert "files walked" not in report and "\x1b" not in report, report  # no redraw nor erasure in it
    document = orjson.loads(report.replace("\r\n", "\n"))
    assert [action["path"] for action in document["steps"][0]["actions"]] == ["images/pub-50.png"], document


@settings(max_examples=200)
@given(paths=st.sets(st.text("ab/", min_size=1, max_size=6), max_size=60), shares=st.integers(1, 4),
       limit=st.integers(1, 8), seed=st.randoms(use_true_random=False))
@example(paths={"a", "b", "aa"}, shares=2, limit=1, seed=random.Random(0))
@example(paths=set(), shares=3, limit=2, seed=random.Random(0))
def test_a_kept_list_split_across_workers_is_the_same_list(paths: set[str], shares: int, limit: int,
                                                           seed: random.Random) -> None:
    """Each worker's own bounded list, merged, lists what one list of everything would, and counts the rest."""
    entries = [(path, number, number % 3) for number, path in enumerate(sorted(paths))]
    seed.shuffle(entries)
    whole, parts = KeptList(limit), [KeptList(limit) for _ in range(shares)]
    for number, (path, mtime_ns, code) in enumerate(entries):
        whole.add(path, mtime_ns, code)
        parts[number % shares].add(path, mtime_ns, code)
    merged = KeptList(limit)
    for part in parts:
        merged.merge(part)

    def why(path: str, mtime_ns: int, code: int) -> Note:
        return Note("n", {"m": mtime_ns, "c": code})

    listed, counts = merged.settle(why, str)
    assert [kept.path for kept in listed] == sorted(paths)[:limit]
    assert listed == whole.settle(why, str)[0]
    assert sum(counts.values()) == max(0, len(paths) - limit)
    assert counts == whole.settle(why, str)[1]
