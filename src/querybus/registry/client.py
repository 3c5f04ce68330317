"""Finding services: queries, discovery and change events."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection, Mapping

from querybus.errors import ServiceNotFoundError
from querybus.registry.backends.base import RegistryBackend
from querybus.registry.models import ChangeKind, HealthStatus, RegistryEvent, ServiceInstance

__all__ = ["RegistryClient"]

_HEALTHY = frozenset({HealthStatus.PASSING})


def _matches(
    instance: ServiceInstance,
    service_type: str | None,
    metadata: Mapping[str, str] | None,
    status: Collection[HealthStatus] | None,
) -> bool:
    if service_type is not None and instance.service_type != service_type:
        return False
    if status is not None and instance.status not in status:
        return False
    if metadata:
        return all(instance.metadata.get(k) == v for k, v in metadata.items())
    return True


class RegistryClient:
    """Reads the registry. Does not own the backend (start and stop it yourself).

    Args:
        backend: where registrations are stored.
    """

    def __init__(self, backend: RegistryBackend) -> None:
        self.backend = backend

    async def instances(
        self,
        name: str | None = None,
        *,
        service_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        status: HealthStatus | Collection[HealthStatus] | None = None,
    ) -> list[ServiceInstance]:
        """Live instances matching every given filter, sorted by name and id.

        Args:
            name: service name.
            service_type: service type.
            metadata: pairs the instance's metadata must contain.
            status: one status or a set of them (default: any).

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        wanted = {status} if isinstance(status, HealthStatus) else status
        found = await self.backend.instances(name)
        return [i for i in found if _matches(i, service_type, metadata, wanted)]

    async def discover(
        self,
        name: str,
        *,
        service_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        status: Collection[HealthStatus] = _HEALTHY,
    ) -> list[ServiceInstance]:
        """Instances of ``name`` fit to use (passing ones by default).

        Raises:
            ServiceNotFoundError: none matches.
            RegistryUnavailableError: the backend cannot be reached.
        """
        found = await self.instances(
            name, service_type=service_type, metadata=metadata, status=status
        )
        if not found:
            wanted = ", ".join(sorted(s.value for s in status))
            raise ServiceNotFoundError(f"no {wanted} instance of service {name!r} is registered")
        return found

    async def endpoints(
        self, name: str, *, status: Collection[HealthStatus] = _HEALTHY
    ) -> list[str]:
        """Distinct endpoints of the instances :meth:`discover` returns, in order.

        Raises:
            ServiceNotFoundError: no instance matches.
            RegistryUnavailableError: the backend cannot be reached.
        """
        out: dict[str, None] = {}
        for instance in await self.discover(name, status=status):
            out.setdefault(instance.endpoint, None)
        return list(out)

    async def watch(
        self, name: str | None = None, *, initial: bool = True
    ) -> AsyncGenerator[RegistryEvent, None]:
        """Changes as they happen, forever (break out of the loop to stop).

        Args:
            name: only instances of this service (default: all).
            initial: first report every live instance as ``added``.

        Yields:
            ``added`` when an instance appears, ``updated`` when its status,
            endpoint or metadata change (not for a heartbeat that changes
            nothing), ``removed`` when it deregisters or expires.

        Raises:
            RegistryUnavailableError: the backend cannot be reached.
        """
        known: dict[str, ServiceInstance] = {}
        first = True
        snapshots = self.backend.snapshots(name)
        try:
            async for snapshot in snapshots:
                current = {i.instance_id: i for i in snapshot}
                if first and not initial:
                    # Without the initial listing the first snapshot is the baseline.
                    known, first = current, False
                    continue
                first = False
                for iid, instance in current.items():
                    before = known.get(iid)
                    if before is None:
                        yield RegistryEvent(ChangeKind.ADDED, instance)
                    elif not before.same_state(instance):
                        yield RegistryEvent(ChangeKind.UPDATED, instance)
                for iid, instance in known.items():
                    if iid not in current:
                        yield RegistryEvent(ChangeKind.REMOVED, instance)
                known = current
        finally:
            # Closing the snapshot stream releases the backend's watch (an
            # HTTP stream for etcd and Consul) as soon as the caller stops.
            await snapshots.aclose()
