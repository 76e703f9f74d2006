"""Build a sample data directory in the service's real formats, for the demo, tests and benchmarks.

The layout is the service's (SPEC §1): the feed ``posts.json`` and product
``cartoons.json`` (shipped in ``datagc/sample``), an ``events.jsonl`` of the
service's event shapes, stores, a cache, a keypair, two feed-writer temps, and
the media of ``sample/media.tsv`` with their mtimes set to their ages.

    python -m datagc.demo DIR [--events-mib N] [--scale F] [--sparse]

DIR must be missing, empty, or a sample this command built before (it leaves
a ``.datagc-demo`` marker): that one is rebuilt from scratch. Anything else is
refused, so a mistyped path never loses data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson

DAY = 86400.0
#: left in a directory this module built, so that it may delete and rebuild it (and nothing else)
MARKER = ".datagc-demo"


@dataclass(frozen=True)
class MediaFile:
    """One file of ``media.tsv``: where it goes, its size, its age and why it is interesting."""

    path: str
    bytes: int
    age_days: float
    note: str


def _sample_text(name: str) -> str:
    return resources.files("datagc.sample").joinpath(name).read_text(encoding="utf-8")


def _load_media() -> tuple[MediaFile, ...]:
    rows = _sample_text("media.tsv").splitlines()[1:]
    media = []
    for row in rows:
        path, size, age, note = row.split("\t")
        media.append(MediaFile(path, int(size), float(age), note))
    return tuple(media)


#: Every file of the sample besides the feed, product and event log.
MEDIA: tuple[MediaFile, ...] = _load_media()


def event_line(index: int, ts_ms: int) -> bytes:
    """One event in the service's shapes (monologue, scan, state_change, metric, post, generate)."""
    shapes: list[dict[str, object]] = [
        {"type": "monologue", "text": f"thinking about item {index}", "state": "monologuing"},
        {"type": "scan", "source": "news", "signalCount": index % 13},
        {"type": "state_change", "from": "scanning", "to": "ideating"},
        {"type": "metric", "name": "queue", "value": index % 10},
        {"type": "post", "tweetId": f"{1900000000000000000 + index}", "text": "posted", "imageUrl": "/images/x.png"},
        {"type": "generate", "prompt": "a cartoon of a bull", "variantCount": 3},
    ]
    event = shapes[index % len(shapes)]
    event["ts"] = ts_ms
    return orjson.dumps(event) + b"\n"


def write_event_log(path: Path, target_bytes: int, now: float) -> int:
    """Write events until the log reaches ``target_bytes``; returns the number of lines."""
    start_ms = int(now * 1000)
    count = 0
    written = 0
    with path.open("wb") as log:
        chunk: list[bytes] = []
        while written < target_bytes:
            line = event_line(count, start_ms - 1000 * 10_000_000 + count * 1000)
            chunk.append(line)
            written += len(line)
            count += 1
            if len(chunk) >= 10_000:
                log.write(b"".join(chunk))
                chunk.clear()
        log.write(b"".join(chunk))
    return count


def _write_file(path: Path, size: int, sparse: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        if sparse:
            handle.truncate(size)
            return
        block = os.urandom(min(size, 1 << 20)) if size else b""
        remaining = size
        while remaining > 0:
            handle.write(block[:remaining])
            remaining -= len(block)


def build_sample(
    root: Path,
    now: float | None = None,
    *,
    real_bytes: bool = False,
    scale: float = 1.0,
    events_bytes: int | None = None,
) -> None:
    """Lay out the sample in ``root`` (created if missing).

    ``real_bytes`` writes allocated (random) bytes, needed where disk usage is
    measured; otherwise media are sparse. ``scale`` multiplies media sizes.
    ``events_bytes`` grows ``events.jsonl`` to that size instead of the 200
    sample events.
    """
    now = time.time() if now is None else now
    root.mkdir(parents=True, exist_ok=True)
    for name in ("posts.json", "cartoons.json"):
        (root / name).write_text(_sample_text(name), encoding="utf-8")
    if events_bytes is None:
        (root / "events.jsonl").write_text(_sample_text("events.jsonl"), encoding="utf-8")
    else:
        write_event_log(root / "events.jsonl", events_bytes, now)
    for media in MEDIA:
        path = root / media.path
        size = max(1, int(media.bytes * scale)) if media.path.count("/") else media.bytes
        if media.path.endswith(".json"):
            path.write_text('{"sample": true}\n' if "keypair" not in media.path else '{"secretKey": "sample"}\n')
        else:
            _write_file(path, size, sparse=not real_bytes)
        mtime = now - media.age_days * DAY
        os.utime(path, (mtime, mtime))


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a sample data directory in the service's formats.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--events-mib", type=float, default=60.0, help="size of events.jsonl (default 60)")
    parser.add_argument("--scale", type=float, default=0.1, help="media size factor (default 0.1)")
    parser.add_argument("--sparse", action="store_true", help="sparse media (no real allocation)")
    args = parser.parse_args()
    directory: Path = args.directory
    if problem := _unusable(directory):
        sys.stderr.write(f"datagc.demo: {directory} {problem}; nothing was changed (choose a new directory)\n")
        raise SystemExit(2)
    directory.mkdir(parents=True, exist_ok=True)
    _empty_but_marker(directory)
    (directory / MARKER).write_text("built by python -m datagc.demo; it deletes and rebuilds this directory\n")
    build_sample(
        args.directory,
        real_bytes=not args.sparse,
        scale=args.scale,
        events_bytes=int(args.events_mib * 1024 * 1024),
    )
    print(f"sample data directory ready: {directory}")


def _unusable(directory: Path) -> str | None:
    """Why ``directory`` must not be built in, or None: missing, empty or one of ours are fine."""
    if directory.is_symlink():
        return "is a symbolic link"
    if not directory.exists():
        return None
    if not directory.is_dir():
        return "exists and is not a directory"
    if _ours(directory):
        mounted = _mount_inside(directory)
        return None if mounted is None else f"has a filesystem mounted on {mounted} in it"
    if not any(directory.iterdir()):
        return None
    return f"is not empty and was not built by datagc.demo (it has no {MARKER} file)"


def _ours(directory: Path) -> bool:
    marker = directory / MARKER
    return marker.is_file() and not marker.is_symlink()


def _mount_inside(directory: Path) -> str | None:
    """A mount point inside ``directory``: emptying would empty that filesystem as well. From
    /proc/self/mountinfo (bind mounts of the same filesystem too) and, where /proc can't be read, ``st_dev``."""
    from datagc.safety.datadir import mount_points_inside

    inside = set(mount_points_inside(os.path.realpath(directory)))
    inside.update(os.path.relpath(os.path.join(parent, name), directory)
                  for parent, subdirs, _ in os.walk(directory) for name in subdirs
                  if os.path.ismount(os.path.join(parent, name)))
    return min(inside) if inside else None


def _empty_but_marker(directory: Path) -> None:
    """Remove what the sample holds, keeping the directory (it may be the current one, or a mount point) and
    the marker (a rebuild cut short is still recognised as ours)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == MARKER:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


if __name__ == "__main__":
    main()
