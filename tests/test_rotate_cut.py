"""The cut (tailcopy.find_cut) and the rotate planner: pure, no disk."""

from __future__ import annotations

import errno

from hypothesis import given, settings
from hypothesis import strategies as st

from datagc.config.schema import RotateConfig
from datagc.model import Rotate
from datagc.passes.rotate import LogFacts, plan
from datagc.tailcopy import Cut, find_cut
from datagc.wording import text
from tests.steps import notes, why


def naive_cut(data: bytes, keep_lines: int, keep_bytes: int) -> tuple[int, int, int] | None:
    """Reference: (start, lines_end, lines_kept) computed the obvious way over the whole content."""
    lines_end = data.rfind(b"\n") + 1
    partial = len(data) - lines_end
    if partial > keep_bytes:
        return None
    lines = [line + b"\n" for line in data[:lines_end].split(b"\n")[:-1]]
    budget = keep_bytes - partial
    kept = 0
    size = 0
    for line in reversed(lines):
        if kept == keep_lines or size + len(line) > budget:
            break
        kept += 1
        size += len(line)
    return lines_end - size, lines_end, kept


def cut_of(data: bytes, keep_lines: int, keep_bytes: int, block: int = 4096) -> Cut | None:
    return find_cut(lambda offset, length: data[offset:offset + length], len(data), keep_lines, keep_bytes, block)


line_bytes = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b"."))
crlf_line = st.builds(lambda body, crlf: body + (b"\r" if crlf else b""), line_bytes, st.booleans())


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(crlf_line, max_size=60),
    partial=st.one_of(st.just(b""), line_bytes),
    keep_lines=st.integers(1, 30),
    keep_bytes=st.integers(1, 600),
    block=st.integers(1, 97),
)
def test_cut_matches_the_naive_reference(
    lines: list[bytes], partial: bytes, keep_lines: int, keep_bytes: int, block: int
) -> None:
    data = b"".join(line + b"\n" for line in lines) + partial
    expected = naive_cut(data, keep_lines, keep_bytes)
    cut = cut_of(data, keep_lines, keep_bytes, block)
    if expected is None:
        assert cut is None
        return
    assert cut is not None
    assert (cut.start, cut.lines_end, cut.lines_kept) == expected
    assert cut.size == len(data)
    assert cut.kept_bytes <= keep_bytes or cut.start == 0
    assert cut.start == 0 or data[cut.start - 1:cut.start] == b"\n"
    assert cut.capped == (cut.lines_kept < keep_lines and cut.start > 0)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(line_bytes, min_size=1, max_size=80),
    keep_lines=st.integers(1, 20),
    keep_bytes=st.integers(1, 400),
    block=st.integers(1, 64),
)
def test_cut_reads_no_further_back_than_keep_bytes(
    lines: list[bytes], keep_lines: int, keep_bytes: int, block: int
) -> None:
    data = b"".join(line + b"\n" for line in lines)
    read: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        read.append((offset, length))
        return data[offset:offset + length]

    find_cut(read_at, len(data), keep_lines, keep_bytes, block)
    assert sum(length for _, length in read) <= min(len(data), keep_bytes + 1)
    assert all(offset >= len(data) - keep_bytes - 1 for offset, _ in read)


def test_keep_lines_counts_complete_lines_only() -> None:
    data = b"a\nb\nc\nd\npart"
    cut = cut_of(data, keep_lines=2, keep_bytes=100)
    assert cut == Cut(size=len(data), start=4, lines_end=8, lines_kept=2, capped=False)
    assert data[cut.start:] == b"c\nd\npart"
    assert cut.partial_bytes == 4


def test_crlf_lines_keep_their_carriage_return() -> None:
    data = b"one\r\ntwo\r\nthree\r\n"
    cut = cut_of(data, keep_lines=2, keep_bytes=100)
    assert cut is not None and data[cut.start:] == b"two\r\nthree\r\n"


def test_keep_bytes_caps_the_lines_kept_on_a_line_boundary() -> None:
    data = b"".join(b"%09d\n" % i for i in range(100))  # 10 bytes a line
    cut = cut_of(data, keep_lines=50, keep_bytes=95)
    assert cut is not None
    assert (cut.lines_kept, cut.kept_bytes, cut.capped) == (9, 90, True)
    assert data[cut.start:].startswith(b"000000091\n")


