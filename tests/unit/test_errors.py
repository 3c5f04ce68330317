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
from querybus.sqlstates import (
    SQLSTATE_CLASSES,
    AdminShutdownError,
    ConnectionExceptionError,
    ConnectionFailureError,
    DeadlockDetectedError,
    InsufficientResourcesError,
    InternalServerError,
    OperatorInterventionError,
    PostgresSyntaxError,
    PostgresSystemError,
    SyntaxErrorOrAccessRuleViolationError,
    TooManyConnectionsError,
    UndefinedColumnError,
    UndefinedFunctionError,
    UndefinedTableError,
    UniqueViolationError,
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
    # Each code now has its own generated class (23505 is UniqueViolationError);
    # what callers catch (the class listed here) still catches it.
    assert issubclass(query_error_class(sqlstate), cls)


def test_query_error_from_wire_keeps_every_field() -> None:
    err = error_from_wire(
        "query", "duplicate key", sqlstate="23505", detail="Key (id)=(1) exists.", hint="h"
    )
    assert isinstance(err, IntegrityConstraintViolationError)
    assert type(err) is UniqueViolationError
    assert err.sqlstate == "23505"
    assert err.detail == "Key (id)=(1) exists."
    assert err.hint == "h"
    assert err.message == "duplicate key"
    assert str(err) == "[23505] duplicate key"
    # A sqlstate wins even with another code (e.g. an older adapter).
    assert isinstance(error_from_wire("internal", "x", sqlstate="42P01"), UndefinedObjectError)
    assert type(error_from_wire("internal", "x", sqlstate="42P01")) is UndefinedTableError


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


# --- The generated SQLSTATE tree -------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("42501", InsufficientPrivilegeError),
        ("42P01", UndefinedTableError),
        ("42703", UndefinedColumnError),
        ("42883", UndefinedFunctionError),
        ("42704", UndefinedObjectError),
        ("42601", PostgresSyntaxError),
        ("42000", SQLSyntaxError),
        ("23505", UniqueViolationError),
        ("25006", ReadOnlyTransactionError),
        ("40001", SerializationFailureError),
        ("40P01", DeadlockDetectedError),
        ("57014", QueryCanceledError),
        ("57P01", AdminShutdownError),
        ("08006", ConnectionFailureError),
        ("53300", TooManyConnectionsError),
        ("0A000", FeatureNotSupportedError),
        ("XX000", InternalServerError),
        # Unknown codes fall back to their class base, then to QueryError.
        ("42ZZZ", SQLSyntaxError),
        ("22ZZZ", DataError),
        ("08ZZZ", ConnectionExceptionError),
        ("ZZ999", QueryError),
    ],
)
def test_query_error_class_is_exact(sqlstate: str, cls: type[QueryError]) -> None:
    assert query_error_class(sqlstate) is cls


def test_every_generated_class_has_its_sqlstate_and_sits_under_its_class_base() -> None:
    assert len(SQLSTATE_CLASSES) >= 240  # PostgreSQL 15 lists 250 error SQLSTATEs
    for sqlstate, cls in SQLSTATE_CLASSES.items():
        assert cls.sqlstate == sqlstate, cls
        assert cls.__module__ == "querybus.sqlstates"
        assert query_error_class(sqlstate) is cls
        assert cls.__name__.endswith("Error"), cls
        assert issubclass(cls, QueryError)
        base = SQLSTATE_CLASSES.get(sqlstate[:2] + "000")
        if base is not None and base is not cls:
            assert issubclass(cls, base), (cls, base)
        # Every ancestor between it and QueryError is a SQLSTATE of the same class
        # (or OperationalError, the common base of classes 08, 53, 57, 58).
        for ancestor in cls.__mro__[1:]:
            if ancestor in (QueryError, OperationalError) or not issubclass(ancestor, QueryError):
                break
            assert ancestor.sqlstate is not None
            assert ancestor.sqlstate[:2] == sqlstate[:2], (cls, ancestor)
    assert len({c.__name__ for c in SQLSTATE_CLASSES.values()}) == len(SQLSTATE_CLASSES)


