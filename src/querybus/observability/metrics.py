"""Prometheus metrics of an adapter. One :class:`Metrics` object per service, on its own
registry, so two adapters in one process (tests) do not collide.

The client's counters are in :mod:`querybus.observability.client_metrics`: a caller's
install has no prometheus-client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["Metrics", "unscraped_metrics"]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Metrics:
    """An adapter's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "querybus_requests",
            "Requests handled, by outcome (ok or error code).",
            ["outcome"],
            registry=r,
        )
        self.errors = Counter(
            "querybus_errors",
            "Error replies, by error code and SQLSTATE class.",
            ["code", "sqlstate_class"],
            registry=r,
        )
        self.dead_letters = Counter(
            "querybus_dead_letters",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "querybus_request_seconds",
            "Adapter time per request, receive to reply produced.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "querybus_queue_wait_seconds",
            "Client send to adapter start.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.execute = Histogram(
            "querybus_execute_seconds",
            "Time on the database.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "querybus_in_flight",
            "Requests being handled now.",
            registry=r,
        )
        self.route = Counter(
            "querybus_route",
            "Routing decisions, by target and reason.",
            ["target", "reason"],
            registry=r,
        )
        self.route_seconds = Histogram(
            "querybus_route_seconds",
            "Time to choose a target.",
            buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
            registry=r,
        )
        # Labelled children looked up once: ``labels()`` takes a lock and
        # hashes its labels on every call, a cost on the hot path.
        self.requests_ok = self.requests.labels("ok")
        self._routes: dict[tuple[str, str], Any] = {}

    def count_route(self, target: str, reason: str) -> None:
        """One routing decision to ``target`` for ``reason``."""
        child = self._routes.get((target, reason))
        if child is None:
            child = self._routes[(target, reason)] = self.route.labels(target, reason)
        child.inc()

    def watch_pools(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Export the database pools' state, read from ``stats`` at each
        scrape: target → an object with ``in_use``, ``idle``, ``missing``
        and ``waiting`` (:class:`querybus.execution.PoolStats`)."""
        self.registry.register(_PoolCollector(stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _PoolCollector:
    """``querybus_db_connections{target,state}`` and
    ``querybus_db_waiting{target}``, read when scraped (nothing is counted
    per request)."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "querybus_db_connections",
                "Database connections of the adapter's pools, by target and state: "
                "in_use, idle, missing (broke; reopened when needed).",
                labels=["target", "state"],
            ),
            GaugeMetricFamily(
                "querybus_db_waiting",
                "Requests waiting for a free database connection, by target.",
                labels=["target"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without it the registry would call collect() at registration.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections, waiting = self._families()
        for target, s in self._stats().items():
            for state in ("in_use", "idle", "missing"):
                connections.add_metric([target, state], getattr(s, state))
            waiting.add_metric([target], s.waiting)
        yield connections
        yield waiting


class _Ignored:
    """Takes every metric update and keeps nothing."""

    def labels(self, *_: Any, **__: Any) -> _Ignored:
        return self

    def inc(self, amount: float = 1.0) -> None:
        pass

    def dec(self, amount: float = 1.0) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set_function(self, fn: Any) -> None:
        pass


class _Unscraped(Metrics):
    """Metrics nobody can scrape: every update is dropped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ignored: Any = _Ignored()
        self.requests = self.errors = self.dead_letters = ignored
        self.latency = self.queue_wait = self.execute = ignored
        self.in_flight = self.route = self.route_seconds = ignored
        self.requests_ok = ignored
        self._routes = {}

    def count_route(self, target: str, reason: str) -> None:
        pass

    def watch_pools(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        pass


def unscraped_metrics() -> Metrics:
    """Metrics for request handling that has no ``/metrics`` endpoint (direct
    mode, in the caller's process): updating Prometheus counters nobody reads
    would cost a lock per update on every request."""
    return _Unscraped()
