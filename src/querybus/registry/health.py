"""Health checks: what a registered service reports about itself.

A check answers :class:`CheckResult`; a service's status is the worst of its
checks (:func:`run_checks`). A check that raises or overruns its timeout
counts as critical: a check that cannot tell is not evidence of health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from querybus.cancellation import wait_for
from querybus.registry.models import CheckResult, HealthStatus

if TYPE_CHECKING:
    from querybus.transport.base import Transport

__all__ = [
    "DatabaseCheck",
    "HealthCheck",
    "KafkaCheck",
    "ManualCheck",
    "ReplicaLagCheck",
    "run_checks",
]


@runtime_checkable
class HealthCheck(Protocol):
    """One aspect of a service's health.

    Attributes:
        name: short identifier, shown in notes (``kafka``, ``database``, …).
    """

    name: str

    async def check(self) -> CheckResult:
        """Examine and report. May raise: the caller treats that as critical."""
        ...


class KafkaCheck:
    """Passing when the bus answers a metadata request for ``topic`` in time.

    Args:
        transport: the service's transport (the check does not own it).
        topic: a topic the service needs, e.g. its request topic.
        timeout: seconds the bus has to answer.
        name: the check's name.
    """

    def __init__(
        self, transport: Transport, topic: str, *, timeout: float = 2.0, name: str = "kafka"
    ) -> None:
        self.name = name
        self._transport = transport
        self._topic = topic
        self._timeout = timeout

    async def check(self) -> CheckResult:
        """Ask the bus for the partition count of the topic.

        Raises:
            TimeoutError: the bus did not answer in time (critical for the caller).
            TransportError: the bus refused or is unreachable (critical for the caller).
        """
        count = await wait_for(self._transport.partition_count(self._topic), self._timeout)
        return CheckResult(HealthStatus.PASSING, f"{self._topic}: {count} partitions")


class DatabaseCheck:
    """Passing when the database answers ``SELECT 1`` within ``timeout``.

    Args:
        ping: e.g. an executor's ``ping``: takes a timeout in seconds and
            raises unless the database answered in time.
        timeout: seconds given to ``ping``.
        name: the check's name.
    """

    def __init__(
        self,
        ping: Callable[[float], Awaitable[None]],
        *,
        timeout: float = 2.0,
        name: str = "database",
    ) -> None:
        self.name = name
        self._ping = ping
        self._timeout = timeout

    async def check(self) -> CheckResult:
        """Ping the database.

        Raises:
            TimeoutError: no answer in time (critical for the caller).
            QueryBusError: the database is unreachable (critical for the caller).
        """
        # The outer wait_for guards against a ping that ignores its timeout.
        await wait_for(self._ping(self._timeout), self._timeout + 0.5)
        return CheckResult(HealthStatus.PASSING, "SELECT 1 ok")


class ReplicaLagCheck:
    """Warning or critical when a replica lags behind its primary.

    Args:
        lag_seconds: returns the current replication lag in seconds.
        warn: lag (seconds) from which the replica is ``warning``.
        critical: lag (seconds) from which it is ``critical``.
        timeout: seconds ``lag_seconds`` has to answer.
        name: the check's name.

    Raises:
        ValueError: ``warn`` is greater than ``critical``.
    """

    def __init__(
        self,
        lag_seconds: Callable[[], Awaitable[float]],
        *,
        warn: float = 5.0,
        critical: float = 30.0,
        timeout: float = 2.0,
        name: str = "replica-lag",
    ) -> None:
        if warn > critical:
            raise ValueError(f"warn ({warn}) must not exceed critical ({critical})")
        self.name = name
        self._lag_seconds = lag_seconds
        self._warn = warn
        self._critical = critical
        self._timeout = timeout

    async def check(self) -> CheckResult:
        """Measure the lag and compare it with the thresholds.

        Raises:
            TimeoutError: the lag could not be measured in time (critical for the caller).
        """
        lag = await wait_for(self._lag_seconds(), self._timeout)
        note = f"lag {lag:.3f}s"
        if lag >= self._critical:
            return CheckResult(HealthStatus.CRITICAL, note)
        if lag >= self._warn:
            return CheckResult(HealthStatus.WARNING, note)
        return CheckResult(HealthStatus.PASSING, note)


class ManualCheck:
    """A check whose result is set by the program (maintenance mode, tests).

    Args:
        name: the check's name.
        status: initial status.
        note: initial note.
    """

    def __init__(
        self, name: str = "manual", status: HealthStatus = HealthStatus.PASSING, note: str = ""
    ) -> None:
        self.name = name
        self.result = CheckResult(status, note)

    def set(self, status: HealthStatus, note: str = "") -> None:
        """Report ``status`` from the next heartbeat on."""
        self.result = CheckResult(status, note)

    async def check(self) -> CheckResult:
        """The last result set."""
        return self.result


async def _run_one(check: HealthCheck, seconds: float) -> CheckResult:
    try:
        return await wait_for(check.check(), seconds)
    except TimeoutError:
        return CheckResult(HealthStatus.CRITICAL, f"timed out after {seconds:g}s")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any failure of a check means "not healthy", never a crash
        return CheckResult(HealthStatus.CRITICAL, f"{type(exc).__name__}: {exc}")


async def run_checks(
    checks: Sequence[HealthCheck], *, check_timeout: float = 5.0
) -> tuple[HealthStatus, str]:
    """Run ``checks`` concurrently and combine them.

    Args:
        checks: the checks to run.
        check_timeout: seconds each check has before it counts as critical.

    Returns:
        The worst status and a note naming the checks that are not passing
        (``"database: timed out after 2s"``), empty when all pass.
    """
    if not checks:
        return HealthStatus.PASSING, ""
    results = await asyncio.gather(*(_run_one(c, check_timeout) for c in checks))
    status = HealthStatus.worst(r.status for r in results)
    note = "; ".join(
        f"{c.name}: {r.note or r.status.value}"
        for c, r in zip(checks, results, strict=True)
        if r.status is not HealthStatus.PASSING
    )
    return status, note
