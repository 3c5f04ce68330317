"""Kafka security (issue 9): TLS, SASL and mutual TLS towards the brokers, typed
errors when the broker refuses, and replies only their caller may read.

All against the secured broker of ``scripts/services.sh`` (TLS on every
listener, SCRAM-SHA-256/512 and PLAIN on SASL_SSL, client certificates on SSL,
ACLs with nothing allowed by default; ``admin`` is its super user). Each test
works under its own topic prefix and removes its topics and ACLs at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.helpers import wait_for
from tests.integration.cli_helpers import run_cli
from tests.integration.secure_kafka import (
    REQUEST_TIMEOUT,
    SecureBus,
    admin_env,
    mtls,
    sasl,
    transport,
)
from tests.stack import SecureKafka, Stack, UniqueNames

from querybus.adapter.inbox_sweep import InboxState, InboxSweeper
from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.config import AdapterSettings, KafkaSecurity
from querybus.database.executor import PostgresExecutor
from querybus.errors import (
    BrokerAuthenticationError,
    BrokerAuthorizationError,
    TransportError,
)
from querybus.protocol import Headers
from querybus.transport.acl import Acl, AclOperation, PatternType, ResourceType

# A refused connection must be reported well within this (a hang guard).
BOUND = REQUEST_TIMEOUT * 2
CLI_BOUND = 60.0


@pytest.fixture
def secure(stack: Stack) -> SecureKafka:
    return stack.secure_kafka


@pytest.fixture
async def sbus(secure: SecureKafka, unique: UniqueNames) -> AsyncIterator[SecureBus]:
    prefix = unique("sec") + "."
    admin = transport(secure.sasl_ssl, sasl(secure, "admin", "SCRAM-SHA-512"), "sec-admin")
    b = SecureBus(secure, prefix, admin)
    try:
        yield b
    finally:
        await b.close()


def _topic_acls(principal: str, topic: str, *ops: AclOperation) -> list[Acl]:
    return [Acl(principal, ResourceType.TOPIC, topic, op) for op in ops]


async def _round_trip(sbus: SecureBus, security: KafkaSecurity, topic: str) -> None:
    """Produce one record as ``security``'s principal and read it back."""
    t = sbus.transport(security)
    producer = t.producer()
    sbus.on_close(producer.stop)
    await asyncio.wait_for(producer.start(), BOUND)
    meta = await producer.send(topic, b"hello", partition=0)
    reader = t.partition_reader(topic, [0], start_at="beginning")
    sbus.on_close(reader.stop)
    await asyncio.wait_for(reader.start(), BOUND)
    records = await wait_for(
        lambda: reader.getmany(0.5), timeout=BOUND, message=f"the record on {topic}"
    )
    assert [(r.offset, r.value) for r in records] == [(meta.offset, b"hello")]


# -- logging in ----------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
async def test_sasl_login_produces_and_consumes_when_acls_allow(
    sbus: SecureBus, mechanism: str
) -> None:
    topic = sbus.prefix + "data"
    await sbus.create_topics(topic)
    await sbus.grant(*_topic_acls("User:carol", topic, AclOperation.WRITE, AclOperation.READ))
    await _round_trip(sbus, sasl(sbus.secure, "carol", mechanism), topic)


async def test_mutual_tls_produces_and_consumes_as_the_certificate_principal(
    sbus: SecureBus,
) -> None:
    topic = sbus.prefix + "data"
    await sbus.create_topics(topic)
    # The certificate's CN=alice is User:alice on the SSL listener.
    await sbus.grant(*_topic_acls("User:alice", topic, AclOperation.WRITE, AclOperation.READ))
    await _round_trip(sbus, mtls(sbus.secure, "alice"), topic)


async def test_a_principal_without_acls_is_refused_with_a_typed_error(sbus: SecureBus) -> None:
    topic = sbus.prefix + "data"
    await sbus.create_topics(topic)
    t = sbus.transport(sasl(sbus.secure, "carol"))
    with pytest.raises(BrokerAuthorizationError) as refused:
        await asyncio.wait_for(t.partition_count(topic), BOUND)
    assert refused.value.retriable is False
    # Without WRITE on any topic there is not even a producer id to be had.
    producer = t.producer()
    sbus.on_close(producer.stop)
    with pytest.raises(BrokerAuthorizationError):
        await asyncio.wait_for(producer.start(), BOUND)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
async def test_a_wrong_password_is_a_typed_authentication_error(
    sbus: SecureBus, mechanism: str
) -> None:
    security = sasl(sbus.secure, "alice", mechanism, password="not-the-password")
    t = sbus.transport(security)
    with pytest.raises(BrokerAuthenticationError) as refused:
        await asyncio.wait_for(t.partition_count(sbus.prefix + "data"), BOUND)
    assert "alice" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    assert refused.value.retriable is False
    # The producer and a client say the same (each bootstraps on its own).
    producer = t.producer()
    with pytest.raises(BrokerAuthenticationError):
        await asyncio.wait_for(producer.start(), BOUND)
    client = QueryClient(sbus.settings(security), timeout=5)
    with pytest.raises(BrokerAuthenticationError):
        await asyncio.wait_for(client.start(), BOUND)


