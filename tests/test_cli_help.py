"""What a new operator meets first: help that answers, options where they belong, messages that say enough."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from datagc.config.explain import display_value
from datagc.config.keys import KEYS_BY_NAME
from datagc.options import AUDIT, COMMON, RUN_ALL, WATCH
from tests.helpers import DATAGC, clean_env, holding_lock, run_datagc

CHANGING = ["rotate", "sweep", "pressure", "run-all", "watch"]


def help_text(*args: str) -> str:
    result = run_datagc(*args, "--help", env={"COLUMNS": "250"})
    assert result.code == 0, result.stderr
    return result.stdout


def options_of(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))


@pytest.mark.parametrize("command", ["audit", *CHANGING, "config"])
def test_help_has_no_stray_spaces_and_shows_env_and_defaults(command: str) -> None:
    text = help_text(command)
    assert not re.search(r"\w \.(\s|$)", text), text  # "The data directory ." came from eaten [markup]
    assert "[env: DATAGC_DATA_DIR] [default: ./.data]" in text
    assert "[env: DATAGC_CONFIG]" in text


def test_each_options_env_names_and_default_are_the_configurations() -> None:
    """The help is written in options.py (importing config.KEYS would cost every start-up): held equal here."""
    options = {opt.param: opt for group in (COMMON, RUN_ALL, AUDIT, WATCH) for opt in group}
    checked = 0
    for opt in options.values():
        if opt.key is None:
            continue
        key = KEYS_BY_NAME[opt.key]
        help = opt.info.help
        assert (f"\\[env: {', '.join(key.env)}]" in help) == bool(key.env), (opt.key, help)
        if key.default not in (None, ""):
            default = opt.flag_given(False).lstrip("-") if key.default is False else display_value(key, key.default)
            assert f"\\[default: {default}" in help, (opt.key, help)
        checked += 1
    assert checked >= 19  # every option that sets a key


def test_config_help_lists_only_its_own_options() -> None:
    assert options_of(help_text("config")) == {"--data-dir", "--config", "--json", "--help"}


def test_audit_takes_no_option_it_would_ignore(tmp_path: Path) -> None:
    assert not options_of(help_text("audit")) & {"--dry-run", "--wait", "--metrics-textfile", "--verbose"}
    for option in (["--dry-run"], ["-n"], ["--wait", "5s"], ["--metrics-textfile", str(tmp_path / "m.prom")]):
        result = run_datagc("audit", "--data-dir", str(tmp_path), *option)
        assert result.code == 2, option
        assert "No such option" in result.stderr
    assert not (tmp_path / "m.prom").exists()


@pytest.mark.parametrize(("args", "hint"), [
    (["--data-dir", "X", "audit"], "Options go after the command: datagc audit --data-dir"),
    (["--json", "run-all"], "Options go after the command: datagc run-all --json"),
    (["--dry-run"], "Options go after the command: datagc COMMAND --dry-run"),
])
def test_an_option_before_the_command_says_where_options_go(args: list[str], hint: str) -> None:
    result = run_datagc(*args, env={"COLUMNS": "250"})
    assert result.code == 2
    assert hint in result.stderr


def test_an_option_no_command_has_is_only_unknown() -> None:
    result = run_datagc("--no-such-thing", "audit")
    assert result.code == 2
    assert "No such option: --no-such-thing" in result.stderr and "go after" not in result.stderr


def test_quiet_says_nothing_when_the_lock_is_held(tmp_path: Path) -> None:
    with holding_lock(tmp_path):
        quiet = run_datagc("sweep", "--data-dir", str(tmp_path), "-q")
        loud = run_datagc("sweep", "--data-dir", str(tmp_path))
    assert (quiet.code, quiet.stdout, quiet.stderr) == (75, "", "")
    assert loud.code == 75 and "another datagc is working on" in loud.stderr
    assert "--wait DURATION" in loud.stderr


def test_wait_takes_a_duration(tmp_path: Path) -> None:
    assert "--wait" in help_text("sweep") and re.search(r"--wait\s+DURATION", help_text("sweep"))
    with holding_lock(tmp_path):
        started = time.monotonic()
        result = run_datagc("sweep", "--data-dir", str(tmp_path), "--wait", "1s500ms")
        waited = time.monotonic() - started
    assert result.code == 75 and "after waiting 1.5s" in result.stderr
    assert waited >= 1.5
    bad = run_datagc("sweep", "--data-dir", str(tmp_path), "--wait", "soon")
    assert bad.code == 2 and "not a duration" in bad.stderr


def test_every_unknown_key_of_a_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "datagc.toml"
    config.write_text('[sweep]\nmax_agee = "1d"\n[rotate]\nkeep_line = 5\n[pressur]\nthreshold = 0.8\n')
    result = run_datagc("sweep", "--data-dir", str(tmp_path), "--config", str(config))
    assert result.code == 2
    assert "unknown keys 'pressur.threshold', 'rotate.keep_line', 'sweep.max_agee'" in result.stderr


@pytest.mark.parametrize("value", ["1", "yes", "true", "TRUE", "on"])
def test_test_mode_takes_any_boolean(value: str) -> None:
    result = run_datagc("config", env={"TEST_MODE": value})
    assert result.code == 0, result.stderr
    assert f"watch.interval = 5s  # default (TEST_MODE={value})" in result.stdout.splitlines()


@pytest.mark.parametrize("value", ["0", "no", "false", ""])
def test_test_mode_off(value: str) -> None:
    result = run_datagc("config", env={"TEST_MODE": value})
    assert "watch.interval = 1h  # default" in result.stdout.splitlines()


def test_a_bad_test_mode_is_an_error_not_ignored(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--data-dir", str(tmp_path), env={"TEST_MODE": "maybe"})
    assert result.code == 2
    assert result.stderr == "datagc: TEST_MODE = 'maybe' (from environment TEST_MODE): not a boolean (use true or " \
                            "false)\n"


def in_bash(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` typed at a bash prompt: typer finds the shell by walking up the process tree, so bash must be
    the parent (``; exit $?`` keeps bash from exec'ing it), whatever started the tests (``make`` runs them under
    ``sh``, which typer does not support)."""
    return subprocess.run(["bash", "-c", f"{command}; exit $?"], capture_output=True, text=True,
                          env=clean_env(env), check=False)


