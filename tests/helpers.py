"""Shared test helpers: the installed ``datagc`` as a real subprocess (``from tests.helpers import run_datagc``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DATAGC = str(Path(sys.executable).with_name("datagc"))
#: environment variables that would change defaults under the tests' feet
_CONFIG_ENV_PREFIXES = ("DATAGC_", "GC_", "R2_", "TEST_MODE")
#: not configuration: how the walk and the unlinks are split (DATAGC_PARALLEL_THRESHOLD=0 runs the whole
#: suite through the parallel paths), so they reach every datagc the tests start
_PASSED_THROUGH = ("DATAGC_PARALLEL_THRESHOLD", "DATAGC_WALK_WORKERS")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return orjson.loads(self.stdout)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(_CONFIG_ENV_PREFIXES) or key in _PASSED_THROUGH}
    env.update(extra or {})
    return env


def run_datagc(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Result:
    """Run the installed ``datagc`` with a clean configuration environment plus ``env``."""
    process = subprocess.run(
        [DATAGC, *args], capture_output=True, text=True, env=clean_env(env), timeout=timeout, check=False
    )
    return Result(process.returncode, process.stdout, process.stderr)


@contextlib.contextmanager
def holding_lock(data_dir: Path) -> Iterator[int]:
    """Lock ``data_dir`` as another datagc would hold it: ``flock`` on the directory itself."""
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield fd
    finally:
        os.close(fd)
