"""The direct backend: the adapter's :class:`RequestHandler` in the caller's process.

A request takes the same path as on an adapter, minus Kafka: its encoding is
decoded exactly as an adapter decodes it (so parameters arrive as they would),
then :meth:`RequestHandler.handle` checks it (policy, limits, deadline), runs
it on a :class:`PostgresExecutor` of the caller's DSN (idempotency keys,
interactive transactions, batches, the reply size limit) and builds the same
reply. Only the rows skip the trip: they are given the types they would have
after it (:func:`~querybus.protocol.values.settle_rows`) instead of being
encoded and parsed again.

Differences from the bus, on purpose: tokens are not checked (the DSN's login
runs every statement: whoever holds it has its rights anyway), nothing is
audited, and the login may be a superuser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from querybus.adapter.handler import Handled, RequestHandler
from querybus.adapter.policy import Policy
from querybus.adapter.transactions import is_transactional
from querybus.client.backend import LostCallback, Reply, Watch
from querybus.config import AdapterSettings, BusSettings
from querybus.database.executor import PostgresExecutor
from querybus.errors import InterfaceError
from querybus.observability.metrics import unscraped_metrics
from querybus.protocol import (
    QueryRequest,
    QueryResult,
    ReplyAddress,
    decode_reply,
    decode_request,
    decode_rows,
)
from querybus.protocol.values import settle_rows

__all__ = ["DirectBackend"]

log = logging.getLogger("querybus.direct")

#: What a direct request names as its reply address (nothing is sent there).
DIRECT_ADDRESS = ReplyAddress("direct", 0)
#: Seconds ``stop`` waits for requests still running before it closes the pool.
_STOP_GRACE = 10.0


class DirectBackend:
    """Runs requests on PostgreSQL ``dsn`` in this process.

    Args:
        dsn: the server (the caller's own credentials).
        bus: for the size limits, so that what fits through the bus fits here
            and what does not is refused alike.
        client_id: the client's id (replies are ``served_by`` ``direct-<id>``).
        on_lost: told when a transaction was rolled back behind the caller's
            back (idle or lifetime limit).
        pool_size: connections of the pool.
        policy: request validation (None: what an adapter started with the
            same environment applies, :meth:`Policy.from_env`:
            ``QUERYBUS_ALLOW_DDL``, ``QUERYBUS_MAX_*``).
        settings: transaction limits and the longest deadline (the adapter's
            defaults when None).
    """

    name = "direct"
    decoded_rows = True
    # Its caller bounds the wait: what runs here keeps to the request's own
    # deadline anyway (pool, statement timeout).
    keeps_deadlines = False

    def __init__(
        self,
        dsn: str,
        *,
        bus: BusSettings,
        client_id: str,
        on_lost: LostCallback,
        pool_size: int = 10,
        policy: Policy | None = None,
        settings: AdapterSettings | None = None,
    ) -> None:
        # The caller owns the whole pool: every connection may hold a
        # transaction (an adapter keeps half for plain requests).
        settings = settings or AdapterSettings(pool_size=pool_size, tx_max_open=pool_size)
        self._settings = settings
        # The same rules as an adapter of the same environment: a call that
        # one refuses, the other refuses too.
        policy = Policy.from_env() if policy is None else policy
        self._executor = PostgresExecutor(
            dsn,
            pool_size=pool_size,
            allow_superuser=True,
            reset_every_request=policy is not None and policy.allow_ddl,
        )
        self._executor.transactions.on_lost = lambda tx, _context, reason: on_lost(tx, reason)
        self._handler = RequestHandler(
            self._executor,
            instance_id=f"direct-{client_id}",
            metrics=unscraped_metrics(),
            policy=policy,
            max_reply_bytes=bus.max_message_bytes,
            max_deadline=settings.max_deadline,
        )
        self._running: set[asyncio.Task[Handled]] = set()
        self._started = False

    @property
    def reply_to(self) -> ReplyAddress:
        return DIRECT_ADDRESS

    async def start(self) -> None:
        """Open the pool (and check the idempotency and outcome tables).

        Raises:
            OperationalError: the server cannot be reached.
        """
        self._executor.transactions.configure(
            idle_timeout=self._settings.tx_idle_timeout,
            max_lifetime=self._settings.tx_max_lifetime,
            max_open=self._settings.max_open_transactions,
        )
        await self._executor.start()
        self._started = True

    async def stop(self) -> None:
        """Let running requests finish (up to a grace period), roll back open
        transactions and close the pool."""
        if self._running:
            await asyncio.wait(self._running, timeout=_STOP_GRACE)
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                await self._executor.transactions.close_all("the client was closed")
            await self._executor.stop()

    async def probe(self, timeout: float) -> None:
        await self._executor.ping(timeout)

    def fail_waiting(self, correlation_id: str, exc: BaseException) -> None:
        """Nothing to do: a request here ends on its own deadline."""

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
        if not self._started:
            raise InterfaceError("the client's direct connection is not open")
        # Decoded as an adapter decodes it: parameters arrive as they would.
        decoded = decode_request(data)
        if decoded.idem is None and not is_transactional(decoded):
            # One autocommit statement: when its caller stops waiting, asyncpg
            # cancels it on the server, and nothing is left half done. Run in
            # the caller's task, as a plain asyncpg call would be.
            return _reply(await self._handler.handle(decoded, None))
        # Like on an adapter, a request with an idempotency key or of a
        # transaction runs to its end (its deadline) even when its caller stops
        # waiting: a key or a transaction must not be left half done.
        task = asyncio.ensure_future(self._handler.handle(decoded, None))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return _reply(await asyncio.shield(task))

    async def run_plain(self, request: QueryRequest) -> Reply:
        """Run a plain request, its parameters Python values that need no
        trip (:meth:`RequestHandler.handle_plain`), in the caller's task:
        when the caller stops waiting, asyncpg cancels the statement on the
        server, as with :meth:`exchange`."""
        if not self._started:
            raise InterfaceError("the client's direct connection is not open")
        return _reply(await self._handler.handle_plain(request))


def _reply(handled: Handled) -> Reply:
    """The reply, with its rows as Python values (as a client decodes them)."""
    reply = handled.reply
    if handled.rows is not None and isinstance(reply, QueryResult):
        reply.rows = settle_rows(handled.rows)
        return reply
    if reply is not None and not isinstance(reply, QueryResult):
        return reply  # a failure: nothing to decode
    # A batch, a transaction's reply or a replayed one: decoded like the bus's.
    decoded = decode_reply(handled.data)
    if isinstance(decoded, QueryResult):
        decoded.rows = decode_rows(decoded.rows)
        if decoded.batch:
            decoded.batch = [
                msgspec.structs.replace(o, rows=decode_rows(o.rows)) for o in decoded.batch
            ]
    return decoded
