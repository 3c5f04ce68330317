"""``querybus route explain`` (offline: no database)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from querybus.cli.route import route_app

runner = CliRunner()


def test_explain_json_for_a_write_hidden_in_a_cte() -> None:
    result = runner.invoke(
        route_app, ["explain", "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "--json"]
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["target"] == "primary"
    assert got["reason"] == "writing_cte"
    assert got["complexity"]["class"] == "simple"
    assert isinstance(got["complexity"]["score"], int)


def test_explain_json_for_a_read() -> None:
    result = runner.invoke(route_app, ["explain", "SELECT count(*) FROM t WHERE a = $1", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert (got["target"], got["reason"]) == ("replica", "read")


def test_explain_human_output() -> None:
    result = runner.invoke(route_app, ["explain", "SELECT * FROM t FOR UPDATE"])
    assert result.exit_code == 0, result.output
    assert "primary" in result.output
    assert "locking" in result.output


def test_explain_unparsable_goes_to_primary() -> None:
    result = runner.invoke(route_app, ["explain", "SELEC 1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["reason"] == "unparsable"
