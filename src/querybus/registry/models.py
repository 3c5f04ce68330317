"""The registry's data: instances, health statuses, check results and change events.

Everything here is a plain msgspec Struct so the Kafka backend can put an
instance on the wire as JSON and etcd can store it as a value, with one codec.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum

import msgspec

__all__ = [
    "ChangeKind",
    "CheckResult",
    "HealthStatus",
    "RegistryEvent",
    "ServiceInstance",
    "decode_instance",
    "encode_instance",
]


class HealthStatus(StrEnum):
    """Health of an instance, with Consul's names and ordering."""

    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        """0 for passing, 1 for warning, 2 for critical."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: Iterable[HealthStatus]) -> HealthStatus:
        """The most severe status of ``statuses`` (passing when there is none).

        A service with no checks is passing: it said it is alive by heartbeating.
        """
        worst = cls.PASSING
        for status in statuses:
            if status.severity > worst.severity:
                worst = status
        return worst


_SEVERITY = {HealthStatus.PASSING: 0, HealthStatus.WARNING: 1, HealthStatus.CRITICAL: 2}


class CheckResult(msgspec.Struct, frozen=True):
    """What one health check found.

    Attributes:
        status: the check's verdict.
        note: a short human-readable explanation (shown by ``querybus registry ls``).
    """

    status: HealthStatus
    note: str = ""


class ServiceInstance(msgspec.Struct, frozen=True, kw_only=True):
    """One registered instance of a service.

    Attributes:
        name: the service's name, e.g. ``"database-adapter"``.
        instance_id: unique among all instances (unique per process by construction).
        service_type: the kind of service, e.g. ``"effect"``.
        endpoint: where to reach it; for an adapter, its request topic.
        metadata: free-form string pairs (group, protocol version, …).
        status: worst status of its health checks at the last heartbeat.
        note: the notes of the checks that were not passing, joined.
        last_heartbeat: wall-clock time (seconds since the epoch) of the last heartbeat.
        ttl: seconds after ``last_heartbeat`` at which the instance expires.
        registered_at: wall-clock time of the first registration.
    """

    name: str
    instance_id: str
    service_type: str
    endpoint: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    status: HealthStatus = HealthStatus.PASSING
    note: str = ""
    last_heartbeat: float = 0.0
    ttl: float = 10.0
    registered_at: float = 0.0

    @property
    def expires_at(self) -> float:
        """Wall-clock time at which the instance expires without a new heartbeat."""
        return self.last_heartbeat + self.ttl

    def is_expired(self, now: float | None = None) -> bool:
        """Whether the TTL has run out at ``now`` (default: the current time)."""
        return (time.time() if now is None else now) >= self.expires_at

    def same_state(self, other: ServiceInstance) -> bool:
        """Equal apart from the heartbeat time.

        Watches use it so that a heartbeat that changes nothing but the
        timestamp is not reported as an update.
        """
        return msgspec.structs.replace(self, last_heartbeat=0.0) == msgspec.structs.replace(
            other, last_heartbeat=0.0
        )


class ChangeKind(StrEnum):
    """What happened to an instance."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


class RegistryEvent(msgspec.Struct, frozen=True):
    """One change reported by :meth:`RegistryClient.watch`.

    For ``REMOVED`` the instance is its last known state.
    """

    kind: ChangeKind
    instance: ServiceInstance


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ServiceInstance)


def encode_instance(instance: ServiceInstance) -> bytes:
    """JSON bytes of an instance (the value stored by the Kafka and etcd backends)."""
    return _encoder.encode(instance)


def decode_instance(data: bytes) -> ServiceInstance:
    """Inverse of :func:`encode_instance`.

    Raises:
        msgspec.DecodeError: ``data`` is not a valid instance (callers skip such records).
    """
    return _decoder.decode(data)
