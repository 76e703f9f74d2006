"""``python -m datagc.demo DIR``: builds and rebuilds its own sample, and refuses to touch anything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from datagc.demo import MARKER
from tests.mounts import bind


def demo(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "datagc.demo", str(directory), "--events-mib", "0.1", "--sparse"],
                          capture_output=True, text=True, check=False)


def test_builds_in_a_new_or_empty_directory_and_rebuilds_its_own(tmp_path: Path) -> None:
    built = demo(tmp_path / "new")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "new" / MARKER).is_file() and (tmp_path / "new" / "posts.json").is_file()
    (tmp_path / "new" / "images" / "extra.png").write_bytes(b"x")
    (tmp_path / "new" / "posts.json").unlink()
    assert demo(tmp_path / "new").returncode == 0
    assert not (tmp_path / "new" / "images" / "extra.png").exists() and (tmp_path / "new" / "posts.json").is_file()
    (tmp_path / "empty").mkdir()
    assert demo(tmp_path / "empty").returncode == 0


def test_refuses_a_directory_it_did_not_build(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "precious.png").write_bytes(b"keep me")
    (tmp_path / "file").write_text("a file")
    (tmp_path / "link").symlink_to(tmp_path / "new-target")
    for target, problem in ((data, f"is not empty and was not built by datagc.demo (it has no {MARKER} file)"),
                            (tmp_path / "file", "exists and is not a directory"),
                            (tmp_path / "link", "is a symbolic link")):
        refused = demo(target)
        assert refused.returncode == 2
        assert refused.stderr == f"datagc.demo: {target} {problem}; nothing was changed (choose a new directory)\n"
    assert (data / "images" / "precious.png").read_bytes() == b"keep me"
    assert sorted(p.name for p in data.rglob("*")) == ["images", "precious.png"]
    assert (tmp_path / "file").read_text() == "a file" and not (tmp_path / "new-target").exists()


def test_rebuilds_its_own_sample_from_inside_it(tmp_path: Path) -> None:
    """``python -m datagc.demo .`` in the sample: the directory stays (it is the current one), the sample is new."""
    assert demo(tmp_path / "sample").returncode == 0
    (tmp_path / "sample" / "images" / "extra.png").write_bytes(b"x")
    again = subprocess.run([sys.executable, "-m", "datagc.demo", ".", "--events-mib", "0.1", "--sparse"],
                           cwd=tmp_path / "sample", capture_output=True, text=True, check=False)
    assert (again.returncode, again.stderr) == (0, "")
    assert (tmp_path / "sample" / MARKER).is_file() and (tmp_path / "sample" / "posts.json").is_file()
    assert not (tmp_path / "sample" / "images" / "extra.png").exists()


def test_refuses_its_own_sample_with_a_filesystem_mounted_in_it(tmp_path: Path) -> None:
    """Emptying the sample would empty what is mounted in it (a bind mount of the same filesystem too)."""
    assert demo(tmp_path / "sample").returncode == 0
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep me")
    target = tmp_path / "sample" / "images" / "mounted"
    target.mkdir()
    with bind(precious, target):
        refused = demo(tmp_path / "sample")
    assert refused.returncode == 2
    assert refused.stderr == (f"datagc.demo: {tmp_path / 'sample'} has a filesystem mounted on images/mounted in "
                              "it; nothing was changed (choose a new directory)\n")
    assert (precious / "keep.txt").read_text() == "keep me"


def test_a_marker_that_is_a_symlink_is_not_ours(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.png").write_bytes(b"keep me")
    (tmp_path / "elsewhere").write_text("a file")
    (data / MARKER).symlink_to(tmp_path / "elsewhere")
    assert demo(data).returncode == 2
    assert (data / "precious.png").read_bytes() == b"keep me"
