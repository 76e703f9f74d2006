"""The data directory's lock: one datagc at a time changes it."""

from __future__ import annotations

import fcntl
import time

from datagc.errors import LockHeld
from datagc.safety.datadir import DataDir


def lock_data_dir(data_dir: DataDir, wait_seconds: float | None = None) -> None:
    """Take an exclusive ``flock`` on the data directory itself (no lock file on a full disk).

    Held until the descriptor is closed (the process ends). Raises LockHeld if
    another datagc holds it, after waiting up to ``wait_seconds``.
    """
    deadline = time.monotonic() + (wait_seconds or 0.0)
    while True:
        try:
            fcntl.flock(data_dir.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
                raise LockHeld(
                    f"another datagc is working on {data_dir.path}{waited}; nothing was changed "
                    "(use --wait DURATION to wait for it)"
                ) from None
            time.sleep(0.05)


def lock_held(data_dir: DataDir) -> bool:
    """Whether another datagc holds the lock now, without taking it (a dry run only reads).

    A shared lock is tried and at once released: it is refused only while an
    exclusive one is held, and holding it would make a real run exit 75.
    """
    try:
        fcntl.flock(data_dir.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(data_dir.fd, fcntl.LOCK_UN)
    return False
