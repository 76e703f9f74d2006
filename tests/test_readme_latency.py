"""README's appender-latency figure (issue 12) is bench/rotate_latency.py's table, as the script prints it."""

from __future__ import annotations

import re
from pathlib import Path

from bench.rotate_latency import HEADER, format_row

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"(?P<label>.{16}) +(?P<appends>\d+) +(?P<p50>[\d.]+) +(?P<p99>[\d.]+) +(?P<p999>[\d.]+) "
                 r"+(?P<worst>[\d.]+)  (?P<spans>.+)")


def table() -> list[str]:
    lines = README.read_text().splitlines()
    assert HEADER in lines, "README has no table printed by bench/rotate_latency.py"
    start = lines.index(HEADER)
    return lines[start + 1:lines.index("```", start)]


def test_the_latency_table_is_the_scripts_output_with_and_without_rotation() -> None:
    rows = table()
    assert [line[:16].strip() for line in rows] == ["no rotation", "rotating /300ms"]
    for line in rows:
        match = ROW.fullmatch(line)
        assert match, line
        p50, p99, p999, worst = values = [float(match[name]) for name in ("p50", "p99", "p999", "worst")]
        assert values == sorted(values), f"percentiles out of order: {line}"
        assert format_row(match["label"].strip(), int(match["appends"]), p50, p99, p999, worst, match["spans"]) == line


def test_the_prose_quotes_the_tables_hold_on_appends() -> None:
    spans = ROW.fullmatch(table()[1])
    assert spans is not None
    held = re.fullmatch(r"\d+, holding appends (\d+) ms median, (\d+) ms max", spans["spans"])
    assert held, spans["spans"]
    text = " ".join(README.read_text().split())
    assert f"held appends back {held[1]} ms (median; {held[2]} ms at most)" in text
