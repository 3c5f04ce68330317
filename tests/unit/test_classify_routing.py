"""Routing classification: the statement table (no database needed).

Each row: a statement, where it must run, and why. The same table runs
against the real catalog in ``tests/integration/test_routing_classify.py``.
"""

from __future__ import annotations

import pytest

from querybus.protocol.messages import OperationType
from querybus.routing.classify import Classifier, FunctionCatalog, classify
from querybus.routing.reasons import Reason, Role
from querybus.sql import analyze
from querybus.sql.complexity import ComplexityClass

P, R = Role.PRIMARY, Role.REPLICA

#: (sql, role, reason) — statements over tables ``accounts`` and ``orders``,
#: sequence ``order_ids``, functions ``stable_total()`` (STABLE) and
#: ``audit_touch()`` (VOLATILE, inserts) that the integration test creates.
TABLE: list[tuple[str, Role, Reason]] = [
    # plain reads
    ("SELECT 1", R, Reason.READ),
    ("SELECT id, owner FROM accounts WHERE id = $1", R, Reason.READ),
    ("SELECT count(*) FROM accounts", R, Reason.READ),
    (
        "SELECT * FROM accounts a JOIN orders o ON o.account_id = a.id ORDER BY o.id LIMIT 5",
        R,
        Reason.READ,
    ),
    (
        "WITH big AS (SELECT * FROM accounts WHERE balance > 10) SELECT count(*) FROM big",
        R,
        Reason.READ,
    ),
    (
        "SELECT owner, sum(balance) FROM accounts GROUP BY owner HAVING sum(balance) > 0",
        R,
        Reason.READ,
    ),
    ("SELECT id, row_number() OVER (ORDER BY balance DESC) FROM accounts", R, Reason.READ),
    ("SELECT * FROM accounts WHERE id IN (SELECT account_id FROM orders)", R, Reason.READ),
    (
        "SELECT lower(owner), now(), coalesce(balance, 0), greatest(1, 2) FROM accounts",
        R,
        Reason.READ,
    ),
    ("SELECT 1 UNION ALL SELECT 2", R, Reason.READ),
    ("VALUES (1, 'a'), (2, 'b')", R, Reason.READ),
    ("TABLE accounts", R, Reason.READ),
    ("EXPLAIN SELECT * FROM accounts", R, Reason.READ),
    ("SHOW work_mem", R, Reason.READ),
    ("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()", R, Reason.READ),
    ("SELECT random(), clock_timestamp(), gen_random_uuid()", R, Reason.READ),
    ("SELECT jsonb_build_object('a', 1) -> 'a', to_char(now(), 'YYYY')", R, Reason.READ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
        "SELECT sum(i) FROM n",
        R,
        Reason.READ,
    ),
    ("BEGIN; SELECT 1; COMMIT", R, Reason.READ),
    # writes
    ("INSERT INTO accounts (id, owner) VALUES ($1, $2)", P, Reason.WRITE),
    ("UPDATE accounts SET balance = balance + 1 WHERE id = $1", P, Reason.WRITE),
    ("DELETE FROM orders WHERE id = $1", P, Reason.WRITE),
    ("INSERT INTO orders (account_id) SELECT id FROM accounts RETURNING id", P, Reason.WRITE),
    (
        "MERGE INTO accounts a USING orders o ON a.id = o.account_id WHEN MATCHED THEN DELETE",
        P,
        Reason.WRITE,
    ),
    ("EXPLAIN ANALYZE DELETE FROM orders", P, Reason.WRITE),
    # writes hidden in reads
    (
        "WITH moved AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM moved",
        P,
        Reason.WRITING_CTE,
    ),
    (
        "WITH x AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT * FROM x",
        P,
        Reason.WRITING_CTE,
    ),
    ("SELECT * INTO accounts_copy FROM accounts", P, Reason.SELECT_INTO),
    # locking reads
    ("SELECT * FROM accounts WHERE id = 1 FOR UPDATE", P, Reason.LOCKING),
    ("SELECT * FROM accounts FOR SHARE", P, Reason.LOCKING),
    ("SELECT * FROM accounts FOR NO KEY UPDATE SKIP LOCKED", P, Reason.LOCKING),
    ("SELECT * FROM accounts FOR KEY SHARE NOWAIT", P, Reason.LOCKING),
    ("SELECT * FROM (SELECT * FROM accounts FOR UPDATE) s", P, Reason.LOCKING),
    ("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE", P, Reason.LOCKING),
    # functions
    ("SELECT nextval('order_ids')", P, Reason.SEQUENCE),
    ("SELECT setval('order_ids', 10)", P, Reason.SEQUENCE),
    ("SELECT currval('order_ids')", P, Reason.SEQUENCE),
    ("SELECT pg_catalog.nextval('order_ids')", P, Reason.SEQUENCE),
    ("SELECT pg_advisory_lock(42)", P, Reason.ADVISORY_LOCK),
    ("SELECT pg_try_advisory_xact_lock(1, 2)", P, Reason.ADVISORY_LOCK),
    ("SELECT set_config('app.user', 'x', false)", P, Reason.VOLATILE_FUNCTION),
    ("SELECT pg_notify('chan', 'hello')", P, Reason.VOLATILE_FUNCTION),
    ("SELECT txid_current()", P, Reason.VOLATILE_FUNCTION),
    ("SELECT * FROM accounts WHERE id = (SELECT audit_touch())", P, Reason.UNKNOWN_FUNCTION),
    # DDL and utility
    ("CREATE TABLE t_new (id int)", P, Reason.DDL),
    ("ALTER TABLE accounts ADD COLUMN note text", P, Reason.DDL),
    ("DROP TABLE IF EXISTS t_new", P, Reason.DDL),
    ("CREATE INDEX ON accounts (owner)", P, Reason.DDL),
    ("TRUNCATE orders", P, Reason.DDL),
    ("CREATE TABLE accounts_copy2 AS SELECT * FROM accounts", P, Reason.DDL),
    ("GRANT SELECT ON accounts TO PUBLIC", P, Reason.DDL),
    ("LISTEN jobs", P, Reason.LISTEN_NOTIFY),
    ("NOTIFY jobs, 'x'", P, Reason.LISTEN_NOTIFY),
    ("UNLISTEN *", P, Reason.LISTEN_NOTIFY),
    ("COPY accounts FROM STDIN", P, Reason.COPY_FROM),
    ("COPY accounts TO STDOUT", R, Reason.READ),
    ("COPY (SELECT * FROM accounts) TO STDOUT", R, Reason.READ),
    ("BEGIN", P, Reason.TRANSACTION),
    ("COMMIT", P, Reason.TRANSACTION),
    ("BEGIN; UPDATE accounts SET balance = 1; COMMIT", P, Reason.WRITE),
    ("CALL do_something()", P, Reason.PROCEDURE),
    ("DO $$ BEGIN PERFORM 1; END $$", P, Reason.PROCEDURE),
    ("VACUUM accounts", P, Reason.MAINTENANCE),
    ("REFRESH MATERIALIZED VIEW mv", P, Reason.MAINTENANCE),
    ("SET search_path = public", P, Reason.UTILITY),
    ("PREPARE q AS SELECT 1", P, Reason.UTILITY),
    # nonsense
    ("SELEC 1", P, Reason.UNPARSABLE),
    ("SELECT FROM WHERE", P, Reason.UNPARSABLE),
    ("", P, Reason.UNPARSABLE),
]


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(("sql", "role", "reason"), TABLE, ids=[row[0][:50] for row in TABLE])
def test_statement_table(sql: str, role: Role, reason: Reason) -> None:
    got = Classifier().classify(sql)
    assert (got.role, got.reason) == (role, reason), got.detail


