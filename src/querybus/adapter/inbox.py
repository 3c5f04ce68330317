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
metadata.

Heartbeats: while it runs, the adapter appends a heartbeat record (empty
value, header ``querybus-heartbeat``) to its own inbox at start and every
``QUERYBUS_INBOX_HEARTBEAT`` seconds; the reader skips them (they are no
requests: never handled, never dead-lettered). So the timestamp of an
inbox's last record says whether its adapter is alive, and the other
adapters' sweep (:mod:`querybus.adapter.inbox_sweep`) deletes the inboxes
whose last record is older than ``QUERYBUS_INBOX_RETIRE_AFTER``: long enough
that no caller can still hold a transaction there. A heartbeat that fails is
logged once and tried again at the next interval: it never stops the adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from querybus.cancellation import stop_task
from querybus.errors import (
    BrokerAuthenticationError,
    BrokerAuthorizationError,
    BrokerUnavailableError,
    QueryBusError,
    TransportError,
)
from querybus.protocol import Headers
from querybus.transport import PartitionReader, Producer, Record, TopicSpec, Transport

__all__ = ["Inbox", "is_heartbeat"]

log = logging.getLogger("querybus.adapter")


def is_heartbeat(record: Record) -> bool:
    """Whether ``record`` is an inbox heartbeat (not a request)."""
    return record.header(Headers.HEARTBEAT) is not None


class Inbox:
    """The reader of one adapter's inbox topic, and the writer of its heartbeats.

    Args:
        transport: the bus.
        topic: the inbox topic (``TopicNames.inbox(instance_id)``).
        handle: handles one record (replies, dead-letters); must not raise.
        heartbeat: seconds between two heartbeat records
            (``AdapterSettings.inbox_heartbeat``).
    """

    def __init__(
        self,
        transport: Transport,
        topic: str,
        handle: Callable[[Record], Coroutine[Any, Any, None]],
        *,
        heartbeat: float,
    ) -> None:
        self.topic = topic
        self._transport = transport
        self._handle = handle
        self._heartbeat = heartbeat
        self._reader: PartitionReader | None = None
        self._loop: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, producer: Producer) -> None:
        """Create the topic, start reading it (from its end) and start the
        heartbeats, sent with ``producer`` (started, owned by the caller).

        Raises:
            TransportError: the bus refused.
        """
        await self._transport.create_topics([TopicSpec(self.topic, partitions=1)])
        await self._start_reading()
        self._beating = asyncio.create_task(
            self._beat(producer), name=f"inbox-heartbeat-{self.topic}"
        )

    async def _start_reading(self) -> None:
        self._reader = self._transport.partition_reader(self.topic, [0], start_at="end")
        await self._reader.start()
        self._loop = asyncio.create_task(self._read(), name=f"inbox-{self.topic}")

    async def _stop_reading_records(self) -> None:
        await stop_task(self._loop)
        self._loop = None
        if self._reader is not None:
            with contextlib.suppress(QueryBusError):
                await self._reader.stop()
            self._reader = None

    async def _restore(self) -> None:
        """Create the inbox again when it is gone while this adapter runs.

        Another adapter's sweep may delete it in the one round trip between
        reading its old last record and this adapter's first heartbeat, when
        this adapter restarted under the same stable instance id after being
        gone longer than the retire age. Without its inbox, a transaction this
        adapter begins could not be reached.

        Raises:
            TransportError: the bus refused.
        """
        try:
            await self._transport.partition_count(self.topic)
            return  # it is there: the heartbeat failed for another reason
        except (BrokerUnavailableError, BrokerAuthenticationError, BrokerAuthorizationError):
            # An outage, or a principal that may not describe its inbox:
            # nothing says it is gone, and the heartbeat must still be sent.
            return
        except TransportError:
            pass  # unknown topic: deleted
        log.warning(
            "the inbox %s was deleted while this adapter uses it; creating it again", self.topic
        )
        await self._transport.create_topics([TopicSpec(self.topic, partitions=1)])
        # The old reader was positioned in the deleted log: read the new one.
        await self._stop_reading_records()
        await self._start_reading()

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
                if is_heartbeat(record):
                    continue  # our own sign of life, not a request
                task = asyncio.create_task(self._handle(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _beat(self, producer: Producer) -> None:
        """Append a heartbeat now and every interval, until cancelled."""
        headers = [(Headers.HEARTBEAT, f"{self._heartbeat:g}".encode())]
        failing = False
        while True:
            try:
                # A metadata request per heartbeat finds a deleted inbox at
                # once; a send to it would wait out the request timeout first.
                await self._restore()
                await producer.send(self.topic, b"", partition=0, headers=headers)
            except Exception as exc:  # a dead heartbeat loop would get a live inbox deleted
                # Once per outage at WARNING, not every interval.
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "heartbeat to the inbox %s failed (trying again every %g s): %s: %s",
                    self.topic,
                    self._heartbeat,
                    type(exc).__name__,
                    exc,
                )
                failing = True
            else:
                if failing:
                    log.info("heartbeats to the inbox %s go through again", self.topic)
                failing = False
            await asyncio.sleep(self._heartbeat)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The records being handled now."""
        return list(self._tasks)

    async def stop_reading(self) -> None:
        """Read no more records and send no more heartbeats (the records
        being handled go on). Harmless when not started, or called twice."""
        await stop_task(self._beating)
        self._beating = None
        await self._stop_reading_records()
