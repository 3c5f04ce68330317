"""The counters a :class:`~querybus.QueryClient` keeps.

Plain ints, not Prometheus metrics: a client lives inside someone else's service, and a
caller's install (``pip install querybus``) has no prometheus-client. The adapter's
Prometheus metrics are in :mod:`querybus.observability.metrics`.
"""

from __future__ import annotations

__all__ = ["ClientMetrics"]


class ClientMetrics:
    """Counters a :class:`~querybus.QueryClient` keeps (exposed as plain ints: a
    client lives inside someone else's service)."""

    __slots__ = (
        "fallback_outages",
        "fallbacks",
        "late_replies",
        "replies",
        "requests",
        "timeouts",
        "undecodable_replies",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.replies = 0
        self.timeouts = 0
        #: Replies that arrived after their caller gave up; dropped.
        self.late_replies = 0
        self.undecodable_replies = 0
        #: Requests (and transactions) run directly because the bus was
        #: unreachable (``fallback="direct"``).
        self.fallbacks = 0
        #: Times the client began falling back (one per outage).
        self.fallback_outages = 0
