"""Durable idempotency keys: a table in the database the writes go to.

The adapter's in-memory :class:`ReplayCache` (below) answers a
duplicate that reaches the adapter that served the original. A duplicate that
reaches another adapter, or the same one after a restart (at-least-once
redelivery after a crash or a rebalance), is caught here: a request with an
idempotency key runs in one transaction with its key::

    BEGIN ISOLATION LEVEL READ COMMITTED;
    INSERT INTO querybus_idempotency (key) VALUES ($1)
        ON CONFLICT (key) DO NOTHING RETURNING true;
    -- a row came back: the key is new, so
    <the statement>;
    UPDATE querybus_idempotency SET outcome = $2 WHERE key = $1;
    COMMIT;
    -- no row came back: the key is taken, so (the statement is not run)
    SELECT outcome FROM querybus_idempotency WHERE key = $1;
    COMMIT;

so "executed" and "remembered" commit together: a statement that fails, or an
adapter that dies mid-way, rolls its key back and a retry runs it. A concurrent
duplicate blocks in its ``INSERT … ON CONFLICT`` on the first one's
uncommitted row until that commits (it then reads the stored outcome) or rolls
back (it then runs the statement itself). Read committed is set explicitly:
under repeatable read the duplicate would get a serialization failure instead.

Reads are not recorded: running a read twice has no effect to guard against,
and recording it would turn every keyed read into a write (on the primary,
with its result rows stored). "Read" is what the router would send to a
replica (:class:`~querybus.routing.classify.Classification`); anything that
writes or may write (DML, DDL, ``nextval``, a function of unknown volatility)
is recorded.

Retention: rows older than ``ttl`` (24 h by default) are deleted every
``cleanup_interval`` (10 min) by every executor that owns a store; a duplicate
arriving later than ``ttl`` after the original runs again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import msgspec

from querybus.cancellation import stop_task
from querybus.errors import ConfigurationError, QueryError, RequestRejectedError
from querybus.execution import Deadline, Job, Outcome
from querybus.protocol.messages import Column
from querybus.protocol.values import decode_rows, encode_rows

__all__ = [
    "DEFAULT_TABLE",
    "IdempotencySettings",
    "IdempotencyStore",
    "ReplayCache",
    "request_digest",
]

log = logging.getLogger("querybus.database.idempotency")

DEFAULT_TABLE = "querybus_idempotency"


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    """The durable idempotency store of a PostgreSQL executor.

    Attributes:
        enabled: use the store for keyed writes (off: the adapter's in-memory
            cache is the only protection against duplicates).
        table: the table's name, optionally schema-qualified (``ops.idem``);
            unqualified, it resolves through the connection's ``search_path``;
            each part is quoted as given (case-sensitive).
        create_table: create the table at start when it does not exist
            (off: it must exist, e.g. created by a migration).
        ttl: seconds a key is remembered (``QUERYBUS_IDEMPOTENCY_TTL``).
        cleanup_interval: seconds between deletions of expired keys.
    """

    enabled: bool = True
    table: str = DEFAULT_TABLE
    create_table: bool = True
    ttl: float = 24 * 3600.0
    cleanup_interval: float = 600.0

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ConfigurationError(f"the idempotency ttl must be positive, got {self.ttl}")
        if self.cleanup_interval <= 0:
            raise ConfigurationError(
                f"the idempotency cleanup interval must be positive, got {self.cleanup_interval}"
            )
        _quote_name(self.table)  # fail at construction, not at the first request


def _quote_name(name: str) -> str:
    """``schema.table`` → ``"schema"."table"`` (each part quoted as an identifier).

    Raises:
        ConfigurationError: the name is empty or has more than two parts.
    """
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts) or "\x00" in name:
        raise ConfigurationError(f"bad idempotency table name {name!r}")
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


class _Stored(msgspec.Struct, forbid_unknown_fields=False):
    """An outcome as stored: rows in the wire encoding (``protocol.values``)."""

    command: str
    columns: list[Column]
    rows: list[list[Any]]
    rowcount: int


_decode_stored = msgspec.json.Decoder(_Stored).decode
_encode_json = msgspec.json.Encoder().encode


def encode_outcome(outcome: Outcome) -> bytes:
    """The stored form of ``outcome`` (its LSN, route and timings are not kept).

    Raises:
        ProtocolError: a value cannot travel on the wire (nor be stored).
    """
    return _encode_json(
        _Stored(
            command=outcome.command,
            columns=outcome.columns,
            rows=encode_rows(outcome.rows),
            rowcount=outcome.rowcount,
        )
    )


def decode_outcome(data: bytes) -> Outcome:
    """The outcome :func:`encode_outcome` stored, with Python values again."""
    stored = _decode_stored(data)
    return Outcome(
        command=stored.command,
        columns=stored.columns,
        rows=decode_rows(stored.rows),
        rowcount=stored.rowcount,
    )


def request_digest(sql: str, wire_params: list[Any], many: bool, scope: str | None = None) -> str:
    """A digest of what a request asks for: its SQL and its parameters in wire
    form, and who asks (``scope``: the caller's role and subject), so that one
    caller's key never answers another's request."""
    h = hashlib.sha256(sql.encode())
    if scope is not None:
        h.update(b"\x00scope\x00" + scope.encode())
    h.update(b"\x00many\x00" if many else b"\x00one\x00")
    h.update(_encode_json(wire_params))
    return h.hexdigest()


class IdempotencyStore:
    """The SQL of the durable store; executors call it on their own connections.

    Connections are asyncpg connections (typed ``Any``: asyncpg stays imported
    by ``postgres.py`` only). Nothing here maps asyncpg errors: the callers in
    ``postgres.py`` do.
    """

    def __init__(self, settings: IdempotencySettings | None = None) -> None:
        self.settings = settings or IdempotencySettings()
        t = _quote_name(self.settings.table)
        self._claim_sql = (
            f"INSERT INTO {t} (key, request) VALUES ($1, $2) "
            "ON CONFLICT (key) DO NOTHING RETURNING true"
        )
        self._lookup_sql = f"SELECT outcome, request FROM {t} WHERE key = $1"
        self._store_sql = f"UPDATE {t} SET outcome = $2 WHERE key = $1"
        self._purge_sql = (
            f"DELETE FROM {t} WHERE created_at < now() - make_interval(secs => $1::float8)"
        )
        # request: a digest of the SQL and parameters, to refuse a key reused
        # for another request. The created_at index serves the periodic purge.
        self._create_sql = [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "key text PRIMARY KEY, "
            "request text NOT NULL, "
            "outcome bytea, "
            "created_at timestamptz NOT NULL DEFAULT now())",
            f"CREATE INDEX IF NOT EXISTS {_quote_name(self.settings.table + '_created_at')} "
            f"ON {t} (created_at)",
        ]
        self._cleanup: asyncio.Task[None] | None = None

    def for_job(self, job: Job) -> IdempotencyStore | None:
        """This store when ``job`` needs a durable record — a keyed request
        whose statement may write — else None (reads are not recorded)."""
        return self if job.request.idem is not None and job.statement.may_write else None

    @property
    def table(self) -> str:
        return self.settings.table

    @staticmethod
    def scoped_key(scope: str, key: str) -> str:
        """The stored key of a caller's ``key``: callers with different
        identities have separate key spaces (one cannot claim, or learn of,
        another's keys)."""
        return f"{hashlib.sha256(scope.encode()).hexdigest()[:32]}/{key}"

    async def prepare(self, conn: Any) -> None:
        """Create the table if it is missing (when ``create_table``).

        The existence check comes first so that a role without CREATE on the
        schema can use a table created for it; concurrent starts are
        serialized by a transaction-scoped advisory lock.

        Raises:
            asyncpg.PostgresError: the table cannot be created (unmapped).
        """
        if not self.settings.create_table:
            return
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _quote_name(self.table)):
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('querybus_idempotency'))")
            for sql in self._create_sql:
                await conn.execute(sql)

    async def run(
        self,
        conn: Any,
        key: str,
        execute: Callable[[], Awaitable[Outcome]],
        *,
        request: str,
        deadline: Deadline,
    ) -> Outcome:
        """Run ``execute`` (the statement, on ``conn``) once per ``key``.

        Returns the statement's outcome, or the stored one when ``key`` was
        already used for the same request (the statement is then not run).

        Args:
            request: a digest of the request (:func:`request_digest`); a key
                already used for a different request is refused.

        Raises:
            RequestRejectedError: ``key`` was already used for another request.
            whatever ``execute`` or asyncpg raises; the transaction is then
                rolled back and the key is not remembered.
        """
        while True:
            async with conn.transaction(isolation="read_committed"):
                claimed = await conn.fetchval(
                    self._claim_sql, key, request, timeout=deadline.left()
                )
                if claimed:
                    outcome = await execute()
                    await conn.execute(
                        self._store_sql, key, encode_outcome(outcome), timeout=deadline.left()
                    )
                    return outcome
                row = await conn.fetchrow(self._lookup_sql, key, timeout=deadline.left())
            if row is None:
                continue  # deleted (expired) between our INSERT and SELECT: claim again
            if row["request"] != request:
                # Returning the other request's result would be silently wrong.
                raise RequestRejectedError(
                    f"idempotency key {key!r} was already used for a different request "
                    "(other SQL or parameters); use a new key for a new request"
                )
            if row["outcome"] is None:
                raise QueryError(
                    f"idempotency key {key!r} is stored without an outcome in {self.table}"
                )
            log.debug("idempotency key %r: returning the stored outcome", key)
            return decode_outcome(row["outcome"])

    async def purge(self, conn: Any, *, timeout: float = 60.0) -> int:
        """Delete the keys older than ``ttl``; return how many were deleted."""
        status = await conn.execute(self._purge_sql, self.settings.ttl, timeout=timeout)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    # -- periodic cleanup ----------------------------------------------------

    def start_cleanup(self, connection: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        """Delete expired keys now and every ``cleanup_interval`` seconds, on a
        connection from ``connection()``, until :meth:`stop_cleanup`."""
        if self._cleanup is None:
            self._cleanup = asyncio.create_task(
                self._cleanup_loop(connection), name="querybus-idempotency-cleanup"
            )

    async def stop_cleanup(self) -> None:
        task, self._cleanup = self._cleanup, None
        if task is not None:
            await stop_task(task)

    async def _cleanup_loop(
        self, connection: Callable[[], AbstractAsyncContextManager[Any]]
    ) -> None:
        while True:
            try:
                async with connection() as conn:
                    deleted = await self.purge(conn)
                if deleted:
                    log.info("deleted %d expired idempotency keys from %s", deleted, self.table)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again
                log.warning("deleting expired idempotency keys failed: %s", exc)
            await asyncio.sleep(self.settings.cleanup_interval)


class ReplayCache:
    """Encoded replies by idempotency key, so a duplicate gets the first reply.

    The adapter's fast path, in memory: the fast path for redelivery to this adapter and
    client retries (requests with a key are keyed by it, so they land on the
    same partition, hence the same adapter while the group is stable). A
    duplicate that reaches another adapter, or this one after a restart, is
    caught by the durable :class:`IdempotencyStore` below, which returns the
    first outcome.
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
