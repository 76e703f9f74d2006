"""``protect.patterns`` spelled the ways operators write them, attacked (SPEC §7 rules 11 and 12).

A path pattern written ``./images/keep/*``, ``images//keep/*`` or
``images/keep/`` used to match no DATA_DIR-relative path at all, so what it
meant to protect was swept and evicted; ``images/**/x.png`` missed
``images/x.png`` and ``**/*.key`` a key at the top. Path patterns are now
normalised like the path settings, ``**/`` also stands for no directory, and a
pattern that could never match (absolute, ``..``) is a configuration error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from datagc.config.values import parse_patterns
from datagc.exitcodes import Exit
from datagc.veto import Protect
from tests.helpers import run_datagc
from tests.sweep_support import write_file

EAGER = ("--threshold", "0.000001", "--target", "0.000001", "--min-age", "0s")

segments = st.sampled_from(["images", "keep", "a.png", "b.key", "x-1.mp4", "videos", "deep"])
rel_paths = st.lists(segments, min_size=1, max_size=5).map("/".join)
canonical = st.lists(st.sampled_from(["images", "keep", "*", "*.png", "[ab]*", "x-[0-9].mp4", "**", "videos"]),
                     min_size=2, max_size=4).map("/".join)


def respell(pattern: str, how: list[int]) -> str:
    """``pattern`` with a leading ``./``, doubled slashes or ``/./`` between its components, as chosen by ``how``."""
    parts = pattern.split("/")
    out = "./" if how and how[0] % 2 else ""
    for index, part in enumerate(parts):
        out += part
        if index < len(parts) - 1:
            out += ("/", "//", "/./")[how[(index + 1) % len(how)] % 3] if how else "/"
    return out


@given(pattern=canonical, how=st.lists(st.integers(0, 5), max_size=6), paths=st.lists(rel_paths, max_size=20))
@example(pattern="images/keep/*", how=[1, 1], paths=["images/keep/a.png"])
@example(pattern="images/*", how=[0, 2], paths=["images/a.png", "videos/a.png"])
def test_a_respelled_path_pattern_protects_exactly_what_its_plain_spelling_does(
    pattern: str, how: list[int], paths: list[str]
) -> None:
    plain, respelled = Protect(parse_patterns([pattern])), Protect(parse_patterns([respell(pattern, how)]))
    assert [respelled(path) for path in paths] == [plain(path) for path in paths]


@pytest.mark.parametrize(("pattern", "protected", "free"), [
    ("./images/keep/*", ["images/keep/a.png", "images/keep/deep/b.png"], ["images/a.png", "keep/a.png"]),
    ("images//keep/*", ["images/keep/a.png"], ["images/keeps/a.png"]),
    ("images/./keep/*", ["images/keep/a.png"], ["images/a.png"]),
    ("images/keep/", ["images/keep/a.png", "images/keep/deep/b.png"], ["images/keep.png", "images/keeper/a.png"]),
    ("images/**/secret.png", ["images/secret.png", "images/a/b/secret.png"], ["videos/secret.png",
                                                                               "images/not-secret.png"]),
    ("**/*.key", ["a.key", "images/b.key", "images/deep/c.key"], ["images/key.png"]),
    ("images/[ab]*.png", ["images/a1.png", "images/b.png"], ["images/c.png", "videos/a.png"]),
    ("[!x]*.key", ["images/y.key"], ["images/x.key"]),
])
def test_each_spelling_protects_what_it_says(pattern: str, protected: list[str], free: list[str]) -> None:
    protect = Protect(parse_patterns([pattern]))
    assert [path for path in protected if not protect(path)] == []
    assert [path for path in free if protect(path)] == []
    assert all(protect.which(path) is not None for path in protected)


@pytest.mark.parametrize("pattern", ["/images/keep/*", "images/../secret/*", "./"])
def test_a_pattern_that_could_never_match_is_a_configuration_error(tmp_path: Path, pattern: str) -> None:
    data = tmp_path / "data"
    victim = write_file(data / "images" / "keep" / "a.png", 4096, 30, now=time.time())
    (data / "posts.json").write_text("[]")
    config = tmp_path / "datagc.toml"
    config.write_text(f'[protect]\npatterns = ["*.json", "{pattern}"]\n')
    result = run_datagc("sweep", "--data-dir", str(data), "--config", str(config), "--cdn")
    assert result.code == 2, result.stderr
    assert "protect.patterns" in result.stderr and "Traceback" not in result.stderr
    assert victim.exists()


def test_sweep_and_pressure_leave_every_spelling_s_files_alone(tmp_path: Path) -> None:
    """The real CLI, with the spellings in a config file: both passes keep them and take everything else."""
    data = tmp_path / "data"
    now = time.time()
    kept = [write_file(data / path, 4096, 30, now=now) for path in (
        "images/keep/a.png", "images/keep/deep/b.png", "images/secret/c.png", "images/d-secret.png",
        "videos/e-1.mp4", "videos/x/y/e-2.mp4", "voice/top.key")]
    gone = [write_file(data / path, 4096, 30, now=now) for path in (
        "images/other/a.png", "videos/e-x.mp4", "voice/a.mp3")]
    (data / "posts.json").write_text("[]")
    config = tmp_path / "datagc.toml"
    config.write_text('[protect]\npatterns = ["./images/keep/*", "images//secret/", "images/./*-secret.png", '
                      '"videos/**/e-[0-9].mp4", "**/*.key", "*.json"]\n')
    sweep = run_datagc("sweep", "--data-dir", str(data), "--config", str(config), "--cdn", "--json")
    assert sweep.code == Exit.SWEPT, sweep.stderr
    assert [path for path in kept if not path.exists()] == []
    assert [path for path in gone if path.exists()] == []
    for path in gone:
        write_file(path, 4096, 30, now=now)
    pressure = run_datagc("pressure", "--data-dir", str(data), "--config", str(config), "--json", *EAGER)
    assert [path for path in kept if not path.exists()] == [], pressure.stdout
    assert [path for path in gone if path.exists()] == []
    assert pressure.json()["steps"][0]["spared"]["protected"]["files"] == len(kept)
    shown = run_datagc("config", "--data-dir", str(data), "--config", str(config), "--json")
    assert shown.code == 0
    assert "images/keep/*,images/secret/*,images/*-secret.png" in shown.stdout
