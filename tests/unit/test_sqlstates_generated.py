"""src/querybus/sqlstates.py is what tools/gen_sqlstates.py makes of errcodes.txt."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gen_sqlstates.py"
MODULE = REPO / "src" / "querybus" / "sqlstates.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_sqlstates", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_generated_module_is_up_to_date(gen: ModuleType) -> None:
    errcodes: Path = gen.DEFAULT_ERRCODES
    # Not a skip: CI installs PostgreSQL, and a skipped check lets a stale module through.
    if not errcodes.exists():
        pytest.fail(
            f"{errcodes} is missing: install PostgreSQL 15's server package "
            "(scripts/services.sh does) so the SQLSTATE module can be checked"
        )
    assert MODULE.read_text(encoding="utf-8") == gen.generate(errcodes), (
        "src/querybus/sqlstates.py is stale: run `python tools/gen_sqlstates.py`"
    )


def test_check_mode_reports_a_stale_module(gen: ModuleType, tmp_path: Path) -> None:
    errcodes = tmp_path / "errcodes.txt"
    errcodes.write_text(SAMPLE, encoding="utf-8")
    out = tmp_path / "sqlstates.py"
    assert gen.main(["--errcodes", str(errcodes), "--output", str(out), "--check"]) == 1
    assert gen.main(["--errcodes", str(errcodes), "--output", str(out)]) == 0
    assert gen.main(["--errcodes", str(errcodes), "--output", str(out), "--check"]) == 0
    with pytest.raises(FileNotFoundError):
        gen.main(["--errcodes", str(tmp_path / "absent.txt"), "--output", str(out)])


@pytest.mark.parametrize(
    ("condition", "name"),
    [
        ("insufficient_privilege", "InsufficientPrivilegeError"),
        ("syntax_error_or_access_rule_violation", "SyntaxErrorOrAccessRuleViolationError"),
        ("read_only_sql_transaction", "ReadOnlySQLTransactionError"),
        ("fdw_error", "FDWError"),
        ("syntax_error", "PostgresSyntaxError"),  # never shadow a builtin
        ("system_error", "PostgresSystemError"),
        ("io_error", "PostgresIOError"),
        ("serialization_failure", "SerializationFailureError"),
    ],
)
def test_class_names(gen: ModuleType, condition: str, name: str) -> None:
    assert gen.class_name(condition) == name


SAMPLE = """\
# comment
Section: Class 00 - Successful Completion

00000  S  ERRCODE_SUCCESSFUL_COMPLETION  successful_completion

Section: Class 01 - Warning

01000  W  ERRCODE_WARNING  warning

Section: Class 08 - Connection Exception

08000  E  ERRCODE_CONNECTION_EXCEPTION  connection_exception
08006  E  ERRCODE_CONNECTION_FAILURE  connection_failure

Section: Class 40 - Transaction Rollback

40000  E  ERRCODE_T_R_ROLLBACK  transaction_rollback
40001  E  ERRCODE_T_R_SERIALIZATION_FAILURE  serialization_failure

Section: Class 42 - Syntax Error or Access Rule Violation

42000  E  ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION  syntax_error_or_access_rule_violation
42601  E  ERRCODE_SYNTAX_ERROR  syntax_error
42P01  E  ERRCODE_UNDEFINED_TABLE  undefined_table
42703  E  ERRCODE_UNDEFINED_COLUMN  undefined_column
42883  E  ERRCODE_UNDEFINED_FUNCTION  undefined_function
42704  E  ERRCODE_UNDEFINED_OBJECT  undefined_object
42P17  E  ERRCODE_INVALID_OBJECT_DEFINITION  invalid_object_definition

Section: Class 57 - Operator Intervention

57000  E  ERRCODE_OPERATOR_INTERVENTION  operator_intervention
57014  E  ERRCODE_QUERY_CANCELED  query_canceled

Section: Class 99 - Made Up Without A Base

99001  E  ERRCODE_MADE_UP  made_up_thing
99002  E  ERRCODE_SECOND_MACRO_FOR_99001
"""


def test_parse_places_every_code_under_its_class(gen: ModuleType) -> None:
    states = {s.code: s for s in gen.parse(SAMPLE)}
    assert set(states) == {
        "08000", "08006", "40000", "40001", "42000", "42601", "42P01", "42703",
        "42883", "42704", "42P17", "57000", "57014", "99001",
    }  # fmt: skip
    assert states["08000"].parent == "OperationalError"
    assert states["08006"].parent == "ConnectionExceptionError"
    assert states["42P01"].parent == "UndefinedObjectError"
    assert states["42704"].parent == "SyntaxErrorOrAccessRuleViolationError"
    assert states["42P17"].parent == "SyntaxErrorOrAccessRuleViolationError"
    assert states["99001"].parent == "QueryError"  # a class without an xx000 base
    assert states["40000"].retriable is True
    assert states["57014"].retriable is False
    assert states["40001"].retriable is None  # inherited
    order = [s.code for s in gen.parse(SAMPLE)]
    assert order.index("42704") < order.index("42P01")  # a parent before its children


def test_the_rendered_module_defines_what_it_exports(gen: ModuleType) -> None:
    namespace: dict[str, object] = {}
    exec(compile(gen.render(gen.parse(SAMPLE)), "sample_sqlstates.py", "exec"), namespace)
    from querybus.errors import OperationalError, QueryError

    classes = namespace["SQLSTATE_CLASSES"]
    assert isinstance(classes, dict)
    assert len(classes) == 14
    assert issubclass(classes["08006"], OperationalError)
    assert classes["57014"].retriable is False
    assert issubclass(classes["42883"], classes["42704"])
    assert classes["99001"].__bases__ == (QueryError,)
    for name in namespace["__all__"]:  # type: ignore[attr-defined]
        assert name in namespace


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("this is not errcodes.txt\n", "unrecognized line"),
        ("", "no SQLSTATE found"),
        ("42000  E  ERRCODE_A  same_name\n42001  E  ERRCODE_B  same_name\n", "is taken"),
        ("42000  E  ERRCODE_A  a_thing\n42000  E  ERRCODE_B  b_thing\n", "listed twice"),
        # would be DataError, which errors.py defines
        ("42000  E  ERRCODE_A  data\n", "DataError, which is taken"),
        # a code the script places by hand disappeared
        ("42000  E  ERRCODE_A  a_thing\n", "not in errcodes.txt any more"),
    ],
)
def test_parse_refuses_what_it_does_not_understand(gen: ModuleType, text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        gen.parse(text)


def test_the_generated_module_imports_first_in_a_fresh_interpreter() -> None:
    # querybus.sqlstates and querybus.errors import each other: either may come first.
    for first in ("querybus.sqlstates", "querybus.errors"):
        code = (
            f"import {first}\n"
            "from querybus.errors import UndefinedObjectError, query_error_class\n"
            "from querybus.sqlstates import UndefinedTableError\n"
            "assert query_error_class('42P01') is UndefinedTableError\n"
            "assert issubclass(UndefinedTableError, UndefinedObjectError)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
