"""Secrets and parameter values stay out of the logs by default (even at DEBUG)."""

from __future__ import annotations

import logging

import pytest
from tests.integration.conftest import Bus
from tests.stack import Stack

from querybus.errors import DataError


async def test_parameter_values_and_password_are_not_logged(
    bus: Bus, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await bus.adapter()
    client = await bus.client()
    secret = "s3cret-parameter-value"
    # PostgreSQL quotes the bad value in its message; the error reply (which
    # is also copied to the shared error topic) masks it…
    with pytest.raises(DataError) as failure:
        await client.fetchval("SELECT $1::text::int", secret)
    assert secret not in failure.value.message
    assert 'integer: "***"' in failure.value.message
    assert await client.fetchval("SELECT $1::text", secret) == secret
    # …but querybus's logs never show it, nor the database password.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("querybus"))
    assert "22P02" in logged  # the failure itself is logged, by SQLSTATE
    assert secret not in logged
    assert stack.pg.password
    assert stack.pg.password not in logged


def test_service_logging_keeps_payload_logging_libraries_quiet() -> None:
    """aiokafka logs whole records at DEBUG (parameters included) and httpx every
    registry call: `querybus … --log-level DEBUG` keeps them at WARNING."""
    from querybus.cli.common import configure_logging

    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        configure_logging("DEBUG")
        assert logging.getLogger("querybus").getEffectiveLevel() == logging.DEBUG
        for name in ("aiokafka", "httpx"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name in ("aiokafka", "httpx"):
            logging.getLogger(name).setLevel(logging.NOTSET)
