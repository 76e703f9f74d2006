"""``datagc pressure`` at the edges: symlinks, mount points and unreadable directories in the media,
and ``cdn.verify`` against a real HTTP server."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from unittest.mock import patch

import orjson
import pytest

from datagc import cdn
from datagc.config.load import FlagValue, load_config
from datagc.exitcodes import Exit
from datagc.model import Delete, PassContext, StepReport
from datagc.safety.datadir import DataDir
from datagc.wording import detail_text
from tests.helpers import DATAGC, clean_env
from tests.mounts import MiB, tmpfs
from tests.pressure_tree import (
    CDN_BASE,
    ORDER_CDN_ON,
    SPECS,
    build_tree,
    expected_victims,
    fill_to,
    snapshot,
    usage,
    write_file,
)
from tests.steps import notes, run

pytestmark = pytest.mark.mount

#: root without the capabilities that let it read any directory: permissions apply to it again
WITHOUT_DAC_OVERRIDE = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def run_pass(data: Path, flags: dict[str, object]) -> StepReport:
    given = {"data_dir": str(data), "pressure.threshold": 0.7, "pressure.target": 0.6, "pressure.min_age": "1d",
             **flags}
    config = load_config({key: FlagValue(key, value) for key, value in given.items()}, env={})
    with DataDir(data) as data_dir, patch.object(cdn, "VERIFY_TIMEOUT", 5.0):
        return run("pressure", PassContext(config, data_dir, False, time.time()))


def deleted(step: StepReport) -> list[str]:
    return [action.path for action in step.actions if isinstance(action, Delete)]


def test_a_symlinked_media_dir_is_not_followed(tmp_path: Path) -> None:
    with tmpfs(100 * MiB) as root:
        data = root / "data"
        build_tree(data)
        outside = tmp_path / "elsewhere"
        write_file(outside / "old.mp3", MiB, age_days=100)
        (data / "voice-link").symlink_to(outside)
        fill_to(root, 0.9, "data/db/store.bin")

        step = run_pass(data, {"cdn.enabled": True, "sweep.media_dirs": "images,videos,voice-link",
                               "pressure.threshold": 0.5, "pressure.target": 0.1})

        assert (outside / "old.mp3").exists()
        assert not any(path.startswith("voice-link") for path in deleted(step))
        assert any(note.startswith("voice-link is a symbolic link") for note in notes(step))


def test_a_mount_point_inside_a_media_dir_is_not_entered() -> None:
    with tmpfs(100 * MiB) as root, tmpfs(8 * MiB) as other:
        data = root / "data"
        build_tree(data)
        write_file(other / "archived.png", MiB, age_days=100)
        point = data / "images" / "archive"
        point.mkdir()
        subprocess.run(["mount", "--bind", str(other), str(point)], check=True)
        try:
            fill_to(root, 0.9, "data/db/store.bin")
            step = run_pass(data, {"cdn.enabled": True, "pressure.threshold": 0.5, "pressure.target": 0.1})
            assert (point / "archived.png").exists()
            assert not any(path.startswith("images/archive/") for path in deleted(step))
            assert step.flags & Exit.PRESSURE_DELETED
        finally:
            subprocess.run(["umount", str(point)], check=False)


def test_an_unreadable_media_subdirectory_keeps_its_files_and_fails_the_step() -> None:
    with tmpfs(100 * MiB) as root:
        data = root / "data"
        build_tree(data)
        private = data / "voice" / "old"
        os.chmod(private, 0o700)
        os.chown(private, 1234, 1234)
        fill_to(root, 0.86, "data/db/store.bin")

        process = subprocess.run(
            [*WITHOUT_DAC_OVERRIDE, DATAGC, "pressure", "--data-dir", str(data), "--cdn",
             "--cdn-public-url", CDN_BASE, "--json"],
            capture_output=True, text=True, env=clean_env(), check=False,
        )
        if "setpriv" in process.stderr:
            pytest.skip(f"cannot drop the permission-override capabilities: {process.stderr.strip()}")

        assert process.returncode == Exit.STEP_FAILED | Exit.PRESSURE_DELETED, process.stderr
        assert "voice/old cannot be read (Permission denied); its files were kept" in process.stderr
        (step,) = orjson.loads(process.stdout)["steps"]
        assert (private / "unref-2.mp3").exists()
        evicted = [a["path"] for a in step["actions"] if a["kind"] == "delete"]
        assert evicted and "voice/old/unref-2.mp3" not in evicted
        order = [path for path in ORDER_CDN_ON if path != "voice/old/unref-2.mp3"]
        assert evicted == order[: len(evicted)]
        assert usage(data)[0] / usage(data)[1] <= 0.6


class _FakeCdn(http.server.BaseHTTPRequestHandler):
    """Answers HEAD like an object store: 200 and the size for what it holds, 404 for the rest."""

    holds: ClassVar[dict[str, int]] = {}

    def do_HEAD(self) -> None:
        size = self.holds.get(self.path)
        self.send_response(200 if size is not None else 404)
        self.send_header("Content-Length", str(size or 0))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_cdn(holds: dict[str, int]) -> Iterator[str]:
    handler = type("Handler", (_FakeCdn,), {"holds": holds})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cdn_verify_ranks_a_copy_missing_on_the_cdn_as_local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    sizes = {f"/{spec.path}": int(spec.mib * MiB) for spec in SPECS if spec.feed == "cdn"}
    del sizes["/images/pub-1.png"]  # the upload that never happened
    with tmpfs(100 * MiB) as root, fake_cdn(sizes) as base:
        data = root / "data"
        build_tree(data, cdn_base=base)
        fill_to(root, 0.86, "data/db/store.bin")
        order = ("videos/pub-3.mp4", "images/pub-2.png",  # confirmed on the CDN
                 "images/unref-1.png", "images/pub-1.png", "voice/old/unref-2.mp3", "images/unref-3.png",
                 *ORDER_CDN_ON[6:])
        victims = expected_victims(data, order, 0.6)
        before = snapshot(data)

        step = run_pass(data, {"cdn.enabled": True, "cdn.verify": True, "cdn.public_url": base})

        assert deleted(step) == victims
        details = {a.path: detail_text(a.detail) for a in step.actions if isinstance(a, Delete)}
        assert details["videos/pub-3.mp4"] == details["images/pub-2.png"] == "on the CDN, verified"
        assert details["images/pub-1.png"] == "unreferenced"
        (note,) = [n for n in notes(step) if n.startswith("images/pub-1.png ranked as a local-only copy")]
        assert "404" in note
        assert set(before) - set(snapshot(data)) == set(victims)
