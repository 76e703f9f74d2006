"""The limits' arithmetic (datagc.limits): where each stands, when it is crossed, what reaching its target takes."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import example, given
from hypothesis import strategies as st

from datagc import limits
from datagc.config.schema import PressureConfig
from datagc.limits import Figures, FsFigures, Need

MiB = 1024 * 1024
SETTINGS = PressureConfig(threshold=0.7, target=0.6, min_age=0.0, budget=10 * MiB, min_free=4 * MiB,
                          min_free_target=6 * MiB, inode_threshold=0.95, inode_target=0.9)


def figures(used: int = 10 * MiB, free: int = 90 * MiB, inodes: tuple[int, int] = (10, 100),
            held: int | None = 1 * MiB) -> Figures:
    return Figures(FsFigures(used, free, used + free, *inodes), held)


def by_name(figures: Figures, settings: PressureConfig = SETTINGS) -> dict[str, limits.Limit]:
    return {limit.name: limit for limit in limits.evaluate(figures, settings)}


def test_at_the_threshold_is_not_crossed_and_one_past_it_is() -> None:
    assert not by_name(figures(held=7 * MiB))["budget"].crossed
    assert by_name(figures(held=7 * MiB + 1))["budget"].crossed
    assert not by_name(figures(used=96 * MiB, free=4 * MiB))["min_free"].crossed
    assert by_name(figures(used=96 * MiB + 1, free=4 * MiB - 1))["min_free"].crossed
    assert not by_name(figures(inodes=(95, 100)))["inodes"].crossed
    assert by_name(figures(inodes=(96, 100)))["inodes"].crossed


def test_each_crossed_limit_asks_for_what_brings_it_to_its_target_and_the_pass_for_the_most() -> None:
    standing = by_name(figures(used=97 * MiB, free=3 * MiB, inodes=(99, 100), held=9 * MiB))
    assert standing["disk"].needed_bytes == 37 * MiB
    assert standing["budget"].needed_bytes == 3 * MiB
    assert standing["min_free"].needed_bytes == 3 * MiB
    assert standing["inodes"].needed_inodes == 9
    assert limits.need(list(standing.values())) == Need(37 * MiB, 9)


def test_a_limit_not_crossed_asks_for_nothing_even_above_its_target() -> None:
    standing = limits.evaluate(figures(used=65 * MiB, free=35 * MiB, inodes=(92, 100)), SETTINGS)
    assert not limits.crossed(standing)
    assert limits.need(standing) == Need(0, 0)
    assert not Need(0, 0) and Need(0, 1) and Need(1, 0)


def test_off_limits_are_absent() -> None:
    bare = PressureConfig(threshold=0.7, target=0.6, min_age=0.0)
    assert list(by_name(figures(inodes=(0, 0)), bare)) == ["disk"], "no budget, no floor, no inode count"
    assert list(by_name(figures(held=None))) == ["disk", "min_free", "inodes"], "a budget without its walk"


def test_freeing_moves_every_figure() -> None:
    after = limits.after_freeing(figures(used=97 * MiB, free=3 * MiB, inodes=(99, 100), held=9 * MiB), 4 * MiB, 9)
    assert after == figures(used=93 * MiB, free=7 * MiB, inodes=(90, 100), held=5 * MiB)
    standing = by_name(after)
    assert standing["budget"].at_target and standing["min_free"].at_target and standing["inodes"].at_target
    assert not standing["disk"].at_target


@given(fraction=st.one_of(st.floats(0, 1), st.sampled_from([0.6, 0.7, 0.95, 1e-05, 1.0, 0.0])),
       amount=st.integers(0, 10**15), whole=st.integers(0, 10**15))
@example(fraction=0.6, amount=60, whole=100)  # 0.6 as written: exactly 60 of 100 is not above it
@example(fraction=1e-05, amount=1, whole=100_000)
def test_limits_compare_with_the_decimal_written_exactly(fraction: float, amount: int, whole: int) -> None:
    exact = Fraction(repr(fraction))
    assert limits._above(amount, fraction, whole) == (amount > exact * whole)
    assert limits._beyond(amount, fraction, whole) == max(0, math.ceil(amount - exact * whole))
