"""A dry run predicts the failures it can see, so its exit bits are the real run's (run as a real user, real flags)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datagc.demo import build_sample
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.mounts import readonly_bind

NOBODY = 65534
ARGS = ("run-all", "--cdn", "--max-bytes", "1MiB", "--json")


def deleted(report: dict[str, Any]) -> set[str]:
    return {action["path"] for step in report["steps"] for action in step["actions"] if action["kind"] == "delete"}


@pytest.fixture
def shared_sample() -> Iterator[Path]:
    """A sample in a directory every user can reach (pytest's own tmp dirs are root's, mode 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="datagc-foresight-"))
    parent.chmod(0o755)
    root = parent / "data"
    build_sample(root, real_bytes=True, scale=0.01, events_bytes=2 * 1024 * 1024)
    yield root
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)
    shutil.rmtree(parent)


def as_nobody(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run datagc as an unprivileged user")
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", DATAGC, *ARGS,
               "--data-dir", str(root), *extra]
    process = subprocess.run(command, capture_output=True, text=True, env=clean_env(), check=False)
    if process.returncode in (126, 127) or ("Permission denied" in process.stderr and not process.stdout):
        pytest.skip(f"the unprivileged user cannot run {DATAGC} here: {process.stderr.strip()}")
    return process


def test_an_unprivileged_dry_run_predicts_what_the_real_run_can_not_delete(shared_sample: Path) -> None:
    """nobody may write in videos/ only: the rotation, the feed rewrite and every other deletion fail."""
    os.chown(shared_sample / "videos", NOBODY, NOBODY)
    before = run_datagc(*ARGS, "--data-dir", str(shared_sample), "--dry-run").json()
    dry = as_nobody(shared_sample, "--dry-run")
    real = as_nobody(shared_sample)
    planned, done = orjson.loads(dry.stdout), orjson.loads(real.stdout)
    assert dry.returncode == real.returncode == 1 | 8, dry.stderr + real.stderr
    assert deleted(planned) == deleted(done) == {"videos/1763400000000-f6.mp4"}
    assert deleted(before) > deleted(planned)  # as root the dry run would delete everything planned
    assert planned["reclaimed_bytes"] == done["reclaimed_bytes"]
    kept = {entry["path"]: entry["why"] for step in planned["steps"] for entry in step["kept"]}
    assert kept["images/1763900000000-a1.png"] == ("could not delete images/1763900000000-a1.png (Permission "
                                                   "denied); it would be left as it was")
    assert kept["videos/shared-name.mp4"].startswith("the feed posts.json could not be rewritten (Permission denied)")
    assert "could not rotate events.jsonl (Permission denied)" in dry.stderr


def test_an_immutable_file_is_foreseen(shared_sample: Path) -> None:
    immutable = shared_sample / "images" / "1763900000000-a1.png"
    if subprocess.run(["chattr", "+i", str(immutable)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file immutable here (chattr +i refused)")
    lsattr = subprocess.run(["lsattr", str(immutable)], capture_output=True, text=True, check=False).stdout
    assert "i" in lsattr.split()[0]
    dry = run_datagc(*ARGS, "--data-dir", str(shared_sample), "--dry-run")
    real = run_datagc(*ARGS, "--data-dir", str(shared_sample))
    assert dry.code == real.code == 1 | 4 | 8
    assert deleted(dry.json()) == deleted(real.json()) and "images/1763900000000-a1.png" not in deleted(dry.json())
    assert immutable.exists()
    kept = {entry["path"]: entry["why"] for step in dry.json()["steps"] for entry in step["kept"]}
    assert "Operation not permitted: the file is immutable" in kept["images/1763900000000-a1.png"]


@pytest.mark.mount
def test_a_read_only_filesystem_is_foreseen(tmp_path: Path) -> None:
    source = tmp_path / "data"
    build_sample(source, real_bytes=True, scale=0.01, events_bytes=2 * 1024 * 1024)
    with readonly_bind(source) as root:
        dry = run_datagc(*ARGS, "--data-dir", str(root), "--dry-run")
        real = run_datagc(*ARGS, "--data-dir", str(root))
    assert dry.code == real.code == 1
    assert dry.json()["reclaimed_bytes"] == real.json()["reclaimed_bytes"] == 0
    assert deleted(dry.json()) == deleted(real.json()) == set()
    assert "Read-only file system" in dry.stderr


def more_problems(stderr: str, step: str) -> int:
    """N of ``(and N more problems)`` in ``step``'s error line (0 when it names its only problem)."""
    (line,) = [line for line in stderr.splitlines() if line.startswith(f"datagc: {step} failed: ")]
    found = re.search(r" \(and (\d+) more problems?\)$", line)
    return int(found.group(1)) if found else 0


def test_a_dry_run_counts_the_problems_the_real_run_reports(shared_sample: Path) -> None:
    """nobody may write in videos/ only: the real run also can't create the journal's state dir in DATA_DIR for the
    one file it deletes, and the dry run's error line counts that problem too."""
    os.chown(shared_sample / "videos", NOBODY, NOBODY)
    dry = as_nobody(shared_sample, "--dry-run")
    real = as_nobody(shared_sample)
    assert not (shared_sample / ".datagc").exists()
    assert more_problems(dry.stderr, "sweep") == more_problems(real.stderr, "sweep") > 1, dry.stderr + real.stderr
    assert dry.returncode == real.returncode


def test_a_journal_the_real_run_can_not_write_is_foreseen(shared_sample: Path) -> None:
    """Everything is nobody's but the state dir (root's, 0700): each change would go, unjournaled, so both runs
    fail their steps that change something, with the same exit status."""
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(shared_sample)], check=True)
    (shared_sample / ".datagc").mkdir(mode=0o700)
    dry = as_nobody(shared_sample, "--dry-run")
    real = as_nobody(shared_sample)
    assert dry.returncode == real.returncode == 1 | 4 | 8, dry.stderr + real.stderr
    assert "state dir .datagc cannot be opened (Permission denied); the changes of this pass would not be in the " \
           "journal" in dry.stderr
    assert "state dir .datagc cannot be opened (Permission denied)" in real.stderr
    assert [step["status"] for step in orjson.loads(dry.stdout)["steps"]][:2] == ["error", "error"]

