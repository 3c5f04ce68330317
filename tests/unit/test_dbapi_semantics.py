"""querybus.dbapi behaves as psycopg2 does, checked on a recording stand-in for the bus.

The connection's transaction handling (implicit BEGIN, commit, rollback,
``with conn:``, ``close()``, autocommit, ``set_session``), the cursor's state
(description, rowcount, fetch errors), error classes by SQLSTATE, type
objects, and psycopg2's adaptation (tuples, ``mogrify``) need no broker: the
stand-in records what would have been sent. The same behaviour on a real
adapter is in tests/integration/test_dbapi_transactions.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

import querybus.dbapi as dbapi
from querybus import errors as qb
from querybus.client.result import Result, row_type
from querybus.protocol.messages import Column


def _select(names: list[str], types: list[str], rows: list[tuple[Any, ...]]) -> Result:
    columns = [Column(n, t) for n, t in zip(names, types, strict=True)]
    rt = row_type(columns)
    return Result(
        rows=[rt(r) for r in rows],
        columns=columns,
        command=f"SELECT {len(rows)}",
        rowcount=len(rows),
    )


class FakeTransaction:
    def __init__(self, bus: FakeBus, options: dict[str, Any]) -> None:
        self.bus = bus
        bus.log.append(("BEGIN", options))

    def defer(self) -> FakeTransaction:
        # BEGIN travels with the first statement: recorded here all the same.
        return self

    def request(self, sql: str, params: Any = (), **options: Any) -> Result:
        return self.bus.answer("tx", sql, list(params))

    def executemany(self, sql: str, args: Any, **options: Any) -> None:
        self.bus.answer("tx-many", sql, [list(a) for a in args])

    def commit(self) -> None:
        self.bus.log.append(("COMMIT",))
        if self.bus.commit_error is not None:
            raise self.bus.commit_error

    def rollback(self) -> None:
        self.bus.log.append(("ROLLBACK",))
        if self.bus.rollback_error is not None:
            raise self.bus.rollback_error


class FakeBus:
    """Stands in for SyncQueryClient: records requests, answers from ``results``."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.results: dict[str, Result | Exception] = {}
        self.commit_error: Exception | None = None
        self.rollback_error: Exception | None = None
        self.closed = False

    def answer(self, where: str, sql: str, params: Any) -> Result:
        self.log.append((where, sql, params))
        outcome = self.results.get(sql, Result(rows=[], command="UPDATE 1", rowcount=1))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def transaction(self, **options: Any) -> FakeTransaction:
        return FakeTransaction(self, options)

    def request(self, sql: str, params: Any = (), **options: Any) -> Result:
        return self.answer("auto", sql, list(params))

    def executemany(self, sql: str, args: Any, **options: Any) -> None:
        self.answer("auto-many", sql, [list(a) for a in args])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def conn(bus: FakeBus) -> dbapi.Connection:
    return dbapi.Connection(bus)  # type: ignore[arg-type]


def kinds(bus: FakeBus) -> list[Any]:
    return [
        entry[0] if entry[0] in ("BEGIN", "COMMIT", "ROLLBACK") else entry[:2] for entry in bus.log
    ]


BEGIN_DEFAULT = ("BEGIN", {"isolation": None, "readonly": False, "deferrable": False})


# -- transactions -------------------------------------------------------------------


