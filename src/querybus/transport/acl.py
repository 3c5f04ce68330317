"""Kafka ACLs as querybus values: what ``querybus acl`` prints and applies.

Pure data, no aiokafka: :class:`~querybus.transport.kafka.KafkaTransport`
turns these into the broker's CreateAcls / DescribeAcls / DeleteAcls requests.
The names and numbers are Kafka's own (``org.apache.kafka.common.acl``), so an
:class:`Acl` reads like a line of ``kafka-acls.sh --list``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from querybus.errors import ConfigurationError

__all__ = [
    "Acl",
    "AclFilter",
    "AclOperation",
    "AclPermission",
    "PatternType",
    "ResourceType",
]


class ResourceType(enum.StrEnum):
    """What an ACL is about (Kafka's wire code in :attr:`code`)."""

    ANY = "ANY"  # filters only
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    CLUSTER = "CLUSTER"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"

    @property
    def code(self) -> int:
        return _RESOURCE_CODES[self]


class PatternType(enum.StrEnum):
    """How the resource name matches: the exact name, or every name starting with it."""

    ANY = "ANY"  # filters only: both kinds, by their stored name
    MATCH = "MATCH"  # filters only: every ACL that applies to the given name
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"

    @property
    def code(self) -> int:
        return _PATTERN_CODES[self]


class AclOperation(enum.StrEnum):
    ANY = "ANY"  # filters only
    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"

    @property
    def code(self) -> int:
        return _OPERATION_CODES[self]


class AclPermission(enum.StrEnum):
    ANY = "ANY"  # filters only
    DENY = "DENY"
    ALLOW = "ALLOW"

    @property
    def code(self) -> int:
        return _PERMISSION_CODES[self]


# Kafka's codes (ResourceType, PatternType, AclOperation, AclPermissionType).
_RESOURCE_CODES = {
    ResourceType.ANY: 1,
    ResourceType.TOPIC: 2,
    ResourceType.GROUP: 3,
    ResourceType.CLUSTER: 4,
    ResourceType.TRANSACTIONAL_ID: 5,
}
_PATTERN_CODES = {
    PatternType.ANY: 1,
    PatternType.MATCH: 2,
    PatternType.LITERAL: 3,
    PatternType.PREFIXED: 4,
}
_OPERATION_CODES = {
    AclOperation.ANY: 1,
    AclOperation.ALL: 2,
    AclOperation.READ: 3,
    AclOperation.WRITE: 4,
    AclOperation.CREATE: 5,
    AclOperation.DELETE: 6,
    AclOperation.ALTER: 7,
    AclOperation.DESCRIBE: 8,
    AclOperation.CLUSTER_ACTION: 9,
    AclOperation.DESCRIBE_CONFIGS: 10,
    AclOperation.ALTER_CONFIGS: 11,
    AclOperation.IDEMPOTENT_WRITE: 12,
}
_PERMISSION_CODES = {AclPermission.ANY: 1, AclPermission.DENY: 2, AclPermission.ALLOW: 3}

#: The name of the one cluster resource (Kafka's ``kafka-cluster``).
CLUSTER_NAME = "kafka-cluster"


_E = TypeVar("_E", bound=enum.Enum)


def _from_code(codes: dict[_E, int], code: int, what: str) -> _E:
    for member, value in codes.items():
        if value == code:
            return member
    raise ValueError(f"unknown {what} code {code}")


def resource_type_of(code: int) -> ResourceType:
    return _from_code(_RESOURCE_CODES, code, "resource type")


def pattern_type_of(code: int) -> PatternType:
    return _from_code(_PATTERN_CODES, code, "pattern type")


def operation_of(code: int) -> AclOperation:
    return _from_code(_OPERATION_CODES, code, "operation")


def permission_of(code: int) -> AclPermission:
    return _from_code(_PERMISSION_CODES, code, "permission")


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ACL binding: ``principal`` may (or may not) do ``operation`` on a resource.

    Attributes:
        principal: ``User:NAME`` (the SASL username, or the certificate's
            mapped name on a mutual-TLS listener).
        resource_type: topic, group, cluster or transactional id.
        resource_name: the topic or group name, or the prefix with
            :attr:`PatternType.PREFIXED`; ``kafka-cluster`` for the cluster.
        operation: what is allowed or denied.
        permission: ALLOW or DENY (a DENY wins over any ALLOW).
        pattern: LITERAL (this exact name) or PREFIXED (every name starting with it).
        host: the client address the ACL applies to; ``*`` for any.
    """

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: AclOperation
    permission: AclPermission = AclPermission.ALLOW
    pattern: PatternType = PatternType.LITERAL
    host: str = "*"

    def __post_init__(self) -> None:
        _coerce(self)
        kind, _, name = self.principal.partition(":")
        if not kind or not name:
            raise ConfigurationError(
                f"a principal is TYPE:NAME (User:alice), got {self.principal!r}"
            )
        for value, what in (
            (self.resource_type, "resource type"),
            (self.operation, "operation"),
            (self.permission, "permission"),
            (self.pattern, "pattern type"),
        ):
            if value == "ANY" or value == "MATCH":
                raise ConfigurationError(f"an ACL needs a definite {what}, not {value}")
        if not self.resource_name:
            raise ConfigurationError("an ACL needs a resource name")


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which ACLs to list or delete; None matches anything.

    ``pattern`` defaults to ANY: every ACL stored with exactly this resource
    name, literal or prefixed. MATCH instead finds every ACL that *applies* to
    the name (including prefixed ones with a shorter prefix).
    """

    principal: str | None = None
    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermission = AclPermission.ANY
    pattern: PatternType = PatternType.ANY
    host: str | None = None

    def __post_init__(self) -> None:
        _coerce(self)

    @classmethod
    def exactly(cls, acl: Acl) -> AclFilter:
        """The filter that matches ``acl`` and nothing else."""
        return cls(
            principal=acl.principal,
            resource_type=acl.resource_type,
            resource_name=acl.resource_name,
            operation=acl.operation,
            permission=acl.permission,
            pattern=acl.pattern,
            host=acl.host,
        )


def _coerce(value: Acl | AclFilter) -> None:
    # Plain strings ("READ", "topic") are accepted and stored as the enums.
    try:
        for name, kind in (
            ("resource_type", ResourceType),
            ("operation", AclOperation),
            ("permission", AclPermission),
            ("pattern", PatternType),
        ):
            raw = getattr(value, name)
            object.__setattr__(value, name, kind(str(raw).upper()))
    except ValueError as exc:
        raise ConfigurationError(f"invalid ACL: {exc}") from None
