"""The adapter's limits from the environment: malformed values are refused at start."""

from __future__ import annotations

import pytest

from querybus.config import AdapterSettings
from querybus.errors import ConfigurationError


def test_defaults_and_values() -> None:
    d = AdapterSettings.from_env({})
    assert (d.max_request_bytes, d.max_deadline, d.allow_superuser) == (1_000_000, 300.0, False)
    s = AdapterSettings.from_env(
        {
            "QUERYBUS_MAX_REQUEST_BYTES": "2048",
            "QUERYBUS_MAX_DEADLINE": "1.5",
            "QUERYBUS_ALLOW_SUPERUSER": "TRUE",
        }
    )
    assert (s.max_request_bytes, s.max_deadline, s.allow_superuser) == (2048, 1.5, True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUERYBUS_MAX_REQUEST_BYTES", "many"),
        ("QUERYBUS_MAX_REQUEST_BYTES", "1.5"),
        ("QUERYBUS_MAX_REQUEST_BYTES", "0"),
        ("QUERYBUS_MAX_REQUEST_BYTES", "-1"),
        ("QUERYBUS_MAX_DEADLINE", "0"),
        ("QUERYBUS_MAX_DEADLINE", "-5"),
        ("QUERYBUS_MAX_DEADLINE", "nan"),
        ("QUERYBUS_MAX_DEADLINE", "soon"),
    ],
)
def test_malformed_limits_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        AdapterSettings.from_env({name: value})


@pytest.mark.parametrize("value", ["", "0", "no", "false", "yes please"])
def test_only_explicit_yes_allows_a_superuser(value: str) -> None:
    assert AdapterSettings.from_env({"QUERYBUS_ALLOW_SUPERUSER": value}).allow_superuser is False


def test_inbox_settings_defaults_and_values() -> None:
    d = AdapterSettings.from_env({})
    assert (d.inbox_heartbeat, d.inbox_sweep_interval, d.inbox_retire_after) == (60, 300, 900)
    s = AdapterSettings.from_env(
        {
            "QUERYBUS_INBOX_HEARTBEAT": "10",
            "QUERYBUS_INBOX_SWEEP_INTERVAL": "0",  # off
            "QUERYBUS_INBOX_RETIRE_AFTER": "3600",
        }
    )
    assert (s.inbox_heartbeat, s.inbox_sweep_interval, s.inbox_retire_after) == (10, 0, 3600)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUERYBUS_INBOX_HEARTBEAT", "0"),
        ("QUERYBUS_INBOX_HEARTBEAT", "-1"),
        ("QUERYBUS_INBOX_HEARTBEAT", "often"),
        ("QUERYBUS_INBOX_SWEEP_INTERVAL", "-1"),
        ("QUERYBUS_INBOX_SWEEP_INTERVAL", "nan"),
        ("QUERYBUS_INBOX_RETIRE_AFTER", "0"),
        ("QUERYBUS_INBOX_RETIRE_AFTER", "later"),
    ],
)
def test_malformed_inbox_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        AdapterSettings.from_env({name: value})


@pytest.mark.parametrize(
    "env",
    [
        # A late heartbeat must not retire a live adapter's inbox.
        {"QUERYBUS_INBOX_RETIRE_AFTER": "120"},
        {"QUERYBUS_INBOX_HEARTBEAT": "450", "QUERYBUS_INBOX_RETIRE_AFTER": "900"},
        # A caller may hold a transaction of a gone adapter that long.
        {"QUERYBUS_INBOX_RETIRE_AFTER": "299"},
        {"QUERYBUS_TX_MAX_LIFETIME": "901", "QUERYBUS_INBOX_RETIRE_AFTER": "900"},
    ],
)
def test_a_retire_age_that_could_delete_a_used_inbox_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="QUERYBUS_INBOX_RETIRE_AFTER"):
        AdapterSettings.from_env(env)
    with pytest.raises(ConfigurationError):
        AdapterSettings(inbox_heartbeat=1.0, inbox_retire_after=2.0, tx_max_lifetime=1.0)
    # At the limits it is accepted.
    ok = AdapterSettings(inbox_heartbeat=1.0, inbox_retire_after=2.5, tx_max_lifetime=2.5)
    assert ok.inbox_retire_after == 2.5


def test_an_unset_retire_age_follows_the_limits_it_must_exceed() -> None:
    """Raising the transaction lifetime or the heartbeat alone keeps an
    adapter starting: the default retire age grows with them."""
    longer = AdapterSettings.from_env({"QUERYBUS_TX_MAX_LIFETIME": "3600"})
    assert longer.inbox_retire_after == 3600
    slower = AdapterSettings.from_env({"QUERYBUS_INBOX_HEARTBEAT": "450"})
    assert slower.inbox_retire_after == 1350
