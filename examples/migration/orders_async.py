"""The order service rewritten for querybus's async client.

What changes from the psycopg2 version, and why:

- ``$1`` placeholders instead of ``%(name)s`` (the client speaks asyncpg's
  dialect; ``querybus.dbapi`` converts for code that keeps psycopg2's);
- the transaction is ``client.run_in_transaction``: committed when the
  function returns, rolled back when it raises, and run again from the
  start on a serialization failure, a deadlock or a lost transaction (the
  adapter holding it stopped) — so the function must only touch the
  database and its own locals;
- ``fetchmany`` over an open cursor becomes keyset pages (``id > $1 …
  LIMIT``): a cursor would pin one adapter and one connection for as long
  as the caller reads.
"""

from __future__ import annotations

from decimal import Decimal

from querybus import QueryClient, Transaction


class InsufficientCredit(Exception):
    pass


async def place_order(
    client: QueryClient, customer_id: int, lines: list[tuple[str, int, Decimal]]
) -> int:
    """Write one order; return its id. Nothing is written if anything fails."""
    total = sum((qty * price for _, qty, price in lines), Decimal(0))

    async def order(tx: Transaction) -> int:
        credit = await tx.fetchval(
            "SELECT credit FROM customers WHERE id = $1 FOR UPDATE", customer_id
        )
        if credit is None:
            raise LookupError(f"no customer {customer_id}")
        if credit < total:
            raise InsufficientCredit(f"customer {customer_id} has {credit}, needs {total}")
        order_id = await tx.fetchval(
            "INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id",
            customer_id,
            total,
        )
        await tx.executemany(
            "INSERT INTO order_lines (order_id, sku, qty, price) VALUES ($1, $2, $3, $4)",
            [(order_id, sku, qty, price) for sku, qty, price in lines],
        )
        await tx.execute(
            "UPDATE customers SET credit = credit - $1 WHERE id = $2", total, customer_id
        )
        return int(order_id)

    return await client.run_in_transaction(order)


async def big_orders(
    client: QueryClient, min_total: Decimal, page: int = 2
) -> list[tuple[int, Decimal]]:
    """Orders of at least ``min_total``, read ``page`` rows at a time."""
    out: list[tuple[int, Decimal]] = []
    last = 0
    while True:
        rows = await client.fetch(
            "SELECT id, total FROM orders WHERE total >= $1 AND id > $2 ORDER BY id LIMIT $3",
            min_total,
            last,
            page,
        )
        if not rows:
            return out
        out.extend((int(r["id"]), r["total"]) for r in rows)
        last = int(rows[-1]["id"])


async def customers_named(client: QueryClient, names: tuple[str, ...]) -> list[str]:
    """Which of these names are customers (an array parameter for IN)."""
    rows = await client.fetch(
        "SELECT name FROM customers WHERE name = ANY($1::text[]) ORDER BY name", list(names)
    )
    return [r["name"] for r in rows]
