"""Each pressure limit on a real, small filesystem: it triggers alone and eviction stops at its target.

The limits (SPEC §2 ``pressure``, §3): the disk fraction, the data dir's own
``pressure.budget``, the ``pressure.min_free`` floor and the inode fraction.
Every test runs the installed ``datagc pressure --json`` on a tmpfs whose
figures the test sets up, and checks the files, the statfs and the report.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datagc.exitcodes import Exit
from tests.helpers import run_datagc
from tests.mounts import KiB, MiB, fill, tmpfs

pytestmark = pytest.mark.mount
DAY = 86400


def media(data: Path, count: int, size: int, directory: str = "images") -> list[str]:
    """``count`` media files of ``size`` bytes, the first the oldest (ages 10 days down, a minute apart)."""
    (data / directory).mkdir(parents=True, exist_ok=True)
    paths = []
    now = time.time()
    for index in range(count):
        path = f"{directory}/m{index:03d}.bin"
        (data / path).write_bytes(b"\x01" * size)
        old = now - 10 * DAY + index * 60
        os.utime(data / path, (old, old))
        paths.append(path)
    return paths


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def data_bytes(data: Path) -> int:
    """Allocated bytes under ``data``, but datagc's journal (SPEC §9: written after the evictions)."""
    return sum(allocated(Path(top) / name) for top, _, names in os.walk(data) for name in names) - journal_bytes(data)


def journal_bytes(data: Path) -> int:
    return sum(allocated(path) for path in (data / ".datagc").glob("*"))


def journal_inodes(data: Path) -> int:
    """The inodes datagc's state dir and journal take (written after the evictions)."""
    state = data / ".datagc"
    return (1 + len(list(state.iterdir()))) if state.is_dir() else 0


