"""Request validation: what an adapter refuses before anything reaches the database.

An adapter executes SQL that arrives from a bus, so it checks every request:
exactly one statement, the declared operation matches the statement, the
statement is not one that makes no sense across pooled connections
(transaction control, session settings), and sizes stay within limits.
Refusals are :class:`~querybus.errors.RequestRejectedError`; nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from querybus.errors import RequestRejectedError
from querybus.protocol.messages import OperationType, QueryRequest
from querybus.routing.classify import StatementInfo, analyze

__all__ = ["Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits and rules for requests.

    Attributes:
        max_sql_length: longest SQL text accepted, in characters.
        max_parameters: most parameters in one statement (PostgreSQL's own limit is 65,535).
        max_batch: most parameter lists in one ``executemany``.
        allow_ddl: whether DDL may run through the bus at all.
    """

    max_sql_length: int = 100_000
    max_parameters: int = 65_535
    max_batch: int = 10_000
    allow_ddl: bool = True

    def check(self, request: QueryRequest) -> StatementInfo:
        """Validate ``request``; return what its statement is.

        Raises:
            RequestRejectedError: the request must not run; the message says why.
        """
        if len(request.sql) > self.max_sql_length:
            raise RequestRejectedError(
                f"SQL is {len(request.sql)} characters; the limit is {self.max_sql_length}"
            )
        if request.many:
            if len(request.params) > self.max_batch:
                raise RequestRejectedError(
                    f"executemany with {len(request.params)} parameter lists; "
                    f"the limit is {self.max_batch}"
                )
            if not all(isinstance(p, list) for p in request.params):
                raise RequestRejectedError("executemany needs a list of parameter lists")
        elif len(request.params) > self.max_parameters:
            raise RequestRejectedError(
                f"{len(request.params)} parameters; the limit is {self.max_parameters}"
            )
        info = analyze(request.sql)
        if info.statement_count != 1:
            raise RequestRejectedError(
                f"exactly one SQL statement per request is allowed, got {info.statement_count}"
            )
        if info.refusal is not None:
            raise RequestRejectedError(f"{info.statement_type} is not allowed: {info.refusal}")
        if info.operation is OperationType.DDL and not self.allow_ddl:
            raise RequestRejectedError("DDL is not allowed through this adapter")
        declared = request.op
        if declared is not None:
            if declared is not info.operation:
                raise RequestRejectedError(
                    f"declared operation {declared.value} but the statement is "
                    f"{info.operation.value}"
                )
            if declared is OperationType.SELECT and info.writes:
                raise RequestRejectedError(
                    "declared operation SELECT but the statement writes (a data-modifying "
                    "CTE or SELECT INTO)"
                )
        return info
