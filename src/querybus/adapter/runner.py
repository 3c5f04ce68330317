"""Wiring for ``querybus serve``: build the transport, executor and adapter from
settings, register in the service registry, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from collections.abc import Callable

from querybus.adapter.executor import Executor
from querybus.adapter.postgres import PostgresExecutor
from querybus.adapter.service import AdapterService
from querybus.config import AdapterSettings, BusSettings, PostgresSettings
from querybus.observability.metrics import Metrics
from querybus.routing.decisions import RoutingDecision, encode_decision
from querybus.routing.executor import RoutingExecutor, RoutingSettings
from querybus.transport import connect

__all__ = ["build_executor", "serve_adapter"]

log = logging.getLogger("querybus.adapter")


def build_executor(
    pg: PostgresSettings,
    settings: AdapterSettings,
    *,
    metrics: Metrics,
    on_decision: Callable[[RoutingDecision], None] | None = None,
) -> Executor:
    """A routing executor when replicas are configured (``QUERYBUS_REPLICA_DSNS``),
    otherwise a single-pool PostgreSQL executor."""
    if os.environ.get("QUERYBUS_REPLICA_DSNS"):
        return RoutingExecutor(
            pg.dsn,
            settings=RoutingSettings.from_env(),
            pool_size=settings.pool_size,
            metrics=metrics,
            on_decision=on_decision,
        )
    return PostgresExecutor(pg.dsn, pool_size=settings.pool_size)


async def serve_adapter(
    bus: BusSettings, pg: PostgresSettings, settings: AdapterSettings, *, register: bool = True
) -> None:
    """Run one adapter until SIGINT or SIGTERM."""
    transport = connect(
        bus.bootstrap_servers, client_id="querybus-adapter", max_message_bytes=bus.max_message_bytes
    )
    metrics = Metrics()
    service: AdapterService | None = None

    def publish_decision(decision: RoutingDecision) -> None:
        # Fire-and-forget: analysis data must never slow down or fail a request.
        if service is not None:
            service.publish(
                bus.topics.routing_decisions,
                encode_decision(decision),
                key=decision.fingerprint.encode() or None,
            )

    executor = build_executor(pg, settings, metrics=metrics, on_decision=publish_decision)
    service = AdapterService(transport, executor, bus=bus, settings=settings, metrics=metrics)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await service.start()
        log.info(
            "health and metrics on http://%s:%s/health and /metrics",
            settings.http_host,
            service.http_port,
        )
        await stop_requested.wait()
        log.info("stopping: finishing in-flight requests")
    finally:
        with contextlib.suppress(Exception):
            await service.stop()
        await transport.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
