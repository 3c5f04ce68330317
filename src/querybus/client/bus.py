"""The bus backend of a :class:`~querybus.QueryClient`: requests over Kafka.

One producer sends every request; one :class:`PartitionReader` reads this
client's own reply partition (assigned manually: no group, no rebalance) and
resolves the waiting future by correlation id. Thousands of requests can be
in flight at once; each reply reaches exactly its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from querybus.cancellation import Deadlines, stop_task, wait_for
from querybus.client.backend import LostCallback, Reply, Watch
from querybus.config import BusSettings
from querybus.errors import InterfaceError, ProtocolError, QueryBusError, TransportError
from querybus.observability.client_metrics import ClientMetrics
from querybus.protocol import (
    Headers,
    QueryFailure,
    QueryRequest,
    ReplyAddress,
    decode_reply,
)
from querybus.transport import PartitionReader, Producer, Record, TopicSpec, Transport, connect

__all__ = ["BusBackend"]

log = logging.getLogger("querybus.client")

T = TypeVar("T")


class Discovery(Protocol):
    """What the client needs from a registry client (querybus.registry.RegistryClient)."""

    async def discover(self, name: str) -> Sequence[Any]: ...


class BusBackend:
    """Publishes requests to the request topic and reads replies from one
    partition of the response topic (or of this caller's reply topic).

    Args:
        settings: the bus.
        transport: an already built transport (not closed here), or None.
        client_id: the client's id (a header of every request).
        reply_partition: the partition to read (random when None).
        registry / service_name: where to discover the request topic.
        metrics: the client's counters.
        on_lost: told when an adapter rolled back one of our transactions.
    """

    name = "bus"
    decoded_rows = False
    keeps_deadlines = True

    def __init__(
        self,
        settings: BusSettings,
        *,
        transport: Transport | None,
        client_id: str,
        reply_partition: int | None,
        registry: Discovery | None,
        service_name: str,
        metrics: ClientMetrics,
        on_lost: LostCallback,
    ) -> None:
        self._settings = settings
        self._own_transport = transport is None
        self._transport = transport
        self._client_id = client_id
        self._client_header = client_id.encode()
        self._reply_partition = reply_partition
        self._registry = registry
        self._service_name = service_name
        self._metrics = metrics
        self._on_lost = on_lost
        self.request_topic = settings.topics.request
        self._producer: Producer | None = None
        self._reader: PartitionReader | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        # The deadlines of the waiting requests on one timer: a request costs
        # a heap push, not a timer (or a timeout context) of its own.
        self._deadlines = Deadlines()
        self._reply_to: ReplyAddress | None = None
        self.started = False

    @property
    def reply_to(self) -> ReplyAddress:
        if self._reply_to is None:
            raise InterfaceError("the client is not started")
        return self._reply_to

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure the topics exist, and position the reply reader.
        After a failure everything is closed again and ``start`` may be retried.

        Raises:
            TransportError: the bus cannot be reached.
            InterfaceError: the reply partition does not exist.
        """
        try:
            await self._open()
        except BaseException:
            await self._close(InterfaceError("the client was closed"))
            raise
        self.started = True

    async def _open(self) -> None:
        s = self._settings
        if self._transport is None:
            self._transport = connect(
                s.bootstrap_servers,
                client_id=self._client_id,
                max_message_bytes=s.max_message_bytes,
                security=s.security,
            )
        transport = self._transport
        # Replies come on the shared response topic, or on this caller's own
        # reply topic (settings.reply_topic, readable only by it under Kafka
        # ACLs); such a client may not even describe the shared topics, so it
        # only makes sure of the two it uses.
        replies = s.client_reply_topic
        if s.reply_topic is None:
            specs = [
                TopicSpec(s.topics.request, partitions=s.request_partitions),
                TopicSpec(s.topics.response, partitions=s.response_partitions),
                TopicSpec(s.topics.error, partitions=1),
            ]
        else:
            specs = [
                TopicSpec(s.topics.request, partitions=s.request_partitions),
                TopicSpec(replies, partitions=s.response_partitions),
            ]
        await transport.create_topics(specs)
        await self._discover_request_topic()
        partitions = await transport.partition_count(replies)
        partition = self._reply_partition
        if partition is None:
            partition = random.randrange(partitions)
        elif not 0 <= partition < partitions:
            raise InterfaceError(
                f"reply partition {partition} does not exist ({replies} has {partitions})"
            )
        self._reply_to = ReplyAddress(replies, partition)
        self._producer = transport.producer()
        await self._producer.start()
        # start() resolves the end position, so no reply to a later request is missed.
        self._reader = transport.partition_reader(replies, [partition], start_at="end")
        await self._reader.start()
        self._reader_task = asyncio.create_task(
            self._read_replies(), name=f"{self._client_id}-replies"
        )

    async def _discover_request_topic(self) -> None:
        if self._registry is None:
            return
        try:
            instances = await wait_for(self._registry.discover(self._service_name), 5.0)
            endpoint = str(instances[0].endpoint)
        except (TimeoutError, QueryBusError, IndexError, OSError) as exc:
            log.warning(
                "registry lookup of %r failed (%s); using the configured topic %s",
                self._service_name,
                exc,
                self.request_topic,
            )
            return
        self.request_topic = endpoint

    async def stop(self) -> None:
        await self._close(InterfaceError("the client was closed"))

    async def _close(self, exc: BaseException) -> None:
        self.started = False
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        if self._reader_task is not None:
            await stop_task(self._reader_task)
            self._reader_task = None
        for closeable in (self._reader, self._producer):
            if closeable is not None:
                with contextlib.suppress(QueryBusError):
                    await closeable.stop()
        self._reader = self._producer = None
        if self._own_transport and self._transport is not None:
            transport, self._transport = self._transport, None
            with contextlib.suppress(QueryBusError):
                await transport.close()

    async def probe(self, timeout: float) -> None:
        """Raise unless the bus answers a metadata request within ``timeout``
        (and, when it never started, unless it starts now)."""
        if not self.started:
            await wait_for(self.start(), timeout)
            return
        assert self._transport is not None
        await wait_for(self._transport.partition_count(self.request_topic), timeout)

    # -- replies -----------------------------------------------------------

    async def _read_replies(self) -> None:
        assert self._reader is not None
        reader = self._reader
        while True:
            try:
                records = await reader.getmany(timeout=1.0)
            except TransportError as exc:
                # The broker may come back; the requests waiting have their own timeouts.
                log.warning("reading replies failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for record in records:
                try:
                    self._on_reply(record)
                except Exception:
                    # One odd record (a foreign producer on our partition, a bad
                    # header) must not stop the reader every caller depends on.
                    self._metrics.undecodable_replies += 1
                    log.exception("skipped an unreadable record at offset %d", record.offset)

    def _on_reply(self, record: Record) -> None:
        # Other clients may share this partition: skip their replies unread.
        owner = record.header(Headers.CLIENT_ID)
        if owner is not None and owner != self._client_header:
            return
        cid_raw = record.header(Headers.CORRELATION_ID)
        fut = self._pending.get(cid_raw.decode()) if cid_raw else None
        if fut is None:
            tx_raw = record.header(Headers.TRANSACTION)
            if tx_raw is not None:
                self._on_lost_notice(tx_raw.decode(errors="replace"), record)
                return
        if fut is None or fut.done():
            self._metrics.late_replies += 1
            log.debug("dropped a late or unknown reply (correlation id %r)", cid_raw)
            return
        try:
            if record.value is None:
                raise ProtocolError("empty reply")
            reply = decode_reply(record.value)
        except ProtocolError as exc:
            self._metrics.undecodable_replies += 1
            fut.set_exception(exc)
            return
        self._metrics.replies += 1
        fut.set_result(reply)

    def _on_lost_notice(self, tx_id: str, record: Record) -> None:
        """An adapter rolled back one of our transactions behind our back."""
        reason = "the adapter holding it rolled it back"
        with contextlib.suppress(ProtocolError):
            reply = decode_reply(record.value or b"")
            if isinstance(reply, QueryFailure):
                reason = reply.error.message
        self._on_lost(tx_id, reason)

    def fail_waiting(self, correlation_id: str, exc: BaseException) -> None:
        fut = self._pending.get(correlation_id)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    # -- requests ----------------------------------------------------------

    async def exchange(
        self,
        request: QueryRequest,
        data: bytes,
        token: str | None,
        *,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
        deadline: float | None = None,
    ) -> Reply:
        """Send one encoded request and wait for its reply (and, with
        ``watch``, stop waiting when it raises; at ``deadline``, event-loop
        time, with TimeoutError).

        The request is buffered, not awaited to its acknowledgement: its
        reply says it arrived; a failed delivery fails the wait instead.
        """
        producer, reply_to = self._producer, self._reply_to
        if producer is None or reply_to is None:
            raise InterfaceError("the client's bus connection is not open")
        cid = request.id
        headers = [
            (Headers.CORRELATION_ID, cid.encode()),
            (Headers.REPLY_TOPIC, reply_to.topic.encode()),
            (Headers.REPLY_PARTITION, str(reply_to.partition).encode()),
            (Headers.CLIENT_ID, self._client_header),
        ]
        if token is not None:
            headers.append((Headers.AUTHORIZATION, token.encode()))
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        sent = self._send_and_wait(
            producer,
            self.request_topic if topic is None else topic,
            data,
            key,
            partition,
            headers,
            fut,
            watch,
        )
        try:
            if deadline is None:
                return await sent
            # The deadline covers the send too: a send waiting for metadata or
            # for room in the buffer ends with it.
            return await self._deadlines.run(sent, deadline)
        finally:
            self._pending.pop(cid, None)

    @staticmethod
    async def _send_and_wait(
        producer: Producer,
        topic: str,
        data: bytes,
        key: bytes | None,
        partition: int | None,
        headers: list[tuple[str, bytes]],
        fut: asyncio.Future[Reply],
        watch: Watch | None,
    ) -> Reply:
        ack = await producer.start_send(topic, data, key=key, partition=partition, headers=headers)
        ack.add_done_callback(functools.partial(_fail_on_lost_delivery, fut))
        if watch is None:
            return await fut
        return await _watched(fut, watch)


def _fail_on_lost_delivery(fut: asyncio.Future[Reply], ack: asyncio.Future[Any]) -> None:
    """A request that was never delivered gets no reply: fail its wait with
    the transport's error (a ``BrokerUnavailableError`` lets the client fall
    back: nothing was sent)."""
    if ack.cancelled():
        return
    exc = ack.exception()
    if exc is not None and not fut.done():
        fut.set_exception(exc)


async def _watched(fut: asyncio.Future[T], watch: Watch) -> T:
    """``fut``'s result, unless ``watch`` raises first."""
    probe: asyncio.Future[None] = asyncio.ensure_future(watch())
    try:
        waiters: list[asyncio.Future[Any]] = [fut, probe]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        probe.result()  # raises what the watch found
        return await fut
    finally:
        probe.cancel()
