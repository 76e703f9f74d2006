"""Configuration: precedence flag > environment > file > default, aliases, and errors naming key, source, value."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagc.config.explain import effective_values
from datagc.config.keys import KEYS
from datagc.config.load import FlagValue, load_config
from datagc.errors import ConfigError
from datagc.exitcodes import Exit


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "datagc.toml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_spec() -> None:
    config = load_config(env={})
    assert config.enabled is True
    assert str(config.data_dir) == ".data"
    assert config.cdn.enabled is False
    assert config.rotate.logs == ("events.jsonl",)
    assert config.rotate.max_bytes == 50 * 1024**2
    assert config.rotate.keep_lines == 10_000
    assert config.rotate.keep_bytes == 25 * 1024**2
    assert config.sweep.media_dirs == ("images", "videos", "voice", "bid-images")
    assert config.sweep.max_age == 7 * 86400
    assert config.sweep.published_grace == 15 * 60
    assert config.sweep.temp_patterns == ("*.tmp.*",)
    assert config.sweep.temp_max_age == 86400
    assert (config.pressure.threshold, config.pressure.target, config.pressure.min_age) == (0.70, 0.60, 86400)
    assert config.feed.files == ("posts.json",)
    assert config.feed.url_fields == ("imageUrl", "videoUrl")
    assert config.protect.patterns == ("*.json", "cache-*", "*.key", "*keypair*")
    assert (config.watch.interval, config.watch.initial_delay) == (3600, 60)
    assert config.metrics.textfile == ""
    assert all(source == "default" or source.startswith(("default", "auto")) for source in config.sources.values())


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[sweep]\nmax_age = "3d"\npublished_grace = "1h"\ntemp_max_age = "2h"\n')
    env = {"DATAGC_SWEEP_MAX_AGE": "2d", "DATAGC_SWEEP_PUBLISHED_GRACE": "30m"}
    flags = {"sweep.max_age": FlagValue("--max-age", "1d")}
    config = load_config(flags, env, path)
    assert config.sweep.max_age == 86400
    assert config.sources["sweep.max_age"] == "flag --max-age"
    assert config.sweep.published_grace == 1800
    assert config.sources["sweep.published_grace"] == "environment DATAGC_SWEEP_PUBLISHED_GRACE"
    assert config.sweep.temp_max_age == 7200
    assert config.sources["sweep.temp_max_age"] == f"file {path}"
    assert config.sources["pressure.target"] == "default"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'enabled = false\n[rotate]\nlogs = ["a.jsonl", "logs/b.jsonl"]\n')
    config = load_config(env={"DATAGC_CONFIG": path})
    assert config.enabled is False
    assert config.rotate.logs == ("a.jsonl", "logs/b.jsonl")


def test_service_aliases_take_milliseconds() -> None:
    env = {
        "GC_MEDIA_MAX_AGE_MS": "3600000",
        "GC_MEDIA_PRESSURE_AGE_MS": "1500",
        "GC_SWEEP_INTERVAL_MS": "60000",
        "GC_INITIAL_DELAY_MS": "250",
        "GC_EVENT_LOG_MAX_BYTES": "1048576",
        "GC_EVENT_LOG_KEEP_LINES": "42",
        "GC_DISK_PRESSURE_THRESHOLD": "0.8",
        "GC_ENABLED": "false",
    }
    config = load_config(env=env)
    assert config.sweep.max_age == 3600
    assert config.pressure.min_age == 1.5
    assert config.watch.interval == 60
    assert config.watch.initial_delay == 0.25
    assert config.rotate.max_bytes == 1048576
    assert config.rotate.keep_bytes == 524288
    assert config.rotate.keep_lines == 42
    assert config.pressure.threshold == 0.8
    assert config.enabled is False
    assert config.sources["sweep.max_age"] == "environment GC_MEDIA_MAX_AGE_MS"


def test_datagc_names_win_over_service_aliases() -> None:
    config = load_config(env={"DATAGC_SWEEP_MAX_AGE": "2d", "GC_MEDIA_MAX_AGE_MS": "1000"})
    assert config.sweep.max_age == 2 * 86400


def test_cdn_is_auto_enabled_by_r2_credentials() -> None:
    assert load_config(env={"R2_ACCESS_KEY_ID": "key"}).cdn.enabled is True
    assert load_config(env={"R2_ACCESS_KEY_ID": ""}).cdn.enabled is False
    explicit = load_config(env={"R2_ACCESS_KEY_ID": "key", "DATAGC_CDN_ENABLED": "false"})
    assert explicit.cdn.enabled is False
    assert load_config(env={"R2_PUBLIC_URL": "https://cdn.example.com"}).cdn.public_url == "https://cdn.example.com"


def test_test_mode_shortens_watch_defaults() -> None:
    config = load_config(env={"TEST_MODE": "true"})
    assert (config.watch.interval, config.watch.initial_delay) == (5, 2)
    assert config.sources["watch.interval"] == "default (TEST_MODE=true)"


def test_comma_lists_from_environment() -> None:
    config = load_config(env={"DATAGC_ROTATE_LOGS": "events.jsonl, audit.jsonl", "DATAGC_SWEEP_MEDIA_DIRS": "img"})
    assert config.rotate.logs == ("events.jsonl", "audit.jsonl")
    assert config.sweep.media_dirs == ("img",)


def test_percent_thresholds() -> None:
    config = load_config(env={"DATAGC_PRESSURE_THRESHOLD": "85%", "DATAGC_PRESSURE_TARGET": "0.5"})
    assert config.pressure.threshold == pytest.approx(0.85)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATAGC_SWEEP_MAX_AGE": "7x"}, ["sweep.max_age", "DATAGC_SWEEP_MAX_AGE", "'7x'"]),
        ({"DATAGC_ROTATE_MAX_BYTES": "lots"}, ["rotate.max_bytes", "DATAGC_ROTATE_MAX_BYTES", "'lots'"]),
        ({"GC_MEDIA_MAX_AGE_MS": "7d"}, ["sweep.max_age", "GC_MEDIA_MAX_AGE_MS", "'7d'"]),
        ({"DATAGC_PRESSURE_THRESHOLD": "1.5"}, ["pressure.threshold", "'1.5'"]),
        ({"DATAGC_PRESSURE_TARGET": "0.9"}, ["pressure.target", "must not exceed pressure.threshold"]),
        ({"DATAGC_ENABLED": "maybe"}, ["enabled", "DATAGC_ENABLED", "'maybe'"]),
        ({"DATAGC_ROTATE_KEEP_LINES": "0"}, ["rotate.keep_lines", "at least 1"]),
        ({"DATAGC_ROTATE_KEEP_BYTES": "60MiB"}, ["rotate.keep_bytes", "rotate.max_bytes"]),
        ({"DATAGC_SWEEP_MEDIA_DIRS": "images,../etc"}, ["sweep.media_dirs", "'../etc'"]),
        ({"DATAGC_ROTATE_LOGS": "/var/log/x"}, ["rotate.logs", "relative path"]),
    ],
)
def test_bad_values_name_key_source_and_value(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=env)
    assert caught.value.exit_code == Exit.USAGE
    for name in names:
        assert name in str(caught.value)


def test_bad_file_values_name_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[pressure]\nmin_age = "soon"\n')
    with pytest.raises(ConfigError, match=rf"pressure.min_age = 'soon' \(from file {path}\)"):
        load_config(env={}, config_path=path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sweep]\nmax_agee = '1d'\n", "unknown key 'sweep.max_agee'"),
        ("not toml at all =", "not valid TOML"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, config_path=write_toml(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={}, config_path=str(tmp_path / "nope.toml"))


def test_effective_values_cover_every_key_in_written_form() -> None:
    rows = effective_values(load_config(env={}))
    assert [row[0] for row in rows] == [key.name for key in KEYS]
    shown = {key: value for key, value, _ in rows}
    assert shown["rotate.max_bytes"] == "50MiB"
    assert shown["sweep.max_age"] == "7d"
    assert shown["pressure.min_age"] == "1d"
    assert shown["sweep.media_dirs"] == "images,videos,voice,bid-images"


def test_pressure_limits_defaults_and_derived_values(tmp_path: Path) -> None:
    config = load_config(env={})
    settings = config.pressure
    assert (settings.budget, settings.min_free, settings.min_free_target) == (None, None, None)
    assert (settings.inode_threshold, settings.inode_target) == (0.95, 0.90)
    assert config.watch.check_interval == 10
    assert load_config(env={"TEST_MODE": "true"}).watch.check_interval == 1
    path = write_toml(tmp_path, '[pressure]\nbudget = "10GiB"\nmin_free = "2GiB"\ninode_threshold = "80%"\n')
    config = load_config(env={}, config_path=path)
    assert (config.pressure.budget, config.pressure.min_free) == (10 * 1024**3, 2 * 1024**3)
    assert config.pressure.min_free_target == 3 * 1024**3
    assert config.sources["pressure.min_free_target"] == "default (1.5 x pressure.min_free)"
    assert config.pressure.inode_target == pytest.approx(0.72), "below a low inode threshold, as target follows"
    shown = {key: value for key, value, _ in effective_values(config)}
    assert (shown["pressure.budget"], shown["pressure.min_free_target"]) == ("10GiB", "3GiB")
    assert shown["pressure.min_free"] == "2GiB"
    assert {key: value for key, value, _ in effective_values(load_config(env={}))}["pressure.budget"] == "off"
    assert load_config(env={}, config_path=write_toml(tmp_path, '[pressure]\nbudget = "off"\n')).pressure.budget is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATAGC_PRESSURE_BUDGET": "0"}, ["pressure.budget", "at least 1 byte"]),
        ({"DATAGC_PRESSURE_BUDGET": "lots"}, ["pressure.budget", "'lots'"]),
        ({"DATAGC_PRESSURE_MIN_FREE_TARGET": "1GiB"}, ["pressure.min_free_target", "without pressure.min_free"]),
        ({"DATAGC_PRESSURE_MIN_FREE": "2GiB", "DATAGC_PRESSURE_MIN_FREE_TARGET": "1GiB"},
         ["pressure.min_free_target", "at least pressure.min_free (2GiB)"]),
        ({"DATAGC_PRESSURE_INODE_TARGET": "0.99"}, ["pressure.inode_target", "pressure.inode_threshold"]),
        ({"DATAGC_PRESSURE_INODE_THRESHOLD": "0"}, ["pressure.inode_threshold", "above 0"]),
        ({"DATAGC_WATCH_CHECK_INTERVAL": "0"}, ["watch.check_interval", "longer than zero"]),
    ],
)
def test_bad_pressure_limits(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=env)
    for name in names:
        assert name in str(caught.value)
