"""Where a :class:`~querybus.QueryClient`'s requests go: the backend seam.

The client builds every request the same way (ids, deadline, parameters in
their wire form, size limit, token) and hands it to a :class:`Backend`, which
returns its reply. Two exist:

- ``bus`` (:class:`querybus.client.bus.BusBackend`): publish to Kafka and
  await the adapter's reply on this client's reply partition;
- ``direct`` (:class:`querybus.direct.DirectBackend`, loaded by name, since
  the client must not import the adapter): run the request in this process,
  through the adapter's own request handling
  (:class:`querybus.adapter.handler.RequestHandler`) on an asyncpg pool. It
  needs ``querybus[adapter]``.

Everything above the seam (timeouts, token refresh, results, errors,
transactions, batches) is shared, so both modes answer alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from querybus.config import BusSettings
from querybus.errors import ConfigurationError
from querybus.protocol import QueryFailure, QueryRequest, QueryResult, ReplyAddress

__all__ = ["Backend", "LostCallback", "PlainRunner", "Reply", "Watch", "load_direct_backend"]

Reply = QueryResult | QueryFailure

#: Waits for a reply alongside the reply itself and raises when it should
#: not be waited for any longer (a transaction's adapter that died).
Watch = Callable[[], Awaitable[None]]

#: Told ``(transaction id, reason)`` when a transaction was rolled back
#: behind its caller's back.
LostCallback = Callable[[str, str], None]


class Backend(Protocol):
    """Sends one request and awaits its reply."""

    #: ``"bus"`` or ``"direct"``.
    name: str
    #: Whether the rows of its replies (and of their batch outcomes) are
    #: Python values already; otherwise they are in the wire encoding.
    decoded_rows: bool
    #: Whether ``exchange`` ends a wait at its ``deadline`` by itself.
    keeps_deadlines: bool

    @property
    def reply_to(self) -> ReplyAddress:
        """Where replies to this client's requests go (part of each request)."""
        ...

    async def start(self) -> None:
        """Connect.

        Raises:
            BrokerUnavailableError: (bus) the bus cannot be reached.
            QueryBusError: anything else that keeps it from working.
        """
        ...

    async def stop(self) -> None:
        """Fail what still waits, and disconnect; safe to call twice."""
        ...

    async def exchange(
        self,
        request: QueryRequest,
        data: bytes,
        token: str | None,
        *,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        watch: Watch | None = None,
        deadline: float | None = None,
    ) -> Reply:
        """Send ``request`` (``data`` is its encoding) and return its reply.
        ``topic``/``partition`` address a transaction's adapter (bus only);
        ``watch`` raises when the reply is no longer worth waiting for;
        ``deadline`` (event-loop time): a backend that ``keeps_deadlines``
        raises TimeoutError then by itself, so its caller sets no timer.

        Raises:
            TransportError: it could not be sent (``BrokerUnavailableError``:
                nothing was sent, it may run elsewhere).
        """
        ...

    def fail_waiting(self, correlation_id: str, exc: BaseException) -> None:
        """Make the call waiting for ``correlation_id`` raise ``exc``, if any."""
        ...

    async def probe(self, timeout: float) -> None:
        """Raise unless the backend answers now (the fallback's probe)."""
        ...


@runtime_checkable
class PlainRunner(Protocol):
    """A backend with a lean path for plain requests (direct mode): one
    autocommit statement, no idempotency key, parameters that cross the wire
    unchanged (:func:`~querybus.protocol.values.unchanged_size`), given as
    the request object alone, never encoded."""

    async def run_plain(self, request: QueryRequest) -> Reply:
        """Run ``request``; return its reply (rows as Python values)."""
        ...


#: The module and class of the direct backend (loaded by name: the client
#: layer must not import the adapter's).
DIRECT_BACKEND = "querybus.direct:DirectBackend"


def load_direct_backend(
    dsn: str, *, bus: BusSettings, client_id: str, on_lost: LostCallback, **options: Any
) -> Backend:
    """A (not started) direct backend on PostgreSQL ``dsn``.

    Raises:
        ConfigurationError: the adapter's libraries are not installed.
    """
    module_name, _, cls_name = DIRECT_BACKEND.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or "a library of the adapter"
        raise ConfigurationError(
            f"direct mode runs requests on PostgreSQL in this process and needs the "
            f"adapter's libraries ({missing} is missing): pip install 'querybus[adapter]'"
        ) from exc
    cls: Callable[..., Backend] = getattr(module, cls_name)
    return cls(dsn, bus=bus, client_id=client_id, on_lost=on_lost, **options)