def test_shell_completion_is_offered(tmp_path: Path) -> None:
    assert {"--install-completion", "--show-completion"} <= options_of(help_text())
    shown = in_bash(f"{DATAGC} --show-completion")
    assert shown.returncode == 0 and "_DATAGC_COMPLETE" in shown.stdout and "complete " in shown.stdout, shown
    home = tmp_path / "home"
    home.mkdir()
    installed = in_bash(f"{DATAGC} --install-completion", {"HOME": str(home)})
    assert installed.returncode == 0, installed.stderr
    assert "datagc" in (home / ".bashrc").read_text()
    completion = subprocess.run(
        [DATAGC], capture_output=True, text=True, check=False,
        env=clean_env({"_DATAGC_COMPLETE": "complete_bash", "COMP_WORDS": "datagc sw", "COMP_CWORD": "1"}))
    assert completion.stdout.split() == ["sweep"]
    options = subprocess.run(
        [DATAGC], capture_output=True, text=True, check=False,
        env=clean_env({"_DATAGC_COMPLETE": "complete_bash", "COMP_WORDS": "datagc audit --t", "COMP_CWORD": "2"}))
    assert "--top" in options.stdout.split()


def test_the_plain_kill_switch_line_says_where_it_came_from(tmp_path: Path) -> None:
    result = run_datagc("sweep", "--data-dir", str(tmp_path), env={"GC_ENABLED": "false"})
    assert result.code == 0
    assert result.stdout.splitlines()[0] == (
        "[janitor] sweep: datagc is disabled (enabled=false from environment GC_ENABLED); nothing was done")
