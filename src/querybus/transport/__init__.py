"""Message transports: the :class:`Transport` contract, Kafka and in-memory.

:func:`connect` picks the implementation from the address: ``memory://NAME``
(or ``memory://``) opens the in-process bus called NAME, anything else is a
Kafka bootstrap server list.
"""

from __future__ import annotations

from querybus.config import KafkaSecurity
from querybus.errors import ConfigurationError
from querybus.transport.base import (
    GroupConsumer,
    PartitionReader,
    Producer,
    Record,
    RecordMetadata,
    RevokeCallback,
    TopicPartition,
    TopicSpec,
    Transport,
)
from querybus.transport.kafka import DEFAULT_FETCH_MAX_WAIT, KafkaTransport
from querybus.transport.memory import MemoryTransport

__all__ = [
    "GroupConsumer",
    "KafkaTransport",
    "MemoryTransport",
    "PartitionReader",
    "Producer",
    "Record",
    "RecordMetadata",
    "RevokeCallback",
    "TopicPartition",
    "TopicSpec",
    "Transport",
    "connect",
]

MEMORY_SCHEME = "memory://"


def connect(
    bootstrap_servers: str,
    *,
    client_id: str = "querybus",
    max_message_bytes: int = 1_000_000,
    fetch_max_wait: float = DEFAULT_FETCH_MAX_WAIT,
    request_timeout: float = 30.0,
    session_timeout: float = 10.0,
    heartbeat_interval: float = 1.0,
    security: KafkaSecurity | None = None,
) -> Transport:
    """A transport for ``bootstrap_servers``; nothing is contacted until first use.

    Args:
        bootstrap_servers: ``memory://NAME`` for the in-process bus NAME (shared by
            every transport opened with that name in this process), otherwise
            Kafka's ``host:port[,host:port…]``.
        client_id: reported to the Kafka brokers.
        max_message_bytes: largest record a producer sends.
        fetch_max_wait: seconds a Kafka broker may hold an empty fetch open.
        request_timeout: seconds before a Kafka connection attempt or request
            is abandoned (``BrokerUnavailableError`` / ``TransportError``).
        session_timeout: seconds without heartbeat before a Kafka group member
            is dropped.
        heartbeat_interval: seconds between a Kafka group member's heartbeats.
        security: TLS and SASL towards the Kafka brokers (plaintext when None;
            ignored by the in-process bus, which has no network).

    Returns:
        A :class:`MemoryTransport` or a :class:`KafkaTransport`.

    Raises:
        ConfigurationError: ``bootstrap_servers`` is empty, or a TLS file of
            ``security`` cannot be loaded.
    """
    address = bootstrap_servers.strip()
    if not address:
        raise ConfigurationError("bootstrap_servers is empty")
    if address.startswith(MEMORY_SCHEME):
        return MemoryTransport(address[len(MEMORY_SCHEME) :], max_message_bytes=max_message_bytes)
    return KafkaTransport(
        address,
        client_id=client_id,
        max_message_bytes=max_message_bytes,
        fetch_max_wait=fetch_max_wait,
        request_timeout=request_timeout,
        session_timeout=session_timeout,
        heartbeat_interval=heartbeat_interval,
        security=security,
    )
