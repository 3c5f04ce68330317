"""One Kafka hop, across processes: how long a record takes from ``send`` in
one process to ``getmany`` in another, through querybus's transport (a
``PartitionReader`` as the client reads replies, or a group consumer as the
adapter reads requests) or through aiokafka alone (the baseline).

The reader runs in a child process; the writer sends ``--records`` records,
each stamped with ``time.time()``, a few milliseconds apart (one at a time:
the latency a request at concurrency 1 meets on each of its two legs)::

    . .stack/env
    .venv/bin/python tools/bench_kafka_hop.py --records 300

prints the median latency of each reader kind side by side, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import time
import uuid

from querybus.config import BusSettings
from querybus.transport import TopicSpec, connect

KINDS = ("querybus-partition", "querybus-group", "aiokafka-assign", "aiokafka-group")


async def _read(topic: str, records: int, kind: str) -> None:
    """Read ``records`` records of ``topic`` and print the median latency."""
    bootstrap = BusSettings.from_env().bootstrap_servers
    latencies: list[float] = []
    if kind.startswith("querybus"):
        transport = connect(bootstrap)
        reader = (
            transport.partition_reader(topic, [0], start_at="end")
            if kind == "querybus-partition"
            else transport.group_consumer([topic], f"hop-{uuid.uuid4().hex[:8]}", start_lookback=0)
        )
        await reader.start()
        print("ready", flush=True)
        while len(latencies) < records:
            got = await reader.getmany(timeout=1.0)
            now = time.time()
            latencies += [now - struct.unpack("d", (r.value or b"")[:8])[0] for r in got]
        await reader.stop()
        await transport.close()
    else:
        # The baseline: aiokafka used directly, on purpose (tools/, not the package).
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

        options = {"bootstrap_servers": bootstrap, "fetch_max_wait_ms": 20}
        if kind == "aiokafka-group":
            assigned = asyncio.Event()

            class Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
                async def on_partitions_revoked(self, revoked: object) -> None:
                    pass

                async def on_partitions_assigned(self, partitions: object) -> None:
                    assigned.set()

            consumer = AIOKafkaConsumer(
                group_id=f"hop-{uuid.uuid4().hex[:8]}", auto_offset_reset="latest", **options
            )
            consumer.subscribe([topic], listener=Assigned())
            await consumer.start()
            await asyncio.wait_for(assigned.wait(), 60)
        else:
            consumer = AIOKafkaConsumer(**options)
            await consumer.start()
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
        print("ready", flush=True)
        while len(latencies) < records:
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.time()
            for messages in batches.values():
                latencies += [now - struct.unpack("d", m.value[:8])[0] for m in messages]
        await consumer.stop()
    print(f"{1000 * statistics.median(latencies):.3f}", flush=True)


async def _write(topic: str, records: int) -> None:
    transport = connect(BusSettings.from_env().bootstrap_servers)
    producer = transport.producer()
    await producer.start()
    for _ in range(records):
        await producer.send(topic, struct.pack("d", time.time()) + b"x" * 300, partition=0)
        await asyncio.sleep(0.003)
    await producer.stop()
    await transport.close()


async def _one(kind: str, records: int) -> float:
    topic = f"hop-{uuid.uuid4().hex[:8]}"
    transport = connect(BusSettings.from_env().bootstrap_servers)
    await transport.create_topics([TopicSpec(topic, partitions=1)])
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--read", kind, "--topic", topic, "--records", str(records),
        stdout=asyncio.subprocess.PIPE, env=os.environ,
    )  # fmt: skip
    assert child.stdout is not None
    assert (await child.stdout.readline()).strip() == b"ready"
    await asyncio.sleep(1.0)  # its first fetch is parked before the first record
    await _write(topic, records + 20)
    median = float((await child.stdout.readline()).decode())
    await child.wait()
    await transport.delete_topics([topic])
    await transport.close()
    return median


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--read", choices=KINDS)
    parser.add_argument("--topic")
    args = parser.parse_args()
    if args.read:
        await _read(args.topic, args.records, args.read)
        return
    results = {kind: await _one(kind, args.records) for kind in KINDS}
    print(f"{os.cpu_count()} cores, {args.records} records one at a time, median send → read:")
    for kind, median in results.items():
        print(f"  {kind:20s} {median:6.3f} ms")


if __name__ == "__main__":
    asyncio.run(_main())
