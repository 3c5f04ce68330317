"""The Kafka transport, on aiokafka: the only module of querybus that imports it.

Every aiokafka object is built inside ``start()`` (aiokafka binds to the running
loop in its constructors, and an object that was built but never stopped warns
"Unclosed AIOKafka…" when collected), and every ``stop()`` is safe after a
failed ``start()`` and when called twice.

Every aiokafka or socket error is mapped to :mod:`querybus.errors` at this
boundary (:func:`map_error`): unreachable brokers become
:class:`~querybus.errors.BrokerUnavailableError`, oversized records
:class:`~querybus.errors.PayloadTooLargeError`, refused credentials or TLS
handshakes :class:`~querybus.errors.BrokerAuthenticationError`, ACL refusals
:class:`~querybus.errors.BrokerAuthorizationError`, the rest
:class:`~querybus.errors.TransportError`.

Security (:class:`~querybus.config.KafkaSecurity`: TLS, SASL) applies to every
aiokafka object built here — producers, consumers, the admin and metadata
clients — so a transport talks to its brokers one way only. aiokafka reports a
failed bootstrap as "unable to bootstrap" whatever the reason (it only logs
the cause); when that happens with security configured, one diagnostic
connection (:func:`_diagnose`) finds out whether the credentials or the TLS
handshake were refused, so the caller gets a typed error instead of
"broker unavailable".

aiokafka logs at ERROR some broker answers that are an expected, retried part
of normal operation — a partition whose leader is still being elected right
after its topic was created, a group coordinator that is not loaded yet. This
module lowers exactly those records to DEBUG (:class:`TransientBrokerAnswerFilter`),
so an operator's log shows errors only when something is wrong; a condition
that does not clear still surfaces, as the error our own call raises when its
deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.errors import (
    BrokerNotAvailableError,
    ClusterAuthorizationFailedError,
    ConsumerStoppedError,
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    IllegalSaslStateError,
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    KafkaUnavailableError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    NodeNotReadyError,
    NotCoordinatorForGroupError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request
from aiokafka.structs import OffsetAndMetadata

from querybus.cancellation import wait_for
from querybus.config import KafkaSecurity
from querybus.errors import (
    BrokerAuthenticationError,
    BrokerAuthorizationError,
    BrokerUnavailableError,
    ConfigurationError,
    InterfaceError,
    PayloadTooLargeError,
    QueryBusError,
    TransportError,
)
from querybus.transport.acl import (
    Acl,
    AclFilter,
    operation_of,
    pattern_type_of,
    permission_of,
    resource_type_of,
)
from querybus.transport.base import (
    Record,
    RecordMetadata,
    RevokeCallback,
    TopicPartition,
    TopicSpec,
)

__all__ = [
    "DEFAULT_FETCH_MAX_WAIT",
    "KafkaTransport",
    "PayloadFilter",
    "TransientBrokerAnswerFilter",
    "install_log_filter",
    "map_error",
]

log = logging.getLogger(__name__)

#: How long the broker may hold a fetch open when no data is there (seconds).
#:
#: Measured (2 cores, one local Kafka 4.0 broker, send → PartitionReader):
#:
#: * one record at a time: p50 1.2-1.8 ms for 5, 20, 100 and 500 ms alike —
#:   the broker answers a parked fetch as soon as a record lands;
#: * bursts of 50 in flight over 4 partitions: p95 11-43 ms at 5 ms,
#:   12-22 ms at 20 ms, 57-65 ms at 100 ms — aiokafka does not refetch a
#:   partition while a fetch for the others is parked, so the wait shows in the tail;
#: * an idle reader costs 9.4 % of a core at 5 ms, 3.2 % at 20 ms, 0.7 % at 100 ms.
#:
#: 20 ms keeps the tail short without burning CPU on idle consumers.
DEFAULT_FETCH_MAX_WAIT = 0.02

# Errors that mean "no broker could be reached" rather than "the broker said no".
_UNREACHABLE: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    NoBrokersAvailable,
    NodeNotReadyError,
    KafkaUnavailableError,
    BrokerNotAvailableError,
)
_TOO_LARGE: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (
    KafkaTimeoutError,
    RequestTimedOutError,
    TimeoutError,
)
# The broker refused who we are: a SASL login…
_SASL_REFUSALS: tuple[type[BaseException], ...] = (
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)
# …or the TLS handshake: a certificate that does not verify, a hostname that
# does not match, a client certificate the broker does not accept (its alert),
# TLS spoken to a port that does not speak it. A connection cut mid-stream
# (SSLEOFError and the like) is an outage, not a refusal: not matched here.
_TLS_REFUSAL = re.compile(
    r"CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE|ACCESS_DENIED|NO_SHARED_CIPHER"
    r"|PROTOCOL_VERSION|WRONG_VERSION_NUMBER|UNSUPPORTED_PROTOCOL"
)


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker refused our credentials or TLS handshake."""
    if isinstance(exc, (*_SASL_REFUSALS, ssl.SSLCertVerificationError)):
        return True
    if not isinstance(exc, ssl.SSLError) or isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    ):
        return False
    return bool(_TLS_REFUSAL.search(f"{getattr(exc, 'reason', None) or ''} {exc}".upper()))


