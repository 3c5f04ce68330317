"""The in-memory backend: one process, no I/O (``querybus dev`` and unit tests).

Backends opened with the same hub name share their state, so a
:class:`ServiceRegistry` and a :class:`RegistryClient` in one process see
each other. Expiry is computed on read from ``last_heartbeat + ttl``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from querybus.errors import ServiceNotFoundError
from querybus.registry.backends._table import InstanceTable
from querybus.registry.backends.base import BackendLifecycle
from querybus.registry.models import ServiceInstance

__all__ = ["MemoryBackend"]

_HUBS: dict[str, InstanceTable] = {}


class MemoryBackend(BackendLifecycle):
    """A registry that lives in this process.

    Args:
        hub: name of the shared table; backends with the same name see the
            same instances.
    """

    kind = "memory"

    def __init__(self, hub: str = "default") -> None:
        self.hub = hub
        self._table = _HUBS.setdefault(hub, InstanceTable())

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to release; the hub keeps its state for other users."""

    async def register(self, instance: ServiceInstance) -> None:
        """Store ``instance``."""
        self._table.put(instance)

    async def heartbeat(self, instance: ServiceInstance) -> None:
        """Store the new state of a live instance.

        Raises:
            ServiceNotFoundError: the instance expired or was deregistered.
        """
        current = self._table.get(instance.instance_id)
        if current is None or current.is_expired():
            raise ServiceNotFoundError(f"instance {instance.instance_id!r} is not registered")
        self._table.put(instance)

    async def deregister(self, instance_id: str) -> None:
        """Remove an instance."""
        self._table.delete(instance_id)

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        """The live instances."""
        return self._table.live(name)

    def snapshots(self, name: str | None = None) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now and after each change or expiry."""
        return self._table.snapshots(name)
