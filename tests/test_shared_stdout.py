"""datagc's lines and another process's, written to one pipe (a container's log): neither lands inside the other.

The entrypoint (contrib/docker-entrypoint.sh) runs ``datagc watch`` beside the
service with one stdout. A pipe keeps a write of at most ``PIPE_BUF`` bytes in
one piece whatever else is written to it, but a longer write is copied in parts
while the reader lags, and another writer's line can land between two parts: in
the middle of one of datagc's lines. So datagc writes whole lines, at most
``PIPE_BUF`` bytes at a time. The attack: a reader slower than both writers,
and a second writer that writes short lines as fast as it can.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import DATAGC, clean_env

#: the service: short lines, one write each, until the stop file appears
SERVICE = """
import os, sys
index = 0
while not os.path.exists(sys.argv[1]):
    os.write(1, f"service: line {index}\\n".encode())
    index += 1
"""


def _old_media(root: Path, count: int) -> None:
    old = time.time() - 30 * 86400
    for index in range(count):
        path = root / "images" / f"day-{index % 20}" / f"{'long-name-' * 8}{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (old, old))


def test_lines_from_datagc_and_a_service_sharing_a_pipe_stay_whole(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _old_media(root, 3000)
    stop = tmp_path / "stop"
    read_end, write_end = os.pipe()
    env = clean_env({"DATAGC_DATA_DIR": str(root), "DATAGC_STATE_DIR": str(tmp_path / "state")})
    with open(os.devnull, "wb") as devnull:
        service = subprocess.Popen([sys.executable, "-c", SERVICE, str(stop)], stdout=write_end, stderr=devnull)
        datagc = subprocess.Popen([DATAGC, "sweep", "--cdn", "--max-age", "7d"], stdout=write_end,
                                  stderr=devnull, env=env)
    os.close(write_end)
    chunks: list[bytes] = []

    def read_slowly() -> None:  # slower than both writers: the pipe stays full, and they wait on it
        with os.fdopen(read_end, "rb") as reader:
            while chunk := reader.read1(512):
                chunks.append(chunk)
                time.sleep(0.0005)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        assert datagc.wait(timeout=120) == 8  # 8: no cdn.public_url (said once)
    finally:
        stop.touch()
        service.wait(timeout=120)
        reader.join(timeout=120)
    lines = b"".join(chunks).decode().splitlines()
    spliced = [line for line in lines if not re.fullmatch(r"service: line \d+|\[janitor\] .*", line)
               or ("service: line" in line and not line.startswith("service: line"))]
    assert not spliced, f"{len(spliced)} lines spliced, e.g. {spliced[:2]}"
    assert sum(line.startswith("[janitor] swept images/") for line in lines) == 3000
