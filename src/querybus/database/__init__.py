"""PostgreSQL, through asyncpg: the only package that imports asyncpg.

* :mod:`~querybus.database.errors` — asyncpg's exceptions mapped to querybus errors;
* :mod:`~querybus.database.postgres` — pools, connections, running one statement;
* :mod:`~querybus.database.session` — the session reset and the login check;
* :mod:`~querybus.database.replication` — LSNs, commit positions, replay waits;
* :mod:`~querybus.database.idempotency` — the durable idempotency store;
* :mod:`~querybus.database.executor` — :class:`PostgresExecutor` (one server).
"""
