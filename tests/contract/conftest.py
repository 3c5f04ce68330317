"""Fixtures of the transport contract suite: one started transport of each kind.

The Kafka variant talks to the real broker: ``KAFKA_BOOTSTRAP_SERVERS`` when it
is set, otherwise the shared ``stack`` fixture (which starts the local
services). It fails, never skips, when the broker cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from querybus.transport import Transport, connect


def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    bootstrap: str = request.getfixturevalue("stack").kafka_bootstrap
    return bootstrap


@pytest.fixture(params=["memory", "kafka"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """A transport of each kind; the test creates the topics it needs."""
    if request.param == "memory":
        bus = connect(f"memory://contract-{uuid.uuid4().hex[:8]}")
    else:
        bus = connect(
            kafka_bootstrap(request),
            client_id="querybus-contract",
            request_timeout=15.0,
            # Members learn of a rebalance at their next heartbeat: keep the
            # group tests quick. 6 s is the broker's minimum session timeout.
            heartbeat_interval=0.2,
            session_timeout=6.0,
        )
    try:
        yield bus
    finally:
        await bus.close()
