"""An adapter's inbox: the topic its interactive transactions' requests come to.

A transaction lives on one connection of one adapter, so its requests must
reach that adapter even while the consumer group rebalances. Each adapter
therefore owns a one-partition topic, ``<prefix>database.query.inbox.<instance
id>``, created at start (or reused, with a stable ``QUERYBUS_INSTANCE_ID``)
and *not* deleted at stop, and reads it with a
manually assigned :class:`~querybus.transport.PartitionReader` (no group: no
rebalance, nothing committed). The reply to BEGIN names it (``TxInfo``).

Every record is handled in its own task, through the same path as a record of
the request topic (decode, reply address, identity, policy): a PING is answered
at once even while the transaction's statement runs (statements of one
transaction are serialized by the transaction's lock, not here). Reading
starts at the end when the adapter starts: an inbox's requests are for
transactions this process holds, and it holds none yet.

Why an inbox outlives its adapter: a caller that has not read the stop's
lost notice yet may still send to it. Sent to a silent topic, its request is
settled by its ping within seconds (TransactionLostError); sent to a deleted
topic, the Kafka client would wait out the whole timeout while it loops on
metadata. Inboxes of adapters that are gone are left for operators to delete
(``docs/transactions.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from querybus.errors import QueryBusError, TransportError
from querybus.transport import PartitionReader, Record, TopicSpec, Transport

__all__ = ["Inbox"]

log = logging.getLogger("querybus.adapter")


class Inbox:
    """The reader of one adapter's inbox topic.

    Args:
        transport: the bus.
        topic: the inbox topic (``TopicNames.inbox(instance_id)``).
        handle: handles one record (replies, dead-letters); must not raise.
    """

    def __init__(
        self,
        transport: Transport,
        topic: str,
        handle: Callable[[Record], Coroutine[Any, Any, None]],
    ) -> None:
        self.topic = topic
        self._transport = transport
        self._handle = handle
        self._reader: PartitionReader | None = None
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Create the topic and start reading it (from its end).

        Raises:
            TransportError: the bus refused.
        """
        await self._transport.create_topics([TopicSpec(self.topic, partitions=1)])
        self._reader = self._transport.partition_reader(self.topic, [0], start_at="end")
        await self._reader.start()
        self._loop = asyncio.create_task(self._read(), name=f"inbox-{self.topic}")

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            try:
                records = await self._reader.getmany(timeout=0.5)
            except TransportError as exc:
                log.warning("reading the inbox %s failed: %s", self.topic, exc)
                await asyncio.sleep(0.5)
                continue
            for record in records:
                task = asyncio.create_task(self._handle(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The records being handled now."""
        return list(self._tasks)

    async def stop_reading(self) -> None:
        """Read no more records (those being handled go on)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._reader is not None:
            with contextlib.suppress(QueryBusError):
                await self._reader.stop()
            self._reader = None
