"""Session hygiene and the login's rights.

:data:`RESET_SESSION` undoes every kind of state a statement can leave in a
pooled connection and checks the result in the same round trip;
:func:`check_login` refuses a login that lets a caller's SQL act on the
database host (see ``docs/security.md``).
"""

from __future__ import annotations

import asyncpg

from querybus.database.errors import DATABASE_ERRORS, map_database_error
from querybus.errors import ConfigurationError

__all__ = ["RESET_SESSION", "check_login", "reset_session"]


#: Undoes every kind of state a statement can leave in a session, then checks
#: it in the same round trip (one simple-protocol query). ``RESET ALL`` leaves
#: the role and the session authorization alone, hence the first two lines.
#: The check fails (and the connection is closed) if the role is still not
#: the login's, a setting still differs from the session's start values, or
#: a holdable cursor or temporary table survived. (LISTEN is not checked
#: here: the lines run as one implicit transaction, and UNLISTEN takes effect
#: when it commits.)
RESET_SESSION = """
SET SESSION AUTHORIZATION DEFAULT;
RESET ROLE;
RESET ALL;
CLOSE ALL;
UNLISTEN *;
SELECT pg_advisory_unlock_all();
DISCARD TEMP;
DISCARD SEQUENCES;
DO $querybus_reset$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT p.name FROM pg_prepared_statements p WHERE p.from_sql LOOP
        EXECUTE format('DEALLOCATE %I', name);
    END LOOP;
    IF current_user <> session_user
       OR EXISTS (SELECT FROM pg_settings WHERE source = 'session')
       OR EXISTS (SELECT FROM pg_cursors WHERE is_holdable)
       OR EXISTS (SELECT FROM pg_class WHERE relnamespace = pg_my_temp_schema())
    THEN
        RAISE EXCEPTION 'querybus: the session could not be reset';
    END IF;
END
$querybus_reset$;
"""


async def reset_session(conn: asyncpg.Connection) -> None:
    """Undo whatever the statement may have left in the session (and check
    it); a connection that cannot be reset is closed rather than handed to
    the next request."""
    try:
        if conn.is_in_transaction():  # nothing we run leaves one open; be sure
            await conn.execute("ROLLBACK", timeout=5.0)
        await conn.execute(RESET_SESSION, timeout=5.0)
    except DATABASE_ERRORS:
        conn.terminate()


_LOGIN_RIGHTS = """
SELECT r.rolsuper, r.rolcreaterole,
       array(SELECT m FROM unnest($1::text[]) AS m WHERE pg_has_role(session_user, m, 'MEMBER'))
  FROM pg_catalog.pg_roles r WHERE r.rolname = session_user
"""
_SERVER_ACCESS_ROLES = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
]


async def check_login(conn: asyncpg.Connection, *, allow_superuser: bool = False) -> None:
    """Refuse a login that lets a caller's SQL act on the database host.

    A superuser (or a member of ``pg_execute_server_program``,
    ``pg_read_server_files``, ``pg_write_server_files``) can run programs and
    read or write files as the server's OS user; a role with ``CREATEROLE``
    can grant itself those memberships. Adapters run callers' SQL, so they
    must log in as an ordinary role (``infra/postgres/adapter_role.sql``).

    Raises:
        ConfigurationError: the login has one of those rights and
            ``allow_superuser`` is False.
        OperationalError: the connection failed.
    """
    try:
        row = await conn.fetchrow(_LOGIN_RIGHTS, _SERVER_ACCESS_ROLES)
        user = await conn.fetchval("SELECT session_user")
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc, conn) from exc
    if row is None:
        return
    rights = [name for name, held in (("SUPERUSER", row[0]), ("CREATEROLE", row[1])) if held]
    rights += [f"member of {m}" for m in row[2]]
    if not rights or allow_superuser:
        return
    raise ConfigurationError(
        f"the database login {user!r} has {', '.join(rights)}: callers' SQL could run "
        "programs or read and write files on the database host. Log in as an ordinary role "
        "(see infra/postgres/adapter_role.sql), or pass --allow-superuser "
        "(QUERYBUS_ALLOW_SUPERUSER=1) if you really mean it."
    )
