"""SQL analysis with PostgreSQL's own grammar: the only package that imports pglast.

:func:`analyze` parses a SQL text once into a cached :class:`Statement`
that every layer above reads (policy, routing, execution, idempotency).
"""

from querybus.sql.statement import Part, Statement, analyze

__all__ = ["Part", "Statement", "analyze"]
