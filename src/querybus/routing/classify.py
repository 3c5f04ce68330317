"""Statement analysis with PostgreSQL's own grammar (pglast, the only pglast importer).

Two entry points:

* :func:`analyze` parses a SQL string and says how many statements it holds,
  which operation it is and whether it writes (the adapter's validation).
* :class:`Classifier` / :func:`classify` decide where a statement may run —
  ``primary`` or ``replica`` — with a stable reason code, a fingerprint and a
  complexity estimate, all from one parse tree.

Both are cached: :func:`analyze` by SQL text, :class:`Classifier` by SQL text
and then by pglast's statement fingerprint (which ignores constants), so a
repeated statement costs a dict lookup and the same statement with other
literals costs a fingerprint (a few µs) instead of a parse.

Why so conservative: a read sent to the primary costs a little load; a write
sent to a replica fails, and a session-dependent read (``currval``) sent to a
replica returns a wrong answer. So anything that writes, may write, locks,
or that we cannot prove harmless goes to the primary.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pglast import ast, parse_sql
from pglast.parser import ParseError, fingerprint

from querybus.errors import RequestRejectedError
from querybus.protocol.messages import OperationType
from querybus.routing.complexity import Complexity, ComplexityCounts
from querybus.routing.functions import (
    ADVISORY_PREFIXES,
    AGGREGATES,
    KNOWN_SAFE,
    KNOWN_VOLATILE,
    REFUSED_FUNCTIONS,
    SEQUENCE_FUNCTIONS,
    VOLATILE_READ_SAFE,
)
from querybus.routing.reasons import Reason, Role

__all__ = [
    "Classification",
    "Classifier",
    "FunctionCatalog",
    "StatementInfo",
    "analyze",
    "classify",
]

T = TypeVar("T")

# pglast builds its tree with C recursion, one level per nesting level of the
# statement: `SELECT 1+1+…+1` with ~25,000 terms (50 KB, well under the SQL
# length limit) overflows the main thread's 8 MB stack and kills the process.
# SQL longer than _INLINE_LIMIT characters (too short to nest that deep) is
# therefore parsed on a thread with a stack large enough for the longest SQL
# an adapter accepts. The caller waits for it: the cost is a thread start, for
# long statements only, and parses are cached.
_INLINE_LIMIT = 8192
_BIG_STACK = 512 * 1024 * 1024  # address space only: pages are used as touched


def _on_big_stack(fn: Callable[[str], T], sql: str) -> T:
    if len(sql) <= _INLINE_LIMIT:
        return fn(sql)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn(sql))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    previous = threading.stack_size(_BIG_STACK)
    try:
        thread = threading.Thread(target=run, name="querybus-parse", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result  # type: ignore[no-any-return]


_DML: dict[type, OperationType] = {
    ast.SelectStmt: OperationType.SELECT,
    ast.InsertStmt: OperationType.INSERT,
    ast.UpdateStmt: OperationType.UPDATE,
    ast.DeleteStmt: OperationType.DELETE,
}

_DDL = tuple(
    getattr(ast, name)
    for name in (
        "CreateStmt",
        "CreateTableAsStmt",
        "AlterTableStmt",
        "DropStmt",
        "IndexStmt",
        "ViewStmt",
        "CreateSeqStmt",
        "AlterSeqStmt",
        "CreateSchemaStmt",
        "RenameStmt",
        "CreateFunctionStmt",
        "CreateEnumStmt",
        "CompositeTypeStmt",
        "TruncateStmt",
        "CommentStmt",
        "GrantStmt",
        "CreateExtensionStmt",
        "CreateTrigStmt",
        "AlterEnumStmt",
        "CreateDomainStmt",
        "AlterDomainStmt",
        "CreateRoleStmt",
        "AlterRoleStmt",
        "DropRoleStmt",
        "GrantRoleStmt",
        "CreatedbStmt",
        "DropdbStmt",
        "AlterFunctionStmt",
        "AlterObjectSchemaStmt",
        "AlterOwnerStmt",
        "CreatePolicyStmt",
        "AlterPolicyStmt",
        "RuleStmt",
        "DefineStmt",
        "AlterTypeStmt",
        "CreateRangeStmt",
        "CreateCastStmt",
        "CreateStatsStmt",
        "CreatePublicationStmt",
        "AlterPublicationStmt",
        "CreateSubscriptionStmt",
        "AlterSubscriptionStmt",
        "DropSubscriptionStmt",
        "AlterDefaultPrivilegesStmt",
        "ReassignOwnedStmt",
        "DropOwnedStmt",
        "CreateForeignTableStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
        "AlterSystemStmt",
        "SecLabelStmt",
        "AlterExtensionStmt",
        "CreateEventTrigStmt",
    )
    if hasattr(ast, name)
)

_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

# Utility statements that change data or server state: the primary, reason "maintenance".
_MAINTENANCE = tuple(
    getattr(ast, name)
    for name in (
        "VacuumStmt",
        "ClusterStmt",
        "ReindexStmt",
        "RefreshMatViewStmt",
        "CheckPointStmt",
        "LoadStmt",
        "AlterDatabaseStmt",
        "AlterDatabaseSetStmt",
        "AlterRoleSetStmt",
    )
    if hasattr(ast, name)
)


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """What one SQL string is.

    Attributes:
        statement_count: statements in the string (an adapter runs only 1).
        operation: the top-level statement's operation.
        writes: whether it writes (DML other than a plain SELECT, a CTE that
            writes, SELECT INTO, DDL, …).
        statement_type: the parse node's name (``SelectStmt``, ``VariableSetStmt``…).
        refusal: why an adapter must never run it, whatever its settings
            (session control, code execution, server administration, a
            refused function anywhere in the tree), else None.
        needs_ddl: it changes the schema or the server's state (DDL, SELECT
            INTO, maintenance, any statement type not known to be plain
            DML/SELECT/SHOW/EXPLAIN/CALL/NOTIFY): only adapters with DDL
            enabled run it.
        session_safe: running it cannot leave state in the database session
            (settings, advisory locks, temporary tables), so the connection
            needs no reset before the next request uses it.
    """

    statement_count: int
    operation: OperationType
    writes: bool
    statement_type: str = ""
    refusal: str | None = None
    needs_ddl: bool = False
    session_safe: bool = False


def _words(text: str) -> list[str]:
    return text.split()


# Statements an adapter refuses whatever the caller declares and whatever the
# adapter allows; docs/security.md lists each with the threat it stops.
_SESSION = (
    "it changes or depends on the database session, and each request runs alone on a "
    "pooled connection that must be left exactly as it was found"
)
_REFUSALS: dict[str, str] = {
    **dict.fromkeys(
        _words(
            "TransactionStmt VariableSetStmt DiscardStmt ListenStmt UnlistenStmt PrepareStmt "
            "ExecuteStmt DeallocateStmt DeclareCursorStmt FetchStmt ClosePortalStmt LockStmt "
            "ConstraintsSetStmt"
        ),
        _SESSION,
    ),
    "DoStmt": "it runs procedural code that the adapter's checks cannot see into",
    "CopyStmt": "COPY cannot stream over the bus, and its file and PROGRAM forms act on "
    "the database server itself",
    "LoadStmt": "it loads a shared library into the server process",
    "AlterSystemStmt": "it changes the server's configuration",
    **dict.fromkeys(
        _words(
            "CreateRoleStmt AlterRoleStmt AlterRoleSetStmt DropRoleStmt GrantRoleStmt "
            "CreatedbStmt DropdbStmt AlterDatabaseStmt AlterDatabaseSetStmt "
            "AlterDatabaseRefreshCollStmt ReassignOwnedStmt DropOwnedStmt "
            "CreateTableSpaceStmt DropTableSpaceStmt AlterTableSpaceOptionsStmt "
            "CreateUserMappingStmt AlterUserMappingStmt DropUserMappingStmt "
            "CreateFdwStmt AlterFdwStmt CreateForeignServerStmt AlterForeignServerStmt "
            "ImportForeignSchemaStmt CreateSubscriptionStmt AlterSubscriptionStmt "
            "DropSubscriptionStmt CreateEventTrigStmt AlterEventTrigStmt "
            "CheckPointStmt"
        ),
        "it administers roles, databases, languages or the server, which is never done "
        "through the bus",
    ),
}

# Statement types that are neither DDL nor refused: anything else needs DDL enabled.
_PLAIN = (
    ast.SelectStmt,
    ast.InsertStmt,
    ast.UpdateStmt,
    ast.DeleteStmt,
    ast.MergeStmt,
    ast.VariableShowStmt,
    ast.CallStmt,
    ast.NotifyStmt,
)


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


_EMPTY_COMPLEXITY = Complexity.from_counts(ComplexityCounts())


def _unparsable(detail: str) -> Classification:
    return Classification(
        Role.PRIMARY, Reason.UNPARSABLE, "", _EMPTY_COMPLEXITY, writes=True, detail=detail
    )


def _children(node: ast.Node) -> Iterator[Any]:
    # A node class's own __slots__ lists its fields (the base's "ancestors" is not among them).
    for slot in getattr(type(node), "__slots__", ()):
        yield getattr(node, slot, None)


def _walk(node: object) -> Iterator[ast.Node]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.Node):
            yield cur
            stack.extend(_children(cur))
        elif isinstance(cur, (tuple, list)):
            stack.extend(cur)


def _contains_write(node: ast.Node) -> bool:
    return any(isinstance(sub, _WRITES) for sub in _walk(node))


def _func_name(call: ast.FuncCall) -> str:
    parts = call.funcname or ()
    last = parts[-1] if parts else None
    return str(getattr(last, "sval", "") or "")


class _Scan:
    """One pass over a read's tree: what could make it unsafe, and how complex it is."""

    __slots__ = ("counts", "functions", "locking", "writes")

    def __init__(self, root: ast.Node) -> None:
        c = ComplexityCounts()
        self.functions: list[str] = []
        self.locking = False
        self.writes = False
        for node in _walk(root):
            if isinstance(node, ast.FuncCall):
                name = _func_name(node)
                self.functions.append(name)
                if node.over is not None:
                    c.windows += 1
                elif node.agg_star or node.agg_distinct or node.agg_order or name in AGGREGATES:
                    c.aggregates += 1
            elif isinstance(node, ast.SelectStmt):
                if node.lockingClause:
                    self.locking = True
                if node.intoClause is not None:
                    self.writes = True
                if node.fromClause and len(node.fromClause) > 1:
                    c.joins += len(node.fromClause) - 1
                if node.groupClause:
                    c.groups += len(node.groupClause)
                if node.distinctClause:
                    c.distinct += 1
                if node.op is not None and int(node.op) != 0:
                    c.set_operations += 1
                if node.withClause is not None and node.withClause.recursive:
                    c.recursive = True
            elif isinstance(node, ast.JoinExpr):
                c.joins += 1
            elif isinstance(node, (ast.SubLink, ast.RangeSubselect)):
                c.subqueries += 1
            elif isinstance(node, ast.CommonTableExpr):
                c.ctes += 1
            elif isinstance(node, ast.SortBy):
                c.sorts += 1
            elif isinstance(node, _WRITES):
                self.writes = True
        self.counts = c


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

    def classify(self, sql: str) -> Classification:
        """Where ``sql`` may run and why. Never raises: what cannot be
        classified goes to the primary with reason ``unparsable``."""
        hit = self._by_text.get(sql)
        if hit is not None:
            return hit
        try:
            fp = _on_big_stack(fingerprint, sql)
        except ParseError as exc:
            result = _unparsable(str(exc))
        else:
            result = self._by_fingerprint.get(fp) or self._classify_uncached(sql, fp)
            self._remember(self._by_fingerprint, fp, result)
        self._remember(self._by_text, sql, result)
        return result

    def _remember(self, cache: dict[str, Classification], key: str, value: Classification) -> None:
        # Clearing on overflow is cruder than LRU but keeps a hit at one dict lookup;
        # a working set larger than the cache is a configuration problem either way.
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[key] = value

    def _classify_uncached(self, sql: str, fp: str) -> Classification:
        try:
            stmts = _on_big_stack(parse_sql, sql)
        except ParseError as exc:
            return _unparsable(str(exc))
        if not stmts:
            return _unparsable("no statement")
        results = [self._statement(raw.stmt, fp) for raw in stmts if raw.stmt is not None]
        if not results:
            return _unparsable("no statement")
        # A batch runs where its most demanding statement must run; transaction
        # control around reads only (BEGIN; SELECT …; COMMIT) writes nothing.
        for result in results:
            if result.to_primary and result.reason is not Reason.TRANSACTION:
                return result
        reads = [r for r in results if not r.to_primary]
        if reads:
            return max(reads, key=lambda r: r.complexity.score)
        return results[0]

    def _statement(self, stmt: ast.Node, fp: str) -> Classification:
        def primary(
            reason: Reason, detail: str = "", complexity: Complexity | None = None
        ) -> Classification:
            return Classification(
                Role.PRIMARY, reason, fp, complexity or _EMPTY_COMPLEXITY, True, detail
            )

        if isinstance(stmt, _WRITES):
            return primary(Reason.WRITE, type(stmt).__name__)
        if isinstance(stmt, ast.SelectStmt):
            return self._select(stmt, fp)
        if isinstance(stmt, ast.ExplainStmt) and stmt.query is not None:
            return self._statement(stmt.query, fp)
        if isinstance(stmt, ast.CopyStmt):
            if stmt.is_from:
                return primary(Reason.COPY_FROM)
            if stmt.query is not None:
                return self._statement(stmt.query, fp)
            return Classification(
                Role.REPLICA, Reason.READ, fp, _EMPTY_COMPLEXITY, False, "COPY TO"
            )
        if isinstance(stmt, _DDL):
            return primary(Reason.DDL, type(stmt).__name__)
        if isinstance(stmt, (ast.ListenStmt, ast.UnlistenStmt, ast.NotifyStmt)):
            return primary(Reason.LISTEN_NOTIFY, type(stmt).__name__)
        if isinstance(stmt, ast.TransactionStmt):
            return primary(Reason.TRANSACTION, getattr(stmt.kind, "name", str(stmt.kind)))
        if isinstance(stmt, ast.VariableShowStmt):
            return Classification(Role.REPLICA, Reason.READ, fp, _EMPTY_COMPLEXITY, False, "SHOW")
        if isinstance(stmt, ast.LockStmt):
            return primary(Reason.LOCKING, "LOCK TABLE")
        if isinstance(stmt, (ast.CallStmt, ast.DoStmt)):
            return primary(Reason.PROCEDURE, type(stmt).__name__)
        if isinstance(stmt, _MAINTENANCE):
            return primary(Reason.MAINTENANCE, type(stmt).__name__)
        # SET, PREPARE, EXECUTE, cursors, DISCARD, …: session state or unknown
        # effects; the primary is the only place where they are always valid.
        return primary(Reason.UTILITY, type(stmt).__name__)

    def _select(self, stmt: ast.SelectStmt, fp: str) -> Classification:
        scan = _Scan(stmt)
        complexity = Complexity.from_counts(scan.counts)

        def primary(reason: Reason, detail: str = "") -> Classification:
            return Classification(Role.PRIMARY, reason, fp, complexity, True, detail)

        if stmt.intoClause is not None:
            return primary(Reason.SELECT_INTO)
        if scan.writes:
            return primary(Reason.WRITING_CTE)
        if scan.locking:
            return primary(Reason.LOCKING)
        for name in scan.functions:
            verdict = self._function(name)
            if verdict is not None:
                return primary(verdict, name)
        return Classification(Role.REPLICA, Reason.READ, fp, complexity, False)

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


