"""Everything an adapter writes back: replies, error-topic copies, dead letters.

No reply can hold the adapter: a reply address is checked on arrival
(:meth:`Replies.check_address`: the response topic or a topic named under it,
an existing partition); a reply that still cannot be produced is retried
briefly (for as long as the deadline allows while the broker is unreachable),
then dead-lettered with the reason, so its request's offset commits and its
slot frees. Nothing is dropped: an unusable record goes to the dead-letter
topic with the reason, its value too unless it is too large.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from querybus.adapter.redaction import redact
from querybus.config import TopicNames
from querybus.errors import (
    BrokerUnavailableError,
    DeadlineExceededError,
    PayloadTooLargeError,
    QueryBusError,
    RateLimitedError,
    TransportError,
)
from querybus.execution import Deadline
from querybus.observability.metrics import Metrics
from querybus.protocol import Headers, QueryFailure, ReplyAddress, Timings, encode
from querybus.protocol.errors import error_info
from querybus.protocol.headers import reply_address, reply_headers
from querybus.transport import Producer, Record, Transport

__all__ = ["Replies", "build_failure"]

log = logging.getLogger("querybus.adapter")

_SEND_RETRY_DELAY = 0.2
#: Tries for a reply the broker refuses for another reason than being
#: unreachable (unknown partition, authorization, size) before it is dead-lettered.
_REPLY_ATTEMPTS = 3
#: How long a reply topic's partition count is trusted before it is looked up again
#: for a partition beyond it (partitions can be added).
_PARTITIONS_TTL = 10.0
#: Reply topics whose size is remembered, at most.
_PARTITIONS_CACHED = 1024
#: Kafka's rule for topic names.
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def build_failure(
    correlation_id: str,
    exc: QueryBusError,
    timings: Timings,
    metrics: Metrics,
    *,
    instance_id: str,
    log_parameters: bool,
    params: list[Any] | None = None,
) -> QueryFailure:
    """The failure reply with ``exc``, counted and logged. The text of
    ``params`` (the request's values, wire form) is masked in it unless
    parameter logging is on (:mod:`querybus.adapter.redaction`)."""
    info = error_info(exc)
    if params and not log_parameters:
        info = redact(info, params)
    sqlstate = info.sqlstate
    metrics.requests.labels(exc.code).inc()
    metrics.errors.labels(exc.code, (sqlstate or "")[:2]).inc()
    # Database messages can quote parameter values ("invalid input syntax
    # for type integer: …"): they are logged only where parameters are.
    if log_parameters:
        log.info("request %s failed: %s: %s", correlation_id, exc.code, exc)
    else:
        log.info("request %s failed: %s %s", correlation_id, exc.code, sqlstate or "")
    return QueryFailure(id=correlation_id, error=info, timings=timings, served_by=instance_id)


class Replies:
    """The adapter's writing side, on its producer.

    Args:
        producer: a started producer.
        transport: for the partition counts of reply topics.
        topics: the bus's topics (response, error, dead-letter).
        metrics: where to count.
        instance_id: the adapter's name in replies.
        log_parameters: whether error messages (which may quote parameter
            values) are logged.
        stopping: set when the adapter stops (retries end then).
        spawn: runs a background task the adapter waits for at stop.
    """

    def __init__(
        self,
        producer: Producer,
        transport: Transport,
        topics: TopicNames,
        metrics: Metrics,
        *,
        instance_id: str,
        log_parameters: bool,
        stopping: asyncio.Event,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._producer = producer
        self._transport = transport
        self._topics = topics
        self._metrics = metrics
        self._instance_id = instance_id
        self._log_parameters = log_parameters
        self._stopping = stopping
        self._spawn = spawn
        self._partitions: dict[str, tuple[int, float]] = {}  # reply topic -> (count, when)

    async def refuse_undecoded(
        self, record: Record, exc: QueryBusError, kind: str, *, keep_value: bool = True
    ) -> None:
        """Dead-letter a record that was not decoded, and answer its caller
        when its headers name a usable reply address and a correlation id."""
        self._metrics.dead_letters.labels(kind).inc()
        await self.dead_letter(record, str(exc), keep_value=keep_value)
        address = reply_address(record.headers)
        cid = record.header(Headers.CORRELATION_ID)
        if address is None or cid is None or await self.check_address(address):
            return
        owner = record.header(Headers.CLIENT_ID)
        await self.failure(
            address,
            cid.decode(errors="replace"),
            exc,
            Timings(),
            None,
            client=owner.decode(errors="replace") if owner else None,
        )

    async def check_address(self, address: ReplyAddress) -> str | None:
        """Why replies cannot go to ``address``, or None when they can.

        Replies go to the response topic or to a topic named under it
        (``<response>.<suffix>``, e.g. one per tenant): never to the request
        topic or another service's topic. The partition must exist; topic
        sizes are cached, so this is a dict lookup per request.
        """
        topic, partition = address.topic, address.partition
        response = self._topics.response
        if not (topic == response or topic.startswith(response + ".")):
            return f"topic {topic[:300]!r} is not {response!r} or a topic named under it"
        if len(topic) > 249 or not set(topic) <= _TOPIC_CHARS:
            return f"{topic[:300]!r} is not a valid topic name"
        if partition < 0:
            return f"partition {partition} does not exist"
        cached = self._partitions.get(topic)
        now = time.monotonic()
        if cached is None or (partition >= cached[0] and now - cached[1] > _PARTITIONS_TTL):
            try:
                count = await self._transport.partition_count(topic)
            except BrokerUnavailableError:
                return None  # an outage, not a bad address: the reply path copes
            except TransportError:
                # Unknown topic: remembered like a topic without partitions, so a
                # flood of such requests costs no metadata request each.
                count = 0
            cached = (count, now)
            if len(self._partitions) >= _PARTITIONS_CACHED:  # hostile names must not grow it
                self._partitions.clear()
            self._partitions[topic] = cached
        if cached[0] == 0:
            return f"topic {topic!r} does not exist"
        if partition >= cached[0]:
            return f"topic {topic!r} has no partition {partition} (it has {cached[0]})"
        return None

    async def failure(
        self,
        address: ReplyAddress,
        correlation_id: str,
        exc: QueryBusError,
        timings: Timings,
        deadline: Deadline | None,
        *,
        client: str | None = None,
        params: list[Any] | None = None,
    ) -> None:
        """Reply with ``exc`` (and copy it to the error topic). The text of
        ``params`` (the request's values, wire form) is masked in the reply
        unless parameter logging is on (:mod:`querybus.adapter.redaction`)."""
        reply = build_failure(
            correlation_id,
            exc,
            timings,
            self._metrics,
            instance_id=self._instance_id,
            log_parameters=self._log_parameters,
            params=params,
        )
        data = encode(reply)
        # An expired or throttled request costs no copy of its own: a new group, or a backlog
        # after an outage, must not turn into a flood on the error topic.
        await self.send(
            address,
            correlation_id,
            data,
            deadline,
            copy_to_errors=not isinstance(exc, DeadlineExceededError | RateLimitedError),
            client=client,
        )

    async def lost_notice(
        self,
        address: ReplyAddress,
        tx: str,
        exc: QueryBusError,
        *,
        client: str | None = None,
    ) -> None:
        """Tell the caller of transaction ``tx`` that it was rolled back behind
        its back (the adapter stopping, an idle timeout): an unsolicited
        failure reply, correlation id ``lost-<tx>``, with the transaction's id
        in the ``querybus-transaction`` header, which the client matches."""
        cid = f"lost-{tx}"
        data = encode(
            QueryFailure(
                id=cid, error=error_info(exc), timings=Timings(), served_by=self._instance_id
            )
        )
        await self.send(
            address,
            cid,
            data,
            Deadline.after(5.0),
            copy_to_errors=False,
            client=client,
            extra_headers=[(Headers.TRANSACTION, tx.encode())],
        )

    async def send(
        self,
        address: ReplyAddress,
        correlation_id: str,
        data: bytes,
        deadline: Deadline | None,
        *,
        copy_to_errors: bool,
        client: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Produce the reply; if it cannot be produced, dead-letter it.

        While the broker is unreachable the reply is retried until the
        caller's deadline (nothing else can be produced either); any other
        refusal gets :data:`_REPLY_ATTEMPTS` tries. Either way the reply then
        goes to the dead-letter topic with the reason (logged once), so the
        request's offset can be committed and its slot freed.

        The client id travels as a header so that clients sharing a reply
        partition skip each other's replies instead of counting them as late.

        Raises:
            TransportError: the adapter is stopping and the reply could be
                neither produced nor dead-lettered (left uncommitted).
        """
        headers = reply_headers(correlation_id, client)
        headers.extend(extra_headers)
        attempts = 0
        while True:
            try:
                await self._producer.send(
                    address.topic, data, partition=address.partition, headers=headers
                )
                break
            except TransportError as exc:
                attempts += 1
                outage = isinstance(exc, BrokerUnavailableError)
                again = (
                    deadline is not None and not deadline.expired()
                    if outage
                    else exc.retriable and attempts < _REPLY_ATTEMPTS
                )
                if again and not self._stopping.is_set():
                    log.debug("reply %s not produced yet (%s); retrying", correlation_id, exc)
                    await asyncio.sleep(_SEND_RETRY_DELAY)
                    continue
                reason = (
                    f"reply could not be delivered to {address.topic}[{address.partition}] "
                    f"after {attempts} attempts: {exc}"
                )
                log.warning("reply %s dead-lettered: %s", correlation_id, reason)
                self._metrics.dead_letters.labels("undeliverable_reply").inc()
                await self._dead_letter_value(
                    data,
                    correlation_id.encode(),
                    [
                        *headers,
                        (Headers.REPLY_TOPIC, address.topic.encode()),
                        (Headers.REPLY_PARTITION, str(address.partition).encode()),
                    ],
                    reason,
                )
                return
        if copy_to_errors:
            self._spawn(self._copy_to_error_topic(correlation_id, data))

    async def _copy_to_error_topic(self, correlation_id: str, data: bytes) -> None:
        try:
            await self._producer.send(
                self._topics.error,
                data,
                key=correlation_id.encode(),
                headers=[(Headers.CORRELATION_ID, correlation_id.encode())],
            )
        except TransportError as exc:
            log.warning(
                "copy of error reply %s to %s failed: %s",
                correlation_id,
                self._topics.error,
                exc,
            )

    async def dead_letter(self, record: Record, reason: str, *, keep_value: bool = True) -> None:
        """Keep an unusable record, with why, on the dead-letter topic (its
        value too, unless ``keep_value`` is False or it is too large)."""
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        await self._dead_letter_value(
            record.value if keep_value else None, record.key, record.headers, reason
        )

    async def _dead_letter_value(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        reason: str,
    ) -> None:
        """Append ``value`` to the dead-letter topic with ``reason`` in a header.

        Retries until it succeeds or the adapter stops; in the latter case
        the error is raised and the request stays uncommitted, so it comes
        back after a restart.

        Raises:
            TransportError: the adapter is stopping and the write failed.
        """
        # The caller's token is a secret: a dead letter keeps everything else.
        headers = [
            *((name, value) for name, value in headers if name != Headers.AUTHORIZATION),
            (Headers.DLQ_REASON, reason.encode()[:1000]),
        ]
        while True:
            try:
                await self._producer.send(self._topics.dead_letter, value, key=key, headers=headers)
                return
            except PayloadTooLargeError:
                value = None  # the reason and the headers still say what it was
            except TransportError as exc:
                if self._stopping.is_set():
                    raise
                log.warning("dead-letter write failed (%s); retrying", exc)
                await asyncio.sleep(_SEND_RETRY_DELAY)
