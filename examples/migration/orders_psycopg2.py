"""The order service as it was written for psycopg2 (the original).

``place_order`` is a read-then-write transaction: it locks the customer's
row, checks the credit, writes the order and its lines and takes the credit,
and rolls everything back when any step fails. ``big_orders`` pages through
a report with ``fetchmany``. Named parameters throughout.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg2


class InsufficientCredit(Exception):
    pass


def connect(dsn: str) -> Any:
    return psycopg2.connect(dsn)


def place_order(conn: Any, customer_id: int, lines: list[tuple[str, int, Decimal]]) -> int:
    """Write one order; return its id. Nothing is written if anything fails."""
    total = sum((qty * price for _, qty, price in lines), Decimal(0))
    cur = conn.cursor()
    try:
        cur.execute(
            "SELECT credit FROM customers WHERE id = %(id)s FOR UPDATE", {"id": customer_id}
        )
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"no customer {customer_id}")
        if row[0] < total:
            raise InsufficientCredit(f"customer {customer_id} has {row[0]}, needs {total}")
        cur.execute(
            "INSERT INTO orders (customer_id, total) VALUES (%(customer)s, %(total)s) RETURNING id",
            {"customer": customer_id, "total": total},
        )
        order_id = cur.fetchone()[0]
        cur.executemany(
            "INSERT INTO order_lines (order_id, sku, qty, price) VALUES (%s, %s, %s, %s)",
            [(order_id, sku, qty, price) for sku, qty, price in lines],
        )
        cur.execute(
            "UPDATE customers SET credit = credit - %(total)s WHERE id = %(id)s",
            {"total": total, "id": customer_id},
        )
        conn.commit()
        return int(order_id)
    except Exception:
        conn.rollback()
        raise
    finally:
        cur.close()


def big_orders(conn: Any, min_total: Decimal, page: int = 2) -> list[tuple[int, Decimal]]:
    """Orders of at least ``min_total``, read ``page`` rows at a time."""
    out: list[tuple[int, Decimal]] = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, total FROM orders WHERE total >= %(min)s ORDER BY id",
            {"min": min_total},
        )
        while True:
            rows = cur.fetchmany(page)
            if not rows:
                break
            out.extend((int(i), t) for i, t in rows)
    conn.commit()  # psycopg2 opened a transaction for the SELECT
    return out


def customers_named(conn: Any, names: tuple[str, ...]) -> list[str]:
    """Which of these names are customers (psycopg2 expands a tuple for IN)."""
    # `with conn` commits (or rolls back) and keeps the connection open.
    with conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM customers WHERE name IN %s ORDER BY name", (names,))
        return [r[0] for r in cur.fetchall()]
