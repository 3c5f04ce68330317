"""Parameter values are masked in error replies (querybus.adapter.redaction)."""

from __future__ import annotations

from typing import Any

import pytest

from querybus.adapter.redaction import MASK, redact
from querybus.protocol.messages import ErrorInfo


@pytest.mark.parametrize(
    ("message", "detail", "params", "expected_message", "expected_detail"),
    [
        (
            'invalid input syntax for type integer: "s3cret"',
            None,
            ["s3cret"],
            f'invalid input syntax for type integer: "{MASK}"',
            None,
        ),
        (
            'duplicate key value violates unique constraint "users_email_key"',
            "Key (email)=(bob@example.com) already exists.",
            [1, "bob@example.com"],
            'duplicate key value violates unique constraint "users_email_key"',
            f"Key (email)=({MASK}) already exists.",
        ),
        # A short value is masked only where PostgreSQL quotes a value.
        (
            'value "7" is out of range for type smallint; 7 digits',
            "Key (id)=(7) already exists.",
            [7],
            f'value "{MASK}" is out of range for type smallint; 7 digits',
            f"Key (id)=({MASK}) already exists.",
        ),
        # Inside tagged values, arrays and JSON documents.
        (
            'invalid input syntax for type uuid: "nested-secret"',
            'Token "json-secret" is invalid.',
            [[{"$dec": "1.5"}, "nested-secret"], {"$json": {"k": "json-secret"}}],
            f'invalid input syntax for type uuid: "{MASK}"',
            f'Token "{MASK}" is invalid.',
        ),
        # The longest value first: one value inside another is masked whole.
        (
            'bad value "abcdef"',
            None,
            ["abc", "abcdef"],
            f'bad value "{MASK}"',
            None,
        ),
    ],
)
def test_values_are_masked(
    message: str,
    detail: str | None,
    params: list[Any],
    expected_message: str,
    expected_detail: str | None,
) -> None:
    info = redact(ErrorInfo(code="query", message=message, detail=detail), params)
    assert info.message == expected_message
    assert info.detail == expected_detail


def test_nothing_to_mask_leaves_the_error_alone() -> None:
    info = ErrorInfo(code="query", message='relation "t" does not exist', hint="check it")
    assert redact(info, [None, True, ""]) == ErrorInfo(
        code="query", message='relation "t" does not exist', hint="check it"
    )
