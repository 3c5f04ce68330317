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

__all__ = [
    "AdapterSettings",
    "BusSettings",
    "ClientSettings",
    "KafkaSecurity",
    "PostgresSettings",
    "TopicNames",
]


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


def _env_seconds_or_off(env: Mapping[str, str], name: str, default: float) -> float:
    value = _env_float(env, name, default)
    if not value >= 0:
        raise ConfigurationError(f"{name} must be 0 (off) or a number of seconds, got {value!r}")
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
    audit_name: str = "database.query.audit"
    inbox_name: str = "database.query.inbox"

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

    @property
    def audit(self) -> str:
        return self.prefix + self.audit_name

    @property
    def inbox_prefix(self) -> str:
        """What every adapter's inbox topic starts with (for ACLs)."""
        return f"{self.prefix}{self.inbox_name}."

    def inbox(self, instance_id: str) -> str:
        """The inbox topic of adapter ``instance_id``: the requests of the
        interactive transactions it holds (``docs/transactions.md``).
        Characters Kafka does not allow in a topic name become ``-``."""
        safe = "".join(
            c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in instance_id
        )
        return (self.inbox_prefix + safe)[:249]


#: Kafka's security protocols (``security.protocol``).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: The SASL mechanisms querybus supports (username and password ones).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How to authenticate to the Kafka brokers and protect the connection.

    The default is PLAINTEXT (no TLS, no login), as a local broker expects.
    Combinations that cannot work, or that would silently ignore a setting,
    are refused when the object is built (:class:`ConfigurationError`).

    Attributes:
        protocol: ``PLAINTEXT``, ``SSL`` (TLS; with a client certificate this
            is mutual TLS and the certificate names the principal),
            ``SASL_PLAINTEXT`` or ``SASL_SSL`` (a SASL login, over TLS).
        sasl_mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``;
            required with the SASL protocols, refused with the others.
        sasl_username / sasl_password: the SASL login (the password is never
            printed: it is left out of ``repr``).
        ssl_cafile: PEM file of the CAs that signed the brokers' certificates
            (None: the system's trusted CAs).
        ssl_certfile / ssl_keyfile: this client's certificate and key (PEM),
            for mutual TLS; both or neither.
        ssl_check_hostname: check that the broker's certificate names the host
            connected to (turn off only for a broker reached by an address its
            certificate does not list).
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)  # never printed
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise ConfigurationError(
                f"Kafka security protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.protocol!r}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism is None:
                raise ConfigurationError(
                    f"{self.protocol} needs a SASL mechanism ({', '.join(SASL_MECHANISMS)})"
                )
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigurationError(
                    f"SASL mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
                    f"got {self.sasl_mechanism!r}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ConfigurationError(
                    f"{self.protocol} with {self.sasl_mechanism} needs a username and a password"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            # Credentials given for a protocol that never sends them: a typo in
            # the protocol would otherwise connect without logging in.
            raise ConfigurationError(
                f"SASL settings are given but the security protocol is {self.protocol}; "
                "use SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not self.uses_tls and any(tls_files):
            raise ConfigurationError(
                f"TLS files are given but the security protocol is {self.protocol}; "
                "use SSL or SASL_SSL"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigurationError(
                "a client certificate needs its key and a key its certificate: "
                "set both ssl_certfile and ssl_keyfile, or neither"
            )

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSecurity:
        """Read ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
        ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_CAFILE``,
        ``KAFKA_SSL_CERTFILE``, ``KAFKA_SSL_KEYFILE`` and
        ``KAFKA_SSL_CHECK_HOSTNAME`` (default on).

        Raises:
            ConfigurationError: an unknown protocol or mechanism, or a
                combination that cannot work (see the class).
        """
        env = os.environ if env is None else env

        def optional(name: str) -> str | None:
            value = env.get(name)
            return None if value is None or value == "" else value

        mechanism = optional("KAFKA_SASL_MECHANISM")
        raw_check = _env(env, "KAFKA_SSL_CHECK_HOSTNAME", "true").strip().lower()
        if raw_check in ("1", "true", "yes", "on"):
            check_hostname = True
        elif raw_check in ("0", "false", "no", "off"):
            check_hostname = False
        else:
            raise ConfigurationError(
                f"KAFKA_SSL_CHECK_HOSTNAME must be true or false, got {raw_check!r}"
            )
        return cls(
            protocol=_env(env, "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper(),
            sasl_mechanism=None if mechanism is None else mechanism.strip().upper(),
            sasl_username=optional("KAFKA_SASL_USERNAME"),
            sasl_password=optional("KAFKA_SASL_PASSWORD"),
            ssl_cafile=optional("KAFKA_SSL_CAFILE"),
            ssl_certfile=optional("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=optional("KAFKA_SSL_KEYFILE"),
            ssl_check_hostname=check_hostname,
        )


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
        security: TLS and SASL towards the brokers (plaintext by default).
        reply_topic: the topic this client reads its replies from; None: the
            shared response topic. It must be the response topic or a topic
            named under it (``<response topic>.<name>``), as adapters send
            replies nowhere else. With Kafka ACLs, a topic per principal or
            tenant (``database.query.response.alice``) that only it may read
            keeps other callers from reading its replies.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicNames = field(default_factory=TopicNames)
    request_partitions: int = 8
    response_partitions: int = 8
    max_message_bytes: int = 1_000_000
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    reply_topic: str | None = None

    def __post_init__(self) -> None:
        topic, response = self.reply_topic, self.topics.response
        if topic is not None and not (topic == response or topic.startswith(response + ".")):
            raise ConfigurationError(
                f"reply topic {topic!r} must be {response!r} or start with {response + '.'!r} "
                "(adapters send replies nowhere else)"
            )

    @property
    def client_reply_topic(self) -> str:
        """The topic a client reads its replies from: ``reply_topic`` or the shared one."""
        return self.topics.response if self.reply_topic is None else self.reply_topic

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
            security=KafkaSecurity.from_env(env),
            reply_topic=env.get("QUERYBUS_REPLY_TOPIC") or None,
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


#: Where a client's requests run: through the bus, or directly on PostgreSQL.
CLIENT_MODES = ("bus", "direct")
#: What a client in bus mode may fall back to when the bus is unreachable.
CLIENT_FALLBACKS = ("direct",)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything a :class:`~querybus.QueryClient` is configured with beyond
    its keyword arguments: the bus, and the migration switch.

    Attributes:
        bus: how to reach the bus.
        mode: ``"bus"`` (requests travel over Kafka to the adapters) or
            ``"direct"`` (the same calls run in the caller's process on an
            asyncpg pool of ``dsn``, through the adapter's own request
            handling; needs ``querybus[adapter]``).
        fallback: None, or ``"direct"``: in bus mode, run requests directly
            while the bus cannot be reached (see ``docs/migration.md``).
        dsn: the PostgreSQL server of direct mode and of the fallback
            (never printed: it may hold a password).
        pool_size: connections of direct mode's (and the fallback's) pool;
            every one may hold an interactive transaction.
    """

    bus: BusSettings = field(default_factory=BusSettings)
    mode: str = "bus"
    fallback: str | None = None
    dsn: str | None = field(default=None, repr=False)
    pool_size: int = 10

    def __post_init__(self) -> None:
        if self.mode not in CLIENT_MODES:
            raise ConfigurationError(
                f"mode must be one of {', '.join(CLIENT_MODES)}, got {self.mode!r}"
            )
        if self.fallback is not None and self.fallback not in CLIENT_FALLBACKS:
            raise ConfigurationError(
                f"fallback must be None or one of {', '.join(CLIENT_FALLBACKS)}, "
                f"got {self.fallback!r}"
            )
        if self.needs_dsn and not self.dsn:
            what = "direct mode" if self.mode == "direct" else "a fallback to direct"
            raise ConfigurationError(f"{what} needs a PostgreSQL DSN (dsn=...)")
        if self.pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, got {self.pool_size}")

    @property
    def needs_dsn(self) -> bool:
        """Whether requests may run directly (direct mode, or the fallback)."""
        return self.mode == "direct" or self.fallback == "direct"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        """Read ``QUERYBUS_MODE`` (``bus`` or ``direct``; default ``bus``),
        ``QUERYBUS_FALLBACK`` (empty or ``direct``), the bus
        (:meth:`BusSettings.from_env`) and, when requests may run directly,
        the server from ``POSTGRES_*`` (:meth:`PostgresSettings.from_env`)
        and the pool's size from ``QUERYBUS_DIRECT_POOL_SIZE`` (10).

        Raises:
            ConfigurationError: an unknown mode or fallback, or a malformed value.
        """
        env = os.environ if env is None else env
        mode = _env(env, "QUERYBUS_MODE", "bus").strip().lower()
        fallback = _env(env, "QUERYBUS_FALLBACK", "").strip().lower() or None
        if fallback == "none":
            fallback = None
        direct = mode == "direct" or fallback == "direct"
        return cls(
            bus=BusSettings.from_env(env),
            mode=mode,
            fallback=fallback,
            dsn=PostgresSettings.from_env(env).dsn if direct else None,
            pool_size=_env_count(env, "QUERYBUS_DIRECT_POOL_SIZE", 10),
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
        audit_parameters: put parameter values in the audit records
            (``QUERYBUS_AUDIT_PARAMETERS``; off: they may hold secrets or
            personal data, and the audit topic keeps them).
        tx_idle_timeout: seconds an interactive transaction may stay without
            a request before it is rolled back (``QUERYBUS_TX_IDLE_TIMEOUT``).
        tx_max_lifetime: seconds after BEGIN after which it is rolled back,
            idle or not (``QUERYBUS_TX_MAX_LIFETIME``).
        tx_max_open: most interactive transactions open at once on this
            adapter, each holding a pooled connection
            (``QUERYBUS_TX_MAX_OPEN``; None: half the pool, at least 1).
        inbox_heartbeat: seconds between the heartbeat records the adapter
            appends to its own inbox (``QUERYBUS_INBOX_HEARTBEAT``).
        inbox_sweep_interval: seconds between two sweeps of the other
            adapters' inboxes, ±20 % (``QUERYBUS_INBOX_SWEEP_INTERVAL``; 0: no
            sweeping). The first sweep comes about a minute after start.
        inbox_retire_after: an inbox whose last record is older than this (or
            that a sweep has seen empty for this long) is deleted
            (``QUERYBUS_INBOX_RETIRE_AFTER``). More than two heartbeats, so a
            late heartbeat does not retire a live adapter's inbox, and at least
            ``tx_max_lifetime``, so no caller can still be holding a
            transaction of a retired inbox.

    Raises:
        ConfigurationError: the inbox settings are out of range (see above).
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
    audit_parameters: bool = False
    tx_idle_timeout: float = 30.0
    tx_max_lifetime: float = 300.0
    tx_max_open: int | None = None
    inbox_heartbeat: float = 60.0
    inbox_sweep_interval: float = 300.0
    inbox_retire_after: float = 900.0

    def __post_init__(self) -> None:
        if not self.inbox_heartbeat > 0:
            raise ConfigurationError(
                "the inbox heartbeat (QUERYBUS_INBOX_HEARTBEAT) must be a positive number "
                f"of seconds, got {self.inbox_heartbeat!r}"
            )
        if not self.inbox_sweep_interval >= 0:
            raise ConfigurationError(
                "the inbox sweep interval (QUERYBUS_INBOX_SWEEP_INTERVAL) must be 0 (off) "
                f"or a number of seconds, got {self.inbox_sweep_interval!r}"
            )
        retire = self.inbox_retire_after
        if not retire > 2 * self.inbox_heartbeat:
            # One late or lost heartbeat must not retire a live adapter's inbox.
            raise ConfigurationError(
                f"QUERYBUS_INBOX_RETIRE_AFTER ({retire:g} s) must be more than twice "
                f"QUERYBUS_INBOX_HEARTBEAT ({self.inbox_heartbeat:g} s)"
            )
        if not retire >= self.tx_max_lifetime:
            # Until then a caller may still hold a transaction of the gone
            # adapter and send to its inbox: a send to a deleted topic hangs.
            raise ConfigurationError(
                f"QUERYBUS_INBOX_RETIRE_AFTER ({retire:g} s) must be at least "
                f"QUERYBUS_TX_MAX_LIFETIME ({self.tx_max_lifetime:g} s)"
            )

    @property
    def max_open_transactions(self) -> int:
        """``tx_max_open``, or half the pool (at least 1): the rest of the pool
        stays free for plain requests."""
        return self.tx_max_open if self.tx_max_open is not None else max(1, self.pool_size // 2)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdapterSettings:
        env = os.environ if env is None else env
        d = cls()
        tx_max_lifetime = _env_positive(env, "QUERYBUS_TX_MAX_LIFETIME", d.tx_max_lifetime)
        inbox_heartbeat = _env_positive(env, "QUERYBUS_INBOX_HEARTBEAT", d.inbox_heartbeat)
        # Unset, the retire age follows the limits it must exceed, so raising
        # QUERYBUS_TX_MAX_LIFETIME alone does not stop an adapter from starting.
        retire_default = max(d.inbox_retire_after, tx_max_lifetime, 3 * inbox_heartbeat)
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
            audit_parameters=_env_bool(env, "QUERYBUS_AUDIT_PARAMETERS"),
            tx_idle_timeout=_env_positive(env, "QUERYBUS_TX_IDLE_TIMEOUT", d.tx_idle_timeout),
            tx_max_lifetime=tx_max_lifetime,
            tx_max_open=(
                _env_count(env, "QUERYBUS_TX_MAX_OPEN", 1)
                if env.get("QUERYBUS_TX_MAX_OPEN")
                else None
            ),
            inbox_heartbeat=inbox_heartbeat,
            inbox_sweep_interval=_env_seconds_or_off(
                env, "QUERYBUS_INBOX_SWEEP_INTERVAL", d.inbox_sweep_interval
            ),
            inbox_retire_after=_env_positive(env, "QUERYBUS_INBOX_RETIRE_AFTER", retire_default),
        )
