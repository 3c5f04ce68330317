"""Settings objects.

The library never reads the environment by itself: a :class:`QueryClient` or
an adapter takes these objects. The CLI (the service) builds them with
``from_env()``, which reads the original variable names
(``KAFKA_BOOTSTRAP_SERVERS``, ``POSTGRES_*``) plus ``QUERYBUS_*`` ones.
See ``docs/configuration.md`` for the full table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from querybus.errors import ConfigurationError

__all__ = ["AdapterSettings", "BusSettings", "PostgresSettings", "TopicNames"]


def _env(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def _env_count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _env_int(env, name, default)
    if value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value}")
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    return _env(env, name, "0").lower() in ("1", "true", "yes", "on")


def _env_positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _env_float(env, name, default)
    if not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The three topics of the protocol, with an optional prefix (for tenants or tests)."""

    prefix: str = ""
    request_name: str = "database.query.request"
    response_name: str = "database.query.response"
    error_name: str = "database.query.error"
    dead_letter_name: str = "database.query.dlq"
    routing_decisions_name: str = "database.routing.decisions"

    @property
    def request(self) -> str:
        return self.prefix + self.request_name

    @property
    def response(self) -> str:
        return self.prefix + self.response_name

    @property
    def error(self) -> str:
        return self.prefix + self.error_name

    @property
    def dead_letter(self) -> str:
        return self.prefix + self.dead_letter_name

    @property
    def routing_decisions(self) -> str:
        return self.prefix + self.routing_decisions_name


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How to reach the bus and which topics to use.

    Attributes:
        bootstrap_servers: Kafka bootstrap servers, ``host:port[,host:port…]``;
            ``"memory://"`` selects the in-process bus.
        topics: topic names.
        request_partitions: partitions of the request topic when querybus creates it.
        response_partitions: partitions of the shared response topic; each client
            instance reads one of them.
        max_message_bytes: largest request or reply querybus will send.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicNames = field(default_factory=TopicNames)
    request_partitions: int = 8
    response_partitions: int = 8
    max_message_bytes: int = 1_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BusSettings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            bootstrap_servers=_env(env, "KAFKA_BOOTSTRAP_SERVERS", d.bootstrap_servers),
            topics=TopicNames(prefix=_env(env, "QUERYBUS_TOPIC_PREFIX", "")),
            request_partitions=_env_int(env, "QUERYBUS_REQUEST_PARTITIONS", 8),
            response_partitions=_env_int(env, "QUERYBUS_RESPONSE_PARTITIONS", 8),
            max_message_bytes=_env_int(env, "QUERYBUS_MAX_MESSAGE_BYTES", 1_000_000),
        )


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where the adapter's PostgreSQL primary is (the original ``POSTGRES_*`` variables)."""

    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "postgres"
    user: str = "postgres"
    password: str = field(default="", repr=False)  # never printed

    @property
    def dsn(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PostgresSettings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            host=_env(env, "POSTGRES_HOST", d.host),
            port=_env_int(env, "POSTGRES_PORT", d.port),
            database=_env(env, "POSTGRES_DATABASE", d.database),
            user=_env(env, "POSTGRES_USER", d.user),
            password=_env(env, "POSTGRES_PASSWORD", ""),
        )


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """How an adapter (``querybus serve``) behaves.

    Attributes:
        group_id: consumer group shared by the adapters that split the load.
        pool_size: database connections; also the bound on concurrent requests.
        instance_id: this adapter's name in replies and the registry (generated when empty).
        http_host / http_port: where ``/health`` and ``/metrics`` listen (port 0 = pick a free one).
        shutdown_grace: seconds to finish in-flight work on SIGTERM.
        commit_interval: seconds between offset commits.
        log_parameters: log full parameter values (off: they may hold secrets).
        idempotency_ttl: seconds an idempotency key is remembered in the
            database's durable store (``QUERYBUS_IDEMPOTENCY_TTL``, default 24 h).
        allow_superuser: start even when the database login is a superuser or
            may run server programs / read or write server files
            (``QUERYBUS_ALLOW_SUPERUSER``; off: such a login lets a caller's
            SQL act on the database host).
        max_request_bytes: largest request accepted, measured *after* the bus
            decompressed it (``QUERYBUS_MAX_REQUEST_BYTES``).
        max_deadline: the longest a request may wait and run, in seconds
            (``QUERYBUS_MAX_DEADLINE``). A request asking for more is capped;
            a consumer group with no committed offsets starts reading at
            "now minus this", so it neither loses recent requests nor works
            through old history.
    """

    group_id: str = "querybus-adapters"
    pool_size: int = 10
    instance_id: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 0
    shutdown_grace: float = 30.0
    commit_interval: float = 0.05
    log_parameters: bool = False
    idempotency_ttl: float = 24 * 3600.0
    allow_superuser: bool = False
    max_request_bytes: int = 1_000_000
    max_deadline: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdapterSettings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            group_id=_env(env, "QUERYBUS_GROUP_ID", d.group_id),
            pool_size=_env_int(env, "QUERYBUS_POOL_SIZE", d.pool_size),
            instance_id=_env(env, "QUERYBUS_INSTANCE_ID", ""),
            http_host=_env(env, "QUERYBUS_HTTP_HOST", d.http_host),
            http_port=_env_int(env, "QUERYBUS_HTTP_PORT", 8080),
            shutdown_grace=_env_float(env, "QUERYBUS_SHUTDOWN_GRACE", d.shutdown_grace),
            log_parameters=_env_bool(env, "QUERYBUS_LOG_PARAMETERS"),
            idempotency_ttl=_env_positive(env, "QUERYBUS_IDEMPOTENCY_TTL", d.idempotency_ttl),
            allow_superuser=_env_bool(env, "QUERYBUS_ALLOW_SUPERUSER"),
            max_request_bytes=_env_count(env, "QUERYBUS_MAX_REQUEST_BYTES", d.max_request_bytes),
            max_deadline=_env_positive(env, "QUERYBUS_MAX_DEADLINE", d.max_deadline),
        )
