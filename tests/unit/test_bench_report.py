"""``querybus bench``'s figures without running it: the concurrency list, medians
over rounds, ratios, issue 11's targets and the one table (``cli/bench.py``).
The run itself is ``tests/integration/test_bench.py``."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from querybus.cli import bench


def _round(p50: float, qps: float, cpu: dict[str, float | None]) -> dict[str, Any]:
    return {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "qps": qps, "cpu_us": cpu}


def _cpu(
    caller: float, adapter: float | None, broker: float | None, postgres: float | None
) -> dict[str, float | None]:
    values = [v for v in (caller, adapter, broker, postgres) if v is not None]
    return {
        "caller": caller,
        "adapter": adapter,
        "broker": broker,
        "postgres": postgres,
        "total": sum(values),
    }


@pytest.mark.parametrize(
    ("text", "levels"),
    [("32", [32]), ("1,16,64", [1, 16, 64]), (" 4 , 1 ", [4, 1]), ("8,8,2", [8, 2])],
)
def test_concurrency_is_a_comma_list(text: str, levels: list[int]) -> None:
    assert bench.parse_concurrency(text) == levels


# "\u0661": an Arabic-Indic digit one (str.isdigit says yes; int() would take it).
@pytest.mark.parametrize("text", ["", "0", "1,,2", "-1", "a", "1.5", "\u0661"])
def test_a_bad_concurrency_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        bench.parse_concurrency(text)


def test_the_command_refuses_a_bad_concurrency_before_starting_anything() -> None:
    # The command alone (the real app mounts it in main()).
    app = typer.Typer()
    app.command()(bench.bench)
    result = CliRunner().invoke(app, ["--concurrency", "1,0"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "whole numbers of at least 1" in result.output


@pytest.mark.parametrize(
    ("address", "port"),
    [
        ("127.0.0.1:9092", 9092),
        ("localhost:5432", 5432),
        ("[::1]:9092", 9092),
        ("PLAINTEXT://127.0.0.1:9093", 9093),
        ("kafka.example.com:9092", None),  # elsewhere: no process of it here
        ("10.1.2.3:9092", None),
        ("127.0.0.1", None),
    ],
)
def test_only_a_loopback_service_is_looked_for_here(address: str, port: int | None) -> None:
    assert bench._loopback_port(address) == port


def test_each_figure_is_the_median_of_its_rounds() -> None:
    rounds = [
        _round(2.0, 400, _cpu(100, 300, 50, None)),
        _round(9.0, 100, _cpu(500, 900, 90, None)),
        _round(3.0, 300, _cpu(200, 400, 70, None)),
    ]
    median = bench._median(rounds)
    assert median["p50_ms"] == 3.0
    assert median["qps"] == 300
    assert median["cpu_us"] == {
        "caller": 200,
        "adapter": 400,
        "broker": 70,
        "postgres": None,  # never measured: stays unknown, not 0
        "total": 670,
    }


def test_ratios_and_targets_of_bus_against_direct() -> None:
    bus = bench._median([_round(3.0, 450, _cpu(150, 300, 60, 40))])
    direct = bench._median([_round(1.0, 1000, _cpu(100, None, None, 40))])
    ratio = bench._ratio(bus, direct)
    assert ratio == {
        "p50": 3.0,
        "p99": 3.0,
        "qps": 0.45,
        "p50_diff_ms": 2.0,
        "caller_cpu": 1.5,
        "total_cpu": 3.93,  # 550 / 140
    }
    at_16 = {t["key"]: t["met"] for t in bench._targets(16, ratio)}
    assert at_16 == {"qps": False, "p50": True, "caller_cpu": True}
    at_1 = {t["key"]: t["met"] for t in bench._targets(1, ratio)}
    assert at_1 == {"p50_diff_ms": False, "caller_cpu": True}
    # Other concurrencies have only the caller's CPU target.
    assert [t["key"] for t in bench._targets(8, ratio)] == ["caller_cpu"]


def test_a_ratio_of_an_unmeasured_figure_is_unknown() -> None:
    bus = bench._median([_round(3.0, 450, _cpu(150, None, None, None))])
    direct = bench._median([_round(1.0, 1000, _cpu(0, None, None, None))])
    ratio = bench._ratio(bus, direct)
    assert ratio["caller_cpu"] is None
    assert [t["met"] for t in bench._targets(64, ratio)] == [False, False, None]


def _report() -> dict[str, Any]:
    runs = []
    for level in (1, 16):
        sides = {
            "bus": bench._median([_round(2.5, 400, _cpu(150, None, 60, 40))]),
            "direct": bench._median([_round(0.4, 2500, _cpu(90, None, None, 40))]),
        }
        ratio = bench._ratio(sides["bus"], sides["direct"])
        runs.append(
            {
                "concurrency": level,
                "sides": sides,
                "ratio": ratio,
                "targets": bench._targets(level, ratio),
                "rounds": {},
            }
        )
    return {
        "setup": {
            "workload": "point",
            "concurrency": [1, 16],
            "requests": 300,
            "warmup": 50,
            "rounds": 2,
            "pool_size": 10,
            "cores": 2,
            "identity": False,
            "direct_mode": False,
            "adapter": "external",
        },
        "runs": runs,
    }


def test_one_table_for_every_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    bench._print(_report())
    out = capsys.readouterr().out
    assert (
        "querybus bench --workload point --concurrency 1,16 --requests 300 --warmup 50 "
        "--rounds 2 --pool-size 10 --external" in out
    )
    assert "2 cores" in out
    lines = out.splitlines()
    bus_rows = [line for line in lines if "querybus " in line and "│" in line]
    assert len(bus_rows) == 2  # one per concurrency
    # --external: the adapter's CPU is not measured, so the total is a floor.
    assert "—" in bus_rows[0]
    assert "≥250" in bus_rows[0]
    assert sum("bus / direct" in line for line in lines) == 2
    assert "x6.25 (+2.10 ms)" in out
    assert (
        "concurrency 1: p50 ≤ direct + 1.5 ms: +2.10 ms missed; "
        "caller CPU ≤ 1.5x direct: x1.67 missed" in out
    )
    assert "concurrency 16: throughput ≥ 0.5x direct: x0.16 missed" in out
