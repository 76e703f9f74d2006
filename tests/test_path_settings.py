"""Path-valued settings are normalised once (SPEC §7 rule 12), attacked through the real CLI.

``./images`` once passed validation and then matched no feed reference: sweep
deleted referenced files without nulling them, and pressure found no media.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from datagc.config.load import load_config
from datagc.errors import ConfigError
from datagc.exitcodes import Exit
from tests.helpers import run_datagc
from tests.sweep_support import write_file


@pytest.mark.parametrize("written", ["./images", "images/", "images/.", "./images/./", "images//"])
def test_spellings_of_one_directory_are_one_directory(written: str) -> None:
    config = load_config(env={"DATAGC_SWEEP_MEDIA_DIRS": f"{written},videos",
                              "DATAGC_ROTATE_LOGS": f"{written.rstrip('/')}/./events.jsonl"})
    assert config.sweep.media_dirs == ("images", "videos")
    assert config.rotate.logs == ("images/events.jsonl",)


def test_duplicates_after_normalising_are_dropped() -> None:
    assert load_config(env={"DATAGC_SWEEP_MEDIA_DIRS": "images,./images,images/"}).sweep.media_dirs == ("images",)


@pytest.mark.parametrize(
    ("key", "env", "value", "problem"),
    [
        ("sweep.media_dirs", "DATAGC_SWEEP_MEDIA_DIRS", "/srv/images", "absolute"),
        ("sweep.media_dirs", "DATAGC_SWEEP_MEDIA_DIRS", "images/../..", "'..'"),
        ("sweep.media_dirs", "DATAGC_SWEEP_MEDIA_DIRS", "./", "the data directory itself"),
        ("rotate.logs", "DATAGC_ROTATE_LOGS", ".", "the data directory itself"),
        ("rotate.logs", "DATAGC_ROTATE_LOGS", "logs/../../etc/passwd", "'..'"),
    ],
)
def test_bad_paths_are_configuration_errors_naming_key_source_and_value(
    key: str, env: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={env: value})
    message = str(caught.value)
    assert caught.value.exit_code == Exit.USAGE
    assert key in message and env in message and repr(value) in message and problem in message


def test_an_empty_name_in_a_config_file_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "datagc.toml"
    config.write_text('[feed]\nfiles = ["posts.json", ""]\n')
    result = run_datagc("sweep", "--data-dir", str(tmp_path), "--config", str(config))
    assert result.code == Exit.USAGE and "feed.files" in result.stderr and "empty name" in result.stderr
    assert "Traceback" not in result.stderr


def test_dot_slash_media_dir_still_nulls_the_feed_and_pressure_still_finds_media(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = time.time()
    referenced = write_file(data / "images" / "a.png", 4096, 30, now=now)
    other = write_file(data / "images" / "b.png", 4096, 30, now=now)
    (data / "posts.json").write_text(json.dumps([{"id": "p1", "imageUrl": "/images/a.png"}]))
    sweep = run_datagc("sweep", "--data-dir", str(data), "--cdn", "--media-dirs", "./images/", "--json")
    assert sweep.code == Exit.SWEPT, sweep.stderr
    assert not referenced.exists() and not other.exists()
    assert json.loads((data / "posts.json").read_text()) == [{"id": "p1", "imageUrl": None}]
    kinds = [action["kind"] for action in sweep.json()["steps"][0]["actions"]]
    assert kinds.index("feed-null") < kinds.index("delete")
    write_file(data / "images" / "c.png", 4096, 30, now=now)
    pressure = run_datagc("pressure", "--data-dir", str(data), "--media-dirs", "images/.", "--threshold", "0.000001",
                          "--target", "0.000001", "--min-age", "0s", "--json")
    assert pressure.json()["steps"][0]["eligible"]["unreferenced"]["files"] == 1
    assert not (data / "images" / "c.png").exists()
