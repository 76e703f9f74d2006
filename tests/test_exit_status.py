"""The exit statuses are a public contract (SPEC §4): scripts and systemd units depend on these numbers."""

from __future__ import annotations

import os
from pathlib import Path

from datagc.exitcodes import LOCKED, Exit
from tests.helpers import holding_lock, run_datagc


def test_values_are_pinned() -> None:
    assert int(Exit.OK) == 0
    assert int(Exit.STEP_FAILED) == 1
    assert int(Exit.USAGE) == 2
    assert int(Exit.ROTATED) == 4
    assert int(Exit.SWEPT) == 8
    assert int(Exit.PRESSURE_DELETED) == 16
    assert int(Exit.STILL_ABOVE_THRESHOLD) == 32
    assert LOCKED == 75


def test_bits_combine() -> None:
    assert Exit.ROTATED | Exit.SWEPT == 12
    reclaim_only = {
        int(a | b | c)
        for a in (Exit.OK, Exit.ROTATED)
        for b in (Exit.OK, Exit.SWEPT)
        for c in (Exit.OK, Exit.PRESSURE_DELETED)
    } - {0}
    assert reclaim_only == {4, 8, 12, 16, 20, 24, 28}


def test_configuration_error_is_2_and_nothing_ran(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    old = tmp_path / "images" / "old.png"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    result = run_datagc("sweep", "--data-dir", str(tmp_path), "--cdn", "--max-age", "7x")
    assert result.code == 2
    assert "sweep.max_age = '7x' (from flag --max-age)" in result.stderr
    assert "Traceback" not in result.stderr
    assert old.exists()


def test_unknown_option_is_2() -> None:
    assert run_datagc("audit", "--no-such-option").code == 2


def test_missing_data_dir_is_2(tmp_path: Path) -> None:
    result = run_datagc("run-all", "--data-dir", str(tmp_path / "missing"))
    assert result.code == 2
    assert f"data directory {tmp_path / 'missing'} does not exist; nothing was changed" in result.stderr


def test_lock_held_is_75(tmp_path: Path) -> None:
    with holding_lock(tmp_path):
        result = run_datagc("run-all", "--data-dir", str(tmp_path))
        assert result.code == 75
        assert "another datagc is working on" in result.stderr
        waited = run_datagc("rotate", "--data-dir", str(tmp_path), "--wait", "300ms")
        assert waited.code == 75
        assert "after waiting 0.3s" in waited.stderr


def test_audit_takes_no_lock(tmp_path: Path) -> None:
    with holding_lock(tmp_path):
        assert run_datagc("audit", "--data-dir", str(tmp_path), "--threshold", "1.0").code == 0


def test_kill_switch_is_0_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    old = tmp_path / "images" / "old.png"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    result = run_datagc("run-all", "--data-dir", str(tmp_path), "--cdn", "--json", env={"GC_ENABLED": "false"})
    assert result.code == 0
    report = result.json()
    assert [step["status"] for step in report["steps"]] == ["disabled", "disabled", "disabled"]
    assert report["exit_code"] == 0
    assert old.exists()