def test_parents_of_the_classes_querybus_named_before() -> None:
    assert InsufficientPrivilegeError.__bases__ == (SyntaxErrorOrAccessRuleViolationError,)
    assert SQLSyntaxError is SyntaxErrorOrAccessRuleViolationError
    assert issubclass(InsufficientPrivilegeError, SQLSyntaxError)
    assert SQLSyntaxError.__bases__ == (QueryError,)
    for cls in (UndefinedTableError, UndefinedColumnError, UndefinedFunctionError):
        assert cls.__bases__ == (UndefinedObjectError,)
    assert UndefinedObjectError.__bases__ == (SQLSyntaxError,)
    assert PostgresSyntaxError.__bases__ == (SQLSyntaxError,)
    assert SerializationFailureError.__bases__ == (TransactionRollbackError,)
    assert TransactionRollbackError.__bases__ == (QueryError,)
    assert QueryCanceledError.__bases__ == (OperatorInterventionError,)
    assert ReadOnlyTransactionError.sqlstate == "25006"
    assert DataError.sqlstate == "22000"
    assert IntegrityConstraintViolationError.sqlstate == "23000"
    assert FeatureNotSupportedError.sqlstate == "0A000"
    for base in (
        ConnectionExceptionError,
        InsufficientResourcesError,
        OperatorInterventionError,
        PostgresSystemError,
    ):
        assert base.__bases__ == (OperationalError,)
    assert OperationalError.__bases__ == (QueryError,)
    assert OperationalError.sqlstate is None


@pytest.mark.parametrize(
    ("sqlstate", "retriable"),
    [
        ("08000", True),
        ("08006", True),
        ("08P01", True),
        ("53000", True),
        ("53300", True),
        ("57000", True),
        ("57P01", True),
        ("57014", False),
        ("58000", True),
        ("58030", True),
        ("40000", True),
        ("40001", True),
        ("40P01", True),
        ("42501", False),
        ("42P01", False),
        ("23505", False),
        ("22012", False),
        ("25006", False),
        ("0A000", False),
        ("55P03", False),
        ("XX000", False),
    ],
)
def test_retriable_flags_by_sqlstate(sqlstate: str, retriable: bool) -> None:
    assert query_error_class(sqlstate).retriable is retriable
    assert query_error_class(sqlstate)("m", sqlstate=sqlstate).retriable is retriable


def test_sqlstate_is_a_class_attribute_an_instance_may_override() -> None:
    assert InsufficientPrivilegeError.sqlstate == "42501"
    assert InsufficientPrivilegeError("denied").sqlstate == "42501"
    assert str(InsufficientPrivilegeError("denied")) == "[42501] denied"
    # A code PostgreSQL added after errcodes.txt was read keeps its own value.
    err = query_error_class("42ZZZ")("new", sqlstate="42ZZZ")
    assert type(err) is SyntaxErrorOrAccessRuleViolationError
    assert err.sqlstate == "42ZZZ"
    assert SyntaxErrorOrAccessRuleViolationError.sqlstate == "42000"
    assert QueryError("m").sqlstate is None
    assert OperationalError("down", sqlstate="08006").sqlstate == "08006"


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(TypeError):
        QueryBusError("m", sqlstate="42000")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        QueryError("m", sqlstat="42000")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        UndefinedTableError("m", retriable=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        errors.ResultTooLargeError("m", rows=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        TransportError("m", detail="d")  # type: ignore[call-arg]


def test_correlation_id_is_declared_on_the_root() -> None:
    err = TransportError("m")
    assert err.correlation_id is None
    err.correlation_id = "abc"
    assert err.correlation_id == "abc"
    assert QueryError("m", correlation_id="c1").correlation_id == "c1"
    assert errors.ResultTooLargeError("m", correlation_id="c2").correlation_id == "c2"
    assert "correlation_id" in QueryBusError.__annotations__


def test_every_call_site_keyword_is_accepted() -> None:
    # The keywords querybus's own modules pass (adapter, routing, client).
    query_error_class("22023")("m", sqlstate="22023", detail="d", hint="h")
    OperationalError("m", sqlstate="08006")
    QueryCanceledError("m", sqlstate="57014")
    errors.ResultTooLargeError("m", command="SELECT 1", rowcount=1, lsn="0/1")
    err = error_from_wire(
        "result_too_large", "m", command="INSERT 0 1", rowcount=1, lsn="0/16B3748"
    )
    assert isinstance(err, errors.ResultTooLargeError)
    assert (err.command, err.rowcount, err.lsn) == ("INSERT 0 1", 1, "0/16B3748")


def test_generated_names_are_public_from_errors() -> None:
    import querybus

    for name in (
        "DataError",
        "SQLSyntaxError",
        "ReadOnlyTransactionError",
        "UndefinedObjectError",
        "InsufficientPrivilegeError",
        "QueryCanceledError",
        "SerializationFailureError",
        "TransactionRollbackError",
        "IntegrityConstraintViolationError",
        "FeatureNotSupportedError",
        "OperationalError",
    ):
        assert name in errors.__all__, name
        assert getattr(querybus, name) is getattr(errors, name)
