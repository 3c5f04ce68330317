"""Cost of routing: classification (cached and uncached) and per-request overhead.

Run ``python tools/bench_routing.py`` (``--json`` for one JSON object).
With a database configured (``POSTGRES_*`` and ``QUERYBUS_REPLICA_DSNS``, or
``.stack/env`` in the repository) it also measures, side by side in one run,
the same point query through :class:`RoutingExecutor` and directly through
one pool on the replica, and reports the difference per request.

Figures are medians of several repeats (these machines are noisy); the core
count is printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from querybus.routing.classify import Classifier
from querybus.routing.lag import LagSample
from querybus.routing.router import Router
from querybus.routing.settings import RoutingSettings
from querybus.routing.targets import Target

__all__ = ["main", "measure_classification", "measure_executor"]

POINT = "SELECT id, owner, balance FROM accounts WHERE id = $1"
COMPLEX = (
    "WITH r AS (SELECT account_id, sum(amount) AS s FROM orders GROUP BY 1) "
    "SELECT a.*, r.s, rank() OVER (ORDER BY r.s DESC) FROM accounts a "
    "JOIN r ON r.account_id = a.id LEFT JOIN orders o ON o.id = a.id "
    "WHERE a.id IN (SELECT account_id FROM orders WHERE amount > 10) ORDER BY 1, 2 LIMIT 50"
)


def _letters(i: int) -> str:
    # pglast's fingerprint ignores numeric suffixes of table names (partitions
    # look alike), so uncached statements get letter-only names to stay distinct.
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += chr(97 + r)
        if not i:
            return out


def _per_call_us(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean µs per call of ``fn(i)`` for i < n."""
    runs = []
    for r in range(repeats):
        base = r * n
        started = time.perf_counter_ns()
        for i in range(n):
            fn(base + i)
        runs.append((time.perf_counter_ns() - started) / n / 1000)
    return statistics.median(runs)


def measure_classification(n: int = 2000, repeats: int = 5) -> dict[str, float]:
    """µs per classification: uncached (new statement shape each call), a
    fingerprint-cache hit (same shape, new constant), a text-cache hit, and
    one routing decision (:meth:`Router.plan`, two replicas)."""
    c = Classifier(cache_size=10_000_000)
    # Every uncached call must really parse: check the fingerprints differ.
    assert (
        c.classify("SELECT 1 FROM t_ab").fingerprint != c.classify("SELECT 1 FROM t_ac").fingerprint
    )
    out = {
        # A new table name per call: a new fingerprint, so a full parse and walk.
        "uncached_point_us": _per_call_us(
            lambda i: c.classify(f"SELECT id, owner, balance FROM t_{_letters(i)} WHERE id = $1"),
            n,
            repeats,
        ),
        "uncached_complex_us": _per_call_us(
            lambda i: c.classify(COMPLEX.replace("orders", f"o_{_letters(i)}")), n, repeats
        ),
        # Same shape, new literal: the text misses, the fingerprint hits.
        "fingerprint_hit_us": _per_call_us(
            lambda i: c.classify(f"SELECT id FROM accounts WHERE id = {i}"), n, repeats
        ),
    }
    c.classify(POINT)
    out["text_hit_us"] = _per_call_us(lambda i: c.classify(POINT), n * 10, repeats)

    from querybus.protocol.messages import OperationType, QueryRequest, ReplyAddress

    replicas = []
    for name in ("a", "b"):
        t = Target(name, f"postgresql://h/{name}")
        t.sample = LagSample(1, 0, 0.0, True, time.monotonic() + 3600)
        replicas.append(t)
    router = Router(
        Target("primary", "postgresql://h/p", is_primary=True), replicas, RoutingSettings()
    )
    request = QueryRequest(
        id="b",
        client="b",
        op=OperationType.SELECT,
        sql=POINT,
        reply_to=ReplyAddress("t", 0),
        deadline=time.time() + 60,
    )
    cls = c.classify(POINT)
    out["plan_us"] = _per_call_us(lambda i: router.plan(request, cls), n * 5, repeats)
    out["classify_and_plan_us"] = _per_call_us(
        lambda i: router.plan(request, c.classify(POINT)), n * 5, repeats
    )
    return out


async def measure_executor(
    primary_dsn: str, replica_dsn: str, *, requests: int = 2000, repeats: int = 3
) -> dict[str, float]:
    """Point query on the replica, sequentially: through RoutingExecutor vs one
    plain pool on the same replica (both running ``run_on_connection``).

    Raises:
        QueryBusError: a database could not be reached.
    """
    from querybus.database.postgres import create_pool, pooled, run_on_connection
    from querybus.execution import Job
    from querybus.protocol.messages import OperationType, QueryRequest, ReplyAddress
    from querybus.routing.executor import RoutingExecutor

    sql = "SELECT $1::int AS id, 'x'::text AS owner"
    request = QueryRequest(
        id="b",
        client="b",
        op=OperationType.SELECT,
        sql=sql,
        reply_to=ReplyAddress("t", 0),
        deadline=time.time() + 3600,
    )
    job = Job.of(request, [1])
    ex = RoutingExecutor(primary_dsn, [replica_dsn], settings=RoutingSettings(pool_size=2))
    pool = await create_pool(replica_dsn, size=2, max_statement_timeout=30.0)
    await ex.start()
    try:

        async def direct() -> float:
            started = time.perf_counter()
            async with pooled(pool, None) as conn:
                await run_on_connection(conn, job, session_timeout=30.0)
            return time.perf_counter() - started

        route_seconds: list[float] = []

        async def routed() -> float:
            started = time.perf_counter()
            out = await ex.run(job)
            assert out.route is not None
            assert out.route.target.startswith("replica:")
            route_seconds.append(out.route_seconds)
            return time.perf_counter() - started

        for fn in (direct, routed):  # warm both: statement caches, connections
            for _ in range(200):
                await fn()
        direct_p50, routed_p50 = [], []
        for _ in range(repeats):
            # Interleaved in one run, so both see the same machine noise.
            d, r = [], []
            for _ in range(requests):
                d.append(await direct())
                r.append(await routed())
            direct_p50.append(statistics.median(d))
            routed_p50.append(statistics.median(r))
        dp, rp = statistics.median(direct_p50), statistics.median(routed_p50)
        return {
            "direct_p50_us": dp * 1e6,
            "routed_p50_us": rp * 1e6,
            "overhead_p50_us": (rp - dp) * 1e6,
            "ratio": rp / dp,
            "route_seconds_p50_us": statistics.median(route_seconds) * 1e6,
        }
    finally:
        await ex.stop()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python tools/bench_routing.py")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-db", action="store_true", help="skip the database measurement")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"cores": os.cpu_count(), "classification": measure_classification()}
    if not args.no_db:
        from querybus.cli.common import load_stack_env
        from querybus.config import PostgresSettings

        load_stack_env()
        replicas = [d for d in os.environ.get("QUERYBUS_REPLICA_DSNS", "").split(",") if d]
        if replicas:
            result["executor"] = asyncio.run(
                measure_executor(
                    PostgresSettings.from_env().dsn, replicas[0], requests=args.requests
                )
            )
    if args.json:
        print(json.dumps(result))
        return
    print(f"routing cost ({result['cores']} cores; medians)")
    for key, value in result["classification"].items():
        print(f"  {key:<24} {value:9.2f}")
    for key, value in result.get("executor", {}).items():
        print(f"  {key:<24} {value:9.2f}")


if __name__ == "__main__":
    main()
