"""Duration and size parsing: the forms SPEC §3 names, round trips, and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from datagc.units import format_duration, format_size, human_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        ("1d 2h", 93600),
        ("45", 45),
        ("1.5h", 5400),
        ("2W", 1209600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500", 500),
        ("10B", 10),
        ("1KB", 1000),
        ("50MB", 50_000_000),
        ("1GB", 1_000_000_000),
        ("1KiB", 1024),
        ("50MiB", 50 * 1024**2),
        ("2GiB", 2 * 1024**3),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("50 mib", 50 * 1024**2),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "7x", "d7", "1h30", "-5s", "h", "1h 30q", "ten minutes"])
def test_bad_durations_say_what_was_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "10XB", "MiB", "-1", "1e3", "5 mega"])
def test_bad_sizes_say_what_was_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(
    st.lists(st.tuples(st.integers(1, 999), st.sampled_from(["ms", "s", "m", "h", "d", "w"])), min_size=1, max_size=4)
)
def test_combinations_add_up(parts: list[tuple[int, str]]) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = "".join(f"{count}{unit}" for count, unit in parts)
    assert parse_duration(text) == pytest.approx(sum(count * scale[unit] for count, unit in parts))


# Every unit boundary, kept as explicit examples: the last count written in the smaller unit, the first
# that rounds up into the next (999,950 bytes once printed ``1000.0kB``), and the unit itself.
@example(1000)
@example(999_949)
@example(999_950)
@example(999_999)
@example(1_000_000)
@example(999_949_999)
@example(999_950_000)
@example(999_999_999)
@example(1_000_000_000)
@example(999_949_999_999)
@example(999_950_000_000)
@example(999_999_999_999)
@example(1_000_000_000_000)
@example(999_949_999_999_999)
@example(999_950_000_000_000)
@example(999_999_999_999_999)
@example(1_000_000_000_000_000)
@example(999_949_999_999_999_999)
@example(999_950_000_000_000_000)
@example(999_999_999_999_999_999)
@example(1_000_000_000_000_000_000)
@given(st.integers(min_value=1000, max_value=10**17))
def test_human_size_is_humanize_without_the_space(count: int) -> None:
    import humanize

    assert human_size(count) == humanize.naturalsize(count).replace(" ", "")


def test_human_size_small_counts() -> None:
    assert [human_size(n) for n in (0, 1, 999)] == ["0B", "1B", "999B"]


def test_human_size_steps_up_a_unit_where_rounding_reaches_1000() -> None:
    assert [human_size(n) for n in (999_949, 999_950, 999_950_000, 999_999_999_999)] == [
        "999.9kB", "1.0MB", "1.0GB", "1.0TB"]
