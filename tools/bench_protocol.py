"""Codec microbenchmark: ``python tools/bench_protocol.py [--json]``.

Measures the real wire path, both directions, for a typical point query:

* request: ``encode(QueryRequest(params=encode_row(...)))`` → ``decode_request``
  → ``decode_row``;
* reply: ``encode(QueryResult(rows=encode_rows(...)))`` → ``decode_reply`` →
  ``decode_rows``.

Figures are microseconds per message (or per request + reply pair), the median
of several repeats timed with ``time.perf_counter_ns``, printed next to the
machine's core count. The issue's budget: ≤ 30 µs for encoding plus decoding a
typical request and its reply.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from querybus.protocol.codec import decode_reply, decode_request, encode
from querybus.protocol.messages import (
    Column,
    OperationType,
    QueryRequest,
    QueryResult,
    ReplyAddress,
    RouteInfo,
    Timings,
)
from querybus.protocol.values import decode_row, decode_rows, encode_row, encode_rows

__all__ = ["BUDGET_US", "main", "measure"]

#: The issue's budget for encode + decode of a typical request and reply, in µs.
BUDGET_US = 30.0

_COLUMNS = [
    Column("id", "int4"),
    Column("name", "text"),
    Column("balance", "numeric"),
    Column("active", "bool"),
    Column("updated_at", "timestamptz"),
]
_REPLY_TO = ReplyAddress("database.query.response", 3)


def _row(i: int) -> tuple[Any, ...]:
    return (
        41 + i,
        f"customer {i}",
        Decimal("1234.50") + i,
        True,
        dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=dt.UTC),
    )


def _request_roundtrip() -> None:
    data = encode(
        QueryRequest(
            id="6f1c5b1e2d7c4a7e9a432c1f0e1d9b7b",
            client="qb-1234-abcdef01",
            op=OperationType.SELECT,
            sql="SELECT id, name, balance, active, updated_at FROM accounts"
            " WHERE id = $1 AND region = $2 AND updated_at > $3",
            params=encode_row([41, "eu-west", dt.datetime(2026, 11, 1, tzinfo=dt.UTC)]),
            reply_to=_REPLY_TO,
            deadline=1_800_000_030.0,
            sent_at=1_800_000_000.0,
        )
    )
    req = decode_request(data)
    decode_row(req.params)


def _reply_roundtrip(rows: Sequence[tuple[Any, ...]]) -> Callable[[], None]:
    def run() -> None:
        data = encode(
            QueryResult(
                id="6f1c5b1e2d7c4a7e9a432c1f0e1d9b7a",
                command=f"SELECT {len(rows)}",
                columns=_COLUMNS,
                rows=encode_rows(rows),
                rowcount=len(rows),
                timings=Timings(queue=0.0012, execute=0.0004, route=0.00002, total=0.0006),
                route=RouteInfo(target="primary", reason="single_target"),
                served_by="adapter-1",
            )
        )
        reply = decode_reply(data)
        assert isinstance(reply, QueryResult)
        decode_rows(reply.rows)

    return run


def measure(fn: Callable[[], None], *, loops: int, repeats: int) -> float:
    """Median µs per call of ``fn`` over ``repeats`` runs of ``loops`` calls each."""
    for _ in range(max(1, loops // 10)):  # warm up caches and the allocator
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter_ns() - start) / loops / 1000)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures (``--json``: one JSON object).

    Returns:
        0 always: a benchmark prints figures, it does not judge them.
    """
    parser = argparse.ArgumentParser(prog="python tools/bench_protocol.py")
    parser.add_argument("--loops", type=int, default=20_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats (the median is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    one_row = [_row(0)]
    ten_rows = [_row(i) for i in range(10)]
    request = measure(_request_roundtrip, loops=args.loops, repeats=args.repeats)
    reply_1 = measure(_reply_roundtrip(one_row), loops=args.loops, repeats=args.repeats)
    reply_10 = measure(_reply_roundtrip(ten_rows), loops=args.loops // 4, repeats=args.repeats)
    report = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "loops": args.loops,
        "repeats": args.repeats,
        "request_us": round(request, 2),
        "reply_1row_us": round(reply_1, 2),
        "reply_10rows_us": round(reply_10, 2),
        "pair_1row_us": round(request + reply_1, 2),
        "pair_10rows_us": round(request + reply_10, 2),
        "budget_us": BUDGET_US,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"querybus codec, encode + decode, median of {args.repeats} repeats "
        f"({os.cpu_count()} cores, Python {report['python']})"
    )
    print(f"  request (point query, 3 params)            {request:7.2f} µs")
    print(f"  reply, 1 row x 5 columns                   {reply_1:7.2f} µs")
    print(f"  reply, 10 rows x 5 columns                 {reply_10:7.2f} µs")
    verdict = "within" if request + reply_1 <= BUDGET_US else "OVER"
    print(
        f"  request + 1-row reply                      {request + reply_1:7.2f} µs"
        f"  ({verdict} the {BUDGET_US:.0f} µs budget)"
    )
    print(f"  request + 10-row reply                     {request + reply_10:7.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
