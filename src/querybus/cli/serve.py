"""Wiring for ``querybus serve``: build the transport, executor and adapter from
settings, register in the service registry, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from querybus.adapter.policy import Policy
from querybus.adapter.roles import RolePolicies
from querybus.adapter.service import AdapterService
from querybus.cancellation import stop_task
from querybus.config import AdapterSettings, BusSettings, PostgresSettings
from querybus.database.executor import PostgresExecutor
from querybus.database.idempotency import IdempotencySettings
from querybus.errors import RegistryError
from querybus.execution import Executor
from querybus.identity import IdentitySettings, TokenVerifier
from querybus.observability.metrics import Metrics
from querybus.protocol import SCHEMA_VERSION
from querybus.registry import (
    DatabaseCheck,
    HealthStatus,
    KafkaCheck,
    Registration,
    RegistryBackend,
    RegistryClient,
    RegistrySettings,
    ServiceRegistry,
    registry_from_settings,
)
from querybus.routing.decisions import RoutingDecision, encode_decision
from querybus.routing.discovery import ReplicaDiscovery
from querybus.routing.executor import RoutingExecutor, RoutingSettings
from querybus.transport import Transport, connect

__all__ = ["build_executor", "build_service", "serve_adapter"]

log = logging.getLogger("querybus.adapter")  # the adapter's log, whichever module

#: The name adapters register under, and clients discover.
SERVICE_NAME = "database-adapter"
_REGISTRY_RETRY = 2.0

Registered = tuple[RegistryBackend, Registration]


async def _register(
    service: AdapterService, registry: RegistrySettings, bus: BusSettings, transport: Transport
) -> Registered:
    """Register ``service``; while the registry is unreachable, keep trying in
    the background (the adapter serves meanwhile), logging the first failure."""
    warned = False
    while True:
        backend = registry_from_settings(registry, transport=transport)
        started = time.perf_counter()
        try:
            await backend.start()
            connected = time.perf_counter()
            registration = await ServiceRegistry(backend).register(
                SERVICE_NAME,
                "effect",
                bus.topics.request,
                metadata={
                    "group": service.settings.group_id,
                    "protocol": str(SCHEMA_VERSION),
                    "executor": service.executor.name,
                    "health": f"http://{service.settings.http_host}:{service.http_port}/health",
                    # Where its interactive transactions' requests go (empty:
                    # no transactions), for operators to see; clients learn it from BEGIN.
                    "inbox": service.inbox_topic,
                },
                health_checks=[
                    KafkaCheck(transport, bus.topics.request),
                    DatabaseCheck(service.executor.ping),
                ],
                instance_id=service.instance_id,
                # Kafka and the database were just verified by start(): register
                # at once, and let the checks run right after in the background.
                initial_status=HealthStatus.PASSING,
                wait=True,
            )
        except RegistryError as exc:
            with contextlib.suppress(Exception):
                await backend.stop()
            if not warned:
                log.warning(
                    "registry %s unreachable (%s); retrying in the background", registry.kind, exc
                )
                warned = True
            await asyncio.sleep(_REGISTRY_RETRY)
            continue
        log.info(
            "registered %s as %s in the %s registry in %.1f ms (connecting to it took %.1f ms)",
            SERVICE_NAME,
            registration.instance_id,
            registry.kind,
            (time.perf_counter() - connected) * 1000,
            (connected - started) * 1000,
        )
        return backend, registration


async def _deregister(registering: asyncio.Task[Registered]) -> None:
    if not registering.done():
        await stop_task(registering)
        return
    backend, registration = registering.result()
    with contextlib.suppress(Exception):
        await registration.deregister()
    with contextlib.suppress(Exception):
        await backend.stop()


def _registry_configured() -> bool:
    return bool(os.environ.get("QUERYBUS_REGISTRY"))


def _discovering(routing: RoutingSettings) -> bool:
    """Whether replicas are to be discovered from the registry."""
    return routing.discovery and _registry_configured()


async def _discover(
    executor: RoutingExecutor, registry: RegistrySettings, transport: Transport
) -> None:
    """Follow the replicas announced in the registry until cancelled; while
    the registry is unreachable at start, keep trying (one warning)."""
    settings = executor.settings
    warned = False
    while True:
        backend = registry_from_settings(registry, transport=transport)
        try:
            await backend.start()
        except RegistryError as exc:
            with contextlib.suppress(Exception):
                await backend.stop()
            if not warned:
                log.warning(
                    "registry %s unreachable (%s): discovering replicas in the background",
                    registry.kind,
                    exc,
                )
                warned = True
            await asyncio.sleep(_REGISTRY_RETRY)
            continue
        break
    discovery = ReplicaDiscovery(
        executor,
        RegistryClient(backend),
        service_name=settings.discovery_service,
        interval=settings.discovery_interval,
    )
    try:
        await discovery.start()
        log.info(
            "discovering replicas announced as %r in the %s registry",
            settings.discovery_service,
            registry.kind,
        )
        await asyncio.Event().wait()  # until cancelled
    finally:
        await discovery.stop()
        with contextlib.suppress(Exception):
            await backend.stop()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    try:
        await stop_task(task)
    except Exception:  # stopping must go on; the failure is worth a log line
        log.exception("replica discovery failed")


def build_executor(
    pg: PostgresSettings,
    settings: AdapterSettings,
    *,
    metrics: Metrics,
    policy: Policy | None = None,
    on_decision: Callable[[RoutingDecision], None] | None = None,
    roles: Sequence[str] = (),
) -> Executor:
    """A routing executor when replicas are configured (``QUERYBUS_REPLICA_DSNS``)
    or discovered (``QUERYBUS_REPLICA_DISCOVERY`` with ``QUERYBUS_REGISTRY``),
    otherwise a single-pool PostgreSQL executor; either keeps idempotency keys
    for ``settings.idempotency_ttl`` seconds in the (primary) database, refuses
    a superuser login unless ``settings.allow_superuser``, and resets every
    session after each request when the policy lets callers run DDL; at start
    it checks that each of ``roles`` (the roles callers may act as) is safe
    to become."""
    idempotency = IdempotencySettings(ttl=settings.idempotency_ttl)
    routing = RoutingSettings.from_env()
    reset = policy is not None and policy.allow_ddl
    if routing.replicas or _discovering(routing):
        return RoutingExecutor(
            pg.dsn,
            settings=routing,
            pool_size=settings.pool_size,
            metrics=metrics,
            on_decision=on_decision,
            idempotency=idempotency,
            allow_superuser=settings.allow_superuser,
            reset_every_request=reset,
            roles=roles,
        )
    return PostgresExecutor(
        pg.dsn,
        pool_size=settings.pool_size,
        idempotency=idempotency,
        allow_superuser=settings.allow_superuser,
        reset_every_request=reset,
        roles=roles,
    )


def build_service(
    transport: Transport,
    bus: BusSettings,
    pg: PostgresSettings,
    settings: AdapterSettings,
    policy: Policy | None = None,
    identity: IdentitySettings | None = None,
    roles: RolePolicies | None = None,
) -> AdapterService:
    """The (unstarted) adapter ``querybus serve`` runs, with ``policy``
    (default: :meth:`Policy.from_env`), caller identities (default:
    :meth:`IdentitySettings.from_env`; off unless a JWT secret or JWKS file
    is set) and per-role limits (default: :meth:`RolePolicies.from_env`): its
    executor (:func:`build_executor`) shares the service's Metrics and
    publishes every RoutingDecision to ``bus.topics.routing_decisions``
    through :meth:`AdapterService.publish`."""
    policy = policy or Policy.from_env()
    identity = identity or IdentitySettings.from_env()
    roles = roles or RolePolicies.from_env()
    allowed = sorted(identity.allowed_roles) if identity.enabled else []
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

    executor = build_executor(
        pg, settings, metrics=metrics, policy=policy, on_decision=publish_decision, roles=allowed
    )
    service = AdapterService(
        transport,
        executor,
        bus=bus,
        settings=settings,
        policy=policy,
        metrics=metrics,
        verifier=TokenVerifier(identity) if identity.enabled else None,
        roles=roles,
    )
    return service


async def serve_adapter(
    bus: BusSettings, pg: PostgresSettings, settings: AdapterSettings, *, register: bool = True
) -> None:
    """Run one adapter until SIGINT or SIGTERM."""
    transport = connect(
        bus.bootstrap_servers,
        client_id="querybus-adapter",
        max_message_bytes=bus.max_message_bytes,
        security=bus.security,
    )
    service = build_service(transport, bus, pg, settings)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    registering: asyncio.Task[Registered] | None = None
    discovering: asyncio.Task[None] | None = None
    try:
        await service.start()
        log.info(
            "health and metrics on http://%s:%s/health and /metrics",
            settings.http_host,
            service.http_port,
        )
        executor = service.executor
        if isinstance(executor, RoutingExecutor) and _discovering(executor.settings):
            # After the executor started (service.start), stopped before it.
            discovering = asyncio.create_task(
                _discover(executor, RegistrySettings.from_env(), transport)
            )
        if register and _registry_configured():
            registering = asyncio.create_task(
                _register(service, RegistrySettings.from_env(), bus, transport)
            )
        else:
            log.info("no service registry configured (QUERYBUS_REGISTRY): not registering")
        await stop_requested.wait()
        log.info("stopping: finishing in-flight requests")
    finally:
        # Leave the registry first, so clients stop choosing this adapter.
        if registering is not None:
            await _deregister(registering)
        await _cancel(discovering)
        with contextlib.suppress(Exception):
            await service.stop()
        await transport.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
