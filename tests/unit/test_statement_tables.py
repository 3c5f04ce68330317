"""Statement.tables and Statement.operations: what the role policies check.

Every relation a statement reads or writes, as the parse tree names it; names
that refer to a CTE in scope are not tables (PostgreSQL's scoping rules); and
a cached statement never lends its tables to another text.
"""

from __future__ import annotations

import pytest

from querybus.protocol.messages import OperationType
from querybus.sql import analyze
from querybus.sql.statement import _shape, qualified_name

SELECT, INSERT, UPDATE, DELETE, OTHER, DDL = (
    OperationType.SELECT,
    OperationType.INSERT,
    OperationType.UPDATE,
    OperationType.DELETE,
    OperationType.OTHER,
    OperationType.DDL,
)

CASES: list[tuple[str, set[str]]] = [
    # plain names, qualification, case folding, quoting
    ("SELECT * FROM orders", {"orders"}),
    ("SELECT * FROM Public.Orders", {"public.orders"}),
    ('SELECT * FROM "Mixed"', {'"Mixed"'}),
    ('SELECT * FROM app."Mixed" m, "lower"', {'app."Mixed"', "lower"}),
    ('SELECT * FROM "a.b".c, "x""y"', {'"a.b".c', '"x""y"'}),
    ("SELECT * FROM mydb.public.orders", {"public.orders"}),
    ("SELECT 1", set()),
    ("SELECT now(), count(*) FROM generate_series(1, 3)", set()),
    # joins, subqueries anywhere, lateral
    (
        "SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN s.c USING (id) CROSS JOIN d",
        {"a", "b", "s.c", "d"},
    ),
    (
        "SELECT * FROM a WHERE id IN (SELECT id FROM b WHERE EXISTS (SELECT 1 FROM c))",
        {"a", "b", "c"},
    ),
    ("SELECT (SELECT max(x) FROM b) FROM a ORDER BY (SELECT 1 FROM c LIMIT 1)", {"a", "b", "c"}),
    ("SELECT * FROM (SELECT * FROM inner_t) sub", {"inner_t"}),
    ("SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.a_id = a.id) l", {"a", "b"}),
    ("SELECT * FROM a, LATERAL unnest(a.tags) t", {"a"}),
    ("SELECT * FROM a TABLESAMPLE SYSTEM (10)", {"a"}),
    # set operations
    ("SELECT id FROM a UNION SELECT id FROM b EXCEPT SELECT id FROM s.c", {"a", "b", "s.c"}),
    # DML
    ("INSERT INTO t (a) VALUES (1)", {"t"}),
    ("INSERT INTO s.t SELECT * FROM src WHERE x > 1", {"s.t", "src"}),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a", {"t"}),
    ("UPDATE t SET a = o.a FROM other o WHERE o.id = t.id", {"t", "other"}),
    ("UPDATE t SET a = (SELECT max(a) FROM m) RETURNING (SELECT 1 FROM r)", {"t", "m", "r"}),
    ("DELETE FROM t USING u, s.v WHERE t.id = u.id", {"t", "u", "s.v"}),
    (
        "DELETE FROM t WHERE id = 1 RETURNING (SELECT name FROM names n WHERE n.id = t.id)",
        {"t", "names"},
    ),
    (
        "MERGE INTO target t USING source s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.a)",
        {"target", "source"},
    ),
    ("SELECT * INTO new_table FROM a", {"new_table", "a"}),
    ("EXPLAIN SELECT * FROM a JOIN b ON true", {"a", "b"}),
    ("CREATE VIEW v AS SELECT * FROM a", {"v", "a"}),
    # CTEs: not tables where they are in scope
    ("WITH x AS (SELECT * FROM a) SELECT * FROM x", {"a"}),
    ("WITH x AS (SELECT * FROM a) SELECT * FROM s.x", {"a", "s.x"}),  # qualified: a table
    ("WITH x AS (SELECT 1), y AS (SELECT * FROM x) SELECT * FROM y", set()),
    # a plain WITH sees only earlier CTEs: a forward reference is a table
    ("WITH y AS (SELECT * FROM x), x AS (SELECT 1) SELECT * FROM y, x", {"x"}),
    # a CTE's own name inside its (non-recursive) body is the table it shadows
    ("WITH orders AS (SELECT * FROM orders WHERE paid) SELECT * FROM orders", {"orders"}),
    (
        "WITH RECURSIVE tree AS (SELECT id FROM nodes WHERE parent IS NULL "
        "UNION ALL SELECT n.id FROM nodes n JOIN tree ON n.parent = tree.id) SELECT * FROM tree",
        {"nodes"},
    ),
    # WITH RECURSIVE: every CTE of the list sees every other
    ("WITH RECURSIVE y AS (SELECT * FROM x), x AS (SELECT 1) SELECT * FROM y", set()),
    # scope ends with the statement: outside the subquery, x is a table again
    ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) sub, x", {"x"}),
    ("(WITH x AS (SELECT 1) SELECT * FROM x) UNION ALL SELECT * FROM x", {"x"}),
    # ... and reaches into subqueries and every branch of a set operation
    ("WITH x AS (SELECT 1) SELECT * FROM x UNION SELECT * FROM x", set()),
    ("WITH x AS (SELECT 1) SELECT * FROM a WHERE EXISTS (SELECT 1 FROM x)", {"a"}),
    # nested WITH: the inner one shadows the outer, and sees it
    (
        "WITH x AS (SELECT * FROM a) "
        "SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT * FROM y) sub JOIN x ON true",
        {"a"},
    ),
    # DML targets are looked up in the catalog, not among the CTEs
    ("WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM t", {"t"}),
    ("WITH src AS (SELECT * FROM staging) UPDATE t SET a = src.a FROM src", {"t", "staging"}),
    ("WITH d AS (SELECT id FROM old) DELETE FROM t USING d WHERE t.id = d.id", {"t", "old"}),
    (
        "WITH s AS (SELECT * FROM staging) MERGE INTO t USING s ON t.id = s.id "
        "WHEN MATCHED THEN DELETE",
        {"t", "staging"},
    ),
    # data-modifying CTEs
    (
        "WITH moved AS (DELETE FROM queue WHERE done RETURNING *) "
        "INSERT INTO archive SELECT * FROM moved",
        {"queue", "archive"},
    ),
    ("INSERT INTO t WITH x AS (SELECT * FROM a) SELECT * FROM x", {"t", "a"}),
]


