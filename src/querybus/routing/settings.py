"""Router settings, and how the service reads them from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from querybus.errors import ConfigurationError
from querybus.routing.strategies import StrategyName
from querybus.routing.targets import ReplicaConfig

__all__ = ["RoutingSettings"]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be a boolean, got {raw!r}")


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the router chooses targets. Seconds are floats.

    Attributes:
        replicas: the replicas (``QUERYBUS_REPLICA_DSNS``, comma-separated;
            ``QUERYBUS_REPLICA_WEIGHTS`` and ``QUERYBUS_REPLICA_GROUPS`` in the same order).
        strategy: ``round_robin``, ``least_outstanding`` or ``weighted_random``
            (``QUERYBUS_ROUTING_STRATEGY``).
        max_replica_lag: a replica further behind gets no reads
            (``QUERYBUS_MAX_REPLICA_LAG``).
        max_replica_lag_bytes: the same in WAL bytes, ``None`` for no limit
            (``QUERYBUS_MAX_REPLICA_LAG_BYTES``).
        ryw_wait: how long a read with ``min_lsn`` waits for a replica to replay
            it before going to the primary (``QUERYBUS_RYW_WAIT``).
        ryw_poll: interval between replay checks while waiting.
        fallback_to_primary: reads go to the primary when no replica is eligible;
            when False they fail with NoEligibleTargetError (``QUERYBUS_ROUTING_FALLBACK``:
            ``primary`` or ``fail``).
        lag_interval: seconds between lag samples (``QUERYBUS_LAG_INTERVAL``).
        sample_max_age: a replica whose last successful sample is older gets no
            reads (its state is unknown); default ``5 * lag_interval``, at least 1 s.
        ban_seconds / ban_max_seconds: first and longest temporary ban after a
            failure (doubling in between) (``QUERYBUS_BAN_SECONDS``).
        pool_size: connections per target (``QUERYBUS_ROUTING_POOL_SIZE``, else
            ``QUERYBUS_POOL_SIZE``).
        max_statement_timeout: longest any statement may run.
        connect_timeout: longest wait for a connection from a target.
        read_attempts: targets a failing read is tried on before giving up.
        complex_pool: replica group that serves complex reads (``QUERYBUS_COMPLEX_POOL``);
            other groups serve them only when that one has no eligible member.
        load_catalog: read ``pg_proc`` volatility from the primary at start
            (``QUERYBUS_ROUTING_CATALOG``); without it, the built-in table is used.
        cache_size: classifications kept in memory.
        learned_max: fingerprints remembered as primary-only after SQLSTATE 25006.
        discovery: also follow the replicas announced in the service registry
            (``QUERYBUS_REPLICA_DISCOVERY``; used only when ``QUERYBUS_REGISTRY``
            is set). See :class:`querybus.routing.discovery.ReplicaDiscovery`.
        discovery_service: the service name replicas are announced under
            (``QUERYBUS_REPLICA_SERVICE``).
        discovery_interval: seconds between registry polls
            (``QUERYBUS_REPLICA_DISCOVERY_INTERVAL``).
    """

    replicas: tuple[ReplicaConfig, ...] = ()
    strategy: StrategyName = StrategyName.LEAST_OUTSTANDING
    max_replica_lag: float = 1.0
    max_replica_lag_bytes: int | None = None
    ryw_wait: float = 0.1
    ryw_poll: float = 0.002
    fallback_to_primary: bool = True
    lag_interval: float = 0.1
    sample_max_age: float | None = None
    ban_seconds: float = 0.5
    ban_max_seconds: float = 10.0
    pool_size: int = 10
    max_statement_timeout: float = 30.0
    connect_timeout: float = 2.0
    read_attempts: int = 3
    complex_pool: str | None = None
    load_catalog: bool = True
    cache_size: int = 8192
    learned_max: int = 10_000
    discovery: bool = False
    discovery_service: str = "postgres-replica"
    discovery_interval: float = 2.0

    @property
    def effective_sample_max_age(self) -> float:
        """How old a lag sample may be before the replica counts as unknown."""
        if self.sample_max_age is not None:
            return self.sample_max_age
        return max(1.0, 5 * self.lag_interval)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RoutingSettings:
        """Read ``QUERYBUS_*`` routing variables (see the attribute list).

        Raises:
            ConfigurationError: a value is malformed.
        """
        env = os.environ if env is None else env
        d = cls()  # slotted dataclass: defaults live on an instance, not the class
        dsns = [d.strip() for d in env.get("QUERYBUS_REPLICA_DSNS", "").split(",") if d.strip()]
        weights = [
            w.strip() for w in env.get("QUERYBUS_REPLICA_WEIGHTS", "").split(",") if w.strip()
        ]
        groups = [g.strip() for g in env.get("QUERYBUS_REPLICA_GROUPS", "").split(",") if g.strip()]
        replicas = []
        for i, dsn in enumerate(dsns):
            try:
                weight = float(weights[i]) if i < len(weights) else 1.0
            except ValueError:
                raise ConfigurationError(
                    f"QUERYBUS_REPLICA_WEIGHTS: bad weight {weights[i]!r}"
                ) from None
            group = groups[i] if i < len(groups) else "default"
            replicas.append(ReplicaConfig(dsn=dsn, weight=weight, group=group))
        fallback = env.get("QUERYBUS_ROUTING_FALLBACK", "primary").strip().lower() or "primary"
        if fallback not in ("primary", "fail"):
            raise ConfigurationError("QUERYBUS_ROUTING_FALLBACK must be 'primary' or 'fail'")
        strategy = env.get("QUERYBUS_ROUTING_STRATEGY", "") or d.strategy.value
        try:
            strategy_name = StrategyName(strategy)
        except ValueError:
            raise ConfigurationError(f"QUERYBUS_ROUTING_STRATEGY: unknown {strategy!r}") from None
        interval = _float(env, "QUERYBUS_REPLICA_DISCOVERY_INTERVAL", d.discovery_interval)
        if interval <= 0:
            raise ConfigurationError("QUERYBUS_REPLICA_DISCOVERY_INTERVAL must be positive")
        return cls(
            replicas=tuple(replicas),
            strategy=strategy_name,
            max_replica_lag=_float(env, "QUERYBUS_MAX_REPLICA_LAG", d.max_replica_lag),
            max_replica_lag_bytes=_int(env, "QUERYBUS_MAX_REPLICA_LAG_BYTES", None),
            ryw_wait=_float(env, "QUERYBUS_RYW_WAIT", d.ryw_wait),
            fallback_to_primary=fallback == "primary",
            lag_interval=_float(env, "QUERYBUS_LAG_INTERVAL", d.lag_interval),
            ban_seconds=_float(env, "QUERYBUS_BAN_SECONDS", d.ban_seconds),
            pool_size=_int(env, "QUERYBUS_ROUTING_POOL_SIZE", None)
            or _int(env, "QUERYBUS_POOL_SIZE", None)
            or d.pool_size,
            complex_pool=env.get("QUERYBUS_COMPLEX_POOL") or None,
            load_catalog=_bool(env, "QUERYBUS_ROUTING_CATALOG", True),
            discovery=_bool(env, "QUERYBUS_REPLICA_DISCOVERY", False),
            discovery_service=env.get("QUERYBUS_REPLICA_SERVICE", "").strip()
            or d.discovery_service,
            discovery_interval=interval,
        )
