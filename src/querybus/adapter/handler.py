"""The handling of one decoded request, without Kafka: who asks, may it run,
run it, and what the reply is.

:class:`RequestHandler` is the adapter's request path from a decoded
:class:`~querybus.protocol.QueryRequest` to its reply: the caller's identity
(its token) and rate, the policy and the role's limits, the idempotency
replay cache, the executor (one :class:`~querybus.execution.Job`),
transactions and batches (:mod:`querybus.adapter.transactions`), the reply's
size check, the metrics and the audit record. It neither reads nor writes the
bus: :class:`~querybus.adapter.service.AdapterService` feeds it records it
decoded and sends back what it returns, and direct mode
(:mod:`querybus.direct`) calls it in the caller's own process, so that a
request means the same thing on both paths.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from querybus.adapter.audit import AuditRecord
from querybus.adapter.policy import Policy
from querybus.adapter.ratelimit import RateLimiter
from querybus.adapter.replies import build_failure
from querybus.adapter.roles import RolePolicies, RolePolicy
from querybus.adapter.transactions import (
    BegunButFailed,
    TransactionDesk,
    TxReply,
    is_transactional,
)
from querybus.database.idempotency import ReplayCache, request_digest
from querybus.errors import (
    DeadlineExceededError,
    ProtocolError,
    QueryBusError,
    RateLimitedError,
    ResultTooLargeError,
)
from querybus.execution import Deadline, Executor, Identity, Job, Outcome
from querybus.identity import TokenVerifier
from querybus.observability.metrics import Metrics
from querybus.protocol import (
    QueryFailure,
    QueryRequest,
    QueryResult,
    RouteInfo,
    Timings,
    TxInfo,
    decode_row,
    encode,
    encode_rows,
)
from querybus.sql import Statement

__all__ = ["Handled", "RequestHandler"]

log = logging.getLogger("querybus.adapter")


@dataclass(slots=True)
class Handled:
    """What one request produced.

    Attributes:
        data: the encoded reply, ready to send.
        reply: the same reply as a message; None when only its encoding is at
            hand (an idempotent request answered from the replay cache).
        copy_to_errors: whether the reply also goes to the error topic.
        rows: the result rows as the database returned them (Python values,
            before the wire encoding) for a plain successful statement, for
            callers in this process; None otherwise.
    """

    data: bytes
    reply: QueryResult | QueryFailure | None = None
    copy_to_errors: bool = False
    rows: list[list[Any]] | None = None


class RequestHandler:
    """Handles decoded requests on ``executor``.

    Args:
        executor: where statements run.
        instance_id: the name replies are ``served_by``.
        policy: request validation rules.
        metrics: where to count.
        verifier: checks each request's token; None: no identities (every
            request runs as the executor's login).
        roles: limits per role.
        max_reply_bytes: largest reply (larger ones: ResultTooLargeError).
        max_deadline: the longest a request may wait and run, seconds.
        inbox: the inbox topic BEGIN's reply names ("" when none).
        log_parameters: whether error replies keep parameter values.
        audit_parameters: whether audit records carry parameter values.
        audit: where audit records go (None: nowhere); must not block.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        instance_id: str,
        policy: Policy | None = None,
        metrics: Metrics | None = None,
        verifier: TokenVerifier | None = None,
        roles: RolePolicies | None = None,
        max_reply_bytes: int = 1_000_000,
        max_deadline: float = 300.0,
        inbox: str = "",
        log_parameters: bool = False,
        audit_parameters: bool = False,
        audit: Callable[[AuditRecord], None] | None = None,
    ) -> None:
        self.executor = executor
        self.instance_id = instance_id
        self.policy = policy or Policy()
        self.metrics = metrics or Metrics()
        self.verifier = verifier
        self.roles = roles or RolePolicies()
        self.max_reply_bytes = max_reply_bytes
        self.max_deadline = max_deadline
        self.log_parameters = log_parameters
        self.audit_parameters = audit_parameters
        self._audit_sink = audit
        self._rates = RateLimiter()
        self._idem = ReplayCache()
        self._desk = TransactionDesk(
            executor.transactions,
            max_batch=self.policy.max_batch,
            inbox=inbox,
            instance_id=instance_id,
        )

    async def handle(
        self,
        request: QueryRequest,
        token: bytes | None,
        *,
        deadline: Deadline | None = None,
        timings: Timings | None = None,
        started: float | None = None,
    ) -> Handled:
        """Run ``request`` (sent with ``token``, the raw authorization header)
        and return its reply, successful or not: nothing is raised for the
        request's own failures.

        Args:
            deadline: the request's deadline (default: its own, capped at
                ``max_deadline``).
            timings: where its times are written (default: fresh ones).
            started: ``time.perf_counter()`` when its handling began.
        """
        if deadline is None:
            deadline = Deadline.from_wall(request.deadline, cap=self.max_deadline)
        if timings is None:
            timings = Timings()
        audit = _Audit(
            request,
            time.perf_counter() if started is None else started,
            adapter=self.instance_id,
            with_params=self.audit_parameters,
        )
        # Who is asking comes first: nothing of an unauthenticated request is
        # looked at beyond its envelope (and it costs no SQL parse).
        try:
            identity, limits = self._admit(token, request, audit)
        except QueryBusError as exc:
            return self._fail(request, exc, timings, audit)
        if is_transactional(request):
            return await self._transactional(request, deadline, identity, limits, timings, audit)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %s from %s: op=%s sql=%.200r params=%s",
                request.id,
                request.client,
                request.op,
                request.sql,
                request.params if self.log_parameters else f"<{len(request.params)} values>",
            )

        # The cache's identity is the key *and* what the request asks for: a key
        # reused for another request misses here and is refused by the durable
        # store, rather than being answered with another request's reply.
        scope = None if identity is None else identity.scope
        idem = (
            None
            if request.idem is None
            else f"{request.idem}\x00"
            f"{request_digest(request.sql, request.params, request.many, scope)}"
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
            self._audit(audit.replayed)
            return Handled(_with_id(data, request.id))

        try:
            outcome = await self.executor.run(self._job(request, deadline, identity, limits, audit))
        except QueryBusError as exc:
            if idem is not None:
                self._idem.finish(idem, None)
            return self._fail(request, exc, timings, audit)
        return self._respond(request, outcome, timings, audit, idem)

    async def handle_plain(self, request: QueryRequest) -> Handled:
        """:meth:`handle` for a caller in this process (direct mode) with a
        plain request: one autocommit statement, no idempotency key, no
        token, parameters that crossed no wire and need no decoding (see
        :func:`~querybus.protocol.values.unchanged_size`). The same checks,
        execution and reply, minus the steps such a request cannot need.

        The caller awaits it in its own task under a timeout for the
        request's deadline: the pool wait and the statement set no timers of
        their own (:attr:`Job.caller_bounds`) unless that deadline is beyond
        ``max_deadline``; cancelling it cancels the statement on the server.
        """
        started = time.perf_counter()
        deadline = Deadline.from_wall(request.deadline, cap=self.max_deadline)
        timings = Timings()
        audit = _Audit(request, started, adapter=self.instance_id, with_params=False)
        try:
            identity, limits = self._admit(None, request, audit)
            job = self._job(request, deadline, identity, limits, audit, decoded=True)
            # Run in the caller's task, under its timeout, unless the handler
            # capped the deadline below it: then the timers stay, for the cap.
            job.caller_bounds = request.deadline - time.time() <= self.max_deadline
            outcome = await self.executor.run(job)
        except QueryBusError as exc:
            return self._fail(request, exc, timings, audit)
        return self._respond(request, outcome, timings, audit)

    def _respond(
        self,
        request: QueryRequest,
        outcome: Outcome,
        timings: Timings,
        audit: _Audit,
        idem: str | None = None,
        extra: TxReply | None = None,
    ) -> Handled:
        """The reply with ``outcome`` (and, for a transactional request, what
        ``extra`` carries), or ResultTooLargeError when it does not fit."""
        started = audit.started
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
        if extra is not None:
            reply.tx, reply.batch, reply.state = extra.tx, extra.batch, extra.state
        timings.total = time.perf_counter() - started
        data = encode(reply)
        if len(data) > self.max_reply_bytes:
            # The statement ran (and committed): say what it did, without the rows.
            err = ResultTooLargeError(
                f"the statement ran ({outcome.command}), but its reply would be {len(data)} "
                f"bytes and the limit is {self.max_reply_bytes}: the rows are not "
                "returned (add a LIMIT, page through the rows, or return fewer columns)",
                command=outcome.command,
                rowcount=outcome.rowcount,
                lsn=outcome.lsn,
            )
            if idem is not None:
                self._idem.finish(idem, None)
            self._audit(lambda: audit.failed(err, route.target))
            return self._failure(request, err, timings, params=None)
        metrics = self.metrics
        metrics.execute.observe(timings.execute)
        metrics.latency.observe(timings.total)
        metrics.requests_ok.inc()
        if outcome.route is None:  # a router counts its own decisions
            metrics.count_route(route.target, route.reason)
        if idem is not None:
            self._idem.finish(idem, data)
        self._audit(lambda: audit.succeeded(outcome, route.target))
        # The rows as they are, for a caller in this process (not for a batch:
        # its rows are in its outcomes).
        rows = outcome.rows if extra is None or extra.batch is None else None
        return Handled(data, reply, rows=rows)

    async def _transactional(
        self,
        request: QueryRequest,
        deadline: Deadline,
        identity: Identity | None,
        limits: RolePolicy,
        timings: Timings,
        audit: _Audit,
    ) -> Handled:
        """A BEGIN, COMMIT, … or a statement of an open transaction, or a
        batch (:mod:`querybus.adapter.transactions`)."""
        try:
            result = await self._desk.handle(
                request,
                deadline,
                identity,
                limits,
                lambda r, d, i, lim: self._job(r, d, i, lim, audit),
            )
        except BegunButFailed as began:
            return self._fail(request, began.error, timings, audit, tx=began.info)
        except QueryBusError as exc:
            return self._fail(request, exc, timings, audit)
        return self._respond(request, result.outcome, timings, audit, extra=result)

    def _fail(
        self,
        request: QueryRequest,
        exc: QueryBusError,
        timings: Timings,
        audit: _Audit,
        tx: TxInfo | None = None,
    ) -> Handled:
        """The reply with ``exc`` (values masked), audited; ``tx``: the
        transaction the request began, open though its statement failed."""
        timings.total = time.perf_counter() - audit.started
        self._audit(lambda: audit.failed(exc))
        return self._failure(request, exc, timings, params=request.params, tx=tx)

    def _failure(
        self,
        request: QueryRequest,
        exc: QueryBusError,
        timings: Timings,
        *,
        params: list[Any] | None,
        tx: TxInfo | None = None,
    ) -> Handled:
        reply = build_failure(
            request.id,
            exc,
            timings,
            self.metrics,
            instance_id=self.instance_id,
            log_parameters=self.log_parameters,
            params=params,
        )
        reply.tx = tx
        # An expired or throttled request costs no copy of its own: a new group, or
        # a backlog after an outage, must not turn into a flood on the error topic.
        copy = not isinstance(exc, DeadlineExceededError | RateLimitedError)
        return Handled(encode(reply), reply, copy_to_errors=copy)

    def _admit(
        self, token: bytes | None, request: QueryRequest, audit: _Audit
    ) -> tuple[Identity | None, RolePolicy]:
        """Who sent ``request`` (its verified token) and the limits of its role;
        one token from the subject's rate bucket.

        Raises:
            AuthenticationError: no valid token and no anonymous role.
            PermissionDeniedError: the token names a role outside the allowlist.
            RateLimitedError: the subject is over its role's rate.
        """
        identity: Identity | None = None
        if self.verifier is not None:
            identity = self.verifier.verify_header(token)
            audit.identity = identity
        limits = self.roles.for_role(identity.role if identity is not None else None)
        if limits.rate is not None:
            # Per subject; without identities the client id, which callers
            # choose: a soft limit only (docs/security.md).
            subject = identity.subject if identity is not None else f"client:{request.client}"
            self._rates.check(subject, limits.rate, limits.burst or 1)
        return identity, limits

    def _job(
        self,
        request: QueryRequest,
        deadline: Deadline,
        identity: Identity | None = None,
        limits: RolePolicy | None = None,
        audit: _Audit | None = None,
        *,
        decoded: bool = False,
    ) -> Job:
        """Check and decode the request into one :class:`Job` (``decoded``:
        its parameters are Python values already).

        Raises:
            DeadlineExceededError: it expired (before anything, so an expired
                request costs no parsing and no database round trip).
            RequestRejectedError: the policy refused it.
            PermissionDeniedError: the role's policy refused it.
            ProtocolError: its parameters do not decode.
        """
        deadline.left()
        statement = self.policy.check(request)
        if audit is not None:
            audit.statement = statement
        if limits is not None:
            limits.check(statement)
            deadline = deadline.capped(limits.statement_timeout)
        params: Sequence[Any]
        if decoded:
            params = request.params
        else:
            try:
                params = (
                    [decode_row(p) for p in request.params]
                    if request.many
                    else decode_row(request.params)
                )
            except (ProtocolError, TypeError) as exc:
                raise ProtocolError(f"invalid parameters: {exc}") from exc
        return Job(
            request,
            params,
            statement,
            deadline,
            identity=identity,
            max_rows=None if limits is None else limits.max_rows,
        )

    def _audit(self, record: Callable[[], AuditRecord]) -> None:
        # Built only when somebody takes it: most requests of an adapter
        # without an audit topic (and every one in direct mode) skip the work.
        if self._audit_sink is not None:
            self._audit_sink(record())


_reply_decoder = msgspec.json.Decoder(dict[str, Any])


def _with_id(data: bytes, correlation_id: str) -> bytes:
    # A cached idempotent reply answers a new request: give it that request's id.
    doc = _reply_decoder.decode(data)
    doc["id"] = correlation_id
    return msgspec.json.encode(doc)


class _Audit:
    """What one request's audit record says, gathered on its way through the
    adapter: who (once verified), what (once parsed), and how it ended.
    Parameter values only when the operator asked for them."""

    __slots__ = ("adapter", "identity", "request", "started", "statement", "with_params")

    def __init__(
        self, request: QueryRequest, started: float, *, adapter: str, with_params: bool
    ) -> None:
        self.request = request
        self.adapter = adapter
        self.started = started
        self.with_params = with_params
        self.identity: Identity | None = None
        self.statement: Statement | None = None

    def _record(
        self,
        outcome: str,
        *,
        target: str = "",
        sqlstate: str | None = None,
        rowcount: int | None = None,
    ) -> AuditRecord:
        identity, statement, request = self.identity, self.statement, self.request
        return AuditRecord(
            ts=time.time(),
            id=request.id,
            client=request.client,
            adapter=self.adapter,
            subject=None if identity is None else identity.subject,
            role=None if identity is None else identity.role,
            anonymous=identity is not None and identity.anonymous,
            fingerprint=None if statement is None else statement.fingerprint,
            operation=None if statement is None else statement.operation,
            statement_type=None if statement is None else statement.statement_type,
            target=target or None,
            outcome=outcome,
            sqlstate=sqlstate,
            rowcount=rowcount,
            duration=time.perf_counter() - self.started,
            params=request.params if self.with_params else None,
        )

    def failed(self, exc: QueryBusError, target: str = "") -> AuditRecord:
        return self._record(exc.code, target=target, sqlstate=getattr(exc, "sqlstate", None))

    def succeeded(self, outcome: Outcome, target: str) -> AuditRecord:
        return self._record("ok", target=target, rowcount=outcome.rowcount)

    def replayed(self) -> AuditRecord:
        # Answered from the idempotency cache: nothing ran.
        return self._record("ok", target="replay")
