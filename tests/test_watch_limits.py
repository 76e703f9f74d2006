"""``datagc watch --interval 1h`` answers a crossed pressure limit within seconds, not at the next hourly pass.

Real subprocesses on a real tmpfs: the test fills the filesystem (or the data
dir past its budget) between passes and times the ``[janitor]`` line that
starts the early pressure pass. The bound is two check intervals plus one
pass, with slack for a loaded machine; without the checks it would be an hour.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from datagc import limitwatch
from datagc.config.load import FlagValue, load_config
from datagc.safety.datadir import DataDir
from tests.helpers import DATAGC, clean_env
from tests.mounts import KiB, MiB, tmpfs
from tests.process_lines import Running
from tests.test_pressure_limits import data_bytes, media

pytestmark = pytest.mark.mount
CHECK = 1.0
#: a loaded machine: scheduling, a statfs, a small walk. Still seconds, against the hour the checks save
SLACK = 20.0
TRIGGER = "running pressure now"


def start(watches: list[Running], data: Path, *args: str) -> Running:
    watch = Running([DATAGC, "watch", "--data-dir", str(data), "--no-cdn", "--interval", "1h",
                     "--initial-delay", "0", "--check-interval", f"{CHECK:g}s", *args], clean_env())
    watches.append(watch)
    watch.wait_for(watch.out, "[janitor] run-all: ")  # the first scheduled pass, with nothing to do
    return watch


def used(root: Path) -> float:
    st = os.statvfs(root)
    return (st.f_blocks - st.f_bfree) / (st.f_blocks - st.f_bfree + st.f_bavail)


def test_watch_answers_a_filesystem_filled_past_the_threshold_within_two_checks(watches: list[Running]) -> None:
    with tmpfs(32 * MiB) as root:
        data = root / "data"
        paths = media(data, 16, MiB)  # half the disk, all of it evictable
        watch = start(watches, data)
        assert watch.count(watch.out, TRIGGER) == 0

        (root / "filler").write_bytes(b"\0" * (10 * MiB))  # outside the data dir: ~81% used
        filled = time.monotonic()
        watch.wait_for(watch.out, TRIGGER)
        reacted = time.monotonic() - filled
        watch.wait_for(watch.out, "[janitor] pressure: reclaimed ")
        code = watch.stop(signal.SIGTERM)

        assert code == 0, watch.err
        assert reacted < 2 * CHECK + SLACK, f"reacted after {reacted:.1f}s"
        (line,) = [line for line in watch.out if TRIGGER in line]
        assert line.startswith("[janitor] watch: ") and "% used > 70%: running pressure now" in line
        assert used(root) <= 0.6
        assert not (data / paths[0]).exists() and (data / paths[-1]).exists()
        assert watch.count(watch.out, "[janitor] run-all: ") == 1, "the hourly pass did not come early"


def test_watch_answers_a_data_dir_grown_past_its_budget(watches: list[Running]) -> None:
    with tmpfs(64 * MiB) as root:
        data = root / "data"
        media(data, 8, 256 * KiB)  # 2 MiB: 25% of the budget
        watch = start(watches, data, "--budget", "8MiB")

        media(data, 16, 256 * KiB, directory="videos")  # 4 MiB more: 75% of the budget
        filled = time.monotonic()
        watch.wait_for(watch.out, TRIGGER)
        reacted = time.monotonic() - filled
        watch.wait_for(watch.out, "[janitor] pressure: reclaimed ")
        code = watch.stop(signal.SIGTERM)

        assert code == 0, watch.err
        assert reacted < 2 * CHECK + SLACK, f"reacted after {reacted:.1f}s"
        (line,) = [line for line in watch.out if TRIGGER in line]
        assert line == "[janitor] watch: budget 75.0% (6.3MB of 8.4MB) > 70%: running pressure now"
        assert data_bytes(data) <= 0.6 * 8 * MiB


def test_a_limit_nothing_can_fix_does_not_rerun_pressure_at_every_check(watches: list[Running]) -> None:
    with tmpfs(16 * MiB) as root:
        data = root / "data"
        data.mkdir()
        (root / "filler").write_bytes(b"\0" * (14 * MiB))  # not in the data dir: nothing to evict
        watch = start(watches, data)
        time.sleep(8 * CHECK)
        code = watch.stop(signal.SIGTERM)

        assert code == 0
        early = watch.count(watch.out, TRIGGER)
        # after each pass that left the limit crossed the next early one waits twice as long: 1, 2, 4 s ...
        assert 1 <= early <= 3, watch.out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_walks_adapt_to_their_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A walk that cost 0.5 CPU-seconds waits 50 s (1% of a core) while idle, 5 s while the disk grows."""
    data = tmp_path / "data"
    media(data, 3, 4096)
    config = load_config({"data_dir": FlagValue("--data-dir", str(data)),
                          "pressure.budget": FlagValue("--budget", "1GiB")}, env={})
    clock, cpu = Clock(), Clock()
    checks = limitwatch.LimitCheck(config, clock=clock, cpu=cpu)
    walks = []
    real_walk = limitwatch.limits.data_dir_bytes

    def costly_walk(data_dir: DataDir) -> int:
        walks.append(clock.now)
        cpu.now += 0.5
        return real_walk(data_dir)

    monkeypatch.setattr(limitwatch.limits, "data_dir_bytes", costly_walk)
    for second in range(0, 120, 10):
        clock.now = float(second)
        assert checks.check() == []
    assert walks == [0.0, 50.0, 100.0]
    checks.fs_used_at_walk -= 2 * 1024**3  # as if the filesystem had grown by more than the headroom
    clock.now = 105.0
    checks.check()
    assert walks[-1] == 105.0, "a growing disk brings the walk forward, at up to 10% of a core"
    checks.passed(still_crossed=False)
    clock.now = 106.0
    checks.check()
    assert walks[-1] == 106.0, "after a pass, what the last walk counted is stale"
