"""The pure pressure planner: made-up files, a made-up disk, a fixed clock. No disk touched."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from datagc import limits
from datagc.config.schema import PressureConfig
from datagc.eviction import plan_pressure
from datagc.facts import FileIdentity, FileStat
from datagc.limits import Figures, FsFigures, Need
from datagc.model import Delete, FeedNull
from datagc.openfiles import Holder, OpenFiles
from datagc.veto import Protect
from datagc.wording import detail_text
from tests.steps import why

NOW = 1_764_000_000.0
DAY = 86400.0
MB = 1_000_000
SETTINGS = PressureConfig(threshold=0.70, target=0.60, min_age=DAY)
PROTECT = ("*.json", "cache-*", "*.key", "*keypair*")


def usage(used: int, capacity: int = 100 * MB) -> Figures:
    return Figures(FsFigures(used, capacity - used, capacity, 0, 0))


def bytes_to_free(figures: Figures, target: float) -> int:
    """What the disk limit asks to reach ``target`` (whether or not it is crossed)."""
    (disk,) = limits.evaluate(figures, PressureConfig(threshold=max(target, 0.7), target=target, min_age=DAY))
    return disk.needed_bytes


def media(path: str, age_days: float, size: int = MB, nlink: int = 1, ino: int = 0) -> FileStat:
    mtime_ns = int((NOW - age_days * DAY) * 1e9)
    return FileStat(path, mtime_ns, size, size, nlink, 1, ino or zlib.crc32(path.encode()))


def null(path: str, field: str = "imageUrl", post: str = "p1") -> FeedNull:
    return FeedNull("posts.json", field, "/" + path, post)


def plan(files, used, *, published=(), local_refs=None, cdn=True, settings=SETTINGS, protect=PROTECT,
         inodes=0, open_files=None):
    return plan_pressure(
        files,
        Need(bytes_to_free(usage(used), settings.target), inodes),
        settings,
        spared=Protect(protect),
        published=frozenset(published),
        local_refs=local_refs or {},
        cdn_enabled=cdn,
        now=NOW,
        open_files=open_files,
    )


def deleted(result) -> list[str]:
    return [action.path for action in result.actions if isinstance(action, Delete)]


def test_usage_arithmetic():
    assert limits.evaluate(usage(71 * MB), SETTINGS)[0].crossed
    assert not limits.evaluate(usage(70 * MB), SETTINGS)[0].crossed  # at the threshold is not above it
    assert bytes_to_free(usage(73 * MB), 0.60) == 13 * MB
    assert bytes_to_free(usage(50 * MB), 0.60) == 0
    assert limits.after_freeing(usage(73 * MB), 13 * MB, 1) == usage(60 * MB)
    # root-reserved blocks: capacity is used + available, not the total
    reserved = Figures(FsFigures(total_bytes=110 * MB, used_bytes=80 * MB, free_bytes=20 * MB, inodes_used=0,
                                 inodes_total=0))
    assert bytes_to_free(reserved, 0.60) == 20 * MB


def test_inodes_needed_take_as_many_files_whatever_their_size_and_empty_files_count():
    files = [media("images/a.png", 9, size=0), media("images/b.png", 8), media("images/c.png", 7)]
    assert deleted(plan(files, 50 * MB, inodes=2)) == ["images/a.png", "images/b.png"]
    assert deleted(plan(files, 50 * MB)) == [], "nothing needed, nothing planned"
    assert deleted(plan(files, 61 * MB + 1)) == ["images/b.png", "images/c.png"], "bytes alone: empty files skipped"


def test_bytes_and_inodes_both_needed_take_the_longer_prefix():
    files = [media(f"images/{i}.png", 10 - i, size=MB) for i in range(6)]
    assert len(deleted(plan(files, 62 * MB, inodes=4))) == 4  # 2 MB would do, 4 inodes are asked
    assert len(deleted(plan(files, 65 * MB, inodes=1))) == 5  # 1 inode would do, 5 MB are asked


def test_a_file_held_open_is_kept_with_its_holder_and_the_next_one_is_taken():
    files = [media("images/a.png", 9, ino=5), media("images/b.png", 8), media("images/c.png", 7)]
    held = OpenFiles({(1, 5): Holder(4242, "ffmpeg")})
    result = plan(files, 61 * MB + 1, open_files=held)
    assert deleted(result) == ["images/b.png", "images/c.png"]
    assert [(file.path, holder) for file, holder in result.held_open] == [("images/a.png", Holder(4242, "ffmpeg"))]
    assert any(kept.path == "images/a.png" and "pid 4242 (ffmpeg)" in why(kept) for kept in result.kept)


def test_eviction_order_is_class_then_oldest_first_and_stops_at_target():
    files = [
        media("images/ref-old.png", 30),
        media("images/unref-new.png", 3),
        media("images/pub-new.png", 2),
        media("images/unref-old.png", 9),
        media("images/pub-old.png", 5),
        media("videos/ref-new.mp4", 2),
    ]
    refs = {"images/ref-old.png": [null("images/ref-old.png")], "videos/ref-new.mp4": [null("videos/ref-new.mp4")]}
    published = {"images/pub-old.png", "images/pub-new.png"}
    everything = plan(files, 99 * MB, published=published, local_refs=refs)
    assert deleted(everything) == [
        "images/pub-old.png",
        "images/pub-new.png",
        "images/unref-old.png",
        "images/unref-new.png",
        "images/ref-old.png",
        "videos/ref-new.mp4",
    ]
    assert everything.exhausted
    # 73% of 100MB -> 13MB needed, 1MB each: four victims are not enough, five are
    files = [media(f"images/f{i}.png", 2 + i, size=3 * MB) for i in range(8)]
    five = plan(files, 73 * MB)
    assert deleted(five) == [f"images/f{i}.png" for i in (7, 6, 5, 4, 3)]
    assert five.planned_bytes == 15 * MB and not five.exhausted


def test_details_name_the_class_and_reason_is_pressure():
    files = [media("images/a.png", 5), media("images/b.png", 5), media("images/c.png", 5)]
    result = plan(files, 99 * MB, published={"images/a.png"}, local_refs={"images/c.png": [null("images/c.png")]})
    details = {a.path: (a.reason, detail_text(a.detail)) for a in result.actions if isinstance(a, Delete)}
    assert details == {
        "images/a.png": ("pressure", "on the CDN"),
        "images/b.png": ("pressure", "unreferenced"),
        "images/c.png": ("pressure", "referenced by the feed"),
    }
    assert [(t.files, t.bytes) for t in result.chosen] == [(1, MB), (1, MB), (1, MB)]


def test_cdn_disabled_has_no_published_class():
    files = [media("images/on-cdn.png", 3), media("images/older.png", 8)]
    enabled = plan(files, 99 * MB, published={"images/on-cdn.png"}, cdn=True)
    disabled = plan(files, 99 * MB, published={"images/on-cdn.png"}, cdn=False)
    assert deleted(enabled) == ["images/on-cdn.png", "images/older.png"]
    assert deleted(disabled) == ["images/older.png", "images/on-cdn.png"]
    assert {detail_text(a.detail) for a in disabled.actions if isinstance(a, Delete)} == {"unreferenced"}


def test_local_reference_outranks_cdn_copy():
    both = "images/both.png"
    result = plan([media(both, 3), media("images/plain.png", 1.5)], 99 * MB,
                  published={both}, local_refs={both: [null(both)]})
    assert deleted(result) == ["images/plain.png", both]
    assert detail_text(result.actions[-1].detail) == "referenced by the feed"


def test_feed_nulls_precede_their_victim_and_only_victims_are_nulled():
    files = [media("images/a.png", 10, size=10 * MB), media("images/b.png", 9, size=10 * MB)]
    refs = {
        "images/a.png": [null("images/a.png", post="p1"), null("images/a.png", post="p7")],
        "images/b.png": [null("images/b.png", post="p2")],
    }
    result = plan(files, 71 * MB, local_refs=refs)  # 11MB to free: both, the older first
    assert [(type(a).__name__, a.path, getattr(a, "post", None)) for a in result.actions] == [
        ("FeedNull", "posts.json", "p1"),
        ("FeedNull", "posts.json", "p7"),
        ("Delete", "images/a.png", None),
        ("FeedNull", "posts.json", "p2"),
        ("Delete", "images/b.png", None),
    ]
    result = plan(files, 65 * MB, local_refs=refs)  # 5MB: a alone
    assert [a.post for a in result.actions if isinstance(a, FeedNull)] == ["p1", "p7"]


def test_young_protected_hard_linked_and_empty_files_are_spared():
    files = [
        media("images/fresh.png", 0.5),
        media("images/just-old-enough.png", 1.0),
        media("images/cache-thumbs.png", 40),
        media("images/meta.json", 40),
        media("voice/linked.mp3", 40, nlink=3),
        media("images/empty.png", 40, size=0),
    ]
    result = plan(files, 99 * MB)
    assert deleted(result) == ["images/just-old-enough.png"]
    assert (result.too_young.files, result.protected.files, result.hard_linked.files) == (1, 2, 1)
    assert [(k.path, why(k)) for k in result.kept] == [
        ("voice/linked.mp3", "has 2 other hard link(s): deleting it frees nothing")
    ]
    assert result.exhausted


def test_protect_pattern_with_a_slash_matches_the_relative_path():
    files = [media("images/keep/a.png", 5), media("images/a.png", 5)]
    result = plan(files, 99 * MB, protect=("images/keep/*",))
    assert deleted(result) == ["images/a.png"]


def test_below_target_plans_nothing():
    result = plan([media("images/a.png", 30)], 60 * MB)
    assert result.actions == [] and result.needed_bytes == 0 and not result.exhausted
    assert result.eligible[1].files == 1


def test_victims_carry_their_age_and_the_identity_to_recheck():
    file = media("images/a.png", 2.5, ino=77)
    (victim,) = plan([file], 99 * MB).actions
    assert abs(victim.age - 2.5 * DAY) < 1e-3
    assert victim.identity == FileIdentity(1, 77, MB, file.mtime_ns, 0)
    assert victim.bytes == MB


file_lists = st.lists(
    st.tuples(
        st.integers(0, 2),  # 0 published, 1 unreferenced, 2 referenced
        st.floats(0.0, 60.0, allow_nan=False),  # age in days
        st.integers(0, 20).map(lambda blocks: blocks * 4096),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(file_lists, st.integers(0, 100), st.integers(0, 12), st.randoms(use_true_random=False))
def test_plan_is_the_shortest_prefix_of_the_eviction_order(specs, used_percent, inodes, rnd):
    files = [media(f"images/{i:03}.png", age, size) for i, (_, age, size) in enumerate(specs)]
    published = {f.path for f, (cls, _, _) in zip(files, specs, strict=True) if cls == 0}
    refs = {f.path: [null(f.path)] for f, (cls, _, _) in zip(files, specs, strict=True) if cls == 2}
    disk = usage(used_percent * MB)
    shuffled = files[:]
    rnd.shuffle(shuffled)
    need = Need(bytes_to_free(disk, SETTINGS.target), inodes)
    result = plan_pressure(shuffled, need, SETTINGS, spared=Protect(PROTECT), published=published, local_refs=refs,
                           cdn_enabled=True, now=NOW)

    eligible = sorted(
        ((cls, f.mtime_ns, f.path, f.allocated) for f, (cls, age, _) in zip(files, specs, strict=True)
         if age >= 1.0 and (f.allocated > 0 or inodes)),
    )
    expected, total = [], 0
    for _, _, path, size in eligible:
        if total >= need.bytes and len(expected) >= need.inodes:
            break
        expected.append(path)
        total += size
    assert deleted(result) == expected
    assert result.planned_bytes == total
    # a second pass over what is left, on the disk as it then is, plans nothing
    if not result.exhausted:
        after = limits.after_freeing(disk, result.planned_bytes, len(expected))
        left = [f for f in files if f.path not in set(expected)]
        again = plan_pressure(left, Need(bytes_to_free(after, SETTINGS.target)), SETTINGS, spared=Protect(PROTECT),
                              published=published, local_refs=refs, cdn_enabled=True, now=NOW)
        assert again.actions == []
        assert after.fs.usage.used_fraction <= SETTINGS.target + 1e-12
