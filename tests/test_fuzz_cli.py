"""Fuzzing the real CLI with hostile names, feeds and settings (SPEC §7 rules 16-18).

Each example builds a data directory with random names (any bytes but ``/``
and NUL: control characters, invalid UTF-8, forged ``[janitor]`` lines), a
random feed (lone surrogate escapes, URLs naming those files, on the CDN, on
another host, or not JSON at all) and random settings (overflowing numbers,
control characters, odd URLs, a config file with NUL escapes), runs one
command of the installed ``datagc`` in plain, JSON or terminal (pty) mode,
each bounded by a timeout, and checks: no traceback, valid JSON whose exit
code and actions match the exit status and the files that are gone, no line
a name forged, and nothing changed by a dry run or a configuration error.
Derandomized, no example database, the found cases kept as ``@example``s: it
runs the same on every machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datagc.exitcodes import Exit
from tests.helpers import DATAGC, clean_env
from tests.hostile_support import forged_lines, run_in_pty, tree, unescape, write_media

TIMEOUT = 60
RECLAIM_BITS = Exit.STEP_FAILED | Exit.ROTATED | Exit.SWEPT | Exit.PRESSURE_DELETED | Exit.STILL_ABOVE_THRESHOLD
MEDIA_DIRS = (b"images", b"videos")
COMMANDS = (("sweep", "--cdn"), ("run-all", "--cdn"), ("pressure", "--cdn", "--threshold", "0.0001"), ("audit",),
            ("rotate", "--max-bytes", "100"))

NAME_PIECES = st.sampled_from([
    b"a", b".png", b"\n[janitor] FORGED swept", b"\r[disk-audit] FORGED", b"\x1b[2J", b"\x1b]0;PWNED\x07",
    b"\xff", b"\xed\xa0\x80", b"\\", b"\\n", b"\xe2\x80\xa8datagc: FORGED", b"\xc2\x85", b"[/bold]", b" ", b"\t",
    b"\xf0\x9f\x92\xa5", b".tmp.",
])
NAMES = st.lists(st.one_of(NAME_PIECES, st.binary(min_size=1, max_size=3)), min_size=1, max_size=4).map(
    b"".join).filter(lambda name: b"/" not in name and b"\0" not in name and name not in (b".", b".."))
#: text with what JSON can carry and UTF-8 can't: lone surrogates (written as \\ud800 escapes)
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udcff", "\n", "\x1b", "\\", "\u2028"])),
               max_size=8)
SETTING_TEXT = st.text(st.one_of(st.characters(blacklist_characters="\0"), st.sampled_from(["\udcff", "\n"])),
                       max_size=6)
SETTINGS = st.fixed_dictionaries({}, optional={
    "--max-age": st.one_of(st.sampled_from(["7d", "1s", "0", "9" * 400, "inf", "nan", "-1", "1e999", "1h30m"]),
                           SETTING_TEXT),
    "--published-grace": st.sampled_from(["15m", "0s", "9" * 300 + "w"]),
    "--cdn-public-url": st.one_of(st.sampled_from([
        "https://cdn.example.com", "cdn.example.com", "https://cdn.example.com@evil.example.org", "http://[::1",
        "https://cdn.example.com/\n", "ftp://cdn.example.com", "https://cdn.example.com:99999"]), SETTING_TEXT),
    "--media-dirs": st.sampled_from(["images,videos", "images", "../x", "/abs", "images/\x1b"]),
    "--keep-lines": st.sampled_from(["10", "0", "9" * 400, "-5", "1.5"]),
    "--metrics-textfile": st.sampled_from(["@fifo", "@dir", "@file"]),
    "--config": st.sampled_from(['data_dir = "x\\u0000"', '[sweep]\nmedia_dirs = ["images\\u0000"]',
                                 "[rotate]\nkeep_lines = " + "9" * 300, '[cdn]\npublic_url = "\\u001b"',
                                 "not toml ["]),
})


@dataclass
class Case:
    files: list[tuple[bytes, float]]
    feed: bytes
    command: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    mode: str = "plain"


@st.composite
def feeds(draw: st.DrawFn, files: list[tuple[bytes, float]]) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=30))  # not JSON at all
    paths = [os.fsdecode(path) for path, _ in files] or ["images/none.png"]
    url = st.one_of(
        st.sampled_from(paths).map(lambda path: "/" + path),
        st.sampled_from(paths).map(lambda path: "https://cdn.example.com/" + path),
        st.sampled_from(paths).map(lambda path: "https://unrelated.example.org/" + path),
        TEXT, st.none(),
    )
    posts = draw(st.lists(st.fixed_dictionaries({"id": TEXT, "imageUrl": url}), max_size=4))
    return json.dumps(posts).encode()  # ensure_ascii: lone surrogates become \ud800 escapes


@st.composite
def cases(draw: st.DrawFn) -> Case:
    files = draw(st.lists(st.tuples(st.sampled_from(MEDIA_DIRS), NAMES, st.sampled_from([0.01, 2, 30])),
                          max_size=5, unique_by=lambda item: (item[0], item[1])))
    media = [(directory + b"/" + name, age) for directory, name, age in files]
    temps = [(b"posts.json.tmp." + name, age) for _, name, age in files[:1]]
    return Case(
        files=media + temps,
        feed=draw(feeds(media)),
        command=draw(st.sampled_from(COMMANDS)),
        options=draw(st.one_of(st.just({}), SETTINGS)),  # half the examples get past the configuration
        dry_run=draw(st.booleans()),
        mode=draw(st.sampled_from(["plain", "json", "tty"])),
    )


def build(root: Path, case: Case) -> list[str]:
    """The data directory for ``case`` under ``root``, and the command line's arguments."""
    data = root / "data"
    data.mkdir()
    for path, age in case.files:
        write_media(data, path, age)
    (data / "posts.json").write_bytes(case.feed)
    (data / "events.jsonl").write_bytes(b'{"n": 1}\n' * 50)
    args = [*case.command, "--data-dir", str(data)]
    for option, value in case.options.items():
        if option == "--metrics-textfile":
            value = {"@fifo": str(root / "fifo.prom"), "@dir": str(root), "@file": str(root / "m.prom")}[value]
            if not os.path.exists(root / "fifo.prom"):
                os.mkfifo(root / "fifo.prom")
        elif option == "--config":
            (root / "datagc.toml").write_text(value + "\n")
            value = str(root / "datagc.toml")
        if option in ("--max-age", "--published-grace", "--cdn-public-url") and case.command[0] not in (
                "sweep", "run-all", "pressure"):
            continue
        if option in ("--max-age", "--published-grace") and case.command[0] == "pressure":
            continue
        if option == "--keep-lines" and case.command[0] not in ("rotate", "run-all"):
            continue
        if option == "--media-dirs" and case.command[0] in ("audit", "rotate"):
            continue
        if option == "--metrics-textfile" and case.command[0] == "audit":
            continue
        args += [option, value]
    if case.dry_run and case.command[0] != "audit":
        args.append("--dry-run")
    if case.mode == "json":
        args.append("--json")
    return args


