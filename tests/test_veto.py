"""The one veto (SPEC §7 rule 11), attacked: every pass and a hand-made plan against the same rules.

Each class the issue found is tried on a real tree through the real CLI:
protect patterns with and without ``/`` (sweep and pressure used to
disagree), a protected file named in ``rotate.logs``, service files that
carry datagc's temp mark, ``state.dir``; then plans injected by hand into the
executor, and a property over the pure planners: no plan ever holds a target
the veto refuses.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datagc import executor
from datagc.eviction import plan_pressure
from datagc.exitcodes import Exit
from datagc.facts import FileIdentity, FileStat
from datagc.feed.index import FeedIndex
from datagc.limits import Need
from datagc.model import Action, Delete, FeedNull, Rotate, StepReport
from datagc.passes import rotate
from datagc.passes.sweep import plan_sweep
from datagc.veto import Protect, Veto, is_normal, pattern_matcher, state_dir
from tests.helpers import run_datagc
from tests.steps import why
from tests.sweep_support import DAY, NOW, context, make_config, snapshot, write_file


def old(path: Path, size: int = 4096, days: float = 30) -> Path:
    return write_file(path, size, days, now=time.time())


# --- one matcher ------------------------------------------------------------------


def test_a_pattern_with_a_slash_matches_the_path_one_without_the_name() -> None:
    protect = Protect(("images/keep/*", "*.key", "cache-*"))
    assert protect("images/keep/a.png") and protect("videos/x/id.key") and protect("images/cache-1.png")
    assert not protect("images/other/keep/a.png")  # a path pattern is anchored at DATA_DIR
    assert not protect("videos/keep/a.png") and not protect("images/keep.png")
    assert protect.which("images/keep/a.key") == "images/keep/*"


def test_sweep_and_pressure_agree_on_a_path_pattern(tmp_path: Path) -> None:
    """Sweep matched names only and deleted what pressure protected; now neither touches it."""
    data = tmp_path / "data"
    keep = old(data / "images" / "keep" / "a.png")
    gone = old(data / "images" / "other" / "b.png")
    (data / "posts.json").write_text("[]")
    config = tmp_path / "datagc.toml"
    config.write_text('[protect]\npatterns = ["images/keep/*", "*.json"]\n')
    sweep = run_datagc("sweep", "--data-dir", str(data), "--config", str(config), "--cdn", "--json")
    assert sweep.code == Exit.SWEPT, sweep.stderr
    assert keep.exists() and not gone.exists()
    kept = {entry["path"]: entry["why"] for entry in sweep.json()["steps"][0]["kept"]}
    assert "images/keep/*" in kept["images/keep/a.png"]
    pressure = run_datagc("pressure", "--data-dir", str(data), "--config", str(config), "--threshold", "0.000001",
                          "--target", "0.000001", "--min-age", "0s", "--json")
    assert keep.exists(), pressure.stdout
    assert pressure.json()["steps"][0]["spared"]["protected"]["files"] == 1


# --- rotation and datagc's own temps ----------------------------------------------


def test_rotating_a_protected_log_is_refused_and_the_file_left_byte_for_byte(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = data / "store.json"
    store.write_bytes(b'{"line": 1}\n' * 20000)
    before = snapshot(data)
    result = run_datagc("rotate", "--data-dir", str(data), "--logs", "store.json", "--max-bytes", "1KiB",
                        "--keep-lines", "5", "--json")
    assert snapshot(data) == before
    assert result.code == Exit.STEP_FAILED
    step = result.json()["steps"][0]
    assert step["actions"] == [] and "protect.patterns ('*.json')" in step["error"]
    assert "refused to rotate store.json" in result.stderr


def test_service_files_carrying_the_temp_mark_are_not_datagc_leftovers(tmp_path: Path) -> None:
    """Only ``<log or feed>.datagc-tmp.<digits>`` older than the pass is a leftover; and the veto still applies."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "posts.json").write_text("[]")
    (data / "events.jsonl").write_text("{}\n")
    service = [old(data / name) for name in ("agent-keypair.datagc-tmp.1", "cache-x.datagc-tmp.2",
                                             "posts.json.datagc-tmp.3.key", "notes.txt.datagc-tmp.4")]
    young = write_file(data / "posts.json.datagc-tmp.5", 10, -1 / 24, now=time.time())  # mtime an hour ahead
    stale = [old(data / "posts.json.datagc-tmp.6"), old(data / "events.jsonl.datagc-tmp.7")]
    result = run_datagc("run-all", "--data-dir", str(data), "--json")
    assert all(path.exists() for path in [*service, young]), result.stdout
    assert not any(path.exists() for path in stale)
    config = tmp_path / "protect.toml"
    config.write_text('[protect]\npatterns = ["*.datagc-tmp.*"]\n')
    again = old(data / "posts.json.datagc-tmp.8")
    refused = run_datagc("sweep", "--data-dir", str(data), "--config", str(config), "--json")
    assert again.exists() and refused.code & Exit.STEP_FAILED
    assert "protect.patterns ('*.datagc-tmp.*')" in refused.json()["steps"][0]["error"]


