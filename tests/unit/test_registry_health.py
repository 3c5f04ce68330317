"""Health checks and how a service's status is combined from them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from querybus.errors import OperationalError
from querybus.registry import (
    CheckResult,
    DatabaseCheck,
    HealthCheck,
    HealthStatus,
    KafkaCheck,
    ManualCheck,
    ReplicaLagCheck,
    run_checks,
)
from querybus.transport import TopicSpec, connect

P, W, C = HealthStatus.PASSING, HealthStatus.WARNING, HealthStatus.CRITICAL


def test_worst_status() -> None:
    assert HealthStatus.worst([]) is P
    assert HealthStatus.worst([P, W, P]) is W
    assert HealthStatus.worst([W, C, P]) is C
    assert HealthStatus("warning") is W  # wire values are Consul's names


class Raising:
    name = "boom"

    async def check(self) -> CheckResult:
        raise RuntimeError("exploded")


class Hanging:
    name = "slow"

    async def check(self) -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_no_checks_is_passing() -> None:
    assert await run_checks([]) == (P, "")


async def test_status_is_the_worst_and_notes_name_the_failing_checks() -> None:
    checks: list[HealthCheck] = [ManualCheck("a"), ManualCheck("b", W, "lagging")]
    assert await run_checks(checks) == (W, "b: lagging")


async def test_raising_or_hanging_check_is_critical() -> None:
    status, note = await run_checks([ManualCheck("ok"), Raising(), Hanging()], check_timeout=0.05)
    assert status is C
    assert "boom: RuntimeError: exploded" in note
    assert "slow: timed out after 0.05s" in note
    assert "ok" not in note


async def test_kafka_check_on_the_memory_bus() -> None:
    transport = connect(f"memory://health-{uuid.uuid4().hex[:8]}")
    try:
        await transport.create_topics([TopicSpec("requests", partitions=3)])
        result = await KafkaCheck(transport, "requests").check()
        assert result == CheckResult(P, "requests: 3 partitions")
        status, note = await run_checks([KafkaCheck(transport, "missing")])
        assert status is C
        assert note.startswith("kafka: ")
    finally:
        await transport.close()


async def test_database_check() -> None:
    seen: list[float] = []

    async def ok(timeout: float) -> None:
        seen.append(timeout)

    async def down(timeout: float) -> None:
        raise OperationalError("connection refused")

    assert (await DatabaseCheck(ok, timeout=1.5).check()).status is P
    assert seen == [1.5]
    status, note = await run_checks([DatabaseCheck(down)])
    assert status is C
    assert "connection refused" in note


@pytest.mark.parametrize(("lag", "expected"), [(0.0, P), (5.0, W), (29.9, W), (30.0, C)])
async def test_replica_lag_thresholds(lag: float, expected: HealthStatus) -> None:
    async def measure() -> float:
        return lag

    result = await ReplicaLagCheck(measure, warn=5.0, critical=30.0).check()
    assert result.status is expected
    assert result.note == f"lag {lag:.3f}s"


def test_replica_lag_rejects_inverted_thresholds() -> None:
    async def measure() -> float:
        return 0.0

    with pytest.raises(ValueError, match="must not exceed"):
        ReplicaLagCheck(measure, warn=10, critical=1)
