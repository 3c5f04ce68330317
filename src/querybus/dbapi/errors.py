"""The PEP 249 exceptions (psycopg2's names and tree) and how a querybus error becomes one.

:func:`_translate` classes a querybus error as psycopg2 classes the server's:
by SQLSTATE (``_BY_CLASS``, the first two characters), with
:class:`QueryCanceledError` for 57014 and :class:`TransactionRollbackError`
for class 40; errors of the bus itself get the PEP 249 class of what went wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from querybus import errors as qb

if TYPE_CHECKING:
    from querybus.dbapi.cursor import Cursor


class Warning(Exception):
    pass


class Diagnostics:
    """psycopg2's ``Error.diag``: the fields of the server's error report."""

    def __init__(
        self,
        sqlstate: str | None = None,
        message_primary: str | None = None,
        message_detail: str | None = None,
        message_hint: str | None = None,
    ) -> None:
        self.sqlstate = sqlstate
        self.message_primary = message_primary
        self.message_detail = message_detail
        self.message_hint = message_hint


class Error(Exception):
    """Base of the PEP 249 errors.

    As in psycopg2: ``pgcode`` is the SQLSTATE, ``pgerror`` the server's
    report (``"ERROR:  …\\nDETAIL:  …\\n"``), ``diag`` its fields, ``cursor``
    the cursor that ran the statement. The querybus error is chained
    (``__cause__``).
    """

    def __init__(
        self,
        message: str = "",
        *,
        pgcode: str | None = None,
        pgerror: str | None = None,
        diag: Diagnostics | None = None,
    ) -> None:
        super().__init__(message)
        self.pgcode = pgcode
        self.pgerror = message if pgerror is None else pgerror
        self.diag = diag or Diagnostics(pgcode, message or None)
        self.cursor: Cursor | None = None


_BaseError = Error


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class TransactionRollbackError(OperationalError):
    """SQLSTATE class 40 (serialization failure, deadlock): run the transaction again.
    psycopg2.extensions.TransactionRollbackError."""


class QueryCanceledError(OperationalError):
    """SQLSTATE 57014 (statement timeout, cancel). psycopg2.extensions.QueryCanceledError."""


# psycopg2's mapping of SQLSTATE classes (the first two characters) to exceptions.
_BY_CLASS: dict[str, type[Error]] = {
    "0A": NotSupportedError,
    "08": OperationalError,  # connection exceptions (psycopg2 raises these from libpq)
    "20": ProgrammingError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": OperationalError,
    "27": OperationalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": OperationalError,
    "38": InternalError,
    "39": InternalError,
    "3B": InternalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": TransactionRollbackError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": InternalError,
    "HV": OperationalError,
    "P0": InternalError,
    "XX": InternalError,
}


def _error_class(exc: qb.QueryBusError) -> type[Error]:
    if isinstance(exc, qb.QueryError):
        code = exc.sqlstate or ""
        if code == "57014":
            return QueryCanceledError
        return _BY_CLASS.get(code[:2], DatabaseError)
    if isinstance(exc, (qb.RateLimitedError, qb.DeadlineExceededError)):
        return OperationalError  # refused for now, not for what it is
    if isinstance(exc, qb.RequestRejectedError):
        return ProgrammingError  # validation, permissions, size: the request itself
    if isinstance(exc, (qb.InterfaceError, qb.ConfigurationError)):
        return InterfaceError
    if isinstance(
        exc,
        (
            qb.TransportError,
            qb.RoutingError,
            qb.RegistryError,
            qb.TransactionLostError,
            qb.TransactionBusyError,
            qb.ResultTooLargeError,
        ),
    ):
        return OperationalError
    return InternalError


def _translate(exc: qb.QueryBusError, cursor: Cursor | None = None) -> Error:
    """The PEP 249 exception for a querybus error, classed by SQLSTATE as psycopg2 does."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, qb.QueryError):
        message = exc.message
        detail, hint = exc.detail, exc.hint
        report = f"ERROR:  {message}\n"
        if detail:
            report += f"DETAIL:  {detail}\n"
        if hint:
            report += f"HINT:  {hint}\n"
        err = _error_class(exc)(
            message,
            pgcode=sqlstate,
            pgerror=report,
            diag=Diagnostics(sqlstate, message, detail, hint),
        )
    else:
        err = _error_class(exc)(str(exc), pgcode=sqlstate)
    err.cursor = cursor
    return err
