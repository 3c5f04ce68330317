"""The adapter's per-request statement analysis: ``Policy.check`` then
``Classifier.classify``, for statements that differ only in their literals (a
text-cache miss, the common case). Runs unchanged on older trees too, so a
before/after comparison is ``PYTHONPATH=<old tree>/src python tools/bench_analysis.py``
against ``python tools/bench_analysis.py``, alternated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from querybus.adapter.policy import Policy
from querybus.protocol import QueryRequest, ReplyAddress
from querybus.routing.classify import Classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="fresh texts per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()), help="makes texts unique")
    args = parser.parse_args()
    policy, classifier = Policy(), Classifier()
    per_request = []
    for r in range(args.rounds):
        base = args.seed * 1_000_000 + r * args.requests
        requests = [
            QueryRequest(
                id="x",
                client="c",
                sql=f"SELECT id, name FROM agents WHERE id = {base + i} AND score > {i}",
                reply_to=ReplyAddress("r", 0),
                deadline=time.time() + 30,
            )
            for i in range(args.requests)
        ]
        started = time.perf_counter()
        for request in requests:
            policy.check(request)
            classifier.classify(request.sql)
        per_request.append((time.perf_counter() - started) / args.requests * 1e6)
    print(f"policy + classify, new literals: {statistics.median(per_request):.2f} µs per request")


if __name__ == "__main__":
    main()