def pressure(data: Path, *flags: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Run ``datagc pressure --json``; (exit code, the step, its limits by name)."""
    result = run_datagc("pressure", "--data-dir", str(data), "--no-cdn", "--json", *flags)
    assert "Traceback" not in result.stderr, result.stderr
    (step,) = result.json()["steps"]
    return result.code, step, {limit["name"]: limit for limit in step["limits"]}


def deleted(step: dict[str, Any]) -> list[str]:
    return [action["path"] for action in step["actions"] if action["kind"] == "delete"]


def triggered(limits: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, limit in limits.items() if limit["triggered"]]


@pytest.fixture
def roomy() -> Iterator[Path]:
    with tmpfs(64 * MiB) as root:
        yield root


def test_inodes_alone_trigger_and_eviction_stops_at_the_inode_target() -> None:
    with tmpfs(16 * MiB, nr_inodes=100) as root:
        data = root / "data"
        data.mkdir()
        # root, data, images and 93 files: 96 of 100 inodes, in under 1% of the bytes
        paths = media(data, 93, 1)
        assert os.statvfs(root).f_files - os.statvfs(root).f_ffree == 96

        code, step, limits = pressure(data)

        assert code == Exit.PRESSURE_DELETED, step
        assert triggered(limits) == ["inodes"]
        assert deleted(step) == paths[:6], "down to 90 of 100 inodes: the six oldest files, no more"
        st = os.statvfs(root)
        assert st.f_files - st.f_ffree - journal_inodes(data) == 90
        assert limits["inodes"]["value"] == pytest.approx(0.90) and limits["inodes"]["crossed"] is False
        assert limits["inodes"]["value_before"] == pytest.approx(0.96)
        assert step["needed_inodes"] == 6 and step["needed_bytes"] == 0
        assert step["notes"][0].startswith("pressure: inodes 96.0% used > 95%; deleted 6 files")


def test_empty_files_count_for_inodes() -> None:
    with tmpfs(16 * MiB, nr_inodes=50) as root:
        data = root / "data"
        data.mkdir()
        paths = media(data, 47, 0)  # 50 of 50 inodes, not one byte allocated

        code, step, limits = pressure(data)

        assert code == Exit.PRESSURE_DELETED and triggered(limits) == ["inodes"]
        assert deleted(step) == paths[:5]  # 45 of 50 = 90%
        assert [path for path in paths if (data / path).exists()] == paths[5:]


def test_a_budget_far_below_the_filesystem_triggers_alone_and_stops_at_its_target(roomy: Path) -> None:
    data = roomy / "data"
    paths = media(data, 40, 64 * KiB)
    held = data_bytes(data)
    budget = 3 * MiB
    assert held > 0.7 * budget and held < 0.05 * 64 * MiB

    code, step, limits = pressure(data, "--budget", "3MiB")

    assert code == Exit.PRESSURE_DELETED, step
    assert triggered(limits) == ["budget"]
    victims = deleted(step)
    sizes = [64 * KiB] * len(victims)
    assert victims == paths[: len(victims)]
    assert held - sum(sizes) <= 0.6 * budget < held - sum(sizes[:-1]), "the fewest files that reach the target"
    assert data_bytes(data) == held - sum(sizes)
    assert limits["budget"]["amount"] == held - sum(sizes) and limits["budget"]["capacity"] == budget
    assert limits["budget"]["crossed"] is False and limits["disk"]["triggered"] is False
    assert "budget 83.3% (2.6MB of 3.1MB) > 70%" in step["notes"][0]


def test_the_budget_follows_its_environment_name_and_audit_reports_it(roomy: Path) -> None:
    data = roomy / "data"
    media(data, 40, 64 * KiB)

    result = run_datagc("audit", "--data-dir", str(data), "--json", env={"DATAGC_PRESSURE_BUDGET": "3MiB"})

    assert result.code == Exit.STILL_ABOVE_THRESHOLD, result.stderr
    limits = {limit["name"]: limit for limit in result.json()["limits"]}
    assert set(limits) == {"disk", "budget", "inodes"}
    assert limits["budget"]["crossed"] is True and limits["budget"]["capacity"] == 3 * MiB
    assert limits["disk"]["crossed"] is False
    plain = run_datagc("audit", "--data-dir", str(data), env={"DATAGC_PRESSURE_BUDGET": "3MiB"})
    (line,) = [line for line in plain.stdout.splitlines() if line.startswith("[disk-audit] limits ")]
    assert "budget 83.3% (2.6MB of 3.1MB), threshold 70% CROSSED" in line and "inodes " in line


def test_a_min_free_floor_triggers_alone_and_eviction_stops_at_its_target(roomy: Path) -> None:
    data = roomy / "data"
    paths = media(data, 40, 256 * KiB)
    fill(roomy, leave_bytes=3 * MiB)
    st = os.statvfs(roomy)
    free = st.f_bavail * st.f_frsize
    assert free <= 3 * MiB

    # the disk is ~95% used: a threshold of 99% keeps the fraction out of it
    code, step, limits = pressure(data, "--min-free", "4MiB", "--threshold", "0.99", "--target", "0.9")

    assert code == Exit.PRESSURE_DELETED, step
    assert triggered(limits) == ["min_free"]
    expected = math.ceil((6 * MiB - free) / (256 * KiB))  # min_free_target: 1.5 x min_free by default
    assert deleted(step) == paths[:expected]
    st = os.statvfs(roomy)
    assert 6 * MiB <= st.f_bavail * st.f_frsize + journal_bytes(data) < 6 * MiB + 256 * KiB
    assert limits["min_free"]["target"] == 6 * MiB and limits["min_free"]["unit"] == "bytes"
    assert "free < min_free 4.2MB" in step["notes"][0]


def test_a_min_free_floor_that_cannot_be_reached_sets_bit_32(roomy: Path) -> None:
    data = roomy / "data"
    paths = media(data, 4, 256 * KiB)
    fill(roomy, leave_bytes=2 * MiB)

    code, step, limits = pressure(data, "--min-free", "8MiB", "--min-free-target", "9MiB", "--threshold", "0.99",
                                  "--target", "0.9")

    assert code == Exit.PRESSURE_DELETED | Exit.STILL_ABOVE_THRESHOLD
    assert deleted(step) == paths
    assert limits["min_free"]["crossed"] is True and step["exhausted"] is True
    assert any(note.startswith("pressure: still ") and "< min_free 8.4MB" in note for note in step["notes"])


def test_a_file_held_open_by_a_process_is_kept_and_the_next_one_taken() -> None:
    with tmpfs(32 * MiB) as root:
        data = root / "data"
        paths = media(data, 20, 512 * KiB)
        fill(root, leave_bytes=int(32 * MiB * 0.2))
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); print('open', flush=True); "
                                   "time.sleep(120)", str(data / paths[0])],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "open\n"
            comm = Path(f"/proc/{holder.pid}/comm").read_text().strip()

            code, step, limits = pressure(data)
            plain = run_datagc("pressure", "--data-dir", str(data), "--no-cdn", "--dry-run", "--threshold", "0.5",
                               "--target", "0.1")
        finally:
            holder.kill()
            holder.wait()

        assert code == Exit.PRESSURE_DELETED, step
        assert (data / paths[0]).exists()
        assert step["held_open"] == [{"path": paths[0], "bytes": 512 * KiB, "pid": holder.pid, "command": comm}]
        victims = deleted(step)
        assert victims == paths[1 : 1 + len(victims)], "the next candidates in eviction order"
        assert limits["disk"]["crossed"] is False and limits["disk"]["value"] <= 0.6
        assert any(kept["path"] == paths[0] and f"pid {holder.pid} ({comm})" in kept["why"] for kept in step["kept"])
        assert f"[janitor] kept {paths[0]}: held open by pid {holder.pid} ({comm})" in plain.stdout


def test_limits_not_crossed_say_where_each_stands(roomy: Path) -> None:
    data = roomy / "data"
    media(data, 2, 64 * KiB)

    code, step, limits = pressure(data, "--budget", "1GiB", "--min-free", "1MiB")

    assert code == 0 and step["status"] == "skipped"
    assert list(limits) == ["disk", "budget", "min_free", "inodes"]
    assert not any(limit["crossed"] for limit in limits.values())
    note = step["notes"][0]
    assert note.startswith("pressure: ") and note.endswith("; nothing to do")
    assert "used, threshold 70%" in note and "budget 0.0% (" in note and "free, min_free 1.0MB" in note


def test_config_explains_every_limit_with_its_values() -> None:
    result = run_datagc("config", env={"DATAGC_PRESSURE_BUDGET": "10GiB", "DATAGC_PRESSURE_MIN_FREE": "1GiB"})

    assert result.code == 0, result.stderr
    explained = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert explained == [
        "# pressure acts when any limit is crossed and evicts media until every crossed limit is back at its target:",
        "#   disk: the filesystem more than 70% used (df's Use%) -> evict until 60%",
        "#   budget: DATA_DIR's own allocated bytes above 70% of 10GiB -> evict until 60% of it",
        "#   min_free: less than 1GiB free on the filesystem -> evict until 1536MiB is free",
        "#   inodes: more than 95% of the filesystem's inodes used -> evict until 90% (each evicted file frees one)",
    ]
    assert "pressure.min_free_target = 1536MiB  # default (1.5 x pressure.min_free)" in result.stdout


def test_the_disk_fraction_triggers_alone_beside_the_other_limits_and_stops_at_its_target() -> None:
    with tmpfs(32 * MiB) as root:
        data = root / "data"
        paths = media(data, 16, MiB)
        (root / "filler").write_bytes(b"\0" * (10 * MiB))
        st = os.statvfs(root)
        used, free = (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize
        assert used / (used + free) > 0.7

        code, step, limits = pressure(data, "--budget", "1GiB", "--min-free", "1MiB")

        assert code == Exit.PRESSURE_DELETED, step
        assert triggered(limits) == ["disk"] and list(limits) == ["disk", "budget", "min_free", "inodes"]
        expected = math.ceil((used - 0.6 * (used + free)) / MiB)
        assert deleted(step) == paths[:expected], "the fewest oldest files that bring the disk to 60%"
        assert limits["disk"]["value"] <= 0.6 < (used - (expected - 1) * MiB) / (used + free)
