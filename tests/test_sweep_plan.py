"""The sweep planner alone: made-up files, a made-up feed index, a fixed clock, no disk."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from datagc.cdn import Verdict
from datagc.facts import FileStat
from datagc.feed.index import FeedIndex, FeedProblem
from datagc.feed.parse import Undecodable
from datagc.model import Delete, FeedNull
from datagc.passes.sweep import SweepPlan, drop_unverified, plan_sweep
from datagc.wording import detail_text
from tests.steps import why
from tests.sweep_support import DAY, NOW, make_config

ROOT = Path("/nonexistent")  # configs only: the planner never touches a disk
MINUTE = 60.0


def media(path: str, age: float, size: int = 1000) -> FileStat:
    return FileStat(path, int((NOW - age) * 1e9), size, 4096, 1, 1, abs(hash(path)))


def temp(path: str, age: float) -> FileStat:
    """A file at the top of DATA_DIR: the planner treats it as a temp file."""
    return media(path, age)


def deletes(plan: SweepPlan) -> dict[str, str]:
    return {a.path: a.reason for a in plan.actions if isinstance(a, Delete)}


CDN = make_config(ROOT, cdn__enabled=True)
NO_CDN = make_config(ROOT, cdn__enabled=False)
P2 = FeedNull("posts.json", "imageUrl", "/images/b2.png", "p2")
INDEX = FeedIndex(
    local_refs={"images/b2.png": [P2]},
    published={"images/pub.png": "https://cdn.example.com/images/pub.png",
               "images/pub-young.png": "https://cdn.example.com/images/pub-young.png"},
)


def test_cdn_enabled_sweeps_old_media_published_copies_and_old_temps() -> None:
    files = [
        media("images/old.png", 8 * DAY),
        media("voice/deep/nested/old.mp3", 30 * DAY),
        media("images/fresh.png", 6 * DAY),
        media("images/pub.png", 16 * MINUTE),
        media("images/pub-young.png", 14 * MINUTE),
        temp("posts.json.tmp.1", 1.5 * DAY),
        temp("posts.json.tmp.2", 0.5 * DAY),
    ]
    plan = plan_sweep(files, INDEX, CDN, NOW)
    assert deletes(plan) == {
        "images/old.png": "age",
        "voice/deep/nested/old.mp3": "age",
        "images/pub.png": "published",
        "posts.json.tmp.1": "temp",
    }
    assert plan.scanned == len(files)
    assert not plan.kept and not plan.to_verify


def test_details_say_why_and_ages_are_from_now() -> None:
    files = [media("images/old.png", 8 * DAY), media("images/b2.png", 9 * DAY), media("images/pub.png", 10 * DAY),
             temp("x.tmp.1", 2 * DAY)]
    plan = plan_sweep(files, INDEX, CDN, NOW)
    details = {a.path: (detail_text(a.detail), round(a.age)) for a in plan.actions if isinstance(a, Delete)}
    assert details == {
        "images/old.png": ("unreferenced", 8 * DAY),
        "images/b2.png": ("referenced locally by p2", 9 * DAY),
        "images/pub.png": ("on the CDN", 10 * DAY),
        "x.tmp.1": ("orphan temp file", 2 * DAY),
    }


def test_a_local_reference_comes_as_a_feed_null_right_before_its_delete() -> None:
    plan = plan_sweep([media("images/b2.png", 9 * DAY)], INDEX, CDN, NOW)
    actions = list(plan.actions)
    assert actions[0] == P2
    assert isinstance(actions[1], Delete) and actions[1].path == "images/b2.png"


def test_cdn_disabled_sweeps_only_temps() -> None:
    files = [media("images/old.png", 80 * DAY), media("images/pub.png", DAY), temp("posts.json.tmp.1", 2 * DAY)]
    assert deletes(plan_sweep(files, INDEX, NO_CDN, NOW)) == {"posts.json.tmp.1": "temp"}


def test_protect_patterns_veto_anything_and_say_so() -> None:
    files = [media("images/cache-x.json", 30 * DAY), media("images/agent-keypair.bin", 30 * DAY),
             media("images/id.key", 30 * DAY), temp("cache-warm.tmp.1", 5 * DAY), media("images/a.png", 30 * DAY)]
    plan = plan_sweep(files, FeedIndex(), CDN, NOW)
    assert deletes(plan) == {"images/a.png": "age"}
    assert {kept.path for kept in plan.kept} == {"images/cache-x.json", "images/agent-keypair.bin", "images/id.key",
                                                 "cache-warm.tmp.1"}
    assert all("protect.patterns" in why(kept) for kept in plan.kept)


def test_an_unparseable_feed_keeps_every_media_file_but_not_temps() -> None:
    broken = FeedIndex(problems=[FeedProblem("posts.json", "undecodable", decoding=Undecodable(
        "not-json", "Expecting value", line=1, column=1))])
    files = [media("images/old.png", 30 * DAY), temp("posts.json.tmp.1", 2 * DAY)]
    plan = plan_sweep(files, broken, CDN, NOW)
    assert deletes(plan) == {"posts.json.tmp.1": "temp"}
    assert [(kept.path, why(kept)) for kept in plan.kept] == [
        ("images/old.png", "feed posts.json is not JSON (Expecting value at line 1 column 1), and may reference it")]


def test_published_and_also_referenced_locally_waits_for_max_age() -> None:
    index = FeedIndex(local_refs={"images/pub.png": [P2]}, published={"images/pub.png": "https://c/images/pub.png"})
    plan = plan_sweep([media("images/pub.png", DAY)], index, CDN, NOW)
    assert not plan.actions
    assert plan.kept[0].path == "images/pub.png" and "sweep.max_age" in why(plan.kept[0])
    assert deletes(plan_sweep([media("images/pub.png", 8 * DAY)], index, CDN, NOW)) == {"images/pub.png": "age"}


def test_thresholds_are_strict_and_configurable() -> None:
    config = make_config(ROOT, cdn__enabled=True, sweep__max_age="1h", sweep__published_grace="0s",
                         sweep__temp_max_age="10m")
    files = [media("images/a.png", 3600), media("images/b.png", 3601), media("images/pub.png", 1),
             temp("t.tmp.1", 600), temp("t.tmp.2", 601)]
    assert deletes(plan_sweep(files, INDEX, config, NOW)) == {"images/b.png": "age", "images/pub.png": "published",
                                                            "t.tmp.2": "temp"}


def test_verification_lists_published_deletions_and_drops_the_unconfirmed() -> None:
    config = make_config(ROOT, cdn__enabled=True, cdn__verify=True)
    index = FeedIndex(published={f"images/{n}.png": f"https://c/images/{n}.png" for n in ("ok", "bad", "old")})
    files = [media("images/ok.png", DAY, 10), media("images/bad.png", DAY, 20), media("images/old.png", 9 * DAY)]
    plan = plan_sweep(files, index, config, NOW)
    assert plan.to_verify == {"images/ok.png": ("https://c/images/ok.png", 10),
                              "images/bad.png": ("https://c/images/bad.png", 20)}  # age needs no CDN's word
    verified = drop_unverified(plan, {"images/ok.png": Verdict(True, "same-size", "https://c/images/ok.png"),
                                      "images/bad.png": Verdict(False, "status", "https://c/images/bad.png", 404)})
    assert deletes(verified) == {"images/ok.png": "published", "images/old.png": "age"}
    assert [(kept.path, why(kept)) for kept in verified.kept] == [("images/bad.png", "the CDN answered 404 for https://c/images/bad.png")]
    assert next(detail_text(a.detail) for a in verified.actions if isinstance(a, Delete)) == "on the CDN, verified"


names = st.sampled_from(["a.png", "b.png", "c.mp4", "cache-1.json", "d.png"])
trees = st.lists(
    st.tuples(st.sampled_from(["images", "images/x", "videos", "voice/y/z", "bid-images", "top"]), names,
              st.floats(0, 20 * DAY), st.sampled_from(["none", "local", "cdn", "both"])),
    max_size=25,
    unique_by=lambda item: (item[0], item[1]),
)


@settings(max_examples=80, deadline=None)
@given(tree=trees, cdn_on=st.booleans())
def test_a_second_pass_plans_nothing(tree: list[tuple[str, str, float, str]], cdn_on: bool) -> None:
    """Apply the plan (remove deleted files, null their references) and plan again: nothing left to do."""
    config = CDN if cdn_on else NO_CDN
    files = []
    index = FeedIndex()
    for directory, name, age, ref in tree:
        is_temp = directory == "top"
        path = f"{name}.tmp.1" if is_temp else f"{directory}/{name}"
        files.append(media(path, age))
        if ref in ("local", "both"):
            index.local_refs[path] = [FeedNull("posts.json", "imageUrl", f"/{path}", "p")]
        if ref in ("cdn", "both"):
            index.published[path] = f"https://c/{path}"
    first = plan_sweep(files, index, config, NOW)
    gone = set(deletes(first))
    remaining = [file for file in files if file.path not in gone]
    for path in gone:
        index.local_refs.pop(path, None)
    second = plan_sweep(remaining, index, config, NOW)
    assert deletes(second) == {}
    assert not [action for action in second.actions if isinstance(action, FeedNull)]
