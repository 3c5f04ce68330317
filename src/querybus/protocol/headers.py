"""Kafka headers of requests and replies (names in :class:`~querybus.protocol.messages.Headers`).

The correlation id, reply address and client id travel as headers too, so a
reader can route, answer or skip a record without decoding its body: the
client skips replies meant for another client sharing its partition, and the
adapter can answer a request whose body does not decode.
"""

from __future__ import annotations

from collections.abc import Sequence

from querybus.protocol.messages import Headers, ReplyAddress

__all__ = ["header", "reply_address", "reply_headers"]

HeaderList = list[tuple[str, bytes]]


def header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    """The first header called ``name``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def reply_headers(correlation_id: str, client: str | None) -> HeaderList:
    """The headers of a reply to ``client``'s request ``correlation_id``."""
    headers = [(Headers.CORRELATION_ID, correlation_id.encode())]
    if client:
        headers.append((Headers.CLIENT_ID, client.encode()))
    return headers


def reply_address(headers: Sequence[tuple[str, bytes]]) -> ReplyAddress | None:
    """The reply address a request's headers name, or None (absent or malformed)."""
    topic = header(headers, Headers.REPLY_TOPIC)
    partition = header(headers, Headers.REPLY_PARTITION)
    if topic is None or partition is None:
        return None
    try:
        return ReplyAddress(topic.decode(), int(partition))
    except (UnicodeDecodeError, ValueError):
        return None
