"""The migration examples (examples/migration/) keep their meaning (issue 10).

The same scenario runs against the same schema three times — the original
psycopg2 module directly on PostgreSQL, its DB-API drop-in migration through
the bus, and its async rewrite through the bus — and each leaves exactly the
same database and returns exactly the same answers. The scenario includes an
order that fails half-way (a duplicate order line after the order row was
written): psycopg2 rolls the whole order back, and so must both migrations.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest
from tests.integration.conftest import Bus, kafka_transport
from tests.stack import Stack

from querybus import QueryClient
from querybus.adapter.service import AdapterService
from querybus.config import AdapterSettings
from querybus.database.executor import PostgresExecutor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "migration"

CUSTOMERS = [
    (1, "alice", Decimal("100.00")),
    (2, "bob", Decimal("20.00")),
    (3, "carol", Decimal("500.00")),
]
D = Decimal
ORDERS: list[tuple[int, list[tuple[str, int, Decimal]]]] = [
    (1, [("apple", 2, D("10.00")), ("bread", 1, D("5.00"))]),  # placed
    (2, [("cheese", 1, D("30.00"))]),  # not enough credit
    (1, [("dates", 1, D("10.00")), ("dates", 1, D("10.00"))]),  # fails after the order row
    (3, [("eggs", 10, D("20.00"))]),  # placed
    (99, [("figs", 1, D("1.00"))]),  # no such customer
    (1, [("grapes", 3, D("5.00"))]),  # placed
]
TABLES = {
    "customers": "SELECT id, name, credit FROM customers ORDER BY id",
    "orders": "SELECT id, customer_id, total, note FROM orders ORDER BY id",
    "order_lines": "SELECT order_id, sku, qty, price FROM order_lines ORDER BY order_id, sku",
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"migration_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _outcome(exc: BaseException | None, result: Any = None) -> str:
    """What happened, in words all three versions share."""
    if exc is None:
        return f"ok {result}"
    name = type(exc).__name__
    if name == "InsufficientCredit":
        return "insufficient credit"
    if isinstance(exc, LookupError):
        return "no such customer"
    # psycopg2.IntegrityError, querybus.dbapi.IntegrityError, or querybus's
    # IntegrityConstraintViolationError subclasses: a broken constraint.
    classes = {c.__name__ for c in type(exc).__mro__}
    if classes & {"IntegrityError", "IntegrityConstraintViolationError"}:
        return "constraint violated"
    raise exc


@dataclass
class Database:
    """A database of its own for the examples (their table names are fixed)."""

    admin_dsn: str
    adapter_dsn: str

    async def reset(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute("TRUNCATE order_lines, orders, customers RESTART IDENTITY CASCADE")
            await conn.executemany("INSERT INTO customers VALUES ($1, $2, $3)", CUSTOMERS)
        finally:
            await conn.close()

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return {t: [tuple(r) for r in await conn.fetch(sql)] for t, sql in TABLES.items()}
        finally:
            await conn.close()


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[Database]:
    name = f"t_examples_{uuid.uuid4().hex[:8]}"
    login = stack.pg.user
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        db = Database(replace(stack.admin, database=name).dsn, replace(stack.pg, database=name).dsn)
        conn = await asyncpg.connect(db.admin_dsn)
        try:
            await conn.execute((EXAMPLES / "schema.sql").read_text())
            await conn.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {login};"
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {login};"
                f"GRANT CREATE ON SCHEMA public TO {login}"  # the adapter's own tables
            )
        finally:
            await conn.close()
        yield db
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _adapter(bus: Bus, stack: Stack, dsn: str) -> AdapterService:
    transport = kafka_transport(stack, bus.settings)
    svc = AdapterService(
        transport,
        PostgresExecutor(dsn, pool_size=4),
        bus=bus.settings,
        settings=AdapterSettings(group_id=bus.group_id, pool_size=4, http_port=0),
    )
    bus._cleanups.append(transport.close)
    bus._cleanups.append(svc.stop)
    await svc.start(http=False)
    return svc


def _run_sync(module: ModuleType, conn: Any) -> list[str]:
    said = []
    for customer, lines in ORDERS:
        try:
            said.append(_outcome(None, module.place_order(conn, customer, lines)))
        except Exception as exc:
            said.append(_outcome(exc))
    said.append(f"big orders {module.big_orders(conn, Decimal('20'))}")
    said.append(f"named {module.customers_named(conn, ('alice', 'carol', 'zed'))}")
    return said


async def _run_async(module: ModuleType, client: QueryClient) -> list[str]:
    said = []
    for customer, lines in ORDERS:
        try:
            said.append(_outcome(None, await module.place_order(client, customer, lines)))
        except Exception as exc:
            said.append(_outcome(exc))
    said.append(f"big orders {await module.big_orders(client, Decimal('20'))}")
    said.append(f"named {await module.customers_named(client, ('alice', 'carol', 'zed'))}")
    return said


async def test_the_three_versions_leave_the_same_database(
    database: Database, bus: Bus, stack: Stack
) -> None:
    original, dropin, rewrite = (
        _load("orders_psycopg2"),
        _load("orders_dbapi"),
        _load("orders_async"),
    )
    await _adapter(bus, stack, database.adapter_dsn)
    runs: dict[str, tuple[list[str], dict[str, list[tuple[Any, ...]]]]] = {}

    async def run(name: str, call: Callable[[], Any]) -> None:
        await database.reset()
        said = await call()
        runs[name] = (said, await database.snapshot())

    def psycopg2_run() -> list[str]:
        conn = original.connect(database.adapter_dsn)
        try:
            return _run_sync(original, conn)
        finally:
            conn.close()

    def dbapi_run() -> list[str]:
        conn = dropin.connect(bus.settings)
        try:
            return _run_sync(dropin, conn)
        finally:
            conn.close()

    async def async_run() -> list[str]:
        client = await bus.client(timeout=20.0)
        return await _run_async(rewrite, client)

    await run("psycopg2", lambda: asyncio.to_thread(psycopg2_run))
    await run("querybus.dbapi", lambda: asyncio.to_thread(dbapi_run))
    await run("QueryClient", async_run)

    said, state = runs["psycopg2"]
    # The scenario did what it is meant to: three orders placed, three refused,
    # and nothing of the order that failed half-way.
    assert said[:6] == [
        "ok 1",
        "insufficient credit",
        "constraint violated",
        "ok 3",
        "no such customer",
        "ok 4",
    ]
    assert [o[0] for o in state["orders"]] == [1, 3, 4]
    assert not [line for line in state["order_lines"] if line[1] == "dates"]
    for name in ("querybus.dbapi", "QueryClient"):
        assert runs[name][0] == said, name
        assert runs[name][1] == state, name
