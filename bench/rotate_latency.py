"""How long a writer's append waits while rotations run, against no rotation (SPEC §7 rule 15's cost).

    python bench/rotate_latency.py [--appends N] [--workdir DIR]

A Node writer appends one line per millisecond with ``fs.appendFile`` (open
O_APPEND, write, close; each call timed), beside two writers appending as fast
as they can (``fs.appendFileSync`` and Python open-append-close). The same
run is made twice on a real disk: once with no rotation, once with the log
rotated (keep 10,000 lines) every 300 ms. Prints the timed writer's latency
percentiles for both, and how long each rotation held appends back.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from bench.run import default_workdir  # noqa: E402
from datagc import tailcopy  # noqa: E402
from datagc.safety.datadir import DataDir  # noqa: E402

TIMED = r"""
const fs = require("fs");
const [path, count] = [process.argv[1], Number(process.argv[2])];
const waits = [];
let seq = 0;
function next() {
  if (seq === count) { process.stdout.write(JSON.stringify(waits)); return; }
  const started = process.hrtime.bigint();
  fs.appendFile(path, `{"w":0,"seq":${seq},"text":"timed"}\n`, (error) => {
    if (error) throw error;
    waits.push(Number(process.hrtime.bigint() - started) / 1e6);
    seq++;
    setTimeout(next, 1);
  });
}
next();
"""

FLAT_OUT_NODE = r"""
const fs = require("fs");
const [path, stop] = process.argv.slice(1);
for (let seq = 0; !(seq % 32 === 0 && fs.existsSync(stop)); seq++) {
  fs.appendFileSync(path, `{"w":1,"seq":${seq},"text":"${"x".repeat(seq % 97)}"}\n`);
}
"""

FLAT_OUT_PYTHON = r"""
import os, sys
path, stop, seq = sys.argv[1], sys.argv[2], 0
while not (seq % 32 == 0 and os.path.exists(stop)):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'{"w":2,"seq":%d,"text":"%s"}\n' % (seq, b"x" * (seq % 97)))
    os.close(fd)
    seq += 1
"""

KEEP_LINES = 10_000
ROTATE_EVERY_S = 0.3


def measure(data_dir: Path, appends: int, rotate: bool) -> tuple[list[float], list[float]]:
    """The timed writer's append latencies (ms), and how long each rotation held appends back (ms)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    log, stop = data_dir / "events.jsonl", data_dir / "stop"
    log.write_bytes(b"")
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed")
    load = [subprocess.Popen([node, "-e", FLAT_OUT_NODE, str(log), str(stop)]),
            subprocess.Popen([sys.executable, "-c", FLAT_OUT_PYTHON, str(log), str(stop)])]
    timed = subprocess.Popen([node, "-e", TIMED, str(log), str(appends)], stdout=subprocess.PIPE, text=True)
    holds: list[float] = []
    done = threading.Event()

    def rotations() -> None:
        while not done.wait(ROTATE_EVERY_S):
            with DataDir(data_dir) as root:
                rotation = tailcopy.rotate_path(root, "events.jsonl", KEEP_LINES, 64 * 1024**2)
            if rotation.rotated:
                holds.append(rotation.held_seconds * 1000)

    rotator = threading.Thread(target=rotations) if rotate else None
    if rotator:
        rotator.start()
    out, _ = timed.communicate()
    done.set()
    if rotator:
        rotator.join()
    stop.touch()
    for process in load:
        process.wait()
    shutil.rmtree(data_dir, ignore_errors=True)
    return json.loads(out), holds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


#: the table's header, as the README shows it
HEADER = f"{'run':<16} {'appends':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'max ms':>7}  rotations"


def row(label: str, waits: list[float], holds: list[float]) -> str:
    """One line of the table: the timed writer's latency percentiles (ms), and the rotations' hold on appends."""
    spans = (f"{len(holds)}, holding appends {statistics.median(holds):.0f} ms median, {max(holds):.0f} ms max"
             if holds else "-")
    return format_row(label, len(waits), percentile(waits, 0.5), percentile(waits, 0.99), percentile(waits, 0.999),
                      max(waits), spans)


def format_row(label: str, appends: int, p50: float, p99: float, p999: float, worst: float, spans: str) -> str:
    return f"{label:<16} {appends:>7} {p50:>7.2f} {p99:>7.2f} {p999:>8.2f} {worst:>7.2f}  {spans}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=5000, help="appends timed per run (one per ms)")
    parser.add_argument("--workdir", type=Path, default=default_workdir())
    args = parser.parse_args()
    data_dir = args.workdir / "rotate-latency"
    print(HEADER)
    for label, rotate in (("no rotation", False), ("rotating /300ms", True)):
        print(row(label, *measure(data_dir, args.appends, rotate)))


if __name__ == "__main__":
    main()