async def test_an_untrusted_broker_certificate_is_a_typed_authentication_error(
    sbus: SecureBus,
) -> None:
    wrong_ca = str(Path(sbus.secure.cert_dir) / "untrusted-ca.crt")
    security = replace(sasl(sbus.secure, "alice"), ssl_cafile=wrong_ca)
    with pytest.raises(BrokerAuthenticationError) as refused:
        await asyncio.wait_for(sbus.transport(security).partition_count("x"), BOUND)
    assert "certificate verify failed" in str(refused.value)


async def test_a_certificate_for_another_host_name_is_a_typed_authentication_error(
    sbus: SecureBus,
) -> None:
    # "127.1" reaches 127.0.0.1, but the certificate names only 127.0.0.1
    # and localhost: the name check fails unless it is turned off.
    port = sbus.secure.sasl_ssl.rpartition(":")[2]
    security = sasl(sbus.secure, "admin", "SCRAM-SHA-512")
    checked = transport(f"127.1:{port}", security)
    unchecked = transport(f"127.1:{port}", replace(security, ssl_check_hostname=False))
    sbus.on_close(checked.close)
    sbus.on_close(unchecked.close)
    with pytest.raises(BrokerAuthenticationError) as refused:
        await asyncio.wait_for(checked.partition_count("x"), BOUND)
    assert "Hostname mismatch" in str(refused.value)
    topic = sbus.prefix + "data"
    await sbus.create_topics(topic)
    assert await asyncio.wait_for(unchecked.partition_count(topic), BOUND) == 2


# -- nobody unauthenticated gets in --------------------------------------------


def _unauthenticated(secure: SecureKafka) -> dict[str, tuple[str, KafkaSecurity]]:
    cert_dir = Path(secure.cert_dir)
    return {
        "plaintext on the SASL_SSL port": (secure.sasl_ssl, KafkaSecurity()),
        "TLS without SASL on the SASL_SSL port": (
            secure.sasl_ssl,
            KafkaSecurity(protocol="SSL", ssl_cafile=secure.cafile),
        ),
        "plaintext on the SSL port": (secure.ssl, KafkaSecurity()),
        "no client certificate on the SSL port": (
            secure.ssl,
            KafkaSecurity(protocol="SSL", ssl_cafile=secure.cafile),
        ),
        "a certificate from an untrusted CA on the SSL port": (
            secure.ssl,
            KafkaSecurity(
                protocol="SSL",
                ssl_cafile=secure.cafile,
                ssl_certfile=str(cert_dir / "mallory.crt"),
                ssl_keyfile=str(cert_dir / "mallory.key"),
            ),
        ),
    }


@pytest.mark.parametrize(
    "way",
    [
        "plaintext on the SASL_SSL port",
        "TLS without SASL on the SASL_SSL port",
        "plaintext on the SSL port",
        "no client certificate on the SSL port",
        "a certificate from an untrusted CA on the SSL port",
    ],
)
async def test_an_unauthenticated_client_cannot_send_requests(sbus: SecureBus, way: str) -> None:
    await sbus.protocol_topics()
    address, security = _unauthenticated(sbus.secure)[way]
    # A short request timeout: a broker that just drops us must not hold the test.
    t = transport(address, security, "sec-anonymous", request_timeout=5.0)
    sbus.on_close(t.close)
    producer = t.producer()
    sbus.on_close(producer.stop)

    async def send_a_request() -> None:
        await producer.start()
        await producer.send(sbus.topics.request, b"{}")

    with pytest.raises(TransportError) as refused:
        await asyncio.wait_for(send_a_request(), BOUND)
    if "certificate" in way:
        # The broker's TLS alert reaches us: that is a refusal, not an outage.
        assert isinstance(refused.value, BrokerAuthenticationError)


# -- settings reach every client -----------------------------------------------


async def test_a_client_with_a_reply_topic_reads_only_that_topic(sbus: SecureBus) -> None:
    # As admin (may do everything): the client creates what it uses, and its
    # reply address is its own topic, not the shared response topic.
    await sbus.protocol_topics()
    settings = sbus.settings(
        sasl(sbus.secure, "admin", "SCRAM-SHA-512"), reply_topic=sbus.reply_topic("admin")
    )
    client = QueryClient(settings, timeout=10)
    sbus.on_close(client.stop)
    await asyncio.wait_for(client.start(), BOUND)
    assert client.reply_address.topic == sbus.reply_topic("admin")
    assert 0 <= client.reply_address.partition < 2