def classify(sql: str) -> Classification:
    """Classify ``sql`` with the shared catalog-less :class:`Classifier`."""
    return _default.classify(sql)


@functools.lru_cache(maxsize=4096)
def analyze(sql: str) -> StatementInfo:
    """Parse ``sql`` and describe it.

    Raises:
        RequestRejectedError: the SQL does not parse or is empty.
    """
    try:
        stmts = _on_big_stack(parse_sql, sql)
    except ParseError as exc:
        raise RequestRejectedError(f"SQL does not parse: {exc}") from exc
    if not stmts:
        raise RequestRejectedError("no SQL statement given")
    top = stmts[0].stmt
    if top is None:
        raise RequestRejectedError("no SQL statement given")
    op = _DML.get(type(top))
    if op is None:
        op = OperationType.DDL if isinstance(top, _DDL) else OperationType.OTHER
    if op is OperationType.SELECT:
        writes = getattr(top, "intoClause", None) is not None or _contains_write(top)
    else:
        writes = op is not OperationType.OTHER or _contains_write(top)
    return StatementInfo(
        statement_count=len(stmts),
        operation=op,
        writes=writes,
        statement_type=type(top).__name__,
        refusal=_refusal(top),
        needs_ddl=_needs_ddl(top),
        session_safe=_session_safe(top, op),
    )