def test_dry_run_shows_the_leftovers_a_real_run_removes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "posts.json").write_text("[]")
    stale = old(data / "posts.json.datagc-tmp.42")
    dry = run_datagc("sweep", "--data-dir", str(data), "--dry-run", "--json")
    assert stale.exists()
    (action,) = dry.json()["steps"][0]["actions"]
    assert (action["path"], action["reason"], action["detail"]) == (stale.name, "temp", "left by an interrupted datagc")
    assert dry.code == Exit.SWEPT


def test_nothing_under_the_state_dir_is_ever_deleted(tmp_path: Path) -> None:
    """Even when an operator names it as a media dir and leaves protect.patterns empty."""
    data = tmp_path / "data"
    journal = old(data / ".datagc" / "journal.jsonl")
    (data / "posts.json").write_text("[]")
    config = tmp_path / "datagc.toml"
    config.write_text('[protect]\npatterns = []\n[sweep]\nmedia_dirs = [".datagc", "images"]\n')
    result = run_datagc("run-all", "--data-dir", str(data), "--config", str(config), "--cdn", "--json",
                        "--threshold", "0.000001", "--target", "0.000001", "--min-age", "0s")
    assert journal.exists(), result.stdout
    sweep = result.json()["steps"][1]
    assert any(entry["path"] == ".datagc/journal.jsonl" and "state.dir" in entry["why"] for entry in sweep["kept"])


