"""A producer the broker refuses for its sequence numbers is replaced.

aiokafka's idempotent producer numbers its batches per partition. A batch
that fails without reaching the log (across a broker restart, for one) leaves
a gap, and from then on the broker refuses every batch of that producer with
OutOfOrderSequenceNumber: an adapter kept serving but none of its replies
arrived (the broker-outage test failed so, now and then, with every reply
dead-lettered). The transport now replaces such a producer (a new producer
id) at the next send.

The broken state is injected into the real producer, on the real broker: its
records fail as aiokafka fails them then, at the acknowledgement or at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from tests.helpers import collect
from tests.stack import Stack, UniqueNames

from querybus.errors import TransportError
from querybus.transport import TopicSpec
from querybus.transport.kafka import KafkaTransport


@pytest.mark.parametrize("where", ["acknowledgement", "send"])
async def test_a_producer_refused_for_its_sequence_is_replaced_and_delivers_again(
    stack: Stack, unique: UniqueNames, where: str
) -> None:
    transport = KafkaTransport(stack.kafka_bootstrap, request_timeout=10.0)
    topic = unique("sequence")
    await transport.create_topics([TopicSpec(topic)])
    producer = transport.producer()
    await producer.start()
    try:
        await producer.send(topic, b"before")
        broken: Any = producer._producer

        async def refused(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            if where == "send":
                raise OutOfOrderSequenceNumber()
            delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            delivery.set_exception(OutOfOrderSequenceNumber())
            return delivery

        broken.send = refused
        with pytest.raises(TransportError, match="OutOfOrderSequenceNumber"):
            await producer.send(topic, b"refused")
        # The next send goes out on a new producer, and is delivered.
        await producer.send(topic, b"after")
        assert producer._producer is not broken
        reader = transport.partition_reader(topic, start_at="beginning")
        await reader.start()
        try:
            records = await collect(reader, 2)
        finally:
            await reader.stop()
        assert [r.value for r in records] == [b"before", b"after"]
    finally:
        await producer.stop()
        await transport.close()
