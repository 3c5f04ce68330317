"""Running a statement as the caller's role, PostgREST's way, and proving it stayed there.

The adapter logs in as one ordinary role (the "authenticator" of PostgREST's
recipe) that is granted the roles callers may act as. A request with a
verified :class:`~querybus.execution.Identity` runs in one transaction::

    BEGIN;
    SELECT set_config('role', <role>, true),                  -- SET LOCAL ROLE
           set_config('request.jwt.claims', <claims>, true);  -- readable by RLS policies
    <the caller's statement>;
    SELECT <current_user and the claims are still what we set, else raise>;
    COMMIT;

so GRANTs and row-level security decide what the statement may do, and
nothing of it outlives the transaction. Why this holds against a hostile
caller (the escape table is ``tests/integration/test_identity_escape.py``):

* statements that change the role or settings (``SET``/``RESET ROLE``,
  ``SET SESSION AUTHORIZATION``, ``set_config``, ``DO``, transaction control)
  are refused by parse tree before anything runs (:mod:`querybus.sql`);
* what the parse tree cannot see — a function of the schema that runs
  ``SET ROLE`` through dynamic SQL, which works because the login is a
  member of every allowed role — is caught after the statement and before
  the commit and the reply: the check fails, the transaction is rolled back,
  the connection is closed, and the caller gets
  :class:`~querybus.errors.PermissionDeniedError` without any rows;
* ``SET SESSION AUTHORIZATION`` needs a superuser login, which adapters
  refuse (:func:`querybus.database.session.check_login`), and every allowed
  role is checked at start not to be a superuser (:func:`check_roles`).

The role and the claims are sent hex-encoded and decoded by
``pg_catalog`` functions, every name schema-qualified: no quoting to get
wrong, and nothing a caller created in another schema is called.

Three round trips instead of one: ``BEGIN`` travels with the
``set_config`` call, and the check with ``COMMIT``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg

from querybus.database.errors import DATABASE_ERRORS, map_database_error
from querybus.errors import ConfigurationError, PermissionDeniedError
from querybus.execution import Identity, Job, Outcome

__all__ = [
    "CLAIMS_SETTING",
    "RoleEscapeError",
    "check_identity",
    "check_roles",
    "check_sql",
    "enter_sql",
    "escaped",
    "run_guarded",
    "text_literal",
]

#: The setting the claims are in, PostgREST's name:
#: ``current_setting('request.jwt.claims', true)::json->>'tenant'``.
CLAIMS_SETTING = "request.jwt.claims"

#: Marks the check's own failure, to tell it from a failing COMMIT (a deferred
#: constraint, a serialization failure), which is the statement's error.
_ESCAPE_MARK = "querybus: role or claims changed"


class RoleEscapeError(Exception):
    """The statement left the caller's role or claims. Not a querybus error
    on purpose: whoever runs the statement must roll back (on the way out of
    the transaction), then close the connection, then report
    :class:`~querybus.errors.PermissionDeniedError`."""


def text_literal(value: str) -> str:
    """``value`` as a SQL expression, without quoting: hex digits only."""
    return f"pg_catalog.convert_from(pg_catalog.decode('{value.encode().hex()}', 'hex'), 'UTF8')"


def enter_sql(identity: Identity | None, begin: str = "BEGIN") -> str:
    """``begin`` (a ``BEGIN …`` command), then, with an identity, its role and
    claims for the rest of the transaction: one simple-protocol round trip.
    Interactive transactions (:mod:`querybus.database.transactions`) pass
    their ``BEGIN ISOLATION LEVEL …``."""
    if identity is None:  # guarded only for a row limit: the login's own role
        return begin
    return (
        f"{begin}; SELECT pg_catalog.set_config('role', "
        f"{text_literal(identity.role)}, true), pg_catalog.set_config('{CLAIMS_SETTING}', "
        f"{text_literal(identity.claims)}, true)"
    )


def _check(identity: Identity) -> str:
    # Not a constant expression (current_user is only stable), so the planner
    # cannot fold the failing branch into an error that fires every time.
    return (
        "SELECT CASE WHEN current_user OPERATOR(pg_catalog.=) "
        f"{text_literal(identity.role)}::pg_catalog.name "
        f"AND pg_catalog.current_setting('{CLAIMS_SETTING}', true) OPERATOR(pg_catalog.=) "
        f"{text_literal(identity.claims)} THEN 0 ELSE "
        f"pg_catalog.concat('{_ESCAPE_MARK}; now ', current_user)::pg_catalog.int4 END"
    )


def _escaped(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.InvalidTextRepresentationError) and _ESCAPE_MARK in str(exc)


def check_sql(identity: Identity) -> str:
    """The check that the transaction still runs as ``identity``'s role with
    its claims (an error, recognised by :func:`escaped`, when not)."""
    return _check(identity)


def escaped(exc: BaseException) -> bool:
    """Whether ``exc`` is the failure of :func:`check_sql` (not the statement's)."""
    return _escaped(exc)


async def check_identity(conn: asyncpg.Connection, identity: Identity, timeout: float) -> None:
    """Check, inside an open transaction and without ending it, that it still
    runs as ``identity``'s role with its claims: after each statement of an
    interactive transaction.

    Raises:
        RoleEscapeError: it does not (roll back, then close the connection).
        asyncpg errors of the check itself, unmapped.
    """
    try:
        await conn.execute(_check(identity), timeout=timeout)
    except DATABASE_ERRORS as exc:
        if not _escaped(exc):
            raise
        raise RoleEscapeError(
            "the statement changed the role or the claims it runs with (through a "
            "function of the schema?): the transaction was rolled back"
        ) from None


async def _abandon(conn: asyncpg.Connection) -> None:
    """Roll back; a connection that cannot is closed rather than reused."""
    if conn.is_closed():
        return
    try:
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK", timeout=5.0)
    except DATABASE_ERRORS:
        conn.terminate()


async def run_guarded(
    conn: asyncpg.Connection,
    job: Job,
    statement: Callable[[], Awaitable[Outcome]],
    *,
    in_transaction: bool = False,
) -> Outcome:
    """Run ``statement`` as ``job.identity``'s role, with its claims, and
    within ``job.max_rows``.

    Args:
        statement: runs the job's statement on ``conn`` (it joins the transaction).
        in_transaction: the caller (the idempotency store) already opened the
            transaction and commits it: this only enters the role, checks it,
            and goes back to the login's role for the caller's bookkeeping.

    Raises:
        PermissionDeniedError: the statement returned more rows than the role
            may receive; nothing was committed.
        RoleEscapeError: it changed its role or claims; nothing was committed,
            and the connection must be closed.
        asyncpg errors of the statement, unmapped (the transaction is rolled back).
    """
    identity = job.identity
    enter = enter_sql(identity)
    if in_transaction:
        enter = enter.removeprefix("BEGIN").removeprefix(";").strip()
    try:
        if enter:
            await conn.execute(enter, timeout=job.deadline.left())
        outcome = await statement()
        if job.max_rows is not None and len(outcome.rows) > job.max_rows:
            role = identity.role if identity is not None else "this adapter's login"
            raise PermissionDeniedError(
                f"the statement returned more than {job.max_rows} rows, the most role "
                f"{role!r} may receive; nothing was committed (add a LIMIT or page through "
                "the rows)"
            )
        leave = [] if identity is None else [_check(identity)]
        leave.append("RESET ROLE" if in_transaction else "COMMIT")
        try:
            await conn.execute("; ".join(leave), timeout=job.deadline.left())
        except DATABASE_ERRORS as exc:
            if not _escaped(exc):
                raise
            raise RoleEscapeError(
                "the statement changed the role or the claims it runs with (through a "
                "function of the schema?): it was rolled back and nothing is returned"
            ) from None
    except BaseException:
        if not in_transaction:
            await _abandon(conn)
        raise
    return outcome


_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")

_ROLE_RIGHTS = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolbypassrls, r.rolcanlogin,
       pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') AS granted,
       ARRAY(
           SELECT m FROM pg_catalog.unnest($2::text[]) AS m
            WHERE pg_catalog.pg_has_role(r.oid, m, 'MEMBER')) AS server_roles
  FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1::text[])
