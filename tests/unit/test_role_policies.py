"""Role policies: loading, merging over the defaults, validation, and check()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from querybus.adapter.roles import RolePolicies, RolePolicy
from querybus.errors import ConfigurationError, PermissionDeniedError
from querybus.protocol.messages import OperationType
from querybus.sql import analyze

EXAMPLE = """
[defaults]
operations = ["SELECT", "INSERT", "UPDATE", "DELETE"]
max_rows = 10000
statement_timeout = 30.0
rate = 50.0
burst = 100

[roles.reporting]
operations = ["SELECT"]
tables = ["public.orders", "public.customers"]
max_rows = 1000

[roles.app_admin]
allow_ddl = true
"""


def _load(tmp_path: Path, text: str) -> RolePolicies:
    path = tmp_path / "policies.toml"
    path.write_text(text, encoding="utf-8")
    return RolePolicies.load(path)


def _policy(**table: Any) -> RolePolicy:
    return RolePolicies.from_mapping({"roles": {"r": table}}).for_role("r")


# -- loading and merging -------------------------------------------------------------


def test_example_loads_and_merges(tmp_path: Path) -> None:
    policies = _load(tmp_path, EXAMPLE)
    reporting = policies.for_role("reporting")
    assert reporting.operations == frozenset({OperationType.SELECT})
    assert reporting.tables == frozenset({"public.orders", "public.customers"})
    assert reporting.max_rows == 1000  # its own
    assert reporting.statement_timeout == 30.0  # from the defaults
    assert (reporting.rate, reporting.burst) == (50.0, 100)
    assert reporting.allow_ddl is False
    assert reporting.role == "reporting"

    admin = policies.for_role("app_admin")
    assert admin.allow_ddl is True
    assert admin.operations == frozenset(
        {OperationType.SELECT, OperationType.INSERT, OperationType.UPDATE, OperationType.DELETE}
    )
    assert admin.tables is None
    assert admin.max_rows == 10000


def test_a_role_without_a_table_gets_the_defaults(tmp_path: Path) -> None:
    policies = _load(tmp_path, EXAMPLE)
    other = policies.for_role("someone_else")
    assert other.role == "someone_else"
    assert other.max_rows == 10000
    assert other.tables is None
    assert other == RolePolicy(
        operations=policies.defaults.operations,
        max_rows=10000,
        statement_timeout=30.0,
        rate=50.0,
        burst=100,
        role="someone_else",
    )


def test_from_env_unset_means_no_limits() -> None:
    for env in ({}, {"QUERYBUS_POLICY_FILE": ""}):
        policies = RolePolicies.from_env(env)
        for policy in (policies.for_role("anyone"), policies.for_role(None)):
            assert policy.operations is None
            assert policy.tables is None
            assert (policy.max_rows, policy.statement_timeout, policy.rate) == (None, None, None)
            # nothing refused, DDL included: the adapter-wide Policy decides
            policy.check(analyze("DELETE FROM anything"))
            policy.check(analyze("CREATE TABLE t (a int)"))


def test_allow_ddl_defaults_to_false_in_a_file(tmp_path: Path) -> None:
    policies = _load(tmp_path, "[defaults]\nmax_rows = 5\n[roles.r]\n")
    for role in ("r", "other", None):
        with pytest.raises(PermissionDeniedError, match="not allow DDL"):
            policies.for_role(role).check(analyze("CREATE TABLE t (a int)"))


def test_no_identity_gets_the_defaults(tmp_path: Path) -> None:
    policies = _load(tmp_path, EXAMPLE)
    assert policies.for_role(None) is policies.defaults


def test_from_env_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    policies = RolePolicies.from_env({"QUERYBUS_POLICY_FILE": str(path)})
    assert policies.for_role("reporting").max_rows == 1000
    assert policies.source == str(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"QUERYBUS_POLICY_FILE.*nope\.toml"):
        RolePolicies.from_env({"QUERYBUS_POLICY_FILE": str(tmp_path / "nope.toml")})


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"policies\.toml: not valid TOML"):
        _load(tmp_path, "[defaults\nmax_rows = 1")


def test_rate_without_burst_gets_ceil_rate() -> None:
    assert _policy(rate=2.5).burst == 3
    assert _policy(rate=0.2).burst == 1
    assert _policy(rate=7).burst == 7
    assert isinstance(_policy(rate=7).rate, float)


def test_burst_derived_from_the_roles_own_rate() -> None:
    policies = RolePolicies.from_mapping(
        {"defaults": {"rate": 10.0}, "roles": {"fast": {"rate": 40.0}, "slow": {}}}
    )
    assert policies.for_role("fast").burst == 40
    assert policies.for_role("slow").burst == 10
    assert policies.defaults.burst == 10


def test_a_roles_own_rate_does_not_inherit_the_default_burst() -> None:
    policies = RolePolicies.from_mapping(
        {
            "defaults": {"rate": 10.0, "burst": 50},
            "roles": {"own_rate": {"rate": 4.0}, "own_burst": {"burst": 3}, "none": {}},
        }
    )
    assert (policies.for_role("own_rate").rate, policies.for_role("own_rate").burst) == (4.0, 4)
    assert (policies.for_role("own_burst").rate, policies.for_role("own_burst").burst) == (10.0, 3)
    assert (policies.for_role("none").rate, policies.for_role("none").burst) == (10.0, 50)


def test_table_entries_are_sql_identifiers() -> None:
    policy = _policy(tables=["Public.Orders", '"Mixed"', 'app."My.Table"', "Café"])
    # PostgreSQL folds only ASCII letters
    assert policy.tables == frozenset({"public.orders", '"Mixed"', 'app."My.Table"', '"café"'})


def test_statement_timeout_int_becomes_float() -> None:
    assert _policy(statement_timeout=5).statement_timeout == 5.0


# -- validation: every mistake is an error naming the file and the key ------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nmax_row = 5", r"p\.toml: unknown key defaults\.max_row"),
        ("[roles.r]\nrate_limit = 5", r"p\.toml: unknown key roles\.r\.rate_limit"),
        ("[default]\nmax_rows = 5", r"p\.toml: unknown key default "),
        ("[roles.r]\nmax_rows = -1", r"roles\.r\.max_rows must be a positive integer"),
        ("[roles.r]\nmax_rows = 0", r"roles\.r\.max_rows must be a positive integer"),
        ("[roles.r]\nmax_rows = 1.5", r"roles\.r\.max_rows must be a positive integer"),
        ("[roles.r]\nmax_rows = true", r"roles\.r\.max_rows must be a positive integer"),
        ('[roles.r]\nmax_rows = "10"', r"roles\.r\.max_rows must be a positive integer"),
        ("[roles.r]\nburst = 0\nrate = 1.0", r"roles\.r\.burst must be a positive integer"),
        ("[roles.r]\nrate = -2.0", r"roles\.r\.rate must be a positive number"),
        ("[roles.r]\nrate = 0", r"roles\.r\.rate must be a positive number"),
        ("[roles.r]\nrate = nan", r"roles\.r\.rate must be a positive number"),
        ("[roles.r]\nstatement_timeout = -1", r"roles\.r\.statement_timeout must be a positive"),
        ("[roles.r]\nstatement_timeout = inf", r"roles\.r\.statement_timeout must be a positive"),
        ('[roles.r]\nallow_ddl = "yes"', r"roles\.r\.allow_ddl must be true or false"),
        ('[roles.r]\noperations = "SELECT"', r"roles\.r\.operations must be a list of strings"),
        ('[roles.r]\noperations = ["SELEKT"]', r"roles\.r\.operations: unknown operation 'SELEKT'"),
        (
            '[roles.r]\noperations = ["DDL"]',
            r"unknown operation 'DDL' \(DDL is allowed with allow_ddl",
        ),
        ("[roles.r]\ntables = [1]", r"roles\.r\.tables must be a list of strings"),
        ('[roles.r]\ntables = ["a.b.c"]', r"roles\.r\.tables: 'a\.b\.c' is not a table name"),
        ('[roles.r]\ntables = ["orders;"]', r"roles\.r\.tables: 'orders;' is not a table name"),
        ('[roles.r]\ntables = [""]', r"roles\.r\.tables: '' is not a table name"),
        ('[roles.r]\ntables = ["a..b"]', r"is not a table name"),
        ("[roles.r]\nburst = 5", r"p\.toml: roles\.r\.burst is set but no rate"),
        ("[defaults]\nburst = 5", r"p\.toml: defaults\.burst is set but no rate"),
        ("roles = 5", r"p\.toml: roles must be a table"),
        ("[roles]\nr = 5", r"p\.toml: \[roles\.r\] must be a table"),
    ],
)
def test_invalid(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        RolePolicies.load(path)


def test_operation_names_are_case_insensitive() -> None:
    assert _policy(operations=["select", "Other"]).operations == frozenset(
        {OperationType.SELECT, OperationType.OTHER}
    )


# -- check ------------------------------------------------------------------------------


def test_operation_refused_names_role_and_operation() -> None:
    policy = _policy(operations=["SELECT"])
    policy.check(analyze("SELECT * FROM t"))
    with pytest.raises(
        PermissionDeniedError, match=r"role 'r' may not perform DELETE \(allowed: SELECT\)"
    ):
        policy.check(analyze("DELETE FROM t WHERE id = 42"))


def test_message_never_quotes_values() -> None:
    policy = _policy(operations=["SELECT"])
    with pytest.raises(PermissionDeniedError) as info:
        policy.check(analyze("UPDATE t SET password = 'hunter2' WHERE id = 42"))
    assert "hunter2" not in str(info.value)
    assert "42" not in str(info.value)
    assert info.value.code == "forbidden"


def test_writing_cte_needs_the_write_operation() -> None:
    sql = "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"
    with pytest.raises(PermissionDeniedError, match="may not perform DELETE"):
        _policy(operations=["SELECT"]).check(analyze(sql))
    # ... and the SELECT it also is
    with pytest.raises(PermissionDeniedError, match="may not perform SELECT"):
        _policy(operations=["DELETE"]).check(analyze(sql))
    _policy(operations=["SELECT", "DELETE"]).check(analyze(sql))


def test_several_refused_operations_are_listed() -> None:
    sql = "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) UPDATE s SET x = 1 FROM i"
    with pytest.raises(PermissionDeniedError, match=r"may not perform INSERT, UPDATE"):
        _policy(operations=["SELECT"]).check(analyze(sql))


def test_merge_needs_its_actions() -> None:
    sql = (
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 "
        "WHEN NOT MATCHED THEN INSERT VALUES (1)"
    )
    with pytest.raises(PermissionDeniedError, match="may not perform INSERT"):
        _policy(operations=["SELECT", "UPDATE"]).check(analyze(sql))
    _policy(operations=["INSERT", "UPDATE"]).check(analyze(sql))


def test_explain_needs_other() -> None:
    with pytest.raises(PermissionDeniedError, match="may not perform OTHER"):
        _policy(operations=["SELECT"]).check(analyze("EXPLAIN SELECT * FROM t"))
    _policy(operations=["SELECT", "OTHER"]).check(analyze("EXPLAIN SELECT * FROM t"))
    # EXPLAIN ANALYZE runs the statement: it needs the statement's operation too
    with pytest.raises(PermissionDeniedError, match="may not perform DELETE"):
        _policy(operations=["OTHER"]).check(analyze("EXPLAIN ANALYZE DELETE FROM t"))


def test_ddl_needs_allow_ddl() -> None:
    with pytest.raises(
        PermissionDeniedError, match=r"role 'r' may not run CreateStmt.*not allow DDL"
    ):
        _policy().check(analyze("CREATE TABLE t (a int)"))
    with pytest.raises(PermissionDeniedError, match="may not run SelectStmt"):
        _policy().check(analyze("SELECT * INTO t2 FROM t"))  # SELECT INTO creates a table
    # allowed DDL is not an "operation": a SELECT-only role with allow_ddl runs it
    _policy(allow_ddl=True, operations=["SELECT"]).check(analyze("CREATE TABLE t (a int)"))


def test_unparsable_statement_is_refused() -> None:
    with pytest.raises(PermissionDeniedError, match="cannot be checked"):
        _policy().check(analyze("SELEC 1"))


@pytest.mark.parametrize(
    ("entries", "sql", "allowed"),
    [
        # a qualified entry matches that schema's table, qualified or not
        (["public.orders"], "SELECT * FROM public.orders", True),
        (["public.orders"], "SELECT * FROM orders", True),
        (["public.orders"], "SELECT * FROM secret.orders", False),
        (["public.orders"], "SELECT * FROM public.customers", False),
        # an unqualified entry matches the name in any schema
        (["orders"], "SELECT * FROM orders", True),
        (["orders"], "SELECT * FROM sales.orders", True),
        (["orders"], "SELECT * FROM orders_archive", False),
        # case: unquoted folds, quoted does not
        (["Public.Orders"], "SELECT * FROM PUBLIC.ORDERS", True),
        (['"Mixed"'], 'SELECT * FROM "Mixed"', True),
        (['"Mixed"'], "SELECT * FROM Mixed", False),
        (["mixed"], 'SELECT * FROM "Mixed"', False),
        (["Café"], "SELECT * FROM CAFé", True),
        (["Café"], "SELECT * FROM CAFÉ", False),
        (['public."Mixed"'], 'SELECT * FROM "Mixed"', True),
        # a dotted quoted name is one name, not schema.name
        (["my.table"], 'SELECT * FROM "my.table"', False),
        (['"my.table"'], 'SELECT * FROM "my.table"', True),
        # every table must be allowed: joins, subqueries, DML targets
        (["a", "b"], "SELECT * FROM a JOIN b ON true", True),
        (["a"], "SELECT * FROM a JOIN b ON true", False),
        (["a"], "SELECT * FROM a WHERE id IN (SELECT id FROM b)", False),
        (["t"], "INSERT INTO t SELECT * FROM other", False),
        # a CTE is not a table
        (["a"], "WITH x AS (SELECT * FROM a) SELECT * FROM x", True),
        ([], "SELECT 1", True),
        ([], "SELECT * FROM a", False),
    ],
)
def test_table_matching(entries: list[str], sql: str, allowed: bool) -> None:
    policy = _policy(tables=entries)
    if allowed:
        policy.check(analyze(sql))
    else:
        with pytest.raises(PermissionDeniedError, match="not in the role's tables"):
            policy.check(analyze(sql))


def test_table_message_names_only_the_refused_tables() -> None:
    policy = _policy(tables=["public.orders"])
    with pytest.raises(PermissionDeniedError) as info:
        policy.check(analyze("SELECT * FROM orders JOIN secret.salaries s ON true JOIN b ON true"))
    assert (
        str(info.value)
        == "role 'r' may not use tables b, secret.salaries: not in the role's tables"
    )


def test_ddl_is_checked_before_operations_and_tables() -> None:
    policy = _policy(operations=["SELECT"], tables=["a"])
    with pytest.raises(PermissionDeniedError, match="not allow DDL"):
        policy.check(analyze("CREATE TABLE b (x int)"))


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text("utf-8")
    section = doc.split("## Role policies (QUERYBUS_POLICY_FILE)", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    policies = _load(tmp_path, example)
    assert policies.for_role("reporting").max_rows == 1000
    assert policies.for_role("app_admin").burst == 5
    policies.for_role("reporting").check(analyze("EXPLAIN SELECT * FROM orders"))
