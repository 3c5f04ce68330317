"""QueryClient: run SQL through the bus and await the typed reply.

The client builds every request (correlation id, deadline, parameters in
their wire form, the size limit, the caller's token) and hands it to a
backend (:mod:`querybus.client.backend`): the bus (:mod:`querybus.client.bus`:
one producer, one reader of this client's reply partition, futures by
correlation id) or, in direct mode and as the bus's fallback, the adapter's
own request handling in this process (:mod:`querybus.direct`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from querybus.cancellation import Deadlines, stop_task
from querybus.client.backend import Backend, PlainRunner, Reply, Watch, load_direct_backend
from querybus.client.bus import BusBackend, Discovery
from querybus.client.credentials import TokenProvider, TokenSource
from querybus.client.result import Result, row_type
from querybus.client.statements import Statements
from querybus.client.transaction import (
    RETRY_IN_TRANSACTION,
    Transaction,
    retry_delay,
)
from querybus.config import BusSettings, ClientSettings
from querybus.errors import (
    BrokerUnavailableError,
    InterfaceError,
    PayloadTooLargeError,
    ProtocolError,
    QueryBusError,
    RequestTimeoutError,
    TokenExpiredError,
)
from querybus.observability.client_metrics import ClientMetrics
from querybus.protocol import (
    BatchItem,
    OperationType,
    QueryFailure,
    QueryRequest,
    QueryResult,
    ReplyAddress,
    RoutePreference,
    TxInfo,
    TxOp,
    TxOptions,
    decode_rows,
    encode,
    encode_row,
)
from querybus.protocol.errors import error_from_info
from querybus.protocol.values import unchanged_size
from querybus.transport import Producer, Transport

__all__ = ["ClientState", "QueryClient"]

log = logging.getLogger("querybus.client")

T = TypeVar("T")

#: The reply address of requests built while the bus is not connected (they
#: run directly; nothing is ever sent to it).
_NOWHERE = ReplyAddress("direct", 0)
#: More than a request's fields other than its SQL, parameters and client id
#: take once encoded (ids, times, reply address, routing options).
_ENVELOPE_BYTES = 2048


class ClientState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def lsn_to_int(lsn: str) -> int:
    """PostgreSQL's ``XXX/YYYYYYYY`` WAL position as an integer, for comparison."""
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class QueryClient(Statements):
    """Runs SQL against PostgreSQL through querybus adapters (or directly).

    Usage::

        async with QueryClient("127.0.0.1:9092") as db:
            rows = await db.fetch("SELECT * FROM agents WHERE id = $1", 42)

    Args:
        bus: Kafka bootstrap servers (``"host:port"``), ``"memory://NAME"`` for
            the in-process bus, a :class:`BusSettings`, or a
            :class:`ClientSettings` (the bus and the migration switch, e.g.
            ``ClientSettings.from_env()``, which reads ``QUERYBUS_MODE``).
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
        mode: ``"bus"`` or ``"direct"``: the same calls run in this process on
            an asyncpg pool of ``dsn``, through the adapter's own request
            handling (needs ``querybus[adapter]``; tokens are not used). None:
            the settings' (``bus`` by default).
        fallback: ``"direct"``: in bus mode, run requests directly while the
            bus is unreachable (``BrokerUnavailableError`` at start or when
            sending), logged once per outage and counted in
            ``metrics.fallbacks``; the bus is probed every
            ``fallback_probe_interval`` seconds and used again once it answers.
            Interactive transactions stay where they began. None: the settings'.
        dsn: the PostgreSQL server of direct mode and of the fallback. None:
            the settings'.
        pool_size: connections of direct mode's pool. None: the settings'
            (``QUERYBUS_DIRECT_POOL_SIZE``, 10).

    Raises:
        ConfigurationError: an unknown mode or fallback, direct mode (or the
            fallback) without a DSN, or without the adapter's libraries.
    """

    #: Seconds a transaction's request waits for its reply before the adapter
    #: holding the transaction is pinged (then again every as many seconds).
    tx_probe_interval: float = 2.0
    #: Seconds a ping may take before the transaction counts as lost.
    tx_ping_timeout: float = 3.0
    #: Seconds between probes of the bus while requests fall back to direct.
    fallback_probe_interval: float = 5.0
    #: Seconds one probe of the bus may take.
    fallback_probe_timeout: float = 5.0

    def __init__(
        self,
        bus: str | BusSettings | ClientSettings = "127.0.0.1:9092",
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        client_id: str | None = None,
        reply_partition: int | None = None,
        registry: Discovery | None = None,
        service_name: str = "database-adapter",
        read_your_writes: bool = True,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        mode: str | None = None,
        fallback: str | None = None,
        dsn: str | None = None,
        pool_size: int | None = None,
    ) -> None:
        if isinstance(bus, ClientSettings):
            config = bus
        else:
            config = ClientSettings(
                bus=bus if isinstance(bus, BusSettings) else BusSettings(bootstrap_servers=bus)
            )
        if mode is not None or fallback is not None or dsn is not None or pool_size is not None:
            config = dataclasses.replace(
                config,
                mode=config.mode if mode is None else mode,
                fallback=config.fallback if fallback is None else fallback,
                dsn=config.dsn if dsn is None else dsn,
                pool_size=config.pool_size if pool_size is None else pool_size,
            )
        self.config = config
        self._settings = config.bus
        if timeout <= 0:
            raise InterfaceError("timeout must be positive")
        self._tokens: TokenSource | None = (
            None
            if token is None and token_provider is None
            else TokenSource(token=token, provider=token_provider)
        )
        self.timeout = timeout
        self.client_id = client_id or f"qb-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Correlation ids: a random prefix per client (unique across clients
        # sharing a reply partition) and a counter; a uuid4 per request cost
        # a urandom call and an object for nothing more.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)
        self._read_your_writes = read_your_writes
        self._state = ClientState.UNOPENED
        self._last_lsn: str | None = None
        self._last_lsn_int = -1
        self.metrics = ClientMetrics()
        # Open interactive transactions by id, for the adapters' notices.
        self._transactions: weakref.WeakValueDictionary[str, Transaction] = (
            weakref.WeakValueDictionary()
        )
        self._bus: BusBackend | None = None
        if config.mode == "bus":
            self._bus = BusBackend(
                config.bus,
                transport=transport,
                client_id=self.client_id,
                reply_partition=reply_partition,
                registry=registry,
                service_name=service_name,
                metrics=self.metrics,
                on_lost=self._on_lost,
            )
        # Built now, so that a caller without the adapter's libraries learns it
        # at once rather than in the middle of an outage.
        self._direct: Backend | None = None
        if config.needs_dsn:
            assert config.dsn is not None
            self._direct = load_direct_backend(
                config.dsn,
                bus=config.bus,
                client_id=self.client_id,
                on_lost=self._on_lost,
                pool_size=config.pool_size,
            )
        self._direct_started = False
        self._direct_lock = asyncio.Lock()
        # Direct mode's lean path for plain requests (set once started), and
        # its timeouts: one timer for all of them.
        self._plain: PlainRunner | None = None
        self._deadlines = Deadlines()
        # The fallback: requests run directly while this is set.
        self._falling_back = False
        self._probe_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def mode(self) -> str:
        """``"bus"`` or ``"direct"``."""
        return self.config.mode

    @property
    def falling_back(self) -> bool:
        """Whether requests run directly now because the bus is unreachable."""
        return self._falling_back

    @property
    def request_topic(self) -> str:
        """The topic requests go to (discovered from the registry when one is given)."""
        return self._settings.topics.request if self._bus is None else self._bus.request_topic

    @property
    def reply_address(self) -> ReplyAddress:
        if self._bus is None or not self._bus.started:
            raise InterfaceError("the client is not started (or not connected to the bus)")
        return self._bus.reply_to

    @property
    def _producer(self) -> Producer | None:
        """The bus's producer (for tests that write raw records)."""
        return None if self._bus is None else self._bus._producer

    async def start(self) -> None:
        """Connect (to the bus, or in direct mode to PostgreSQL).

        Raises:
            InterfaceError: the client was already started or closed.
            TransportError: the bus cannot be reached (and there is no fallback).
            OperationalError: (direct mode) PostgreSQL cannot be reached.
        """
        if self._state is not ClientState.UNOPENED:
            raise InterfaceError(f"cannot start a client that is {self._state.value}")
        self._state = ClientState.OPEN
        try:
            if self._bus is None:
                direct = await self._start_direct()
                if isinstance(direct, PlainRunner):
                    self._plain = direct
            else:
                try:
                    await self._bus.start()
                except BrokerUnavailableError as exc:
                    if self._direct is None:
                        raise
                    await self._fall_back(exc)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Fail the requests still waiting, then disconnect.

        Safe to call twice, and after a failed start.
        """
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        self._plain = None
        if self._probe_task is not None:
            await stop_task(self._probe_task)
        if self._bus is not None:
            await self._bus.stop()
        if self._direct is not None and self._direct_started:
            self._direct_started = False
            with contextlib.suppress(QueryBusError):
                await self._direct.stop()

    async def __aenter__(self) -> QueryClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- direct mode and the fallback ------------------------------------------

    async def _start_direct(self) -> Backend:
        direct = self._direct
        assert direct is not None
        async with self._direct_lock:
            if not self._direct_started:
                await direct.start()
                self._direct_started = True
        return direct

    async def _fall_back(self, exc: BaseException) -> Backend:
        """The bus is unreachable: run requests directly until it answers again."""
        direct = await self._start_direct()
        if not self._falling_back and self._state is ClientState.OPEN:
            self._falling_back = True
            self.metrics.fallback_outages += 1
            log.warning(
                "the bus is unreachable (%s): requests run directly on PostgreSQL until it "
                "answers again (probed every %g s)",
                exc,
                self.fallback_probe_interval,
            )
            self._probe_task = asyncio.create_task(
                self._probe_bus(), name=f"{self.client_id}-bus-probe"
            )
        return direct

    async def _probe_bus(self) -> None:
        """While falling back: every ``fallback_probe_interval`` seconds, ask
        the bus (start it, when it never started); once it answers, requests
        go through it again."""
        bus = self._bus
        assert bus is not None
        while self._falling_back:
            await asyncio.sleep(self.fallback_probe_interval)
            try:
                await bus.probe(self.fallback_probe_timeout)
            except (QueryBusError, TimeoutError, OSError) as exc:
                log.debug("the bus is still unreachable: %s", exc)
                continue
            self._falling_back = False
            log.warning(
                "the bus answers again: requests go through it again (%d ran directly)",
                self.metrics.fallbacks,
            )

    def _backend(self) -> Backend:
        """Where a new request (or transaction) goes now."""
        if self._bus is None or self._falling_back:
            assert self._direct is not None
            if self._bus is not None:
                self.metrics.fallbacks += 1
            return self._direct
        return self._bus

    def _on_lost(self, tx_id: str, reason: str) -> None:
        """A transaction was rolled back behind our back (the backend's notice)."""
        tx = self._transactions.pop(tx_id, None)
        if tx is not None:
            tx._lost(reason)

    # -- requests ----------------------------------------------------------

    def _next_id(self) -> str:
        """A new correlation id, unique to this client."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def _reply_to(self) -> ReplyAddress:
        bus = self._bus
        return bus.reply_to if bus is not None and bus.started else _NOWHERE

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
        if self._state is not ClientState.OPEN:
            raise InterfaceError(f"the client is {self._state.value}, not open")
        now = time.time()
        return QueryRequest(
            id=self._next_id(),
            client=self.client_id,
            op=op,
            sql=sql,
            params=wire_params or [],
            many=many,
            reply_to=self._reply_to(),
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
        backend: Backend | None = None,
    ) -> tuple[QueryResult, float]:
        """Send ``request`` (to ``topic``/``partition``, else the request
        topic) and return its successful reply and the time it took.

        Raises:
            what the reply's error is; RequestTimeoutError; what ``watch`` raises.
        """
        reply, elapsed, _ = await self._call(
            request, timeout=timeout, topic=topic, partition=partition, watch=watch, backend=backend
        )
        return reply, elapsed

    async def _call(
        self,
        request: QueryRequest,
        *,
        timeout: float,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
        backend: Backend | None = None,
        on_tx: Callable[[TxInfo, Backend], None] | None = None,
    ) -> tuple[QueryResult, float, Backend]:
        """Send ``request`` on ``backend`` (None: wherever new requests go now,
        falling back to direct when the bus turns out unreachable) and return
        its successful reply, the time it took and the backend that answered.
        ``on_tx`` is told of a transaction the reply says was begun, also when
        the reply is a failure.

        Raises:
            what the reply's error is; RequestTimeoutError; what ``watch`` raises.
        """
        try:
            data = encode(request)
        except UnicodeEncodeError:
            # Python text may hold lone surrogates; UTF-8, hence JSON, cannot.
            raise ProtocolError(
                "the request's SQL or a parameter is text with a lone surrogate "
                "(not valid Unicode): it cannot travel on the wire"
            ) from None
        if len(data) > self._settings.max_message_bytes:
            raise PayloadTooLargeError(
                f"request is {len(data)} bytes; the limit is {self._settings.max_message_bytes}"
            )
        pinned = backend is not None
        chosen: Backend = self._backend() if backend is None else backend
        cid = request.id
        self.metrics.requests += 1
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if not chosen.keeps_deadlines:
                # Direct: no token, and nothing to fall back from; one
                # timeout for the call, without the layers the bus needs.
                async with asyncio.timeout_at(deadline):
                    reply = await chosen.exchange(
                        request, data, None, key=key, topic=topic, partition=partition, watch=watch
                    )
            elif topic is None and self._tokens is None:
                # The bus's hot path (a plain request, no token): the
                # backend's one deadline structure ends the wait, no timer of
                # our own. (Inbox sends keep the timeout below: a send to an
                # inbox deleted meanwhile must not outlive it.)
                reply, chosen = await self._exchange(
                    chosen, pinned, request, data, None, key=key, deadline=deadline
                )
            else:
                reply, chosen = await self._call_bounded(
                    chosen,
                    pinned,
                    request,
                    data,
                    key=key,
                    topic=topic,
                    partition=partition,
                    watch=watch,
                    deadline=deadline,
                )
        except TimeoutError:
            self.metrics.timeouts += 1
            raise RequestTimeoutError(
                f"no reply within {timeout:g} s (correlation id {cid})"
            ) from None
        elapsed = time.perf_counter() - started
        if on_tx is not None and reply.tx is not None:
            on_tx(reply.tx, chosen)
        return self._succeeded(reply), elapsed, chosen

    def _succeeded(self, reply: Reply) -> QueryResult:
        """``reply`` when it is a result (its LSN noted); its error raised otherwise."""
        if isinstance(reply, QueryFailure):
            e = reply.error
            if e.lsn:  # a statement that ran and wrote, though its rows did not fit
                self._note_lsn(e.lsn)
            raise error_from_info(e, correlation_id=reply.id)
        if reply.lsn:
            self._note_lsn(reply.lsn)
        return reply

    async def _run_plain(self, plain: PlainRunner, request: QueryRequest, timeout: float) -> Result:
        """Direct mode's lean path (:class:`PlainRunner`): the request is not
        encoded, and none of the bus's layers is crossed; the same checks,
        statement, reply and errors as :meth:`_call` on the direct backend."""
        self.metrics.requests += 1
        started = time.perf_counter()
        when = asyncio.get_running_loop().time() + timeout
        try:
            reply = await self._deadlines.run(plain.run_plain(request), when)
        except TimeoutError:
            self.metrics.timeouts += 1
            raise RequestTimeoutError(
                f"no reply within {timeout:g} s (correlation id {request.id})"
            ) from None
        return self._result(self._succeeded(reply), time.perf_counter() - started, self._direct)

    def _skips_encoding(self, request: QueryRequest) -> bool:
        """Whether ``request`` may take the lean path: it would arrive
        exactly as it is and surely fits the size limit (otherwise it is
        encoded, measured and decoded as on the bus)."""
        size = unchanged_size(request.params)
        if size is None or not request.sql.isascii():
            return False
        # Every character escaped at worst, plus the envelope's fields.
        bound = size + 6 * (len(request.sql) + len(request.client)) + _ENVELOPE_BYTES
        return bound <= self._settings.max_message_bytes

    async def _exchange(
        self,
        chosen: Backend,
        pinned: bool,
        request: QueryRequest,
        data: bytes,
        token: str | None,
        *,
        key: bytes | None,
        deadline: float,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
    ) -> tuple[Reply, Backend]:
        """One exchange on ``chosen``; when the bus turns out unreachable
        (nothing was sent), on direct instead, unless pinned."""
        try:
            reply = await chosen.exchange(
                request,
                data,
                token,
                key=key,
                topic=topic,
                partition=partition,
                watch=watch,
                deadline=deadline,
            )
        except BrokerUnavailableError as exc:
            # Nothing was sent: the request may run elsewhere.
            if pinned or chosen is not self._bus or self._direct is None:
                raise
            chosen = await self._fall_back(exc)
            self.metrics.fallbacks += 1
            async with asyncio.timeout_at(deadline):  # direct keeps no deadline of its own
                reply = await chosen.exchange(request, data, None, key=key)
        return reply, chosen

    async def _call_bounded(
        self,
        chosen: Backend,
        pinned: bool,
        request: QueryRequest,
        data: bytes,
        *,
        key: bytes | None,
        topic: str | None,
        partition: int | None,
        watch: Watch | None,
        deadline: float,
    ) -> tuple[Reply, Backend]:
        """The exchange under one timeout for everything it waits for: the
        token, the reply, and the one resend after a token_expired reply."""
        async with asyncio.timeout_at(deadline):
            token = None
            if self._tokens is not None and chosen is self._bus:
                token = await self._tokens.current()
            reply, chosen = await self._exchange(
                chosen,
                pinned,
                request,
                data,
                token,
                key=key,
                topic=topic,
                partition=partition,
                watch=watch,
                deadline=deadline,
            )
            if self._should_refresh(reply):
                assert self._tokens is not None
                token = await self._tokens.refresh(token)
                stale_cid, cid = request.id, self._next_id()
                log.info("token expired (correlation id %s); resending as %s", stale_cid, cid)
                # Same deadline and idempotency key; nothing ran the first time.
                request = msgspec.structs.replace(request, id=cid, sent_at=time.time())
                reply = await chosen.exchange(
                    request,
                    encode(request),
                    token,
                    key=key,
                    topic=topic,
                    partition=partition,
                    watch=watch,
                    deadline=deadline,
                )
        return reply, chosen

    @staticmethod
    def _coerce_operation(value: OperationType | str | None) -> OperationType | None:
        return _operation(value)

    def _result(
        self,
        reply: QueryResult,
        elapsed: float,
        backend: Backend | None = None,
        rows: list[list[Any]] | None = None,
        columns: Any = None,
        command: str | None = None,
        rowcount: int | None = None,
    ) -> Result:
        """A :class:`Result` of ``reply`` (or of one of its batch outcomes:
        ``rows``, ``columns``, ``command``, ``rowcount`` given)."""
        if rows is None:
            rows, columns, command, rowcount = (
                reply.rows,
                reply.columns,
                reply.command,
                reply.rowcount,
            )
        assert command is not None
        assert rowcount is not None
        decoded = rows if backend is not None and backend.decoded_rows else decode_rows(rows)
        rt = row_type(columns)
        return Result(
            rows=[rt(r) for r in decoded],
            columns=columns,
            command=command,
            rowcount=rowcount,
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
        if self._state is not ClientState.OPEN:
            raise InterfaceError(f"the client is {self._state.value}, not open")
        timeout = self.timeout if timeout is None else timeout
        op = _operation(operation_type)
        now = time.time()
        try:
            wire_params = [encode_row(p) for p in params] if many else encode_row(params)
        except TypeError as exc:
            raise InterfaceError(f"parameters must be a sequence: {exc}") from exc
        request = QueryRequest(
            id=self._next_id(),
            client=self.client_id,
            op=op,
            sql=sql,
            params=wire_params,
            many=many,
            reply_to=self._reply_to(),
            deadline=now + timeout,
            sent_at=now,
            idem=idempotency_key,
            route=route if type(route) is RoutePreference else RoutePreference(route),
            max_staleness=max_staleness,
            min_lsn=self._last_lsn if self._read_your_writes else None,
        )
        plain = self._plain
        if (
            plain is not None
            and not many
            and idempotency_key is None
            and self._skips_encoding(request)
        ):
            return await self._run_plain(plain, request, timeout)
        key = idempotency_key.encode() if idempotency_key else None
        reply, elapsed, backend = await self._call(request, timeout=timeout, key=key)
        return self._result(reply, elapsed, backend)

    def _should_refresh(self, reply: Reply) -> bool:
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
        reply, elapsed, backend = await self._call(request, timeout=timeout)
        return [
            self._result(
                reply,
                elapsed,
                backend,
                rows=outcome.rows,
                columns=outcome.columns,
                command=outcome.command,
                rowcount=outcome.rowcount,
            )
            for outcome in reply.batch or []
        ]

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


def _operation(value: OperationType | str | None) -> OperationType | None:
    if value is None or isinstance(value, OperationType):
        return value
    try:
        return OperationType(value.upper())
    except ValueError:
        allowed = ", ".join(o.value for o in OperationType)
        raise InterfaceError(f"operation_type must be one of {allowed}, got {value!r}") from None
