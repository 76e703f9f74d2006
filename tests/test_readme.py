"""The README is the operators' contract: its tables are checked against the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datagc import cli, parallel
from datagc.config.explain import display_value
from datagc.config.keys import KEYS, TEST_MODE_DEFAULTS, Key
from datagc.exitcodes import LOCKED, Exit
from datagc.options import AUDIT, COMMON, RUN_ALL, WATCH
from datagc.units import format_duration

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: environment names the README may mention that are not configuration keys
OTHER_ENV = {"DATAGC_CONFIG", "R2_ACCESS_KEY_ID", "TEST_MODE", parallel.THRESHOLD_ENV, parallel.WORKERS_ENV}


def flags() -> dict[str, str]:
    """Configuration key -> the flag that sets it, as ``--help`` spells it."""
    options = COMMON + RUN_ALL + AUDIT + WATCH
    return {opt.key: next(d for d in opt.info.param_decls if d.startswith("--")) for opt in options if opt.key}


def row(key: Key, flag: str | None) -> str:
    env = ", ".join(f"`{name}`" + (" (ms)" if name in key.env_parsers else "") for name in key.env)
    derived = {"cdn.enabled": "auto", "rotate.keep_bytes": "half of `rotate.max_bytes`",
               "pressure.min_free_target": "1.5 × `pressure.min_free`"}
    if key.default is None:
        default = derived.get(key.name, "empty (off)")
    else:
        shown = display_value(key, key.default)
        default = f"`{shown}`" if shown else "empty"
    if key.name in TEST_MODE_DEFAULTS:
        default += f"; `{format_duration(TEST_MODE_DEFAULTS[key.name])}` with `TEST_MODE=true`"
    return f"| `{key.name}` | {env} | {f'`{flag}`' if flag else ''} | {default} | {key.help} |"


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"no '## {title}' section"
    return match.group(1)


def test_the_configuration_table_is_config_keys() -> None:
    by_key = flags()
    expected = [row(key, by_key.get(key.name)) for key in KEYS]
    table = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    assert table == expected


@pytest.mark.parametrize("command", sorted(c.name for c in cli.app.registered_commands if c.name))
def test_every_command_is_in_the_table_with_an_example(command: str) -> None:
    line = next((line for line in section("Commands").splitlines() if line.startswith(f"| `datagc {command}`")),
                None)
    assert line is not None, f"datagc {command} is missing from the commands table"
    assert f"`datagc {command} " in line.split("|")[3] or f"datagc {command}`" in line.split("|")[3]


def test_the_exit_status_table_is_the_exit_codes() -> None:
    documented = [int(code) for code in re.findall(r"^\| (\d+) \|", section("Exit status"), re.M)]
    assert documented == sorted([int(code) for code in Exit.__members__.values()] + [LOCKED])
    assert "case $status in" in section("Exit status")


def test_every_environment_name_mentioned_exists() -> None:
    mentioned = set(re.findall(r"\b((?:DATAGC|GC|R2)_[A-Z_]+[A-Z])\b", README)) | {"TEST_MODE"}
    known = {name for key in KEYS for name in key.env} | OTHER_ENV
    assert mentioned <= known, sorted(mentioned - known)


def test_the_source_tree_lists_every_module_and_only_real_paths() -> None:
    tree = section("Source tree")
    listed = set(re.findall(r"^(\S+)\s", tree, re.M)) - {"```"}
    assert all((ROOT / path).exists() for path in listed), sorted(p for p in listed if not (ROOT / p).exists())
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "datagc").rglob("*.py")}
    unlisted = {m for m in modules if not m.endswith("__init__.py") and m != "datagc/__main__.py"} - listed
    assert unlisted == set()


@pytest.mark.parametrize("title", ["Rotation", "Sweep", "Pressure", "Audit", "Safety", "Benchmarks"])
def test_each_pass_has_its_section(title: str) -> None:
    assert section(title).strip()
