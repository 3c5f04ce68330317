"""``querybus bench`` on the real stack, small: the shape of its report and the
CPU it reads per process (issue 11). Nothing about speed is asserted; the
figures only have to be there, and the CPU ones be numbers."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from tests.stack import Stack, UniqueNames

from querybus.cli.bench import run_bench

_PROCESSES = ("caller", "adapter", "broker", "postgres", "total")
_LATENCY = ("p50_ms", "p95_ms", "p99_ms", "qps")


def _assert_figures(figures: dict[str, Any]) -> None:
    for key in _LATENCY:
        assert isinstance(figures[key], float | int)
        assert figures[key] > 0
    assert set(figures["cpu_us"]) == set(_PROCESSES)


def _is_number(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


async def test_bench_measures_every_concurrency_in_rounds_with_cpu_per_process(
    stack: Stack, unique: UniqueNames
) -> None:
    report = await run_bench(
        concurrency=[1, 4],
        # PostgreSQL spends some 30 µs on a point query and /proc counts in
        # 10 ms ticks: 1000 requests make its share a few ticks, never none.
        requests=1000,
        pool_size=4,
        warmup=10,
        external=False,
        log=None,
        rounds=2,
        # The session's cleanup deletes topics named after unique() names.
        topic_prefix=unique("bench") + "-",
    )

    # --json prints it as it is: plain JSON values only.
    assert json.loads(msgspec.json.encode(report)) == report
    # What consumers of --json read before the list: the first concurrency.
    assert {"bus", "direct", "ratio", "setup", "rounds", "runs"} <= set(report)
    assert report["setup"]["concurrency"] == [1, 4]
    assert report["setup"]["cores"] >= 1
    assert [run["concurrency"] for run in report["runs"]] == [1, 4]
    assert report["bus"] == report["runs"][0]["sides"]["bus"]
    assert report["direct"] == report["runs"][0]["sides"]["direct"]
    assert report["ratio"] == report["runs"][0]["ratio"]
    idle = report["setup"]["cpu"]["idle_ms_per_s"]
    assert set(idle) == {"caller", "adapter", "broker", "postgres"}
    assert all(_is_number(value) and value >= 0 for value in idle.values())

    for run in report["runs"]:
        assert set(run["sides"]) == {"bus", "direct"}
        assert {len(rounds) for rounds in run["rounds"].values()} == {2}
        for side, rounds in run["rounds"].items():
            _assert_figures(run["sides"][side])
            for figures in rounds:
                _assert_figures(figures)
        for key in ("p50", "p99", "qps", "p50_diff_ms", "caller_cpu", "total_cpu"):
            assert _is_number(run["ratio"][key]), key
        assert {t["key"] for t in run["targets"]} >= {"caller_cpu"}

        bus = run["sides"]["bus"]["cpu_us"]
        for process in ("caller", "adapter", "postgres", "total"):
            assert _is_number(bus[process]), process
            assert bus[process] > 0, process
        # The broker's share of a tiny run may be under one clock tick.
        assert _is_number(bus["broker"])
        assert bus["broker"] >= 0
        direct = run["sides"]["direct"]["cpu_us"]
        assert _is_number(direct["caller"])
        assert direct["caller"] > 0
        assert _is_number(direct["postgres"])
        assert direct["postgres"] >= 0
        # Not the direct side's work: not reported.
        assert direct["adapter"] is None
        assert direct["broker"] is None
