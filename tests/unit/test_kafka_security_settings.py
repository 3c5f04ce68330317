"""KafkaSecurity and the bus settings of issue 9: what the environment may say,
what is refused, and that a password is never printed."""

from __future__ import annotations

import pytest

from querybus.config import BusSettings, KafkaSecurity, TopicNames
from querybus.errors import ConfigurationError
from querybus.transport import connect
from querybus.transport.kafka import KafkaTransport

SECRET = "s3cr3t-never-printed"


def test_default_is_plaintext() -> None:
    security = KafkaSecurity.from_env({})
    assert security == KafkaSecurity()
    assert (security.protocol, security.uses_tls, security.uses_sasl) == ("PLAINTEXT", False, False)
    assert BusSettings.from_env({}).security == KafkaSecurity()


def test_sasl_ssl_from_env() -> None:
    security = KafkaSecurity.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "alice",
            "KAFKA_SASL_PASSWORD": SECRET,
            "KAFKA_SSL_CAFILE": "/etc/ca.pem",
            "KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    assert security == KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password=SECRET,
        ssl_cafile="/etc/ca.pem",
        ssl_check_hostname=False,
    )
    assert security.uses_tls
    assert security.uses_sasl


def test_mutual_tls_from_env() -> None:
    security = KafkaSecurity.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": "ca.crt",
            "KAFKA_SSL_CERTFILE": "alice.crt",
            "KAFKA_SSL_KEYFILE": "alice.key",
        }
    )
    assert (security.ssl_certfile, security.ssl_keyfile) == ("alice.crt", "alice.key")
    assert security.ssl_check_hostname is True


def test_bus_settings_read_security() -> None:
    bus = BusSettings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "bob",
            "KAFKA_SASL_PASSWORD": SECRET,
        }
    )
    assert bus.security.sasl_username == "bob"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs a SASL mechanism"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "SASL mechanism must be one of",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs a username and a password",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "KAFKA_SASL_USERNAME": "alice",
            },
            "needs a username and a password",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "KAFKA_SASL_PASSWORD": SECRET,
            },
            "needs a username and a password",
        ),
        # Credentials a typo in the protocol would silently drop.
        ({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET}, "use SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "use SASL_SSL"),
        ({"KAFKA_SSL_CAFILE": "ca.crt"}, "use SSL or SASL_SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "alice.crt"},
            "set both ssl_certfile and ssl_keyfile",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "alice.key"},
            "set both ssl_certfile and ssl_keyfile",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CHECK_HOSTNAME": "maybe"},
            "KAFKA_SSL_CHECK_HOSTNAME",
        ),
    ],
)
def test_combinations_that_cannot_work_are_refused(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as refused:
        KafkaSecurity.from_env(env)
    assert SECRET not in str(refused.value)
    with pytest.raises(ConfigurationError):
        BusSettings.from_env(env)


def test_the_password_is_never_printed() -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="alice",
        sasl_password=SECRET,
    )
    bus = BusSettings(security=security)
    for text in (repr(security), str(security), repr(bus), str(bus)):
        assert SECRET not in text
    assert "alice" in repr(security)


def test_the_password_is_not_in_a_transport_repr() -> None:
    security = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password=SECRET,
    )
    transport = connect("127.0.0.1:9092", security=security)
    assert isinstance(transport, KafkaTransport)
    assert SECRET not in repr(transport)


def test_missing_tls_files_fail_when_the_transport_is_made() -> None:
    security = KafkaSecurity(protocol="SSL", ssl_cafile="/nonexistent/ca.crt")
    with pytest.raises(ConfigurationError, match=r"/nonexistent/ca\.crt"):
        connect("127.0.0.1:9092", security=security)


def test_reply_topic() -> None:
    assert BusSettings.from_env({}).reply_topic is None
    assert BusSettings().client_reply_topic == "database.query.response"
    bus = BusSettings.from_env(
        {"QUERYBUS_TOPIC_PREFIX": "t.", "QUERYBUS_REPLY_TOPIC": "t.database.query.response.alice"}
    )
    assert bus.client_reply_topic == "t.database.query.response.alice"
    shared = BusSettings(reply_topic="database.query.response")
    assert shared.client_reply_topic == "database.query.response"


@pytest.mark.parametrize(
    "topic",
    [
        "database.query.request",  # adapters would never reply there
        "database.query.responses",  # not "under" the response topic
        "database.query.response.alice",  # without the prefix the others use
    ],
)
def test_a_reply_topic_not_under_the_response_topic_is_refused(topic: str) -> None:
    with pytest.raises(ConfigurationError, match="must be"):
        BusSettings(topics=TopicNames(prefix="t."), reply_topic=topic)


def test_audit_topic_has_the_prefix() -> None:
    assert TopicNames().audit == "database.query.audit"
    assert TopicNames(prefix="x.").audit == "x.database.query.audit"


# -- errors at the transport boundary --------------------------------------------


