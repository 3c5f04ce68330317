"""CLI output off a terminal, ``--json``, and the ``serve``/``check`` options
(issue 7, defects 8 and 9, and ``--allow-superuser``), without the local stack.

The stack-backed variants are in ``tests/integration/test_cli_*.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from rich.table import Table
from tests.integration.cli_helpers import run_cli
from typer.testing import CliRunner

from querybus.cli.check import ADAPTER_SERVICE
from querybus.cli.common import OFF_TERMINAL_WIDTH, console
from querybus.cli.main import adapter_settings, app
from querybus.cli.registry import registry_app

runner = CliRunner()

LONG_ID = "database-adapter-" + "0123456789abcdef" * 8  # 145 characters


def _clean_env() -> dict[str, str]:
    """The environment without the stack's settings (no Kafka, no registry)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "POSTGRES_", "QUERYBUS_", "ETCD_", "COLUMNS"))
    }


def test_console_off_a_terminal_is_wide_and_never_cuts_a_cell() -> None:
    def show() -> None:
        out = console()
        assert out.width == OFF_TERMINAL_WIDTH
        table = Table("name", "instance")
        table.add_row(LONG_ID, LONG_ID[::-1])
        out.print(table)

    one = typer.Typer()
    one.command()(show)
    app_result = runner.invoke(one)
    assert app_result.exit_code == 0, app_result.output
    lines = app_result.output.splitlines()
    assert any(LONG_ID in line and LONG_ID[::-1] in line for line in lines), app_result.output
    assert "…" not in app_result.output
    # No line is padded out to the console's width.
    assert max(len(line) for line in lines) < 2 * len(LONG_ID) + 20


@pytest.mark.parametrize("filters", [[], ["--name", "nothing-here"], ["--type", "effect"]])
def test_registry_ls_says_plainly_when_nothing_is_registered(filters: list[str]) -> None:
    result = runner.invoke(
        registry_app, ["ls", *filters], env={"QUERYBUS_REGISTRY": "memory", "COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    if filters:
        assert "no instance in the memory registry matches" in result.output
        assert filters[1] in result.output
    else:
        assert "nothing is registered in the memory registry" in result.output
    assert "┃" not in result.output  # no empty table
    assert "│" not in result.output


def test_registry_ls_json_of_an_empty_registry_is_an_empty_list() -> None:
    result = runner.invoke(registry_app, ["ls", "--json"], env={"QUERYBUS_REGISTRY": "memory"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_serve_help_explains_allow_superuser() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--allow-superuser" in text
    assert "run programs and read files on the database host" in text
    assert "QUERYBUS_ALLOW_SUPERUSER" in text


def test_allow_superuser_flag_turns_the_setting_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUERYBUS_ALLOW_SUPERUSER", raising=False)
    assert adapter_settings().allow_superuser is False
    assert adapter_settings(allow_superuser=True).allow_superuser is True
    monkeypatch.setenv("QUERYBUS_ALLOW_SUPERUSER", "1")
    assert adapter_settings().allow_superuser is True  # no flag: the environment decides
    monkeypatch.setenv("QUERYBUS_ALLOW_SUPERUSER", "0")
    settings = adapter_settings(group="g1", pool_size=3, http_port=0, allow_superuser=True)
    assert (settings.group_id, settings.pool_size, settings.http_port) == ("g1", 3, 0)
    assert settings.allow_superuser is True


def test_check_looks_up_the_name_adapters_register_under() -> None:
    from querybus.cli.serve import SERVICE_NAME

    assert ADAPTER_SERVICE == SERVICE_NAME


def test_check_refuses_a_zero_timeout() -> None:
    result = runner.invoke(app, ["check", "--timeout", "0"], env={"QUERYBUS_REGISTRY": ""})
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("as_json", [False, True])
async def test_check_on_a_bus_with_no_adapter_answers_within_seconds(
    tmp_path: Path, as_json: bool
) -> None:
    """The in-memory bus of a fresh process has no adapter: nothing can answer."""
    env = {
        **_clean_env(),
        "KAFKA_BOOTSTRAP_SERVERS": "memory://nobody-serves",
        "QUERYBUS_REGISTRY": "",
    }
    flags = ["--json"] if as_json else []
    code, stdout, stderr = await run_cli(env, tmp_path, "check", "--timeout", "2", *flags, bound=15)
    assert code == 1
    if as_json:
        got = json.loads(stdout)
        assert (got["ok"], got["error"], got["reason"]) == (False, "NoAdapterError", "no_answer")
        assert "querybus serve" in got["hint"]
        assert "within 2 s" in got["message"]
    else:
        assert "no adapter answered" in stderr
        assert "querybus serve" in stderr
        assert "within 2 s" in stderr
        assert "no service registry configured" in stderr


async def test_dev_json_prints_one_object_per_statement(tmp_path: Path) -> None:
    long_text = "x" * 300
    script = f"SELECT 1 AS id, '{long_text}' AS note\nSELECT 2 AS two\nSELECT * FROM nowhere\n"
    code, stdout, stderr = await run_cli(
        _clean_env(), tmp_path, "dev", "--json", "--db", str(tmp_path / "d.sqlite3"),
        bound=60, input=script.encode(),
    )  # fmt: skip
    assert code == 1, stderr  # one statement failed
    objects = [json.loads(line) for line in stdout.splitlines()]
    assert len(objects) == 3, stdout
    assert [o["ok"] for o in objects] == [True, True, False]
    assert objects[0]["rows"] == [{"id": 1, "note": long_text}]
    assert [c["name"] for c in objects[0]["columns"]] == ["id", "note"]
    assert objects[1]["rows"] == [{"two": 2}]
    assert objects[2]["sqlstate"] == "42P01"
