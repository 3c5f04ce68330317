"""QueryClient: run SQL through the bus and await the typed reply.

One producer sends every request; one :class:`PartitionReader` reads this
client's own reply partition (assigned manually: no group, no rebalance) and
resolves the waiting future by correlation id. Thousands of requests can be
in flight at once; each reply reaches exactly its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from querybus.client.credentials import TokenProvider, TokenSource
from querybus.client.result import Result, Row, row_type
from querybus.client.transaction import (
    RETRY_IN_TRANSACTION,
    Transaction,
    retry_delay,
)
from querybus.config import BusSettings
from querybus.errors import (
    InterfaceError,
    PayloadTooLargeError,
    ProtocolError,
    QueryBusError,
    RequestTimeoutError,
    TokenExpiredError,
    TransportError,
)
from querybus.observability.client_metrics import ClientMetrics
from querybus.protocol import (
    BatchItem,
    Headers,
    OperationType,
    QueryFailure,
    QueryRequest,
    QueryResult,
    ReplyAddress,
    RoutePreference,
    TxOp,
    TxOptions,
    decode_reply,
    decode_rows,
    encode,
    encode_row,
)
from querybus.protocol.errors import error_from_info
from querybus.transport import PartitionReader, Producer, Record, TopicSpec, Transport, connect

__all__ = ["ClientState", "QueryClient"]

log = logging.getLogger("querybus.client")

T = TypeVar("T")

#: Waits for a reply alongside the reply itself and raises when it should
#: not be waited for any longer (a transaction's adapter that died).
Watch = Callable[[], Awaitable[None]]


class ClientState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class _Discovery(Protocol):
    """What the client needs from a registry client (querybus.registry.RegistryClient)."""

    async def discover(self, name: str) -> Sequence[Any]: ...


def lsn_to_int(lsn: str) -> int:
    """PostgreSQL's ``XXX/YYYYYYYY`` WAL position as an integer, for comparison."""
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class QueryClient:
    """Runs SQL against PostgreSQL through querybus adapters.

    Usage::

        async with QueryClient("127.0.0.1:9092") as db:
            rows = await db.fetch("SELECT * FROM agents WHERE id = $1", 42)

    Args:
        bus: Kafka bootstrap servers (``"host:port"``), ``"memory://NAME"`` for
            the in-process bus, or a :class:`BusSettings`.
        transport: an already built transport (overrides ``bus`` for connecting;
            the client does not close it).
        timeout: default per-request timeout, seconds.
        client_id: this instance's id (generated when None).
        reply_partition: the response-topic partition to read (random when None).
        registry: a registry client to discover the adapters' request topic
            from; when it fails, the configured topic is used (logged once).
        service_name: the adapter service name to discover.
        read_your_writes: send the highest commit LSN seen with every read, so a
            replica that has not replayed it yet does not serve it.
        token: the caller's token (a JWT), sent with every request in the
            ``querybus-authorization`` header; never logged or shown in a repr.
        token_provider: instead of ``token``: called (sync or async) for a token
            when there is none yet, when the one held is within 30 s of its
            ``exp`` (every 60 s when it has none), and when an adapter replied
            ``token_expired`` (the request is then sent once more, same
            idempotency key). Concurrent requests share one call.
    """

    def __init__(
        self,
        bus: str | BusSettings = "127.0.0.1:9092",
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        client_id: str | None = None,
        reply_partition: int | None = None,
        registry: _Discovery | None = None,
        service_name: str = "database-adapter",
        read_your_writes: bool = True,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self._settings = bus if isinstance(bus, BusSettings) else BusSettings(bootstrap_servers=bus)
        if timeout <= 0:
            raise InterfaceError("timeout must be positive")
        self._tokens: TokenSource | None = (
            None
            if token is None and token_provider is None
            else TokenSource(token=token, provider=token_provider)
        )
        self._own_transport = transport is None
        self._transport: Transport | None = transport
        self.timeout = timeout
        self.client_id = client_id or f"qb-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._reply_partition = reply_partition
        self._registry = registry
        self._service_name = service_name
        self._read_your_writes = read_your_writes
        self._state = ClientState.UNOPENED
        self._producer: Producer | None = None
        self._reader: PartitionReader | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[QueryResult | QueryFailure]] = {}
        self._reply_to: ReplyAddress | None = None
        self._client_header = self.client_id.encode()
        self._request_topic = self._settings.topics.request
        self._last_lsn: str | None = None
        self._last_lsn_int = -1
        self.metrics = ClientMetrics()
        # Open interactive transactions by id, for the adapters' notices.
        self._transactions: weakref.WeakValueDictionary[str, Transaction] = (
            weakref.WeakValueDictionary()
        )

    #: Seconds a transaction's request waits for its reply before the adapter
    #: holding the transaction is pinged (then again every as many seconds).
    tx_probe_interval: float = 2.0
    #: Seconds a ping may take before the transaction counts as lost.
    tx_ping_timeout: float = 3.0

    # -- lifecycle ---------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def request_topic(self) -> str:
        """The topic requests go to (discovered from the registry when one is given)."""
        return self._request_topic

    @property
    def reply_address(self) -> ReplyAddress:
        if self._reply_to is None:
            raise InterfaceError("the client is not started")
        return self._reply_to

    async def start(self) -> None:
        """Connect, make sure the topics exist, and position the reply reader.

        Raises:
            InterfaceError: the client was already started or closed.
            TransportError: the bus cannot be reached.
        """
        if self._state is not ClientState.UNOPENED:
            raise InterfaceError(f"cannot start a client that is {self._state.value}")
        self._state = ClientState.OPEN
        try:
            await self._open()
        except BaseException:
            await self.stop()
            raise

    async def _open(self) -> None:
        s = self._settings
        if self._transport is None:
            self._transport = connect(
                s.bootstrap_servers,
                client_id=self.client_id,
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
            self._read_replies(), name=f"{self.client_id}-replies"
        )

    async def _discover_request_topic(self) -> None:
        if self._registry is None:
            return
        try:
            instances = await asyncio.wait_for(self._registry.discover(self._service_name), 5.0)
            endpoint = str(instances[0].endpoint)
        except (TimeoutError, QueryBusError, IndexError, OSError) as exc:
            log.warning(
                "registry lookup of %r failed (%s); using the configured topic %s",
                self._service_name,
                exc,
                self._request_topic,
            )
            return
        self._request_topic = endpoint

    async def stop(self) -> None:
        """Fail the requests still waiting, then close the producer and the reader.

        Safe to call twice, and after a failed start.
        """
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(InterfaceError("the client was closed"))
        self._pending.clear()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        for closeable in (self._reader, self._producer):
            if closeable is not None:
                with contextlib.suppress(QueryBusError):
                    await closeable.stop()
        if self._own_transport and self._transport is not None:
            await self._transport.close()

    async def __aenter__(self) -> QueryClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

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
                    self.metrics.undecodable_replies += 1
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
            self.metrics.late_replies += 1
            log.debug("dropped a late or unknown reply (correlation id %r)", cid_raw)
            return
        try:
            if record.value is None:
                raise ProtocolError("empty reply")
            reply = decode_reply(record.value)
        except ProtocolError as exc:
            self.metrics.undecodable_replies += 1
            fut.set_exception(exc)
            return
        self.metrics.replies += 1
        fut.set_result(reply)

    def _on_lost_notice(self, tx_id: str, record: Record) -> None:
        """An adapter rolled back one of our transactions behind our back."""
        tx = self._transactions.pop(tx_id, None)
        if tx is None:
            return
        reason = "the adapter holding it rolled it back"
        with contextlib.suppress(ProtocolError):
            reply = decode_reply(record.value or b"")
            if isinstance(reply, QueryFailure):
                reason = reply.error.message
        tx._lost(reason)

    # -- requests ----------------------------------------------------------

    def _new_request(
        self,
        sql: str = "",
        wire_params: list[Any] | None = None,
        *,
        timeout: float,
        op: OperationType | None = None,
        many: bool = False,
        tx: str | None = None,
        txop: TxOp | None = None,
        txopts: TxOptions | None = None,
        savepoint: str | None = None,
        batch: list[BatchItem] | None = None,
    ) -> QueryRequest:
        """A request of a transaction or a batch (no routing options)."""
        if self._state is not ClientState.OPEN or self._reply_to is None:
            raise InterfaceError(f"the client is {self._state.value}, not open")
        now = time.time()
        return QueryRequest(
            id=uuid.uuid4().hex,
            client=self.client_id,
            op=op,
            sql=sql,
            params=wire_params or [],
            many=many,
            reply_to=self._reply_to,
            deadline=now + timeout,
            sent_at=now,
            tx=tx,
            txop=txop,
            txopts=txopts,
            savepoint=savepoint,
            batch=batch,
        )

    async def _roundtrip(
        self,
        request: QueryRequest,
        *,
        timeout: float,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
    ) -> tuple[QueryResult, float]:
        """Send ``request`` (to ``topic``/``partition``, else the request
        topic) and return its successful reply and the time it took.

        Raises:
            what the reply's error is; RequestTimeoutError; what ``watch`` raises.
        """
        data = encode(request)
        if len(data) > self._settings.max_message_bytes:
            raise PayloadTooLargeError(
                f"request is {len(data)} bytes; the limit is {self._settings.max_message_bytes}"
            )
        cid = request.id
        self.metrics.requests += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                token = None if self._tokens is None else await self._tokens.current()
                reply = await self._exchange(
                    cid, data, None, token, topic=topic, partition=partition, watch=watch
                )
                if self._should_refresh(reply):
                    assert self._tokens is not None
                    token = await self._tokens.refresh(token)
                    cid = uuid.uuid4().hex
                    request = msgspec.structs.replace(request, id=cid, sent_at=time.time())
                    reply = await self._exchange(
                        cid,
                        encode(request),
                        None,
                        token,
                        topic=topic,
                        partition=partition,
                        watch=watch,
                    )
        except TimeoutError:
            self.metrics.timeouts += 1
            raise RequestTimeoutError(
                f"no reply within {timeout:g} s (correlation id {cid})"
            ) from None
        if isinstance(reply, QueryFailure):
            raise error_from_info(reply.error, correlation_id=cid)
        if reply.lsn:
            self._note_lsn(reply.lsn)
        return reply, time.perf_counter() - started

    @staticmethod
    def _coerce_operation(value: OperationType | str | None) -> OperationType | None:
        return _operation(value)

    def _result(self, reply: QueryResult, elapsed: float) -> Result:
        rt = row_type(reply.columns)
        return Result(
            rows=[rt(r) for r in decode_rows(reply.rows)],
            columns=reply.columns,
            command=reply.command,
            rowcount=reply.rowcount,
            correlation_id=reply.id,
            timings=reply.timings,
            route=reply.route,
            served_by=reply.served_by,
            elapsed=elapsed,
            lsn=reply.lsn,
        )

    async def request(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        operation_type: OperationType | str | None = None,
        many: bool = False,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        route: RoutePreference | str = RoutePreference.AUTO,
        max_staleness: float | None = None,
    ) -> Result:
        """Send one request and return its :class:`Result`. The other methods build on this.

        Raises:
            RequestTimeoutError: no reply within ``timeout``.
            QueryError: the database refused the statement (subclass by SQLSTATE).
            RequestRejectedError: the adapter refused the request (validation, deadline).
            PayloadTooLargeError: the request is larger than the bus accepts.
            InterfaceError: the client is not open, or an argument is wrong.
            TransportError: the request could not be sent.
        """
        if self._state is not ClientState.OPEN or self._producer is None or self._reply_to is None:
            raise InterfaceError(f"the client is {self._state.value}, not open")
        timeout = self.timeout if timeout is None else timeout
        op = _operation(operation_type)
        cid = uuid.uuid4().hex
        now = time.time()
        try:
            wire_params = [encode_row(p) for p in params] if many else encode_row(params)
        except TypeError as exc:
            raise InterfaceError(f"parameters must be a sequence: {exc}") from exc
        request = QueryRequest(
            id=cid,
            client=self.client_id,
            op=op,
            sql=sql,
            params=wire_params,
            many=many,
            reply_to=self._reply_to,
            deadline=now + timeout,
            sent_at=now,
            idem=idempotency_key,
            route=RoutePreference(route),
            max_staleness=max_staleness,
            min_lsn=self._last_lsn if self._read_your_writes else None,
        )
        data = encode(request)
        if len(data) > self._settings.max_message_bytes:
            raise PayloadTooLargeError(
                f"request is {len(data)} bytes; the limit is {self._settings.max_message_bytes}"
            )
        key = idempotency_key.encode() if idempotency_key else None
        self.metrics.requests += 1
        started = time.perf_counter()
        try:
            # One timeout for everything the call waits for: the token, the
            # reply, and the one resend after a token_expired reply.
            async with asyncio.timeout(timeout):
                token = None if self._tokens is None else await self._tokens.current()
                reply = await self._exchange(cid, data, key, token)
                if self._should_refresh(reply):
                    assert self._tokens is not None
                    token = await self._tokens.refresh(token)
                    stale_cid, cid = cid, uuid.uuid4().hex
                    log.info("token expired (correlation id %s); resending as %s", stale_cid, cid)
                    # Same deadline and idempotency key; nothing ran the first time.
                    data = encode(msgspec.structs.replace(request, id=cid, sent_at=time.time()))
                    reply = await self._exchange(cid, data, key, token)
        except TimeoutError:
            self.metrics.timeouts += 1
            raise RequestTimeoutError(
                f"no reply within {timeout:g} s (correlation id {cid})"
            ) from None
        elapsed = time.perf_counter() - started
        if isinstance(reply, QueryFailure):
            e = reply.error
            if e.lsn:  # a statement that ran and wrote, though its rows did not fit
                self._note_lsn(e.lsn)
            raise error_from_info(e, correlation_id=cid)
        if reply.lsn:
            self._note_lsn(reply.lsn)
        rt = row_type(reply.columns)
        return Result(
            rows=[rt(r) for r in decode_rows(reply.rows)],
            columns=reply.columns,
            command=reply.command,
            rowcount=reply.rowcount,
            correlation_id=cid,
            timings=reply.timings,
            route=reply.route,
            served_by=reply.served_by,
            elapsed=elapsed,
            lsn=reply.lsn,
        )

    async def _exchange(
        self,
        cid: str,
        data: bytes,
        key: bytes | None,
        token: str | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
    ) -> QueryResult | QueryFailure:
        """Send one encoded request and wait for its reply (and, with
        ``watch``, stop waiting when it raises)."""
        assert self._producer is not None
        assert self._reply_to is not None
        headers = [
            (Headers.CORRELATION_ID, cid.encode()),
            (Headers.REPLY_TOPIC, self._reply_to.topic.encode()),
            (Headers.REPLY_PARTITION, str(self._reply_to.partition).encode()),
            (Headers.CLIENT_ID, self._client_header),
        ]
        if token is not None:
            headers.append((Headers.AUTHORIZATION, token.encode()))
        fut: asyncio.Future[QueryResult | QueryFailure] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            await self._producer.send(
                self._request_topic if topic is None else topic,
                data,
                key=key,
                partition=partition,
                headers=headers,
            )
            if watch is None:
                return await fut
            return await _watched(fut, watch)
        finally:
            self._pending.pop(cid, None)

    def _should_refresh(self, reply: QueryResult | QueryFailure) -> bool:
        # Only an expired token is worth a new one: any other refusal would
        # be refused again.
        return (
            isinstance(reply, QueryFailure)
            and reply.error.code == TokenExpiredError.code
            and self._tokens is not None
            and self._tokens.can_refresh
        )

    def _note_lsn(self, lsn: str) -> None:
        try:
            value = lsn_to_int(lsn)
        except ValueError:
            return
        if value > self._last_lsn_int:
            self._last_lsn_int, self._last_lsn = value, lsn

    # -- asyncpg-style API -------------------------------------------------

    async def execute(self, sql: str, *args: Any, timeout: float | None = None, **opts: Any) -> str:
        """Run a statement; return its command tag (``"UPDATE 3"``)."""
        return (await self.request(sql, args, timeout=timeout, **opts)).command

    async def fetch(
        self, sql: str, *args: Any, timeout: float | None = None, **opts: Any
    ) -> list[Row]:
        """Run a query; return all its rows."""
        return (await self.request(sql, args, timeout=timeout, **opts)).rows

    async def fetchrow(
        self, sql: str, *args: Any, timeout: float | None = None, **opts: Any
    ) -> Row | None:
        """Run a query; return its first row, or None."""
        rows = (await self.request(sql, args, timeout=timeout, **opts)).rows
        return rows[0] if rows else None

    async def fetchval(
        self, sql: str, *args: Any, column: int = 0, timeout: float | None = None, **opts: Any
    ) -> Any:
        """Run a query; return one value of its first row, or None."""
        row = await self.fetchrow(sql, *args, timeout=timeout, **opts)
        return None if row is None else row[column]

    async def executemany(
        self, sql: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None, **opts: Any
    ) -> None:
        """Run a statement once per parameter list, atomically (one transaction)."""
        await self.request(sql, list(args), many=True, timeout=timeout, **opts)

    # -- transactions ---------------------------------------------------------

    def transaction(
        self,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> Transaction:
        """An interactive transaction: ``async with client.transaction() as tx:``
        begins it, commits it on a clean exit and rolls it back on an
        exception (see :class:`Transaction`; ``docs/transactions.md``).

        Args:
            isolation: ``read_committed``, ``repeatable_read`` or
                ``serializable`` (None: the server's default).
            readonly: ``READ ONLY``.
            deferrable: ``DEFERRABLE`` (with serializable and readonly).
            timeout: each request's timeout in it (default: the client's).
        """
        return Transaction(
            self, isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
        )

    async def begin(
        self,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> Transaction:
        """Begin a transaction without ``async with``: ``tx = await
        client.begin()``, then ``await tx.commit()`` or ``await tx.rollback()``.

        Raises:
            TransactionBusyError: the adapter holds as many as it allows (retriable).
            FeatureNotSupportedError: the adapter has no transactions (embedded mode).
        """
        tx = self.transaction(
            isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
        )
        await tx.start()
        return tx

    async def run_in_transaction(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        *,
        retries: int = 3,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> T:
        """Run ``fn(tx)`` in a transaction and commit; on a serialization
        failure (40001), a deadlock (40P01), a lost transaction or a busy
        adapter, run it all again in a new transaction (up to ``retries``
        more times, after a short jittered pause). ``fn`` must be safe to run
        again: only what it does through ``tx`` is undone.

        Raises:
            the last error when every attempt failed; anything else ``fn``
            raises at once (the transaction rolled back).
        """
        attempt = 0
        while True:
            try:
                async with self.transaction(
                    isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
                ) as tx:
                    return await fn(tx)
            except RETRY_IN_TRANSACTION as exc:
                if attempt >= retries:
                    raise
                attempt += 1
                log.debug("transaction attempt %d failed (%s); running it again", attempt, exc)
                await asyncio.sleep(retry_delay(attempt))

    async def transaction_status(self, tx_id: str, *, timeout: float | None = None) -> str:
        """The recorded outcome of transaction ``tx_id``: ``committed``,
        ``rolled_back`` or ``open`` (still open, or its session not gone yet
        within ``timeout``). Asked through the request topic: any adapter
        answers, also when the one holding it died.
        """
        timeout = self.timeout if timeout is None else timeout
        request = self._new_request(timeout=timeout, tx=tx_id, txop=TxOp.STATUS)
        reply, _ = await self._roundtrip(request, timeout=timeout)
        return reply.state or "rolled_back"

    async def batch(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Result]:
        """Run ``statements`` (``(sql, params)`` pairs) in order in one
        transaction, all or nothing, in one request; one :class:`Result` each.

        Raises:
            QueryError: a statement failed; nothing of the batch was committed.
            RequestRejectedError: a statement was refused; nothing ran.
        """
        timeout = self.timeout if timeout is None else timeout
        try:
            items = [BatchItem(sql, encode_row(params)) for sql, params in statements]
        except (TypeError, ValueError) as exc:
            raise InterfaceError(f"a batch is a list of (sql, params) pairs: {exc}") from exc
        request = self._new_request(timeout=timeout, batch=items)
        reply, elapsed = await self._roundtrip(request, timeout=timeout)
        results = []
        for outcome in reply.batch or []:
            rt = row_type(outcome.columns)
            results.append(
                Result(
                    rows=[rt(r) for r in decode_rows(outcome.rows)],
                    columns=outcome.columns,
                    command=outcome.command,
                    rowcount=outcome.rowcount,
                    correlation_id=reply.id,
                    timings=reply.timings,
                    route=reply.route,
                    served_by=reply.served_by,
                    elapsed=elapsed,
                    lsn=reply.lsn,
                )
            )
        return results

    # -- the original API ----------------------------------------------------

    async def query(
        self,
        query: str,
        params: Sequence[Any] | None = None,
        *,
        operation_type: OperationType | str = OperationType.SELECT,
        timeout: float | None = None,
        **opts: Any,
    ) -> Result:
        """The original ``DatabaseEventClient.query`` call: the declared
        ``operation_type`` is checked by the adapter against the statement."""
        return await self.request(
            query, params or (), operation_type=operation_type, timeout=timeout, **opts
        )


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


def _operation(value: OperationType | str | None) -> OperationType | None:
    if value is None or isinstance(value, OperationType):
        return value
    try:
        return OperationType(value.upper())
    except ValueError:
        allowed = ", ".join(o.value for o in OperationType)
        raise InterfaceError(f"operation_type must be one of {allowed}, got {value!r}") from None