def test_the_first_statement_begins_a_transaction_that_lasts_until_commit(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    cur = conn.cursor()
    assert not conn.autocommit
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
    cur.execute("UPDATE a SET x = 1")
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_INTRANS
    conn.cursor().execute("SELECT 1")  # another cursor: the same transaction
    conn.commit()
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
    cur.execute("UPDATE a SET x = 2")
    conn.rollback()
    assert bus.log[0] == BEGIN_DEFAULT
    assert kinds(bus) == [
        "BEGIN",
        ("tx", "UPDATE a SET x = 1"),
        ("tx", "SELECT 1"),
        "COMMIT",
        "BEGIN",
        ("tx", "UPDATE a SET x = 2"),
        "ROLLBACK",
    ]


def test_commit_and_rollback_without_a_transaction_do_nothing(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    conn.commit()
    conn.rollback()
    assert bus.log == []


def test_autocommit_runs_each_statement_on_its_own(bus: FakeBus, conn: dbapi.Connection) -> None:
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("UPDATE a SET x = %s", (1,))
    cur.executemany("INSERT INTO a VALUES (%s)", [(1,), (2,)])
    conn.commit()
    conn.rollback()
    assert bus.log == [
        ("auto", "UPDATE a SET x = $1", [1]),
        ("auto-many", "INSERT INTO a VALUES ($1)", [[1], [2]]),
    ]
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE


def test_autocommit_and_set_session_are_refused_inside_a_transaction(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    conn.cursor().execute("SELECT 1")
    with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
        conn.autocommit = True
    with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
        conn.set_session(readonly=True)
    with pytest.raises(dbapi.ProgrammingError, match="inside a transaction"):
        conn.isolation_level = "serializable"
    conn.rollback()
    conn.autocommit = True
    assert conn.autocommit


def test_with_conn_commits_or_rolls_back_and_keeps_the_connection_open(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    with conn:
        conn.cursor().execute("UPDATE a SET x = 1")
    assert not conn.closed

    def fail_inside() -> None:
        with conn:
            conn.cursor().execute("UPDATE a SET x = 2")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_inside()
    assert not conn.closed
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE a SET x = 3")
    assert cur.closed
    assert not conn.closed
    assert kinds(bus) == [
        "BEGIN",
        ("tx", "UPDATE a SET x = 1"),
        "COMMIT",
        "BEGIN",
        ("tx", "UPDATE a SET x = 2"),
        "ROLLBACK",
        "BEGIN",
        ("tx", "UPDATE a SET x = 3"),
        "COMMIT",
    ]


def test_close_rolls_back_and_everything_after_it_is_an_interface_error(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    cur = conn.cursor()
    cur.execute("UPDATE a SET x = 1")
    conn.close()
    assert kinds(bus)[-1] == "ROLLBACK"
    assert bus.closed
    assert conn.closed
    assert cur.closed
    conn.close()  # idempotent, as psycopg2's
    for call in (
        conn.cursor,
        conn.commit,
        conn.rollback,
        lambda: cur.execute("SELECT 1"),
        cur.fetchall,
        conn.__enter__,
    ):
        with pytest.raises(dbapi.InterfaceError):
            call()


def test_close_closes_even_when_the_rollback_fails(bus: FakeBus, conn: dbapi.Connection) -> None:
    conn.cursor().execute("UPDATE a SET x = 1")
    bus.rollback_error = qb.RequestTimeoutError("no reply")
    conn.close()
    assert conn.closed
    assert bus.closed


def test_a_failed_statement_leaves_the_transaction_aborted_until_rollback(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    bus.results["INSERT dup"] = qb.query_error_class("23505")(
        "duplicate key value violates unique constraint", sqlstate="23505", detail="Key (id)=(1)"
    )
    cur = conn.cursor()
    cur.execute("UPDATE a SET x = 1")
    with pytest.raises(dbapi.IntegrityError) as caught:
        cur.execute("INSERT dup")
    err = caught.value
    assert err.pgcode == "23505"
    assert err.pgerror == (
        "ERROR:  duplicate key value violates unique constraint\nDETAIL:  Key (id)=(1)\n"
    )
    assert err.diag.message_detail == "Key (id)=(1)"
    assert err.cursor is cur
    assert isinstance(err.__cause__, qb.IntegrityConstraintViolationError)
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_INERROR
    conn.rollback()
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
    assert kinds(bus) == [
        "BEGIN",
        ("tx", "UPDATE a SET x = 1"),
        ("tx", "INSERT dup"),
        "ROLLBACK",
    ]


def test_commit_after_a_failed_statement_rolls_back_as_postgresql_does(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    bus.results["BAD"] = qb.query_error_class("22012")("division by zero", sqlstate="22012")
    cur = conn.cursor()
    cur.execute("UPDATE a SET x = 1")
    with pytest.raises(dbapi.DataError):
        cur.execute("BAD")
    conn.commit()  # psycopg2: no error; nothing of the transaction is kept
    assert kinds(bus)[-1] == "ROLLBACK"
    assert "COMMIT" not in kinds(bus)
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE


def test_a_lost_transaction_fails_every_statement_until_rollback(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    bus.results["UPDATE lost"] = qb.TransactionLostError("the adapter stopped")
    cur = conn.cursor()
    cur.execute("UPDATE a SET x = 1")
    with pytest.raises(dbapi.OperationalError, match="adapter stopped"):
        cur.execute("UPDATE lost")
    sent = len(bus.log)
    # Not sent anywhere (nor in a new transaction): that would half-apply the work.
    with pytest.raises(dbapi.OperationalError, match="rollback"):
        cur.execute("UPDATE a SET x = 2")
    assert len(bus.log) == sent
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_INERROR
    with pytest.raises(dbapi.ProgrammingError):
        conn.autocommit = True
    conn.rollback()  # nothing to send: the adapter rolled it back
    assert len(bus.log) == sent
    cur.execute("UPDATE a SET x = 3")
    assert kinds(bus)[-2:] == ["BEGIN", ("tx", "UPDATE a SET x = 3")]


def test_commit_of_a_lost_transaction_raises(bus: FakeBus, conn: dbapi.Connection) -> None:
    bus.results["UPDATE lost"] = qb.TransactionLostError("idle timeout")
    with pytest.raises(dbapi.OperationalError):
        conn.cursor().execute("UPDATE lost")
    with pytest.raises(dbapi.OperationalError, match="nothing of it committed"):
        conn.commit()
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE


def test_a_failed_commit_ends_the_transaction(bus: FakeBus, conn: dbapi.Connection) -> None:
    conn.cursor().execute("UPDATE a SET x = 1")
    bus.commit_error = qb.query_error_class("23503")("deferred fk", sqlstate="23503")
    with pytest.raises(dbapi.IntegrityError):
        conn.commit()
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
    bus.rollback_error = qb.TransactionLostError("gone")
    conn.cursor().execute("UPDATE a SET x = 2")
    conn.rollback()  # a lost transaction is rolled back: no error
    assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE


def test_set_session_chooses_how_transactions_begin(bus: FakeBus, conn: dbapi.Connection) -> None:
    conn.set_session(isolation_level="SERIALIZABLE", readonly=True, deferrable=True)
    assert conn.isolation_level == dbapi.ISOLATION_LEVEL_SERIALIZABLE
    assert conn.readonly is True
    assert conn.deferrable is True
    conn.cursor().execute("SELECT 1")
    conn.rollback()
    conn.set_session(readonly=None)  # None: unchanged, as in psycopg2
    assert conn.readonly is True
    conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT", deferrable=False)
    conn.isolation_level = dbapi.ISOLATION_LEVEL_REPEATABLE_READ
    conn.cursor().execute("SELECT 1")
    conn.rollback()
    conn.isolation_level = None
    assert conn.isolation_level is None
    conn.readonly = False
    conn.cursor().execute("SELECT 1")
    begins = [entry[1] for entry in bus.log if entry[0] == "BEGIN"]
    assert begins == [
        {"isolation": "serializable", "readonly": True, "deferrable": True},
        {"isolation": "repeatable_read", "readonly": False, "deferrable": False},
        {"isolation": None, "readonly": False, "deferrable": False},
    ]


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("read committed", 1),
        ("REPEATABLE READ", 2),
        ("serializable", 3),
        ("read uncommitted", 4),
        (1, 1),
        (4, 4),
        (None, None),
        ("default", None),
    ],
)
def test_isolation_levels_are_read_as_psycopg2_reads_them(
    conn: dbapi.Connection, value: Any, level: int | None
) -> None:
    conn.set_session(isolation_level=dbapi.ISOLATION_LEVEL_SERIALIZABLE)
    conn.isolation_level = value
    assert conn.isolation_level == level


def test_isolation_levels_psycopg2_refuses(conn: dbapi.Connection) -> None:
    with pytest.raises(ValueError, match="between 1 and 4"):
        conn.set_session(isolation_level=0)
    with pytest.raises(ValueError, match="between 1 and 4"):
        conn.isolation_level = 5
    with pytest.raises(ValueError, match="bad value"):
        conn.isolation_level = "chaos"


def test_set_isolation_level_rolls_back_and_may_turn_autocommit_on(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    conn.cursor().execute("UPDATE a SET x = 1")
    conn.set_isolation_level(dbapi.ISOLATION_LEVEL_AUTOCOMMIT)
    assert conn.autocommit
    assert kinds(bus)[-1] == "ROLLBACK"
    conn.set_isolation_level(dbapi.ISOLATION_LEVEL_SERIALIZABLE)
    assert not conn.autocommit
    assert conn.isolation_level == dbapi.ISOLATION_LEVEL_SERIALIZABLE


def test_set_session_may_turn_autocommit_on(conn: dbapi.Connection) -> None:
    conn.set_session(autocommit=True)
    assert conn.autocommit
    conn.set_session(autocommit=False)
    assert not conn.autocommit


# -- cursors ------------------------------------------------------------------------


def test_cursor_state_follows_psycopg2(bus: FakeBus, conn: dbapi.Connection) -> None:
    bus.results["SELECT"] = _select(
        ["id", "name"], ["int4", "varchar"], [(1, "a"), (2, "b"), (3, "c")]
    )
    bus.results["DDL"] = Result(rows=[], command="CREATE TABLE")
    bus.results["INSERT"] = Result(rows=[], command="INSERT 0 2", rowcount=2)
    cur = conn.cursor()
    assert cur.rowcount == -1
    assert cur.description is None
    assert cur.query is None
    assert cur.arraysize == 1
    with pytest.raises(dbapi.ProgrammingError, match="no results to fetch"):
        cur.fetchone()
    cur.execute("SELECT")
    assert cur.rowcount == 3
    assert cur.statusmessage == "SELECT 3"
    assert cur.description is not None
    assert [d.name for d in cur.description] == ["id", "name"]
    assert all(len(d) == 7 for d in cur.description)
    assert cur.description[0].type_code == dbapi.NUMBER
    assert cur.description[1][1] == dbapi.STRING
    assert cur.description[0].type_code.oid == 23
    assert cur.fetchone() == (1, "a")
    assert type(cur.fetchone()) is tuple
    assert cur.rownumber == 2
    cur.scroll(-2)
    assert cur.fetchmany(2) == [(1, "a"), (2, "b")]
    cur.scroll(0, mode="absolute")
    assert list(cur) == [(1, "a"), (2, "b"), (3, "c")]
    with pytest.raises(dbapi.ProgrammingError, match="out of bounds"):
        cur.scroll(5)
    cur.execute("DDL")
    assert cur.description is None
    assert cur.rowcount == -1
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(dbapi.ProgrammingError, match="no results to fetch"):
            fetch()
    cur.execute("INSERT")
    assert cur.rowcount == 2
    assert cur.lastrowid == 0  # PostgreSQL 12+ tables have no OIDs: psycopg2 gives 0 too
    with pytest.raises(dbapi.ProgrammingError, match="no results to fetch"):
        cur.fetchall()
    assert cur.rowcount == -1  # psycopg2 forgets the count after a failed fetch
    cur.executemany("INSERT %s", [(1,), (2,), (3,)])
    assert cur.rowcount == 3
    with pytest.raises(dbapi.ProgrammingError, match="no results to fetch"):
        cur.fetchall()


def test_a_failed_execute_leaves_no_result_behind(bus: FakeBus, conn: dbapi.Connection) -> None:
    bus.results["SELECT"] = _select(["x"], ["int4"], [(1,)])
    bus.results["BAD"] = qb.query_error_class("42P01")("no table", sqlstate="42P01")
    cur = conn.cursor()
    cur.execute("SELECT")
    with pytest.raises(dbapi.ProgrammingError):
        cur.execute("BAD")
    assert cur.description is None
    assert cur.rowcount == -1
    with pytest.raises(dbapi.ProgrammingError, match="no results to fetch"):
        cur.fetchone()


def test_lastrowid_is_the_oid_of_the_insert_tag(bus: FakeBus, conn: dbapi.Connection) -> None:
    bus.results["INSERT"] = Result(rows=[], command="INSERT 16391 1", rowcount=1)
    cur = conn.cursor()
    cur.execute("INSERT")
    assert cur.lastrowid == 16391


def test_callproc_selects_from_the_function(bus: FakeBus, conn: dbapi.Connection) -> None:
    bus.results["SELECT * FROM lower($1)"] = _select(["lower"], ["text"], [("foo",)])
    cur = conn.cursor()
    assert cur.callproc("lower", ("FOO",)) == ("FOO",)
    assert cur.fetchall() == [("foo",)]
    cur.callproc("f", {"a": 1, 'we"ird': 2})
    cur.callproc("now")
    sent = [entry[1:] for entry in bus.log if entry[0] == "tx"]
    assert sent == [
        ("SELECT * FROM lower($1)", ["FOO"]),
        ('SELECT * FROM f("a" := $1, "we""ird" := $2)', [1, 2]),
        ("SELECT * FROM now()", []),
    ]


def test_unsupported_cursor_features_say_so(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    with pytest.raises(dbapi.NotSupportedError):
        cur.nextset()
    with pytest.raises(dbapi.NotSupportedError):
        conn.cursor("server_side")
    with pytest.raises(dbapi.NotSupportedError):
        cur.copy_expert("COPY t TO STDOUT", None)
    cur.setinputsizes((25,))
    cur.setoutputsize(1000, 0)


def test_executemany_with_different_statements_runs_them_one_by_one(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    cur = conn.cursor()
    cur.executemany("DELETE FROM t WHERE id IN %s", [((1, 2),), ((3,),)])
    cur.executemany("DELETE FROM t WHERE id IN %s", [((1, 2),), ((3, 4),)])
    cur.executemany("DELETE FROM t", [])
    assert cur.rowcount == -1
    assert bus.log[1:] == [
        ("tx", "DELETE FROM t WHERE id IN ($1, $2)", [1, 2]),
        ("tx", "DELETE FROM t WHERE id IN ($1)", [3]),
        ("tx-many", "DELETE FROM t WHERE id IN ($1, $2)", [[1, 2], [3, 4]]),
    ]


def test_a_value_that_cannot_be_adapted_is_refused_before_sending(
    bus: FakeBus, conn: dbapi.Connection
) -> None:
    cur = conn.cursor()
    with pytest.raises(dbapi.ProgrammingError, match="can't adapt type 'object'"):
        cur.execute("SELECT %s", (object(),))
    with pytest.raises(dbapi.ProgrammingError, match="can't adapt type 'set'"):
        cur.executemany("SELECT %s", [({1},)])
    assert bus.log == []


def test_bytes_queries_are_accepted(bus: FakeBus, conn: dbapi.Connection) -> None:
    conn.cursor().execute(b"SELECT %s", ("x",))
    assert bus.log[-1] == ("tx", "SELECT $1", ["x"])


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("0A000", dbapi.NotSupportedError),
        ("08006", dbapi.OperationalError),
        ("21000", dbapi.ProgrammingError),
        ("22012", dbapi.DataError),
        ("23505", dbapi.IntegrityError),
        ("25P02", dbapi.InternalError),
        ("28P01", dbapi.OperationalError),
        ("3D000", dbapi.ProgrammingError),
        ("40001", dbapi.TransactionRollbackError),
        ("40P01", dbapi.TransactionRollbackError),
        ("42601", dbapi.ProgrammingError),
        ("42P01", dbapi.ProgrammingError),
        ("53300", dbapi.OperationalError),
        ("55P03", dbapi.OperationalError),
        ("57014", dbapi.QueryCanceledError),
        ("57P01", dbapi.OperationalError),
        ("P0001", dbapi.InternalError),
        ("XX000", dbapi.InternalError),
        ("01000", dbapi.DatabaseError),
    ],
)
def test_database_errors_are_classed_by_sqlstate_as_psycopg2_classes_them(
    sqlstate: str, expected: type[dbapi.Error]
) -> None:
    err = dbapi._translate(qb.query_error_class(sqlstate)("boom", sqlstate=sqlstate))
    assert type(err) is expected
    assert err.pgcode == sqlstate
    assert err.diag.sqlstate == sqlstate
    assert err.diag.message_primary == "boom"
    assert err.pgerror == "ERROR:  boom\n"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (qb.RequestTimeoutError("slow"), dbapi.OperationalError),
        (qb.BrokerUnavailableError("down"), dbapi.OperationalError),
        (qb.NoEligibleTargetError("none"), dbapi.OperationalError),
        (qb.TransactionLostError("gone"), dbapi.OperationalError),
        (qb.TransactionBusyError("full"), dbapi.OperationalError),
        (qb.RateLimitedError("slow down", retry_after=1.0), dbapi.OperationalError),
        (qb.PermissionDeniedError("no"), dbapi.ProgrammingError),
        (qb.RequestRejectedError("one statement"), dbapi.ProgrammingError),
        (qb.InterfaceError("closed"), dbapi.InterfaceError),
        (qb.ProtocolError("garbled"), dbapi.InternalError),
    ],
)
def test_bus_errors_have_their_pep_249_class(
    error: qb.QueryBusError, expected: type[dbapi.Error]
) -> None:
    assert type(dbapi._translate(error)) is expected


def test_exceptions_follow_pep_249_and_are_connection_attributes(conn: dbapi.Connection) -> None:
    for name in (
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert getattr(conn, name) is getattr(dbapi, name)
    assert issubclass(dbapi.Error, Exception)
    assert issubclass(dbapi.Warning, Exception)
    assert issubclass(dbapi.InterfaceError, dbapi.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError"):
        assert issubclass(getattr(dbapi, name), dbapi.DatabaseError)
    assert issubclass(dbapi.ProgrammingError, dbapi.DatabaseError)
    assert issubclass(dbapi.NotSupportedError, dbapi.DatabaseError)
    assert issubclass(dbapi.TransactionRollbackError, dbapi.OperationalError)


# -- types --------------------------------------------------------------------------


def test_module_globals() -> None:
    assert dbapi.apilevel == "2.0"
    assert dbapi.threadsafety in (1, 2)
    assert dbapi.paramstyle == "pyformat"


def test_type_objects_compare_equal_to_type_codes_names_and_oids() -> None:
    assert dbapi.TypeCode("varchar") == dbapi.STRING
    assert dbapi.TypeCode("text") == dbapi.STRING
    assert dbapi.TypeCode("text") != dbapi.NUMBER
    assert dbapi.NUMBER == "numeric"
    assert dbapi.NUMBER == 23  # psycopg2's type codes are OIDs
    assert dbapi.NUMBER != True  # noqa: E712 - a bool is no OID
    assert dbapi.BINARY == "bytea"
    assert dbapi.ROWID == "oid"
    for name in ("date", "time", "timestamp", "timestamptz", "interval"):
        assert name == dbapi.DATETIME
    assert dbapi.DATETIME != "text"
    assert dbapi.TypeCode("jsonb").oid == 3802
    assert dbapi.TypeCode("int4[]").oid == 1007  # asyncpg's name of an array type
    assert dbapi.TypeCode("my_enum").oid is None
    assert len({dbapi.STRING, dbapi.NUMBER, dbapi.STRING}) == 2


def test_constructors() -> None:
    assert dbapi.Date(2002, 12, 25) == dt.date(2002, 12, 25)
    assert dbapi.Time(13, 45, 30) == dt.time(13, 45, 30)
    assert dbapi.Timestamp(2002, 12, 25, 13, 45, 30) == dt.datetime(2002, 12, 25, 13, 45, 30)
    ticks = dt.datetime(2002, 12, 25, 13, 45, 30).timestamp()  # local time, as PEP 249's
    assert dbapi.DateFromTicks(ticks) == dt.date(2002, 12, 25)
    assert dbapi.TimeFromTicks(ticks) == dt.time(13, 45, 30)
    assert dbapi.TimestampFromTicks(ticks) == dt.datetime(2002, 12, 25, 13, 45, 30)
    assert dbapi.Binary(b"ab") == b"ab"
    assert dbapi.Binary(bytearray(b"")) == b""


# -- adaptation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("WHERE id IN %s", ((1, 2, 3),), ("WHERE id IN ($1, $2, $3)", [1, 2, 3])),
        ("WHERE id IN %s AND x = %s", ((1,), "a"), ("WHERE id IN ($1) AND x = $2", [1, "a"])),
        # One name, one set of placeholders, however often it is used.
        (
            "WHERE a IN %(ids)s OR b IN %(ids)s OR c = %(c)s",
            {"ids": (7, 8), "c": 9},
            ("WHERE a IN ($1, $2) OR b IN ($1, $2) OR c = $3", [7, 8, 9]),
        ),
        # Nested tuples nest.
        (
            "WHERE (a, b) IN %s",
            (((1, "a"), (2, "b")),),
            ("WHERE (a, b) IN (($1, $2), ($3, $4))", [1, "a", 2, "b"]),
        ),
        # PostgreSQL refuses an empty list, as with psycopg2.
        ("WHERE id IN %s", ((),), ("WHERE id IN ()", [])),
        # A list is one value (an array); None is NULL.
        ("WHERE id = ANY(%s)", ([1, 2],), ("WHERE id = ANY($1)", [[1, 2]])),
        ("VALUES (%s)", (None,), ("VALUES ($1)", [None])),
    ],
)
def test_tuples_expand_as_psycopg2_expands_them(
    sql: str, params: Any, expected: tuple[str, list[Any]]
) -> None:
    assert dbapi.convert_placeholders(sql, params) == expected


@pytest.mark.parametrize(
    ("value", "literal"),
    # What psycopg2 2.9 mogrifies "SELECT %s" with each value into.
    [
        (None, b"SELECT NULL"),
        (True, b"SELECT true"),
        (False, b"SELECT false"),
        (1, b"SELECT 1"),
        (-1, b"SELECT  -1"),
        (1.5, b"SELECT 1.5"),
        (-2.5, b"SELECT  -2.5"),
        (float("nan"), b"SELECT 'NaN'::float"),
        (float("inf"), b"SELECT 'Infinity'::float"),
        (float("-inf"), b"SELECT '-Infinity'::float"),
        (decimal.Decimal("1.50"), b"SELECT 1.50"),
        (decimal.Decimal("-3"), b"SELECT  -3"),
        (decimal.Decimal("NaN"), b"SELECT 'NaN'::numeric"),
        ("it's", b"SELECT 'it''s'"),
        ("a\\b", b"SELECT 'a\\b'"),
        ("caf\u00e9", "SELECT 'caf\u00e9'".encode()),
        (b"ab'\x00", b"SELECT '\\x61622700'::bytea"),
        (bytearray(b"x"), b"SELECT '\\x78'::bytea"),
        (memoryview(b"y"), b"SELECT '\\x79'::bytea"),
        (dt.date(2020, 1, 2), b"SELECT '2020-01-02'::date"),
        (dt.time(13, 45, 30), b"SELECT '13:45:30'::time"),
        (
            dt.time(13, 45, 30, 123, tzinfo=dt.UTC),
            b"SELECT '13:45:30.000123+00:00'::timetz",
        ),
        (dt.datetime(2002, 12, 25, 13, 45, 30), b"SELECT '2002-12-25T13:45:30'::timestamp"),
        (
            dt.datetime(2002, 12, 25, 13, 45, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            b"SELECT '2002-12-25T13:45:30.000005+02:00'::timestamptz",
        ),
        (
            dt.timedelta(days=1, seconds=5, microseconds=7),
            b"SELECT '1 days 5.000007 seconds'::interval",
        ),
        (dt.timedelta(days=-1), b"SELECT '-1 days 0.000000 seconds'::interval"),
        ([1, 2, 3], b"SELECT ARRAY[1,2,3]"),
        ([], b"SELECT '{}'"),
        (["a", None], b"SELECT ARRAY['a',NULL]"),
        ([[1, 2], [3, 4]], b"SELECT ARRAY[ARRAY[1,2],ARRAY[3,4]]"),
        ((1, 2, "x"), b"SELECT (1, 2, 'x')"),
        ((), b"SELECT ()"),
        (((1, 2), (3, 4)), b"SELECT ((1, 2), (3, 4))"),
        (10**20, b"SELECT 100000000000000000000"),
        # Not adapted by psycopg2 without registering an adapter; querybus sends them.
        (
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            b"SELECT '12345678-1234-5678-1234-567812345678'::uuid",
        ),
        ({"a": [1, "b"]}, b"""SELECT '{"a": [1, "b"]}'"""),
    ],
)
def test_mogrify_writes_literals_as_psycopg2_does(value: Any, literal: bytes) -> None:
    assert dbapi.mogrify("SELECT %s", (value,)) == literal


def test_mogrify_reads_placeholders_as_execute_does(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    assert cur.mogrify("SELECT %(a)s, %(a)s, '100%%'", {"a": (1, 2)}) == (
        b"SELECT (1, 2), (1, 2), '100%'"
    )
    assert cur.mogrify("SELECT 100%") == b"SELECT 100%"
    assert cur.mogrify("SELECT 100%%", ()) == b"SELECT 100%"
    with pytest.raises(dbapi.ProgrammingError, match="can't adapt type 'object'"):
        cur.mogrify("SELECT %s", (object(),))
    with pytest.raises(ValueError, match="NUL"):
        cur.mogrify("SELECT %s", ("a\x00",))
    cur.execute("SELECT %s, %s", ("it's", None))
    assert cur.query == b"SELECT 'it''s', NULL"


def test_wrong_client_settings_are_a_pep249_interface_error() -> None:
    """A setting the client refuses while being built (an unknown mode) is
    reported like every other connect() failure: a PEP 249 error."""
    with pytest.raises(dbapi.InterfaceError):
        dbapi.connect("127.0.0.1:1", mode="nope")
