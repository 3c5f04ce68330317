"""Direct mode: a :class:`~querybus.QueryClient`'s requests run in the caller's
process, on an asyncpg pool, through the adapter's own request handling.

The migration switch's other side (``QUERYBUS_MODE=direct``) and the
fallback when the bus is unreachable (``QUERYBUS_FALLBACK=direct``). The
client loads :class:`DirectBackend` by name (the client layer does not import
the adapter); it needs ``pip install 'querybus[adapter]'``.
"""

from querybus.direct.backend import DirectBackend

__all__ = ["DirectBackend"]
