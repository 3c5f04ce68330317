"""The Kafka backend: the registry as a compacted topic (no extra infrastructure).

Every registration and heartbeat is a record keyed by instance id whose value
is the instance as JSON; deregistration is a tombstone. Compaction keeps the
last record per instance. Each backend materializes the topic from the
beginning into an in-memory table and keeps reading; expiry is computed on
read from ``last_heartbeat + ttl``.

Consistency model (also in ``docs/registry.md``):

* eventual: another process sees a write after its reader fetches it
  (milliseconds on a healthy broker); ``start()`` and :meth:`sync` read up to
  a marker this backend wrote, so after them everything written before is
  visible (read-your-writes, and "caught up" for a fresh reader);
* a writer applies its own writes at once (ordered by offset, so a replayed
  older record never wins);
* expiry uses the writer's clock for ``last_heartbeat`` and the reader's
  clock for "now": clock skew between hosts moves expiry by the skew (NTP
  keeps it well under a TTL of seconds);
* an instance that dies leaves its last record in the topic until a later
  write for its key (compaction alone never removes it); readers ignore it
  once expired, and ``dead_retention`` lets compaction forget old tombstones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import msgspec

from querybus.cancellation import stop_task, wait_for
from querybus.config import KafkaSecurity
from querybus.errors import (
    RegistryError,
    RegistryUnavailableError,
    ServiceNotFoundError,
    TransportError,
)
from querybus.registry.backends._table import InstanceTable
from querybus.registry.backends.base import BackendLifecycle
from querybus.registry.models import ServiceInstance, decode_instance, encode_instance
from querybus.transport import connect
from querybus.transport.base import PartitionReader, Producer, Record, TopicSpec

if TYPE_CHECKING:
    from querybus.transport.base import Transport

__all__ = ["DEFAULT_TOPIC", "KafkaBackend"]

log = logging.getLogger(__name__)

#: Registry topic name, before the deployment's topic prefix.
DEFAULT_TOPIC = "querybus.registry"
# Keys of the markers sync() writes; never instance ids (those have no "\0").
_SYNC_PREFIX = b"\0sync/"


class KafkaBackend(BackendLifecycle):
    """Registry on a compacted Kafka topic.

    Args:
        transport: the bus (the Kafka transport or the memory one), or its
            bootstrap servers (``host:port,…`` or ``memory://name``): then the
            backend connects with ``querybus.transport.connect`` and owns it.
        topic: the registry topic (with any prefix already applied).
        owns_transport: close ``transport`` in :meth:`stop`.
        timeout: seconds a write or a sync may take before the bus counts as
            unreachable.
        security: TLS and SASL for the transport the backend opens itself
            (when ``transport`` is an address).
    """

    kind = "kafka"

    def __init__(
        self,
        transport: Transport | str,
        *,
        topic: str = DEFAULT_TOPIC,
        owns_transport: bool = False,
        timeout: float = 5.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.topic = topic
        if isinstance(transport, str):
            # connect() contacts nothing until first use, so this stays cheap.
            transport, owns_transport = connect(transport, security=security), True
        self._transport: Transport | None = transport
        self._owns_transport = owns_transport
        self._timeout = timeout
        self._table = InstanceTable()
        self._producer: Producer | None = None
        self._reader: PartitionReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._syncs: dict[bytes, asyncio.Future[None]] = {}

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Create the topic if needed, start reading it, and catch up.

        Raises:
            RegistryUnavailableError: the bus cannot be reached.
        """
        try:
            if self._transport is None:
                raise RegistryError("a stopped Kafka registry backend cannot be restarted")
            await wait_for(
                self._transport.create_topics(
                    [TopicSpec(self.topic, partitions=1, config={"cleanup.policy": "compact"})]
                ),
                self._timeout,
            )
            self._producer = self._transport.producer()
            await wait_for(self._producer.start(), self._timeout)
            self._reader = self._transport.partition_reader(self.topic, start_at="beginning")
            await wait_for(self._reader.start(), self._timeout)
            self._task = asyncio.create_task(
                self._read_loop(), name=f"registry reader {self.topic}"
            )
            await self.sync()
        except (TransportError, TimeoutError) as exc:
            await self.stop()
            raise RegistryUnavailableError(f"Kafka registry unreachable: {exc}") from exc
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop reading and writing (registrations expire unless deregistered first)."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for future in self._syncs.values():
            future.cancel()
        self._syncs.clear()
        for client in (self._reader, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except TransportError as exc:
                    log.debug("ignoring error while stopping the registry: %s", exc)
        self._reader = self._producer = None
        if self._owns_transport and self._transport is not None:
            transport, self._transport = self._transport, None
            with contextlib.suppress(TransportError):
                await transport.close()

    # -- reading ----------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        failing = False
        while True:
            try:
                records = await self._reader.getmany(timeout=1.0)
                failing = False
            except TransportError as exc:
                if not failing:
                    log.warning("registry reader of %s failing, retrying: %s", self.topic, exc)
                    failing = True
                await asyncio.sleep(0.5)  # back off; the reader reconnects by itself
                continue
            for record in records:
                self._apply(record)

    def _apply(self, record: Record) -> None:
        key = record.key
        if key is None:
            return
        if key.startswith(_SYNC_PREFIX):
            future = self._syncs.pop(key, None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        instance_id = key.decode("utf-8", "replace")
        if record.value is None:
            self._table.delete(instance_id, version=record.offset)
            return
        try:
            instance = decode_instance(record.value)
        except msgspec.DecodeError:
            log.warning("skipping undecodable registry record at offset %d", record.offset)
            return
        self._table.put(instance, version=record.offset)

    async def sync(self) -> None:
        """Wait until this backend has read everything written before the call.

        Writes a marker (a tombstone for a key no instance uses) and waits to
        read it back.

        Raises:
            RegistryUnavailableError: the bus did not answer within the timeout.
        """
        key = _SYNC_PREFIX + uuid.uuid4().hex.encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs[key] = future
        try:
            await self._send(key, None)
            await wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError as exc:
            raise RegistryUnavailableError("Kafka registry did not catch up in time") from exc
        finally:
            self._syncs.pop(key, None)

    # -- writing ----------------------------------------------------------

    async def _send(self, key: bytes, value: bytes | None) -> int:
        if self._producer is None:
            raise RegistryError("Kafka registry backend is not started")
        try:
            meta = await wait_for(self._producer.send(self.topic, value, key=key), self._timeout)
        except (TransportError, TimeoutError) as exc:
            raise RegistryUnavailableError(f"Kafka registry unreachable: {exc}") from exc
        return meta.offset

    async def register(self, instance: ServiceInstance) -> None:
        """Write the instance's record.

        Raises:
            RegistryUnavailableError: the bus cannot be reached.
        """
        offset = await self._send(instance.instance_id.encode(), encode_instance(instance))
        self._table.put(instance, version=offset)

    async def heartbeat(self, instance: ServiceInstance) -> None:
        """Write the instance's new state, if it is still alive.

        Raises:
            ServiceNotFoundError: it expired or was deregistered.
            RegistryUnavailableError: the bus cannot be reached.
        """
        current = self._table.get(instance.instance_id)
        if current is None or current.is_expired():
            raise ServiceNotFoundError(f"instance {instance.instance_id!r} is not registered")
        await self.register(instance)

    async def deregister(self, instance_id: str) -> None:
        """Write a tombstone for the instance.

        Raises:
            RegistryUnavailableError: the bus cannot be reached.
        """
        offset = await self._send(instance_id.encode(), None)
        self._table.delete(instance_id, version=offset)

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        """The live instances of the materialized table.

        Raises:
            RegistryError: the backend is not started.
        """
        if self._task is None:
            raise RegistryError("Kafka registry backend is not started")
        return self._table.live(name)

    def snapshots(self, name: str | None = None) -> AsyncGenerator[list[ServiceInstance], None]:
        """Live instances now, then after every record read or expiry."""
        return self._table.snapshots(name)
