"""The error tree: one root, precise classes per SQLSTATE, stable wire codes."""

from __future__ import annotations

import pytest

import querybus.errors as errors
from querybus.errors import (
    ERROR_CODES,
    BrokerUnavailableError,
    ConfigurationError,
    DataError,
    DeadlineExceededError,
    FeatureNotSupportedError,
    InsufficientPrivilegeError,
    IntegrityConstraintViolationError,
    InterfaceError,
    NoEligibleTargetError,
    OperationalError,
    PayloadTooLargeError,
    ProtocolError,
    QueryBusError,
    QueryCanceledError,
    QueryError,
    ReadOnlyTransactionError,
    RequestRejectedError,
    RequestTimeoutError,
    RoutingError,
    SerializationFailureError,
    SQLSyntaxError,
    TransactionRollbackError,
    TransportError,
    UndefinedObjectError,
    error_from_wire,
    query_error_class,
)


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("42P01", UndefinedObjectError),
        ("42703", UndefinedObjectError),
        ("42883", UndefinedObjectError),
        ("42601", SQLSyntaxError),
        ("42501", InsufficientPrivilegeError),
        ("23505", IntegrityConstraintViolationError),
        ("23503", IntegrityConstraintViolationError),
        ("23514", IntegrityConstraintViolationError),
        ("22012", DataError),
        ("22P02", DataError),
        ("25006", ReadOnlyTransactionError),
        ("40001", SerializationFailureError),
        ("40P01", TransactionRollbackError),
        ("57014", QueryCanceledError),
        ("57P01", OperationalError),
        ("08006", OperationalError),
        ("53300", OperationalError),
        ("0A000", FeatureNotSupportedError),
        ("XX000", QueryError),
        ("", QueryError),
        (None, QueryError),
    ],
)
def test_query_error_class_by_sqlstate(sqlstate: str | None, cls: type[QueryError]) -> None:
    assert query_error_class(sqlstate) is cls


def test_query_error_from_wire_keeps_every_field() -> None:
    err = error_from_wire(
        "query", "duplicate key", sqlstate="23505", detail="Key (id)=(1) exists.", hint="h"
    )
    assert type(err) is IntegrityConstraintViolationError
    assert err.sqlstate == "23505"
    assert err.detail == "Key (id)=(1) exists."
    assert err.hint == "h"
    assert err.message == "duplicate key"
    assert str(err) == "[23505] duplicate key"
    # A sqlstate wins even with another code (e.g. an older adapter).
    assert type(error_from_wire("internal", "x", sqlstate="42P01")) is UndefinedObjectError


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("timeout", RequestTimeoutError),
        ("deadline_exceeded", DeadlineExceededError),
        ("payload_too_large", PayloadTooLargeError),
        ("protocol", ProtocolError),
        ("rejected", RequestRejectedError),
        ("no_eligible_target", NoEligibleTargetError),
        ("routing", RoutingError),
        ("broker_unavailable", BrokerUnavailableError),
        ("transport", TransportError),
        ("interface", InterfaceError),
        ("query", QueryError),
        ("something_new", QueryBusError),
    ],
)
def test_error_from_wire_by_code(code: str, cls: type[QueryBusError]) -> None:
    err = error_from_wire(code, "why")
    assert type(err) is cls
    assert err.message == "why"


def test_every_wire_code_maps_back_to_its_class() -> None:
    for code, cls in ERROR_CODES.items():
        assert cls.code == code
        assert type(error_from_wire(code, "m")) is cls


def test_wire_codes_are_unique() -> None:
    def walk(cls: type[QueryBusError]) -> list[type[QueryBusError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in walk(sub))]

    non_query = [
        c
        for c in walk(QueryBusError)
        if not issubclass(c, QueryError) and c.__module__ == "querybus.errors"
    ]
    codes = [c.code for c in non_query]
    assert len(codes) == len(set(codes)), codes


def test_one_root_and_the_builtin_bases() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, QueryBusError), name
    assert issubclass(RequestTimeoutError, TimeoutError)
    assert issubclass(RequestTimeoutError, TransportError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(PayloadTooLargeError, RequestRejectedError)
    assert issubclass(DeadlineExceededError, RequestRejectedError)
    assert issubclass(UndefinedObjectError, SQLSyntaxError)
    assert issubclass(SerializationFailureError, TransactionRollbackError)


def test_retriable_flags() -> None:
    assert TransportError.retriable
    assert RequestTimeoutError.retriable
    assert OperationalError.retriable
    assert TransactionRollbackError.retriable
    assert SerializationFailureError.retriable
    assert RoutingError.retriable
    assert not QueryCanceledError.retriable
    assert not RequestRejectedError.retriable
    assert not ProtocolError.retriable
    assert not QueryError.retriable
    assert not IntegrityConstraintViolationError.retriable