def test_state_dir_helper_reads_the_key_when_present(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert state_dir(config) == ".datagc"


# --- plans injected by hand ----------------------------------------------------------


def delete_of(root: Path, path: str) -> Delete:
    st = (root / path).lstat()
    return Delete(path, st.st_blocks * 512, "age", 0.0, FileIdentity.of(st))


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_executor_refuses_every_forbidden_target_it_is_handed(tmp_path: Path, dry_run: bool) -> None:
    root = tmp_path / "data"
    targets = ["posts.json", "cartoons.json", "agent.key", "events.jsonl", "notes/x.png", "images/cache-1.png",
               ".datagc/journal.jsonl", "README.txt"]
    for path in [*targets, "images/fine.png"]:
        old(root / path)
    (root / "posts.json").write_text("[]")  # the feed: parsed before any deletion
    plan: list[Action] = [delete_of(root, path) for path in targets]
    plan += [
        Rotate("cartoons.json", 5000, 100, 1),  # protected and not a log
        Rotate("images/fine.png", 5000, 100, 1),  # not a log
        FeedNull("cartoons.json", "imageUrl", "/images/fine.png"),  # not a feed
        Delete("images/../posts.json", 4096, "age", 0.0, FileIdentity(0, 0, 0, 0, 0)),  # not a plain path
        delete_of(root, "images/fine.png"),
    ]
    before = snapshot(root)
    step = StepReport("sweep")
    with context(root, make_config(root, sweep__media_dirs="images"), dry_run=dry_run) as ctx:
        executor.apply(ctx, plan, step)
    assert [action.path for action in step.actions] == ["images/fine.png"]
    after = snapshot(root)
    if not dry_run:
        del before["images/fine.png"], before["images"], after["images"]  # its directory's mtime moved
    assert after == before
    refused = [kept.path for kept in step.kept]
    assert refused == [*targets, "cartoons.json", "images/fine.png", "cartoons.json", "images/../posts.json"]
    assert all(why(kept).startswith("refused") for kept in step.kept)
    assert step.status == "error" and step.flags & Exit.STEP_FAILED


# --- the property: no planner ever proposes what the executor would refuse ------------

segment = st.sampled_from(["images", "videos", "keep", ".datagc", "cache-1", "a.png", "b.json", "id.key",
                           "agent-keypair", "x.tmp.1", "posts.json", "events.jsonl"])
paths = st.lists(segment, min_size=1, max_size=4).map("/".join)
patterns = st.lists(st.sampled_from(["*.json", "cache-*", "*.key", "*keypair*", "images/keep/*", "videos/*",
                                     "*.png", "keep/*", "*.tmp.*"]), max_size=4)
media_dirs = st.lists(st.sampled_from(["images", "videos", "images/keep", ".datagc", "keep"]), min_size=1,
                      max_size=3, unique=True)


def stat_of(path: str, age_days: float) -> FileStat:
    return FileStat(path, int((NOW - age_days * DAY) * 1e9), 1000, 4096, 1, 1, abs(hash(path)))


@settings(max_examples=150, deadline=None)
@given(files=st.lists(st.tuples(paths, st.floats(0, 60)), max_size=25), protect=patterns, dirs=media_dirs,
       refs=st.sets(paths, max_size=5))
@example(files=[("images/keep/a.png", 30.0), (".datagc/j.png", 30.0)], protect=["images/keep/*"],
         dirs=["images", ".datagc"], refs=set())
@example(files=[("x.tmp.1", 30.0), ("images/b.json", 30.0)], protect=["*.json"], dirs=["images"], refs=set())
def test_no_plan_of_any_pass_holds_a_target_the_veto_refuses(
    files: list[tuple[str, float]],
    protect: list[str],
    dirs: list[str],
    refs: set[str],
) -> None:
    root = Path("/nonexistent")
    config = make_config(root, cdn__enabled=True, protect__patterns=",".join(protect) or ",",
                         sweep__media_dirs=",".join(dirs))
    veto = Veto(config)
    prefixes = tuple(f"{d}/" for d in config.sweep.media_dirs)
    # what the observers can yield: media files under a media dir, temp files at the top
    is_temp = pattern_matcher(config.sweep.temp_patterns).fullmatch
    observed = [stat_of(path, age) for path, age in files
                if path.startswith(prefixes) or ("/" not in path and is_temp(path))]
    index = FeedIndex(local_refs={path: [FeedNull("posts.json", "imageUrl", f"/{path}")] for path in refs})
    sweep = plan_sweep(observed, index, config, NOW).actions
    media = [file for file in observed if "/" in file.path]
    pressure = plan_pressure(media, Need(10**12, 10**6), config.pressure, spared=veto.spares,
                             published=frozenset(), local_refs=index.local_refs, cdn_enabled=True, now=NOW).actions
    logs = [rotate.LogFacts(path, "regular", 10**9, None) for path in config.rotate.logs]
    rotations = rotate.plan(logs, config.rotate).actions
    for action in [*sweep, *pressure, *rotations]:
        assert veto.refusal(action) is None, (action, veto.refusal(action))


@given(st.text(alphabet="ab./", max_size=12))
def test_only_plain_relative_paths_are_normal(path: str) -> None:
    parts = path.split("/")
    assert is_normal(path) == (path != "" and all(part not in ("", ".", "..") for part in parts))


def test_a_real_sweep_and_pressure_of_the_sample_propose_nothing_refused(tmp_path: Path) -> None:
    from datagc.demo import build_sample

    root = tmp_path / "data"
    build_sample(root, time.time(), real_bytes=True, scale=0.001)
    eager = ("--threshold", "0.000001", "--target", "0.000001", "--min-age", "0s")
    for command, flags in (("sweep", ()), ("pressure", eager)):
        result = run_datagc(command, "--data-dir", str(root), "--cdn", "--dry-run", "--json", *flags)
        step = result.json()["steps"][0]
        assert step["error"] is None, step
        assert not [entry for entry in step["kept"] if entry["why"].startswith("refused")]


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.sampled_from(["images", "videos", "keep", ".datagc", "cache-1", "a.png", "b.json", ".",
                                      "..", "", "agent-keypair", "posts.json", "events.jsonl"]),
                     min_size=1, max_size=4).map("/".join), protect=patterns, dirs=media_dirs,
       state=st.sampled_from([".datagc", "images/state", "images", "videos/a.png"]))
@example(path="images/state", protect=[], dirs=["images"], state="images/state")
@example(path="images/./a.png", protect=[], dirs=["images"], state=".datagc")
@example(path="images/a.png/..", protect=[], dirs=["images"], state=".datagc")
@example(path="images//a.png", protect=[], dirs=["images"], state=".datagc")
@example(path="images/", protect=[], dirs=["images"], state=".datagc")
def test_the_quick_check_of_a_media_file_allows_only_what_every_rule_allows(
    path: str, protect: list[str], dirs: list[str], state: str
) -> None:
    config = make_config(Path("/nonexistent"), protect__patterns=",".join(protect) or ",",
                         sweep__media_dirs=",".join(dirs), state__dir=state)
    veto = Veto(config)
    assert veto.delete_refusal(path) == veto._delete_refusal(path)
