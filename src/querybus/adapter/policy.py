"""Request validation: what an adapter refuses before anything reaches the database.

An adapter executes SQL that arrives from a bus, so it checks every request
by PostgreSQL's own parse tree (:func:`querybus.sql.analyze`, whose
:class:`~querybus.sql.Statement` it returns for the layers below):
exactly one statement; the declared operation matches it; nothing that
changes the session or runs code the checks cannot see (``SET``, ``DO``,
``set_config``, ``COPY``, ``LOAD``, role and server administration, …: the
full list with the threat each stops is in ``docs/security.md``); DDL only
when enabled; and sizes within limits. Refusals are
:class:`~querybus.errors.RequestRejectedError`; nothing runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from querybus.errors import ConfigurationError, RequestRejectedError
from querybus.protocol.messages import OperationType, QueryRequest
from querybus.sql import Statement, analyze

__all__ = ["Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits and rules for requests.

    Attributes:
        max_sql_length: longest SQL text accepted, in characters.
        max_parameters: most parameters in one statement (PostgreSQL's own limit is 65,535).
        max_batch: most parameter lists in one ``executemany``.
        max_value_depth: deepest nesting of a parameter value (arrays, JSON
            objects and lists, tagged values all count one level each).
        allow_ddl: whether DDL (and anything else that changes the schema or
            the server's state: ``CREATE FUNCTION``, ``CREATE EXTENSION``,
            ``SELECT INTO``, ``VACUUM``, …) may run through the bus. Off by
            default (``QUERYBUS_ALLOW_DDL``).
    """

    max_sql_length: int = 100_000
    max_parameters: int = 65_535
    max_batch: int = 10_000
    max_value_depth: int = 32
    allow_ddl: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Policy:
        """The policy ``querybus serve`` applies: ``QUERYBUS_ALLOW_DDL``,
        ``QUERYBUS_MAX_SQL_LENGTH``, ``QUERYBUS_MAX_PARAMETERS``,
        ``QUERYBUS_MAX_BATCH``.

        Raises:
            ConfigurationError: a value is not a number.
        """
        env = os.environ if env is None else env
        d = cls()

        def number(name: str, default: int) -> int:
            raw = env.get(name) or str(default)
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None

        return cls(
            max_sql_length=number("QUERYBUS_MAX_SQL_LENGTH", d.max_sql_length),
            max_parameters=number("QUERYBUS_MAX_PARAMETERS", d.max_parameters),
            max_batch=number("QUERYBUS_MAX_BATCH", d.max_batch),
            allow_ddl=(env.get("QUERYBUS_ALLOW_DDL") or "0").lower() in ("1", "true", "yes", "on"),
        )

    def check(self, request: QueryRequest) -> Statement:
        """Validate ``request``; return what its statement is.

        Raises:
            RequestRejectedError: the request must not run; the message says why.
        """
        if len(request.sql) > self.max_sql_length:
            raise RequestRejectedError(
                f"SQL is {len(request.sql)} characters; the limit is {self.max_sql_length}"
            )
        if "\x00" in request.sql:
            # The parser would stop reading at it, and PostgreSQL refuses the
            # message: the SQL checked would not be the SQL sent.
            raise RequestRejectedError("SQL must not contain a NUL character")
        if request.many:
            if len(request.params) > self.max_batch:
                raise RequestRejectedError(
                    f"executemany with {len(request.params)} parameter lists; "
                    f"the limit is {self.max_batch}"
                )
            if not all(isinstance(p, list) for p in request.params):
                raise RequestRejectedError("executemany needs a list of parameter lists")
            if any(len(p) > self.max_parameters for p in request.params):
                raise RequestRejectedError(
                    f"a parameter list is longer than the limit of {self.max_parameters}"
                )
        elif len(request.params) > self.max_parameters:
            raise RequestRejectedError(
                f"{len(request.params)} parameters; the limit is {self.max_parameters}"
            )
        if _too_deep(request.params, self.max_value_depth + (1 if request.many else 0)):
            raise RequestRejectedError(
                f"a parameter value is nested more than {self.max_value_depth} levels deep"
            )
        info = analyze(request.sql)
        if info.error is not None:
            raise RequestRejectedError(info.error)
        if info.statement_count != 1:
            raise RequestRejectedError(
                f"exactly one SQL statement per request is allowed, got {info.statement_count}"
            )
        if info.refusal is not None:
            raise RequestRejectedError(info.refusal)
        if info.needs_ddl and not self.allow_ddl:
            raise RequestRejectedError(
                f"{info.statement_type} changes the schema or the server's state, and DDL is "
                "not enabled on this adapter (QUERYBUS_ALLOW_DDL)"
            )
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


def _too_deep(params: list[Any], limit: int) -> bool:
    """Whether any value in ``params`` nests deeper than ``limit`` (iteratively:
    a hostile value must not exhaust the stack of the check itself)."""
    stack: list[tuple[Any, int]] = [(v, 1) for v in params if type(v) in (list, dict)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if type(value) is dict else value
        stack.extend((c, depth + 1) for c in children if type(c) in (list, dict))
    return False
