"""Every command-line option, declared once, and which commands take it (the groups below)."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import typer


class Opt(NamedTuple):
    """An option of one or more commands; ``key`` is the configuration key it overrides."""

    param: str
    annotation: Any
    info: Any
    key: str | None = None

    def flag_given(self, value: Any) -> str:
        """The flag that gave ``value``: ``--no-cdn`` for False from ``--cdn/--no-cdn``."""
        on, _, off = next(name for name in self.info.param_decls if name.startswith("--")).partition("/")
        return off if off and value is False else on


def _help(text: str, env: str, default: str) -> dict[str, Any]:
    """Help with the environment variables (``\\[`` keeps rich from reading them as markup) and the default.

    Written here rather than read from ``config.KEYS``, which would cost every
    start-up its import; ``tests/test_cli.py`` holds the two in agreement.
    """
    facts = ([f"env: {env}"] if env else []) + ([f"default: {default}"] if default else [])
    return {"help": " ".join([text, *(f"\\[{fact}]" for fact in facts)]), "show_default": False}


def _opt(param: str, decl: str, help: str, key: str | None = None, metavar: str | None = None,
         env: str = "", default: str = "") -> Opt:
    info = typer.Option(None, decl, metavar=metavar, **_help(help, env, default))
    return Opt(param, Optional[str], info, key)  # noqa: UP045


def _switch(param: str, decl: str, help: str, key: str, env: str = "", default: str = "") -> Opt:
    return Opt(param, Optional[bool], typer.Option(None, decl, **_help(help, env, default)), key)  # noqa: UP045


DATA_DIR = _opt("data_dir", "--data-dir", "The data directory.", "data_dir", "PATH", "DATAGC_DATA_DIR", "./.data")
CONFIG_FILE = _opt("config_path", "--config", "TOML configuration file.", None, "PATH", "DATAGC_CONFIG",
                   "none: no file is read")
JSON = Opt("json_output", bool, typer.Option(False, "--json", help="One JSON report on stdout."))
QUIET = Opt("quiet", bool, typer.Option(False, "--quiet", "-q", help="Only errors (not even 'another datagc "
                                        "holds the lock': the exit status, 75, says it)."))
#: what every command that reads the tree takes (audit included)
READ: tuple[Opt, ...] = (DATA_DIR, CONFIG_FILE, JSON, QUIET)
#: what the commands that change the tree take besides
CHANGE: tuple[Opt, ...] = (
    Opt("dry_run", bool, typer.Option(False, "--dry-run", "-n", help="Plan and report; change nothing (and take "
                                      "no lock).")),
    Opt("verbose", bool, typer.Option(False, "--verbose", "-v", help="Also what was kept, and why.")),
    _opt("wait", "--wait", "Wait this long (e.g. 30s, 5m) for another datagc's lock instead of exiting 75.", None,
         "DURATION", default="exit 75 at once"),
    _opt("metrics_textfile", "--metrics-textfile", "Write Prometheus textfile metrics here.", "metrics.textfile",
         "PATH", "DATAGC_METRICS_TEXTFILE", "off"),
)
COMMON = READ + CHANGE
ROTATE: tuple[Opt, ...] = (
    _opt("logs", "--logs", "Event logs to rotate, comma-separated.", "rotate.logs", "LIST", "DATAGC_ROTATE_LOGS",
         "events.jsonl"),
    _opt("max_bytes", "--max-bytes", "Rotate a log larger than this (e.g. 50MiB).", "rotate.max_bytes", "SIZE",
         "DATAGC_ROTATE_MAX_BYTES, GC_EVENT_LOG_MAX_BYTES", "50MiB"),
    _opt("keep_lines", "--keep-lines", "Newest complete lines to keep.", "rotate.keep_lines", "N",
         "DATAGC_ROTATE_KEEP_LINES, GC_EVENT_LOG_KEEP_LINES", "10000"),
    _opt("keep_bytes", "--keep-bytes", "At most this many bytes kept.", "rotate.keep_bytes", "SIZE",
         "DATAGC_ROTATE_KEEP_BYTES", "half of --max-bytes"),
)
CDN: tuple[Opt, ...] = (
    _switch("cdn", "--cdn/--no-cdn", "Media are also on the CDN.", "cdn.enabled", "DATAGC_CDN_ENABLED",
            "on when R2_ACCESS_KEY_ID is set"),
    _opt("media_dirs", "--media-dirs", "Media directories, comma-separated.", "sweep.media_dirs", "LIST",
         "DATAGC_SWEEP_MEDIA_DIRS", "images,videos,voice,bid-images"),
    _opt("cdn_public_url", "--cdn-public-url", "The CDN's public base URL: the only URLs that count as CDN copies.",
         "cdn.public_url", "URL", "DATAGC_CDN_PUBLIC_URL, R2_PUBLIC_URL", "none: no URL is a CDN copy"),
)
SWEEP: tuple[Opt, ...] = (
    _opt("max_age", "--max-age", "CDN on: delete media older than this (e.g. 7d).", "sweep.max_age", "DURATION",
         "DATAGC_SWEEP_MAX_AGE, GC_MEDIA_MAX_AGE_MS", "7d"),
    _opt("published_grace", "--published-grace", "CDN on: delete published copies older than this.",
         "sweep.published_grace", "DURATION", "DATAGC_SWEEP_PUBLISHED_GRACE", "15m"),
    _opt("temp_max_age", "--temp-max-age", "Delete orphan temp files older than this.", "sweep.temp_max_age",
         "DURATION", default="1d"),
    _switch("cdn_verify", "--cdn-verify/--no-cdn-verify", "HEAD the CDN copy before deleting a published file.",
            "cdn.verify", "DATAGC_CDN_VERIFY", "no-cdn-verify"),
)
PRESSURE: tuple[Opt, ...] = (
    _opt("threshold", "--threshold", "Evict when the disk is fuller than this (0.7 or 70%).", "pressure.threshold",
         "FRACTION", "DATAGC_PRESSURE_THRESHOLD, GC_DISK_PRESSURE_THRESHOLD", "0.7"),
    _opt("target", "--target", "Evict down to this usage.", "pressure.target", "FRACTION", "DATAGC_PRESSURE_TARGET",
         "0.6"),
    _opt("min_age", "--min-age", "Never evict media younger than this.", "pressure.min_age", "DURATION",
         "DATAGC_PRESSURE_MIN_AGE, GC_MEDIA_PRESSURE_AGE_MS", "1d"),
    _opt("budget", "--budget", "The data dir's own capacity; threshold/target apply to it too.", "pressure.budget",
         "SIZE", "DATAGC_PRESSURE_BUDGET", "off"),
    _opt("min_free", "--min-free", "Also evict when less than this is free.", "pressure.min_free", "SIZE",
         "DATAGC_PRESSURE_MIN_FREE", "off"),
    _opt("min_free_target", "--min-free-target", "Evict until this is free.", "pressure.min_free_target", "SIZE",
         "DATAGC_PRESSURE_MIN_FREE_TARGET", "1.5 x min-free"),
    _opt("inode_threshold", "--inode-threshold", "Also evict when this fraction of inodes is used.",
         "pressure.inode_threshold", "FRACTION", "DATAGC_PRESSURE_INODE_THRESHOLD", "0.95"),
    _opt("inode_target", "--inode-target", "Evict down to this inode usage.", "pressure.inode_target", "FRACTION",
         "DATAGC_PRESSURE_INODE_TARGET", "0.9"),
)
AUDIT: tuple[Opt, ...] = (_opt("top", "--top", "How many of the largest files to list.", "audit.top", "N",
                               "DATAGC_AUDIT_TOP", "10"),)
WATCH: tuple[Opt, ...] = (
    _opt("interval", "--interval", "Time between passes.", "watch.interval", "DURATION",
         "DATAGC_WATCH_INTERVAL, GC_SWEEP_INTERVAL_MS", "1h; 5s with TEST_MODE"),
    _opt("initial_delay", "--initial-delay", "Wait before the first pass.", "watch.initial_delay", "DURATION",
         "DATAGC_WATCH_INITIAL_DELAY, GC_INITIAL_DELAY_MS", "1m; 2s with TEST_MODE"),
    _opt("metrics_listen", "--metrics-listen", "Serve Prometheus /metrics over HTTP at this address.",
         "metrics.listen", "HOST:PORT", "DATAGC_METRICS_LISTEN", "off"),
    _opt("check_interval", "--check-interval", "How often to check the pressure limits between passes.",
         "watch.check_interval", "DURATION", "DATAGC_WATCH_CHECK_INTERVAL", "10s; 1s with TEST_MODE"),
)
RUN_ALL = ROTATE + CDN + SWEEP + PRESSURE
HISTORY: tuple[Opt, ...] = (
    Opt("pattern", Optional[str], typer.Argument(  # noqa: UP045
        None, metavar="[PATTERN]", help="A path or glob relative to DATA_DIR (a directory: all under it).")),
    *READ,
    _opt("since", "--since", "Only the changes of the last DURATION (e.g. 7d, 12h).", None, "DURATION",
         default="all of the journal"),
)
