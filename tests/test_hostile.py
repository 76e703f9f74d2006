"""Hostile names, feeds and settings (SPEC §7 rules 16-18), each through the real CLI.

Every call is bounded by a timeout: a hang is a failure, not a stuck suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc.config.load import FlagValue, load_config
from datagc.errors import ConfigError
from datagc.exitcodes import Exit
from datagc.text import escape
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.hostile_support import (
    answer_with,
    forged_lines,
    http_origin,
    run_in_pty,
    tree,
    unescape,
    write_media,
)

TIMEOUT = 60
HOSTILE_NAMES = [
    b"a\n[janitor] FORGED swept everything.png",
    b"b\r[disk-audit] FORGED total=0.png",
    b"c\x1b[2J\x1b]0;PWNED\x07.png",
    b"d\xff\xfe not utf-8.png",
    b"e\xe2\x80\xa8[janitor] FORGED after U+2028.png",
    b"f\\n literal backslash-n.png",
    b"g[/bold] [red]markup[/red].png",
]


# --- the escaping rule --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain é 日本.png", "plain é 日本.png"),
        ("a\nb", "a\\nb"),
        ("a\\nb", "a\\\\nb"),
        ("\x1b[31m\x7f\x00", "\\x1b[31m\\x7f\\x00"),
        (os.fsdecode(b"\xff\x80"), "\\xff\\x80"),
        ("\x85\u2028\u202e", "\\u0085\\u2028\\u202e"),
        ("\ud800", "\\ud800"),
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_escape_examples(raw: str, shown: str) -> None:
    assert escape(raw) == shown


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.binary(max_size=40))
@example(b"\xed\xa0\x80")  # a surrogate encoded in UTF-8: not UTF-8, so three bytes
@example(b"\xc2\x85")  # U+0085 (two bytes) is not the byte 0x85
@example(b"\\x85")
def test_escape_is_reversible_and_printable(name: bytes) -> None:
    shown = escape(os.fsdecode(name))
    assert unescape(shown) == name
    assert shown.isprintable()
    shown.encode("utf-8")  # always valid UTF-8


# --- names --------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for name in HOSTILE_NAMES:
        write_media(root, b"images/" + name, age_days=30)
    feed = [{"id": "p\ud800", "imageUrl": "/images/" + os.fsdecode(HOSTILE_NAMES[0])},
            {"id": "q", "imageUrl": "/images/\udcff\ud800.png"}]
    (root / "posts.json").write_text(json.dumps(feed))  # ensure_ascii: lone surrogates as \ud800 escapes
    return root


def test_names_never_forge_a_line_and_json_says_which_bytes(hostile: Path) -> None:
    plain = run_datagc("sweep", "--cdn", "--dry-run", "--data-dir", str(hostile), timeout=TIMEOUT)
    assert plain.code == Exit.SWEPT, plain.stderr
    assert forged_lines(plain.stdout) == [] and "Traceback" not in plain.stderr
    assert all(line.startswith("[janitor] ") for line in plain.stdout.splitlines())
    assert "\x1b" not in plain.stdout and "\x07" not in plain.stdout

    result = run_datagc("sweep", "--cdn", "--dry-run", "--json", "--data-dir", str(hostile), timeout=TIMEOUT)
    document = orjson.loads(result.stdout)  # strict: valid UTF-8, no lone surrogate
    (step,) = document["steps"]
    deleted = {unescape(a["path"]) for a in step["actions"] if a["kind"] == "delete"}
    assert deleted == {b"images/" + name for name in HOSTILE_NAMES}
    nulls = [a for a in step["actions"] if a["kind"] == "feed-null"]
    assert [(a["post"], unescape(a["url"])) for a in nulls] == [("p\\ud800", b"/images/" + HOSTILE_NAMES[0])]
    assert document["exit_code"] == result.code == Exit.SWEPT


def test_a_real_pass_over_hostile_names_deletes_them_and_writes_report_and_metrics(
        hostile: Path, tmp_path: Path) -> None:
    textfile = tmp_path / "datagc.prom"
    log = b"log\xff\n[janitor] FORGED.jsonl"
    with open(os.fsencode(hostile) + b"/" + log, "wb") as handle:
        handle.write(b'{"event": 1}\n' * 200)
    result = run_datagc("run-all", "--cdn", "--json", "--logs", os.fsdecode(log), "--max-bytes", "1000",
                        "--data-dir", str(hostile), "--metrics-textfile", str(textfile), timeout=TIMEOUT)
    assert result.code == Exit.SWEPT | Exit.ROTATED, result.stderr
    assert orjson.loads(result.stdout)["exit_code"] == Exit.SWEPT | Exit.ROTATED
    assert set(tree(hostile)) == {b"posts.json", log, b".datagc/journal.jsonl"}
    journal = [orjson.loads(line) for line in (hostile / ".datagc" / "journal.jsonl").read_bytes().splitlines()]
    assert {entry["kind"] for entry in journal} == {"rotate", "delete", "feed-null"}  # valid JSON, whatever the names
    metrics = textfile.read_text(encoding="utf-8")
    assert "datagc_exit_code 12.0" in metrics and forged_lines(metrics) == []
    assert 'log="log\\\\xff\\\\n[janitor] FORGED.jsonl"' in metrics  # escaped, then the format's own escaping
    assert json.loads((hostile / "posts.json").read_bytes()) == [{"id": "p\ud800", "imageUrl": None},
                                                                 {"id": "q", "imageUrl": "/images/\udcff\ud800.png"}]


def test_terminal_view_escapes_names_and_never_reads_them_as_markup(hostile: Path) -> None:
    for command in (["audit"], ["sweep", "--cdn", "--dry-run"]):
        result = run_in_pty(*command, "--data-dir", str(hostile), timeout=TIMEOUT)
        text = result.output.decode("utf-8")  # strict
        assert result.code in (0, Exit.SWEPT), result.stderr
        assert b"Traceback" not in result.stderr
        assert "PWNED\x07" not in text and "\x1b]0;" not in text and "\x1b[2J" not in text
        assert forged_lines(text) == []
        assert "[/bold] [red]markup[/red]" in text or command != ["audit"]


def test_a_non_utf8_media_dir_that_is_a_symlink_is_noted_safely(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    os.symlink("/etc", os.fsencode(root) + b"/im\xff\n[janitor] FORGED")
    env = {"DATAGC_SWEEP_MEDIA_DIRS": os.fsdecode(b"im\xff\n[janitor] FORGED")}
    for mode in ([], ["--json"]):
        result = subprocess.run([DATAGC, "sweep", "--cdn", "--data-dir", str(root), *mode], capture_output=True,
                                env=clean_env(env), timeout=TIMEOUT, check=False)
        assert b"Traceback" not in result.stderr
        assert forged_lines(result.stdout.decode("utf-8")) == []
        if mode:
            orjson.loads(result.stdout)


def test_watch_survives_a_hostile_pass(hostile: Path) -> None:
    process = subprocess.Popen(
        [DATAGC, "watch", "--cdn", "--dry-run", "--json", "--interval", "200ms", "--initial-delay", "0s",
         "--data-dir", str(hostile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
    )
    try:
        reports = [orjson.loads(process.stdout.readline()) for _ in range(2)]  # type: ignore[union-attr]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [report["exit_code"] for report in reports] == [Exit.SWEPT, Exit.SWEPT]
    assert process.returncode == 0 and b"Traceback" not in stderr


# --- settings -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["--config", "--metrics-textfile"])
def test_a_fifo_where_a_file_is_expected_is_exit_2_without_blocking(tmp_path: Path, where: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "data").mkdir()
    result = run_datagc("run-all", "--data-dir", str(tmp_path / "data"), where, str(tmp_path / "fifo"), timeout=TIMEOUT)
    assert result.code == Exit.USAGE
    assert "is a FIFO; a regular file is expected" in result.stderr and "Traceback" not in result.stderr


def config_error(flags: dict[str, str] | None = None, config_path: Path | None = None) -> str:
    """The configuration error ``load_config`` raises for these flags and file (in-process: fast)."""
    given = {key: FlagValue(f"--{key}", value) for key, value in (flags or {}).items()}
    with pytest.raises(ConfigError) as raised:
        load_config(given, env={}, config_path=str(config_path) if config_path else None)
    return str(raised.value)


@pytest.mark.parametrize("key", ["config", "metrics.textfile"])
@pytest.mark.parametrize("kind", ["directory", "device"])
def test_a_directory_or_device_where_a_file_is_expected_is_refused(tmp_path: Path, key: str, kind: str) -> None:
    path = tmp_path if kind == "directory" else Path("/dev/zero")
    if key == "config":
        message = config_error(config_path=path)
    else:
        message = config_error({"data_dir": str(tmp_path), key: str(path)})
    assert f"is a {kind if kind == 'directory' else 'character device'}; a regular file is expected" in message


def test_a_fifo_put_at_the_metrics_path_while_watch_runs_is_refused_without_blocking(tmp_path: Path) -> None:
    data, textfile, errors = tmp_path / "data", tmp_path / "datagc.prom", tmp_path / "stderr.txt"
    data.mkdir()
    refused = f"metrics file {textfile} not written: it is a FIFO"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [DATAGC, "watch", "--json", "--interval", "300ms", "--initial-delay", "0s", "--data-dir", str(data),
             "--metrics-textfile", str(textfile)],
            stdout=subprocess.PIPE, stderr=stderr, env=clean_env(),
        )
    try:
        process.stdout.readline()  # type: ignore[union-attr]  # a pass's report ends after its metrics are written
        textfile.unlink()
        os.mkfifo(textfile)
        deadline = time.monotonic() + TIMEOUT
        while refused not in errors.read_text() and time.monotonic() < deadline:
            assert process.stdout.readline(), errors.read_text()  # type: ignore[union-attr]  # passes go on
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert refused in errors.read_text()


HUGE = "9" * 400


@pytest.mark.parametrize(("args", "key"), [(["rotate", "--max-bytes", HUGE], "rotate.max_bytes"),
                                           (["rotate", "--wait", HUGE], "--wait")])
def test_numbers_that_overflow_are_configuration_errors(tmp_path: Path, args: list[str], key: str) -> None:
    result = run_datagc(*args, "--data-dir", str(tmp_path), timeout=TIMEOUT)
    assert result.code == Exit.USAGE, result.stdout
    assert key in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [("rotate.keep_lines", HUGE), ("sweep.max_age", HUGE + "d"), ("sweep.max_age", "inf"),
     ("pressure.threshold", "nan"), ("pressure.threshold", "1e999"), ("audit.top", HUGE),
     ("watch.interval", "1e300"), ("rotate.keep_bytes", "1" + "0" * 30 + "GiB")],
)
def test_every_kind_of_overflow_names_the_key(tmp_path: Path, key: str, value: str) -> None:
    assert config_error({"data_dir": str(tmp_path), key: value}).startswith(f"{key} = ")


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[sweep]\nmedia_dirs = ["images", "vi\\u0000deos"]', "sweep.media_dirs"),
        ('[metrics]\ntextfile = "/tmp/m\\u0000.prom"', "metrics.textfile"),
        (f"[rotate]\nmax_bytes = {HUGE}", "rotate.max_bytes"),
        (f"[sweep]\nmax_age = {HUGE}", "sweep.max_age"),
        (f"[watch]\ninterval = 1e{HUGE}", "watch.interval"),
        ('[cdn]\npublic_url = "https://cdn.example.com@evil.example.org"', "cdn.public_url"),
        ('[cdn]\npublic_url = "cdn.example.com"', "cdn.public_url"),
    ],
)
def test_nul_bytes_and_overflow_in_the_config_file_name_the_key_and_file(tmp_path: Path, toml: str,
                                                                         key: str) -> None:
    config = tmp_path / "datagc.toml"
    config.write_text(toml + "\n")
    message = config_error({"data_dir": str(tmp_path)}, config)
    assert message.startswith(f"{key} = ") and f"(from file {config})" in message


def test_a_nul_in_the_config_file_is_exit_2_through_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "datagc.toml"
    config.write_text('data_dir = "/tmp/x\\u0000y"\n')
    result = run_datagc("audit", "--config", str(config), timeout=TIMEOUT)
    assert result.code == Exit.USAGE
    assert f"data_dir = '/tmp/x\\x00y' (from file {config}): must not contain a NUL byte" in result.stderr


@pytest.mark.parametrize("how", ["/usr/", "/etc/../var", "/tmp/.././/home", "/proc", "/srv"])
def test_system_directories_are_refused_however_spelled(how: str) -> None:
    assert "is the system directory" in config_error({"data_dir": how})


@pytest.mark.parametrize(
    ("command", "how"),
    [(["audit"], "/"), (["run-all", "--dry-run"], "/"), (["run-all"], "symlink"), (["sweep", "--cdn"], "dotdot")],
)
def test_root_and_system_directories_are_refused_as_data_dirs(tmp_path: Path, command: list[str], how: str) -> None:
    if how == "symlink":
        (tmp_path / "link").symlink_to("/etc")
        data_dir = str(tmp_path / "link")
    elif how == "dotdot":
        data_dir = str(tmp_path) + "/.." * len(tmp_path.parts)
    else:
        data_dir = how
    result = run_datagc(*command, "--data-dir", data_dir, timeout=TIMEOUT)
    assert result.code == Exit.USAGE
    assert result.stdout == "" and "is the system directory" in result.stderr


# --- the CDN ------------------------------------------------------------------


def cdn_tree(root: Path, url: str) -> None:
    """A fresh (2 h) media file the feed shows by ``url``."""
    write_media(root, b"images/fresh.png", age_days=2 / 24, size=3000)
    (root / "posts.json").write_text(json.dumps([{"id": "p", "imageUrl": url}]))


def test_without_public_url_no_url_is_a_cdn_copy_and_nothing_is_contacted(tmp_path: Path) -> None:
    with http_origin(answer_with(200, 3000)) as other:
        cdn_tree(tmp_path, f"{other.url}/images/fresh.png")
        result = run_datagc("sweep", "--cdn", "--cdn-verify", "--json", "--data-dir", str(tmp_path),
                            timeout=TIMEOUT)
    assert result.code == 0, result.stderr
    assert other.requests == []
    assert (tmp_path / "images" / "fresh.png").exists()
    (step,) = result.json()["steps"]
    assert any("cdn.public_url is not set" in note for note in step["notes"])


@pytest.mark.parametrize("trick", ["other-host", "userinfo", "redirect"])
def test_verify_contacts_only_the_public_url_origin(tmp_path: Path, trick: str) -> None:
    with http_origin(answer_with(200, 3000)) as other:
        redirect = answer_with(301, 0, location=f"{other.url}/images/fresh.png")
        with http_origin(redirect if trick == "redirect" else answer_with(200, 3000)) as cdn:
            url = {"other-host": f"{other.url}/images/fresh.png",
                   "userinfo": f"{cdn.url}@{other.url.removeprefix('http://')}/images/fresh.png",
                   "redirect": f"{cdn.url}/images/fresh.png"}[trick]
            cdn_tree(tmp_path, url)
            result = run_datagc("sweep", "--cdn", "--cdn-verify", "--cdn-public-url", cdn.url, "--json",
                                "--data-dir", str(tmp_path), timeout=TIMEOUT)
    assert result.code == 0, result.stderr
    assert other.requests == [], "a host the configuration did not name was contacted"
    assert (tmp_path / "images" / "fresh.png").exists()
    if trick == "redirect":
        assert cdn.requests == [("HEAD", "/images/fresh.png")]
        (kept,) = result.json()["steps"][0]["kept"]
        assert "redirects are not followed" in kept["why"]


def test_verify_deletes_on_a_matching_200_only(tmp_path: Path) -> None:
    with http_origin(answer_with(200, 3000)) as cdn:
        cdn_tree(tmp_path, f"{cdn.url}/images/fresh.png")
        result = run_datagc("sweep", "--cdn", "--cdn-verify", "--cdn-public-url", cdn.url, "--json",
                            "--data-dir", str(tmp_path), timeout=TIMEOUT)
    assert result.code == Exit.SWEPT, result.stderr
    assert not (tmp_path / "images" / "fresh.png").exists()
    assert cdn.requests == [("HEAD", "/images/fresh.png")]


def test_verify_bounds_the_whole_request_against_a_trickling_server() -> None:
    from datagc import cdn

    def trickle(handler: object, origin: object) -> None:
        wfile = handler.wfile  # type: ignore[attr-defined]
        wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(50):  # one header byte every 0.1 s: each read is quick, the whole is not
            wfile.write(b"X")
            wfile.flush()
            time.sleep(0.1)

    with http_origin(trickle) as server:
        started = time.monotonic()
        verdict = cdn.verify(f"{server.url}/images/a.png", 10, 0.5, server.url)
        took = time.monotonic() - started
    assert not verdict.ok and not verdict.answered
    assert took < 3, took


@pytest.mark.mount
def test_a_bind_mount_of_a_system_directory_is_refused(tmp_path: Path) -> None:
    from tests.mounts import readonly_bind

    with readonly_bind(Path("/etc")) as view:
        result = run_datagc("run-all", "--dry-run", "--data-dir", str(view), timeout=TIMEOUT)
    assert result.code == Exit.USAGE
    assert result.stdout == "" and "is the system directory /etc" in result.stderr
