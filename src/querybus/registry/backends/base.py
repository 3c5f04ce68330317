"""The backend contract: what :class:`ServiceRegistry` and :class:`RegistryClient` need.

A backend stores instances and knows which are alive. The registry layers
health checks and heartbeating on top; the client layers filtering and
change events on top. ``tests/contract/test_registry_contract.py`` runs one
suite against every implementation.

Semantics every backend keeps:

* ``register`` creates or replaces an instance and starts its TTL;
  ``heartbeat`` refreshes the TTL and stores the new status. ``heartbeat``
  raises :class:`~querybus.errors.ServiceNotFoundError` when the backend no
  longer knows the instance (it expired during an outage, etcd lost the
  lease, the Consul agent restarted), so the caller re-registers it.
* ``deregister`` removes an instance at once; unknown ids are ignored.
* ``instances`` returns live instances only: an instance whose TTL ran out is
  never returned, even before the backend physically removes it.
* ``snapshots`` yields the live instances now, then again each time they may
  have changed, including when an instance expires. It may yield an
  unchanged list; the client diffs successive lists into events.
* An unreachable backend raises
  :class:`~querybus.errors.RegistryUnavailableError`; nothing foreign escapes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import Protocol, Self

from querybus.registry.models import ServiceInstance

__all__ = ["BackendLifecycle", "RegistryBackend", "alive"]


class BackendLifecycle:
    """``async with backend:`` for every backend: start on entry, stop on exit."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

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


class RegistryBackend(Protocol):
    """Where registrations live. Start it before use and stop it after."""

    #: Short name for messages and the CLI: ``memory``, ``kafka``, ``etcd``, ``consul``.
    kind: str

    async def start(self) -> None:
        """Connect.

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        ...

    async def stop(self) -> None:
        """Release connections. Registrations made through it are not removed."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def register(self, instance: ServiceInstance) -> None:
        """Create or replace ``instance``; its TTL starts now.

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        ...

    async def heartbeat(self, instance: ServiceInstance) -> None:
        """Refresh the TTL of ``instance`` and store its new status.

        Raises:
            ServiceNotFoundError: the backend does not know the instance anymore.
            RegistryUnavailableError: the backend cannot be reached.
        """
        ...

    async def deregister(self, instance_id: str) -> None:
        """Remove an instance at once (no-op when unknown).

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        ...

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        """The live instances, of service ``name`` only when given.

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        ...

    def snapshots(self, name: str | None = None) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now, then after each possible change (see the module doc).

        Raises:
            RegistryUnavailableError: the backend cannot be reached (from iteration).
        """
        ...


def alive(
    instances: Iterable[ServiceInstance], name: str | None, now: float
) -> list[ServiceInstance]:
    """The instances of ``name`` (all when None) that have not expired at ``now``,
    sorted by name then instance id so listings are stable."""
    out = [i for i in instances if (name is None or i.name == name) and not i.is_expired(now)]
    out.sort(key=lambda i: (i.name, i.instance_id))
    return out
