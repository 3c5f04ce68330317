"""What an adapter does with a transactional request: a ``txop``, a statement
of an open transaction (``tx``), or a batch.

The request has passed the same checks as any other (decoded, reply address,
identity, rate) before it gets here; each statement in it is checked by the
policy and the role's policy like a single request (``make_job``). The work
itself is the executor's :class:`~querybus.execution.Transactions` (on
PostgreSQL, :mod:`querybus.database.transactions`); this module maps
operations to it and builds what the reply carries. The design is in
``docs/transactions.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from querybus.adapter.roles import RolePolicy
from querybus.errors import FeatureNotSupportedError, QueryBusError, RequestRejectedError
from querybus.execution import Deadline, Identity, Job, Outcome, Transactions
from querybus.protocol import BatchOutcome, QueryRequest, TxInfo, TxOp, encode_rows

__all__ = ["BegunButFailed", "TransactionDesk", "TxReply", "is_transactional"]

#: Builds the checked :class:`Job` of one statement (the adapter's policy path).
MakeJob = Callable[[QueryRequest, Deadline, Identity | None, RolePolicy | None], Job]

_SAVEPOINT_OPS = {
    TxOp.SAVEPOINT: "savepoint",
    TxOp.RELEASE: "release",
    TxOp.ROLLBACK_TO: "rollback_to",
}


@dataclass(slots=True)
class TxReply:
    """What a transactional request produced, for the reply."""

    outcome: Outcome
    tx: TxInfo | None = None
    batch: list[BatchOutcome] | None = None
    state: str | None = None


class BegunButFailed(Exception):
    """The statement that travelled with BEGIN failed; the transaction is
    open (aborted) at ``info``, and the reply carries both."""

    def __init__(self, info: TxInfo, error: QueryBusError) -> None:
        super().__init__(str(error))
        self.info = info
        self.error = error


def is_transactional(request: QueryRequest) -> bool:
    """Whether ``request`` takes this path (one attribute test each: the hot
    path of plain requests pays nothing more)."""
    return request.txop is not None or request.tx is not None or request.batch is not None


class TransactionDesk:
    """Runs transactional requests on ``transactions`` (None: not supported).

    Args:
        transactions: the executor's transactions, or None (embedded mode).
        max_batch: most statements in one batch.
        inbox: this adapter's inbox topic (announced in BEGIN's reply).
        instance_id: this adapter's name.
    """

    def __init__(
        self,
        transactions: Transactions | None,
        *,
        max_batch: int,
        inbox: str,
        instance_id: str,
    ) -> None:
        self._transactions = transactions
        self._max_batch = max_batch
        self._inbox = inbox
        self._instance_id = instance_id

    async def handle(
        self,
        request: QueryRequest,
        deadline: Deadline,
        identity: Identity | None,
        limits: RolePolicy | None,
        make_job: MakeJob,
    ) -> TxReply:
        """Run ``request``; ``make_job`` checks one statement (the policy and
        the role's) and builds its job, exactly as for a single request.

        Raises:
            FeatureNotSupportedError: the executor has no transactions.
            RequestRejectedError: the request is malformed, or the policy refused it.
            TransactionLostError, TransactionBusyError, PermissionDeniedError,
            QueryError: as the transactions raise them.
        """
        txs = self._transactions
        if txs is None:
            raise FeatureNotSupportedError(
                "interactive transactions and batches need PostgreSQL: this adapter (the "
                "embedded mode's SQLite) does not support them",
                sqlstate="0A000",
            )
        deadline.left()
        if request.batch is not None:
            return await self._batch(txs, request, deadline, identity, limits, make_job)
        op = request.txop
        if op is TxOp.BEGIN:
            return await self._begin(txs, request, deadline, identity, limits, make_job)
        tx = request.tx
        if tx is None:
            raise RequestRejectedError(f"txop {op} needs the transaction's id (tx)")
        if op is None:
            job = make_job(request, deadline, identity, limits)
            job.transaction = tx
            return TxReply(await txs.run(tx, job))
        if op is TxOp.STATUS:
            return TxReply(Outcome(command="STATUS"), state=await txs.status(tx, deadline))
        if op is TxOp.PING:
            txs.ping(tx, identity)
            return TxReply(Outcome(command="PING"), state="open")
        if op is TxOp.COMMIT:
            lsn = await txs.commit(tx, identity, deadline)
            return TxReply(Outcome(command="COMMIT", lsn=lsn), state="committed")
        if op is TxOp.ROLLBACK:
            await txs.rollback(tx, identity, deadline)
            return TxReply(Outcome(command="ROLLBACK"), state="rolled_back")
        if request.savepoint is None:
            raise RequestRejectedError(f"txop {op} needs a savepoint name")
        await txs.savepoint(tx, _SAVEPOINT_OPS[op], request.savepoint, identity, deadline)
        return TxReply(Outcome(command=op.value.upper()), state="open")

    async def _begin(
        self,
        txs: Transactions,
        request: QueryRequest,
        deadline: Deadline,
        identity: Identity | None,
        limits: RolePolicy | None,
        make_job: MakeJob,
    ) -> TxReply:
        """BEGIN, and the transaction's first statement when it travels with
        it (a round trip saved; PostgreSQL takes a transaction's snapshot at
        its first statement anyway, so nothing changes for the caller).

        Raises:
            BegunButFailed: the statement failed in the open transaction.
        """
        if request.tx is not None:
            raise RequestRejectedError("begin opens a new transaction: it names none (tx)")
        # Checked before anything: a refused statement begins nothing.
        job = make_job(request, deadline, identity, limits) if request.sql else None
        tx_id = await txs.begin(
            request.txopts, identity, deadline, (request.reply_to, request.client)
        )
        info = TxInfo(
            id=tx_id,
            inbox=self._inbox,
            partition=0,
            adapter=self._instance_id,
            idle_timeout=txs.idle_timeout,
            max_lifetime=txs.max_lifetime,
        )
        if job is None:
            return TxReply(Outcome(command="BEGIN"), tx=info, state="open")
        job.transaction = tx_id
        try:
            outcome = await txs.run(tx_id, job)
        except QueryBusError as exc:
            if txs.holds(tx_id):
                # Open and aborted, as after any failed statement: the caller
                # must learn where it lives to roll it back.
                raise BegunButFailed(info, exc) from exc
            raise  # rolled back already (row limit, broken connection)
        return TxReply(outcome, tx=info, state="open")

    async def _batch(
        self,
        txs: Transactions,
        request: QueryRequest,
        deadline: Deadline,
        identity: Identity | None,
        limits: RolePolicy | None,
        make_job: MakeJob,
    ) -> TxReply:
        items = request.batch or []
        if request.tx is not None or request.txop is not None:
            raise RequestRejectedError("a batch is its own transaction: no tx or txop with it")
        if not items:
            raise RequestRejectedError("a batch needs at least one statement")
        if len(items) > self._max_batch:
            raise RequestRejectedError(
                f"a batch of {len(items)} statements; the limit is {self._max_batch}"
            )
        # Each statement is checked exactly as if it came alone.
        jobs = [
            make_job(
                msgspec.structs.replace(
                    request, sql=item.sql, params=item.params, batch=None, many=False
                ),
                deadline,
                identity,
                limits,
            )
            for item in items
        ]
        outcomes = await txs.batch(jobs, deadline)
        total = Outcome(
            command=f"BATCH {len(outcomes)}",
            rowcount=sum(o.rowcount for o in outcomes),
            lsn=outcomes[-1].lsn if outcomes else None,
            execute_seconds=outcomes[0].execute_seconds if outcomes else 0.0,
        )
        return TxReply(
            total,
            batch=[
                BatchOutcome(
                    command=o.command,
                    columns=o.columns,
                    rows=encode_rows(o.rows),
                    rowcount=o.rowcount,
                )
                for o in outcomes
            ],
        )