# The broker knows who we are and its ACLs say no.
_AUTHORIZATION: tuple[type[BaseException], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (aiokafka wraps an
    ssl.SSLError in "connection closed")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def map_error(exc: BaseException, what: str) -> QueryBusError:
    """The querybus error for a foreign exception raised while doing ``what``.

    Args:
        exc: the aiokafka (or socket) exception.
        what: a short description of the operation, for the message.

    Returns:
        The error to raise (``raise map_error(exc, what) from exc``).
    """
    if isinstance(exc, QueryBusError):
        return exc
    detail = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _AUTHORIZATION):
        return BrokerAuthorizationError(detail)
    # Before the OSError check below: ssl.SSLError is an OSError, but a refused
    # handshake is not an unreachable broker and retrying will not help.
    for cause in _causes(exc):
        if _refused(cause):
            if cause is not exc:
                detail += f" ({type(cause).__name__}: {cause})"
            return BrokerAuthenticationError(detail)
    if isinstance(exc, _TOO_LARGE):
        return PayloadTooLargeError(detail)
    if isinstance(exc, _UNREACHABLE):
        return BrokerUnavailableError(detail)
    # Checked before OSError: TimeoutError is an OSError, but a timeout after
    # the broker was reached is not proof that it is down.
    if isinstance(exc, _TIMEOUTS):
        return TransportError(detail)
    if isinstance(exc, OSError):
        return BrokerUnavailableError(detail)
    return TransportError(detail)


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except QueryBusError:
        raise
    except (KafkaError, ConsumerStoppedError, OSError) as exc:
        raise map_error(exc, what) from exc


# Broker answers that mean "a leader or a group coordinator is being elected
# or loaded": normal right after a topic or a group is created and while
# leadership moves; aiokafka retries each of them by itself.
_TRANSIENT_ANSWERS: tuple[type[BaseException], ...] = (
    NotLeaderForPartitionError,
    LeaderNotAvailableError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
    GroupLoadInProgressError,
)


class TransientBrokerAnswerFilter(logging.Filter):
    """Lowers aiokafka's log records about transient broker answers to DEBUG.

    A record is lowered when one of its arguments is (an instance of) one of
    the errors above, e.g. ``"Failed fetch offsets from 1: %s"`` with a
    ``NotLeaderForPartitionError``; every other record passes unchanged, so
    real failures keep their level. A lowered record is dropped unless the
    logger it came from is enabled for DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not _mentions_transient(record.args):
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        # The logger's level was checked against the original level; check it
        # again, or a handler without a level of its own would show the record.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _mentions_transient(args: object) -> bool:
    values = args.values() if isinstance(args, Mapping) else args
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes)):
        return False
    for value in values:
        if isinstance(value, _TRANSIENT_ANSWERS):
            return True
        if isinstance(value, type) and issubclass(value, _TRANSIENT_ANSWERS):
            return True
    return False


class PayloadFilter(logging.Filter):
    """Keeps record payloads out of aiokafka's log records.

    aiokafka logs whole keys and values at DEBUG (``"Sending (key=%s
    value=%s) to %s"``): a request's parameters, a reply's rows. An
    application that logs at DEBUG must not get them, so every ``bytes``
    argument of an aiokafka record is replaced with its length.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, bytes | bytearray) for a in args):
            record.args = tuple(_masked(a) for a in args)
        elif isinstance(args, Mapping) and any(
            isinstance(a, bytes | bytearray) for a in args.values()
        ):
            record.args = {k: _masked(v) for k, v in args.items()}
        return True


def _masked(value: object) -> object:
    return f"<{len(value)} bytes>" if isinstance(value, bytes | bytearray) else value


def install_log_filter() -> None:
    """Put :class:`TransientBrokerAnswerFilter` and :class:`PayloadFilter` on
    every aiokafka logger (idempotent).

    A logger's filters only see the records logged *on that logger*, not those
    propagated from its children, so each module's logger gets one.
    """
    names = [
        name
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
        and (name == "aiokafka" or name.startswith("aiokafka."))
    ]
    for name in names:
        logger = logging.getLogger(name)
        for kind in (TransientBrokerAnswerFilter, PayloadFilter):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())


# aiokafka's modules (and so their loggers) are all imported above.
install_log_filter()


def _acl(
    resource_type: int,
    resource_name: str,
    pattern: int,
    principal: str,
    host: str,
    operation: int,
    permission: int,
) -> Acl:
    """An ACL binding as the broker's answers list it (codes, in this order)."""
    return Acl(
        principal=principal,
        resource_type=resource_type_of(resource_type),
        resource_name=resource_name,
        operation=operation_of(operation),
        permission=permission_of(permission),
        pattern=pattern_type_of(pattern),
        host=host,
    )


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _record(msg: Any) -> Record:
    return Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        # Kafka allows null header values; the contract has bytes only.
        headers=tuple((k, v if v is not None else b"") for k, v in msg.headers),
        timestamp=msg.timestamp / 1000.0,
    )


def _flatten(batches: Mapping[Any, Sequence[Any]]) -> list[Record]:
    return [_record(msg) for msgs in batches.values() for msg in msgs]


