"""Shared test helpers: the installed ``datagc`` as a real subprocess (``from tests.helpers import run_datagc``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
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


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a datagc to listen on next.

    Chosen below the kernel's ephemeral range: a port there is never handed to another process's outgoing
    connection or port-0 listener (the whole machine's tests make plenty) between this check and the
    datagc's bind, as the kernel's own choice (bind to port 0, release) could be.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in random.sample(range(10000, max(low, 10001)), min(200, max(low - 10000, 1))):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 10000 and {low} on {host}")