# -- ACLs from `querybus acl`, and replies only their caller reads ---------------


async def _acl_cli(sbus: SecureBus, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, **admin_env(sbus.secure, sbus.prefix)}
    code, out, err = await run_cli(env, tmp_path, "acl", *args, bound=CLI_BOUND)
    assert code == 0, err
    return out


async def test_acl_command_prints_kafka_acls_commands(sbus: SecureBus, tmp_path: Path) -> None:
    out = await _acl_cli(sbus, tmp_path, "client", "--principal", "User:alice")
    lines = out.splitlines()
    reply = sbus.reply_topic("alice")
    assert all(line.startswith("kafka-acls.sh --bootstrap-server ") for line in lines)
    assert any(f"--operation Read --topic {reply} " in line for line in lines)
    assert any(f"--operation Write --topic {sbus.topics.request} " in line for line in lines)
    # Nothing on the shared topics, no group: a client reads its own topic only.
    assert sbus.topics.response + " " not in out
    assert sbus.topics.error not in out
    assert "--group" not in out
    assert await sbus.mine() == []  # printing changes nothing


async def test_adapter_serves_alice_on_her_reply_topic_and_bob_cannot_read_it(
    sbus: SecureBus, stack: Stack, tmp_path: Path, unique: UniqueNames
) -> None:
    secure, topics = sbus.secure, sbus.topics
    group = unique("sec-group")
    sbus.groups.add(group)
    alice_topic, bob_topic = sbus.reply_topic("alice"), sbus.reply_topic("bob")
    # The operator's part: the topics, then the ACLs through the real command.
    await sbus.protocol_topics()
    await sbus.create_topics(alice_topic, bob_topic)
    printed = [
        await _acl_cli(
            sbus, tmp_path, "adapter", "--principal", "User:adapter", "--group", group, "--apply"
        ),
        await _acl_cli(sbus, tmp_path, "client", "--principal", "User:alice", "--apply"),
        await _acl_cli(sbus, tmp_path, "client", "--principal", "User:bob", "--apply"),
    ]
    applied = await sbus.settled(sum(len(out.splitlines()) for out in printed))
    assert Acl("User:alice", ResourceType.TOPIC, alice_topic, AclOperation.READ) in applied
    assert Acl("User:adapter", ResourceType.GROUP, group, AclOperation.READ) in applied
    assert (
        Acl(
            "User:adapter",
            ResourceType.TOPIC,
            topics.response + ".",
            AclOperation.WRITE,
            pattern=PatternType.PREFIXED,
        )
        in applied
    )
    assert not [a for a in applied if a.principal == "User:bob" and alice_topic in a.resource_name]

    # An adapter logged in as "adapter" (no CREATE: the topics exist), on PostgreSQL.
    adapter_security = sasl(secure, "adapter", "SCRAM-SHA-512")
    adapter_transport = sbus.transport(adapter_security, "sec-adapter")
    adapter = AdapterService(
        adapter_transport,
        PostgresExecutor(stack.pg_dsn, pool_size=2),
        bus=sbus.settings(adapter_security),
        settings=AdapterSettings(group_id=group, pool_size=2, http_port=0, shutdown_grace=5.0),
    )
    sbus.on_close(adapter.stop)
    await asyncio.wait_for(adapter.start(http=False), BOUND)

    # Alice over SCRAM-SHA-256: her replies come on her own topic.
    alice = QueryClient(
        sbus.settings(sasl(secure, "alice"), reply_topic=alice_topic), timeout=REQUEST_TIMEOUT
    )
    sbus.on_close(alice.stop)
    await asyncio.wait_for(alice.start(), BOUND)
    assert alice.reply_address.topic == alice_topic
    assert await alice.fetchval("SELECT $1::int + 1", 41) == 42

    # Bob (mutual TLS, his own certificate) is refused by the broker: alice's
    # reply topic, and the shared error topic, are not his to read.
    for topic in (alice_topic, topics.error, topics.response):
        bob_transport = sbus.transport(mtls(secure, "bob"), "sec-bob")
        reader = bob_transport.partition_reader(topic, [0], start_at="beginning")
        sbus.on_close(reader.stop)
        with pytest.raises(BrokerAuthorizationError):
            await asyncio.wait_for(reader.start(), BOUND)
    # Nor can he make a client read alice's topic…
    intruder = QueryClient(
        sbus.settings(sasl(secure, "bob"), reply_topic=alice_topic), timeout=REQUEST_TIMEOUT
    )
    sbus.on_close(intruder.stop)
    with pytest.raises(BrokerAuthorizationError):
        await asyncio.wait_for(intruder.start(), BOUND)
    # …while on his own topic he is served as usual.
    bob = QueryClient(sbus.settings(sasl(secure, "bob"), reply_topic=bob_topic), timeout=15)
    sbus.on_close(bob.stop)
    await asyncio.wait_for(bob.start(), BOUND)
    assert await bob.fetchval("SELECT 'bob'::text") == "bob"

    # --delete takes away exactly what --apply gave.
    deleted = await _acl_cli(sbus, tmp_path, "client", "--principal", "User:bob", "--delete")
    left = await sbus.settled(len(applied) - len(deleted.splitlines()))
    assert not [a for a in left if a.principal == "User:bob"]
    assert [a for a in left if a.principal == "User:alice"]


