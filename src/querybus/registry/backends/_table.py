"""An in-process table of instances with expiry computed on read.

The memory backend is one of these; the Kafka backend materializes the
compacted topic into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator

from querybus.cancellation import wait_for
from querybus.registry.backends.base import alive
from querybus.registry.models import ServiceInstance

__all__ = ["InstanceTable"]


class InstanceTable:
    """Instances by id, with a change signal for watchers.

    ``put``/``delete`` take an optional ``version`` (the Kafka offset): a write
    older than the one already applied for the same id is ignored, so a
    writer can apply its own write at once and the reader can apply it again
    later without an older record ever winning.
    """

    def __init__(self) -> None:
        self._items: dict[str, ServiceInstance] = {}
        self._versions: dict[str, int] = {}
        self._changed = asyncio.Event()

    def _stale(self, instance_id: str, version: int | None) -> bool:
        if version is None:
            return False
        if version < self._versions.get(instance_id, -1):
            return True
        self._versions[instance_id] = version
        return False

    def _signal(self) -> None:
        # Waiters hold the old event; replacing it means each change wakes
        # every current waiter exactly once and later waiters wait afresh.
        self._changed.set()
        self._changed = asyncio.Event()

    def get(self, instance_id: str) -> ServiceInstance | None:
        """The stored instance (expired or not), or None."""
        return self._items.get(instance_id)

    def put(self, instance: ServiceInstance, version: int | None = None) -> None:
        """Store ``instance`` unless a newer version of it is already stored."""
        if self._stale(instance.instance_id, version):
            return
        self._items[instance.instance_id] = instance
        self._signal()

    def delete(self, instance_id: str, version: int | None = None) -> None:
        """Remove an instance unless a newer version of it is already stored."""
        if self._stale(instance_id, version):
            return
        if self._items.pop(instance_id, None) is not None:
            self._signal()

    def live(self, name: str | None = None) -> list[ServiceInstance]:
        """Unexpired instances (dropping the expired ones from memory on the way)."""
        now = time.time()
        for key in [k for k, v in self._items.items() if v.is_expired(now)]:
            # Forget the value but keep the version: an old record replayed
            # later must still lose against what we saw.
            del self._items[key]
        return alive(self._items.values(), name, now)

    async def snapshots(
        self, name: str | None = None
    ) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now, then after every change or expiry."""
        while True:
            changed = self._changed
            current = self.live(name)
            yield current
            timeout = None
            if current:
                # Wake up when the first of them expires, so expiry is reported
                # even though nothing is written when an instance dies.
                timeout = max(0.0, min(i.expires_at for i in current) - time.time()) + 0.01
            with contextlib.suppress(TimeoutError):
                await wait_for(changed.wait(), timeout)