def _refusal(top: ast.Node) -> str | None:
    """Why ``top`` must never run, looking at its type and at every node below it."""
    kind = type(top).__name__
    if kind in _REFUSALS:
        return f"{kind} is not allowed: {_REFUSALS[kind]}"
    for node in _walk(top):
        if isinstance(node, ast.FuncCall):
            name = _func_name(node).lower()
            reason = REFUSED_FUNCTIONS.get(name)
            if reason is not None:
                return f"calling {name}() is not allowed: {reason}"
        elif type(node).__name__ in _REFUSALS:  # EXPLAIN ANALYZE of a refused statement
            return _refusal(node)
    return None


def _needs_ddl(top: ast.Node) -> bool:
    if isinstance(top, ast.ExplainStmt):
        return top.query is None or _needs_ddl(top.query)
    if not isinstance(top, _PLAIN):
        return True
    return getattr(top, "intoClause", None) is not None  # SELECT INTO creates a table


# Functions that cannot leave state in the session: the known built-ins
# (immutable/stable, aggregates, read-only volatile ones) and the sequence
# functions (currval's per-session value is harmless to the next request).
_SESSION_SAFE_FUNCTIONS = KNOWN_SAFE | AGGREGATES | VOLATILE_READ_SAFE | SEQUENCE_FUNCTIONS


def _session_safe(top: ast.Node, op: OperationType) -> bool:
    """Whether running ``top`` provably leaves the session as it found it.

    Plain SELECT/INSERT/UPDATE/DELETE calling only known built-ins do; DDL
    (CREATE TEMP TABLE), SELECT INTO, utility statements and any other
    function (``set_config``, ``pg_advisory_lock``, a user function that runs
    SET) may not, so the executor resets the session after them.
    """
    if op not in (
        OperationType.SELECT,
        OperationType.INSERT,
        OperationType.UPDATE,
        OperationType.DELETE,
    ):
        return False
    if getattr(top, "intoClause", None) is not None:
        return False
    return all(
        _func_name(node).lower() in _SESSION_SAFE_FUNCTIONS
        for node in _walk(top)
        if isinstance(node, ast.FuncCall)
    )
