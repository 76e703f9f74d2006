"""metrics.listen: a real ``datagc watch`` scraped over HTTP; the address, the port in use, the parser."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from datagc.config.load import load_config
from datagc.demo import build_sample
from datagc.endpoint import serve_metrics
from datagc.exitcodes import Exit
from datagc.model import RunReport, StepReport
from datagc.units import parse_host_port
from tests.helpers import DATAGC, clean_env, free_port, run_datagc
from tests.process_lines import PATIENCE, Running

ORPHAN = "posts.json.tmp.1763000000000"
SUMMARY = "[janitor] run-all: "
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def scrape_until(url: str, ready: str) -> Samples:
    """Scrape until metric ``ready`` is served (a pass is published just after its summary line)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        samples = scrape(url)
        if ready in samples or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def listening_addresses(port: int) -> list[str]:
    """The local addresses of TCP sockets in LISTEN state on ``port``, from /proc/net/tcp and tcp6 (hex)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, _, port_hex = fields[1].rpartition(":")
                if int(port_hex, 16) == port and fields[3] == "0A":
                    found.append(address)
    return found


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    build_sample(root)
    return root


def test_a_running_watch_serves_the_textfile_metrics_on_the_given_address_only(
        sample: Path, tmp_path: Path, watches: list[Running]) -> None:
    port = free_port()
    textfile = tmp_path / "datagc.prom"
    watch = Running([DATAGC, "watch", "--data-dir", str(sample), "--initial-delay", "0", "--interval", "300ms",
                     "--threshold", "1", "--metrics-textfile", str(textfile)],
                    clean_env({"DATAGC_METRICS_LISTEN": f"127.0.0.1:{port}"}))
    watches.append(watch)
    url = f"http://127.0.0.1:{port}/metrics"

    watch.wait_for(watch.out, f"[janitor] watch: serving metrics on {url}")
    watch.wait_for(watch.out, SUMMARY, count=2)
    served = scrape_until(url, "datagc_pass_timestamp_seconds")
    listening = listening_addresses(port)
    code = watch.stop(signal.SIGTERM)

    assert code == 0, watch.err
    assert listening == ["0100007F"], "bound to 127.0.0.1 only, not to every address"
    assert set(served) == set(parse(textfile.read_text())), "the same metric names as the textfile"
    assert served["datagc_step_error"] == {(("step", name),): 0.0 for name in ("rotate", "sweep", "pressure")}
    assert served["datagc_last_success_timestamp_seconds"][(("step", "sweep"),)] > time.time() - PATIENCE
    assert served["datagc_exit_code"][()] in (0, Exit.SWEPT)
    assert not (sample / ORPHAN).exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)  # stopped with watch


def test_a_failing_step_keeps_its_last_success_between_scrapes(sample: Path, watches: list[Running]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    watch = Running([DATAGC, "watch", "--data-dir", str(sample), "--initial-delay", "0", "--interval", "300ms",
                     "--threshold", "1", "--max-bytes", "1MiB", "--metrics-listen", f"127.0.0.1:{port}"], clean_env())
    watches.append(watch)
    watch.wait_for(watch.out, SUMMARY)
    first = scrape_until(url, "datagc_last_success_timestamp_seconds")
    rotated_at = first["datagc_last_success_timestamp_seconds"][(("step", "rotate"),)]

    (sample / "events.jsonl").write_bytes(b"x" * (2 * 1024 * 1024))  # no line end past max_bytes: rotate fails
    deadline = time.monotonic() + PATIENCE
    while (failed := scrape(url))["datagc_step_error"][(("step", "rotate"),)] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    # a loaded machine may run one more good pass between the first scrape and the write: the success kept
    # is the one the first failing pass found, whatever it is, and later failing passes keep it too
    kept = failed["datagc_last_success_timestamp_seconds"][(("step", "rotate"),)]
    started = failed["datagc_pass_timestamp_seconds"][()]
    while (served := scrape(url))["datagc_pass_timestamp_seconds"][()] == started and time.monotonic() < deadline:
        time.sleep(0.1)
    watch.stop(signal.SIGTERM)

    assert failed["datagc_step_error"][(("step", "rotate"),)] == served["datagc_step_error"][(("step", "rotate"),)] == 1
    assert served["datagc_pass_timestamp_seconds"][()] > started, "a second failing pass was served"
    assert rotated_at <= kept == served["datagc_last_success_timestamp_seconds"][(("step", "rotate"),)] < started
    assert served["datagc_last_success_timestamp_seconds"][(("step", "sweep"),)] > kept
    assert int(served["datagc_exit_code"][()]) & Exit.STEP_FAILED


def test_a_port_in_use_is_a_clear_error_and_nothing_runs(sample: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_datagc("watch", "--data-dir", str(sample), "--initial-delay", "0",
                            "--metrics-listen", f"127.0.0.1:{port}", timeout=PATIENCE)

    assert result.code == Exit.USAGE
    assert result.stderr == (f"datagc: metrics.listen = '127.0.0.1:{port}' (from flag --metrics-listen): "
                             "cannot listen there: Address already in use\n")
    assert (sample / ORPHAN).exists()


@pytest.mark.parametrize(("value", "problem"), [
    (":9109", "no host in ':9109'"),
    ("127.0.0.1", "not HOST:PORT"),
    ("127.0.0.1:0", "port 0 is not between 1 and 65535"),
    ("127.0.0.1:65536", "port 65536 is not between 1 and 65535"),
    ("::1:9109", "an IPv6 address goes in brackets: [::1]:9109"),
    ("[127.0.0.1]:9109", "[127.0.0.1] is not an IPv6 address"),
    ("bad host:9109", "'bad host' is not an IP address or a host name"),
    ("localhost:9109/metrics", "not HOST:PORT"),
])
def test_a_bad_address_is_a_configuration_error(sample: Path, value: str, problem: str) -> None:
    result = run_datagc("watch", "--data-dir", str(sample), env={"DATAGC_METRICS_LISTEN": value},
                        timeout=PATIENCE)

    assert result.code == Exit.USAGE
    assert result.stderr.startswith(f"datagc: metrics.listen = {value!r} (from environment DATAGC_METRICS_LISTEN): ")
    assert problem in result.stderr
    assert (sample / ORPHAN).exists()


def test_a_name_that_does_not_resolve_is_a_clear_error(sample: Path) -> None:
    result = run_datagc("watch", "--data-dir", str(sample), "--metrics-listen", "no-such-host.invalid:9109",
                        timeout=PATIENCE)

    assert result.code == Exit.USAGE
    assert "datagc: metrics.listen = 'no-such-host.invalid:9109' (from flag --metrics-listen): cannot listen there" \
        in result.stderr
    assert "Traceback" not in result.stderr


def report_at(when: float, failed: tuple[str, ...] = ()) -> RunReport:
    steps = [StepReport(name, status="error" if name in failed else "ok") for name in ("rotate", "sweep")]
    return RunReport("run-all", "/data", False, None, steps=steps, started_at=when, duration_seconds=1.0)


def test_last_successes_are_seeded_from_the_textfile_and_carried_in_memory(tmp_path: Path) -> None:
    """In-process: what a restarted sidecar serves before and after its first passes."""
    textfile = tmp_path / "datagc.prom"
    textfile.write_text('datagc_last_success_timestamp_seconds{step="rotate"} 100.0\n'
                        'datagc_last_success_timestamp_seconds{step="pressure"} 50.0\n')
    port = free_port()
    config = load_config(env={"DATAGC_METRICS_LISTEN": f"127.0.0.1:{port}", "DATAGC_METRICS_TEXTFILE": str(textfile)})
    url = f"http://127.0.0.1:{port}/metrics"
    with serve_metrics(config) as endpoint:
        assert endpoint is not None and endpoint.url == url
        assert scrape(url) == {}, "nothing is served before the first pass"
        endpoint.publish(report_at(1000.0, failed=("rotate",)))
        first = scrape(url)["datagc_last_success_timestamp_seconds"]
        endpoint.publish(report_at(2000.0, failed=("sweep",)))
        second = scrape(url)["datagc_last_success_timestamp_seconds"]
        restricted = scrape(url + "?name[]=datagc_exit_code")

    assert first == {(("step", "rotate"),): 100.0, (("step", "pressure"),): 50.0, (("step", "sweep"),): 1001.0}
    assert second == {(("step", "rotate"),): 2001.0, (("step", "pressure"),): 50.0, (("step", "sweep"),): 1001.0}
    assert set(restricted) == {"datagc_exit_code"}


def test_an_ipv6_address_is_served_in_brackets() -> None:
    try:
        port = free_port("::1")
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    config = load_config(env={"DATAGC_METRICS_LISTEN": f"[::1]:{port}"})
    with serve_metrics(config) as endpoint:
        assert endpoint is not None and endpoint.url == f"http://[::1]:{port}/metrics"
        endpoint.publish(report_at(1000.0))
        served = scrape(endpoint.url)
    assert served["datagc_pass_timestamp_seconds"] == {(): 1000.0}


def test_no_address_means_no_server() -> None:
    with serve_metrics(load_config(env={})) as endpoint:
        assert endpoint is None


@given(st.text(max_size=40))
@example("[::1]:9109")
@example("127.0.0.1:09109")
@example("localhost:１２")
def test_the_parser_accepts_only_what_it_can_bind_and_says_why_not(text: str) -> None:
    try:
        host, port = parse_host_port(text)
    except ValueError as error:
        assert str(error)
        return
    assert 1 <= port <= 65535
    assert host and " " not in host and "/" not in host
    assert parse_host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") == (host, port)
