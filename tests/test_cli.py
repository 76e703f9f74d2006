"""The command-line contract (SPEC §2, §6): commands, options after the subcommand, help, config, streams."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from datagc import __version__
from datagc.cli import app
from tests.helpers import DATAGC, clean_env, run_datagc

COMMANDS = ["audit", "rotate", "sweep", "pressure", "run-all", "watch", "config"]
#: the options each command takes besides its own keys' flags (audit only reads; config only shows)
COMMON = {
    "audit": ("--data-dir", "--config", "--json", "--quiet"),
    "config": ("--data-dir", "--config", "--json"),
}


def test_version() -> None:
    result = run_datagc("--version")
    assert result.code == 0
    assert result.stdout == f"datagc {__version__}\n"


def test_help_lists_every_command_and_the_exit_bits() -> None:
    result = run_datagc("--help")
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "75" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_the_common_options(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env=clean_env({"COLUMNS": "200"}))
    assert result.exit_code == 0
    assert "Example: datagc" in result.stdout
    common = ("--data-dir", "--config", "--dry-run", "--json", "--quiet", "--verbose", "--wait")
    for option in COMMON.get(command, common):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("rotate", ["--max-bytes", "--keep-lines", "--keep-bytes"]),
        ("sweep", ["--max-age", "--cdn", "--no-cdn", "--published-grace", "--cdn-verify"]),
        ("pressure", ["--threshold", "--target", "--min-age"]),
        ("audit", ["--top"]),
        ("watch", ["--interval", "--initial-delay"]),
    ],
)
def test_pass_flags(command: str, flags: list[str]) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env=clean_env({"COLUMNS": "200"}))
    for flag in flags:
        assert flag in result.stdout


def test_config_shows_each_value_and_its_source(tmp_path: Path) -> None:
    config = tmp_path / "datagc.toml"
    config.write_text('[sweep]\nmax_age = "3d"\n')
    result = run_datagc(
        "config", "--config", str(config),
        env={"GC_MEDIA_PRESSURE_AGE_MS": "7200000", "DATAGC_ROTATE_MAX_BYTES": "10MiB"},
    )
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert "rotate.max_bytes = 10MiB  # environment DATAGC_ROTATE_MAX_BYTES" in lines
    assert "rotate.keep_bytes = 5MiB  # default (half of rotate.max_bytes)" in lines
    assert f"sweep.max_age = 3d  # file {config}" in lines
    assert "pressure.min_age = 2h  # environment GC_MEDIA_PRESSURE_AGE_MS" in lines
    assert "pressure.threshold = 0.7  # default" in lines


def test_config_json() -> None:
    result = run_datagc("config", "--json", env={"DATAGC_CDN_ENABLED": "no"})
    assert result.code == 0
    document = result.json()
    assert document["cdn.enabled"] == {"value": "false", "source": "environment DATAGC_CDN_ENABLED"}
    assert document["rotate.logs"] == {"value": "events.jsonl", "source": "default"}


def test_json_mode_prints_only_json_on_stdout(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--data-dir", str(tmp_path), "--json")
    assert result.code == 0, result.stderr
    document = orjson.loads(result.stdout)
    assert set(document) >= {
        "version",
        "command",
        "data_dir",
        "dry_run",
        "exit_code",
        "reclaimed_bytes",
        "disk_before",
        "disk_after",
        "steps",
    }
    assert [step["name"] for step in document["steps"]] == ["rotate", "sweep", "pressure"]
    for step in document["steps"]:
        assert set(step) >= {"name", "status", "reclaimed_bytes", "error", "actions"}


def test_plain_lines_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--data-dir", str(tmp_path))
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("[janitor] run-all: reclaimed 0B; disk ")
    assert all(line.startswith("[janitor] ") for line in result.stdout.splitlines())


def test_quiet_prints_nothing_on_success(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--data-dir", str(tmp_path), "--quiet")
    assert (result.code, result.stdout, result.stderr) == (0, "", "")


def test_data_dir_from_environment(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--json", env={"DATAGC_DATA_DIR": str(tmp_path)})
    assert result.json()["data_dir"] == str(tmp_path)


def test_options_go_after_the_subcommand(tmp_path: Path) -> None:
    result = run_datagc("--json", "audit", "--data-dir", str(tmp_path))
    assert result.code == 2


def test_no_traceback_for_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[rotate\n")
    process = subprocess.run(
        [DATAGC, "rotate", "--config", str(config)], capture_output=True, text=True, env=clean_env(), check=False
    )
    assert process.returncode == 2
    assert process.stderr.startswith(f"datagc: config file {config} is not valid TOML")
    assert "Traceback" not in process.stderr
