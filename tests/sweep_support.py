"""Helpers shared by the sweep, feed and executor tests: configs, contexts, sample trees, tree snapshots."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datagc.config.load import FlagValue, load_config
from datagc.config.schema import Config
from datagc.demo import build_sample
from datagc.model import PassContext
from datagc.safety.datadir import DataDir

DAY = 86400.0
#: a fixed clock for trees whose ages matter
NOW = 1_764_000_000.0


def make_config(root: Path, **keys: Any) -> Config:
    """The configuration for DATA_DIR ``root``, with ``keys`` given as flags (``cdn__enabled=True``)."""
    flags = {name.replace("__", "."): FlagValue(f"--{name}", value) for name, value in keys.items()}
    return load_config(flags=flags, env={"DATAGC_DATA_DIR": str(root)})


@contextlib.contextmanager
def context(root: Path, config: Config, *, dry_run: bool = False, now: float = NOW) -> Iterator[PassContext]:
    with DataDir(root) as data_dir:
        yield PassContext(config=config, data_dir=data_dir, dry_run=dry_run, now=now)


def sample(root: Path, now: float = NOW) -> Path:
    """The sovra-data sample with real (small) allocations, ages relative to ``now``."""
    build_sample(root, now, real_bytes=True, scale=0.001)
    return root


def write_file(path: Path, size: int, age_days: float, now: float = NOW) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    mtime = now - age_days * DAY
    os.utime(path, (mtime, mtime))
    return path


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` with its type, mode, mtime and content (or link target)."""
    tree: dict[str, tuple[object, ...]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            st = path.lstat()
            relative = str(path.relative_to(root))
            if path.is_symlink():
                tree[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[relative] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                tree[relative] = ("file", st.st_mode, st.st_mtime_ns, st.st_ino, path.read_bytes())
    return tree


def files(root: Path) -> set[str]:
    """Relative paths of the regular files under ``root``, but datagc's own state (``.datagc``, SPEC §9)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and not str(p.relative_to(root)).startswith(".datagc/")}


def posts(root: Path, feed: str = "posts.json") -> list[dict[str, Any]]:
    document: list[dict[str, Any]] = json.loads((root / feed).read_text(encoding="utf-8"))
    return document


def post(root: Path, post_id: str) -> dict[str, Any]:
    return next(entry for entry in posts(root) if entry.get("id") == post_id)


def node_json(document: object) -> str:
    """What the service writes: Node's ``JSON.stringify(x, null, 2)``."""
    return json.dumps(document, indent=2, ensure_ascii=False)