def test_refusals_map_to_typed_errors() -> None:
    import ssl

    from aiokafka.errors import (
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        KafkaConnectionError,
        SaslAuthenticationFailed,
        TopicAuthorizationFailedError,
    )

    from querybus.errors import (
        BrokerAuthenticationError,
        BrokerAuthorizationError,
        BrokerUnavailableError,
    )
    from querybus.transport.kafka import map_error

    for exc in (
        TopicAuthorizationFailedError(),
        GroupAuthorizationFailedError(),
        ClusterAuthorizationFailedError(),
    ):
        assert isinstance(map_error(exc, "x"), BrokerAuthorizationError)
    assert isinstance(map_error(SaslAuthenticationFailed("no"), "x"), BrokerAuthenticationError)
    assert isinstance(
        map_error(ssl.SSLCertVerificationError("verify failed"), "x"), BrokerAuthenticationError
    )
    # aiokafka wraps a TLS alert in "connection closed": the cause decides.
    try:
        try:
            raise ssl.SSLError("sslv3 alert bad certificate")
        except ssl.SSLError as alert:
            raise KafkaConnectionError("Connection at 127.0.0.1:1 closed") from alert
    except KafkaConnectionError as wrapped:
        error = map_error(wrapped, "x")
    assert isinstance(error, BrokerAuthenticationError)
    assert "bad certificate" in str(error)
    assert not error.retriable
    # A plain outage stays an outage, over TLS too.
    assert type(map_error(KafkaConnectionError("closed"), "x")) is BrokerUnavailableError
    assert type(map_error(ssl.SSLEOFError("EOF"), "x")) is BrokerUnavailableError


# -- the ACLs `querybus acl` derives -----------------------------------------------


def test_client_acls_name_only_its_own_reply_topic() -> None:
    from querybus.cli.acl import client_acls
    from querybus.transport.acl import AclOperation, PatternType, ResourceType

    topics = TopicNames(prefix="p.")
    acls = client_acls("User:alice", topics)
    assert {(a.resource_name, a.operation) for a in acls} == {
        ("p.database.query.request", AclOperation.WRITE),
        ("p.database.query.request", AclOperation.DESCRIBE),
        ("p.database.query.response.alice", AclOperation.READ),
        ("p.database.query.response.alice", AclOperation.DESCRIBE),
        # Interactive transactions: requests to the holding adapter's inbox.
        ("p.database.query.inbox.", AclOperation.WRITE),
        ("p.database.query.inbox.", AclOperation.DESCRIBE),
    }
    assert {a.pattern for a in acls if "inbox" not in a.resource_name} == {PatternType.LITERAL}
    assert {a.pattern for a in acls if "inbox" in a.resource_name} == {PatternType.PREFIXED}
    assert {a.resource_type for a in acls} == {ResourceType.TOPIC}
    with_registry = client_acls("User:alice", topics, registry="p.querybus.registry")
    assert ("p.querybus.registry", AclOperation.READ) in {
        (a.resource_name, a.operation) for a in with_registry
    }


@pytest.mark.parametrize(
    ("principal", "reply_topic"),
    [
        ("User:acme.x", None),  # a dot would put it under tenant acme's prefix
        ("User:CN=a,O=b", None),
        ("alice", None),  # not TYPE:NAME
        ("User:alice", "database.query.response"),  # the shared topic: everyone's replies
        ("User:alice", "database.query.request.alice"),
    ],
)
def test_client_acls_refuse_names_that_break_isolation(
    principal: str, reply_topic: str | None
) -> None:
    import typer

    from querybus.cli.acl import client_acls

    with pytest.raises(typer.BadParameter):
        client_acls(principal, TopicNames(), reply_topic)


def test_adapter_acls_cover_every_topic_it_writes() -> None:
    from querybus.cli.acl import adapter_acls
    from querybus.transport.acl import AclOperation, PatternType, ResourceType

    topics = TopicNames(prefix="p.")
    acls = adapter_acls("User:adapter", topics, "grp")
    writes = {(a.resource_name, a.pattern) for a in acls if a.operation == AclOperation.WRITE}
    assert writes == {
        (topics.response, PatternType.LITERAL),
        (topics.response + ".", PatternType.PREFIXED),
        (topics.error, PatternType.LITERAL),
        (topics.dead_letter, PatternType.LITERAL),
        (topics.audit, PatternType.LITERAL),
        (topics.routing_decisions, PatternType.LITERAL),
        (topics.inbox_prefix, PatternType.PREFIXED),
    }
    reads = {(a.resource_type, a.resource_name) for a in acls if a.operation == AclOperation.READ}
    assert reads == {
        (ResourceType.TOPIC, topics.request),
        (ResourceType.GROUP, "grp"),
        (ResourceType.TOPIC, topics.inbox_prefix),  # its own inbox, without a group
    }
    inbox = {a.operation for a in acls if a.resource_name == topics.inbox_prefix}
    assert AclOperation.CREATE in inbox
    # It deletes the inboxes of adapters that are gone (the inbox sweep).
    assert inbox == {
        AclOperation.CREATE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DESCRIBE,
        AclOperation.DELETE,
    }


def test_kafka_acls_command_line() -> None:
    from querybus.cli.acl import kafka_acls_command
    from querybus.transport.acl import Acl

    acl = Acl("User:alice", "TOPIC", "database.query.response.", "READ", pattern="PREFIXED")
    assert kafka_acls_command(acl, "127.0.0.1:9093") == (
        "kafka-acls.sh --bootstrap-server 127.0.0.1:9093 --command-config admin.properties "
        "--add --allow-principal User:alice --allow-host '*' --operation Read "
        "--topic database.query.response. --resource-pattern-type prefixed"
    )
