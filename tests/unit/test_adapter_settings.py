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
