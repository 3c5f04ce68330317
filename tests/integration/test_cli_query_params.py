"""``querybus query`` parameters through a real adapter (issue 7, defect 10).

``querybus query 'SELECT $1' 02134`` sent the integer 2134. Each value below
goes through the CLI as a separate process, the bus and PostgreSQL, and must
come back as exactly the text typed — or as the type ``--param-type`` asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cli_helpers import cli_env, run_cli, serving
from tests.integration.conftest import Bus
from tests.stack import Stack


def _env(stack: Stack, bus: Bus) -> dict[str, str]:
    return cli_env(stack, bus.settings.topics.prefix, registry=False)


async def _query(env: dict[str, str], cwd: Path, sql: str, *args: str) -> dict[str, Any]:
    _, out, err = await run_cli(env, cwd, "query", "--json", sql, *args, bound=60)
    assert out, err
    got: dict[str, Any] = json.loads(out)
    assert got["ok"], got
    return got


# Typed as text even though int()/float() would read them: each would change.
TEXT_VALUES = [
    "02134",
    "007",
    "0.50",
    "1e3",
    "1.50",
    "+5",
    "1_000",
    "nan",
    "None",
    "a::int",
    "41::text",
]


async def test_values_that_would_change_as_numbers_arrive_as_typed(
    stack: Stack, bus: Bus, tmp_path: Path
) -> None:
    await serving(bus)
    placeholders = ", ".join(f"${i}::text AS v{i}" for i in range(1, len(TEXT_VALUES) + 1))
    got = await _query(_env(stack, bus), tmp_path, f"SELECT {placeholders}", *TEXT_VALUES)
    assert list(got["rows"][0].values()) == TEXT_VALUES


async def test_inferred_types_reach_the_database(stack: Stack, bus: Bus, tmp_path: Path) -> None:
    await serving(bus)
    got = await _query(
        _env(stack, bus),
        tmp_path,
        "SELECT $1::bigint + 1 AS a, $2::float8 * 2 AS b, NOT $3::bool AS c, "
        "$4::int IS NULL AS d, $5::jsonb ->> 'k' AS e, $6::text AS f",
        "41",
        "4.5",
        "true",
        "null",
        '{"k": "0012"}',
        "'0012'",
    )
    assert got["rows"] == [{"a": 42, "b": 9.0, "c": False, "d": True, "e": "0012", "f": "0012"}]


@pytest.mark.parametrize(
    ("sql", "args", "expected"),
    [
        ("SELECT $1::int + 1 AS v", ["-t", "1=int", "02134"], 2135),
        ("SELECT $1::text AS v", ["--param-type", "1=text", "41"], "41"),
        ("SELECT $1::text AS v", ["-t", "1=text", "true"], "true"),
        ("SELECT $1::text AS v", ["-t", "1=text", "null"], "null"),
        ("SELECT $1::text AS v", ["-t", "1=text", "'quoted'"], "'quoted'"),
        ("SELECT $1::numeric::text AS v", ["-t", "1=numeric", "1.50"], "1.50"),
        ("SELECT $1::float8 * 2 AS v", ["-t", "1=float", "1e3"], 2000.0),
        ("SELECT jsonb_typeof($1::jsonb) AS v", ["-t", "1=jsonb", "5"], "number"),
        ("SELECT $1::date + 1 AS v", ["-t", "1=date", "2026-02-28"], "2026-03-01"),
        ("SELECT length($1::bytea) AS v", ["-t", "1=bytea", "\\xdeadbeef"], 4),
        ("SELECT $1::text || $2::int AS v", ["-t", "$2=int", "007", "007"], "0077"),
        ("SELECT $1::text AS v", ["--raw", "41"], "41"),
    ],
)
async def test_param_type_overrides_inference(
    stack: Stack, bus: Bus, tmp_path: Path, sql: str, args: list[str], expected: Any
) -> None:
    await serving(bus)
    got = await _query(_env(stack, bus), tmp_path, sql, *args)
    assert got["rows"] == [{"v": expected}]
