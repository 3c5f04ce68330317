"""Where a statement may run — ``primary`` or ``replica`` — and why.

:class:`Classifier` decides from the :class:`~querybus.sql.statement.Statement`
that :func:`querybus.sql.analyze` made of the SQL (one parse, shared with the
policy and the executor; nothing is parsed here), with a stable reason code,
the statement's fingerprint and a complexity estimate. Decisions are cached by
SQL text and by fingerprint (which ignores constants).

Why so conservative: a read sent to the primary costs a little load; a write
sent to a replica fails, and a session-dependent read (``currval``) sent to a
replica returns a wrong answer. So anything that writes, may write, locks,
or that we cannot prove harmless goes to the primary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from querybus.routing.reasons import Reason, Role
from querybus.sql import Part, Statement, analyze
from querybus.sql.complexity import Complexity
from querybus.sql.functions import (
    ADVISORY_PREFIXES,
    AGGREGATES,
    KNOWN_SAFE,
    KNOWN_VOLATILE,
    SEQUENCE_FUNCTIONS,
    VOLATILE_READ_SAFE,
)
from querybus.sql.statement import DDL_KINDS, NO_COMPLEXITY

__all__ = ["Classification", "Classifier", "FunctionCatalog", "classify"]

# Utility statements that change data or server state: the primary, reason "maintenance".
_MAINTENANCE = frozenset(
    {
        "VacuumStmt", "ClusterStmt", "ReindexStmt", "RefreshMatViewStmt", "CheckPointStmt",
        "LoadStmt", "AlterDatabaseStmt", "AlterDatabaseSetStmt", "AlterRoleSetStmt",
    }
)  # fmt: skip
_LISTEN_NOTIFY = frozenset({"ListenStmt", "UnlistenStmt", "NotifyStmt"})
_WRITES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


@dataclass(frozen=True, slots=True)
class Classification:
    """Where a statement may run, and why.

    Attributes:
        role: :attr:`Role.PRIMARY` or :attr:`Role.REPLICA`.
        reason: stable reason code (see :class:`~querybus.routing.reasons.Reason`).
        fingerprint: pglast's fingerprint of the statement (equal for the same
            statement with other constants); ``""`` when it does not parse.
        complexity: score and class of the statement.
        writes: the statement writes or may write (a write's reply carries its LSN).
        detail: what triggered the reason (a function name, a statement type), for people.
    """

    role: Role
    reason: Reason
    fingerprint: str
    complexity: Complexity
    writes: bool
    detail: str = ""

    @property
    def to_primary(self) -> bool:
        """Whether the statement must run on the primary."""
        return self.role is Role.PRIMARY

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (``querybus route explain --json``)."""
        return {
            "target": self.role.value,
            "reason": self.reason.value,
            "complexity": self.complexity.as_dict(),
            "fingerprint": self.fingerprint,
            "writes": self.writes,
            "detail": self.detail,
        }


class FunctionCatalog:
    """Function volatility from ``pg_proc``: function name → worst ``provolatile``.

    Overloads and schemas are folded into one entry per name with the *worst*
    volatility (``v`` > ``s`` > ``i``), because the parse tree does not tell
    which overload a call resolves to.

    Args:
        volatility: name → ``"i"`` (immutable), ``"s"`` (stable) or ``"v"`` (volatile).
    """

    __slots__ = ("_volatility",)

    def __init__(self, volatility: Mapping[str, str]) -> None:
        self._volatility = dict(volatility)

    def __len__(self) -> int:
        return len(self._volatility)

    def volatility(self, name: str) -> str | None:
        """``"i"``, ``"s"``, ``"v"`` for a known function, ``None`` for an unknown one."""
        return self._volatility.get(name)

    #: The query that fills a catalog (run by the targets on the primary).
    QUERY = "SELECT proname::text, max(provolatile::text) FROM pg_catalog.pg_proc GROUP BY proname"


_EMPTY_COMPLEXITY = NO_COMPLEXITY


def _unparsable(detail: str) -> Classification:
    return Classification(
        Role.PRIMARY, Reason.UNPARSABLE, "", _EMPTY_COMPLEXITY, writes=True, detail=detail
    )


class Classifier:
    """Classifies statements for routing, with caches.

    Args:
        catalog: function volatility from the database; without one, a built-in
            table of common PostgreSQL functions is used and any other function
            sends the statement to the primary (reason ``unknown_function``).
        cache_size: statements (by text, and by fingerprint) kept in each cache.
    """

    def __init__(self, catalog: FunctionCatalog | None = None, *, cache_size: int = 8192) -> None:
        self._catalog = catalog
        self._cache_size = cache_size
        self._by_text: dict[str, Classification] = {}
        self._by_fingerprint: dict[str, Classification] = {}

    @property
    def catalog(self) -> FunctionCatalog | None:
        """The function catalog in use (``None``: built-in table only)."""
        return self._catalog

    @catalog.setter
    def catalog(self, catalog: FunctionCatalog | None) -> None:
        # Decisions depend on the catalog: drop what was decided with the old one.
        self._catalog = catalog
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every cached classification."""
        self._by_text.clear()
        self._by_fingerprint.clear()

    def classify(self, sql: str | Statement) -> Classification:
        """Where ``sql`` may run and why. Never raises: what cannot be
        classified goes to the primary with reason ``unparsable``."""
        text = sql if isinstance(sql, str) else sql.sql
        hit = self._by_text.get(text)
        if hit is not None:
            return hit
        statement = analyze(text) if isinstance(sql, str) else sql
        if statement.error is not None:
            result = _unparsable(statement.error)
        else:
            fp = statement.fingerprint
            result = self._by_fingerprint.get(fp) or self._classify(statement)
            self._remember(self._by_fingerprint, fp, result)
        self._remember(self._by_text, text, result)
        return result

    def _remember(self, cache: dict[str, Classification], key: str, value: Classification) -> None:
        # Clearing on overflow is cruder than LRU but keeps a hit at one dict lookup;
        # a working set larger than the cache is a configuration problem either way.
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[key] = value

    def _classify(self, statement: Statement) -> Classification:
        results = [self._part(part, statement.fingerprint) for part in statement.parts]
        # A batch runs where its most demanding statement must run; transaction
        # control around reads only (BEGIN; SELECT …; COMMIT) writes nothing.
        for result in results:
            if result.to_primary and result.reason is not Reason.TRANSACTION:
                return result
        reads = [r for r in results if not r.to_primary]
        if reads:
            return max(reads, key=lambda r: r.complexity.score)
        return results[0]

    def _part(self, part: Part, fp: str) -> Classification:
        kind = part.kind

        def primary(reason: Reason, detail: str = "") -> Classification:
            return Classification(Role.PRIMARY, reason, fp, part.complexity, True, detail)

        if kind in _WRITES:
            return primary(Reason.WRITE, kind)
        if kind == "SelectStmt":
            if part.select_into:
                return primary(Reason.SELECT_INTO)
            if part.writing_cte:
                return primary(Reason.WRITING_CTE)
            if part.locking:
                return primary(Reason.LOCKING)
            for name in part.functions:
                verdict = self._function(name)
                if verdict is not None:
                    return primary(verdict, name)
            return Classification(Role.REPLICA, Reason.READ, fp, part.complexity, False)
        if kind == "CopyStmt":
            if part.copy_from:
                return primary(Reason.COPY_FROM)
            return Classification(Role.REPLICA, Reason.READ, fp, part.complexity, False, "COPY TO")
        if kind in DDL_KINDS:
            return primary(Reason.DDL, kind)
        if kind in _LISTEN_NOTIFY:
            return primary(Reason.LISTEN_NOTIFY, kind)
        if kind == "TransactionStmt":
            return primary(Reason.TRANSACTION, part.detail)
        if kind == "VariableShowStmt":
            return Classification(Role.REPLICA, Reason.READ, fp, part.complexity, False, "SHOW")
        if kind == "LockStmt":
            return primary(Reason.LOCKING, "LOCK TABLE")
        if kind in ("CallStmt", "DoStmt"):
            return primary(Reason.PROCEDURE, kind)
        if kind in _MAINTENANCE:
            return primary(Reason.MAINTENANCE, kind)
        # SET, PREPARE, EXECUTE, cursors, DISCARD, …: session state or unknown
        # effects; the primary is the only place where they are always valid.
        return primary(Reason.UTILITY, kind)

    def _function(self, name: str) -> Reason | None:
        """Why calling ``name`` forces the primary, or ``None`` when a replica may run it."""
        if name in SEQUENCE_FUNCTIONS:
            return Reason.SEQUENCE
        if name.startswith(ADVISORY_PREFIXES):
            return Reason.ADVISORY_LOCK
        if name in KNOWN_VOLATILE:
            # Checked before the catalog: pg_proc calls some of these stable
            # (txid_current) although they assign an xid, which a standby refuses.
            return Reason.VOLATILE_FUNCTION
        if name in VOLATILE_READ_SAFE:
            return None
        if self._catalog is not None:
            volatility = self._catalog.volatility(name)
            if volatility is None:
                # Not in pg_proc: created after the catalog was read, or misspelt.
                # Either way the primary answers correctly (or with the right error).
                return Reason.UNKNOWN_FUNCTION
            return Reason.VOLATILE_FUNCTION if volatility == "v" else None
        if name in KNOWN_SAFE or name in AGGREGATES:
            return None
        return Reason.UNKNOWN_FUNCTION


_default = Classifier()


def classify(sql: str | Statement) -> Classification:
    """Classify ``sql`` with the shared catalog-less :class:`Classifier`."""
    return _default.classify(sql)
