"""Per-role policies: what each caller role may run, read from a TOML file.

The adapter reads the file named by ``QUERYBUS_POLICY_FILE``
(:meth:`RolePolicies.from_env`); without it every role may do whatever the
adapter-wide :class:`~querybus.adapter.policy.Policy` allows
(:data:`UNRESTRICTED`, DDL included). The format::

    [defaults]              # every role without its own table, and what a role leaves out
    operations = ["SELECT", "INSERT", "UPDATE", "DELETE"]
    max_rows = 10000
    statement_timeout = 30.0    # seconds: caps the request's deadline
    rate = 50.0                 # requests per second per subject (token bucket)
    burst = 100

    [roles.reporting]
    operations = ["SELECT"]
    tables = ["public.orders", "public.customers"]
    max_rows = 1000

    [roles.app_admin]
    allow_ddl = true

Keys (in ``[defaults]`` and in each ``[roles.NAME]``):

``operations``
    the operations the role may perform: ``SELECT``, ``INSERT``, ``UPDATE``,
    ``DELETE``, ``OTHER`` (``EXPLAIN``, ``SHOW``, ``CALL``, ``NOTIFY``).
    A statement needs every operation it performs
    (:attr:`~querybus.sql.Statement.operations`): a SELECT with a
    data-modifying CTE needs SELECT *and* the CTE's INSERT/UPDATE/DELETE,
    ``EXPLAIN DELETE …`` needs OTHER and DELETE, ``MERGE`` needs the
    operations of its ``WHEN`` actions. DDL is not an operation here: see
    ``allow_ddl``. Absent: any.
``allow_ddl``
    whether the role may run statements that change the schema or the
    server's state (:attr:`~querybus.sql.Statement.needs_ddl`); default
    false once there is a policy file. The adapter-wide ``QUERYBUS_ALLOW_DDL``
    stays the ceiling: a role can only be refused what the adapter would
    allow, never be allowed what it refuses.
``tables``
    the relations the role may name (:attr:`~querybus.sql.Statement.tables`).
    An entry ``schema.name`` matches that name qualified with that schema and
    unqualified; an unqualified entry ``name`` matches it in any schema.
    Entries are SQL identifiers: unquoted parts are folded to lower case,
    ``"Quoted"`` ones kept. Absent: any. This is defence in depth, not
    access control: an unqualified name resolves through ``search_path``,
    views and functions reach relations the statement does not name, and the
    database's GRANTs and row-level security policies decide what a role can
    really read and write.
``max_rows``
    the most rows a reply may carry (an integer ≥ 1).
``statement_timeout``
    seconds: caps the request's deadline (a number > 0).
``rate`` / ``burst``
    requests per second per subject (the token's ``sub``), and how many may
    come at once (:class:`~querybus.adapter.ratelimit.RateLimiter`). ``burst``
    defaults to ``max(1, ceil(rate))``, also when a role sets its own ``rate``
    but no ``burst`` (it does not inherit the defaults' burst); ``burst``
    without any ``rate`` is an error.

A role's table replaces the values it sets and takes the others from
``[defaults]``; a role cannot lift a limit set there (TOML has no null), so
put limits that some roles must not have in the roles, not in the defaults.
Unknown keys, wrong types, numbers out of range and unknown operation names
are :class:`~querybus.errors.ConfigurationError` at load, naming the file
and the key: a typo must never silently drop a limit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from querybus.errors import ConfigurationError, PermissionDeniedError
from querybus.protocol.messages import OperationType
from querybus.sql import Statement
from querybus.sql.statement import qualified_name

__all__ = ["ENV_VAR", "UNRESTRICTED", "RolePolicies", "RolePolicy"]

#: The environment variable naming the policy file.
ENV_VAR = "QUERYBUS_POLICY_FILE"

_KEYS = frozenset(
    {"operations", "allow_ddl", "max_rows", "statement_timeout", "tables", "rate", "burst"}
)
# DDL is governed by allow_ddl (needs_ddl is broader than the DDL operation:
# SELECT INTO, VACUUM, …), so it is not accepted as an operation name.
_OPERATIONS = {op.value: op for op in OperationType if op is not OperationType.DDL}


@dataclass(frozen=True, slots=True)
class RolePolicy:
    """What one role may do (None: no limit of that kind).

    Attributes:
        operations: operations the role may perform; None = any.
        allow_ddl: whether it may run what needs DDL.
        max_rows: the most rows a reply may carry.
        statement_timeout: seconds; caps the request's deadline.
        tables: relations it may name, as :func:`~querybus.sql.statement.qualified_name`
            spells them; None = any.
        rate: requests per second per subject.
        burst: requests a subject may send at once (set whenever ``rate`` is).
        role: the role's name, for messages.
    """

    operations: frozenset[OperationType] | None = None
    allow_ddl: bool = False
    max_rows: int | None = None
    statement_timeout: float | None = None
    tables: frozenset[str] | None = None
    rate: float | None = None
    burst: int | None = None
    role: str = ""
    # The table entries split for matching (see check): qualified entries as
    # written, and the bare names of all entries.
    _qualified: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _bare: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _unqualified: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tables is None:
            return
        qualified, bare, unqualified = set(), set(), set()
        for entry in self.tables:
            parts = _split(entry)
            if len(parts) == 2:
                qualified.add(entry)
                bare.add(qualified_name(parts[1]))
            else:
                unqualified.add(entry)
                bare.add(entry)
        object.__setattr__(self, "_qualified", frozenset(qualified))
        object.__setattr__(self, "_bare", frozenset(bare))
        object.__setattr__(self, "_unqualified", frozenset(unqualified))

    def check(self, statement: Statement) -> None:
        """Refuse ``statement`` if this role may not run it.

        Raises:
            PermissionDeniedError: the message names the role and what was
                refused (an operation, DDL, tables), never parameter values.
        """
        who = f"role {self.role!r}" if self.role else "this role"
        if statement.error is not None:
            # Policy refuses it before; never let an unanalysed text through.
            raise PermissionDeniedError(f"{who}: the statement cannot be checked")
        if statement.needs_ddl and not self.allow_ddl:
            raise PermissionDeniedError(
                f"{who} may not run {statement.statement_type}: it changes the schema or "
                "the server's state, and the role's policy does not allow DDL"
            )
        if self.operations is not None:
            refused = statement.operations - self.operations - {OperationType.DDL}
            if refused:
                raise PermissionDeniedError(
                    f"{who} may not perform {_join(op.value for op in refused)} "
                    f"(allowed: {_join(op.value for op in self.operations) or 'none'})"
                )
        if self.tables is not None:
            outside = [t for t in statement.tables if not self._allows(t)]
            if outside:
                raise PermissionDeniedError(
                    f"{who} may not use {'table' if len(outside) == 1 else 'tables'} "
                    f"{_join(outside)}: not in the role's tables"
                )

    def _allows(self, table: str) -> bool:
        if table in self._unqualified or table in self._qualified:
            return True
        parts = _split(table)
        if len(parts) == 2:  # schema.name: allowed by an unqualified entry for name
            return qualified_name(parts[1]) in self._unqualified
        return table in self._bare  # name: allowed by any entry for it


#: The policy that restricts nothing: every role's when there is no policy file.
UNRESTRICTED = RolePolicy(allow_ddl=True)


@dataclass(frozen=True, slots=True)
class RolePolicies:
    """The policies of all roles: the defaults, and each role's own merged over them."""

    # Without a policy file nothing is restricted here, DDL included: the
    # adapter-wide Policy (QUERYBUS_ALLOW_DDL) alone decides.
    defaults: RolePolicy = field(default_factory=lambda: UNRESTRICTED)
    roles: Mapping[str, RolePolicy] = field(default_factory=dict)
    #: Where they came from (for messages); "" when built in code.
    source: str = ""
    # The defaults named for roles without a table, made once per role (roles
    # come from the adapter's allowlist, so few; bounded all the same).
    _named: dict[str, RolePolicy] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def for_role(self, role: str | None) -> RolePolicy:
        """The policy of ``role``: its own table merged over the defaults, or
        the defaults (also for None: a request with no identity)."""
        if role is None:
            return self.defaults
        policy = self.roles.get(role) or self._named.get(role)
        if policy is None:
            policy = dataclasses.replace(self.defaults, role=role)
            if len(self._named) < 1024:
                self._named[role] = policy
        return policy

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RolePolicies:
        """The policies of the file named by ``QUERYBUS_POLICY_FILE``; no
        limits at all when it is unset or empty.

        Raises:
            ConfigurationError: the file cannot be read or is invalid.
        """
        env = os.environ if env is None else env
        path = env.get(ENV_VAR) or ""
        return cls.load(path) if path else cls()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RolePolicies:
        """Read and validate a policy file.

        Raises:
            ConfigurationError: the file cannot be read, is not TOML, or is
                invalid (the message names the file and the key).
        """
        source = str(path)
        try:
            with Path(path).open("rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigurationError(
                f"{ENV_VAR}: cannot read {source}: {exc.strerror or exc}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<policies>") -> RolePolicies:
        """Validate policies already parsed from TOML (or built in code).

        Raises:
            ConfigurationError: naming ``source`` and the key.
        """
        unknown = set(data) - {"defaults", "roles"}
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown key {_join(unknown)} (expected [defaults] and [roles.NAME])"
            )
        defaults = _table(data.get("defaults", {}), source, "defaults")
        roles_data = data.get("roles", {})
        if not isinstance(roles_data, Mapping):
            raise ConfigurationError(f"{source}: roles must be a table of [roles.NAME] tables")
        roles: dict[str, RolePolicy] = {}
        for name, table in roles_data.items():
            own = _table(table, source, f"roles.{name}")
            merged = {**defaults, **own}
            if "rate" in own and "burst" not in own:
                # A role's own rate gets a burst to match, not the defaults'
                # (a rate of 5 with a burst of 100 meant for 50 per second).
                merged.pop("burst", None)
            roles[name] = _policy(merged, source, f"roles.{name}", name)
        return cls(_policy(defaults, source, "defaults", ""), roles, source)


