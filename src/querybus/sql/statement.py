"""One parse per SQL text: :func:`analyze` turns SQL into a cached :class:`Statement`.

This package is the only importer of pglast (PostgreSQL's own parser). A
:class:`Statement` carries everything the layers above need, so none of them
parses again: the policy (statement count, operation, refusal, whether it
needs DDL), the router (the fingerprint and, per statement, what could make
it unsafe on a replica and how complex it is), the executor (whether the
session must be reset afterwards, whether it writes) and idempotency
(whether it writes) and the role policies (the operations it performs, the
tables it names).

It is cached by SQL text, so a repeated statement costs one dict lookup.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pglast import ast, parse_sql
from pglast.parser import ParseError, fingerprint, scan

from querybus.protocol.messages import OperationType
from querybus.sql.complexity import Complexity, ComplexityCounts
from querybus.sql.functions import (
    AGGREGATES,
    KNOWN_SAFE,
    REFUSED_FUNCTIONS,
    SEQUENCE_FUNCTIONS,
    VOLATILE_READ_SAFE,
)

__all__ = ["Part", "Statement", "analyze", "qualified_name"]

T = TypeVar("T")

#: The complexity of a statement that has nothing to count.
NO_COMPLEXITY = Complexity.from_counts(ComplexityCounts())


@dataclass(frozen=True, slots=True)
class Part:
    """One statement of a SQL text, as far as routing cares.

    Attributes:
        kind: the parse node's name (``SelectStmt``, ``InsertStmt``, ``CopyStmt``…);
            for ``EXPLAIN`` and ``COPY (query) TO``, the query's node.
        writes: it writes or may write (DML, DDL, SELECT INTO, a writing CTE, …).
        select_into: a ``SELECT … INTO`` (creates a table).
        writing_cte: a read whose CTE writes.
        locking: a read with ``FOR UPDATE/SHARE``.
        copy_from: ``COPY … FROM``.
        functions: the names of the functions it calls, in tree order.
        complexity: score and class of the statement.
        detail: a word for people (the transaction kind, ``COPY TO``, …).
    """

    kind: str
    writes: bool
    select_into: bool = False
    writing_cte: bool = False
    locking: bool = False
    copy_from: bool = False
    functions: tuple[str, ...] = ()
    complexity: Complexity = field(default_factory=lambda: NO_COMPLEXITY)
    detail: str = ""

    @property
    def may_write(self) -> bool:
        """Whether it writes or might: anything but a plain read calling only
        built-ins known to be read-only (a user function may write)."""
        if self.kind == "VariableShowStmt" or (self.kind == "CopyStmt" and not self.copy_from):
            return False
        if self.kind != "SelectStmt" or self.writes or self.locking:
            return True
        return not all(name in _READ_ONLY_FUNCTIONS for name in self.functions)


@dataclass(frozen=True, slots=True)
class Statement:
    """What one SQL text is, from one parse.

    Attributes:
        sql: the text.
        error: why it cannot be run at all (it does not parse, or holds no
            statement), else None; the other fields then say nothing.
        fingerprint: pglast's fingerprint (equal for the same statement with
            other constants); ``""`` when it does not parse.
        statement_count: statements in the text (an adapter runs only 1).
        operation: the first statement's operation.
        writes: whether the first statement writes (DML other than a plain
            SELECT, a CTE that writes, SELECT INTO, DDL, …).
        statement_type: the first statement's parse node name.
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
        parts: every statement of the text, for routing.
        operations: every operation the text performs, for role policies:
            the first statement's :attr:`operation` plus the kind of every
            data-modifying statement nested anywhere in the text (a writing
            CTE, the statement under ``EXPLAIN``). ``MERGE`` counts as the
            operations of its ``WHEN`` actions (``DO NOTHING`` as SELECT), not
            as OTHER.
        tables: every relation the text reads or writes (tables, views,
            sequences; targets of INSERT/UPDATE/DELETE/MERGE, FROM/USING/JOIN
            lists, subqueries anywhere, ``SELECT INTO`` and DDL targets named
            as relations), as :func:`qualified_name` spells it: ``schema.name``
            when qualified, else ``name``; unquoted identifiers already folded
            to lower case by the parser, quoted ones that need it kept quoted
            (``"Mixed"``), the database part of ``db.schema.name`` dropped.
            Names that refer to a CTE in scope are not tables. Functions in
            FROM are not tables, and neither are relations that SQL reaches
            only through a function (``nextval('seq')``, a user function
            reading a table): this is a list of names, not of privileges.
    """

    sql: str
    error: str | None = None
    fingerprint: str = ""
    statement_count: int = 0
    operation: OperationType = OperationType.OTHER
    writes: bool = True
    statement_type: str = ""
    refusal: str | None = None
    needs_ddl: bool = False
    session_safe: bool = False
    parts: tuple[Part, ...] = ()
    operations: frozenset[OperationType] = frozenset()
    tables: frozenset[str] = frozenset()

    @property
    def may_write(self) -> bool:
        """Whether it writes or might (see :attr:`Part.may_write`); true when
        it does not parse. A keyed request that may write is recorded in the
        durable idempotency store."""
        return self.error is not None or any(part.may_write for part in self.parts)


# -- parsing on a stack large enough ------------------------------------------------

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


# -- what the tree holds ----------------------------------------------------------------

_DML: dict[type, OperationType] = {
    ast.SelectStmt: OperationType.SELECT,
    ast.InsertStmt: OperationType.INSERT,
    ast.UpdateStmt: OperationType.UPDATE,
    ast.DeleteStmt: OperationType.DELETE,
}

#: Statement types whose operation is DDL (the declared-operation check).
DDL_KINDS = frozenset(
    {
        "CreateStmt", "CreateTableAsStmt", "AlterTableStmt", "DropStmt", "IndexStmt",
        "ViewStmt", "CreateSeqStmt", "AlterSeqStmt", "CreateSchemaStmt", "RenameStmt",
        "CreateFunctionStmt", "CreateEnumStmt", "CompositeTypeStmt", "TruncateStmt",
        "CommentStmt", "GrantStmt", "CreateExtensionStmt", "CreateTrigStmt", "AlterEnumStmt",
        "CreateDomainStmt", "AlterDomainStmt", "CreateRoleStmt", "AlterRoleStmt",
        "DropRoleStmt", "GrantRoleStmt", "CreatedbStmt", "DropdbStmt", "AlterFunctionStmt",
        "AlterObjectSchemaStmt", "AlterOwnerStmt", "CreatePolicyStmt", "AlterPolicyStmt",
        "RuleStmt", "DefineStmt", "AlterTypeStmt", "CreateRangeStmt", "CreateCastStmt",
        "CreateStatsStmt", "CreatePublicationStmt", "AlterPublicationStmt",
        "CreateSubscriptionStmt", "AlterSubscriptionStmt", "DropSubscriptionStmt",
        "AlterDefaultPrivilegesStmt", "ReassignOwnedStmt", "DropOwnedStmt",
        "CreateForeignTableStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt",
        "AlterSystemStmt", "SecLabelStmt", "AlterExtensionStmt", "CreateEventTrigStmt",
    }
)  # fmt: skip

_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

# What each MERGE action does, as an operation (CmdType values).
_MERGE_ACTIONS: dict[int, OperationType] = {
    2: OperationType.UPDATE,  # CMD_UPDATE
    3: OperationType.INSERT,  # CMD_INSERT
    4: OperationType.DELETE,  # CMD_DELETE
    7: OperationType.SELECT,  # CMD_NOTHING: reads source and target, changes nothing
}


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

# Functions that cannot leave state in the session: the known built-ins
# (immutable/stable, aggregates, read-only volatile ones) and the sequence
# functions (currval's per-session value is harmless to the next request).
_SESSION_SAFE_FUNCTIONS = KNOWN_SAFE | AGGREGATES | VOLATILE_READ_SAFE | SEQUENCE_FUNCTIONS
# Built-ins that never write (so a read calling only these is a plain read).
_READ_ONLY_FUNCTIONS = KNOWN_SAFE | AGGREGATES | VOLATILE_READ_SAFE


def _children(node: ast.Node) -> Iterator[Any]:
    # A node class's own __slots__ lists its fields (the base's "ancestors" is not among them).
    for slot in getattr(type(node), "__slots__", ()):
        yield getattr(node, slot, None)


def _walk(node: object) -> Iterator[ast.Node]:
    # Iterative: a hostile statement nested tens of thousands deep must not
    # exhaust Python's recursion limit.
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.Node):
            yield cur
            stack.extend(_children(cur))
        elif isinstance(cur, (tuple, list)):
            stack.extend(cur)


def _func_name(call: ast.FuncCall) -> str:
    parts = call.funcname or ()
    last = parts[-1] if parts else None
    return str(getattr(last, "sval", "") or "")


class _Scan:
    """One pass over a statement's tree: functions, writes, locks, complexity,
    operations, relations."""

    __slots__ = (
        "counts",
        "functions",
        "locking",
        "operations",
        "ranges",
        "refused",
        "root",
        "writes",
    )

    def __init__(self, root: ast.Node) -> None:
        c = ComplexityCounts()
        functions: list[str] = []
        operations: set[OperationType] = set()
        ranges: list[ast.RangeVar] = []
        self.root = root
        self.locking = False
        self.writes = False
        self.refused: str | None = None
        for node in _walk(root):
            if isinstance(node, ast.FuncCall):
                name = _func_name(node)
                functions.append(name)
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
            elif isinstance(node, ast.RangeVar):
                ranges.append(node)
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
                op = _DML.get(type(node))
                if op is not None:
                    operations.add(op)
            elif isinstance(node, ast.MergeWhenClause):
                action = int(node.commandType or 0)
                operations.add(_MERGE_ACTIONS.get(action, OperationType.OTHER))
            elif self.refused is None and type(node).__name__ in _REFUSALS:
                # EXPLAIN ANALYZE of a refused statement
                kind = type(node).__name__
                self.refused = f"{kind} is not allowed: {_REFUSALS[kind]}"
        self.functions = tuple(functions)
        self.counts = c
        self.operations = operations
        self.ranges = ranges

    def tables(self) -> set[str]:
        """The relations the tree names (see :attr:`Statement.tables`)."""
        if self.counts.ctes == 0:
            # Without a CTE no name can be shadowed: every RangeVar is a relation.
            return {_range_name(rv) for rv in self.ranges}
        return _tables(self.root)


# -- relation names ---------------------------------------------------------------------

# An identifier PostgreSQL never needs quoted (keywords aside, which cannot be
# confused with a name once it is known to be one).
_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")


def qualified_name(*parts: str) -> str:
    """``parts`` (as the catalog spells them) joined with dots, each quoted
    like SQL quotes it when it is not a plain lower-case identifier.

    Quoting keeps the form unambiguous: ``"a.b"`` (one name with a dot) is
    not ``a.b`` (schema and name), and ``"Mixed"`` is not ``mixed``.
    """
    return ".".join(
        p if _PLAIN_IDENT.fullmatch(p) else '"' + p.replace('"', '""') + '"' for p in parts
    )


def _range_name(rv: ast.RangeVar) -> str:
    # The catalog part is dropped: PostgreSQL refuses any but the current database.
    if rv.schemaname:
        return qualified_name(rv.schemaname, rv.relname or "")
    return qualified_name(rv.relname or "")


#: Statements whose ``relation`` is a target, which PostgreSQL looks up in the
#: catalog only: a CTE of the same name does not hide the table there.
_TARGETS = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_NO_CTES: frozenset[str] = frozenset()
_CONTAINERS = (ast.Node, tuple, list)


def _tables(root: ast.Node) -> set[str]:
    """The relations under ``root``, leaving out names that refer to a CTE.

    A CTE's name is visible in its statement (every branch of a set operation,
    every subquery) and in the bodies of the CTEs after it, or of all of them
    under ``WITH RECURSIVE``; not outside its statement, not as an
    INSERT/UPDATE/DELETE/MERGE target, and never with a schema. A forward
    reference in a plain ``WITH`` therefore names a table. Iterative, like
    :func:`_walk`, with the names in scope carried along.
    """
    out: set[str] = set()
    stack: list[tuple[Any, frozenset[str]]] = [(root, _NO_CTES)]
    while stack:
        cur, scope = stack.pop()
        if isinstance(cur, ast.Node):
            if isinstance(cur, ast.RangeVar):
                if cur.schemaname or cur.relname not in scope:
                    out.add(_range_name(cur))
                continue
            inner = scope
            with_clause = getattr(cur, "withClause", None)
            if isinstance(with_clause, ast.WithClause) and with_clause.ctes:
                names = [str(cte.ctename) for cte in with_clause.ctes]
                inner = scope.union(names)
                for i, cte in enumerate(with_clause.ctes):
                    visible = inner if with_clause.recursive else scope.union(names[:i])
                    stack.append((cte.ctequery, visible))
            target = cur.relation if isinstance(cur, _TARGETS) else None
            if isinstance(cur, ast.IntoClause):
                target = cur.rel
            if target is not None:
                out.add(_range_name(target))
            for slot in getattr(type(cur), "__slots__", ()):
                value = getattr(cur, slot, None)
                # only what can hold a node; the CTEs and the target are done above
                if (
                    isinstance(value, _CONTAINERS)
                    and value is not with_clause
                    and value is not target
                ):
                    stack.append((value, inner))
        elif isinstance(cur, (tuple, list)):
            stack.extend((item, scope) for item in cur if isinstance(item, _CONTAINERS))
    return out


def _part(stmt: ast.Node) -> Part:
    """What routing needs of one statement (EXPLAIN and COPY (query) unwrapped)."""
    if isinstance(stmt, ast.ExplainStmt) and stmt.query is not None:
        return _part(stmt.query)
    if isinstance(stmt, ast.CopyStmt):
        if stmt.is_from:
            return Part("CopyStmt", writes=True, copy_from=True)
        if stmt.query is not None:
            return _part(stmt.query)
        return Part("CopyStmt", writes=False, detail="COPY TO")
    kind = type(stmt).__name__
    if isinstance(stmt, _WRITES):
        return Part(kind, writes=True)
    if isinstance(stmt, ast.SelectStmt):
        scan = _Scan(stmt)
        into = stmt.intoClause is not None
        return Part(
            kind,
            writes=into or scan.writes,
            select_into=into,
            writing_cte=scan.writes and not into,
            locking=scan.locking,
            functions=scan.functions,
            complexity=Complexity.from_counts(scan.counts),
        )
    if isinstance(stmt, ast.TransactionStmt):
        return Part(kind, writes=True, detail=getattr(stmt.kind, "name", str(stmt.kind)))
    if isinstance(stmt, ast.VariableShowStmt):
        return Part(kind, writes=False, detail="SHOW")
    return Part(kind, writes=True)


def _refusal(top: ast.Node, scan: _Scan) -> str | None:
    """Why ``top`` must never run, looking at its type and at every node below it."""
    kind = type(top).__name__
    if kind in _REFUSALS:
        return f"{kind} is not allowed: {_REFUSALS[kind]}"
    for name in scan.functions:
        reason = REFUSED_FUNCTIONS.get(name.lower())
        if reason is not None:
            return f"calling {name.lower()}() is not allowed: {reason}"
    return scan.refused


def _needs_ddl(top: ast.Node) -> bool:
    if isinstance(top, ast.ExplainStmt):
        return top.query is None or _needs_ddl(top.query)
    if not isinstance(top, _PLAIN):
        return True
    return getattr(top, "intoClause", None) is not None  # SELECT INTO creates a table


def _session_safe(top: ast.Node, op: OperationType, scan: _Scan) -> bool:
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
    return all(name.lower() in _SESSION_SAFE_FUNCTIONS for name in scan.functions)


#: Statements by fingerprint: almost everything a Statement says depends on
#: the statement's structure, not on its constants, so the same statement with
#: other literals costs a fingerprint (C, a few µs) instead of a full analysis.
#: Not its tables: the fingerprint ignores schema names and digits at the end
#: of table names (``s.orders`` and ``t.orders``, ``log_2024`` and
#: ``log_2025`` fingerprint alike). So a hit whose statement names a relation
#: (a CTE reference included) reuses the tables only when both texts are the
#: same tokens but for constants (:func:`_shape`), and else parses its own
#: text for them (:func:`_relations`).
_BY_FINGERPRINT: dict[str, _Cached] = {}
_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=_CACHE_SIZE)
def analyze(sql: str) -> Statement:
    """What ``sql`` is (cached by text and by fingerprint; never raises: see
    :attr:`Statement.error`)."""
    try:
        fp = _on_big_stack(fingerprint, sql)
    except ParseError as exc:
        return Statement(sql, error=f"SQL does not parse: {exc}")
    known = _BY_FINGERPRINT.get(fp)
    if known is not None:
        if not known.names_relations:
            return dataclasses.replace(known.statement, sql=sql)
        if not known.shaped:
            known.shape, known.shaped = _shape(known.statement.sql), True
        if known.shape is not None and _shape(sql) == known.shape:
            return dataclasses.replace(known.statement, sql=sql)
        tables = _relations(sql)
        if tables is not None:
            return dataclasses.replace(known.statement, sql=sql, tables=tables)
    statement, names_relations = _parse(sql, fp)
    if len(_BY_FINGERPRINT) >= _CACHE_SIZE:
        # Cruder than LRU, but a hit stays one dict lookup; a working set
        # larger than the cache is a configuration problem either way.
        _BY_FINGERPRINT.clear()
    _BY_FINGERPRINT[fp] = _Cached(statement, names_relations)
    return statement


@dataclass(slots=True)
class _Cached:
    statement: Statement
    #: it names a relation (a CTE reference included)
    names_relations: bool
    #: its _shape(), computed on the first hit that needs it
    shape: tuple[str, ...] | None = None
    shaped: bool = False


# Tokens whose text is a constant's value: never part of a name in the tree.
_CONSTANTS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST", "PARAM"})


def _shape(sql: str) -> tuple[str, ...] | None:
    """``sql``'s tokens with each constant replaced by its kind, or None when
    that cannot tell. Two texts of equal shape parse to the same tree but for
    constant values, so they name the same tables. (Comments and spelling
    count: a text that differs only there is merely not recognised.)
    """
    if "uescape" in sql.lower():
        # U&"d!0061ta" UESCAPE '!': a string constant that changes a name
        return None
    try:
        tokens = scan(sql)
    except ParseError:
        return None
    return tuple(t.name if t.name in _CONSTANTS else sql[t.start : t.end + 1] for t in tokens)


def _relations(sql: str) -> frozenset[str] | None:
    """The tables of ``sql`` alone (a fingerprint hit); None if it does not parse."""
    try:
        stmts = _on_big_stack(parse_sql, sql)
    except ParseError:
        return None
    tables: set[str] = set()
    for raw in stmts:
        if raw.stmt is not None:
            tables |= _tables(raw.stmt)
    return frozenset(tables)


def _parse(sql: str, fp: str) -> tuple[Statement, bool]:
    """The statement, and whether its text names any relation (a CTE
    reference included): whether a fingerprint hit must find its own tables."""
    try:
        stmts = _on_big_stack(parse_sql, sql)
    except ParseError as exc:
        return Statement(sql, error=f"SQL does not parse: {exc}"), False
    nodes = [raw.stmt for raw in stmts if raw.stmt is not None]
    if not nodes:
        return Statement(sql, error="no SQL statement given", fingerprint=fp), False
    top = nodes[0]
    op = _DML.get(type(top))
    kind = type(top).__name__
    if op is None:
        op = OperationType.DDL if kind in DDL_KINDS else OperationType.OTHER
    scan = _Scan(top)
    tables = scan.tables()
    for other in nodes[1:]:  # refused anyway (one statement per request), but complete
        tables |= _tables(other)
    operations = scan.operations if kind == "MergeStmt" else scan.operations | {op}
    if op is OperationType.SELECT:
        writes = getattr(top, "intoClause", None) is not None or scan.writes
    else:
        writes = op is not OperationType.OTHER or scan.writes
    statement = Statement(
        sql,
        fingerprint=fp,
        statement_count=len(stmts),
        operation=op,
        writes=writes,
        statement_type=kind,
        refusal=_refusal(top, scan),
        needs_ddl=_needs_ddl(top),
        session_safe=_session_safe(top, op, scan),
        parts=tuple(_part(node) for node in nodes),
        operations=frozenset(operations),
        tables=frozenset(tables),
    )
    # A CTE reference is a RangeVar too, and `WITH x … FROM x` fingerprints
    # like `WITH x … FROM s.x`; the other statements are rare enough to count.
    return statement, bool(scan.ranges) or len(nodes) > 1
