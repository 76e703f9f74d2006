"""Every README example meant to be run, run as written against a freshly built sample (``python -m datagc.demo``).

``/app/.data`` in an example stands for the data directory: it becomes the
sample's path (or ``DATAGC_DATA_DIR`` names it, for examples without
``--data-dir``). Shown output must be what datagc prints, but for the disk
figures of the machine the test runs on.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DATAGC, clean_env

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BIN = str(Path(DATAGC).parent)
#: statuses a reclaiming pass may end with (README, Exit status); 32: this machine's disk is above 70% used
SUCCESS = {0, 4, 8, 12, 16, 20, 24, 28, 32}
#: what differs from machine to machine: the disk's own figures
DISK = [(re.compile(r"\d+\.\d% used"), "N% used"), (re.compile(r"[\d.]+[kMGTP]?B free"), "N free")]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, title
    return match.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample exactly as ``make demo`` leaves it (the command the README gives to rebuild it), built once."""
    root = tmp_path_factory.mktemp("readme") / "datagc-demo"
    done = subprocess.run([sys.executable, "-m", "datagc.demo", str(root)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def sample(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the sample for each example (ages and sizes kept: ``cp -a``)."""
    root = tmp_path / "datagc-demo"
    subprocess.run(["cp", "-a", str(built), str(root)], check=True)
    return root


def run(command: str, sample: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``command`` as a shell would run it, ``datagc`` being the installed one, ``/app/.data`` the sample."""
    env = clean_env({"PATH": f"{BIN}:{os.environ['PATH']}", "DATAGC_DATA_DIR": str(sample), "COLUMNS": "200"})
    return subprocess.run(["sh", "-c", command.replace("/app/.data", str(sample))], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def masked(text: str) -> str:
    for pattern, replacement in DISK:
        text = pattern.sub(replacement, text)
    return text


def console_examples() -> list[tuple[str, str]]:
    examples = []
    for block in blocks("console"):
        command, _, output = block.partition("\n")
        assert command.startswith("$ "), block
        examples.append((command[2:], output))
    return examples


@pytest.mark.parametrize(("command", "output"), console_examples())
def test_console_examples_print_what_they_show(sample: Path, command: str, output: str) -> None:
    result = run(command, sample)
    assert result.returncode in SUCCESS, result.stderr
    assert masked(result.stdout) == masked(output)


def catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def table_examples() -> list[str]:
    rows = re.findall(r"^\| `datagc [^`]*` \|.*\| `([^`]+)` \|$", section("Commands"), re.M)
    assert len(rows) >= 7
    return rows


@pytest.mark.parametrize("command", table_examples())
def test_each_commands_example_runs(sample: Path, command: str) -> None:
    if " watch" in command:
        env = clean_env({"DATAGC_DATA_DIR": str(sample)})
        process = subprocess.Popen([DATAGC, *shlex.split(command)[1:]], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not catches_sigterm(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # started: it is waiting out --initial-delay, and a SIGTERM ends it cleanly
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        return
    result = run(command, sample)
    assert result.returncode in SUCCESS, result.stderr
    assert result.stdout and "Traceback" not in result.stderr


def test_the_exit_status_example_reports_and_exits_0_after_a_successful_run(sample: Path) -> None:
    (script,) = blocks("sh")[-1:] if "case $status" in blocks("sh")[-1] else [
        block for block in blocks("sh") if "case $status" in block]
    result = run(script, sample)
    assert (result.returncode, result.stdout, result.stderr) == (0, "event log rotated\nfiles swept\n", "")


def test_the_cron_commands_run_quietly(sample: Path) -> None:
    (crontab,) = blocks("cron")
    commands = [line.split(None, 6)[6] for line in crontab.splitlines() if line.split()[:1] != [] and
                "datagc" in line and not line.startswith("DATAGC_")]
    commands = [re.sub(r"^root\s+", "", re.sub(r"^@reboot\s+", "", line)) for line in commands]
    assert len(commands) == 3
    for command in commands:
        result = run(command.split(" | ")[0], sample)
        assert result.returncode in SUCCESS, (command, result.stderr)
        if "--quiet" in command:
            assert (result.stdout, result.stderr) == ("", ""), command


def test_the_configuration_file_example_is_accepted(sample: Path, tmp_path: Path) -> None:
    (toml,) = blocks("toml")
    (tmp_path / "datagc.toml").write_text(toml)
    result = run(f"datagc config --config {tmp_path / 'datagc.toml'}", sample)
    assert result.returncode == 0, result.stderr
    assert f"rotate.max_bytes = 50MiB  # file {tmp_path / 'datagc.toml'}" in result.stdout.splitlines()


def test_the_rebuild_command_rebuilds_the_sample(sample: Path) -> None:
    (line,) = [line for block in blocks("sh") for line in block.splitlines() if "-m datagc.demo" in line]
    command = line.split("#")[0].strip().replace(".venv/bin/python", sys.executable)
    assert run("datagc run-all --cdn --quiet", sample).returncode == 12
    assert run("datagc run-all --cdn", sample).stdout.splitlines()[-1].startswith("[janitor] run-all: reclaimed 0B")
    rebuilt = run(command.replace("/tmp/datagc-demo", str(sample)), sample)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert run("datagc run-all --cdn --dry-run --quiet", sample).returncode == 12
