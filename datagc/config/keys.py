"""Every configuration key of SPEC §3, declared once (``KEYS``): its parser, default and environment names."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from datagc.config.values import (
    Parser,
    parse_base_url,
    parse_bool,
    parse_duration_setting,
    parse_fraction,
    parse_int,
    parse_list,
    parse_listen,
    parse_millis,
    parse_optional_size_setting,
    parse_patterns,
    parse_relative_paths,
    parse_size_setting,
    parse_state_dir,
    parse_string,
)


class Key(NamedTuple):
    """One configuration key: how to parse it and where it may come from."""

    name: str
    parse: Parser
    default: Any
    help: str
    env: tuple[str, ...] = ()
    #: environment names whose value is read with another parser (``GC_*_MS``)
    env_parsers: Mapping[str, Parser] = MappingProxyType({})


KEYS: tuple[Key, ...] = (
    Key("enabled", parse_bool, True, "kill switch: false makes every pass a no-op",
        ("DATAGC_ENABLED", "GC_ENABLED")),
    Key("data_dir", parse_string, "./.data", "the service's data directory", ("DATAGC_DATA_DIR",)),
    Key("cdn.enabled", parse_bool, None,
        "media are also on the CDN (auto: true when R2_ACCESS_KEY_ID is set)",
        ("DATAGC_CDN_ENABLED",)),
    Key("cdn.public_url", parse_base_url, "",
        "the CDN's base URL: only URLs under it are CDN copies (empty: none are)",
        ("DATAGC_CDN_PUBLIC_URL", "R2_PUBLIC_URL")),
    Key("cdn.verify", parse_bool, False,
        "HEAD the CDN URL (200, same Content-Length) before deleting a published copy",
        ("DATAGC_CDN_VERIFY",)),
    Key("rotate.logs", parse_relative_paths, ("events.jsonl",), "event logs to rotate",
        ("DATAGC_ROTATE_LOGS",)),
    Key("rotate.max_bytes", parse_size_setting, 50 * 1024**2, "rotate a log larger than this",
        ("DATAGC_ROTATE_MAX_BYTES", "GC_EVENT_LOG_MAX_BYTES")),
    Key("rotate.keep_lines", parse_int, 10_000, "newest complete lines to keep",
        ("DATAGC_ROTATE_KEEP_LINES", "GC_EVENT_LOG_KEEP_LINES")),
    Key("rotate.keep_bytes", parse_size_setting, None, "at most this many bytes kept (default: half of max_bytes)",
        ("DATAGC_ROTATE_KEEP_BYTES",)),
    Key("sweep.media_dirs", parse_relative_paths, ("images", "videos", "voice", "bid-images"),
        "media directories", ("DATAGC_SWEEP_MEDIA_DIRS",)),
    Key("sweep.max_age", parse_duration_setting, 7 * 86400.0, "CDN on: delete media older than this",
        ("DATAGC_SWEEP_MAX_AGE", "GC_MEDIA_MAX_AGE_MS"), {"GC_MEDIA_MAX_AGE_MS": parse_millis}),
    Key("sweep.published_grace", parse_duration_setting, 15 * 60.0,
        "CDN on: delete a copy the feed shows by CDN URL once older than this",
        ("DATAGC_SWEEP_PUBLISHED_GRACE",)),
    Key("sweep.temp_patterns", parse_list, ("*.tmp.*",), "orphan temp files at the top of DATA_DIR"),
    Key("sweep.temp_max_age", parse_duration_setting, 86400.0, "delete orphan temp files older than this"),
    Key("pressure.threshold", parse_fraction, 0.70, "evict when the disk is fuller than this",
        ("DATAGC_PRESSURE_THRESHOLD", "GC_DISK_PRESSURE_THRESHOLD")),
    Key("pressure.target", parse_fraction, 0.60, "evict down to this usage",
        ("DATAGC_PRESSURE_TARGET",)),
    Key("pressure.min_age", parse_duration_setting, 86400.0, "never evict media younger than this",
        ("DATAGC_PRESSURE_MIN_AGE", "GC_MEDIA_PRESSURE_AGE_MS"),
        {"GC_MEDIA_PRESSURE_AGE_MS": parse_millis}),
    Key("pressure.budget", parse_optional_size_setting, None,
        "the data directory's own capacity (emptyDir sizeLimit, quota): its allocated bytes are also held "
        "against threshold/target as fractions of this", ("DATAGC_PRESSURE_BUDGET",)),
    Key("pressure.min_free", parse_optional_size_setting, None,
        "also evict when the filesystem has less than this free",
        ("DATAGC_PRESSURE_MIN_FREE",)),
    Key("pressure.min_free_target", parse_optional_size_setting, None, "evict until at least this is free",
        ("DATAGC_PRESSURE_MIN_FREE_TARGET",)),
    Key("pressure.inode_threshold", parse_fraction, 0.95,
        "also evict when this fraction of the filesystem's inodes is used", ("DATAGC_PRESSURE_INODE_THRESHOLD",)),
    Key("pressure.inode_target", parse_fraction, 0.90, "evict until inode use is at or below this",
        ("DATAGC_PRESSURE_INODE_TARGET",)),
    Key("feed.files", parse_relative_paths, ("posts.json",), "feed files whose media URLs are kept consistent"),
    Key("feed.url_fields", parse_list, ("imageUrl", "videoUrl"), "feed fields holding media URLs"),
    Key("protect.patterns", parse_patterns, ("*.json", "cache-*", "*.key", "*keypair*"),
        "file names never deleted, wherever they are"),
    Key("watch.interval", parse_duration_setting, 3600.0, "time between passes of `watch`",
        ("DATAGC_WATCH_INTERVAL", "GC_SWEEP_INTERVAL_MS"), {"GC_SWEEP_INTERVAL_MS": parse_millis}),
    Key("watch.initial_delay", parse_duration_setting, 60.0, "wait before the first pass of `watch`",
        ("DATAGC_WATCH_INITIAL_DELAY", "GC_INITIAL_DELAY_MS"), {"GC_INITIAL_DELAY_MS": parse_millis}),
    Key("watch.check_interval", parse_duration_setting, 10.0,
        "how often `watch` checks the pressure limits between passes", ("DATAGC_WATCH_CHECK_INTERVAL",)),
    Key("metrics.textfile", parse_string, "", "Prometheus textfile-collector output (empty: off)",
        ("DATAGC_METRICS_TEXTFILE",)),
    Key("metrics.listen", parse_listen, "", "HOST:PORT where watch serves /metrics over HTTP (empty: off)",
        ("DATAGC_METRICS_LISTEN",)),
    Key("audit.top", parse_int, 10, "how many of the largest files audit lists", ("DATAGC_AUDIT_TOP",)),
    Key("state.dir", parse_state_dir, ".datagc",
        "datagc's own state (the journal), relative to DATA_DIR unless absolute; never a target",
        ("DATAGC_STATE_DIR",)),
    Key("journal.max_bytes", parse_size_setting, 10 * 1024**2, "the journal keeps its newest entries within this size",
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
