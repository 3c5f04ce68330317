"""ServiceRegistry, Registration and RegistryClient on the memory backend."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncGenerator
from typing import TypeVar

import pytest
from tests.helpers import eventually, wait_for

from querybus.errors import ConfigurationError, RegistryUnavailableError, ServiceNotFoundError
from querybus.registry import (
    ChangeKind,
    CheckResult,
    HealthStatus,
    ManualCheck,
    Registration,
    RegistrationState,
    RegistryClient,
    ServiceInstance,
    ServiceRegistry,
    new_instance_id,
)
from querybus.registry.backends.memory import MemoryBackend

T = TypeVar("T")


class Down(MemoryBackend):
    """A memory backend that can be switched off."""

    down = False

    async def register(self, instance: ServiceInstance) -> None:
        if self.down:
            raise RegistryUnavailableError("down")
        await super().register(instance)

    async def heartbeat(self, instance: ServiceInstance) -> None:
        if self.down:
            raise RegistryUnavailableError("down")
        await super().heartbeat(instance)


def hub() -> str:
    return f"unit-{uuid.uuid4().hex[:8]}"


def test_instance_ids_are_unique_and_name_the_process() -> None:
    a, b = new_instance_id("svc"), new_instance_id("svc")
    assert a != b
    assert a.startswith("svc-")


@pytest.mark.parametrize(("ttl", "interval"), [(0, None), (1.0, 1.0), (1.0, 0.0), (1.0, 2.0)])
async def test_bad_timing_is_refused(ttl: float, interval: float | None) -> None:
    with pytest.raises(ConfigurationError):
        await ServiceRegistry(MemoryBackend(hub())).register(
            "s", "t", "e", ttl=ttl, heartbeat_interval=interval
        )


async def test_registration_time_is_printed() -> None:
    registry = ServiceRegistry(MemoryBackend(hub()))
    started = time.perf_counter()
    registration = await registry.register("s", "effect", "e", health_checks=[ManualCheck()])
    print(f"\n[memory] registration took {(time.perf_counter() - started) * 1000:.3f} ms")
    assert registration.state is RegistrationState.REGISTERED
    await registry.close()
    assert registration.state is RegistrationState.CLOSED


async def test_unreachable_at_start_raises_unless_told_not_to_wait() -> None:
    backend = Down(hub())
    backend.down = True
    registry = ServiceRegistry(backend)
    with pytest.raises(RegistryUnavailableError):
        await registry.register("s", "t", "e", ttl=1.0)
    registration = await registry.register("s", "t", "e", ttl=1.0, wait=False)
    assert registration.state is RegistrationState.DISCONNECTED
    backend.down = False
    await wait_for(
        lambda: registration.state is RegistrationState.REGISTERED, 2.0, message="registered"
    )
    assert await backend.instances("s")
    await registry.close()
    assert not await backend.instances("s")


async def test_expired_during_outage_is_registered_again(caplog: pytest.LogCaptureFixture) -> None:
    backend = Down(hub())
    registry = ServiceRegistry(backend)
    registration = await registry.register("s", "t", "e", ttl=0.3, heartbeat_interval=0.05)
    backend.down = True
    await eventually(backend.instances, lambda v: not v, within=2.0)
    assert registration.state is RegistrationState.DISCONNECTED
    backend.down = False
    (back,) = await eventually(backend.instances, bool, within=2.0)
    assert back.instance_id == registration.instance_id
    assert back.registered_at == registration.instance.registered_at
    # One warning for the outage, one when it ends: not one per heartbeat.
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    await registry.close()


async def test_discover_and_endpoints() -> None:
    backend = MemoryBackend(hub())
    client = RegistryClient(backend)
    with pytest.raises(ServiceNotFoundError, match="no passing instance of service 'db'"):
        await client.discover("db")
    async with ServiceRegistry(backend) as registry:
        await registry.register("db", "effect", "topic-a")
        await registry.register("db", "effect", "topic-a")
        await registry.register(
            "db", "effect", "topic-b", health_checks=[ManualCheck(status=HealthStatus.WARNING)]
        )
        assert await client.endpoints("db") == ["topic-a"]
        assert await client.endpoints("db", status={HealthStatus.WARNING}) == ["topic-b"]


class Watched(MemoryBackend):
    """A memory backend that records every snapshot it hands to a watch."""

    def __init__(self, hub: str) -> None:
        super().__init__(hub)
        self.delivered: list[list[ServiceInstance]] = []

    async def snapshots(
        self, name: str | None = None
    ) -> AsyncGenerator[list[ServiceInstance], None]:
        async with contextlib.aclosing(super().snapshots(name)) as inner:
            async for snapshot in inner:
                # The watch handles the snapshot in the same step of its task: by the
                # time anyone else sees it here, the watch has decided what to yield.
                self.delivered.append(snapshot)
                yield snapshot

    def handed_over(self, registration: Registration, before: ServiceInstance) -> bool:
        """Whether ``registration`` heartbeat since it was ``before``, and a watch was
        handed a snapshot with that heartbeat in it."""
        now = registration.instance
        return now is not before and any(i is now for snap in self.delivered for i in snap)


async def test_watch_without_initial_listing_and_no_update_for_bare_heartbeats() -> None:
    backend = Watched(hub())
    registry = ServiceRegistry(backend)
    # An interval longer than the test: every heartbeat below is one the test asks for.
    existing = await registry.register("s", "t", "e", ttl=60.0, heartbeat_interval=30.0)
    events = RegistryClient(backend).watch("s", initial=False)
    try:
        waiter = asyncio.ensure_future(anext(events))
        await wait_for(lambda: backend.delivered, 2.0, message="the watch's baseline")
        for beat in range(1, 4):
            before = existing.instance
            existing.beat_now()
            # The watch was handed the snapshot with this heartbeat in it and let it pass.
            await wait_for(
                functools.partial(backend.handed_over, existing, before),
                2.0,
                message=f"bare heartbeat {beat} reaching the watch",
            )
            assert existing.instance.same_state(before)  # a bare heartbeat: only the time moved
            assert not waiter.done()
        newcomer = await registry.register("s", "t", "e2", ttl=5.0)
        event = await asyncio.wait_for(waiter, 2.0)
        assert (event.kind, event.instance.instance_id) == (ChangeKind.ADDED, newcomer.instance_id)
        assert existing.instance_id != newcomer.instance_id
    finally:
        await events.aclose()
        await registry.close()


async def test_initial_status_skips_the_checks_then_measures_at_once() -> None:
    class Slow:
        """A check that does not finish until the test lets it."""

        name = "slow"

        def __init__(self) -> None:
            self.started = asyncio.Event()
            self.release = asyncio.Event()

        async def check(self) -> CheckResult:
            self.started.set()
            await self.release.wait()
            return CheckResult(HealthStatus.WARNING, "measured")

    slow = Slow()
    backend = MemoryBackend(hub())
    async with ServiceRegistry(backend) as registry:
        # Registering must not wait for the check, which cannot finish before the
        # release below: a registration that waited would hang for the check's 60 s.
        # The bound only turns that hang into a failure (registering takes milliseconds).
        async with asyncio.timeout(10.0):
            registration = await registry.register(
                "s",
                "t",
                "e",
                health_checks=[slow],
                initial_status=HealthStatus.PASSING,
                ttl=60.0,
                check_timeout=60.0,
            )
        assert registration.status is HealthStatus.PASSING
        (registered,) = await backend.instances("s")
        assert registered.status is HealthStatus.PASSING
        # The checks run right after, not one heartbeat interval (20 s) later.
        await asyncio.wait_for(slow.started.wait(), 2.0)
        slow.release.set()
        (found,) = await eventually(
            backend.instances, lambda v: v[0].status is HealthStatus.WARNING, within=2.0
        )
        assert found.note == "slow: measured"
