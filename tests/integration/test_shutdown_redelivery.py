"""A request still running when its adapter's shutdown grace runs out is not
lost: it stays uncommitted, and another adapter of the group runs it."""

from __future__ import annotations

import asyncio

from tests.helpers import wait_for
from tests.integration.conftest import Bus


async def test_request_abandoned_at_shutdown_is_redelivered(bus: Bus) -> None:
    first = await bus.adapter(shutdown_grace=0.2)
    # A lost request would surface as RequestTimeoutError after 15 s.
    client = await bus.client(timeout=15)
    slow = asyncio.create_task(client.fetchrow("SELECT pg_sleep(1.5), 'finished' AS outcome"))
    # Wait until the first adapter holds the request, then stop it with a grace
    # shorter than the statement: the request is abandoned mid-way.
    await wait_for(
        lambda: (first.metrics.registry.get_sample_value("querybus_in_flight") or 0) >= 1,
        20,
        message="the first adapter holds the request",
    )
    await first.stop()
    second = await bus.adapter()
    row = await slow
    assert row is not None
    assert row["outcome"] == "finished"
    assert second.instance_id != first.instance_id
