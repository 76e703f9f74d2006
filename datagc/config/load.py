"""Loading: each key resolved by precedence (flag > environment > config file > default), then validated
before any file is touched."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from datagc.config.keys import JOURNAL_MIN_BYTES, KEYS, KEYS_BY_NAME, MIN_FREE_TARGET_FACTOR, TEST_MODE_DEFAULTS, Key
from datagc.config.schema import SECTIONS, Config
from datagc.config.values import Parser, parse_bool
from datagc.errors import ConfigError
from datagc.units import format_size

#: a config file larger than this is not a datagc config file
MAX_CONFIG_BYTES = 1 << 20
#: what a data directory may never be (SPEC §7 rule 18), also when reached through a symlink or ``..``
SYSTEM_DIRS: tuple[str, ...] = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
)


class FlagValue(NamedTuple):
    """A value given on the command line for a key, with the flag that gave it."""

    flag: str
    value: Any


def not_a_regular_file(path: str) -> str | None:
    """Why ``path`` can't be used where a file is expected (it exists and is not a regular file), or None.

    Only ``stat``: a FIFO is never opened, so nothing can hang on it.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as error:
        return f"cannot be examined ({getattr(error, 'strerror', None) or error})"
    return _irregular(mode)


def _irregular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is {kind}; a regular file is expected"


def _read_bytes(path: Path) -> bytes:
    """The config file's content, opened without blocking (a FIFO, a device) and refused unless regular."""
    if "\0" in str(path):
        raise ConfigError(f"config file {path!r}: a path must not contain a NUL byte")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    if problem := _irregular(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"config file {path} {problem}")
    with open(fd, "rb") as handle:
        try:
            content = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as error:
            raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    if len(content) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {format_size(MAX_CONFIG_BYTES)}: not a config file")
    return content


