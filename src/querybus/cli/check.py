"""``querybus check``: is an adapter serving this bus? Answer quickly, and say
what to do when none is.

With a service registry configured (``QUERYBUS_REGISTRY`` other than
``memory``) the registry is asked first, so "no adapter is registered" is
known, and said, at once. Without one nothing but a query can tell, so the
wait is short (``--timeout``, default :data:`DEFAULT_TIMEOUT` seconds) and
its end says plainly that no adapter answered. The whole check, registry
wait included, never takes longer than the timeout plus connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from querybus.config import BusSettings
from querybus.errors import (
    QueryError,
    RegistryError,
    RequestTimeoutError,
    ServiceNotFoundError,
)
from querybus.registry import (
    HealthStatus,
    RegistryClient,
    RegistrySettings,
    ServiceInstance,
    registry_from_settings,
)

__all__ = [
    "ADAPTER_SERVICE",
    "DEFAULT_TIMEOUT",
    "START_HINT",
    "NoAdapterError",
    "run_check",
]

#: Seconds ``querybus check`` waits by default, registry wait and reply together.
DEFAULT_TIMEOUT = 5.0

#: The name adapters register under (``querybus.cli.serve.SERVICE_NAME``;
#: not imported from there: a caller-only install has no adapter modules).
ADAPTER_SERVICE = "database-adapter"

START_HINT = "start one with `querybus serve` (or `make run` in a querybus checkout)"

_POLL = 0.2


class NoAdapterError(ServiceNotFoundError):
    """No adapter is registered, none is passing, or none answered in time.

    Attributes:
        reason: ``not_registered``, ``not_serving`` or ``no_answer``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _describe(instances: list[ServiceInstance]) -> str:
    return ", ".join(
        f"{i.instance_id} ({i.status.value}{': ' + i.note if i.note else ''})" for i in instances
    )


@contextlib.asynccontextmanager
async def _open_registry(
    deadline: float, notify: Callable[[str], None]
) -> AsyncIterator[tuple[RegistryClient | None, str | None]]:
    """The configured registry (client, kind), or (None, None) when there is
    none usable: not configured, ``memory`` (it only sees this process), or
    unreachable (said once through ``notify``)."""
    kind = (os.environ.get("QUERYBUS_REGISTRY") or "").strip().lower()
    if not kind or kind == "memory":
        yield None, None
        return
    backend = registry_from_settings(RegistrySettings.from_env())
    failure: BaseException | None = None
    try:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            await backend.start()
    except (RegistryError, TimeoutError) as exc:
        failure = exc
    if failure is not None:
        with contextlib.suppress(Exception):
            await backend.stop()
        notify(f"the {kind} registry is unreachable ({failure or 'timed out'}); asking the bus")
        yield None, None
        return
    try:
        yield RegistryClient(backend), kind
    finally:
        await backend.stop()


async def _wait_for_registered_adapter(
    registry: RegistryClient, kind: str, deadline: float, notify: Callable[[str], None]
) -> list[ServiceInstance]:
    """The passing adapters in the registry. When there are none, say so at
    once, then keep looking until ``deadline`` (an adapter just started may
    register meanwhile).

    Raises:
        NoAdapterError: none was passing by ``deadline``.
        RegistryError: the registry failed.
    """
    said = False
    while True:
        found = await registry.instances(ADAPTER_SERVICE)
        passing = [i for i in found if i.status is HealthStatus.PASSING]
        if passing:
            return passing
        if found:
            reason = "not_serving"
            message = (
                f"{len(found)} adapter(s) registered in the {kind} registry, none passing: "
                f"{_describe(found)}"
            )
        else:
            prefix = os.environ.get("QUERYBUS_TOPIC_PREFIX", "")
            where = f" under topic prefix {prefix!r}" if prefix else ""
            reason = "not_registered"
            message = (
                f"no adapter is registered in the {kind} registry{where} "
                f"(service {ADAPTER_SERVICE!r})"
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAdapterError(f"{message}; {START_HINT}", reason=reason)
        if not said:
            notify(f"{message}; {START_HINT}. Waiting up to {left:.0f} s for one to register…")
            said = True
        await asyncio.sleep(min(_POLL, left))


async def run_check(
    bus: BusSettings,
    *,
    timeout: float,
    notify: Callable[[str], None],
    token: str | None = None,
) -> dict[str, Any]:
    """Send ``SELECT 1`` through the bus and return a report of the answer.

    Args:
        bus: where to send it.
        timeout: seconds for the whole check (registry wait and reply).
        notify: receives progress notes meant for a person (not for --json).
        token: the caller's token, for adapters that check identities.

    Raises:
        NoAdapterError: no adapter is registered, passing, or answering.
        QueryBusError: the bus, the registry or the answer failed otherwise.
    """
    from querybus.client import QueryClient

    deadline = time.monotonic() + timeout
    async with _open_registry(deadline, notify) as (registry, kind):
        passing: list[ServiceInstance] = []
        if registry is not None and kind is not None:
            passing = await _wait_for_registered_adapter(registry, kind, deadline, notify)
        left = max(0.1, deadline - time.monotonic())
        async with QueryClient(bus, timeout=left, registry=registry, token=token) as client:
            topic = client.request_topic
            if registry is None:
                notify(
                    "no service registry configured (QUERYBUS_REGISTRY), so a query must tell: "
                    f"waiting up to {left:.0f} s for an adapter on {topic}…"
                )
            started = time.perf_counter()
            try:
                result = await client.query(
                    "SELECT 1 AS ok, now() AS server_time",
                    operation_type="SELECT",
                    timeout=max(0.1, deadline - time.monotonic()),
                )
            except RequestTimeoutError:
                listed = (
                    f"; the {kind} registry lists {_describe(passing)}, but none answered"
                    if passing
                    else ""
                )
                raise NoAdapterError(
                    f"no adapter answered on {topic} within {timeout:g} s{listed}; "
                    f"{START_HINT}, or allow more time with --timeout",
                    reason="no_answer",
                ) from None
            elapsed = time.perf_counter() - started
    if len(result.rows) != 1 or result.rows[0]["ok"] != 1:
        raise QueryError(f"unexpected answer: {result.rows!r}")
    return {
        "ok": True,
        "response_ms": round(elapsed * 1000, 2),
        "correlation_id": result.correlation_id,
        "served_by": result.served_by,
        "target": result.route.target if result.route else None,
        "request_topic": topic,
        "registry": kind,
    }