def test_no_newline_at_all_cannot_be_cut() -> None:
    assert cut_of(b"x" * 1000, keep_lines=10, keep_bytes=500) is None


def test_newest_line_longer_than_keep_bytes_keeps_no_line() -> None:
    data = b"old\n" + b"y" * 300 + b"\n"
    cut = cut_of(data, keep_lines=10, keep_bytes=100)
    assert cut is not None
    assert (cut.start, cut.lines_kept, cut.kept_bytes, cut.capped) == (len(data), 0, 0, True)


def test_a_partial_line_larger_than_keep_bytes_cannot_be_cut() -> None:
    assert cut_of(b"a\nb\n" + b"p" * 200, keep_lines=10, keep_bytes=100) is None


def test_a_log_that_fits_is_kept_whole() -> None:
    data = b"a\nb\n"
    assert cut_of(data, keep_lines=10, keep_bytes=100) == Cut(4, 0, 4, 2, capped=False)
    assert cut_of(b"", keep_lines=10, keep_bytes=100) == Cut(0, 0, 0, 0, capped=False)


# --- the planner ------------------------------------------------------------------

SETTINGS = RotateConfig(logs=("events.jsonl",), max_bytes=1000, keep_lines=10, keep_bytes=500)


def test_plan_rotates_a_log_over_the_trigger_with_the_numbers_of_its_cut() -> None:
    cut = Cut(size=1200, start=900, lines_end=1190, lines_kept=10, capped=False)
    decided = plan([LogFacts("events.jsonl", "regular", 1200, cut)], SETTINGS)
    assert decided.actions == [Rotate("events.jsonl", 1200, 300, 10)]
    assert not decided.failures
    assert any("still being written (10 bytes" in note for note in notes(decided))


def test_plan_says_when_keep_bytes_capped_the_lines() -> None:
    cut = Cut(size=5000, start=4600, lines_end=5000, lines_kept=3, capped=True)
    decided = plan([LogFacts("events.jsonl", "regular", 5000, cut)], SETTINGS)
    assert decided.actions == [Rotate("events.jsonl", 5000, 400, 3)]
    assert notes(decided) == ["events.jsonl: keeping 3 lines, not 10: the newest 10 lines are larger than "
                             "rotate.keep_bytes (500B)"]


def test_plan_leaves_logs_at_or_under_the_trigger_and_missing_ones() -> None:
    decided = plan([LogFacts("events.jsonl", "regular", 1000), LogFacts("other.jsonl", "missing")], SETTINGS)
    assert decided.actions == [] and decided.failures == [] and notes(decided) == []
    assert [(kept.path, why(kept)) for kept in decided.kept] == [
        ("events.jsonl", "1000 bytes, not over rotate.max_bytes (1000B)"),
        ("other.jsonl", "does not exist; nothing to rotate")]


def test_plan_refuses_what_is_not_a_regular_log_here_without_failing() -> None:
    facts = [LogFacts("a", "symlink"), LogFacts("b", "directory"), LogFacts("c", "special"),
             LogFacts("d", "elsewhere")]
    decided = plan(facts, SETTINGS)
    assert decided.actions == [] and decided.failures == []
    assert [kept.path for kept in decided.kept] == ["a", "b", "c", "d"]
    assert "symlink" in notes(decided)[0] and "directory" in notes(decided)[1]


def test_plan_fails_a_log_over_the_trigger_that_has_no_line_end_to_cut_at() -> None:
    decided = plan([LogFacts("events.jsonl", "regular", 2000, None)], SETTINGS)
    assert decided.actions == []
    (failure,) = decided.failures
    assert "no line end in its last 500B" in text(failure.why) and "left as it was" in text(failure.why)


def test_plan_fails_an_unreadable_log() -> None:
    decided = plan([LogFacts("events.jsonl", "unreadable", errno=errno.EACCES)], SETTINGS)
    assert [text(failure.why) for failure in decided.failures] == [
        "events.jsonl cannot be read (Permission denied); left as it was"]
