"""Write-through cleanup with ``cdn.verify``: a real HTTP server on 127.0.0.1 answers the HEAD requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from unittest.mock import patch

import pytest

from datagc import cdn
from datagc.model import Delete
from datagc.wording import verdict_text
from tests.steps import notes, run, why
from tests.sweep_support import NOW, context, files, make_config, node_json, write_file

SLOW = 0.6  # seconds the slow path takes to answer; the verify timeout in these tests is far shorter


class FakeCdn(BaseHTTPRequestHandler):
    """HEAD answers by path: /images/ok-*, /images/wrong-*, /images/slow-*; anything else is a 404."""

    sizes: ClassVar[dict[str, int]] = {}
    requests: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        self.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name.startswith("slow-"):
            time.sleep(SLOW)
        if name.startswith(("ok-", "slow-")):
            self._answer(200, self.sizes.get(self.path, 0))
        elif name.startswith("wrong-"):
            self._answer(200, self.sizes.get(self.path, 0) + 1)
        elif name.startswith("nolength-"):
            self.send_response(200)
            self.end_headers()
        else:
            self._answer(404, 0)

    def _answer(self, status: int, length: int) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.end_headers()
        except OSError:
            pass  # the client gave up (timeout)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeCdn.sizes = {}
    FakeCdn.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeCdn)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_verify_answers(server: str) -> None:
    FakeCdn.sizes = {"/images/ok-a.png": 10, "/images/wrong-a.png": 10}
    assert cdn.verify(f"{server}/images/ok-a.png", 10, 2, server).ok
    wrong = cdn.verify(f"{server}/images/wrong-a.png", 10, 2, server)
    assert not wrong.ok and "has 11 bytes" in verdict_text(wrong) and wrong.answered
    missing = cdn.verify(f"{server}/images/missing.png", 10, 2, server)
    assert not missing.ok and "404" in verdict_text(missing)
    assert not cdn.verify(f"{server}/images/nolength-a.png", 10, 2, server).ok
    slow = cdn.verify(f"{server}/images/slow-a.png", 0, 0.2, server)
    assert not slow.ok and not slow.answered and "did not answer" in verdict_text(slow)


def test_verify_with_nothing_listening() -> None:
    verdict = cdn.verify("http://127.0.0.1:9/images/a.png", 10, 1, "http://127.0.0.1:9")  # discard port: refused
    assert not verdict.ok and not verdict.answered


def test_a_dead_cdn_costs_a_few_timeouts_not_one_per_file(server: str) -> None:
    requests = {f"images/slow-{i}.png": (f"{server}/images/slow-{i}.png", 0) for i in range(30)}
    started = time.monotonic()
    verdicts = cdn.verify_all(requests, server, timeout=0.2)
    assert not any(verdict.ok for verdict in verdicts.values()) and len(verdicts) == 30
    assert len(FakeCdn.requests) < cdn.VERIFY_GIVE_UP_AFTER + cdn.VERIFY_WORKERS
    assert time.monotonic() - started < 30 * 0.2  # the requests count above is the proof; this only bounds a hang
    assert any("no more were sent" in verdict_text(verdict) for verdict in verdicts.values())


def test_sweep_deletes_only_copies_the_cdn_confirms(server: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    names = ["ok-a.png", "wrong-a.png", "gone-a.png", "slow-a.png", "ok-young.png"]
    for name in names:
        write_file(root / "images" / name, 5000, 1 if name != "ok-young.png" else 5 / 1440)
        FakeCdn.sizes[f"/images/{name}"] = 5000
    write_file(root / "images" / "old-unverified.png", 5000, 8)  # older than max_age: no CDN question asked
    document = [{"id": f"p{i}", "imageUrl": f"{server}/images/{name}"} for i, name in enumerate(names)]
    document.append({"id": "old", "imageUrl": f"{server}/images/old-unverified.png"})
    (root / "posts.json").write_text(node_json(document))
    config = make_config(root, cdn__enabled=True, cdn__verify=True, cdn__public_url=server)
    with context(root, config) as ctx, patch.object(cdn, "VERIFY_TIMEOUT", 0.3):
        step = run("sweep", ctx)
    assert {a.path: a.reason for a in step.actions if isinstance(a, Delete)} == {
        "images/ok-a.png": "published", "images/old-unverified.png": "age"}
    assert files(root) == {"posts.json"} | {f"images/{n}" for n in ("wrong-a.png", "gone-a.png", "slow-a.png",
                                                                     "ok-young.png")}
    kept = {k.path: why(k) for k in step.kept}
    assert set(kept) == {"images/wrong-a.png", "images/gone-a.png", "images/slow-a.png"}
    assert "5001 bytes" in kept["images/wrong-a.png"]
    assert "404" in kept["images/gone-a.png"]
    assert "did not answer" in kept["images/slow-a.png"]
    assert sum("although the feed shows it on the CDN" in note for note in notes(step)) == 3
    assert sorted(FakeCdn.requests) == sorted(f"/images/{n}" for n in ("ok-a.png", "wrong-a.png", "gone-a.png",
                                                                       "slow-a.png"))
    assert step.status == "ok"


def test_dry_run_verifies_too(server: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_file(root / "images" / "gone-a.png", 10, 1)
    (root / "posts.json").write_text(node_json([{"id": "p", "imageUrl": f"{server}/images/gone-a.png"}]))
    config = make_config(root, cdn__enabled=True, cdn__verify=True, cdn__public_url=server)
    with context(root, config, dry_run=True, now=NOW) as ctx, patch.object(cdn, "VERIFY_TIMEOUT", 1):
        step = run("sweep", ctx)
    assert step.actions == [] and [k.path for k in step.kept] == ["images/gone-a.png"]
    assert FakeCdn.requests == ["/images/gone-a.png"]
