"""The one place configuration is defined, read, validated and explained.

Every key of SPEC §3 is declared once in ``KEYS`` with its parser, default and
environment names. ``load_config`` resolves each key by precedence
flag > environment > config file (TOML) > default, validates the result before
any file is touched, and remembers where every value came from so that
``datagc config`` can say it.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from datagc.errors import ConfigError
from datagc.units import format_duration, format_size, parse_duration, parse_host_port, parse_size

Parser = Callable[[Any], Any]

#: the largest whole number or byte count a setting may hold (a signed 64-bit integer)
MAX_INT = 2**63 - 1
#: the longest duration a setting may hold: 100 years (longer ones overflow timers)
MAX_SECONDS = 100 * 365.25 * 86400
#: a config file larger than this is not a datagc config file
MAX_CONFIG_BYTES = 1 << 20
#: what a data directory may never be (SPEC §7 rule 18), also when reached through a symlink or ``..``
SYSTEM_DIRS: tuple[str, ...] = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
)


# --- value parsers: each takes a TOML value, an env string or a flag value ---


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (use true or false)")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a whole number")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise ValueError("not a whole number") from None
    if abs(number) > MAX_INT:
        raise ValueError(f"too large (at most {MAX_INT})")
    return number


def _parse_fraction(value: Any) -> float:
    """A fraction of the disk: ``0.7`` or ``70%``."""
    if isinstance(value, bool):
        raise ValueError("not a fraction")
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError("not a fraction (use e.g. 0.7 or 70%)") from None
    if not 0 < number <= 1 or math.isnan(number):
        raise ValueError("must be above 0 and at most 1 (e.g. 0.7 or 70%)")
    return number


def parse_duration_setting(value: Any) -> float:
    """A duration setting (``7d``, ``90s``, a bare number of seconds): finite, zero or more, at most 100 years."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
    return _check_seconds(seconds, "duration")


def _check_seconds(seconds: float, what: str) -> float:
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"must be a finite {what} of zero or more")
    if seconds > MAX_SECONDS:
        raise ValueError(f"too long (at most {format_duration(MAX_SECONDS)})")
    return seconds


def _parse_millis(value: Any) -> float:
    """The service's own ``GC_*_MS`` settings: a number of milliseconds."""
    try:
        millis = float(str(value).strip())
    except ValueError:
        raise ValueError("not a number of milliseconds") from None
    return _check_seconds(millis / 1000, "number of milliseconds")


def _parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a size")
    size = value if isinstance(value, int) else parse_size(str(value))
    if size < 0:
        raise ValueError("must not be negative")
    if size > MAX_INT:
        raise ValueError(f"too large (at most {MAX_INT} bytes)")
    return size


def _parse_optional_size(value: Any) -> int | None:
    """A size that may be switched off: ``off`` or an empty string (in a file or on a flag) is off."""
    if isinstance(value, str) and value.strip().lower() in ("", "off"):
        return None
    size = _parse_size(value)
    if size < 1:
        raise ValueError("must be at least 1 byte (or off)")
    return size


def _parse_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _parse_listen(value: Any) -> str:
    """``HOST:PORT``, checked here so a typo is a configuration error, not a failure at bind time."""
    text = _parse_string(value).strip()
    if text:
        parse_host_port(text)
    return text


def _parse_base_url(value: Any) -> str:
    """``cdn.public_url``: empty, or an http(s) URL with a host and nothing that could hide another one."""
    text = _parse_string(value).strip()
    if not text:
        return ""
    problem = "must be an http(s) URL with a host and no user, query or fragment (e.g. https://cdn.example.com)"
    if not text.isprintable() or " " in text:
        raise ValueError(problem)
    try:
        split = urlsplit(text)
        split.port  # noqa: B018 (validates it)
    except ValueError as error:
        raise ValueError(f"{problem}: {error}") from None
    if split.scheme not in ("http", "https") or not split.hostname or "@" in split.netloc or split.query \
            or split.fragment or "?" in text or "#" in text:
        raise ValueError(problem)
    return text


def _parse_list(value: Any) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (environment, flags)."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return tuple(item for item in items if item)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("not a list of strings")


