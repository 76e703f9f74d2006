"""A media tree of known ages, sizes and feed references on a real filesystem, for the pressure tests.

The feed is written the way the service writes it (a JSON array of posts,
2-space indent) and names media by CDN URL or by local URL. ``expected_victims``
is the test's own statement of the eviction order (SPEC §7.7) and the target
arithmetic, independent of the pass.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
DAY = 86400.0
CDN_BASE = "https://cdn.example.com"


@dataclass(frozen=True)
class Spec:
    path: str
    mib: float
    age_days: float
    #: how the feed names it: "cdn", "local", "both" (one post each way) or None
    feed: str | None = None


SPECS: tuple[Spec, ...] = (
    Spec("images/pub-1.png", 3, 9, "cdn"),
    Spec("images/pub-2.png", 2, 4, "cdn"),
    Spec("videos/pub-3.mp4", 4, 6, "cdn"),
    Spec("images/unref-1.png", 3, 12),
    Spec("voice/old/unref-2.mp3", 2, 8),
    Spec("images/unref-3.png", 3, 2),
    Spec("images/shared-name.png", 3, 20, "local"),
    Spec("bid-images/shared-name.png", 2, 3, "local"),
    Spec("videos/ref-1.mp4", 4, 15, "local"),
    Spec("images/both.png", 2, 30, "both"),
    Spec("images/fresh.png", 4, 0.5),  # younger than min_age
    Spec("images/fresh-ref.png", 2, 0.2, "local"),  # younger than min_age
    Spec("images/cache-thumbs.png", 3, 40),  # protected: cache-*
    Spec("voice/keypair-backup.mp3", 1, 40),  # protected: *keypair*
    Spec("videos/linked.mp4", 3, 40),  # hard-linked from archive/linked.mp4
)
LINKED = ("videos/linked.mp4", "archive/linked.mp4")
SPARED = ("images/fresh.png", "images/fresh-ref.png", "images/cache-thumbs.png", "voice/keypair-backup.mp3",
          "videos/linked.mp4")

ORDER_CDN_ON = (
    "images/pub-1.png", "videos/pub-3.mp4", "images/pub-2.png",  # on the CDN
    "images/unref-1.png", "voice/old/unref-2.mp3", "images/unref-3.png",  # unreferenced
    "images/both.png", "images/shared-name.png", "videos/ref-1.mp4", "bid-images/shared-name.png",  # referenced
)
ORDER_CDN_OFF = (
    "images/unref-1.png", "images/pub-1.png", "voice/old/unref-2.mp3", "videos/pub-3.mp4", "images/pub-2.png",
    "images/unref-3.png",
    "images/both.png", "images/shared-name.png", "videos/ref-1.mp4", "bid-images/shared-name.png",
)


def write_file(path: Path, size: int, age_days: float = 0.0, now: float | None = None) -> None:
    """A file of ``size`` real (allocated) bytes whose mtime is ``age_days`` before ``now``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = b"\x5a" * MiB
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            remaining -= handle.write(block[: min(remaining, MiB)])
    mtime_ns = int(((now or time.time()) - age_days * DAY) * 1e9)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def field_for(path: str) -> str:
    return "videoUrl" if path.startswith("videos/") else "imageUrl"


def build_tree(data: Path, specs: tuple[Spec, ...] = SPECS, cdn_base: str = CDN_BASE) -> list[dict[str, Any]]:
    """Media of ``specs``, the hard link, posts.json, cartoons.json and a keypair in ``data``; returns the feed."""
    now = time.time()
    for spec in specs:
        write_file(data / spec.path, int(spec.mib * MiB), spec.age_days, now)
    (data / LINKED[1]).parent.mkdir(parents=True, exist_ok=True)
    os.link(data / LINKED[0], data / LINKED[1])
    posts: list[dict[str, Any]] = [{"id": "p0", "text": "no media", "type": "quickhit", "imageUrl": None}]
    for number, spec in enumerate(specs, start=1):
        urls = {"cdn": [f"{cdn_base}/{spec.path}"], "local": [f"/{spec.path}"],
                "both": [f"{cdn_base}/{spec.path}", f"/{spec.path}"]}.get(spec.feed or "", [])
        for index, url in enumerate(urls):
            posts.append({"id": f"p{number}{'ab'[index]}", "text": f"post about {spec.path}",
                          field_for(spec.path): url, "postedAt": int(now * 1000) - number,
                          "engagement": {"likes": number, "views": 10 * number}})
    (data / "posts.json").write_text(json.dumps(posts, indent=2), encoding="utf-8")
    (data / "cartoons.json").write_text(json.dumps([{"id": "c1", "variants": ["images/pub-1.png"]}]) + "\n")
    (data / "agent-keypair.json").write_text('{"secretKey": "sample"}\n')
    return posts


def usage(directory: Path) -> tuple[int, int]:
    """(used, used + available) bytes of the filesystem holding ``directory``, as df counts them,
    but datagc's own journal in ``directory/.datagc`` (SPEC §9): it is written after the evictions."""
    st = os.statvfs(directory)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    journal = sum(path.lstat().st_blocks * 512 for path in (directory / ".datagc").glob("*"))
    return used - journal, used + st.f_bavail * st.f_frsize


def fill_to(directory: Path, fraction: float, name: str) -> None:
    """Write a filler file ``name`` in ``directory`` so that df shows about ``fraction`` used."""
    os.sync()
    used, capacity = usage(directory)
    write_file(directory / name, max(0, int(fraction * capacity) - used))
    os.sync()


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def expected_victims(data: Path, order: tuple[str, ...], target: float) -> list[str]:
    """The shortest prefix of ``order`` whose allocated bytes bring df's Use% to ``target``."""
    used, capacity = usage(data)
    need = used - Fraction(repr(target)) * capacity
    victims: list[str] = []
    freed = 0
    for path in order:
        if freed >= need:
            break
        victims.append(path)
        freed += allocated(data / path)
    return victims


def feed_after(posts: list[dict[str, Any]], victims: list[str]) -> list[dict[str, Any]]:
    """The feed as it must read once the victims' local references were nulled, and nothing else changed."""
    gone = {f"/{path}" for path in victims}
    return [{key: (None if key in ("imageUrl", "videoUrl") and value in gone else value)
             for key, value in post.items()} for post in posts]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every regular file under ``root``: (size, mtime_ns)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found
