"""The adapter service: consume requests, validate, execute, reply, commit.

Delivery: at-least-once. A request's offset is committed only after its
reply is produced (per partition, up to the lowest offset still in flight).
An adapter that dies redelivers its uncommitted requests to the others in the
group; idempotency keys make a redelivered write return the first reply.

Nothing received is lost silently: a record that cannot be decoded goes to
the dead-letter topic with the reason (and, when its headers name a reply
address, the caller gets a ProtocolError reply at once).

No request can hold the adapter: a reply address is checked on arrival (the
response topic or a topic named under it, an existing partition) and a
request with an unusable one is dead-lettered without running; a reply that
still cannot be produced is retried briefly (for as long as the deadline
allows while the broker is unreachable), then dead-lettered with the reason,
so its offset commits and its slot frees. A request larger than
``max_request_bytes`` once decompressed is refused before it is decoded, and
no request runs for longer than ``max_deadline``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from querybus.adapter.executor import Executor, Outcome
from querybus.adapter.idempotency import request_digest
from querybus.adapter.offsets import OffsetTracker
from querybus.adapter.policy import Policy
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import (
    BrokerUnavailableError,
    DeadlineExceededError,
    PayloadTooLargeError,
    ProtocolError,
    QueryBusError,
    QueryError,
    ResultTooLargeError,
    TransportError,
)
from querybus.observability.http import HttpServer, Response
from querybus.observability.metrics import Metrics
from querybus.protocol import (
    ErrorInfo,
    Headers,
    QueryFailure,
    QueryRequest,
    QueryResult,
    ReplyAddress,
    RouteInfo,
    Timings,
    decode_request,
    decode_row,
    encode,
    encode_rows,
)
from querybus.transport import GroupConsumer, Producer, Record, TopicPartition, TopicSpec, Transport

__all__ = ["AdapterService"]

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


class _IdempotencyCache:
    """Replies by idempotency key, so a duplicate write returns the first reply.

    In memory, per adapter: the fast path for redelivery to this adapter and
    client retries (requests with a key are keyed by it, so they land on the
    same partition, hence the same adapter while the group is stable). A
    duplicate that reaches another adapter, or this one after a restart, is
    caught by the executor's durable store in the database
    (:mod:`querybus.adapter.idempotency`), which returns the first outcome.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._done: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._running: dict[str, asyncio.Future[bytes]] = {}

    def get(self, key: str) -> bytes | asyncio.Future[bytes] | None:
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        return self._running.get(key)

    def begin(self, key: str) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[key] = fut
        return fut

    def finish(self, key: str, reply: bytes | None) -> None:
        fut = self._running.pop(key, None)
        if reply is not None:
            self._done[key] = reply
            while len(self._done) > self._size:
                self._done.popitem(last=False)
        if fut is not None and not fut.done():
            if reply is None:
                fut.cancel()
            else:
                fut.set_result(reply)


