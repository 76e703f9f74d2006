"""Helpers shared by the rotate tests: configurations, contexts, event logs in the service's line shape."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datagc.config.load import FlagValue, load_config
from datagc.config.schema import Config
from datagc.demo import event_line
from datagc.model import PassContext
from datagc.safety.datadir import DataDir

MiB = 1024 * 1024
TS = 1_764_000_000_000


def rotate_config(root: Path, **keys: Any) -> Config:
    """The configuration for DATA_DIR ``root`` with rotate keys given as flags (``max_bytes="1MiB"``)."""
    flags = {f"rotate.{name}": FlagValue(f"--{name.replace('_', '-')}", value) for name, value in keys.items()}
    return load_config(flags=flags, env={"DATAGC_DATA_DIR": str(root)})


@contextlib.contextmanager
def context(root: Path, config: Config, *, dry_run: bool = False) -> Iterator[PassContext]:
    with DataDir(root) as data_dir:
        yield PassContext(config=config, data_dir=data_dir, dry_run=dry_run, now=TS / 1000)


def events(count: int, first: int = 0) -> list[bytes]:
    """``count`` numbered events shaped like the service's ``events.jsonl`` lines (newline-terminated)."""
    return [event_line(index, TS + index) for index in range(first, first + count)]


def write_log(path: Path, filler_bytes: int, tail: list[bytes], partial: bytes = b"") -> bytes:
    """A log of about ``filler_bytes`` of old events, then the ``tail`` lines, then ``partial``.

    The filler repeats one block of real-shaped lines so that a log of tens of
    MiB is written in a moment. Returns the bytes after the filler.
    """
    block = b"".join(events(2000, first=10_000_000))
    with path.open("wb") as log:
        for _ in range(filler_bytes // len(block)):
            log.write(block)
        ending = b"".join(tail) + partial
        log.write(ending)
    return ending


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(path: Path) -> tuple[int, int, int, int, str]:
    """What "unchanged" means for a log: inode, size, mtime, mode and content."""
    st = os.lstat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, digest(path)


def leftovers(directory: Path) -> list[str]:
    """datagc temp files left in ``directory``."""
    return sorted(name for name in os.listdir(directory) if ".datagc-tmp." in name)
