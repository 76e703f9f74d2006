"""The real tools the deployment tests run: found on PATH or in the venv (where `make tools` puts what was missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of ``name``; a missing tool fails the test (never skips it): `make tools` installs them all."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), str(VENV_BIN)]))
    if found is None:
        pytest.fail(f"{name} is not installed: run `make tools` (make test does)")
    return found


def run_tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(name), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