async def test_tenant_acls_let_a_tenants_principals_share_reply_topics(
    sbus: SecureBus, tmp_path: Path
) -> None:
    out = await _acl_cli(
        sbus,
        tmp_path,
        "tenant",
        "--principal",
        "User:carol",
        "--tenant",
        "acme",
        "--json",
        "--apply",
    )
    acls = json.loads(out)
    prefix = sbus.topics.response + ".acme."
    assert {
        (a["resource_name"], a["pattern"], a["operation"])
        for a in acls
        if a["resource_name"] == prefix
    } == {(prefix, "PREFIXED", "READ"), (prefix, "PREFIXED", "DESCRIBE")}
    await sbus.settled(len(acls))
    shared = prefix + "replies"
    other = sbus.reply_topic("acmeish")  # not under "acme.": not the tenant's
    await sbus.create_topics(shared, other)
    carol = sbus.transport(sasl(sbus.secure, "carol"))
    assert await asyncio.wait_for(carol.partition_count(shared), BOUND) == 2
    with pytest.raises(BrokerAuthorizationError):
        await asyncio.wait_for(carol.partition_count(other), BOUND)


async def test_acl_admin_api_round_trip_and_refusal(sbus: SecureBus) -> None:
    acl = Acl(
        "User:carol",
        ResourceType.TOPIC,
        sbus.prefix,
        AclOperation.DESCRIBE,
        pattern=PatternType.PREFIXED,
    )
    await sbus.admin.create_acls([acl])
    assert await sbus.settled(1) == [acl]
    # Only an admin may change ACLs: carol is refused, typed.
    carol = sbus.transport(sasl(sbus.secure, "carol"))
    with pytest.raises(BrokerAuthorizationError):
        await asyncio.wait_for(carol.create_acls([replace(acl, principal="User:bob")]), BOUND)
    assert await sbus.admin.delete_acls([acl]) == [acl]
    assert await sbus.settled(0) == []


# -- the inbox sweep under ACLs ---------------------------------------------------


async def test_the_inbox_sweep_needs_delete_and_without_it_stops_with_one_warning(
    sbus: SecureBus, secure: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """On the secured broker: a principal that may list and read the inboxes
    but not delete them gets one warning naming the missing ACL, its sweep
    stops and the inbox stays; granted DELETE, the same sweep deletes it."""
    topics = sbus.topics
    gone = topics.inbox("gone-adapter")
    await sbus.create_topics(gone, partitions=1)
    producer = sbus.admin.producer()
    sbus.on_close(producer.stop)
    await producer.start()
    # The last heartbeat of an adapter gone for an hour.
    await producer.send(
        gone, b"", partition=0, headers=[(Headers.HEARTBEAT, b"60")], timestamp=time.time() - 3600
    )
    reader = "User:bob"
    await sbus.grant(
        *(
            Acl(reader, ResourceType.TOPIC, topics.inbox_prefix, op, pattern=PatternType.PREFIXED)
            for op in (AclOperation.DESCRIBE, AclOperation.READ)
        )
    )
    sweeper = InboxSweeper(
        sbus.transport(sasl(secure, "bob")), topics.inbox_prefix, retire_after=600.0
    )
    with caplog.at_level(logging.WARNING, logger="querybus.adapter"):
        await asyncio.wait_for(sweeper.run(0.05, first_delay=0.0), BOUND)  # returns: it stopped
    stopped = [r for r in caplog.records if "inbox sweep stopped" in r.getMessage()]
    assert len(stopped) == 1
    assert "DELETE" in stopped[0].getMessage()
    assert gone in await sbus.admin.list_topics(topics.inbox_prefix)

    await sbus.grant(
        Acl(
            reader,
            ResourceType.TOPIC,
            topics.inbox_prefix,
            AclOperation.DELETE,
            pattern=PatternType.PREFIXED,
        )
    )
    [status] = await sweeper.sweep()
    assert (status.topic, status.state) == (gone, InboxState.DELETED)
    await wait_for(
        lambda: sbus.admin.list_topics(topics.inbox_prefix),
        BOUND,
        accept=lambda names: gone not in names,
        message="the inbox deleted",
    )
