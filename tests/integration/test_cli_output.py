"""CLI output off a terminal on the real stack (issue 7, defect 9).

Piped, rich used to assume 80 columns: tables were wrapped and cells cut
(``database-ad…``), and an empty registry printed an empty table. Every
command here runs as its own process with stdout on a pipe.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli_helpers import cli_env, run_cli, serving
from tests.integration.conftest import Bus
from tests.stack import Stack, UniqueNames

from querybus.registry import HealthStatus, ServiceRegistry, open_backend

BOUND = 60.0


async def _cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    return await run_cli(env, cwd, *args, bound=BOUND)


async def test_registry_ls_of_an_empty_registry_says_so(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    prefix = unique("cli-out") + "."
    env = cli_env(stack, prefix, registry=True)
    code, out, err = await _cli(env, tmp_path, "registry", "ls")
    assert code == 0, err
    assert out == f"nothing is registered in the etcd registry (topic prefix {prefix!r})\n"
    code, out, err = await _cli(env, tmp_path, "registry", "ls", "--type", "effect")
    assert code == 0, err
    assert "no instance in the etcd registry" in out
    assert "matches type effect" in out
    code, out, err = await _cli(env, tmp_path, "registry", "ls", "--json")
    assert code == 0, err
    assert json.loads(out) == []


async def test_registry_ls_off_a_terminal_prints_whole_names_and_ids(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    prefix = unique("cli-out") + "."
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=prefix)
    await backend.start()
    names = [f"database-adapter-with-a-long-service-name-{n}-" + "x" * 60 for n in range(3)]
    registry = ServiceRegistry(backend)
    try:
        registrations = [
            await registry.register(
                name,
                "effect",
                prefix + "database.query.request." + "y" * 40,
                initial_status=HealthStatus.PASSING,
                ttl=30.0,
            )
            for name in names
        ]
        code, out, err = await _cli(
            cli_env(stack, prefix, registry=True), tmp_path, "registry", "ls"
        )
        code_json, out_json, _ = await _cli(
            cli_env(stack, prefix, registry=True), tmp_path, "registry", "ls", "--json"
        )
        for registration in registrations:
            await registration.deregister()
    finally:
        await registry.close()
        await backend.stop()
    assert code == 0, err
    assert "…" not in out
    lines = out.splitlines()
    for name, registration in zip(names, registrations, strict=True):
        # Each instance on one line, every field whole.
        row = [line for line in lines if registration.instance_id in line]
        assert len(row) == 1, out
        assert name in row[0]
        assert prefix + "database.query.request." + "y" * 40 in row[0]
    assert code_json == 0
    assert {i["instance_id"] for i in json.loads(out_json)} == {
        r.instance_id for r in registrations
    }


async def test_query_off_a_terminal_prints_whole_values(
    stack: Stack, bus: Bus, tmp_path: Path
) -> None:
    await serving(bus)
    env = cli_env(stack, bus.settings.topics.prefix, registry=False)
    long_value = "v" * 200
    long_name = "a_column_name_" + "n" * 48  # PostgreSQL keeps 63 bytes of a name
    sql = f"SELECT '{long_value}' AS {long_name}, $1::text AS id, '[red]x[/]' AS markup"
    ident = "database-adapter-" + "0123456789abcdef" * 4
    code, out, err = await _cli(env, tmp_path, "query", sql, ident)
    assert code == 0, err
    assert "…" not in out
    lines = out.splitlines()
    assert any(long_name in line for line in lines), out
    row = [line for line in lines if long_value in line]
    assert len(row) == 1, out
    assert ident in row[0]
    assert "[red]x[/]" in row[0]  # values are never read as markup
    assert "(1 row)" in lines
    assert any(line.startswith("SELECT 1") and "correlation id" in line for line in lines)


async def test_query_reports_empty_results_and_errors_plainly(
    stack: Stack, bus: Bus, tmp_path: Path
) -> None:
    await serving(bus)
    env = cli_env(stack, bus.settings.topics.prefix, registry=False)
    code, out, err = await _cli(env, tmp_path, "query", "SELECT 1 AS x WHERE false")
    assert code == 0, err
    assert "(0 rows)" in out.splitlines()
    missing = "t_no_such_table_" + "z" * 40
    code, out, err = await _cli(env, tmp_path, "query", f"SELECT * FROM {missing}")
    assert code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("ERROR 42P01")]
    assert len(error_lines) == 1, err
    assert missing in error_lines[0]
    code, out, _ = await _cli(env, tmp_path, "query", f"SELECT * FROM {missing}", "--json")
    assert code == 1
    got = json.loads(out)
    assert (got["ok"], got["sqlstate"]) == (False, "42P01")
