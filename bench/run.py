"""Run every benchmark (``bench/bench_*.py``) and print one table: datagc beside its anchor tool.

    python bench/run.py [--repeats N] [--only NAME[,NAME...]] [--quick] [--workdir DIR]

Each module exposes ``run(workdir: Path, repeats: int) -> list[Row]``. Input
sizes follow the environment variable ``BENCH_SCALE`` (a float, 1.0 = the
sizes of SPEC §8): a module multiplies its file counts and byte sizes by it
(``bench.common``-style: ``float(os.environ.get("BENCH_SCALE", "1"))``), and may skip
a case that only makes sense at full size (the million-file memory check).
``--quick`` sets it to 0.05 for a smoke run. A module that fails is reported
and the others still run; the exit status is 1 if any failed or missed its goal.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.common import NO_GOAL, Row, compile_datagc  # noqa: E402

QUICK_SCALE = 0.05
#: every pass stays under this peak RSS (SPEC §8: a million files under 200 MiB)
MEMORY_GOAL_MIB = 200.0
#: the goal of each pass, as a ratio of datagc's wall time to its anchor's (SPEC §8); a row may set its own
GOALS: dict[str, float] = {"audit": 1.3, "sweep": 0.8, "rotate": 2.0, "pressure": 0.9, "startup": 1.5,
                           "watch": 0.02}  # watch: CPU seconds per second, a share of one core


def modules(only: str | None) -> list[str]:
    """Every module's name, or those named in ``only`` (comma-separated); an unknown name is an error."""
    names = sorted(path.stem.removeprefix("bench_") for path in (REPO / "bench").glob("bench_*.py"))
    if only is None:
        return names
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    return wanted if wanted and set(wanted) <= set(names) else []


def default_workdir() -> Path:
    """A work dir on a real disk (tmpfs would flatter every number): /var/tmp, else the repo's bench/.work."""
    return REPO / "bench" / ".work" if is_tmpfs(Path("/var/tmp")) else Path("/var/tmp/datagc-bench")


def is_tmpfs(path: Path) -> bool:
    result = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True, check=False)
    return result.returncode == 0 and "tmpfs" in result.stdout.split()[1:]


def run_module(name: str, workdir: Path, repeats: int) -> list[Row]:
    module = importlib.import_module(f"bench.bench_{name}")
    where = workdir / name
    where.mkdir(parents=True, exist_ok=True)
    try:
        rows: list[Row] = module.run(where, repeats)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return rows


def goal_of(row: Row) -> float | None:
    """The time goal; a million-file memory case (SPEC §8's memory goal) is judged on memory alone."""
    if "memory" in row.case:
        return None
    return row.goal if row.goal is not None else GOALS.get(row.pass_name)


def missed(row: Row) -> bool:
    goal = goal_of(row)
    return (goal is not None and row.ratio > goal) or row.peak_rss_mib >= MEMORY_GOAL_MIB


def _goal_cell(goal: float | None) -> str:
    if goal is None:
        return f"< {MEMORY_GOAL_MIB:.0f} MiB"
    return "-" if goal == NO_GOAL else f"<= {goal}x"


def format_table(rows: list[Row]) -> list[str]:
    header = ("pass", "case", "datagc", "anchor", "anchor time", "ratio", "goal", "peak RSS MiB")
    cells = [header]
    for row in rows:
        goal = goal_of(row)
        verdict = " MISSED" if missed(row) else "" if goal == NO_GOAL else " ok"
        cells.append((
            row.pass_name,
            row.case,
            f"{row.datagc_s:.3f}s",
            row.anchor_name,
            f"{row.anchor_s:.3f}s",
            f"{row.ratio:.3f}x" if goal is not None and goal < 0.1 else f"{row.ratio:.2f}x",
            _goal_cell(goal) + verdict,
            f"{row.peak_rss_mib:.1f}",
        ))
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark datagc against the tools it is measured by.")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command; the median counts (default 5)")
    parser.add_argument("--only", help="modules to run, comma-separated, e.g. audit,sweep (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: BENCH_SCALE={QUICK_SCALE}")
    parser.add_argument("--workdir", type=Path, help="where inputs are built (default /var/tmp/datagc-bench)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["BENCH_SCALE"] = str(QUICK_SCALE)
    names = modules(args.only)
    if not names:
        parser.error(f"--only {args.only}: each name must be one of bench/bench_NAME.py")
    workdir = args.workdir or default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    compile_datagc()
    print(f"workdir {workdir}, repeats {args.repeats}, BENCH_SCALE {os.environ.get('BENCH_SCALE', '1')}", flush=True)

    rows: list[Row] = []
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"running {name} ...", flush=True)
        try:
            module_rows = run_module(name, workdir, args.repeats)
        except Exception:
            failed.append(name)
            print(f"{name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            continue
        rows.extend(module_rows)
        print(f"{name} done in {time.perf_counter() - start:.0f}s", flush=True)
        for line in format_table(module_rows)[2:]:
            print(f"  {line}", flush=True)

    print()
    print("\n".join(format_table(rows)))
    if failed:
        print(f"\nfailed modules: {', '.join(failed)}")
    return 1 if failed or any(missed(row) for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
