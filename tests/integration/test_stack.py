"""The local services are real and reachable: Kafka, PostgreSQL primary + replica, etcd."""

from __future__ import annotations

import asyncio
import base64
import time

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tests.stack import Stack, UniqueNames


async def test_kafka_answers_metadata_and_creates_topics(stack: Stack, unique: UniqueNames) -> None:
    topic = unique("stack")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        assert topic in await admin.list_topics()
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def test_primary_is_not_in_recovery(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.pg_dsn)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        assert await conn.fetchval("SELECT current_database()") == stack.pg.database
    finally:
        await conn.close()


async def test_replica_is_in_recovery(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.replica_dsn)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
    finally:
        await conn.close()


async def test_row_written_on_primary_reaches_replica(stack: Stack, unique: UniqueNames) -> None:
    table = unique.ident("stack")
    primary = await asyncpg.connect(stack.pg_dsn)
    replica = await asyncpg.connect(stack.replica_dsn)
    try:
        await primary.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
        await primary.execute(f"INSERT INTO {table} VALUES (1, 'replicated')")
        deadline = time.monotonic() + 15
        note = None
        while time.monotonic() < deadline:
            exists = await replica.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            if exists:
                note = await replica.fetchval(f"SELECT note FROM {table} WHERE id = 1")
                if note is not None:
                    break
            await asyncio.sleep(0.05)
        assert note == "replicated"
    finally:
        try:
            await primary.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            await replica.close()
            await primary.close()


async def test_etcd_is_healthy_and_stores_keys(stack: Stack, unique: UniqueNames) -> None:
    key = unique("stack")

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    async with httpx.AsyncClient(base_url=stack.etcd_endpoint, timeout=5) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["health"] == "true"
        put = await http.post("/v3/kv/put", json={"key": b64(key), "value": b64("up")})
        assert put.status_code == 200
        got = await http.post("/v3/kv/range", json={"key": b64(key)})
        values = [base64.b64decode(kv["value"]).decode() for kv in got.json()["kvs"]]
        assert values == ["up"]
        await http.post("/v3/kv/deleterange", json={"key": b64(key)})