def test_catalog_decides_user_functions() -> None:
    catalog = FunctionCatalog({"stable_total": "s", "audit_touch": "v", "lower": "i"})
    c = Classifier(catalog)
    assert c.classify("SELECT stable_total()").role is Role.REPLICA
    assert c.classify("SELECT audit_touch()").reason is Reason.VOLATILE_FUNCTION
    # Not in pg_proc: unknown, so the primary (it answers correctly, or with the right error).
    assert c.classify("SELECT nosuch()").reason is Reason.UNKNOWN_FUNCTION
    # Name rules beat the catalog: currval is "volatile" but the reason is precise.
    assert c.classify("SELECT currval('s')").reason is Reason.SEQUENCE
    # Read-safe volatile functions stay on replicas even though pg_proc says "v".
    assert Classifier(FunctionCatalog({"random": "v"})).classify("SELECT random()").role is R


def test_without_catalog_unknown_functions_go_to_primary() -> None:
    got = classify("SELECT my_report(1)")
    assert got.role is Role.PRIMARY
    assert got.reason is Reason.UNKNOWN_FUNCTION
    assert got.detail == "my_report"


def test_cache_by_text_and_fingerprint() -> None:
    c = Classifier()
    first = c.classify("SELECT * FROM accounts WHERE id = 1")
    assert c.classify("SELECT * FROM accounts WHERE id = 1") is first
    # Other constants, same fingerprint: served from the fingerprint cache.
    assert c.classify("SELECT * FROM accounts WHERE id = 2") is first
    assert first.fingerprint
    assert (
        c.classify("SELECT * FROM accounts WHERE id = 1 FOR UPDATE").fingerprint
        != first.fingerprint
    )


