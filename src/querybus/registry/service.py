"""Registering a service and keeping it registered.

:meth:`ServiceRegistry.register` stores an instance and returns a
:class:`Registration` whose background task heartbeats: every
``heartbeat_interval`` it re-runs the health checks and pushes the status
and a fresh TTL. When the backend cannot be reached it keeps trying; when the
backend has forgotten the instance (it expired during the outage) it
registers it again — the service never has to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Self

import msgspec

from querybus.cancellation import stop_task, wait_for
from querybus.errors import ConfigurationError, RegistryError, ServiceNotFoundError
from querybus.registry.backends.base import RegistryBackend
from querybus.registry.health import HealthCheck, run_checks
from querybus.registry.models import HealthStatus, ServiceInstance

__all__ = ["Registration", "RegistrationState", "ServiceRegistry", "new_instance_id"]

log = logging.getLogger(__name__)

_counter = itertools.count(1)


def new_instance_id(name: str) -> str:
    """An id unique across processes and within this one:
    ``{name}-{hostname}-{pid}-{n}``."""
    return f"{name}-{socket.gethostname()}-{os.getpid()}-{next(_counter)}"


class RegistrationState(StrEnum):
    """Where a :class:`Registration` stands."""

    #: The backend holds the instance and heartbeats reach it.
    REGISTERED = "registered"
    #: The last attempt to reach the backend failed; retrying.
    DISCONNECTED = "disconnected"
    #: Deregistered; the handle cannot be reused.
    CLOSED = "closed"


class Registration:
    """A registered instance that heartbeats until :meth:`deregister`.

    Made by :meth:`ServiceRegistry.register`; use it as an async context
    manager or call :meth:`deregister` when the service stops.
    """

    def __init__(
        self,
        registry: ServiceRegistry,
        instance: ServiceInstance,
        checks: Sequence[HealthCheck],
        *,
        heartbeat_interval: float,
        check_timeout: float,
    ) -> None:
        self._registry = registry
        self._backend = registry.backend
        self._instance = instance
        self._checks = list(checks)
        self._interval = heartbeat_interval
        self._check_timeout = check_timeout
        self._state = RegistrationState.DISCONNECTED
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._logged_outage = False

    @property
    def instance(self) -> ServiceInstance:
        """The instance as last sent to the backend."""
        return self._instance

    @property
    def instance_id(self) -> str:
        """This instance's id."""
        return self._instance.instance_id

    @property
    def status(self) -> HealthStatus:
        """Health status at the last heartbeat."""
        return self._instance.status

    @property
    def state(self) -> RegistrationState:
        """Whether the backend currently holds the registration."""
        return self._state

    async def _push(self, *, first: bool, status: HealthStatus | None = None) -> None:
        """Run the checks (unless ``status`` is given) and send the instance;
        re-register it when the backend forgot it.

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        if status is None:
            status, note = await run_checks(self._checks, check_timeout=self._check_timeout)
        else:
            note = ""
        self._instance = msgspec.structs.replace(
            self._instance, status=status, note=note, last_heartbeat=time.time()
        )
        if first or self._state is not RegistrationState.REGISTERED:
            # After an outage the backend may or may not still hold us;
            # registering again is idempotent and restores the TTL either way.
            await self._backend.register(self._instance)
        else:
            try:
                await self._backend.heartbeat(self._instance)
            except ServiceNotFoundError:
                log.info("registry forgot %s; registering it again", self.instance_id)
                await self._backend.register(self._instance)
        self._state = RegistrationState.REGISTERED
        if self._logged_outage:
            log.warning("registry reachable again; %s is registered", self.instance_id)
            self._logged_outage = False

    def _start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat {self.instance_id}")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._push(first=False)
            except RegistryError as exc:
                self._state = RegistrationState.DISCONNECTED
                if not self._logged_outage:
                    # Once per outage: a registry that is down for an hour
                    # must not write a line per heartbeat.
                    log.warning(
                        "registry unreachable, retrying every %.1fs: %s", self._interval, exc
                    )
                    self._logged_outage = True
            except Exception:
                # The heartbeat must outlive any bug in a backend: dying
                # silently would let the instance expire while the service runs.
                log.exception("heartbeat of %s failed", self.instance_id)
                self._state = RegistrationState.DISCONNECTED

    def beat_now(self) -> None:
        """Run the checks and heartbeat now instead of at the next interval."""
        self._wake.set()

    async def deregister(self) -> None:
        """Stop heartbeating and remove the instance from the registry at once.

        Idempotent. When the backend cannot be reached the instance expires
        after its TTL instead.

        Raises:
            RegistryUnavailableError: the backend could not be reached to remove it.
        """
        if self._state is RegistrationState.CLOSED:
            return
        self._state = RegistrationState.CLOSED
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        self._registry._forget(self)
        await self._backend.deregister(self.instance_id)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.deregister()


class ServiceRegistry:
    """Registers this process's services in a backend.

    The registry does not own the backend: start it before and stop it after
    (``async with backend:``). :meth:`close` deregisters whatever is still
    registered.

    Args:
        backend: where registrations are stored.
    """

    def __init__(self, backend: RegistryBackend) -> None:
        self.backend = backend
        self._registrations: set[Registration] = set()

    async def register(
        self,
        name: str,
        service_type: str,
        endpoint: str,
        *,
        metadata: Mapping[str, str] | None = None,
        health_checks: Sequence[HealthCheck] = (),
        ttl: float = 10.0,
        heartbeat_interval: float | None = None,
        check_timeout: float | None = None,
        instance_id: str | None = None,
        initial_status: HealthStatus | None = None,
        wait: bool = True,
    ) -> Registration:
        """Register an instance and start heartbeating it.

        Args:
            name: service name, e.g. ``"database-adapter"``.
            service_type: kind of service, e.g. ``"effect"``.
            endpoint: where to reach the instance (an adapter's request topic).
            metadata: string pairs stored with the instance.
            health_checks: checks re-run at every heartbeat; the status is the worst.
            ttl: seconds without heartbeat after which the instance expires.
            heartbeat_interval: seconds between heartbeats (default ``ttl / 3``).
            check_timeout: seconds each check has (default: the heartbeat interval).
            instance_id: override the generated id (it must be unique).
            initial_status: register at once with this status instead of
                running the checks first, then run them immediately in the
                background. For a service that has just verified its
                dependencies while starting (the adapter: Kafka and the
                database answered), so slow checks do not delay registration.
            wait: when True, fail if the backend cannot be reached now; when
                False, return at once and keep trying in the background.

        Returns:
            The handle that heartbeats until deregistered.

        Raises:
            ConfigurationError: ``ttl`` or ``heartbeat_interval`` is not positive,
                or the interval is not shorter than the TTL.
            RegistryUnavailableError: ``wait`` and the backend cannot be reached.
        """
        interval = ttl / 3 if heartbeat_interval is None else heartbeat_interval
        if ttl <= 0 or interval <= 0 or interval >= ttl:
            raise ConfigurationError(
                f"need 0 < heartbeat_interval < ttl, got interval={interval} ttl={ttl}"
            )
        now = time.time()
        instance = ServiceInstance(
            name=name,
            instance_id=instance_id or new_instance_id(name),
            service_type=service_type,
            endpoint=endpoint,
            metadata=dict(metadata or {}),
            last_heartbeat=now,
            ttl=ttl,
            registered_at=now,
        )
        registration = Registration(
            self,
            instance,
            health_checks,
            heartbeat_interval=interval,
            check_timeout=interval if check_timeout is None else check_timeout,
        )
        if wait:
            await registration._push(first=True, status=initial_status)
            if initial_status is not None and health_checks:
                registration.beat_now()  # replace the assumed status by a measured one
        else:
            registration.beat_now()  # the loop's first turn registers it
        self._registrations.add(registration)
        registration._start()
        return registration

    def _forget(self, registration: Registration) -> None:
        self._registrations.discard(registration)

    async def close(self) -> None:
        """Deregister every registration still open (errors are logged, not raised)."""
        for registration in list(self._registrations):
            try:
                await registration.deregister()
            except RegistryError as exc:
                log.warning("could not deregister %s: %s", registration.instance_id, exc)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
