"""Run SQL through the adapter's statement checks in a child process, to find
the statements that kill the process that checks them.

A parser written in C can overflow its stack on a deeply nested statement and
take the whole process down (SIGSEGV): the adapter, and with an in-process
adapter the test runner too. The fuzz test sends no such statement to its
in-process adapter; it reports each one as a failure instead.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_crashing_sql"]

_REPO = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[2])  # the repository, for tests.helpers
from querybus.adapter.policy import Policy
from querybus.routing.classify import classify
from querybus.sql import analyze
from tests.helpers import make_request

items = json.load(sys.stdin)
policy = Policy()
for i in range(int(sys.argv[1]), len(items)):
    print("checking", i, flush=True)
    sql, params = items[i]
    request = make_request(sql, params, client="probe", timeout=60)
    # What the adapter does with it: the policy, then (for what the policy
    # lets through) the executor's analysis and classification. An exception
    # is the in-process fuzz's business: only a crash counts here.
    try:
        policy.check(request)
        analyze(sql)
        classify(sql)
    except Exception:
        pass
print("done", flush=True)
"""


async def find_crashing_sql(
    items: Sequence[tuple[str, str, Sequence[object]]], *, timeout: float = 120.0
) -> dict[str, str]:
    """Names of the (name, sql, params) items whose checks kill the process, with how.

    Raises:
        AssertionError: the child process failed for another reason (it could not start,
            or it died before checking anything).
    """
    payload = json.dumps([[sql, list(params)] for _, sql, params in items]).encode()
    crashed: dict[str, str] = {}
    start = 0
    while start < len(items):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SCRIPT,
            str(start),
            str(_REPO),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"checking SQL in a child process took over {timeout} s") from None
        if proc.returncode == 0:
            break
        checking = [line for line in out.decode().splitlines() if line.startswith("checking ")]
        if not checking:
            raise AssertionError(
                f"the SQL probe died before checking anything (exit {proc.returncode}): "
                f"{err.decode()[-2000:]}"
            )
        index = int(checking[-1].split()[1])
        code = proc.returncode or 0
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        crashed[items[index][0]] = how
        start = index + 1
    return crashed