def test_changing_catalog_drops_cache() -> None:
    c = Classifier()
    assert c.classify("SELECT f()").reason is Reason.UNKNOWN_FUNCTION
    c.catalog = FunctionCatalog({"f": "s"})
    assert c.classify("SELECT f()").role is Role.REPLICA


def test_cache_is_bounded() -> None:
    c = Classifier(cache_size=10)
    for i in range(50):
        c.classify(f"SELECT {i} AS c{i}")
    assert len(c._by_text) <= 10
    assert len(c._by_fingerprint) <= 10


@pytest.mark.parametrize(
    ("sql", "klass"),
    [
        ("SELECT 1", ComplexityClass.SIMPLE),
        ("SELECT * FROM accounts WHERE id = $1", ComplexityClass.SIMPLE),
        (
            "SELECT a.owner, count(*) FROM accounts a JOIN orders o ON o.account_id = a.id "
            "GROUP BY a.owner ORDER BY 2 DESC",
            ComplexityClass.MODERATE,
        ),
        (
            "WITH r AS (SELECT account_id, sum(amount) s FROM orders GROUP BY 1) "
            "SELECT a.*, r.s, rank() OVER (ORDER BY r.s), (SELECT max(id) FROM orders) "
            "FROM accounts a JOIN r ON r.account_id = a.id LEFT JOIN orders o ON o.id = a.id "
            "WHERE a.id IN (SELECT account_id FROM orders) ORDER BY 1, 2",
            ComplexityClass.COMPLEX,
        ),
    ],
)
def test_complexity(sql: str, klass: ComplexityClass) -> None:
    got = classify(sql).complexity
    assert got.klass is klass, got
    assert got.label().startswith(klass.value + ":")


def test_complexity_counts() -> None:
    counts = classify(
        "WITH c AS (SELECT 1) SELECT count(*), lag(x) OVER w FROM a JOIN b ON true, c "
        "WHERE x IN (SELECT 1) GROUP BY x WINDOW w AS (ORDER BY x) ORDER BY 1"
    ).complexity.counts
    assert counts.ctes == 1
    assert counts.joins == 2
    assert counts.subqueries == 1
    assert counts.aggregates == 1
    assert counts.windows == 1
    assert counts.groups == 1
    assert counts.sorts >= 1


def test_analyze_still_validates() -> None:
    info = analyze("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")
    assert info.operation is OperationType.SELECT
    assert info.writes
    assert analyze("SELECT 1; SELECT 2").statement_count == 2
    assert analyze("CREATE TABLE t (id int)").operation is OperationType.DDL
