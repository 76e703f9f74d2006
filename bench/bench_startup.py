"""Start-up: ``datagc --version`` beside ``python -c 'import typer'`` in the same environment (goal ≤ 1.5×).

typer alone costs several times a bare interpreter, so this measures what
datagc adds on top of the one library its CLI can't avoid: every heavy import
(rich, orjson, humanize, the passes) must wait for a command that needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.common import DATAGC, Row
from bench.pairs import alternate

#: a start-up is well under a second: many runs for a stable median
MIN_RUNS = 20


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = min(float(os.environ.get("BENCH_SCALE", "1")), 1.0)
    runs = max(repeats, round(MIN_RUNS * scale), 3)
    datagc, typer = alternate([DATAGC, "--version"], [sys.executable, "-c", "import typer"], runs, warmups=2)
    return [Row("startup", f"--version, {runs} runs", datagc.median_s, "python -c 'import typer'", typer.median_s,
                datagc.peak_rss_mib)]
