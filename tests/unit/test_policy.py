"""Policy: what an adapter refuses before anything reaches the database."""

from __future__ import annotations

import pytest
from tests.helpers import make_request

from querybus.adapter.policy import Policy
from querybus.errors import RequestRejectedError
from querybus.protocol import OperationType


@pytest.mark.parametrize(
    ("sql", "op"),
    [
        ("SELECT 1", OperationType.SELECT),
        ("select * from t where id = $1", OperationType.SELECT),
        ("INSERT INTO t VALUES (1)", OperationType.INSERT),
        ("UPDATE t SET a = 1", OperationType.UPDATE),
        ("DELETE FROM t WHERE id = 1", OperationType.DELETE),
        ("CREATE TABLE t (id int)", OperationType.DDL),
        ("WITH a AS (SELECT 1) SELECT * FROM a", OperationType.SELECT),
        ("SELECT 1;", OperationType.SELECT),
    ],
)
def test_matching_declarations_pass(sql: str, op: OperationType) -> None:
    info = Policy(allow_ddl=True).check(make_request(sql, op=op))
    assert info.operation is op
    assert info.statement_count == 1


def test_undeclared_operation_is_not_checked_against_the_statement() -> None:
    assert Policy().check(make_request("DELETE FROM t")).operation is OperationType.DELETE


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "SELECT 1; DELETE FROM t",
        "INSERT INTO t VALUES (1); DROP TABLE t",
    ],
)
def test_more_than_one_statement_is_rejected(sql: str) -> None:
    with pytest.raises(RequestRejectedError, match="exactly one SQL statement"):
        Policy().check(make_request(sql))


@pytest.mark.parametrize(
    ("sql", "declared"),
    [
        ("DELETE FROM t", OperationType.SELECT),
        ("UPDATE t SET a = 1", OperationType.SELECT),
        ("INSERT INTO t VALUES (1)", OperationType.UPDATE),
        ("SELECT 1", OperationType.DELETE),
        ("DROP TABLE t", OperationType.SELECT),
    ],
)
def test_declared_operation_must_match(sql: str, declared: OperationType) -> None:
    with pytest.raises(RequestRejectedError, match=f"declared operation {declared.value}"):
        Policy(allow_ddl=True).check(make_request(sql, op=declared))


@pytest.mark.parametrize(
    "sql",
    [
        "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone",
        "WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM x",
        "WITH n AS (INSERT INTO t VALUES (1) RETURNING *) SELECT count(*) FROM n",
        "SELECT * INTO new_table FROM t",
    ],
)
def test_writing_select_declared_as_select_is_rejected(sql: str) -> None:
    with pytest.raises(RequestRejectedError, match="writes"):
        Policy(allow_ddl=True).check(make_request(sql, op=OperationType.SELECT))


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "SELEC 1", "SELECT FROM WHERE"])
def test_empty_or_unparsable_sql_is_rejected(sql: str) -> None:
    with pytest.raises(RequestRejectedError):
        Policy().check(make_request(sql))


def test_sql_length_limit() -> None:
    policy = Policy(max_sql_length=20)
    policy.check(make_request("SELECT 1"))
    with pytest.raises(RequestRejectedError, match="limit is 20"):
        policy.check(make_request("SELECT 1 + 1 + 1 + 1 + 1"))


def test_parameter_limit() -> None:
    policy = Policy(max_parameters=2)
    policy.check(make_request("SELECT $1, $2", params=[1, 2]))
    with pytest.raises(RequestRejectedError, match="limit is 2"):
        policy.check(make_request("SELECT $1, $2, $3", params=[1, 2, 3]))


def test_batch_limit_and_shape() -> None:
    policy = Policy(max_batch=2)
    policy.check(make_request("INSERT INTO t VALUES ($1)", params=[[1], [2]], many=True))
    with pytest.raises(RequestRejectedError, match="limit is 2"):
        policy.check(make_request("INSERT INTO t VALUES ($1)", params=[[1], [2], [3]], many=True))
    with pytest.raises(RequestRejectedError, match="list of parameter lists"):
        policy.check(make_request("INSERT INTO t VALUES ($1)", params=[1, 2], many=True))