class AdapterService:
    """One adapter: a consumer-group member that executes requests on ``executor``.

    Args:
        transport: the bus.
        executor: where statements run (PostgreSQL, routed PostgreSQL, SQLite).
        bus: topic names and sizes.
        settings: group, concurrency, HTTP port, shutdown grace.
        policy: request validation rules.
        metrics: where to count (a fresh one when None).
    """

    def __init__(
        self,
        transport: Transport,
        executor: Executor,
        *,
        bus: BusSettings | None = None,
        settings: AdapterSettings | None = None,
        policy: Policy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.bus = bus or BusSettings()
        self.settings = settings or AdapterSettings()
        self.instance_id = self.settings.instance_id or (
            f"adapter-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.transport = transport
        self.executor = executor
        self.policy = policy or Policy()
        self.metrics = metrics or Metrics()
        self._producer: Producer | None = None
        self._consumer: GroupConsumer | None = None
        self._http: HttpServer | None = None
        self._tracker = OffsetTracker()
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._capacity = max(1, self.settings.pool_size * 4)
        self._slots = asyncio.Semaphore(self._capacity)
        self._idem = _IdempotencyCache()
        self._partitions: dict[str, tuple[int, float]] = {}  # reply topic -> (count, when)
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.started = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------

    @property
    def http_port(self) -> int | None:
        return None if self._http is None else self._http.port

    async def start(self, *, http: bool = True) -> None:
        """Create topics, connect everything, join the group, start serving.

        Raises:
            TransportError: the bus cannot be reached.
            OperationalError: the database cannot be reached.
        """
        t = self.bus.topics
        try:
            await self.transport.create_topics(
                [
                    TopicSpec(t.request, partitions=self.bus.request_partitions),
                    TopicSpec(t.response, partitions=self.bus.response_partitions),
                    TopicSpec(t.error, partitions=1),
                    TopicSpec(t.dead_letter, partitions=1),
                    TopicSpec(t.routing_decisions, partitions=1),
                ]
            )
            await self.executor.start()
            self._producer = self.transport.producer()
            await self._producer.start()
            self._consumer = self.transport.group_consumer(
                [t.request],
                self.settings.group_id,
                on_revoke=self._on_revoke,
                # A new group starts at "now minus the longest deadline": every
                # request older than that has expired, every newer one may not have.
                start_lookback=self.settings.max_deadline,
            )
            await self._consumer.start()
            if http:
                self._http = HttpServer(
                    {
                        "/health": self._http_ready,
                        "/health/ready": self._http_ready,
                        "/health/live": self._http_live,
                        "/metrics": self._http_metrics,
                    },
                    host=self.settings.http_host,
                    port=self.settings.http_port,
                )
                await self._http.start()
        except BaseException:
            await self._close_resources()
            raise
        self._loop_task = asyncio.create_task(self._consume(), name=f"{self.instance_id}-consume")
        self._commit_task = asyncio.create_task(
            self._commit_loop(), name=f"{self.instance_id}-commit"
        )
        self.started.set()
        log.info(
            "adapter %s serving %s in group %s (executor %s, up to %d in flight)",
            self.instance_id,
            t.request,
            self.settings.group_id,
            self.executor.name,
            self._capacity,
        )

    async def stop(self) -> None:
        """Stop consuming, finish in-flight requests (up to the grace period),
        commit, and close everything."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        tasks = [task for group in self._tasks.values() for task in group]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
            for task in late:
                task.cancel()
            if late:
                # Let them unwind (asyncpg cancels their statements) before the
                # final commit, which must not include them.
                await asyncio.wait(late, timeout=5.0)
                log.warning(
                    "%d requests still running after the grace period were abandoned "
                    "(uncommitted: another adapter will run them)",
                    len(late),
                )
        if self._commit_task is not None:
            self._commit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._commit_task
        await self._commit()
        await self._close_resources()
        log.info("adapter %s stopped", self.instance_id)

    async def _close_resources(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2.0)
        if self._http is not None:
            await self._http.stop()
        for closeable in (self._consumer, self._producer):
            if closeable is not None:
                with contextlib.suppress(QueryBusError):
                    await closeable.stop()
        with contextlib.suppress(QueryBusError):
            await self.executor.stop()

    async def __aenter__(self) -> AdapterService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until :meth:`stop` is called (e.g. from a signal handler)."""
        await self._stopping.wait()

    # -- consuming -----------------------------------------------------------

    async def _consume(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            # Backpressure: never hold more records than we have room to run.
            await self._slots.acquire()
            free = 1
            while free < self._capacity and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            try:
                records = await consumer.getmany(timeout=0.1, max_records=free)
            except Exception as exc:  # the loop must outlive any one failure
                if isinstance(exc, TransportError):
                    log.warning("fetching requests failed: %s", exc)
                else:
                    log.exception("fetching requests failed unexpectedly")
                records = []
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
            for _ in range(free - len(records)):
                self._slots.release()
            for record in records:
                tp = (record.topic, record.partition)
                self._tracker.received(tp, record.offset)
                task = asyncio.create_task(self._handle(record))
                self._tasks.setdefault(tp, set()).add(task)
                task.add_done_callback(self._tasks[tp].discard)

    async def _on_revoke(self, partitions: set[TopicPartition]) -> None:
        # Finish what we hold of these partitions and commit it before they move.
        tasks = [task for tp in partitions for task in self._tasks.get(tp, ())]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
        await self._commit(partitions)
        self._tracker.forget(partitions)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.commit_interval)
            try:
                await self._commit()
            except Exception:  # a dead commit loop would go unnoticed until a restart
                log.exception("committing offsets failed unexpectedly")

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        if self._consumer is None:
            return
        async with self._commit_lock:
            offsets = self._tracker.committable(partitions)
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except TransportError as exc:
                # Likely a rebalance: the new owner resumes from the last commit.
                log.info("commit of %s failed: %s", offsets, exc)
                return
            self._tracker.committed(offsets)

    # -- one request ------------------------------------------------------------

    async def _handle(self, record: Record) -> None:
        """Handle one record; its offset becomes committable only once the
        record is dealt with (replied to, or dead-lettered)."""
        received = time.time()
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        dealt_with = False
        try:
            await self._process(record, received, started)
            dealt_with = True
        except asyncio.CancelledError:
            # Abandoned at shutdown: left uncommitted, so the group redelivers it.
            raise
        except Exception:
            # A bug must not kill the adapter; the record is dead-lettered so it is not lost.
            log.exception(
                "unexpected failure handling %s[%d]@%d",
                record.topic,
                record.partition,
                record.offset,
            )
            try:
                await self._dead_letter(record, "internal error while handling the record")
                dealt_with = True
            except TransportError as exc:
                log.error("record left uncommitted, to be redelivered: %s", exc)
        finally:
            self.metrics.in_flight.dec()
            if dealt_with:
                self._tracker.done((record.topic, record.partition), record.offset)
            self._slots.release()

    async def _process(self, record: Record, received: float, started: float) -> None:
        if record.value is None:
            await self._dead_letter(record, "empty record (tombstone)")
            return
        if len(record.value) > self.settings.max_request_bytes:
            # Measured after the bus decompressed it: a small compressed record
            # can still be a huge request. Refused before decoding.
            await self._refuse_undecoded(
                record,
                PayloadTooLargeError(
                    f"the request is {len(record.value)} bytes once decompressed; "
                    f"the limit is {self.settings.max_request_bytes}"
                ),
                "too_large",
                keep_value=False,
            )
            return
        try:
            request = decode_request(record.value)
        except ProtocolError as exc:
            await self._refuse_undecoded(record, exc, "undecodable")
            return
        unusable = await self._check_reply_address(request.reply_to)
        if unusable is not None:
            # Nobody could ever get the answer: do not run it (a write would
            # happen unseen), keep it with the reason instead.
            self.metrics.dead_letters.labels("reply_address").inc()
            await self._dead_letter(record, f"unusable reply address: {unusable}")
            return
        # No request waits and runs longer than the adapter allows, whatever it asks.
        request.deadline = min(request.deadline, received + self.settings.max_deadline)

        timings = Timings(queue=max(0.0, received - request.sent_at) if request.sent_at else 0.0)
        self.metrics.queue_wait.observe(timings.queue)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %s from %s: op=%s sql=%.200r params=%s",
                request.id,
                request.client,
                request.op,
                request.sql,
                request.params
                if self.settings.log_parameters
                else f"<{len(request.params)} values>",
            )

        # The cache's identity is the key *and* what the request asks for: a key
        # reused for another request misses here and is refused by the durable
        # store, rather than being answered with another request's reply.
        idem = (
            None
            if request.idem is None
            else f"{request.idem}\x00{request_digest(request.sql, request.params, request.many)}"
        )
        while idem is not None:
            cached = self._idem.get(idem)
            if cached is None:
                self._idem.begin(idem)
                break
            if isinstance(cached, bytes):
                data = cached
            else:
                try:
                    data = await asyncio.shield(cached)
                except asyncio.CancelledError:
                    if not cached.cancelled():
                        raise
                    # The running duplicate failed (failures are not cached): a
                    # waiter must not be left without a reply, so it runs itself.
                    continue
            await self._send_reply(
                request.reply_to,
                request.id,
                _with_id(data, request.id),
                request.deadline,
                copy_to_errors=False,
                client=request.client,
            )
            return

        try:
            outcome = await self._execute(request)
        except QueryBusError as exc:
            timings.total = time.perf_counter() - started
            await self._reply_failure(
                request.reply_to, request.id, exc, timings, request.deadline, client=request.client
            )
            if idem is not None:
                self._idem.finish(idem, None)
            return

        timings.execute = outcome.execute_seconds
        timings.route = outcome.route_seconds
        route = outcome.route or RouteInfo(target=self.executor.name, reason="single_target")
        reply = QueryResult(
            id=request.id,
            command=outcome.command,
            columns=outcome.columns,
            rows=encode_rows(outcome.rows),
            rowcount=outcome.rowcount,
            lsn=outcome.lsn,
            timings=timings,
            route=route,
            served_by=self.instance_id,
        )
        timings.total = time.perf_counter() - started
        data = encode(reply)
        if len(data) > self.bus.max_message_bytes:
            # The statement ran (and committed): say what it did, without the rows.
            err = ResultTooLargeError(
                f"the statement ran ({outcome.command}), but its reply would be {len(data)} "
                f"bytes and the limit is {self.bus.max_message_bytes}: the rows are not "
                "returned (add a LIMIT, page through the rows, or return fewer columns)",
                command=outcome.command,
                rowcount=outcome.rowcount,
                lsn=outcome.lsn,
            )
            await self._reply_failure(
                request.reply_to, request.id, err, timings, request.deadline, client=request.client
            )
            if idem is not None:
                self._idem.finish(idem, None)
            return
        self.metrics.execute.observe(timings.execute)
        self.metrics.latency.observe(timings.total)
        self.metrics.requests.labels("ok").inc()
        if outcome.route is None:  # a router counts its own decisions
            self.metrics.route.labels(route.target, route.reason).inc()
        if idem is not None:
            self._idem.finish(idem, data)
        await self._send_reply(
            request.reply_to,
            request.id,
            data,
            request.deadline,
            copy_to_errors=False,
            client=request.client,
        )

    async def _execute(self, request: QueryRequest) -> Outcome:
        remaining = request.deadline - time.time()
        if remaining <= 0:
            raise DeadlineExceededError(
                f"the request's deadline passed {-remaining:.3f} s before it could run; "
                "not executed"
            )
        self.policy.check(request)
        params: Sequence[Any]
        try:
            params = (
                [decode_row(p) for p in request.params]
                if request.many
                else decode_row(request.params)
            )
        except (ProtocolError, TypeError) as exc:
            raise ProtocolError(f"invalid parameters: {exc}") from exc
        # Time may have passed while validating or waiting for a slot.
        remaining = request.deadline - time.time()
        if remaining <= 0:
            raise DeadlineExceededError(
                "the request's deadline passed before it could run; not executed"
            )
        return await self.executor.run(request, params, timeout=remaining)

    # -- replies ---------------------------------------------------------------

    async def _refuse_undecoded(
        self, record: Record, exc: QueryBusError, kind: str, *, keep_value: bool = True
    ) -> None:
        """Dead-letter a record that was not decoded, and answer its caller
        when its headers name a usable reply address and a correlation id."""
        self.metrics.dead_letters.labels(kind).inc()
        await self._dead_letter(record, str(exc), keep_value=keep_value)
        address = _reply_address_from_headers(record)
        cid = record.header(Headers.CORRELATION_ID)
        if address is None or cid is None or await self._check_reply_address(address):
            return
        owner = record.header(Headers.CLIENT_ID)
        await self._reply_failure(
            address,
            cid.decode(errors="replace"),
            exc,
            Timings(),
            None,
            client=owner.decode(errors="replace") if owner else None,
        )

    async def _check_reply_address(self, address: ReplyAddress) -> str | None:
        """Why replies cannot go to ``address``, or None when they can.

        Replies go to the response topic or to a topic named under it
        (``<response>.<suffix>``, e.g. one per tenant): never to the request
        topic or another service's topic. The partition must exist; topic
        sizes are cached, so this is a dict lookup per request.
        """
        topic, partition = address.topic, address.partition
        response = self.bus.topics.response
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
                count = await self.transport.partition_count(topic)
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

    async def _reply_failure(
        self,
        address: ReplyAddress,
        correlation_id: str,
        exc: QueryBusError,
        timings: Timings,
        deadline: float | None,
        *,
        client: str | None = None,
    ) -> None:
        sqlstate = exc.sqlstate if isinstance(exc, QueryError) else None
        info = ErrorInfo(
            code=exc.code,
            message=exc.message,
            sqlstate=sqlstate,
            detail=exc.detail if isinstance(exc, QueryError) else None,
            hint=exc.hint if isinstance(exc, QueryError) else None,
            retriable=exc.retriable,
        )
        if isinstance(exc, ResultTooLargeError):
            info.command, info.rowcount, info.lsn = exc.command, exc.rowcount, exc.lsn
        self.metrics.requests.labels(exc.code).inc()
        self.metrics.errors.labels(exc.code, (sqlstate or "")[:2]).inc()
        # Database messages can quote parameter values ("invalid input syntax
        # for type integer: …"): they are logged only where parameters are.
        if self.settings.log_parameters:
            log.info("request %s failed: %s: %s", correlation_id, exc.code, exc)
        else:
            log.info("request %s failed: %s %s", correlation_id, exc.code, sqlstate or "")
        data = encode(
            QueryFailure(id=correlation_id, error=info, timings=timings, served_by=self.instance_id)
        )
        # An expired request costs no copy of its own: a new group, or a backlog
        # after an outage, must not turn into a flood on the error topic.
        await self._send_reply(
            address,
            correlation_id,
            data,
            deadline,
            copy_to_errors=not isinstance(exc, DeadlineExceededError),
            client=client,
        )

    async def _send_reply(
        self,
        address: ReplyAddress,
        correlation_id: str,
        data: bytes,
        deadline: float | None,
        *,
        copy_to_errors: bool,
        client: str | None = None,
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
        assert self._producer is not None
        headers = [(Headers.CORRELATION_ID, correlation_id.encode())]
        if client:
            headers.append((Headers.CLIENT_ID, client.encode()))
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
                    deadline is not None and time.time() < deadline
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
                self.metrics.dead_letters.labels("undeliverable_reply").inc()
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
        assert self._producer is not None
        try:
            await self._producer.send(
                self.bus.topics.error,
                data,
                key=correlation_id.encode(),
                headers=[(Headers.CORRELATION_ID, correlation_id.encode())],
            )
        except TransportError as exc:
            log.warning(
                "copy of error reply %s to %s failed: %s",
                correlation_id,
                self.bus.topics.error,
                exc,
            )

    async def _dead_letter(self, record: Record, reason: str, *, keep_value: bool = True) -> None:
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
        assert self._producer is not None
        headers = [*headers, (Headers.DLQ_REASON, reason.encode()[:1000])]
        while True:
            try:
                await self._producer.send(
                    self.bus.topics.dead_letter, value, key=key, headers=headers
                )
                return
            except PayloadTooLargeError:
                value = None  # the reason and the headers still say what it was
            except TransportError as exc:
                if self._stopping.is_set():
                    raise
                log.warning("dead-letter write failed (%s); retrying", exc)
                await asyncio.sleep(_SEND_RETRY_DELAY)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None) -> None:
        """Fire-and-forget a record (routing decisions); failures are logged, not raised."""
        if self._producer is None or self._stopping.is_set():
            return

        async def send() -> None:
            assert self._producer is not None
            try:
                await self._producer.send(topic, value, key=key)
            except TransportError as exc:
                log.debug("publishing to %s failed: %s", topic, exc)

        self._spawn(send())

    # -- health ----------------------------------------------------------------

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """Liveness and readiness: whether Kafka and the database answer now."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.transport.partition_count(self.bus.topics.request), timeout)
            checks["kafka"] = "ok"
        except (TimeoutError, QueryBusError) as exc:
            checks["kafka"] = f"failing: {exc or 'timeout'}"
        try:
            await self.executor.ping(timeout)
            checks["database"] = "ok"
        except (TimeoutError, QueryBusError) as exc:
            checks["database"] = f"failing: {exc or 'timeout'}"
        ready = all(v == "ok" for v in checks.values()) and not self._stopping.is_set()
        return {
            "status": "ready" if ready else "not_ready",
            "instance": self.instance_id,
            "checks": checks,
        }

    async def _http_ready(self) -> Response:
        body = await self.health()
        return (
            (200 if body["status"] == "ready" else 503),
            "application/json",
            msgspec.json.encode(body),
        )

    async def _http_live(self) -> Response:
        alive = self._loop_task is not None and not self._loop_task.done()
        return (200 if alive else 503), "application/json", msgspec.json.encode({"alive": alive})

    async def _http_metrics(self) -> Response:
        return 200, "text/plain; version=0.0.4", self.metrics.render()


def _reply_address_from_headers(record: Record) -> ReplyAddress | None:
    topic = record.header(Headers.REPLY_TOPIC)
    partition = record.header(Headers.REPLY_PARTITION)
    if topic is None or partition is None:
        return None
    try:
        return ReplyAddress(topic.decode(), int(partition))
    except (UnicodeDecodeError, ValueError):
        return None


_reply_decoder = msgspec.json.Decoder(dict[str, Any])


def _with_id(data: bytes, correlation_id: str) -> bytes:
    # A cached idempotent reply answers a new request: give it that request's id.
    doc = _reply_decoder.decode(data)
    doc["id"] = correlation_id
    return msgspec.json.encode(doc)