"""
_SERVER_ACCESS_ROLES = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
]


async def check_roles(conn: asyncpg.Connection, roles: Iterable[str]) -> list[str]:
    """Check, at start, that every role callers may act as is safe to become.

    Each must exist, be granted to the login (PostgREST's recipe:
    ``GRANT reader TO authenticator``), and be neither a superuser nor able
    to create roles or run programs or read and write files on the server.

    Returns:
        warnings for an operator (a role that bypasses row-level security, or
        that can log in by itself).

    Raises:
        ConfigurationError: a role is missing, not granted, or too powerful.
        OperationalError: the connection failed.
    """
    wanted = sorted(set(roles))
    for name in wanted:
        if not _ROLE_NAME.match(name):
            raise ConfigurationError(f"role {name!r} is not a plain lower-case identifier")
    try:
        rows: list[Any] = await conn.fetch(_ROLE_RIGHTS, wanted, _SERVER_ACCESS_ROLES)
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc, conn) from exc
    found = {row["rolname"]: row for row in rows}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ConfigurationError(f"roles in QUERYBUS_ROLES do not exist: {', '.join(missing)}")
    warnings = []
    for name in wanted:
        row = found[name]
        if not row["granted"]:
            raise ConfigurationError(
                f"role {name!r} is not granted to the adapter's login: GRANT {name} TO <login>"
            )
        powers = [p for p, held in (("SUPERUSER", row[1]), ("CREATEROLE", row[2])) if held]
        powers += [f"member of {m}" for m in row["server_roles"]]
        if powers:
            raise ConfigurationError(
                f"role {name!r} has {', '.join(powers)}: a caller acting as it could take "
                "over the server; callers' roles must be ordinary roles"
            )
        if row["rolbypassrls"]:
            warnings.append(f"role {name!r} bypasses row-level security (BYPASSRLS)")
        if row["rolcanlogin"]:
            warnings.append(f"role {name!r} can log in by itself; PostgREST's recipe uses NOLOGIN")
    return warnings