def test_ddl_is_off_by_default_and_can_be_enabled() -> None:
    with pytest.raises(RequestRejectedError, match="DDL"):
        Policy().check(make_request("CREATE TABLE t (id int)"))
    Policy().check(make_request("SELECT 1"))
    assert Policy(allow_ddl=True).check(make_request("CREATE TABLE t (id int)")).needs_ddl


# -- the refusal table (docs/security.md, "What an adapter refuses and why") ----------------

#: Refused whatever the adapter allows: (SQL, words the reason must contain).
ALWAYS_REFUSED = [
    # session changes
    ("SET ROLE other", "VariableSetStmt"),
    ("SET LOCAL ROLE other", "VariableSetStmt"),
    ("RESET ROLE", "VariableSetStmt"),
    ("SET SESSION AUTHORIZATION other", "VariableSetStmt"),
    ("SET search_path = evil, public", "VariableSetStmt"),
    ("RESET ALL", "VariableSetStmt"),
    ("DISCARD ALL", "DiscardStmt"),
    ("SELECT set_config('role', 'other', false)", "set_config"),
    ("SELECT set_config('role', 'other', true)", "set_config"),
    ("SELECT pg_catalog.set_config('search_path', 'evil', false)", "set_config"),
    ("SELECT \"set_config\"('a.b', 'c', false)", "set_config"),
    ("SELECT U&\"set\\005fconfig\"('role', 'x', false)", "set_config"),
    ("WITH x AS (SELECT set_config('a.b', 'c', false)) SELECT * FROM x", "set_config"),
    ("SELECT 1 FROM t WHERE set_config('request.jwt.claims', '{}', true) > ''", "set_config"),
    ("EXPLAIN ANALYZE SELECT set_config('role', 'x', false)", "set_config"),
    ("PREPARE p AS SELECT 1", "PrepareStmt"),
    ("EXECUTE p", "ExecuteStmt"),
    ("DEALLOCATE ALL", "DeallocateStmt"),
    ("LISTEN channel", "ListenStmt"),
    ("UNLISTEN *", "UnlistenStmt"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DeclareCursorStmt"),
    ("FETCH ALL FROM c", "FetchStmt"),
    ("CLOSE ALL", "ClosePortalStmt"),
    ("BEGIN", "TransactionStmt"),
    ("COMMIT", "TransactionStmt"),
    ("LOCK TABLE t", "LockStmt"),
    ("SET CONSTRAINTS ALL DEFERRED", "ConstraintsSetStmt"),
    # code execution and the server's files
    ("DO $$ BEGIN EXECUTE 'SET ROLE x'; END $$", "DoStmt"),
    ("DO $x$ BEGIN PERFORM 1; END $x$", "DoStmt"),
    ("DO LANGUAGE plpgsql 'BEGIN NULL; END'", "DoStmt"),
    ("COPY t TO PROGRAM 'rm -rf /'", "CopyStmt"),
    ("COPY t FROM PROGRAM 'id'", "CopyStmt"),
    ("COPY t TO '/tmp/x'", "CopyStmt"),
    ("COPY t TO STDOUT", "CopyStmt"),
    ("LOAD 'plpgsql'", "LoadStmt"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT query_to_xml('SET ROLE x', true, true, '')", "query_to_xml"),
    ("SELECT ts_stat('SELECT 1')", "ts_stat"),
    ("SELECT dblink_exec('dbname=x', 'SET ROLE y')", "dblink_exec"),
    ("SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
    ("SELECT pg_cancel_backend(pid) FROM pg_stat_activity", "pg_cancel_backend"),
    ("SELECT pg_reload_conf()", "pg_reload_conf"),
    # the server and its roles
    ("ALTER SYSTEM SET work_mem = '1GB'", "AlterSystemStmt"),
    ("ALTER ROLE CURRENT_USER SET search_path = evil", "AlterRoleSetStmt"),
    ("ALTER ROLE CURRENT_USER PASSWORD 'x'", "AlterRoleStmt"),
    ("CREATE ROLE r SUPERUSER", "CreateRoleStmt"),
    ("GRANT pg_execute_server_program TO CURRENT_USER", "GrantRoleStmt"),
    ("ALTER DATABASE querybus SET search_path = evil", "AlterDatabaseSetStmt"),
    ("CREATE DATABASE x", "CreatedbStmt"),
    ("CHECKPOINT", "CheckPointStmt"),
    ("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", "CreateEventTrigStmt"),
    ("CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (password 'x')", "UserMapping"),
]


@pytest.mark.parametrize(("sql", "why"), ALWAYS_REFUSED)
def test_refused_whatever_the_adapter_allows(sql: str, why: str) -> None:
    for policy in (Policy(), Policy(allow_ddl=True)):
        with pytest.raises(RequestRejectedError, match=why) as caught:
            policy.check(make_request(sql))
        assert "not allowed" in caught.value.message


#: Refused unless DDL is enabled (then the database's privileges decide).
REFUSED_WITHOUT_DDL = [
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN NULL; END $$",
    "ALTER FUNCTION f() SECURITY DEFINER",
    "CREATE LANGUAGE plperlu",
    "CREATE EXTENSION dblink",
    "ALTER EXTENSION dblink UPDATE",
    "CREATE TABLE t (id int)",
    "CREATE TEMP TABLE t (id int)",
    "CREATE TABLE t AS SELECT 1",
    "SELECT 1 INTO TEMP t",
    "DROP TABLE t",
    "TRUNCATE t",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING",
    "GRANT SELECT ON t TO PUBLIC",
    "VACUUM FULL t",
    "REFRESH MATERIALIZED VIEW m",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
    "SECURITY LABEL ON TABLE t IS 'x'",
]


@pytest.mark.parametrize("sql", REFUSED_WITHOUT_DDL)
def test_refused_unless_ddl_is_enabled(sql: str) -> None:
    with pytest.raises(RequestRejectedError, match="DDL is not enabled"):
        Policy().check(make_request(sql))
    Policy(allow_ddl=True).check(make_request(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t WHERE id = $1",
        "INSERT INTO t VALUES ($1) RETURNING *",
        "UPDATE t SET a = now() WHERE id = $1",
        "DELETE FROM t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "SELECT current_setting('search_path')",
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT my_function($1)",
        "CALL my_procedure(1)",
        "SHOW search_path",
        "EXPLAIN SELECT 1",
        "NOTIFY channel",
        "SELECT 'set_config(''role'', ''x'', false)'",
        "SELECT $$ SET ROLE x; DO $$",
        "SELECT 1 -- ; SET ROLE x",
    ],
)
def test_ordinary_statements_pass(sql: str) -> None:
    Policy().check(make_request(sql))


def test_deeply_nested_values_are_refused_without_exhausting_the_stack() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RequestRejectedError, match="nested more than 32"):
        Policy().check(make_request("SELECT $1", params=[deep]))
    shallow: object = {"$json": {"a": [[1]]}}  # 4 levels: tag, object, list, list
    Policy().check(make_request("SELECT $1", params=[shallow]))
    Policy(max_value_depth=4).check(make_request("SELECT $1", params=[shallow]))
    with pytest.raises(RequestRejectedError, match="nested"):
        Policy(max_value_depth=3).check(make_request("SELECT $1", params=[shallow]))
    # executemany: the parameter lists themselves are not counted.
    Policy(max_value_depth=4).check(make_request("SELECT $1", params=[[shallow]], many=True))
    with pytest.raises(RequestRejectedError, match="nested"):
        Policy(max_value_depth=3).check(make_request("SELECT $1", params=[[shallow]], many=True))


def test_policy_from_env() -> None:
    assert not Policy.from_env({}).allow_ddl
    policy = Policy.from_env({"QUERYBUS_ALLOW_DDL": "1", "QUERYBUS_MAX_SQL_LENGTH": "10"})
    assert policy.allow_ddl
    assert policy.max_sql_length == 10
    with pytest.raises(ValueError, match="QUERYBUS_MAX_BATCH"):
        Policy.from_env({"QUERYBUS_MAX_BATCH": "many"})
