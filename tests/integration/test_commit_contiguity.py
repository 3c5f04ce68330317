"""Offsets are committed contiguously: a request whose reply is neither
produced nor dead-lettered yet holds back the commit of everything after it
in its partition, however many later requests are done (issue 11: the
commit must never pass a reply the broker has not acknowledged, whether
each reply's delivery is awaited by its request's task, as now, or settled
by a callback, as in the batched pipeline that was tried). Real Kafka, a
real adapter; bounds are hang guards only."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import collect, wait_for
from tests.integration.conftest import Bus
from tests.integration.test_hostile_requests import (  # noqa: F401  (fixture)
    Raw,
    _partition_of,
    committed_offset,
    raw,
)

from querybus.protocol import Headers, encode

N = 8
HELD = 3  # the request whose reply is held back


async def test_a_reply_not_out_yet_holds_back_the_commit_of_everything_after_it(
    bus: Bus,
    raw: Raw,  # noqa: F811
) -> None:
    svc = await bus.adapter(pool_size=2)
    requests = [raw.request("SELECT $1::int", [i]) for i in range(N)]
    held_id = requests[HELD].id
    release = asyncio.Event()
    producer: Any = svc._replies._producer
    start_send = producer.start_send
    held: list[asyncio.Task[Any]] = []

    async def acknowledged_later(ack: asyncio.Future[Any]) -> Any:
        await release.wait()
        return await ack

    async def start_send_holding_one(topic: str, value: bytes, **kw: Any) -> Any:
        # The held reply is buffered (and even sent), but its acknowledgement
        # reaches the adapter only once released: until then it is not out.
        ack = await start_send(topic, value, **kw)
        if (Headers.CORRELATION_ID, held_id.encode()) in kw.get("headers", ()):
            held.append(asyncio.ensure_future(acknowledged_later(ack)))
            return held[-1]
        return ack

    producer.start_send = start_send_holding_one
    for request in requests:
        await raw.send(encode(request), request.id)
    # Every reply reaches its caller, the held one too; only the adapter
    # does not know yet that the held one is out.
    ours = {r.id.encode() for r in requests}
    await collect(
        raw.replies,
        N,
        timeout=30,
        where=lambda record: record.header(Headers.CORRELATION_ID) in ours,
    )
    assert len(held) == 1
    partition = _partition_of(svc)
    # The partition held only these N: the first is N before the next.
    first = svc._tracker._next[(bus.settings.topics.request, partition)] - N
    await svc._commit()
    committed = await committed_offset(bus, partition)
    # Nothing at or past the held request's offset is committed.
    assert committed is None or committed <= first + HELD

    release.set()

    async def all_committed() -> bool:
        await svc._commit()
        return await committed_offset(bus, partition) == first + N

    await wait_for(all_committed, 30, message="every offset committed once the reply is out")
