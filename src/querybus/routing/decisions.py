"""The routing decision record: what was decided, on what evidence, with what result.

One :class:`RoutingDecision` per request goes to the ``on_decision`` callback
of :class:`~querybus.routing.executor.RoutingExecutor`; the adapter publishes
it to ``database.routing.decisions`` for later analysis (which statements
go where, how lag and complexity relate to latency).
"""

from __future__ import annotations

import msgspec

__all__ = ["RoutingDecision", "encode_decision"]


class RoutingDecision(msgspec.Struct, kw_only=True):
    """One routing decision and its outcome.

    Attributes:
        request_id: the request's correlation id.
        fingerprint: pglast fingerprint of the statement (same for other constants).
        target: ``"primary"`` or ``"replica:<name>"`` that served (or last failed).
        reason: reason code (:class:`~querybus.routing.reasons.Reason`).
        classified: what classification alone said (``"primary"``/``"replica"``).
        complexity_score: complexity score.
        complexity_class: ``simple``, ``moderate`` or ``complex``.
        lag_seconds: the serving replica's lag when chosen (None on the primary).
        lag_bytes: the same in WAL bytes.
        route_seconds: time spent choosing, up to the start of the attempt that
            produced the result (read-your-writes waits and failed attempts included).
        execute_seconds: time on the database.
        attempts: targets tried.
        ok: whether the statement succeeded.
        error: error code or SQLSTATE when it did not.
        timestamp: seconds since the epoch when the decision was made.
    """

    request_id: str
    fingerprint: str
    target: str
    reason: str
    classified: str
    complexity_score: int
    complexity_class: str
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    route_seconds: float = 0.0
    execute_seconds: float = 0.0
    attempts: int = 1
    ok: bool = True
    error: str | None = None
    timestamp: float = 0.0


_encoder = msgspec.json.Encoder()


def encode_decision(decision: RoutingDecision) -> bytes:
    """JSON bytes of ``decision`` (the record value on the decisions topic)."""
    return _encoder.encode(decision)