def _parse_relative_paths(value: Any) -> tuple[str, ...]:
    """Paths inside DATA_DIR, normalised once (SPEC §7 rule 12): ``./images``, ``images/``, ``images/.``
    are ``images``. An absolute path, a ``..`` or an empty name is an error; duplicates are dropped."""
    if isinstance(value, (list, tuple)) and any(isinstance(item, str) and not item.strip() for item in value):
        raise ValueError("an empty name is not a path inside the data directory")
    normalised: dict[str, None] = {}
    for path in _parse_list(value):
        if path.startswith("/"):
            raise ValueError(f"{path!r} is absolute; it must be a relative path inside the data directory")
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise ValueError(f"{path!r} leaves the data directory ('..'); it must be a relative path inside it")
        if not parts:
            raise ValueError(f"{path!r} names the data directory itself, not a path inside it")
        normalised["/".join(parts)] = None
    return tuple(normalised)


def _parse_state_dir(value: Any) -> str:
    """An absolute path, or one relative to DATA_DIR (normalised: ``./.datagc/`` is ``.datagc``)."""
    text = _parse_string(value)
    if not text or "\0" in text:
        raise ValueError("must be a directory path")
    if text.startswith("/"):
        return text
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("a relative state dir must stay inside the data directory (no '..')")
    if not parts:
        raise ValueError("must not be the data directory itself")
    return "/".join(parts)


# --- the keys ---


@dataclass(frozen=True)
class Key:
    """One configuration key: how to parse it and where it may come from."""

    name: str
    parse: Parser
    default: Any
    help: str
    env: tuple[str, ...] = ()
    #: environment names whose value is read with another parser (``GC_*_MS``)
    env_parsers: Mapping[str, Parser] = field(default_factory=dict)


