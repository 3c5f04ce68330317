"""The adapter service: consume requests, validate, execute, reply, commit.

Delivery: at-least-once. A request's offset is committed only after its
reply is produced (per partition, up to the lowest offset still in flight).
An adapter that dies redelivers its uncommitted requests to the others in the
group; idempotency keys make a redelivered write return the first reply.

Nothing received is lost silently: a record that cannot be decoded goes to
the dead-letter topic with the reason (and, when its headers name a reply
address, the caller gets a ProtocolError reply at once).

The path of one record: consume → :meth:`AdapterService._process` (decode,
check the reply address, build one :class:`~querybus.execution.Deadline`) →
:meth:`RequestHandler.handle <querybus.adapter.handler.RequestHandler.handle>`
(identity, policy → one :class:`~querybus.execution.Job` → ``executor.run(job)``,
the reply) → produce the reply. This module is what is about Kafka: consuming,
offsets, the inbox, delivering replies and dead letters; the handling of a
decoded request is :mod:`querybus.adapter.handler`. Everything written back (replies, error
copies, dead letters, and why no reply can hold the adapter) is in
:mod:`querybus.adapter.replies`; idempotency in :mod:`querybus.database.idempotency`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

import msgspec

from querybus.adapter.audit import AuditRecord, encode_audit
from querybus.adapter.handler import RequestHandler
from querybus.adapter.inbox import Inbox
from querybus.adapter.inbox_sweep import InboxSweeper
from querybus.adapter.offsets import OffsetTracker
from querybus.adapter.policy import Policy
from querybus.adapter.replies import Replies
from querybus.adapter.roles import RolePolicies
from querybus.cancellation import stop_task, wait_for
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import (
    PayloadTooLargeError,
    ProtocolError,
    QueryBusError,
    TransactionLostError,
    TransportError,
)
from querybus.execution import Deadline, Executor
from querybus.identity import TokenVerifier
from querybus.observability.http import HttpServer, Response
from querybus.observability.metrics import Metrics
from querybus.protocol import (
    Headers,
    ReplyAddress,
    Timings,
    decode_request,
)
from querybus.transport import GroupConsumer, Producer, Record, TopicPartition, TopicSpec, Transport

__all__ = ["AdapterService"]

log = logging.getLogger("querybus.adapter")


class AdapterService:
    """One adapter: a consumer-group member that executes requests on ``executor``.

    Args:
        transport: the bus.
        executor: where statements run (PostgreSQL, routed PostgreSQL, SQLite).
        bus: topic names and sizes.
        settings: group, concurrency, HTTP port, shutdown grace.
        policy: request validation rules.
        metrics: where to count (a fresh one when None).
        verifier: checks each request's token and names the role it runs as;
            None runs every request as the adapter's login (no identities).
        roles: limits per role (operations, tables, rows, time, rate); see
            :mod:`querybus.adapter.roles`.
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
        verifier: TokenVerifier | None = None,
        roles: RolePolicies | None = None,
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
        self.verifier = verifier
        self.roles = roles or RolePolicies()
        self._producer: Producer | None = None
        self._consumer: GroupConsumer | None = None
        self._http: HttpServer | None = None
        self._tracker = OffsetTracker()
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # Read when scraped, not counted up and down per request (a lock each).
        self.metrics.in_flight.set_function(
            lambda: float(sum(len(tasks) for tasks in self._tasks.values()))
        )
        self.metrics.watch_pools(executor.pool_stats)
        self._capacity = max(1, self.settings.pool_size * 4)
        self._slots = asyncio.Semaphore(self._capacity)
        self._replies_: Replies | None = None
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.started = asyncio.Event()
        # Interactive transactions: their requests come to this adapter's own
        # inbox (docs/transactions.md); BEGIN, STATUS and batches come to the group.
        transactions = executor.transactions
        if transactions is not None:
            transactions.on_lost = self._lost_notice
        self._inbox: Inbox | None = (
            None
            if transactions is None
            else Inbox(
                transport,
                self.bus.topics.inbox(self.instance_id),
                self._handle_inbox,
                heartbeat=self.settings.inbox_heartbeat,
            )
        )
        # The inboxes of adapters that are gone are deleted by the others
        # (querybus.adapter.inbox_sweep): by every adapter that has one itself.
        self.inbox_sweeper: InboxSweeper | None = (
            None
            if self._inbox is None or self.settings.inbox_sweep_interval <= 0
            else InboxSweeper(
                transport,
                self.bus.topics.inbox_prefix,
                retire_after=self.settings.inbox_retire_after,
                own=self._inbox.topic,
            )
        )
        self._sweep_task: asyncio.Task[None] | None = None
        # Everything between a decoded request and its reply (no Kafka in it;
        # direct mode runs the same handler in the caller's process).
        self.handler = RequestHandler(
            executor,
            instance_id=self.instance_id,
            policy=self.policy,
            metrics=self.metrics,
            verifier=verifier,
            roles=self.roles,
            max_reply_bytes=self.bus.max_message_bytes,
            max_deadline=self.settings.max_deadline,
            inbox="" if self._inbox is None else self._inbox.topic,
            log_parameters=self.settings.log_parameters,
            audit_parameters=self.settings.audit_parameters,
            audit=self._audit,
        )

    # -- lifecycle ---------------------------------------------------------

    @property
    def _replies(self) -> Replies:
        assert self._replies_ is not None, "the adapter is not started"
        return self._replies_

    @property
    def http_port(self) -> int | None:
        return None if self._http is None else self._http.port

    @property
    def inbox_topic(self) -> str:
        """This adapter's inbox topic; empty when its executor has no transactions."""
        return "" if self._inbox is None else self._inbox.topic

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
                    TopicSpec(t.audit, partitions=1),
                ]
            )
            transactions = self.executor.transactions
            if transactions is not None:
                transactions.configure(
                    idle_timeout=self.settings.tx_idle_timeout,
                    max_lifetime=self.settings.tx_max_lifetime,
                    max_open=self.settings.max_open_transactions,
                )
            await self.executor.start()
            self._producer = self.transport.producer()
            await self._producer.start()
            self._replies_ = Replies(
                self._producer,
                self.transport,
                t,
                self.metrics,
                instance_id=self.instance_id,
                log_parameters=self.settings.log_parameters,
                stopping=self._stopping,
                spawn=self._spawn,
            )
            self._consumer = self.transport.group_consumer(
                [t.request],
                self.settings.group_id,
                on_revoke=self._on_revoke,
                # A new group starts at "now minus the longest deadline": every
                # request older than that has expired, every newer one may not have.
                start_lookback=self.settings.max_deadline,
            )
            await self._consumer.start()
            if self._inbox is not None:
                await self._inbox.start(self._producer)
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
        if self.inbox_sweeper is not None:
            self._sweep_task = asyncio.create_task(
                self.inbox_sweeper.run(self.settings.inbox_sweep_interval),
                name=f"{self.instance_id}-inbox-sweep",
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
        await stop_task(self._sweep_task)
        # The consuming loop ends by itself once stopping is set.
        await stop_task(self._loop_task, cancel=False)
        if self._inbox is not None:
            await self._inbox.stop_reading()
        tasks = [task for group in self._tasks.values() for task in group]
        if self._inbox is not None:
            tasks += self._inbox.in_flight()
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
        await self._end_transactions()
        await stop_task(self._commit_task)
        await self._commit()
        await self._close_resources()
        log.info("adapter %s stopped", self.instance_id)

    async def _end_transactions(self) -> None:
        """Roll back every open transaction and tell each caller (a notice to
        its reply address). The inbox topic is left in place (see below)."""
        transactions = self.executor.transactions
        if transactions is None or self._inbox is None:
            return
        try:
            closed = await transactions.close_all("the adapter holding it stopped")
        except Exception:  # stopping must go on: the pool's close ends them anyway
            log.exception("rolling back the open transactions failed")
            closed = []
        for tx, context in closed:
            await self._send_lost_notice(tx, context, "the adapter holding it stopped")
        if closed:
            log.info("rolled back %d open transactions and told their callers", len(closed))
        # The inbox topic stays: a caller that has not read its notice yet may
        # still send to it, and a send to a deleted topic hangs until its
        # timeout (the Kafka client loops on metadata) where a send to a
        # silent inbox is settled by the caller's ping within seconds. The
        # other adapters' sweep deletes it once its last heartbeat is older
        # than QUERYBUS_INBOX_RETIRE_AFTER (querybus.adapter.inbox_sweep).

    def _lost_notice(self, tx: str, context: Any, reason: str) -> None:
        """The transactions' ``on_lost``: tell the caller, not awaited."""
        self._spawn(self._send_lost_notice(tx, context, reason))

    async def _send_lost_notice(self, tx: str, context: Any, reason: str) -> None:
        if self._replies_ is None or not isinstance(context, tuple):
            return
        address, client = context
        if not isinstance(address, ReplyAddress):
            return
        try:
            await self._replies.lost_notice(
                address,
                tx,
                TransactionLostError(f"transaction {tx} was rolled back: {reason}"),
                client=client,
            )
        except TransportError as exc:
            log.warning("the notice that transaction %s was lost was not sent: %s", tx, exc)

    async def _close_resources(self) -> None:
        for task in list(self._background):
            # Its own failure or cancellation is no reason to stop closing
            # (our own cancellation is: stop_task passes it on).
            with contextlib.suppress(Exception):
                await wait_for(stop_task(task, cancel=False), 2.0)
        if self._http is not None:
            await self._http.stop()
        if self._inbox is not None:
            # Its heartbeats use the producer closed below (also after a failed start).
            await self._inbox.stop_reading()
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
                    await wait_for(self._stopping.wait(), 1.0)
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
                await self._replies.dead_letter(record, "internal error while handling the record")
                dealt_with = True
            except TransportError as exc:
                log.error("record left uncommitted, to be redelivered: %s", exc)
        finally:
            if dealt_with:
                self._tracker.done((record.topic, record.partition), record.offset)
            self._slots.release()

    async def _handle_inbox(self, record: Record) -> None:
        """Handle one record of the inbox: the same path as a request's, but
        nothing to commit (no group) and no slot (transactions are bounded by
        their own limit)."""
        try:
            await self._process(record, time.time(), time.perf_counter())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "unexpected failure handling inbox record %s@%d", record.topic, record.offset
            )
            with contextlib.suppress(TransportError):
                await self._replies.dead_letter(record, "internal error while handling the record")

    async def _process(self, record: Record, received: float, started: float) -> None:
        if record.value is None:
            await self._replies.dead_letter(record, "empty record (tombstone)")
            return
        if len(record.value) > self.settings.max_request_bytes:
            # Measured after the bus decompressed it: a small compressed record
            # can still be a huge request. Refused before decoding.
            await self._replies.refuse_undecoded(
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
            await self._replies.refuse_undecoded(record, exc, "undecodable")
            return
        unusable = await self._replies.check_address(request.reply_to)
        if unusable is not None:
            # Nobody could ever get the answer: do not run it (a write would
            # happen unseen), keep it with the reason instead.
            self.metrics.dead_letters.labels("reply_address").inc()
            await self._replies.dead_letter(record, f"unusable reply address: {unusable}")
            return
        # The one deadline of this request; no request waits and runs longer
        # than the adapter allows, whatever it asks.
        deadline = Deadline.from_wall(request.deadline, cap=self.settings.max_deadline)

        timings = Timings(queue=max(0.0, received - request.sent_at) if request.sent_at else 0.0)
        self.metrics.queue_wait.observe(timings.queue)
        handled = await self.handler.handle(
            request,
            record.header(Headers.AUTHORIZATION),
            deadline=deadline,
            timings=timings,
            started=started,
        )
        await self._replies.send(
            request.reply_to,
            request.id,
            handled.data,
            deadline,
            copy_to_errors=handled.copy_to_errors,
            client=request.client,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _audit(self, record: AuditRecord) -> None:
        """Append one request's audit record (not awaited: the reply does not
        wait for it; written while stopping too, until the producer closes)."""
        producer = self._producer
        if producer is None:
            return
        topic, value = self.bus.topics.audit, encode_audit(record)
        key = None if record.subject is None else record.subject.encode()

        async def send() -> None:
            try:
                await producer.send(topic, value, key=key)
            except TransportError as exc:
                log.warning("audit record of request %s not written: %s", record.id, exc)

        self._spawn(send())

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
            await wait_for(self.transport.partition_count(self.bus.topics.request), timeout)
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
