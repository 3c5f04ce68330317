"""Replicas found in the service registry, added to and removed from a
:class:`~querybus.routing.executor.RoutingExecutor` as they come and go.

A replica is announced (``querybus registry announce-replica DSN``) under the
service ``postgres-replica`` with its endpoint ``host:port`` and metadata
(``database``, ``weight``, ``group``) — never credentials. The executor
reaches it with the primary's DSN, host and port (and database) replaced
(:func:`~querybus.routing.targets.replica_dsn`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import unquote, urlsplit

from querybus.cancellation import stop_task
from querybus.database.replication import format_lsn
from querybus.errors import ConfigurationError, QueryBusError, RegistryError
from querybus.registry.client import RegistryClient
from querybus.registry.models import CheckResult, HealthStatus, ServiceInstance
from querybus.routing.targets import ReplicaConfig, Target, dsn_name, host_port, replica_dsn

if TYPE_CHECKING:
    from querybus.routing.executor import RoutingExecutor

__all__ = [
    "DEFAULT_SERVICE",
    "ReplicaDiscovery",
    "StandbyCheck",
    "announcement",
    "parse_endpoint",
]

log = logging.getLogger(__name__)

#: The service name replicas are announced under by default.
DEFAULT_SERVICE = "postgres-replica"

_USABLE = frozenset({HealthStatus.PASSING, HealthStatus.WARNING})


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port``, ``[v6]:port`` or ``host`` (port 5432).

    Raises:
        ConfigurationError: it is not such an endpoint.
    """
    text = endpoint.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigurationError(f"not a host:port endpoint: {endpoint!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:  # a bare IPv6 address, no port
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host or any(c in host for c in "/@?#[] "):
        raise ConfigurationError(f"not a host:port endpoint: {endpoint!r}")
    if not port_text:
        return host, 5432
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"bad port in endpoint {endpoint!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A replica as the registry describes it."""

    endpoint: str  # normalized host:port (IPv6 in brackets): also the target's name
    dsn: str = field(repr=False)  # holds the primary's password
    weight: float
    group: str


class ReplicaDiscovery:
    """Keeps ``executor``'s discovered replicas equal to the healthy instances
    of ``service_name`` in the registry.

    It syncs at :meth:`start`, then every ``interval`` seconds. Desired = the
    instances whose status is passing or warning; each is added as a replica
    named by its endpoint (``replica:host:port`` in replies), with ``weight``
    and ``group`` from its metadata and the primary's DSN with host, port and
    (metadata ``database``) database replaced. A replica that leaves the
    desired set (deregistered, expired, critical) is removed.

    Only replicas this object added are ever removed: statically configured
    ones are never touched, and an endpoint a static replica already serves is
    not added a second time. When the registry cannot be reached the current
    set stays as it is (logged once per outage). The registry client's backend
    is not owned: start it before and stop it after.

    Args:
        executor: the executor to add replicas to (started or not).
        registry: where replicas are announced.
        service_name: the name they are announced under.
        interval: seconds between syncs.
        statuses: instance statuses that get reads.
    """

    def __init__(
        self,
        executor: RoutingExecutor,
        registry: RegistryClient,
        *,
        service_name: str = DEFAULT_SERVICE,
        interval: float = 2.0,
        statuses: Collection[HealthStatus] = _USABLE,
    ) -> None:
        if interval <= 0:
            raise ConfigurationError(f"discovery interval must be positive, got {interval}")
        self.executor = executor
        self.registry = registry
        self.service_name = service_name
        self.interval = interval
        self.statuses = frozenset(statuses)
        # endpoint → (target name, what it was added as)
        self._added: dict[str, tuple[str, _Wanted]] = {}
        self._task: asyncio.Task[None] | None = None
        self._outage = False
        self._bad: set[str] = set()  # endpoints already logged as unusable

    @property
    def discovered(self) -> dict[str, str]:
        """Endpoint → replica name, for the replicas this object added."""
        return {endpoint: name for endpoint, (name, _) in self._added.items()}

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Sync once (an unreachable registry is not an error), then keep syncing."""
        await self.sync()
        self._task = asyncio.create_task(self._loop(), name="querybus-replica-discovery")

    async def stop(self) -> None:
        """Stop syncing. The replicas it added stay (the executor closes them when it stops)."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except Exception:  # the loop must outlive any single failure
                log.exception("replica discovery: sync failed")

    # -- syncing --------------------------------------------------------------

    async def sync(self) -> bool:
        """Bring the executor's discovered replicas in line with the registry once.

        Returns False when the registry could not be read (nothing changed).
        """
        try:
            instances = await self.registry.instances(self.service_name, status=self.statuses)
        except RegistryError as exc:
            if not self._outage:
                log.warning(
                    "replica discovery: registry unreachable, keeping %d discovered replica(s): %s",
                    len(self._added),
                    exc,
                )
                self._outage = True
            return False
        if self._outage:
            log.warning("replica discovery: registry reachable again")
            self._outage = False
        wanted = self._wanted(instances)
        for endpoint in [e for e in self._added if e not in wanted]:
            name, _ = self._added.pop(endpoint)
            await self.executor.remove_replica(name)
        for endpoint, want in wanted.items():
            known = self._added.get(endpoint)
            if known is not None:
                name, before = known
                if before == want:
                    continue
                if before.dsn == want.dsn:
                    # Weight or group changed: the same server, adjust in place.
                    target = self.executor.replica(name)
                    if target is not None:
                        target.weight, target.group = want.weight, want.group
                        self._added[endpoint] = (name, want)
                        continue
                self._added.pop(endpoint)
                await self.executor.remove_replica(name)
            try:
                target = await self.executor.add_replica(
                    ReplicaConfig(
                        dsn=want.dsn, name=want.endpoint, weight=want.weight, group=want.group
                    )
                )
            except QueryBusError as exc:
                log.warning("replica discovery: cannot add %s: %s", endpoint, exc)
                continue
            self._added[endpoint] = (target.name, want)
        return True

    def _wanted(self, instances: list[ServiceInstance]) -> dict[str, _Wanted]:
        static = {
            dsn_name(r.dsn)
            for r in self.executor.replicas
            if r.name not in {name for name, _ in self._added.values()}
        }
        out: dict[str, _Wanted] = {}
        for instance in instances:
            try:
                want = self._describe(instance)
            except ConfigurationError as exc:
                if instance.instance_id not in self._bad:
                    log.warning("replica discovery: ignoring %s: %s", instance.instance_id, exc)
                    self._bad.add(instance.instance_id)
                continue
            if want.endpoint in static:
                continue  # already configured by DSN: one target per server
            # Two instances announcing one server: one replica (the first, by id).
            out.setdefault(want.endpoint, want)
        return out

    def _describe(self, instance: ServiceInstance) -> _Wanted:
        host, port = parse_endpoint(instance.endpoint)
        meta = instance.metadata
        try:
            weight = float(meta.get("weight") or 1.0)
        except ValueError:
            raise ConfigurationError(f"bad weight {meta.get('weight')!r}") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise ConfigurationError(f"bad weight {meta.get('weight')!r}")
        dsn = replica_dsn(
            self.executor.primary.dsn, host, port, database=meta.get("database") or None
        )
        return _Wanted(
            endpoint=dsn_name(dsn),
            dsn=dsn,
            weight=weight,
            group=meta.get("group") or "default",
        )


# -- announcing a replica ---------------------------------------------------------


def announcement(
    dsn: str, *, weight: float = 1.0, group: str = "default", endpoint: str | None = None
) -> tuple[str, dict[str, str]]:
    """The endpoint and metadata a replica at ``dsn`` is registered with:
    ``host:port`` and ``role``, ``database``, ``weight``, ``group`` — never the
    user or the password.

    Args:
        dsn: the replica's ``postgresql://`` URI.
        weight: its share of reads.
        group: its replica group.
        endpoint: announce this ``host:port`` instead of the DSN's (when
            readers reach the server under another address).

    Raises:
        ConfigurationError: the DSN has no single TCP host, or a value is invalid.
    """
    try:
        parts = urlsplit(dsn)
        host, port = parts.hostname, parts.port or 5432
    except ValueError as exc:  # several hosts, or a bad port
        raise ConfigurationError(f"the replica DSN needs one host:port ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres") or not host:
        raise ConfigurationError("the replica DSN must be postgresql://…@HOST:PORT/DATABASE")
    if not (math.isfinite(weight) and weight >= 0):
        raise ConfigurationError(f"weight must be a number >= 0, got {weight}")
    if endpoint is not None:
        host, port = parse_endpoint(endpoint)
    metadata = {"role": "replica", "weight": f"{weight:g}", "group": group or "default"}
    database = unquote(parts.path.lstrip("/"))
    if database:
        metadata["database"] = database
    return host_port(host, port), metadata


class StandbyCheck:
    """Passing while the server at ``dsn`` answers and is in recovery
    (``pg_is_in_recovery()``); critical otherwise — a promoted or wrong server
    must not get reads as a replica.

    Keeps one connection open between checks (reconnecting when it breaks).
    Notes never contain the DSN's user or password. Call :meth:`close` at the end.

    Args:
        dsn: the replica.
        timeout: seconds to connect and answer.
        name: the check's name.
    """

    def __init__(self, dsn: str, *, timeout: float = 2.0, name: str = "standby") -> None:
        self.name = name
        self._timeout = timeout
        self._target = Target("announced", dsn, connect_timeout=timeout)
        parts = urlsplit(dsn)
        self._secrets = [unquote(s) for s in (parts.password, parts.username) if s]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def check(self) -> CheckResult:
        """Ask the server whether it is in recovery."""
        try:
            in_recovery, replay = await self._target.replica_status(self._timeout)
        except QueryBusError as exc:
            return CheckResult(
                HealthStatus.CRITICAL, self._scrub(f"unreachable: {type(exc).__name__}: {exc}")
            )
        if not in_recovery:
            return CheckResult(HealthStatus.CRITICAL, "not in recovery: a primary, not a replica")
        replayed = format_lsn(replay) if replay is not None else "nothing yet"
        return CheckResult(HealthStatus.PASSING, f"in recovery, replayed {replayed}")

    async def close(self) -> None:
        """Close the connection."""
        await self._target.close()