KEYS: tuple[Key, ...] = (
    Key("enabled", _parse_bool, True, "kill switch: false makes every pass a no-op",
        ("DATAGC_ENABLED", "GC_ENABLED")),
    Key("data_dir", _parse_string, "./.data", "the service's data directory", ("DATAGC_DATA_DIR",)),
    Key("cdn.enabled", _parse_bool, None,
        "media are also on the CDN (auto: true when R2_ACCESS_KEY_ID is set)",
        ("DATAGC_CDN_ENABLED",)),
    Key("cdn.public_url", _parse_base_url, "",
        "the CDN's base URL: only URLs under it are CDN copies (empty: none are)",
        ("DATAGC_CDN_PUBLIC_URL", "R2_PUBLIC_URL")),
    Key("cdn.verify", _parse_bool, False,
        "HEAD the CDN URL (200, same Content-Length) before deleting a published copy",
        ("DATAGC_CDN_VERIFY",)),
    Key("rotate.logs", _parse_relative_paths, ("events.jsonl",), "event logs to rotate",
        ("DATAGC_ROTATE_LOGS",)),
    Key("rotate.max_bytes", _parse_size, 50 * 1024**2, "rotate a log larger than this",
        ("DATAGC_ROTATE_MAX_BYTES", "GC_EVENT_LOG_MAX_BYTES")),
    Key("rotate.keep_lines", _parse_int, 10_000, "newest complete lines to keep",
        ("DATAGC_ROTATE_KEEP_LINES", "GC_EVENT_LOG_KEEP_LINES")),
    Key("rotate.keep_bytes", _parse_size, None, "at most this many bytes kept (default: half of max_bytes)",
        ("DATAGC_ROTATE_KEEP_BYTES",)),
    Key("sweep.media_dirs", _parse_relative_paths, ("images", "videos", "voice", "bid-images"),
        "media directories", ("DATAGC_SWEEP_MEDIA_DIRS",)),
    Key("sweep.max_age", parse_duration_setting, 7 * 86400.0, "CDN on: delete media older than this",
        ("DATAGC_SWEEP_MAX_AGE", "GC_MEDIA_MAX_AGE_MS"), {"GC_MEDIA_MAX_AGE_MS": _parse_millis}),
    Key("sweep.published_grace", parse_duration_setting, 15 * 60.0,
        "CDN on: delete a copy the feed shows by CDN URL once older than this",
        ("DATAGC_SWEEP_PUBLISHED_GRACE",)),
    Key("sweep.temp_patterns", _parse_list, ("*.tmp.*",), "orphan temp files at the top of DATA_DIR"),
    Key("sweep.temp_max_age", parse_duration_setting, 86400.0, "delete orphan temp files older than this"),
    Key("pressure.threshold", _parse_fraction, 0.70, "evict when the disk is fuller than this",
        ("DATAGC_PRESSURE_THRESHOLD", "GC_DISK_PRESSURE_THRESHOLD")),
    Key("pressure.target", _parse_fraction, 0.60, "evict down to this usage",
        ("DATAGC_PRESSURE_TARGET",)),
    Key("pressure.min_age", parse_duration_setting, 86400.0, "never evict media younger than this",
        ("DATAGC_PRESSURE_MIN_AGE", "GC_MEDIA_PRESSURE_AGE_MS"),
        {"GC_MEDIA_PRESSURE_AGE_MS": _parse_millis}),
    Key("pressure.budget", _parse_optional_size, None,
        "the data directory's own capacity (emptyDir sizeLimit, quota): its allocated bytes are also held "
        "against threshold/target as fractions of this", ("DATAGC_PRESSURE_BUDGET",)),
    Key("pressure.min_free", _parse_optional_size, None, "also evict when the filesystem has less than this free",
        ("DATAGC_PRESSURE_MIN_FREE",)),
    Key("pressure.min_free_target", _parse_optional_size, None, "evict until at least this is free",
        ("DATAGC_PRESSURE_MIN_FREE_TARGET",)),
    Key("pressure.inode_threshold", _parse_fraction, 0.95,
        "also evict when this fraction of the filesystem's inodes is used", ("DATAGC_PRESSURE_INODE_THRESHOLD",)),
    Key("pressure.inode_target", _parse_fraction, 0.90, "evict until inode use is at or below this",
        ("DATAGC_PRESSURE_INODE_TARGET",)),
    Key("feed.files", _parse_relative_paths, ("posts.json",), "feed files whose media URLs are kept consistent"),
    Key("feed.url_fields", _parse_list, ("imageUrl", "videoUrl"), "feed fields holding media URLs"),
    Key("protect.patterns", _parse_list, ("*.json", "cache-*", "*.key", "*keypair*"),
        "file names never deleted, wherever they are"),
    Key("watch.interval", parse_duration_setting, 3600.0, "time between passes of `watch`",
        ("DATAGC_WATCH_INTERVAL", "GC_SWEEP_INTERVAL_MS"), {"GC_SWEEP_INTERVAL_MS": _parse_millis}),
    Key("watch.initial_delay", parse_duration_setting, 60.0, "wait before the first pass of `watch`",
        ("DATAGC_WATCH_INITIAL_DELAY", "GC_INITIAL_DELAY_MS"), {"GC_INITIAL_DELAY_MS": _parse_millis}),
    Key("watch.check_interval", parse_duration_setting, 10.0,
        "how often `watch` checks the pressure limits between passes", ("DATAGC_WATCH_CHECK_INTERVAL",)),
    Key("metrics.textfile", _parse_string, "", "Prometheus textfile-collector output (empty: off)",
        ("DATAGC_METRICS_TEXTFILE",)),
    Key("metrics.listen", _parse_listen, "", "HOST:PORT where watch serves /metrics over HTTP (empty: off)",
        ("DATAGC_METRICS_LISTEN",)),
    Key("audit.top", _parse_int, 10, "how many of the largest files audit lists", ("DATAGC_AUDIT_TOP",)),
    Key("state.dir", _parse_state_dir, ".datagc",
        "datagc's own state (the journal), relative to DATA_DIR unless absolute; never a target",
        ("DATAGC_STATE_DIR",)),
    Key("journal.max_bytes", _parse_size, 10 * 1024**2, "the journal keeps its newest entries within this size",
        ("DATAGC_JOURNAL_MAX_BYTES",)),
    Key("journal.repair_window", parse_duration_setting, 30 * 86400.0,
        "a path deleted this recently is a tombstone: feed references to it are nulled again",
        ("DATAGC_JOURNAL_REPAIR_WINDOW",)),
)
KEYS_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}
#: the smallest journal bound that still holds a useful history
JOURNAL_MIN_BYTES = 64 * 1024
TEST_MODE_DEFAULTS: dict[str, float] = {"watch.interval": 5.0, "watch.initial_delay": 2.0,
                                        "watch.check_interval": 1.0}
#: how ``pressure.min_free_target`` follows ``pressure.min_free`` when it is not set
MIN_FREE_TARGET_FACTOR = 1.5


# --- the resolved configuration ---


@dataclass(frozen=True)
class CdnConfig:
    enabled: bool
    public_url: str
    verify: bool


@dataclass(frozen=True)
class RotateConfig:
    logs: tuple[str, ...]
    max_bytes: int
    keep_lines: int
    keep_bytes: int


@dataclass(frozen=True)
class SweepConfig:
    media_dirs: tuple[str, ...]
    max_age: float
    published_grace: float
    temp_patterns: tuple[str, ...]
    temp_max_age: float