@pytest.mark.parametrize(("sql", "tables"), CASES, ids=[c[0][:60] for c in CASES])
def test_tables(sql: str, tables: set[str]) -> None:
    statement = analyze(sql)
    assert statement.error is None
    assert statement.tables == frozenset(tables)


def test_every_statement_of_a_text() -> None:
    # refused anyway (one statement per request), but the list is complete
    assert analyze("SELECT * FROM a; DELETE FROM b").tables == {"a", "b"}


def test_no_tables_when_it_does_not_parse() -> None:
    assert analyze("SELEC * FROM a").tables == frozenset()


@pytest.mark.parametrize(
    ("first", "second", "tables"),
    [
        # pg_query's fingerprint ignores schema names and digits ending a table
        # name: a fingerprint hit must not reuse the first text's tables
        (
            "SELECT * FROM public.orders WHERE id = 1",
            "SELECT * FROM secret.orders WHERE id = 2",
            {"secret.orders"},
        ),
        (
            "SELECT * FROM orders WHERE id = 1",
            "SELECT * FROM secret.orders WHERE id = 2",
            {"secret.orders"},
        ),
        (
            "SELECT * FROM log_2024 WHERE id = 1",
            "SELECT * FROM log_2025 WHERE id = 2",
            {"log_2025"},
        ),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 2) SELECT * FROM s.x", {"s.x"}),
        ("INSERT INTO a.t VALUES (1)", "INSERT INTO b.t VALUES (2)", {"b.t"}),
    ],
)
def test_fingerprint_cache_keeps_each_texts_tables(
    first: str, second: str, tables: set[str]
) -> None:
    a, b = analyze(first), analyze(second)
    assert a.fingerprint == b.fingerprint  # the premise: the cache is hit
    assert b.tables == frozenset(tables)
    assert b.sql == second


