"""Policy: what an adapter refuses before anything reaches the database."""

from __future__ import annotations

import time

import pytest

from querybus.adapter.policy import Policy
from querybus.errors import RequestRejectedError
from querybus.protocol import OperationType, QueryRequest, ReplyAddress


def req(
    sql: str,
    op: OperationType | None = None,
    params: list[object] | None = None,
    many: bool = False,
) -> QueryRequest:
    return QueryRequest(
        id="x",
        client="c",
        op=op,
        sql=sql,
        params=list(params or []),
        many=many,
        reply_to=ReplyAddress("r", 0),
        deadline=time.time() + 30,
    )


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
    info = Policy().check(req(sql, op))
    assert info.operation is op
    assert info.statement_count == 1


def test_undeclared_operation_is_not_checked_against_the_statement() -> None:
    assert Policy().check(req("DELETE FROM t")).operation is OperationType.DELETE


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
        Policy().check(req(sql))


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
        Policy().check(req(sql, declared))


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
        Policy().check(req(sql, OperationType.SELECT))


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "SELEC 1", "SELECT FROM WHERE"])
def test_empty_or_unparsable_sql_is_rejected(sql: str) -> None:
    with pytest.raises(RequestRejectedError):
        Policy().check(req(sql))


def test_sql_length_limit() -> None:
    policy = Policy(max_sql_length=20)
    policy.check(req("SELECT 1"))
    with pytest.raises(RequestRejectedError, match="limit is 20"):
        policy.check(req("SELECT 1 + 1 + 1 + 1 + 1"))


def test_parameter_limit() -> None:
    policy = Policy(max_parameters=2)
    policy.check(req("SELECT $1, $2", params=[1, 2]))
    with pytest.raises(RequestRejectedError, match="limit is 2"):
        policy.check(req("SELECT $1, $2, $3", params=[1, 2, 3]))


def test_batch_limit_and_shape() -> None:
    policy = Policy(max_batch=2)
    policy.check(req("INSERT INTO t VALUES ($1)", params=[[1], [2]], many=True))
    with pytest.raises(RequestRejectedError, match="limit is 2"):
        policy.check(req("INSERT INTO t VALUES ($1)", params=[[1], [2], [3]], many=True))
    with pytest.raises(RequestRejectedError, match="list of parameter lists"):
        policy.check(req("INSERT INTO t VALUES ($1)", params=[1, 2], many=True))


def test_ddl_can_be_forbidden() -> None:
    with pytest.raises(RequestRejectedError, match="DDL"):
        Policy(allow_ddl=False).check(req("CREATE TABLE t (id int)"))
    Policy(allow_ddl=False).check(req("SELECT 1"))