def _read_file(path: Path) -> tuple[dict[str, Any], str | None]:
    """Flatten a TOML file into dotted keys, and say which keys are unknown (an error: typos matter)."""
    import tomllib  # only a run with a config file pays for the parser

    try:
        document = tomllib.loads(_read_bytes(path).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config file") from None
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{name}.{sub}"] = subvalue
        else:
            flat[name] = value
    unknown = sorted(set(flat) - set(KEYS_BY_NAME))
    if not unknown:
        return flat, None
    names = ", ".join(repr(name) for name in unknown)
    return flat, (f"config file {path}: unknown key{'s' if len(unknown) > 1 else ''} {names} "
                  f"(known keys: {', '.join(KEYS_BY_NAME)})")


#: how much of a value a message quotes
_QUOTED = 80


def _describe(value: Any) -> str:
    """A value as a message quotes it: as given (the output escapes it), cut short if very long."""
    text = f"'{value}'" if isinstance(value, str) else str(value)
    return text if len(text) <= _QUOTED else f"{text[:_QUOTED]}… ({len(text)} characters)"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    return isinstance(value, (list, tuple)) and any(_has_nul(item) for item in value)


def _parse(key: Key, parser: Parser, raw: Any, source: str) -> Any:
    try:
        if _has_nul(raw):
            raise ValueError("must not contain a NUL byte")
        return parser(raw)
    except ValueError as error:
        raise ConfigError(f"{key.name} = {_describe(raw)} (from {source}): {error}") from None
    except OverflowError:
        raise ConfigError(f"{key.name} = {_describe(raw)} (from {source}): too large") from None


def load_config(
    flags: Mapping[str, FlagValue] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Config:
    """Resolve every key by precedence flag > environment > file > default.

    ``config_path`` is the ``--config`` flag; without it ``DATAGC_CONFIG`` names
    the file, and with neither no file is read. Every unknown key and every
    value that doesn't parse is said at once (one ConfigError), not one per run.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    path_text = config_path or env.get("DATAGC_CONFIG") or ""
    file_values, unknown = _read_file(Path(path_text)) if path_text else ({}, None)
    problems = [unknown] if unknown else []
    try:
        test_mode = _test_mode(env)
    except ConfigError as error:
        problems.append(str(error))
        test_mode = False

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def parsed(key: Key, parser: Parser, raw: Any, source: str) -> Any:
        try:
            return _parse(key, parser, raw, source)
        except ConfigError as error:
            problems.append(str(error))
            return key.default

    for key in KEYS:
        if key.name in flags:
            given = flags[key.name]
            source = f"flag {given.flag}"
            values[key.name] = parsed(key, key.parse, given.value, source)
        elif env_name := next((name for name in key.env if env.get(name, "") != ""), None):
            source = f"environment {env_name}"
            parser = key.env_parsers.get(env_name, key.parse)
            values[key.name] = parsed(key, parser, env[env_name], source)
        elif key.name in file_values:
            source = f"file {path_text}"
            values[key.name] = parsed(key, key.parse, file_values[key.name], source)
        elif test_mode and key.name in TEST_MODE_DEFAULTS:
            source = f"default (TEST_MODE={env['TEST_MODE']})"
            values[key.name] = TEST_MODE_DEFAULTS[key.name]
        else:
            source = "default"
            values[key.name] = key.default
        sources[key.name] = source
    if problems:
        raise ConfigError("; ".join(problems))

    if values["cdn.enabled"] is None:
        values["cdn.enabled"] = bool(env.get("R2_ACCESS_KEY_ID", ""))
        sources["cdn.enabled"] = (
            "auto (R2_ACCESS_KEY_ID is set)" if values["cdn.enabled"] else "auto (R2_ACCESS_KEY_ID is not set)"
        )
    if sources["pressure.target"] == "default" and values["pressure.target"] > values["pressure.threshold"]:
        values["pressure.target"] = round(max(values["pressure.threshold"] - 0.10, values["pressure.threshold"] / 2), 6)
        sources["pressure.target"] = "default (pressure.threshold - 0.10, as the threshold is below 0.60)"
    if sources["pressure.inode_target"] == "default" and values["pressure.inode_target"] > values[
            "pressure.inode_threshold"]:
        values["pressure.inode_target"] = round(values["pressure.inode_threshold"] * 0.9, 6)
        sources["pressure.inode_target"] = "default (0.9 x pressure.inode_threshold, as the threshold is below 0.90)"
    if values["pressure.min_free_target"] is None and values["pressure.min_free"] is not None:
        values["pressure.min_free_target"] = math.ceil(values["pressure.min_free"] * MIN_FREE_TARGET_FACTOR)
        sources["pressure.min_free_target"] = "default (1.5 x pressure.min_free)"
    if values["rotate.keep_bytes"] is None:
        values["rotate.keep_bytes"] = values["rotate.max_bytes"] // 2
        sources["rotate.keep_bytes"] = "default (half of rotate.max_bytes)"

    _validate(values, sources)
    return _build(values, sources)


def _test_mode(env: Mapping[str, str]) -> bool:
    """The service's ``TEST_MODE`` (short watch intervals): a boolean like the others; empty is off."""
    raw = env.get("TEST_MODE", "")
    try:
        return bool(raw.strip()) and parse_bool(raw)
    except ValueError as error:
        raise ConfigError(f"TEST_MODE = {raw!r} (from environment TEST_MODE): {error}") from None


def _validate(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    def fail(name: str, problem: str) -> None:
        raise ConfigError(f"{name} = {_describe(values[name])} (from {sources[name]}): {problem}")

    for name in ("rotate.max_bytes", "rotate.keep_lines", "audit.top"):
        if values[name] < 1:
            fail(name, "must be at least 1")
    if values["rotate.keep_bytes"] < 1:
        fail("rotate.keep_bytes", "must be at least 1 byte")
    if values["rotate.keep_bytes"] > values["rotate.max_bytes"]:
        fail("rotate.keep_bytes", f"must not exceed rotate.max_bytes ({values['rotate.max_bytes']})"
             " or the rotated log would stay over the trigger")
    if values["pressure.target"] > values["pressure.threshold"]:
        fail("pressure.target", f"must not exceed pressure.threshold ({values['pressure.threshold']})")
    if values["pressure.inode_target"] > values["pressure.inode_threshold"]:
        fail("pressure.inode_target",
             f"must not exceed pressure.inode_threshold ({values['pressure.inode_threshold']})")
    if values["pressure.min_free_target"] is not None:
        if values["pressure.min_free"] is None:
            fail("pressure.min_free_target", "has no effect without pressure.min_free")
        elif values["pressure.min_free_target"] < values["pressure.min_free"]:
            fail("pressure.min_free_target",
                 f"must be at least pressure.min_free ({format_size(values['pressure.min_free'])})")
    for name in ("watch.interval", "watch.check_interval"):
        if values[name] <= 0:
            fail(name, "must be longer than zero")
    if not values["data_dir"]:
        fail("data_dir", "must not be empty")
    if system := system_dir(values["data_dir"]):
        fail("data_dir", f"is the system directory {system}, never a service's data directory "
                         "(give the service's own directory, e.g. /app/.data)")
    if values["metrics.textfile"] and (problem := not_a_regular_file(values["metrics.textfile"])):
        fail("metrics.textfile", problem)
    if not values["sweep.media_dirs"]:
        fail("sweep.media_dirs", "must name at least one directory")
    if values["journal.max_bytes"] < JOURNAL_MIN_BYTES:
        fail("journal.max_bytes", f"must be at least {format_size(JOURNAL_MIN_BYTES)}")


def system_dir(path: str) -> str | None:
    """The system directory (``SYSTEM_DIRS``) ``path`` is, through symlinks, ``..`` or a bind mount; or None."""
    real = os.path.realpath(path)
    if real in SYSTEM_DIRS:
        return real
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing: reported when it is opened
    for system in SYSTEM_DIRS:
        try:
            other = os.stat(system)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return system
    return None


def _build(values: Mapping[str, Any], sources: Mapping[str, str]) -> Config:
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for name, value in values.items():
        if "." in name:
            section, attribute = name.split(".", 1)
            sections[section][attribute] = value
    return Config(
        enabled=values["enabled"],
        data_dir=Path(values["data_dir"]),
        sources=dict(sources),
        **{name: cls(**sections[name]) for name, cls in SECTIONS.items()},
    )