def _ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context for ``security`` (None without TLS).

    Raises:
        ConfigurationError: a CA, certificate or key file is missing or unreadable.
    """
    if not security.uses_tls:
        return None
    try:
        context = create_ssl_context(
            cafile=security.ssl_cafile,
            certfile=security.ssl_certfile,
            keyfile=security.ssl_keyfile,
        )
    except (OSError, ssl.SSLError) as exc:
        # ssl's messages name neither the file nor the setting.
        raise ConfigurationError(
            "cannot load the Kafka TLS files "
            f"(cafile={security.ssl_cafile!r}, certfile={security.ssl_certfile!r}, "
            f"keyfile={security.ssl_keyfile!r}): {exc}"
        ) from exc
    # The chain is verified either way; only the name check can be turned off.
    context.check_hostname = security.ssl_check_hostname
    result: ssl.SSLContext = context
    return result


class _Options:
    """The aiokafka settings shared by every client of one transport."""

    __slots__ = (
        "bootstrap_servers",
        "client_id",
        "fetch_max_wait",
        "heartbeat_interval",
        "max_message_bytes",
        "request_timeout",
        "security",
        "session_timeout",
        "ssl_context",
    )

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        max_message_bytes: int,
        fetch_max_wait: float,
        request_timeout: float,
        session_timeout: float,
        heartbeat_interval: float,
        security: KafkaSecurity,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.max_message_bytes = max_message_bytes
        self.fetch_max_wait = fetch_max_wait
        self.request_timeout = request_timeout
        self.session_timeout = session_timeout
        self.heartbeat_interval = heartbeat_interval
        self.security = security
        # One context for every connection of this transport: the files are
        # read once, and a missing one fails here, before anything connects.
        self.ssl_context = _ssl_context(security)

    def common(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": _ms(self.request_timeout),
            **self.auth(),
        }

    def consumer(self) -> dict[str, Any]:
        return {
            **self.common(),
            "fetch_max_wait_ms": _ms(self.fetch_max_wait),
            # A record as large as the producer allows must fit in one fetch.
            "max_partition_fetch_bytes": max(1_048_576, self.max_message_bytes + 1024),
            "enable_auto_commit": False,
        }

    def auth(self) -> dict[str, Any]:
        """The security arguments every aiokafka client and connection takes."""
        security = self.security
        options: dict[str, Any] = {
            "security_protocol": security.protocol,
            "ssl_context": self.ssl_context,
        }
        if security.uses_sasl:
            options["sasl_mechanism"] = security.sasl_mechanism
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = security.sasl_password
        return options

    def hosts(self) -> list[tuple[str, int]]:
        hosts = []
        for entry in self.bootstrap_servers.split(","):
            host, _, port = entry.strip().rpartition(":")
            if host and port.isdigit():
                hosts.append((host.strip("[]"), int(port)))
        return hosts


async def _diagnose(options: _Options) -> QueryBusError | None:
    """Why a bootstrap failed, when the broker refused our credentials or TLS.

    aiokafka's bootstrap swallows the cause ("Unable to bootstrap"); one
    connection made the same way as aiokafka's shows it. None when nothing was
    refused (the broker is really unreachable, or the cause is elsewhere).
    """
    if options.security.protocol == "PLAINTEXT":
        return None
    timeout = min(options.request_timeout, 10.0)
    for host, port in options.hosts()[:3]:
        try:
            conn = await create_conn(
                host,
                port,
                client_id=options.client_id,
                request_timeout_ms=_ms(timeout),
                **options.auth(),
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            error = map_error(exc, f"connect to {host}:{port} as {_who(options.security)}")
            if isinstance(error, BrokerAuthenticationError):
                return error
            continue
        conn.close()
    return None


def _who(security: KafkaSecurity) -> str:
    """How we log in, for messages (never the password)."""
    if security.uses_sasl:
        return f"{security.sasl_username!r} ({security.protocol}, {security.sasl_mechanism})"
    if security.ssl_certfile:
        return f"the certificate {security.ssl_certfile!r} ({security.protocol})"
    return f"an anonymous {security.protocol} client"


async def _start(options: _Options, what: str, starting: Awaitable[Any]) -> None:
    """Await an aiokafka ``start()``/``bootstrap()``, mapping its errors; a
    bootstrap that failed because we were refused raises BrokerAuthenticationError."""
    try:
        with _mapped(what):
            await starting
    except BrokerUnavailableError as exc:
        refused = await _diagnose(options)
        if refused is None:
            raise
        raise refused from exc


#: Errors after which an idempotent aiokafka producer never delivers again.
#: A batch that failed without reaching the log (across a broker restart,
#: say) leaves a gap in the producer's sequence numbers, and the broker then
#: refuses every later batch with OutOfOrderSequenceNumber. Java's client
#: takes a new producer id then; aiokafka does not, so the transport replaces
#: the producer (see _KafkaProducer._replace).
_PRODUCER_BROKEN: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    ProducerFenced,
    InvalidProducerEpoch,
)


class _KafkaProducer:
    def __init__(self, options: _Options) -> None:
        self._options = options
        self._producer: AIOKafkaProducer | None = None
        # Set when the current producer got an error of _PRODUCER_BROKEN: the
        # next send replaces it first.
        self._broken = False
        self._replacing: asyncio.Lock | None = None
        # Replaced producers being stopped in the background.
        self._retiring: set[asyncio.Task[None]] = set()

    def _new(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._options.common(),
            acks="all",
            linger_ms=0,
            # Retries after a lost acknowledgement must not duplicate records.
            enable_idempotence=True,
            max_request_size=self._options.max_message_bytes,
        )

    async def start(self) -> None:
        """Connect to the cluster.

        Raises:
            InterfaceError: already started.
            BrokerUnavailableError: no broker could be reached.
            TransportError: any other failure.
        """
        if self._producer is not None:
            raise InterfaceError("producer already started")
        self._producer = self._new()
        try:
            await _start(
                self._options,
                f"start producer on {self._options.bootstrap_servers}",
                self._producer.start(),
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Flush and disconnect; harmless when never started, failed to start, or stopped.

        Raises:
            TransportError: flushing pending records failed.
        """
        producer, self._producer = self._producer, None
        try:
            if producer is not None:
                with _mapped("stop producer"):
                    await producer.stop()
        finally:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def _mark_broken(self, producer: AIOKafkaProducer) -> None:
        if producer is self._producer:  # not a late failure of a replaced one
            self._broken = True

    async def _replace(self, broken: AIOKafkaProducer) -> AIOKafkaProducer:
        """A started new producer (a new producer id) instead of ``broken``;
        ``broken`` is stopped in the background (its pending records fail and
        their senders retry them on the new one).

        Raises:
            InterfaceError: the producer was stopped meanwhile.
            BrokerUnavailableError, TransportError: the new one cannot start
                (the next send tries again).
        """
        if self._replacing is None:
            self._replacing = asyncio.Lock()
        async with self._replacing:
            current = self._producer
            if current is None:
                raise InterfaceError("producer is not started")
            if current is not broken:
                return current  # replaced by a concurrent send
            fresh = self._new()
            try:
                await _start(self._options, "restart producer", fresh.start())
            except BaseException:
                with contextlib.suppress(KafkaError, OSError):
                    await fresh.stop()
                raise
            self._producer, self._broken = fresh, False
            log.warning("kafka producer replaced: the broker refused its sequence numbers")
            task = asyncio.ensure_future(self._retire(broken))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            return fresh

    async def _retire(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            async with asyncio.timeout(self._options.request_timeout):
                await producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp: float | None = None,
    ) -> RecordMetadata:
        """Append one record and wait for acks from all in-sync replicas.

        ``timestamp`` (seconds since the epoch) becomes the record's
        ``CreateTime``; None lets the producer stamp the current time.

        Raises:
            InterfaceError: the producer is not started.
            PayloadTooLargeError: the record is larger than ``max_message_bytes``
                or than the broker accepts.
            BrokerUnavailableError: the broker cannot be reached.
            TransportError: unknown topic or partition, or any other failure.
        """
        ack = await self.start_send(
            topic, value, key=key, partition=partition, headers=headers, timestamp=timestamp
        )
        return await ack

    async def start_send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp: float | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Buffer one record; return the future of its acknowledgement (its
        failure mapped as :meth:`send` maps it).

        Raises:
            InterfaceError: the producer is not started.
            PayloadTooLargeError: the record is larger than ``max_message_bytes``.
            BrokerUnavailableError: the broker cannot be reached.
            TransportError: unknown topic or partition, or any other failure.
        """
        producer = self._producer
        if producer is None:
            raise InterfaceError("producer is not started")
        if self._broken:
            producer = await self._replace(producer)
        what = f"send to {topic!r}"
        with _mapped(what):
            if partition is not None:
                # aiokafka only asserts this; assertions vanish under -O. The
                # cluster metadata it keeps answers without a round trip (or an
                # await) for every topic it has seen: replies, the hot path.
                known = producer.client.cluster.partitions_for_topic(topic)
                if known is None or partition not in known:
                    known = await producer.partitions_for(topic)
                if partition not in known:
                    raise TransportError(f"topic {topic!r} has no partition {partition}")
            try:
                delivery = await producer.send(
                    topic,
                    value,
                    key=key,
                    partition=partition,
                    headers=list(headers),
                    timestamp_ms=None if timestamp is None else round(timestamp * 1000),
                )
            except _PRODUCER_BROKEN:
                self._mark_broken(producer)
                raise
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        delivery.add_done_callback(
            functools.partial(_settle_ack, ack, what, lambda: self._mark_broken(producer))
        )
        return ack


def _settle_ack(
    ack: asyncio.Future[RecordMetadata],
    what: str,
    broken: Callable[[], None],
    delivery: asyncio.Future[Any],
) -> None:
    """Pass aiokafka's delivery outcome on to ``ack``, its failure mapped
    (calling ``broken`` for an error of :data:`_PRODUCER_BROKEN`)."""
    if ack.done():
        return
    if delivery.cancelled():
        ack.cancel()
        return
    exc = delivery.exception()
    if exc is not None:
        if isinstance(exc, _PRODUCER_BROKEN):
            broken()
        ack.set_exception(map_error(exc, what))
        return
    meta = delivery.result()
    ack.set_result(RecordMetadata(topic=meta.topic, partition=meta.partition, offset=meta.offset))


class _KafkaPartitionReader:
    def __init__(
        self,
        transport: KafkaTransport,
        topic: str,
        partitions: Sequence[int] | None,
        start_at: Literal["end", "beginning"],
    ) -> None:
        self._transport = transport
        self._topic = topic
        self._partitions = None if partitions is None else list(partitions)
        self._start_at = start_at
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Assign the partitions and resolve every start position.

        Raises:
            InterfaceError: already started.
            BrokerUnavailableError: no broker could be reached.
            TransportError: unknown topic or partition, or any other failure.
        """
        if self._consumer is not None:
            raise InterfaceError("partition reader already started")
        count = await self._transport.partition_count(self._topic)
        partitions = list(range(count)) if self._partitions is None else self._partitions
        for p in partitions:
            if not 0 <= p < count:
                raise TransportError(f"topic {self._topic!r} has no partition {p}")
        tps = [KafkaTopicPartition(self._topic, p) for p in partitions]
        options = self._transport.options
        self._consumer = AIOKafkaConsumer(
            **options.consumer(),
            auto_offset_reset="latest" if self._start_at == "end" else "earliest",
        )
        try:
            await _start(options, f"start reader of {self._topic!r}", self._consumer.start())
            with _mapped(f"start reader of {self._topic!r}"):
                self._consumer.assign(tps)
                if self._start_at == "end":
                    await self._consumer.seek_to_end(*tps)
                else:
                    await self._consumer.seek_to_beginning(*tps)
                # position() waits for the offset lookup, so the position is
                # fixed before start() returns: nothing appended later is missed.
                for tp in tps:
                    await self._consumer.position(tp)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Disconnect; harmless when never started, failed to start, or stopped.

        Raises:
            TransportError: closing failed.
        """
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with _mapped("stop reader"):
                await consumer.stop()

    async def getmany(self, timeout: float) -> list[Record]:
        """Records available now, or those that arrive within ``timeout`` seconds.

        Raises:
            InterfaceError: the reader is not started.
            TransportError: fetching failed.
        """
        consumer = self._consumer
        if consumer is None:
            raise InterfaceError("partition reader is not started")
        with _mapped(f"read {self._topic!r}"):
            batches = await consumer.getmany(timeout_ms=max(0, int(timeout * 1000)))
        return _flatten(batches)


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        group_id: str,
        on_revoke: RevokeCallback | None,
        start_lookback: float | None,
    ) -> None:
        self._consumer = consumer
        self._group_id = group_id
        self._on_revoke = on_revoke
        self._start_lookback = start_lookback

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # aiokafka awaits this before it rejoins the group, which is what lets
        # the member finish and commit in-flight work for these partitions.
        if self._on_revoke is not None and revoked:
            await self._on_revoke({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Called after every assignment, with all of this member's partitions
        # (the eager protocol takes everything back first), so a partition
        # that moves here in a later rebalance is positioned like a first one.
        if self._start_lookback is None or not assigned:
            return  # auto_offset_reset="earliest" does the rest
        consumer = self._consumer
        tps = sorted(assigned)
        # Paused before the first await: aiokafka's fetcher runs meanwhile and
        # would otherwise reset an uncommitted partition to its earliest offset
        # and hand out old records before the seek below. A paused partition
        # may get a position but is never fetched.
        consumer.pause(*tps)
        try:
            await self._seek_uncommitted(consumer, tps, self._start_lookback)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Committed partitions still resume from their commit; the others
            # fall back to the earliest offset, which is slow but loses nothing.
            log.error(
                "group %r: could not find the start offsets of %d partitions by "
                "time (%s: %s); partitions without a commit start at their earliest offset",
                self._group_id,
                len(tps),
                type(exc).__name__,
                exc,
            )
        finally:
            # Only those still assigned: stop() may have cancelled us mid-way.
            current = consumer.assignment()
            consumer.resume(*(tp for tp in tps if tp in current))

    @staticmethod
    async def _seek_uncommitted(
        consumer: AIOKafkaConsumer, tps: list[KafkaTopicPartition], lookback: float
    ) -> None:
        committed = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
        fresh = [tp for tp, offset in zip(tps, committed, strict=True) if offset is None]
        if not fresh:
            return
        since_ms = max(0, round((time.time() - lookback) * 1000))
        # End offsets first: when no record is stamped at or after `since`,
        # everything below this end is older, while a record appended after
        # this lookup would be found by the lookup by time below. Asking in the
        # other order could skip a record appended in between.
        ends = await consumer.end_offsets(fresh)
        found = await consumer.offsets_for_times(dict.fromkeys(fresh, since_ms))
        for tp in fresh:
            hit = found.get(tp)
            offset = ends[tp] if hit is None else hit.offset
            log.debug("group start: %s has no commit; starting at offset %d", tp, offset)
            consumer.seek(tp, offset)


class _KafkaGroupConsumer:
    def __init__(
        self,
        options: _Options,
        topics: Sequence[str],
        group_id: str,
        on_revoke: RevokeCallback | None,
        max_poll_interval: float,
        start_lookback: float | None,
    ) -> None:
        if start_lookback is not None and not start_lookback >= 0:
            raise ConfigurationError(f"start_lookback must be >= 0 seconds, got {start_lookback}")
        self._options = options
        self._topics = list(topics)
        self._group_id = group_id
        self._on_revoke = on_revoke
        self._max_poll_interval = max_poll_interval
        self._start_lookback = start_lookback
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Join the group; returns once this member has its first assignment.

        Raises:
            InterfaceError: already started.
            BrokerUnavailableError: no broker could be reached.
            TransportError: unknown topic, or any other failure.
        """
        if self._consumer is not None:
            raise InterfaceError("group consumer already started")
        options = self._options
        self._consumer = AIOKafkaConsumer(
            **options.consumer(),
            group_id=self._group_id,
            auto_offset_reset="earliest",
            max_poll_interval_ms=_ms(self._max_poll_interval),
            session_timeout_ms=_ms(options.session_timeout),
            heartbeat_interval_ms=_ms(options.heartbeat_interval),
        )
        try:
            with _mapped(f"join group {self._group_id!r}"):
                self._consumer.subscribe(
                    topics=self._topics,
                    listener=_RebalanceListener(
                        self._consumer, self._group_id, self._on_revoke, self._start_lookback
                    ),
                )
            # aiokafka waits for the first assignment with no deadline of its
            # own; a coordinator that never answers must not hang the caller.
            await _start(
                options,
                f"join group {self._group_id!r}",
                wait_for(self._consumer.start(), options.request_timeout * 2),
            )
        except TimeoutError:
            await self.stop()
            raise BrokerUnavailableError(
                f"joining group {self._group_id!r} took longer than "
                f"{options.request_timeout * 2:g} s"
            ) from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Leave the group without committing; harmless when not started or stopped.

        Raises:
            TransportError: leaving failed.
        """
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with _mapped(f"leave group {self._group_id!r}"):
                await consumer.stop()

    async def getmany(
        self,
        timeout: float,
        max_records: int = 500,
    ) -> list[Record]:
        """Records from the assigned partitions, waiting up to ``timeout`` seconds.

        Raises:
            InterfaceError: the consumer is not started.
            TransportError: fetching failed.
        """
        consumer = self._consumer
        if consumer is None:
            raise InterfaceError("group consumer is not started")
        with _mapped(f"consume for group {self._group_id!r}"):
            batches = await consumer.getmany(
                timeout_ms=max(0, int(timeout * 1000)), max_records=max_records
            )
        return _flatten(batches)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit exactly these offsets (the next record to read, per partition).

        Raises:
            InterfaceError: the consumer is not started.
            TransportError: the commit failed, e.g. a partition was reassigned.
        """
        consumer = self._consumer
        if consumer is None:
            raise InterfaceError("group consumer is not started")
        if not offsets:
            return
        exact = {
            KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "")
            for (topic, partition), offset in offsets.items()
        }
        with _mapped(f"commit for group {self._group_id!r}"):
            await consumer.commit(exact)

    def assignment(self) -> set[TopicPartition]:
        consumer = self._consumer
        if consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in consumer.assignment()}