@pytest.mark.parametrize(
    ("first", "second", "tables"),
    [
        # same tokens but for constants: the cached tables are reused
        (
            "SELECT * FROM s.t1 WHERE id = 1 AND n = 'a'",
            "SELECT * FROM s.t1 WHERE id = 22 AND n = 'bb'",
            {"s.t1"},
        ),
        # other spellings of the same statement: found again by a parse
        (
            "SELECT * FROM s.t2 WHERE id IN (1, 2)",
            "SELECT * FROM s.t2 WHERE id IN (1, 2, 3)",
            {"s.t2"},
        ),
        ("SELECT * FROM s.t3 -- one\n", "SELECT * FROM s.t3 -- two\n", {"s.t3"}),
        ("SELECT * FROM s.t4", "select * from S.T4", {"s.t4"}),
    ],
)
def test_fingerprint_hit_with_relations(first: str, second: str, tables: set[str]) -> None:
    a, b = analyze(first), analyze(second)
    assert a.fingerprint == b.fingerprint
    assert b.tables == frozenset(tables)
    assert b.sql == second


def test_shape_replaces_constants_only() -> None:
    assert _shape("SELECT a FROM s.t WHERE x = 1 AND y = 'z' AND w = $1") == (
        "SELECT", "a", "FROM", "s", ".", "t", "WHERE", "x", "=", "ICONST",
        "AND", "y", "=", "SCONST", "AND", "w", "=", "PARAM",
    )  # fmt: skip
    # a string constant that changes an identifier: never matched
    assert _shape("SELECT * FROM U&\"!0074\" UESCAPE '!'") is None


def test_fingerprint_hit_without_relations_reuses_everything() -> None:
    a, b = analyze("SELECT 1 + 11"), analyze("SELECT 1 + 12")
    assert a.fingerprint == b.fingerprint
    assert b.tables == frozenset()
    assert b.operations == {SELECT}


@pytest.mark.parametrize(
    ("sql", "operations"),
    [
        ("SELECT * FROM a", {SELECT}),
        ("INSERT INTO t VALUES (1)", {INSERT}),
        ("UPDATE t SET a = 1", {UPDATE}),
        ("DELETE FROM t", {DELETE}),
        # a SELECT with a data-modifying CTE performs the write as well
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {SELECT, DELETE}),
        (
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING id), "
            "u AS (UPDATE s SET x = 1 RETURNING id) SELECT * FROM i, u",
            {SELECT, INSERT, UPDATE},
        ),
        ("WITH d AS (DELETE FROM q RETURNING *) INSERT INTO t SELECT * FROM d", {INSERT, DELETE}),
        # MERGE is the operations of its actions, DO NOTHING reading only
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 "
            "WHEN NOT MATCHED THEN INSERT VALUES (1)",
            {UPDATE, INSERT},
        ),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", {SELECT}),
        ("EXPLAIN SELECT 1", {OTHER}),
        ("EXPLAIN ANALYZE DELETE FROM t", {OTHER, DELETE}),
        ("SHOW work_mem", {OTHER}),
        ("CREATE TABLE t (a int)", {DDL}),
    ],
)
def test_operations(sql: str, operations: set[OperationType]) -> None:
    assert analyze(sql).operations == frozenset(operations)


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("orders",), "orders"),
        (("public", "orders"), "public.orders"),
        (("Mixed",), '"Mixed"'),
        (("a.b", "c"), '"a.b".c'),
        (('x"y',), '"x""y"'),
        (("café",), '"café"'),
        (("_t$1",), "_t$1"),
        (("1t",), '"1t"'),
    ],
)
def test_qualified_name(parts: tuple[str, ...], name: str) -> None:
    assert qualified_name(*parts) == name