@dataclass(frozen=True)
class PressureConfig:
    threshold: float
    target: float
    min_age: float
    budget: int | None = None
    min_free: int | None = None
    min_free_target: int | None = None
    inode_threshold: float = 0.95
    inode_target: float = 0.90


@dataclass(frozen=True)
class FeedConfig:
    files: tuple[str, ...]
    url_fields: tuple[str, ...]


@dataclass(frozen=True)
class ProtectConfig:
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class WatchConfig:
    interval: float
    initial_delay: float
    check_interval: float = 10.0


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str
    listen: str


@dataclass(frozen=True)
class AuditConfig:
    top: int


@dataclass(frozen=True)
class StateConfig:
    dir: str


@dataclass(frozen=True)
class JournalConfig:
    max_bytes: int
    repair_window: float


@dataclass(frozen=True)
class Config:
    """The effective configuration; ``sources`` says where each key's value came from."""

    enabled: bool
    data_dir: Path
    cdn: CdnConfig
    rotate: RotateConfig
    sweep: SweepConfig
    pressure: PressureConfig
    feed: FeedConfig
    protect: ProtectConfig
    watch: WatchConfig
    metrics: MetricsConfig
    audit: AuditConfig
    state: StateConfig
    journal: JournalConfig
    sources: Mapping[str, str]

    def value(self, name: str) -> Any:
        """The value of a dotted key, e.g. ``value("rotate.max_bytes")``."""
        node: Any = self
        for part in name.split("."):
            node = getattr(node, part)
        return node


_SECTIONS: dict[str, type] = {
    "cdn": CdnConfig,
    "rotate": RotateConfig,
    "sweep": SweepConfig,
    "pressure": PressureConfig,
    "feed": FeedConfig,
    "protect": ProtectConfig,
    "watch": WatchConfig,
    "metrics": MetricsConfig,
    "audit": AuditConfig,
    "state": StateConfig,
    "journal": JournalConfig,
}


@dataclass(frozen=True)
class FlagValue:
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


def _read_file(path: Path) -> dict[str, Any]:
    """Flatten a TOML file into dotted keys; unknown keys are errors (typos matter)."""
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
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ConfigError(
            f"config file {path}: unknown key{'s' if len(unknown) > 1 else ''} {names} "
            f"(known keys: {', '.join(KEYS_BY_NAME)})"
        )
    return flat


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
    the file, and with neither no file is read.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    path_text = config_path or env.get("DATAGC_CONFIG") or ""
    file_values = _read_file(Path(path_text)) if path_text else {}
    test_mode = _test_mode(env)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        if key.name in flags:
            given = flags[key.name]
            source = f"flag {given.flag}"
            values[key.name] = _parse(key, key.parse, given.value, source)
        elif env_name := next((name for name in key.env if env.get(name, "") != ""), None):
            source = f"environment {env_name}"
            parser = key.env_parsers.get(env_name, key.parse)
            values[key.name] = _parse(key, parser, env[env_name], source)
        elif key.name in file_values:
            source = f"file {path_text}"
            values[key.name] = _parse(key, key.parse, file_values[key.name], source)
        elif test_mode and key.name in TEST_MODE_DEFAULTS:
            source = f"default (TEST_MODE={env['TEST_MODE']})"
            values[key.name] = TEST_MODE_DEFAULTS[key.name]
        else:
            source = "default"
            values[key.name] = key.default
        sources[key.name] = source

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
        return bool(raw.strip()) and _parse_bool(raw)
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
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for name, value in values.items():
        if "." in name:
            section, attribute = name.split(".", 1)
            sections[section][attribute] = value
    return Config(
        enabled=values["enabled"],
        data_dir=Path(values["data_dir"]),
        sources=dict(sources),
        **{name: cls(**sections[name]) for name, cls in _SECTIONS.items()},
    )


def display_value(key: Key, value: Any) -> str:
    """A value as it would be written in the config file: ``7d``, ``50MiB``, ``a,b``."""
    if key.parse is parse_duration_setting:
        return format_duration(value)
    if key.parse in (_parse_size, _parse_optional_size):
        return "off" if value is None else format_size(value)
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def effective_values(config: Config) -> list[tuple[str, str, str]]:
    """(key, value as written, source) for every key, in declaration order, for ``datagc config``."""
    return [(key.name, display_value(key, config.value(key.name)), config.sources[key.name]) for key in KEYS]
