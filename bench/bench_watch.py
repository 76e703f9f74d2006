"""``datagc watch`` idle between passes over 200k files with ``pressure.budget`` set: CPU as a share of one core
(goal < 2%, SPEC §8).

Between passes watch makes a statfs every ``watch.check_interval`` (10 s) and,
for the budget, walks the tree at a frequency that adapts to the walk's cost
(``datagc/limitwatch.py``). The run is idle: the first pass is an hour away and
the budget is far from crossed, so only the checks run. Its CPU (user + system,
from /proc/PID/stat) is read over a window after start-up; the "anchor" is the
window itself, so the ratio is the share of one core.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.bench_audit import build_tree
from bench.common import DATAGC, Row

FILES = 200_000
#: long enough for several budget walks at the idle rate (one per ~100 x its CPU cost)
WINDOW_S = 300.0
#: start-up (imports, the first statfs) is not idle time
SETTLE_S = 2.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(workdir: Path, repeats: int) -> list[Row]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    files = max(1000, round(FILES * scale))
    window = max(30.0, WINDOW_S * min(scale, 1.0))
    tree = workdir / "tree"
    build_tree(tree, files)
    argv = [DATAGC, "watch", "--data-dir", str(tree), "--interval", "1h", "--initial-delay", "1h",
            "--budget", "1TiB", "--check-interval", "10s", "--no-cdn"]
    watch = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={key: value for key, value in os.environ.items() if key != "TEST_MODE"})
    try:
        time.sleep(SETTLE_S)
        start = cpu_seconds(watch.pid)
        time.sleep(window)
        used = cpu_seconds(watch.pid) - start
        peak = peak_rss_mib(watch.pid)
        if watch.poll() is not None:
            error = watch.stderr.read().decode() if watch.stderr else ""
            raise RuntimeError(f"watch exited {watch.returncode}: {error}")
    finally:
        watch.terminate()
        watch.wait(timeout=60)
    return [Row("watch", f"idle {window:.0f}s, {files:,} files, budget set", used, "one core", window, peak)]
