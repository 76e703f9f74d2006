"""The floor of a walk in Python: ``python3 -S bench/floor_walk.py DIR [PROCESSES]``.

Nothing but ``os.scandir`` and ``entry.stat`` summing ``st_blocks`` (as ``du -s``
counts), split over PROCESSES forked processes (default: the usable cores) as
datagc splits its walk: the directories of the first two levels are listed by
every process, each deeper one belongs to one. No fd-relative opens, no mount
or symlink checks, no hard-link bookkeeping, no report: what any Python walk of
the tree costs at least, on this machine (the audit bench's "bare Python walk" anchor).
"""

import os
import sys


def walk(top: str, share: int, count: int) -> int:
    total = 0
    stack = [(top, 0)]
    while stack:
        path, depth = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if depth < 2 or hash(entry.name) % count == share:
                        stack.append((entry.path, depth + 1))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks
    return total


def main() -> None:
    top = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else len(os.sched_getaffinity(0))
    children = []
    for share in range(1, count):
        pid = os.fork()
        if pid == 0:
            walk(top, share, count)
            os._exit(0)
        children.append(pid)
    walk(top, 0, count)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