# -- validation -------------------------------------------------------------------------


def _table(raw: Any, source: str, where: str) -> dict[str, Any]:
    """The keys of one table, each checked for its type and range."""
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{source}: [{where}] must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key {where}.{_join(unknown)} (known: {_join(_KEYS)})"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{source}: {where}.{key}"
        if key == "allow_ddl":
            if not isinstance(value, bool):
                raise ConfigurationError(f"{at} must be true or false")
            out[key] = value
        elif key in ("max_rows", "burst"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{at} must be a positive integer, got {value!r}")
            out[key] = value
        elif key in ("statement_timeout", "rate"):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigurationError(f"{at} must be a positive number, got {value!r}")
            out[key] = float(value)
        elif key == "operations":
            out[key] = frozenset(_operation(v, at) for v in _strings(value, at))
        else:  # tables
            out[key] = frozenset(_table_entry(v, at) for v in _strings(value, at))
    return out


def _strings(value: Any, at: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{at} must be a list of strings")
    return value


def _operation(name: str, at: str) -> OperationType:
    op = _OPERATIONS.get(name.upper())
    if op is None:
        hint = " (DDL is allowed with allow_ddl = true)" if name.upper() == "DDL" else ""
        raise ConfigurationError(
            f"{at}: unknown operation {name!r}{hint}; known: {_join(_OPERATIONS)}"
        )
    return op


def _table_entry(entry: str, at: str) -> str:
    try:
        parts = _split(entry, fold=True)
    except ValueError as exc:
        raise ConfigurationError(f"{at}: {entry!r} is not a table name: {exc}") from None
    if len(parts) > 2:
        raise ConfigurationError(f"{at}: {entry!r} is not a table name: use schema.name or name")
    return qualified_name(*parts)


def _policy(values: Mapping[str, Any], source: str, where: str, role: str) -> RolePolicy:
    rate, burst = values.get("rate"), values.get("burst")
    if burst is not None and rate is None:
        raise ConfigurationError(f"{source}: {where}.burst is set but no rate")
    if rate is not None and burst is None:
        burst = max(1, math.ceil(rate))
    return RolePolicy(
        operations=values.get("operations"),
        allow_ddl=values.get("allow_ddl", False),
        max_rows=values.get("max_rows"),
        statement_timeout=values.get("statement_timeout"),
        tables=values.get("tables"),
        rate=rate,
        burst=burst,
        role=role,
    )


# -- names ------------------------------------------------------------------------------

# A double-quoted name, or an unquoted identifier (PostgreSQL takes any
# non-ASCII character as a letter, and folds only ASCII ones).
_IDENT = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)')
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _split(name: str, *, fold: bool = False) -> list[str]:
    """The dot-separated parts of ``name``, quotes removed.

    With ``fold`` (a policy entry, written like SQL) unquoted parts are folded
    to lower case; without it (a name from :attr:`Statement.tables`) they
    already are.

    Raises:
        ValueError: ``name`` is not a dotted list of identifiers.
    """
    parts: list[str] = []
    pos = 0
    while True:
        m = _IDENT.match(name, pos)
        if m is None:
            raise ValueError("expected an identifier or a double-quoted name")
        if m.group(1) is not None:
            if m.group(1) == "":
                raise ValueError("an empty quoted name")
            parts.append(m.group(1).replace('""', '"'))
        else:
            parts.append(m.group(2).translate(_ASCII_LOWER) if fold else m.group(2))
        pos = m.end()
        if pos == len(name):
            return parts
        if name[pos] != ".":
            raise ValueError(f"unexpected {name[pos]!r}")
        pos += 1


def _join(items: Any) -> str:
    return ", ".join(sorted(items))