def check_json(document: Any, code: int, gone: set[bytes], dry_run: bool) -> None:
    assert document["exit_code"] == code
    if document["command"] == "audit":
        return
    steps = {step["name"]: step for step in document["steps"]}
    deletes = {name: [a for a in step["actions"] if a["kind"] == "delete"] for name, step in steps.items()}
    assert bool(code & Exit.SWEPT) == bool(deletes.get("sweep")), document
    assert bool(code & Exit.PRESSURE_DELETED) == bool(deletes.get("pressure")), document
    assert bool(code & Exit.ROTATED) == any(a["kind"] == "rotate" for s in steps.values() for a in s["actions"])
    assert bool(code & Exit.STEP_FAILED) == any(step["status"] == "error" for step in steps.values()), document
    deleted = {b"data/" + unescape(action["path"]) for actions in deletes.values() for action in actions}
    assert gone == (set() if dry_run else deleted), "the report says exactly which files went"


def run_case(case: Case) -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        args = build(root, case)
        before = tree(root)
        if case.mode == "tty":
            result = run_in_pty(*args, timeout=TIMEOUT)
            code, stdout, stderr = result.code, result.output, result.stderr
        else:
            process = subprocess.run([DATAGC, *args], capture_output=True, env=clean_env(), timeout=TIMEOUT,
                                     check=False)
            code, stdout, stderr = process.returncode, process.stdout, process.stderr
        after = tree(root)
    out, err = stdout.decode("utf-8"), stderr.decode("utf-8")  # strict: always valid UTF-8
    assert "Traceback" not in err + out and "internal error" not in err, err
    assert forged_lines(out) == [] and forged_lines(err) == [], out + err
    assert "PWNED\x07" not in out + err and "\x1b]0;" not in out + err
    if code == Exit.USAGE:
        assert after == before and out == "", "a configuration error changes nothing"
        return
    assert code & ~RECLAIM_BITS == 0, (code, err)
    gone = {path for path in before if path not in after and path.startswith(b"data/")}
    if case.dry_run:
        assert after == before
    assert set(after) - set(before) <= {b"m.prom", b"data/.datagc/journal.jsonl"}, \
        "nothing appears but the metrics file and datagc's journal (SPEC §9)"
    if case.mode == "json":
        check_json(orjson.loads(stdout), code, gone, case.dry_run)
    elif case.mode == "plain":
        assert all(line.startswith(("[janitor] ", "[disk-audit] ")) for line in out.splitlines()), out


@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
@example(Case([(b"images/a\n[janitor] FORGED swept x", 30), (b"images/\xff\x1b]0;PWNED\x07", 30)],
              json.dumps([{"id": "\ud800", "imageUrl": "/images/\udcff\x1b]0;PWNED\x07"}]).encode(),
              ("run-all", "--cdn"), {"--metrics-textfile": "@file"}, mode="json"))
@example(Case([(b"images/\r[disk-audit] FORGED", 30)], b'[{"id": "\\udcff", "imageUrl": "/images/\\r"}]',
              ("audit",), mode="plain"))
@example(Case([(b"videos/[/bold]\xe2\x80\xa8datagc: FORGED", 30)], b"[]", ("sweep", "--cdn"), mode="tty"))
@example(Case([], b"[]", ("sweep", "--cdn"), {"--metrics-textfile": "@fifo"}, mode="plain"))
@example(Case([(b"images/x", 30)], b"[]", ("run-all", "--cdn"), {"--max-age": "9" * 400}, mode="json"))
@example(Case([(b"images/x", 0.01)], b'[{"id": "p", "imageUrl": "https://unrelated.example.org/images/x"}]',
              ("sweep", "--cdn"), mode="json"))
def test_the_cli_survives_hostile_names_feeds_and_settings(case: Case) -> None:
    run_case(case)