# The ACL requests of the admin API, at version 1 (prefixed patterns; Kafka 4
# accepts 1-3). aiokafka's own builders carry one ACL per request: these carry
# all of them at once.
class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self._creations)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def __init__(self, filter_: tuple[Any, ...]) -> None:
        self._filter = filter_

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(*self._filter)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, filters: list[tuple[Any, ...]]) -> None:
        self._filters = filters

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self._filters)


def _raise_for(code: int, message: str | None, what: str) -> None:
    """Raise the querybus error for a broker's error code in an admin response."""
    if code == 0:
        return
    error = for_code(code)
    detail = f"{what}: {error.__name__}: {message or error.description}"
    if issubclass(error, _AUTHORIZATION):
        raise BrokerAuthorizationError(detail)
    if code == _SECURITY_DISABLED:
        raise TransportError(f"{detail} (the broker has no authorizer configured)")
    raise TransportError(detail)


#: SECURITY_DISABLED: the broker has no authorizer (aiokafka has no class for it).
_SECURITY_DISABLED = 54
#: UNKNOWN_TOPIC_OR_PARTITION
_UNKNOWN_TOPIC = 3


class KafkaTransport:
    """A :class:`~querybus.transport.base.Transport` on an Apache Kafka cluster.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        client_id: reported to the brokers (shows in their logs and quotas).
        max_message_bytes: largest record the producers send (``max_request_size``).
        fetch_max_wait: seconds the broker may hold an empty fetch open
            (see :data:`DEFAULT_FETCH_MAX_WAIT`).
        request_timeout: seconds before a connection attempt or a request is
            abandoned; also the deadline for topics to appear after creation.
        session_timeout: seconds without heartbeat before a group member is dropped.
        heartbeat_interval: seconds between heartbeats; a member learns of a
            rebalance at its next heartbeat, so this bounds rebalance latency.
        security: TLS and SASL for every connection (plaintext when None).

    Raises:
        ConfigurationError: a TLS file of ``security`` cannot be loaded.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "querybus",
        max_message_bytes: int = 1_000_000,
        fetch_max_wait: float = DEFAULT_FETCH_MAX_WAIT,
        request_timeout: float = 30.0,
        session_timeout: float = 10.0,
        heartbeat_interval: float = 1.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.options = _Options(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            max_message_bytes=max_message_bytes,
            fetch_max_wait=fetch_max_wait,
            request_timeout=request_timeout,
            session_timeout=session_timeout,
            heartbeat_interval=heartbeat_interval,
            security=security or KafkaSecurity(),
        )
        self._admin: AIOKafkaAdminClient | None = None
        self._metadata: AIOKafkaClient | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"KafkaTransport({self.options.bootstrap_servers!r})"

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaClient]:
        # Metadata is read with a plain client rather than the admin's
        # describe_topics: that one sends allow_auto_topic_creation=True, so
        # asking whether a topic exists would create it on brokers that allow it.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._admin is None or self._metadata is None:
                admin = AIOKafkaAdminClient(**self.options.common())
                metadata = AIOKafkaClient(**self.options.common())
                try:
                    what = f"connect to {self.options.bootstrap_servers}"
                    await _start(self.options, what, admin.start())
                    await _start(self.options, what, metadata.bootstrap())
                except BaseException:
                    await admin.close()
                    await metadata.close()
                    raise
                self._admin, self._metadata = admin, metadata
            return self._admin, self._metadata

    async def _cluster(self) -> Any:
        _, client = await self._clients()
        with _mapped("fetch metadata"):
            return await client.fetch_all_metadata()

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet and wait until all are usable.

        Raises:
            BrokerUnavailableError: no broker could be reached.
            TransportError: the broker refused a topic, or a topic did not get
                a leader for each partition within ``request_timeout``.
        """
        if not specs:
            return
        admin, _ = await self._clients()
        new = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=dict(spec.config),
            )
            for spec in specs
        ]
        with _mapped("create topics"):
            response = await admin.create_topics(new)
        not_ours: list[str] = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code == 0 or code == TopicAlreadyExistsError.errno:
                continue
            if code in (TopicAuthorizationFailedError.errno, ClusterAuthorizationFailedError.errno):
                # No CREATE permission: an operator creates the topics, and a
                # principal that may only use them must still start.
                not_ours.append(name)
                continue
            message = entry[2] if len(entry) > 2 else ""
            error = for_code(code)
            raise TransportError(f"cannot create topic {name!r}: {error.__name__}: {message}")
        for name in not_ours:
            # Needs DESCRIBE only. Kafka answers "not authorized" for a topic
            # that does not exist too, so the message names both.
            try:
                await self.partition_count(name)
            except TransportError as exc:
                raise BrokerAuthorizationError(
                    f"not allowed to create topic {name!r}, and it does not exist "
                    f"or may not be described by this principal: {exc}"
                ) from exc
        await self._wait_visible([spec for spec in specs if spec.name not in not_ours])

    async def _wait_visible(self, specs: Sequence[TopicSpec]) -> None:
        # CreateTopics returns when the controller has the topic; brokers learn
        # of it a little later. A producer or reader started in between would
        # find no leader, so wait until metadata shows a leader everywhere.
        deadline = time.monotonic() + self.options.request_timeout
        pending = {spec.name for spec in specs}
        while True:
            cluster = await self._cluster()
            for name in list(pending):
                parts = cluster.partitions_for_topic(name)
                if parts and all(
                    (cluster.leader_for_partition(KafkaTopicPartition(name, p)) or -1) >= 0
                    for p in parts
                ):
                    pending.discard(name)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise TransportError(f"topics not visible after creation: {sorted(pending)}")
            await asyncio.sleep(0.05)

    async def partition_count(self, topic: str) -> int:
        """Number of partitions of an existing topic.

        Raises:
            BrokerUnavailableError: no broker could be reached.
            TransportError: the topic does not exist.
        """
        _, client = await self._clients()
        # Metadata of this one topic only: fetch_all_metadata() lists every
        # topic of the cluster, which a health check must not pay for.
        cluster = ClusterMetadata(metadata_max_age_ms=300_000)
        with _mapped(f"fetch metadata of {topic!r}"):
            if not await client._metadata_update(cluster, [topic]):
                raise KafkaError("no broker answered the metadata request")
        if topic in cluster.unauthorized_topics:
            raise BrokerAuthorizationError(
                f"not allowed to describe topic {topic!r} (or it does not exist)"
            )
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            raise TransportError(f"unknown topic {topic!r}")
        return len(parts)

    async def list_topics(self, prefix: str = "") -> list[str]:
        """The names of the topics that start with ``prefix``, sorted.

        Kafka's internal topics are left out, and so are those this principal
        may not describe (the broker's metadata does not show them).

        Raises:
            BrokerUnavailableError: no broker could be reached.
            TransportError: any other failure.
        """
        cluster = await self._cluster()
        names: set[str] = cluster.topics(exclude_internal_topics=True)
        return sorted(name for name in names if name.startswith(prefix))

    async def latest_timestamp(self, topic: str, partition: int = 0) -> float | None:
        """The timestamp of the last record of ``partition`` (None when it has none).

        A consumer of its own, without a group (nothing is committed), reads
        that one record; the whole lookup is bounded by ``request_timeout``.

        Raises:
            BrokerAuthorizationError: this principal may not describe or read the topic.
            BrokerUnavailableError: no broker could be reached.
            TransportError: unknown topic or partition, or the record was not
                read within ``request_timeout``.
        """
        # Asked first: it is the metadata answer that tells "unknown topic"
        # and "not allowed" apart; a consumer would wait out its timeout on
        # a topic that does not exist.
        count = await self.partition_count(topic)
        if not 0 <= partition < count:
            raise TransportError(f"topic {topic!r} has no partition {partition}")
        options = self.options
        what = f"read the last record of {topic!r}[{partition}]"
        tp = KafkaTopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(**options.consumer(), auto_offset_reset="earliest")
        try:
            async with asyncio.timeout(options.request_timeout):
                await _start(options, what, consumer.start())
                with _mapped(what):
                    consumer.assign([tp])
                    first = (await consumer.beginning_offsets([tp]))[tp]
                    end = (await consumer.end_offsets([tp]))[tp]
                    if end <= first:
                        return None
                    consumer.seek(tp, end - 1)
                    while True:
                        # The fetcher skips the records of the batch below
                        # end - 1; more may have been appended since.
                        batches = await consumer.getmany(tp, timeout_ms=200)
                        records = batches.get(tp, [])
                        if records:
                            last = max(records, key=lambda msg: msg.offset)
                            timestamp: float = last.timestamp / 1000.0
                            return timestamp
        except TimeoutError:
            raise TransportError(
                f"{what}: no answer within {options.request_timeout:g} s"
            ) from None
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()

    async def delete_topics(self, names: Sequence[str]) -> None:
        """Delete topics (an unknown one is not an error).

        Raises:
            BrokerAuthorizationError: this principal may not delete one of them.
            TransportError: the broker refused for another reason.
        """
        if not names:
            return
        admin, _ = await self._clients()
        with _mapped("delete topics"):
            response = await admin.delete_topics(list(names))
        for name, code, *_ in response.topic_error_codes:
            if code in (0, _UNKNOWN_TOPIC):
                continue
            _raise_for(code, None, f"delete topic {name!r}")

    # -- ACLs (the admin API) ----------------------------------------------

    async def _admin_request(self, request: Request[Any], what: str) -> Any:
        # Any broker takes ACL requests (KRaft forwards them to the controller).
        admin, client = await self._clients()
        with _mapped(what):
            node = client.get_random_node()
            if node is None:
                raise KafkaConnectionError("no broker known")
            return await admin._send_request_to_node(node, request)

    async def create_acls(self, acls: Sequence[Acl]) -> None:
        """Create ACL bindings (creating one that exists already is not an error).

        Raises:
            BrokerAuthorizationError: this principal may not change ACLs
                (ALTER on the cluster; super users may).
            BrokerUnavailableError: no broker could be reached.
            TransportError: the broker refused an ACL (the first error is raised,
                naming it), or has no authorizer.
        """
        if not acls:
            return
        creations = [
            (
                acl.resource_type.code,
                acl.resource_name,
                acl.pattern.code,
                acl.principal,
                acl.host,
                acl.operation.code,
                acl.permission.code,
            )
            for acl in acls
        ]
        response = await self._admin_request(_CreateAcls(creations), "create ACLs")
        for acl, (code, message) in zip(acls, response.creation_responses, strict=True):
            _raise_for(code, message, f"create ACL {acl}")

    async def describe_acls(self, match: AclFilter | None = None) -> list[Acl]:
        """The ACL bindings that match (all of them by default).

        Raises:
            BrokerAuthorizationError: this principal may not list ACLs (DESCRIBE
                on the cluster).
            TransportError: the broker has no authorizer, or another failure.
        """
        f = match or AclFilter()
        request = _DescribeAcls(
            (
                f.resource_type.code,
                f.resource_name,
                f.pattern.code,
                f.principal,
                f.host,
                f.operation.code,
                f.permission.code,
            )
        )
        response = await self._admin_request(request, "describe ACLs")
        _raise_for(response.error_code, response.error_message, "describe ACLs")
        found = []
        for resource_type, resource_name, pattern, entries in response.resources:
            for principal, host, operation, permission in entries:
                found.append(
                    _acl(
                        resource_type,
                        resource_name,
                        pattern,
                        principal,
                        host,
                        operation,
                        permission,
                    )
                )
        return sorted(found)

    async def delete_acls(self, filters: Sequence[AclFilter | Acl]) -> list[Acl]:
        """Delete the ACL bindings each filter matches (an :class:`Acl` matches
        exactly itself); returns those deleted.

        Raises:
            BrokerAuthorizationError: this principal may not change ACLs.
            TransportError: the broker refused a filter, or has no authorizer.
        """
        if not filters:
            return []
        exact = [AclFilter.exactly(f) if isinstance(f, Acl) else f for f in filters]
        wire = [
            (
                f.resource_type.code,
                f.resource_name,
                f.pattern.code,
                f.principal,
                f.host,
                f.operation.code,
                f.permission.code,
            )
            for f in exact
        ]
        response = await self._admin_request(_DeleteAcls(wire), "delete ACLs")
        deleted = []
        for f, (code, message, matching) in zip(exact, response.filter_responses, strict=True):
            _raise_for(code, message, f"delete ACLs matching {f}")
            for entry in matching:
                (acl_code, acl_message, rtype, rname, pattern, principal, host, op, perm) = entry
                _raise_for(acl_code, acl_message, f"delete ACL on {rname!r} for {principal}")
                deleted.append(_acl(rtype, rname, pattern, principal, host, op, perm))
        return sorted(deleted)

    def producer(self) -> _KafkaProducer:
        return _KafkaProducer(self.options)

    def partition_reader(
        self,
        topic: str,
        partitions: Sequence[int] | None = None,
        *,
        start_at: Literal["end", "beginning"] = "end",
    ) -> _KafkaPartitionReader:
        return _KafkaPartitionReader(self, topic, partitions, start_at)

    def group_consumer(
        self,
        topics: Sequence[str],
        group_id: str,
        *,
        on_revoke: RevokeCallback | None = None,
        max_poll_interval: float = 300.0,
        start_lookback: float | None = None,
    ) -> _KafkaGroupConsumer:
        """A member of ``group_id``, not started (see :meth:`Transport.group_consumer`).

        Raises:
            ConfigurationError: ``start_lookback`` is negative.
        """
        return _KafkaGroupConsumer(
            self.options, topics, group_id, on_revoke, max_poll_interval, start_lookback
        )

    async def close(self) -> None:
        """Close the admin and metadata connections; harmless when called twice.

        Raises:
            TransportError: closing failed.
        """
        admin, metadata = self._admin, self._metadata
        self._admin = self._metadata = None
        with _mapped("close transport"):
            if admin is not None:
                await admin.close()
            if metadata is not None:
                await metadata.close()
