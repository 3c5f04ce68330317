"""Helpers of the tests against the secured broker (``scripts/services.sh``:
TLS, SASL SCRAM/PLAIN, mutual TLS, ACLs with ``admin`` as super user).

Every test works under a topic prefix of its own (``t-sec-…``) and removes, at
the end, the topics under it and every ACL naming it, so tests do not see each
other's ACLs and the broker does not accumulate them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import wait_for
from tests.stack import SecureKafka

from querybus.config import BusSettings, KafkaSecurity, TopicNames
from querybus.transport import KafkaTransport, TopicSpec
from querybus.transport.acl import Acl, AclFilter

# Bounds on waits for failures that must come quickly (a refused login must
# not hang for a whole request timeout): a hang guard, not a timed assertion.
REQUEST_TIMEOUT = 15.0


def sasl(
    secure: SecureKafka, user: str, mechanism: str = "SCRAM-SHA-256", password: str | None = None
) -> KafkaSecurity:
    """SASL_SSL as ``user`` (its real password unless one is given)."""
    return KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username=user,
        sasl_password=password if password is not None else secure.passwords[user],
        ssl_cafile=secure.cafile,
    )


def mtls(secure: SecureKafka, user: str) -> KafkaSecurity:
    """Mutual TLS with ``user``'s client certificate (CN=user → User:user)."""
    cert_dir = Path(secure.cert_dir)
    return KafkaSecurity(
        protocol="SSL",
        ssl_cafile=secure.cafile,
        ssl_certfile=str(cert_dir / f"{user}.crt"),
        ssl_keyfile=str(cert_dir / f"{user}.key"),
    )


def transport(
    address: str,
    security: KafkaSecurity,
    name: str = "sec-it",
    *,
    request_timeout: float = REQUEST_TIMEOUT,
) -> KafkaTransport:
    return KafkaTransport(
        address,
        client_id=name,
        security=security,
        request_timeout=request_timeout,
        heartbeat_interval=0.2,
        session_timeout=6.0,
    )


def admin_env(secure: SecureKafka, prefix: str, **extra: str) -> dict[str, str]:
    """``KAFKA_*`` settings of a CLI process logging in as the broker's admin."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secure.sasl_ssl,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "admin",
        "KAFKA_SASL_PASSWORD": secure.passwords["admin"],
        "KAFKA_SSL_CAFILE": secure.cafile,
        "QUERYBUS_TOPIC_PREFIX": prefix,
        "QUERYBUS_REGISTRY": "",
        **extra,
    }


@dataclass
class SecureBus:
    """One test's corner of the secured broker: a topic prefix, an admin
    transport, and everything to undo at the end."""

    secure: SecureKafka
    prefix: str
    admin: KafkaTransport
    groups: set[str] = field(default_factory=set)
    _cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def topics(self) -> TopicNames:
        return TopicNames(prefix=self.prefix)

    def settings(self, security: KafkaSecurity, **kwargs: object) -> BusSettings:
        """Bus settings on the SASL_SSL listener (the SSL one for mutual TLS)."""
        address = self.secure.ssl if security.protocol == "SSL" else self.secure.sasl_ssl
        return BusSettings(
            bootstrap_servers=address,
            topics=self.topics,
            request_partitions=2,
            response_partitions=2,
            security=security,
            **kwargs,  # type: ignore[arg-type]
        )

    def reply_topic(self, name: str) -> str:
        return f"{self.topics.response}.{name}"

    async def create_topics(self, *names: str, partitions: int = 2) -> None:
        """As an operator would: created by the admin (nobody else may)."""
        await self.admin.create_topics([TopicSpec(n, partitions=partitions) for n in names])

    async def protocol_topics(self) -> None:
        t = self.topics
        await self.create_topics(
            t.request, t.response, t.error, t.dead_letter, t.routing_decisions, t.audit
        )

    async def grant(self, *acls: Acl) -> None:
        """Create ACLs and wait until the broker answers with them (see :meth:`settled`)."""
        await self.admin.create_acls(acls)
        await wait_for(
            self.mine,
            timeout=REQUEST_TIMEOUT,
            accept=lambda found: set(acls) <= set(found),
            message="the granted ACLs",
        )

    def transport(self, security: KafkaSecurity, name: str = "sec-it") -> KafkaTransport:
        """A transport of this test (closed at the end)."""
        address = self.secure.ssl if security.protocol == "SSL" else self.secure.sasl_ssl
        t = transport(address, security, name)
        self._cleanups.append(t.close)
        return t

    def on_close(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        self._cleanups.append(cleanup)

    async def mine(self) -> list[Acl]:
        """The ACLs that name this test's topics or groups."""
        return [
            acl
            for acl in await self.admin.describe_acls(AclFilter())
            if acl.resource_name.startswith(self.prefix) or acl.resource_name in self.groups
        ]

    async def settled(self, count: int) -> list[Acl]:
        """This test's ACLs once there are ``count`` of them: the broker answers
        for ACLs (and enforces them) from its metadata, a moment after the
        controller has committed a change."""
        found: list[Acl] = await wait_for(
            self.mine,
            timeout=REQUEST_TIMEOUT,
            accept=lambda acls: len(acls) == count,
            message=f"{count} ACLs under {self.prefix!r}",
        )
        return found

    async def close(self) -> None:
        # Last made, first undone: clients and adapters, then their transports.
        while self._cleanups:
            with contextlib.suppress(Exception):
                await self._cleanups.pop()()
        with contextlib.suppress(Exception):
            await self.admin.delete_acls(await self.mine())
        with contextlib.suppress(Exception):
            cluster = await self.admin._cluster()
            await self.admin.delete_topics(
                [name for name in cluster.topics() if name.startswith(self.prefix)]
            )
        await self.admin.close()
