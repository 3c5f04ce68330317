"""Offsets are committed contiguously: a request whose reply is neither
produced nor dead-lettered yet holds back the commit of everything after it
in its partition, however many later requests are done (issue 11: replies
are buffered without awaiting each one, and the commit must still never
pass a reply that is not out). Real Kafka, a real adapter; bounds are hang
guards only."""

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
    send = svc._replies.send

    async def send_holding_one(address: Any, correlation_id: str, *args: Any, **kw: Any) -> None:
        if correlation_id == held_id:
            await release.wait()  # neither produced nor dead-lettered until released
        await send(address, correlation_id, *args, **kw)

    svc._replies.send = send_holding_one  # type: ignore[method-assign]
    for request in requests:
        await raw.send(encode(request), request.id)
    # Every other request is answered: its reply is out.
    others = {r.id.encode() for r in requests if r.id != held_id}
    await collect(
        raw.replies,
        N - 1,
        timeout=30,
        where=lambda record: record.header(Headers.CORRELATION_ID) in others,
    )
    partition = _partition_of(svc)
    # The partition held only these N: the first is N before the next.
    first = svc._tracker._next[(bus.settings.topics.request, partition)] - N
    await svc._commit()
    committed = await committed_offset(bus, partition)
    # Nothing at or past the held request's offset is committed.
    assert committed is None or committed <= first + HELD

    release.set()
    await raw.reply(held_id, timeout=30)

    async def all_committed() -> bool:
        await svc._commit()
        return await committed_offset(bus, partition) == first + N

    await wait_for(all_committed, 30, message="every offset committed once the reply is out")
