"""``metrics.listen``: ``datagc watch`` serves the last pass's metrics on ``/metrics`` over HTTP.

For a sidecar with no node_exporter beside it. The metrics are the textfile's
(``metrics.build_registry``), one registry per pass swapped in whole after the
pass, so a scrape never sees half of one. The last-success timestamps are
carried from pass to pass in memory (seeded from the textfile when one is
configured), as the textfile carries them from file to file. The server is
prometheus-client's, in a daemon thread, bound to the configured address only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from datagc.config.schema import Config
from datagc.errors import ConfigError
from datagc.metrics import LAST_SUCCESS, build_registry, previous_successes
from datagc.model import RunReport
from datagc.units import parse_host_port


class _LatestPass:
    """The collector the server reads: whatever registry the last pass built (empty before the first)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()

    def restricted_registry(self, names: Iterable[str]) -> Collector:
        """For ``/metrics?name[]=…`` scrapes."""
        return self.registry.restricted_registry(names)


class MetricsEndpoint:
    """An HTTP server on ``host:port`` serving the metrics of the last pass published."""

    def __init__(self, host: str, port: int, successes: dict[str, float]) -> None:
        self._latest = _LatestPass()
        self._successes = dict(successes)
        self._server, self._thread = start_http_server(port, host, registry=self._latest)
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def publish(self, report: RunReport) -> None:
        """Serve ``report``'s metrics from now on."""
        registry = build_registry(report, self._successes)
        self._successes = _successes(registry)
        self._latest.registry = registry  # one reference swap: a scrape sees the old pass or the new one

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _successes(registry: CollectorRegistry) -> dict[str, float]:
    return {sample.labels["step"]: sample.value
            for family in registry.collect() if family.name == LAST_SUCCESS
            for sample in family.samples}


@contextlib.contextmanager
def serve_metrics(config: Config) -> Iterator[MetricsEndpoint | None]:
    """The endpoint ``metrics.listen`` asks for (None when it is empty), closed on exit.

    An address that can't be listened on (in use, not this machine's, a name
    that doesn't resolve) is a configuration error: watch does not start
    without the metrics it was told to serve.
    """
    listen = config.metrics.listen
    if not listen:
        yield None
        return
    host, port = parse_host_port(listen)
    seed = previous_successes(config.metrics.textfile) if config.metrics.textfile else {}
    try:
        endpoint = MetricsEndpoint(host, port, seed)
    except OSError as error:
        raise ConfigError(f"metrics.listen = {listen!r} (from {config.sources['metrics.listen']}): "
                          f"cannot listen there: {error.strerror or error}") from None
    try:
        yield endpoint
    finally:
        endpoint.close()
