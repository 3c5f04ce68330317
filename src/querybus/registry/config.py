"""Choosing a backend: by URL, or from the environment the CLI and services read.

URLs understood by :func:`open_backend`:

* ``memory://`` or ``memory://HUB`` — in-process (``HUB`` names a shared table);
* ``kafka://HOST:PORT[,HOST:PORT…]`` — the compacted-topic backend; anything
  after ``kafka://`` is handed to ``querybus.transport.connect``, so
  ``kafka://memory://bus`` runs it on the in-memory bus;
* ``etcd://HOST:PORT[,HOST:PORT…]`` (``etcd+https://`` for TLS);
* ``consul://HOST:PORT`` (``consul+https://`` for TLS).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from querybus.config import KafkaSecurity
from querybus.errors import ConfigurationError
from querybus.registry.backends.base import RegistryBackend

if TYPE_CHECKING:
    from querybus.transport.base import Transport

__all__ = ["RegistrySettings", "open_backend", "registry_from_settings"]

_KINDS = ("memory", "kafka", "etcd", "consul")


def open_backend(
    url: str,
    *,
    topic_prefix: str = "",
    topic: str | None = None,
    transport: Transport | None = None,
    consul_token: str | None = None,
    kafka_security: KafkaSecurity | None = None,
) -> RegistryBackend:
    """A backend for ``url``, not started yet (``async with`` it or call ``start()``).

    Args:
        url: see the module documentation.
        topic_prefix: the deployment's topic prefix; it also namespaces the
            etcd keys (``{prefix}querybus/registry/``) so tenants sharing an
            etcd do not see each other.
        topic: registry topic name before the prefix (default ``querybus.registry``).
        transport: an existing transport for the Kafka backend to share
            (the backend will not close it); the address in ``url`` is then ignored.
        consul_token: ACL token for Consul.
        kafka_security: TLS and SASL for the Kafka backend's own transport
            (unused when ``transport`` is given: that one has its own).

    Raises:
        ConfigurationError: the URL's scheme is unknown or its address is missing.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = url, ""
    base, _, tls = scheme.partition("+")
    if base == "memory":
        from querybus.registry.backends.memory import MemoryBackend

        return MemoryBackend(rest or "default")
    if base == "kafka":
        from querybus.registry.backends.kafka import DEFAULT_TOPIC, KafkaBackend

        name = topic_prefix + (topic or DEFAULT_TOPIC)
        if transport is not None:
            return KafkaBackend(transport, topic=name)
        if not rest:
            raise ConfigurationError(
                "the Kafka registry needs bootstrap servers: kafka://HOST:PORT"
            )
        return KafkaBackend(rest, topic=name, security=kafka_security)
    if base in ("etcd", "consul"):
        if not rest:
            raise ConfigurationError(f"the {base} registry needs an address: {base}://HOST:PORT")
        http = "https" if tls == "https" else "http"
        if base == "etcd":
            from querybus.registry.backends.etcd import EtcdBackend

            endpoints = [e if "://" in e else f"{http}://{e}" for e in rest.split(",") if e]
            return EtcdBackend(endpoints, prefix=f"{topic_prefix}querybus/registry/")
        from querybus.registry.backends.consul import ConsulBackend

        address = rest if "://" in rest else f"{http}://{rest}"
        return ConsulBackend(address, token=consul_token)
    raise ConfigurationError(f"unknown registry backend {url!r}; use one of {', '.join(_KINDS)}")


def _strip_scheme(address: str) -> str:
    return address.split("://", 1)[1] if "://" in address else address


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """Which registry backend to use and where it is.

    Attributes:
        kind: ``memory``, ``kafka``, ``etcd`` or ``consul``.
        address: the backend's address (bootstrap servers, etcd endpoints,
            Consul agent); unused for memory.
        topic_prefix: the deployment's topic prefix (Kafka backend).
        consul_token: Consul ACL token.
        kafka_security: TLS and SASL towards Kafka (Kafka backend; the
            ``KAFKA_*`` security variables, as for the bus).
    """

    kind: str = "memory"
    address: str = ""
    topic_prefix: str = ""
    consul_token: str | None = None
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @property
    def url(self) -> str:
        """The URL :func:`open_backend` takes for these settings."""
        if self.kind == "memory":
            return f"memory://{self.address}"
        if self.kind in ("etcd", "consul") and self.address.startswith("https://"):
            # Each etcd endpoint may carry its scheme; keep them as given.
            return f"{self.kind}+https://" + ",".join(
                _strip_scheme(a) for a in self.address.split(",")
            )
        if self.kind == "etcd":
            return "etcd://" + ",".join(_strip_scheme(a) for a in self.address.split(","))
        if self.kind == "consul":
            return "consul://" + _strip_scheme(self.address)
        return f"{self.kind}://{self.address}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrySettings:
        """Read ``QUERYBUS_REGISTRY`` and the chosen backend's address variable.

        ``QUERYBUS_REGISTRY`` is a kind (``memory|kafka|etcd|consul``); the
        address then comes from ``KAFKA_BOOTSTRAP_SERVERS``, ``ETCD_ENDPOINTS``
        or ``CONSUL_HTTP_ADDR``. The topic prefix is ``QUERYBUS_TOPIC_PREFIX``.

        Raises:
            ConfigurationError: unknown kind, or its address variable is empty.
        """
        env = os.environ if env is None else env
        kind = (env.get("QUERYBUS_REGISTRY") or "memory").strip().lower()
        variable = {
            "memory": None,
            "kafka": "KAFKA_BOOTSTRAP_SERVERS",
            "etcd": "ETCD_ENDPOINTS",
            "consul": "CONSUL_HTTP_ADDR",
        }
        if kind not in variable:
            raise ConfigurationError(
                f"QUERYBUS_REGISTRY must be one of {', '.join(_KINDS)}, got {kind!r}"
            )
        name = variable[kind]
        address = ""
        if name is not None:
            address = env.get(name, "")
            if kind == "consul" and not address:
                address = "127.0.0.1:8500"  # Consul's own default for CONSUL_HTTP_ADDR
            if not address:
                raise ConfigurationError(f"QUERYBUS_REGISTRY={kind} needs {name}")
        return cls(
            kind=kind,
            address=address,
            topic_prefix=env.get("QUERYBUS_TOPIC_PREFIX", ""),
            consul_token=env.get("CONSUL_HTTP_TOKEN") or None,
            kafka_security=KafkaSecurity.from_env(env) if kind == "kafka" else KafkaSecurity(),
        )


def registry_from_settings(
    settings: RegistrySettings, *, transport: Transport | None = None
) -> RegistryBackend:
    """The backend ``settings`` describe, not started yet.

    Args:
        settings: which backend and where.
        transport: for the Kafka backend, a transport to share instead of
            opening one (e.g. the adapter's or client's own).

    Raises:
        ConfigurationError: the settings are invalid.
    """
    return open_backend(
        settings.url,
        topic_prefix=settings.topic_prefix,
        transport=transport,
        consul_token=settings.consul_token,
        kafka_security=settings.kafka_security,
    )
