"""``datagc audit`` end to end on real trees: counts, links, mounts, bad names, unreadable dirs, held files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datagc.cli import app
from datagc.demo import build_sample
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.mounts import MiB, tmpfs

#: root without the capabilities that let it read any directory: permissions apply to it again
WITHOUT_DAC_OVERRIDE = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root, real_bytes=True, scale=0.01)
    return root


def regular_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_audit_json_counts_what_du_counts(sample: Path) -> None:
    result = run_datagc("audit", "--data-dir", str(sample), "--json", "--top", "3")
    assert result.code == 0, result.stderr
    report = result.json()
    files = regular_files(sample)
    assert report["command"] == "audit"
    assert report["version"] == 1
    assert report["files"] == len(files)
    assert report["total_bytes"] == sum(allocated(p) for p in files)
    assert report["apparent_bytes"] == sum(p.stat().st_size for p in files)
    assert len(report["largest"]) == 3
    sizes = sorted((allocated(p) for p in files), reverse=True)[:3]
    assert [item["bytes"] for item in report["largest"]] == sizes
    assert all(allocated(sample / item["path"]) == item["bytes"] for item in report["largest"])
    breakdown = {entry["path"]: entry for entry in report["breakdown"]}
    assert breakdown["videos"]["files"] == 2
    assert breakdown["videos"]["bytes"] == sum(allocated(p) for p in (sample / "videos").rglob("*") if p.is_file())
    assert breakdown["voice"]["files"] == 2
    assert set(report["disk"]) == {"total_bytes", "used_bytes", "free_bytes", "used_fraction"}
    assert report["unaccounted_bytes"] >= 0
    assert [held for held in report["deleted_open"] if held["path"].startswith(str(sample))] == []
    assert report["exit_code"] == 0


def test_audit_plain_line_for_log_pipelines(sample: Path) -> None:
    result = run_datagc("audit", "--data-dir", str(sample))
    assert result.code == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("[disk-audit] total=")
    assert " files=18 " in first
    assert "top_dirs=videos:" in first
    assert "largest=events.jsonl:" in first or "largest=videos/" in first
    assert all(line.startswith("[disk-audit] ") for line in result.stdout.splitlines())


def test_audit_never_follows_symlinks_out_of_the_tree(sample: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge.bin").write_bytes(b"\1" * (2 * MiB))
    (sample / "images" / "escape").symlink_to(outside)
    (sample / "images" / "escape.bin").symlink_to(outside / "huge.bin")
    report = run_datagc("audit", "--data-dir", str(sample), "--json").json()
    assert sorted(report["symlinks"]) == ["images/escape", "images/escape.bin"]
    assert all("huge" not in entry["path"] for entry in report["largest"])
    assert report["files"] == len(regular_files(sample)) - 0  # the links are not files
    assert report["total_bytes"] < 2 * MiB + sum(allocated(p) for p in regular_files(sample) if "outside" in str(p))


def test_audit_reports_a_mount_inside_and_does_not_walk_it(sample: Path) -> None:
    with tmpfs(4 * MiB) as mounted:
        (mounted / "other-fs.bin").write_bytes(b"\1" * MiB)
        target = sample / "videos" / "mnt"
        target.mkdir()
        subprocess.run(["mount", "--bind", str(mounted), str(target)], check=True)
        try:
            report = run_datagc("audit", "--data-dir", str(sample), "--json").json()
        finally:
            subprocess.run(["umount", str(target)], check=True)
    assert report["mounts"] == ["videos/mnt"]
    assert all("other-fs" not in entry["path"] for entry in report["largest"])


def test_audit_survives_non_utf8_names(sample: Path) -> None:
    name = b"images/caf\xe9-\xff.png"
    with open(os.path.join(os.fsencode(sample), name), "wb") as handle:
        handle.write(b"\1" * 100_000)
    result = run_datagc("audit", "--data-dir", str(sample), "--json", "--top", "50")
    assert result.code == 0, result.stderr
    paths = [entry["path"] for entry in result.json()["largest"]]
    assert "images/caf\\xe9-\\xff.png" in paths
    plain = run_datagc("audit", "--data-dir", str(sample))
    assert plain.code == 0
    assert "Traceback" not in plain.stderr


def test_audit_reports_unreadable_directories_and_goes_on(sample: Path) -> None:
    """Run without root's permission override on a tree with one directory owned by someone else, mode 700."""
    private = sample / "voice" / "private"
    private.mkdir()
    (private / "secret.mp3").write_bytes(b"s" * 5000)
    os.chmod(private, 0o700)
    os.chown(private, 1234, 1234)
    process = subprocess.run(
        [*WITHOUT_DAC_OVERRIDE, DATAGC, "audit", "--data-dir", str(sample), "--json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    if "setpriv" in process.stderr:
        pytest.skip(f"cannot drop the permission-override capabilities: {process.stderr.strip()}")
    assert process.returncode == 1, process.stderr
    assert "voice/private: Permission denied (not counted)" in process.stderr
    report = __import__("orjson").loads(process.stdout)
    assert report["errors"] == ["voice/private: Permission denied (not counted)"]
    assert report["files"] == len(regular_files(sample)) - 1


def test_audit_finds_deleted_files_still_held_open(sample: Path) -> None:
    held = sample / "events.jsonl.old"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; f=open(sys.argv[1],'wb'); f.write(b'\\1'*3_000_000); f.flush(); "
            "print('ready', flush=True); time.sleep(60)",
            str(held),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        held.unlink()
        report = run_datagc("audit", "--data-dir", str(sample), "--json").json()
    finally:
        holder.kill()
        holder.wait()
    mine = [entry for entry in report["deleted_open"] if entry["pid"] == holder.pid]
    assert len(mine) == 1
    assert mine[0]["path"] == str(held)
    assert mine[0]["bytes"] >= 3_000_000
    assert mine[0]["command"].startswith("python")


def test_audit_exit_32_when_above_the_threshold() -> None:
    with tmpfs(4 * MiB) as root:
        (root / "images").mkdir()
        (root / "images" / "big.png").write_bytes(b"\1" * (3 * MiB))
        result = run_datagc("audit", "--data-dir", str(root), "--json", "--threshold", "0.5")
        assert result.code == 32
        assert result.json()["exit_code"] == 32
        assert result.json()["mount_root"] is True
        assert run_datagc("audit", "--data-dir", str(root), "--threshold", "0.9").code == 0


def test_audit_changes_nothing(sample: Path) -> None:
    def listing() -> list[tuple[str, int, int]]:
        return sorted((str(p), p.lstat().st_mtime_ns, p.lstat().st_size) for p in sample.rglob("*"))

    before = listing()
    time.sleep(0.01)
    assert run_datagc("audit", "--data-dir", str(sample)).code == 0
    assert listing() == before


def test_audit_through_the_cli_runner(sample: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(sample), "--json"], env=clean_env())
    assert result.exit_code == 0
    assert '"command": "audit"' in result.stdout


def test_audit_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    result = run_datagc("audit", "--data-dir", str(tmp_path / "nope"))
    assert result.code == 2
    assert result.stderr == f"datagc: data directory {tmp_path / 'nope'} does not exist; nothing was changed\n"
