"""Parameter values out of error replies.

PostgreSQL's messages quote the values they choke on
(``invalid input syntax for type integer: "…"``,
``Key (email)=(…) already exists``). An error reply travels on a shared
response topic unless the caller has a reply topic of its own, and every
error is copied to the error topic that operators read: so, by default, the
text of every parameter value is replaced with ``***`` in the message,
detail and hint of an error reply. ``QUERYBUS_LOG_PARAMETERS=1`` (debugging)
keeps them, as it does in the logs.

Matching is by the value's text: a value of three characters or more is
replaced wherever it occurs; a shorter one only where PostgreSQL quotes a
value (``"v"``, ``(v)``, ``'v'``), so that a parameter ``1`` does not turn
every digit of a message into stars.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from querybus.protocol.messages import ErrorInfo

__all__ = ["MASK", "redact"]

MASK = "***"
_ANYWHERE = 3  # shorter values are replaced only where quoted
_QUOTES = (('"', '"'), ("(", ")"), ("'", "'"))


def _texts(value: Any) -> Iterator[str]:
    """The text of every scalar inside a wire-form value (tagged values,
    arrays and JSON documents included; the policy bounds their depth)."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str | int | float):
        yield str(value)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not (isinstance(key, str) and key.startswith("$")):
                yield str(key)  # a JSON document's keys can be data too
            yield from _texts(item)


def redact(info: ErrorInfo, params: list[Any]) -> ErrorInfo:
    """``info`` with the text of every value in ``params`` (wire form) masked."""
    texts = sorted({t for t in _texts(params) if t}, key=len, reverse=True)
    if not texts:
        return info

    def clean(text: str | None) -> str | None:
        if not text:
            return text
        for value in texts:
            if value not in text:
                continue
            if len(value) >= _ANYWHERE:
                text = text.replace(value, MASK)
            else:
                for left, right in _QUOTES:
                    text = text.replace(f"{left}{value}{right}", f"{left}{MASK}{right}")
        return text

    info.message = clean(info.message) or ""
    info.detail = clean(info.detail)
    info.hint = clean(info.hint)
    return info
